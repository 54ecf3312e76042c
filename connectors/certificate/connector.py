"""Sign-in with a digital-signature certificate from a licensed Vietnamese CA.

Two ways in, one validation:

* Signed statement. `new_challenge(request=..., agency=...)` issues a single-use, human-readable
  statement (statement.py: NIXA's origin, the agency, a hash of the pending request, 120 s
  expiry, a nonce); the citizen's signing plug-in (USB token) shows it, checks its origin and
  signs its exact bytes; `authenticate(chain, signed, issued=...)` checks that the signed text
  is exactly the statement issued for this pending request, unused and unexpired, then the
  signature with the leaf's key, then the chain.
* mTLS terminated at a trusted reverse proxy. nginx verifies possession of the key in the TLS
  handshake (`ssl_verify_client optional_no_ca`) and forwards `$ssl_client_escaped_cert`;
  `from_proxy_header(value, remote_addr)` accepts it only from an address in `trusted_proxies`.

Configuration (`ctx.config`):
    trust_anchors       PEM strings or paths of the root (or CA) certificates to trust. Required.
    intermediate_certs  PEM strings or paths of CA certificates clients may leave out (nginx
                        forwards only the leaf). Default none.
    ocsp_timeout        seconds per OCSP call (default 3). crl_timeout: per CRL download (default 5).
    require_ocsp        true: the leaf's status must come from OCSP, no CRL fallback (default false).
    trusted_proxies     IPs/CIDRs allowed to forward a client certificate (default none).
    key_storage         "hardware" (USB token/HSM: amr hwk, default), "smartcard" (amr hwk+sc)
                        or "software" (amr swk). RFC 8176 §2.
    clock_skew          seconds tolerated on validity and revocation times (default 60).

Error codes: cert_malformed, cert_untrusted, cert_expired, cert_wrong_usage, cert_revoked,
cert_no_national_id, bad_signature, challenge_expired, challenge_foreign_origin (a statement for
another site: a relay), challenge_other_request (another sign-in's statement), challenge_mismatch,
untrusted_proxy, upstream_unavailable.
"""

from __future__ import annotations

import binascii
import hashlib
import ipaddress
import json
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from connectors.base import (
    Assertion,
    ChallengeExpired,
    ConnectorContext,
    Health,
    InvalidCredentials,
    LevelOfAssurance,
    NotAllowed,
    VerifiedAttribute,
)
from connectors.certificate import signature, subject
from connectors.certificate.config import CertificateConfig
from connectors.certificate.statement import Statement, origin_of
from connectors.certificate.validation import CertificatePathValidator

CHALLENGE_TTL = 120
MAX_AGENT_RESPONSE = 64 * 1024  # a signed challenge with a chain of a few certificates is ~10 KB
MAX_CHAIN = 8
_AMR = {"hardware": ("hwk",), "smartcard": ("hwk", "sc"), "software": ("swk",)}


def _networks(values: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if isinstance(values, str):
        values = [values]
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in (values or ()))


