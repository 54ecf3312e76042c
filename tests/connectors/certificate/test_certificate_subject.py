"""Reading the personal ID number out of the subject as Vietnamese CAs write it."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.base import InvalidCredentials, NotAllowed
from connectors.certificate import signature, subject

KEY = ec.generate_private_key(ec.SECP256R1())


def cert_with(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"), x509.NameAttribute(NameOID.COMMON_NAME, "Nguyễn Văn An")]
                     + [x509.NameAttribute(oid, value) for oid, value in attributes])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )


@pytest.mark.parametrize(
    "attributes",
    [
        [(NameOID.USER_ID, "CCCD:001090000001")],
        [(NameOID.USER_ID, "cccd: 001090000001")],
        [(NameOID.USER_ID, "CMND:001090000001")],  # 12-digit numbers printed under the old label
        [(NameOID.SERIAL_NUMBER, "CCCD:001090000001")],
        [(NameOID.SERIAL_NUMBER, "IDCVN-001090000001")],  # ETSI EN 319 412-1 semantics identifier
        [(NameOID.SERIAL_NUMBER, "001090000001")],
        [(NameOID.USER_ID, "MST:0101234567"), (NameOID.USER_ID, "CCCD:001090000001")],  # org + person
        [(NameOID.USER_ID, "CCCD:001090000001"), (NameOID.SERIAL_NUMBER, "CCCD:001090000001")],
    ],
)
def test_personal_id_forms(attributes):
    assert subject.national_id(cert_with(*attributes)) == "001090000001"


@pytest.mark.parametrize(
    "attributes",
    [
        [],
        [(NameOID.USER_ID, "MST:0101234567")],  # an organisation
        [(NameOID.USER_ID, "CMND:012345678")],  # 9-digit old ID card: not a personal ID number
        [(NameOID.USER_ID, "HC:C1234567")],  # passport
        [(NameOID.USER_ID, "CCCD:001090000001"), (NameOID.SERIAL_NUMBER, "CCCD:001090000002")],  # ambiguous
    ],
)
def test_no_single_personal_id_is_refused(attributes):
    with pytest.raises(NotAllowed) as caught:
        subject.national_id(cert_with(*attributes))
    assert caught.value.code == "cert_no_national_id"


def test_name_and_thumbprint():
    cert = cert_with((NameOID.USER_ID, "CCCD:001090000001"))
    assert subject.common_name(cert) == "Nguyễn Văn An"
    assert len(subject.thumbprint_s256(cert)) == 43 and "=" not in subject.thumbprint_s256(cert)


def test_signature_rejects_unknown_alg_and_bad_base64():
    with pytest.raises(InvalidCredentials):
        signature.verify(KEY.public_key(), "HS256", b"x", "AAAA")
    with pytest.raises(InvalidCredentials):
        signature.verify(KEY.public_key(), "ES256", b"x", "***")
    with pytest.raises(InvalidCredentials):
        signature.verify(KEY.public_key(), "ES384", b"x", "AAAA")  # P-256 key, P-384 alg
