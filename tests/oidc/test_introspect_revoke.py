"""Introspection (RFC 7662) and revocation (RFC 7009)."""

from __future__ import annotations

import pytest

from tests.conftest import make_citizen, register_client
from tests.oidc.helpers import auth_of, get_code, introspect, redeem, token_call, userinfo


@pytest.fixture()
def issued(nixa, browser, http):  # noqa: ANN001, ANN201
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen, scope="openid profile offline_access")
    r = redeem(http, client, code, verifier)
    assert r.status_code == 200
    return client, r.json()


def test_active_for_own_access_and_refresh_token(http, issued):
    client, tokens = issued
    r = introspect(http, client, tokens["access_token"])
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["active"] is True and body["client_id"] == client.client_id
    assert body["iss"] == "http://testserver" and body["exp"] > body["iat"]
    assert "openid" in body["scope"].split() and body["sub"]
    assert "nixa_ref" not in body and "gid" not in body
    r = introspect(http, client, tokens["refresh_token"], token_type_hint="refresh_token")
    assert r.json()["active"] is True and r.json()["token_type"] == "refresh_token"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 600, "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_is_inactive(nixa, http, token):
    client = register_client(nixa)
    r = introspect(http, client, token)
    assert r.status_code == 200 and r.json() == {"active": False}


def test_missing_token_param(nixa, http):
    client = register_client(nixa)
    r = http.post("/introspect", data={}, auth=auth_of(client))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_another_clients_token_reads_inactive(nixa, http, issued):
    _, tokens = issued
    other = register_client(nixa)
    for t in (tokens["access_token"], tokens["refresh_token"]):
        assert introspect(http, other, t).json() == {"active": False}


def test_first_party_flag_grants_no_introspection(nixa, http, issued):
    """Introspection is the token's own client's and its audience's (resource servers,
    tests/oidc/test_resource_indicators.py): being first-party is no permission."""
    _, tokens = issued
    first_party = register_client(nixa, nixa_first_party=True)
    for t in (tokens["access_token"], tokens["refresh_token"]):
        assert introspect(http, first_party, t).json() == {"active": False}


def test_public_client_cannot_introspect(nixa, http, issued):
    _, tokens = issued
    public = register_client(nixa, token_endpoint_auth_method="none")
    r = http.post("/introspect", data={"token": tokens["access_token"], "client_id": public.client_id})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_introspect_without_or_with_bad_credentials(nixa, http, issued):
    client, tokens = issued
    assert http.post("/introspect", data={"token": tokens["access_token"]}).status_code == 401
    r = http.post("/introspect", data={"token": tokens["access_token"]}, auth=(client.client_id, "wrong"))
    assert r.status_code == 401 and "www-authenticate" in r.headers


def test_revoke_own_access_token(nixa, http, issued):
    client, tokens = issued
    r = http.post("/revoke", data={"token": tokens["access_token"], "token_type_hint": "access_token"}, auth=auth_of(client))
    assert r.status_code == 200
    assert introspect(http, client, tokens["access_token"]).json() == {"active": False}
    assert userinfo(http, tokens["access_token"]).status_code == 401
    # revoking an access token leaves the refresh token alone
    assert introspect(http, client, tokens["refresh_token"]).json()["active"] is True


def test_revoke_refresh_token_revokes_the_grant(nixa, http, issued):
    client, tokens = issued
    r = http.post("/revoke", data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}, auth=auth_of(client))
    assert r.status_code == 200
    assert introspect(http, client, tokens["refresh_token"]).json() == {"active": False}
    assert introspect(http, client, tokens["access_token"]).json() == {"active": False}
    r = token_call(http, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_revoke_with_wrong_hint_still_works(nixa, http, issued):
    client, tokens = issued
    r = http.post("/revoke", data={"token": tokens["refresh_token"], "token_type_hint": "access_token"}, auth=auth_of(client))
    assert r.status_code == 200
    assert introspect(http, client, tokens["refresh_token"]).json() == {"active": False}


def test_cannot_revoke_another_clients_token(nixa, http, issued):
    client, tokens = issued
    other = register_client(nixa)
    for t in (tokens["access_token"], tokens["refresh_token"]):
        r = http.post("/revoke", data={"token": t}, auth=auth_of(other))
        assert r.status_code in (200, 400)
        if r.status_code == 400:
            assert r.json()["error"] in ("unauthorized_client", "invalid_request")
    assert introspect(http, client, tokens["access_token"]).json()["active"] is True
    assert introspect(http, client, tokens["refresh_token"]).json()["active"] is True


def test_unknown_token_is_200(nixa, http):
    client = register_client(nixa)
    for t in ("unknown", "a.b.c"):
        r = http.post("/revoke", data={"token": t}, auth=auth_of(client))
        assert r.status_code == 200, r.text


def test_public_client_revokes_its_own_token(nixa, browser, http):
    client = register_client(nixa, token_endpoint_auth_method="none")
    citizen = make_citizen(nixa)
    code, verifier, _ = get_code(browser, client, citizen, scope="openid offline_access")
    tokens = redeem(http, client, code, verifier).json()
    r = http.post("/revoke", data={"token": tokens["refresh_token"], "client_id": client.client_id})
    assert r.status_code == 200
    r = token_call(http, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert r.status_code == 400


def test_revoke_requires_client_authentication(nixa, http, issued):
    client, tokens = issued
    r = http.post("/revoke", data={"token": tokens["access_token"]})
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    r = http.post("/revoke", data={"token": tokens["access_token"]}, auth=(client.client_id, "nope"))
    assert r.status_code == 401
    assert introspect(http, client, tokens["access_token"]).json()["active"] is True
