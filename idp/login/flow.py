"""The authorization request as a stored state machine.

/authorize validates the request (client and redirect_uri first: until both are proven,
errors go to a page, never to a redirect), stores it under an opaque id bound to the browser,
then each step (login, step-up, consent) is looked up server-side by that id. The code is
issued by Authlib's grant when the last step is done.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Error

from connectors.base import LevelOfAssurance
from idp.login.session import SsoSession
from idp.oidc.errors import ascii_text, note, note_client, note_redirected, refusal
from idp.oidc.protocol import AuthContext, NixaRequest
from idp.store.ephemeral import stored_fields

PAR_URN = "urn:ietf:params:oauth:request_uri:"
PROMPTS = {"none", "login", "consent", "select_account"}


class AuthorizationError(Exception):
    """A refusal of the catalogue (idp/oidc/errors.py), answered to the redirect_uri (or as JSON at /par)."""

    def __init__(self, reason: str, **values: Any) -> None:
        entry = refusal(reason)
        note(reason)
        self.reason = reason
        self.error = entry.error
        self.description = entry.text(**values)
        super().__init__(self.description)


class PageError(Exception):
    """Cannot be sent to the client (client or redirect_uri not proven): a friendly page."""

    def __init__(self, code: str, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


class Conflict(PageError):
    """The pending request kept changing under us (another tab): the person reloads the page."""

    def __init__(self) -> None:
        super().__init__("request_conflict", 409)


CAS_RETRIES = 32  # each retry means another writer landed: bounded by the number of writers


@dataclass
class Pending:
    """The single source of truth for one sign-in: what was asked, which methods were offered
    (with the level each reaches), which steps were done (with the level each reached)."""

    rid: str
    client_id: str
    params: dict[str, str]
    browser: str
    required_loa: int
    max_age: int | None
    prompts: list[str]
    created_at: float
    consent_done: bool = False
    proofing: dict | None = None  # an assertion waiting for national-ID proofing
    extra: dict = field(default_factory=dict)
    offered: dict[str, int] = field(default_factory=dict)  # method id -> level it reaches
    steps: list[dict] = field(default_factory=list)  # {"method", "loa", "person_id", "at"}
    v: int = 0  # compare-and-set version (EphemeralStore.cas)

    @property
    def scopes(self) -> set[str]:
        return set(self.params.get("scope", "").split())

    @property
    def level(self) -> LevelOfAssurance:
        return LevelOfAssurance(self.required_loa)

    @property
    def proof_level(self) -> int:
        """The level a step must reach now: while proofing a national ID for a source, at least
        the level that source will be trusted for (linking.py); otherwise the level asked."""
        if self.proofing:
            return max(self.required_loa, int(self.proofing["loa"]))
        return self.required_loa

    def offered_level(self, method_id: str) -> int | None:
        """The level `method_id` was offered at for this request, or None if it was not offered
        (a POST to a method the page never showed is refused, whatever the browser sends)."""
        level = self.offered.get(method_id)
        return int(level) if level is not None and int(level) >= self.proof_level else None

    def done_since(self, person_id: str) -> float | None:
        """When this request's first step for `person_id` at the required level was done."""
        times = [s["at"] for s in self.steps if s["person_id"] == person_id and s["loa"] >= self.required_loa]
        return min(times) if times else None

    @property
    def lang(self) -> str | None:
        return self.extra.get("lang") or self.params.get("ui_locales")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pending:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def add_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def error_redirect(nixa: Any, redirect_uri: str, error: str, description: str, state: str | None) -> str:
    # RFC 9207: iss in every authorization response, errors included; the request's reference
    # (idp/ops.py), which its audit event carries, so the integrator can quote it.
    from idp.ops import request_id

    note_redirected(error)
    return add_query(redirect_uri, {"error": error, "error_description": ascii_text(description), "state": state,
                                    "iss": nixa.settings.issuer, "request_id": request_id.get()})


def refused_redirect(nixa: Any, redirect_uri: str, err: AuthorizationError, state: str | None) -> str:
    return error_redirect(nixa, redirect_uri, err.error, err.description, state)


SUPPORTED_ACR = " ".join(lv.acr for lv in LevelOfAssurance)


