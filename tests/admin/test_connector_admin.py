"""Connector administration: one declaration per type, unknown keys refused, secrets write-only,
enable/disable/test, every change audited with before and after (admin/connector_admin.py)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from admin import connector_admin
from connectors.declaration import ConfigRefused, options
from connectors.registry import CONNECTOR_TYPES
from tests.conftest import free_port, uid

ACTOR = {"via": "test", "name": "tester"}


def _registry_config(**over) -> dict:  # noqa: ANN003
    # Nothing listens on this port: saving never calls the source, testing it fails plainly.
    return {"base_url": f"http://127.0.0.1:{free_port()}", "api_key": "registry-key-1", "otp_connector": "telecom", **over}


def _last_change(nixa, connector_id: str) -> dict:  # noqa: ANN001
    from idp.store.models import AuditEvent

    with nixa.db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.type == "connector.changed").order_by(AuditEvent.id.desc()).limit(50)).all()
    return next(r.data for r in rows if r.data.get("connector") == connector_id)


@pytest.mark.parametrize("type_name", sorted(CONNECTOR_TYPES))
def test_every_type_declares_and_documents_each_key(type_name: str) -> None:
    declared = options(type_name)
    assert declared, type_name
    assert all(o.doc for o in declared), [o.name for o in declared if not o.doc]
    secrets = {o.name for o in declared if o.secret}
    from connectors.registry import secret_keys

    assert secret_keys(type_name) == secrets  # every secret is a declared key, and marked


def test_an_unknown_key_is_refused_by_name_and_nothing_is_written(nixa) -> None:  # noqa: ANN001
    cid = uid("reg")
    with pytest.raises(ConfigRefused) as refused:
        connector_admin.save(nixa, cid, "population", _registry_config(base_ur="http://typo"), actor=ACTOR)
    assert "base_ur" in str(refused.value) and "base_url" in str(refused.value)
    assert nixa.connectors.stored(cid) is None


def test_a_value_of_the_wrong_kind_and_a_missing_required_key_are_refused(nixa) -> None:  # noqa: ANN001
    with pytest.raises(ConfigRefused) as refused:
        connector_admin.save(nixa, uid("reg"), "population", {**_registry_config(timeout="soon"), "api_key": ""}, actor=ACTOR)
    problems = " ".join(refused.value.problems)
    assert "`timeout` must be a number" in problems and "api_key" in problems


def test_secrets_are_never_shown_and_an_edit_without_them_keeps_them(nixa, run) -> None:  # noqa: ANN001
    cid = uid("reg")
    connector_admin.save(nixa, cid, "population", _registry_config(), actor=ACTOR)
    shown = run("connectors", "show", cid)
    assert shown.exit_code == 0 and "registry-key-1" not in shown.output
    assert json.loads(shown.output)["config"]["api_key"] == {"set": True}
    # An edit that leaves the secret out (a form never sends it back) keeps it.
    edited = _registry_config(timeout=7)
    del edited["api_key"]
    view = connector_admin.save(nixa, cid, "population", edited, actor=ACTOR)
    assert nixa.connectors.stored(cid).config["api_key"] == "registry-key-1"
    change = _last_change(nixa, cid)
    assert change["changes"]["timeout"] == {"before": None, "after": 7} and "api_key" not in change["changes"]
    # A new secret: audited as changed, its value nowhere in the event.
    connector_admin.save(nixa, cid, "population", _registry_config(api_key="registry-key-2"), actor=ACTOR)
    change = _last_change(nixa, cid)
    assert change["changes"]["api_key"] == "(changed)"
    assert "registry-key-2" not in json.dumps(change) and "registry-key-1" not in json.dumps(change)
    assert view.config["api_key"] == {"set": True}


def test_disable_stops_offering_the_connector_and_an_edit_keeps_it_disabled(nixa, run) -> None:  # noqa: ANN001
    cid = uid("reg")
    connector_admin.save(nixa, cid, "population", _registry_config(), actor=ACTOR)
    assert nixa.connectors.entry(cid) is not None
    out = run("connectors", "disable", cid)
    assert out.exit_code == 0 and "disabled" in out.output
    nixa.connectors.reload()
    assert nixa.connectors.entry(cid) is None
    change = _last_change(nixa, cid)
    assert change["action"] == "disabled" and change["changes"]["enabled"] == {"before": True, "after": False}
    assert change["actor"]["via"] == "cli"
    connector_admin.save(nixa, cid, "population", _registry_config(timeout=9), actor=ACTOR)
    assert nixa.connectors.stored(cid).enabled is False and nixa.connectors.entry(cid) is None
    assert run("connectors", "enable", cid).exit_code == 0
    nixa.connectors.reload()
    assert nixa.connectors.entry(cid) is not None
    listed = json.loads(run("connectors", "list", "--json").output)
    assert any(c["id"] == cid and c["enabled"] and c["config"]["api_key"] == {"set": True} for c in listed)


def test_testing_a_connection_says_whether_the_source_answers(nixa, run) -> None:  # noqa: ANN001
    cid = uid("reg")
    connector_admin.save(nixa, cid, "population", _registry_config(timeout=1, retries=0), actor=ACTOR)
    out = run("connectors", "test", cid)
    assert out.exit_code == 1 and "FAILING" in out.output
    assert run("connectors", "test", uid("none")).exit_code == 2
    assert connector_admin.test(nixa, cid)["ok"] is False


def test_describe_lists_each_types_keys(run) -> None:  # noqa: ANN001
    out = run("connectors", "describe", "population")
    assert out.exit_code == 0
    assert "api_key (string, required, secret, write-only)" in out.output and "timeout (number) = 3.0" in out.output
    described = json.loads(run("connectors", "describe", "--json").output)
    assert {t["type"] for t in described} == set(CONNECTOR_TYPES)
    assert all(o["default"] is None for t in described for o in t["options"] if o["secret"])
    assert run("connectors", "describe", "nope").exit_code == 2


def test_the_cli_refuses_an_unknown_key_plainly(run, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_registry_config(colour="blue")), encoding="utf-8")
    out = run("connectors", "set", uid("reg"), "population", str(path))
    assert out.exit_code == 2 and "colour" in out.output and "Traceback" not in out.output
