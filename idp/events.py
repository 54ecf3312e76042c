"""Typed events at each protocol milestone. Business code emits; the audit log, the citizen's
access log and the metrics subscribe. Nobody writes audit rows or counters by hand."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text

from idp.store.db import Database
from idp.store.models import AccessLogEntry, AuditEvent

# The vocabulary. Emitting a type not listed here is a programming error.
EVENT_TYPES = frozenset(
    {
        "login.succeeded",
        "login.failed",
        "login.throttled",
        "consent.granted",
        "consent.denied",
        "consent.revoked",
        "authorization.succeeded",
        "authorization.failed",
        "token.issued",
        "token.failed",
        "token.refreshed",
        "refresh.reused",
        "code.replayed",
        "token.revoked",
        "grant.revoked",
        "claims.released",
        "logout",
        "logout.delivered",  # a back-channel logout token reached an app (OIDC Back-Channel Logout 1.0)
        "logout.retrying",  # an attempt failed; another one is scheduled
        "logout.failed",  # every attempt failed, or the app cannot be told any more
        "session.ended",
        "client.changed",
        "key.rotated",
        "key.pruned",
        "identity.linked",
        "identity.unlinked",
        "identity.merged",
        "identity.link_refused",
        "identity.reported",  # the citizen said a linked identity was not theirs (account page)
        "person.status_changed",
        "notification.sent",
        "notification.failed",
        "person.created",
        "connector.changed",
        "admin.changed",
        "request.rejected",
    }
)

GENESIS = "0" * 64


@dataclass(frozen=True)
class Event:
    type: str
    person_id: str | None = None
    client_id: str | None = None
    ip: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


def chain_hash(prev_hash: str, event: Event) -> str:
    body = json.dumps(
        [event.at, event.type, event.person_id, event.client_id, event.ip, event.data],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


class AuditLog:
    """Append-only, hash-chained, with group commit.

    The chain must have no forks, so appends are serialized: one writer thread per worker, and
    on PostgreSQL an advisory lock held by the inserting transaction (several workers share one
    chain). A caller's `append` returns only once its event is committed (nothing is lost that
    a client was told happened), but concurrent callers share one transaction: the lock and the
    commit are paid once per batch, not once per event."""

    _PG_LOCK = 0x4E495841  # "NIXA"
    MAX_BATCH = 500

    def __init__(self, db: Database, timeout: float = 10.0) -> None:
        self.db = db
        self.timeout = timeout
        self._queue: list[tuple[Event, threading.Event, list]] = []
        self._cond = threading.Condition()
        self._writer: threading.Thread | None = None

    def append(self, event: Event) -> None:
        done = threading.Event()
        outcome: list = []
        with self._cond:
            self._queue.append((event, done, outcome))
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._run, name="nixa-audit-writer", daemon=True)
                self._writer.start()
            self._cond.notify()
        if not done.wait(self.timeout):
            raise RuntimeError("the audit log did not commit in time")
        if outcome and outcome[0] is not None:
            raise outcome[0]

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                self._write([e for e, _, _ in batch])
                error = None
            except Exception as exc:  # every waiting caller learns it; none returns success
                error = exc
            for _, done, outcome in batch:
                outcome.append(error)
                done.set()

    def _write(self, events: list[Event]) -> None:
        with self.db.session() as s:
            if self.db.dialect == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": self._PG_LOCK})
            prev = s.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
            for event in events:
                digest = chain_hash(prev, event)
                s.add(
                    AuditEvent(
                        at=event.at,
                        type=event.type,
                        person_id=event.person_id,
                        client_id=event.client_id,
                        ip=event.ip,
                        data=event.data,
                        prev_hash=prev,
                        hash=digest,
                    )
                )
                prev = digest
                if event.type == "claims.released" and event.person_id and event.client_id:
                    s.add(
                        AccessLogEntry(
                            person_id=event.person_id,
                            client_id=event.client_id,
                            at=event.at,
                            claims=list(event.data.get("claims", [])),
                            channel=str(event.data.get("channel", "")),
                        )
                    )

    def verify_chain(self) -> tuple[bool, int | None]:
        """Recompute every hash; (True, None) or (False, id of the first broken row)."""
        prev = GENESIS
        with self.db.session() as s:
            for row in s.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
                ev = Event(row.type, row.person_id, row.client_id, row.ip, row.data, row.at)
                if row.prev_hash != prev or row.hash != chain_hash(prev, ev):
                    return False, row.id
                prev = row.hash
        return True, None


class Events:
    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []
        self.counts: Counter[str] = Counter()

    def subscribe(self, fn: Callable[[Event], None]) -> None:
        self._subscribers.append(fn)

    def emit(self, type_: str, **kw: Any) -> Event:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_}")
        data = kw.pop("data", None) or {}
        event = Event(type_, data=data, **kw)
        self.counts[type_] += 1
        for fn in self._subscribers:
            fn(event)
        return event
