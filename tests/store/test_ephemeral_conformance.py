"""One conformance suite for the ephemeral store (idp/store/ephemeral.py), run against every
backend this run has: the in-process store always, Redis when NIXA_TEST_REDIS_URL is set
(the scale-out pass of scripts/test.sh). Whatever the login flow relies on — take-once,
add-if-absent, fixed-window counters, sets whose life only grows — must hold on both.

The in-process store runs on an injected clock so expiry tests are instant and exact; Redis
keeps its own time, so there the same tests sleep (short TTLs, bounded sleeps).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from idp.store.ephemeral import EphemeralStore, MemoryStore, RedisStore, open_store

REDIS_URL = os.environ.get("NIXA_TEST_REDIS_URL")
BACKENDS = ["memory"] + (["redis"] if REDIS_URL else [])

THREADS = 20
JOIN_TIMEOUT = 10.0


class ManualClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class Backend:
    name: str
    store: EphemeralStore
    # Let `seconds` pass for this store: move the injected clock, or really wait.
    advance: Callable[[float], None]
    # A second handle on the same state, as another worker would have.
    other_worker: Callable[[], EphemeralStore]
    url: str | None


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        clock = ManualClock()
        store = MemoryStore(clock=clock)
        # In-process state is shared by the threads of one worker: same object.
        yield Backend("memory", store, clock.advance, lambda: store, None)
        return
    assert REDIS_URL is not None
    prefix = f"nixa-test:{uuid.uuid4().hex}:"
    store = RedisStore(REDIS_URL, prefix=prefix)
    others: list[RedisStore] = []

    def other_worker() -> EphemeralStore:
        other = RedisStore(REDIS_URL, prefix=prefix)
        others.append(other)
        return other

    try:
        yield Backend("redis", store, time.sleep, other_worker, REDIS_URL)
    finally:
        store.flush_prefix()
        store._redis.close()
        for other in others:
            other._redis.close()


@pytest.fixture
def store(backend: Backend) -> EphemeralStore:
    return backend.store


@pytest.fixture
def key() -> Callable[[str], str]:
    """Keys unique to this test, so runs and tests never see each other's state."""
    base = f"t-{uuid.uuid4().hex}"
    return lambda name="k": f"{base}:{name}"


def race(worker: Callable[[int], Any], threads: int = THREADS) -> list[Any]:
    """Start `threads` callers at the same instant; return what each got (by index)."""
    start = threading.Barrier(threads)
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait(timeout=JOIN_TIMEOUT)
            results[i] = worker(i)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in pool), "a racing thread did not finish in time"
    if errors:
        raise errors[0]
    return results


# --- put / get / ttl --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"client_id": "portal", "scope": ["openid", "profile"], "nonce": None, "n": 3},
        ["a", 1, 2.5, True, None, {"nested": {"deep": [1, 2]}}],
        "plain string",
        "Cổng dịch vụ công quốc gia — đăng nhập",
        42,
        2.5,
        True,
    ],
    ids=["dict", "list", "str", "unicode", "int", "float", "bool"],
)
def test_put_then_get_round_trips_json_values(store, key, value):
    store.put(key(), value, ttl=60)
    assert store.get(key()) == value


@pytest.mark.parametrize("value", [0, "", False, [], {}], ids=["zero", "empty-str", "false", "empty-list", "empty-dict"])
def test_falsy_values_are_present_not_absent(store, key, value):
    store.put(key(), value, ttl=60)
    assert store.get(key()) == value
    assert store.add(key(), "other", ttl=60) is False
    assert store.take(key()) == value
    assert store.get(key()) is None


def test_a_stored_null_is_present(store, key):
    # add(jti, None, ttl) is a natural replay-cache call: the second one must lose.
    assert store.add(key(), None, ttl=60) is True
    assert store.add(key(), None, ttl=60) is False
    assert store.get(key()) is None
    assert store.ttl(key()) is not None
    store.put(key("p"), None, ttl=60)
    assert store.add(key("p"), "other", ttl=60) is False


def test_values_come_back_as_json(store, key):
    store.put(key("tuple"), ("a", 1), ttl=60)
    assert store.get(key("tuple")) == ["a", 1]
    store.put(key("intkeys"), {1: "one"}, ttl=60)
    assert store.get(key("intkeys")) == {"1": "one"}


