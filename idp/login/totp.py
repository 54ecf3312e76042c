"""The second step after the NIXA password: a code from the authenticator app, or a recovery
code (idp/identity/factors.py). Password (low) + this step = substantial, amr ["pwd", "otp"].

Both steps must succeed in the same pending request: the step is offered only after this
request's password step, to the person that password proved (methods.py), and the POST checks
it was offered like every method. A password from an earlier sign-in never counts.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from starlette.responses import Response

from idp.identity import factors
from idp.login import flow
from idp.login.methods import password_step
from idp.login.pages import browser_id, message, rate_limited_text
from idp.login.routes import _csrf_ok, _show_step, posted, refuse_method, signed_in
from idp.oidc.endpoints import client_ip

router = APIRouter()

WRONG = {factors.TOTP_METHOD: "totp_wrong", factors.RECOVERY_METHOD: "recovery_code_wrong"}


async def _post(request: Request, rid: str, method: str) -> Response:
    return await posted(request, rid, _second_step, method)


@router.post("/interaction/{rid}/totp")
async def totp_step(request: Request, rid: str) -> Response:
    return await _post(request, rid, factors.TOTP_METHOD)


@router.post("/interaction/{rid}/recovery-code")
async def recovery_code_step(request: Request, rid: str) -> Response:
    return await _post(request, rid, factors.RECOVERY_METHOD)


def _second_step(request: Request, nixa: Any, pending: flow.Pending | None, t: Any, form: dict[str, str], method: str) -> Response:
    if pending is None:
        return message(request, t, "error_expired_request")
    if not _csrf_ok(request, nixa, pending.rid, form):
        return message(request, t, "error_csrf", 403)
    first = password_step(pending)
    if pending.offered_level(method) is None or first is None:
        return refuse_method(request, nixa, pending, t, method)
    person_id = first["person_id"]
    ip = client_ip(request, nixa)
    try:
        factors.verify_second_factor(nixa, person_id, method, form.get("code", ""), ip=ip, request_id=pending.rid,
                                     browser=browser_id(request))
    except factors.FactorRefused as refused:
        if refused.wait:
            nixa.events.emit("login.throttled", person_id=person_id, client_id=pending.client_id, ip=ip, data={"method": method})
            return _show_step(request, nixa, pending, t, error=rate_limited_text(t, refused.wait), status=429, failed=method)
        nixa.events.emit("login.failed", person_id=person_id, client_id=pending.client_id, ip=ip,
                         data={"method": method, "reason": refused.code})
        text = t("totp_unreadable") if refused.code == "factor_unreadable" else t(WRONG[method])
        return _show_step(request, nixa, pending, t, error=text, status=401, failed=method)
    return signed_in(request, nixa, pending, t, person_id=person_id, loa=factors.LEVEL, amr=factors.AMR, method=method)