def required_level(params: dict[str, str], client: Any = None) -> int:
    """acr_values (else the client's registered default_acr_values) lists acceptable levels; the
    weakest acceptable one must be reached, and never less than the client's registered minimum
    (`nixa_minimum_acr`). Values NIXA does not know are skipped when a known one is listed; a
    list of which NIXA supports none is refused, naming the supported values: silently signing
    the person in at low after a typo would give the client less than it asked for."""
    values = params.get("acr_values", "").split()
    metadata = client.metadata if client is not None else {}
    if not values:
        values = list(metadata.get("default_acr_values") or [])
    known = [lv for lv in (LevelOfAssurance.from_acr(v) for v in values) if lv is not None]
    if values and not known:
        raise AuthorizationError("acr_values_unsupported", supported=SUPPORTED_ACR)
    level = int(min(known)) if known else int(LevelOfAssurance.LOW)
    minimum = LevelOfAssurance.from_acr(str(metadata.get("nixa_minimum_acr") or ""))
    return max(level, int(minimum)) if minimum is not None else level


def check_authorization_request(nixa: Any, client: Any, params: dict[str, str]) -> None:
    """Everything that can be checked once client and redirect_uri are proven (shared with PAR)."""
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise AuthorizationError("redirect_uri_missing")
    if not client.check_redirect_uri(redirect_uri):
        raise AuthorizationError("redirect_uri_not_registered")
    if "request" in params:
        raise AuthorizationError("request_object_unsupported")
    if "request_uri" in params:
        raise AuthorizationError("request_uri_unsupported")
    if params.get("response_type") != "code":
        raise AuthorizationError("response_type_unsupported")
    if not client.check_response_type("code"):
        raise AuthorizationError("code_flow_not_allowed")
    if params.get("response_mode", "query") != "query":
        raise AuthorizationError("response_mode_unsupported")
    check_pkce(client, params)
    prompts = params.get("prompt", "").split()
    if set(prompts) - PROMPTS:
        raise AuthorizationError("prompt_unknown")
    if "none" in prompts and len(prompts) > 1:
        raise AuthorizationError("prompt_none_combined")
    if "max_age" in params:
        value = params["max_age"]
        if not value.isdigit() or len(value) > 9:
            raise AuthorizationError("max_age_invalid")
    if "openid" not in params.get("scope", "").split():
        raise AuthorizationError("openid_scope_missing")
    if client.refuses_dropped_scopes and (dropped := client.dropped_scopes(params.get("scope"))):
        raise AuthorizationError("scope_not_allowed", scopes=" ".join(dropped)[:300])
    for name in ("state", "nonce", "login_hint", "ui_locales", "acr_values"):
        if len(params.get(name, "")) > 1024:
            raise AuthorizationError("param_value_too_long", name=name)
    check_resources(nixa, client, params)


def check_resources(nixa: Any, client: Any, params: dict[str, str]) -> None:
    """RFC 8707 §2: every `resource` is a registered resource server (or UserInfo), and each
    API scope the client may ask for is accepted by one of them; the code remembers them."""
    from idp.oidc.resources import InvalidTargetError

    try:
        nixa.resources.for_request(params.get("resource"), client.get_allowed_scope(params.get("scope", "")), nixa.scopes_supported)
    except InvalidTargetError as err:
        raise AuthorizationError(err.nixa_reason, **err.nixa_values) from err


def check_pkce(client: Any, params: dict[str, str]) -> None:
    """RFC 9700 §2.1.1: PKCE with S256 for every client, unless a legacy confidential client was
    registered with nixa_pkce_optional. RFC 7636 §4.3: a challenge without a method is `plain`."""
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None and method is None:
        if not client.pkce_optional:
            raise AuthorizationError("pkce_required")
        return
    if challenge is None:
        raise AuthorizationError("pkce_challenge_missing")
    if (method or "plain") != "S256":
        raise AuthorizationError("pkce_method_not_s256")


def _find_client_and_params(nixa: Any, params: dict[str, str]) -> tuple[Any, dict[str, str], bool]:
    note_client(params.get("client_id"))  # for the audit event, should this request be refused
    client = nixa.clients.get(params.get("client_id"))
    if client is None:
        raise PageError("unknown_client")
    from_par = False
    request_uri = params.get("request_uri")
    if request_uri and request_uri.startswith(PAR_URN):
        stored = nixa.store.take(f"par:{request_uri[len(PAR_URN):]}")  # single use
        if stored is None or stored["client_id"] != client.client_id:
            raise PageError("invalid_request_uri")
        params = dict(stored["params"])
        from_par = True
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri or not client.check_redirect_uri(redirect_uri):
        raise PageError("invalid_redirect_uri")
    return client, params, from_par


