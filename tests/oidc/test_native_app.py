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
