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


def test_a_refused_client_authentication_says_what_was_wrong(nixa, http):  # noqa: ANN001
    basic = register_client(nixa, grant_types=["client_credentials"], response_types=[], redirect_uris=[])
    post = register_client(nixa, grant_types=["client_credentials"], response_types=[], redirect_uris=[],
                           token_endpoint_auth_method="client_secret_post")
    form = {"grant_type": "client_credentials"}

    wrong = http.post("/token", data=form, auth=(basic.client_id, "not-the-secret-" + "x" * 20))
    assert wrong.status_code == 401 and wrong.json()["error_description"] == "The client secret is wrong."
    as_post = http.post("/token", data={**form, "client_id": basic.client_id, "client_secret": basic.secret})
    assert "registered for client_secret_basic, and the request used client_secret_post" in as_post.json()["error_description"]
    as_basic = http.post("/token", data=form, auth=(post.client_id, post.secret))
    assert as_basic.status_code == 401
    assert "registered for client_secret_post, and the request used client_secret_basic" in as_basic.json()["error_description"]
    nothing = http.post("/token", data={**form, "client_id": post.client_id})
    assert "No client authentication" in nothing.json()["error_description"]
    unknown = http.post("/token", data=form, auth=("no-such-client", "whatever-" + "x" * 30)).json()
    assert unknown["error"] == "invalid_client" and basic.client_id not in str(unknown) and post.client_id not in str(unknown)
    assert http.post("/token", data=form, auth=(basic.client_id, basic.secret)).status_code == 200
