"""Browser-facing routes: /authorize, the sign-in interaction (login, step-up, consent), /logout."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from idp.events import in_thread_batched
from starlette.responses import Response

from connectors.base import LevelOfAssurance, NotAllowed, SessionEndingConnector, canonical_username
from idp.identity import factors, notify
from idp.identity import status as id_status
from idp.login import flow
from idp.login.methods import LOCAL_METHOD, available_methods, combine_dates
from idp.login.pages import (
    browser_id,
    ensure_browser_id,
    message,
    nixa_of,
    rate_limited_text,
    redirect,
    render,
    session_cookie,
    set_cookie,
    translator,
)
from idp.login.session import BROWSER_COOKIE, SESSION_COOKIE, Sessions, check_csrf, csrf_token
from idp.oidc.endpoints import client_ip
from idp.oidc.errors import note
from idp.oidc.logout import SignedOutApps
from idp.oidc.params import BadRequest, read_form, read_query

router = APIRouter()


def sessions(nixa: Any) -> Sessions:
    return nixa.sessions


# ---- /authorize ---------------------------------------------------------------------------------


async def _protocol_request(request: Request, handler: Any) -> Response:
    """/authorize and /logout take their parameters by GET (query) or POST (form), as OIDC
    allows; both are parsed strictly, then the handler runs in the threadpool."""
    nixa = nixa_of(request)
    try:
        if request.method == "GET":
            params = read_query(request, max_length=nixa.settings.max_param_length)
        else:
            params = await read_form(request, max_body=nixa.settings.max_body_bytes, max_length=nixa.settings.max_param_length)
    except BadRequest as exc:
        return message(request, translator(request), "error_bad_request", exc.status, detail=exc.description)
    return await in_thread_batched(nixa.audit, handler, request, nixa, translator(request, params.get("ui_locales")), params)


@router.api_route("/authorize", methods=["GET", "POST"])
async def authorize(request: Request) -> Response:
    return await _protocol_request(request, _authorize_request)


def _authorize_request(request: Request, nixa: Any, t: Any, params: dict[str, str]) -> Response:
    # In the threadpool: the store and the audit log may be network calls (Redis, PostgreSQL).
    bid, new_browser = ensure_browser_id(request)
    session = sessions(nixa).touch(session_cookie(request), sessions(nixa).load(session_cookie(request)))
    try:
        kind, value = flow.begin(nixa, params, bid, session, lang=t.lang)
        if kind == "finish":
            kind, value = "redirect", _finish(nixa, value, bid, session_cookie(request), session)
    except flow.PageError as err:
        # Audited as request.rejected with this reason, like every refusal (idp/ops.py).
        note(err.code, client_id=params.get("client_id"))
        return message(request, t, f"error_{err.code}", err.status)
    response = redirect(value if kind == "redirect" else f"/interaction/{value}")
    if new_browser:
        set_cookie(response, request, BROWSER_COOKIE, bid, None)
    return response


def _finish(nixa: Any, rid: str, bid: str, cookie: str | None, session: Any) -> str:
    return flow.finish(nixa, rid, bid, session, remember=lambda client_id: sessions(nixa).add_client(cookie, session, client_id))


# ---- the interaction -----------------------------------------------------------------------------


def _load(request: Request, rid: str) -> tuple[Any, Any, Any]:
    nixa = nixa_of(request)
    pending = flow.load(nixa, rid, browser_id(request))
    t = translator(request, pending.lang if pending else None)
    return nixa, pending, t


async def posted(request: Request, rid: str, handler: Callable[..., Response], *args: Any) -> Response:
    """A step's POST: the form read (strictly) on the event loop, then the pending request loaded
    and `handler(request, nixa, pending, t, form, *args)` run in one threadpool call, its audit
    events in one batch. Loaded in a hop of its own first, a POST cost two hops (~70-130 µs of
    CPU each). A form that cannot be read is answered in the request's language."""
    try:
        form = await _form(request)
    except BadRequest as exc:
        _, _, t = await run_in_threadpool(_load, request, rid)
        return message(request, t, "error_bad_request", exc.status, detail=exc.description)
    return await in_thread_batched(nixa_of(request).audit, _loaded, request, rid, handler, form, *args)