class CertificateConnector:
    config_class = CertificateConfig
    display_name_vi = "Chứng thư số (chữ ký số)"
    display_name_en = "Digital signature certificate"

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.id = ctx.connector_id
        self.validator = CertificatePathValidator.from_config(ctx.config, clock=ctx.clock)
        self.trusted_proxies = _networks(ctx.config.get("trusted_proxies"))
        storage = str(ctx.config.get("key_storage", "hardware"))
        if storage not in _AMR:
            raise ValueError(f"certificate connector: key_storage must be one of {sorted(_AMR)}")
        self.amr = _AMR[storage]
        # The origin every statement names: the signing plug-in compares it with the page's.
        self.origin = origin_of(ctx.issuer) if ctx.issuer else ""

    # ---- signed challenge ------------------------------------------------------------------

    def _challenge_key(self, challenge: str) -> str:
        return f"cert-challenge:{self.id}:{hashlib.sha256(challenge.encode('utf-8')).hexdigest()}"

    def new_challenge(self, *, request: str, agency: str) -> str:
        """A fresh statement for the signing plug-in, bound to one pending request (`request`:
        its hash) and naming the `agency` signed in to; valid 120 s, usable once."""
        now = self.ctx.clock()
        statement = Statement.make(origin=self.origin, agency=agency, request=request, issued_at=now,
                                   ttl=CHALLENGE_TTL, nonce=secrets.token_urlsafe(32)).text()
        self.ctx.store.put(self._challenge_key(statement), {"expires_at": now + CHALLENGE_TTL}, CHALLENGE_TTL)
        return statement

    def _consume_challenge(self, signed: Mapping[str, Any], issued: str | None) -> tuple[str, str, str]:
        challenge, sig, alg = signed.get("challenge"), signed.get("signature"), signed.get("alg")
        if not all(isinstance(v, str) and v for v in (challenge, sig, alg)):
            raise InvalidCredentials("signed challenge needs challenge, signature and alg", code="bad_signature")
        # take(): of two submissions of one statement, one at most gets it, and a refusal burns
        # it too (the one issued to this request and the one presented), so a statement is
        # never worth a second guess.
        record = self.ctx.store.take(self._challenge_key(issued)) if issued else None
        if challenge != issued:
            self.ctx.store.take(self._challenge_key(challenge))
            raise self._mismatch(challenge, issued)
        if record is None or self.ctx.clock() >= record["expires_at"]:
            raise ChallengeExpired("statement unknown, expired or already used")
        return challenge, sig, alg

    def _mismatch(self, presented: str, issued: str | None) -> ChallengeExpired:
        """Why the signed text is not the statement this request was given (for the audit)."""
        try:
            theirs = Statement.parse(presented)
        except ValueError:
            return ChallengeExpired("the signed text is not a NIXA sign-in statement", code="challenge_mismatch")
        if theirs.origin != self.origin:
            return ChallengeExpired(f"the statement was made for {theirs.origin}, not this site", code="challenge_foreign_origin")
        try:
            ours = Statement.parse(issued or "")
        except ValueError:
            return ChallengeExpired("no statement was issued to this sign-in", code="challenge_expired")
        if theirs.request != ours.request:
            return ChallengeExpired("the statement belongs to another sign-in", code="challenge_other_request")
        return ChallengeExpired("the signed statement is not the one issued to this sign-in", code="challenge_mismatch")

    @staticmethod
    def parse_agent_response(text: str) -> tuple[list[bytes], dict[str, str]]:
        """What the sign-in page received (the signing plug-in's JSON, see agent.py) → the
        arguments of `authenticate`: the DER chain and the signed challenge."""
        if not isinstance(text, str) or len(text) > MAX_AGENT_RESPONSE:
            raise InvalidCredentials("the signing plug-in's answer is too large", code="cert_malformed")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested JSON
            raise InvalidCredentials("the signing plug-in's answer is not readable", code="cert_malformed") from exc
        raw_chain = data.get("certificate_chain") if isinstance(data, dict) else None
        if not isinstance(raw_chain, list) or not raw_chain or len(raw_chain) > MAX_CHAIN or not all(isinstance(c, str) for c in raw_chain):
            raise InvalidCredentials("the signing plug-in's answer has no certificate chain", code="cert_malformed")
        signed = {k: data.get(k) for k in ("challenge", "signature", "alg")}
        if not all(isinstance(v, str) and v for v in signed.values()):
            raise InvalidCredentials("the signing plug-in's answer is incomplete", code="cert_malformed")
        try:
            chain = [signature.b64decode_any(c) for c in raw_chain]
        except (ValueError, TypeError, binascii.Error) as exc:
            raise InvalidCredentials("the signing plug-in's answer is not readable", code="cert_malformed") from exc
        if not all(chain):
            raise InvalidCredentials("the signing plug-in's answer is incomplete", code="cert_malformed")
        return chain, signed

    # ---- the capability --------------------------------------------------------------------

    def authenticate(
        self,
        cert_chain: list[bytes],
        signed_challenge: Mapping[str, Any] | None,
        *,
        issued: str | None = None,
        remote_addr: str | None = None,
    ) -> Assertion:
        """`cert_chain`: DER, leaf first. `issued`: the statement this pending request was given
        (`new_challenge`), which `signed_challenge` must sign exactly. With `signed_challenge`
        None the certificate must come from mTLS at a trusted proxy: pass the proxy's address
        as `remote_addr`."""
        if signed_challenge is None:
            self._check_proxy(remote_addr)
            method = "mtls_proxy"
        else:
            leaf = self.validator.parse_leaf(cert_chain)
            challenge, sig, alg = self._consume_challenge(signed_challenge, issued)
            signature.verify(leaf.public_key(), alg, challenge.encode("utf-8"), sig)
            method = "signed_challenge"
        validated = self.validator.validate(list(cert_chain))
        return self._assertion(validated.leaf, method, validated.revocation_source)

    def from_proxy_header(self, header_value: str, remote_addr: str) -> Assertion:
        """mTLS at nginx: `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;` — the
        URL-encoded PEM of the client certificate (further PEM blocks, if any, are its chain)."""
        self._check_proxy(remote_addr)
        pem = urllib.parse.unquote(header_value or "").strip()
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise InvalidCredentials("no client certificate forwarded", code="cert_malformed")
        try:
            certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
        except ValueError as exc:
            raise InvalidCredentials(f"unreadable client certificate: {exc}", code="cert_malformed") from exc
        chain = [c.public_bytes(serialization.Encoding.DER) for c in certs]
        return self.authenticate(chain, None, remote_addr=remote_addr)

    def _check_proxy(self, remote_addr: str | None) -> None:
        try:
            address = ipaddress.ip_address((remote_addr or "").strip())
        except ValueError:
            raise NotAllowed("client certificate not forwarded by a trusted proxy", code="untrusted_proxy") from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not any(address in network for network in self.trusted_proxies):
            raise NotAllowed(f"{address} is not a trusted proxy", code="untrusted_proxy")

    def _assertion(self, leaf: x509.Certificate, method: str, revocation_source: str) -> Assertion:
        pin = subject.national_id(leaf)
        now = self.ctx.clock()
        thumbprint = subject.thumbprint_s256(leaf)
        issuer = leaf.issuer.rfc4514_string()
        values = {"national_id": pin, "name": subject.common_name(leaf), "x5t#S256": thumbprint, "cert_issuer": issuer}
        attributes = {k: VerifiedAttribute(k, v, self.id, now) for k, v in values.items() if v}
        return Assertion(
            connector_id=self.id,
            subject=pin,
            attributes=attributes,
            loa=LevelOfAssurance.HIGH,
            amr=self.amr,
            connector_data={
                "method": method,
                "serial": format(leaf.serial_number, "x"),
                "issuer": issuer,
                "not_after": leaf.not_valid_after_utc.isoformat(),
                "revocation_source": revocation_source,
                "x5t#S256": thumbprint,
            },
            authenticated_at=now,
        )

    # ---- admin -----------------------------------------------------------------------------

    def health(self) -> Health:
        now = self.ctx.clock()
        live = [a for a in self.validator.trust_anchors if a.not_valid_before_utc.timestamp() <= now < a.not_valid_after_utc.timestamp()]
        open_breakers = self.validator.open_breakers()
        # An open OCSP breaker alone is not down: the CRL fallback still answers.
        ok = bool(live)
        detail = f"{len(live)}/{len(self.validator.trust_anchors)} trust anchors valid"
        if open_breakers:
            detail += "; circuit open: " + ", ".join(open_breakers)
        return Health(ok=ok, detail=detail)

    def close(self) -> None:
        self.validator.close()
