"""Agency apps through the admin API: onboarded with the same validation as `nixa clients
import`, changed (a sector move only with force), disabled, deleted, secrets rotated with an
overlap; every change audited with the actor, before and after, and never a secret."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from admin.auth import CONSOLE_CLIENT_ID
from admin.roles import Role
from idp.store.models import Client
from tests.admin.operators import signed_in
from tests.conftest import RegisteredClient, code_flow, make_citizen, uid
from tests.oidc.test_audit import events_for

API = "/admin/api/clients"


@pytest.fixture(scope="module")
def admin(app):  # noqa: ANN001, ANN201
    return signed_in(app, Role.CLIENT_ADMIN)


def metadata(**overrides) -> dict:  # noqa: ANN003
    return {"client_id": uid("app"), "client_name": "Cổng dịch vụ công tỉnh", "redirect_uris": ["https://dvc.example.vn/cb"],
            "post_logout_redirect_uris": ["https://dvc.example.vn/bye"], "backchannel_logout_uri": "https://dvc.example.vn/bcl",
            "grant_types": ["authorization_code", "refresh_token"], "scope": "openid profile email", **overrides}


def changes(nixa, client_id: str) -> list[dict]:  # noqa: ANN001
    return [e.data for e in events_for(nixa, type="admin.changed", client_id=client_id)]


def test_an_app_onboarded_through_the_api_signs_a_citizen_in(http, browser, nixa, admin):  # noqa: ANN001
    md = metadata(nixa_first_party=True)
    r = http.post(API, json=md, headers=admin.headers())
    assert r.status_code == 201, r.text
    body = r.json()
    secret = body["client_secret"]
    assert secret and body["app"]["has_secret"] and "client_secret" not in body["app"]["metadata"]
    assert body["app"]["metadata"]["redirect_uris"] == md["redirect_uris"] and body["app"]["first_party"] is True
    tokens = code_flow(browser, http, RegisteredClient(md["client_id"], secret, md["redirect_uris"][0], md), make_citizen(nixa))
    assert tokens["id_token"] and tokens["access_token"]
    [created] = changes(nixa, md["client_id"])
    assert created["what"] == "client.create" and created["actor"]["person_id"] == admin.person_id
    assert created["after"]["client_id"] == md["client_id"] and created["before"] is None
    assert secret not in json.dumps(created)
    assert http.post(API, json=md, headers=admin.headers()).status_code == 409  # no silent overwrite


@pytest.mark.parametrize("field, value, error", [
    ("redirect_uris", ["https://dvc.example.vn/cb#frag"], "invalid_redirect_uri"),
    ("redirect_uris", ["https://*.example.vn/cb"], "invalid_redirect_uri"),
    ("redirect_uris", ["http://dvc.example.vn/cb"], "invalid_redirect_uri"),
    ("post_logout_redirect_uris", ["https://dvc.example.vn/bye#x"], "invalid_redirect_uri"),
    ("post_logout_redirect_uris", ["https://*/bye"], "invalid_redirect_uri"),
    ("backchannel_logout_uri", "http://dvc.example.vn/bcl", "invalid_redirect_uri"),
    ("backchannel_logout_uri", "https://dvc.example.vn/bcl#f", "invalid_redirect_uri"),
    ("grant_types", ["implicit"], "invalid_client_metadata"),
    ("token_endpoint_auth_method", "private_key_jwt", "invalid_client_metadata"),  # without jwks or jwks_uri
    ("nixa_access_token_ttl", 5, "invalid_client_metadata"),
    ("scope", "openid admin", "invalid_client_metadata"),  # the admin console's scope is its own
    ("logo_uri", "https://dvc.example.vn/logo.png", "invalid_client_metadata"),
])
def test_bad_metadata_is_refused_with_the_reason(http, nixa, admin, field, value, error):  # noqa: ANN001
    md = metadata(**{field: value})
    r = http.post(API, json=md, headers=admin.headers())
    assert r.status_code == 400 and r.json()["error"] == error, r.text
    assert http.get(f"{API}/{md['client_id']}", headers=admin.headers()).status_code == 404


def test_loopback_and_jwks_are_accepted(http, admin):  # noqa: ANN001
    from joserfc.jwk import ECKey

    jwks = {"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}
    md = metadata(redirect_uris=["http://127.0.0.1:8080/cb"], post_logout_redirect_uris=[], token_endpoint_auth_method="private_key_jwt",
                  jwks=jwks, nixa_national_id_authorized=True, nixa_access_token_ttl=300)
    md.pop("backchannel_logout_uri")
    r = http.post(API, json=md, headers=admin.headers())
    assert r.status_code == 201, r.text
    assert r.json()["client_secret"] is None and r.json()["app"]["national_id_authorized"] is True


def test_update_keeps_the_secret_and_a_sector_move_needs_force(http, browser, nixa, admin):  # noqa: ANN001
    md = metadata(nixa_first_party=True)
    secret = http.post(API, json=md, headers=admin.headers()).json()["client_secret"]
    client = RegisteredClient(md["client_id"], secret, md["redirect_uris"][0], md)
    code_flow(browser, http, client, make_citizen(nixa))  # a person with a grant: their `sub` is at stake
    renamed = {**md, "client_name": "Cổng mới"}
    r = http.put(f"{API}/{md['client_id']}", json=renamed, headers=admin.headers())
    assert r.status_code == 200 and r.json()["metadata"]["client_name"] == "Cổng mới"
    moved = {**md, "redirect_uris": ["https://moi.example.vn/cb"]}
    r = http.put(f"{API}/{md['client_id']}", json=moved, headers=admin.headers())
    assert r.status_code == 409 and r.json()["error"] == "sector_change" and "1 person" in r.json()["error_description"]
    assert http.get(f"{API}/{md['client_id']}", headers=admin.headers()).json()["metadata"]["redirect_uris"] == md["redirect_uris"]
    r = http.put(f"{API}/{md['client_id']}", params={"force": "true"}, json=moved, headers=admin.headers())
    assert r.status_code == 200 and r.json()["metadata"]["redirect_uris"] == moved["redirect_uris"]
    update_events = [c for c in changes(nixa, md["client_id"]) if c["what"] == "client.update"]
    assert update_events[0]["before"]["metadata"]["client_name"] == md["client_name"]
    assert update_events[0]["after"]["metadata"]["client_name"] == "Cổng mới"
    assert "sector moved" in update_events[-1]["reason"]
    code_flow(browser, http, RegisteredClient(md["client_id"], secret, moved["redirect_uris"][0], moved), make_citizen(nixa))  # same secret
    r = http.put(f"{API}/{md['client_id']}", json={**md, "client_secret": "x" * 40}, headers=admin.headers())
    assert r.status_code == 400  # a secret is rotated, never set by an edit


def test_disable_stops_the_app_and_its_tokens_and_enable_lets_it_work_again(http, browser, nixa, admin):  # noqa: ANN001
    md = metadata(nixa_first_party=True)
    secret = http.post(API, json=md, headers=admin.headers()).json()["client_secret"]
    client = RegisteredClient(md["client_id"], secret, md["redirect_uris"][0], md)
    tokens = code_flow(browser, http, client, make_citizen(nixa))
    r = http.post(f"{API}/{md['client_id']}/disable", headers=admin.headers())
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    assert nixa.clients.get(client.client_id) is None  # /authorize and /token no longer know it
    [disabled] = [c for c in changes(nixa, md["client_id"]) if c["what"] == "client.disable"]
    assert disabled["before"] == {"disabled": False} and disabled["after"]["disabled"] is True and disabled["after"]["grants_revoked"] == 1
    assert http.post(f"{API}/{md['client_id']}/enable", headers=admin.headers()).json()["disabled"] is False
    code_flow(browser, http, client, make_citizen(nixa))


def test_delete_removes_the_app(http, nixa, admin):  # noqa: ANN001
    md = metadata()
    http.post(API, json=md, headers=admin.headers())
    r = http.delete(f"{API}/{md['client_id']}", headers=admin.headers())
    assert r.status_code == 200 and r.json() == {"grants_revoked": 0}
    assert http.get(f"{API}/{md['client_id']}", headers=admin.headers()).status_code == 404
    assert nixa.clients.get(md["client_id"]) is None
    assert [c["what"] for c in changes(nixa, md["client_id"])][-1] == "client.delete"


def test_the_admin_console_is_not_editable(http, admin):  # noqa: ANN001
    for r in (http.put(f"{API}/{CONSOLE_CLIENT_ID}", json=metadata(), headers=admin.headers()),
              http.post(f"{API}/{CONSOLE_CLIENT_ID}/disable", headers=admin.headers()),
              http.delete(f"{API}/{CONSOLE_CLIENT_ID}", headers=admin.headers()),
              http.post(API, json=metadata(client_id=CONSOLE_CLIENT_ID), headers=admin.headers())):
        assert r.status_code == 409 and r.json()["error"] == "protected", r.text


def _client_credentials(http, client_id: str, secret: str) -> int:  # noqa: ANN001
    return http.post("/token", data={"grant_type": "client_credentials", "scope": ""}, auth=(client_id, secret)).status_code


def test_secret_rotation_with_an_overlap_keeps_both_secrets_until_the_old_expires(http, nixa, admin):  # noqa: ANN001
    md = metadata(grant_types=["client_credentials"], response_types=[], redirect_uris=[], post_logout_redirect_uris=[], scope="")
    md.pop("backchannel_logout_uri")
    old = http.post(API, json=md, headers=admin.headers()).json()["client_secret"]
    assert _client_credentials(http, md["client_id"], old) == 200
    r = http.post(f"{API}/{md['client_id']}/secret", json={"overlap": 3600}, headers=admin.headers())
    assert r.status_code == 200, r.text
    new = r.json()["client_secret"]
    assert r.json()["previous_secret_expires_at"] > 0
    assert _client_credentials(http, md["client_id"], new) == 200
    assert _client_credentials(http, md["client_id"], old) == 200  # the agency has not deployed the new one yet
    assert _client_credentials(http, md["client_id"], "x" * 43) == 401
    with nixa.db.session() as s:  # the overlap has run out
        s.execute(update(Client).where(Client.client_id == md["client_id"]).values(previous_secret_expires_at=1.0))
    nixa.clients.invalidate(md["client_id"])
    assert _client_credentials(http, md["client_id"], old) == 401
    assert _client_credentials(http, md["client_id"], new) == 200
    r = http.post(f"{API}/{md['client_id']}/secret", json={}, headers=admin.headers())  # no overlap: the old one dies at once
    newest = r.json()["client_secret"]
    assert r.json()["previous_secret_expires_at"] is None
    assert _client_credentials(http, md["client_id"], new) == 401 and _client_credentials(http, md["client_id"], newest) == 200
    rotations = [c for c in changes(nixa, md["client_id"]) if c["what"] == "client.rotate_secret"]
    assert len(rotations) == 2 and all(s not in json.dumps(rotations) for s in (old, new, newest))
    assert http.post(f"{API}/{md['client_id']}/secret", json={"overlap": -1}, headers=admin.headers()).status_code == 400


def test_a_public_client_has_no_secret_to_rotate(http, admin):  # noqa: ANN001
    md = metadata(token_endpoint_auth_method="none")
    assert http.post(API, json=md, headers=admin.headers()).status_code == 201
    r = http.post(f"{API}/{md['client_id']}/secret", json={"overlap": 10}, headers=admin.headers())
    assert r.status_code == 409 and r.json()["error"] == "no_secret"
