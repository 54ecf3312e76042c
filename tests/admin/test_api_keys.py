"""The admin API's signing-key routes, on a NIXA of its own (tests/admin/conftest.py own_app: the
shared app's keys sign every other test's tokens). A revoked key leaves the JWKS at once and
the tokens it signed stop verifying, at UserInfo too; a retired one still verifies; rotation
promotes the published key; every change is one admin.changed event with the actor and the
ring before and after."""

from __future__ import annotations

import json

import pytest
from joserfc import jws
from sqlalchemy import select

from admin.roles import Role
from tests.admin.operators import signed_in
from tests.conftest import code_flow, make_citizen, register_client
from tests.login.test_identity_assurance import own_browser

R = {"reason": "khóa bị lộ khi sao lưu"}


@pytest.fixture()
def super_admin(own_app):  # noqa: ANN001, ANN201
    """Signed in afresh for each test: a revoke may take the key that signed the last one's token."""
    return signed_in(own_app, Role.SUPER_ADMIN).headers()


def _kid(token: str) -> str:
    return jws.extract_compact(token.encode()).protected["kid"]


def _ring(http, headers) -> dict[str, dict]:  # noqa: ANN001
    body = http.get("/admin/api/keys", headers=headers).json()
    return {k["kid"]: k for k in body["keys"]}


def _admin_changes(nixa, what: str) -> list[dict]:  # noqa: ANN001
    from idp.store.models import AuditEvent

    with nixa.db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.type == "admin.changed").order_by(AuditEvent.id)).all()
    return [r.data for r in rows if r.data.get("what") == what]


def fresh_kid(nixa) -> str:  # noqa: ANN001
    return nixa.keys.active_kid("ES256")


def _tokens(app) -> dict:  # noqa: ANN001
    nixa = app.state.nixa
    with own_browser(app) as b:
        return code_flow(b, b, register_client(nixa, nixa_first_party=True), make_citizen(nixa))


def test_an_auditor_sees_the_ring_without_any_key_material(own_app, own_http):  # noqa: ANN001
    auditor = signed_in(own_app, Role.AUDITOR).headers()
    body = own_http.get("/admin/api/keys", headers=auditor).json()
    assert body["backend"] == "database"
    assert {(k["alg"], k["state"]) for k in body["keys"]} >= {(a, s) for a in ("ES256", "RS256", "EdDSA") for s in ("active", "pending")}
    assert all(set(k) == {"kid", "alg", "state", "backend", "created_at", "activated_at", "retired_at"} for k in body["keys"])
    assert own_http.post("/admin/api/keys/rotate", json={"alg": "ES256"}, headers=auditor).status_code == 403


def test_a_revoked_key_leaves_the_jwks_and_its_tokens_stop_verifying(own_app, own_http, super_admin):  # noqa: ANN001
    nixa = own_app.state.nixa
    tokens = _tokens(own_app)
    kid = _kid(tokens["id_token"])
    assert kid in {k["kid"] for k in own_http.get("/jwks").json()["keys"]}
    assert own_http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
    before = _ring(own_http, super_admin)
    assert before[kid]["state"] == "active"

    r = own_http.post(f"/admin/api/keys/{kid}/revoke", json=R, headers=super_admin)
    assert r.status_code == 200, r.text
    assert r.json()["was"] == "active" and r.json()["changed"] is True and kid not in {k["kid"] for k in r.json()["keys"]}
    assert kid not in {k["kid"] for k in own_http.get("/jwks").json()["keys"]}
    with pytest.raises(Exception):
        nixa.keys.verify(tokens["id_token"])
    assert own_http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401
    # Something else signs now, and what it signs verifies.
    fresh = _tokens(own_app)
    assert _kid(fresh["id_token"]) != kid and nixa.keys.verify(fresh["id_token"])

    change = _admin_changes(nixa, "key.revoke")[-1]
    assert change["target"] == kid and change["reason"] == R["reason"] and change["actor"]["via"] == "api"
    assert change["before"][kid] == "active" and kid not in change["after"]
    assert "private" not in json.dumps(change) and "\"d\"" not in json.dumps(change)
    # The operator's own access token was signed by that key too: it stops with it.
    assert own_http.get("/admin/api/keys", headers=super_admin).status_code == 401
    again = signed_in(own_app, Role.SUPER_ADMIN).headers()
    assert own_http.post(f"/admin/api/keys/{kid}/revoke", json=R, headers=again).status_code == 404  # gone
    assert own_http.post(f"/admin/api/keys/{fresh_kid(nixa)}/revoke", json={}, headers=again).status_code == 400  # a reason is needed


def test_a_retired_key_stops_signing_but_still_verifies(own_app, own_http, super_admin):  # noqa: ANN001
    nixa = own_app.state.nixa
    tokens = _tokens(own_app)
    kid = _kid(tokens["id_token"])
    r = own_http.post(f"/admin/api/keys/{kid}/retire", headers=super_admin)
    assert r.status_code == 200 and r.json()["was"] == "active" and r.json()["changed"] is True
    ring = {k["kid"]: k for k in r.json()["keys"]}
    assert ring[kid]["state"] == "retired" and ring[kid]["retired_at"]
    assert kid in {k["kid"] for k in own_http.get("/jwks").json()["keys"]} and nixa.keys.verify(tokens["id_token"])
    assert _kid(_tokens(own_app)["id_token"]) != kid
    again = own_http.post(f"/admin/api/keys/{kid}/retire", headers=super_admin).json()
    assert again["changed"] is False  # nothing to do: not audited again
    assert [c["target"] for c in _admin_changes(nixa, "key.retire")].count(kid) == 1


def test_rotation_promotes_the_published_key_and_is_audited(own_app, own_http, super_admin):  # noqa: ANN001
    nixa = own_app.state.nixa
    before = {k["state"]: kid for kid, k in _ring(own_http, super_admin).items() if k["alg"] == "RS256" and k["state"] != "retired"}
    r = own_http.post("/admin/api/keys/rotate", json={"alg": "RS256"}, headers=super_admin)
    assert r.status_code == 200 and r.json()["rotated"] is True
    after = {k["kid"]: k["state"] for k in r.json()["keys"] if k["alg"] == "RS256"}
    assert after[before["pending"]] == "active" and after[before["active"]] == "retired"
    new_pending = [kid for kid, state in after.items() if state == "pending"]
    assert len(new_pending) == 1 and new_pending[0] not in before.values()
    change = _admin_changes(nixa, "key.rotate")[-1]
    assert change["target"] == "RS256" and change["before"][before["active"]] == "active"
    assert change["after"][before["active"]] == "retired" and change["after"][new_pending[0]] == "pending"
    assert own_http.post("/admin/api/keys/rotate", json={"alg": "HS256"}, headers=super_admin).status_code == 400
    assert own_http.post("/admin/api/keys/rotate", json={"alg": "RS256", "extra": 1}, headers=super_admin).status_code == 400
