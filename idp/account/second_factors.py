"""The account page's "Authenticator app" section: enrol a TOTP app (QR code, first code),
remove it, make recovery codes (shown once), and the reset after every factor was lost.

Everything here runs in the account page's session, so at substantial: a factor bound here
never lifts anyone above the sign-in that bound it. Enrolling needs the page's sign-in (within
30 minutes); removing the app, making codes and the reset need one within 5 minutes, as removing
a linked identity does. "Lost your device?" on the sign-in page leads to /account/recover: a
fresh sign-in at substantial (in practice the registry's check and its code to the phone on
record), then the reset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from idp.account import service, signin
from idp.account.routes import Visitor, _overview, _post, _visitor
from idp.identity import factors
from idp.login.pages import redirect

router = APIRouter()

SECTION = "second-factors"
REFUSED = {"wrong_code": "totp_wrong", "replayed": "totp_wrong", "throttled": "totp_throttled", "totp_exists": "totp_exists",
           "no_factor": "factor_none", "factor_unreadable": "totp_unreadable"}


def view(v: Visitor) -> dict[str, Any]:
    """What the section shows: the app's state, an enrolment waiting for its first code (the
    QR code and the secret to type), how many recovery codes are left."""
    nixa, pid = v.nixa, v.person_id
    secret = factors.enrolment_secret(nixa, pid)
    enrolment = None
    if secret is not None:
        name = nixa.people.attributes(pid).get("name")
        uri = factors.provisioning_uri(secret, str(name.value) if name else pid)
        svg = factors.qr_svg(uri, v.t("account_totp_qr")).replace("<svg ", '<svg role="img" ', 1)
        enrolment = {"svg": svg, "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))}
    return {"totp": factors.totp_state(nixa, pid), "totp_enrolment": enrolment, "codes_left": factors.recovery_codes_left(nixa, pid)}


def _change(change: Callable[[Visitor, dict[str, str], str | None], None], notice: str) -> Callable:
    """An account-page action (routes._post) making `change`; a refusal is shown on the page."""
    def act(v: Visitor, form: dict[str, str], ip: str | None) -> tuple[str, str]:
        try:
            change(v, form, ip)
        except factors.FactorRefused as refused:
            raise service.Refused(REFUSED[refused.code]) from None
        return notice, SECTION

    return act


@router.post("/account/totp/start")
async def start_totp(request: Request) -> Response:
    return await _post(request, _change(lambda v, form, ip: factors.start_totp(v.nixa, v.person_id), "totp_started"))


@router.post("/account/totp/confirm")
async def confirm_totp(request: Request) -> Response:
    def confirm(v: Visitor, form: dict[str, str], ip: str | None) -> None:
        factors.confirm_totp(v.nixa, v.person_id, form.get("code", ""), ip=ip, browser=v.browser)

    return await _post(request, _change(confirm, "totp_enrolled"))


@router.post("/account/totp/remove")
async def remove_totp(request: Request) -> Response:
    remove = _change(lambda v, form, ip: factors.remove_totp(v.nixa, v.person_id, ip=ip), "totp_removed")
    return await _post(request, remove, max_age=signin.SENSITIVE_MAX_AGE)


@router.post("/account/recovery-codes")
async def generate_recovery_codes(request: Request) -> Response:
    """The new codes are in this response only (no-store): never stored, never shown again."""
    def act(v: Visitor, form: dict[str, str], ip: str | None) -> Response:
        codes = factors.generate_recovery_codes(v.nixa, v.person_id, ip=ip)
        return _overview(request, v, notice="recovery_codes_generated", new_codes=codes)

    return await _post(request, act, max_age=signin.SENSITIVE_MAX_AGE)


@router.get("/account/recover")
def recover(request: Request) -> Response:
    """"Lost your device?": a fresh sign-in at substantial (prompt=login, within 5 minutes),
    then the section with the reset."""
    v = _visitor(request, max_age=signin.SENSITIVE_MAX_AGE)
    if isinstance(v, Response):
        return v
    return redirect(f"/account?notice=recover#{SECTION}")


@router.post("/account/second-factors/reset")
async def reset(request: Request) -> Response:
    reset_all = _change(lambda v, form, ip: factors.reset(v.nixa, v.person_id, ip=ip), "factors_reset")
    return await _post(request, reset_all, max_age=signin.SENSITIVE_MAX_AGE)
