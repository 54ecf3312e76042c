"""What operators watch: liveness and readiness with honest status codes, Prometheus metrics fed
from the typed events (readable only from the allowed networks), a request id on every answer
that is also on the audit events and log lines of that request, and a reference on error pages."""

from __future__ import annotations

import io
import json
import logging

from sqlalchemy import select
from starlette.testclient import TestClient

from idp.ops import JsonLogs, request_id
from idp.store.models import AuditEvent
from tests.conftest import code_flow, make_citizen, make_settings, register_client


def test_liveness_and_readiness(app):  # noqa: ANN001
    with TestClient(app) as c:
        assert c.get("/healthz").json() == {"status": "alive"}
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "ready"
        assert {name for name, check in r.json()["checks"].items() if check["ok"]} == {"database", "store", "key_ring"}
        assert c.get("/health").status_code == 200  # the older name answers the same


def test_readiness_says_503_when_the_database_is_not_nixas(tmp_path, master_key):  # noqa: ANN001
    """A database NIXA cannot use (here: emptied under a running worker) is not ready, with
    Retry-After; liveness stays 200 (restarting the process would not help)."""
    from idp.app import Nixa, create_app
    from idp.store.db import migrate

    url = f"sqlite:///{tmp_path / 'nixa.db'}"
    migrate(url)
    nixa = Nixa(make_settings(tmp_path, url, master_key))
    app = create_app(nixa.settings, nixa=nixa)
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
        nixa.db.engine.dispose()
        (tmp_path / "nixa.db").unlink()  # the next connection finds an empty database
        r = c.get("/readyz")
        assert r.status_code == 503 and r.headers["retry-after"] == "5" and not r.json()["checks"]["database"]["ok"]
        assert c.get("/healthz").status_code == 200
    nixa.db.engine.dispose()


def test_metrics_count_requests_sign_ins_and_tokens_from_the_events(nixa, app, browser, http):  # noqa: ANN001
    citizen = make_citizen(nixa)
    code_flow(browser, http, register_client(nixa), citizen)
    with TestClient(app, client=("127.0.0.1", 50000)) as scraper:
        r = scraper.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'nixa_sign_ins_total{method="local",outcome="succeeded"}' in text
    assert 'nixa_tokens_issued_total{grant="authorization_code"}' in text
    assert 'nixa_http_requests_total{method="POST",route="/token",status="200"}' in text
    assert 'nixa_http_request_duration_seconds_bucket{le="0.001",route="/token"}' in text
    assert "nixa_audit_queue_depth" in text
    assert citizen.password not in text and citizen.username not in text and citizen.person_id not in text  # figures, no one's data


def test_metrics_are_not_for_everyone(app):  # noqa: ANN001
    with TestClient(app, client=("203.0.113.9", 50000)) as stranger:
        assert stranger.get("/metrics").status_code == 404


def test_a_request_id_on_the_answer_the_audit_event_and_the_error_page(nixa, app):  # noqa: ANN001
    client = register_client(nixa)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
        r = b.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, "wrong-secret-" + "x" * 32))
        assert r.status_code == 401
        rid = r.headers["x-request-id"]
        page = b.get("/interaction/no-such-request")
        assert page.headers["x-request-id"] in page.text and page.headers["x-request-id"] != rid
    with nixa.db.session() as s:
        rows = [e for e in s.scalars(select(AuditEvent).where(AuditEvent.client_id == client.client_id)) if e.data.get("request_id") == rid]
    assert rows, "the failed authentication is in the audit log under the reference the client saw"


def test_a_trusted_proxys_request_id_is_kept_a_strangers_replaced(var_dir, database_url, master_key):  # noqa: ANN001
    from idp.app import Nixa, create_app

    nixa = Nixa(make_settings(var_dir, database_url, master_key, trusted_proxies=["10.9.9.0/24"]))
    app = create_app(nixa.settings, nixa=nixa)
    with TestClient(app, client=("10.9.9.5", 40000)) as via_proxy, TestClient(app, client=("203.0.113.7", 40000)) as direct:
        assert via_proxy.get("/healthz", headers={"X-Request-Id": "nginx-abc123"}).headers["x-request-id"] == "nginx-abc123"
        assert via_proxy.get("/healthz", headers={"X-Request-Id": "bad id\n"}).headers["x-request-id"] != "bad id\n"
        assert direct.get("/healthz", headers={"X-Request-Id": "forged-1"}).headers["x-request-id"] != "forged-1"
    nixa.db.engine.dispose()


def test_json_log_lines_carry_the_request_id():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLogs())
    log = logging.getLogger("nixa.test-ops")
    log.addHandler(handler)
    log.propagate = False
    token = request_id.set("req-42")
    try:
        log.warning("upstream slow: %s", "registry")
    finally:
        request_id.reset(token)
        log.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert line["message"] == "upstream slow: registry" and line["request_id"] == "req-42" and line["level"] == "WARNING"
    assert line["logger"] == "nixa.test-ops" and "time" in line


def test_shutdown_stops_the_audit_writer_and_later_events_still_commit(nixa, app):  # noqa: ANN001
    """Graceful shutdown (uvicorn's lifespan) stops the audit writer after its queue; an event
    emitted afterwards (this test process keeps using the same NIXA) starts a writer again and
    commits, however often that races with the writer stopping."""
    with TestClient(app):
        pass  # startup, then shutdown
    assert nixa.audit._writer is None or not nixa.audit._writer.is_alive()
    for _ in range(20):
        nixa.audit.close()
        make_citizen(nixa)  # each of its events must commit within the audit timeout
