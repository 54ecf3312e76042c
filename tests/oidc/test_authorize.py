"""/authorize request validation: client and redirect_uri first (a page, never a redirect),
then errors to the redirect_uri with state and iss (RFC 6749 §4.1.2.1, RFC 9207)."""

from __future__ import annotations

import pytest

from idp.i18n import messages
from tests.conftest import authorize, make_citizen, query_of, register_client, sign_in_local


def assert_page(r, status: int = 400) -> None:  # noqa: ANN001
    assert r.status_code == status, (r.status_code, r.headers.get("location"))
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")


def assert_error_redirect(r, client, q: dict, error: str) -> dict:  # noqa: ANN001
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith(client.redirect_uri + "?"), location
    cb = query_of(location)
    assert cb["error"] == error, cb
    assert cb["state"] == q["state"]
    assert cb["iss"] == "http://testserver"
    assert "code" not in cb
    return cb


def test_unknown_client_gets_a_page_not_a_redirect(nixa, browser):
    client = register_client(nixa)
    r, _, _ = authorize(browser, client, client_id="no-such-client")
    assert_page(r)
    assert "không được đăng ký" in r.text


def test_missing_client_id_gets_a_page(nixa, browser):
    client = register_client(nixa)
    r, _, _ = authorize(browser, client, client_id=None)
    assert_page(r)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.com/callback",
        "https://rp.example.vn/callback/../evil",
        "https://rp.example.vn/callbackx",  # suffix
        "https://rp.example.vn/call",  # prefix
        "https://rp.example.vn/callback?x=1",
        "https://rp.example.vn:8443/callback",  # another port on a web client
        "http://rp.example.vn/callback",  # scheme downgrade
        "https://rp.example.vn.evil.com/callback",
        "https://RP.example.vn/callback",
        "https://rp.example.vn/callback#frag",
    ],
)
def test_unregistered_redirect_uri_gets_a_page(nixa, browser, redirect_uri):
    client = register_client(nixa)
    r, _, _ = authorize(browser, client, redirect_uri=redirect_uri)
    assert_page(r)


def test_missing_redirect_uri_gets_a_page(nixa, browser):
    client = register_client(nixa)
    r, _, _ = authorize(browser, client, redirect_uri=None)
    assert_page(r)


def test_web_client_loopback_port_must_match_exactly(nixa, browser):
    client = register_client(nixa, redirect_uri="http://127.0.0.1:9000/cb")
    r, _, _ = authorize(browser, client, redirect_uri="http://127.0.0.1:9001/cb")
    assert_page(r)


def test_native_client_loopback_any_port(nixa, browser, http):
    citizen = make_citizen(nixa)
    client = register_client(nixa, application_type="native", token_endpoint_auth_method="none",
                             redirect_uri="http://127.0.0.1/cb")
    for port in (51234, 8080):
        uri = f"http://127.0.0.1:{port}/cb"
        r, q, _ = authorize(browser, client, redirect_uri=uri)
        assert r.status_code == 303
        location = r.headers["location"]
        if location.startswith("/interaction/"):
            location = sign_in_local(browser, location, citizen).headers["location"]
        assert location.startswith(uri + "?"), location
        assert "code" in query_of(location)
    # same host and path only
    for bad in ("http://127.0.0.1:5000/other", "http://localhost:5000/cb", "http://127.0.0.2:5000/cb"):
        r, _, _ = authorize(browser, client, redirect_uri=bad)
        assert_page(r)


def test_response_type_token_is_unsupported(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, response_type="token")
    assert_error_redirect(r, client, q, "unsupported_response_type")


def test_missing_response_type(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, response_type=None)
    cb = assert_error_redirect(r, client, q, query_of(r.headers["location"]).get("error", "?"))
    assert cb["error"] in ("unsupported_response_type", "invalid_request")


def test_request_object_not_supported(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, request="eyJhbGciOiJub25lIn0.e30.")
    assert_error_redirect(r, client, q, "request_not_supported")


def test_request_uri_not_supported_outside_par(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, request_uri="https://rp.example.vn/request.jwt")
    assert_error_redirect(r, client, q, "request_uri_not_supported")


def test_missing_openid_scope(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, scope="profile")
    assert_error_redirect(r, client, q, "invalid_scope")


