"""Access tokens (RFC 9068 JWTs with a jti), ID tokens, refresh tokens (hashed, rotating),
and the revocation state that introspection and userinfo honour."""

from __future__ import annotations

import base64
import contextvars
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from joserfc.errors import JoseError
from sqlalchemy import select, update

from idp.events import Events
from idp.settings import Settings
from idp.store.db import Database
from idp.store.ephemeral import EphemeralStore
from idp.store.models import Grant, RefreshToken
from keys.ring import KeyRing


def _is_audience(aud: Any) -> bool:
    if isinstance(aud, str):
        return bool(aud)
    return isinstance(aud, list) and bool(aud) and all(isinstance(a, str) and a for a in aud)


def audience_of(claims: dict[str, Any]) -> list[str]:
    """`aud` as a list (RFC 7519 §4.1.3: one string or an array)."""
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else list(aud or [])


def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def half_hash(value: str, alg: str) -> str:
    """at_hash / c_hash (OIDC Core §3.1.3.6): left half of the hash matching the alg's size."""
    digest = hashlib.sha512(value.encode()).digest() if alg == "EdDSA" else hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


class InvalidToken(Exception):
    """An access token refused, by its reason in the catalogue (idp/oidc/errors.py)."""

    def __init__(self, reason: str = "token_invalid") -> None:
        from idp.oidc.errors import refusal

        self.reason = reason
        self.description = refusal(reason).text()
        super().__init__(self.description)


@dataclass(frozen=True)
class AccessTokenInfo:
    claims: dict[str, Any]
    person_id: str | None = None

    @property
    def scope(self) -> set[str]:
        return set(str(self.claims.get("scope", "")).split())

    @property
    def grant_id(self) -> str | None:
        return self.claims.get("gid")

    @property
    def client_id(self) -> str:
        return self.claims["client_id"]

    @property
    def audience(self) -> list[str]:
        return audience_of(self.claims)


# The access tokens one request has already checked (signature, type, issuer, audience, the
# sealed person reference), by their exact text; only inside `checked_once`.
_checked: contextvars.ContextVar[dict[str, AccessTokenInfo] | None] = contextvars.ContextVar("nixa_checked_tokens", default=None)


@contextmanager
def checked_once() -> Iterator[None]:
    """Inside, one request: a token checked once is not checked again (the signature is
    remembered by the key ring already; the copy, the sealed person reference's opening and the
    claims checks were done twice: ~24 µs). UserInfo and introspection check it first to know what
    to read from Redis, then answer through the usual path, which checks it again. Its lifetime is held
    again at each use, and revocation is never remembered: it is always the store's answer."""
    token = _checked.set({})
    try:
        yield
    finally:
        _checked.reset(token)


