"""The ephemeral store: everything short-lived (pending requests, codes, SSO sessions, OTPs,
PAR, rate limits, replay caches, revoked jti) goes through this one small interface.

Two implementations: in-process (embedded default) and Redis (scale-out). Every operation that
must be atomic is atomic in both: take-once, add-if-absent and counters never read-modify-write.
Values are JSON documents. Two compound operations exist because callers cannot build them
from the others without a race: `cas` (compare-and-set on a version field, for state that
several requests update, like a pending sign-in) and `throttle_hit` / `throttle_refund` (count
an attempt against several limits at once, with locks that back off; used only through
idp/store/throttle.py, which owns the key layout).

The hot paths (UserInfo, introspection) run on the event loop. Their reads come first, in one
awaited round trip (`aget_many`), and the synchronous code after them is answered from those
values (`read_ahead`) instead of blocking the loop on a round trip of its own; their one write,
the citizen's release marker, has its awaitable form too (`aadd`, `adelete`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

# Values this request has already read, by key (None: absent), set by `read_ahead`.
_read_ahead: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("nixa_read_ahead", default=None)


@contextmanager
def read_ahead(values: dict[str, Any]) -> Iterator[None]:
    """Inside: `get` and `get_many` of these keys answer from `values` (read by the request an
    instant before, in one awaited round trip) and `add` of a key in them that is present is
    refused, as the store would refuse it. Any other operation goes to the store."""
    token = _read_ahead.set(values)
    try:
        yield
    finally:
        _read_ahead.reset(token)


class EphemeralStore(Protocol):
    def put(self, key: str, value: Any, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds, replacing what was there."""

    def add(self, key: str, value: Any, ttl: float) -> bool:
        """Store only if absent; True when this call stored it (replay caches, locks)."""

    def get(self, key: str) -> Any | None: ...

    async def aget_many(self, keys: list[str]) -> list[Any | None]:
        """`get_many` without blocking the event loop."""
        ...

    async def aadd(self, key: str, value: Any, ttl: float) -> bool: ...

    async def adelete(self, key: str) -> None: ...

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

    def cas(self, key: str, version: int, value: Any, ttl: float) -> bool:
        """Compare-and-set: replace the JSON object at `key` with `value` (for `ttl` seconds) only
        if its field "v" equals `version` (an object without "v" is version 0). An absent key
        stores nothing and gives False. The caller puts the new version in value["v"] itself."""

    def throttle_hit(self, rules: list[tuple[str, int, float]], lock_base: float | None = None, lock_max: float = 86400) -> float:
        """Count one attempt against every (key, limit, window) rule, in one atomic step.

        A live `<key>:lock` on any rule: nothing is counted, the longest remaining lock (seconds)
        is returned. Otherwise every counter is incremented (fixed window from its first
        increment); each counter now over its limit gets a strike (`<key>:strikes`, one day), a
        lock of min((lock_base or window) * 2**(strikes-1), lock_max) seconds, and is reset; the
        longest new lock is returned. 0.0 means go ahead."""

    def throttle_refund(self, keys: list[str]) -> None:
        """Take one attempt back from each counter (never below zero): it turned out good."""


STRIKES_TTL = 86400  # strikes (how many locks a key has earned) are remembered for a day


