"""OpenID Connect Back-Channel Logout 1.0 from the durable outbox: every app of an ended session
gets a logout token at its backchannel_logout_uri (a real HTTP receiver on loopback), checked
here independently against /jwks; failures are retried with backoff, then `failed`, audited;
pending deliveries survive a restart; two workers never deliver one row twice."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.events import EVENT_TYPES
from idp.login.session import SsoSession
from idp.oidc.logout import BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TTL, MAX_ATTEMPTS, BackchannelLogout, backoff
from idp.store.models import AuditEvent, LogoutDelivery
from tests.conftest import authorize, code_flow, form_action, hidden, make_citizen, register_client, uid

ISSUER = "http://testserver"
ALGS = ["ES256", "RS256", "EdDSA"]
FUTURE = 30 * 86400  # test-driven services live a month ahead: the shared worker's thread never sees their rows due


class Receiver:
    """Relying parties' back-channel logout endpoints: records every POST per path."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict]] = defaultdict(list)
        self.status: dict[str, int] = {}
        self.delay = 0.0
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.cond:
                    receiver.received[self.path].append({"form": {k: v[0] for k, v in parse_qs(body).items()},
                                                         "content_type": self.headers.get("content-type", "")})
                    receiver.cond.notify_all()
                code = receiver.status.get(self.path, 200)
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def endpoint(self, status: int = 200) -> tuple[str, str]:
        path = f"/{uid('bcl')}"
        self.status[path] = status
        return path, self.url + path

    def tokens(self, path: str) -> list[str]:
        with self.cond:
            return [r["form"]["logout_token"] for r in self.received[path]]

    def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.received[path]) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{path}: {len(self.received[path])} of {count} logout tokens arrived"
                self.cond.wait(left)
            return [r["form"]["logout_token"] for r in self.received[path]]


@pytest.fixture(scope="module")
def receiver():  # noqa: ANN201
    r = Receiver()
    yield r
    r.server.shutdown()


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def keyset(http) -> KeySet:  # noqa: ANN001
    return KeySet.import_key_set(http.get("/jwks").json())


def verified(http, token: str) -> jwt.Token:  # noqa: ANN001
    return jwt.decode(token, keyset(http), algorithms=ALGS)


def rows_of(nixa, client_id: str) -> list[LogoutDelivery]:  # noqa: ANN001
    with nixa.db.session() as s:
        return list(s.scalars(select(LogoutDelivery).where(LogoutDelivery.client_id == client_id).order_by(LogoutDelivery.created_at)))


def audited(nixa, client_id: str) -> list[AuditEvent]:  # noqa: ANN001
    with nixa.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.client_id == client_id, AuditEvent.type.like("logout.%"))
                              .order_by(AuditEvent.id)))


