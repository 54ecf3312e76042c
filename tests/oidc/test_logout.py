"""RP-Initiated Logout 1.0: redirect only to a registered URI proven by a valid hint."""

from __future__ import annotations

import time

import pytest

from tests.conftest import authorize, form_action, hidden, make_citizen, query_of, register_client
from tests.oidc.helpers import foreign_es256_jwt, get_code, hs256_jwt, public_pem, redeem, unsigned_jwt

BYE = "https://rp.example.vn/bye"


def signed_in(nixa, browser, http):  # noqa: ANN001, ANN201
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen)
    tokens = redeem(http, client, code, verifier).json()
    return client, tokens


def assert_logged_out(browser, client) -> None:  # noqa: ANN001
    r, _, _ = authorize(browser, client, prompt="none")
    assert query_of(r.headers["location"])["error"] == "login_required"


def assert_still_signed_in(browser, client) -> None:  # noqa: ANN001
    r, _, _ = authorize(browser, client, prompt="none")
    assert "code" in query_of(r.headers["location"])


def test_valid_hint_and_registered_uri_redirects_with_state(nixa, browser, http):
    client, tokens = signed_in(nixa, browser, http)
    r = browser.get("/logout", params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE, "state": "s-42"})
    assert r.status_code in (302, 303)
    assert r.headers["location"].startswith(BYE + "?")
    assert query_of(r.headers["location"])["state"] == "s-42"
    assert_logged_out(browser, client)


def test_unregistered_post_logout_uri_is_a_page(nixa, browser, http):
    client, tokens = signed_in(nixa, browser, http)
    for target in ("https://evil.example.com/bye", BYE + "/x", "https://rp.example.vn/by"):
        r = browser.get("/logout", params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": target})
        assert r.status_code == 400 and "location" not in r.headers
    assert_still_signed_in(browser, client)


def test_post_logout_uri_without_hint_or_client_id_is_a_page(nixa, browser, http):
    signed_in(nixa, browser, http)
    r = browser.get("/logout", params={"post_logout_redirect_uri": BYE})
    assert r.status_code == 400 and "location" not in r.headers


def test_post_logout_uri_of_another_client_is_a_page(nixa, browser, http):
    client, tokens = signed_in(nixa, browser, http)
    other = register_client(nixa, post_logout_redirect_uris=["https://other.example.vn/bye"])
    r = browser.get("/logout", params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://other.example.vn/bye"})
    assert r.status_code == 400 and "location" not in r.headers
    r = browser.get("/logout", params={"id_token_hint": tokens["id_token"], "client_id": other.client_id})
    assert r.status_code == 400 and "location" not in r.headers


def _forgeries(nixa, tokens) -> list[str]:  # noqa: ANN001
    import base64
    import json

    header, payload, sig = tokens["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered = dict(claims, sub="someone-else")
    tampered_payload = base64.urlsafe_b64encode(json.dumps(tampered).encode()).decode().rstrip("=")
    return [
        unsigned_jwt(claims),
        hs256_jwt(claims, public_pem(nixa), {"kid": nixa.keys.active_kid("ES256")}),
        foreign_es256_jwt(claims),
        foreign_es256_jwt(claims, {"kid": nixa.keys.active_kid("ES256")}),
        f"{header}.{tampered_payload}.{sig}",
        "not-a-jwt",
    ]


def test_forged_id_token_hint_is_a_page(nixa, browser, http):
    client, tokens = signed_in(nixa, browser, http)
    for forged in _forgeries(nixa, tokens):
        r = browser.get("/logout", params={"id_token_hint": forged, "post_logout_redirect_uri": BYE, "state": "x"})
        assert r.status_code == 400, forged
        assert "location" not in r.headers
    assert_still_signed_in(browser, client)


def test_hint_with_wrong_issuer_is_a_page(nixa, browser, http):
    client, tokens = signed_in(nixa, browser, http)
    now = int(time.time())
    forged = nixa.keys.sign({"iss": "https://evil.example.com", "sub": "x", "aud": client.client_id, "iat": now, "exp": now + 60})
    r = browser.get("/logout", params={"id_token_hint": forged, "post_logout_redirect_uri": BYE})
    assert r.status_code == 400 and "location" not in r.headers


def test_access_token_is_not_an_id_token_hint(nixa, browser, http):
    client, tokens = signed_in(nixa, browser, http)
    r = browser.get("/logout", params={"id_token_hint": tokens["access_token"], "post_logout_redirect_uri": BYE})
    assert r.status_code == 400 and "location" not in r.headers


def test_confirmation_page_without_hint(nixa, browser, http):
    client, _ = signed_in(nixa, browser, http)
    page = browser.get("/logout")
    assert page.status_code == 200 and "/logout/confirm" in page.text
    assert_still_signed_in(browser, client)  # nothing happened yet
    action = form_action(page.text, "/logout/confirm")
    bad = browser.post(action, data={"logout_request": hidden(page.text, "logout_request"), "decision": "yes"})
    assert bad.status_code == 403  # no csrf
    r = browser.post(action, data={"logout_request": hidden(page.text, "logout_request"), "csrf": hidden(page.text, "csrf"),
                                   "decision": "yes"})
    assert r.status_code == 200
    assert_logged_out(browser, client)


def test_confirmation_declined_keeps_the_session(nixa, browser, http):
    client, _ = signed_in(nixa, browser, http)
    page = browser.get("/logout")
    r = browser.post(form_action(page.text, "/logout/confirm"), data={"logout_request": hidden(page.text, "logout_request"),
                                                                       "csrf": hidden(page.text, "csrf"), "decision": "no"})
    assert r.status_code == 200
    assert_still_signed_in(browser, client)


def test_logout_with_hint_from_another_session_asks_first(nixa, app, browser, http):
    """A valid hint for another session must not silently end this browser's session."""
    from starlette.testclient import TestClient

    client, _ = signed_in(nixa, browser, http)
    with TestClient(app, follow_redirects=False) as other:
        _, other_tokens = signed_in(nixa, other, http)
    r = browser.get("/logout", params={"id_token_hint": other_tokens["id_token"]})
    assert r.status_code == 200 and "/logout/confirm" in r.text
    assert_still_signed_in(browser, client)


def test_logout_without_session_shows_logged_out(browser):
    r = browser.get("/logout")
    assert r.status_code == 200


@pytest.mark.parametrize("state", ["a&b=c", "x" * 200])
def test_state_is_echoed_safely(nixa, browser, http, state):
    _, tokens = signed_in(nixa, browser, http)
    r = browser.get("/logout", params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE, "state": state})
    cb = query_of(r.headers["location"])
    assert cb["state"] == state and set(cb) == {"state"}


def test_logout_post_form(nixa, browser, http):
    client, tokens = signed_in(nixa, browser, http)
    r = browser.post("/logout", data={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE, "state": "p"})
    assert r.status_code in (302, 303) and query_of(r.headers["location"])["state"] == "p"
    assert_logged_out(browser, client)