def begin(nixa: Any, params: dict[str, str], browser_id: str, session: SsoSession | None, lang: str | None = None) -> tuple[str, str]:
    """Returns ("redirect", url), ("interaction", rid) or ("finish", rid). Raises PageError."""
    client, params, from_par = _find_client_and_params(nixa, params)
    state = params.get("state")
    try:
        if client.require_par and not from_par:
            raise AuthorizationError("par_required")
        check_authorization_request(nixa, client, params)
        req = NixaRequest("GET", nixa.settings.issuer + "/authorize", {}, query=params)
        nixa.server.get_consent_grant(req, end_user=None)  # Authlib's own checks (scope, PKCE, ...)
        hint_sub = _id_token_hint_subject(nixa, client, params)
        required = required_level(params, client)
    except AuthorizationError as err:
        nixa.events.emit("authorization.failed", client_id=client.client_id, data={"error": err.error, "reason": err.reason})
        return "redirect", refused_redirect(nixa, params["redirect_uri"], err, state)
    except OAuth2Error as err:
        nixa.events.emit("authorization.failed", client_id=client.client_id, data={"error": err.error})
        return "redirect", error_redirect(nixa, params["redirect_uri"], err.error, err.description or err.error, state)

    pending = Pending(
        rid=secrets.token_urlsafe(24),
        client_id=client.client_id,
        params=params,
        browser=browser_id,
        required_loa=required,
        max_age=int(params["max_age"]) if "max_age" in params else client.metadata.get("default_max_age"),
        prompts=params.get("prompt", "").split(),
        created_at=nixa.clock(),
        # The journey keeps the language it started in (ui_locales, else the browser's) on every
        # page, the upstream's callback included, until the person switches (?lang).
        extra={**({"hint_sub": hint_sub} if hint_sub else {}), **({"lang": lang} if lang else {})},
    )
    save(nixa, pending)
    return advance(nixa, pending, session)


def _id_token_hint_subject(nixa: Any, client: Any, params: dict[str, str]) -> str | None:
    """OIDC Core §3.1.2.1 id_token_hint: an ID token we issued to this client (expired is fine)
    naming the person the client expects; another person's session does not satisfy it."""
    hint = params.get("id_token_hint")
    if not hint:
        return None
    claims = nixa.tokens.validate_id_token_hint(hint)
    aud = claims.get("aud") if claims else None
    if not claims or client.client_id not in (aud if isinstance(aud, list) else [aud]):
        raise AuthorizationError("id_token_hint_invalid")
    return str(claims.get("sub"))


def _key(rid: str) -> str:
    return f"authz:{rid}"


def _ttl_left(nixa: Any, pending: Pending) -> float:
    return pending.created_at + nixa.settings.pending_request_ttl - nixa.clock()


def save(nixa: Any, pending: Pending) -> None:
    """Store a new pending request (its first version)."""
    nixa.store.put(_key(pending.rid), stored_fields(pending), nixa.settings.pending_request_ttl)


def update(nixa: Any, pending: Pending, change: Callable[[Pending], None]) -> Pending:
    """Apply `change` to the pending request and store it, compare-and-set on its version: when
    another tab changed it meanwhile, reload and apply `change` to that, so no step is lost.
    Returns the stored state (which `change` was applied to)."""
    for _ in range(CAS_RETRIES):
        change(pending)
        left = _ttl_left(nixa, pending)
        if left <= 0:
            raise PageError("expired_request")
        version = pending.v
        pending.v = version + 1
        if nixa.store.cas(_key(pending.rid), version, stored_fields(pending), left):
            return pending
        fresh = nixa.store.get(_key(pending.rid))
        if not fresh or fresh.get("browser") != pending.browser:
            raise PageError("expired_request")
        pending = Pending.from_dict(fresh)
    raise Conflict()


def record_step(nixa: Any, pending: Pending, *, method: str, loa: int, person_id: str, at: float) -> Pending:
    """A method proved who the person is, at `loa`, for this request, at `at` (the SSO
    session's time of that authentication)."""
    step = {"method": method, "loa": int(loa), "person_id": person_id, "at": at}

    def add(p: Pending) -> None:
        p.steps.append(step)
        p.extra.pop("challenge", None)
        p.extra.pop("cert_challenge", None)

    return update(nixa, pending, add)


def load(nixa: Any, rid: str | None, browser_id: str | None) -> Pending | None:
    if not rid or len(rid) > 64 or not browser_id:
        return None
    data = nixa.store.get(_key(rid))
    if not data or data["browser"] != browser_id:
        return None  # bound to the browser that started it
    return Pending.from_dict(data)


def satisfying_level(nixa: Any, pending: Pending, session: SsoSession | None) -> tuple[int, float] | None:
    """The (level, auth_time) of the session's authentication that satisfies this request:
    at least the required level, recent enough for max_age. A sign-in done for this very
    request is recent enough (else max_age=0 would loop forever)."""
    if session is None or session.loa < pending.required_loa or pending.proofing:
        return None
    return session.satisfying(pending.required_loa, pending.max_age, nixa.clock(), pending.done_since(session.person_id))


