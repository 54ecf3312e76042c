"""/account: the citizen's own page ("Tài khoản của tôi"). Endpoints only: reading the request,
checking who is asking (signin.py) and the CSRF token, calling the service, rendering.

Reading needs a substantial sign-in within VIEW_MAX_AGE; removing a linked identity needs one
within SENSITIVE_MAX_AGE. Every POST carries a CSRF token bound to the browser and the session.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from idp.account import service, signin
from idp.account.browsers import describe
from idp.identity import passkeys
from idp.login.pages import (
    browser_id,
    ensure_browser_id,
    message,
    nixa_of,
    redirect,
    render,
    session_cookie,
    set_cookie,
    translator,
)
from idp.login.session import BROWSER_COOKIE, SsoSession, check_csrf, csrf_token
from idp.oidc.endpoints import client_ip
from idp.oidc.params import BadRequest, read_form, read_query

router = APIRouter()

VN_TIME = dt.timezone(dt.timedelta(hours=7))  # Indochina Time, no daylight saving
NOTICES = frozenset({"unlinked", "reported", "session_ended", "sessions_ended", "consent_revoked", "signed_in_again",
                     "passkey_registered", "passkey_removed", "totp_started", "totp_enrolled", "totp_removed", "recover",
                     "factors_reset"})


@dataclass
class Visitor:
    """The signed-in person on an account page."""

    nixa: Any
    t: Any
    session: SsoSession
    browser: str

    @property
    def person_id(self) -> str:
        return self.session.person_id

    @property
    def csrf(self) -> str:
        return csrf_token(self.nixa.csrf_key, self.browser, f"account:{self.session.sid}")


def _visitor(request: Request, *, max_age: int = signin.VIEW_MAX_AGE, back: str | None = None) -> Visitor | Response:
    """The person, when the SSO session holds a recent enough substantial sign-in; otherwise the
    redirect that gets one (then returns to `back`, or to this page)."""
    nixa = nixa_of(request)
    t = translator(request)
    bid, new_browser = ensure_browser_id(request)
    cookie = session_cookie(request)
    session = nixa.sessions.load(cookie)
    if not signin.satisfied(nixa, session, max_age):
        if back is None:
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        sensitive = max_age < signin.VIEW_MAX_AGE
        response = redirect(signin.authorize_url(nixa, bid, back, max_age=max_age, force=sensitive, lang=t.lang))
        if new_browser:
            set_cookie(response, request, BROWSER_COOKIE, bid, None)
        return response
    session = nixa.sessions.touch(cookie, session) or session
    return Visitor(nixa, t, session, bid)


def when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, VN_TIME).strftime("%d/%m/%Y %H:%M") if ts else ""


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(str(v) for k, v in value.items() if k != "formatted" and v) or str(value.get("formatted", ""))
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _page(request: Request, v: Visitor, template: str, status: int = 200, **ctx: Any) -> Response:
    t = v.t

    def label(name: str) -> str:
        key = f"claim_{name}"
        return t(key) if t(key) != key else name

    def source(connector_id: str | None) -> str:
        if not connector_id:
            return ""
        entry = v.nixa.connectors.entry(connector_id)
        if entry is None:
            return t("method_local") if connector_id == "local" else connector_id
        return (entry.display_name_vi if t.lang == "vi" else entry.display_name_en) or connector_id

    def browser_text(view: service.SessionView) -> str:
        if view.browser and view.system:
            return t("account_browser_on", browser=view.browser, os=view.system)
        return view.browser or view.system or t("account_browser_unknown")

    return render(request, template, t, status=status, csrf=v.csrf, when=when, show=_show, label=label, source=source,
                  browser_text=browser_text, **ctx)


def _overview(request: Request, v: Visitor, *, notice: str | None = None, error: str | None = None, status: int = 200,
              **extra: Any) -> Response:
    from idp.account import second_factors  # its routes are built on this module's

    nixa, pid = v.nixa, v.person_id
    links = service.links(nixa, pid)
    # What the page offers to remove; service.unlink checks it again on the POST.
    proving = {x.id for x in links if x.proves_national_id and x.locked_at is None}
    removable = {x.id for x in links if len(links) > 1 and (not x.proves_national_id or proving - {x.id})}
    return _page(request, v, "account.html", status, notice=notice, error=error,
                 profile=service.profile(nixa, pid), links=links, removable=removable,
                 sessions=service.sessions(nixa, pid, v.session.sid), consents=service.consents(nixa, pid),
                 passkeys=passkeys.credentials(nixa, pid), passkey_name=_passkey_name(request, v.t),
                 **second_factors.view(v), **extra)


@router.get("/account")
def overview(request: Request) -> Response:
    v = _visitor(request)
    if isinstance(v, Response):
        return v
    notice = request.query_params.get("notice")
    return _overview(request, v, notice=notice if notice in NOTICES else None)


@router.get("/account/callback")
def callback(request: Request) -> Response:
    """Back from NIXA's /authorize (signin.py): the state must be the one this browser started."""
    nixa = nixa_of(request)
    t = translator(request)
    target = signin.AccountSignIns(nixa).finish(request.query_params.get("state"), browser_id(request))
    if target is None:
        return message(request, t, "error_expired_request")
    if request.query_params.get("iss") != nixa.settings.issuer:  # RFC 9207
        return message(request, t, "error_expired_request")
    if "error" in request.query_params:
        key = "account_needs_substantial" if request.query_params["error"] == "unmet_authentication_requirements" else "account_signin_failed"
        return message(request, t, key, 403, back_url="/")
    signin.forget_account_client(nixa, session_cookie(request))
    return redirect(target)