def _loaded(request: Request, rid: str, handler: Callable[..., Response], form: dict[str, str], *args: Any) -> Response:
    nixa, pending, t = _load(request, rid)
    return handler(request, nixa, pending, t, form, *args)


@router.get("/interaction/{rid}")
def interaction(request: Request, rid: str) -> Response:
    nixa, pending, t = _load(request, rid)
    if pending is None:
        return message(request, t, "error_expired_request")
    return _show_step(request, nixa, pending, t)


@router.get("/interaction/{rid}/staff")
def staff_interaction(request: Request, rid: str) -> Response:
    """The staff entry: agency officials sign in with their directory here, apart from citizens."""
    nixa, pending, t = _load(request, rid)
    if pending is None:
        return message(request, t, "error_expired_request")
    return _show_step(request, nixa, pending, t, staff=True)


def _consent_items(client: Any, granted: set[str], t: Any) -> list[tuple[str, list[str] | None]]:
    """What the consent page lists: (scope, None) to describe a scope, or (scope, claim names)
    for an app limited by nixa_allowed_claims, which is shown exactly the claims it can receive
    (a scope of which it may receive nothing is not shown at all)."""
    from idp.identity.claims import SCOPE_CLAIMS, releasable

    allowed = client.allowed_claims
    items: list[tuple[str, list[str] | None]] = []
    for scope in ("openid", "profile", "email", "phone", "address", "national_id", "roles", "verified_claims", "offline_access"):
        if scope not in granted:
            continue
        if allowed is None or scope not in SCOPE_CLAIMS:
            items.append((scope, None))
            continue
        names = [n for n in releasable({scope}, national_id_allowed=True, allowed=allowed) if not n.endswith("_verified")]
        if names:
            items.append((scope, [t(f"claim_{n}") if t(f"claim_{n}") != f"claim_{n}" else n for n in names]))
    return items


def _show_step(request: Request, nixa: Any, pending: flow.Pending, t: Any, error: str | None = None, status: int = 200,
               failed: str | None = None, staff: bool = False) -> Response:
    """The sign-in step: the consent page, or the method chooser. `failed` names the connector
    (or `local`) whose form the `error` is about: its method is the one open, the error beside it."""
    cookie = session_cookie(request)
    session = sessions(nixa).load(cookie)
    client = nixa.clients.get(pending.client_id)
    if client is None:
        return message(request, t, "error_unknown_client")
    bid = browser_id(request) or ""
    csrf = csrf_token(nixa.csrf_key, bid, pending.rid)
    if flow.session_satisfies(nixa, pending, session):
        if flow.needs_consent(nixa, pending, session):
            scopes = _consent_items(client, flow.client_scopes(client, pending), t)
            name = (nixa.people.attributes(session.person_id).get("name") or None)
            links = [(key, client.metadata[key]) for key in ("policy_uri", "tos_uri", "client_uri") if client.metadata.get(key)]
            return render(request, "consent.html", t, rid=pending.rid, csrf=csrf, client_name=client.name, scopes=scopes,
                          person_name=name.value if name else "", client_links=links, apis=_apis_asked(nixa, client, pending))
        return _complete(request, nixa, pending, session, cookie)
    methods = available_methods(nixa, pending, t, csrf)
    if not methods:
        url = flow.deny(nixa, pending.rid, bid, "level_unreachable")
        return redirect(url)
    offered = {m["id"]: int(m["loa"]) for m in methods}
    if offered != pending.offered:
        # What this request offers (the citizen chooser and the staff entry together) is what
        # the POSTs may use (each checks its method against it).
        pending = flow.update(nixa, pending, lambda p: setattr(p, "offered", offered))
    failed_method = next((m for m in methods if failed and failed in (m["id"], m.get("connector"))), None)
    staff = staff or bool(failed_method and failed_method["staff"])
    shown = [m for m in methods if m["staff"] == staff]
    others = [m for m in methods if m["staff"] != staff]
    open_id = failed_method["id"] if failed_method in shown else (shown[0]["id"] if shown else None)
    return render(request, "login.html", t, status=status, rid=pending.rid, csrf=csrf, client_name=client.name,
                  level=pending.required_loa, methods=shown, error=error, proofing=bool(pending.proofing), open_id=open_id,
                  error_id=failed_method["id"] if failed_method in shown else None, staff=staff, other_view=bool(others))


