"""The SSO session: who signed in, how (methods, amr), to which level, when (per level), and which
apps were given a session since. Kept in the ephemeral store under a hash of the cookie value.

`auth_times` keeps, for each level, when the person last authenticated at that level or higher,
so `max_age` and `prompt=login` are judged against the authentication that satisfies the level
asked for (a fresh password does not make a two-hour-old certificate sign-in fresh).

Updates are compare-and-set on the document's version `v` (EphemeralStore.cas): two tabs adding
their app at once both land.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from connectors.base import LevelOfAssurance
from idp.store.ephemeral import stored_fields

SESSION_COOKIE = "nixa_session"
BROWSER_COOKIE = "nixa_browser"
CAS_RETRIES = 32  # each retry means another writer landed: bounded by the number of writers


def cookie_name(base: str, secure: bool) -> str:
    # The __Host- prefix pins the cookie to this host, path / and Secure (RFC 6265bis §4.1.3.2).
    return f"__Host-{base}" if secure else base


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _ck(secret: str) -> str:
    """The digest of a cookie's secret the session record keeps: SHA-256 cut to 192 bits, far
    beyond finding a secret for it (256 random bits) from a copy of the store."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()[:24]).decode()


@dataclass
class SsoSession:
    sid: str
    person_id: str
    auth_time: float  # the latest authentication, whatever its level
    loa: int  # the highest level reached in this session
    amr: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    created_at: float = 0.0
    auth_times: dict[str, float] = field(default_factory=dict)  # str(level) -> last auth at >= level
    last_seen: float = 0.0  # last use (idle lifetime), updated at most once a minute
    user_agent: str = ""  # the browser that signed in (the account page's list of sessions)
    ip: str = ""
    # connector id -> what that source needs to end its own session at sign-out (Assertion.upstream_session)
    upstream: dict[str, dict] = field(default_factory=dict)
    v: int = 0

    @property
    def level(self) -> LevelOfAssurance:
        return LevelOfAssurance(self.loa)

    @property
    def acr(self) -> str:
        return self.level.acr

    def authenticated(self, loa: int, at: float) -> None:
        """Record an authentication at `loa`: it is the newest one at that level and below."""
        for level in LevelOfAssurance:
            if int(level) <= loa:
                self.auth_times[str(int(level))] = at
        self.loa = max(self.loa, loa)
        self.auth_time = at

    def satisfying(self, required: int, max_age: int | None, now: float, fresh_since: float | None = None) -> tuple[int, float] | None:
        """The highest level >= `required` whose last authentication is recent enough for
        `max_age` (or happened during this request, at or after `fresh_since`), with its time."""
        for level in sorted(LevelOfAssurance, reverse=True):
            if int(level) < required:
                break
            at = self.auth_times.get(str(int(level)))
            if at is None:
                continue
            if max_age is None or now - at <= max_age or (fresh_since is not None and at >= fresh_since):
                return int(level), at
        return None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SsoSession:
        known = {f.name for f in fields(cls)}
        session = cls(**{k: v for k, v in data.items() if k in known})
        if not session.auth_times:  # a session stored before per-level times: its one time, its level
            session.auth_times = {str(int(lv)): session.auth_time for lv in LevelOfAssurance if int(lv) <= session.loa}
        return session


TOUCH_EVERY = 60  # seconds: last_seen is rewritten at most this often (no write per request)


