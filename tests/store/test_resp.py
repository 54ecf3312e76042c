"""The event loop's pipelined Redis connection (idp/store/resp.py), against a real redis-server
of its own per test: replies reach the command that asked, in order, whatever the load; a
Redis that stops answering, drops the connection or refuses the handshake fails the commands
waiting with the outage errors the application answers as a 503, and the next command
reconnects. Runs in both suites (only the redis-server binary is needed)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError as RedisDown
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisSlow

from idp.store.resp import PipelinedRedis
from tests.store.test_sentinel import RedisProcess


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path / "redis", "--save", "", "--appendonly", "no",
                           "--user", "agency", "on", ">s3cret", "~*", "+@all")
    try:
        yield process
    finally:
        os.kill(process.process.pid, signal.SIGCONT)
        process.stop()


def run(coroutine):  # noqa: ANN001, ANN201
    return asyncio.run(coroutine)


def test_every_reply_reaches_the_command_that_asked_under_load(server: RedisProcess) -> None:
    """Attacker: none; the failure would be a reply handed to the wrong request, i.e. one
    person's token state or attributes answered for another's. 2,000 commands from 64 tasks at
    once, each reading its own key (some absent, some WRONGTYPE errors in between), on one
    connection: each gets its own value or its own error, none another's."""
    sync = redis.Redis(port=server.port, decode_responses=True)
    sync.mset({f"k{i}": f"v{i}" for i in range(0, 2002, 2)})
    sync.sadd("a-set", "x")

    async def main() -> None:
        r = PipelinedRedis(f"redis://127.0.0.1:{server.port}/0", asyncio.get_running_loop())

        async def one(i: int) -> None:
            if i % 7 == 0:
                with pytest.raises(ResponseError, match="WRONGTYPE"):
                    await r.call("GET", "a-set")
            got = await r.call("MGET", f"k{i}", f"k{i + 1}")
            assert got == ([f"v{i}", None] if i % 2 == 0 else [None, f"v{i + 1}"]), (i, got)

        async def worker(w: int) -> None:
            for i in range(w, 2000, 64):
                await one(i)

        await asyncio.gather(*(worker(w) for w in range(64)))
        clients = [c for c in sync.client_list() if c["name"] == "" and c["cmd"] in ("mget", "get")]
        assert len(clients) == 1, clients  # one connection carried them all
        r.close()

    run(main())


def test_a_command_whose_request_went_away_leaves_the_order_intact(server: RedisProcess) -> None:
    redis.Redis(port=server.port).mset({"a": "1", "b": "2"})

    async def main() -> None:
        r = PipelinedRedis(f"redis://127.0.0.1:{server.port}/0", asyncio.get_running_loop())
        assert await r.call("PING") == "PONG"  # connected: what follows is queued on the socket
        first = asyncio.ensure_future(r.call("GET", "a"))
        await asyncio.sleep(0)  # queued to be sent before it is cancelled; its reply will come
        first.cancel()
        assert await r.call("GET", "b") == "2"
        assert await r.call("GET", "a") == "1"
        r.close()

    run(main())


def test_a_redis_that_stops_answering_is_a_timeout_and_the_next_command_reconnects(server: RedisProcess) -> None:
    async def main() -> None:
        r = PipelinedRedis(f"redis://127.0.0.1:{server.port}/0", asyncio.get_running_loop(), timeout=0.5)
        assert await r.call("SET", "k", "1") == "OK"
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = asyncio.get_running_loop().time()
            results = await asyncio.wait_for(asyncio.gather(*(r.call("GET", "k") for _ in range(5)), return_exceptions=True), 5)
            assert all(isinstance(x, RedisSlow) for x in results), results
            assert asyncio.get_running_loop().time() - started < 2
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert await r.call("GET", "k") == "1"
        r.close()

    run(main())


def test_a_dropped_connection_fails_what_waits_on_it_and_the_next_command_reconnects(server: RedisProcess) -> None:
    sync = redis.Redis(port=server.port, decode_responses=True)

    async def main() -> None:
        r = PipelinedRedis(f"redis://127.0.0.1:{server.port}/0", asyncio.get_running_loop())
        await r.call("CLIENT", "SETNAME", "hot")
        blocked = asyncio.ensure_future(r.call("BLPOP", "nothing", "0"))  # waits on the server side
        await asyncio.sleep(0.2)
        assert sync.client_kill_filter(_id=[c for c in sync.client_list() if c["name"] == "hot"][0]["id"]) == 1
        with pytest.raises(RedisDown):
            await blocked
        assert await r.call("PING") == "PONG"
        r.close()

    run(main())


