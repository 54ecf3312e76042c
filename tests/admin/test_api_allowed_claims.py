"""`nixa_allowed_claims` wherever client metadata comes in: the admin API's create and update,
`nixa clients import`, and dynamic registration (RFC 7591) refuse an unknown claim name with
invalid_client_metadata naming it, and keep a known list (what it does: tests/oidc/test_allowed_claims.py)."""

from __future__ import annotations

import json

from admin.roles import Role
from tests.admin.operators import signed_in
from tests.conftest import uid


def test_the_admin_api_the_cli_and_registration_refuse_an_unknown_claim_and_keep_a_known_one(app, http, run, tmp_path):  # noqa: ANN001
    admin = signed_in(app, Role.CLIENT_ADMIN).headers()
    md = {"client_id": uid("app"), "redirect_uris": ["https://dvc.example.vn/cb"], "scope": "openid profile",
          "nixa_allowed_claims": ["name", "favourite_colour"]}
    r = http.post("/admin/api/clients", json=md, headers=admin)
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata" and "favourite_colour" in r.json()["error_description"]
    r = http.post("/admin/api/clients", json={**md, "nixa_allowed_claims": ["name"]}, headers=admin)
    assert r.status_code == 201 and r.json()["app"]["metadata"]["nixa_allowed_claims"] == ["name"]
    r = http.put(f"/admin/api/clients/{md['client_id']}", json={**md, "nixa_allowed_claims": ["birthdate", "nope"]}, headers=admin)
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata" and "nope" in r.json()["error_description"]
    r = http.put(f"/admin/api/clients/{md['client_id']}", json={**md, "nixa_allowed_claims": ["name", "birthdate"]}, headers=admin)
    assert r.status_code == 200 and r.json()["metadata"]["nixa_allowed_claims"] == ["birthdate", "name"]

    path = tmp_path / "clients.json"
    path.write_text(json.dumps([{**md, "client_id": uid("cli"), "nixa_allowed_claims": ["nope"]}]), encoding="utf-8")
    out = run("clients", "import", str(path))
    assert out.exit_code != 0 and "nixa_allowed_claims" in out.output
    cli_id = uid("cli")
    path.write_text(json.dumps([{**md, "client_id": cli_id, "nixa_allowed_claims": ["name"]}]), encoding="utf-8")
    assert run("clients", "import", str(path)).exit_code == 0
    assert app.state.nixa.clients.get(cli_id).allowed_claims == {"name"}

    token = http.post("/admin/api/registration-tokens", json={"label": "Sở thử nghiệm", "uses": 2}, headers=admin).json()
    bearer = {"Authorization": f"Bearer {token['initial_access_token']}"}
    body = {"client_name": "Tự đăng ký", "redirect_uris": ["https://tudangky.example.vn/cb"], "scope": "openid profile",
            "grant_types": ["authorization_code"], "nixa_allowed_claims": ["name", "shoe_size"]}
    r = http.post("/register", json=body, headers=bearer)
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata" and "shoe_size" in r.json()["error_description"]
    r = http.post("/register", json={**body, "nixa_allowed_claims": ["name"]}, headers=bearer)
    assert r.status_code == 201 and r.json()["nixa_allowed_claims"] == ["name"]
