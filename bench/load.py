"""The load generator: asyncio + aiohttp (or httpx), one event loop per client process.

`run_scenario(spec)` is what each client process runs (bench.run starts them through a
ProcessPoolExecutor): `concurrency` tasks loop over one scenario until the deadline or the
request budget is spent, and the raw latencies come back to the parent, which merges them.

Only 127.0.0.1 is ever contacted (bench.run builds the base URL; `_check_loopback` refuses
anything else).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import resource
import secrets
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from http.cookiejar import CookieJar, CookiePolicy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

SCENARIOS = ("discovery", "jwks", "client_credentials", "introspection", "userinfo", "code_flow")
FLOW_STEPS = ("authorize", "login_page", "login_post", "token")
MAX_ERROR_SAMPLES = 3


class _NoCookies(CookiePolicy):
    """httpx keeps one cookie jar per client; the code flow keeps its own jar per flow (one
    fresh browser each), so the shared jar must never store or send anything."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


def _check_loopback(url: str) -> None:
    if urlsplit(url).hostname != "127.0.0.1":
        raise ValueError(f"the benchmark only talks to 127.0.0.1, not {url}")


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# ---- two interchangeable HTTP engines ---------------------------------------------------------------
#
# httpx is the obvious choice, but measured on the 2-core machine its per-request cost is ~3x the
# server's own (≈0.7 ms CPU per request at concurrency 1, and its pool degrades with many
# connections: ~500 req/s at concurrency 32 with the client process at 100% CPU while the server
# idles at 15%). aiohttp (C parser; installed with pyhanko-certvalidator) costs ≈0.06 ms per
# request and saturates a server worker, so it is the default; `--engine httpx` compares.


@dataclass
class Reply:
    status: int
    location: str
    set_cookies: list[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class HttpxEngine:
    name = "httpx"

    def __init__(self, base_url: str, concurrency: int, timeout: float) -> None:
        _check_loopback(base_url)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout, follow_redirects=False,
                                         cookies=CookieJar(policy=_NoCookies()), trust_env=False)

    async def request(self, method: str, path: str, *, params: dict | None = None, data: dict | None = None,
                      headers: dict | None = None) -> Reply:
        r = await self._client.request(method, path, params=params, data=data, headers=headers)
        return Reply(r.status_code, r.headers.get("location", ""), r.headers.get_list("set-cookie"), r.content)

    async def close(self) -> None:
        await self._client.aclose()


class AiohttpEngine:
    name = "aiohttp"

    def __init__(self, base_url: str, concurrency: int, timeout: float) -> None:
        import aiohttp

        _check_loopback(base_url)
        self._session = aiohttp.ClientSession(
            base_url=base_url, connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
            timeout=aiohttp.ClientTimeout(total=timeout), cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
            auto_decompress=False,
        )

    async def request(self, method: str, path: str, *, params: dict | None = None, data: dict | None = None,
                      headers: dict | None = None) -> Reply:
        async with self._session.request(method, path, params=params, data=data, headers=headers, allow_redirects=False) as r:
            body = await r.read()
            return Reply(r.status, r.headers.get("Location", ""), r.headers.getall("Set-Cookie", []), body)

    async def close(self) -> None:
        await self._session.close()


ENGINES = {"aiohttp": AiohttpEngine, "httpx": HttpxEngine}


def make_engine(name: str, base_url: str, concurrency: int, timeout: float) -> HttpxEngine | AiohttpEngine:
    return ENGINES[name](base_url, concurrency, timeout)


class FlowFailed(Exception):
    def __init__(self, label: str, body: str = "") -> None:
        super().__init__(label)
        self.label = label
        self.body = body


_CSRF = re.compile(r'name="csrf" value="([^"]*)"')
_ACTION = re.compile(r'action="([^"]+)"')


def _update_jar(jar: dict[str, str], reply: Reply) -> None:
    for header in reply.set_cookies:
        pair = header.split(";", 1)[0]
        name, _, value = pair.partition("=")
        name = name.strip()
        lowered = header.lower()
        if not value or "max-age=0" in lowered or "expires=thu, 01 jan 1970" in lowered:
            jar.pop(name, None)
        else:
            jar[name] = value.strip().strip('"')


def _cookie_header(jar: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}


def _expect(reply: Reply, status: int, step: str) -> None:
    if reply.status != status:
        raise FlowFailed(f"{step}: HTTP {reply.status}", reply.text[:300])


