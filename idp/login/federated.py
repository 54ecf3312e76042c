"""Sign-in through the connectors, dispatched on their capabilities: password-style forms,
challenges (OTP), redirects to an upstream provider, digital-signature certificates.

Each step is keyed by the pending request id and checked server-side; what a connector keeps
between steps (challenge state, upstream nonce and PKCE verifier) never reaches the browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from fastapi import APIRouter, Request

from starlette.responses import Response

from sqlalchemy.exc import IntegrityError

from connectors.base import (
    Assertion,
    CertificateConnector,
    ChallengeConnector,
    ConnectorError,
    LevelOfAssurance,
    NotAllowed,
    PasswordConnector,
    RateLimited,
    RedirectConnector,
    VerifiedAttribute,
)
from idp.identity import linking, notify
from idp.identity.people import LinkConflict, NeedsProofing, Provenance
from idp.login import flow
from idp.login.methods import canonical_identifier, method_id
from idp.login.pages import browser_id, message, nixa_of, rate_limited_text, redirect, render
from idp.login.routes import _csrf_ok, _load, _show_step, posted, refuse_method, signed_in
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
        "upstream_session": dict(a.upstream_session),
    }


def assertion_from_dict(d: dict) -> Assertion:
    return Assertion(
        connector_id=d["connector_id"], subject=d["subject"], loa=LevelOfAssurance(d["loa"]), amr=tuple(d["amr"]),
        attributes={n: VerifiedAttribute(n, v, s, t) for n, v, s, t in d["attributes"]},
        connector_data=d["connector_data"], authenticated_at=d["authenticated_at"],
        upstream_session=d.get("upstream_session") or {},
    )


def upstream_sessions(*assertions: Assertion) -> dict[str, dict]:
    """The sources' own sessions this sign-in opened, for NIXA's sign-out to end them too."""
    return {a.connector_id: dict(a.upstream_session) for a in assertions if a.upstream_session}


# ---- the common end of every method -------------------------------------------------------------


def _error_text(t: Any, err: ConnectorError) -> str:
    if isinstance(err, RateLimited) and err.retry_after:
        return rate_limited_text(t, err.retry_after)
    key = f"conn_{err.code}"
    text = t(key)
    if text == key:
        text = t("conn_generic")
    return text


def _failed(request: Request, nixa: Any, pending: flow.Pending, t: Any, connector_id: str, err: ConnectorError) -> Response:
    nixa.events.emit("login.failed", client_id=pending.client_id, ip=client_ip(request, nixa),
                     data={"method": connector_id, "reason": err.code})
    status = 503 if err.code == "upstream_unavailable" else 429 if isinstance(err, RateLimited) else 403 if isinstance(err, NotAllowed) else 401
    return _show_step(request, nixa, pending, t, error=_error_text(t, err), status=status, failed=connector_id)


def _throttled(request: Request, nixa: Any, pending: flow.Pending, t: Any, method: str, wait: int) -> Response:
    nixa.events.emit("login.throttled", client_id=pending.client_id, ip=client_ip(request, nixa), data={"method": method})
    return _show_step(request, nixa, pending, t, error=rate_limited_text(t, wait), status=429, failed=method)


def _offered_method(request: Request, nixa: Any, pending: flow.Pending, t: Any, connector_id: str, capability: type,
                    name: str) -> tuple[Any, int, Response | None]:
    """The front of every method's POST: the connector exists and has the capability the route
    needs, and this request offered that method at a level that reaches what it needs now."""
    entry = nixa.connectors.entry(connector_id)
    if entry is None or not isinstance(entry.instance, capability):
        return None, 0, message(request, t, "error_bad_request", detail="unknown sign-in method")
    level = pending.offered_level(method_id(connector_id, name))
    if level is None:
        return None, 0, refuse_method(request, nixa, pending, t, method_id(connector_id, name))
    return entry, level, None


def _guard(request: Request, nixa: Any, pending: flow.Pending, method: str, level: int, identifier: str | None) -> dict[str, Any]:
    return {"method": method, "level": level, "identifier": identifier or "", "ip": client_ip(request, nixa), "request_id": pending.rid,
            "browser": browser_id(request)}


def _accepted(request: Request, nixa: Any, pending: flow.Pending, t: Any, entry: Any, assertion: Assertion, loa: int) -> Response:
    """Apply the linking policy (idp/identity/linking.py) to what the method proved, resolve
    the Person (or ask for proofing), then sign the person in at the level actually proven."""
    ip = client_ip(request, nixa)
    allow_unproofed = bool(entry.config.get("allow_unproofed", entry.type == "ldap"))
    assertion = linking.strip_unproven_national_id(entry, assertion)
    try:
        proof = linking.national_id_proof(nixa, entry, assertion, loa)
        registry = registry_attributes(nixa, assertion) if proof else {}
    except ConnectorError as err:
        if isinstance(err, linking.LinkRefused):
            nixa.events.emit("identity.link_refused", client_id=pending.client_id, ip=ip, data={"connector": entry.id, "reason": err.code})
        return _failed(request, nixa, pending, t, entry.id, err)
    try:
        if pending.proofing:
            # This step must prove the national ID that the earlier sign-in lacked, at least at
            # the level that source will be trusted for; the session gets the weaker of the two.
            first = assertion_from_dict(pending.proofing["assertion"])
            if proof is None:
                return refuse_method(request, nixa, pending, t, entry.id)
            try:
                trusted = linking.check_link(int(pending.proofing["loa"]), proof)
            except linking.LinkRefused as err:
                nixa.events.emit("identity.link_refused", client_id=pending.client_id, ip=ip, data={"connector": first.connector_id,
                                                                                                     "reason": err.code})
                return _failed(request, nixa, pending, t, entry.id, err)
            provenance = Provenance(proof.method, proof.loa, ip)
            resolution = nixa.people.resolve(assertion, provenance=provenance, ip=ip)
            person_id = nixa.people.link(resolution.person_id, first, loa=trusted, provenance=provenance)
            notify.new_link(nixa, person_id, first.connector_id, ip)
            if resolution.linked:
                notify.new_link(nixa, person_id, assertion.connector_id, ip)
            pending = flow.update(nixa, pending, lambda p: setattr(p, "proofing", None))
            loa, amr, method = trusted, sorted(set(first.amr) | set(assertion.amr)), first.connector_id
            upstream = upstream_sessions(first, assertion)
        else:
            provenance = Provenance(proof.method, proof.loa, ip) if proof else None
            resolution = nixa.people.resolve(assertion, allow_unproofed=allow_unproofed, provenance=provenance, ip=ip)
            person_id = resolution.person_id
            if proof is None and resolution.loa is not None:
                # A source that does not prove the ID itself is as strong as the proof that linked it.
                loa = min(loa, resolution.loa)
            if resolution.linked:
                notify.new_link(nixa, person_id, assertion.connector_id, ip)
            amr, method = list(assertion.amr), entry.id
            upstream = upstream_sessions(assertion)
    except NeedsProofing:
        saved = {"assertion": assertion_to_dict(assertion), "loa": loa, "connector_id": entry.id}

        def start_proofing(p: flow.Pending) -> None:
            p.proofing = saved
            p.offered = {}  # the proofing page offers its own methods (only proofs)

        flow.update(nixa, pending, start_proofing)
        return redirect(f"/interaction/{pending.rid}/proofing")
    except (LinkConflict, IntegrityError):
        nixa.events.emit("identity.link_refused", client_id=pending.client_id, ip=ip,
                         data={"connector": entry.id, "reason": "concurrent_or_taken"})
        return message(request, t, "error_link_conflict", 409)
    except ConnectorError as err:  # a locked link, a refused person
        return _failed(request, nixa, pending, t, entry.id, err)
    if registry:
        nixa.people.store_attributes(person_id, registry)
    return signed_in(request, nixa, pending, t, person_id=person_id, loa=loa, amr=amr, method=method, upstream=upstream)


def registry_attributes(nixa: Any, assertion: Assertion) -> dict[str, VerifiedAttribute]:
    """The population registry is the attribute source for verified claims and the authority
    on whether a national ID may be used at all: a deceased person's or a locked ID is refused
    whatever the method (NotAllowed propagates). An unreachable registry does not block a
    sign-in that another source proved; the attributes are then simply not refreshed."""
    from connectors.base import AttributeSource

    if not assertion.national_id:
        return {}
    for entry in nixa.connectors.entries():
        if entry.type == "population" and entry.id == assertion.connector_id:
            return {}  # the registry's own assertion carries its attributes already
        if isinstance(entry.instance, AttributeSource):
            try:
                return dict(entry.instance.enrich(assertion))
            except NotAllowed:
                raise
            except ConnectorError:
                return {}
    return {}


async def _post(request: Request, rid: str, handler: Any, *args: Any) -> Response:
    """The pending request and the form (routes.posted: one threadpool call), then `handler`
    once the request is known and its CSRF token right."""
    return await posted(request, rid, _checked, handler, *args)


def _checked(request: Request, nixa: Any, pending: flow.Pending | None, t: Any, form: dict[str, str], handler: Any,
             *args: Any) -> Response:
    if pending is None:
        return message(request, t, "error_expired_request")
    if not _csrf_ok(request, nixa, pending.rid, form):
        return message(request, t, "error_csrf", 403)
    return handler(request, nixa, pending, t, form, *args)


# ---- password-style --------------------------------------------------------------------------------


@router.post("/interaction/{rid}/password/{connector_id}")
async def password_login(request: Request, rid: str, connector_id: str) -> Response:
    return await _post(request, rid, _password_login, connector_id)


def _password_login(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str], connector_id: str) -> Response:
    entry, level, early = _offered_method(request, nixa, pending, t, connector_id, PasswordConnector, "password")
    if early:
        return early
    fields = [f.name for f in entry.instance.fields]
    guard = _guard(request, nixa, pending, entry.id, level, canonical_identifier(form, fields))
    wait = nixa.throttle.secret_attempt(**guard)  # counted before the check: parallel guesses cannot pass the limit
    if wait:
        return _throttled(request, nixa, pending, t, entry.id, wait)
    try:
        assertion = entry.instance.login({k: form.get(k, "") for k in fields})
    except ConnectorError as err:
        if err.code == "upstream_unavailable":
            nixa.throttle.secret_succeeded(**guard)  # the source was down: not the person's attempt
        return _failed(request, nixa, pending, t, connector_id, err)
    nixa.throttle.secret_succeeded(**guard)
    return _accepted(request, nixa, pending, t, entry, assertion, level)


# ---- challenge-style (OTP) ----------------------------------------------------------------------------


@router.post("/interaction/{rid}/challenge/{connector_id}")
async def challenge_start(request: Request, rid: str, connector_id: str) -> Response:
    return await _post(request, rid, _challenge_start, connector_id)


def _challenge_start(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str], connector_id: str) -> Response:
    entry, level, early = _offered_method(request, nixa, pending, t, connector_id, ChallengeConnector, "challenge")
    if early:
        return early
    fields = [f.name for f in entry.instance.challenge_fields]
    identifier = canonical_identifier(form, fields)
    # Starting a challenge checks what identifies the record (the registry's details) and sends
    # a message: the first is a secret-style attempt, the second goes through the send limits.
    guard = _guard(request, nixa, pending, entry.id, level, identifier)
    wait = nixa.throttle.secret_attempt(**guard)
    if wait:
        return _throttled(request, nixa, pending, t, entry.id, wait)
    submitted = {k: form.get(k, "") for k in fields}
    try:
        challenge = entry.instance.start(submitted, request_id=pending.rid, ip=guard["ip"])
    except ConnectorError as err:
        if err.code in ("upstream_unavailable", "rate_limited"):
            nixa.throttle.secret_succeeded(**guard)
        return _failed(request, nixa, pending, t, connector_id, err)
    now = nixa.clock()
    state = {"connector_id": connector_id, "method": method_id(connector_id, "challenge"), "state": dict(challenge.state),
             "masked": challenge.masked_destination, "expires_at": now + challenge.ttl, "form": submitted,
             "resend_at": now + challenge.resend_after, "identifier": identifier or "", "level": level}
    flow.update(nixa, pending, lambda p: p.extra.__setitem__("challenge", state))
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
                  resend_in=max(0, int(ch["resend_at"] - nixa.clock())))


@router.post("/interaction/{rid}/otp")
async def otp_verify(request: Request, rid: str) -> Response:
    return await _post(request, rid, _otp_verify)


def _otp_verify(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str]) -> Response:
    ch = pending.extra.get("challenge")
    if not ch:
        return message(request, t, "error_expired_request")
    entry = nixa.connectors.entry(ch["connector_id"])
    if entry is None or not isinstance(entry.instance, ChallengeConnector):
        return message(request, t, "error_expired_request")
    level = pending.offered_level(ch["method"])
    if level is None:
        return refuse_method(request, nixa, pending, t, ch["method"])
    if form.get("action") == "resend":
        return _challenge_start(request, nixa, pending, t, ch["form"], ch["connector_id"])
    guard = _guard(request, nixa, pending, f"{entry.id}:code", level, ch.get("identifier"))
    wait = nixa.throttle.secret_attempt(**guard)
    if wait:
        nixa.events.emit("login.throttled", client_id=pending.client_id, ip=guard["ip"], data={"method": guard["method"]})
        return _otp_page(request, nixa, pending, t, error=rate_limited_text(t, wait), status=429)
    try:
        assertion = entry.instance.verify(ch["state"], form.get("otp", "").strip()[:16])
    except ConnectorError as err:
        nixa.events.emit("login.failed", client_id=pending.client_id, ip=guard["ip"],
                         data={"method": ch["connector_id"], "reason": err.code})
        if err.code in ("challenge_expired", "too_many_attempts"):
            pending = flow.update(nixa, pending, lambda p: p.extra.pop("challenge", None))
            return _show_step(request, nixa, pending, t, error=_error_text(t, err), status=401, failed=ch["connector_id"])
        return _otp_page(request, nixa, pending, t, error=_error_text(t, err), status=401)
    nixa.throttle.secret_succeeded(**guard)
    nixa.throttle.secret_succeeded(**_guard(request, nixa, pending, entry.id, level, ch.get("identifier")))
    pending = flow.update(nixa, pending, lambda p: p.extra.pop("challenge", None))
    return _accepted(request, nixa, pending, t, entry, assertion, level)


# ---- redirect-style (upstream OpenID provider) -------------------------------------------------------


@router.post("/interaction/{rid}/redirect/{connector_id}")
async def redirect_start(request: Request, rid: str, connector_id: str) -> Response:
    return await _post(request, rid, _redirect_start, connector_id)


def _redirect_start(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str], connector_id: str) -> Response:
    entry, level, early = _offered_method(request, nixa, pending, t, connector_id, RedirectConnector, "redirect")
    if early:
        return early
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
    t = translator(request, pending.lang)  # the journey's language, not the upstream page's
    entry, level, early = _offered_method(request, nixa, pending, t, connector_id, RedirectConnector, "redirect")
    if early:
        return early
    callback = f"{nixa.settings.issuer}/login/callback/{connector_id}"
    try:
        assertion = entry.instance.handle_callback(params, callback, data["saved"])
    except ConnectorError as err:
        return _failed(request, nixa, pending, t, connector_id, err)
    return _accepted(request, nixa, pending, t, entry, assertion, level)


# ---- certificate-style ---------------------------------------------------------------------------------


@router.post("/interaction/{rid}/certificate/{connector_id}")
async def certificate_start(request: Request, rid: str, connector_id: str) -> Response:
    return await _post(request, rid, lambda request, nixa, pending, t, _form, cid: _certificate_page(request, nixa, pending, t, cid),
                       connector_id)


def _certificate_page(request: Request, nixa: Any, pending: flow.Pending, t: Any, connector_id: str, error: str | None = None,
                      status: int = 200) -> Response:
    entry, level, early = _offered_method(request, nixa, pending, t, connector_id, CertificateConnector, "cert")
    if early:
        return early
    header = entry.config.get("proxy_header", "x-ssl-client-cert")
    forwarded = request.headers.get(header)
    if forwarded and hasattr(entry.instance, "from_proxy_header"):
        # mTLS terminated at the reverse proxy: accepted only from a configured proxy address.
        try:
            assertion = entry.instance.from_proxy_header(forwarded, request.client.host if request.client else "")
        except ConnectorError as err:
            return _failed(request, nixa, pending, t, connector_id, err)
        return _accepted(request, nixa, pending, t, entry, assertion, level)
    if not hasattr(entry.instance, "new_challenge"):
        return message(request, t, "error_bad_request", detail="unknown sign-in method")
    client = nixa.clients.get(pending.client_id)
    challenge = entry.instance.new_challenge(request=_request_digest(pending), agency=client.name if client else pending.client_id)
    # The signature must answer this page's statement.
    pending = flow.update(nixa, pending, lambda p: p.extra.__setitem__("cert_challenge", challenge))
    csrf = csrf_token(nixa.csrf_key, browser_id(request) or "", pending.rid)
    return render(request, "certificate.html", t, status=status, rid=pending.rid, csrf=csrf, challenge=challenge,
                  origin=entry.instance.origin, connector_id=connector_id, error=error)


def _request_digest(pending: flow.Pending) -> str:
    """The hash of the pending authorization request that the certificate statement names, so a
    signature is evidence of this one sign-in (its id, its client and every parameter asked)."""
    canonical = json.dumps({"rid": pending.rid, "client_id": pending.client_id, "params": pending.params},
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode("utf-8")).digest()).decode("ascii").rstrip("=")
    return f"sha256:{digest}"


@router.post("/interaction/{rid}/certificate/{connector_id}/verify")
async def certificate_verify(request: Request, rid: str, connector_id: str) -> Response:
    return await _post(request, rid, _certificate_verify, connector_id)


def _certificate_verify(request: Request, nixa: Any, pending: flow.Pending, t: Any, form: dict[str, str], connector_id: str) -> Response:
    entry, level, early = _offered_method(request, nixa, pending, t, connector_id, CertificateConnector, "cert")
    if early:
        return early
    if not hasattr(entry.instance, "parse_agent_response") or not pending.extra.get("cert_challenge"):
        return message(request, t, "error_expired_request")
    ip = client_ip(request, nixa)
    try:
        chain, signed = entry.instance.parse_agent_response(form.get("signed", ""))
    except ConnectorError as err:
        nixa.events.emit("login.failed", client_id=pending.client_id, ip=ip, data={"method": connector_id, "reason": err.code})
        return _certificate_page(request, nixa, pending, t, connector_id, error=_error_text(t, err), status=400)
    # Keyed on the certificate presented: a wrong signature over and over is throttled per
    # certificate and per address, never across everyone's certificates.
    guard = _guard(request, nixa, pending, entry.id, level, hashlib.sha256(chain[0]).hexdigest())
    wait = nixa.throttle.secret_attempt(**guard)
    if wait:
        return _throttled(request, nixa, pending, t, entry.id, wait)
    try:
        assertion = entry.instance.authenticate(chain, signed, issued=pending.extra.get("cert_challenge"))
    except ConnectorError as err:
        nixa.events.emit("login.failed", client_id=pending.client_id, ip=ip, data={"method": connector_id, "reason": err.code})
        return _certificate_page(request, nixa, pending, t, connector_id, error=_error_text(t, err),
                                 status=503 if err.code == "upstream_unavailable" else 401)
    nixa.throttle.secret_succeeded(**guard)
    return _accepted(request, nixa, pending, t, entry, assertion, level)


# ---- proofing: a source without the national ID asks for it once -----------------------------------


@router.get("/interaction/{rid}/proofing")
def proofing_page(request: Request, rid: str) -> Response:
    nixa, pending, t = _load(request, rid)
    if pending is None or not pending.proofing:
        return message(request, t, "error_expired_request")
    return _show_step(request, nixa, pending, t, error=None)
