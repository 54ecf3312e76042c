"""CPU per request of NIXA's own code on each hot path, without HTTP: the ASGI application is
called directly, one request after the other, and the process's CPU time (every thread, the
threadpool's included) is divided by the number of requests. No server, no load generator, no
socket: what is left is what the application costs, and it barely moves when the other core is
busy, so a change can be weighed on a shared machine before `make bench` measures it for real.

    .venv/bin/python -m bench.inproc                     # every path, embedded backend
    .venv/bin/python -m bench.inproc --backend scaleout  # PostgreSQL + Redis (NIXA's CPU only)
    .venv/bin/python -m bench.inproc --scenarios userinfo --profile   # yappi (pip install yappi): CPU per function, every thread

The framework ceiling (bench/ceiling.py, the trivial Starlette app) goes through the same driver,
so `% ceiling` reads like the one `make bench` prints."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ISSUER = "http://127.0.0.1:9"


class Driver:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[int, bytes]:
        raw_headers = [(b"host", b"127.0.0.1:9")] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        if body:
            raw_headers.append((b"content-length", str(len(body)).encode()))
        path_only, _, query = path.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
                 "path": path_only, "raw_path": path_only.encode(), "query_string": query.encode(), "root_path": "",
                 "headers": raw_headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 9)}
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        status, parts = [0], []

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status[0], b"".join(parts)


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def prepare(tmp: Path, be: Any = None) -> tuple[Any, dict[str, tuple[str, str, dict, bytes]]]:
    """`be`: a bench.nixa Backend (PostgreSQL + Redis started by bench.nixa.backend); default the
    embedded one, in `tmp`."""
    from bench.nixa import BENCH_API, BENCH_SCOPE, REDIRECT_URI, Backend, Population, seed
    from idp.app import create_app
    from idp.settings import Settings

    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    be = be or Backend("embedded", f"sqlite:///{(tmp / 'var' / 'nixa.db').as_posix()}", "")
    (tmp / "var").mkdir(parents=True, exist_ok=True)
    population = Population.make(1)
    settings = Settings(issuer=ISSUER, database_url=be.database_url, redis_url=be.redis_url, var_dir=tmp / "var", master_key=key)
    from idp.store.db import migrate

    migrate(settings.database_url)  # the schema, as `nixa migrate` makes it
    seed(be, tmp, ISSUER, key, population)
    app = create_app(settings)
    d = Driver(app)
    s = population.secrets
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cc = urlencode({"grant_type": "client_credentials", "scope": BENCH_SCOPE, "resource": BENCH_API}).encode()
    status, body = await d.request("POST", "/token", {**form, "Authorization": _basic("bench-service", s["bench-service"])}, cc)
    assert status == 200, body
    api_token = json.loads(body)["access_token"]
    user_token = await _user_token(d, population, s["bench-web"], REDIRECT_URI)
    ops = {
        "discovery": ("GET", "/.well-known/openid-configuration", {}, b""),
        "jwks": ("GET", "/jwks", {}, b""),
        "client_credentials": ("POST", "/token", {**form, "Authorization": _basic("bench-service", s["bench-service"])}, cc),
        "introspection": ("POST", "/introspect", {**form, "Authorization": _basic("bench-api", s["bench-api"])},
                          urlencode({"token": api_token, "token_type_hint": "access_token"}).encode()),
        "userinfo": ("GET", "/userinfo", {"Authorization": "Bearer " + user_token}, b""),
    }
    return app, ops


async def _user_token(d: Driver, population: Any, secret: str, redirect_uri: str) -> str:
    """A citizen's access token through the real code flow (authorize → sign-in form → token)."""
    import hashlib
    import re
    from http.cookies import SimpleCookie
    from urllib.parse import parse_qs, urlsplit

    citizen = population.citizens[-1]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    jar: dict[str, str] = {}

    async def call(method: str, url: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes, dict]:
        captured: dict[str, list[str]] = {}
        raw_headers = dict(headers or {})
        if jar:
            raw_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        original = d.app

        async def spy(scope: dict, receive: Any, send: Any) -> None:
            async def send2(message: dict) -> None:
                if message["type"] == "http.response.start":
                    for k, v in message.get("headers", []):
                        captured.setdefault(k.decode().lower(), []).append(v.decode())
                await send(message)

            await original(scope, receive, send2)

        d.app = spy
        try:
            status, out = await d.request(method, url, raw_headers, body)
        finally:
            d.app = original
        for line in captured.get("set-cookie", []):
            c = SimpleCookie()
            c.load(line)
            for k, m in c.items():
                jar[k] = m.value
        return status, out, captured

    query = urlencode({"response_type": "code", "client_id": "bench-web", "redirect_uri": redirect_uri, "scope": "openid profile email",
                       "state": "s", "nonce": "n", "code_challenge": challenge, "code_challenge_method": "S256"})
    status, body, headers = await call("GET", "/authorize?" + query)
    for _ in range(5):
        if status in (302, 303):
            loc = headers["location"][0]
            if loc.startswith(redirect_uri):
                code = parse_qs(urlsplit(loc).query)["code"][0]
                break
            parts = urlsplit(loc)
            status, body, headers = await call("GET", parts.path + ("?" + parts.query if parts.query else ""))
            continue
        html = body.decode()
        action = re.search(r'<form[^>]*action="([^"]*local[^"]*)"', html) or re.search(r'<form[^>]*action="([^"]+)"', html)
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
        fields.update(username=citizen["username"], password=citizen["password"])
        target = action.group(1).replace("&amp;", "&")
        status, body, headers = await call("POST", urlsplit(target).path + ("?" + urlsplit(target).query if urlsplit(target).query else ""),
                                           urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    else:
        raise RuntimeError(f"no code: {status} {body[:300]!r}")
    status, body, _ = await call("POST", "/token", urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                                               "code_verifier": verifier}).encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded", "Authorization": _basic("bench-web", secret)})
    assert status == 200, body
    return json.loads(body)["access_token"]