@pytest.mark.parametrize("value", [{"a"}, b"bytes", object()], ids=["set", "bytes", "object"])
def test_non_json_values_are_refused(store, key, value):
    with pytest.raises(TypeError):
        store.put(key(), value, ttl=60)
    with pytest.raises(TypeError):
        store.add(key(), value, ttl=60)
    assert store.get(key()) is None


def test_missing_key_reads_as_none(store, key):
    assert store.get(key()) is None
    assert store.take(key()) is None
    assert store.ttl(key()) is None
    assert store.smembers(key()) == set()


def test_keys_are_independent(store, key):
    store.put(key("a"), "A", ttl=60)
    store.put(key("b"), "B", ttl=60)
    assert store.get(key("a")) == "A"
    assert store.get(key("b")) == "B"
    store.delete(key("a"))
    assert store.get(key("a")) is None
    assert store.get(key("b")) == "B"


def test_put_replaces_value_and_ttl(store, key):
    store.put(key(), {"v": 1}, ttl=600)
    store.put(key(), {"v": 2}, ttl=30)
    assert store.get(key()) == {"v": 2}
    assert 0 < store.ttl(key()) <= 30


def test_ttl_reports_seconds_left(store, key, backend):
    store.put(key(), "x", ttl=60)
    left = store.ttl(key())
    assert left is not None and 59 <= left <= 60
    backend.advance(0.3)
    later = store.ttl(key())
    assert later is not None and later < left


def test_value_expires_after_ttl(store, key, backend):
    store.put(key(), {"code": "abc"}, ttl=0.3)
    assert store.get(key()) == {"code": "abc"}
    backend.advance(0.45)
    assert store.get(key()) is None
    assert store.ttl(key()) is None
    assert store.take(key()) is None


def test_delete_removes_and_is_idempotent(store, key):
    store.put(key(), "x", ttl=60)
    store.delete(key())
    assert store.get(key()) is None
    store.delete(key())  # deleting what is not there is not an error
    assert store.get(key()) is None


# --- add (add-if-absent) ----------------------------------------------------------------------


def test_add_stores_only_when_absent(store, key):
    assert store.add(key(), {"first": True}, ttl=60) is True
    assert store.add(key(), {"second": True}, ttl=60) is False
    assert store.get(key()) == {"first": True}


def test_add_does_not_extend_the_existing_ttl(store, key):
    assert store.add(key(), "x", ttl=30) is True
    assert store.add(key(), "x", ttl=600) is False
    assert store.ttl(key()) <= 30


def test_add_over_a_put_value_fails(store, key):
    store.put(key(), "x", ttl=60)
    assert store.add(key(), "y", ttl=60) is False
    assert store.get(key()) == "x"


def test_add_succeeds_again_after_expiry(store, key, backend):
    assert store.add(key(), "old", ttl=0.3) is True
    backend.advance(0.45)
    assert store.add(key(), "new", ttl=60) is True
    assert store.get(key()) == "new"


def test_add_succeeds_again_after_take_or_delete(store, key):
    assert store.add(key(), 1, ttl=60) is True
    assert store.take(key()) == 1
    assert store.add(key(), 2, ttl=60) is True
    store.delete(key())
    assert store.add(key(), 3, ttl=60) is True


def test_concurrent_add_has_exactly_one_winner(backend, key):
    handles = [backend.store, backend.other_worker()]
    for round_ in range(5):
        k = key(f"jti-{round_}")
        won = race(lambda i: handles[i % 2].add(k, {"by": i}, ttl=60))
        assert won.count(True) == 1
        winner = won.index(True)
        assert backend.store.get(k) == {"by": winner}


# --- take (consume once) ----------------------------------------------------------------------


def test_take_returns_the_value_once(store, key):
    store.put(key(), {"code": "c0de"}, ttl=60)
    assert store.take(key()) == {"code": "c0de"}
    assert store.take(key()) is None
    assert store.get(key()) is None


def test_concurrent_take_gives_the_value_to_exactly_one_caller(backend, key):
    # An authorization code redeemed twice at the same instant: one winner, ever.
    handles = [backend.store, backend.other_worker()]
    for round_ in range(10):
        k = key(f"code-{round_}")
        backend.store.put(k, {"round": round_}, ttl=60)
        got = race(lambda i: handles[i % 2].take(k))
        winners = [g for g in got if g is not None]
        assert winners == [{"round": round_}]
        assert backend.store.get(k) is None


def test_take_of_an_expired_value_returns_none(store, key, backend):
    store.put(key(), "x", ttl=0.3)
    backend.advance(0.45)
    assert store.take(key()) is None


# --- copies -----------------------------------------------------------------------------------


