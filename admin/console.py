"""The admin web console under /admin/console: server-rendered pages over the admin services.

Each page and each action is the admin API's operation in HTML: the caller is authenticated
with admin/auth.authenticate (the console session's access token: audience the admin API,
issued to the console, substantial or higher, a role), the role is checked with
admin/roles.allowed for the permission the API route uses, and the work is done by the same
services the API and the CLI call (admin/apps.py, admin/people.py, admin/audit.py,
admin/connector_admin.py, keys/service.py), so it is audited the same way. Every POST carries
a CSRF token bound to the console session. Forms work without JavaScript; a refused input
re-renders its form with the reason. A page the operator's roles do not allow is not linked and
answers 403 with a page that says so.

This module: the operator of a request, rendering, sign-in and sign-out, the dashboard. The
pages of each area are in admin/console_pages.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from admin import dashboard
from admin.auth import Admin, AdminAuthError, authenticate
from admin.console_signin import (
    CONSOLE_PATH,
    ConsoleSession,
    ConsoleSessions,
    ConsoleSignIns,
    SignInFailed,
    authorize_url,
    check_id_token,
    console_cookie,
    logout_url,
    redeem,
)
from admin.roles import AdminRoles, allowed
from idp.login.pages import ensure_browser_id, browser_id, nixa_of, redirect, render, set_cookie, translator
from idp.login.session import BROWSER_COOKIE, check_csrf, csrf_token
from idp.oidc.endpoints import client_ip
from idp.oidc.params import BadRequest, read_form

router = APIRouter()
VN_TIME = dt.timezone(dt.timedelta(hours=7))

# The console's areas: (path, text key, the permission its pages need: admin/roles.py, as the API's routes).
AREAS = (
    ("/", "console_nav_dashboard", "me"),
    ("/apps", "console_nav_apps", "clients.read"),
    ("/people", "console_nav_people", "people.read"),
    ("/audit", "console_nav_audit", "audit.read"),
    ("/connectors", "console_nav_connectors", "connectors.read"),
    ("/keys", "console_nav_keys", "keys.read"),
)


def when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, VN_TIME).strftime("%d/%m/%Y %H:%M:%S") if ts else ""


@dataclass
class Visit:
    """The operator behind one console request."""

    request: Request
    nixa: Any
    t: Any
    admin: Admin
    session: ConsoleSession

    @property
    def csrf(self) -> str:
        return csrf_token(self.nixa.csrf_key, self.session.key, "admin-console")

    def may(self, permission: str) -> bool:
        return allowed(self.admin.roles, permission)

    def actor(self) -> dict[str, Any]:
        """The API's actor (admin/auth.py Admin.actor), marked as done through the console; its
        first keys stay as the API writes them, so the audit filter by actor finds both."""
        return {**self.admin.actor(), "ui": "console"}

    def nav(self) -> list[dict[str, Any]]:
        here = self.request.url.path.removeprefix(CONSOLE_PATH) or "/"
        return [{"href": CONSOLE_PATH + path, "text": self.t(key), "current": here == path or (path != "/" and here.startswith(path))}
                for path, key, permission in AREAS if self.may(permission)]


def known_notice(v: Visit, prefix: str) -> str | None:
    """The `notice` of the query, when it names a text of this page (never an arbitrary key)."""
    name = v.request.query_params.get("notice") or ""
    return name if name.replace("_", "").isalpha() and v.t(prefix + name) != prefix + name else None


def page(v: Visit, template: str, status: int = 200, **ctx: Any) -> Response:
    return render(v.request, template, v.t, status=status, visit=v, csrf=v.csrf, nav=v.nav(), when=when, console=CONSOLE_PATH,
                  roles=sorted(r.value for r in v.admin.roles), **ctx)


def notice_page(request: Request, t: Any, key: str, status: int, *, visit: Visit | None = None, sign_in: bool = False,
                **kw: Any) -> Response:
    """A friendly page for a refusal or a message (never a stack trace, never JSON)."""
    ctx: dict[str, Any] = {"visit": visit, "nav": visit.nav() if visit else [], "csrf": visit.csrf if visit else "",
                           "roles": sorted(r.value for r in visit.admin.roles) if visit else []}
    return render(request, "console_message.html", t, status=status, message=t(key, **kw), is_error=status >= 400,
                  sign_in=sign_in, console=CONSOLE_PATH, when=when, **ctx)


def _login_redirect(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"{CONSOLE_PATH}/login?" + urlencode({"next": here if request.method == "GET" else CONSOLE_PATH + "/"}))


def visit(request: Request, permission: str) -> Visit | Response:
    """The operator, checked as the admin API checks its callers, and allowed `permission`; or
    the answer: the sign-in (no session, or its token expired or revoked), or a 403 page."""
    nixa = nixa_of(request)
    t = translator(request)
    cookie = request.cookies.get(console_cookie(nixa))
    sessions = ConsoleSessions(nixa)
    session = sessions.load(cookie)
    if session is None:
        return _login_redirect(request)
    try:
        admin = authenticate(nixa, AdminRoles(nixa.db), f"Bearer {session.access_token}", client_ip(request, nixa))
    except AdminAuthError as exc:
        if exc.status == 401:  # expired, revoked, a key gone: sign in again
            sessions.end(cookie)
            return _login_redirect(request)
        if exc.error == "insufficient_user_authentication":
            return notice_page(request, t, "console_refused_level", 403, sign_in=True)
        return notice_page(request, t, "console_refused_no_role", 403, sign_in=False)
    v = Visit(request, nixa, t, admin, session)
    if not v.may(permission):
        return notice_page(request, t, "console_refused_role", 403, visit=v)
    return v


async def form_of(request: Request) -> dict[str, str] | Response:
    """The POSTed form, bounded as every form of NIXA; a malformed one answers a page."""
    nixa = nixa_of(request)
    try:
        return await read_form(request, max_body=nixa.settings.max_body_bytes, max_length=nixa.settings.max_param_length)
    except BadRequest as exc:
        return notice_page(request, translator(request), "console_bad_form", exc.status)


def post_action(permission: str) -> Callable[[Callable[..., Response]], Callable[..., Any]]:
    """An action's route: read the form, check the operator, the permission and the CSRF token
    (bound to the console session), then run `act(visit, form, **path)` in the threadpool."""

    def wrap(act: Callable[..., Response]) -> Callable[..., Any]:
        async def route(request: Request) -> Response:
            form = await form_of(request)
            if isinstance(form, Response):
                return form

            def run() -> Response:
                v = visit(request, permission)
                if isinstance(v, Response):
                    return v
                if not check_csrf(v.nixa.csrf_key, v.session.key, "admin-console", form.get("csrf")):
                    return notice_page(request, v.t, "console_refused_csrf", 403, visit=v)
                return act(v, form, **request.path_params)

            return await run_in_threadpool(run)

        route.__name__ = act.__name__
        return route

    return wrap


def get_page(permission: str) -> Callable[[Callable[..., Response]], Callable[..., Any]]:
    """A page's route: the operator allowed `permission`, then `show(visit, **path)`."""

    def wrap(show: Callable[..., Response]) -> Callable[..., Any]:
        def route(request: Request) -> Response:
            v = visit(request, permission)
            return v if isinstance(v, Response) else show(v, **request.path_params)

        route.__name__ = show.__name__
        return route

    return wrap