async def measure(app: Any, op: tuple[str, str, dict, bytes], n: int, concurrency: int = 1) -> tuple[float, float]:
    """CPU and wall time per request, `concurrency` requests in flight (as many tasks)."""
    d = Driver(app)
    method, path, headers, body = op
    for _ in range(min(200, n)):  # warm: caches, the threadpool, the JIT-less interpreter's own caches
        status, out = await d.request(method, path, headers, body)
        assert 200 <= status < 300, (path, status, out[:300])
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, out = await d.request(method, path, headers, body)
            assert 200 <= status < 300, (path, status, out[:300])

    cpu, wall, t0 = time.process_time(), time.perf_counter(), os.times()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    t1 = os.times()
    if os.environ.get("INPROC_SPLIT"):
        print(f"  user {(t1.user - t0.user) / n * 1e6:.0f} µs, system {(t1.system - t0.system) / n * 1e6:.0f} µs per request")
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


async def main_async(args: argparse.Namespace) -> None:
    from bench.ceiling import app as ceiling

    from bench.nixa import backend

    with tempfile.TemporaryDirectory(prefix="nixa-inproc-") as tmp, backend(args.backend, Path(tmp)) as be:
        app, ops = await prepare(Path(tmp), be)
        base_cpu, _ = await measure(ceiling, ("GET", "/.well-known/openid-configuration", {}, b""), args.requests)
        print(f"{'path':<20} {'CPU µs/req':>11} {'wall µs/req':>12} {'req/CPU-s':>10} {'% ceiling':>10}")
        print(f"{'ceiling (Starlette)':<20} {base_cpu:>11.0f} {'':>12} {1e6 / base_cpu:>10,.0f} {'':>10}")
        for name in args.scenarios.split(","):
            if args.profile:  # yappi: CPU time of every thread (the threadpool's, the audit writer's), not only the loop's
                import yappi

                yappi.set_clock_type("cpu")
                yappi.clear_stats()
                yappi.start(builtins=True)
            cpu, wall = await measure(app, ops[name], args.requests, args.concurrency)
            print(f"{name:<20} {cpu:>11.0f} {wall:>12.0f} {1e6 / cpu:>10,.0f} {100 * base_cpu / cpu:>9.0f}%")
            if args.profile:
                yappi.stop()
                stats = yappi.get_func_stats()
                stats.sort("ttot" if args.sort == "inclusive" else "tsub")
                _print_stats(stats, args.top)


def _print_stats(stats: Any, top: int) -> None:
    total = max((st.ttot for st in stats), default=1.0) or 1.0
    print(f"{'own s':>8} {'incl s':>8} {'incl %':>7} {'calls':>8}  function")
    for st in list(stats)[:top]:
        where = f"{Path(st.module).name}:{st.lineno}" if st.module else ""
        print(f"{st.tsub:8.3f} {st.ttot:8.3f} {100 * st.ttot / total:6.1f}% {st.ncall:8d}  {st.name} {where}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["embedded", "scaleout"], default="embedded",
                   help="embedded (SQLite + in-process store) or scaleout (PostgreSQL + Redis, started for the run; their CPU is not counted)")
    p.add_argument("--requests", type=int, default=3000, help="requests per path (default 3000)")
    p.add_argument("--scenarios", default="discovery,jwks,client_credentials,introspection,userinfo")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32, as make bench)")
    p.add_argument("--profile", action="store_true", help="cProfile each path; print the top entries by own time")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--sort", choices=["own", "inclusive"], default="inclusive")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
