"""What flows through Authlib: requests over pre-parsed parameters, the authenticated context
of a grant, and stored codes and tokens as the grants and endpoints see them."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import (
    OAuth2Request,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload

from idp.oidc.clients import ClientModel


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
        # RFC 8707 at /token: what the token being issued is for, and the scope granted before
        # it is narrowed to that audience (grants.ResourceIndicators).
        self.target: Any = None
        self.grant_scope: str | None = None

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
    resources: list[str] = field(default_factory=list)  # RFC 8707 resources granted at /authorize

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
