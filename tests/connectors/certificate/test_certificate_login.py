"""Sign-in with a signed statement: the happy paths, each refusal code, and the statement rules
(the statement's binding to its origin and request: test_certificate_statement.py)."""

from __future__ import annotations

import base64
import json

import pytest
import typer
from typer.testing import CliRunner

from connectors.base import ChallengeExpired, InvalidCredentials, LevelOfAssurance, NotAllowed
from connectors.certificate import cli
from connectors.certificate.agent import sign_challenge
from connectors.certificate.connector import CHALLENGE_TTL, CertificateConnector
from connectors.certificate.pki import DEMO_NAME, DEMO_PASSWORD, DEMO_PIN, TestPKI
from tests.connectors.certificate.conftest import ISSUER


def sign(pki: TestPKI, label: str, challenge: str, alg: str | None = None) -> tuple[list[bytes], dict]:
    answer = sign_challenge(pki.p12_path(label), DEMO_PASSWORD, challenge, alg)
    return CertificateConnector.parse_agent_response(json.dumps(answer))


def issue(connector: CertificateConnector, request: str = "sha256:request-a") -> str:
    return connector.new_challenge(request=request, agency="Cổng dịch vụ công quốc gia")


def login(connector: CertificateConnector, pki: TestPKI, label: str, alg: str | None = None):
    issued = issue(connector)
    chain, signed = sign(pki, label, issued, alg)
    return connector.authenticate(chain, signed, issued=issued)


def test_demo_citizen_signs_in_at_high_with_the_personal_id(connectors, pki, sandbox):
    before = sandbox.stats()["ocsp"]
    assertion = login(connectors(), pki, "an")
    assert assertion.subject == DEMO_PIN
    assert assertion.national_id == DEMO_PIN
    assert assertion.value("name") == DEMO_NAME
    assert assertion.loa is LevelOfAssurance.HIGH
    assert assertion.amr == ("hwk",)
    assert assertion.connector_id == "certificate"
    assert "VNPT-CA TEST" in assertion.value("cert_issuer")
    thumbprint = assertion.value("x5t#S256")
    assert len(base64.urlsafe_b64decode(thumbprint + "=")) == 32
    assert assertion.connector_data["method"] == "signed_challenge"
    assert assertion.connector_data["revocation_source"] == "ocsp"
    assert assertion.attributes["national_id"].source == "certificate"
    assert sandbox.stats()["ocsp"] == before + 1


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_rsa_algorithms(connectors, pki, alg):
    assert login(connectors(), pki, "an", alg).subject == DEMO_PIN


def test_ec_key_and_serial_number_subject(connectors, pki):
    assertion = login(connectors(), pki, "binh")
    assert assertion.subject == "001190000002"
    assert assertion.value("name") == "Trần Thị Bình"


def test_software_key_storage_reports_swk(connectors, pki):
    assert login(connectors(key_storage="software"), pki, "an").amr == ("swk",)


def test_revoked_certificate_refused_by_ocsp(connectors, pki):
    with pytest.raises(NotAllowed) as caught:
        login(connectors(), pki, "cuong-revoked")
    assert caught.value.code == "cert_revoked"
    assert "OCSP" in str(caught.value)


@pytest.mark.parametrize(
    ("label", "code"),
    [("dung-expired", "cert_expired"), ("em-wrong-usage", "cert_wrong_usage"), ("giang-untrusted", "cert_untrusted")],
)
def test_refused_before_any_revocation_fetch(connectors, pki, sandbox, label, code):
    before = sandbox.stats()
    with pytest.raises(NotAllowed) as caught:
        login(connectors(), pki, label)
    assert caught.value.code == code
    # Revocation is asked only once the chain validates: nothing reached the CA's services.
    assert sandbox.stats() == before


def test_certificate_not_yet_valid_is_refused_as_expired(connectors, pki):
    connectors.clock.offset = -10 * 365 * 86400  # before the citizen (and the CAs) existed
    with pytest.raises(NotAllowed) as caught:
        login(connectors(), pki, "an")
    assert caught.value.code == "cert_expired"


def test_challenge_cannot_be_replayed(connectors, pki):
    connector = connectors()
    issued = issue(connector)
    chain, signed = sign(pki, "an", issued)
    assert connector.authenticate(chain, signed, issued=issued).subject == DEMO_PIN
    with pytest.raises(ChallengeExpired):
        connector.authenticate(chain, signed, issued=issued)


def test_challenge_expires_after_its_ttl(connectors, pki):
    connector = connectors()
    issued = issue(connector)
    chain, signed = sign(pki, "an", issued)
    connectors.clock.offset = CHALLENGE_TTL + 1
    with pytest.raises(ChallengeExpired):
        connector.authenticate(chain, signed, issued=issued)