# ---- changes (POST) -----------------------------------------------------------------------------


async def _post(request: Request, action: Any, *, max_age: int = signin.VIEW_MAX_AGE) -> Response:
    nixa = nixa_of(request)
    try:
        form = await read_form(request, max_body=nixa.settings.max_body_bytes, max_length=nixa.settings.max_param_length)
    except BadRequest as exc:
        return message(request, translator(request), "error_bad_request", exc.status, detail=exc.description)
    return await run_in_threadpool(_checked, request, form, action, max_age)


def _checked(request: Request, form: dict[str, str], action: Any, max_age: int) -> Response:
    v = _visitor(request, max_age=max_age, back="/account?notice=signed_in_again")
    if isinstance(v, Response):
        return v
    if not check_csrf(v.nixa.csrf_key, browser_id(request), f"account:{v.session.sid}", form.get("csrf")):
        return message(request, v.t, "error_csrf", 403)
    ip = client_ip(request, v.nixa)
    try:
        outcome = action(v, form, ip)
    except service.Refused as refused:
        return _overview(request, v, error=refused.code, status=409)
    if isinstance(outcome, Response):  # a page that shows something once (new recovery codes)
        return outcome
    notice, section = outcome
    return redirect(f"/account?notice={notice}#{section}")


@router.post("/account/identities/unlink")
async def unlink(request: Request) -> Response:
    def act(v: Visitor, form: dict[str, str], ip: str | None) -> tuple[str, str]:
        service.unlink(v.nixa, v.person_id, form.get("link_id", ""), ip=ip)
        return "unlinked", "identities"

    return await _post(request, act, max_age=signin.SENSITIVE_MAX_AGE)


@router.post("/account/identities/report")
async def report(request: Request) -> Response:
    def act(v: Visitor, form: dict[str, str], ip: str | None) -> tuple[str, str]:
        service.report_link(v.nixa, v.person_id, form.get("link_id", ""), current_sid=v.session.sid, ip=ip)
        return "reported", "identities"

    return await _post(request, act)


@router.post("/account/sessions/end")
async def end_session(request: Request) -> Response:
    def act(v: Visitor, form: dict[str, str], ip: str | None) -> tuple[str, str]:
        service.end_session(v.nixa, v.person_id, form.get("session", ""), current_sid=v.session.sid, ip=ip)
        return "session_ended", "sessions"

    return await _post(request, act)


@router.post("/account/sessions/end-others")
async def end_other_sessions(request: Request) -> Response:
    def act(v: Visitor, form: dict[str, str], ip: str | None) -> tuple[str, str]:
        service.end_other_sessions(v.nixa, v.person_id, v.session.sid, ip=ip)
        return "sessions_ended", "sessions"

    return await _post(request, act)


# ---- passkeys ------------------------------------------------------------------------------------


def _passkey_name(request: Request, t: Any) -> str:
    """The name a new passkey is offered under: the browser and system it is made on."""
    browser, system = describe(request.headers.get("user-agent", ""))
    if browser and system:
        return t("account_browser_on", browser=browser, os=system)[:passkeys.NAME_MAX]
    return (browser or system or t("passkey_default_name"))[:passkeys.NAME_MAX]


@router.post("/account/passkeys/options")
async def passkey_options(request: Request) -> Response:
    """navigator.credentials.create() options (JSON). A sign-in too old for the account page is
    401: the script reloads the page, which asks for a fresh sign-in."""
    nixa = nixa_of(request)
    try:
        form = await read_form(request, max_body=nixa.settings.max_body_bytes, max_length=nixa.settings.max_param_length)
    except BadRequest as exc:
        return Response(status_code=exc.status)
    return await run_in_threadpool(_passkey_options, request, form)


def _passkey_options(request: Request, form: dict[str, str]) -> Response:
    v = _visitor(request)
    if isinstance(v, Response):
        return Response(status_code=401, headers={"Cache-Control": "no-store"})
    if not check_csrf(v.nixa.csrf_key, browser_id(request), f"account:{v.session.sid}", form.get("csrf")):
        return Response(status_code=403, headers={"Cache-Control": "no-store"})
    try:
        options = passkeys.registration_options(v.nixa, v.session, v.browser)
    except passkeys.PasskeyRefused:
        return Response(status_code=401, headers={"Cache-Control": "no-store"})
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.post("/account/passkeys/register")
async def register_passkey(request: Request) -> Response:
    def act(v: Visitor, form: dict[str, str], ip: str | None) -> tuple[str, str]:
        try:
            passkeys.register(v.nixa, v.session, v.browser, form.get("credential", ""), form.get("name", ""), ip=ip)
        except passkeys.PasskeyRefused as refused:
            raise service.Refused(refused.code) from None
        return "passkey_registered", "passkeys"

    return await _post(request, act)


