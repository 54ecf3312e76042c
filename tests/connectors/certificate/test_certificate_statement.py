"""The signed statement binds a certificate signature to NIXA's origin, to one pending request
and to an expiry: a phishing page relaying the victim's signature gets nothing (issue 7, item 4)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from connectors.base import ChallengeExpired
from connectors.certificate import cli
from connectors.certificate.agent import sign_challenge
from connectors.certificate.connector import CHALLENGE_TTL, CertificateConnector
from connectors.certificate.pki import DEMO_PASSWORD, DEMO_PIN, TestPKI
from connectors.certificate.statement import HEADER, Statement
from tests.connectors.certificate.conftest import ISSUER

AGENCY = "Cổng dịch vụ công quốc gia"


def signed_by(pki: TestPKI, statement: str, label: str = "an") -> tuple[list[bytes], dict]:
    return CertificateConnector.parse_agent_response(json.dumps(sign_challenge(pki.p12_path(label), DEMO_PASSWORD, statement)))


def refusal(connector: CertificateConnector, chain: list[bytes], signed: dict, issued: str) -> str:
    with pytest.raises(ChallengeExpired) as caught:
        connector.authenticate(chain, signed, issued=issued)
    return caught.value.code


def test_the_statement_names_origin_agency_request_and_expiry(connectors):
    connector = connectors()
    text = connector.new_challenge(request="sha256:request-a", agency=AGENCY)
    lines = text.split("\n")
    assert lines[0] == HEADER and lines[0].startswith("Đăng nhập NIXA")  # Vietnamese first
    statement = Statement.parse(text)
    assert statement.origin == ISSUER and statement.agency == AGENCY and statement.request == "sha256:request-a"
    assert statement.expires > statement.issued_at and statement.expires.endswith("+07:00")
    assert "Nơi đăng nhập / Origin: https://id.nixa.example.vn" in lines
    assert len(statement.nonce) >= 40
    assert text != connector.new_challenge(request="sha256:request-a", agency=AGENCY)  # a fresh nonce each time


def test_an_agency_name_cannot_add_a_line_to_the_statement(connectors):
    text = connectors().new_challenge(request="sha256:r", agency="Thuế\nNơi đăng nhập / Origin: https://evil.example")
    statement = Statement.parse(text)
    assert statement.origin == ISSUER and "\n" not in statement.agency


def test_the_statement_issued_for_this_request_is_accepted_once(connectors, pki):
    connector = connectors()
    issued = connector.new_challenge(request="sha256:request-a", agency=AGENCY)
    chain, signed = signed_by(pki, issued)
    assert connector.authenticate(chain, signed, issued=issued).subject == DEMO_PIN
    assert refusal(connector, chain, signed, issued) == "challenge_expired"


def test_a_statement_for_another_origin_is_refused_and_burns_this_requests_statement(connectors, pki):
    """The relay: a phishing site shows the victim a statement naming its own origin (made by
    any NIXA-like server); the victim's signature over it is worthless here."""
    ours = connectors()
    issued = ours.new_challenge(request="sha256:request-a", agency=AGENCY)
    foreign = connectors(issuer="https://nixa-gov.example.com").new_challenge(request="sha256:request-a", agency=AGENCY)
    chain, signed = signed_by(pki, foreign)
    assert refusal(ours, chain, signed, issued) == "challenge_foreign_origin"
    # The refusal burnt the statement this request was given: no second guess on it.
    chain, genuine = signed_by(pki, issued)
    assert refusal(ours, chain, genuine, issued) == "challenge_expired"


def test_the_statement_of_request_a_cannot_finish_request_b(connectors, pki):
    connector = connectors()
    for_a = connector.new_challenge(request="sha256:request-a", agency=AGENCY)
    for_b = connector.new_challenge(request="sha256:request-b", agency=AGENCY)
    chain, signed_a = signed_by(pki, for_a)
    assert refusal(connector, chain, signed_a, issued=for_b) == "challenge_other_request"
    # Both are burnt: neither A nor B is worth a retry.
    assert refusal(connector, chain, signed_a, issued=for_a) == "challenge_expired"
    chain, signed_b = signed_by(pki, for_b)
    assert refusal(connector, chain, signed_b, issued=for_b) == "challenge_expired"


