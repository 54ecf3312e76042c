"""Typed events at each protocol milestone. Business code emits; the audit log, the citizen's
access log and the metrics subscribe. Nobody writes audit rows or counters by hand."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, insert, select

from idp.audit_chain import CHECKPOINT_TYPE, GENESIS, AuditKeys, ChainCheck, ChainReport, Checkpoint, Checkpoints
from idp.store.db import Database
from idp.store.models import AuditEvent
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
    """The writer thread's "committed" for callers on an event loop: a future resolved there."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future = loop.create_future()

    def set(self) -> None:
        self.loop.call_soon_threadsafe(lambda: self.future.done() or self.future.set_result(None))


class _Turn:
    """The events a loop's handlers append during one turn of the loop, handed to the writer
    together when the turn ends: one wake-up of the writer, one transaction, one signal back.
    Handed one by one, the writer woke for every event and took the interpreter lock at each
    pause of the loop (a urandom read is one): under 32 connections a batch held 1.2 events and
    the audit cost more than the rest of a token request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[Event] = []
        self.signal = _LoopSignal(loop)
        self.outcome: list = []


class _Pending(list):
    undo: list[Callable[[], None]]
    events: list[Event] | None  # a thread's batch (AuditLog.batch): held until its work ends; None on the event loop


def if_not_recorded(undo: Callable[[], None]) -> None:
    """Run `undo` should the events just emitted fail to commit. Emitted without deferral, a
    failure raised from `emit` itself, and the caller's own `except` does it: nothing to do here."""
    pending = _deferred.get()
    if pending is not None:
        pending.undo.append(undo)