def _complete(request: Request, nixa: Any, pending: flow.Pending, session: Any, cookie: str | None) -> Response:
    return redirect(_finish(nixa, pending.rid, browser_id(request) or "", cookie, session))


async def _form(request: Request) -> dict[str, str]:
    nixa = nixa_of(request)
    return combine_dates(await read_form(request, max_body=nixa.settings.max_body_bytes, max_length=nixa.settings.max_param_length))


def _csrf_ok(request: Request, nixa: Any, rid: str, form: dict[str, str]) -> bool:
    return check_csrf(nixa.csrf_key, browser_id(request), rid, form.get("csrf"))


def refuse_method(request: Request, nixa: Any, pending: flow.Pending, t: Any, method: str) -> Response:
    """A POST for a method this request never offered, or below the level it needs."""
    nixa.events.emit("login.failed", client_id=pending.client_id, ip=client_ip(request, nixa),
                     data={"method": method, "reason": "method_not_offered"})
    return message(request, t, "error_method_not_offered", 400)


def signed_in(request: Request, nixa: Any, pending: flow.Pending, t: Any, *, person_id: str, loa: int, amr: list[str],
              method: str, upstream: dict[str, dict] | None = None, first_factor: bool = False) -> Response:
    """A method proved who the person is: establish or step up the SSO session, move on.
    The one door to a session: the step must reach the level this request needs, and the
    registry must still hold the person's ID as usable. A `first_factor` (the password before
    its second step) is the exception: the session gets only the level it proved, and the
    request stays open for the second step."""
    ip = client_ip(request, nixa)
    if loa < pending.required_loa and not first_factor:
        nixa.events.emit("login.failed", person_id=person_id, client_id=pending.client_id, ip=ip,
                         data={"method": method, "reason": "level_not_reached", "loa": loa})
        return message(request, t, "error_method_not_offered", 400)
    try:
        id_status.check_person(nixa, person_id, ip=ip)
    except NotAllowed as err:
        nixa.events.emit("login.failed", person_id=person_id, client_id=pending.client_id, ip=ip,
                         data={"method": method, "reason": err.code})
        from idp.login.federated import _error_text

        return _show_step(request, nixa, pending, t, error=_error_text(t, err), status=403)
    cookie, session = sessions(nixa).establish(session_cookie(request), person_id=person_id, loa=loa, amr=amr, method=method,
                                               user_agent=request.headers.get("user-agent", ""), ip=ip, upstream=upstream)
    pending = flow.record_step(nixa, pending, method=method, loa=loa, person_id=person_id, at=session.auth_time)
    notify.sign_in_from_new_device(nixa, person_id, browser_id(request), ip)
    nixa.events.emit("login.succeeded", person_id=person_id, client_id=pending.client_id, ip=client_ip(request, nixa),
                     data={"method": method, "acr": LevelOfAssurance(session.loa).acr, "amr": amr})
    if flow.session_satisfies(nixa, pending, session) and not flow.needs_consent(nixa, pending, session):
        response = redirect(_finish(nixa, pending.rid, browser_id(request) or "", cookie, session))
    else:
        response = redirect(f"/interaction/{pending.rid}")
    set_cookie(response, request, SESSION_COOKIE, cookie, nixa.settings.sso_session_ttl)
    return response


@router.post("/interaction/{rid}/local")
async def local_login(request: Request, rid: str) -> Response:
    return await posted(request, rid, _local_login)