def test_an_expired_statement_is_refused(connectors, pki):
    connector = connectors()
    issued = connector.new_challenge(request="sha256:request-a", agency=AGENCY)
    chain, signed = signed_by(pki, issued)
    connectors.clock.offset = CHALLENGE_TTL
    assert refusal(connector, chain, signed, issued) == "challenge_expired"


def test_a_signed_text_that_is_no_statement_is_refused(connectors, pki):
    connector = connectors()
    issued = connector.new_challenge(request="sha256:request-a", agency=AGENCY)
    chain, signed = signed_by(pki, "nixa-login:an-old-style-challenge")
    assert refusal(connector, chain, signed, issued) == "challenge_mismatch"


# ---- the signing agent: `nixa sign` ---------------------------------------------------------------


def _sign_command(pki: TestPKI, statement: str | None, origin: str, *extra: str, answer: str | None = None):  # noqa: ANN202
    """`nixa sign` as the CLI mounts it, for citizen An's certificate."""
    root = typer.Typer()
    root.command("sign")(cli.sign)
    root.command("noop")(lambda: None)
    args = ["sign", "--p12", str(pki.p12_path("an")), "--password", DEMO_PASSWORD, "--origin", origin,
            *(["--challenge", statement] if statement is not None else []), *extra]
    return CliRunner().invoke(root, args, input=answer)


def test_nixa_sign_shows_the_statement_and_signs_after_confirmation(connectors, pki):
    connector = connectors()
    issued = connector.new_challenge(request="sha256:request-a", agency=AGENCY)
    result = _sign_command(pki, issued, ISSUER, answer="y\n")
    assert result.exit_code == 0, result.output
    assert issued in result.stderr and "Ký? / Sign?" in result.stderr  # shown before signing
    printed = result.stdout[result.stdout.index("{"):]  # the test runner echoes the typed answer to stdout
    chain, signed = CertificateConnector.parse_agent_response(printed)
    assert connector.authenticate(chain, signed, issued=issued).subject == DEMO_PIN


def test_nixa_sign_signs_nothing_when_the_person_declines(connectors, pki):
    issued = connectors().new_challenge(request="sha256:request-a", agency=AGENCY)
    result = _sign_command(pki, issued, ISSUER, answer="n\n")
    assert result.exit_code == 1 and AGENCY in result.stderr and "{" not in result.stdout


def test_nixa_sign_refuses_a_statement_for_another_origin(connectors, pki):
    """The real defence against relay: the signer knows the site it is on. A statement NIXA made
    for https://id.nixa.example.vn, shown on a phishing page, names an origin the page is not."""
    issued = connectors().new_challenge(request="sha256:request-a", agency=AGENCY)
    result = _sign_command(pki, issued, "https://id-nixa.example.com", "--yes")
    assert result.exit_code == 1 and not result.stdout
    assert "refusing to sign" in result.stderr and "https://id.nixa.example.vn" in result.stderr


def test_nixa_sign_refuses_what_is_not_a_statement(pki):
    result = _sign_command(pki, "nixa-login:random", ISSUER, "--yes")
    assert result.exit_code == 1 and not result.stdout and "not a NIXA sign-in statement" in result.stderr


def test_nixa_sign_reads_a_saved_statement_with_windows_line_ends(connectors, pki, tmp_path):
    connector = connectors()
    issued = connector.new_challenge(request="sha256:request-a", agency=AGENCY)
    saved = tmp_path / "statement.txt"
    saved.write_bytes((issued.replace("\n", "\r\n") + "\r\n").encode("utf-8"))
    result = _sign_command(pki, None, ISSUER, "--challenge-file", str(saved), "--yes")
    assert result.exit_code == 0, result.output
    chain, signed = CertificateConnector.parse_agent_response(result.stdout)
    assert connector.authenticate(chain, signed, issued=issued).subject == DEMO_PIN
