"""The audit trail for auditors: filter by actor, subject, event and time; export as JSON
Lines or CSV; verify the keyed chain (idp/audit_chain.py), optionally against a checkpoint
kept outside NIXA."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, or_, select

from admin.service import AdminRefused
from idp.store.models import AuditEvent

PAGE_MAX = 500
EXPORT_MAX = 100_000
_ID = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")
_EVENT = re.compile(r"^[a-z_]+(\.[a-z_]+)*\.?$")


@dataclass(frozen=True)
class AuditFilter:
    """`actor`: the person id of an operator of the API, or `cli:<os user>` for the command
    line; `subject`: a person id or a client id; `event`: a type (`admin.changed`) or a prefix
    ending with a dot (`admin.`); `since` inclusive, `until` exclusive (Unix seconds)."""

    actor: str | None = None
    subject: str | None = None
    event: str | None = None
    since: float | None = None
    until: float | None = None

    def checked(self) -> AuditFilter:
        for name in ("actor", "subject"):
            value = getattr(self, name)
            if value is not None and not _ID.match(value.removeprefix("cli:")):
                raise AdminRefused(400, "invalid_request", f"{name}: letters, digits and . _ @ - only")
        if self.event is not None and not _EVENT.match(self.event):
            raise AdminRefused(400, "invalid_request", "event: an event type such as admin.changed, or a prefix such as admin.")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise AdminRefused(400, "invalid_request", "since must be before until")
        return self

    def apply(self, query: Any) -> Any:
        if self.actor:
            # The actor sits in the event data as the admin API or the CLI wrote it (admin/auth.py
            # Admin.actor, admin/cli.py _actor); SQLAlchemy serializes JSON alike on both databases.
            via, key, value = ("cli", "os_user", self.actor[4:]) if self.actor.startswith("cli:") else ("api", "person_id", self.actor)
            query = query.where(cast(AuditEvent.data, String).like(f'%"actor": {{"via": "{via}", "{key}": "{value}"%'))
        if self.subject:
            query = query.where(or_(AuditEvent.person_id == self.subject, AuditEvent.client_id == self.subject))
        if self.event:
            query = query.where(AuditEvent.type.startswith(self.event) if self.event.endswith(".") else AuditEvent.type == self.event)
        if self.since is not None:
            query = query.where(AuditEvent.at >= self.since)
        if self.until is not None:
            query = query.where(AuditEvent.at < self.until)
        return query


def row_json(row: AuditEvent) -> dict[str, Any]:
    return {"id": row.id, "at": row.at, "type": row.type, "person_id": row.person_id, "client_id": row.client_id, "ip": row.ip,
            "data": row.data, "hash": row.hash}


class AuditTrail:
    def __init__(self, nixa: Any) -> None:
        self.nixa = nixa

    def page(self, flt: AuditFilter, *, before_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; the next page starts before the last id of this one."""
        if not 1 <= limit <= PAGE_MAX:
            raise AdminRefused(400, "invalid_request", f"limit: 1 to {PAGE_MAX}")
        query = flt.checked().apply(select(AuditEvent))
        if before_id is not None:
            query = query.where(AuditEvent.id < before_id)
        with self.nixa.db.session() as s:
            return [row_json(r) for r in s.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))]

    def _rows(self, flt: AuditFilter) -> Iterator[dict[str, Any]]:
        query = flt.checked().apply(select(AuditEvent)).order_by(AuditEvent.id).limit(EXPORT_MAX)
        with self.nixa.db.session() as s:
            for row in s.scalars(query).yield_per(1000):
                yield row_json(row)

    def export_jsonl(self, flt: AuditFilter) -> Iterator[str]:
        for item in self._rows(flt):
            yield json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n"

    def export_csv(self, flt: AuditFilter) -> Iterator[str]:
        from idp.account.routes import _cell  # a formula-looking cell is quoted as text (CSV injection)

        columns = ["id", "at", "type", "person_id", "client_id", "ip", "data", "hash"]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for item in self._rows(flt):
            item["data"] = json.dumps(item["data"], ensure_ascii=False, sort_keys=True)
            writer.writerow([_cell(str(item[c])) if item[c] is not None else "" for c in columns])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    def verify(self, checkpoint_jws: str | None = None) -> dict[str, Any]:
        from idp.audit_chain import InvalidCheckpoint

        held = None
        if checkpoint_jws:
            try:
                held = self.nixa.audit.checkpoints.read(checkpoint_jws)
            except InvalidCheckpoint as exc:
                raise AdminRefused(400, "invalid_checkpoint", f"checkpoint refused: {exc}") from None
        report = self.nixa.audit.verify_chain(held)
        return {"ok": report.ok, "events": report.events, "bad_event": report.bad_event, "reason": report.reason or None,
                "legacy": report.legacy, "summary": report.line()}