def _local_login(request: Request, nixa: Any, pending: flow.Pending | None, t: Any, form: dict[str, str]) -> Response:
    if pending is None:
        return message(request, t, "error_expired_request")
    if not _csrf_ok(request, nixa, pending.rid, form):
        return message(request, t, "error_csrf", 403)
    level = pending.offered_level(LOCAL_METHOD)
    if level is None:
        return refuse_method(request, nixa, pending, t, LOCAL_METHOD)
    try:
        username = canonical_username(form.get("username", ""))
    except ValueError:
        username = ""
    ip = client_ip(request, nixa)
    # The password's own level, whatever the request asks: one counter per password.
    guard = {"method": LOCAL_METHOD, "level": int(LevelOfAssurance.LOW), "identifier": username, "ip": ip, "request_id": pending.rid,
             "browser": browser_id(request)}
    wait = nixa.throttle.secret_attempt(**guard)  # counted before the check: parallel guesses cannot pass the limit
    if wait:
        nixa.events.emit("login.throttled", client_id=pending.client_id, ip=ip, data={"method": LOCAL_METHOD})
        return _show_step(request, nixa, pending, t, error=rate_limited_text(t, wait), status=429, failed=LOCAL_METHOD)
    person_id = nixa.people.check_local_password(username, form.get("password", "")) if username else None
    if person_id is None:
        nixa.events.emit("login.failed", client_id=pending.client_id, ip=ip, data={"method": "local", "reason": "invalid_credentials"})
        return _show_step(request, nixa, pending, t, error=t("invalid_credentials"), status=401, failed=LOCAL_METHOD)
    nixa.throttle.secret_succeeded(**guard)
    first_factor = level > LevelOfAssurance.LOW  # offered as the first of two steps (methods.py)
    if first_factor and not factors.second_factors(nixa, person_id):
        nixa.events.emit("login.failed", person_id=person_id, client_id=pending.client_id, ip=ip,
                         data={"method": LOCAL_METHOD, "reason": "no_second_factor"})
        return _show_step(request, nixa, pending, t, error=t("no_second_factor"), status=403, failed=LOCAL_METHOD)
    return signed_in(request, nixa, pending, t, person_id=person_id, loa=int(LevelOfAssurance.LOW), amr=["pwd"], method="local",
                     first_factor=first_factor)


def _apis_asked(nixa: Any, client: Any, pending: flow.Pending) -> list[tuple[str, list[str]]]:
    """The agency APIs the token is asked for (RFC 8707 `resource`), by name, each with the API
    scopes it will carry: the person consents to where their authorization is used too."""
    from idp.oidc.resources import parse_resources

    granted = set(flow.client_scopes(client, pending))
    out = []
    for identifier in parse_resources(pending.params.get("resource")):
        rs = nixa.resources.get(identifier)
        if rs is not None:
            out.append((rs.name, sorted(granted & rs.scopes)))
    return out


@router.post("/interaction/{rid}/consent")
async def consent(request: Request, rid: str) -> Response:
    return await posted(request, rid, _consent)


def _consent(request: Request, nixa: Any, pending: flow.Pending | None, t: Any, form: dict[str, str]) -> Response:
    if pending is None:
        return message(request, t, "error_expired_request")
    if not _csrf_ok(request, nixa, pending.rid, form):
        return message(request, t, "error_csrf", 403)
    cookie = session_cookie(request)
    session = sessions(nixa).load(cookie)
    if not flow.session_satisfies(nixa, pending, session):
        return redirect(f"/interaction/{pending.rid}")
    if form.get("decision") != "allow":
        return redirect(flow.deny(nixa, pending.rid, browser_id(request) or ""))
    client = nixa.clients.get(pending.client_id)
    nixa.record_consent(session.person_id, pending.client_id, flow.client_scopes(client, pending) - {"openid"})
    notify.consent_granted(nixa, session.person_id, client.name, client_ip(request, nixa))
    pending = flow.update(nixa, pending, lambda p: setattr(p, "consent_done", True))
    return _complete(request, nixa, pending, session, cookie)


