"""PKCE (RFC 7636) as RFC 9700 wants it: S256 only, required for public clients, no downgrade."""

from __future__ import annotations

from tests.conftest import authorize, make_citizen, pkce_pair, query_of, register_client
from tests.oidc.helpers import get_code, redeem


def public_client(nixa):  # noqa: ANN001, ANN201
    return register_client(nixa, token_endpoint_auth_method="none")


def test_public_client_without_code_challenge_is_refused(nixa, browser):
    client = public_client(nixa)
    r, q, _ = authorize(browser, client, code_challenge=None, code_challenge_method=None)
    cb = query_of(r.headers["location"])
    assert cb["error"] == "invalid_request" and cb["state"] == q["state"] and cb["iss"] == "http://testserver"


def test_plain_method_is_refused(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, code_challenge="a" * 50, code_challenge_method="plain")
    cb = query_of(r.headers["location"])
    assert cb["error"] == "invalid_request" and cb["state"] == q["state"]


def test_malformed_code_challenge_is_refused(nixa, browser):
    client = register_client(nixa)
    r, _, _ = authorize(browser, client, code_challenge="short")
    assert query_of(r.headers["location"])["error"] == "invalid_request"


def test_public_client_full_flow_with_none_auth(nixa, browser, http):
    client = public_client(nixa)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen)
    tr = redeem(http, client, code, verifier)
    assert tr.status_code == 200, tr.text
    assert tr.json()["access_token"] and tr.json()["id_token"]


def test_verifier_mismatch_is_invalid_grant(nixa, browser, http):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    code, _, _ = get_code(browser, client, citizen)
    other_verifier, _ = pkce_pair()
    tr = redeem(http, client, code, other_verifier)
    assert tr.status_code == 400
    assert tr.json()["error"] == "invalid_grant"


def test_missing_verifier_when_challenge_was_sent(nixa, browser, http):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    code, _, _ = get_code(browser, client, citizen)
    tr = redeem(http, client, code, None)
    assert tr.status_code == 400 and tr.json()["error"] in ("invalid_request", "invalid_grant")


def test_public_client_missing_verifier(nixa, browser, http):
    client = public_client(nixa)
    citizen = make_citizen(nixa)
    code, _, _ = get_code(browser, client, citizen)
    tr = redeem(http, client, code, None)
    assert tr.status_code == 400 and tr.json()["error"] in ("invalid_request", "invalid_grant")


def test_downgrade_no_challenge_then_verifier_is_refused(nixa, browser, http):
    """A confidential client may skip PKCE, but a verifier at /token without a challenge at
    /authorize is the downgrade attack of RFC 9700 §4.8.2."""
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    code, _, _ = get_code(browser, client, citizen, code_challenge=None, code_challenge_method=None)
    verifier, _ = pkce_pair()
    tr = redeem(http, client, code, verifier)
    assert tr.status_code == 400
    assert tr.json()["error"] in ("invalid_request", "invalid_grant")


def test_confidential_client_without_pkce_still_works(nixa, browser, http):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    code, _, _ = get_code(browser, client, citizen, code_challenge=None, code_challenge_method=None)
    tr = redeem(http, client, code, None)
    assert tr.status_code == 200, tr.text
