"""Every role against every operation of the admin API: allowed, or 403. The requests name
targets that do not exist, so an allowed call answers 200/400/404 without changing anything;
a refused one is 403 whatever the target. A route the table forgets fails the last test."""

from __future__ import annotations

import pytest

from admin.roles import PERMISSIONS, Role
from tests.admin.operators import signed_in

NOBODY = "0" * 32
R = {"reason": "kiểm tra phân quyền"}
# (method, path as in the OpenAPI document, concrete path, query, body, permission)
OPERATIONS = [
    ("GET", "/me", "/me", None, None, "me"),
    ("GET", "/clients", "/clients", None, None, "clients.read"),
    ("POST", "/clients", "/clients", None, {}, "clients.write"),
    ("GET", "/clients/{client_id}", "/clients/no-such-app", None, None, "clients.read"),
    ("PUT", "/clients/{client_id}", "/clients/no-such-app", None, {}, "clients.write"),
    ("DELETE", "/clients/{client_id}", "/clients/no-such-app", None, None, "clients.write"),
    ("POST", "/clients/{client_id}/disable", "/clients/no-such-app/disable", None, None, "clients.write"),
    ("POST", "/clients/{client_id}/enable", "/clients/no-such-app/enable", None, None, "clients.write"),
    ("POST", "/clients/{client_id}/secret", "/clients/no-such-app/secret", None, {"overlap": 60}, "clients.write"),
    ("POST", "/registration-tokens", "/registration-tokens", None, {"label": ""}, "registration.write"),
    ("GET", "/people", "/people", {"national_id": "000000000000", **R}, None, "people.read"),
    ("GET", "/people/{person_id}", f"/people/{NOBODY}", R, None, "people.read"),
    ("POST", "/people/{person_id}/lock", f"/people/{NOBODY}/lock", None, R, "people.write"),
    ("POST", "/people/{person_id}/unlock", f"/people/{NOBODY}/unlock", None, R, "people.write"),
    ("POST", "/people/{person_id}/links/{link_id}/unlink", f"/people/{NOBODY}/links/{NOBODY}/unlink", None, R, "people.write"),
    ("POST", "/people/{person_id}/sessions/revoke", f"/people/{NOBODY}/sessions/revoke", None, R, "people.write"),
    ("POST", "/people/{person_id}/grants/{grant_id}/revoke", f"/people/{NOBODY}/grants/{NOBODY}/revoke", None, R, "people.write"),
    ("POST", "/people/merge", "/people/merge", None, {"source": NOBODY, "into": "1" * 32, **R}, "people.write"),
    ("GET", "/connectors", "/connectors", {"health": "false"}, None, "connectors.read"),
    ("GET", "/connector-types", "/connector-types", None, None, "connectors.read"),
    ("GET", "/connectors/{connector_id}", "/connectors/no-such-source", None, None, "connectors.read"),
    ("PUT", "/connectors/{connector_id}", "/connectors/no-such-source", None, {"type": "no-such-type", "config": {}}, "connectors.write"),
    ("POST", "/connectors/{connector_id}/enable", "/connectors/no-such-source/enable", None, None, "connectors.write"),
    ("POST", "/connectors/{connector_id}/disable", "/connectors/no-such-source/disable", None, None, "connectors.write"),
    ("POST", "/connectors/{connector_id}/test", "/connectors/no-such-source/test", None, None, "connectors.write"),
    ("GET", "/keys", "/keys", None, None, "keys.read"),
    ("POST", "/keys/rotate", "/keys/rotate", None, {"alg": "HS256"}, "keys.write"),
    ("POST", "/keys/{kid}/retire", "/keys/no-such-kid/retire", None, None, "keys.write"),
    ("POST", "/keys/{kid}/revoke", "/keys/no-such-kid/revoke", None, R, "keys.write"),
    ("GET", "/audit/events", "/audit/events", {"limit": 1}, None, "audit.read"),
    ("GET", "/audit/export.jsonl", "/audit/export.jsonl", {"event": "no.such.event"}, None, "audit.read"),
    ("GET", "/audit/export.csv", "/audit/export.csv", {"event": "no.such.event"}, None, "audit.read"),
    ("POST", "/audit/verify", "/audit/verify", None, None, "audit.read"),
    ("GET", "/roles", "/roles", None, None, "roles.read"),
    ("POST", "/roles", "/roles", None, {"person_id": NOBODY, "role": "auditor"}, "roles.write"),
    ("DELETE", "/roles/{person_id}/{role}", f"/roles/{NOBODY}/auditor", None, None, "roles.write"),
]


