"""The ephemeral store through Redis Sentinel (NIXA_REDIS_URL=redis+sentinel://...): a real
master, a replica and a Sentinel on free loopback ports, started by this module (only the
redis-server binary is needed, so it runs in both test runs). When the master dies, Sentinel
promotes the replica and the same store carries on against it, with what was written before."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from idp.store.ephemeral import RedisStore, open_store
from tests.conftest import free_port

SERVICE = "nixa-test"


class RedisProcess:
    def __init__(self, directory: Path, *args: str) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "out.log"
        self.process = subprocess.Popen(["redis-server", *args, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory)],
                                        stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server {' '.join(args)} did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture()
def sentinel_set(tmp_path: Path) -> Iterator[dict]:
    if not shutil.which("redis-server"):
        raise RuntimeError("redis-server not found (scripts/bootstrap.sh installs it)")
    started: list[RedisProcess] = []
    try:
        master = RedisProcess(tmp_path / "master", "--save", "", "--appendonly", "no")
        started.append(master)
        replica = RedisProcess(tmp_path / "replica", "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(master.port))
        started.append(replica)
        conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its file as it learns the set
        conf.write_text(f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 1\nsentinel down-after-milliseconds {SERVICE} 500\n"
                        f"sentinel failover-timeout {SERVICE} 5000\n")
        sentinel = RedisProcess(tmp_path / "sentinel", str(conf), "--sentinel")
        started.append(sentinel)
        yield {"master": master, "replica": replica, "sentinel": sentinel}
    finally:
        for process in started:
            process.stop()


def test_the_store_follows_the_master_across_a_failover(sentinel_set):
    master, replica, sentinel = sentinel_set["master"], sentinel_set["replica"], sentinel_set["sentinel"]
    store = open_store(f"redis+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}/0")
    assert isinstance(store, RedisStore)
    store.put("sso:before", {"person": "p1"}, 600)
    assert store.get("sso:before") == {"person": "p1"}
    redis.Redis(port=master.port).wait(1, 5000)  # the replica has the write before the master dies
    master.stop()
    deadline = time.monotonic() + 20
    while True:
        try:
            store.put("sso:after", {"person": "p2"}, 600)
            break
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ReadOnlyError):
            assert time.monotonic() < deadline, "no new master within 20 s"
            time.sleep(0.2)
    assert store.get("sso:before") == {"person": "p1"}, "what was written before the failover is gone"
    assert store.get("sso:after") == {"person": "p2"}
    assert redis.Redis(port=replica.port, decode_responses=True).info("replication")["role"] == "master"
    assert store.take("sso:after") == {"person": "p2"} and store.get("sso:after") is None


def test_the_event_loop_s_connection_follows_the_master_too(sentinel_set):
    """The hot paths' pipelined connection (idp/store/resp.py) asks Sentinel for the master
    when it (re)connects: after a failover UserInfo's read goes to the new master, and a command
    in flight when the master died fails as an outage (503), not as a hang."""
    import asyncio

    master, replica, sentinel = sentinel_set["master"], sentinel_set["replica"], sentinel_set["sentinel"]
    store = open_store(f"redis+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}/0")
    store.put("sso:before", {"person": "p1"}, 600)
    redis.Redis(port=master.port).wait(1, 5000)

    async def main() -> None:
        assert await store.aget_many(["sso:before", "sso:none"]) == [{"person": "p1"}, None]
        master.stop()
        deadline = time.monotonic() + 20
        while True:
            try:
                assert await store.aadd("release:x", 1, 600) is True
                break
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ReadOnlyError):
                assert time.monotonic() < deadline, "no new master within 20 s"
                await asyncio.sleep(0.2)
        assert await store.aget_many(["sso:before", "release:x"]) == [{"person": "p1"}, 1]

    asyncio.run(main())
    assert redis.Redis(port=replica.port, decode_responses=True).get("nixa:release:x") == "1"


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:26379", "redis+sentinel:///nixa", "redis+sentinel://127.0.0.1:26379/"])
def test_a_sentinel_url_without_hosts_or_service_is_refused(url):
    with pytest.raises(ValueError, match="redis\\+sentinel URL"):
        open_store(url)
