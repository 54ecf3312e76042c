"""The event loop's Redis connection: one socket per loop, every command pipelined on it.

The hot paths (UserInfo, introspection, the release marker) make one Redis round trip each on
the event loop. Through redis.asyncio each cost ~65 µs of this process's CPU (a pooled
connection checked out and back, retry and timeout wrappers, one send and one read per command);
here the commands of all the requests in flight share one connection: those issued in one turn
of the loop leave in one write, their replies are parsed by hiredis from whatever one read
brought, and each is handed to its request in order (Redis answers a connection's commands in
the order they came) — ~8 µs. redis-py has no such mode for asyncio; hiredis (the Redis
project's own parser) does the protocol, this module only the queue.

What it keeps from the client it replaces: the same URL forms (redis://, rediss://, unix://,
redis+sentinel:// whose master is asked again at every reconnection), AUTH and SELECT, bounded
waits (a command not answered within `timeout` fails with redis.exceptions.TimeoutError and
the connection is dropped, since the replies after it could no longer be matched), and the
redis-py exceptions the application already answers as an outage (ConnectionError,
TimeoutError, ReadOnlyError: idp/app.py `_dependency_down`). A lost connection fails every
command waiting on it and the next command opens a new one.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import weakref
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisDown
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisSlow


class _Reply(Exception):
    """An error reply, as hiredis hands it over (turned into redis-py's class on delivery)."""


def _error(reply: _Reply) -> Exception:
    text = str(reply)
    return ReadOnlyError(text) if text.startswith("READONLY") else ResponseError(text)


class _Connection(asyncio.Protocol):
    def __init__(self, owner: PipelinedRedis) -> None:
        self._owner = owner
        self._reader = hiredis.Reader(encoding="utf-8", replyError=_Reply)
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._outgoing: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._watch: asyncio.TimerHandle | None = None
        self.broken: Exception | None = None

    # ---- asyncio.Protocol ----
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(RedisDown(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:
                self._fail(RedisDown("Redis answered a command it was not sent"))
                return
            future, _ = waiting.popleft()
            if future.done():  # its request went away (cancelled): the reply is dropped in order
                continue
            if isinstance(reply, _Reply):
                future.set_exception(_error(reply))
                if isinstance(future.exception(), ReadOnlyError):
                    self._fail(RedisDown("the Redis server is a replica now"))  # reconnect: ask Sentinel again
                    return
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisDown(f"connection to Redis lost: {exc}" if exc else "connection to Redis closed"))

    # ---- commands ----
    def send(self, packed: bytes, deadline: float) -> asyncio.Future[Any]:
        loop = self._owner.loop
        future = loop.create_future()
        if self.broken is not None:
            future.set_exception(self.broken)
            return future
        if not self._outgoing:
            loop.call_soon(self._flush)  # every command of this turn of the loop in one write
        self._outgoing.append(packed)
        self._waiting.append((future, deadline))
        if self._watch is None:
            self._watch = loop.call_at(deadline, self._check_deadline)
        return future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if outgoing and self._transport is not None and self.broken is None:
            self._transport.write(b"".join(outgoing))

    def _check_deadline(self) -> None:
        self._watch = None
        if not self._waiting or self.broken is not None:
            return
        head_deadline = self._waiting[0][1]
        if self._owner.loop.time() >= head_deadline:
            self._fail(RedisSlow(f"Redis did not answer within {self._owner.timeout:g} s"))
            return
        self._watch = self._owner.loop.call_at(head_deadline, self._check_deadline)

    def _fail(self, exc: Exception) -> None:
        if self.broken is None:
            self.broken = exc
        self._owner.forget(self)
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """rediss://: the same query options the synchronous client takes (redis-py's names):
    `ssl_ca_certs` (a private CA), `ssl_certfile` / `ssl_keyfile` (a client certificate),
    `ssl_cert_reqs=none` and `ssl_check_hostname=false` (verification off: for a test bench only).
    By default the server's certificate and name are verified against the system's CAs."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs") or None)
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile") or None)
    if str(options.get("ssl_check_hostname", "true")).lower() in ("false", "0", "no"):
        context.check_hostname = False
    if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class PipelinedRedis:
    """Redis for one event loop: `await r.call("MGET", k1, k2)` (see the module's docstring)."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop, timeout: float = 5.0, connect_timeout: float = 2.0) -> None:
        from redis.connection import parse_url

        # Weakly: the store keeps one of these per loop in a WeakKeyDictionary keyed by the loop,
        # which a strong reference from here would keep alive (and its socket open) forever.
        self._loop = weakref.ref(loop)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._url = url
        self._sentinel: Any = None
        if url.startswith("redis+sentinel://"):
            from redis.asyncio.sentinel import Sentinel

            from idp.store.ephemeral import _sentinel_parts

            nodes, self._service, db, password = _sentinel_parts(url)
            self._sentinel = Sentinel(nodes, socket_timeout=2, socket_connect_timeout=2)
            self._options: dict[str, Any] = {"db": db, "password": password}
        else:
            self._options = parse_url(url)
        # Weakly too: an open connection is kept alive by its loop (the selector holds its
        # transport, which holds it); held strongly here, it would keep that loop alive.
        self._connection_ref: weakref.ref[_Connection] | None = None
        self._opening: asyncio.Future[_Connection] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop()
        if loop is None:
            raise RedisDown("the event loop of this connection is gone")
        return loop

    def forget(self, connection: _Connection) -> None:
        if self._connection_ref is not None and self._connection_ref() is connection:
            self._connection_ref = None

    async def call(self, *args: Any) -> Any:
        connection = self._connection_ref() if self._connection_ref is not None else None
        if connection is None:
            connection = await self._connected()
        return await connection.send(hiredis.pack_command(args), self.loop.time() + self.timeout)

    async def _connected(self) -> _Connection:
        # One opening, in a task of its own, for every command that found no connection: a
        # request that goes away while it waits does not cancel it for the others.
        if self._opening is None:
            self._opening = self.loop.create_task(self._open_in_time())
        opening = self._opening
        try:
            connection = await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None
        return connection

    async def _open_in_time(self) -> _Connection:
        try:
            connection = await asyncio.wait_for(self._open(), self.connect_timeout + self.timeout)
        except (RedisDown, RedisSlow):
            raise
        except asyncio.TimeoutError as exc:
            raise RedisSlow("Redis did not accept a connection in time") from exc
        except Exception as exc:
            raise RedisDown(f"cannot connect to Redis: {exc!r}") from exc
        self._connection_ref = weakref.ref(connection)
        return connection

    async def _open(self) -> _Connection:
        options = self._options
        if self._sentinel is not None:
            host, port = await self._sentinel.discover_master(self._service)
            path, secure = None, False
        else:
            host, port, path = options.get("host", "localhost"), int(options.get("port", 6379)), options.get("path")
            secure = self._url.startswith("rediss://")
        factory = lambda: _Connection(self)  # noqa: E731
        try:
            if path:
                _, connection = await self.loop.create_unix_connection(factory, path)
            else:
                context = _tls_context(options) if secure else None
                _, connection = await self.loop.create_connection(factory, host, port, ssl=context)
        except OSError as exc:
            raise RedisDown(f"cannot connect to Redis: {exc}") from exc
        handshake = []
        if options.get("password"):
            handshake.append(("AUTH", *([options["username"]] if options.get("username") else []), options["password"]))
        if int(options.get("db") or 0):
            handshake.append(("SELECT", int(options["db"])))
        for command in handshake:
            try:
                await connection.send(hiredis.pack_command(command), self.loop.time() + self.timeout)
            except ResponseError as exc:  # a wrong password or database: the store is unusable, as if down
                connection._fail(RedisDown(f"Redis refused {command[0]}: {exc}"))
                raise RedisDown(f"Redis refused {command[0]}: {exc}") from exc
        return connection

    def close(self) -> None:
        connection = self._connection_ref() if self._connection_ref is not None else None
        if connection is not None:
            connection._fail(RedisDown("closed"))