class TokenService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: EphemeralStore,
        keys: KeyRing,
        events: Events,
        clock: Callable[[], float] = time.time,
        person_key: bytes | None = None,
        clients: Any = None,
    ) -> None:
        self.settings = settings
        self.clients = clients  # for each client's own lifetimes (nixa_*_ttl)
        self.db = db
        self.store = store
        self.keys = keys
        self.events = events
        # JWT access tokens are readable by clients: the person reference in them is sealed
        # (AES-GCM, bound to the token's jti), so two agencies cannot correlate their users by it.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._person_seal = AESGCM(person_key or secrets.token_bytes(32))
        self.clock = clock

    def lifetime(self, kind: str, client_id: str | None) -> int:
        """The `kind` lifetime (code_ttl, access_token_ttl, id_token_ttl, refresh_token_ttl) for
        this client: its own `nixa_<kind>` when it has one, never longer than the deployment's."""
        deployment = int(getattr(self.settings, kind))
        client = self.clients.get(client_id) if self.clients is not None and client_id else None
        own = client.metadata.get(f"nixa_{kind}") if client is not None else None
        return min(deployment, int(own)) if isinstance(own, int) and not isinstance(own, bool) else deployment

    # ---- grants ----------------------------------------------------------------------

    def new_grant(self, *, client_id: str, person_id: str | None, scope: str, sid: str | None = None,
                  auth_time: float | None = None, acr: str | None = None, amr: list[str] | None = None) -> str:
        with self.db.session() as s:
            g = Grant(client_id=client_id, person_id=person_id, scope=scope, sid=sid, auth_time=auth_time, acr=acr, amr=amr or [], created_at=self.clock())
            s.add(g)
            s.flush()
            return g.id

    def revoke_grant(self, grant_id: str, reason: str, *, client_id: str | None = None, person_id: str | None = None) -> bool:
        """Revoke a grant: its refresh tokens die (DB) and its access tokens die (store marker
        for as long as any of them could live)."""
        with self.db.session() as s:
            done = s.execute(
                update(Grant).where(Grant.id == grant_id, Grant.revoked_at.is_(None)).values(revoked_at=self.clock(), revoked_reason=reason)
            ).rowcount
        self.store.put(f"revoked:grant:{grant_id}", 1, self.settings.access_token_ttl + 60)
        if done:
            self.events.emit("grant.revoked", client_id=client_id, person_id=person_id, data={"grant_id": grant_id, "reason": reason})
        return bool(done)

    def grant_is_revoked(self, grant_id: str) -> bool:
        return self.store.get(f"revoked:grant:{grant_id}") is not None

    # ---- access tokens (RFC 9068) ------------------------------------------------------

    def issue_access_token(self, *, client_id: str, sub: str, scope: str, grant_id: str | None, person_id: str | None,
                           aud: str | list[str], auth_time: float | None = None, acr: str | None = None,
                           amr: list[str] | None = None, alg: str | None = None) -> tuple[str, int]:
        """`aud`: the resource server(s) the token was asked for (RFC 8707), else UserInfo."""
        now = int(self.clock())
        ttl = self.lifetime("access_token_ttl", client_id)
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": sub,
            "aud": aud,
            "client_id": client_id,
            "iat": now,
            "exp": now + ttl,
            "jti": random_token(16),
            "scope": scope,
        }
        if grant_id:
            claims["gid"] = grant_id
        if person_id:
            nonce = secrets.token_bytes(12)
            sealed = nonce + self._person_seal.encrypt(nonce, person_id.encode(), claims["jti"].encode())
            claims["nixa_ref"] = base64.urlsafe_b64encode(sealed).decode().rstrip("=")
        if auth_time is not None:
            claims["auth_time"] = int(auth_time)
        if acr:
            claims["acr"] = acr
        if amr:
            claims["amr"] = list(amr)
        return self.keys.sign(claims, alg or self.settings.default_signing_alg, typ="at+jwt"), ttl

    def validate_access_token(self, token: str) -> AccessTokenInfo:
        info = self.checked_access_token(token)
        # Revoked token or revoked grant: both markers in one round trip.
        if any(v is not None for v in self.store.get_many(self.revocation_markers(info.claims))):
            raise InvalidToken("token_revoked")
        return info

    @staticmethod
    def revocation_markers(claims: dict[str, Any]) -> list[str]:
        """The store keys that say a token (its jti) or its grant was revoked."""
        return [f"revoked:jti:{claims.get('jti')}"] + ([f"revoked:grant:{claims['gid']}"] if claims.get("gid") else [])

    def checked_access_token(self, token: str) -> AccessTokenInfo:
        """Everything `validate_access_token` checks but revocation, which only the store knows:
        signature, type, issuer, audience, lifetime, the sealed person reference."""
        memo = _checked.get()
        known = memo.get(token) if memo is not None else None
        if known is not None:
            if known.claims["exp"] <= self.clock():
                raise InvalidToken("token_expired")
            return known
        if not token or len(token) > 8192 or token.count(".") != 2:
            raise InvalidToken()
        try:
            decoded = self.keys.verify(token)
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise InvalidToken() from exc
        if decoded.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            raise InvalidToken()  # an ID token is not an access token (RFC 9068 §4)
        claims = decoded.claims
        now = self.clock()
        if claims.get("iss") != self.settings.issuer or not _is_audience(claims.get("aud")):
            raise InvalidToken()  # whose audience it is, each endpoint decides (UserInfo, introspection)
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= now:
            raise InvalidToken("token_expired")
        info = AccessTokenInfo(claims, self._unseal_person(claims))
        if memo is not None:
            memo[token] = info
        return info

    def _unseal_person(self, claims: dict[str, Any]) -> str | None:
        ref = claims.get("nixa_ref")
        if not isinstance(ref, str):
            return None
        try:
            raw = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
            return self._person_seal.decrypt(raw[:12], raw[12:], str(claims.get("jti", "")).encode()).decode()
        except (ValueError, InvalidTag):
            raise InvalidToken() from None

    def revoke_access_token(self, claims: dict[str, Any]) -> None:
        left = max(1.0, float(claims.get("exp", 0)) - self.clock())
        self.store.put(f"revoked:jti:{claims.get('jti')}", 1, left + 5)

    # ---- refresh tokens -----------------------------------------------------------------

    def issue_refresh_token(self, *, grant_id: str, client_id: str, scope: str, resources: list[str] | None = None,
                            not_after: float | None = None) -> str:
        """`not_after`: the grant's absolute end (refresh_grant_max_lifetime); no rotation extends it.
        `resources`: what the authorization granted (RFC 8707); every rotation keeps it."""
        value = random_token(32)
        expires_at = self.clock() + self.lifetime("refresh_token_ttl", client_id)
        if not_after is not None:
            expires_at = min(expires_at, not_after)
        with self.db.session() as s:
            s.add(
                RefreshToken(
                    token_hash=token_hash(value),
                    grant_id=grant_id,
                    client_id=client_id,
                    scope=scope,
                    resources=resources or None,
                    issued_at=self.clock(),
                    expires_at=expires_at,
                )
            )
        return value

    def find_refresh_token(self, value: str) -> tuple[RefreshToken, Grant] | None:
        if not value or len(value) > 512:
            return None
        with self.db.session() as s:
            row = s.get(RefreshToken, token_hash(value))
            if row is None:
                return None
            grant = s.get(Grant, row.grant_id)
            return row, grant

    def mark_rotated(self, token_hash_value: str) -> bool:
        """Atomic: of two concurrent uses of one refresh token, exactly one wins."""
        with self.db.session() as s:
            return (
                s.execute(
                    update(RefreshToken)
                    .where(RefreshToken.token_hash == token_hash_value, RefreshToken.rotated_at.is_(None))
                    .values(rotated_at=self.clock())
                ).rowcount
                == 1
            )

    def revoke_refresh_token(self, row: RefreshToken) -> None:
        with self.db.session() as s:
            s.execute(update(RefreshToken).where(RefreshToken.token_hash == row.token_hash).values(rotated_at=self.clock(), expires_at=self.clock()))

    def revoke_client(self, client_id: str, reason: str) -> int:
        """Revoke every open grant of a client (disabled or deleted): its refresh tokens and the
        access tokens bound to them die at once. Returns how many grants."""
        with self.db.session() as s:
            open_grants = list(s.execute(select(Grant.id, Grant.person_id).where(Grant.client_id == client_id,
                                                                                  Grant.revoked_at.is_(None))))
        return sum(self.revoke_grant(gid, reason, client_id=client_id, person_id=pid) for gid, pid in open_grants)

    def grants_for_sid(self, sid: str) -> list[Grant]:
        with self.db.session() as s:
            return list(s.scalars(select(Grant).where(Grant.sid == sid, Grant.revoked_at.is_(None))))

    # ---- ID tokens ------------------------------------------------------------------------

    def issue_id_token(self, *, client_id: str, sub: str, alg: str, nonce: str | None, auth_time: float | None,
                       acr: str | None, amr: list[str] | None, sid: str | None, access_token: str | None,
                       extra: dict[str, Any] | None = None) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": sub,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self.lifetime("id_token_ttl", client_id),
        }
        if auth_time is not None:
            claims["auth_time"] = int(auth_time)
        if nonce:
            claims["nonce"] = nonce
        if acr:
            claims["acr"] = acr
        if amr:
            claims["amr"] = list(amr)
        if sid:
            claims["sid"] = sid
        if access_token:
            claims["at_hash"] = half_hash(access_token, alg)
        if extra:
            claims.update(extra)
        return self.keys.sign(claims, alg)

    def validate_id_token_hint(self, token: str) -> dict[str, Any] | None:
        """id_token_hint at logout: our signature and issuer; expiry is allowed (RP-Initiated
        Logout §2 lets an expired ID token serve as a hint)."""
        if not token or len(token) > 8192:
            return None
        try:
            decoded = self.keys.verify(token)
        except (JoseError, ValueError, KeyError, TypeError):
            return None
        if decoded.header.get("typ", "JWT") != "JWT" or decoded.claims.get("iss") != self.settings.issuer:
            return None
        return decoded.claims