def _expect_redirect(reply: Reply, step: str) -> None:
    # NIXA answers 303; the reference (oidc-provider) answers its authorization redirects with 302.
    if reply.status not in (302, 303):
        raise FlowFailed(f"{step}: HTTP {reply.status}", reply.text[:300])


def _local(location: str, base_url: str) -> str | None:
    """The path (and query) of a redirect to the server itself, absolute or relative; else None."""
    if location.startswith("/"):
        return location
    if location.startswith(base_url.rstrip("/") + "/"):
        parts = urlsplit(location)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return None


MAX_HOPS = 2  # same-server redirects between the login POST and the client (the reference resumes /authorize)


async def code_flow(http: Any, ctx: dict, citizen: dict, steps: dict[str, float] | None = None,
                    scope: str = "openid profile email") -> dict:
    """One whole authorization code + PKCE flow from a fresh browser (its own cookie jar):
    GET /authorize → GET the login page → POST the local password form (csrf) → the first-party
    client needs no consent, so that redirects to the client with the code (through at most
    MAX_HOPS redirects to the server itself: the reference resumes /authorize) → POST /token.
    Returns the token response; raises FlowFailed on anything unexpected."""
    jar: dict[str, str] = {}
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    state = secrets.token_urlsafe(8)
    params = {
        "response_type": "code",
        "client_id": ctx["web_client_id"],
        "redirect_uri": ctx["redirect_uri"],
        "scope": scope,
        "state": state,
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    clock = time.perf_counter
    t0 = clock()
    r = await http.request("GET", "/authorize", params=params)
    _expect_redirect(r, "authorize")
    _update_jar(jar, r)
    login_page = _local(r.location, ctx.get("base_url", ""))
    if not login_page or not login_page.startswith("/interaction/"):
        raise FlowFailed(f"authorize: unexpected redirect {r.location[:80]}")
    t1 = clock()
    r = await http.request("GET", login_page, headers=_cookie_header(jar))
    _expect(r, 200, "login_page")
    _update_jar(jar, r)
    page = r.text
    csrf = _CSRF.search(page)
    action = next((a for a in _ACTION.findall(page) if a.endswith("/local")), None)
    if not csrf or not action:
        raise FlowFailed("login_page: no local password form", page[:300])
    t2 = clock()
    r = await http.request("POST", action, data={"csrf": csrf.group(1), "username": citizen["username"],
                                                 "password": citizen["password"]}, headers=_cookie_header(jar))
    _expect_redirect(r, "login_post")
    _update_jar(jar, r)
    for _ in range(MAX_HOPS):
        hop = None if r.location.startswith(ctx["redirect_uri"]) else _local(r.location, ctx.get("base_url", ""))
        if hop is None:
            break
        r = await http.request("GET", hop, headers=_cookie_header(jar))
        _expect_redirect(r, "login_post")
        _update_jar(jar, r)
    if not r.location.startswith(ctx["redirect_uri"]):
        raise FlowFailed(f"login_post: expected the client callback, got {r.location[:80]}")
    callback = {k: v[0] for k, v in parse_qs(urlsplit(r.location).query).items()}
    if "code" not in callback or callback.get("state") != state:
        raise FlowFailed("login_post: callback without code or with the wrong state", r.location[:300])
    t3 = clock()
    r = await http.request("POST", "/token", data={"grant_type": "authorization_code", "code": callback["code"],
                                                   "redirect_uri": ctx["redirect_uri"], "code_verifier": verifier},
                           headers={"Authorization": ctx["web_basic"]})
    _expect(r, 200, "token")
    token = r.json()
    if "access_token" not in token or "id_token" not in token:
        raise FlowFailed("token: no access_token or id_token", r.text[:300])
    t4 = clock()
    if steps is not None:
        steps.update(authorize=t1 - t0, login_page=t2 - t1, login_post=t3 - t2, token=t4 - t3)
    return token


def _operation(name: str, http: Any, ctx: dict) -> Any:
    """An async callable (worker index, steps dict) → (ok, label, body sample)."""

    def outcome(r: Reply) -> tuple[bool, str, str]:
        ok = 200 <= r.status < 300
        return ok, f"HTTP {r.status}", "" if ok else r.text[:300]

    if name == "discovery":
        async def op(i: int, steps: dict) -> tuple[bool, str, str]:
            return outcome(await http.request("GET", "/.well-known/openid-configuration"))
    elif name == "jwks":
        async def op(i: int, steps: dict) -> tuple[bool, str, str]:
            return outcome(await http.request("GET", "/jwks"))
    elif name == "client_credentials":
        headers = {"Authorization": ctx["service_basic"]}
        body = {"grant_type": "client_credentials", "scope": ctx["service_scope"], "resource": ctx["service_resource"]}

        async def op(i: int, steps: dict) -> tuple[bool, str, str]:
            return outcome(await http.request("POST", "/token", data=body, headers=headers))
    elif name == "introspection":
        # The resource server introspects the token issued for it (its audience), not the service.
        headers = {"Authorization": ctx["api_basic"]}
        body = {"token": ctx.get("introspected_token") or ctx["service_access_token"], "token_type_hint": "access_token"}

        async def op(i: int, steps: dict) -> tuple[bool, str, str]:
            r = await http.request("POST", "/introspect", data=body, headers=headers)
            ok, label, sample = outcome(r)
            if ok and r.json().get("active") is not True:
                return False, "inactive", r.text[:300]
            return ok, label, sample
    elif name == "userinfo":
        headers = {"Authorization": "Bearer " + ctx["user_access_token"]}

        async def op(i: int, steps: dict) -> tuple[bool, str, str]:
            return outcome(await http.request("GET", "/userinfo", headers=headers))
    elif name == "code_flow":
        citizens = ctx["citizens"]

        async def op(i: int, steps: dict) -> tuple[bool, str, str]:
            try:
                await code_flow(http, ctx, citizens[i % len(citizens)], steps)
            except FlowFailed as exc:
                return False, exc.label, exc.body
            return True, "ok", ""
    else:
        raise ValueError(f"unknown scenario {name}")
    return op


async def _run(spec: dict) -> dict:
    name = spec["scenario"]
    concurrency = spec["concurrency"]
    latencies = array("d")
    steps: dict[str, array] = {s: array("d") for s in FLOW_STEPS} if name == "code_flow" else {}
    labels: Counter[str] = Counter()
    samples: list[str] = []
    budget = [spec["max_requests"]]
    errors = [0]
    http = make_engine(spec["engine"], spec["base_url"], concurrency, spec["timeout"])
    try:
        op = _operation(name, http, {**spec["ctx"], "base_url": spec["base_url"]})
        started = time.time()
        t_start = time.perf_counter()
        deadline = t_start + spec["duration"]

        async def worker(i: int) -> None:
            clock = time.perf_counter
            while budget[0] > 0 and clock() < deadline:
                budget[0] -= 1
                step_times: dict[str, float] = {}
                t0 = clock()
                try:
                    ok, label, sample = await op(i, step_times)
                except Exception as exc:  # transport errors, timeouts, bad JSON: an error, counted and sampled
                    ok, label, sample = False, type(exc).__name__, str(exc)[:300]
                latencies.append(clock() - t0)
                labels[label] += 1
                if not ok:
                    errors[0] += 1
                    if len(samples) < MAX_ERROR_SAMPLES:
                        samples.append(f"{label}: {sample}")
                for k, v in step_times.items():
                    steps[k].append(v)

        tasks = [asyncio.ensure_future(worker(i + spec.get("offset", 0))) for i in range(concurrency)]
        # Bounded even if the server stalls: the deadline plus one request timeout, then cancel.
        done, pending = await asyncio.wait(tasks, timeout=spec["duration"] + spec["timeout"] + 5)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            labels["cancelled at the time limit"] += len(pending)
            errors[0] += len(pending)
        for t in done:
            if t.exception() is not None:
                labels[type(t.exception()).__name__] += 1
                errors[0] += 1
                if len(samples) < MAX_ERROR_SAMPLES:
                    samples.append(repr(t.exception())[:300])
        elapsed = time.perf_counter() - t_start
    finally:
        await http.close()
    return {
        "scenario": name,
        "started": started,
        "elapsed": elapsed,
        "latencies": latencies.tobytes(),
        "steps": {k: v.tobytes() for k, v in steps.items()},
        "labels": dict(labels),
        "errors": errors[0],
        "samples": samples,
    }


def run_scenario(spec: dict) -> dict:
    """Entry point of a client process: one scenario, returns raw results (and its own CPU)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    result = uvloop.run(_run(spec)) if uvloop is not None else asyncio.run(_run(spec))
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result