def stored_fields(record: Any) -> dict[str, Any]:
    """A dataclass's fields as the dict a store writes. One level: every store copies what it is
    given (Redis as JSON, MemoryStore through JSON too), so the deep copy `dataclasses.asdict`
    makes (155 calls of its recursion in one sign-in) was paid for nothing."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def lock_seconds(strikes: int, window: float, lock_base: float | None, lock_max: float) -> float:
    """Exponential backoff: the n-th lock lasts base * 2**(n-1), at most lock_max."""
    base = lock_base if lock_base else window
    return min(base * 2.0 ** min(max(strikes - 1, 0), 64), lock_max)


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

    # In this process's memory: nothing to wait for.
    async def aget_many(self, keys: list[str]) -> list[Any | None]:
        return self.get_many(keys)

    async def aadd(self, key: str, value: Any, ttl: float) -> bool:
        return self.add(key, value, ttl)

    async def adelete(self, key: str) -> None:
        self.delete(key)

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

    def cas(self, key: str, version: int, value: Any, ttl: float) -> bool:
        stored = self._copy(value)  # refuse a non-JSON value before looking
        with self._lock:
            current = self._live(key)
            if current is _ABSENT or _version(current) != version:
                return False
            self._data[key] = (self._clock() + ttl, stored)
            return True

    def _counter(self, key: str, ttl: float) -> int:
        # incr() without the lock (the caller holds it).
        current = self._live(key)
        if current is _ABSENT:
            self._sweep()
            self._data[key] = (self._clock() + ttl, 1)
            return 1
        self._data[key] = (self._data[key][0], int(current) + 1)
        return int(current) + 1

    def throttle_hit(self, rules: list[tuple[str, int, float]], lock_base: float | None = None, lock_max: float = 86400) -> float:
        with self._lock:
            now = self._clock()
            locked = 0.0
            for key, _, _ in rules:
                if self._live(key + ":lock") is not _ABSENT:
                    locked = max(locked, self._data[key + ":lock"][0] - now)
            if locked > 0:
                return locked
            over = [(key, window) for key, limit, window in rules if self._counter(key, window) > limit]
            for key, window in over:
                strikes = self._counter(key + ":strikes", STRIKES_TTL)
                seconds = lock_seconds(strikes, window, lock_base, lock_max)
                self._data[key + ":lock"] = (now + seconds, 1)
                self._data.pop(key, None)
                locked = max(locked, seconds)
            return locked

    def throttle_refund(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                current = self._live(key)
                if current is not _ABSENT and int(current) > 0:
                    self._data[key] = (self._data[key][0], int(current) - 1)


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


def _version(current: Any) -> Any:
    """The "v" of a stored object for cas(): 0 when it has none; None (never equal) for a
    non-object, so a cas never replaces a stored list or scalar."""
    if not isinstance(current, dict):
        return None
    v = current.get("v", 0)
    if v is None:
        return 0
    return v if type(v) in (int, float) else None


# Compare-and-set on the "v" field of a JSON object (cjson: a missing "v" is version 0).
_CAS = """
local raw = redis.call('GET', KEYS[1])
if not raw or string.sub(raw, 1, 1) ~= '{' then return 0 end
local ok, current = pcall(cjson.decode, raw)
if not ok or type(current) ~= 'table' then return 0 end
local v = current['v']
if v == nil or v == cjson.null then v = 0 end
if type(v) ~= 'number' or v ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# throttle_hit in one step. KEYS: per rule counter, lock, strikes. ARGV: lock_base ms (0: the
# rule's window), lock_max ms, strikes ttl ms, then per rule limit and window ms.
_THROTTLE_HIT = """
local n = #KEYS / 3
local base = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local strikes_ttl = tonumber(ARGV[3])
local longest = 0
for i = 1, n do
  local left = redis.call('PTTL', KEYS[3 * i - 1])
  if left > longest then longest = left end
end
if longest > 0 then return longest end
local over = {}
for i = 1, n do
  local count = redis.call('INCR', KEYS[3 * i - 2])
  if count == 1 then redis.call('PEXPIRE', KEYS[3 * i - 2], ARGV[5 + 2 * (i - 1)]) end
  if count > tonumber(ARGV[4 + 2 * (i - 1)]) then over[#over + 1] = i end
end
for _, i in ipairs(over) do
  local strikes = redis.call('INCR', KEYS[3 * i])
  if strikes == 1 then redis.call('PEXPIRE', KEYS[3 * i], strikes_ttl) end
  local b = base
  if b <= 0 then b = tonumber(ARGV[5 + 2 * (i - 1)]) end
  local exponent = math.min(strikes - 1, 64)
  local lock = math.floor(math.min(b * (2 ^ exponent), cap))
  if lock < 1 then lock = 1 end
  redis.call('SET', KEYS[3 * i - 1], 1, 'PX', lock)
  redis.call('DEL', KEYS[3 * i - 2])
  if lock > longest then longest = lock end
end
return longest
"""

# Decrement each counter that is above zero (DECR keeps the window's TTL).
_THROTTLE_REFUND = """
for i = 1, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]))
  if count and count > 0 then redis.call('DECR', KEYS[i]) end
end
return 1
"""


def _dumps(value: Any) -> str:
    """JSON without the spaces after separators: Redis keeps every byte of every value."""
    return json.dumps(value, separators=(",", ":"))


