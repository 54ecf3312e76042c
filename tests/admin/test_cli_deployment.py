"""A CLI that cannot mislead (issue 13): it finds the deployment or refuses plainly, never makes a
second empty NIXA; `clients import` is all-or-nothing; moving a client to another sector needs
--force and says how many people's `sub` change; clients can be disabled, enabled and deleted."""

from __future__ import annotations

from typer.testing import CliRunner

from admin.cli import app
from idp.store.models import Grant
from tests.admin.test_cli import client_md, write
from tests.conftest import free_port, make_citizen


def test_a_command_where_there_is_no_nixa_refuses_and_creates_nothing(tmp_path, master_key):  # noqa: ANN001
    elsewhere = tmp_path / "not-a-deployment"
    r = CliRunner().invoke(app, ["clients", "list"], env={"NIXA_VAR_DIR": str(elsewhere), "NIXA_DATABASE_URL": "",
                                                           "NIXA_MASTER_KEY": master_key, "NIXA_REDIS_URL": ""})
    assert r.exit_code == 2 and "no NIXA at" in r.output and "Traceback" not in r.output
    assert not elsewhere.exists()


def test_migrate_makes_a_new_var_dir_and_the_var_dir_option_finds_it(tmp_path, master_key):  # noqa: ANN001
    new = tmp_path / "deep" / "new-var"
    env = {"NIXA_VAR_DIR": str(tmp_path / "ignored"), "NIXA_DATABASE_URL": "", "NIXA_MASTER_KEY": master_key, "NIXA_REDIS_URL": ""}
    r = CliRunner().invoke(app, ["--var-dir", str(new), "migrate"], env=env)
    assert r.exit_code == 0, r.output
    assert (new / "nixa.db").exists() and not (tmp_path / "ignored").exists()
    r = CliRunner().invoke(app, ["--var-dir", str(new), "clients", "list"], env=env)
    assert r.exit_code == 0, r.output


def test_import_is_all_or_nothing_when_a_later_client_fails_its_fetch(run, nixa, tmp_path):  # noqa: ANN001
    first = client_md()
    second = client_md(redirect_uris=["https://a.example.vn/cb"],
                       sector_identifier_uri=f"https://127.0.0.1:{free_port()}/sector.json")  # nothing answers there
    r = run("clients", "import", write(tmp_path, [first, second]))
    assert r.exit_code == 2 and "nothing imported" in r.output and "Traceback" not in r.output
    assert nixa.clients.get(first["client_id"]) is None  # the first one was not written either


def test_moving_a_client_to_another_sector_needs_force_and_says_whom_it_affects(run, nixa, tmp_path):  # noqa: ANN001
    md = client_md(redirect_uris=["https://old.example.vn/cb"])
    assert run("clients", "import", write(tmp_path, [md])).exit_code == 0
    for _ in range(2):
        nixa.tokens.new_grant(client_id=md["client_id"], person_id=make_citizen(nixa).person_id, scope="openid")
    moved = dict(md, redirect_uris=["https://new.example.vn/cb"])
    r = run("clients", "import", write(tmp_path, [moved]))
    assert r.exit_code == 2 and "old.example.vn to new.example.vn" in r.output and "2 person(s)" in r.output
    nixa.clients.invalidate(md["client_id"])
    assert nixa.clients.get(md["client_id"]).sector == "old.example.vn"
    r = run("clients", "import", "--force", write(tmp_path, [moved]))
    assert r.exit_code == 0, r.output
    nixa.clients.invalidate(md["client_id"])
    assert nixa.clients.get(md["client_id"]).sector == "new.example.vn"


def test_disable_enable_and_delete_a_client(run, nixa, tmp_path):  # noqa: ANN001
    md = client_md()
    assert run("clients", "import", write(tmp_path, [md])).exit_code == 0
    grant = nixa.tokens.new_grant(client_id=md["client_id"], person_id=make_citizen(nixa).person_id, scope="openid")
    r = run("clients", "disable", md["client_id"])
    assert r.exit_code == 0 and "1 grant(s) revoked" in r.output
    with nixa.db.session() as s:
        assert s.get(Grant, grant).revoked_reason == "client_disabled"  # its refresh tokens died with it
    nixa.clients.invalidate(md["client_id"])  # this test's worker caches clients for 5 s
    assert nixa.clients.get(md["client_id"]) is None
    assert run("clients", "enable", md["client_id"]).exit_code == 0
    nixa.clients.invalidate(md["client_id"])
    assert nixa.clients.get(md["client_id"]) is not None
    assert run("clients", "delete", md["client_id"], input="n\n").exit_code == 1  # asked, and declined
    assert run("clients", "delete", md["client_id"], "--yes").exit_code == 0
    nixa.clients.invalidate(md["client_id"])
    assert nixa.clients.get(md["client_id"]) is None and md["client_id"] not in run("clients", "list").output
    r = run("clients", "disable", "no-such-client")
    assert r.exit_code == 2 and "no client" in r.output
