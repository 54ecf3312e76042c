"""The sandbox speaks RFC 6960 and RFC 5280 as a CA's services do, checked with `cryptography`."""

from __future__ import annotations

import base64
import urllib.parse

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp


def ocsp_request(pki, label: str, nonce: bytes | None = None) -> bytes:
    leaf = x509.load_pem_x509_certificate((pki.dir / "citizens" / f"{label}.pem").read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, pki.cert("ca"), hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def post(sandbox, der: bytes) -> ocsp.OCSPResponse:
    reply = httpx.post(f"{sandbox.base_url}/ocsp", content=der, headers={"Content-Type": "application/ocsp-request"}, timeout=5)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(reply.content)


def test_good_response_is_signed_by_the_delegated_responder(pki, sandbox):
    response = post(sandbox, ocsp_request(pki, "an", nonce=b"0123456789abcdef"))
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    signer = response.certificates[0]
    assert signer.subject == pki.cert("ocsp-signer").subject
    assert x509.ExtendedKeyUsageOID.OCSP_SIGNING in signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    signer.public_key().verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
    signer.verify_directly_issued_by(pki.cert("ca"))
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    assert response.this_update_utc < response.next_update_utc


def test_revoked_response_carries_time_and_reason(pki, sandbox):
    response = post(sandbox, ocsp_request(pki, "cuong-revoked"))
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason == x509.ReasonFlags.key_compromise
    assert response.revocation_time_utc is not None


def test_get_form(pki, sandbox):
    encoded = urllib.parse.quote(base64.b64encode(ocsp_request(pki, "binh")).decode(), safe="")
    reply = httpx.get(f"{sandbox.base_url}/ocsp/{encoded}", timeout=5)
    assert ocsp.load_der_ocsp_response(reply.content).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_unknown_serial_and_foreign_issuer(pki, sandbox):
    for_an = ocsp.load_der_ocsp_request(ocsp_request(pki, "an"))
    unknown = ocsp.OCSPRequestBuilder().add_certificate_by_hash(for_an.issuer_name_hash, for_an.issuer_key_hash, 12345, hashes.SHA1()).build()
    assert post(sandbox, unknown.public_bytes(serialization.Encoding.DER)).certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    untrusted_leaf = x509.load_pem_x509_certificate((pki.dir / "citizens" / "giang-untrusted.pem").read_bytes())
    foreign = ocsp.OCSPRequestBuilder().add_certificate(untrusted_leaf, pki.cert("untrusted-root-ca"), hashes.SHA1()).build()
    assert post(sandbox, foreign.public_bytes(serialization.Encoding.DER)).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert post(sandbox, b"garbage").response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_crls_are_signed_and_list_the_revoked(pki, sandbox):
    reply = httpx.get(f"{sandbox.base_url}/crl/ca.crl", timeout=5)
    assert reply.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(reply.content)
    assert crl.is_signature_valid(pki.cert("ca").public_key())
    assert crl.get_revoked_certificate_by_serial_number(int(pki.by_label("cuong-revoked")["serial"], 16)) is not None
    assert crl.get_revoked_certificate_by_serial_number(int(pki.by_label("an")["serial"], 16)) is None
    root_crl = x509.load_der_x509_crl(httpx.get(f"{sandbox.base_url}/crl/root.crl", timeout=5).content)
    assert root_crl.is_signature_valid(pki.cert("root-ca").public_key())
    assert httpx.get(f"{sandbox.base_url}/crl/ca.crt", timeout=5).content == pki.cert("ca").public_bytes(serialization.Encoding.DER)


def test_faults(pki, sandbox):
    sandbox.faults(ocsp_down=True, crl_down=True)
    assert httpx.post(f"{sandbox.base_url}/ocsp", content=ocsp_request(pki, "an"), headers={"Content-Type": "application/ocsp-request"}, timeout=5).status_code == 503
    assert httpx.get(f"{sandbox.base_url}/crl/ca.crl", timeout=5).status_code == 503
    sandbox.faults(ocsp_try_later=True)
    assert post(sandbox, ocsp_request(pki, "an")).response_status == ocsp.OCSPResponseStatus.TRY_LATER
    sandbox.faults()
    assert post(sandbox, ocsp_request(pki, "an")).certificate_status == ocsp.OCSPCertStatus.GOOD