def test_unknown_prompt_and_bad_max_age(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, prompt="sometimes")
    assert_error_redirect(r, client, q, "invalid_request")
    r, q, _ = authorize(browser, client, prompt="none login")
    assert_error_redirect(r, client, q, "invalid_request")
    r, q, _ = authorize(browser, client, max_age="-1")
    assert_error_redirect(r, client, q, "invalid_request")


def test_response_mode_fragment_refused(nixa, browser):
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, response_mode="fragment")
    assert_error_redirect(r, client, q, "invalid_request")


def test_error_without_state_has_no_state(nixa, browser):
    client = register_client(nixa)
    r, _, _ = authorize(browser, client, response_type="token", state=None)
    cb = query_of(r.headers["location"])
    assert cb["error"] == "unsupported_response_type"
    assert "state" not in cb and cb["iss"] == "http://testserver"


def test_client_without_code_grant_is_unauthorized(nixa, browser):
    client = register_client(nixa, grant_types=["client_credentials"], response_types=[], redirect_uris=["https://rp.example.vn/callback"],
                             post_logout_redirect_uris=[], scope="openid")
    r, q, _ = authorize(browser, client)
    assert_error_redirect(r, client, q, "unauthorized_client")


def test_acr_high_with_only_password_is_unmet(nixa, browser):
    """Only local passwords (low) exist in the test database: `high` cannot be reached."""
    assert not [e for e in nixa.connectors.entries() if int(e.loa) >= 3]
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, acr_values="urn:nixa:loa:high")
    assert r.status_code == 303
    location = r.headers["location"]
    if location.startswith("/interaction/"):
        location = browser.get(location).headers.get("location", "")
    assert_error_redirect_location(location, client, q, "unmet_authentication_requirements")


def assert_error_redirect_location(location: str, client, q: dict, error: str) -> None:  # noqa: ANN001
    assert location.startswith(client.redirect_uri + "?"), location
    cb = query_of(location)
    assert cb["error"] == error and cb["state"] == q["state"] and cb["iss"] == "http://testserver"


def test_acr_low_gives_acr_low(nixa, browser, http):
    from tests.oidc.helpers import redeem
    from joserfc import jwt

    client = register_client(nixa)
    citizen = make_citizen(nixa)
    r, q, verifier = authorize(browser, client, acr_values="urn:nixa:loa:low")
    cb = query_of(sign_in_local(browser, r.headers["location"], citizen).headers["location"])
    tr = redeem(http, client, cb["code"], verifier)
    assert tr.status_code == 200
    claims = jwt.decode(tr.json()["id_token"], nixa.keys._view().verify_set, algorithms=["ES256"]).claims
    assert claims["acr"] == "urn:nixa:loa:low"


def test_unknown_acr_value_is_refused_naming_the_supported_ones(nixa, browser):
    # Attack 10 of the identity-assurance issue: a typo must not quietly mean "low".
    client = register_client(nixa)
    r, q, _ = authorize(browser, client, acr_values="urn:nixa:loa:extreme")
    cb = query_of(r.headers["location"])
    assert r.status_code == 303 and cb["error"] == "invalid_request" and cb["state"] == q["state"]
    assert "urn:nixa:loa:substantial" in cb["error_description"] and "urn:nixa:loa:high" in cb["error_description"]


def test_unknown_acr_value_beside_a_known_one_is_skipped(nixa, browser):
    client = register_client(nixa)
    r, _, _ = authorize(browser, client, acr_values="urn:other:loa:9 urn:nixa:loa:substantial")
    assert r.status_code == 303 and r.headers["location"].startswith("/interaction/")
    page = browser.get(r.headers["location"]).text
    # substantial: the password alone is not offered (only with an authenticator app, login/test_totp.py)
    assert messages("vi")["method_local"] not in page and messages("vi")["method_local_totp"] in page


def test_authorize_post_works_like_get(nixa, browser):
    client = register_client(nixa)
    from tests.conftest import pkce_pair

    _, challenge = pkce_pair()
    r = browser.post("/authorize", data={"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
                                         "scope": "openid", "state": "s1", "code_challenge": challenge,
                                         "code_challenge_method": "S256"})
    assert r.status_code == 303 and r.headers["location"].startswith("/interaction/")