def test_challenge_we_never_issued_is_refused(connectors, pki):
    connector = connectors()
    chain, signed = sign(pki, "an", "nixa-login:made-up-by-the-client")
    with pytest.raises(ChallengeExpired):
        connector.authenticate(chain, signed, issued=signed["challenge"])


def test_challenge_issued_by_another_connector_instance_store_is_refused(connectors, pki):
    chain, signed = sign(pki, "an", issue(connectors()))
    with pytest.raises(ChallengeExpired):
        connectors().authenticate(chain, signed, issued=signed["challenge"])  # another store: never issued there


def test_signature_over_other_bytes_is_refused(connectors, pki):
    connector = connectors()
    issued = issue(connector)
    chain, signed = sign(pki, "an", issue(connector))
    signed["challenge"] = issued  # a real, unused statement — but not what was signed
    with pytest.raises(InvalidCredentials) as caught:
        connector.authenticate(chain, signed, issued=issued)
    assert caught.value.code == "bad_signature"


def test_signature_by_another_key_is_refused(connectors, pki):
    connector = connectors()
    challenge = issue(connector)
    an_chain, _ = sign(pki, "an", challenge)
    _, by_cuong = sign(pki, "cuong-revoked", challenge)  # valid RSA signature, wrong key
    with pytest.raises(InvalidCredentials) as caught:
        connector.authenticate(an_chain, by_cuong, issued=challenge)
    assert caught.value.code == "bad_signature"


def test_tampered_signature_is_refused_and_burns_the_challenge(connectors, pki):
    connector = connectors()
    issued = issue(connector)
    chain, signed = sign(pki, "binh", issued)
    raw = bytearray(base64.b64decode(signed["signature"]))
    raw[5] ^= 0x01
    tampered = dict(signed, signature=base64.b64encode(bytes(raw)).decode())
    with pytest.raises(InvalidCredentials):
        connector.authenticate(chain, tampered, issued=issued)
    with pytest.raises(ChallengeExpired):
        connector.authenticate(chain, signed, issued=issued)  # the genuine one comes too late: single use


def test_algorithm_must_match_the_key(connectors, pki):
    connector = connectors()
    issued = issue(connector)
    chain, signed = sign(pki, "an", issued)
    with pytest.raises(InvalidCredentials) as caught:
        connector.authenticate(chain, dict(signed, alg="ES256"), issued=issued)
    assert caught.value.code == "bad_signature"


def test_der_ecdsa_signature_is_accepted(connectors, pki):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12

    connector = connectors()
    challenge = issue(connector)
    chain, signed = sign(pki, "binh", challenge)
    key = pkcs12.load_pkcs12(pki.p12_path("binh").read_bytes(), DEMO_PASSWORD.encode()).key
    der = key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256()))
    assert connector.authenticate(chain, dict(signed, signature=base64.b64encode(der).decode()), issued=challenge).subject == "001190000002"


def test_garbage_chain_is_malformed(connectors):
    with pytest.raises(InvalidCredentials) as caught:
        connectors().authenticate([b"not a certificate"], {"challenge": "x", "signature": "eA==", "alg": "RS256"})
    assert caught.value.code == "cert_malformed"
    with pytest.raises(InvalidCredentials):
        CertificateConnector.parse_agent_response("{not json")


def test_signing_agent_command_output_is_accepted(connectors, pki):
    """`nixa sign` as the lead mounts it: its printed JSON is what the page pastes back."""
    root = typer.Typer()
    root.add_typer(cli.app, name="pki")
    root.command("sign")(cli.sign)
    connector = connectors()
    challenge = issue(connector)
    result = CliRunner().invoke(root, ["sign", "--p12", str(pki.p12_path("an")), "--password", DEMO_PASSWORD, "--origin", ISSUER,
                                       "--challenge", challenge, "--yes"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {"challenge", "signature", "alg", "certificate_chain"}
    assert printed["challenge"] == challenge and printed["alg"] == "RS256"
    assert len(printed["certificate_chain"]) == 2  # leaf + issuing CA, root left out
    chain, signed = CertificateConnector.parse_agent_response(result.stdout)
    assert connector.authenticate(chain, signed, issued=challenge).national_id == DEMO_PIN


def test_signing_agent_rejects_a_wrong_password(connectors, pki):
    root = typer.Typer()
    root.command("sign")(cli.sign)
    root.command("noop")(lambda: None)
    statement = issue(connectors())
    result = CliRunner().invoke(root, ["sign", "--p12", str(pki.p12_path("an")), "--password", "wrong", "--origin", ISSUER,
                                       "--challenge", statement, "--yes"])
    assert result.exit_code == 1 and not result.stdout


def test_health(connectors):
    health = connectors().health()
    assert health.ok and "1/1 trust anchors" in health.detail
