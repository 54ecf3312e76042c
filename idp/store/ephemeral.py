"""The ephemeral store: everything short-lived (pending requests, codes, SSO sessions, OTPs,
PAR, rate limits, replay caches, revoked jti) goes through this one small interface.

Two implementations: in-process (embedded default) and Redis (scale-out). Every operation that
must be atomic is atomic in both: take-once, add-if-absent and counters never read-modify-write.
Values are JSON documents.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol


class EphemeralStore(Protocol):
    def put(self, key: str, value: Any, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds, replacing what was there."""

    def add(self, key: str, value: Any, ttl: float) -> bool:
        """Store only if absent; True when this call stored it (replay caches, locks)."""

    def get(self, key: str) -> Any | None: ...

    def get_many(self, keys: list[str]) -> list[Any | None]:
        """Several reads in one round trip (Redis MGET), in the order asked."""

    def take(self, key: str) -> Any | None:
        """Atomically get and delete: of two concurrent callers, one gets the value."""

    def delete(self, key: str) -> None: ...

    def incr(self, key: str, ttl: float) -> int:
        """Increment a counter; the TTL starts with the first increment (fixed window)."""

    def sadd(self, key: str, member: str, ttl: float) -> None:
        """Add to a set and extend the set's life to at least `ttl`."""

    def smembers(self, key: str) -> set[str]: ...

    def srem(self, key: str, member: str) -> None: ...

    def ttl(self, key: str) -> float | None:
        """Seconds left, or None when absent."""

    def ping(self) -> bool: ...


# "No live entry" for MemoryStore; distinct from a stored JSON null, which is present (as in Redis).
_ABSENT: Any = object()


