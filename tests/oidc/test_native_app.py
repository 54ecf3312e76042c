"""A native app (RFC 8252): public client, PKCE, private-use URI scheme or loopback redirect."""

from __future__ import annotations

from tests.conftest import authorize, make_citizen, query_of, register_client, sign_in_local


def test_native_app_with_private_use_scheme_completes_the_flow(nixa, browser, http) -> None:  # noqa: ANN001
    redirect = "vn.gov.dichvucong:/oauth2redirect"
    client = register_client(nixa, redirect_uri=redirect, application_type="native", token_endpoint_auth_method="none",
                             post_logout_redirect_uris=[])
    citizen = make_citizen(nixa)
    r, q, verifier = authorize(browser, client)
    r = sign_in_local(browser, r.headers["location"], citizen)
    location = r.headers["location"]
    assert location.startswith(redirect + "?")
    cb = query_of(location)
    token = http.post("/token", data={"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": redirect,
                                      "client_id": client.client_id, "code_verifier": verifier})
    assert token.status_code == 200, token.text
    assert "id_token" in token.json()
    # a public client without the verifier gets nothing
    r, q, _ = authorize(browser, client)
    cb = query_of(r.headers["location"])
    bad = http.post("/token", data={"grant_type": "authorization_code", "code": cb["code"], "redirect_uri": redirect,
                                    "client_id": client.client_id})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"


def test_web_scheme_rules_do_not_accept_a_custom_scheme_for_web_clients(nixa) -> None:  # noqa: ANN001
    import pytest

    from idp.oidc.clients import InvalidClientMetadata

    with pytest.raises(InvalidClientMetadata):
        register_client(nixa, redirect_uri="vn.gov.dichvucong:/cb")  # application_type web


# ---- loopback redirects compare every component but the port (RFC 8252 §7.3) -------------------

import pytest  # noqa: E402

LOOPBACK = "http://127.0.0.1/cb"


def loopback_client(nixa):  # noqa: ANN001, ANN201
    return register_client(nixa, redirect_uri=LOOPBACK, application_type="native", token_endpoint_auth_method="none",
                           post_logout_redirect_uris=["http://127.0.0.1/bye"])


def test_loopback_redirect_on_any_port_is_accepted(nixa, browser) -> None:  # noqa: ANN001
    client = loopback_client(nixa)
    r, _, _ = authorize(browser, client, redirect_uri="http://127.0.0.1:51234/cb")
    assert r.status_code == 303 and r.headers["location"].startswith("/interaction/")


@pytest.mark.parametrize("asked", [
    "http://evil.example@127.0.0.1:51234/cb",  # userinfo: browsers go to 127.0.0.1, a naive parser sees evil.example
    "http://evil.example@127.0.0.1/cb",
    "http://user:pw@127.0.0.1:51234/cb",
    "http://@127.0.0.1:51234/cb",
    "http://127.0.0.1:51234/cb?next=x",
    "http://127.0.0.1:51234/cb/",
    "http://127.0.0.1:51234/other",
    "https://127.0.0.1:51234/cb",
    "http://127.0.0.2:51234/cb",
    "http://[::1]:51234/cb",
    "http://127.0.0.1:notaport/cb",
    "http://127.0.0.1:51234/cb#frag",
])
def test_loopback_redirect_differing_in_anything_but_the_port_is_refused(nixa, browser, asked) -> None:  # noqa: ANN001
    client = loopback_client(nixa)
    r, _, _ = authorize(browser, client, redirect_uri=asked)
    # Not proven: a page, never a redirect carrying a code or an error.
    assert r.status_code == 400 and "location" not in r.headers


def test_userinfo_in_a_registered_uri_is_refused(nixa) -> None:  # noqa: ANN001
    from idp.oidc.clients import InvalidClientMetadata

    for field in ("redirect_uri", "post_logout_redirect_uris"):
        value = "http://evil.example@127.0.0.1/cb"
        with pytest.raises(InvalidClientMetadata, match="user information"):
            register_client(nixa, application_type="native", token_endpoint_auth_method="none",
                            **({field: value} if field == "redirect_uri" else {field: [value]}))


def test_post_logout_loopback_uri_follows_the_same_rules(nixa, browser) -> None:  # noqa: ANN001
    client = loopback_client(nixa)
    model = nixa.clients.get(client.client_id)
    assert model.check_post_logout_redirect_uri("http://127.0.0.1/bye")
    assert model.check_post_logout_redirect_uri("http://127.0.0.1:40001/bye")
    for asked in ("http://evil.example@127.0.0.1:40001/bye", "http://127.0.0.1:40001/bye?x=1", "http://127.0.0.1:40001/cb"):
        assert not model.check_post_logout_redirect_uri(asked)
        r = browser.get("/logout", params={"client_id": client.client_id, "post_logout_redirect_uri": asked})
        assert r.status_code == 400 and "location" not in r.headers
