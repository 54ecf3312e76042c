"""The admin API's connector routes, on a NIXA of its own (tests/admin/conftest.py own_app): a
connector-admin configures an identity source through the API and the very next sign-in uses
it, on this worker and on another one, without a restart; unknown keys are refused by name and
nothing is written; secrets are write-only; enable, disable and test; every change audited."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from admin.roles import Role
from connectors.telecom.phone import normalize_msisdn
from tests.admin.operators import signed_in
from tests.conftest import form_action, free_port, hidden, register_client
from tests.connectors.sandboxes import running_sandbox
from tests.connectors.telecom.outbox import latest_code
from tests.login.test_identity_assurance import LOW, login_page, own_browser

SMS_KEY = secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def sms() -> Iterator:  # noqa: ANN001
    with running_sandbox("connectors.telecom.sandbox", f"--api-key={SMS_KEY}") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def connector_admin(own_app):  # noqa: ANN001, ANN201
    return signed_in(own_app, Role.CONNECTOR_ADMIN).headers()


def _phone() -> str:
    return "09" + "".join(secrets.choice("0123456789") for _ in range(8))


def _changes(nixa, connector_id: str) -> list[dict]:  # noqa: ANN001
    from idp.store.models import AuditEvent

    with nixa.db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.type == "connector.changed").order_by(AuditEvent.id)).all()
    return [r.data for r in rows if r.data.get("connector") == connector_id]


def test_an_edit_through_the_api_is_used_by_the_next_sign_in_without_a_restart(own_app, own_http, connector_admin, sms):  # noqa: ANN001
    from idp.app import Nixa

    nixa = own_app.state.nixa
    other_worker = Nixa(nixa.settings)  # a second worker on the same database, started before the edit
    other_worker.connectors.check_every = 0.0
    portal = register_client(nixa, nixa_first_party=True)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    r = own_http.put("/admin/api/connectors/sms-live", headers=connector_admin, json={
        "type": "telecom_sms", "config": {"base_url": dead, "api_key": SMS_KEY, "timeout": 0.5, "resend_after": 0},
        "display_name_vi": "Tin nhắn (cũ)", "display_name_en": "SMS (old)"})
    assert r.status_code == 200, r.text
    assert r.json()["config"]["api_key"] == {"set": True} and SMS_KEY not in r.text
    with own_browser(own_app) as b:
        _, page, _ = login_page(b, portal, acr_values=LOW)
        assert "Tin nhắn (cũ)" in page
        r = b.post(form_action(page, "/challenge/sms-live"), data={"csrf": hidden(page, "csrf"), "phone": _phone()})
        assert r.status_code in (502, 503)  # the old configuration: a source that does not answer
    assert other_worker.connectors.entry("sms-live").config["base_url"] == dead

    # The edit: a new address, the secret left out (kept: write-only), a new name.
    r = own_http.put("/admin/api/connectors/sms-live", headers=connector_admin, json={
        "type": "telecom_sms", "config": {"base_url": sms.base_url, "timeout": 2, "resend_after": 0},
        "display_name_vi": "Tin nhắn (mới)", "display_name_en": "SMS (new)"})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["config"]["api_key"] == {"set": True}
    phone = _phone()
    with own_browser(own_app) as b:
        _, page, _ = login_page(b, portal, acr_values=LOW)
        assert "Tin nhắn (mới)" in page and "Tin nhắn (cũ)" not in page
        r = b.post(form_action(page, "/challenge/sms-live"), data={"csrf": hidden(page, "csrf"), "phone": phone})
        assert r.status_code == 303 and r.headers["location"].endswith("/otp"), r.text[:300]
    # The sandbox took the kept API key and sent the code: the new configuration, the old secret.
    assert latest_code(sms.base_url, normalize_msisdn(phone))
    entry = other_worker.connectors.entry("sms-live")
    assert entry.config["base_url"] == sms.base_url and entry.display_name_en == "SMS (new)"
    other_worker.audit.close()
    other_worker.db.engine.dispose()

    edits = _changes(nixa, "sms-live")
    assert [e["action"] for e in edits] == ["created", "edited"]
    assert edits[1]["actor"]["via"] == "api" and edits[1]["changes"]["base_url"] == {"before": dead, "after": sms.base_url}
    assert "api_key" not in edits[1]["changes"] and SMS_KEY not in json.dumps(edits)


def test_unknown_keys_and_wrong_kinds_are_refused_by_name_and_nothing_is_written(own_http, connector_admin):  # noqa: ANN001
    r = own_http.put("/admin/api/connectors/sms-typo", headers=connector_admin, json={
        "type": "telecom_sms", "config": {"base_url": "http://127.0.0.1:1", "api_key": "k", "colour": "blue", "timeout": "soon"}})
    assert r.status_code == 400 and r.json()["error"] == "invalid_connector_config"
    assert "colour" in r.json()["error_description"] and "`timeout` must be a number" in r.json()["error_description"]
    assert own_http.get("/admin/api/connectors/sms-typo", headers=connector_admin).status_code == 404
    r = own_http.put("/admin/api/connectors/sms-typo", headers=connector_admin, json={"type": "fax", "config": {}})
    assert r.status_code == 400 and "connector-types" in r.json()["error_description"]
    r = own_http.put("/admin/api/connectors/sms-typo", headers=connector_admin,
                     json={"type": "telecom_sms", "config": {"base_url": "http://127.0.0.1:1"}, "enabled": True})
    assert r.status_code == 400  # enabling is its own action, not a field of a save
    assert own_http.get("/admin/api/connectors/sms-typo", headers=connector_admin).status_code == 404


def test_the_forms_come_from_each_types_declaration(own_http, connector_admin):  # noqa: ANN001
    described = {t["type"]: t for t in own_http.get("/admin/api/connector-types", headers=connector_admin).json()}
    form = described["population"]["form"]
    assert form["type"] == "object" and form["additionalProperties"] is False
    assert {"base_url", "api_key"} <= set(form["required"])
    assert form["properties"]["api_key"]["writeOnly"] is True and "default" not in form["properties"]["api_key"]
    assert form["properties"]["timeout"] == {"type": "number", "title": "timeout", "default": 3.0,
                                             "description": form["properties"]["timeout"]["description"]}
    assert set(form["properties"]) == {o["name"] for o in described["population"]["options"]}
    assert described["ldap"]["form"].get("x-aliases", {}).get("url") == "urls"


def test_list_with_live_health_show_disable_enable_and_test(own_app, own_http, connector_admin, sms):  # noqa: ANN001
    nixa = own_app.state.nixa
    own_http.put("/admin/api/connectors/sms-health", headers=connector_admin, json={
        "type": "telecom_sms", "config": {"base_url": sms.base_url, "api_key": SMS_KEY}})
    listed = {c["id"]: c for c in own_http.get("/admin/api/connectors", headers=connector_admin).json()}
    assert listed["sms-health"]["health"]["ok"] is True and listed["sms-health"]["config"]["api_key"] == {"set": True}
    assert SMS_KEY not in json.dumps(listed)
    quiet = own_http.get("/admin/api/connectors", params={"health": "false"}, headers=connector_admin).json()
    assert all(c["health"] is None for c in quiet)
    assert own_http.post("/admin/api/connectors/sms-health/test", headers=connector_admin).json()["ok"] is True

    r = own_http.post("/admin/api/connectors/sms-health/disable", headers=connector_admin)
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert nixa.connectors.entry("sms-health") is None  # no longer offered, at once
    assert own_http.post("/admin/api/connectors/sms-health/test", headers=connector_admin).json() == {"ok": False, "detail": "disabled"}
    r = own_http.post("/admin/api/connectors/sms-health/enable", headers=connector_admin)
    assert r.json()["enabled"] is True and nixa.connectors.entry("sms-health") is not None
    shown = own_http.get("/admin/api/connectors/sms-health", headers=connector_admin).json()
    assert shown["health"] is None and shown["config"] == {"base_url": sms.base_url, "api_key": {"set": True}}
    assert [e["action"] for e in _changes(nixa, "sms-health")] == ["created", "disabled", "enabled"]
