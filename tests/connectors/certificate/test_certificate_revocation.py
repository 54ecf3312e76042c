"""Revocation: OCSP first, the CRL when OCSP is unavailable, fail closed when neither answers."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID
from typer.testing import CliRunner

from connectors.base import NotAllowed, UpstreamUnavailable
from connectors.certificate import cli
from connectors.certificate.pki import DEMO_PIN

from .test_certificate_login import login


def test_ocsp_down_falls_back_to_the_crl(connectors, pki, sandbox):
    sandbox.faults(ocsp_down=True)
    assertion = login(connectors(), pki, "an")
    assert assertion.subject == DEMO_PIN
    assert assertion.connector_data["revocation_source"] == "crl"
    with pytest.raises(NotAllowed) as caught:
        login(connectors(), pki, "cuong-revoked")
    assert caught.value.code == "cert_revoked"
    assert "CRL" in str(caught.value)


def test_ocsp_try_later_falls_back_to_the_crl(connectors, pki, sandbox):
    sandbox.faults(ocsp_try_later=True)
    assert login(connectors(), pki, "binh").connector_data["revocation_source"] == "crl"


def test_slow_ocsp_times_out_and_falls_back(connectors, pki, sandbox):
    sandbox.faults(ocsp_delay=1.5)
    assertion = login(connectors(ocsp_timeout=0.3), pki, "an")
    assert assertion.connector_data["revocation_source"] == "crl"


def test_both_down_fails_closed(connectors, pki, sandbox):
    sandbox.faults(ocsp_down=True, crl_down=True)
    with pytest.raises(UpstreamUnavailable):
        login(connectors(), pki, "an")
    with pytest.raises(UpstreamUnavailable):
        login(connectors(), pki, "cuong-revoked")


def test_require_ocsp_refuses_the_crl_fallback(connectors, pki, sandbox):
    sandbox.faults(ocsp_down=True)
    with pytest.raises(UpstreamUnavailable):
        login(connectors(require_ocsp=True), pki, "an")


def test_crl_is_cached_until_next_update(connectors, pki, sandbox):
    sandbox.faults(ocsp_down=True)
    connector = connectors()
    login(connector, pki, "an")
    fetched = sandbox.stats()["crl"]
    login(connector, pki, "binh")
    with pytest.raises(NotAllowed):
        login(connector, pki, "cuong-revoked")
    assert sandbox.stats()["crl"] == fetched
    # Past nextUpdate (24 h) the cached CRL is no longer used: it is fetched again.
    connectors.clock.offset = 25 * 3600
    sandbox.faults(ocsp_down=True, crl_down=True)
    with pytest.raises(UpstreamUnavailable):
        login(connector, pki, "an")


def test_forged_ocsp_good_is_not_believed(connectors, pki, sandbox):
    """A "good" signed by a key the CA never delegated: the CRL decides, and says revoked."""
    sandbox.faults(ocsp_rogue_signer=True)
    with pytest.raises(NotAllowed) as caught:
        login(connectors(), pki, "cuong-revoked")
    assert caught.value.code == "cert_revoked"
    sandbox.faults(ocsp_rogue_signer=True, crl_down=True)
    with pytest.raises(UpstreamUnavailable):
        login(connectors(), pki, "cuong-revoked")


def test_revoke_command_takes_effect_at_the_responder(connectors, pki, sandbox):
    root = typer.Typer()
    root.add_typer(cli.app, name="pki")
    runner = CliRunner()
    issued = runner.invoke(root, ["pki", "issue", str(pki.dir), "--pin", "079200012345", "--name", "Đỗ Thị Hương", "--label", "huong"])
    assert issued.exit_code == 0, issued.output
    serial = pki.by_label("huong")["serial"]
    assert login(connectors(), pki, "huong").subject == "079200012345"

    revoked = runner.invoke(root, ["pki", "revoke", str(pki.dir), serial, "--reason", "key_compromise"])
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(NotAllowed) as by_ocsp:
        login(connectors(), pki, "huong")
    assert by_ocsp.value.code == "cert_revoked"
    sandbox.faults(ocsp_down=True)  # the re-issued CRL lists it too
    with pytest.raises(NotAllowed) as by_crl:
        login(connectors(), pki, "huong")
    assert by_crl.value.code == "cert_revoked"
    listed = runner.invoke(root, ["pki", "list", str(pki.dir)])
    assert serial in listed.output and "revoked" in listed.output


def test_issue_command_refuses_a_bad_pin(pki):
    root = typer.Typer()
    root.add_typer(cli.app, name="pki")
    result = CliRunner().invoke(root, ["pki", "issue", str(pki.dir), "--pin", "12345", "--name", "X"])
    assert result.exit_code == 1


def test_certificate_unknown_to_the_responder_is_refused(connectors, pki):
    """Signed with the CA's key but never recorded (as with a stolen key): OCSP says unknown,
    and we refuse rather than fall back to a CRL that could not list it."""
    ca, genuine = pki.cert("ca"), x509.load_pem_x509_certificate((pki.dir / "citizens" / "an.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    for extension in genuine.extensions:
        if extension.oid != ExtensionOID.SUBJECT_KEY_IDENTIFIER:
            builder = builder.add_extension(extension.value, extension.critical)
    forged = builder.sign(pki.key("ca"), hashes.SHA256())

    connector = connectors()
    challenge = connector.new_challenge(request="sha256:forged", agency="Cổng dịch vụ công")
    signature = base64.b64encode(key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256()))).decode()
    chain = [forged.public_bytes(Encoding.DER), ca.public_bytes(Encoding.DER)]
    with pytest.raises(NotAllowed) as caught:
        connector.authenticate(chain, {"challenge": challenge, "alg": "ES256", "signature": signature}, issued=challenge)
    assert caught.value.code == "cert_revoked"
    assert "does not know" in str(caught.value)
