"""The directory going away, hanging and coming back: timeouts, the breaker, failover, health."""

from __future__ import annotations

import os
import signal
import time

import pytest

from connectors.base import Assertion, InvalidCredentials, UpstreamUnavailable
from connectors.ldap.sandbox import free_port

AN_LOGIN = {"username": "nguyenvanan", "password": "An@Demo2024"}


def test_directory_down_then_breaker_open_fails_fast_then_recovers(directory, make_connector, clock):
    connector = make_connector(directory, clock=clock, timeout=1, retries=0, breaker_threshold=2, breaker_reset_after=30)
    signed_in = connector.login(AN_LOGIN)
    directory.stop()

    for _ in range(2):
        with pytest.raises(UpstreamUnavailable) as down:
            connector.login(AN_LOGIN)
        assert "circuit open" not in str(down.value)
    assert connector.directory.breaker.state == "open"

    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        connector.login(AN_LOGIN)
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        connector.refresh(signed_in.subject, signed_in.connector_data)
    assert time.monotonic() - started < 0.1

    # The directory is back; after the reset window one trial call goes through and closes it.
    directory.start()
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        connector.login(AN_LOGIN)
    clock.advance(31)
    assert connector.login(AN_LOGIN).subject == signed_in.subject
    assert connector.directory.breaker.state == "closed"


def test_refused_passwords_do_not_open_the_breaker(directory, make_connector):
    connector = make_connector(directory, breaker_threshold=2)
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            connector.login({"username": "nguyenvanan", "password": "sai-mat-khau"})
    assert connector.directory.breaker.state == "closed"


def test_a_hanging_directory_times_out(directory, make_connector):
    """slapd stopped with SIGSTOP: the kernel still accepts connections, nothing answers."""
    connector = make_connector(directory, timeout=1, retries=0)
    assert directory.process is not None
    os.kill(directory.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            connector.login(AN_LOGIN)
        assert time.monotonic() - started < 5
        assert connector.health().ok is False
    finally:
        os.kill(directory.process.pid, signal.SIGCONT)
    assert isinstance(connector.login(AN_LOGIN), Assertion)


def test_failover_to_the_next_url(directory, make_connector):
    dead = f"ldap://127.0.0.1:{free_port()}"
    connector = make_connector(directory, url=[dead, directory.url], timeout=1, retries=0)
    assert connector.login(AN_LOGIN).value("name") == "Nguyễn Văn An"


def test_wrong_service_password_is_an_upstream_fault(directory, make_connector):
    connector = make_connector(directory, bind_password="not-the-service-password")
    with pytest.raises(UpstreamUnavailable, match="service bind refused"):
        connector.login(AN_LOGIN)
    assert connector.health().ok is False


def test_health(directory, make_connector):
    connector = make_connector(directory, timeout=1, retries=0)
    health = connector.health()
    assert health.ok and health.latency_ms is not None
    directory.stop()
    health = connector.health()
    assert not health.ok and health.detail
