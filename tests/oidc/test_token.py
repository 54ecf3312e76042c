"""/token for the authorization code: single use, replay revokes, bound to client and
redirect_uri, short-lived; client authentication; client_credentials; no-store."""

from __future__ import annotations

import base64
import time

import pytest
from starlette.testclient import TestClient

from tests.conftest import make_citizen, make_settings, register_client
from tests.oidc.helpers import get_code, introspect, redeem, token_call, userinfo


def test_code_is_single_use_and_replay_revokes_what_it_issued(nixa, browser, http):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen, scope="openid profile offline_access")
    first = redeem(http, client, code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert userinfo(http, tokens["access_token"]).status_code == 200
    assert introspect(http, client, tokens["access_token"]).json()["active"] is True
    replay = redeem(http, client, code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert introspect(http, client, tokens["access_token"]).json() == {"active": False}
    assert introspect(http, client, tokens["refresh_token"]).json() == {"active": False}
    r = userinfo(http, tokens["access_token"])
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    r = token_call(http, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_code_bound_to_client(nixa, browser, http):
    a = register_client(nixa)
    b = register_client(nixa)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, a, citizen)
    r = token_call(http, b, grant_type="authorization_code", code=code, redirect_uri=a.redirect_uri, code_verifier=verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_code_bound_to_redirect_uri(nixa, browser, http):
    client = register_client(nixa, redirect_uris=["https://rp.example.vn/callback", "https://rp.example.vn/other"])
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen)
    r = redeem(http, client, code, verifier, redirect_uri="https://rp.example.vn/other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    code, verifier, _ = get_code(browser, client, citizen)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    r = token_call(http, client, **data)  # redirect_uri omitted
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_unknown_code_is_invalid_grant(nixa, http):
    client = register_client(nixa)
    r = redeem(http, client, "not-a-code", "x" * 43)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert r.headers["cache-control"] == "no-store"


@pytest.fixture(scope="module")
def short_app(var_dir, database_url, master_key):  # noqa: ANN001, ANN201
    from idp.app import Nixa, create_app

    s = make_settings(var_dir, database_url, master_key, code_ttl=1, par_ttl=1, access_token_ttl=2)
    return create_app(s, nixa=Nixa(s))


def test_expired_code_is_invalid_grant(short_app):
    nixa = short_app.state.nixa
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    with TestClient(short_app, follow_redirects=False) as b:
        code, verifier, _ = get_code(b, client, citizen)
        time.sleep(1.6)
        r = redeem(b, client, code, verifier)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_expired_access_token_is_refused(short_app):
    nixa = short_app.state.nixa
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    with TestClient(short_app, follow_redirects=False) as b:
        code, verifier, _ = get_code(b, client, citizen)
        tokens = redeem(b, client, code, verifier).json()
        assert userinfo(b, tokens["access_token"]).status_code == 200
        time.sleep(2.2)
        r = userinfo(b, tokens["access_token"])
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
        assert introspect(b, client, tokens["access_token"]).json() == {"active": False}


def test_client_secret_post(nixa, browser, http):
    client = register_client(nixa, token_endpoint_auth_method="client_secret_post")
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen)
    r = http.post("/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
                                  "code_verifier": verifier, "client_id": client.client_id, "client_secret": client.secret})
    assert r.status_code == 200, r.text


def test_client_secret_basic_when_post_registered_is_refused(nixa, browser, http):
    client = register_client(nixa, token_endpoint_auth_method="client_secret_post")
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen)
    r = redeem(http, client, code, verifier)  # basic
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


@pytest.mark.parametrize("how", ["basic", "post", "none", "unknown_client"])
def test_wrong_secret_is_401_invalid_client_with_www_authenticate(nixa, http, how):
    client = register_client(nixa, token_endpoint_auth_method="client_secret_post" if how == "post" else "client_secret_basic")
    data = {"grant_type": "authorization_code", "code": "c", "redirect_uri": client.redirect_uri}
    if how == "basic":
        r = http.post("/token", data=data, auth=(client.client_id, "wrong" + client.secret))
    elif how == "post":
        r = http.post("/token", data={**data, "client_id": client.client_id, "client_secret": "wrong"})
    elif how == "none":
        r = http.post("/token", data={**data, "client_id": client.client_id})
    else:
        r = http.post("/token", data=data, auth=("no-such-client", "secret"))
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].lower().startswith("basic")
    assert r.headers["cache-control"] == "no-store"


