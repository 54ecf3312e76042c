"""Relying parties: secrets, the Authlib-facing client model, lookups with a short cache.
Metadata validation lives in metadata.py."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy import func, select

from connectors.resilience import ResilientHttp
from idp.oidc.metadata import InvalidClientMetadata, check_fetchable, check_sector_identifier, is_loopback, validate_metadata
from idp.store.cache import ReadCache
from idp.store.db import Database
from idp.store.models import Client, Grant

__all__ = ["ClientModel", "ClientRegistry", "InvalidClientMetadata", "SecretHasher", "generate_secret", "validate_metadata"]


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


class SecretHasher:
    """Client secrets are high-entropy, so a keyed hash (HMAC-SHA256) is enough and fast."""

    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper

    def hash(self, secret: str) -> str:
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).hexdigest()

    def check(self, secret: str, stored: str | None) -> bool:
        return bool(stored) and hmac.compare_digest(self.hash(secret), stored)


def sector_of(client_id: str, metadata: dict[str, Any]) -> str:
    """OIDC Core §8.1: host of sector_identifier_uri, else of the (single) redirect host."""
    uri = metadata.get("sector_identifier_uri")
    if uri:
        return urlsplit(uri).hostname or client_id
    redirects = metadata.get("redirect_uris") or []
    if redirects:
        return urlsplit(redirects[0]).hostname or client_id
    return client_id


@dataclass(eq=False)
class ClientModel(ClientMixin):
    """The Authlib-facing view of a registered client."""

    client_id: str
    secret_hash: str | None
    metadata: dict[str, Any]
    first_party: bool
    may_receive_national_id: bool
    require_par: bool
    hasher: SecretHasher
    # The secret before the last rotation, accepted until its expiry (rotation with an overlap).
    previous_secret_hash: str | None = None
    previous_secret_expires_at: float | None = None

    # ---- Authlib ClientMixin ---------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OIDC requires redirect_uri in the request; no default is ever used.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.metadata.get("scope", "").split())
        return " ".join(s for s in scope.split() if s in allowed)

    def dropped_scopes(self, scope: str | None) -> list[str]:
        """What of `scope` this client does not get: scopes that do not exist or it is not
        registered for, and `national_id` unless an administrator authorised it. Dropped
        silently (OIDC Core §3.1.2.1: ignore what is not understood), or refused for a client
        registered with `nixa_refuse_unknown_scopes` (RFC 6749 §3.3: invalid_scope)."""
        granted = self.granted_scopes(scope)
        return [s for s in dict.fromkeys((scope or "").split()) if s not in granted]

    def granted_scopes(self, scope: str | None) -> set[str]:
        allowed = set(self.get_allowed_scope(scope).split())
        if not self.may_receive_national_id:
            allowed.discard("national_id")
        return allowed

    @property
    def refuses_dropped_scopes(self) -> bool:
        return bool(self.metadata.get("nixa_refuse_unknown_scopes"))

    def check_scope(self, scope: str | None) -> None:
        """The opt-in refusal of what `dropped_scopes` would drop."""
        from idp.oidc.errors import refuse

        dropped = self.dropped_scopes(scope) if self.refuses_dropped_scopes else []
        if dropped:
            raise refuse("scope_not_allowed", scopes=" ".join(dropped)[:300])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return matches_registered(redirect_uri, self.metadata.get("redirect_uris", []),
                                  native=self.metadata.get("application_type") == "native")

    def check_client_secret(self, client_secret: str) -> bool:
        current = self.hasher.check(client_secret, self.secret_hash)
        overlapping = self.previous_secret_expires_at is not None and self.previous_secret_expires_at > time.time()
        # Both are checked whichever matches: the same work for the old and the new secret.
        previous = overlapping and self.hasher.check(client_secret, self.previous_secret_hash)
        return current or previous

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        registered = self.metadata.get("token_endpoint_auth_method", "client_secret_basic")
        if method == "client_assertion_jwt":
            method = "private_key_jwt"
        return method == registered

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.metadata.get("response_types", [])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.metadata.get("grant_types", [])

    # ---- NIXA ------------------------------------------------------------------------

    @property
    def is_public(self) -> bool:
        return self.metadata.get("token_endpoint_auth_method") == "none"

    @property
    def name(self) -> str:
        return self.metadata.get("client_name") or self.client_id

    @property
    def signing_alg(self) -> str:
        return self.metadata.get("id_token_signed_response_alg", "ES256")

    @property
    def sector(self) -> str:
        return sector_of(self.client_id, self.metadata)

    def check_post_logout_redirect_uri(self, uri: str) -> bool:
        return matches_registered(uri, self.metadata.get("post_logout_redirect_uris", []),
                                  native=self.metadata.get("application_type") == "native")

    @property
    def allowed_claims(self) -> frozenset[str] | None:
        """The claims this app may ever receive (nixa_allowed_claims); None: all its scopes release."""
        allowed = self.metadata.get("nixa_allowed_claims")
        return None if allowed is None else frozenset(allowed)

    @property
    def pkce_optional(self) -> bool:
        """Legacy confidential clients may be let off PKCE (nixa_pkce_optional); a public client never."""
        return bool(self.metadata.get("nixa_pkce_optional")) and not self.is_public


def _has_userinfo(parts: SplitResult) -> bool:
    return "@" in parts.netloc or parts.username is not None or parts.password is not None


def _same_but_loopback_port(asked: SplitResult, registered: SplitResult) -> bool:
    """RFC 8252 §7.3: a native client's loopback redirect may use any port; every other
    component (scheme, userinfo, host, path, query) must be identical."""
    try:
        asked.port, registered.port  # noqa: B018 -- a malformed port raises
    except ValueError:
        return False
    return (
        asked.scheme == registered.scheme == "http"
        and not _has_userinfo(asked)
        and not _has_userinfo(registered)
        and is_loopback(asked.hostname)
        and asked.hostname == registered.hostname
        and asked.path == registered.path
        and asked.query == registered.query
        and not asked.fragment
        and not registered.fragment
    )


def matches_registered(uri: str, registered: list[str], *, native: bool) -> bool:
    """RFC 9700 §2.1: exact string match, except a native client's loopback port."""
    if not isinstance(uri, str):
        return False
    asked = urlsplit(uri)
    if _has_userinfo(asked):
        return False  # http://evil.example@127.0.0.1/ must never match anything
    if uri in registered:
        return True
    return native and any(_same_but_loopback_port(asked, urlsplit(reg)) for reg in registered)


