"""Certificate path validation (RFC 5280 §6) and revocation (RFC 6960 OCSP, CRL fallback).

The path, validity, key usage and the signatures on OCSP responses and CRLs are checked by
pyhanko-certvalidator; this module decides *when* revocation data is fetched and *how*:

1. Offline: build and validate the path to a configured trust anchor with revocation checking
   off, then check the leaf's key usage. A certificate that fails here never causes a network
   call, so an attacker cannot make NIXA fetch URLs of their choosing.
2. Fetch revocation data for every certificate of the validated path that declares some, through
   `ResilientHttp` (timeout, bounded retry, a circuit breaker per host): OCSP first (with a
   nonce, RFC 8954), the CRL when OCSP is unavailable (cached until its nextUpdate).
3. Validate the path again with that data as the only revocation source and revocation
   required for the leaf, so a response that is forged, stale or for another certificate fails.

Fail closed: if neither OCSP nor CRL answers, the login fails with `UpstreamUnavailable`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    RevokedError,
    ValidationError,
)
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (
    NO_REVOCATION,
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.validate import validate_usage

from connectors.base import InvalidCredentials, NotAllowed, UpstreamUnavailable
from connectors.resilience import ResilientHttp

T = TypeVar("T")

# What a citizen's signing certificate must allow. EKU is checked only when present (RFC 5280
# §4.2.1.12): a certificate that restricts its use must list clientAuth.
REQUIRED_KEY_USAGE = frozenset({"digital_signature"})
REQUIRED_EXTENDED_KEY_USAGE = frozenset({"client_auth"})
MAX_CHAIN_LENGTH = 8


@dataclass(frozen=True)
class ValidatedCertificate:
    leaf: x509.Certificate
    path: tuple[x509.Certificate, ...]  # trust anchor first, leaf last
    revocation_source: str  # "ocsp" or "crl": what vouched for the leaf


def load_certificates(sources: Iterable[str] | str | None) -> list[x509.Certificate]:
    """PEM strings (one or more certificates each) or paths to PEM/DER files."""
    if not sources:
        return []
    if isinstance(sources, str):
        sources = [sources]
    certs: list[x509.Certificate] = []
    for source in sources:
        if "-----BEGIN" in source:
            certs.extend(x509.load_pem_x509_certificates(source.encode("ascii")))
            continue
        data = Path(source).expanduser().read_bytes()
        if b"-----BEGIN" in data:
            certs.extend(x509.load_pem_x509_certificates(data))
        else:
            certs.append(x509.load_der_x509_certificate(data))
    return certs


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(_der(cert))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """pyhanko-certvalidator is async; the connector interface is not. With fetching disabled the
    coroutine does no I/O, so running it to completion here is cheap. Inside a running event loop
    (an async endpoint calling us directly) use a short-lived thread rather than nesting loops."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _urls(cert: x509.Certificate, kind: str) -> list[str]:
    try:
        if kind == "ocsp":
            aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
            names = [d.access_location for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP]
        else:
            cdp = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
            names = [n for point in cdp for n in (point.full_name or ())]
    except x509.ExtensionNotFound:
        return []
    # Only HTTP(S) locations: ldap:// CRL points, common at some CAs, are not fetched.
    return [n.value for n in names if isinstance(n, x509.UniformResourceIdentifier) and n.value.lower().startswith(("http://", "https://"))]


def has_revocation_pointers(cert: x509.Certificate) -> bool:
    return bool(_urls(cert, "ocsp") or _urls(cert, "crl"))