class RedisStore:
    """Redis store for scale-out: atomic commands (GETDEL, SET NX) or Lua, no races."""

    def __init__(self, url: str, prefix: str = "nixa:") -> None:
        import redis

        if url.startswith("redis+sentinel://"):
            self._redis = _sentinel_master(url)
        else:
            self._redis = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        self._prefix = prefix
        self._sadd = self._redis.register_script(_SADD_EXTEND)
        self._incr = self._redis.register_script(_INCR_WINDOW)
        self._cas = self._redis.register_script(_CAS)
        self._throttle_hit = self._redis.register_script(_THROTTLE_HIT)
        self._throttle_refund = self._redis.register_script(_THROTTLE_REFUND)
        self._url = url
        # An event loop's connection belongs to that loop: one per loop (a uvicorn worker has
        # one; a test that starts several gets one each). idp/store/resp.py
        self._aio: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def _k(self, key: str) -> str:
        return self._prefix + key

    @staticmethod
    def _ms(ttl: float) -> int:
        return max(1, int(ttl * 1000))

    def _async_client(self) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        client = self._aio.get(loop)
        if client is None:
            from idp.store.resp import PipelinedRedis

            client = self._aio[loop] = PipelinedRedis(self._url, loop)
        return client

    def put(self, key: str, value: Any, ttl: float) -> None:
        self._redis.set(self._k(key), _dumps(value), px=self._ms(ttl))

    def add(self, key: str, value: Any, ttl: float) -> bool:
        known = _read_ahead.get()
        if known is not None and known.get(key) is not None:
            return False  # present an instant ago: SET NX would refuse it
        return bool(self._redis.set(self._k(key), _dumps(value), px=self._ms(ttl), nx=True))

    def get(self, key: str) -> Any | None:
        known = _read_ahead.get()
        if known is not None and key in known:
            return known[key]
        raw = self._redis.get(self._k(key))
        return None if raw is None else json.loads(raw)

    def get_many(self, keys: list[str]) -> list[Any | None]:
        if not keys:
            return []
        known = _read_ahead.get()
        if known is not None and all(k in known for k in keys):
            return [known[k] for k in keys]
        return [None if raw is None else json.loads(raw) for raw in self._redis.mget([self._k(k) for k in keys])]

    async def aget_many(self, keys: list[str]) -> list[Any | None]:
        if not keys:
            return []
        raws = await self._async_client().call("MGET", *[self._k(k) for k in keys])
        return [None if raw is None else json.loads(raw) for raw in raws]

    async def aadd(self, key: str, value: Any, ttl: float) -> bool:
        return await self._async_client().call("SET", self._k(key), _dumps(value), "PX", self._ms(ttl), "NX") is not None

    async def adelete(self, key: str) -> None:
        await self._async_client().call("DEL", self._k(key))

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

    def cas(self, key: str, version: int, value: Any, ttl: float) -> bool:
        raw = _dumps(value)
        return bool(self._cas(keys=[self._k(key)], args=[version, raw, self._ms(ttl)]))

    def throttle_hit(self, rules: list[tuple[str, int, float]], lock_base: float | None = None, lock_max: float = 86400) -> float:
        if not rules:
            return 0.0
        keys: list[str] = []
        args: list[Any] = [self._ms(lock_base) if lock_base else 0, self._ms(lock_max), self._ms(STRIKES_TTL)]
        for key, limit, window in rules:
            keys += [self._k(key), self._k(key + ":lock"), self._k(key + ":strikes")]
            args += [int(limit), self._ms(window)]
        return int(self._throttle_hit(keys=keys, args=args)) / 1000

    def throttle_refund(self, keys: list[str]) -> None:
        if keys:
            self._throttle_refund(keys=[self._k(k) for k in keys])

    def flush_prefix(self) -> None:
        """Tests only: drop every key under this store's prefix."""
        for key in self._redis.scan_iter(self._prefix + "*", count=1000):
            self._redis.delete(key)


def _sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int, str | None]:
    from urllib.parse import unquote, urlsplit

    rest = url[len("redis+sentinel://"):]
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        password = unquote(auth.split(":", 1)[-1]) or None
    nodes = []
    for node in netloc.split(","):
        parts = urlsplit(f"//{node}")
        if not parts.hostname:
            raise ValueError(f"redis+sentinel URL: no sentinel host in {node!r}")
        nodes.append((parts.hostname, parts.port or 26379))
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ValueError("redis+sentinel URL: name the monitored service (redis+sentinel://host:26379/SERVICE)")
    return nodes, service, int(db or 0), password


def _sentinel_master(url: str) -> Any:
    """`redis+sentinel://[:password@]host:port[,host:port...]/service[/db]`: the master of
    `service` as Redis Sentinel names it, asked again after every failover, so a replica that
    takes over is used without a restart (the password, if any, is the data servers')."""
    from redis.sentinel import Sentinel

    nodes, service, db, password = _sentinel_parts(url)
    sentinel = Sentinel(nodes, socket_timeout=2, socket_connect_timeout=2)
    return sentinel.master_for(service, db=db, password=password, decode_responses=True, socket_timeout=5,
                               socket_connect_timeout=2, health_check_interval=30)


def open_store(url: str | None, clock: Callable[[], float] = time.time) -> EphemeralStore:
    if url and url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
        return RedisStore(url)
    return MemoryStore(clock)
