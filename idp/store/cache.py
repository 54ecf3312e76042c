"""A per-worker read cache for the registries on the hot path (clients, resource servers)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")
log = logging.getLogger("nixa")

# Past this share of its lifetime an entry is reloaded by one caller while the others go on
# answering from it: the hot paths never all miss at once.
REFRESH_AHEAD = 0.8


class ReadCache(Generic[V]):
    """Lookups remembered for `ttl` seconds, misses included: at most one read per key per `ttl`
    on the hot path, and an edit is seen by every worker within `ttl`. Bounded: past
    `max_entries` it starts afresh rather than grow with keys an attacker makes up.

    No entry is ever used past `ttl`. In its last fifth, the first lookup starts a reload in the
    background and every lookup goes on answering from the entry; an entry that did expire is
    loaded once, whoever else asks meanwhile waiting for that load. Without this, every request
    in flight when an entry expired (32 under the benchmark's load, every 5 s) read the database
    at once, and on Redis each of them left the event loop for the threadpool to do it."""

    def __init__(self, load: Callable[[str], V], ttl: float, max_entries: int = 10_000, *,
                 clock: Callable[[], float] = time.monotonic, spawn: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._load = load
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._spawn = spawn or _in_background
        self._entries: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()
        self._loading: dict[str, threading.Lock] = {}
        self._generation = 0  # invalidations so far: a load that began before one is not kept

    def get(self, key: str) -> V:
        hit = self._entries.get(key)
        if hit is not None and self._young(key, hit):
            return hit[1]
        return self._load_once(key, hit)

    def holds(self, key: str) -> bool:
        """Whether `get(key)` would answer from memory, without a load."""
        hit = self._entries.get(key)
        return hit is not None and self._young(key, hit)

    def _young(self, key: str, hit: tuple[float, V]) -> bool:
        age = self.clock() - hit[0]
        if age >= self.ttl:
            return False
        if age >= self.ttl * REFRESH_AHEAD:
            self._refresh_soon(key, hit)
        return True

    def _refresh_soon(self, key: str, seen: tuple[float, V]) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def refresh() -> None:
            try:
                self._load_once(key, seen)
            except Exception:  # noqa: BLE001 -- the entry expires; the next lookup loads it and meets the error
                log.warning("reloading a cached entry failed; it will be loaded when it expires", exc_info=True)
            finally:
                with self._lock:
                    self._refreshing.discard(key)

        self._spawn(refresh)

    def _load_once(self, key: str, seen: tuple[float, V] | None) -> V:
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            hit = self._entries.get(key)
            if hit is not None and hit is not seen and self.clock() - hit[0] < self.ttl:
                return hit[1]  # loaded meanwhile by the caller this one waited for
            started, generation = self.clock(), self._generation
            try:
                value = self._load(key)
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            with self._lock:
                if generation == self._generation:  # else an edit was invalidated meanwhile: what was read may predate it
                    if len(self._entries) > self.max_entries:
                        self._entries.clear()
                    self._entries[key] = (started, value)
                self._loading.pop(key, None)
            return value

    def invalidate(self, key: str | None = None) -> None:
        with self._lock:
            self._generation += 1
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)


def _in_background(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="nixa-cache-refresh", daemon=True).start()
