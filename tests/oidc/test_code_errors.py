"""An integrator can tell why a code was refused: never issued, already used, expired, or issued
to another client — each `invalid_grant` says which (issue 13), and a replay still revokes."""

from __future__ import annotations

from idp.oidc.tokens import token_hash
from tests.conftest import authorize, make_citizen, query_of, register_client, sign_in_local


def _code(nixa, browser, client):  # noqa: ANN001, ANN202
    citizen = make_citizen(nixa)
    r, _, verifier = authorize(browser, client)
    r = sign_in_local(browser, r.headers["location"], citizen)
    return query_of(r.headers["location"])["code"], verifier


def _redeem(http, client, code: str, verifier: str):  # noqa: ANN001, ANN202
    return http.post("/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
                                     "code_verifier": verifier}, auth=(client.client_id, client.secret))


def test_each_refused_code_says_why(nixa, browser, http):  # noqa: ANN001
    client = register_client(nixa)
    code, verifier = _code(nixa, browser, client)
    never = _redeem(http, client, "x" * 43, verifier).json()
    assert never["error"] == "invalid_grant" and "never issued" in never["error_description"]

    assert _redeem(http, client, code, verifier).status_code == 200
    again = _redeem(http, client, code, verifier).json()
    assert again["error"] == "invalid_grant" and "already used" in again["error_description"]

    browser.cookies.clear()
    late, verifier = _code(nixa, browser, client)
    nixa.store.delete(f"code:{token_hash(late)}")  # what its lifetime ending does
    expired = _redeem(http, client, late, verifier).json()
    assert expired["error"] == "invalid_grant" and "expired" in expired["error_description"]

    browser.cookies.clear()
    theirs, verifier = _code(nixa, browser, client)
    other = register_client(nixa)
    stolen = http.post("/token", data={"grant_type": "authorization_code", "code": theirs, "redirect_uri": client.redirect_uri,
                                       "code_verifier": verifier}, auth=(other.client_id, other.secret)).json()
    assert stolen["error"] == "invalid_grant" and "another client" in stolen["error_description"]
    assert "already used" in _redeem(http, client, theirs, verifier).json()["error_description"]  # a stolen code is spent
