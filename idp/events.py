"""Typed events at each protocol milestone. Business code emits; the audit log, the citizen's
access log and the metrics subscribe. Nobody writes audit rows or counters by hand."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, insert, select, text

from idp.audit_chain import CHECKPOINT_TYPE, GENESIS, AuditKeys, ChainCheck, ChainReport, Checkpoint, Checkpoints
from idp.store.db import Database
from idp.store.models import AccessLogEntry, AuditEvent
from idp.ops import request_id

log = logging.getLogger("nixa")

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
        "logout.upstream",  # the browser was sent to a source (operator) to end its own session too
        "session.ended",
        "client.changed",
        "client.deleted",
        "resource.changed",  # a resource server (agency API) registered, changed or removed
        "introspection.refused",  # a client asked about a token that is neither its own nor for its API
        "key.rotated",
        "key.retired",  # one key made verify-only at an operator's request
        "key.pruned",
        "key.revoked",  # a compromised signing key removed at once (nixa keys revoke)
        "master_key.rotated",  # every sealed secret re-sealed under a new master key version
        "identity.linked",
        "identity.unlinked",
        "identity.merged",
        "identity.link_refused",
        "identity.reported",  # the citizen said a linked identity was not theirs (account page)
        "passkey.registered",
        "passkey.removed",
        "passkey.used",
        "passkey.refused",  # an assertion or registration not accepted (expired challenge, bad signature, unknown key, level)
        "passkey.cloned",  # a sign count that did not increase: the credential is flagged
        "totp.enrolled",  # an authenticator app confirmed with its first code (account page)
        "totp.removed",
        "totp.used",  # a code from the app accepted as a sign-in's second step
        "totp.refused",  # a wrong, replayed or throttled code
        "recovery.codes_generated",  # a new set (the old one void)
        "recovery.code_used",
        "recovery.code_refused",
        "recovery.reset",  # every factor lost: app and codes removed after a fresh re-proof
        "person.status_changed",
        "notification.sent",
        "notification.failed",
        "person.created",
        "connector.changed",
        "admin.changed",  # an operator changed something (admin/): actor, what, before, after, reason
        "admin.viewed",  # an operator looked at a person's data or searched for people (admin/people.py)
        "request.rejected",
        "fetch.refused",  # a client- or upstream-supplied URL pointed where NIXA does not fetch (SSRF)
    }
)

# Support actions on a person (admin/people.py) are shown to them in their access log, as done
# through the admin console: these events carry data["support"] = {"action", "reason"}.
ADMIN_CONSOLE_CLIENT_ID = "nixa-admin-console"
SUPPORT_EVENTS = frozenset({"admin.changed", "admin.viewed"})


@dataclass(frozen=True)
class Event:
    type: str
    person_id: str | None = None
    client_id: str | None = None
    ip: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


# Events appended while a list is set here are not waited for by `append` (which would block the
# thread it runs on, the event loop's for a handler that runs there): their commit is awaited by
# `deferred_audit` before the answer leaves, so nothing a client is told escapes the audit log.
_deferred: contextvars.ContextVar[list | None] = contextvars.ContextVar("nixa_deferred_audit", default=None)


class _LoopSignal:
    """The writer thread's "committed" for a caller on the event loop: a future resolved there."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future = self.loop.create_future()

    def set(self) -> None:
        self.loop.call_soon_threadsafe(lambda: self.future.done() or self.future.set_result(None))


class _Pending(list):
    undo: list[Callable[[], None]]


def if_not_recorded(undo: Callable[[], None]) -> None:
    """Run `undo` should the events just emitted fail to commit. Emitted without deferral, a
    failure raised from `emit` itself, and the caller's own `except` does it: nothing to do here."""
    pending = _deferred.get()
    if pending is not None:
        pending.undo.append(undo)


class deferred_audit:
    """`with deferred_audit() as audit: …sync work…` then `await audit.committed()`: the work's
    audit events committed (or the writer's error raised, after the work's `if_not_recorded`
    undo steps), without a thread waiting for them."""

    def __enter__(self) -> deferred_audit:
        self.pending = _Pending()
        self.pending.undo = []
        self._token = _deferred.set(self.pending)
        return self

    def __exit__(self, *exc: Any) -> None:
        _deferred.reset(self._token)

    async def committed(self, timeout: float = 10.0) -> None:
        try:
            for signal, outcome in self.pending:
                try:
                    await asyncio.wait_for(asyncio.shield(signal.future), timeout)
                except asyncio.TimeoutError:
                    raise RuntimeError("the audit log did not commit in time") from None
                if outcome and outcome[0] is not None:
                    raise outcome[0]
        except BaseException:
            for undo in self.pending.undo:
                undo()
            raise


