"""The SSO session: who signed in, how (methods, amr), to which level, when, and which apps
were given a session since. Kept in the ephemeral store under a hash of the cookie value."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from connectors.base import LevelOfAssurance

SESSION_COOKIE = "nixa_session"
BROWSER_COOKIE = "nixa_browser"


def cookie_name(base: str, secure: bool) -> str:
    # The __Host- prefix pins the cookie to this host, path / and Secure (RFC 6265bis §4.1.3.2).
    return f"__Host-{base}" if secure else base


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class SsoSession:
    sid: str
    person_id: str
    auth_time: float
    loa: int
    amr: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    created_at: float = 0.0

    @property
    def level(self) -> LevelOfAssurance:
        return LevelOfAssurance(self.loa)

    @property
    def acr(self) -> str:
        return self.level.acr


class Sessions:
    def __init__(self, store: Any, ttl: int, clock: Any) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock

    def load(self, cookie_value: str | None) -> SsoSession | None:
        if not cookie_value or len(cookie_value) > 128:
            return None
        data = self.store.get(f"sso:{_h(cookie_value)}")
        if not data:
            return None
        session = SsoSession(**data)
        if session.created_at + self.ttl <= self.clock():
            return None  # absolute lifetime: activity does not stretch a session forever
        return session

    def save(self, cookie_value: str, session: SsoSession) -> None:
        left = session.created_at + self.ttl - self.clock()
        if left <= 0:
            return
        self.store.put(f"sso:{_h(cookie_value)}", asdict(session), left)
        self.store.put(f"sid:{session.sid}", {"cookie_hash": _h(cookie_value), "person_id": session.person_id}, left)

    def establish(self, cookie_value: str | None, *, person_id: str, loa: int, amr: list[str], method: str) -> tuple[str, SsoSession]:
        """After a successful authentication: step up the current session when it is the same
        person (keeping its sid), otherwise start a new one with a new cookie (no fixation)."""
        now = self.clock()
        current = self.load(cookie_value)
        if current is not None and current.person_id == person_id:
            current.loa = max(current.loa, loa)
            current.amr = sorted(set(current.amr) | set(amr))
            current.methods = sorted(set(current.methods) | {method})
            current.auth_time = now
            self.end(cookie_value)  # rotate the cookie value on every authentication
            new_cookie = secrets.token_urlsafe(32)
            self.save(new_cookie, current)
            return new_cookie, current
        if current is not None:
            self.end(cookie_value)
        new_cookie = secrets.token_urlsafe(32)
        session = SsoSession(sid=secrets.token_urlsafe(16), person_id=person_id, auth_time=now, loa=loa, amr=sorted(set(amr)),
                             methods=[method], clients=[], created_at=now)
        self.save(new_cookie, session)
        return new_cookie, session

    def add_client(self, cookie_value: str, session: SsoSession, client_id: str) -> None:
        if client_id not in session.clients:
            session.clients.append(client_id)
            self.save(cookie_value, session)

    def end(self, cookie_value: str | None) -> SsoSession | None:
        if not cookie_value:
            return None
        data = self.store.take(f"sso:{_h(cookie_value)}")
        if not data:
            return None
        session = SsoSession(**data)
        self.store.delete(f"sid:{session.sid}")
        return session


def csrf_token(key: bytes, browser_id: str, purpose: str) -> str:
    return hmac.new(key, f"{browser_id}\x00{purpose}".encode(), hashlib.sha256).hexdigest()


def check_csrf(key: bytes, browser_id: str | None, purpose: str, presented: str | None) -> bool:
    if not browser_id or not presented:
        return False
    return hmac.compare_digest(csrf_token(key, browser_id, purpose), presented)
