"""The Redis memory figure of the benchmark (bench.nixa.sso_session_memory): sessions made through
the real session repository land in a Redis database of their own, two keys each, and the
figure is the growth of Redis's used_memory, per session and per 100,000."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis

from bench.nixa import sso_session_memory
from tests.conftest import free_port


@pytest.fixture
def throwaway_redis(tmp_path):  # noqa: ANN001, ANN201
    server = shutil.which("redis-server")
    assert server, "redis-server is required (scripts/bootstrap.sh installs it)"
    port = free_port()
    proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_sessions_are_made_in_their_own_database_and_measured(throwaway_redis):  # noqa: ANN001
    other = redis.Redis.from_url(throwaway_redis)
    other.set("someone-elses-key", "x")
    out = sso_session_memory(throwaway_redis, 300, threads=4)
    assert out["sessions"] == 300
    assert out["keys"] == 600  # sso:<sid>, person-sessions:<person> for each (idp/login/session.py)
    # A session document (the browser, the address, levels and times, one app) is some hundred bytes.
    assert 300 <= out["bytes_per_session"] <= 20_000
    assert out["mb_per_100k"] == pytest.approx(out["bytes_per_session"] * 100_000 / 1e6, rel=0.01)
    assert out["used_memory_after"] > out["used_memory_before"]
    assert other.get("someone-elses-key") == b"x" and other.dbsize() == 1  # database 0 untouched
    assert redis.Redis.from_url(throwaway_redis.rsplit("/", 1)[0] + "/15").dbsize() == 0  # emptied afterwards
