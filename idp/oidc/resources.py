"""Resource servers (the agencies' APIs) and resource indicators (RFC 8707).

A resource server is registered with its identifier (the `aud` its tokens carry), the scopes it
accepts and the client it authenticates with at /introspect. A request names the APIs it wants
a token for with `resource`; what a request may ask for is resolved here, once, into a Target
that the grants stamp on the token. Without `resource` a token is for NIXA's UserInfo only."""

from __future__ import annotations

import re

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from idp.oidc.errors import refuse
from idp.store.cache import ReadCache
from idp.store.db import Database
from idp.store.models import Client, ResourceServer

MAX_IDENTIFIER = 512
MAX_RESOURCES = 5  # per request: a token audience-restricted to many APIs is a bearer for all of them


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is invalid, missing, unknown, or malformed."""

    error = "invalid_target"


class InvalidResourceServer(ValueError):
    """A registration refused, with the reason for the operator."""


@dataclass(frozen=True)
class ResourceServerEntry:
    identifier: str
    name: str
    scopes: frozenset[str]
    client_id: str


def userinfo_audience(issuer: str) -> str:
    """The audience of a token asked for without `resource` (RFC 9068 §3: a default resource
    indicator): NIXA's own UserInfo endpoint, and nothing else."""
    return f"{issuer}/userinfo"


_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\s]")  # one scan in C, not two generators per character


def check_identifier(value: str) -> str | None:
    """RFC 8707 §2: an absolute URI without a fragment. Returns the reason it is not one."""
    if not isinstance(value, str) or not value or len(value) > MAX_IDENTIFIER:
        return "a resource must be an absolute URI of at most 512 characters"
    if _SPACE_OR_CONTROL.search(value):
        return "a resource must not contain spaces or control characters"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "a resource must be an absolute URI"
    if not parts.scheme or "#" in value:
        return "a resource must be an absolute URI without a fragment"
    if parts.scheme in ("http", "https") and not parts.hostname:
        return "an http(s) resource must name a host"
    return None


def parse_resources(value: str | None) -> list[str]:
    """The `resource` parameter (repeated values are joined by a space in params.py), checked."""
    resources = list(dict.fromkeys((value or "").split()))
    if len(resources) > MAX_RESOURCES:
        raise refuse("resource_too_many", limit=MAX_RESOURCES)
    for resource in resources:
        reason = check_identifier(resource)
        if reason:
            raise refuse("resource_malformed", detail=reason.capitalize())
    return resources


@dataclass(frozen=True)
class Target:
    """What one token is for: its audience and the scopes that audience accepts."""

    audience: tuple[str, ...]
    accepted: frozenset[str] | None  # None: UserInfo is in the audience and takes every granted scope

    def limit(self, scope: str) -> str:
        """RFC 8707 §2.2 / RFC 9068 §3: the token's scope is what its audience accepts."""
        if self.accepted is None:
            return scope
        return " ".join(s for s in scope.split() if s in self.accepted)

    @property
    def aud(self) -> str | list[str]:
        return self.audience[0] if len(self.audience) == 1 else list(self.audience)


