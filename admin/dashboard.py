"""The console's dashboard figures: sign-ins per method and per connector, failures, tokens
issued, over the last 24 hours, counted from the audit trail (the same typed events the metrics
are fed from, but shared by every worker and kept); and request latency per route from this
worker's metrics (idp/ops.py: a histogram in memory, since the worker started).

Counting happens in the database (GROUP BY on the event type and one JSON field), so a busy
day costs one small answer, not a day of rows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from idp.store.models import AuditEvent

WINDOW = 86400  # seconds: the dashboard's "last 24 hours"


@dataclass(frozen=True)
class Row:
    label: str
    count: int
    share: int  # percent of the largest row of its table: the width of its bar


@dataclass(frozen=True)
class Latency:
    route: str
    count: int
    mean_ms: float
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Figures:
    since: float
    sign_ins_by_method: list[Row] = field(default_factory=list)
    sign_ins_by_connector: list[Row] = field(default_factory=list)
    failures: list[Row] = field(default_factory=list)
    tokens_by_grant: list[Row] = field(default_factory=list)
    tokens_by_app: list[Row] = field(default_factory=list)
    token_failures: list[Row] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)

    @property
    def total_sign_ins(self) -> int:
        return sum(r.count for r in self.sign_ins_by_method)

    @property
    def total_failures(self) -> int:
        return sum(r.count for r in self.failures)

    @property
    def total_tokens(self) -> int:
        return sum(r.count for r in self.tokens_by_grant)


def _rows(counts: list[tuple[Any, int]]) -> list[Row]:
    counts = sorted(((str(k) if k not in (None, "") else "?", int(n)) for k, n in counts), key=lambda x: (-x[1], x[0]))
    top = max((n for _, n in counts), default=0) or 1
    return [Row(k, n, round(100 * n / top)) for k, n in counts]


def _count(nixa: Any, types: tuple[str, ...], since: float, by: Any) -> list[tuple[Any, int]]:
    with nixa.db.session() as s:
        q = (select(by, func.count()).where(AuditEvent.type.in_(types), AuditEvent.at >= since).group_by(by))
        return [(k, n) for k, n in s.execute(q).all()]


def _merge(rows: list[tuple[Any, int]]) -> list[tuple[Any, int]]:
    out: dict[Any, int] = {}
    for k, n in rows:
        out[k] = out.get(k, 0) + n
    return list(out.items())


def latency(nixa: Any, top: int = 12) -> list[Latency]:
    """Per route, from the histogram buckets: mean, and p50/p99 as the upper bound of the
    bucket the quantile falls in (a histogram knows no better)."""
    metrics = getattr(nixa, "metrics", None)
    if metrics is None:
        return []
    routes: dict[str, dict[str, Any]] = {}
    for family in metrics.latency.collect():
        for sample in family.samples:
            route = sample.labels.get("route", "")
            entry = routes.setdefault(route, {"buckets": [], "count": 0, "sum": 0.0})
            if sample.name.endswith("_bucket"):
                entry["buckets"].append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                entry["count"] = int(sample.value)
            elif sample.name.endswith("_sum"):
                entry["sum"] = sample.value

    def quantile(buckets: list[tuple[float, float]], count: int, q: float) -> float | None:
        for le, cumulative in sorted(buckets):
            if cumulative >= q * count:
                return None if le == float("inf") else le * 1000
        return None

    out = [Latency(route, e["count"], round(1000 * e["sum"] / e["count"], 1), quantile(e["buckets"], e["count"], 0.5),
                   quantile(e["buckets"], e["count"], 0.99))
           for route, e in routes.items() if e["count"] and route not in ("static", "unmatched")]
    return sorted(out, key=lambda x: -x.count)[:top]


def figures(nixa: Any, now: float | None = None) -> Figures:
    since = (now if now is not None else time.time()) - WINDOW
    method = AuditEvent.data["method"].as_string()
    by_method = _count(nixa, ("login.succeeded",), since, method)
    connector_ids = {s.id for s in nixa.connectors.all_stored()}
    names = {s.id: s.display_name_en or s.id for s in nixa.connectors.all_stored()}
    return Figures(
        since=since,
        sign_ins_by_method=_rows(by_method),
        # A method named by a connector id is that identity source's; the built-in ones (a local
        # password, an authenticator app, a passkey) are no connector's.
        sign_ins_by_connector=_rows([(f"{names[k]} ({k})", n) for k, n in by_method if k in connector_ids]),
        failures=_rows(_merge([(f"{m or '?'}: {r or '?'}", n) for (m, r), n in _count_pairs(nixa, since)])),
        tokens_by_grant=_rows(_count(nixa, ("token.issued",), since, AuditEvent.data["grant_type"].as_string())),
        tokens_by_app=_rows(_count(nixa, ("token.issued",), since, AuditEvent.client_id)),
        token_failures=_rows(_count(nixa, ("token.failed",), since, AuditEvent.data["error"].as_string())),
        latency=latency(nixa),
    )


def _count_pairs(nixa: Any, since: float) -> list[tuple[tuple[Any, Any], int]]:
    """Failed and throttled sign-in steps, by method and reason."""
    method, reason = AuditEvent.data["method"].as_string(), AuditEvent.data["reason"].as_string()
    with nixa.db.session() as s:
        q = (select(AuditEvent.type, method, reason, func.count())
             .where(AuditEvent.type.in_(("login.failed", "login.throttled")), AuditEvent.at >= since)
             .group_by(AuditEvent.type, method, reason))
        return [((m, r if t == "login.failed" else "throttled"), n) for t, m, r, n in s.execute(q).all()]
