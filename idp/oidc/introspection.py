"""Token introspection (RFC 7662) and revocation (RFC 7009) on Authlib's endpoints."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from idp.oidc.clients import ClientModel
from idp.oidc.errors import refuse
from idp.oidc.tokens import InvalidToken, audience_of
from idp.oidc.grants import AUTH_METHODS, CONFIDENTIAL_METHODS
from idp.oidc.protocol import StoredRefresh, TokenRef


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
        """The client the token was issued to, and the client registered for a resource server
        in the token's `aud`; nobody else, first-party or not. A refresh token is only ever
        shown to its own client. Anyone else reads the token as inactive (RFC 7662 §2.2), so a
        replayed token tells the other agency nothing, and the attempt is audited."""
        nixa = self.server.nixa
        if token.client_id == client.client_id:
            return True
        if token.claims is not None and nixa.resources.may_introspect(client.client_id, audience_of(token.claims)):
            return True
        nixa.events.emit("introspection.refused", client_id=client.client_id, ip=request.remote_addr,
                         data={"token_client_id": token.client_id, "kind": token.kind})
        return False

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
            raise refuse("revoke_other_client")
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
