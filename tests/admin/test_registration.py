"""Dynamic client registration (RFC 7591) and its management (RFC 7592), for agencies onboarding
themselves in the sandbox: only with an initial access token an admin made, each use counted;
the same validation as every client; no self-granted NIXA privileges; the registration access
token reads, replaces and deletes that client only."""

from __future__ import annotations

import pytest

from admin.roles import Role
from tests.admin.operators import signed_in
from tests.conftest import RegisteredClient, code_flow, make_citizen
from tests.oidc.test_audit import events_for


@pytest.fixture(scope="module")
def admin(app):  # noqa: ANN001, ANN201
    return signed_in(app, Role.CLIENT_ADMIN)


def initial_token(http, admin, uses: int = 1) -> str:  # noqa: ANN001
    r = http.post("/admin/api/registration-tokens", json={"label": "Sở Tư pháp (sandbox)", "uses": uses}, headers=admin.headers())
    assert r.status_code == 201, r.text
    return r.json()["initial_access_token"]


META = {"client_name": "Cổng tự đăng ký", "redirect_uris": ["https://tuphap.example.vn/cb"], "scope": "openid profile",
        "grant_types": ["authorization_code"]}


def register(http, token: str | None, body: dict | None = None):  # noqa: ANN001, ANN201
    return http.post("/register", json=body or META, headers={"Authorization": f"Bearer {token}"} if token else {})


def test_registration_with_an_initial_token_gives_a_working_client(http, browser, nixa, admin):  # noqa: ANN001
    token = initial_token(http, admin)
    r = register(http, token)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["client_id"].startswith("dcr-") and body["client_secret"] and body["registration_access_token"]
    assert body["registration_client_uri"] == f"http://testserver/register/{body['client_id']}" and body["client_secret_expires_at"] == 0
    assert body["redirect_uris"] == META["redirect_uris"] and body["subject_type"] == "pairwise"
    client = RegisteredClient(body["client_id"], body["client_secret"], META["redirect_uris"][0], META)
    assert code_flow(browser, http, client, make_citizen(nixa))["id_token"]
    assert register(http, token).status_code == 401  # one use only
    created = [e.data for e in events_for(nixa, type="admin.changed", client_id=body["client_id"])][0]
    assert created["actor"] == {"via": "registration", "initial_access_token": "Sở Tư pháp (sandbox)", "ip": "testclient"}
    assert body["client_secret"] not in str(created) and body["registration_access_token"] not in str(created)


@pytest.mark.parametrize("token", [None, "made-up", "x" * 600])
def test_registration_without_a_valid_initial_token_is_refused(http, token):  # noqa: ANN001
    r = register(http, token)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


@pytest.mark.parametrize("extra, error", [
    ({"nixa_first_party": True}, "invalid_client_metadata"),
    ({"nixa_national_id_authorized": True}, "invalid_client_metadata"),
    ({"client_secret": "s" * 40}, "invalid_client_metadata"),
    ({"redirect_uris": ["https://tuphap.example.vn/cb#x"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["http://tuphap.example.vn/cb"]}, "invalid_redirect_uri"),
    ({"scope": "openid admin"}, "invalid_client_metadata"),
])
def test_what_an_agency_may_not_register_itself(http, admin, extra, error):  # noqa: ANN001
    token = initial_token(http, admin)
    r = register(http, token, {**META, **extra})
    assert r.status_code == 400 and r.json()["error"] == error, r.text
    assert http.post("/register", content=b"not json", headers={"Authorization": f"Bearer {token}"}).status_code == 400


def test_the_registration_access_token_manages_its_own_client_only(http, admin):  # noqa: ANN001
    token = initial_token(http, admin, uses=2)
    one, two = register(http, token).json(), register(http, token).json()
    uri, auth = one["registration_client_uri"], {"Authorization": f"Bearer {one['registration_access_token']}"}
    r = http.get(uri, headers=auth)
    assert r.status_code == 200 and r.json()["client_id"] == one["client_id"] and "client_secret" not in r.json()
    assert http.get(two["registration_client_uri"], headers=auth).status_code == 401  # not its client
    assert http.get(uri, headers={"Authorization": "Bearer wrong"}).status_code == 401
    changed = {**META, "client_id": one["client_id"], "client_name": "Tên mới", "registration_access_token": "ignored"}
    r = http.put(uri, json=changed, headers=auth)
    assert r.status_code == 200 and r.json()["client_name"] == "Tên mới"
    assert http.put(uri, json={**META, "client_id": two["client_id"]}, headers=auth).status_code == 400
    assert http.put(uri, json={**META, "nixa_first_party": True}, headers=auth).status_code == 400
    assert http.delete(uri, headers=auth).status_code == 204
    assert http.get(uri, headers=auth).status_code == 401  # gone
    assert http.get(f"/admin/api/clients/{one['client_id']}", headers=admin.headers()).status_code == 404


def test_discovery_names_the_registration_endpoint(http):  # noqa: ANN001
    assert http.get("/.well-known/openid-configuration").json()["registration_endpoint"] == "http://testserver/register"