def wait_until(check, timeout: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def session_of(person_id: str, *clients: str) -> SsoSession:
    now = time.time()
    return SsoSession(sid=uid("sid"), person_id=person_id, auth_time=now, loa=1, clients=list(clients), created_at=now)


def app_client(nixa, uri: str | None = None, **kw):  # noqa: ANN001, ANN201
    """A first-party app on its own host (its own pairwise sector) with an optional back-channel URI."""
    host = uid("app") + ".example.vn"
    md = {"redirect_uri": f"https://{host}/callback", "nixa_first_party": True, "client_name": f"Ứng dụng {host}", **kw}
    if uri:
        md["backchannel_logout_uri"] = uri
    return register_client(nixa, **md)


def test_discovery_advertises_back_channel_logout_with_sid(http) -> None:  # noqa: ANN001
    doc = http.get("/.well-known/openid-configuration").json()
    assert doc["backchannel_logout_supported"] is True and doc["backchannel_logout_session_supported"] is True


def test_event_types_are_declared() -> None:
    assert {"logout.delivered", "logout.retrying", "logout.failed"} <= EVENT_TYPES


def test_rp_initiated_logout_tells_every_app_of_the_session(nixa, browser, http, receiver) -> None:  # noqa: ANN001
    citizen = make_citizen(nixa)
    path_a, uri_a = receiver.endpoint()
    path_b, uri_b = receiver.endpoint()
    a = app_client(nixa, uri_a)
    b = app_client(nixa, uri_b, id_token_signed_response_alg="RS256", backchannel_logout_session_required=True)
    c = app_client(nixa)  # no back-channel URI
    tokens = {app.client_id: code_flow(browser, http, app, citizen) for app in (a, b, c)}  # one browser: SSO
    id_claims = {cid: verified(http, t["id_token"]).claims for cid, t in tokens.items()}
    assert id_claims[a.client_id]["sid"] != id_claims[b.client_id]["sid"]  # per-client sid
    assert id_claims[a.client_id]["sub"] != id_claims[b.client_id]["sub"]  # pairwise sub

    # RP-initiated logout from A (its own ID token as the hint, no redirect: the result page).
    page = browser.get("/logout", params={"id_token_hint": tokens[a.client_id]["id_token"]})
    assert page.status_code == 200, page.text
    assert "<script" not in page.text
    for app in (a, b):
        assert f"<strong>{app.metadata['client_name']}</strong>: đang đăng xuất" in page.text
    assert f"<strong>{c.metadata['client_name']}</strong>: NIXA không liên lạc được" in page.text

    for path, app, alg in ((path_a, a, "ES256"), (path_b, b, "RS256")):
        (token,) = receiver.wait_for(path, 1)
        assert receiver.received[path][0]["content_type"].startswith("application/x-www-form-urlencoded")
        decoded = verified(http, token)  # independently, against the published JWKS
        assert decoded.header["typ"] == "logout+jwt" and decoded.header["alg"] == alg and decoded.header["kid"]
        claims = decoded.claims
        assert claims["iss"] == ISSUER and claims["aud"] == app.client_id
        assert claims["sub"] == id_claims[app.client_id]["sub"]
        assert claims["sid"] == id_claims[app.client_id]["sid"]
        assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
        assert "nonce" not in claims and claims["jti"]
        assert 0 < claims["exp"] - claims["iat"] <= LOGOUT_TOKEN_TTL and abs(claims["iat"] - time.time()) < 60
        # a logout token is never accepted as an ID token hint (typ), nor the other way round
        assert nixa.tokens.validate_id_token_hint(token) is None

    for app in (a, b):
        wait_until(lambda app=app: [r.status for r in rows_of(nixa, app.client_id)] == ["delivered"])
        (row,) = rows_of(nixa, app.client_id)
        assert row.attempts == 1 and row.delivered_at and row.person_id == citizen.person_id
        assert row.sid == id_claims[app.client_id]["sid"]  # the per-client sid, never the SSO session's own
        wait_until(lambda app=app: [e.type for e in audited(nixa, app.client_id)] == ["logout.delivered"])
        assert audited(nixa, app.client_id)[0].person_id == citizen.person_id
    assert rows_of(nixa, c.client_id) == []
    # the session is over: the next request of any app asks to sign in again
    r, _, _ = authorize(browser, b)
    assert r.headers["location"].startswith("/interaction/")


def test_confirmed_logout_with_redirect_still_redirects_and_tells_the_apps(nixa, browser, http, receiver) -> None:  # noqa: ANN001
    citizen = make_citizen(nixa)
    path, uri = receiver.endpoint()
    a = app_client(nixa, uri)
    code_flow(browser, http, a, citizen)
    page = browser.get("/logout", params={"client_id": a.client_id, "post_logout_redirect_uri": "https://rp.example.vn/bye",
                                          "state": "s1"})
    assert "/logout/confirm" in page.text  # no hint: the person confirms
    r = browser.post(form_action(page.text, "/logout/confirm"), data={"logout_request": hidden(page.text, "logout_request"),
                                                                       "csrf": hidden(page.text, "csrf"), "decision": "yes"})
    assert r.status_code == 303 and r.headers["location"] == "https://rp.example.vn/bye?state=s1"
    (token,) = receiver.wait_for(path, 1)
    assert verified(http, token).claims["aud"] == a.client_id


def test_an_id_no_longer_usable_signs_out_every_session_everywhere(nixa, app, http, receiver) -> None:  # noqa: ANN001
    from starlette.testclient import TestClient

    from idp.identity import status as id_status

    citizen = make_citizen(nixa)
    path, uri = receiver.endpoint()
    a = app_client(nixa, uri)
    sids = set()
    for _ in range(2):  # two browsers, two SSO sessions
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as b:
            sids.add(verified(http, code_flow(b, http, a, citizen)["id_token"]).claims["sid"])
    id_status.end_everything(nixa, citizen.person_id, "id_locked")
    tokens = receiver.wait_for(path, 2)
    assert {verified(http, t).claims["sid"] for t in tokens} == sids
    assert {r.reason for r in rows_of(nixa, a.client_id)} == {"person_id_locked"}


def test_a_failing_app_is_retried_with_backoff_then_failed_and_audited(nixa, receiver) -> None:  # noqa: ANN001
    citizen = make_citizen(nixa)
    path, uri = receiver.endpoint(status=500)
    a = app_client(nixa, uri)
    clock = Clock(time.time() + FUTURE)
    service = BackchannelLogout(nixa, clock=clock, autostart=False)
    apps = service.enqueue(session_of(citizen.person_id, a.client_id), [a.client_id], "logout")
    assert [x.client_id for x in apps.queued] == [a.client_id] and apps.unreachable == []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        service.deliver_due()
        assert len(receiver.tokens(path)) == attempt
        (row,) = rows_of(nixa, a.client_id)
        assert row.attempts == attempt and row.last_error == "http 500" and row.claimed_until is None
        if attempt < MAX_ATTEMPTS:
            assert row.status == "pending" and row.next_attempt_at == pytest.approx(clock.now + backoff(attempt))
            service.deliver_due()  # not due yet: nothing sent
            assert len(receiver.tokens(path)) == attempt
            clock.now = row.next_attempt_at
    assert row.status == "failed"
    assert [backoff(n) for n in range(1, 4)] == [5, 20, 80]
    clock.now += 10 * 86400
    service.deliver_due()
    assert len(receiver.tokens(path)) == MAX_ATTEMPTS  # bounded: a failed row is never tried again
    # each attempt carried a freshly signed token
    assert len({jwt.decode(t, nixa.keys._view().verify_set, algorithms=ALGS).claims["jti"] for t in receiver.tokens(path)}) == MAX_ATTEMPTS
    events = audited(nixa, a.client_id)
    assert [e.type for e in events] == ["logout.retrying"] * (MAX_ATTEMPTS - 1) + ["logout.failed"]
    assert all(e.person_id == citizen.person_id and e.data["error"] == "http 500" for e in events)


def test_redirects_are_not_followed_and_204_counts_as_delivered(nixa, receiver) -> None:  # noqa: ANN001
    citizen = make_citizen(nixa)
    moved_path, moved = receiver.endpoint(status=302)
    ok_path, ok = receiver.endpoint(status=204)
    a, b = app_client(nixa, moved), app_client(nixa, ok)
    service = BackchannelLogout(nixa, clock=Clock(time.time() + FUTURE), autostart=False)
    service.enqueue(session_of(citizen.person_id, a.client_id, b.client_id), [a.client_id, b.client_id], "logout")
    service.deliver_due()
    assert [(r.status, r.last_error) for r in rows_of(nixa, a.client_id)] == [("pending", "http 302")]
    assert [r.status for r in rows_of(nixa, b.client_id)] == ["delivered"]


def test_an_unreachable_receiver_is_a_retry_not_a_crash(nixa) -> None:  # noqa: ANN001
    from tests.conftest import free_port

    citizen = make_citizen(nixa)
    a = app_client(nixa, f"http://127.0.0.1:{free_port()}/logout")  # nobody listens
    service = BackchannelLogout(nixa, clock=Clock(time.time() + FUTURE), autostart=False)
    service.enqueue(session_of(citizen.person_id, a.client_id), [a.client_id], "logout")
    service.deliver_due()
    (row,) = rows_of(nixa, a.client_id)
    assert row.status == "pending" and row.attempts == 1 and row.last_error.startswith("ConnectError")


def test_person_wide_logout_has_no_sid_and_skips_apps_that_require_one(nixa, receiver) -> None:  # noqa: ANN001
    citizen = make_citizen(nixa)
    path, uri = receiver.endpoint()
    a = app_client(nixa, uri)
    b = app_client(nixa, uri, backchannel_logout_session_required=True)
    service = BackchannelLogout(nixa, clock=Clock(time.time() + FUTURE), autostart=False)
    apps = service.enqueue(citizen.person_id, [a.client_id, b.client_id], "admin")
    assert [x.client_id for x in apps.queued] == [a.client_id] and [x.client_id for x in apps.unreachable] == [b.client_id]
    service.deliver_due()
    (token,) = receiver.wait_for(path, 1)
    claims = jwt.decode(token, nixa.keys._view().verify_set, algorithms=ALGS).claims
    assert "sid" not in claims and claims["sub"] == nixa.people.subject_for(citizen.person_id, nixa.clients.get(a.client_id))


def test_pending_deliveries_survive_a_restart(nixa, receiver) -> None:  # noqa: ANN001
    from idp.app import Nixa

    citizen = make_citizen(nixa)
    path, uri = receiver.endpoint()
    a = app_client(nixa, uri)
    clock = Clock(time.time() + FUTURE)
    BackchannelLogout(nixa, clock=clock, autostart=False).enqueue(session_of(citizen.person_id, a.client_id), [a.client_id], "logout")
    assert [r.status for r in rows_of(nixa, a.client_id)] == ["pending"]  # then the worker dies
    restarted = Nixa(nixa.settings, clock=clock)  # a new process on the same database
    try:
        assert restarted.backchannel.deliver_due() >= 1
        (token,) = receiver.wait_for(path, 1)
        assert jwt.decode(token, restarted.keys._view().verify_set, algorithms=ALGS).claims["aud"] == a.client_id
        assert [r.status for r in rows_of(nixa, a.client_id)] == ["delivered"]
    finally:
        restarted.db.engine.dispose()


def test_two_workers_deliver_each_row_once(nixa, receiver) -> None:  # noqa: ANN001
    citizen = make_citizen(nixa)
    path, uri = receiver.endpoint()
    a = app_client(nixa, uri)
    clock = Clock(time.time() + FUTURE)
    sessions = [session_of(citizen.person_id, a.client_id) for _ in range(24)]
    enqueuer = BackchannelLogout(nixa, clock=clock, autostart=False)
    for session in sessions:
        enqueuer.enqueue(session, session.clients, "logout")
    workers = [BackchannelLogout(nixa, clock=clock, autostart=False) for _ in range(2)]
    receiver.delay = 0.02  # deliveries overlap
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def work(service: BackchannelLogout) -> None:
        try:
            start.wait()
            while service.deliver_due(limit=4):
                pass
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        receiver.delay = 0.0
    assert not errors
    tokens = receiver.tokens(path)
    expected = sorted(nixa.people.client_sid(s.sid, a.client_id) for s in sessions)
    assert sorted(jwt.decode(t, nixa.keys._view().verify_set, algorithms=ALGS).claims["sid"] for t in tokens) == expected
    rows = rows_of(nixa, a.client_id)
    assert len(rows) == 24 and {(r.status, r.attempts) for r in rows} == {("delivered", 1)}
    assert [e.type for e in audited(nixa, a.client_id)] == ["logout.delivered"] * 24


def test_a_worker_of_another_issuer_never_signs_this_issuers_logout_tokens(nixa, live) -> None:  # noqa: ANN001
    # Two NIXAs with different names on one database (a misconfigured worker, the tests' live
    # server): the logout queued under one is delivered only by a worker of that issuer.
    from sqlalchemy import select

    from idp.store.models import LogoutDelivery

    row = LogoutDelivery(client_id="nobody", person_id="p" * 32, sid=None, uri="https://app.example/bc", reason="logout",
                         status="pending", attempts=0, next_attempt_at=0.0, created_at=0.0, issuer=nixa.settings.issuer)
    with nixa.db.session() as s:
        s.add(row)
    try:
        assert live.nixa.settings.issuer != nixa.settings.issuer
        assert row.id not in {rid for rid, _ in live.nixa.backchannel._claim(1000)}
        with nixa.db.session() as s:
            assert s.scalar(select(LogoutDelivery.attempts).where(LogoutDelivery.id == row.id)) == 0
    finally:
        with nixa.db.session() as s:
            s.delete(s.get(LogoutDelivery, row.id))