class MemoryStore:
    """In-process store for the embedded default: one dict, one lock, lazy expiry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._data: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._ops = 0

    def _live(self, key: str) -> Any:
        """The live value, or _ABSENT (a stored None is a value, as in Redis)."""
        item = self._data.get(key)
        if item is None:
            return _ABSENT
        expires, value = item
        if expires <= self._clock():
            del self._data[key]
            return _ABSENT
        return value

    def _sweep(self) -> None:
        # Bounded memory: every 10,000 writes drop what has expired.
        self._ops += 1
        if self._ops % 10_000 == 0:
            now = self._clock()
            for k in [k for k, (exp, _) in self._data.items() if exp <= now]:
                del self._data[k]

    @staticmethod
    def _copy(value: Any) -> Any:
        # Same semantics as Redis: callers get a copy, never a shared mutable object, and only
        # JSON goes in (a tuple comes back a list, a set or bytes is refused) on both backends.
        if value is _ABSENT:
            return None
        if value is None or type(value) in (str, int, float, bool):
            return value
        return json.loads(json.dumps(value))

    def put(self, key: str, value: Any, ttl: float) -> None:
        with self._lock:
            self._sweep()
            self._data[key] = (self._clock() + ttl, self._copy(value))

    def add(self, key: str, value: Any, ttl: float) -> bool:
        with self._lock:
            if self._live(key) is not _ABSENT:
                return False
            self._sweep()
            self._data[key] = (self._clock() + ttl, self._copy(value))
            return True

    def get(self, key: str) -> Any | None:
        with self._lock:
            return self._copy(self._live(key))

    def get_many(self, keys: list[str]) -> list[Any | None]:
        with self._lock:
            return [self._copy(self._live(k)) for k in keys]

    def take(self, key: str) -> Any | None:
        with self._lock:
            value = self._live(key)
            self._data.pop(key, None)
            return None if value is _ABSENT else value

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def incr(self, key: str, ttl: float) -> int:
        with self._lock:
            current = self._live(key)
            if current is _ABSENT:
                self._sweep()
                self._data[key] = (self._clock() + ttl, 1)
                return 1
            expires = self._data[key][0]
            self._data[key] = (expires, int(current) + 1)
            return int(current) + 1

    def sadd(self, key: str, member: str, ttl: float) -> None:
        with self._lock:
            current = self._live(key)
            if current is _ABSENT:
                self._sweep()
            members = set(current) if current is not _ABSENT else set()
            members.add(member)
            old_exp = self._data[key][0] if current is not _ABSENT else 0
            self._data[key] = (max(old_exp, self._clock() + ttl), sorted(members))

    def smembers(self, key: str) -> set[str]:
        with self._lock:
            current = self._live(key)
            return set() if current is _ABSENT else set(current)

    def srem(self, key: str, member: str) -> None:
        with self._lock:
            current = self._live(key)
            if current is _ABSENT:
                return
            members = [m for m in current if m != member]
            if members:
                self._data[key] = (self._data[key][0], members)
            else:
                del self._data[key]

    def ttl(self, key: str) -> float | None:
        with self._lock:
            if self._live(key) is _ABSENT:
                return None
            return self._data[key][0] - self._clock()

    def ping(self) -> bool:
        return True


# Lua keeps "extend the set's TTL to at least ttl" atomic in Redis.
_SADD_EXTEND = """
redis.call('SADD', KEYS[1], ARGV[1])
local current = redis.call('PTTL', KEYS[1])
local wanted = tonumber(ARGV[2])
if current < wanted then redis.call('PEXPIRE', KEYS[1], wanted) end
return 1
"""

# INCR then set the window on the first increment, in one atomic step.
_INCR_WINDOW = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisStore:
    """Redis store for scale-out: atomic commands (GETDEL, SET NX) or Lua, no races."""

    def __init__(self, url: str, prefix: str = "nixa:") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        self._prefix = prefix
        self._sadd = self._redis.register_script(_SADD_EXTEND)
        self._incr = self._redis.register_script(_INCR_WINDOW)

    def _k(self, key: str) -> str:
        return self._prefix + key

    @staticmethod
    def _ms(ttl: float) -> int:
        return max(1, int(ttl * 1000))

    def put(self, key: str, value: Any, ttl: float) -> None:
        self._redis.set(self._k(key), json.dumps(value), px=self._ms(ttl))

    def add(self, key: str, value: Any, ttl: float) -> bool:
        return bool(self._redis.set(self._k(key), json.dumps(value), px=self._ms(ttl), nx=True))

    def get(self, key: str) -> Any | None:
        raw = self._redis.get(self._k(key))
        return None if raw is None else json.loads(raw)

    def get_many(self, keys: list[str]) -> list[Any | None]:
        if not keys:
            return []
        return [None if raw is None else json.loads(raw) for raw in self._redis.mget([self._k(k) for k in keys])]

    def take(self, key: str) -> Any | None:
        raw = self._redis.getdel(self._k(key))
        return None if raw is None else json.loads(raw)

    def delete(self, key: str) -> None:
        self._redis.delete(self._k(key))

    def incr(self, key: str, ttl: float) -> int:
        return int(self._incr(keys=[self._k(key)], args=[self._ms(ttl)]))

    def sadd(self, key: str, member: str, ttl: float) -> None:
        self._sadd(keys=[self._k(key)], args=[member, self._ms(ttl)])

    def smembers(self, key: str) -> set[str]:
        return set(self._redis.smembers(self._k(key)))

    def srem(self, key: str, member: str) -> None:
        self._redis.srem(self._k(key), member)

    def ttl(self, key: str) -> float | None:
        ms = self._redis.pttl(self._k(key))
        return None if ms < 0 else ms / 1000

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except Exception:
            return False

    def flush_prefix(self) -> None:
        """Tests only: drop every key under this store's prefix."""
        for key in self._redis.scan_iter(self._prefix + "*", count=1000):
            self._redis.delete(key)


def open_store(url: str | None, clock: Callable[[], float] = time.time) -> EphemeralStore:
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url)
    return MemoryStore(clock)
