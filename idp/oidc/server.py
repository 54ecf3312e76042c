"""Authlib's AuthorizationServer bound to Starlette, with NIXA's storage and tokens behind its
hooks. Authlib's calls are synchronous: endpoints read the body on the event loop, then run
the server in the threadpool."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc.jwk import KeySet
from starlette.responses import JSONResponse, Response

from idp.oidc.clients import ClientModel
from idp.oidc.tokens import InvalidToken, token_hash

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", JWTBearerClientAssertion.CLIENT_AUTH_METHOD]
CONFIDENTIAL_METHODS = ["client_secret_basic", "client_secret_post", JWTBearerClientAssertion.CLIENT_AUTH_METHOD]


# ---- requests ---------------------------------------------------------------------------


class ParamsPayload(OAuth2Payload):
    def __init__(self, params: dict[str, str]) -> None:
        self._data = params
        self._datalist = defaultdict(list, {k: [v] for k, v in params.items()})

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list]:
        return self._datalist


class NixaRequest(OAuth2Request):
    """An OAuth2Request over already-parsed, already-sanitized parameters."""

    def __init__(self, method: str, uri: str, headers: Any, form: dict[str, str] | None = None, query: dict[str, str] | None = None,
                 remote_addr: str | None = None) -> None:
        # Transport security is enforced by the deployment (https issuer, proxy); tests and the
        # demo run on loopback http, so Authlib's own https check is bypassed here.
        self.method = method
        self.uri = uri
        self.headers = headers or {}
        self._body = None
        self.client = None
        self.auth_method = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None
        self._form = form or {}
        self._query = query or {}
        self.remote_addr = remote_addr
        self.payload = ParamsPayload({**self._query, **self._form})

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form


# ---- what Authlib carries through a grant ----------------------------------------------------


@dataclass
class AuthContext:
    """The authenticated person behind a grant, with how and when they authenticated."""

    person_id: str
    grant_id: str
    sid: str | None = None
    auth_time: float | None = None
    acr: str | None = None
    amr: list[str] = field(default_factory=list)
    nonce: str | None = None
    claims_request: dict | None = None
    methods: list[str] = field(default_factory=list)


@dataclass
class StoredCode:
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    context: AuthContext

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.context.nonce

    def get_auth_time(self) -> float | None:
        return self.context.auth_time

    def get_acr(self) -> str | None:
        return self.context.acr

    def get_amr(self) -> list[str]:
        return self.context.amr


@dataclass
class StoredRefresh:
    row: Any
    grant: Any

    def check_client(self, client: ClientModel) -> bool:
        return self.row.client_id == client.client_id

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return int(self.row.expires_at - time.time())

    def is_expired(self) -> bool:
        return self.row.expires_at <= time.time()

    def is_revoked(self) -> bool:
        return self.row.rotated_at is not None or self.grant is None or self.grant.revoked_at is not None


@dataclass
class TokenRef:
    """Either kind of token as introspection and revocation see it."""

    kind: str  # access_token | refresh_token
    client_id: str
    claims: dict[str, Any] | None = None
    refresh: StoredRefresh | None = None
    revoked: bool = False

    def check_client(self, client: ClientModel) -> bool:
        return self.client_id == client.client_id

    def is_expired(self) -> bool:
        if self.refresh is not None:
            return self.refresh.is_expired()
        return float((self.claims or {}).get("exp", 0)) <= time.time()

    def is_revoked(self) -> bool:
        if self.refresh is not None:
            return self.refresh.is_revoked()
        return self.revoked

    def get_scope(self) -> str:
        return self.refresh.get_scope() if self.refresh else str((self.claims or {}).get("scope", ""))


# ---- the server ---------------------------------------------------------------------------


class NixaAuthorizationServer(AuthorizationServer):
    def __init__(self, nixa: Any) -> None:
        super().__init__(scopes_supported=nixa.scopes_supported)
        self.nixa = nixa
        self.register_token_generator("default", self._generate_token)

    # hooks Authlib asks the framework for
    def query_client(self, client_id: str) -> ClientModel | None:
        return self.nixa.clients.get(client_id)

    def save_token(self, token: dict, request: OAuth2Request) -> None:
        """Tokens are persisted as they are generated (see _generate_token)."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        raise TypeError("NIXA builds NixaRequest objects before calling the server")

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]] | dict) -> Response:
        headers = dict(headers or {})
        if isinstance(body, dict):
            headers.pop("Content-Type", None)
            if status >= 400 or "access_token" in body:
                headers.setdefault("Cache-Control", "no-store")
                headers.setdefault("Pragma", "no-cache")
            return JSONResponse(body, status_code=status, headers=headers)
        return Response(body or b"", status_code=status, headers=headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def validate_requested_scope(self, scope: str | None) -> None:
        # Unknown scopes are dropped, not refused (OIDC Core §3.1.2.1: "Scope values used that
        # are not understood by an implementation SHOULD be ignored").
        return None

    # the one token generator: every grant goes through it
    def _generate_token(self, grant_type: str, client: ClientModel, user: AuthContext | None = None, scope: str | None = None,
                        expires_in: int | None = None, include_refresh_token: bool = True) -> dict:
        nixa = self.nixa
        scope = scope or ""
        token: dict[str, Any] = {"token_type": "Bearer"}
        if user is None:
            access, ttl = nixa.tokens.issue_access_token(client_id=client.client_id, sub=client.client_id, scope=scope, grant_id=None,
                                                         person_id=None)
            nixa.events.emit("token.issued", client_id=client.client_id, data={"grant_type": grant_type, "scope": scope})
        else:
            nixa.ensure_grant(user, client, scope)
            sub = nixa.people.subject_for(user.person_id, client)
            access, ttl = nixa.tokens.issue_access_token(
                client_id=client.client_id, sub=sub, scope=scope, grant_id=user.grant_id, person_id=user.person_id,
                auth_time=user.auth_time, acr=user.acr, amr=user.amr,
            )
            if include_refresh_token and "offline_access" in scope.split():
                token["refresh_token"] = nixa.tokens.issue_refresh_token(grant_id=user.grant_id, client_id=client.client_id, scope=scope)
            nixa.events.emit("token.issued", person_id=user.person_id, client_id=client.client_id,
                             data={"grant_type": grant_type, "scope": scope, "grant_id": user.grant_id})
        token["access_token"] = access
        token["expires_in"] = ttl
        token["scope"] = scope
        return token


# ---- grants -------------------------------------------------------------------------------------


class NixaCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        nixa = self.server.nixa
        ctx: AuthContext = request.user
        payload = request.payload.data
        nixa.store.put(
            f"code:{token_hash(code)}",
            {
                "client_id": request.client.client_id,
                "redirect_uri": payload.get("redirect_uri"),
                "scope": request.scope or "",
                "code_challenge": payload.get("code_challenge"),
                "code_challenge_method": payload.get("code_challenge_method") or ("S256" if payload.get("code_challenge") else None),
                "ctx": ctx.__dict__,
            },
            nixa.settings.code_ttl,
        )

    def query_authorization_code(self, code: str, client: ClientModel) -> StoredCode | None:
        nixa = self.server.nixa
        if not isinstance(code, str) or len(code) > 512:
            return None
        key = token_hash(code)
        data = nixa.store.take(f"code:{key}")
        if data is None:
            used = nixa.store.get(f"code-used:{key}")
            if used:
                # RFC 6749 §4.1.2: a code used twice revokes what it issued.
                nixa.events.emit("code.replayed", client_id=client.client_id, person_id=used.get("person_id"),
                                 data={"grant_id": used["grant_id"]})
                nixa.tokens.revoke_grant(used["grant_id"], "code_replayed", client_id=client.client_id, person_id=used.get("person_id"))
            return None
        ctx = AuthContext(**data["ctx"])
        nixa.store.put(f"code-used:{key}", {"grant_id": ctx.grant_id, "person_id": ctx.person_id}, max(600, nixa.settings.code_ttl * 10))
        if data["client_id"] != client.client_id:
            return None  # bound to the client it was issued to
        return StoredCode(data["client_id"], data["redirect_uri"], data["scope"], data["code_challenge"], data["code_challenge_method"], ctx)

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Already gone: query_authorization_code took it atomically."""

    def authenticate_user(self, authorization_code: StoredCode) -> AuthContext:
        return authorization_code.context


class NixaCodeChallenge(CodeChallenge):
    # RFC 9700 §2.1.1: S256 only; `plain` is refused.
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"


class NixaOpenIDCode:
    """ID token on the code grant (and on refresh), signed by the key ring."""

    def __call__(self, grant: grants.BaseGrant) -> None:
        grant.register_hook("after_create_token_response", self.process_token)

    def process_token(self, grant: grants.BaseGrant, response: tuple) -> None:
        _, token, _ = response
        if "openid" not in str(token.get("scope", "")).split():
            return
        request = grant.request
        ctx: AuthContext = request.user
        client: ClientModel = request.client
        nixa = grant.server.nixa
        is_code = request.payload.grant_type == "authorization_code"
        token["id_token"] = nixa.tokens.issue_id_token(
            client_id=client.client_id,
            sub=nixa.people.subject_for(ctx.person_id, client),
            alg=client.signing_alg,
            nonce=ctx.nonce if is_code else None,
            auth_time=ctx.auth_time,
            acr=ctx.acr,
            amr=ctx.amr,
            sid=ctx.sid,
            access_token=token.get("access_token"),
        )
        nixa.release_claims(ctx.person_id, client.client_id, ["sub", "acr", "amr", "auth_time"], "id_token")


class NixaRefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every use returns a new refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefresh | None:
        nixa = self.server.nixa
        found = nixa.tokens.find_refresh_token(refresh_token)
        if found is None:
            return None
        row, grant = found
        if grant is None or grant.revoked_at is not None or row.expires_at <= time.time():
            return None
        if row.rotated_at is not None:
            self._reuse_detected(row, grant)
            return None
        if not nixa.still_valid_at_sources(grant):
            return None
        return StoredRefresh(row, grant)

    def _reuse_detected(self, row: Any, grant: Any) -> None:
        nixa = self.server.nixa
        nixa.events.emit("refresh.reused", client_id=row.client_id, person_id=grant.person_id, data={"grant_id": grant.id})
        nixa.tokens.revoke_grant(grant.id, "refresh_token_reused", client_id=row.client_id, person_id=grant.person_id)

    def authenticate_user(self, refresh_token: StoredRefresh) -> AuthContext:
        nixa = self.server.nixa
        if not nixa.tokens.mark_rotated(refresh_token.row.token_hash):
            # Lost a race with another use of the same token: that is reuse too.
            self._reuse_detected(refresh_token.row, refresh_token.grant)
            raise InvalidGrantError("The refresh token was already used.")
        g = refresh_token.grant
        return AuthContext(person_id=g.person_id, grant_id=g.id, sid=g.sid, auth_time=g.auth_time, acr=g.acr, amr=list(g.amr or []),
                           methods=list(g.methods or []))

    def issue_token(self, user: AuthContext, refresh_token: StoredRefresh) -> dict:
        scope = self.request.payload.scope or refresh_token.get_scope()
        # The new refresh token keeps the grant's original scope (a narrower request narrows
        # only this access token).
        token = self.generate_token(user=user, scope=scope, include_refresh_token=False)
        token["refresh_token"] = self.server.nixa.tokens.issue_refresh_token(
            grant_id=user.grant_id, client_id=self.request.client.client_id, scope=refresh_token.get_scope()
        )
        return token

    def revoke_old_credential(self, refresh_token: StoredRefresh) -> None:
        """Done atomically in authenticate_user."""


class NixaClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_METHODS


# ---- client authentication: private_key_jwt ----------------------------------------------------------


class NixaClientAssertion(JWTBearerClientAssertion):
    """RFC 7523 §2.2 / OIDC Core §9 private_key_jwt with jti replay protection."""

    def __init__(self, nixa: Any) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.nixa = nixa

    def get_audiences(self) -> list[str]:
        issuer = self.nixa.settings.issuer
        return [issuer, f"{issuer}/token", f"{issuer}/par", f"{issuer}/introspect", f"{issuer}/revoke"]

    def validate_jti(self, claims: dict, jti: str) -> bool:
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            return False
        exp = claims.get("exp")
        ttl = max(60.0, float(exp) - time.time() + 60) if isinstance(exp, (int, float)) else 3600.0
        return self.nixa.store.add(f"jti:{claims['sub']}:{jti}", 1, min(ttl, 86400))

    def resolve_client_public_key(self, client: ClientModel) -> KeySet:
        from authlib.oauth2.rfc6749 import InvalidClientError

        # Only a client registered for private_key_jwt has keys; anything else (or an
        # unreachable jwks_uri) is an authentication failure, not a 500.
        if client.metadata.get("token_endpoint_auth_method") != "private_key_jwt":
            raise InvalidClientError(description="This client does not authenticate with private_key_jwt.")
        try:
            return self.nixa.client_keys(client)
        except Exception as exc:
            raise InvalidClientError(description="The client's keys cannot be obtained.") from exc

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        from joserfc import jwt
        from joserfc.errors import JoseError

        from authlib.oauth2.rfc6749 import InvalidClientError

        # Only asymmetric algorithms: an HS256 assertion keyed with a public key is refused.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=["RS256", "PS256", "ES256", "EdDSA"])
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidClientError(description="Invalid client assertion.") from exc
        self.verify_claims(token.claims)
        return token.claims


# ---- introspection and revocation ----------------------------------------------------------------


def _find_token(nixa: Any, value: str, hint: str | None) -> TokenRef | None:
    if not isinstance(value, str) or not value or len(value) > 8192:
        return None
    order = ["refresh_token", "access_token"] if hint == "refresh_token" else ["access_token", "refresh_token"]
    for kind in order:
        if kind == "access_token" and value.count(".") == 2:
            try:
                info = nixa.tokens.validate_access_token(value)
                return TokenRef("access_token", info.client_id, claims=info.claims)
            except InvalidToken:
                continue
        if kind == "refresh_token" and value.count(".") == 0:
            found = nixa.tokens.find_refresh_token(value)
            if found:
                return TokenRef("refresh_token", found[0].client_id, refresh=StoredRefresh(*found))
    return None


class NixaIntrospection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRef | None:
        return _find_token(self.server.nixa, token_string, token_type_hint)

    def check_permission(self, token: TokenRef, client: ClientModel, request: OAuth2Request) -> bool:
        # A client may introspect its own tokens; an agency resource server is registered as a
        # client that was issued the token's audience. Anything else reads as inactive.
        return token.client_id == client.client_id or bool(client.metadata.get("nixa_first_party"))

    def introspect_token(self, token: TokenRef) -> dict:
        nixa = self.server.nixa
        if token.refresh is not None:
            row, grant = token.refresh.row, token.refresh.grant
            client = nixa.clients.get(row.client_id)
            return {
                "active": True,
                "token_type": "refresh_token",
                "client_id": row.client_id,
                "scope": row.scope,
                "sub": nixa.people.subject_for(grant.person_id, client) if client and grant.person_id else None,
                "exp": int(row.expires_at),
                "iat": int(row.issued_at),
                "iss": nixa.settings.issuer,
            }
        claims = token.claims or {}
        out = {"active": True, "token_type": "Bearer"}
        for name in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "acr", "auth_time"):
            if name in claims:
                out[name] = claims[name]
        return out


class NixaRevocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def authenticate_token(self, request: OAuth2Request, client: ClientModel) -> TokenRef | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token and not token.check_client(client):
            # RFC 7009 §2.1: a client may revoke only tokens issued to it.
            raise UnauthorizedClientError("The token was not issued to this client.")
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRef | None:
        return _find_token(self.server.nixa, token_string, token_type_hint)

    def revoke_token(self, token: TokenRef, request: OAuth2Request) -> None:
        nixa = self.server.nixa
        if token.refresh is not None:
            # Revoking a refresh token ends the grant, and with it the access tokens (RFC 7009 §2.1).
            grant = token.refresh.grant
            nixa.tokens.revoke_grant(grant.id, "revoked_by_client", client_id=token.client_id, person_id=grant.person_id)
        else:
            nixa.tokens.revoke_access_token(token.claims or {})
        nixa.events.emit("token.revoked", client_id=token.client_id, data={"kind": token.kind})


def build_server(nixa: Any) -> NixaAuthorizationServer:
    server = NixaAuthorizationServer(nixa)
    server.register_client_auth_method(JWTBearerClientAssertion.CLIENT_AUTH_METHOD, NixaClientAssertion(nixa))
    server.register_grant(NixaCodeGrant, [NixaCodeChallenge(required=True), NixaOpenIDCode()])
    server.register_grant(NixaRefreshGrant, [NixaOpenIDCode()])
    server.register_grant(NixaClientCredentialsGrant)
    server.register_endpoint(NixaIntrospection)
    server.register_endpoint(NixaRevocation)
    return server


__all__ = ["AuthContext", "NixaRequest", "build_server", "InvalidRequestError"]