class CertificatePathValidator:
    """Validates a presented chain against the configured trust anchors, then its revocation."""

    def __init__(
        self,
        trust_anchors: list[x509.Certificate],
        *,
        intermediates: list[x509.Certificate] | None = None,
        clock: Callable[[], float] = time.time,
        ocsp_timeout: float = 3.0,
        crl_timeout: float = 5.0,
        require_ocsp: bool = False,
        time_tolerance: float = 60.0,
    ) -> None:
        if not trust_anchors:
            raise ValueError("certificate connector: no trust_anchors configured")
        self.trust_anchors = list(trust_anchors)
        self.intermediates = list(intermediates or [])
        self.clock = clock
        self.ocsp_timeout = ocsp_timeout
        self.crl_timeout = crl_timeout
        self.require_ocsp = require_ocsp
        self.time_tolerance = dt.timedelta(seconds=time_tolerance)
        self._clients: dict[tuple[str, str], ResilientHttp] = {}
        self._crl_cache: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], clock: Callable[[], float] = time.time) -> CertificatePathValidator:
        return cls(
            load_certificates(config.get("trust_anchors")),
            intermediates=load_certificates(config.get("intermediate_certs")),
            clock=clock,
            ocsp_timeout=float(config.get("ocsp_timeout", 3.0)),
            crl_timeout=float(config.get("crl_timeout", 5.0)),
            require_ocsp=bool(config.get("require_ocsp", False)),
            time_tolerance=float(config.get("clock_skew", 60.0)),
        )

    # ---- the one entry point ---------------------------------------------------------------

    def validate(self, chain: list[bytes]) -> ValidatedCertificate:
        """`chain`: leaf first, then any intermediates the client sent (DER)."""
        certs = self._parse(chain)
        leaf, presented = certs[0], certs[1:]
        path = self._validate_offline(leaf, presented)
        ocsps, crls, source = self._collect_revocation(path, use_ocsp=True)
        try:
            self._validate_revocation(leaf, presented, ocsps, crls)
        except _Unverifiable as exc:
            # An OCSP answer that does not hold up (forged, stale, responder certificate expired)
            # counts as no answer: try the CRLs, unless OCSP is required.
            if not ocsps or self.require_ocsp:
                raise UpstreamUnavailable(f"revocation status could not be established: {exc}") from exc
            ocsps, crls, source = self._collect_revocation(path, use_ocsp=False)
            try:
                self._validate_revocation(leaf, presented, ocsps, crls)
            except _Unverifiable as again:
                raise UpstreamUnavailable(f"revocation status could not be established: {again}") from again
        return ValidatedCertificate(leaf=leaf, path=tuple(self._path_certs(path)), revocation_source=source)

    def parse_leaf(self, chain: list[bytes]) -> x509.Certificate:
        return self._parse(chain)[0]

    def open_breakers(self) -> list[str]:
        with self._lock:
            return [client.name for client in self._clients.values() if client.breaker.state != "closed"]

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # ---- steps -----------------------------------------------------------------------------

    @staticmethod
    def _parse(chain: list[bytes]) -> list[x509.Certificate]:
        if not chain or len(chain) > MAX_CHAIN_LENGTH:
            raise InvalidCredentials("no certificate, or too long a chain", code="cert_malformed")
        try:
            return [x509.load_der_x509_certificate(bytes(der)) for der in chain]
        except (ValueError, TypeError) as exc:
            raise InvalidCredentials(f"unreadable certificate: {exc}", code="cert_malformed") from exc

    def _moment(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)

    def _context(self, presented: list[x509.Certificate], **kwargs: Any) -> ValidationContext:
        return ValidationContext(
            trust_roots=[_asn1(c) for c in self.trust_anchors],
            other_certs=[_asn1(c) for c in [*presented, *self.intermediates]],
            moment=self._moment(),
            time_tolerance=self.time_tolerance,
            allow_fetching=False,
            **kwargs,
        )

    def _validate_offline(self, leaf: x509.Certificate, presented: list[x509.Certificate]) -> ValidationPath:
        context = self._context(presented, revinfo_policy=CertRevTrustPolicy(NO_REVOCATION))
        validator = CertificateValidator(_asn1(leaf), validation_context=context)
        try:
            path = _run(validator.async_validate_path())
        except ValidationError as exc:
            raise _refusal(exc) from exc
        except PathBuildingError as exc:
            raise NotAllowed(f"no path to a trust anchor: {exc}", code="cert_untrusted") from exc
        except Exception as exc:  # noqa: BLE001 — a validator crash on a hostile chain is a refusal
            raise NotAllowed(f"the chain could not be validated: {type(exc).__name__}", code="cert_untrusted") from exc
        try:
            validate_usage(_asn1(leaf), set(REQUIRED_KEY_USAGE), set(REQUIRED_EXTENDED_KEY_USAGE), True)
        except InvalidCertificateError as exc:
            raise NotAllowed(str(exc), code="cert_wrong_usage") from exc
        return path

    def _path_certs(self, path: ValidationPath) -> list[x509.Certificate]:
        return [x509.load_der_x509_certificate(c.dump()) for c in path.iter_certs(include_root=True)]

    def _collect_revocation(self, path: ValidationPath, *, use_ocsp: bool) -> tuple[list[bytes], list[bytes], str]:
        certs = self._path_certs(path)
        ocsps: list[bytes] = []
        crls: list[bytes] = []
        leaf_source = ""
        # Leaf first: if its status cannot be had, there is no point asking about the CA.
        for position in range(len(certs) - 1, 0, -1):
            cert, issuer = certs[position], certs[position - 1]
            is_leaf = position == len(certs) - 1
            if not has_revocation_pointers(cert):
                if is_leaf:
                    raise NotAllowed("the certificate names no OCSP responder or CRL", code="cert_untrusted")
                continue  # RFC 5280 leaves CA revocation to the anchor's policy; checked when declared
            response = self._fetch_ocsp(cert, issuer) if use_ocsp else None
            if response is not None:
                ocsps.append(response)
                source = "ocsp"
            elif is_leaf and self.require_ocsp:
                if not _urls(cert, "ocsp"):
                    raise NotAllowed("require_ocsp is set and the certificate names no OCSP responder", code="cert_untrusted")
                raise UpstreamUnavailable("OCSP responder unavailable and require_ocsp is set")
            else:
                crl = self._fetch_crl(cert)
                if crl is None:
                    raise UpstreamUnavailable("revocation status unavailable: OCSP and CRL both unreachable")
                crls.append(crl)
                source = "crl"
            if is_leaf:
                leaf_source = source
        return ocsps, crls, leaf_source

    def _validate_revocation(self, leaf: x509.Certificate, presented: list[x509.Certificate], ocsps: list[bytes], crls: list[bytes]) -> None:
        ee_rule = RevocationCheckingRule.OCSP_REQUIRED if self.require_ocsp else RevocationCheckingRule.CRL_OR_OCSP_REQUIRED
        policy = CertRevTrustPolicy(RevocationCheckingPolicy(ee_rule, RevocationCheckingRule.CHECK_IF_DECLARED))
        context = self._context(presented, revinfo_policy=policy, ocsps=ocsps, crls=crls)
        validator = CertificateValidator(_asn1(leaf), validation_context=context)
        try:
            _run(validator.async_validate_path())
        except RevokedError as exc:
            raise NotAllowed(str(exc), code="cert_revoked") from exc
        except InsufficientRevinfoError as exc:
            raise _Unverifiable(str(exc)) from exc
        except ValidationError as exc:
            raise _refusal(exc) from exc
        except PathBuildingError as exc:
            raise NotAllowed(str(exc), code="cert_untrusted") from exc
        except Exception as exc:  # noqa: BLE001 — see below
            # pyhanko-certvalidator can fail with a bare AssertionError/ValueError on hostile
            # revocation data (e.g. an ECDSA-signed responder certificate under an RSA CA).
            # Whatever it is, the status was not established.
            raise _Unverifiable(f"revocation data could not be verified: {type(exc).__name__}") from exc

    # ---- fetching --------------------------------------------------------------------------

    def _client(self, kind: str, url: str) -> ResilientHttp:
        # One breaker per CA host: a sick responder at one CA must not shut out the others.
        origin = urllib.parse.urlsplit(url)._replace(path="", query="", fragment="").geturl()
        with self._lock:
            client = self._clients.get((kind, origin))
            if client is None:
                timeout = self.ocsp_timeout if kind == "ocsp" else self.crl_timeout
                client = self._clients[(kind, origin)] = ResilientHttp(timeout=timeout, retries=1, name=f"{kind} {origin}")
            return client

    def _fetch_ocsp(self, cert: x509.Certificate, issuer: x509.Certificate) -> bytes | None:
        for url in _urls(cert, "ocsp"):
            nonce = secrets.token_bytes(16)  # RFC 8954 §2.1: 1 to 32 octets
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(cert, issuer, hashes.SHA1())  # SHA-1 CertID: what every responder serves (RFC 5019 §2.1.1)
                .add_extension(x509.OCSPNonce(nonce), critical=False)
                .build()
            )
            try:
                # An OCSP POST is safe to repeat, so let ResilientHttp retry it.
                reply = self._client("ocsp", url).post(
                    url,
                    content=request.public_bytes(serialization.Encoding.DER),
                    headers={"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"},
                    retry=True,
                )
            except UpstreamUnavailable:
                continue
            if reply.status_code != 200:
                continue
            try:
                parsed = ocsp.load_der_ocsp_response(reply.content)
            except ValueError:
                continue
            if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                continue  # tryLater, internalError...: treat as unavailable
            try:
                echoed = parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            except x509.ExtensionNotFound:
                echoed = None  # pre-signed responses carry none; freshness is checked instead
            if echoed is not None and echoed != nonce:
                continue
            single = next((r for r in parsed.responses if r.serial_number == cert.serial_number), None)
            if single is None:
                continue
            if single.certificate_status == ocsp.OCSPCertStatus.UNKNOWN:
                # RFC 6960 §2.2: the CA's own responder does not know a certificate that chains to
                # the CA. Never fall back to a CRL here (it would not list it): refuse.
                raise NotAllowed("the issuing CA's OCSP responder does not know this certificate", code="cert_revoked")
            return reply.content
        return None

    def _fetch_crl(self, cert: x509.Certificate) -> bytes | None:
        now = self.clock()
        for url in _urls(cert, "crl"):
            with self._lock:
                cached = self._crl_cache.get(url)
            if cached and cached[1] > now:
                return cached[0]
            try:
                reply = self._client("crl", url).get(url)
            except UpstreamUnavailable:
                continue
            if reply.status_code != 200:
                continue
            data = reply.content
            try:
                crl = x509.load_der_x509_crl(data)
            except ValueError:
                try:
                    crl = x509.load_pem_x509_crl(data)
                except ValueError:
                    continue
                data = crl.public_bytes(serialization.Encoding.DER)
            next_update = crl.next_update_utc
            if next_update is not None and next_update.timestamp() > now:
                with self._lock:
                    self._crl_cache[url] = (data, next_update.timestamp())
            return data
        return None


class _Unverifiable(Exception):
    """Revocation data was fetched but does not establish a status."""


def _refusal(exc: ValidationError) -> NotAllowed:
    if isinstance(exc, (ExpiredError, NotYetValidError)):
        return NotAllowed(str(exc), code="cert_expired")
    if isinstance(exc, RevokedError):
        return NotAllowed(str(exc), code="cert_revoked")
    # Everything else — bad signature in the chain, a weak algorithm, a self-signed leaf, a CA
    # without keyCertSign, name constraints — means no trustworthy path.
    return NotAllowed(str(exc), code="cert_untrusted")