class ResourceRegistry:
    """Registered resource servers, cached for a few seconds per worker like the clients: the
    introspection hot path reads at most one row per identifier per `ttl`."""

    def __init__(self, db: Database, issuer: str, ttl: float = 5.0) -> None:
        self.db = db
        self.issuer = issuer
        self._cache: ReadCache[ResourceServerEntry | None] = ReadCache(self._load, ttl)

    # ---- lookups -------------------------------------------------------------------------

    def get(self, identifier: str) -> ResourceServerEntry | None:
        if not isinstance(identifier, str) or not identifier or len(identifier) > MAX_IDENTIFIER:
            return None
        return self._cache.get(identifier)

    def in_memory(self, identifier: str) -> bool:
        """Whether `get(identifier)` would answer without the database."""
        return isinstance(identifier, str) and self._cache.holds(identifier)

    def _load(self, identifier: str) -> ResourceServerEntry | None:
        with self.db.session() as s:
            row = s.get(ResourceServer, identifier)
            return _model(row) if row is not None else None

    def all(self) -> list[ResourceServerEntry]:
        with self.db.session() as s:
            return [_model(r) for r in s.scalars(select(ResourceServer).order_by(ResourceServer.identifier))]

    def may_introspect(self, client_id: str, audience: list[str]) -> bool:
        """The client a resource server in `audience` introspects with (RFC 7662 §2.1 leaves
        who may introspect to the server: the token's audience, by explicit registration)."""
        return any((rs := self.get(aud)) is not None and rs.client_id == client_id for aud in audience)

    # ---- RFC 8707 ------------------------------------------------------------------------

    def target(self, resources: list[str], granted: list[str] | None = None) -> Target:
        """The Target of a token for `resources` (none: UserInfo). `granted`, at /token, is what
        the authorization allowed: a narrower request is fine, a wider one is invalid_target."""
        userinfo = userinfo_audience(self.issuer)
        wanted = resources or (granted or [userinfo])
        allowed = set(granted or [userinfo]) if granted is not None else None
        if allowed is not None and not set(wanted) <= allowed:
            raise refuse("resource_not_granted")
        accepted: set[str] | None = set()
        for resource in wanted:
            if resource == userinfo:
                accepted = None
                continue
            rs = self.get(resource)
            if rs is None:
                raise refuse("resource_unknown", resource=resource[:100])
            if accepted is not None:
                accepted |= rs.scopes
        return Target(tuple(wanted), frozenset(accepted) if accepted is not None else None)

    def for_request(self, resource: str | None, scope: str, own_scopes: list[str]) -> Target:
        """At /authorize, /par and client_credentials, where the scope is asked for alongside
        `resource`: each resource registered, and an API scope (not one of NIXA's own) that no
        requested resource accepts is invalid_target, not silently a token that cannot use it."""
        target = self.target(parse_resources(resource))
        if target.accepted is not None:
            stray = [s for s in scope.split() if s not in own_scopes and s not in target.accepted]
            if stray:
                raise refuse("resource_scope_unaccepted", scope=stray[0][:64])
        return target

    # ---- administration ------------------------------------------------------------------

    def upsert(self, identifier: str, *, name: str, scopes: list[str], client_id: str) -> bool:
        """Register or update a resource server. Returns True when it was created."""
        reason = check_identifier(identifier)
        if reason:
            raise InvalidResourceServer(reason)
        if "?" in identifier:
            raise InvalidResourceServer("a resource identifier should not have a query (RFC 8707 §2)")
        if _origin(identifier) == _origin(self.issuer):
            raise InvalidResourceServer("NIXA's own endpoints are not resource servers that can be registered")
        if not name.strip() or len(name) > 128:
            raise InvalidResourceServer("the name must be 1 to 128 characters")
        if any(not s or len(s) > 64 or any(ch.isspace() for ch in s) for s in scopes):
            raise InvalidResourceServer("each scope must be 1 to 64 characters without spaces")
        with self.db.session() as s:
            client = s.get(Client, client_id)
            if client is None or client.disabled:
                raise InvalidResourceServer(f"no registered client {client_id!r} to introspect with")
            if client.metadata_.get("token_endpoint_auth_method") == "none":
                raise InvalidResourceServer("a public client cannot authenticate at the introspection endpoint")
            row = s.get(ResourceServer, identifier)
            created = row is None
            if row is None:
                row = ResourceServer(identifier=identifier)
                s.add(row)
            row.name = name.strip()
            row.scopes = " ".join(sorted(set(scopes)))
            row.client_id = client_id
            row.updated_at = time.time()
        self.invalidate(identifier)
        return created

    def register_own(self, identifier: str, *, name: str, scopes: list[str], client_id: str) -> None:
        """One of NIXA's own APIs (the admin API) as a resource server, registered at startup:
        it validates its tokens in-process, so its client need not introspect (nor be
        confidential), and it lives at the issuer's origin, which `upsert` refuses to others."""
        if check_identifier(identifier) or _origin(identifier) != _origin(self.issuer):
            raise InvalidResourceServer("an own resource lives at the issuer's origin")
        try:
            with self.db.session() as s:
                row = s.get(ResourceServer, identifier) or ResourceServer(identifier=identifier)
                row.name, row.scopes, row.client_id, row.updated_at = name, " ".join(sorted(set(scopes))), client_id, time.time()
                s.add(row)
        except IntegrityError:
            pass  # another worker registered it at the same moment: the same row
        self.invalidate(identifier)

    def remove(self, identifier: str) -> bool:
        with self.db.session() as s:
            row = s.get(ResourceServer, identifier)
            if row is not None:
                s.delete(row)
        self.invalidate(identifier)
        return row is not None

    def invalidate(self, identifier: str) -> None:
        self._cache.invalidate(identifier)


def _model(row: ResourceServer) -> ResourceServerEntry:
    return ResourceServerEntry(row.identifier, row.name, frozenset(row.scopes.split()), row.client_id)


def _origin(uri: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), parts.hostname, port
