"""What protects the browser pages: framing headers, cookie attributes, CSRF, the pending
request bound to the browser that started it, and the page language."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.conftest import authorize, form_action, hidden, make_citizen, make_settings, query_of, register_client, sign_in_local


def assert_no_framing(r) -> None:  # noqa: ANN001
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def set_cookies(r) -> list[str]:  # noqa: ANN001
    return r.headers.get_list("set-cookie")


def test_every_html_page_forbids_framing(nixa, browser):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    pages = [browser.get("/"), browser.get("/logout")]
    r, _, _ = authorize(browser, client, client_id="nope")
    pages.append(r)
    r, _, _ = authorize(browser, client)
    login = browser.get(r.headers["location"])
    pages.append(login)
    r = browser.post(form_action(login.text, "/local"), data={"csrf": hidden(login.text, "csrf"), "username": citizen.username,
                                                               "password": citizen.password})
    pages.append(browser.get(r.headers["location"]))  # consent
    for page in pages:
        assert page.headers["content-type"].startswith("text/html"), page.status_code
        assert_no_framing(page)
        assert page.headers["x-content-type-options"] == "nosniff"


def test_api_responses_also_carry_the_headers(http):
    assert_no_framing(http.get("/jwks"))
    assert_no_framing(http.post("/token", data={"grant_type": "x"}))


def test_cookies_httponly_samesite_lax_on_http_issuer(nixa, browser):
    client = register_client(nixa, nixa_first_party=True)  # no consent: the login response is the last one
    citizen = make_citizen(nixa)
    r, _, _ = authorize(browser, client)
    cookies = set_cookies(r)
    assert any(c.startswith("nixa_browser=") for c in cookies)
    r = sign_in_local(browser, r.headers["location"], citizen)
    cookies = cookies + set_cookies(r) + set_cookies(browser.get("/"))
    session = [c for c in cookies if c.startswith("nixa_session=")]
    assert session, cookies
    for c in cookies:
        if c.startswith(("nixa_browser=", "nixa_session=")):
            low = c.lower()
            assert "httponly" in low and "samesite=lax" in low and "path=/" in low, c


@pytest.fixture(scope="module")
def https_app(var_dir, database_url, master_key):  # noqa: ANN001, ANN201
    from idp.app import Nixa, create_app

    s = make_settings(var_dir, database_url, master_key, issuer="https://id.example.vn")
    return create_app(s, nixa=Nixa(s))


def test_cookies_host_prefixed_and_secure_on_https_issuer(https_app):
    nixa = https_app.state.nixa
    client = register_client(nixa, nixa_first_party=True)
    citizen = make_citizen(nixa)
    with TestClient(https_app, base_url="https://testserver", follow_redirects=False) as b:
        r, _, _ = authorize(b, client)
        browser_cookie = [c for c in set_cookies(r) if "nixa_browser=" in c]
        assert browser_cookie and browser_cookie[0].startswith("__Host-nixa_browser=")
        r = sign_in_local(b, r.headers["location"], citizen)
        cb = query_of(r.headers["location"])
        assert cb["iss"] == "https://id.example.vn" and "code" in cb
        session_cookie = [c for c in set_cookies(r) if "nixa_session=" in c]
        assert session_cookie and session_cookie[0].startswith("__Host-nixa_session=")
        for c in browser_cookie + session_cookie:
            low = c.lower()
            assert "; secure" in low and "httponly" in low and "samesite=lax" in low and "path=/" in low, c
            assert "domain=" not in low


def _at_login(nixa, browser):  # noqa: ANN001, ANN201
    client = register_client(nixa)
    r, q, _ = authorize(browser, client)
    location = r.headers["location"]
    return client, location, browser.get(location)


def test_login_post_without_or_with_wrong_csrf_is_403(nixa, browser):
    citizen = make_citizen(nixa)
    _, _, page = _at_login(nixa, browser)
    action = form_action(page.text, "/local")
    token = hidden(page.text, "csrf")
    tampered = token[:-1] + ("1" if token[-1] == "0" else "0")  # always differs from the real token
    for csrf in (None, "0" * 64, tampered):
        data = {"username": citizen.username, "password": citizen.password}
        if csrf:
            data["csrf"] = csrf
        r = browser.post(action, data=data)
        assert r.status_code == 403, r.status_code
        assert not [c for c in set_cookies(r) if "nixa_session" in c]


def test_consent_post_without_or_with_wrong_csrf_is_403(nixa, browser):
    citizen = make_citizen(nixa)
    _, _, page = _at_login(nixa, browser)
    r = browser.post(form_action(page.text, "/local"), data={"csrf": hidden(page.text, "csrf"), "username": citizen.username,
                                                              "password": citizen.password})
    consent = browser.get(r.headers["location"])
    action = form_action(consent.text, "/consent")
    assert browser.post(action, data={"decision": "allow"}).status_code == 403
    assert browser.post(action, data={"decision": "allow", "csrf": "f" * 64}).status_code == 403
    # the right token still works afterwards
    r = browser.post(action, data={"decision": "allow", "csrf": hidden(consent.text, "csrf")})
    assert "code" in query_of(r.headers["location"])


def test_pending_request_is_bound_to_the_browser(nixa, app, browser):
    citizen = make_citizen(nixa)
    _, location, page = _at_login(nixa, browser)
    csrf = hidden(page.text, "csrf")
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as other:
        other.get("/")  # no browser cookie yet
        r = other.get(location)
        assert r.status_code == 400 and 'name="password"' not in r.text
        r = other.post(form_action(page.text, "/local"), data={"csrf": csrf, "username": citizen.username,
                                                                "password": citizen.password})
        assert r.status_code in (400, 403)
        assert not [c for c in set_cookies(r) if "nixa_session" in c]
        # a browser with its own cookie fares no better
        authorize(other, register_client(nixa))
        assert other.get(location).status_code == 400
    # the owner still can
    r = sign_in_local(browser, location, citizen)
    assert "code" in query_of(r.headers["location"])


def test_ui_locales_en_gives_english(nixa, browser):
    client = register_client(nixa)
    r, _, _ = authorize(browser, client, ui_locales="en")
    page = browser.get(r.headers["location"])
    assert '<html lang="en">' in page.text and "Sign in" in page.text


def test_accept_language_vi_and_default_is_vietnamese(nixa, app):
    client = register_client(nixa)
    for headers in ({"Accept-Language": "vi-VN,vi;q=0.9"}, {}, {"Accept-Language": "fr"}):
        with TestClient(app, base_url="http://testserver", follow_redirects=False, headers=headers) as b:
            r, _, _ = authorize(b, client)
            page = b.get(r.headers["location"])
            assert '<html lang="vi">' in page.text and "Đăng nhập" in page.text, headers


def test_accept_language_en(nixa, app):
    client = register_client(nixa)
    with TestClient(app, base_url="http://testserver", follow_redirects=False, headers={"Accept-Language": "en-US"}) as b:
        r, _, _ = authorize(b, client, client_id="unknown-one")
        assert '<html lang="en">' in r.text and "not registered" in r.text


def test_double_submit_of_consent_yields_one_code(nixa, browser):
    citizen = make_citizen(nixa)
    _, _, page = _at_login(nixa, browser)
    r = browser.post(form_action(page.text, "/local"), data={"csrf": hidden(page.text, "csrf"), "username": citizen.username,
                                                              "password": citizen.password})
    consent = browser.get(r.headers["location"])
    data = {"decision": "allow", "csrf": hidden(consent.text, "csrf")}
    first = browser.post(form_action(consent.text, "/consent"), data=data)
    second = browser.post(form_action(consent.text, "/consent"), data=data)
    assert "code" in query_of(first.headers["location"])
    assert "location" not in second.headers or "code" not in query_of(second.headers["location"])


# ---- HSTS under https (RFC 6797) ------------------------------------------------------------------

HSTS = "max-age=31536000; includeSubDomains"


def test_hsts_on_every_response_when_the_issuer_is_https(https_app):
    nixa = https_app.state.nixa
    client = register_client(nixa)
    with TestClient(https_app, base_url="https://testserver", follow_redirects=False) as b:
        responses = [b.get("/health"), b.get("/.well-known/openid-configuration"), b.get("/jwks"), b.get("/no-such-page"),
                     b.post("/token", data={"grant_type": "nope"}), authorize(b, client)[0], b.get("/static/does-not-exist.css")]
    for r in responses:
        assert r.headers.get("strict-transport-security") == HSTS, (r.request.url, r.status_code)


def test_no_hsts_on_an_http_issuer(browser):
    # http only on loopback (tests, the demo): HSTS there would pin 127.0.0.1 to https.
    assert "strict-transport-security" not in browser.get("/health").headers


# ---- a client that goes away mid-request ------------------------------------------------------------


def test_client_disconnect_is_logged_as_such_without_a_traceback(app, caplog):
    """A half-open request whose client leaves while NIXA reads the body: one info line, no
    `unexpected error` with a traceback (a flood of them used to fill the log)."""
    import asyncio
    import logging

    sent: list[dict] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/token", "raw_path": b"/token", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/x-www-form-urlencoded"),
                         (b"content-length", b"100")],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(app(scope, receive, send))
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records)
    assert any(r.levelno == logging.INFO and "disconnect" in r.getMessage() for r in caplog.records)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert starts and starts[0]["status"] != 500


def test_the_language_switch_on_a_forms_answer_reloads_its_step(nixa, browser):  # noqa: ANN001
    """A failed sign-in is the answer to a POST: its language link leads back to the step (a
    GET), never to the POST URL (which would answer "bad request")."""
    citizen = make_citizen(nixa)
    _, location, page = _at_login(nixa, browser)
    r = browser.post(form_action(page.text, "/local"), data={"csrf": hidden(page.text, "csrf"), "username": citizen.username,
                                                              "password": "wrong"})
    assert r.status_code == 401
    link = r.text.split('class="lang" href="')[1].split('"')[0].replace("&amp;", "&")
    assert link == f"{location}?lang=en"
    switched = browser.get(link)
    assert switched.status_code == 200 and '<html lang="en">' in switched.text and 'name="password"' in switched.text
