"""OpenID Connect Back-Channel Logout 1.0, delivered from a durable outbox.

When an SSO session ends, one `logout_deliveries` row per app that had a session in it is written
(before the logout is acknowledged), then any worker delivers it: a form POST of a freshly signed
logout token to the app's `backchannel_logout_uri` (§2.5), retried with exponential backoff up to
a bounded number of attempts. Rows are claimed atomically (compare-and-set on `attempts` plus a
lapsing `claimed_until`), so two workers never deliver one row twice and a crashed worker's claim
passes to another. A restart loses nothing: the rows are in the database.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import or_, select, update

from idp.store.models import LogoutDelivery

log = logging.getLogger("nixa.logout")

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL = 120  # §2.4: "short"; the token is re-signed at every attempt anyway
DELIVERY_TIMEOUT = 5.0
MAX_ATTEMPTS = 6
BACKOFF_FIRST = 5.0  # seconds before the second attempt; ×4 each time: 5, 20, 80, 320, 1280
BACKOFF_FACTOR = 4.0
# Longer than one delivery can take (the timeout, signing, writing the outcome): a claim that
# lapses means its worker died, and the row is due again for another.
CLAIM_TTL = 60.0
POLL_EVERY = 3.0
BATCH = 50
PARALLEL_DELIVERIES = 8  # one slow app does not hold up the others


def logout_token(nixa: Any, client: Any, person_id: str, sid: str | None) -> str:
    """A Logout Token (§2.4) for `client`: `sid` is the session id as this client saw it in its
    ID tokens (People.client_sid), `sub` its subject for the person. Never a `nonce` (§2.4: it
    must not have one, so a logout token cannot pass for an ID token); explicitly typed
    `logout+jwt` and signed with the client's ID token alg."""
    now = int(nixa.clock())
    claims: dict[str, Any] = {
        "iss": nixa.settings.issuer,
        "sub": nixa.people.subject_for(person_id, client),
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_TTL,
        "jti": secrets.token_urlsafe(16),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    if sid:
        claims["sid"] = sid
    return nixa.keys.sign(claims, client.signing_alg, typ="logout+jwt")


@dataclass
class SignedOutApps:
    """What a logout did to each app of the session, for the page that acknowledges it."""

    queued: list[Any] = field(default_factory=list)  # a logout token is on its way (asynchronous)
    unreachable: list[Any] = field(default_factory=list)  # no back-channel URI: the person must sign out there


def backoff(attempts: int) -> float:
    """Delay after the `attempts`-th failed attempt."""
    return BACKOFF_FIRST * BACKOFF_FACTOR ** (attempts - 1)


class BackchannelLogout:
    """The outbox service: `enqueue` at logout, `deliver_due` from the background thread (one per
    worker, started lazily) or from anyone who wants the due rows delivered now."""

    def __init__(self, nixa: Any, *, clock: Callable[[], float] | None = None, http: httpx.Client | None = None,
                 max_attempts: int = MAX_ATTEMPTS, autostart: bool = True) -> None:
        self.nixa = nixa
        self.clock = clock or nixa.clock
        self.max_attempts = max_attempts
        self.autostart = autostart
        self._http = http
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def http(self) -> httpx.Client:
        if self._http is None:  # made on first use: a CLI command building Nixa never needs it
            # §2.5: a plain POST; redirects are not followed (the registered URI is the one to reach).
            self._http = httpx.Client(timeout=DELIVERY_TIMEOUT, follow_redirects=False)
        return self._http

    # ---- at logout ------------------------------------------------------------------------

    def enqueue(self, session_or_person: Any, clients: Iterable[str], reason: str) -> SignedOutApps:
        """One outbox row per app that has a back-channel logout URI, all in one transaction;
        returns which apps will be told and which cannot be. `session_or_person` is the ended
        SsoSession (tokens carry its per-client sid) or a person id (tokens carry only `sub`:
        every session of the person at that app)."""
        if isinstance(session_or_person, str):
            person_id, sso_sid = session_or_person, None
        else:
            person_id, sso_sid = session_or_person.person_id, session_or_person.sid
        out = SignedOutApps()
        rows = []
        now = self.clock()
        for client_id in dict.fromkeys(clients):
            client = self.nixa.clients.get(client_id)
            if client is None:
                continue  # removed or disabled since: nothing to sign out of through NIXA
            uri = client.metadata.get("backchannel_logout_uri")
            # §2.2: an app that requires sid cannot act on a person-wide token.
            if not uri or (sso_sid is None and client.metadata.get("backchannel_logout_session_required")):
                out.unreachable.append(client)
                continue
            sid = self.nixa.people.client_sid(sso_sid, client_id) if sso_sid else None
            rows.append(LogoutDelivery(client_id=client_id, person_id=person_id, sid=sid, uri=uri, reason=reason[:64],
                                       status="pending", attempts=0, next_attempt_at=now, created_at=now,
                                       issuer=self.nixa.settings.issuer))
            out.queued.append(client)
        if rows:
            with self.nixa.db.session() as s:
                s.add_all(rows)
            if self.autostart:
                self.start()
            self._wake.set()
        return out

    # ---- delivery -------------------------------------------------------------------------

    def _due(self, now: float) -> Any:
        return (
            (LogoutDelivery.status == "pending")
            & (LogoutDelivery.next_attempt_at <= now)
            & or_(LogoutDelivery.claimed_until.is_(None), LogoutDelivery.claimed_until < now)
            # Never sign a logout token for another issuer (a worker configured for another
            # name on the same database): the token's `iss` must be the session's.
            & or_(LogoutDelivery.issuer.is_(None), LogoutDelivery.issuer == self.nixa.settings.issuer)
        )

    def _claim(self, limit: int) -> list[tuple[str, int]]:
        """Rows due now, each taken by a compare-and-set on its attempt count: of two workers
        seeing the same row, exactly one UPDATE matches (rowcount 1), on SQLite and PostgreSQL."""
        now = self.clock()
        with self.nixa.db.session() as s:
            seen = s.execute(select(LogoutDelivery.id, LogoutDelivery.attempts).where(self._due(now))
                             .order_by(LogoutDelivery.next_attempt_at, LogoutDelivery.id).limit(limit)).all()
        claimed = []
        for row_id, attempts in seen:
            with self.nixa.db.session() as s:
                won = s.execute(
                    update(LogoutDelivery)
                    .where(LogoutDelivery.id == row_id, LogoutDelivery.attempts == attempts, self._due(now))
                    .values(attempts=attempts + 1, claimed_until=now + CLAIM_TTL)
                ).rowcount
            if won == 1:
                claimed.append((row_id, attempts + 1))
        return claimed

    def deliver_due(self, limit: int = BATCH) -> int:
        """Deliver the rows due now; returns how many were attempted."""
        claimed = self._claim(limit)
        if len(claimed) <= 1:
            for row_id, attempt in claimed:
                self._deliver(row_id, attempt)
        else:
            with ThreadPoolExecutor(min(PARALLEL_DELIVERIES, len(claimed)), thread_name_prefix="nixa-logout") as pool:
                list(pool.map(lambda c: self._deliver(*c), claimed))
        return len(claimed)

    def _deliver(self, row_id: str, attempt: int) -> None:
        with self.nixa.db.session() as s:
            row = s.get(LogoutDelivery, row_id)
        if row is None:
            return
        client = self.nixa.clients.get(row.client_id)
        if client is None:
            self._record(row, attempt, error="client_gone", final=True)
            return
        try:
            token = logout_token(self.nixa, client, row.person_id, row.sid)
            # Streamed and closed unread: an app's answer body is not NIXA's business (nor its memory).
            with self.http.stream("POST", row.uri, data={"logout_token": token}) as resp:
                status = resp.status_code
        except httpx.HTTPError as exc:
            self._record(row, attempt, error=f"{type(exc).__name__}: {exc}"[:255])
            return
        except Exception as exc:  # signing, a bad URI...: recorded on the row like any failure
            log.exception("back-channel logout to %s failed before the request", row.client_id)
            self._record(row, attempt, error=f"{type(exc).__name__}"[:255])
            return
        # §2.8: 200 OK; some frameworks answer an empty 200 as 204, which counts too.
        if status in (200, 204):
            self._record(row, attempt, delivered=True)
        else:
            self._record(row, attempt, error=f"http {status}")

    def _record(self, row: LogoutDelivery, attempt: int, *, delivered: bool = False, error: str | None = None,
                final: bool = False) -> None:
        """The outcome, on the row and in the audit log. Guarded by the attempt number: if our
        claim lapsed and another worker took the row meanwhile, its outcome is the one kept."""
        now = self.clock()
        if delivered:
            values: dict[str, Any] = {"status": "delivered", "delivered_at": now, "claimed_until": None, "last_error": None}
            event = "logout.delivered"
        elif final or attempt >= self.max_attempts:
            values = {"status": "failed", "claimed_until": None, "last_error": error}
            event = "logout.failed"
        else:
            values = {"next_attempt_at": now + backoff(attempt), "claimed_until": None, "last_error": error}
            event = "logout.retrying"
        with self.nixa.db.session() as s:
            won = s.execute(
                update(LogoutDelivery)
                .where(LogoutDelivery.id == row.id, LogoutDelivery.attempts == attempt, LogoutDelivery.status == "pending")
                .values(**values)
            ).rowcount
        if won != 1:
            return
        data: dict[str, Any] = {"delivery": row.id, "attempt": attempt, "reason": row.reason}
        if error:
            data["error"] = error
        if event == "logout.retrying":
            data["next_attempt_at"] = values["next_attempt_at"]
        self.nixa.events.emit(event, person_id=row.person_id, client_id=row.client_id, data=data)

    # ---- the background thread ---------------------------------------------------------------

    def start(self) -> None:
        """Start this worker's delivery thread if it is not running (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="nixa-backchannel-logout", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before looking: a wake-up during the batch is not lost
            try:
                attempted = self.deliver_due(BATCH)
            except Exception:  # the database is down, say: keep the thread, try again later
                log.exception("back-channel logout delivery failed")
                attempted = 0
            if attempted < BATCH:
                self._wake.wait(POLL_EVERY)
