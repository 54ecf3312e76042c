"""`nixa` admin commands, run in-process through typer's CliRunner against the test database."""

from __future__ import annotations

import json
import secrets

import pytest
from typer.testing import CliRunner

from admin.cli import app
from tests.conftest import REDIS_URL, uid


def client_md(**over) -> dict:
    md = {"client_id": uid("cli"), "client_name": "Dịch vụ công", "redirect_uris": ["https://dvc.example.vn/cb"],
          "grant_types": ["authorization_code", "refresh_token"]}
    md.update(over)
    return md


def write(tmp_path, data) -> str:  # noqa: ANN001
    path = tmp_path / f"{uid('clients')}.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_import_creates_and_shows_the_secret_once(run, nixa, tmp_path):
    md = client_md()
    path = write(tmp_path, [md])
    r = run("clients", "import", path)
    assert r.exit_code == 0, r.output
    assert f"created {md['client_id']}" in r.output
    secret = r.output.split("client_secret=")[1].split()[0]
    assert len(secret) >= 32
    model = nixa.clients.get(md["client_id"])
    assert model is not None and model.check_client_secret(secret)
    assert secret not in json.dumps(model.metadata)
    # again: idempotent, no new secret, the old one still works
    r = run("clients", "import", path)
    assert r.exit_code == 0, r.output
    assert f"updated {md['client_id']}" in r.output
    assert "client_secret=" not in r.output
    nixa.clients.invalidate(md["client_id"])
    assert nixa.clients.get(md["client_id"]).check_client_secret(secret)


def test_import_a_single_object_and_an_update(run, nixa, tmp_path):
    md = client_md(token_endpoint_auth_method="none")
    assert run("clients", "import", write(tmp_path, md)).exit_code == 0
    md["client_name"] = "Tên mới"
    r = run("clients", "import", write(tmp_path, md))
    assert r.exit_code == 0 and "updated" in r.output and "client_secret=" not in r.output
    nixa.clients.invalidate(md["client_id"])
    assert nixa.clients.get(md["client_id"]).name == "Tên mới"


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"colour": "blue"}, "unknown metadata field"),
        ({"redirect_uris": ["http://dvc.example.vn/cb"]}, "redirect_uris"),
        ({"redirect_uris": ["https://dvc.example.vn/cb#frag"]}, "fragment"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "redirect_uris"),
        ({"grant_types": ["password"]}, "grant_types"),
        ({"grant_types": ["implicit"]}, "grant_types"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "token_endpoint_auth_method"),
        ({"client_secret": "short"}, "client_secret"),
        ({"response_types": ["token"]}, "response_types"),
    ],
)
def test_import_refuses_bad_metadata_and_imports_nothing(run, nixa, tmp_path, bad, message):
    good = client_md()
    broken = client_md(**bad)
    r = run("clients", "import", write(tmp_path, [good, broken]))
    assert r.exit_code != 0
    assert message in r.output, r.output
    assert "nothing imported" in r.output
    assert broken["client_id"] in r.output
    assert nixa.clients.get(good["client_id"]) is None
    assert nixa.clients.get(broken["client_id"]) is None