@router.post("/interaction/{rid}/cancel")
async def cancel(request: Request, rid: str) -> Response:
    nixa, pending, t = await run_in_threadpool(_load, request, rid)
    try:
        form = await _form(request)
    except BadRequest as exc:
        return message(request, t, "error_bad_request", exc.status, detail=exc.description)
    if pending is None:
        return message(request, t, "error_expired_request")
    if not _csrf_ok(request, nixa, pending.rid, form):
        return message(request, t, "error_csrf", 403)
    return redirect(await in_thread_batched(nixa.audit, flow.deny, nixa, pending.rid, browser_id(request) or ""))


# ---- home -----------------------------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> Response:
    nixa = nixa_of(request)
    demo = None
    if nixa.settings.demo:
        # The developer page of the demo: where the sandboxes' outboxes and accounts are.
        demo = [{"id": e.id, "type": e.type, "level": int(e.loa), "base_url": e.config.get("base_url") or e.config.get("issuer")}
                for e in nixa.connectors.entries()]
    return render(request, "home.html", translator(request), demo=demo)


@router.get("/help")
def help_page(request: Request) -> Response:
    t = translator(request)
    return render(request, "info.html", t, title=t("help_title"), paragraphs=t("help_body").split("|"))


@router.get("/privacy")
def privacy_page(request: Request) -> Response:
    t = translator(request)
    return render(request, "info.html", t, title=t("privacy_title"), paragraphs=t("privacy_body").split("|"))


# ---- RP-Initiated Logout 1.0 --------------------------------------------------------------------


@router.api_route("/logout", methods=["GET", "POST"])
async def logout(request: Request) -> Response:
    return await _protocol_request(request, _logout_request)


def _logout_request(request: Request, nixa: Any, t: Any, params: dict[str, str]) -> Response:
    hint = None
    if "id_token_hint" in params:
        hint = nixa.tokens.validate_id_token_hint(params["id_token_hint"])
        if hint is None:
            return message(request, t, "error_logout_hint_invalid")
    client_id = params.get("client_id")
    if hint is not None:
        aud = hint.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if client_id and client_id not in auds:
            return message(request, t, "error_logout_client_mismatch")
        client_id = client_id or auds[0]
    target = params.get("post_logout_redirect_uri")
    if target:
        client = nixa.clients.get(client_id) if client_id else None
        if client is None or not client.check_post_logout_redirect_uri(target):
            return message(request, t, "error_logout_redirect_not_registered")
    cookie = session_cookie(request)
    session = sessions(nixa).load(cookie)
    bid, new_browser = ensure_browser_id(request)
    handle = secrets.token_urlsafe(18)
    nixa.store.put(f"logout:{handle}", {"target": target, "state": params.get("state"), "client_id": client_id, "browser": bid}, 600)
    if session is None or (hint is not None and client_id and hint.get("sid") == nixa.people.client_sid(session.sid, client_id)):
        # Nothing to confirm: no session, or the hint proves the request comes from this session's app.
        return _do_logout(request, nixa, t, handle, bid)
    response = render(request, "logout.html", t, csrf=csrf_token(nixa.csrf_key, bid, "logout:" + handle), logout_request=handle)
    if new_browser:
        set_cookie(response, request, BROWSER_COOKIE, bid, None)
    return response


@router.post("/logout/confirm")
async def logout_confirm(request: Request) -> Response:
    nixa = nixa_of(request)
    t = translator(request)
    try:
        form = await _form(request)
    except BadRequest as exc:
        return message(request, t, "error_bad_request", exc.status, detail=exc.description)
    return await in_thread_batched(nixa.audit, _logout_decision, request, nixa, t, form)


def _logout_decision(request: Request, nixa: Any, t: Any, form: dict[str, str]) -> Response:
    handle = form.get("logout_request", "")
    bid = browser_id(request)
    if not check_csrf(nixa.csrf_key, bid, "logout:" + handle, form.get("csrf")):
        return message(request, t, "error_csrf", 403)
    if form.get("decision") != "yes":
        data = nixa.store.take(f"logout:{handle}") or {}
        return message(request, t, "logout_no", 200, is_error=False, title_key="logout_title",
                       back_url=_with_state(data.get("target"), data.get("state")))
    return _do_logout(request, nixa, t, handle, bid)