_EVENTS = AuditEvent.__table__
# Built once: SQLAlchemy's statement construction is a good part of a small batch's cost.
_TAIL = select(_EVENTS.c.id, _EVENTS.c.hash, _EVENTS.c.type).order_by(_EVENTS.c.id.desc()).limit(1)
_INSERT_EVENTS = insert(_EVENTS).returning(_EVENTS.c.id)
_INSERT_ACCESS = insert(AccessLogEntry.__table__)


class _Tail(NamedTuple):
    id: int
    hash: str
    type: str


class AuditLog:
    """Append-only, chained under the audit key (idp/audit_chain.py), with group commit and
    signed checkpoints.

    The chain must have no forks, so appends are serialized: one writer thread per worker, and
    on PostgreSQL an advisory lock held by the inserting transaction (several workers share one
    chain). A caller's `append` returns only once its event is committed (nothing is lost that
    a client was told happened), but concurrent callers share one transaction: the lock and the
    commit are paid once per batch, not once per event. The writer adds a checkpoint row every
    `checkpoints.every` events or `checkpoints.seconds` seconds; an idle writer wakes up to
    cover the last events too, so a quiet night does not leave them open to truncation."""

    _PG_LOCK = 0x4E495841  # "NIXA"
    MAX_BATCH = 500

    def __init__(self, db: Database, keys: AuditKeys, checkpoints: Checkpoints, timeout: float = 10.0) -> None:
        self.db = db
        self.keys = keys
        self.checkpoints = checkpoints
        self.timeout = timeout
        self._queue: list[tuple[Event, threading.Event, list]] = []
        self._cond = threading.Condition()
        self._writer: threading.Thread | None = None
        self._write_lock = threading.Lock()  # the writer thread and checkpoint_now() of one process
        self._latest: Checkpoint | None = None  # the database is asked again only when this one seems due
        self._closed = False

    def append(self, event: Event) -> None:
        pending = _deferred.get()
        done: Any = threading.Event() if pending is None else _LoopSignal()
        outcome: list = []
        if pending is not None:
            pending.append((done, outcome))
        with self._cond:
            self._queue.append((event, done, outcome))
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._run, name="nixa-audit-writer", daemon=True)
                self._writer.start()
            self._cond.notify()
        if pending is not None:
            return  # the caller awaits it (`deferred_audit`) before its answer leaves
        if not done.wait(self.timeout):
            raise RuntimeError("the audit log did not commit in time")
        if outcome and outcome[0] is not None:
            raise outcome[0]

    def close(self) -> None:
        """Stop the writer once its queue is written (a worker shutting down, a test's NIXA)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            writer = self._writer
        if writer is not None:
            writer.join(self.timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    if self._closed:
                        self._writer = None  # under the lock: the next append starts a new writer
                        return
                    self._cond.wait(self.checkpoints.seconds)
                batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                self._write([e for e, _, _ in batch])
                error = None
            except Exception as exc:  # every waiting caller learns it; none returns success
                error = exc
                if not batch:
                    log.warning("audit checkpoint failed: %s", exc)
            for _, done, outcome in batch:
                outcome.append(error)
                done.set()

    def _write(self, events: list[Event], *, force_checkpoint: bool = False) -> None:
        # SQLAlchemy Core, one INSERT … RETURNING per table and batch: the ORM's unit of work
        # (an object and its identity-map bookkeeping per row) cost more than the rows' SQL.
        with self._write_lock, self.db.engine.begin() as s:  # a Connection: no ORM session to set up per batch
            if self.db.dialect == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": self._PG_LOCK})
            tail = s.execute(_TAIL).first()
            prev = tail.hash if tail else GENESIS
            rows, access = [], []
            for event in events:
                row = self._chained(event, prev)
                rows.append(row)
                prev = row["hash"]
                if event.type == "claims.released" and event.person_id and event.client_id:
                    access.append({"person_id": event.person_id, "client_id": event.client_id, "at": event.at,
                                   "claims": list(event.data.get("claims", [])), "channel": str(event.data.get("channel", ""))})
                elif event.type in SUPPORT_EVENTS and event.person_id and isinstance(event.data.get("support"), dict):
                    support = event.data["support"]
                    access.append({"person_id": event.person_id, "client_id": ADMIN_CONSOLE_CLIENT_ID, "at": event.at,
                                   "claims": [f"support_{support.get('action')}", str(support.get("reason", ""))[:500]],
                                   "channel": "support"})
            if rows:
                # One multi-row INSERT … RETURNING (asking for the parameters' order made SQLAlchemy
                # insert row by row on SQLite); the batch's last row has the highest id, the
                # chain's appends being serialized.
                ids = s.execute(_INSERT_EVENTS, rows).scalars().all()
                tail = _Tail(max(ids), rows[-1]["hash"], rows[-1]["type"])
            if access:
                s.execute(_INSERT_ACCESS, access)
            if tail is not None and tail.type != CHECKPOINT_TYPE:
                self._checkpoint_if_due(s, tail, force_checkpoint)

    def _chained(self, event: Event, prev: str) -> dict[str, Any]:
        return {"at": event.at, "type": event.type, "person_id": event.person_id, "client_id": event.client_id, "ip": event.ip,
                "data": event.data, "prev_hash": prev, "hash": self.keys.chain_value(prev, event)}

    def _checkpoint_if_due(self, s: Connection, tail: Any, force: bool) -> None:
        now = time.time()
        if not force and self._latest is not None and not self.checkpoints.due(self._latest, tail.id, now):
            return
        latest = self._stored_checkpoint(s)  # another worker may have made one meanwhile
        if not force and latest is not None and not self.checkpoints.due(latest, tail.id, now):
            self._latest = latest
            return
        since, counted = (latest.event_id, latest.count) if latest else (0, 0)
        count = counted + s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.id > since, AuditEvent.id <= tail.id))
        checkpoint = Checkpoint(tail.id, tail.hash, count, now, self.checkpoints.issuer)
        data = {"jws": self.checkpoints.sign(checkpoint), "event_id": tail.id, "count": count}
        s.execute(insert(_EVENTS), [self._chained(Event(CHECKPOINT_TYPE, data=data, at=now), tail.hash)])
        self._latest = checkpoint

    def _stored_checkpoint(self, s: Connection) -> Checkpoint | None:
        row = s.execute(select(_EVENTS.c.data, _EVENTS.c.prev_hash, _EVENTS.c.at).where(_EVENTS.c.type == CHECKPOINT_TYPE)
                        .order_by(_EVENTS.c.id.desc()).limit(1)).first()
        if row is None:
            return None
        return Checkpoint(row.data["event_id"], row.prev_hash, row.data["count"], row.at, self.checkpoints.issuer)

    def checkpoint_now(self) -> str | None:
        """The newest checkpoint's JWS, made now if events were written after it; None while
        the trail is empty."""
        self._write([], force_checkpoint=True)
        with self.db.session() as s:
            data = s.scalar(select(AuditEvent.data).where(AuditEvent.type == CHECKPOINT_TYPE).order_by(AuditEvent.id.desc()).limit(1))
        return data["jws"] if data else None

    def verify_chain(self, checkpoint: Checkpoint | None = None) -> ChainReport:
        """Recompute every chain value; with a checkpoint, also hold the chain to it (its event
        present with exactly its chain value and count, nothing cut from the end)."""
        check = ChainCheck(self.keys, checkpoint)
        with self.db.session() as s:
            for row in s.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
                report = check.row(row)
                if report is not None:
                    return report
        return check.end()


class Events:
    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []
        self.counts: Counter[str] = Counter()
        # Who runs an admin command (admin/cli.py sets it): stamped on every event the command
        # causes, so no command can forget to say who did it.
        self.actor: dict[str, str] | None = None

    def subscribe(self, fn: Callable[[Event], None]) -> None:
        self._subscribers.append(fn)

    def emit(self, type_: str, **kw: Any) -> Event:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_}")
        data = kw.pop("data", None) or {}
        if self.actor:
            data = {**data, "actor": self.actor}
        rid = request_id.get()
        if rid and "request_id" not in data:
            data = {**data, "request_id": rid}  # the reference an error page or response shows (idp/ops.py)
        event = Event(type_, data=data, **kw)
        self.counts[type_] += 1
        for fn in self._subscribers:
            fn(event)
        return event
