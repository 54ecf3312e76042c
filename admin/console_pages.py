"""The console's areas: people and incidents, the audit trail, connectors, keys (agency apps:
admin/console_apps.py; the connector forms: admin/console_connectors.py).

Each route names the permission of the admin API route it mirrors (admin/api.py, and the
connector and key routes: connectors.read|write, keys.read|write) and calls the service that
route calls. A refusal of the service (AdminRefused: bad input, a conflict) re-renders the page
or form it came from with the reason, status as the API answers it."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.responses import Response, StreamingResponse

from admin import connector_admin
from admin.audit import AuditFilter, AuditTrail
from admin.console import CONSOLE_PATH, Visit, get_page, known_notice, notice_page, page, post_action
from admin.people import Support
from admin.service import AdminRefused, check_reason, record
from idp.login.pages import redirect

PEOPLE, AUDIT, CONNECTORS, KEYS = (CONSOLE_PATH + p for p in ("/people", "/audit", "/connectors", "/keys"))


# ---- people and incidents --------------------------------------------------------------------------


def install_people(router: APIRouter) -> None:
    @router.get(PEOPLE)
    @get_page("people.read")
    def people_search(v: Visit) -> Response:
        q = v.request.query_params
        query = {k: (q.get(k) or "").strip()[:128] for k in ("national_id", "name", "phone", "reason")}
        results, error, status = None, None, 200
        if any(query[k] for k in ("national_id", "name", "phone")) or "reason" in q:
            try:
                results = Support(v.nixa).search(v.actor(), query["reason"], national_id=query["national_id"] or None,
                                                 name=query["name"] or None, phone=query["phone"] or None)
            except AdminRefused as exc:
                error, status = exc.description, exc.status
        return page(v, "console_people.html", status, query=query, results=results, error=error,
                    reason_q=urlencode({"reason": query["reason"]}))

    def person(v: Visit, person_id: str, reason: str, *, notice: str | None = None, error: str | None = None,
               status: int = 200) -> Response:
        try:
            detail = Support(v.nixa).view(v.actor(), person_id, reason)
        except AdminRefused as exc:
            if exc.status == 404:
                return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
            return page(v, "console_people.html", exc.status, query={"reason": reason}, results=None, error=exc.description,
                        reason_q="")
        return page(v, "console_person.html", status, person=detail, reason=reason, notice=notice, error=error)

    @router.get(PEOPLE + "/{person_id}")
    @get_page("people.read")
    def person_view(v: Visit, person_id: str) -> Response:
        q = v.request.query_params
        return person(v, person_id, q.get("reason", ""), notice=known_notice(v, "console_notice_person_"))

    def person_action(name: str, act: Any) -> None:
        @router.post(PEOPLE + "/{person_id}/" + name)
        @post_action("people.write")
        def run(v: Visit, form: dict[str, str], person_id: str) -> Response:
            reason = form.get("reason", "")
            try:
                act(Support(v.nixa), v.actor(), person_id, reason, form)
            except AdminRefused as exc:
                # The page again, with the reason for the refusal (a look needs a reason too:
                # without one, the search page says so).
                if len(" ".join(reason.split())) < 3:
                    return page(v, "console_people.html", exc.status, query={"reason": ""}, results=None, error=exc.description,
                                reason_q="")
                return person(v, person_id, reason, error=exc.description, status=exc.status)
            return redirect(f"{PEOPLE}/{person_id}?" + urlencode({"reason": reason, "notice": name.replace("/", "_")}))

        run.__name__ = "person_" + name.replace("/", "_")

    person_action("lock", lambda s, actor, pid, reason, form: s.lock(actor, pid, reason))
    person_action("unlock", lambda s, actor, pid, reason, form: s.unlock(actor, pid, reason))
    person_action("sessions/revoke", lambda s, actor, pid, reason, form: s.revoke_sessions(actor, pid, reason))
    person_action("unlink", lambda s, actor, pid, reason, form: s.unlink(actor, pid, form.get("link_id", "")[:32], reason))
    # The other person (`source`) is folded into the one of this page, then deleted (POST /people/merge).
    person_action("merge", lambda s, actor, pid, reason, form: s.merge(actor, (form.get("source") or "").strip()[:32], pid, reason))


# ---- audit -----------------------------------------------------------------------------------------


def _time(value: str | None, name: str) -> float | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise AdminRefused(400, "invalid_request", f"{name}: a date and time (YYYY-MM-DDTHH:MM)") from None
    if parsed.tzinfo is None:  # the console shows Vietnam time: a time typed there is read so too
        parsed = parsed.replace(tzinfo=dt.timezone(dt.timedelta(hours=7)))
    return parsed.timestamp()


def _audit_filter(q: Any) -> tuple[dict[str, str], AuditFilter]:
    shown = {k: (q.get(k) or "").strip()[:132] for k in ("actor", "subject", "event", "since", "until")}
    flt = AuditFilter(shown["actor"] or None, shown["subject"] or None, shown["event"] or None,
                      _time(shown["since"], "since"), _time(shown["until"], "until")).checked()
    return shown, flt


def install_audit(router: APIRouter) -> None:
    def audit_page(v: Visit, *, verdict: dict[str, Any] | None = None, error: str | None = None, status: int = 200) -> Response:
        q = v.request.query_params if v.request.method == "GET" else {}
        events, shown = [], {k: (q.get(k) or "") for k in ("actor", "subject", "event", "since", "until")}
        try:
            shown, flt = _audit_filter(q)
            before = q.get("before_id", "")
            events = AuditTrail(v.nixa).page(flt, before_id=int(before) if before.isdigit() and 0 < int(before) < 2**62 else None, limit=50)
        except AdminRefused as exc:
            error, status = exc.description, exc.status
        query = urlencode({k: val for k, val in shown.items() if val})
        return page(v, "console_audit.html", status, events=events, shown=shown, error=error, verdict=verdict, query=query)

    @router.get(AUDIT)
    @get_page("audit.read")
    def audit_events(v: Visit) -> Response:
        return audit_page(v)

    def export(v: Visit, kind: str) -> Response:
        try:
            _, flt = _audit_filter(v.request.query_params)
        except AdminRefused as exc:
            return audit_page(v, error=exc.description, status=exc.status)
        record(v.nixa, v.actor(), "audit.export", kind, viewed=True)
        trail = AuditTrail(v.nixa)
        body, media_type = (trail.export_jsonl(flt), "application/jsonl") if kind == "jsonl" else (trail.export_csv(flt), "text/csv")
        return StreamingResponse(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="nixa-audit.{kind}"',
                                                                       "Cache-Control": "no-store"})

    @router.get(AUDIT + "/export.jsonl")
    @get_page("audit.read")
    def audit_export_jsonl(v: Visit) -> Response:
        return export(v, "jsonl")

    @router.get(AUDIT + "/export.csv")
    @get_page("audit.read")
    def audit_export_csv(v: Visit) -> Response:
        return export(v, "csv")

    @router.post(AUDIT + "/verify")
    @post_action("audit.read")
    def audit_verify(v: Visit, form: dict[str, str]) -> Response:
        try:
            verdict = AuditTrail(v.nixa).verify((form.get("checkpoint") or "").strip() or None)
        except AdminRefused as exc:
            return audit_page(v, error=exc.description, status=exc.status)
        return audit_page(v, verdict=verdict)


# ---- connectors and keys ---------------------------------------------------------------------------


def install_connectors(router: APIRouter) -> None:
    def connectors_page(v: Visit, *, tested: dict[str, Any] | None = None, notice: str | None = None, error: str | None = None,
                        status: int = 200) -> Response:
        listed = connector_admin.list_connectors(v.nixa, health=True)
        return page(v, "console_connectors.html", status, connectors=listed, tested=tested, notice=notice, error=error)

    @router.get(CONNECTORS)
    @get_page("connectors.read")
    def connectors_list(v: Visit) -> Response:
        return connectors_page(v, notice=known_notice(v, "console_notice_connector_"))

    def switch(v: Visit, connector_id: str, enabled: bool) -> Response:
        try:
            connector_admin.set_enabled(v.nixa, connector_id, enabled, actor=v.actor(), ip=v.admin.ip)
        except connector_admin.UnknownConnector:
            return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
        return redirect(f"{CONNECTORS}?notice={'enabled' if enabled else 'disabled'}")

    @router.post(CONNECTORS + "/{connector_id}/enable")
    @post_action("connectors.write")
    def connector_enable(v: Visit, form: dict[str, str], connector_id: str) -> Response:
        return switch(v, connector_id, True)

    @router.post(CONNECTORS + "/{connector_id}/disable")
    @post_action("connectors.write")
    def connector_disable(v: Visit, form: dict[str, str], connector_id: str) -> Response:
        return switch(v, connector_id, False)

    @router.post(CONNECTORS + "/{connector_id}/test")
    @post_action("connectors.write")
    def connector_test(v: Visit, form: dict[str, str], connector_id: str) -> Response:
        try:
            result = connector_admin.test(v.nixa, connector_id)
        except connector_admin.UnknownConnector:
            return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
        return connectors_page(v, tested={"id": connector_id, **result})


def install_keys(router: APIRouter) -> None:
    def ring(v: Visit, alg: str | None = None) -> list[dict[str, Any]]:
        return [k.as_dict() for k in v.nixa.signing_keys.list() if alg in (None, k.alg)]

    def states(v: Visit, alg: str) -> dict[str, str]:
        return {k["kid"]: k["state"] for k in ring(v, alg)}

    def keys_page(v: Visit, *, notice: str | None = None, error: str | None = None, status: int = 200) -> Response:
        return page(v, "console_keys.html", status, keys=ring(v), backend=v.nixa.signing_keys.backend, algs=v.nixa.signing_keys.ring.algs,
                    notice=notice, error=error)

    @router.get(KEYS)
    @get_page("keys.read")
    def keys_list(v: Visit) -> Response:
        return keys_page(v, notice=known_notice(v, "console_notice_key_"))

    @router.post(KEYS + "/rotate")
    @post_action("keys.write")
    def key_rotate(v: Visit, form: dict[str, str]) -> Response:
        alg = form.get("alg", "")
        if alg not in v.nixa.signing_keys.ring.algs:
            return keys_page(v, error=f"alg: one of {', '.join(v.nixa.signing_keys.ring.algs)}", status=400)
        before = states(v, alg)
        # The same operation and the same audit as the admin API's POST /keys/rotate.
        if v.nixa.signing_keys.rotate(alg, actor=v.actor()):
            record(v.nixa, v.actor(), "key.rotate", alg, before=before, after=states(v, alg))
        return redirect(f"{KEYS}?notice=rotated")

    def leave(v: Visit, kid: str, what: str, act: Any, reason: str | None = None) -> Response:
        """Retire or revoke, audited as the admin API's POST /keys/{kid}/retire|revoke."""
        from keys.service import UnknownKey

        alg = next((k["alg"] for k in ring(v) if k["kid"] == kid), None)
        if alg is None:
            return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
        before = states(v, alg)
        try:
            done = act()
        except UnknownKey:  # removed by another worker meanwhile
            return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
        if done.get("changed", True):
            record(v.nixa, v.actor(), what, kid, before=before, after=states(v, alg), reason=reason)
        return redirect(f"{KEYS}?notice={what.removeprefix('key.')}d")

    @router.post(KEYS + "/{kid}/retire")
    @post_action("keys.write")
    def key_retire(v: Visit, form: dict[str, str], kid: str) -> Response:
        return leave(v, kid, "key.retire", lambda: v.nixa.signing_keys.retire(kid, actor=v.actor()))

    @router.post(KEYS + "/{kid}/revoke")
    @post_action("keys.write")
    def key_revoke(v: Visit, form: dict[str, str], kid: str) -> Response:
        # A compromised key: out of the JWKS at once, and every token it signed stops verifying
        # (the active key's too), hence a reason and a ticked confirmation.
        try:
            reason = check_reason(form.get("reason"))
            if not form.get("confirm"):
                raise AdminRefused(400, "invalid_request", v.t("console_key_revoke_confirm_needed"))
        except AdminRefused as exc:
            return keys_page(v, error=exc.description, status=exc.status)
        return leave(v, kid, "key.revoke", lambda: v.nixa.signing_keys.revoke(kid, actor=v.actor(), reason=reason), reason=reason)


def install(router: APIRouter) -> None:
    from admin.console_apps import install_apps
    from admin.console_connectors import install_connector_forms

    install_apps(router)
    install_people(router)
    install_audit(router)
    install_connector_forms(router)  # before /connectors/{id}/…: its /connectors/new is not an id
    install_connectors(router)
    install_keys(router)