def _with_state(target: str | None, state: str | None) -> str | None:
    if not target:
        return None
    return flow.add_query(target, {"state": state}) if state else target


def _do_logout(request: Request, nixa: Any, t: Any, handle: str, bid: str | None) -> Response:
    from idp.login.pages import delete_cookie

    data = nixa.store.take(f"logout:{handle}")
    if not data or data.get("browser") != bid:
        return message(request, t, "error_expired_request")
    ended = sessions(nixa).end(session_cookie(request))
    after: dict[str, Any] = {"target": _with_state(data.get("target"), data.get("state")), "browser": bid, "queued": [],
                             "unreachable": [], "upstream": [], "upstream_asked": [], "person_id": None}
    if ended is not None:
        # Written before the logout is acknowledged: every app of the session will be told.
        apps = nixa.backchannel.enqueue(ended, ended.clients, "logout")
        nixa.events.emit("logout", person_id=ended.person_id, client_id=data.get("client_id"), ip=client_ip(request, nixa),
                         data={"sid": ended.sid, "clients": ended.clients, "backchannel": [c.client_id for c in apps.queued],
                               "not_reachable": [c.client_id for c in apps.unreachable]})
        after.update(queued=[c.client_id for c in apps.queued], unreachable=[c.client_id for c in apps.unreachable],
                     upstream=[[cid, hint] for cid, hint in ended.upstream.items()], person_id=ended.person_id)
    response = _after_logout(request, nixa, t, after)
    delete_cookie(response, request, SESSION_COOKIE)
    return response


UPSTREAM_LOGOUT_PATH = "/logout/upstream"


def _after_logout(request: Request, nixa: Any, t: Any, after: dict[str, Any]) -> Response:
    """Each source whose own session this sign-in opened (the operator) is asked to end it: the
    browser goes there and comes back to /logout/upstream, one source at a time. Then the app's
    post-logout URI, or NIXA's page saying which apps were told and which sources were asked."""
    while after["upstream"]:
        connector_id, upstream = after["upstream"].pop(0)
        entry = nixa.connectors.entry(connector_id)
        if entry is None or not isinstance(entry.instance, SessionEndingConnector):
            continue
        state = secrets.token_urlsafe(18)
        url = entry.instance.end_session_url(upstream, nixa.settings.issuer + UPSTREAM_LOGOUT_PATH, state)
        if url is None:
            continue
        after["upstream_asked"].append(connector_id)
        nixa.store.put(f"logout-upstream:{state}", after, 600)
        nixa.events.emit("logout.upstream", person_id=after["person_id"], ip=client_ip(request, nixa), data={"connector": connector_id})
        return redirect(url)
    if after["target"]:
        return redirect(after["target"])
    clients = nixa.clients
    apps = SignedOutApps([c for c in map(clients.get, after["queued"]) if c], [c for c in map(clients.get, after["unreachable"]) if c])
    asked = [e for e in map(nixa.connectors.entry, after["upstream_asked"]) if e]
    return render(request, "logged_out.html", t, apps=apps, upstreams=asked)


@router.get(UPSTREAM_LOGOUT_PATH)
async def upstream_logged_out(request: Request) -> Response:
    """The source's post-logout redirect (RP-Initiated Logout 1.0 §3) back to NIXA's sign-out."""
    nixa = nixa_of(request)
    t = translator(request)
    state = request.query_params.get("state", "")
    return await run_in_threadpool(_upstream_logged_out, request, nixa, t, state)


def _upstream_logged_out(request: Request, nixa: Any, t: Any, state: str) -> Response:
    after = nixa.store.take(f"logout-upstream:{state}") if state else None
    if not after or after.get("browser") != browser_id(request):
        # Not a sign-out this browser started (or it took longer than ten minutes at the source).
        if sessions(nixa).load(session_cookie(request)) is None:
            return render(request, "logged_out.html", t, apps=None, upstreams=[])
        return message(request, t, "error_expired_request")
    return _after_logout(request, nixa, t, after)