def test_malformed_basic_header_is_invalid_client(nixa, http):
    for value in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
                  "Basic " + base64.b64encode(b"a%00b:secret").decode()):
        r = http.post("/token", data={"grant_type": "authorization_code", "code": "c"}, headers={"Authorization": value})
        assert r.status_code == 401, (value, r.status_code)
        assert r.json()["error"] == "invalid_client"
        assert "www-authenticate" in r.headers


def test_public_client_cannot_present_a_secret_method(nixa, browser, http):
    client = register_client(nixa, token_endpoint_auth_method="none")
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen)
    r = http.post("/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
                                  "code_verifier": verifier}, auth=(client.client_id, "anything"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_client_credentials_for_a_service_client(nixa, http):
    svc = register_client(nixa, grant_types=["client_credentials"], response_types=[], redirect_uris=[], post_logout_redirect_uris=[],
                          scope="roles")
    r = token_call(http, svc, grant_type="client_credentials", scope="roles")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and "refresh_token" not in body and "id_token" not in body
    assert r.headers["cache-control"] == "no-store"
    info = introspect(http, svc, body["access_token"]).json()
    assert info["active"] is True and info["client_id"] == svc.client_id
    # no person behind it: userinfo refuses
    assert userinfo(http, body["access_token"]).status_code in (401, 403)


def test_client_credentials_refused_for_a_code_client(nixa, http):
    client = register_client(nixa)
    r = token_call(http, client, grant_type="client_credentials")
    assert r.status_code in (400, 401) and r.json()["error"] in ("unauthorized_client", "invalid_client")


def test_client_credentials_refused_for_a_public_client(nixa, http):
    client = register_client(nixa, token_endpoint_auth_method="none")
    r = http.post("/token", data={"grant_type": "client_credentials", "client_id": client.client_id})
    assert r.status_code in (400, 401) and r.json()["error"] in ("unauthorized_client", "invalid_client")


def test_unsupported_grant_type(nixa, http):
    client = register_client(nixa)
    for gt in ("password", "urn:ietf:params:oauth:grant-type:device_code", "implicit"):
        r = token_call(http, client, grant_type=gt, username="a", password="b")
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
        assert r.headers["cache-control"] == "no-store"


def test_token_success_response_is_no_store(nixa, browser, http):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen)
    r = redeem(http, client, code, verifier)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0


# ---- a client_id in the body must name the authenticated client ---------------------------------


def test_body_client_id_of_another_client_is_invalid_client_at_token(nixa, browser, http):
    """Basic credentials authenticate one client; a body naming another used to be ignored."""
    client = register_client(nixa)
    other = register_client(nixa)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen)
    r = http.post("/token", auth=(client.client_id, client.secret),
                  data={"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
                        "code_verifier": verifier, "client_id": other.client_id})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["cache-control"] == "no-store"
    # the same body with the right client_id is fine (the code was not spent by the refusal)
    r = http.post("/token", auth=(client.client_id, client.secret),
                  data={"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
                        "code_verifier": verifier, "client_id": client.client_id})
    assert r.status_code == 200, r.text


def test_body_client_id_of_another_client_is_invalid_client_at_client_credentials(nixa, http):
    client = register_client(nixa, grant_types=["client_credentials"], redirect_uris=[], post_logout_redirect_uris=[], scope="profile")
    other = register_client(nixa)
    r = http.post("/token", auth=(client.client_id, client.secret), data={"grant_type": "client_credentials", "client_id": other.client_id})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


@pytest.mark.parametrize("endpoint", ["/introspect", "/revoke"])
def test_body_client_id_of_another_client_is_invalid_client(nixa, browser, http, endpoint):
    client = register_client(nixa)
    other = register_client(nixa)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen)
    access = redeem(http, client, code, verifier).json()["access_token"]
    r = http.post(endpoint, auth=(client.client_id, client.secret), data={"token": access, "client_id": other.client_id})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert introspect(http, client, access).json()["active"] is True  # nothing was revoked
