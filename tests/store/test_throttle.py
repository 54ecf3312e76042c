"""The throttle service (idp/store/throttle.py) over every store backend this run has: which
attempts count against which limits, that canonical identifiers share a counter, that a weaker
method never locks a stronger one, and the address reduction (IPv6 by /64)."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator

import pytest

from idp.settings import Settings
from idp.store.ephemeral import MemoryStore, RedisStore
from idp.store.throttle import Throttle, address_key

REDIS_URL = os.environ.get("NIXA_TEST_REDIS_URL")
BACKENDS = ["memory"] + (["redis"] if REDIS_URL else [])
L = 3  # login_attempts_per_window in these tests


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[object]:
    if request.param == "memory":
        yield MemoryStore(Clock())
        return
    redis_store = RedisStore(REDIS_URL, prefix=f"nixa-test:{uuid.uuid4().hex}:")
    try:
        yield redis_store
    finally:
        redis_store.flush_prefix()
        redis_store._redis.close()


@pytest.fixture
def throttle(store) -> Throttle:  # noqa: ANN001
    return Throttle(store, Settings(login_attempts_per_window=L, login_window=60, sms_per_address_per_hour=4, sms_per_request=3,
                                    sms_global_per_hour=1000))


def attempt(throttle: Throttle, identifier: str = "nguyenvanan", ip: str | None = "203.0.113.1", *, method: str = "ldap",
            level: int = 1, request_id: str | None = None) -> int:
    return throttle.secret_attempt(method=method, level=level, identifier=identifier, ip=ip, request_id=request_id)


# ---- address_key -------------------------------------------------------------------------------


def test_ipv4_is_kept_as_is() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("203.0.113.7") != address_key("203.0.113.8")


def test_ipv6_is_reduced_to_its_64() -> None:
    a = address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd")
    assert a == address_key("2001:db8:1:2::1") == address_key("2001:0db8:0001:0002:0000:0000:0000:ffff")
    assert a == "2001:db8:1:2::/64"
    assert a != address_key("2001:db8:1:3::1")


def test_ipv4_mapped_ipv6_is_the_ipv4_address() -> None:
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"


def test_not_an_address_still_gets_a_bounded_key_of_its_own() -> None:
    key = address_key("testclient" * 100)
    assert key.startswith("other-") and len(key) < 64
    assert key != address_key("otherclient")


# ---- secret attempts ---------------------------------------------------------------------------


def test_the_account_at_one_address_is_allowed_the_limit_then_locked(throttle: Throttle) -> None:
    assert [attempt(throttle) for _ in range(L)] == [0] * L
    wait = attempt(throttle)
    assert 59 <= wait <= 60  # one window, whole seconds
    assert attempt(throttle) > 0  # still locked


def on_a_clock() -> tuple[Throttle, Clock]:
    # Lock lengths of minutes and hours, on the in-process store and a clock the test moves (the
    # store conformance suite checks the same backoff on Redis with short windows).
    clock = Clock()
    return Throttle(MemoryStore(clock), Settings(login_attempts_per_window=L, login_window=60)), clock


def test_the_lock_backs_off() -> None:
    throttle, clock = on_a_clock()
    for expected in (60, 120, 240):
        assert [attempt(throttle) for _ in range(L)] == [0] * L
        assert attempt(throttle) == expected
        clock.now += expected + 1


def test_a_weaker_method_never_locks_a_stronger_one(throttle: Throttle) -> None:
    for _ in range(L + 1):
        attempt(throttle, method="local", level=1)
    assert attempt(throttle, method="local", level=1) > 0
    assert attempt(throttle, method="local", level=2) == 0  # same method at a higher level
    assert attempt(throttle, method="ldap", level=1) == 0  # another method


def test_the_account_is_limited_across_addresses(throttle: Throttle) -> None:
    # Distributed guessing: each address stays under its own limit, the account does not.
    allowed = 0
    for i in range(100):
        if attempt(throttle, ip=f"198.51.100.{i}") == 0:
            allowed += 1
        else:
            break
    assert allowed == 5 * L
    assert attempt(throttle, ip="192.0.2.200") > 0
    assert attempt(throttle, identifier="someone-else", ip="192.0.2.200") == 0


def test_one_address_is_limited_across_accounts(throttle: Throttle) -> None:
    allowed = sum(1 for i in range(10 * L) if attempt(throttle, identifier=f"user{i}") == 0)
    assert allowed == 10 * L
    assert attempt(throttle, identifier="user-new") > 0
    assert attempt(throttle, identifier="user-new", ip="203.0.113.2") == 0


def test_addresses_in_one_ipv6_64_share_their_limit(throttle: Throttle) -> None:
    for i in range(L):
        assert attempt(throttle, ip=f"2001:db8:5:6::{i + 1:x}") == 0
    assert attempt(throttle, ip="2001:db8:5:6:ffff::1") > 0
    assert attempt(throttle, ip="2001:db8:5:7::1") == 0


def test_one_pending_request_is_limited_across_accounts(throttle: Throttle) -> None:
    allowed = sum(1 for i in range(4 * L) if attempt(throttle, identifier=f"u{i}", ip=f"198.51.100.{i}", request_id="req") == 0)
    assert allowed == 2 * L
    assert attempt(throttle, identifier="fresh", ip="192.0.2.9", request_id="other-req") == 0


def test_without_an_address_the_account_limits_still_hold(throttle: Throttle) -> None:
    assert [attempt(throttle, ip=None) for _ in range(5 * L)] == [0] * (5 * L)
    assert attempt(throttle, ip=None) > 0


def test_a_success_gives_the_attempt_back(throttle: Throttle) -> None:
    for _ in range(4 * L):
        assert attempt(throttle) == 0
        throttle.secret_succeeded(method="ldap", level=1, identifier="nguyenvanan", ip="203.0.113.1", request_id=None)
    assert [attempt(throttle) for _ in range(L)] == [0] * L
    assert attempt(throttle) > 0


def test_concurrent_guesses_get_exactly_the_limit(throttle: Throttle) -> None:
    results: list[int] = []
    barrier = threading.Barrier(40)
    lock = threading.Lock()

    def guess() -> None:
        barrier.wait(timeout=10)
        got = attempt(throttle)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 40 and results.count(0) == L


def test_identifiers_are_stored_only_hashed(throttle: Throttle, store) -> None:  # noqa: ANN001
    attempt(throttle, identifier="001090000001", request_id="pending-abc")
    throttle.send_attempt(channel="telecom", destination="+84912345678", ip="203.0.113.1", request_id="pending-abc", per_destination=5)
    if isinstance(store, MemoryStore):
        keys = list(store._data)
    else:
        keys = list(store._redis.scan_iter(store._prefix + "*"))
    dump = json.dumps(keys)
    assert "001090000001" not in dump and "912345678" not in dump and "pending-abc" not in dump
    assert any(":ldap:1:" in k for k in keys)


# ---- sends ---------------------------------------------------------------------------------------


def send(throttle: Throttle, destination: str | None = "+84912345678", ip: str | None = "203.0.113.1", *,
         channel: str = "telecom", request_id: str | None = None, per_destination: int = 2) -> int:
    return throttle.send_attempt(channel=channel, destination=destination, ip=ip, request_id=request_id, per_destination=per_destination)


def test_sends_per_destination(throttle: Throttle) -> None:
    assert [send(throttle, ip=f"198.51.100.{i}") for i in range(2)] == [0, 0]
    wait = send(throttle, ip="198.51.100.9")
    assert 3599 <= wait <= 3600
    assert send(throttle, destination="+84912345679", ip="198.51.100.10") == 0
    assert send(throttle, channel="telecom:notice", ip="198.51.100.11") == 0  # its own channel


def test_sends_per_address_across_destinations_and_channels(throttle: Throttle) -> None:
    got = [send(throttle, destination=f"+8491234560{i}", channel=("telecom", "telecom:notice")[i % 2]) for i in range(6)]
    assert got[:4] == [0, 0, 0, 0] and all(w > 0 for w in got[4:])


def test_sends_per_request(throttle: Throttle) -> None:
    got = [send(throttle, destination=f"+8491234570{i}", ip=f"198.51.100.{i}", request_id="r1") for i in range(4)]
    assert got[:3] == [0, 0, 0] and got[3] > 0


def test_sends_globally(store) -> None:  # noqa: ANN001
    throttle = Throttle(store, Settings(sms_global_per_hour=3))
    got = [send(throttle, destination=f"+8491234580{i}", ip=f"198.51.100.{i}") for i in range(4)]
    assert got[:3] == [0, 0, 0] and got[3] > 0
    assert send(throttle, destination="+84912345900", ip=None) > 0


def test_send_locks_do_not_back_off() -> None:
    throttle, clock = on_a_clock()
    for _ in range(3):
        assert [send(throttle, ip=None) for _ in range(2)] == [0, 0]
        assert send(throttle, ip=None) == 3600
        clock.now += 3601


def test_a_connectors_own_rule_is_namespaced(throttle: Throttle, store) -> None:  # noqa: ANN001
    assert throttle.attempt([("cert:serial-1", 1, 60)]) == 0
    assert throttle.attempt([("cert:serial-1", 1, 60)]) == 60
    assert store.get("throttle:own:cert:serial-1:strikes") == 1
    assert store.get("cert:serial-1:lock") is None
    assert throttle.attempt([]) == 0
