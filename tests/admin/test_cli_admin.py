"""`nixa admin …`: the admin API's operations from the command line, over the same services,
with the command line's actor (OS user, host, --actor) on every audit event."""

from __future__ import annotations

import getpass
import json

from admin.roles import Role
from tests.admin.operators import console_sign_in, new_operator
from tests.conftest import make_citizen
from tests.oidc.test_audit import events_for


def test_bootstrap_the_first_super_admin_then_revoke(run, app, http, nixa):  # noqa: ANN001
    op = new_operator(nixa)  # no role yet
    op.token = console_sign_in(app, op)["access_token"]
    assert http.get("/admin/api/me", headers=op.headers()).status_code == 403
    r = run("--actor", "bootstrap", "admin", "grant-role", "super-admin", "--username", op.username)
    assert r.exit_code == 0 and r.output.strip() == f"{op.person_id}: super-admin granted", r.output
    assert http.get("/admin/api/me", headers=op.headers()).json()["roles"] == ["super-admin"]
    assert "already held" in run("admin", "grant-role", "super-admin", op.person_id).output
    assert op.person_id in run("admin", "roles").output
    granted = [e.data for e in events_for(nixa, type="admin.changed", person_id=op.person_id) if e.data["what"] == "role.grant"][0]
    assert granted["actor"]["via"] == "cli" and granted["actor"]["name"] == "bootstrap" and granted["after"] == {"role": "super-admin"}
    r = run("admin", "revoke-role", "super-admin", op.person_id)
    assert r.exit_code == 0 and http.get("/admin/api/me", headers=op.headers()).status_code == 403
    assert run("admin", "grant-role", "emperor", op.person_id).exit_code == 2
    assert run("admin", "grant-role", "auditor", "--national-id", "999999999999").exit_code == 2


def test_support_from_the_command_line_needs_a_reason_and_is_shown_to_the_citizen(run, nixa):  # noqa: ANN001
    from idp.account import service as account

    citizen = make_citizen(nixa)
    assert run("admin", "lock", citizen.person_id, "--reason", "x").exit_code == 2  # too short a reason
    r = run("admin", "lock", "--username", citizen.username, "--reason", "tài khoản bị chiếm đoạt (phiếu 9)")
    assert r.exit_code == 0 and nixa.people.get(citizen.person_id).status == "locked", r.output
    assert run("admin", "unlock", citizen.person_id, "--reason", "đã xác minh").exit_code == 0
    shown = json.loads(run("admin", "show", citizen.person_id, "--reason", "kiểm tra sau sự cố").output)
    assert shown["status"] == "active" and shown["links"][0]["subject"] == citizen.username
    rows, _ = account.access_log(nixa, citizen.person_id, account.AccessLogFilter())
    assert [r.claims[0] for r in rows if r.channel == "support"] == ["support_view", "support_unlock", "support_lock"]
    lock = [e.data for e in events_for(nixa, type="admin.changed", person_id=citizen.person_id) if e.data["what"] == "person.lock"][0]
    assert lock["actor"]["os_user"] == getpass.getuser() and lock["reason"] == "tài khoản bị chiếm đoạt (phiếu 9)"
    r = run("admin", "sign-out", citizen.person_id, "--reason", "công dân yêu cầu")
    assert r.exit_code == 0 and "0 session(s) ended" in r.output


def test_audit_export_and_the_openapi_document(run, http, nixa):  # noqa: ANN001
    citizen = make_citizen(nixa)
    run("admin", "lock", citizen.person_id, "--reason", "kiểm tra xuất nhật ký")
    r = run("admin", "audit-export", "--subject", citizen.person_id, "--event", "admin.changed")
    lines = [json.loads(line) for line in r.output.splitlines()]
    assert r.exit_code == 0 and [e["data"]["what"] for e in lines] == ["person.lock"]
    r = run("admin", "audit-export", "--format", "csv", "--subject", citizen.person_id, "--event", "admin.changed")
    assert r.output.splitlines()[0] == "id,at,type,person_id,client_id,ip,data,hash" and len(r.output.splitlines()) == 2
    assert json.loads(run("admin", "openapi").output) == http.get("/admin/api/openapi.json").json()


def test_a_registration_token_from_the_command_line_registers_a_client(run, http):  # noqa: ANN001
    r = run("admin", "registration-token", "--label", "Sở Y tế", "--uses", "1")
    token = r.output.split("initial_access_token=")[1].split()[0]
    reg = http.post("/register", json={"redirect_uris": ["https://syt.example.vn/cb"]}, headers={"Authorization": f"Bearer {token}"})
    assert reg.status_code == 201, reg.text