def test_stored_value_is_a_copy_of_what_was_put(store, key):
    original = {"claims": {"name": "Nguyễn Văn A"}, "amr": ["pwd"]}
    store.put(key(), original, ttl=60)
    original["claims"]["name"] = "changed"
    original["amr"].append("otp")
    assert store.get(key()) == {"claims": {"name": "Nguyễn Văn A"}, "amr": ["pwd"]}


def test_returned_values_are_not_shared_with_the_store(store, key):
    store.put(key(), {"claims": {"name": "A"}, "amr": ["pwd"]}, ttl=60)
    first = store.get(key())
    first["claims"]["name"] = "changed"
    first["amr"].append("otp")
    assert store.get(key()) == {"claims": {"name": "A"}, "amr": ["pwd"]}

    store.put(key("list"), [{"a": 1}], ttl=60)
    got = store.get(key("list"))
    got[0]["a"] = 2
    assert store.get(key("list")) == [{"a": 1}]


def test_add_stores_a_copy(store, key):
    original = {"v": [1]}
    assert store.add(key(), original, ttl=60) is True
    original["v"].append(2)
    assert store.get(key()) == {"v": [1]}


# --- incr (fixed-window counters) -------------------------------------------------------------


def test_incr_counts_from_one(store, key):
    assert [store.incr(key(), ttl=60) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert store.get(key()) == 5
    assert 0 < store.ttl(key()) <= 60


def test_counters_are_independent(store, key):
    store.incr(key("a"), ttl=60)
    store.incr(key("a"), ttl=60)
    assert store.incr(key("b"), ttl=60) == 1


def test_concurrent_incr_loses_no_increment(backend, key):
    per_thread = 50
    handles = [backend.store, backend.other_worker()]
    k = key("attempts")

    def hammer(i: int) -> list[int]:
        return [handles[i % 2].incr(k, ttl=60) for _ in range(per_thread)]

    seen = race(hammer, threads=8)
    values = sorted(v for chunk in seen for v in chunk)
    assert values == list(range(1, 8 * per_thread + 1))  # every value handed out once
    assert backend.store.get(k) == 8 * per_thread


def test_counter_window_is_fixed_from_the_first_increment(store, key, backend):
    # A sliding window would let a steady trickle of attempts never reset; ours is fixed.
    assert store.incr(key(), ttl=0.6) == 1
    backend.advance(0.35)
    assert store.incr(key(), ttl=0.6) == 2
    backend.advance(0.35)  # 0.7 s after the first increment: the window is over
    assert store.incr(key(), ttl=0.6) == 1


def test_counter_expires_after_its_window(store, key, backend):
    store.incr(key(), ttl=0.3)
    store.incr(key(), ttl=0.3)
    backend.advance(0.45)
    assert store.get(key()) is None
    assert store.ttl(key()) is None
    assert store.incr(key(), ttl=60) == 1


# --- sets -------------------------------------------------------------------------------------


def test_sadd_smembers_srem(store, key):
    store.sadd(key(), "session-1", ttl=60)
    store.sadd(key(), "session-2", ttl=60)
    store.sadd(key(), "session-1", ttl=60)  # adding twice is adding once
    assert store.smembers(key()) == {"session-1", "session-2"}
    store.srem(key(), "session-1")
    assert store.smembers(key()) == {"session-2"}
    store.srem(key(), "not-a-member")
    assert store.smembers(key()) == {"session-2"}


def test_removing_the_last_member_removes_the_set(store, key):
    store.sadd(key(), "only", ttl=60)
    store.srem(key(), "only")
    assert store.smembers(key()) == set()
    assert store.ttl(key()) is None


def test_srem_on_a_missing_set_is_not_an_error(store, key):
    store.srem(key(), "x")
    assert store.smembers(key()) == set()


def test_smembers_returns_a_copy(store, key):
    store.sadd(key(), "a", ttl=60)
    members = store.smembers(key())
    members.add("b")
    assert store.smembers(key()) == {"a"}


def test_sadd_extends_the_set_ttl(store, key):
    store.sadd(key(), "a", ttl=10)
    store.sadd(key(), "b", ttl=600)
    assert store.ttl(key()) > 500


def test_sadd_never_shortens_the_set_ttl(store, key):
    store.sadd(key(), "a", ttl=600)
    store.sadd(key(), "b", ttl=1)
    assert store.ttl(key()) > 500
    assert store.smembers(key()) == {"a", "b"}


def test_srem_keeps_the_set_ttl(store, key):
    store.sadd(key(), "a", ttl=600)
    store.sadd(key(), "b", ttl=600)
    store.srem(key(), "a")
    assert store.ttl(key()) > 500


def test_set_expires_after_its_ttl(store, key, backend):
    store.sadd(key(), "a", ttl=0.3)
    backend.advance(0.45)
    assert store.smembers(key()) == set()
    store.sadd(key(), "b", ttl=60)
    assert store.smembers(key()) == {"b"}


def test_sadd_late_member_keeps_the_set_alive(store, key, backend):
    store.sadd(key(), "a", ttl=0.4)
    backend.advance(0.25)
    store.sadd(key(), "b", ttl=0.4)
    backend.advance(0.25)  # past the first TTL, within the extended one
    assert store.smembers(key()) == {"a", "b"}


def test_concurrent_sadd_keeps_every_member(backend, key):
    handles = [backend.store, backend.other_worker()]
    k = key("sessions")
    race(lambda i: handles[i % 2].sadd(k, f"m{i}", ttl=60))
    assert backend.store.smembers(k) == {f"m{i}" for i in range(THREADS)}


# --- several workers, health, wiring ----------------------------------------------------------


def test_another_worker_sees_the_same_state(backend, key):
    other = backend.other_worker()
    backend.store.put(key("pending"), {"state": "s"}, ttl=60)
    assert other.get(key("pending")) == {"state": "s"}
    assert other.take(key("pending")) == {"state": "s"}
    assert backend.store.get(key("pending")) is None
    other.incr(key("n"), ttl=60)
    assert backend.store.incr(key("n"), ttl=60) == 2
    other.sadd(key("set"), "x", ttl=60)
    assert backend.store.smembers(key("set")) == {"x"}


def test_ping(store):
    assert store.ping() is True


def test_open_store_picks_the_backend_from_the_url(backend):
    opened = open_store(backend.url)
    expected = {"memory": MemoryStore, "redis": RedisStore}[backend.name]
    assert isinstance(opened, expected)
    assert opened.ping() is True
    if isinstance(opened, RedisStore):
        opened._redis.close()


def test_memory_store_default_clock_expires_in_real_time(key):
    # The suite above runs the in-process store on a manual clock; this checks the default.
    store = MemoryStore()
    store.put(key(), "x", ttl=0.2)
    assert store.get(key()) == "x"
    time.sleep(0.3)
    assert store.get(key()) is None


def test_redis_ping_is_false_when_the_server_is_unreachable():
    # Health checks call ping(); an unreachable Redis must read as unhealthy, not raise.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        unreachable = RedisStore(f"redis://127.0.0.1:{port}/0")
        started = time.monotonic()
        assert unreachable.ping() is False
        assert time.monotonic() - started < 10


def test_get_many_reads_several_keys_in_order(store, key):
    store.put(key("a"), {"n": 1}, 30)
    store.put(key("c"), "x", 30)
    assert store.get_many([key("a"), key("b"), key("c")]) == [{"n": 1}, None, "x"]
    assert store.get_many([]) == []
    got = store.get_many([key("a")])[0]
    got["n"] = 2
    assert store.get(key("a")) == {"n": 1}  # a copy, as get() gives


# --- cas (compare-and-set on a version field) -------------------------------------------------


def test_cas_replaces_only_the_matching_version(store, key):
    store.put(key(), {"v": 1, "steps": ["pwd"]}, ttl=60)
    assert store.cas(key(), 0, {"v": 1, "steps": ["x"]}, ttl=60) is False
    assert store.cas(key(), 2, {"v": 3, "steps": ["x"]}, ttl=60) is False
    assert store.get(key()) == {"v": 1, "steps": ["pwd"]}
    assert store.cas(key(), 1, {"v": 2, "steps": ["pwd", "otp"]}, ttl=60) is True
    assert store.get(key()) == {"v": 2, "steps": ["pwd", "otp"]}
    assert store.cas(key(), 1, {"v": 2, "steps": ["lost"]}, ttl=60) is False  # a stale writer loses
    assert store.get(key()) == {"v": 2, "steps": ["pwd", "otp"]}


def test_cas_on_an_absent_key_stores_nothing(store, key):
    assert store.cas(key(), 0, {"v": 1}, ttl=60) is False
    assert store.get(key()) is None
    assert store.ttl(key()) is None


def test_cas_on_an_expired_key_stores_nothing(store, key, backend):
    store.put(key(), {"v": 4}, ttl=0.3)
    backend.advance(0.45)
    assert store.cas(key(), 4, {"v": 5}, ttl=60) is False
    assert store.get(key()) is None


def test_cas_an_object_without_v_is_version_zero(store, key):
    store.put(key(), {"client_id": "portal"}, ttl=60)
    assert store.cas(key(), 1, {"v": 2}, ttl=60) is False
    assert store.cas(key(), 0, {"v": 1, "client_id": "portal"}, ttl=60) is True
    assert store.get(key()) == {"v": 1, "client_id": "portal"}
    store.put(key("null"), {"v": None}, ttl=60)
    assert store.cas(key("null"), 0, {"v": 1}, ttl=60) is True


@pytest.mark.parametrize("value", [[1, 2], [], "text", 7, None, {"v": "1"}], ids=["list", "empty-list", "str", "int", "null", "str-v"])
def test_cas_never_replaces_anything_but_a_versioned_object(store, key, value):
    store.put(key(), value, ttl=60)
    assert store.cas(key(), 0, {"v": 1}, ttl=60) is False
    assert store.cas(key(), 1, {"v": 2}, ttl=60) is False
    assert store.get(key()) == value


def test_cas_sets_the_new_ttl(store, key):
    store.put(key(), {"v": 0}, ttl=600)
    assert store.cas(key(), 0, {"v": 1}, ttl=30) is True
    assert 0 < store.ttl(key()) <= 30


def test_cas_stores_a_copy_and_refuses_non_json(store, key):
    store.put(key(), {"v": 0}, ttl=60)
    new = {"v": 1, "amr": ["pwd"]}
    assert store.cas(key(), 0, new, ttl=60) is True
    new["amr"].append("otp")
    assert store.get(key()) == {"v": 1, "amr": ["pwd"]}
    with pytest.raises(TypeError):
        store.cas(key(), 1, {"v": 2, "bad": {"a"}}, ttl=60)
    assert store.get(key()) == {"v": 1, "amr": ["pwd"]}


def test_concurrent_read_then_cas_has_exactly_one_winner_per_version(backend, key):
    handles = [backend.store, backend.other_worker()]
    k = key("pending")
    backend.store.put(k, {"v": 0, "log": []}, ttl=60)

    def read_then_cas(i: int) -> tuple[int, bool]:
        store = handles[i % 2]
        current = store.get(k)
        version = current["v"]
        won = store.cas(k, version, {"v": version + 1, "log": current["log"] + [i]}, ttl=60)
        return version, won

    results = race(read_then_cas)
    winners = [(i, version) for i, (version, won) in enumerate(results) if won]
    for version in {v for v, _ in results}:
        assert sum(1 for _, v in winners if v == version) == 1, f"version {version}"
    final = backend.store.get(k)
    assert final["v"] == len(winners) >= 1
    # No lost update: every winner's step is there, in the order of the versions they won.
    assert final["log"] == [i for i, _ in sorted(winners, key=lambda w: w[1])]


def test_concurrent_cas_retry_loops_lose_no_update(backend, key):
    handles = [backend.store, backend.other_worker()]
    k = key("pending")
    backend.store.put(k, {"v": 0, "log": []}, ttl=60)

    def add_step(i: int) -> int:
        store = handles[i % 2]
        for tries in range(1, 1000):
            current = store.get(k)
            if store.cas(k, current["v"], {"v": current["v"] + 1, "log": current["log"] + [i]}, ttl=60):
                return tries
        raise AssertionError("never won")

    race(add_step)
    final = backend.store.get(k)
    assert final["v"] == THREADS
    assert sorted(final["log"]) == list(range(THREADS))


# --- throttle_hit / throttle_refund -----------------------------------------------------------


def test_throttle_hit_of_40_concurrent_attempts_lets_exactly_the_limit_through(backend, key):
    handles = [backend.store, backend.other_worker()]
    k = key("acct")
    results = race(lambda i: handles[i % 2].throttle_hit([(k, 10, 60)]), threads=40)
    assert results.count(0.0) == 10
    assert all(r > 0 for r in results if r != 0.0)
    assert len(results) == 40


def test_throttle_hit_counts_every_rule_and_locks_the_one_over_its_limit(store, key):
    a, b = key("account"), key("address")
    assert store.throttle_hit([(a, 2, 60), (b, 100, 60)]) == 0.0
    assert store.throttle_hit([(a, 2, 60), (b, 100, 60)]) == 0.0
    assert store.get(a) == 2 and store.get(b) == 2
    locked = store.throttle_hit([(a, 2, 60), (b, 100, 60)])
    assert 59 < locked <= 60  # the first lock lasts one window
    assert store.get(a) is None  # the counter over its limit was reset ...
    assert store.get(b) == 3  # ... the others keep counting
    assert store.get(a + ":strikes") == 1
    assert 59 < store.ttl(a + ":lock") <= 60
    # While a lock is live nothing is counted, on any rule of the call.
    again = store.throttle_hit([(a, 2, 60), (b, 100, 60)])
    assert 0 < again <= locked + 0.001
    assert store.get(a) is None and store.get(b) == 3
    # The lock of one key stops a call that names it with other keys, not calls without it.
    assert store.throttle_hit([(b, 100, 60), (a, 1000, 60)]) > 0
    assert store.throttle_hit([(b, 100, 60)]) == 0.0
    assert store.get(b) == 4


def test_throttle_hit_returns_the_longest_lock(store, key):
    a, b = key("short"), key("long")
    assert store.throttle_hit([(a, 0, 10), (b, 0, 100)]) == pytest.approx(100, abs=0.01)
    assert 10 - 0.01 < store.ttl(a + ":lock") <= 10
    assert store.throttle_hit([(a, 5, 10)]) == pytest.approx(10, abs=0.05)


def test_throttle_lock_backs_off_exponentially(store, key, backend):
    k = key("acct")
    window = 0.3
    locks = []
    for strike in range(1, 4):
        assert store.throttle_hit([(k, 2, window)]) == 0.0
        assert store.throttle_hit([(k, 2, window)]) == 0.0
        lock = store.throttle_hit([(k, 2, window)])
        locks.append(lock)
        assert store.get(k + ":strikes") == strike
        # Locked: refused without counting, until the lock runs out.
        assert 0 < store.throttle_hit([(k, 2, window)]) <= lock + 0.001
        assert store.get(k) is None
        backend.advance(lock + 0.1)
    assert locks[0] == pytest.approx(0.3, abs=0.01)
    assert locks[1] == pytest.approx(0.6, abs=0.01)
    assert locks[2] == pytest.approx(1.2, abs=0.01)
    assert 86400 - 5 < store.ttl(k + ":strikes") <= 86400


def test_throttle_lock_base_and_lock_max(store, key, backend):
    k = key("acct")
    seen = []
    for _ in range(4):
        assert store.throttle_hit([(k, 0, 3600)], lock_base=0.1, lock_max=0.35) > 0  # limit 0: locks at once
        seen.append(store.ttl(k + ":lock"))
        backend.advance(seen[-1] + 0.05)
    assert seen[0] == pytest.approx(0.1, abs=0.02)
    assert seen[1] == pytest.approx(0.2, abs=0.02)
    assert seen[2] == pytest.approx(0.35, abs=0.02)  # 0.4 capped at lock_max
    assert seen[3] == pytest.approx(0.35, abs=0.02)


def test_throttle_counter_window_is_fixed(store, key, backend):
    k = key("acct")
    for _ in range(3):
        assert store.throttle_hit([(k, 3, 0.3)]) == 0.0
    assert 0 < store.ttl(k) <= 0.3
    backend.advance(0.45)  # the window is over: a fresh count, no lock was earned
    for _ in range(3):
        assert store.throttle_hit([(k, 3, 0.3)]) == 0.0
    assert store.get(k + ":strikes") is None


def test_throttle_refund_gives_one_attempt_back_never_below_zero(store, key):
    k, other = key("acct"), key("addr")
    for _ in range(3):
        assert store.throttle_hit([(k, 3, 60), (other, 3, 60)]) == 0.0
    store.throttle_refund([k, other])
    assert store.get(k) == 2 and store.get(other) == 2
    assert 0 < store.ttl(k) <= 60  # the window is kept
    assert store.throttle_hit([(k, 3, 60)]) == 0.0  # the refunded attempt is free again
    assert store.throttle_hit([(k, 3, 60)]) > 0
    for _ in range(5):
        store.throttle_refund([other])
    assert store.get(other) == 0
    store.throttle_refund([key("never-counted")])
    assert store.get(key("never-counted")) is None
    store.throttle_refund([])


def test_throttle_refund_during_a_lock_does_not_lift_it(store, key):
    k = key("acct")
    store.throttle_hit([(k, 0, 60)])
    store.throttle_refund([k])
    assert store.get(k) is None
    assert store.throttle_hit([(k, 5, 60)]) > 0
