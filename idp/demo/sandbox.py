"""The sandbox's developer pages, mounted only in demo mode (create_app): the synthetic
personas with how to sign in as each, and a per-client inspector of its last requests and why
each failed, read from the audit events, the way an integrator would otherwise ask NIXA's
operators. Nothing secret is shown: no code, token, secret or personal data, only the
pseudonymous `sub` this client itself receives."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from idp.demo.personas import page_rows
from idp.login.pages import message, nixa_of, render, translator
from idp.store.models import AuditEvent

router = APIRouter(prefix="/sandbox")

# The protocol milestones of one client's requests (idp/events.py); UserInfo answers show as
# claims.released (channel=userinfo). A UserInfo refusal is not audited, so it cannot show.
INSPECTED = ("authorization.succeeded", "authorization.failed", "request.rejected", "login.failed", "login.throttled",
             "identity.link_refused", "consent.granted", "consent.denied", "token.issued", "token.failed", "token.refreshed",
             "code.replayed", "refresh.reused", "token.revoked", "grant.revoked", "introspection.refused", "claims.released", "logout",
             "logout.delivered", "logout.retrying", "logout.failed")
FAILURES = frozenset({"authorization.failed", "request.rejected", "login.failed", "login.throttled", "identity.link_refused",
                      "consent.denied", "token.failed", "code.replayed", "refresh.reused", "introspection.refused", "logout.retrying",
                      "logout.failed"})
# What an event's data may show: reasons and protocol parameters, never a value that grants
# anything (codes, tokens, secrets, grant ids) nor another client's id.
SHOWN = ("error", "reason", "cause", "error_description", "grant_type", "method", "kind", "scope", "channel", "attempt")
LIMIT = 50


def _available(request: Request) -> bool:
    return bool(nixa_of(request).settings.demo)  # mounted only in demo mode; refuse all the same


@router.get("/personas")
def personas(request: Request) -> Response:
    t = translator(request)
    if not _available(request):
        return message(request, t, "error_not_found", 404)
    return render(request, "sandbox_personas.html", t, personas=page_rows(t.lang))


@router.get("/clients")
async def clients(request: Request) -> Response:
    t = translator(request)
    if not _available(request):
        return message(request, t, "error_not_found", 404)
    nixa = nixa_of(request)
    rows = await run_in_threadpool(lambda: [{"id": c.client_id, "name": c.name} for c in nixa.clients.all()])
    return render(request, "sandbox_clients.html", t, clients=rows)


def recent_requests(nixa: Any, client: Any, limit: int = LIMIT) -> list[dict[str, Any]]:
    """The client's last protocol events, newest first, as the inspector shows them."""
    with nixa.db.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.client_id == client.client_id, AuditEvent.type.in_(INSPECTED))
                           .order_by(AuditEvent.id.desc()).limit(limit)).all()
    rows = []
    for e in events:
        data = e.data or {}
        rows.append({
            "at": dt.datetime.fromtimestamp(e.at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "type": e.type, "failed": e.type in FAILURES or bool(data.get("error")),
            "details": [(k, str(data[k])) for k in SHOWN if data.get(k) not in (None, "", [])],
            "reference": str(data.get("request_id") or ""),
            "sub": nixa.people.subject_for(e.person_id, client) if e.person_id else "",
        })
    return rows


@router.get("/clients/{client_id}")
async def client_page(request: Request, client_id: str) -> Response:
    t = translator(request)
    if not _available(request):
        return message(request, t, "error_not_found", 404)
    nixa = nixa_of(request)
    client = await run_in_threadpool(nixa.clients.get, client_id[:128])
    if client is None:
        return message(request, t, "error_unknown_client", 404)
    rows = await run_in_threadpool(recent_requests, nixa, client)
    return render(request, "sandbox_client.html", t, client={"id": client.client_id, "name": client.name}, requests=rows)
