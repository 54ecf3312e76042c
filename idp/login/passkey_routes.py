"""The passkey method of the sign-in chooser: the options for navigator.credentials.get() (a
challenge bound to the pending request and the browser), then the assertion, which goes through
the offered-method check, the throttle and `signed_in` like every other method."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from starlette.responses import JSONResponse, Response

from idp.identity import passkeys
from idp.login import flow
from idp.login.pages import browser_id, message, rate_limited_text
from idp.login.routes import _csrf_ok, _show_step, posted, refuse_method, signed_in
from idp.oidc.endpoints import client_ip

router = APIRouter()

# Status of each refusal on the chooser page.
REFUSED_STATUS = {"passkey_cloned": 403, "passkey_flagged": 403, "passkey_level": 403}


def _json(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.post("/interaction/{rid}/passkey/options")
async def passkey_options(request: Request, rid: str) -> Response:
    return await posted(request, rid, _passkey_options)


def _passkey_options(request: Request, nixa: Any, pending: flow.Pending | None, t: Any, form: dict[str, str]) -> Response:
    if pending is None:
        return _json({"error": "expired_request"}, 400)
    if not _csrf_ok(request, nixa, pending.rid, form):
        return _json({"error": "csrf"}, 403)
    if pending.offered_level(passkeys.METHOD) is None:
        return _json({"error": "method_not_offered"}, 400)
    options = passkeys.sign_in_options(nixa, pending.rid, browser_id(request) or "")
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.post("/interaction/{rid}/passkey")
async def passkey_login(request: Request, rid: str) -> Response:
    return await posted(request, rid, _passkey_login)


def _passkey_login(request: Request, nixa: Any, pending: flow.Pending | None, t: Any, form: dict[str, str]) -> Response:
    if pending is None:
        return message(request, t, "error_expired_request")
    if not _csrf_ok(request, nixa, pending.rid, form):
        return message(request, t, "error_csrf", 403)
    level = pending.offered_level(passkeys.METHOD)
    if level is None:
        return refuse_method(request, nixa, pending, t, passkeys.METHOD)
    credential = form.get("credential", "")
    if not credential:  # the browser ran no script (or has no WebAuthn): say what is needed
        return _show_step(request, nixa, pending, t, error=t("error_passkey_no_script"), status=400, failed=passkeys.METHOD)
    ip = client_ip(request, nixa)
    bid = browser_id(request)
    # Keyed by the credential the assertion names, and by address and request (throttle.py).
    guard = {"method": passkeys.METHOD, "level": level, "identifier": passkeys.credential_id_of(credential) or "",
             "ip": ip, "request_id": pending.rid, "browser": bid}
    wait = nixa.throttle.secret_attempt(**guard)
    if wait:
        nixa.events.emit("login.throttled", client_id=pending.client_id, ip=ip, data={"method": passkeys.METHOD})
        return _show_step(request, nixa, pending, t, error=rate_limited_text(t, wait), status=429, failed=passkeys.METHOD)
    try:
        found = passkeys.verify_sign_in(nixa, pending.rid, bid or "", credential, ip=ip)
        if found.loa < pending.proof_level:
            # A passkey is as strong as the sign-in that bound it: one bound at substantial
            # does not open a request for high.
            nixa.events.emit("passkey.refused", person_id=found.person_id, client_id=pending.client_id, ip=ip,
                             data={"reason": "level_not_reached", "loa": found.loa, "required": pending.proof_level})
            raise passkeys.PasskeyRefused("passkey_level")
    except passkeys.PasskeyRefused as refused:
        nixa.events.emit("login.failed", client_id=pending.client_id, ip=ip, data={"method": passkeys.METHOD, "reason": refused.code})
        return _show_step(request, nixa, pending, t, error=t(f"error_{refused.code}"),
                          status=REFUSED_STATUS.get(refused.code, 401), failed=passkeys.METHOD)
    nixa.throttle.secret_succeeded(**guard)
    return signed_in(request, nixa, pending, t, person_id=found.person_id, loa=found.loa, amr=list(passkeys.AMR),
                     method=passkeys.METHOD)