def test_import_unreadable_file(run, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    r = run("clients", "import", str(path))
    assert r.exit_code != 0 and "cannot read" in r.output
    r = run("clients", "import", str(tmp_path / "missing.json"))
    assert r.exit_code != 0
    r = run("clients", "import", write(tmp_path, "a string"))
    assert r.exit_code != 0


def test_clients_list(run, tmp_path):
    md = client_md(client_name="Cổng liệt kê")
    run("clients", "import", write(tmp_path, [md]))
    r = run("clients", "list")
    assert r.exit_code == 0 and md["client_id"] in r.output and "Cổng liệt kê" in r.output
    r = run("clients", "list", "--json")
    listed = {c["client_id"]: c for c in json.loads(r.output)}
    assert listed[md["client_id"]]["redirect_uris"] == md["redirect_uris"]
    assert all("client_secret" not in c for c in listed.values())


def test_users_add_then_sign_in(run, nixa):
    username = uid("user")
    password = secrets.token_urlsafe(12)
    r = run("users", "add", username, "--password", password, "--name", "Lê Văn Cường", "--email", f"{username}@example.vn")
    assert r.exit_code == 0, r.output
    assert username in r.output
    pid = nixa.people.check_local_password(username, password)
    assert pid and nixa.people.attributes(pid)["name"].value == "Lê Văn Cường"
    assert nixa.people.check_local_password(username, "wrong-password") is None


def test_users_add_password_from_stdin_and_too_short(run, nixa):
    username = uid("user")
    r = run("users", "add", username, input="stdin-password-123\n")
    assert r.exit_code == 0, r.output
    assert nixa.people.check_local_password(username, "stdin-password-123")
    r = run("users", "add", uid("user"), "--password", "short")
    assert r.exit_code != 0 and "8 characters" in r.output


def test_keys_rotate_and_list(run, nixa):
    nixa.keys.invalidate()
    before = nixa.keys.active_kid("EdDSA")
    r = run("keys", "rotate", "--alg", "EdDSA")
    assert r.exit_code == 0 and "EdDSA: rotated" in r.output, r.output
    nixa.keys.invalidate()
    assert nixa.keys.active_kid("EdDSA") != before
    r = run("keys", "list")
    assert r.exit_code == 0
    line = next(ln for ln in r.output.splitlines() if ln.startswith(before))
    assert line.split()[2] == "retired"  # kid, alg, state, backend, created, activated, retired
    r = run("keys", "prune")
    assert r.exit_code == 0 and "removed" in r.output


def test_migrate_is_idempotent(run):
    r = run("migrate")
    assert r.exit_code == 0 and "schema at head" in r.output


def test_app_refuses_unknown_schema(tmp_path, master_key):
    from sqlalchemy import create_engine, text

    from idp.app import Nixa
    from idp.store.db import SchemaMismatch, migrate
    from tests.conftest import make_settings

    url = f"sqlite:///{(tmp_path / 'throwaway.db').as_posix()}"
    migrate(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffffdeadbeef'"))
    engine.dispose()
    settings = make_settings(tmp_path, url, master_key)
    with pytest.raises(SchemaMismatch, match="unknown"):
        Nixa(settings)
    runner = CliRunner()
    r = runner.invoke(app, ["serve", "--port", "1"], env={"NIXA_DATABASE_URL": url, "NIXA_VAR_DIR": str(tmp_path),
                                                          "NIXA_MASTER_KEY": master_key})
    assert r.exit_code == 2 and "unknown" in r.output


def test_app_refuses_an_empty_database(tmp_path, master_key):
    from idp.app import Nixa
    from idp.store.db import SchemaMismatch
    from tests.conftest import make_settings

    url = f"sqlite:///{(tmp_path / 'empty.db').as_posix()}"
    with pytest.raises(SchemaMismatch, match="nixa migrate"):
        Nixa(make_settings(tmp_path, url, master_key))


def test_connectors_set_list_and_health(run, nixa, tmp_path):  # noqa: ANN001
    from tests.conftest import free_port

    cid = "sms-cli-" + str(free_port())
    config = write(tmp_path, {"base_url": f"http://127.0.0.1:{free_port()}", "api_key": "k", "timeout": 0.5})
    out = run("connectors", "set", cid, "telecom_sms", config, "--loa", "low", "--name-en", "SMS (cli)")
    assert out.exit_code == 0 and "version 1" in out.stdout
    again = run("connectors", "set", cid, "telecom_sms", config, "--loa", "low", "--name-en", "SMS (cli)")
    assert "version 1" in again.stdout  # unchanged: same version
    assert cid in run("connectors", "list").stdout
    health = run("connectors", "health")
    assert health.exit_code == 1 and any(line.startswith(cid) and "FAILING" in line for line in health.stdout.splitlines())
    bad = run("connectors", "set", "x", "no-such-type", config)
    assert bad.exit_code != 0
    nixa.connectors.upsert(cid, "telecom_sms", {"base_url": "http://127.0.0.1:1", "api_key": "k"}, enabled=False)


def test_connectors_set_refuses_a_configuration_the_connector_rejects(run, tmp_path):  # noqa: ANN001
    bad = write(tmp_path, {"url": "ldap://127.0.0.1:1", "no_such_key": True})
    out = run("connectors", "set", "ldap-bad", "ldap", bad)
    assert out.exit_code == 2 and "no_such_key" in out.stderr
    assert "ldap-bad" not in run("connectors", "list").stdout


def test_audit_verify_and_tail(run, nixa):  # noqa: ANN001
    from sqlalchemy import select, update

    from idp.store.models import AuditEvent

    nixa.events.emit("admin.changed", data={"test": "audit-cli"})
    assert run("audit", "verify").exit_code == 0
    tail = run("audit", "tail", "-n", "5", "--type", "admin.")
    assert "audit-cli" in tail.stdout
    with nixa.db.session() as s:
        last = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        original = dict(last.data)
        s.execute(update(AuditEvent).where(AuditEvent.id == last.id).values(data={"test": "tampered"}))
    try:
        broken = run("audit", "verify")
        assert broken.exit_code == 1 and str(last.id) in broken.stderr
    finally:
        with nixa.db.session() as s:
            s.execute(update(AuditEvent).where(AuditEvent.id == last.id).values(data=original))
    assert run("audit", "verify").exit_code == 0


def test_admin_commands_record_their_actor(run, nixa, tmp_path):  # noqa: ANN001
    import getpass
    import socket

    from sqlalchemy import select

    from idp.store.models import AuditEvent

    def latest(type_: str, **where: str) -> AuditEvent:
        with nixa.db.session() as s:
            q = select(AuditEvent).where(AuditEvent.type == type_, *(getattr(AuditEvent, k) == v for k, v in where.items()))
            return s.scalars(q.order_by(AuditEvent.id.desc()).limit(1)).first()

    name = uid("auditor")
    assert run("--actor", name, "keys", "rotate", "--alg", "EdDSA").exit_code == 0
    actor = latest("key.rotated").data["actor"]
    assert actor == {"via": "cli", "os_user": getpass.getuser(), "host": socket.gethostname(), "name": name}
    md = client_md()
    runner = CliRunner()
    env = {"NIXA_DATABASE_URL": nixa.settings.database_url, "NIXA_VAR_DIR": str(nixa.settings.var_dir),
           "NIXA_MASTER_KEY": nixa.settings.master_key, "NIXA_REDIS_URL": REDIS_URL, "NIXA_ACTOR": "ops-on-call"}
    assert runner.invoke(app, ["clients", "import", write(tmp_path, [md])], env=env).exit_code == 0
    assert latest("client.changed", client_id=md["client_id"]).data["actor"]["name"] == "ops-on-call"
    assert run("clients", "rotate-secret", md["client_id"]).exit_code == 0  # no name given: still the OS user and host
    unnamed = latest("admin.changed", client_id=md["client_id"]).data  # the admin API's operation (admin/apps.py)
    assert unnamed["what"] == "client.rotate_secret" and unnamed["actor"]["os_user"] == getpass.getuser() and "name" not in unnamed["actor"]


def test_readme_configuration_reference_is_the_generated_one(run):  # noqa: ANN001
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- config:start", 1)[1].split("-->", 1)[1].split("<!-- config:end -->", 1)[0]
    assert block.strip() == run("config", "--markdown").stdout.strip()


def test_a_command_on_the_demos_folder_uses_the_demos_throwaway_key(tmp_path):  # noqa: ANN001
    import base64
    import secrets

    demo_var = tmp_path / "demo-var"
    demo_var.mkdir()
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    (demo_var / "master.key").write_text(key)  # what `nixa demo` makes at first start
    runner = CliRunner()
    env = {"NIXA_VAR_DIR": str(demo_var), "NIXA_DATABASE_URL": "", "NIXA_MASTER_KEY": "", "NIXA_REDIS_URL": ""}
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    listed = runner.invoke(app, ["clients", "list"], env=env)
    assert listed.exit_code == 0 and "using the demo's throwaway master key" in listed.output
    # Another folder without that file: still a plain refusal, no key made up.
    other = tmp_path / "other"
    other.mkdir()
    runner.invoke(app, ["migrate"], env={**env, "NIXA_VAR_DIR": str(other), "NIXA_MASTER_KEY": key})
    refused = runner.invoke(app, ["clients", "list"], env={**env, "NIXA_VAR_DIR": str(other)})
    assert refused.exit_code == 2 and "NIXA_MASTER_KEY" in refused.output and not (other / "master.key").exists()