def test_a_redis_that_is_down_is_a_connection_error_not_a_hang(tmp_path: Path) -> None:
    from tests.conftest import free_port

    async def main() -> None:
        r = PipelinedRedis(f"redis://127.0.0.1:{free_port()}/0", asyncio.get_running_loop())
        results = await asyncio.gather(*(r.call("GET", "k") for _ in range(3)), return_exceptions=True)
        assert all(isinstance(x, RedisDown) for x in results), results

    run(main())


def test_the_url_s_user_password_and_database_are_used(server: RedisProcess) -> None:
    """A deployment whose Redis asks for a password (an ACL user) and keeps NIXA in a database
    of its own: the hot connection authenticates as that user and reads that database, and a
    wrong password is an outage (the store refused), never a 500 nor commands run as `default`."""
    sync = redis.Redis(port=server.port, db=3, decode_responses=True)
    sync.set("k", "in-db-3")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        r = PipelinedRedis(f"redis://agency:s3cret@127.0.0.1:{server.port}/3", loop)
        assert await r.call("GET", "k") == "in-db-3"
        assert await r.call("ACL", "WHOAMI") == "agency"
        r.close()
        wrong = PipelinedRedis(f"redis://agency:guess@127.0.0.1:{server.port}/3", loop)
        with pytest.raises(RedisDown, match="AUTH"):
            await wrong.call("GET", "k")

    run(main())


def test_a_finished_event_loop_leaves_no_connection_behind(server: RedisProcess) -> None:
    """Each event loop has its connection (a worker has one loop; a test suite starts thousands):
    when a loop is gone, so is its connection, not one open socket per loop ever run."""
    import gc

    from idp.store.ephemeral import RedisStore

    store = RedisStore(f"redis://127.0.0.1:{server.port}/0")
    sync = redis.Redis(port=server.port, decode_responses=True)
    for _ in range(20):
        assert run(store.aget_many(["nothing"])) == [None]
    gc.collect()
    assert len(store._aio) == 0
    hot = [c for c in sync.client_list() if c["cmd"] == "mget"]
    assert len(hot) <= 1, hot  # the sockets of the loops that ended were closed


def test_a_tls_redis_is_used_with_its_ca_and_a_server_this_ca_did_not_sign_is_refused(tmp_path: Path) -> None:
    """rediss:// with a private CA (`ssl_ca_certs`, the synchronous client's option too): the hot
    paths' connection verifies the server's certificate and name; attacker: someone on the path
    to Redis answering with their own certificate, to read or forge revocation markers. Against a
    CA that did not sign the server's certificate, the connection fails as an outage (a 503 on the
    hot paths), never falls back to plaintext or to no verification."""
    from idp.store.ephemeral import RedisStore
    from tests.conftest import free_port

    from connectors.sandbox_tls import write_tls_files

    write_tls_files(tmp_path / "tls", "127.0.0.1", ca_name="test redis CA")
    write_tls_files(tmp_path / "other", "127.0.0.1", ca_name="a CA that did not sign the server's certificate")
    ca, cert, key, other = (tmp_path / "tls" / "ca.pem", tmp_path / "tls" / "server.pem", tmp_path / "tls" / "server.key",
                            tmp_path / "other" / "ca.pem")
    tls_port = free_port()
    process = RedisProcess(tmp_path / "redis", "--save", "", "--appendonly", "no", "--tls-port", str(tls_port),
                           "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                           "--tls-auth-clients", "no")
    try:
        store = RedisStore(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}")
        store.put("sso:over-tls", {"person": "p1"}, 60)  # the synchronous client, same URL
        assert run(store.aget_many(["sso:over-tls", "sso:none"])) == [{"person": "p1"}, None]
        assert run(store.aadd("release:tls", 1, 60)) is True and store.get("release:tls") == 1
        impostor = RedisStore(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={other}")
        with pytest.raises(RedisDown, match="(?i)certificate"):
            run(impostor.aget_many(["sso:over-tls"]))
    finally:
        process.stop()
