"""prompt, max_age, SSO across clients, consent memory (OIDC Core §3.1.2.1, §3.1.2.3)."""

from __future__ import annotations

from joserfc import jwt

from tests.conftest import authorize, form_action, hidden, make_citizen, query_of, register_client, sign_in_local
from tests.oidc.helpers import redeem


def signed_in_browser(nixa, browser, citizen, client=None):  # noqa: ANN001, ANN201
    client = client or register_client(nixa)
    r, _, _ = authorize(browser, client)
    r = sign_in_local(browser, r.headers["location"], citizen)
    assert "code" in query_of(r.headers["location"])
    return client


def id_claims(nixa, token: str) -> dict:  # noqa: ANN001
    return jwt.decode(token, nixa.keys._view().verify_set, algorithms=["ES256"]).claims


def test_prompt_none_without_session_is_login_required(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, prompt="none")
    cb = query_of(r.headers["location"])
    assert cb["error"] == "login_required" and cb["state"] == q["state"] and cb["iss"] == "http://testserver"


def test_prompt_none_with_session_without_consent_is_consent_required(nixa, browser):
    citizen = make_citizen(nixa)
    signed_in_browser(nixa, browser, citizen)
    other = register_client(nixa)
    r, q, _ = authorize(browser, other, prompt="none")
    cb = query_of(r.headers["location"])
    assert cb["error"] == "consent_required" and cb["state"] == q["state"]


def test_prompt_none_with_session_and_consent_gives_code(nixa, browser):
    citizen = make_citizen(nixa)
    client = signed_in_browser(nixa, browser, citizen)
    r, q, _ = authorize(browser, client, prompt="none")
    cb = query_of(r.headers["location"])
    assert "code" in cb and cb["state"] == q["state"]


def test_sso_second_client_no_password_consent_once(nixa, browser, http):
    citizen = make_citizen(nixa)
    signed_in_browser(nixa, browser, citizen)
    second = register_client(nixa)
    r, q, verifier = authorize(browser, second)
    assert r.headers["location"].startswith("/interaction/")
    page = browser.get(r.headers["location"])
    assert page.status_code == 200
    assert 'name="password"' not in page.text  # no password asked again
    assert "/consent" in page.text
    r = browser.post(form_action(page.text, "/consent"), data={"csrf": hidden(page.text, "csrf"), "decision": "allow"})
    cb = query_of(r.headers["location"])
    assert "code" in cb
    assert redeem(http, second, cb["code"], verifier).status_code == 200
    # consent remembered for this client and these scopes
    r, _, _ = authorize(browser, second)
    assert "code" in query_of(r.headers["location"])
    # a wider scope asks again
    r, _, _ = authorize(browser, second, scope="openid profile email phone")
    assert r.headers["location"].startswith("/interaction/")
    assert "/consent" in browser.get(r.headers["location"]).text


def test_prompt_consent_asks_again(nixa, browser):
    citizen = make_citizen(nixa)
    client = signed_in_browser(nixa, browser, citizen)
    r, _, _ = authorize(browser, client, prompt="consent")
    assert r.headers["location"].startswith("/interaction/")
    assert "/consent" in browser.get(r.headers["location"]).text


def test_consent_denied_is_access_denied(nixa, browser):
    citizen = make_citizen(nixa)
    client = register_client(nixa)
    r, q, _ = authorize(browser, client)
    r = sign_in_local(browser, r.headers["location"], citizen, consent=False)
    cb = query_of(r.headers["location"])
    assert cb["error"] == "access_denied" and cb["state"] == q["state"] and cb["iss"] == "http://testserver"


def test_prompt_login_forces_reauthentication(nixa, browser, http):
    citizen = make_citizen(nixa)
    client = signed_in_browser(nixa, browser, citizen)
    r, _, verifier = authorize(browser, client, prompt="login")
    location = r.headers["location"]
    assert location.startswith("/interaction/")
    page = browser.get(location)
    assert 'name="password"' in page.text
    r = sign_in_local(browser, location, citizen)
    assert "code" in query_of(r.headers["location"])


def test_max_age_zero_forces_reauthentication(nixa, browser, http):
    citizen = make_citizen(nixa)
    client = signed_in_browser(nixa, browser, citizen)
    r, _, verifier = authorize(browser, client, max_age="0")
    location = r.headers["location"]
    assert location.startswith("/interaction/")
    assert 'name="password"' in browser.get(location).text
    r = sign_in_local(browser, location, citizen)
    cb = query_of(r.headers["location"])
    tr = redeem(http, client, cb["code"], verifier)
    assert tr.status_code == 200, tr.text
    assert "auth_time" in id_claims(nixa, tr.json()["id_token"])  # OIDC Core §3.1.2.1: max_age requires auth_time


def test_large_max_age_reuses_the_session(nixa, browser):
    citizen = make_citizen(nixa)
    client = signed_in_browser(nixa, browser, citizen)
    r, _, _ = authorize(browser, client, max_age="3600")
    assert "code" in query_of(r.headers["location"])


def test_first_party_client_skips_consent(nixa, browser):
    citizen = make_citizen(nixa)
    client = register_client(nixa, nixa_first_party=True)
    r, _, _ = authorize(browser, client)
    page = browser.get(r.headers["location"])
    r = browser.post(form_action(page.text, "/local"), data={"csrf": hidden(page.text, "csrf"), "username": citizen.username,
                                                              "password": citizen.password})
    assert "code" in query_of(r.headers["location"])


def test_wrong_password_shows_the_form_again(nixa, browser):
    citizen = make_citizen(nixa)
    client = register_client(nixa)
    r, _, _ = authorize(browser, client)
    page = browser.get(r.headers["location"])
    r = browser.post(form_action(page.text, "/local"), data={"csrf": hidden(page.text, "csrf"), "username": citizen.username,
                                                              "password": "wrong-password"})
    assert r.status_code == 401
    assert 'name="password"' in r.text


def test_id_token_hint_at_authorize_names_the_expected_person(nixa, browser, http):  # noqa: ANN001
    from tests.conftest import authorize, code_flow, make_citizen, query_of, register_client

    client = register_client(nixa)
    alice, bob = make_citizen(nixa), make_citizen(nixa)
    alice_tokens = code_flow(browser, http, client, alice)  # this browser's session is Alice's
    r, _, _ = authorize(browser, client, prompt="none", id_token_hint=alice_tokens["id_token"])
    assert "code" in query_of(r.headers["location"])  # silent re-authentication for the hinted person

    from starlette.testclient import TestClient

    with TestClient(browser.app, base_url="http://testserver", follow_redirects=False) as other:
        bob_tokens = code_flow(other, http, client, bob)
    r, _, _ = authorize(browser, client, prompt="none", id_token_hint=bob_tokens["id_token"])
    assert query_of(r.headers["location"])["error"] == "login_required"  # Alice's session is not Bob's

    forged = alice_tokens["id_token"][:-4] + ("AAAA" if not alice_tokens["id_token"].endswith("AAAA") else "BBBB")
    r, _, _ = authorize(browser, client, id_token_hint=forged)
    assert query_of(r.headers["location"])["error"] == "invalid_request"