# ---- sign-in and sign-out ------------------------------------------------------------------------


@router.get(CONSOLE_PATH)
def console_root() -> Response:
    return redirect(CONSOLE_PATH + "/")


@router.get(CONSOLE_PATH + "/login")
def login(request: Request) -> Response:
    nixa = nixa_of(request)
    t = translator(request)
    bid, new_browser = ensure_browser_id(request)
    response = redirect(authorize_url(nixa, bid, request.query_params.get("next", ""), lang=t.lang))
    if new_browser:
        set_cookie(response, request, BROWSER_COOKIE, bid, None)
    return response


@router.get(CONSOLE_PATH + "/callback")
async def callback(request: Request) -> Response:
    nixa = nixa_of(request)
    t = translator(request)
    query = request.query_params
    signin = await run_in_threadpool(ConsoleSignIns(nixa).finish, query.get("state"), browser_id(request))
    if signin is None:
        return notice_page(request, t, "console_signin_expired", 400, sign_in=True)
    if "error" in query or not query.get("code"):
        return notice_page(request, t, "console_signin_cancelled", 400, sign_in=True)
    try:
        tokens = await redeem(request.app, nixa, query["code"], signin["verifier"])
        await run_in_threadpool(check_id_token, nixa, tokens["id_token"], signin["nonce"])
    except SignInFailed as exc:
        return notice_page(request, t, exc.key, 400, sign_in=True)
    cookie = ConsoleSessions(nixa).open(tokens["access_token"], tokens["id_token"], int(tokens.get("expires_in") or 300))
    response = redirect(signin["next"])
    secure = nixa.settings.secure_cookies
    # SameSite=Strict: no other site can make the browser send it (the console's actions are
    # same-origin forms); __Host- when https (idp/login/session.py cookie_name).
    response.set_cookie(console_cookie(nixa), cookie, max_age=int(tokens.get("expires_in") or 300), httponly=True, secure=secure,
                        samesite="strict", path="/")
    return response


@router.post(CONSOLE_PATH + "/logout")
async def logout(request: Request) -> Response:
    form = await form_of(request)
    if isinstance(form, Response):
        return form
    nixa = nixa_of(request)
    cookie = request.cookies.get(console_cookie(nixa))
    sessions = ConsoleSessions(nixa)
    session = await run_in_threadpool(sessions.load, cookie)
    if session is not None and not check_csrf(nixa.csrf_key, session.key, "admin-console", form.get("csrf")):
        return notice_page(request, translator(request), "console_refused_csrf", 403)
    await run_in_threadpool(sessions.end, cookie)
    # RP-Initiated Logout 1.0: NIXA ends the SSO session (and tells the apps), then comes back.
    response = redirect(logout_url(nixa, session) + "&" + urlencode({"state": "signed-out"}))
    response.delete_cookie(console_cookie(nixa), path="/", secure=nixa.settings.secure_cookies, httponly=True, samesite="strict")
    return response


# ---- the dashboard ---------------------------------------------------------------------------------


@router.get(CONSOLE_PATH + "/")
def home(request: Request) -> Response:
    nixa = nixa_of(request)
    if request.query_params.get("state") == "signed-out" and ConsoleSessions(nixa).load(request.cookies.get(console_cookie(nixa))) is None:
        return notice_page(request, translator(request), "console_signed_out", 200, sign_in=True)
    v = visit(request, "me")  # aggregate counts only: every role sees them
    if isinstance(v, Response):
        return v
    return page(v, "console_dashboard.html", figures=dashboard.figures(v.nixa))


from admin import console_pages  # noqa: E402  (its routes join this router)

console_pages.install(router)
