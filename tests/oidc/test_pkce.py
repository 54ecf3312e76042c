"""PKCE (RFC 7636) as RFC 9700 wants it: S256 only, required for every client (a legacy
confidential client may be registered with nixa_pkce_optional), no downgrade."""

from __future__ import annotations

import pytest

from idp.oidc.clients import InvalidClientMetadata
from idp.oidc.metadata import NIXA_FLAGS, validate_metadata
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


def legacy_client(nixa):  # noqa: ANN001, ANN201
    return register_client(nixa, nixa_pkce_optional=True)


def test_downgrade_no_challenge_then_verifier_is_refused(nixa, browser, http):
    """A legacy confidential client may skip PKCE, but a verifier at /token without a challenge
    at /authorize is the downgrade attack of RFC 9700 §4.8.2."""
    client = legacy_client(nixa)
    citizen = make_citizen(nixa)
    code, _, _ = get_code(browser, client, citizen, code_challenge=None, code_challenge_method=None)
    verifier, _ = pkce_pair()
    tr = redeem(http, client, code, verifier)
    assert tr.status_code == 400
    assert tr.json()["error"] in ("invalid_request", "invalid_grant")


def test_confidential_client_without_code_challenge_is_refused(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, code_challenge=None, code_challenge_method=None)
    cb = query_of(r.headers["location"])
    assert cb["error"] == "invalid_request" and "PKCE" in cb["error_description"] and cb["state"] == q["state"]


def test_confidential_client_without_code_challenge_is_refused_at_par(nixa, http):
    client = register_client(nixa)
    r = http.post("/par", auth=(client.client_id, client.secret),
                  data={"response_type": "code", "redirect_uri": client.redirect_uri, "scope": "openid", "state": "s"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_legacy_confidential_client_without_pkce_still_works(nixa, browser, http):
    client = legacy_client(nixa)
    citizen = make_citizen(nixa)
    code, _, _ = get_code(browser, client, citizen, code_challenge=None, code_challenge_method=None)
    tr = redeem(http, client, code, None)
    assert tr.status_code == 200, tr.text


def test_legacy_client_sending_pkce_is_held_to_it(nixa, browser, http):
    client = legacy_client(nixa)
    citizen = make_citizen(nixa)
    code, _, _ = get_code(browser, client, citizen)
    tr = redeem(http, client, code, None)
    assert tr.status_code == 400 and tr.json()["error"] in ("invalid_request", "invalid_grant")


def test_public_client_cannot_opt_out_of_pkce(nixa):
    with pytest.raises(InvalidClientMetadata, match="nixa_pkce_optional"):
        register_client(nixa, token_endpoint_auth_method="none", nixa_pkce_optional=True)


def test_code_challenge_without_method_means_plain_and_is_refused(nixa, browser):
    """RFC 7636 §4.3: a missing code_challenge_method defaults to plain; it used to be taken as S256."""
    client = register_client(nixa)
    _, challenge = pkce_pair()
    r, q, _ = authorize(browser, client, code_challenge=challenge, code_challenge_method=None)
    cb = query_of(r.headers["location"])
    assert cb["error"] == "invalid_request" and cb["state"] == q["state"]
    assert "code" not in cb


def test_code_challenge_without_method_is_refused_at_par(nixa, http):
    client = register_client(nixa)
    _, challenge = pkce_pair()
    r = http.post("/par", auth=(client.client_id, client.secret),
                  data={"response_type": "code", "redirect_uri": client.redirect_uri, "scope": "openid", "state": "s",
                        "code_challenge": challenge})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_pkce_opt_out_is_a_boolean_flag():
    assert "nixa_pkce_optional" in NIXA_FLAGS
    with pytest.raises(InvalidClientMetadata, match="true or false"):
        validate_metadata({"client_id": "c1", "redirect_uris": ["https://rp.example.vn/cb"], "nixa_pkce_optional": "yes"})
