"""The audit trail through the admin API: filters (actor, subject, event, time), JSON Lines and
CSV exports, and the chain verified from the API, also against a checkpoint and after an edit."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime, timezone

import pytest
from starlette.testclient import TestClient

from admin.roles import Role
from tests.admin.operators import signed_in
from tests.admin.test_audit_checkpoints import Trail, edit
from tests.conftest import make_citizen

API = "/admin/api/audit"


@pytest.fixture(scope="module")
def auditor(app):  # noqa: ANN001, ANN201
    return signed_in(app, Role.AUDITOR)


@pytest.fixture(scope="module")
def incident(app):  # noqa: ANN001, ANN201
    """A support agent's two actions on one person, between two instants."""
    nixa = app.state.nixa
    agent = signed_in(app, Role.SUPPORT)
    citizen = make_citizen(nixa)
    start = time.time()
    with TestClient(app, base_url="http://testserver") as http:
        for action in ("lock", "unlock"):
            assert http.post(f"/admin/api/people/{citizen.person_id}/{action}", json={"reason": f"phiếu {action}"},
                             headers=agent.headers()).status_code == 200
    return {"agent": agent, "person_id": citizen.person_id, "start": start, "end": time.time() + 0.001}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def test_filter_by_actor_subject_event_and_time(http, auditor, incident):  # noqa: ANN001
    h = auditor.headers()
    by_actor = http.get(f"{API}/events", params={"actor": incident["agent"].person_id, "event": "admin.changed"}, headers=h).json()
    assert [e["data"]["what"] for e in by_actor] == ["person.unlock", "person.lock"]  # newest first
    assert all(e["data"]["actor"]["person_id"] == incident["agent"].person_id for e in by_actor)
    by_subject = http.get(f"{API}/events", params={"subject": incident["person_id"]}, headers=h).json()
    assert {"admin.changed", "person.status_changed", "person.created"} <= {e["type"] for e in by_subject}
    assert all(e["person_id"] == incident["person_id"] for e in by_subject)
    prefix = http.get(f"{API}/events", params={"subject": incident["person_id"], "event": "person."}, headers=h).json()
    assert {e["type"] for e in prefix} == {"person.status_changed", "person.created"}
    window = {"subject": incident["person_id"], "since": iso(incident["start"]), "until": iso(incident["end"])}
    inside = http.get(f"{API}/events", params=window, headers=h).json()
    assert "person.created" not in {e["type"] for e in inside} and len(inside) >= 4
    page = http.get(f"{API}/events", params={"subject": incident["person_id"], "limit": 2}, headers=h).json()
    nxt = http.get(f"{API}/events", params={"subject": incident["person_id"], "limit": 2, "before_id": page[-1]["id"]}, headers=h).json()
    assert len(page) == 2 and nxt and nxt[0]["id"] < page[-1]["id"]
    for bad in ({"event": "DROP TABLE"}, {"actor": "x' OR 1=1"}, {"since": iso(incident["end"]), "until": iso(incident["start"])}):
        assert http.get(f"{API}/events", params=bad, headers=h).status_code == 400, bad


def test_exports_hold_the_same_events_as_the_filter(http, auditor, incident):  # noqa: ANN001
    h = auditor.headers()
    params = {"actor": incident["agent"].person_id, "event": "admin.changed"}
    listed = http.get(f"{API}/events", params=params, headers=h).json()
    r = http.get(f"{API}/export.jsonl", params=params, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/jsonl")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [e["id"] for e in lines] == sorted(e["id"] for e in listed)  # oldest first
    assert lines[0]["data"]["reason"] == "phiếu lock"
    r = http.get(f"{API}/export.csv", params=params, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(row["id"]) for row in rows] == [e["id"] for e in lines]
    assert json.loads(rows[0]["data"])["what"] == "person.lock"
    exports = http.get(f"{API}/events", params={"actor": auditor.person_id, "event": "admin.viewed"}, headers=h).json()
    assert {e["data"]["target"] for e in exports} >= {"jsonl", "csv"}  # who exported is audited too


def test_verify_from_the_api_catches_an_edited_row(tmp_path, master_key):  # noqa: ANN001
    from idp.app import create_app

    trail = Trail(tmp_path, master_key)
    try:
        app = create_app(trail.nixa.settings, nixa=trail.nixa)
        auditor = signed_in(app, Role.AUDITOR)
        trail.emit(5)
        with TestClient(app, base_url="http://testserver") as http:
            h = auditor.headers()
            checkpoint = trail.nixa.audit.checkpoint_now()
            r = http.post(f"{API}/verify", json={"checkpoint": checkpoint}, headers=h)
            assert r.status_code == 200 and r.json()["ok"] is True, r.text
            assert http.post(f"{API}/verify", json={"checkpoint": "a.b.c"}, headers=h).status_code == 400
            victim = trail.rows()[3]
            edit(trail, victim, change="rewritten")
            verdict = http.post(f"{API}/verify", headers=h).json()
            assert verdict["ok"] is False and verdict["bad_event"] == victim.id
    finally:
        trail.close()
