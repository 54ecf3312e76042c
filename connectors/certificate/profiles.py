"""Certificate profiles of the test PKI: what each kind of certificate carries (RFC 5280 §4.2).

Modelled on a licensed Vietnamese CA: an offline root, an issuing CA whose revocation the root's
CRL covers, a delegated OCSP responder, and citizen signing certificates with the personal ID
number in the subject (`UID=CCCD:<12 digits>`), keyUsage digitalSignature + nonRepudiation and
extendedKeyUsage clientAuth + emailProtection, pointing at the CA's OCSP responder and CRL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

ROOT_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NIXA Test PKI (not for production)"),
        x509.NameAttribute(NameOID.COMMON_NAME, "NIXA Test Root CA"),
    ]
)
CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NIXA Sandbox - VNPT Group TEST"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "VNPT-CA Trust Network TEST"),
        x509.NameAttribute(NameOID.COMMON_NAME, "VNPT-CA TEST (NIXA sandbox, not a real CA)"),
    ]
)
OCSP_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NIXA Sandbox - VNPT Group TEST"),
        x509.NameAttribute(NameOID.COMMON_NAME, "VNPT-CA TEST OCSP Responder"),
    ]
)
UNTRUSTED_ROOT_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NIXA Test PKI (untrusted)"),
        x509.NameAttribute(NameOID.COMMON_NAME, "NIXA Untrusted Test Root CA"),
    ]
)


def _key_usage(*, signing: bool = False, non_repudiation: bool = False, encipherment: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing, content_commitment=non_repudiation, key_encipherment=encipherment,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )


def _uri(url: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(url)


def _crl_points(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint([_uri(url)], None, None, None)])


def _base(subject: x509.Name, issuer: x509.Name, key: Any, issuer_key: Any, not_before: dt.datetime, not_after: dt.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )


def root_ca(name: x509.Name, key: Any, not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    return (
        _base(name, name, key, key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, hashes.SHA256())
    )


def issuing_ca(key: Any, root: x509.Certificate, root_key: Any, not_before: dt.datetime, not_after: dt.datetime, crl_url: str) -> x509.Certificate:
    return (
        _base(CA_NAME, root.subject, key, root_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(_crl_points(f"{crl_url}/root.crl"), critical=False)
        .sign(root_key, hashes.SHA256())
    )


def ocsp_signer(key: Any, ca: x509.Certificate, ca_key: Any, not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    # RFC 6960 §4.2.2.2 delegated responder; id-pkix-ocsp-nocheck (§4.2.2.2.1): no status for it.
    return (
        _base(OCSP_NAME, ca.subject, key, ca_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def citizen(
    *,
    name: str,
    pin: str,
    key: Any,
    issuer: x509.Certificate,
    issuer_key: Any,
    not_before: dt.datetime,
    not_after: dt.datetime,
    ocsp_url: str,
    crl_url: str,
    id_attribute: str = "uid",
    signing: bool = True,
    province: str = "Hà Nội",
    email: str | None = None,
) -> x509.Certificate:
    """`signing=False` makes the wrong-usage profile: keyEncipherment only, no clientAuth."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, province),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.USER_ID if id_attribute == "uid" else NameOID.SERIAL_NUMBER, f"CCCD:{pin}"),
        ]
    )
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION] if signing else [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    builder = (
        _base(subject, issuer.subject, key, issuer_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=signing, non_repudiation=signing, encipherment=not signing), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(AuthorityInformationAccessOID.OCSP, _uri(ocsp_url)),
                    x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, _uri(f"{crl_url}/ca.crt")),
                ]
            ),
            critical=False,
        )
        .add_extension(_crl_points(f"{crl_url}/ca.crl"), critical=False)
    )
    if email:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())
