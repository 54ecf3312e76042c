"""Stand-in for a Vietnamese CA's revocation services: an RFC 6960 OCSP responder and a CRL host.

    python -m connectors.certificate.sandbox --host 127.0.0.1 --port 8790 --pki DIR

Routes
    POST /ocsp                    OCSP request (application/ocsp-request), RFC 6960 §A.1
    GET  /ocsp/{base64 request}   the GET form, RFC 6960 §A.1 (URL-encoded base64 of the DER)
    GET  /crl/ca.crl              the issuing CA's CRL (DER, application/pkix-crl)
    GET  /crl/root.crl            the root's CRL (covers the issuing CA)
    GET  /crl/ca.crt              the issuing CA certificate (AIA caIssuers)
    GET  /health
    POST /_sandbox/faults         {"ocsp_down": bool, "ocsp_try_later": bool, "ocsp_delay": seconds,
                                   "ocsp_rogue_signer": bool, "crl_down": bool} — replaces every
                                   fault; {} clears them. ocsp_rogue_signer answers "good" signed
                                   by a key the CA never delegated (a forged response).
    GET  /_sandbox/stats          {"ocsp": n, "crl": n} requests served since start

Responses are signed by the delegated OCSP signer (ocsp-signer.pem, issued by the CA with
id-kp-OCSPSigning and id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2). Status comes from index.json,
re-read whenever `nixa pki revoke` rewrites it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.certificate.pki import TestPKI

OCSP_VALIDITY = dt.timedelta(hours=1)
# Back-date thisUpdate a little: relying parties with a slightly slow clock must not see
# a response from the future (a common responder practice).
OCSP_BACKDATE = dt.timedelta(minutes=1)
CRL_REFRESH_MARGIN = dt.timedelta(minutes=10)

_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}


class RevocationAuthority:
    """What the responder knows: the issuing CA, its signer and the status of every serial."""

    def __init__(self, pki_dir: str | Path) -> None:
        self.pki = TestPKI(pki_dir)
        self.ca_cert = self.pki.cert("ca")
        self.signer_cert = self.pki.cert("ocsp-signer")
        self.signer_key = self.pki.key("ocsp-signer")
        ca_asn1 = asn1_x509.Certificate.load(self.ca_cert.public_bytes(serialization.Encoding.DER))
        # RFC 6960 §4.1.1 CertID: hash of the issuer's DER name and of its public key BIT STRING.
        self._issuer_hashes = {
            name: (fn(ca_asn1.subject.dump()).digest(), fn(bytes(ca_asn1.public_key["public_key"])).digest())
            for name, fn in _HASHES.items()
        }
        self._lock = threading.Lock()
        self._index_mtime = -1
        self._status: dict[int, dict[str, Any]] = {}
        self._rogue_signer: tuple[x509.Certificate, Any] | None = None

    def _statuses(self) -> dict[int, dict[str, Any]]:
        path = self.pki.dir / "index.json"
        with self._lock:
            mtime = path.stat().st_mtime_ns
            if mtime != self._index_mtime:
                self._status = {int(r["serial"], 16): r for r in self.pki.records() if r["issuer"] == "ca"}
                self._index_mtime = mtime
            return self._status

    def _rogue(self) -> tuple[x509.Certificate, Any]:
        """A forged delegation: the real signer's and CA's names, but signed by a key of its own."""
        if self._rogue_signer is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            now = dt.datetime.now(dt.timezone.utc)
            cert = (
                x509.CertificateBuilder()
                .subject_name(self.signer_cert.subject)
                .issuer_name(self.ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
                .sign(key, hashes.SHA256())
            )
            self._rogue_signer = (cert, key)
        return self._rogue_signer

    def respond(self, der: bytes, *, rogue: bool = False) -> bytes:
        try:
            request = ocsp.load_der_ocsp_request(der)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(serialization.Encoding.DER)
        expected = self._issuer_hashes.get(request.hash_algorithm.name)
        if expected != (request.issuer_name_hash, request.issuer_key_hash):
            # RFC 6960 §2.3: not a CA this responder serves.
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER)

        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        record = self._statuses().get(request.serial_number)
        revocation_time = revocation_reason = None
        if record is None:
            status = ocsp.OCSPCertStatus.UNKNOWN
        elif record["status"] == "revoked" and not rogue:
            status = ocsp.OCSPCertStatus.REVOKED
            revocation_time = dt.datetime.fromisoformat(record["revoked_at"])
            revocation_reason = x509.ReasonFlags[record["reason"]]
        else:
            status = ocsp.OCSPCertStatus.GOOD
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash,
                issuer_key_hash=request.issuer_key_hash,
                serial_number=request.serial_number,
                algorithm=request.hash_algorithm,
                cert_status=status,
                this_update=now - OCSP_BACKDATE,
                next_update=now + OCSP_VALIDITY,
                revocation_time=revocation_time,
                revocation_reason=revocation_reason,
            )
        )
        signer_cert, signer_key = self._rogue() if rogue else (self.signer_cert, self.signer_key)
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert).certificates([signer_cert])
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                builder = builder.add_extension(extension.value, critical=False)  # RFC 8954 echo
        return builder.sign(signer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def crl(self, which: str) -> bytes:
        """The CRL file, re-issued first when it nears nextUpdate (as a CA publishes periodically)."""
        path = self.pki.dir / "crl" / f"{which}.crl"
        with self._lock:
            current = x509.load_der_x509_crl(path.read_bytes())
            next_update = current.next_update_utc
            if next_update is None or next_update - CRL_REFRESH_MARGIN <= dt.datetime.now(dt.timezone.utc):
                self.pki.write_crls()
            return path.read_bytes()


def create_app(pki_dir: str | Path) -> Starlette:
    authority = RevocationAuthority(pki_dir)
    faults: dict[str, Any] = {}
    stats = {"ocsp": 0, "crl": 0}

    async def ocsp_answer(der: bytes) -> Response:
        stats["ocsp"] += 1
        delay = float(faults.get("ocsp_delay") or 0)
        if delay > 0:
            await asyncio.sleep(min(delay, 30.0))
        if faults.get("ocsp_down"):
            return Response("OCSP responder unavailable", status_code=503)
        if faults.get("ocsp_try_later"):
            body = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(serialization.Encoding.DER)
        else:
            body = authority.respond(der, rogue=bool(faults.get("ocsp_rogue_signer")))
        return Response(body, media_type="application/ocsp-response", headers={"Cache-Control": "no-store"})

    async def ocsp_post(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/ocsp-request":
            return Response("expected application/ocsp-request", status_code=415)
        return await ocsp_answer(await request.body())

    async def ocsp_get(request: Request) -> Response:
        encoded = urllib.parse.unquote(request.path_params["encoded"])
        try:
            der = base64.b64decode(encoded, validate=True)
        except ValueError:
            der = b""
        return await ocsp_answer(der)

    async def crl(request: Request) -> Response:
        stats["crl"] += 1
        if faults.get("crl_down"):
            return Response("CRL distribution point unavailable", status_code=503)
        which = request.path_params["which"]
        if which not in ("ca", "root"):
            return Response(status_code=404)
        return Response(authority.crl(which), media_type="application/pkix-crl")

    async def ca_cert(_: Request) -> Response:
        return Response(authority.ca_cert.public_bytes(serialization.Encoding.DER), media_type="application/pkix-cert")

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "ca": authority.ca_cert.subject.rfc4514_string()})

    async def set_faults(request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        faults.clear()
        faults.update({k: body[k] for k in ("ocsp_down", "ocsp_try_later", "ocsp_delay", "ocsp_rogue_signer", "crl_down") if k in body})
        return JSONResponse(faults)

    async def get_stats(_: Request) -> Response:
        return JSONResponse(stats)

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/ocsp", ocsp_post, methods=["POST"]),
            Route("/ocsp/{encoded:path}", ocsp_get, methods=["GET"]),
            Route("/crl/ca.crt", ca_cert),
            Route("/crl/{which}.crl", crl),
            Route("/_sandbox/faults", set_faults, methods=["POST"]),
            Route("/_sandbox/stats", get_stats),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="NIXA certificate sandbox: OCSP responder and CRL host")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--pki", required=True, help="PKI directory made by `nixa pki init`")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.pki), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