class Sessions:
    """The typed repository of SSO sessions. A session ends at the first of its absolute
    lifetime (`ttl`, from sign-in) and its idle lifetime (`idle_ttl`, from last use; None: no
    idle limit).

    The cookie is `<sid>.<secret>`: the session is stored under `sso:<sid>` with a digest of the
    secret (`ck`), compared in constant time before the session is used, changed or ended, so
    knowing a sid (it is no secret: the account page lists them) neither signs anyone in nor
    signs them out. `person-sessions:<person>` lists a person's sids (the account page, "sign
    out everywhere"). Two keys per session: Redis holds 100,000 of them in under 100 MB.

    A cookie of the earlier form (a random value; the session under `sso:<its SHA-256>`, its
    sid under `sid:<sid>`) still works until its session ends, no later than `ttl` after this
    version is deployed: nobody is signed out by the upgrade."""

    def __init__(self, store: Any, ttl: int, clock: Callable[[], float], idle_ttl: int | None = None) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.idle_ttl = idle_ttl

    # ---- where a cookie's session is ---------------------------------------------------

    @staticmethod
    def _new_cookie(sid: str) -> str:
        return f"{sid}.{secrets.token_urlsafe(32)}"

    @staticmethod
    def _where(cookie_value: str) -> tuple[str, str | None]:
        """(store key, the digest the record must hold; None for an earlier-form cookie, whose
        key is its own digest)."""
        sid, dot, secret = cookie_value.partition(".")
        if dot:
            return f"sso:{sid}", _ck(secret)
        return f"sso:{_h(cookie_value)}", None

    @staticmethod
    def _owns(data: Any, ck: str | None) -> bool:
        if not isinstance(data, dict):
            return False
        return ck is None or hmac.compare_digest(str(data.get("ck", "")), ck)

    def _live(self, session: SsoSession) -> bool:
        now = self.clock()
        if session.created_at + self.ttl <= now:
            return False  # absolute lifetime: activity does not stretch a session forever
        # idle lifetime: a browser left alone signs out by itself
        return not (self.idle_ttl and (session.last_seen or session.auth_time) + self.idle_ttl <= now)

    def load(self, cookie_value: str | None) -> SsoSession | None:
        if not cookie_value or len(cookie_value) > 128:
            return None
        key, ck = self._where(cookie_value)
        data = self.store.get(key)
        if not data or not self._owns(data, ck):
            return None
        session = self._session(data, key)
        return session if self._live(session) else None

    def touch(self, cookie_value: str | None, session: SsoSession | None) -> SsoSession | None:
        """The session was used: move its idle deadline (a write at most once a minute)."""
        if not cookie_value or session is None or self.clock() - session.last_seen < TOUCH_EVERY:
            return session
        return self.update(cookie_value, session, lambda s: setattr(s, "last_seen", self.clock()))

    def _by_sid(self, sid: str) -> tuple[str, Any]:
        """(store key, record) of the session with this sid, either form."""
        data = self.store.get(f"sso:{sid}")
        if data:
            return f"sso:{sid}", data
        ref = self.store.get(f"sid:{sid}")  # an earlier-form session
        if ref and ref.get("cookie_hash"):
            key = f"sso:{ref['cookie_hash']}"
            return key, self.store.get(key)
        return f"sso:{sid}", None

    def person_sessions(self, person_id: str) -> list[tuple[str, SsoSession]]:
        """(sid, session) of every live session of a person (the account page)."""
        out = []
        for sid in self.store.smembers(f"person-sessions:{person_id}"):
            key, data = self._by_sid(sid)
            if not data:
                continue
            session = self._session(data, key)
            if session.person_id == person_id and self._live(session):
                out.append((sid, session))
        return sorted(out, key=lambda pair: -pair[1].created_at)

    def end_sid(self, person_id: str, sid: str) -> SsoSession | None:
        """End one of a person's sessions by its sid (sign out a device from the account page)."""
        key, data = self._by_sid(sid)
        if not data or data.get("person_id") != person_id:
            return None
        data = self.store.take(key)
        self.store.delete(f"sid:{sid}")
        self.store.srem(f"person-sessions:{person_id}", sid)
        return self._session(data, key) if data else None

    def _left(self, session: SsoSession) -> float:
        return session.created_at + self.ttl - self.clock()

    @staticmethod
    def _record(session: SsoSession, ck: str | None) -> dict[str, Any]:
        """What is stored: the session, but what its key says (the sid) and an empty `upstream`."""
        record = stored_fields(session)
        if ck is not None:
            record["ck"] = ck
            del record["sid"]
            if not record["upstream"]:
                del record["upstream"]
        return record

    @staticmethod
    def _session(data: dict[str, Any], key: str) -> SsoSession:
        if "sid" not in data:
            data = {**data, "sid": key.removeprefix("sso:")}
        return SsoSession.from_dict(data)

    def _create(self, cookie_value: str, session: SsoSession) -> None:
        left = self._left(session)
        if left <= 0:
            return
        key, ck = self._where(cookie_value)
        self.store.put(key, self._record(session, ck), left)
        self.store.sadd(f"person-sessions:{session.person_id}", session.sid, left)

    def update(self, cookie_value: str, session: SsoSession, change: Callable[[SsoSession], None]) -> SsoSession:
        """Apply `change` and store it, compare-and-set: on a concurrent update, reload and apply
        again, so neither writer's change is lost. A cookie replaced meanwhile (a step-up in
        another tab) changes nothing: its session is the new cookie's now."""
        key, ck = self._where(cookie_value)
        # The record must be this cookie's before anything is written to it. Versions only grow
        # under one key (a step-up adds one), so a compare-and-set that lands replaced this
        # very record, or one checked again below.
        if not self._owns(self.store.get(key), ck):
            return session
        for _ in range(CAS_RETRIES):
            change(session)
            left = self._left(session)
            if left <= 0:
                return session
            version = session.v
            session.v = version + 1
            if self.store.cas(key, version, self._record(session, ck), left):
                return session
            fresh = self.store.get(key)
            if not fresh or not self._owns(fresh, ck):
                return session  # ended meanwhile (logout), or no longer this cookie's
            session = self._session(fresh, key)
        raise RuntimeError("SSO session kept changing under us")

    def establish(self, cookie_value: str | None, *, person_id: str, loa: int, amr: list[str], method: str,
                  user_agent: str = "", ip: str | None = None, upstream: dict[str, dict] | None = None) -> tuple[str, SsoSession]:
        """After a successful authentication: step up the current session when it is the same
        person (keeping its sid), otherwise start a new one with a new cookie (no fixation)."""
        now = self.clock()
        current = self.load(cookie_value)
        if current is not None and current.person_id == person_id:
            self.end(cookie_value)  # rotate the cookie value on every authentication
            current.last_seen = now
            current.authenticated(loa, now)
            current.amr = sorted(set(current.amr) | set(amr))
            current.methods = sorted(set(current.methods) | {method})
            current.upstream.update(upstream or {})
            current.v += 1  # the same key as before: an update made with the old cookie cannot land
            new_cookie = self._new_cookie(current.sid)
            self._create(new_cookie, current)
            return new_cookie, current
        if current is not None:
            self.end(cookie_value)
        sid = secrets.token_urlsafe(16)
        session = SsoSession(sid=sid, person_id=person_id, auth_time=now, loa=loa, amr=sorted(set(amr)),
                             methods=[method], clients=[], created_at=now, last_seen=now, user_agent=user_agent[:256],
                             ip=(ip or "")[:64], upstream=dict(upstream or {}))
        session.authenticated(loa, now)
        new_cookie = self._new_cookie(sid)
        self._create(new_cookie, session)
        return new_cookie, session

    def add_client(self, cookie_value: str | None, session: SsoSession, client_id: str) -> None:
        if not cookie_value or client_id in session.clients:
            return

        def add(s: SsoSession) -> None:
            if client_id not in s.clients:
                s.clients.append(client_id)

        self.update(cookie_value, session, add)

    def end(self, cookie_value: str | None) -> SsoSession | None:
        if not cookie_value or len(cookie_value) > 128:
            return None
        key, ck = self._where(cookie_value)
        if ck is not None and not self._owns(self.store.get(key), ck):
            return None  # a made-up cookie with someone's sid ends nothing
        data = self.store.take(key)
        if not data:
            return None
        session = self._session(data, key)
        self.store.delete(f"sid:{session.sid}")
        self.store.srem(f"person-sessions:{session.person_id}", session.sid)
        return session

    def end_all_of(self, person_id: str) -> list[SsoSession]:
        """End every SSO session of a person (a locked or deceased ID, an admin action); returns
        the sessions ended (their apps are to be told: back-channel logout)."""
        ended = []
        for sid in self.store.smembers(f"person-sessions:{person_id}"):
            key, data = self._by_sid(sid)
            if data and data.get("person_id") == person_id:
                data = self.store.take(key)
                if data:
                    ended.append(self._session(data, key))
            self.store.delete(f"sid:{sid}")
            self.store.srem(f"person-sessions:{person_id}", sid)
        return ended


def csrf_token(key: bytes, browser_id: str, purpose: str) -> str:
    return hmac.new(key, f"{browser_id}\x00{purpose}".encode(), hashlib.sha256).hexdigest()


def check_csrf(key: bytes, browser_id: str | None, purpose: str, presented: str | None) -> bool:
    if not browser_id or not presented:
        return False
    return hmac.compare_digest(csrf_token(key, browser_id, purpose), presented)