# Who may do what, written out here independently of admin/roles.py: a change to the table there
# that is not made here too fails the test below.
SUPER, CLIENTS, CONNECTORS, SUPPORT, AUDITOR = (Role.SUPER_ADMIN, Role.CLIENT_ADMIN, Role.CONNECTOR_ADMIN, Role.SUPPORT,
                                                Role.AUDITOR)
EXPECTED = {
    "me": {SUPER, CLIENTS, CONNECTORS, SUPPORT, AUDITOR},
    "clients.read": {SUPER, CLIENTS, AUDITOR},
    "clients.write": {SUPER, CLIENTS},
    "registration.write": {SUPER, CLIENTS},
    "people.read": {SUPER, SUPPORT},
    "people.write": {SUPER, SUPPORT},
    "connectors.read": {SUPER, CONNECTORS, AUDITOR},
    "connectors.write": {SUPER, CONNECTORS},
    "keys.read": {SUPER, AUDITOR},
    "keys.write": {SUPER},
    "audit.read": {SUPER, AUDITOR},
    "roles.read": {SUPER, AUDITOR},
    "roles.write": {SUPER},
}


def test_the_role_table_is_the_one_agreed():
    assert {k: set(v) for k, v in PERMISSIONS.items()} == EXPECTED


@pytest.fixture(scope="module")
def operators(app):  # noqa: ANN001, ANN201
    """One signed-in operator per role (each holding that role only)."""
    return {role: signed_in(app, role) for role in Role}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_each_role_is_allowed_exactly_its_operations(http, operators, role):  # noqa: ANN001
    op = operators[role]
    outcomes = {}
    for method, _, path, query, body, permission in OPERATIONS:
        r = http.request(method, f"/admin/api{path}", params=query, json=body, headers=op.headers())
        allowed = role in EXPECTED[permission]
        if allowed:
            assert r.status_code in (200, 204, 400, 404), (role, method, path, r.status_code, r.text[:200])
            assert r.status_code != 400 or body is not None or query is not None, (role, method, path, r.text[:200])
        else:
            assert r.status_code == 403 and r.json()["error"] == "access_denied", (role, method, path, r.status_code, r.text[:200])
        outcomes[(method, path)] = r.status_code
    expected_allowed = {(m, p) for m, _, p, _, _, perm in OPERATIONS if role in EXPECTED[perm]}
    assert {k for k, v in outcomes.items() if v != 403} == expected_allowed


def test_allowed_calls_reach_the_operation(http, operators):  # noqa: ANN001
    """Not only 'not 403': the operation ran and answered for its missing target."""
    admin = operators[Role.SUPER_ADMIN].headers()
    assert http.get("/admin/api/clients/no-such-app", headers=admin).json()["error"] == "not_found"
    assert http.post(f"/admin/api/people/{NOBODY}/lock", json=R, headers=admin).status_code == 404
    assert http.get("/admin/api/people", params={"national_id": "000000000000", **R}, headers=admin).json() == []
    assert http.delete(f"/admin/api/roles/{NOBODY}/auditor", headers=admin).json() == {"changed": False}
    assert http.get("/admin/api/connectors/no-such-source", headers=admin).json()["error"] == "not_found"
    assert http.put("/admin/api/connectors/no-such-source", json={"type": "no-such-type"}, headers=admin).json()["error"] == \
        "invalid_connector_config"
    assert http.post("/admin/api/keys/no-such-kid/revoke", json=R, headers=admin).json()["error"] == "not_found"
    assert http.post("/admin/api/keys/rotate", json={"alg": "HS256"}, headers=admin).status_code == 400


def test_the_table_covers_every_operation_of_the_openapi_document(http):  # noqa: ANN001
    spec = http.get("/admin/api/openapi.json").json()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert documented == {(m, p) for m, p, *_ in OPERATIONS}
    assert {perm for *_, perm in OPERATIONS} == set(PERMISSIONS)  # no permission without an operation


def test_every_operation_says_it_needs_the_bearer_token(http):  # noqa: ANN001
    spec = http.get("/admin/api/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert {"HTTPBearer": []} in op.get("security", []), (method, path)
