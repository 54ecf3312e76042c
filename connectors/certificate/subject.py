"""Reading who a Vietnamese citizen certificate names: the personal ID number and the full name.

Licensed Vietnamese CAs put the identity document number in the subject's userID attribute
(0.9.2342.19200300.100.1.1) with a prefix naming the document: `UID=CCCD:001090000001` (chip
citizen identity card), `UID=CMND:...` (old identity card), `UID=MST:...` (tax code, for
organisations), `UID=HC:...` (passport). Some profiles use serialNumber (2.5.4.5) instead, either
with the same prefixes or in the ETSI EN 319 412-1 §5.1.3 form `IDCVN-...` / `PNOVN-...`.

Only the 12-digit personal identification number (số định danh cá nhân, the CCCD number) is
accepted as `national_id`: a 9-digit CMND, a passport or a tax code is not one.
"""

from __future__ import annotations

import base64
import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from connectors.base import NotAllowed

_PIN_FORMS = (
    re.compile(r"^(?:CCCD|CMND|CMT|PID|DDCN|ĐDCN)\s*[:=\-]?\s*(\d{12})$", re.IGNORECASE),
    re.compile(r"^(?:IDC|PNO)VN-(\d{12})$", re.IGNORECASE),
    re.compile(r"^(\d{12})$"),
)


def _pin_in(value: str) -> str | None:
    text = value.strip()
    for form in _PIN_FORMS:
        match = form.match(text)
        if match:
            return match.group(1)
    return None


def national_id(cert: x509.Certificate) -> str:
    """The 12-digit personal ID number in the subject (UID first, then serialNumber)."""
    found: set[str] = set()
    for oid in (NameOID.USER_ID, NameOID.SERIAL_NUMBER):
        for attribute in cert.subject.get_attributes_for_oid(oid):
            pin = _pin_in(str(attribute.value))
            if pin:
                found.add(pin)
    if len(found) != 1:
        # None: an organisation's or a passport certificate. Several: we will not guess.
        raise NotAllowed(
            "the certificate does not name exactly one 12-digit personal identification number",
            code="cert_no_national_id",
        )
    return found.pop()


def common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def thumbprint_s256(cert: x509.Certificate) -> str:
    """`x5t#S256` (RFC 7515 §4.1.8, RFC 8705 §3.1): base64url SHA-256 of the DER certificate."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
