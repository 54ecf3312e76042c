"""On the embedded store the hot paths run on the event loop and do not wait in a thread for
their audit events: they await the writer's commit before the answer leaves (idp/events.py
deferred_audit). The attack: a client obtains tokens, or an agency a citizen's data, that the
audit trail never records, because the database refused the audit row while the answer was
already on its way. Here the database itself refuses (a trigger on the audit table, a full or
failing disk as far as NIXA can tell): no token and no claims leave, and once the database
takes rows again, everything works and is recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from starlette.testclient import TestClient

from tests.conftest import code_flow, make_citizen, register_client


@pytest.fixture()
def embedded(tmp_path, master_key):  # noqa: ANN001, ANN201
    """A NIXA on SQLite and the in-process store whatever the run's backend: the configuration
    whose hot paths run on the event loop."""
    from idp.app import Nixa, create_app
    from idp.settings import Settings
    from idp.store.db import migrate

    url = f"sqlite:///{(tmp_path / 'nixa.db').as_posix()}"
    migrate(url)
    nixa = Nixa(Settings(issuer="http://testserver", database_url=url, redis_url="", var_dir=tmp_path, master_key=master_key))
    assert nixa.works_in_memory
    yield nixa, create_app(nixa.settings, nixa=nixa)
    nixa.audit.close()
    nixa.db.engine.dispose()


def _refuse_audit_rows(nixa, on: bool) -> None:  # noqa: ANN001
    with nixa.db.engine.begin() as c:
        if on:
            c.execute(text("CREATE TRIGGER audit_refused BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
        else:
            c.execute(text("DROP TRIGGER audit_refused"))


def _issued(nixa, client_id: str) -> int:  # noqa: ANN001
    from idp.store.models import AuditEvent

    with nixa.db.session() as s:
        return len(s.scalars(select(AuditEvent.id).where(AuditEvent.type == "token.issued", AuditEvent.client_id == client_id)).all())


def test_no_client_credentials_token_leaves_without_its_audit_row(embedded):  # noqa: ANN001
    nixa, app = embedded
    client = register_client(nixa, grant_types=["client_credentials"], response_types=[], redirect_uris=[], scope="")
    with TestClient(app, raise_server_exceptions=False) as http:
        _refuse_audit_rows(nixa, True)
        r = http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
        assert r.status_code >= 500 and "access_token" not in r.text
        _refuse_audit_rows(nixa, False)
        r = http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
        assert r.status_code == 200 and r.json()["access_token"]
    assert _issued(nixa, client.client_id) == 1  # the one that left, and only it


def test_no_claims_leave_userinfo_without_the_citizens_access_log_entry(embedded):  # noqa: ANN001
    nixa, app = embedded
    client, citizen = register_client(nixa), make_citizen(nixa)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as browser, \
            TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as http:
        token = code_flow(browser, http, client, citizen)["access_token"]
        _refuse_audit_rows(nixa, True)
        r = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code >= 500 and "Nguyễn" not in r.text
        _refuse_audit_rows(nixa, False)
        r = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["name"] == "Nguyễn Thị Bình"
    from idp.store.models import AccessLogEntry

    with nixa.db.session() as s:  # the release that left is in the citizen's access log, though the one before failed
        logged = s.scalars(select(AccessLogEntry).where(AccessLogEntry.person_id == citizen.person_id)).all()
    assert [(e.client_id, e.channel) for e in logged if e.channel == "userinfo"] == [(client.client_id, "userinfo")]


def test_no_code_exchange_and_no_sign_in_leave_without_their_audit_rows(embedded):  # noqa: ANN001
    # The threadpool paths write a request's events as one batch when its work ends
    # (idp/events.py AuditLog.batch): the refusal must still stop the answer. A sign-in whose
    # login.succeeded cannot be recorded sets no session cookie and sends no code; a code
    # exchange whose token.issued cannot be recorded gives no token.
    from tests.conftest import authorize, form_action, hidden, query_of

    nixa, app = embedded
    client, citizen = register_client(nixa), make_citizen(nixa)
    with TestClient(app, base_url="http://testserver", follow_redirects=False, raise_server_exceptions=False) as browser, \
            TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as http:
        r, q, verifier = authorize(browser, client, scope="openid profile")
        page = browser.get(r.headers["location"])
        _refuse_audit_rows(nixa, True)
        r = browser.post(form_action(page.text, "/local"), data={"csrf": hidden(page.text, "csrf"), "username": citizen.username,
                                                                 "password": citizen.password})
        assert r.status_code >= 500 and "code=" not in r.headers.get("location", "") and "set-cookie" not in r.headers
        _refuse_audit_rows(nixa, False)
        r, q, verifier = authorize(browser, client, scope="openid profile")
        page = browser.get(r.headers["location"])
        r = browser.post(form_action(page.text, "/local"), data={"csrf": hidden(page.text, "csrf"), "username": citizen.username,
                                                                 "password": citizen.password})
        while r.headers["location"].startswith("/interaction/"):  # consent
            page = browser.get(r.headers["location"])
            r = browser.post(form_action(page.text, "/consent"), data={"csrf": hidden(page.text, "csrf"), "decision": "allow"})
        code = query_of(r.headers["location"])["code"]
        _refuse_audit_rows(nixa, True)
        r = http.post("/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
                                      "code_verifier": verifier}, auth=(client.client_id, client.secret))
        assert r.status_code >= 500 and "access_token" not in r.text and "id_token" not in r.text
        _refuse_audit_rows(nixa, False)
    assert _issued(nixa, client.client_id) == 0