class ClientRegistry:
    """Lookups cached for a few seconds per worker: no table scan, at most one primary-key
    read per client per `ttl` on the hot path. Edits are seen by every worker within `ttl`."""

    def __init__(self, db: Database, hasher: SecretHasher, ttl: float = 5.0, *, outbound: ResilientHttp) -> None:
        self.db = db
        self.hasher = hasher
        self.outbound = outbound  # fetches under the fetch policy (connectors/safe_fetch.py)
        self._cache: ReadCache[ClientModel | None] = ReadCache(self._load, ttl)

    def _model(self, row: Client) -> ClientModel:
        return ClientModel(
            client_id=row.client_id,
            secret_hash=row.secret_hash,
            metadata=dict(row.metadata_),
            first_party=row.first_party,
            may_receive_national_id=row.may_receive_national_id,
            require_par=row.require_par,
            hasher=self.hasher,
            previous_secret_hash=row.previous_secret_hash,
            previous_secret_expires_at=row.previous_secret_expires_at,
        )

    def get(self, client_id: str | None) -> ClientModel | None:
        if not client_id or not isinstance(client_id, str) or len(client_id) > 128 or "\x00" in client_id:
            return None
        return self._cache.get(client_id)

    def in_memory(self, client_id: str | None) -> bool:
        """Whether `get(client_id)` would answer without the database (the hot paths' check
        before they run on the event loop)."""
        return bool(client_id) and isinstance(client_id, str) and self._cache.holds(client_id)

    def _load(self, client_id: str) -> ClientModel | None:
        with self.db.session() as s:
            row = s.get(Client, client_id)
            return self._model(row) if row is not None and not row.disabled else None

    def invalidate(self, client_id: str | None = None) -> None:
        self._cache.invalidate(client_id)

    def prepare(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Everything that can refuse a client, before anything is written: the metadata, and the
        fetches it asks for (jwks_uri, sector_identifier_uri)."""
        md = validate_metadata(raw)
        if md.get("jwks_uri"):
            check_fetchable(md["jwks_uri"], "jwks_uri", self.outbound.policy)
        if md.get("sector_identifier_uri"):
            check_sector_identifier(md["sector_identifier_uri"], md.get("redirect_uris", []), self.outbound)
        return md

    def upsert(self, raw: dict[str, Any]) -> tuple[str, str | None, bool]:
        """Create or update from metadata. Returns (client_id, new secret or None, created).
        Idempotent: importing the same metadata twice changes nothing and keeps the secret."""
        return self.write_all([self.prepare(raw)])[0]

    def write_all(self, prepared: list[dict[str, Any]]) -> list[tuple[str, str | None, bool]]:
        """Write `prepare`d clients in one transaction: all of them or none."""
        with self.db.session() as s:
            out = [self._write(s, dict(md)) for md in prepared]
        for cid, _, _ in out:
            self.invalidate(cid)
        return out

    def _write(self, s: Any, md: dict[str, Any]) -> tuple[str, str | None, bool]:
        secret = md.pop("client_secret", None)
        cid = md["client_id"]
        needs_secret = md["token_endpoint_auth_method"] in ("client_secret_basic", "client_secret_post")
        new_secret = None
        row = s.get(Client, cid)
        created = row is None
        if row is None:
            row = Client(client_id=cid, metadata_={}, version=0)
            s.add(row)
        if needs_secret:
            if secret is not None:
                row.secret_hash = self.hasher.hash(secret)
            elif not row.secret_hash:
                new_secret = generate_secret()
                row.secret_hash = self.hasher.hash(new_secret)
        else:
            row.secret_hash = None
        first_party = bool(md.get("nixa_first_party", False))
        national = bool(md.get("nixa_national_id_authorized", False))
        require_par = bool(md.get("require_pushed_authorization_requests", False))
        changed = (
            row.metadata_ != md
            or row.first_party != first_party
            or row.may_receive_national_id != national
            or row.require_par != require_par
        )
        if changed or created:
            row.metadata_ = md
            row.first_party = first_party
            row.may_receive_national_id = national
            row.require_par = require_par
            row.version = (row.version or 0) + 1
            row.updated_at = time.time()
        return cid, new_secret, created

    def sector_change(self, md: dict[str, Any]) -> tuple[str, str, int] | None:
        """(old sector, new sector, persons whose pairwise `sub` it changes) when importing `md`
        would move an existing client to another sector (OIDC Core §8.1), else None."""
        with self.db.session() as s:
            row = s.get(Client, md["client_id"])
            if row is None:
                return None
            old, new = self._model(row).sector, sector_of(md["client_id"], md)
            if old == new or md.get("subject_type") == "public":
                return None
            persons = s.scalar(select(func.count(func.distinct(Grant.person_id))).where(Grant.client_id == row.client_id,
                                                                                        Grant.person_id.is_not(None)))
        return old, new, int(persons or 0)

    def set_disabled(self, client_id: str, disabled: bool) -> None:
        with self.db.session() as s:
            row = s.get(Client, client_id)
            if row is None:
                raise KeyError(client_id)
            row.disabled = disabled
            row.version += 1
            row.updated_at = time.time()
        self.invalidate(client_id)

    def delete(self, client_id: str) -> None:
        """Remove a client with its consents, grants and tokens (the database cascades)."""
        with self.db.session() as s:
            row = s.get(Client, client_id)
            if row is None:
                raise KeyError(client_id)
            s.delete(row)
        self.invalidate(client_id)

    def rotate_secret(self, client_id: str, overlap: float = 0) -> tuple[str, float | None]:
        """A new secret; with `overlap` seconds, the current one stays valid that long beside it
        (the agency deploys the new one without an outage). Returns (secret, old one's expiry)."""
        secret = generate_secret()
        expires = time.time() + overlap if overlap > 0 else None
        with self.db.session() as s:
            row = s.get(Client, client_id)
            if row is None:
                raise KeyError(client_id)
            if row.metadata_.get("token_endpoint_auth_method") not in ("client_secret_basic", "client_secret_post"):
                raise InvalidClientMetadata(f"{client_id} does not authenticate with a client secret")
            row.previous_secret_hash = row.secret_hash if expires else None
            row.previous_secret_expires_at = expires
            row.secret_hash = self.hasher.hash(secret)
            row.version += 1
            row.updated_at = time.time()
        self.invalidate(client_id)
        return secret, expires

    def all(self) -> list[ClientModel]:
        with self.db.session() as s:
            return [self._model(r) for r in s.scalars(select(Client).order_by(Client.client_id))]
