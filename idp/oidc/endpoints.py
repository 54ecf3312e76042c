"""Protocol endpoints a relying party talks to directly: discovery, JWKS, token, userinfo,
introspection, revocation, PAR. The browser-facing ones (/authorize, /logout) live in idp/login."""

from __future__ import annotations

import base64
import functools
import ipaddress
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from connectors.base import ACR_BY_LEVEL
from idp.identity.claims import SCOPE_CLAIMS
from idp.events import in_thread_batched
from idp.hot import HotRoutes
from idp.oidc.errors import note, note_client, refusal
from idp.oidc.params import BadRequest, read_form
from idp.oidc.grants import AUTH_METHODS
from idp.oidc.protocol import NixaRequest
from idp.oidc.tokens import checked_once
from idp.oidc.resources import userinfo_audience
from idp.oidc.tokens import InvalidToken

router = APIRouter()
hot = HotRoutes()  # the hot paths, answered by exact path in front of the router (idp/hot.py)


async def get_nixa(request: Request) -> Any:
    # async: FastAPI runs a plain `def` dependency in the threadpool, a hop per request for nothing
    return request.app.state.nixa


NixaDep = Annotated[Any, Depends(get_nixa)]
PAR_URN = "urn:ietf:params:oauth:request_uri:"


@functools.lru_cache(maxsize=16)
def _proxy_networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Settings.trusted_proxies parsed once (the settings validator already refused bad ones)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1, inside 10.0.0.0/8
    return address


def client_ip(request: Request, nixa: Any) -> str | None:
    """The client's address. X-Forwarded-For is believed only from a peer inside
    `trusted_proxies`, and then read from the right: each trusted proxy appends the address it
    saw, so the rightmost hop outside the trusted ranges is the client; whatever lies left of it
    was written by the client and may be forged. A malformed hop ends the walk at the last
    trusted address seen."""
    peer = request.client.host if request.client else None
    networks = _proxy_networks(tuple(nixa.settings.trusted_proxies))
    if not peer or not networks:
        return peer
    peer_address = _parse_address(peer)
    if peer_address is None or not any(peer_address in net for net in networks):
        return peer  # an untrusted peer's header is ignored
    forwarded = request.headers.getlist("x-forwarded-for")
    if not forwarded:
        return peer
    last_trusted = str(peer_address)
    for hop in reversed(",".join(forwarded).split(",")):
        address = _parse_address(hop)
        if address is None:
            return last_trusted
        if not any(address in net for net in networks):
            return str(address)
        last_trusted = str(address)
    return last_trusted


