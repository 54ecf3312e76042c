"""The per-worker read cache of clients and resource servers (idp/store/cache.py): an edit is
seen within `ttl`, never later, and an entry running out is read from the database once, not
once per request in flight."""

from __future__ import annotations

import threading
import time

from idp.store.cache import REFRESH_AHEAD, ReadCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """The database: what it holds now, and how often it was read."""

    def __init__(self) -> None:
        self.value = "v1"
        self.reads = 0
        self.gate: threading.Event | None = None
        self.started = threading.Event()

    def load(self, key: str) -> str:
        self.reads += 1
        row = f"{key}:{self.value}"  # read now; answered when the gate opens
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(5)
        return row


def test_an_edit_is_seen_within_the_ttl_and_never_later() -> None:
    clock, source = Clock(), Source()
    cache = ReadCache(source.load, ttl=5.0, clock=clock)
    assert cache.get("app") == "app:v1"
    source.value = "v2"  # an administrator changed it
    clock.now += 5.0 * REFRESH_AHEAD - 0.01
    assert cache.get("app") == "app:v1"  # still within its lifetime
    assert cache.holds("app")
    clock.now += 5.0
    assert not cache.holds("app")  # past its lifetime: never answered from memory
    assert cache.get("app") == "app:v2"
    assert source.reads == 2


def test_misses_are_remembered_too() -> None:
    clock = Clock()
    reads = []
    cache = ReadCache(lambda key: reads.append(key), ttl=5.0, clock=clock)
    assert cache.get("nobody") is None
    assert cache.get("nobody") is None
    assert cache.holds("nobody")
    assert reads == ["nobody"]


def test_in_its_last_fifth_it_is_reloaded_once_in_the_background_while_lookups_go_on() -> None:
    clock, source = Clock(), Source()
    started: list = []
    cache = ReadCache(source.load, ttl=5.0, clock=clock, spawn=started.append)
    cache.get("app")
    source.value = "v2"
    clock.now += 5.0 * REFRESH_AHEAD + 0.1
    # Every lookup answers from the entry, still within its lifetime; one reload is started.
    assert all(cache.holds("app") for _ in range(10))
    assert [cache.get("app") for _ in range(10)] == ["app:v1"] * 10
    assert len(started) == 1 and source.reads == 1
    started[0]()  # the background reload runs
    assert source.reads == 2
    assert [cache.get("app") for _ in range(5)] == ["app:v2"] * 5
    assert cache.holds("app")
    clock.now += 5.0 * REFRESH_AHEAD - 0.2  # young again: nothing more to reload
    cache.get("app")
    assert len(started) == 1


def test_a_reload_that_failed_leaves_the_entry_to_expire_and_the_next_lookup_to_load_it() -> None:
    clock, source = Clock(), Source()
    started: list = []
    cache = ReadCache(source.load, ttl=5.0, clock=clock, spawn=started.append)
    cache.get("app")
    clock.now += 5.0 * REFRESH_AHEAD + 0.1
    cache.get("app")
    broken = cache._load
    cache._load = lambda key: (_ for _ in ()).throw(RuntimeError("database down"))
    started[0]()  # logged, not raised: no caller is waiting on it
    cache._load = broken
    assert cache.get("app") == "app:v1"  # still within its lifetime
    clock.now += 1.0
    assert not cache.holds("app")
    source.value = "v3"
    assert cache.get("app") == "app:v3"


def test_a_background_reload_never_runs_twice_at_once() -> None:
    clock, source = Clock(), Source()
    cache = ReadCache(source.load, ttl=5.0, clock=clock)  # real background threads
    cache.get("app")
    clock.now += 5.0 * REFRESH_AHEAD + 0.1
    source.gate = threading.Event()
    source.started.clear()
    assert cache.get("app") == "app:v1"
    assert source.started.wait(5)
    for _ in range(20):  # lookups while the reload is under way start no other
        assert cache.get("app") == "app:v1" and cache.holds("app")
    source.gate.set()
    deadline = time.monotonic() + 5
    while source.reads < 2 or cache._refreshing:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert source.reads == 2


def test_an_expired_entry_is_read_once_for_every_request_waiting_on_it() -> None:
    clock, source = Clock(), Source()
    cache = ReadCache(source.load, ttl=5.0, clock=clock)
    cache.get("app")
    source.value = "v2"
    clock.now += 6.0
    source.gate = threading.Event()
    source.started.clear()
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("app"))) for _ in range(16)]
    for t in threads:
        t.start()
    assert source.started.wait(5)
    time.sleep(0.05)  # the others reach the cache while the first read is still under way
    source.gate.set()
    for t in threads:
        t.join(5)
    assert results == ["app:v2"] * 16
    assert source.reads == 2  # the first fill, then one read for all sixteen


def test_a_failed_load_is_not_remembered() -> None:
    clock = Clock()
    calls = []

    def load(key: str) -> str:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("database down")
        return "back"

    cache = ReadCache(load, ttl=5.0, clock=clock)
    try:
        cache.get("app")
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failure reaches the caller")
    assert not cache.holds("app")
    assert cache.get("app") == "back"


def test_invalidation_is_seen_at_once() -> None:
    clock, source = Clock(), Source()
    cache = ReadCache(source.load, ttl=5.0, clock=clock)
    cache.get("app")
    source.value = "v2"
    cache.invalidate("app")
    assert not cache.holds("app")
    assert cache.get("app") == "app:v2"


def test_a_reload_under_way_when_an_edit_is_invalidated_does_not_bring_the_old_value_back() -> None:
    clock, source = Clock(), Source()
    started: list = []
    cache = ReadCache(source.load, ttl=5.0, clock=clock, spawn=started.append)
    assert cache.get("console") == "console:v1"
    clock.now += 5.0 * REFRESH_AHEAD + 0.1
    cache.get("console")  # the background reload is started...
    source.gate = threading.Event()
    source.started.clear()
    reload = threading.Thread(target=started[0])
    reload.start()
    assert source.started.wait(5)  # ...and has read the row as it was
    source.value = "v2"  # an administrator edits it, and the registry invalidates the entry
    cache.invalidate("console")
    source.gate.set()
    reload.join(5)
    source.gate = None
    assert cache.get("console") == "console:v2"  # not the value the reload read before the edit