def session_satisfies(nixa: Any, pending: Pending, session: SsoSession | None) -> bool:
    if satisfying_level(nixa, pending, session) is None:
        return False
    assert session is not None
    login_done = pending.done_since(session.person_id) is not None
    if ("login" in pending.prompts or "select_account" in pending.prompts) and not login_done:
        return False
    hint_sub = pending.extra.get("hint_sub")
    if hint_sub and not login_done:
        client = nixa.clients.get(pending.client_id)
        if client is None or nixa.people.subject_for(session.person_id, client) != hint_sub:
            return False  # the session is someone else's: ask who is there
    return True


def needs_consent(nixa: Any, pending: Pending, session: SsoSession) -> bool:
    client = nixa.clients.get(pending.client_id)
    if client is None:
        return True
    if "consent" in pending.prompts and not pending.consent_done:
        return True
    if pending.consent_done or client.first_party:
        return False
    wanted = client_scopes(client, pending) - {"openid"}
    return not wanted <= nixa.consented_scopes(session.person_id, client.client_id)


def client_scopes(client: Any, pending: Pending) -> set[str]:
    return client.granted_scopes(pending.params.get("scope", ""))


def advance(nixa: Any, pending: Pending, session: SsoSession | None) -> tuple[str, str]:
    """Decide the next step: the code, the login page, the consent page, or an error."""
    none = "none" in pending.prompts
    state = pending.params.get("state")
    redirect_uri = pending.params["redirect_uri"]
    if not session_satisfies(nixa, pending, session):
        if none:
            nixa.store.delete(_key(pending.rid))
            return "redirect", refused_redirect(nixa, redirect_uri, AuthorizationError("login_required"), state)
        return "interaction", pending.rid
    assert session is not None
    if needs_consent(nixa, pending, session):
        if none:
            nixa.store.delete(_key(pending.rid))
            return "redirect", refused_redirect(nixa, redirect_uri, AuthorizationError("consent_required"), state)
        return "interaction", pending.rid
    return "finish", pending.rid


def finish(nixa: Any, rid: str, browser_id: str, session: SsoSession, *, remember: Callable[[str], None] | None = None) -> str:
    """Issue the code. The pending request is taken once: a double submit yields one code."""
    data = nixa.store.take(_key(rid))
    if not data or data["browser"] != browser_id:
        raise PageError("expired_request")
    pending = Pending.from_dict(data)
    picked = satisfying_level(nixa, pending, session)
    if picked is None or not session_satisfies(nixa, pending, session):
        raise PageError("expired_request")  # never a code for a session that does not satisfy the request
    level, auth_time = picked
    params = pending.params
    client = nixa.clients.get(pending.client_id)
    if client is None:
        raise PageError("unknown_client")
    req = NixaRequest("GET", nixa.settings.issuer + "/authorize", {}, query=params)
    ctx = AuthContext(
        person_id=session.person_id,
        grant_id=secrets.token_hex(16),
        sid=session.sid,
        auth_time=auth_time,
        acr=LevelOfAssurance(level).acr,
        amr=list(session.amr),
        nonce=params.get("nonce"),
        methods=list(session.methods),
    )
    try:
        grant = nixa.server.get_consent_grant(req, end_user=ctx)
        req.scope = " ".join(sorted(client_scopes(client, pending)))
        redirect_uri = grant.validate_authorization_request()
        req.scope = " ".join(sorted(client_scopes(client, pending)))
        _, _, headers = grant.create_authorization_response(redirect_uri, ctx)
    except OAuth2Error as err:
        return error_redirect(nixa, params["redirect_uri"], err.error, err.description or err.error, params.get("state"))
    location = dict(headers)["Location"]
    if remember is not None:
        # The SSO session learns the app (for single logout) before the success is recorded:
        # the audit says succeeded only once nothing after it can fail.
        remember(client.client_id)
    nixa.events.emit("authorization.succeeded", person_id=session.person_id, client_id=client.client_id,
                     data={"acr": LevelOfAssurance(level).acr, "scope": req.scope})
    return add_query(location, {"iss": nixa.settings.issuer})


def deny(nixa: Any, rid: str, browser_id: str, reason: str = "consent_declined") -> str:
    data = nixa.store.take(_key(rid))
    if not data or data["browser"] != browser_id:
        raise PageError("expired_request")
    pending = Pending.from_dict(data)
    err = AuthorizationError(reason)
    nixa.events.emit("consent.denied" if err.error == "access_denied" else "authorization.failed", client_id=pending.client_id,
                     data={"error": err.error, "reason": reason})
    return refused_redirect(nixa, pending.params["redirect_uri"], err, pending.params.get("state"))
