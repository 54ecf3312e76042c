"""Certificate connector configuration: every key declared once, with its default and meaning
(connectors/declaration.py reads it; the connector and its validator read the same keys)."""

from __future__ import annotations

from dataclasses import dataclass, field


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class CertificateConfig:
    trust_anchors: tuple[str, ...] = field(metadata=_doc("PEM strings or paths of the root (or CA) certificates to trust."))
    intermediate_certs: tuple[str, ...] = field(
        default=(), metadata=_doc("PEM strings or paths of CA certificates clients may leave out (nginx forwards only the leaf)."))
    ocsp_timeout: float = field(default=3.0, metadata=_doc("Seconds per OCSP call."))
    crl_timeout: float = field(default=5.0, metadata=_doc("Seconds per CRL download."))
    require_ocsp: bool = field(default=False, metadata=_doc("The leaf's status must come from OCSP, no CRL fallback."))
    trusted_proxies: tuple[str, ...] = field(
        default=(), metadata=_doc("Addresses or CIDR ranges allowed to forward a client certificate (mTLS at the proxy)."))
    key_storage: str = field(
        default="hardware", metadata=_doc("hardware (USB token/HSM: amr hwk), smartcard (hwk + sc) or software (swk), RFC 8176."))
    clock_skew: float = field(default=60.0, metadata=_doc("Seconds tolerated on validity and revocation times."))
