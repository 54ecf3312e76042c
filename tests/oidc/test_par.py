"""Pushed authorization requests (RFC 9126)."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from tests.conftest import authorize, make_citizen, make_settings, pkce_pair, query_of, register_client, sign_in_local
from tests.oidc.helpers import auth_of, redeem


def push(http, client, **over):  # noqa: ANN001, ANN201
    verifier, challenge = pkce_pair()
    data = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri, "scope": "openid profile",
            "state": "st-par", "nonce": "n-par", "code_challenge": challenge, "code_challenge_method": "S256"}
    data.update({k: v for k, v in over.items() if v is not None})
    for k in [k for k, v in over.items() if v is None]:
        data.pop(k, None)
    return http.post("/par", data=data, auth=auth_of(client)), verifier


def test_push_then_authorize_with_request_uri(nixa, browser, http):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    r, verifier = push(http, client)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:") and body["expires_in"] > 0
    assert r.headers["cache-control"] == "no-store"
    a = browser.get("/authorize", params={"client_id": client.client_id, "request_uri": body["request_uri"]})
    assert a.status_code == 303
    r = sign_in_local(browser, a.headers["location"], citizen)
    cb = query_of(r.headers["location"])
    assert cb["state"] == "st-par" and cb["iss"] == "http://testserver"
    tr = redeem(http, client, cb["code"], verifier)
    assert tr.status_code == 200, tr.text


def test_request_uri_is_single_use(nixa, browser, http):
    client = register_client(nixa)
    r, _ = push(http, client)
    uri = r.json()["request_uri"]
    first = browser.get("/authorize", params={"client_id": client.client_id, "request_uri": uri})
    assert first.status_code == 303
    second = browser.get("/authorize", params={"client_id": client.client_id, "request_uri": uri})
    assert second.status_code == 400 and "location" not in second.headers


def test_request_uri_bound_to_client(nixa, browser, http):
    client = register_client(nixa)
    other = register_client(nixa)
    r, _ = push(http, client)
    a = browser.get("/authorize", params={"client_id": other.client_id, "request_uri": r.json()["request_uri"]})
    assert a.status_code == 400 and "location" not in a.headers


def test_unknown_request_uri_is_a_page(nixa, browser):
    client = register_client(nixa)
    a = browser.get("/authorize", params={"client_id": client.client_id, "request_uri": "urn:ietf:params:oauth:request_uri:nope"})
    assert a.status_code == 400 and "location" not in a.headers


def test_request_uri_expires(var_dir, database_url, master_key):
    from idp.app import Nixa, create_app

    s = make_settings(var_dir, database_url, master_key, par_ttl=1)
    app = create_app(s, nixa=Nixa(s))
    client = register_client(app.state.nixa)
    with TestClient(app, follow_redirects=False) as b:
        r, _ = push(b, client)
        assert r.json()["expires_in"] == 1
        time.sleep(1.6)
        a = b.get("/authorize", params={"client_id": client.client_id, "request_uri": r.json()["request_uri"]})
        assert a.status_code == 400 and "location" not in a.headers


def test_require_par_client_refused_without_par(nixa, browser, http):
    client = register_client(nixa, require_pushed_authorization_requests=True)
    r, q, _ = authorize(browser, client)
    cb = query_of(r.headers["location"])
    assert cb["error"] == "invalid_request" and cb["state"] == q["state"]
    r, _ = push(http, client)
    a = browser.get("/authorize", params={"client_id": client.client_id, "request_uri": r.json()["request_uri"]})
    assert a.status_code == 303 and a.headers["location"].startswith("/interaction/")


@pytest.mark.parametrize("redirect_uri", ["https://evil.example.com/cb", "https://rp.example.vn/callback/x", None])
def test_par_with_bad_redirect_uri_is_400_json(nixa, http, redirect_uri):
    client = register_client(nixa)
    r, _ = push(http, client, redirect_uri=redirect_uri)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == "invalid_request"


def test_par_validates_like_authorize(nixa, http):
    client = register_client(nixa)
    assert push(http, client, response_type="token")[0].json()["error"] == "unsupported_response_type"
    assert push(http, client, code_challenge_method="plain")[0].json()["error"] == "invalid_request"
    assert push(http, client, scope="profile")[0].json()["error"] == "invalid_scope"
    assert push(http, client, request_uri="urn:ietf:params:oauth:request_uri:x")[0].status_code == 400


def test_par_requires_client_authentication(nixa, http):
    client = register_client(nixa)
    r = http.post("/par", data={"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
                                "scope": "openid"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = http.post("/par", data={"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
                                "scope": "openid"}, auth=(client.client_id, "wrong"))
    assert r.status_code == 401


def test_par_client_id_mismatch(nixa, http):
    client = register_client(nixa)
    other = register_client(nixa)
    r, _ = push(http, client, client_id=other.client_id)
    # The one check every client-authenticating endpoint shares (NixaAuthorizationServer.authenticate_client).
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_par_params_win_over_query(nixa, browser, http):
    """Only the pushed parameters count: a redirect_uri added to the query is ignored."""
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    r, _ = push(http, client)
    a = browser.get("/authorize", params={"client_id": client.client_id, "request_uri": r.json()["request_uri"],
                                          "redirect_uri": "https://evil.example.com/cb", "state": "other"})
    r = sign_in_local(browser, a.headers["location"], citizen)
    assert r.headers["location"].startswith(client.redirect_uri + "?")
    assert query_of(r.headers["location"])["state"] == "st-par"