@router.post("/account/passkeys/remove")
async def remove_passkey(request: Request) -> Response:
    def act(v: Visitor, form: dict[str, str], ip: str | None) -> tuple[str, str]:
        try:
            passkeys.remove(v.nixa, v.person_id, form.get("credential_id", ""), ip=ip)
        except passkeys.PasskeyRefused as refused:
            raise service.Refused(refused.code) from None
        return "passkey_removed", "passkeys"

    return await _post(request, act, max_age=signin.SENSITIVE_MAX_AGE)


@router.post("/account/consents/revoke")
async def revoke_consent(request: Request) -> Response:
    def act(v: Visitor, form: dict[str, str], ip: str | None) -> tuple[str, str]:
        service.revoke_consent(v.nixa, v.person_id, form.get("client_id", ""), ip=ip)
        return "consent_revoked", "consents"

    return await _post(request, act)


# ---- access log and exports -----------------------------------------------------------------------


def _day(value: str) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=VN_TIME).timestamp()
    except ValueError:
        raise BadRequest("account_filter_date", value=value[:20]) from None


def _filters(request: Request) -> tuple[service.AccessLogFilter, dict[str, str], int]:
    """The filter from the query (app, from, to: Vietnam calendar days, both inclusive), the
    query to repeat in links, and the page number."""
    nixa = nixa_of(request)
    q = read_query(request, max_length=nixa.settings.max_param_length)
    since, until = _day(q.get("from", "")), _day(q.get("to", ""))
    page = q.get("page", "1")
    if not page.isdigit() or not 1 <= int(page) <= 100_000:
        raise BadRequest("account_filter_page")
    flt = service.AccessLogFilter(client_id=q.get("app") or None, since=since, until=until + 86400 if until is not None else None)
    kept = {k: q[k] for k in ("app", "from", "to") if q.get(k)}
    return flt, kept, int(page)


def _with_filters(request: Request, handler: Any) -> Response:
    v = _visitor(request)
    if isinstance(v, Response):
        return v
    try:
        flt, kept, page = _filters(request)
    except BadRequest as exc:
        return message(request, v.t, "error_bad_request", 400, detail=exc.description)
    return handler(v, flt, kept, page)


@router.get("/account/access-log")
def access_log(request: Request) -> Response:
    def page_of(v: Visitor, flt: service.AccessLogFilter, kept: dict[str, str], page: int) -> Response:
        rows, total = service.access_log(v.nixa, v.person_id, flt, page)
        pages = max((total + service.PAGE_SIZE - 1) // service.PAGE_SIZE, 1)

        def page_url(n: int) -> str:
            return "/account/access-log?" + urlencode({**kept, "page": n})

        query = f"?{urlencode(kept)}" if kept else ""
        return _page(request, v, "account_access_log.html", rows=rows, total=total, page=page, pages=pages, page_url=page_url,
                     apps=service.access_log_apps(v.nixa, v.person_id), selected=kept, export_query=query)

    return _with_filters(request, page_of)


def _attachment(body: str, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                                          "Cache-Control": "no-store"})


@router.get("/account/access-log.json")
def access_log_json(request: Request) -> Response:
    def export(v: Visitor, flt: service.AccessLogFilter, kept: dict[str, str], page: int) -> Response:
        rows = service.access_log_all(v.nixa, v.person_id, flt)
        body = {"filters": kept, "entries": [service.access_log_json(r) for r in rows]}
        return _attachment(json.dumps(body, ensure_ascii=False, indent=2), "application/json", "nixa-access-log.json")

    return _with_filters(request, export)


def _cell(value: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet (CSV injection): quote it as text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@router.get("/account/access-log.csv")
def access_log_csv(request: Request) -> Response:
    def export(v: Visitor, flt: service.AccessLogFilter, kept: dict[str, str], page: int) -> Response:
        out = io.StringIO()
        out.write("\ufeff")  # so spreadsheet programs read the Vietnamese names as UTF-8
        writer = csv.writer(out)
        writer.writerow(["at", "client_id", "client_name", "channel", "claims"])
        for r in service.access_log_all(v.nixa, v.person_id, flt):
            writer.writerow([service.iso(r.at), _cell(r.client_id), _cell(r.client_name), r.channel, " ".join(r.claims)])
        return _attachment(out.getvalue(), "text/csv; charset=utf-8", "nixa-access-log.csv")

    return _with_filters(request, export)


@router.get("/account/export.json")
def export_all(request: Request) -> Response:
    v = _visitor(request)
    if isinstance(v, Response):
        return v
    body = service.export(v.nixa, v.person_id, v.session.sid)
    return _attachment(json.dumps(body, ensure_ascii=False, indent=2, default=str), "application/json", "nixa-my-data.json")
