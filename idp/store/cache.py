"""A per-worker read cache for the registries on the hot path (clients, resource servers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class ReadCache(Generic[V]):
    """Lookups remembered for `ttl` seconds, misses included: at most one read per key per `ttl`
    on the hot path, and an edit is seen by every worker within `ttl`. Bounded: past
    `max_entries` it starts afresh rather than grow with keys an attacker makes up."""

    def __init__(self, load: Callable[[str], V], ttl: float, max_entries: int = 10_000) -> None:
        self._load = load
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        value = self._load(key)
        with self._lock:
            if len(self._entries) > self.max_entries:
                self._entries.clear()
            self._entries[key] = (now, value)
        return value

    def holds(self, key: str) -> bool:
        """Whether `get(key)` would answer from memory, without a load."""
        hit = self._entries.get(key)
        return hit is not None and time.monotonic() - hit[0] < self.ttl

    def invalidate(self, key: str | None = None) -> None:
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)
