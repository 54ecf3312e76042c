"""The grants (code + PKCE + ID token, refresh with rotation, client credentials) and
private_key_jwt client authentication, with NIXA's storage behind Authlib's hooks."""

from __future__ import annotations

import time
from typing import Any

from authlib.oauth2.rfc6749 import (
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from joserfc.jwk import KeySet

from idp.oidc.clients import ClientModel
from idp.oidc.errors import refuse
from idp.oidc.resources import parse_resources
from idp.oidc.tokens import token_hash
from idp.oidc.protocol import AuthContext, StoredCode, StoredRefresh

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", JWTBearerClientAssertion.CLIENT_AUTH_METHOD]
CONFIDENTIAL_METHODS = ["client_secret_basic", "client_secret_post", JWTBearerClientAssertion.CLIENT_AUTH_METHOD]


# ---- grants -------------------------------------------------------------------------------------


class ResourceIndicators:
    """RFC 8707 at /token, shared by every grant: `resource` (else everything granted) is
    resolved against what the grant allows before any token is issued, and the token is issued
    for that target only."""

    def validate_token_request(self) -> None:
        super().validate_token_request()  # the grant's own checks first: client, code or refresh token
        self.resolve_target()

    def granted_resources(self) -> list[str] | None:
        """What an earlier authorization granted; None when there was none (client_credentials)."""
        return None

    def resolve_target(self) -> None:
        request = self.request
        resources = parse_resources(request.form.get("resource"))
        request.target = self.server.nixa.resources.target(resources, self.granted_resources())

    def generate_token(self, user: AuthContext | None = None, scope: str | None = None, grant_type: str | None = None,
                       expires_in: int | None = None, include_refresh_token: bool = True) -> dict:
        self.request.grant_scope = scope or ""
        return self.server.issue_tokens(grant_type or self.GRANT_TYPE, self.request.client, user, scope, self.request.target,
                                        granted_resources=self.granted_resources(), include_refresh_token=include_refresh_token)


class NixaCodeGrant(ResourceIndicators, grants.AuthorizationCodeGrant):
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
                "code_challenge_method": payload.get("code_challenge_method"),
                "resources": parse_resources(payload.get("resource")),  # checked at /authorize
                "ctx": ctx.__dict__,
            },
            ttl := nixa.tokens.lifetime("code_ttl", request.client.client_id),
        )
        # Outlives the code, so a late redemption hears "expired", not "unknown" (issue 13).
        nixa.store.put(f"code-issued:{token_hash(code)}", 1, max(600, ttl * 10))

    def query_authorization_code(self, code: str, client: ClientModel) -> StoredCode | None:
        nixa = self.server.nixa
        if not isinstance(code, str) or len(code) > 512:
            raise refuse("code_unknown")
        key = token_hash(code)
        data = nixa.store.take(f"code:{key}")
        if data is None:
            used = nixa.store.get(f"code-used:{key}")
            if used:
                # RFC 6749 §4.1.2: a code used twice revokes what it issued.
                nixa.events.emit("code.replayed", client_id=client.client_id, person_id=used.get("person_id"),
                                 data={"grant_id": used["grant_id"]})
                nixa.tokens.revoke_grant(used["grant_id"], "code_replayed", client_id=client.client_id, person_id=used.get("person_id"))
                raise refuse("code_reused")
            if nixa.store.get(f"code-issued:{key}"):
                raise refuse("code_expired", ttl=nixa.tokens.lifetime("code_ttl", client.client_id))
            raise refuse("code_unknown")
        ctx = AuthContext(**data["ctx"])
        nixa.store.put(f"code-used:{key}", {"grant_id": ctx.grant_id, "person_id": ctx.person_id}, max(600, nixa.settings.code_ttl * 10))
        if data["client_id"] != client.client_id:
            # Bound to the client it was issued to (and now spent: a stolen code is worth one try).
            raise refuse("code_other_client")
        return StoredCode(data["client_id"], data["redirect_uri"], data["scope"], data["code_challenge"], data["code_challenge_method"], ctx,
                          data.get("resources") or [])

    def granted_resources(self) -> list[str]:
        return self.request.authorization_code.resources

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Already gone: query_authorization_code took it atomically."""

    def authenticate_user(self, authorization_code: StoredCode) -> AuthContext:
        return authorization_code.context


class NixaCodeChallenge(CodeChallenge):
    # RFC 9700 §2.1.1: S256 only; `plain` is refused.
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: grants.BaseGrant, redirect_uri: str) -> None:
        # The same rules as /authorize and /par (idp/login/flow.py check_pkce), again here so
        # no path to a code can skip them: RFC 7636 §4.3, no method means `plain`.
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise refuse("pkce_method_not_s256")
        if not data.get("code_challenge") and not grant.request.client.pkce_optional:
            raise refuse("pkce_required")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: grants.BaseGrant, result: Any) -> None:
        code = grant.request.authorization_code
        if code is not None and not code.code_challenge and not grant.request.client.pkce_optional:
            raise refuse("code_without_pkce")
        super().validate_code_verifier(grant, result)


class NixaOpenIDCode:
    """ID token on the code grant (and on refresh), signed by the key ring."""

    def __call__(self, grant: grants.BaseGrant) -> None:
        grant.register_hook("after_create_token_response", self.process_token)

    def process_token(self, grant: grants.BaseGrant, response: tuple) -> None:
        _, token, _ = response
        # The grant's scope, not the access token's: a token for an API carries only that API's
        # scopes, and the sign-in still yields its ID token.
        if "openid" not in str(grant.request.grant_scope or "").split():
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
            sid=nixa.people.client_sid(ctx.sid, client.client_id) if ctx.sid else None,
            access_token=token.get("access_token"),
        )
        nixa.release_claims(ctx.person_id, client.client_id, ["sub", "acr", "amr", "auth_time"], "id_token")


class NixaRefreshGrant(ResourceIndicators, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every use returns a new refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefresh | None:
        """Each way a refresh token can be refused, told apart (errors.md)."""
        nixa = self.server.nixa
        found = nixa.tokens.find_refresh_token(refresh_token)
        if found is None:
            raise refuse("refresh_unknown")
        row, grant = found
        client = self.request.client
        if client is not None and row.client_id != client.client_id:
            raise refuse("refresh_unknown")  # another client's token: nothing said about it
        if grant is None or grant.revoked_at is not None:
            raise refuse("refresh_grant_revoked")
        if row.expires_at <= nixa.clock():
            raise refuse("refresh_expired")
        if self.grant_ends_at(grant) <= nixa.clock():
            # the grant's absolute lifetime is over: the person signs in again
            raise refuse("refresh_grant_ended", limit=nixa.settings.refresh_grant_max_lifetime)
        if row.rotated_at is not None:
            self._reuse_detected(row, grant)
            raise refuse("refresh_reused")
        if not nixa.still_valid_at_sources(grant):
            raise refuse("refresh_person_refused")
        return StoredRefresh(row, grant)

    def granted_resources(self) -> list[str]:
        return list(self.request.refresh_token.row.resources or [])

    def grant_ends_at(self, grant: Any) -> float:
        return float(grant.created_at) + self.server.nixa.settings.refresh_grant_max_lifetime

    def _reuse_detected(self, row: Any, grant: Any) -> None:
        nixa = self.server.nixa
        nixa.events.emit("refresh.reused", client_id=row.client_id, person_id=grant.person_id, data={"grant_id": grant.id})
        nixa.tokens.revoke_grant(grant.id, "refresh_token_reused", client_id=row.client_id, person_id=grant.person_id)

    def authenticate_user(self, refresh_token: StoredRefresh) -> AuthContext:
        nixa = self.server.nixa
        if not nixa.tokens.mark_rotated(refresh_token.row.token_hash):
            # Lost a race with another use of the same token: that is reuse too.
            self._reuse_detected(refresh_token.row, refresh_token.grant)
            raise refuse("refresh_reused")
        g = refresh_token.grant
        return AuthContext(person_id=g.person_id, grant_id=g.id, sid=g.sid, auth_time=g.auth_time, acr=g.acr, amr=list(g.amr or []),
                           methods=list(g.methods or []))

    def issue_token(self, user: AuthContext, refresh_token: StoredRefresh) -> dict:
        scope = self.request.payload.scope or refresh_token.get_scope()
        # The new refresh token keeps the grant's original scope (a narrower request narrows
        # only this access token).
        token = self.generate_token(user=user, scope=scope, include_refresh_token=False)
        token["refresh_token"] = self.server.nixa.tokens.issue_refresh_token(
            grant_id=user.grant_id, client_id=self.request.client.client_id, scope=refresh_token.get_scope(),
            resources=self.granted_resources(), not_after=self.grant_ends_at(refresh_token.grant),
        )
        return token

    def revoke_old_credential(self, refresh_token: StoredRefresh) -> None:
        """Done atomically in authenticate_user."""


class NixaClientCredentialsGrant(ResourceIndicators, grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_METHODS

    def resolve_target(self) -> None:
        # No authorization came first: the requested scope itself must suit the resource.
        nixa, request = self.server.nixa, self.request
        request.client.check_scope(request.payload.scope)
        scope = request.client.get_allowed_scope(request.payload.scope)
        request.target = nixa.resources.for_request(request.form.get("resource"), scope, nixa.scopes_supported)

    def create_token_response(self) -> tuple:
        # The client's registered scopes bound what it gets (Authlib would pass the request's as is).
        token = self.generate_token(scope=self.request.client.get_allowed_scope(self.request.payload.scope), include_refresh_token=False)
        return 200, token, self.TOKEN_RESPONSE_HEADER


# ---- client authentication: private_key_jwt ----------------------------------------------------------


# How far ahead of ours a client's clock may run (iat, exp) before its assertion is refused.
ASSERTION_CLOCK_SKEW = 60


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class NixaClientAssertion(JWTBearerClientAssertion):
    """RFC 7523 §2.2 / OIDC Core §9 private_key_jwt, strict: `exp` at most
    `client_assertion_max_lifetime` ahead, `iat` required and not in the future, `jti` used once
    and remembered until the assertion has expired (so a replay can never outlive the cache)."""

    def __init__(self, nixa: Any) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.nixa = nixa

    def get_audiences(self) -> list[str]:
        issuer = self.nixa.settings.issuer
        return [issuer, f"{issuer}/token", f"{issuer}/par", f"{issuer}/introspect", f"{issuer}/revoke"]

    def validate_jti(self, claims: dict, jti: str) -> bool:
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            return False
        # check_lifetime has already bounded exp; the entry outlives the last instant at which
        # the assertion would still be accepted (exp + the 30 s leeway).
        ttl = float(claims["exp"]) - time.time() + ASSERTION_CLOCK_SKEW + 1
        return self.nixa.store.add(f"jti:{claims['sub']}:{jti}", 1, max(1.0, ttl))

    def check_lifetime(self, claims: dict) -> None:
        """RFC 7523 §3 leaves the lifetime to the server; the safer choice: a few minutes at most,
        `iat` required (RFC 7523 §3 item 6 allows refusing assertions without it)."""
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_number(exp):
            raise refuse("client_assertion_no_exp")
        if not _is_number(iat):
            raise refuse("client_assertion_no_iat")
        if iat > now + ASSERTION_CLOCK_SKEW:
            raise refuse("client_assertion_future_iat")
        if exp > now + self.nixa.settings.client_assertion_max_lifetime + ASSERTION_CLOCK_SKEW:
            raise refuse("client_assertion_too_long", limit=self.nixa.settings.client_assertion_max_lifetime)

    def resolve_client_public_key(self, client: ClientModel) -> KeySet:
        # Only a client registered for private_key_jwt has keys; anything else (or an
        # unreachable jwks_uri) is an authentication failure, not a 500.
        if client.metadata.get("token_endpoint_auth_method") != "private_key_jwt":
            raise refuse("client_not_private_key_jwt")
        try:
            return self.nixa.client_keys(client)
        except Exception as exc:
            raise refuse("client_keys_unavailable") from exc

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        from joserfc import jwt
        from joserfc.errors import JoseError

        # Only asymmetric algorithms: an HS256 assertion keyed with a public key is refused.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=["RS256", "PS256", "ES256", "EdDSA"])
        except (JoseError, ValueError, TypeError) as exc:
            raise refuse("client_assertion_invalid") from exc
        # Lifetime before the claims registry: the jti is remembered only once exp is bounded.
        self.check_lifetime(token.claims)
        self.verify_claims(token.claims)
        return token.claims