async def in_thread_batched(audit: AuditLog, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in the threadpool, its audit events written as one batch when it ends."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_batched, audit, fn, *args)


def _batched(audit: AuditLog, fn: Callable[..., Any], *args: Any) -> Any:
    with audit.batch():
        return fn(*args)


class deferred_audit:
    """`with deferred_audit() as audit: …sync work…` then `await audit.committed()`: the work's
    audit events committed (or the writer's error raised, after the work's `if_not_recorded`
    undo steps), without a thread waiting for them."""

    def __enter__(self) -> deferred_audit:
        self.pending = _Pending()
        self.pending.undo = []
        self.pending.events = None
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
_EVENT_COLUMNS = ("at", "type", "person_id", "client_id", "ip", "data", "prev_hash", "hash")
_ACCESS_COLUMNS = ("person_id", "client_id", "at", "claims", "channel")


_PG_TYPES = {"at": "float8", "data": "json", "claims": "json"}  # the rest are text


class _BatchSql:
    """A batch's statements in the driver's own dialect, sent through the DBAPI cursor of the
    batch's transaction: SQLAlchemy's statement compilation and result machinery cost about
    90 µs per batch (127 µs against 39 for the same BEGIN, tail, INSERT, COMMIT on SQLite), a
    good part of an audited token request's own work. JSON columns get the text `json.dumps`
    makes, as SQLAlchemy's JSON type would write it.

    On SQLite, one multi-row VALUES. On PostgreSQL, one statement whatever the batch's size, its
    columns sent as arrays and unnested in the rows' order (WITH ORDINALITY … ORDER BY): psycopg
    prepares and caches a statement it sees again, where a VALUES list of a new length was a
    new statement to parse, plan and prepare (a fifth of the writer's time under load)."""

    def __init__(self, dialect: str) -> None:
        self.postgresql = dialect == "postgresql"
        self.tail = "SELECT id, hash, type FROM audit_events ORDER BY id DESC LIMIT 1"
        self.begin = None if self.postgresql else "BEGIN IMMEDIATE"  # SQLite: the write lock before the tail is read
        self.lock = "SELECT pg_advisory_xact_lock(%s)" if self.postgresql else None
        self._events_sql = self._unnest("audit_events", _EVENT_COLUMNS) + " RETURNING id" if self.postgresql else ""
        self._access_sql = self._unnest("access_log", _ACCESS_COLUMNS) if self.postgresql else ""

    @staticmethod
    def _unnest(table: str, columns: tuple[str, ...]) -> str:
        arrays = ", ".join(f"%s::{'float8' if _PG_TYPES.get(c) == 'float8' else 'text'}[]" for c in columns)
        picked = ", ".join(f"{c}::json" if _PG_TYPES.get(c) == "json" else c for c in columns)
        return (f"INSERT INTO {table} ({', '.join(columns)}) SELECT {picked} FROM unnest({arrays}) "
                f"WITH ORDINALITY AS t({', '.join(columns)}, n) ORDER BY n")

    def insert_events(self, rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
        return self._insert("audit_events", rows, _EVENT_COLUMNS, "data", self._events_sql, " RETURNING id")

    def insert_access(self, rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
        return self._insert("access_log", rows, _ACCESS_COLUMNS, "claims", self._access_sql, "")

    def _insert(self, table: str, rows: list[dict[str, Any]], columns: tuple[str, ...], json_column: str, unnest: str,
                tail: str) -> tuple[str, list[Any]]:
        dumps = json.dumps
        if self.postgresql:
            return unnest, [[dumps(r[c]) for r in rows] if c == json_column else [r[c] for r in rows] for c in columns]
        values: list[Any] = []
        for r in rows:
            values.extend(dumps(r[c]) if c == json_column else r[c] for c in columns)
        row = "(" + ", ".join("?" * len(columns)) + ")"
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * len(rows))}{tail}", values


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
        self._queue: list[tuple[list[Event], Any, list]] = []  # (events, their signal, their outcome)
        self._turns: dict[asyncio.AbstractEventLoop, _Turn] = {}  # each loop's open batch (touched by its own thread)
        self._cond = threading.Condition()
        self._writer: threading.Thread | None = None
        self._write_lock = threading.Lock()  # the writer thread and checkpoint_now() of one process
        self._latest: Checkpoint | None = None  # the database is asked again only when this one seems due
        self._closed = False
        self._sql = _BatchSql(db.dialect)

    def append(self, event: Event) -> None:
        pending = _deferred.get()
        if pending is not None and pending.events is not None:
            pending.events.append(event)  # a thread's batch: written when its work ends (`batch`)
            return
        if pending is not None:
            # On the event loop: into this turn's batch; the caller awaits it (`deferred_audit`)
            # before its answer leaves.
            loop = asyncio.get_running_loop()
            turn = self._turns.get(loop)
            if turn is None:
                turn = self._turns[loop] = _Turn(loop)
                loop.call_soon(self._hand_over, loop)
            turn.events.append(event)
            if not pending or pending[-1][0] is not turn.signal:
                pending.append((turn.signal, turn.outcome))
            return
        error = self._written([event])
        if error is not None:
            raise error

    def _written(self, events: list[Event]) -> Exception | None:
        """Hand `events` to the writer and wait, in this thread, for their commit: None once
        committed, else the writer's error (or the timeout's)."""
        done, outcome = threading.Event(), []
        self._enqueue(events, done, outcome)
        if not done.wait(self.timeout):
            return RuntimeError("the audit log did not commit in time")
        return outcome[0] if outcome else None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """`with audit.batch(): …sync work…` in a thread: the work's events are written together
        when it ends, in one transaction, and the thread waits once, not once per event (a
        sign-in emits four or five). They are committed before the work's answer can leave;
        should they fail, the work's `if_not_recorded` undo steps run and the writer's error is
        raised, as from the `emit` that could not be recorded."""
        pending = _Pending()
        pending.undo = []
        pending.events = []
        token = _deferred.set(pending)
        try:
            yield
        finally:
            _deferred.reset(token)
            if pending.events:
                error = self._written(pending.events)
                if error is not None:
                    for undo in pending.undo:
                        undo()
                    raise error

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        turn = self._turns.pop(loop, None)
        if turn is not None:
            self._enqueue(turn.events, turn.signal, turn.outcome)

    def _enqueue(self, events: list[Event], done: Any, outcome: list) -> None:
        with self._cond:
            self._queue.append((events, done, outcome))
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._run, name="nixa-audit-writer", daemon=True)
                self._writer.start()
            self._cond.notify()

    def close(self) -> None:
        """Stop the writer once its queue is written (a worker shutting down, a test's NIXA)."""
        for loop in list(self._turns):  # a turn whose loop stopped before handing it over
            self._hand_over(loop)
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
                taken = counted = 0
                for events, _, _ in self._queue:  # whole entries, about MAX_BATCH events at most
                    if taken and counted + len(events) > self.MAX_BATCH:
                        break
                    taken, counted = taken + 1, counted + len(events)
                batch, self._queue = self._queue[:taken], self._queue[taken:]
            try:
                self._write([e for events, _, _ in batch for e in events])
                error = None
            except Exception as exc:  # every waiting caller learns it; none returns success
                error = exc
                if not batch:
                    log.warning("audit checkpoint failed: %s", exc)
            for _, done, outcome in batch:
                outcome.append(error)
                done.set()

    def _write(self, events: list[Event], *, force_checkpoint: bool = False) -> None:
        # One INSERT … RETURNING per table and batch, in the driver's own SQL (_BatchSql); the
        # rare checkpoint goes through SQLAlchemy on the same transaction.
        sql = self._sql
        with self._write_lock, self.db.engine.begin() as s:  # a Connection: no ORM session to set up per batch
            cur = s.connection.dbapi_connection.cursor()
            try:
                if sql.begin:
                    cur.execute(sql.begin)
                if sql.lock:
                    cur.execute(sql.lock, (self._PG_LOCK,))
                cur.execute(sql.tail)
                found = cur.fetchone()
                tail = _Tail(*found) if found else None
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
                    # The batch's last row has the highest id, the chain's appends being serialized.
                    cur.execute(*sql.insert_events(rows))
                    ids = [r[0] for r in cur.fetchall()]
                    tail = _Tail(max(ids), rows[-1]["hash"], rows[-1]["type"])
                if access:
                    cur.execute(*sql.insert_access(access))
            finally:
                cur.close()
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
