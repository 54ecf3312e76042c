"""Sign-in through the connectors, dispatched on their capabilities: password-style forms,
challenges (OTP), redirects to an upstream provider, digital-signature certificates.

Each step is keyed by the pending request id and checked server-side; what a connector keeps
between steps (challenge state, upstream nonce and PKCE verifier) never reaches the browser.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from connectors.base import (
    Assertion,
    ChallengeConnector,
    ConnectorError,
    LevelOfAssurance,
    PasswordConnector,
    RateLimited,
    RedirectConnector,
    VerifiedAttribute,
)
from idp.identity.people import NeedsProofing
from idp.login import flow
from idp.login.methods import throttle
from idp.login.pages import browser_id, message, nixa_of, redirect, render
from idp.login.routes import _csrf_ok, _form, _load, _show_step, signed_in
from idp.login.session import csrf_token
from idp.oidc.endpoints import client_ip
from idp.oidc.params import BadRequest, read_query

router = APIRouter()


# ---- assertions through the store ------------------------------------------------------------


def assertion_to_dict(a: Assertion) -> dict:
    return {
        "connector_id": a.connector_id, "subject": a.subject, "loa": int(a.loa), "amr": list(a.amr),
        "attributes": [[v.name, v.value, v.source, v.verified_at] for v in a.attributes.values()],
        "connector_data": dict(a.connector_data), "authenticated_at": a.authenticated_at,
    }


def assertion_from_dict(d: dict) -> Assertion:
    return Assertion(
        connector_id=d["connector_id"], subject=d["subject"], loa=LevelOfAssurance(d["loa"]), amr=tuple(d["amr"]),
        attributes={n: VerifiedAttribute(n, v, s, t) for n, v, s, t in d["attributes"]},
        connector_data=d["connector_data"], authenticated_at=d["authenticated_at"],
    )


# ---- the common end of every method -------------------------------------------------------------


def _error_text(t: Any, err: ConnectorError) -> str:
    if isinstance(err, RateLimited) and err.retry_after:
        return t("rate_limited", seconds=err.retry_after)
    key = f"conn_{err.code}"
    text = t(key)
    if text == key:
        text = t("conn_generic")
    return text


def _failed(request: Request, nixa: Any, pending: flow.Pending, t: Any, connector_id: str, err: ConnectorError,
            throttle_keys: list[str] | None = None) -> Response:
    if throttle_keys:
        throttle(nixa, throttle_keys)
    nixa.events.emit("login.failed", client_id=pending.client_id, ip=client_ip(request, nixa),
                     data={"method": connector_id, "reason": err.code})
    status = 503 if err.code == "upstream_unavailable" else 429 if isinstance(err, RateLimited) else 401
    return _show_step(request, nixa, pending, t, error=_error_text(t, err), status=status)


def _accepted(request: Request, nixa: Any, pending: flow.Pending, t: Any, entry: Any, assertion: Assertion, loa: int) -> Response:
    """Resolve the assertion to a Person (or ask for proofing), then sign the person in."""
    allow_unproofed = bool(entry.config.get("allow_unproofed", entry.type == "ldap"))
    proofing = pending.proofing
    try:
        registry = registry_attributes(nixa, assertion)
    except ConnectorError as err:
        return _failed(request, nixa, pending, t, entry.id, err)
    try:
        if proofing and assertion.national_id:
            # This assertion proves the national ID that an earlier sign-in lacked: link both.
            first = assertion_from_dict(proofing["assertion"])
            resolution = nixa.people.resolve(assertion, allow_unproofed=False)
            nixa.people.link(resolution.person_id, first)
            loa = max(loa, int(proofing["loa"]))
            amr = sorted(set(first.amr) | set(assertion.amr))
            method = proofing["connector_id"]
            pending.proofing = None
        else:
            resolution = nixa.people.resolve(assertion, allow_unproofed=allow_unproofed)
            amr, method = list(assertion.amr), entry.id
    except NeedsProofing:
        pending.proofing = {"assertion": assertion_to_dict(assertion), "loa": loa, "connector_id": entry.id}
        flow.save(nixa, pending)
        return redirect(f"/interaction/{pending.rid}/proofing")
    if registry:
        nixa.people.store_attributes(resolution.person_id, registry)
    return signed_in(request, nixa, pending, t, person_id=resolution.person_id, loa=loa, amr=amr, method=method)


def registry_attributes(nixa: Any, assertion: Assertion) -> dict[str, VerifiedAttribute]:
    """The population registry is the attribute source for verified claims and the authority
    on whether a national ID may be used at all: a deceased person's or a locked ID is refused
    whatever the method (NotAllowed propagates). An unreachable registry does not block a
    sign-in that another source proved; the attributes are then simply not refreshed."""
    from connectors.base import AttributeSource, NotAllowed

    if not assertion.national_id or assertion.connector_id == "population":
        return {}
    for entry in nixa.connectors.entries():
        if isinstance(entry.instance, AttributeSource):
            try:
                return dict(entry.instance.enrich(assertion))
            except NotAllowed:
                raise
            except ConnectorError:
                return {}
    return {}


def _entry(nixa: Any, connector_id: str) -> Any:
    entry = nixa.connectors.entry(connector_id)
    if entry is None:
        raise BadRequest("unknown sign-in method")
    return entry


async def _post(request: Request, rid: str) -> tuple[Any, Any, Any, dict[str, str] | None, Response | None]:
    nixa, pending, t = await run_in_threadpool(_load, request, rid)
    try:
        form = await _form(request)
    except BadRequest as exc:
        return nixa, pending, t, None, message(request, t, "error_bad_request", exc.status, detail=exc.description)
    if pending is None:
        return nixa, pending, t, None, message(request, t, "error_expired_request")
    if not _csrf_ok(request, nixa, pending.rid, form):
        return nixa, pending, t, None, message(request, t, "error_csrf", 403)
    return nixa, pending, t, form, None


# ---- password-style --------------------------------------------------------------------------------


@router.post("/interaction/{rid}/password/{connector_id}")
async def password_login(request: Request, rid: str, connector_id: str) -> Response:
    nixa, pending, t, form, early = await _post(request, rid)
    if early:
        return early
    return await run_in_threadpool(_password_login, request, nixa, pending, t, form, connector_id)


def _guarded_form(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str], connector_id: str,
                  capability: type, fields_attr: str) -> tuple[Any, dict[str, str], list[str], Response | None]:
    """The common front of every secret-checking method: the connector has the capability,
    and neither the account nor the address is over its throttle."""
    entry = nixa.connectors.entry(connector_id)
    if entry is None or not isinstance(entry.instance, capability):
        return None, {}, [], message(request, t, "error_bad_request", detail="unknown sign-in method")
    fields = [f.name for f in getattr(entry.instance, fields_attr)]
    ident = form.get(fields[0], "")[:128].lower() if fields else ""
    ip = client_ip(request, nixa)
    keys = [f"{connector_id}:{ident}", f"ip:{ip}"]
    wait = throttle(nixa, keys, peek=True)
    if wait:
        nixa.events.emit("login.throttled", client_id=pending.client_id, ip=ip, data={"method": connector_id})
        return None, {}, [], _show_step(request, nixa, pending, t, error=t("rate_limited", seconds=wait), status=429)
    return entry, {k: form.get(k, "") for k in fields}, keys, None


def _password_login(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str], connector_id: str) -> Response:
    entry, submitted, keys, early = _guarded_form(request, nixa, pending, t, form, connector_id, PasswordConnector, "fields")
    if early:
        return early
    try:
        assertion = entry.instance.login(submitted)
    except ConnectorError as err:
        return _failed(request, nixa, pending, t, connector_id, err, keys if err.code != "upstream_unavailable" else None)
    return _accepted(request, nixa, pending, t, entry, assertion, int(entry.loa))


# ---- challenge-style (OTP) ----------------------------------------------------------------------------


@router.post("/interaction/{rid}/challenge/{connector_id}")
async def challenge_start(request: Request, rid: str, connector_id: str) -> Response:
    nixa, pending, t, form, early = await _post(request, rid)
    if early:
        return early
    return await run_in_threadpool(_challenge_start, request, nixa, pending, t, form, connector_id)


def _challenge_start(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str], connector_id: str) -> Response:
    entry, submitted, keys, early = _guarded_form(request, nixa, pending, t, form, connector_id, ChallengeConnector, "challenge_fields")
    if early:
        return early
    try:
        challenge = entry.instance.start(submitted)
    except ConnectorError as err:
        return _failed(request, nixa, pending, t, connector_id, err, keys if err.code not in ("upstream_unavailable", "rate_limited") else None)
    pending.extra["challenge"] = {"connector_id": connector_id, "state": dict(challenge.state), "masked": challenge.masked_destination,
                                  "expires_at": time.time() + challenge.ttl, "form": submitted,
                                  "resend_at": time.time() + challenge.resend_after}
    flow.save(nixa, pending)
    return redirect(f"/interaction/{pending.rid}/otp")


@router.get("/interaction/{rid}/otp")
def otp_page(request: Request, rid: str) -> Response:
    nixa, pending, t = _load(request, rid)
    if pending is None or "challenge" not in pending.extra:
        return message(request, t, "error_expired_request")
    return _otp_page(request, nixa, pending, t)


def _otp_page(request: Request, nixa: Any, pending: flow.Pending, t: Any, error: str | None = None, status: int = 200) -> Response:
    ch = pending.extra["challenge"]
    csrf = csrf_token(nixa.csrf_key, browser_id(request) or "", pending.rid)
    return render(request, "otp.html", t, status=status, rid=pending.rid, csrf=csrf, masked=ch["masked"], error=error,
                  resend_in=max(0, int(ch["resend_at"] - time.time())))


@router.post("/interaction/{rid}/otp")
async def otp_verify(request: Request, rid: str) -> Response:
    nixa, pending, t, form, early = await _post(request, rid)
    if early:
        return early
    return await run_in_threadpool(_otp_verify, request, nixa, pending, t, form)


def _otp_verify(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str]) -> Response:
    ch = pending.extra.get("challenge")
    if not ch:
        return message(request, t, "error_expired_request")
    entry = nixa.connectors.entry(ch["connector_id"])
    if entry is None:
        return message(request, t, "error_expired_request")
    if form.get("action") == "resend":
        return _challenge_start(request, nixa, pending, t, ch["form"], ch["connector_id"])
    try:
        assertion = entry.instance.verify(ch["state"], form.get("otp", "").strip()[:16])
    except ConnectorError as err:
        nixa.events.emit("login.failed", client_id=pending.client_id, ip=client_ip(request, nixa),
                         data={"method": ch["connector_id"], "reason": err.code})
        if err.code in ("challenge_expired", "too_many_attempts"):
            pending.extra.pop("challenge", None)
            flow.save(nixa, pending)
            return _show_step(request, nixa, pending, t, error=_error_text(t, err), status=401)
        return _otp_page(request, nixa, pending, t, error=_error_text(t, err), status=401)
    pending.extra.pop("challenge", None)
    loa = int(LevelOfAssurance.parse(entry.config.get("challenge_loa", entry.loa)))
    return _accepted(request, nixa, pending, t, entry, assertion, loa)


# ---- redirect-style (upstream OpenID provider) -------------------------------------------------------


@router.post("/interaction/{rid}/redirect/{connector_id}")
async def redirect_start(request: Request, rid: str, connector_id: str) -> Response:
    nixa, pending, t, form, early = await _post(request, rid)
    if early:
        return early
    return await run_in_threadpool(_redirect_start, request, nixa, pending, t, form, connector_id)


def _redirect_start(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str], connector_id: str) -> Response:
    entry = nixa.connectors.entry(connector_id)
    if entry is None or not isinstance(entry.instance, RedirectConnector):
        return message(request, t, "error_bad_request", detail="unknown sign-in method")
    state = secrets.token_urlsafe(24)
    callback = f"{nixa.settings.issuer}/login/callback/{connector_id}"
    hint = form.get("login_hint") or pending.params.get("login_hint")
    try:
        url, saved = entry.instance.login_url(state, callback, login_hint=hint)
    except ConnectorError as err:
        return _failed(request, nixa, pending, t, connector_id, err)
    nixa.store.put(f"upstream:{state}", {"rid": pending.rid, "connector_id": connector_id, "saved": dict(saved),
                                         "browser": browser_id(request)}, nixa.settings.pending_request_ttl)
    return redirect(url)


@router.get("/login/callback/{connector_id}")
def redirect_callback(request: Request, connector_id: str) -> Response:
    nixa = nixa_of(request)
    from idp.login.pages import translator

    t = translator(request)
    try:
        params = read_query(request, max_length=nixa.settings.max_param_length)
    except BadRequest as exc:
        return message(request, t, "error_bad_request", exc.status, detail=exc.description)
    data = nixa.store.take(f"upstream:{params.get('state', '')[:64]}")  # one callback per state
    if not data or data["connector_id"] != connector_id or data["browser"] != browser_id(request):
        return message(request, t, "error_expired_request")
    pending = flow.load(nixa, data["rid"], browser_id(request))
    if pending is None:
        return message(request, t, "error_expired_request")
    entry = nixa.connectors.entry(connector_id)
    if entry is None:
        return message(request, t, "error_expired_request")
    callback = f"{nixa.settings.issuer}/login/callback/{connector_id}"
    try:
        assertion = entry.instance.handle_callback(params, callback, data["saved"])
    except ConnectorError as err:
        return _failed(request, nixa, pending, t, connector_id, err)
    return _accepted(request, nixa, pending, t, entry, assertion, int(entry.loa))


# ---- certificate-style ---------------------------------------------------------------------------------


@router.post("/interaction/{rid}/certificate/{connector_id}")
async def certificate_start(request: Request, rid: str, connector_id: str) -> Response:
    nixa, pending, t, form, early = await _post(request, rid)
    if early:
        return early
    return await run_in_threadpool(_certificate_page, request, nixa, pending, t, connector_id)


def _certificate_page(request: Request, nixa: Any, pending: flow.Pending, t: Any, connector_id: str, error: str | None = None,
                      status: int = 200) -> Response:
    from connectors.base import CertificateConnector

    entry = nixa.connectors.entry(connector_id)
    if entry is None or not isinstance(entry.instance, CertificateConnector):
        return message(request, t, "error_bad_request", detail="unknown sign-in method")
    header = entry.config.get("proxy_header", "x-ssl-client-cert")
    forwarded = request.headers.get(header)
    if forwarded:
        # mTLS terminated at the reverse proxy: accepted only from a configured proxy address.
        try:
            assertion = entry.instance.from_proxy_header(forwarded, request.client.host if request.client else "")
        except ConnectorError as err:
            return _failed(request, nixa, pending, t, connector_id, err)
        return _accepted(request, nixa, pending, t, entry, assertion, int(entry.loa))
    challenge = entry.instance.new_challenge()
    pending.extra["cert_challenge"] = challenge  # the signature must answer this page's challenge
    flow.save(nixa, pending)
    csrf = csrf_token(nixa.csrf_key, browser_id(request) or "", pending.rid)
    return render(request, "certificate.html", t, status=status, rid=pending.rid, csrf=csrf, challenge=challenge,
                  connector_id=connector_id, error=error)


@router.post("/interaction/{rid}/certificate/{connector_id}/verify")
async def certificate_verify(request: Request, rid: str, connector_id: str) -> Response:
    nixa, pending, t, form, early = await _post(request, rid)
    if early:
        return early
    return await run_in_threadpool(_certificate_verify, request, nixa, pending, t, form, connector_id)


def _certificate_verify(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str], connector_id: str) -> Response:
    entry = nixa.connectors.entry(connector_id)
    if entry is None:
        return message(request, t, "error_bad_request", detail="unknown sign-in method")
    try:
        chain, signed = entry.instance.parse_agent_response(form.get("signed", ""))
        if signed.get("challenge") != pending.extra.get("cert_challenge"):
            from connectors.base import ChallengeExpired

            raise ChallengeExpired("the signature does not answer this sign-in's challenge", code="challenge_expired")
        assertion = entry.instance.authenticate(chain, signed)
    except ConnectorError as err:
        nixa.events.emit("login.failed", client_id=pending.client_id, ip=client_ip(request, nixa),
                         data={"method": connector_id, "reason": err.code})
        return _certificate_page(request, nixa, pending, t, connector_id, error=_error_text(t, err),
                                 status=503 if err.code == "upstream_unavailable" else 401)
    return _accepted(request, nixa, pending, t, entry, assertion, int(entry.loa))


# ---- proofing: a source without the national ID asks for it once -----------------------------------


@router.get("/interaction/{rid}/proofing")
def proofing_page(request: Request, rid: str) -> Response:
    nixa, pending, t = _load(request, rid)
    if pending is None or not pending.proofing:
        return message(request, t, "error_expired_request")
    return _show_step(request, nixa, pending, t, error=None)
