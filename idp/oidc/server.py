"""Authlib's AuthorizationServer bound to Starlette, with NIXA's storage and tokens behind its
hooks. Authlib's calls are synchronous: endpoints read the body on the event loop, then run
the server in the threadpool. Grants live in grants.py, introspection/revocation in
introspection.py, the request and context types in protocol.py."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    OAuth2Request,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from starlette.responses import JSONResponse, Response

from idp.oidc.clients import ClientModel
from idp.oidc.errors import authlib_reason, note, note_client, refuse
from idp.oidc.grants import (
    NixaClientAssertion,
    NixaClientCredentialsGrant,
    NixaCodeChallenge,
    NixaCodeGrant,
    NixaOpenIDCode,
    NixaRefreshGrant,
)
from idp.oidc.introspection import NixaIntrospection, NixaRevocation
from idp.oidc.protocol import AuthContext
from idp.oidc.resources import Target


# ---- the server ---------------------------------------------------------------------------


class NixaAuthorizationServer(AuthorizationServer):
    def __init__(self, nixa: Any) -> None:
        super().__init__(scopes_supported=nixa.scopes_supported)
        self.nixa = nixa

    # hooks Authlib asks the framework for
    def query_client(self, client_id: str) -> ClientModel | None:
        return self.nixa.clients.get(client_id)

    def authenticate_client(self, request: OAuth2Request, methods: list[str], endpoint: str = "token") -> ClientModel:
        """Every endpoint that authenticates a client (/token, /introspect, /revoke, /par) comes
        through here: a client_id in the body naming another client than the one authenticated
        (by Basic credentials or an assertion) is refused, never silently ignored. Every failure
        leaves with its reason from the catalogue (idp/oidc/errors.py)."""
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as exc:
            raise self._why_not_authenticated(request, exc) from exc
        note_client(client.client_id)
        body_client_id = request.form.get("client_id")
        if body_client_id is not None and body_client_id != client.client_id:
            raise refuse("client_id_mismatch", status=401 if request.headers.get("authorization") else 400)
        return client

    def _why_not_authenticated(self, request: OAuth2Request, exc: InvalidClientError) -> Exception:
        """What the request presented against what the client is registered for; nothing about
        any other client, and never whether a secret was close."""
        from authlib.oauth2.rfc6749.util import extract_basic_authorization

        basic_id, _ = extract_basic_authorization(request.headers)
        form = request.form
        status = 401 if basic_id else exc.status_code
        if basic_id:
            presented, client_id = "client_secret_basic", basic_id
        elif form.get("client_assertion"):
            presented, client_id = "private_key_jwt", form.get("client_id")
        elif form.get("client_secret"):
            presented, client_id = "client_secret_post", form.get("client_id")
        else:
            presented, client_id = "none", form.get("client_id")
        note_client(client_id)
        if getattr(exc, "nixa_reason", None):
            return exc  # ours already (the assertion's lifetime, keys, method)
        client = self.nixa.clients.get(client_id) if client_id else None
        if client is None:
            return refuse("client_unknown", status=status)
        registered = client.metadata.get("token_endpoint_auth_method", "client_secret_basic")
        if presented == "none":
            return refuse("client_auth_missing", status=status, registered=registered)
        if presented != registered:
            return refuse("client_auth_method_mismatch", status=status, registered=registered, presented=presented)
        if presented.startswith("client_secret"):
            return refuse("client_secret_wrong", status=status)
        if str(exc.description or "").startswith("The client cannot authenticate"):
            return refuse("client_assertion_rejected", status=status)
        # Authlib's own finding about the assertion's claims (iss/sub, aud, jti used before...).
        return refuse("client_assertion_claims", status=status, detail=str(exc.description or "")[:200])

    def save_token(self, token: dict, request: OAuth2Request) -> None:
        """Tokens are persisted as they are issued (see issue_tokens)."""

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

    def handle_error_response(self, request: OAuth2Request, error: Any) -> Response:
        # Authlib's own refusals (an unsupported grant_type, a wrong code_verifier...) have no
        # reason of ours: the audit event gets Authlib's error code as its reason.
        if not getattr(error, "nixa_reason", None):
            note(authlib_reason(str(error.error), str(error.get_error_description() or "")))
        return super().handle_error_response(request, error)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def validate_requested_scope(self, scope: str | None) -> None:
        # Unknown scopes are dropped, not refused (OIDC Core §3.1.2.1: "Scope values used that
        # are not understood by an implementation SHOULD be ignored").
        return None

    # the one token issuer: every grant goes through it (grants.ResourceIndicators)
    def issue_tokens(self, grant_type: str, client: ClientModel, user: AuthContext | None, scope: str | None, target: Target, *,
                     granted_resources: list[str] | None = None, include_refresh_token: bool = True) -> dict:
        """The access token is for `target` (its `aud`, and only the scopes it accepts); the
        grant and its refresh token keep everything that was granted, to be narrowed later."""
        nixa = self.nixa
        scope = scope or ""
        token_scope = target.limit(scope)
        token: dict[str, Any] = {"token_type": "Bearer"}
        audit = {"grant_type": grant_type, "scope": token_scope, "aud": list(target.audience)}
        if user is None:
            access, ttl = nixa.tokens.issue_access_token(client_id=client.client_id, sub=client.client_id, scope=token_scope,
                                                         grant_id=None, person_id=None, aud=target.aud)
            issued(nixa, client_id=client.client_id, data=audit)
        else:
            nixa.ensure_grant(user, client, scope)
            sub = nixa.people.subject_for(user.person_id, client)
            access, ttl = nixa.tokens.issue_access_token(
                client_id=client.client_id, sub=sub, scope=token_scope, grant_id=user.grant_id, person_id=user.person_id,
                aud=target.aud, auth_time=user.auth_time, acr=user.acr, amr=user.amr,
            )
            if include_refresh_token and "offline_access" in scope.split():
                token["refresh_token"] = nixa.tokens.issue_refresh_token(
                    grant_id=user.grant_id, client_id=client.client_id, scope=scope, resources=granted_resources,
                    not_after=nixa.clock() + nixa.settings.refresh_grant_max_lifetime,
                )
            issued(nixa, person_id=user.person_id, client_id=client.client_id, data={**audit, "grant_id": user.grant_id})
        token["access_token"] = access
        token["expires_in"] = ttl
        token["scope"] = token_scope
        return token


# The token endpoint records `token.issued` only once the whole answer is made (the ID token
# and everything it writes included): a step failing after the access token must not leave
# the audit saying the client received tokens it never got.
_ISSUED: ContextVar[list[dict[str, Any]] | None] = ContextVar("nixa_tokens_issued", default=None)


def issued(nixa: Any, **event: Any) -> None:
    held = _ISSUED.get()
    if held is None:
        nixa.events.emit("token.issued", **event)
    else:
        held.append(event)


def token_response(nixa: Any, req: Any, failed: Any) -> Response:
    """/token: the answer, then its audit: `token.issued` for an answer made, `failed(response)`
    for a refusal."""
    held: list[dict[str, Any]] = []
    mark = _ISSUED.set(held)
    try:
        response = nixa.server.create_token_response(req)
    finally:
        _ISSUED.reset(mark)
    if response.status_code >= 400:
        failed(response)
    else:
        for event in held:
            nixa.events.emit("token.issued", **event)
    return response


def build_server(nixa: Any) -> NixaAuthorizationServer:
    server = NixaAuthorizationServer(nixa)
    server.register_client_auth_method(JWTBearerClientAssertion.CLIENT_AUTH_METHOD, NixaClientAssertion(nixa))
    server.register_grant(NixaCodeGrant, [NixaCodeChallenge(required=True), NixaOpenIDCode()])
    server.register_grant(NixaRefreshGrant, [NixaOpenIDCode()])
    server.register_grant(NixaClientCredentialsGrant)
    server.register_endpoint(NixaIntrospection)
    server.register_endpoint(NixaRevocation)
    return server