def check_basic_auth(request: Request) -> None:
    """Authlib decodes HTTP Basic credentials as UTF-8 without catching errors: refuse bad
    credentials here as invalid_client instead of a 500 (and NUL bytes before they reach SQL)."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic":
        return
    from urllib.parse import unquote

    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("basic_malformed") from None
    if "\x00" in unquote(decoded) or len(decoded) > 1024:
        raise BadRequest("basic_malformed")


async def oauth_request(request: Request, nixa: Any) -> NixaRequest:
    check_basic_auth(request)
    form = await read_form(request, max_body=nixa.settings.max_body_bytes, max_length=nixa.settings.max_param_length)
    return NixaRequest("POST", str(request.url), request.headers, form=form, remote_addr=client_ip(request, nixa))


# ---- discovery -------------------------------------------------------------------------------


def discovery_document(nixa: Any) -> dict:
    iss = nixa.settings.issuer
    return {
        "issuer": iss,
        "authorization_endpoint": f"{iss}/authorize",
        "token_endpoint": f"{iss}/token",
        "userinfo_endpoint": f"{iss}/userinfo",
        "jwks_uri": f"{iss}/jwks",
        "introspection_endpoint": f"{iss}/introspect",
        "revocation_endpoint": f"{iss}/revoke",
        "end_session_endpoint": f"{iss}/logout",
        "pushed_authorization_request_endpoint": f"{iss}/par",
        "registration_endpoint": f"{iss}/register",  # RFC 7591, with an initial access token only (admin/registration.py)
        "require_pushed_authorization_requests": False,
        "scopes_supported": nixa.scopes_supported,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": list(ACR_BY_LEVEL.values()),
        "claims_supported": sorted({"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp", "at_hash",
                                    "verified_claims"}
                                   | {c for cs in SCOPE_CLAIMS.values() for c in cs}),
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": ["vi", "en"],
        "verified_claims_supported": True,
        "trust_frameworks_supported": ["vn_nixa"],
        "claims_locales_supported": ["vi"],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,  # OIDC Back-Channel Logout 1.0 §2.1 (idp/oidc/logout.py)
        "backchannel_logout_session_supported": True,  # logout tokens carry sid
        "service_documentation": f"{iss}/",
    }


CACHE_PUBLIC = {"Cache-Control": "public, max-age=300"}


class Document:
    """A public document (discovery, JWKS) as ready-made ASGI answers: the 200 with its body and
    the 304 (RFC 9110 §13.1.2), headers encoded once. Built once per body (a new key-ring
    generation makes a new one); a request only compares its If-None-Match and sends."""

    def __init__(self, body: bytes, etag: str, media_type: str) -> None:
        self.etag = etag
        common = [(b"cache-control", CACHE_PUBLIC["Cache-Control"].encode()), (b"etag", etag.encode())]
        self.full = (200, [*common, (b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())], body)
        self.unchanged = (304, common, b"")

    def answer(self, scope: dict) -> Any:
        status, headers, body = self.full
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if self.etag in value.decode("latin-1").replace(" ", "").split(","):
                    status, headers, body = self.unchanged
                break

        async def send_it(scope: dict, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": status, "headers": list(headers)})
            await send({"type": "http.response.body", "body": body})

        return send_it


@functools.lru_cache(maxsize=8)
def _document(body: bytes, etag: str, media_type: str) -> Document:
    return Document(body, etag, media_type)


def _cacheable(request: Request, body: bytes, etag: str, media_type: str) -> Any:
    """Pre-encoded bytes with their ETag; 304 when the client already holds them."""
    return _document(body, etag, media_type).answer(request.scope)


def _discovery_response(request: Request, nixa: Any) -> Response:
    # Built once per worker: the document depends only on settings.
    cached = getattr(nixa, "_discovery_body", None)
    if cached is None:
        import hashlib
        import json

        body = json.dumps(discovery_document(nixa), separators=(",", ":")).encode()
        cached = nixa._discovery_body = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return _cacheable(request, *cached, "application/json")


@hot.route("/.well-known/openid-configuration", "GET")
async def openid_configuration(request: Request, nixa: Any) -> Response:
    return _discovery_response(request, nixa)


@hot.route("/.well-known/oauth-authorization-server", "GET")
async def oauth_metadata(request: Request, nixa: Any) -> Response:
    return _discovery_response(request, nixa)


@hot.route("/jwks", "GET")
async def jwks(request: Request, nixa: Any) -> Response:
    # Served from the worker's cached key-ring view without leaving the event loop; the database
    # is asked (in the threadpool) only when the view is due for its generation check.
    encoded = nixa.keys.encoded_jwks_if_fresh() or await run_in_threadpool(nixa.keys.encoded_jwks)
    return _cacheable(request, *encoded, "application/jwk-set+json")


# ---- token, introspection, revocation ---------------------------------------------------------------


async def off_loop(nixa: Any, inline: bool, fn: Any, *args: Any, reads: list[str] | None = None,
                   ready: Callable[[dict[str, Any]], bool] | None = None) -> Any:
    """A hot path's synchronous work, on the event loop when `inline` and nothing in it waits
    for a round trip, else in the threadpool.

    On the embedded store every lookup is this process's memory (Nixa.works_in_memory). On
    Redis, `reads` names the keys the work will read: they are read first, in one awaited round
    trip, and the work is answered from them (idp/store/ephemeral.py read_ahead); `ready` then
    says, from those values, whether everything else it needs is in this worker's memory (a
    client, a person's attributes): if not, the threadpool after all. Inline, its audit events
    are committed by the writer thread while the loop goes on, and awaited before the answer
    leaves (idp/events.py deferred_audit), as a thread would have waited for them."""
    if not inline:
        return await in_thread_batched(nixa.audit, fn, *args)
    from idp.events import deferred_audit

    if nixa.works_in_memory:
        with deferred_audit() as audit:
            result = fn(*args)
    elif reads is None:
        return await in_thread_batched(nixa.audit, fn, *args)
    else:
        from idp.store.ephemeral import read_ahead

        known = dict(zip(reads, await nixa.store.aget_many(reads)))
        if ready is not None and not ready(known):
            return await in_thread_batched(nixa.audit, fn, *args)
        with read_ahead(known), deferred_audit() as audit:
            result = fn(*args)
    await audit.committed()
    return result


def _secret_client_credentials(req: NixaRequest) -> bool:
    """A client_credentials request from a client authenticating with its secret: nothing in it
    reaches the network or writes the database but the audit (a client assertion may make NIXA
    fetch the client's jwks_uri; the other grants write grants and refresh tokens)."""
    form = req.form
    return (form.get("grant_type") == "client_credentials" and "client_assertion" not in form
            and ("client_secret" in form or req.headers.get("authorization", "")[:6].lower() == "basic "))


def _client_credentials_in_memory(nixa: Any, req: NixaRequest) -> bool:
    """Whether such a request needs nothing but this worker's memory: the client, the resource
    servers it names and a signing key whose generation was checked lately. On Redis the work
    then runs on the event loop (nothing of it reads the store); else in the threadpool, where
    a database read does not hold up the loop."""
    from authlib.oauth2.rfc6749.util import extract_basic_authorization

    if not nixa.clients.in_memory(extract_basic_authorization(req.headers)[0] or req.form.get("client_id")) or not nixa.keys.fresh():
        return False
    userinfo = userinfo_audience(nixa.settings.issuer)
    # A malformed or unknown resource is not in memory either: the threadpool, and its refusal there.
    return all(r == userinfo or nixa.resources.in_memory(r) for r in (req.form.get("resource") or "").split())


@hot.route("/token", "POST")
async def token(request: Request, nixa: Any) -> Response:
    from idp.oidc.server import token_response

    req = await oauth_request(request, nixa)
    inline = _secret_client_credentials(req)
    return await off_loop(nixa, inline, token_response, nixa, req, lambda response: _token_failed(nixa, req, response),
                          reads=[] if inline else None, ready=lambda _: _client_credentials_in_memory(nixa, req))


def _token_failed(nixa: Any, req: NixaRequest, response: Response) -> None:
    import json

    try:
        error = json.loads(response.body).get("error")
    except ValueError:
        error = None
    from authlib.oauth2.rfc6749.util import extract_basic_authorization

    claimed = req.client.client_id if req.client else (req.form.get("client_id") or extract_basic_authorization(req.headers)[0])
    nixa.events.emit("token.failed", client_id=(claimed or "")[:128] or None,
                     ip=req.remote_addr, data={"error": error, "grant_type": req.form.get("grant_type", "")[:64]})


def _introspection_reads(nixa: Any, req: NixaRequest) -> tuple[list[str] | None, Callable[[dict[str, Any]], bool] | None]:
    """What introspecting this request's token reads from the store: the revocation markers of
    an access token that passes every other check, while the client asking is in this worker's
    memory. None: the work may reach the database (a refresh token, an unknown client)."""
    from authlib.oauth2.rfc6749.util import extract_basic_authorization

    if nixa.works_in_memory:
        return None, None
    client_id = extract_basic_authorization(req.headers)[0] or req.form.get("client_id")
    if not nixa.clients.in_memory(client_id):
        return None, None
    try:
        info = nixa.tokens.checked_access_token(req.form.get("token") or "")
    except InvalidToken:
        return None, None  # a refresh token, or nothing the endpoint will accept: the usual way
    from idp.oidc.tokens import audience_of

    if info.client_id != client_id and not all(nixa.resources.in_memory(aud) for aud in audience_of(info.claims)):
        return None, None  # who may introspect it is a registration not in memory yet
    return nixa.tokens.revocation_markers(info.claims), None


@hot.route("/introspect", "POST")
async def introspect(request: Request, nixa: Any) -> Response:
    req = await oauth_request(request, nixa)
    with checked_once():
        # Inline for a client authenticating with its secret (an assertion may fetch its jwks_uri).
        reads, ready = _introspection_reads(nixa, req) if "client_assertion" not in req.form else (None, None)
        return await off_loop(nixa, "client_assertion" not in req.form, nixa.server.create_endpoint_response, "introspection", req,
                              reads=reads, ready=ready)


@hot.route("/revoke", "POST")
async def revoke(request: Request, nixa: Any) -> Response:
    req = await oauth_request(request, nixa)
    return await in_thread_batched(nixa.audit, nixa.server.create_endpoint_response, "revocation", req)


# ---- userinfo (OIDC Core §5.3) ------------------------------------------------------------------------


def _bearer_error(reason: str, **values: Any) -> Response:
    """RFC 6750 §3: the catalogue's refusal, in the body and in WWW-Authenticate."""
    entry = refusal(reason)
    note(reason)
    description = entry.text(**values)
    return JSONResponse(
        {"error": entry.error, "error_description": description},
        status_code=entry.status,
        headers={"WWW-Authenticate": f'Bearer error="{entry.error}", error_description="{description}"', "Cache-Control": "no-store"},
    )


def _no_token() -> Response:
    note("token_missing")
    return JSONResponse({"error": "invalid_request", "error_description": refusal("token_missing").text()}, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="nixa"', "Cache-Control": "no-store"})


def _userinfo(nixa: Any, access_token: str) -> Response | tuple[dict[str, Any], tuple[str, str, list[str]]]:
    """The refusal, or the body with what it releases (person, client, claim names): the
    release is recorded by the caller, on the event loop (`_answer_userinfo`)."""
    try:
        info = nixa.tokens.validate_access_token(access_token)
    except InvalidToken as exc:
        return _bearer_error(exc.reason)
    note_client(info.client_id)
    if userinfo_audience(nixa.settings.issuer) not in info.audience:
        # RFC 8707 / RFC 9068 §4: a token for an agency's API is not a token for UserInfo.
        return _bearer_error("token_not_for_userinfo")
    if "openid" not in info.scope or not info.person_id:
        return _bearer_error("token_without_openid")
    client = nixa.clients.get(info.client_id)
    if client is None:
        return _bearer_error("client_disabled")
    # nixa_allowed_claims bounds what any scope releases to this app (its registration, not the request).
    allowed = client.allowed_claims
    claims = nixa.people.claims(info.person_id, info.scope, national_id_allowed=client.may_receive_national_id, allowed=allowed)
    body = {"sub": info.claims["sub"], **claims}
    if "verified_claims" in info.scope:
        verified = nixa.people.verified_claims(info.person_id, info.scope, national_id_allowed=client.may_receive_national_id,
                                               allowed=allowed)
        if verified:
            body["verified_claims"] = verified
    return body, (info.person_id, info.client_id, sorted(body))


def _userinfo_reads(nixa: Any, access_token: str) -> tuple[list[str] | None, Callable[[dict[str, Any]], bool] | None]:
    """On Redis: the token's revocation markers and its person's attribute version, read in one
    round trip; inline only if the app and that version of the person's attributes are in this
    worker's memory. None: nothing to read ahead (the embedded store, or a token that fails
    before any read, answered inline all the same)."""
    if nixa.works_in_memory:
        return None, None
    try:
        info = nixa.tokens.checked_access_token(access_token)
    except InvalidToken:
        return [], None  # refused before any read: nothing to wait for
    markers = nixa.tokens.revocation_markers(info.claims)
    cache = nixa.people.cache
    if not info.person_id or cache is None:
        return markers, None
    version_key = cache.version_key(info.person_id)

    def ready(known: dict[str, Any]) -> bool:
        return nixa.clients.in_memory(info.client_id) and cache.holds(info.person_id, known.get(version_key))

    return markers + [version_key], ready


async def _answer_userinfo(nixa: Any, access_token: str) -> Response:
    with checked_once():
        reads, ready = _userinfo_reads(nixa, access_token)
        out = await off_loop(nixa, True, _userinfo, nixa, access_token, reads=reads, ready=ready)
    if isinstance(out, Response):
        return out
    body, (person_id, client_id, names) = out
    await nixa.release_claims_async(person_id, client_id, names, "userinfo")
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _bearer_from_header(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if not auth:
        return None
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise BadRequest("bearer_malformed")
    return value.strip()


@hot.route("/userinfo", "GET")
async def userinfo_get(request: Request, nixa: Any) -> Response:
    try:
        token_value = _bearer_from_header(request)
    except BadRequest as exc:
        return _bearer_error(exc.reason)
    if not token_value:
        return _no_token()
    return await _answer_userinfo(nixa, token_value)


@hot.route("/userinfo", "POST")
async def userinfo_post(request: Request, nixa: Any) -> Response:
    try:
        token_value = _bearer_from_header(request)
        form: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = await read_form(request, max_body=nixa.settings.max_body_bytes, max_length=nixa.settings.max_param_length)
    except BadRequest as exc:
        return _bearer_error(exc.reason, **exc.values)
    if token_value and form.get("access_token"):
        # RFC 6750 §2: more than one method of sending the token is an invalid_request.
        return _bearer_error("token_sent_twice")
    token_value = token_value or form.get("access_token")
    if not token_value:
        return _no_token()
    return await _answer_userinfo(nixa, token_value)


# ---- pushed authorization requests (RFC 9126) ---------------------------------------------------------


@router.post("/par")
async def par(request: Request, nixa: NixaDep) -> Response:
    req = await oauth_request(request, nixa)
    return await in_thread_batched(nixa.audit, _par, nixa, req)


def _par(nixa: Any, req: NixaRequest) -> Response:
    from authlib.oauth2.rfc6749 import OAuth2Error

    from idp.login.flow import AuthorizationError, check_authorization_request

    try:
        client = nixa.server.authenticate_client(req, AUTH_METHODS, endpoint="par")
    except OAuth2Error as error:
        return nixa.server.handle_error_response(req, error)
    params = {k: v for k, v in req.form.items() if k not in ("client_assertion", "client_assertion_type", "client_secret")}
    params["client_id"] = client.client_id  # a different one was refused by authenticate_client
    try:
        if "request_uri" in params:
            raise AuthorizationError("request_uri_in_par")
        check_authorization_request(nixa, client, params)
    except AuthorizationError as err:
        note(err.reason, client_id=client.client_id)
        return JSONResponse({"error": err.error, "error_description": err.description}, status_code=400,
                            headers={"Cache-Control": "no-store"})
    handle = secrets.token_urlsafe(24)
    nixa.store.put(f"par:{handle}", {"client_id": client.client_id, "params": params}, nixa.settings.par_ttl)
    return JSONResponse({"request_uri": PAR_URN + handle, "expires_in": nixa.settings.par_ttl}, status_code=201,
                        headers={"Cache-Control": "no-store"})
