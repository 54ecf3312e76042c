"""The audit trail: protocol milestones land in audit_events, hash-chained and tamper-evident."""

from __future__ import annotations

from sqlalchemy import select, update

from idp.store.models import AuditEvent
from tests.conftest import authorize, form_action, hidden, make_citizen, register_client
from tests.oidc.helpers import auth_of, get_code, redeem, token_call


def events_for(nixa, **where) -> list[AuditEvent]:  # noqa: ANN001
    with nixa.db.session() as s:
        q = select(AuditEvent).order_by(AuditEvent.id)
        for k, v in where.items():
            q = q.where(getattr(AuditEvent, k) == v)
        return list(s.scalars(q))


def types_for(nixa, **where) -> list[str]:  # noqa: ANN001
    return [e.type for e in events_for(nixa, **where)]


def test_milestones_are_audited(nixa, browser, http):
    client = register_client(nixa)
    citizen = make_citizen(nixa)
    # a failed sign-in, then the whole flow
    r, _, _ = authorize(browser, client)
    page = browser.get(r.headers["location"])
    browser.post(form_action(page.text, "/local"), data={"csrf": hidden(page.text, "csrf"), "username": citizen.username,
                                                          "password": "wrong"})
    code, verifier, _ = get_code(browser, client, citizen, scope="openid profile offline_access")
    tokens = redeem(http, client, code, verifier).json()
    first = token_call(http, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    http.post("/revoke", data={"token": first["access_token"]}, auth=auth_of(client))
    token_call(http, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"])  # reuse
    browser.get("/logout", params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://rp.example.vn/bye"})

    seen = types_for(nixa, client_id=client.client_id)
    for expected in ("login.failed", "login.succeeded", "consent.granted", "authorization.succeeded", "token.issued",
                     "refresh.reused", "grant.revoked", "token.revoked", "logout"):
        assert expected in seen, (expected, seen)
    person = types_for(nixa, person_id=citizen.person_id)
    assert "login.succeeded" in person and "consent.granted" in person
    failed = [e for e in events_for(nixa, client_id=client.client_id) if e.type == "login.failed"][0]
    assert failed.ip and failed.data["method"] == "local"
    assert citizen.password not in str(failed.data) and "wrong" not in str(failed.data)


def test_code_replay_is_audited(nixa, browser, http):
    client = register_client(nixa)
    code, verifier, _ = get_code(browser, client, make_citizen(nixa))
    redeem(http, client, code, verifier)
    redeem(http, client, code, verifier)
    seen = types_for(nixa, client_id=client.client_id)
    assert "code.replayed" in seen and "grant.revoked" in seen and "token.failed" in seen


def test_no_secret_material_in_the_audit_trail(nixa, browser, http):
    client = register_client(nixa)
    code, verifier, _ = get_code(browser, client, make_citizen(nixa), scope="openid offline_access")
    tokens = redeem(http, client, code, verifier).json()
    blob = " ".join(str(e.data) for e in events_for(nixa, client_id=client.client_id))
    for secret in (client.secret, code, verifier, tokens["access_token"], tokens["refresh_token"], tokens["id_token"]):
        assert secret not in blob


def test_chain_verifies_and_detects_tampering(nixa, browser, http):
    client = register_client(nixa)
    get_code(browser, client, make_citizen(nixa))
    assert nixa.audit.verify_chain().ok
    victim = events_for(nixa, client_id=client.client_id)[0]
    with nixa.db.session() as s:
        s.execute(update(AuditEvent).where(AuditEvent.id == victim.id).values(data={**victim.data, "forged": True}))
    try:
        report = nixa.audit.verify_chain()
        assert report.ok is False and report.bad_event == victim.id
    finally:
        with nixa.db.session() as s:
            s.execute(update(AuditEvent).where(AuditEvent.id == victim.id).values(data=victim.data))
    assert nixa.audit.verify_chain().ok


def test_chain_detects_a_deleted_row(nixa, browser):
    client = register_client(nixa)
    authorize(browser, client, response_type="token")
    authorize(browser, client, response_type="token")
    authorize(browser, client, response_type="token")
    rows = events_for(nixa, client_id=client.client_id)
    assert len(rows) >= 3
    victim = rows[1]
    with nixa.db.session() as s:
        s.execute(AuditEvent.__table__.delete().where(AuditEvent.id == victim.id))
    try:
        report = nixa.audit.verify_chain()
        assert report.ok is False and report.bad_event is not None and report.bad_event > victim.id
    finally:
        with nixa.db.session() as s:
            s.execute(AuditEvent.__table__.insert().values(
                id=victim.id, at=victim.at, type=victim.type, person_id=victim.person_id, client_id=victim.client_id, ip=victim.ip,
                data=victim.data, prev_hash=victim.prev_hash, hash=victim.hash))
    assert nixa.audit.verify_chain().ok
