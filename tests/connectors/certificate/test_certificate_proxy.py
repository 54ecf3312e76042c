"""mTLS terminated at nginx: the client certificate arrives in a header, from a trusted proxy only."""

from __future__ import annotations

import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from connectors.base import InvalidCredentials, LevelOfAssurance, NotAllowed
from connectors.certificate.pki import DEMO_PIN, TestPKI

PROXY_ADDR = "127.0.0.1"  # the trusted proxy in the connectors fixture (conftest)


def escaped_cert(pki: TestPKI, label: str, *, with_chain: bool = False) -> str:
    """What nginx puts in `$ssl_client_escaped_cert`: the URL-encoded PEM of the leaf."""
    pem = (pki.dir / "citizens" / f"{label}.pem").read_text()
    if with_chain:
        pem += pki.cert("ca").public_bytes(Encoding.PEM).decode()
    return urllib.parse.quote(pem, safe="")


@pytest.fixture
def proxied(connectors, pki):
    """A connector configured like production behind nginx: the CA certificate in config,
    because nginx forwards the leaf alone."""
    return connectors(intermediate_certs=[pki.cert("ca").public_bytes(Encoding.PEM).decode()])


def test_header_from_trusted_proxy_is_accepted(proxied, pki):
    assertion = proxied.from_proxy_header(escaped_cert(pki, "an"), PROXY_ADDR)
    assert assertion.subject == DEMO_PIN
    assert assertion.loa is LevelOfAssurance.HIGH
    assert assertion.connector_data["method"] == "mtls_proxy"


def test_chain_in_the_header_needs_no_configured_intermediates(connectors, pki):
    assertion = connectors().from_proxy_header(escaped_cert(pki, "binh", with_chain=True), PROXY_ADDR)
    assert assertion.subject == "001190000002"


def test_leaf_alone_without_configured_intermediates_has_no_path(connectors, pki):
    with pytest.raises(NotAllowed) as caught:
        connectors().from_proxy_header(escaped_cert(pki, "an"), PROXY_ADDR)
    assert caught.value.code == "cert_untrusted"


@pytest.mark.parametrize("address", ["10.20.5.6", "::ffff:127.0.0.1"])
def test_cidr_and_mapped_addresses(proxied, pki, address):
    assert proxied.from_proxy_header(escaped_cert(pki, "an"), address).subject == DEMO_PIN


@pytest.mark.parametrize("address", ["192.0.2.10", "10.21.0.1", "", "not-an-ip"])
def test_header_from_untrusted_address_is_refused(proxied, pki, sandbox, address):
    before = sandbox.stats()
    with pytest.raises(NotAllowed) as caught:
        proxied.from_proxy_header(escaped_cert(pki, "an"), address)
    assert caught.value.code == "untrusted_proxy"
    assert sandbox.stats() == before


def test_no_trusted_proxies_configured_refuses_everyone(connectors, pki):
    with pytest.raises(NotAllowed) as caught:
        connectors(trusted_proxies=[]).from_proxy_header(escaped_cert(pki, "an", with_chain=True), PROXY_ADDR)
    assert caught.value.code == "untrusted_proxy"


def test_certificate_without_signed_challenge_needs_a_trusted_proxy(proxied, pki):
    leaf = x509.load_pem_x509_certificate((pki.dir / "citizens" / "an.pem").read_bytes())
    with pytest.raises(NotAllowed) as caught:
        proxied.authenticate([leaf.public_bytes(Encoding.DER)], None)
    assert caught.value.code == "untrusted_proxy"
    assert proxied.authenticate([leaf.public_bytes(Encoding.DER)], None, remote_addr=PROXY_ADDR).subject == DEMO_PIN


def test_revoked_certificate_through_the_proxy(proxied, pki):
    with pytest.raises(NotAllowed) as caught:
        proxied.from_proxy_header(escaped_cert(pki, "cuong-revoked"), PROXY_ADDR)
    assert caught.value.code == "cert_revoked"


@pytest.mark.parametrize("header", ["", "-", "%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE%2D%2D%2D%2D%2D%0Agarbage"])
def test_missing_or_garbled_header(proxied, header):
    with pytest.raises(InvalidCredentials) as caught:
        proxied.from_proxy_header(header, PROXY_ADDR)
    assert caught.value.code == "cert_malformed"
