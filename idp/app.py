"""create_app(settings): builds stores, key ring, connector registry, the OAuth server, routers."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from joserfc.jwk import KeySet
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles

from connectors.registry import ConnectorRegistry
from connectors.resilience import ResilientHttp
from connectors.safe_fetch import MAX_DOCUMENT_BYTES, NEGATIVE_TTL, FetchPolicy, FetchRefused, fetch_json
from idp.audit_chain import AuditKeys, Checkpoints
from idp.events import AuditLog, Events
from idp.identity.people import People, password_hasher
from idp.oidc.clients import ClientModel, ClientRegistry, SecretHasher
from idp.oidc.resources import ResourceRegistry
from idp.oidc.tokens import TokenService
from idp.settings import Settings
from idp.store.db import Database, check_schema
from idp.store.ephemeral import EphemeralStore, MemoryStore, open_store
from idp.store.throttle import Throttle
from idp.store.models import Consent, Grant
from keys.pkcs11 import Hsm
from keys.ring import KeyRing
from keys.service import KeyAdministration
from keys.sealing import MasterKey, Sealer
from keys.stable import StableSecrets

log = logging.getLogger("nixa")

API_PATHS = ("/token", "/introspect", "/revoke", "/par", "/userinfo", "/jwks")
STANDARD_SCOPES = ["openid", "profile", "email", "phone", "address", "offline_access", "national_id", "roles", "verified_claims"]


class Nixa:
    """Everything a request handler needs, built once per worker."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time, store: EphemeralStore | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.db = Database(settings.sqlalchemy_url)
        check_schema(self.db.engine)
        self.store = store or open_store(settings.redis_url, clock)
        self.master = MasterKey.configured(settings.master_key, settings.var_dir, demo=settings.demo)
        previous = MasterKey.from_b64(settings.previous_master_key) if settings.previous_master_key else None
        self.sealer = Sealer(self.db, self.master, previous, clock=clock)  # keys/sealing.py: every secret at rest
        self.events = Events()
        longest = max(settings.access_token_ttl, settings.id_token_ttl)
        # The HSM, when configured, is reached (and the PIN checked) before anything else uses keys.
        self.hsm = Hsm(settings.pkcs11_module, settings.pkcs11_token_label, settings.pkcs11_pin) \
            if settings.key_backend == "pkcs11" or settings.pkcs11_module else None
        self.keys = KeyRing(self.db, self.sealer, retire_after=longest + settings.key_retire_grace, clock=clock,
                            backend=settings.key_backend, hsm=self.hsm)
        # Open every stored key first: a wrong master key is refused before it is registered or
        # anything is derived from it.
        self.keys.jwks()
        self.sealer.start()
        self.stable = StableSecrets(self.db, self.sealer, clock).ensure()  # keys/stable.py: survive master rotation
        self.keys.ensure()
        # The audit chain is keyed outside the database, its checkpoints signed by the ring.
        checkpoints = Checkpoints(self.keys, settings.issuer, settings.default_signing_alg,
                                  every=settings.audit_checkpoint_every, seconds=settings.audit_checkpoint_seconds)
        self.audit = AuditLog(self.db, AuditKeys.from_settings(settings.audit_key, settings.audit_previous_keys, self.master),
                              checkpoints)
        self.events.subscribe(self.audit.append)
        self.signing_keys = KeyAdministration(self.keys, self.events)  # keys/service.py: the CLI's and admin API's key operations
        # URLs clients and upstream providers choose are fetched under one policy (safe_fetch.py).
        self.fetch_policy = FetchPolicy.allowing(settings.fetch_allowed_networks, loopback=settings.demo)
        self.outbound = ResilientHttp(name="client metadata", policy=self.fetch_policy, max_bytes=MAX_DOCUMENT_BYTES,
                                      negative_ttl=NEGATIVE_TTL, breaker_per_host=True)
        self.clients = ClientRegistry(self.db, SecretHasher(self.stable["client-secret"]), outbound=self.outbound)
        self.resources = ResourceRegistry(self.db, settings.issuer)  # agency APIs (RFC 8707), idp/oidc/resources.py
        self.people = People(self.db, self.events, self.stable["pairwise-subject"], clock,
                             passwords=password_hasher(settings.password_memory_kib, settings.password_time_cost,
                                                       settings.password_parallelism), sealer=self.sealer)
        from idp.identity.people import AttributeCache

        self.people.cache = AttributeCache.for_database(self.db, self.store)  # UserInfo without a database join per request
        self.tokens = TokenService(settings, self.db, self.store, self.keys, self.events, clock,
                                   person_key=self.stable["access-token-person"], clients=self.clients)
        # One throttle service for every secret check and every message sent (idp/store/throttle.py).
        self.throttle = Throttle(self.store, settings)
        from idp.login.session import Sessions

        self.sessions = Sessions(self.store, settings.sso_session_ttl, clock, idle_ttl=settings.sso_idle_ttl or None)
        from idp.oidc.logout import BackchannelLogout

        self.backchannel = BackchannelLogout(self)  # back-channel logout outbox (idp/oidc/logout.py)
        self.connectors = ConnectorRegistry(self.db, self.store, settings.issuer, clock, throttle=self.throttle, sealer=self.sealer,
                                            fetch_policy=self.fetch_policy)
        from idp.account.browsers import Places

        self.places = Places(settings.geoip_database)  # the account page's approximate place of a session
        self.scopes_supported = STANDARD_SCOPES
        self.csrf_key = self.stable["csrf"]
        self._client_keys: dict[str, tuple[int, KeySet]] = {}
        self._released_until: dict[str, float] = {}  # release markers known present (release_claims_async)
        from idp.oidc.server import build_server

        self.server = build_server(self)

    # ---- grants and consent ----------------------------------------------------------------

    @property
    def works_in_memory(self) -> bool:
        """Every lookup of the hot paths is this process's memory (the embedded default): their
        handlers run on the event loop, without a threadpool hop that cost twice their work. On
        Redis a lookup is a round trip, which must not stall the loop: they keep the threadpool."""
        return isinstance(self.store, MemoryStore)

    def ensure_grant(self, ctx: Any, client: ClientModel, scope: str) -> None:
        """The grant row is created when its first token is issued (code redemption); one that is
        there already is left as it is. One INSERT … ON CONFLICT DO NOTHING on the Core
        connection: the ORM's read-then-add took ~470 µs of a sign-in, this ~80."""
        revoked = self.tokens.grant_is_revoked(ctx.grant_id)  # a replayed code revoked it before its row existed
        now = self.clock()
        with self.db.engine.begin() as c:
            c.execute(self._insert_grant, {
                "id": ctx.grant_id, "client_id": client.client_id, "person_id": ctx.person_id, "scope": scope, "sid": ctx.sid,
                "auth_time": ctx.auth_time, "acr": ctx.acr, "amr": list(ctx.amr or []), "methods": list(ctx.methods),
                "created_at": now, "revoked_at": now if revoked else None, "revoked_reason": "code_replayed" if revoked else None,
            })

    @functools.cached_property
    def _insert_grant(self) -> Any:
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        return dialect_insert(Grant.__table__).on_conflict_do_nothing(index_elements=["id"])

    def still_valid_at_sources(self, grant: Grant) -> bool:
        """At each refresh, ask the sources the person signed in with whether they are still
        valid there (Dex-style): a staff account disabled in the directory, a person the
        registry now lists as deceased... ends the grant. An unreachable source does not
        (fail open, audited): a directory outage must not log out every agency app."""
        from connectors.base import ConnectorError, Gone, NotAllowed, RefreshingConnector
        from idp.identity import status as id_status

        if not grant.person_id:
            return True
        try:
            # The registry is the authority on the ID whatever the method the grant came from.
            id_status.check_person(self, grant.person_id)
        except NotAllowed as err:
            self.tokens.revoke_grant(grant.id, f"person:{err.code}"[:64], client_id=grant.client_id, person_id=grant.person_id)
            return False
        if not grant.methods:
            return True
        links = {link.connector_id: link for link in self.people.links(grant.person_id)}
        for method in grant.methods:
            entry = self.connectors.entry(method)
            link = links.get(method)
            if entry is None or link is None or not isinstance(entry.instance, RefreshingConnector):
                continue
            try:
                result = entry.instance.refresh(link.subject, dict(link.connector_data or {}))
            except ConnectorError as err:
                self.events.emit("token.failed", person_id=grant.person_id, client_id=grant.client_id,
                                 data={"reason": "source_unreachable_at_refresh", "connector": method, "error": err.code})
                continue
            if isinstance(result, Gone):
                self.tokens.revoke_grant(grant.id, f"source_gone:{method}:{result.reason}"[:64], client_id=grant.client_id,
                                         person_id=grant.person_id)
                return False
        return True

    def consented_scopes(self, person_id: str, client_id: str) -> set[str]:
        with self.db.session() as s:
            row = s.get(Consent, (person_id, client_id))
            return set(row.scopes.split()) if row else set()

    def record_consent(self, person_id: str, client_id: str, scopes: set[str]) -> None:
        with self.db.session() as s:
            row = s.get(Consent, (person_id, client_id))
            if row is None:
                s.add(Consent(person_id=person_id, client_id=client_id, scopes=" ".join(sorted(scopes)), granted_at=self.clock()))
            else:
                row.scopes = " ".join(sorted(set(row.scopes.split()) | scopes))
                row.granted_at = self.clock()
        self.events.emit("consent.granted", person_id=person_id, client_id=client_id, data={"scopes": sorted(scopes)})

    def revoke_consent(self, person_id: str, client_id: str, *, ip: str | None = None) -> None:
        with self.db.session() as s:
            row = s.get(Consent, (person_id, client_id))
            if row is not None:
                s.delete(row)
            grants = s.scalars(select(Grant.id).where(Grant.person_id == person_id, Grant.client_id == client_id, Grant.revoked_at.is_(None))).all()
        for gid in grants:
            self.tokens.revoke_grant(gid, "consent_revoked", client_id=client_id, person_id=person_id)
        self.events.emit("consent.revoked", person_id=person_id, client_id=client_id, ip=ip)

    def release_claims(self, person_id: str, client_id: str, claims: list[str], channel: str) -> None:
        """Access log for the citizen. Identical releases within 5 minutes are one entry, so a
        polling app does not flood the citizen's history (and the database)."""
        marker = self._release_marker(person_id, client_id, claims, channel)
        if self.store.add(marker, 1, self.RELEASE_WINDOW):
            from idp.events import if_not_recorded

            if_not_recorded(lambda: self.store.delete(marker))  # the release's event awaited on the event loop
            try:
                self.events.emit("claims.released", person_id=person_id, client_id=client_id,
                                 data={"claims": sorted(claims), "channel": channel})
            except BaseException:
                self.store.delete(marker)  # not recorded: the next release must record itself
                raise

    async def release_claims_async(self, person_id: str, client_id: str, claims: list[str], channel: str) -> None:
        """`release_claims` on the event loop: the marker set and, when this call set it, the
        event committed before the caller answers; a release not recorded clears its marker."""
        from idp.events import deferred_audit

        marker = self._release_marker(person_id, client_id, claims, channel)
        now = time.monotonic()
        if self._released_until.get(marker, 0.0) > now:
            return  # this worker knows the marker is there: the store would refuse it
        if not await self.store.aadd(marker, 1, self.RELEASE_WINDOW):
            # Set by another worker, expiring when we cannot tell: asked again in a few seconds.
            self._remember_release(marker, now + self.RELEASE_SEEN)
            return
        try:
            with deferred_audit() as audit:
                self.events.emit("claims.released", person_id=person_id, client_id=client_id,
                                 data={"claims": sorted(claims), "channel": channel})
            await audit.committed()
        except BaseException:
            await self.store.adelete(marker)  # not recorded: the next release must record itself
            raise
        self._remember_release(marker, now + self.RELEASE_WINDOW - 1)

    # A polling app's identical releases are one access-log entry per window: the marker this
    # worker set is known to be there until it expires, and one set by another worker for a few
    # seconds, so a steady poll costs the store nothing (the window may stretch by that much).
    RELEASE_WINDOW = 300
    RELEASE_SEEN = 5

    @staticmethod
    def _release_marker(person_id: str, client_id: str, claims: list[str], channel: str) -> str:
        digest = hashlib.sha256("|".join(sorted(claims)).encode()).hexdigest()[:16]
        return f"released:{person_id}:{client_id}:{channel}:{digest}"

    def _remember_release(self, marker: str, until: float) -> None:
        if len(self._released_until) >= 100_000:
            self._released_until.clear()
        self._released_until[marker] = until

    def client_keys(self, client: ClientModel) -> KeySet:
        """A private_key_jwt client's public keys, from its metadata (jwks) or its jwks_uri,
        fetched under the fetch policy (a refusal is audited; the caller answers invalid_client)."""
        md = client.metadata
        if md.get("jwks"):
            return KeySet.import_key_set(md["jwks"])
        uri = md.get("jwks_uri")
        cached = self._client_keys.get(client.client_id)
        if cached and time.monotonic() - cached[0] < 300:
            return cached[1]
        try:
            document = fetch_json(self.outbound, uri, "jwks_uri")
        except FetchRefused as exc:
            self.events.emit("fetch.refused", client_id=client.client_id, data={"field": "jwks_uri", "url": uri, "reason": str(exc)[:300]})
            raise
        ks = KeySet.import_key_set(document)
        self._client_keys[client.client_id] = (int(time.monotonic()), ks)
        return ks


SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     # No form-action: Chromium applies it to the redirect after a form POST, and a native app's
     # private-use scheme (RFC 8252 §7.1) cannot be listed in advance.
     b"frame-ancestors 'none'; default-src 'self'; img-src 'self' data:; style-src 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


# RFC 6797: once seen over https, browsers refuse plain http to the host and its subdomains.
HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """Framing forbidden everywhere (clickjacking on login/consent), no sniffing, no referrer,
    HSTS when the issuer is https. A plain ASGI middleware: no per-request task or body copy on
    the hot paths."""

    def __init__(self, app: Any, hsts: bool = False) -> None:
        self.app = app
        self.headers = SECURITY_HEADERS + ([HSTS_HEADER] if hsts else [])

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        qs = scope.get("query_string", b"")
        if not qs.isascii():  # raw non-ASCII bytes: percent-encode them so every layer parses (and refuses) alike
            scope = dict(scope, query_string=re.sub(rb"[\x80-\xff]", lambda m: b"%%%02X" % m.group()[0], qs))

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in self.headers if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None, *, nixa: Nixa | None = None) -> FastAPI:
    settings = settings or Settings()
    nixa = nixa or Nixa(settings)
    # No OpenTelemetry from FastAPI: NIXA's figures are its own Prometheus metrics (idp/ops.py),
    # and the telemetry check cost every request three environment lookups.
    app = FastAPI(title="NIXA", docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.nixa = nixa

    from idp.login.routes import router as login_router
    from idp.oidc.endpoints import router as oidc_router
    from idp.oidc.params import BadRequest

    app.include_router(oidc_router)
    app.include_router(login_router)
    from idp.login.federated import router as federated_router

    app.include_router(federated_router)
    from idp.login.totp import router as totp_router

    app.include_router(totp_router)
    from idp.login.passkey_routes import router as passkey_router

    app.include_router(passkey_router)
    from idp.account.routes import router as account_router

    app.include_router(account_router)
    from idp.account.second_factors import router as second_factors_router

    app.include_router(second_factors_router)
    if nixa.settings.demo:  # the sandbox's developer pages exist only in the demo
        from idp.demo.sandbox import router as sandbox_router

        app.include_router(sandbox_router)
    # The admin API (its own OpenAPI document) and dynamic client registration (admin/).
    from admin.api import create_admin_api
    from admin.auth import API_PATH, register_admin_resource
    from admin.registration import router as registration_router

    register_admin_resource(nixa)
    app.include_router(registration_router)
    app.mount(API_PATH, create_admin_api(nixa))
    from admin.console import router as console_router  # the admin web console, over the same services

    app.include_router(console_router)
    from idp.hot import HotPaths
    from idp.oidc.endpoints import hot

    app.add_middleware(HotPaths, routes=hot)  # innermost: inside the security headers and the request context
    app.add_middleware(SecurityHeaders, hsts=nixa.settings.issuer.startswith("https://"))
    from pathlib import Path

    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")

    @app.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest) -> Response:
        headers = {"Cache-Control": "no-store"}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="nixa"'  # RFC 6749 §5.2
        return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status, headers=headers)

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # An unknown path or method: JSON for API callers, a page in the person's language for
        # browsers (never FastAPI's bare {"detail": ...} on a national service's site).
        api = request.url.path in API_PATHS or request.url.path.startswith("/.well-known")
        if api:
            error = "invalid_request" if exc.status_code == 405 else "not_found"
            return JSONResponse({"error": error, "error_description": str(exc.detail)}, status_code=exc.status_code,
                                headers={"Cache-Control": "no-store", **(exc.headers or {})})  # a 405's Allow (RFC 9110 §15.5.6)
        from idp.login.pages import message, translator

        key = "error_not_found" if exc.status_code == 404 else "error_bad_request"
        return message(request, translator(request), key, exc.status_code, detail=str(exc.detail))

    from starlette.requests import ClientDisconnect

    @app.exception_handler(ClientDisconnect)
    async def _disconnected(request: Request, exc: ClientDisconnect) -> Response:
        # The client went away mid-request (half-open connections, a flood of them): nobody is
        # there to answer, and it is no bug. One info line, no traceback; handled here, inside
        # the app, so the server does not log it as an unhandled error either.
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return Response(status_code=400)

    from redis.exceptions import ConnectionError as RedisDown, ReadOnlyError as RedisReadOnly, TimeoutError as RedisSlow
    from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as PoolExhausted

    async def _dependency_down(request: Request, exc: Exception) -> Response:
        # The database or the ephemeral store not answering is an outage, not a bug: 503 with
        # Retry-After and a page that says so. Handled here rather than by the catch-all below,
        # so the server keeps the connection open for the client's next, unrelated request.
        from idp.oidc.errors import note, refusal

        from keys.pkcs11 import HsmProblem

        # The HSM's own words say which key or session failed (never a secret); the others' type is enough.
        log.warning("dependency unavailable on %s %s: %s", request.method, request.url.path,
                    f"HsmProblem: {exc}" if isinstance(exc, HsmProblem) else type(exc).__name__)
        note("temporarily_unavailable")  # audited with its reference, when the audit itself can be written (idp/ops.py)
        headers = {"Retry-After": "5", "Cache-Control": "no-store"}
        if request.url.path in API_PATHS or request.url.path.startswith("/.well-known"):
            return JSONResponse({"error": "temporarily_unavailable", "error_description": refusal("temporarily_unavailable").text()},
                                status_code=503, headers=headers)
        from idp.login.pages import message, translator

        response = message(request, translator(request), "error_unavailable", 503)
        response.headers.update(headers)
        return response

    # RedisReadOnly: the address written to is a replica for a moment (a failover under way).
    from keys.pkcs11 import HsmProblem

    # HsmProblem: the token unreachable, its session ended, or a signing key gone from it behind
    # NIXA's back (an operator then revokes it: `nixa keys revoke`): no signature, so no answer.
    for outage in (RedisDown, RedisSlow, RedisReadOnly, OperationalError, InterfaceError, PoolExhausted, HsmProblem):
        app.add_exception_handler(outage, _dependency_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # A bug, not bad input (bad input is answered before this). The person gets a page in
        # their language, an API caller an OAuth `server_error`; the details go to the log only.
        if isinstance(exc, ClientDisconnect):  # raised outside a route (middleware, body read)
            return await _disconnected(request, exc)
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        # Outside the request-id middleware (Starlette answers a bug last): the reference and its
        # audit event are added here, by the same Refusals (idp/ops.py).
        from starlette.concurrency import run_in_threadpool

        from idp.oidc.errors import refusal
        from idp.ops import SCOPE_KEY, request_id

        rid = request.scope.get(SCOPE_KEY)
        token = request_id.set(rid)
        try:
            await run_in_threadpool(nixa.refusals.audit, request.scope, 500, "server_error", {"reason": "server_error"})
            headers = {"Cache-Control": "no-store", **({"X-Request-Id": rid} if rid else {})}
            api = request.url.path in API_PATHS or request.url.path.startswith("/.well-known")
            if api:
                return JSONResponse({"error": "server_error", "error_description": refusal("server_error").text(), "request_id": rid},
                                    status_code=500, headers=headers)
            from idp.login.pages import message, translator

            response = message(request, translator(request), "error_internal", 500)
            if rid:
                response.headers["X-Request-Id"] = rid
            return response
        finally:
            request_id.reset(token)

    from idp.ops import install as install_ops

    install_ops(app, nixa)  # request ids, /healthz, /readyz, /metrics (idp/ops.py)
    return app
