"""Calls to external systems: timeouts, bounded retries and a circuit breaker, in one place;
for URLs someone else chose, also the fetch policy (safe_fetch.py), a response size cap and a
short negative cache.

The breaker is per worker on purpose (like every client-side breaker): it protects this worker
from piling requests on a sick upstream; no other worker needs its state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.base import UpstreamUnavailable
from connectors.safe_fetch import FetchPolicy, FetchRefused


class CircuitBreaker:
    """closed → (failures ≥ threshold) → open → (after reset_after) → half-open → one trial."""

    def __init__(self, threshold: int = 5, reset_after: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_after:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        with self._lock:
            state = self._state()
            if state == "half-open":
                # One trial call; push the window so concurrent callers stay out meanwhile.
                self._opened_at = self._clock()
                return True
            return state == "closed"

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                self._opened_at = self._clock()


class ResilientHttp:
    """An httpx client whose every call has a timeout, bounded retries (idempotent calls only)
    and a breaker. Failures surface as `UpstreamUnavailable`, never as a raw transport error.

    For URLs someone other than the operator chose: `policy` checks and pins every request
    (safe_fetch.py), `max_bytes` refuses a larger body, `negative_ttl` answers a GET that
    failed from memory for that long, and `breaker_per_host` keeps one breaker per host so
    one client's broken jwks_uri never shuts out another's."""

    def __init__(
        self,
        base_url: str = "",
        *,
        timeout: float = 3.0,
        retries: int = 1,
        breaker: CircuitBreaker | None = None,
        name: str = "upstream",
        policy: FetchPolicy | None = None,
        max_bytes: int | None = None,
        negative_ttl: float = 0.0,
        breaker_per_host: bool = False,
        **client_kwargs: Any,
    ) -> None:
        self.name = name
        self.retries = retries
        self.breaker = breaker or CircuitBreaker()
        self.policy = policy
        self.max_bytes = max_bytes
        self.negative_ttl = negative_ttl
        self._per_host: dict[str, CircuitBreaker] | None = {} if breaker_per_host else None
        self._failed: dict[str, tuple[float, type[UpstreamUnavailable], str]] = {}
        self._lock = threading.Lock()
        if policy is not None:
            # The policy checks the address connected to: no proxy from the environment in between.
            client_kwargs.update(follow_redirects=False, trust_env=False)
        self._client = httpx.Client(base_url=base_url, timeout=timeout, **client_kwargs)

    def request(self, method: str, url: str, *, retry: bool | None = None, **kwargs: Any) -> httpx.Response:
        remembered = self._failure_key(method, url, kwargs)
        if remembered:
            self._raise_if_failed_recently(remembered)
        try:
            return self._request(method, url, retry=retry, **kwargs)
        except UpstreamUnavailable as exc:
            if remembered:
                self._remember_failure(remembered, exc)
            raise

    def _request(self, method: str, url: str, *, retry: bool | None, **kwargs: Any) -> httpx.Response:
        breaker = self._breaker(url)
        target = url
        if self.policy is not None:
            pinned = self.policy.pin(url)  # FetchRefused: a refusal, not an outage of the upstream
            target = pinned.url
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Host": pinned.host_header}
            if pinned.sni_hostname:
                kwargs["extensions"] = {**(kwargs.get("extensions") or {}), "sni_hostname": pinned.sni_hostname}
        if not breaker.allow():
            raise UpstreamUnavailable(f"{self.name}: circuit open")
        idempotent = method.upper() in ("GET", "HEAD", "OPTIONS") if retry is None else retry
        attempts = 1 + (self.retries if idempotent else 0)
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                response = self._send(method, target, **kwargs)
            except httpx.HTTPError as exc:
                last = exc
            else:
                if response.status_code < 500:
                    breaker.success()
                    return response
                last = httpx.HTTPStatusError(f"{response.status_code}", request=response.request, response=response)
            if attempt + 1 < attempts:
                time.sleep(min(0.05 * (2**attempt), 0.5))
        breaker.failure()
        raise UpstreamUnavailable(f"{self.name}: {type(last).__name__}: {last}")

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.max_bytes is None:
            return self._client.request(method, url, **kwargs)
        with self._client.stream(method, url, **kwargs) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise FetchRefused(f"{self.name}: the response is larger than {self.max_bytes} bytes")
            body = bytearray()
            for chunk in response.iter_bytes():  # decoded: a gzip bomb counts at its unpacked size
                body += chunk
                if len(body) > self.max_bytes:
                    raise FetchRefused(f"{self.name}: the response is larger than {self.max_bytes} bytes")
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in ("content-encoding", "content-length")]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=response.request)

    def circuit_open(self) -> bool:
        """True while calls are failed fast: the breaker (any host's, with breaker_per_host) is open."""
        if self._per_host is not None:
            return any(b.state == "open" for b in list(self._per_host.values()))
        return self.breaker.state == "open"

    def _breaker(self, url: str) -> CircuitBreaker:
        if self._per_host is None:
            return self.breaker
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            if host not in self._per_host and len(self._per_host) >= 1024:
                self._per_host.clear()  # bounded: forgetting a breaker only allows a new trial
            return self._per_host.setdefault(host, CircuitBreaker(self.breaker.threshold, self.breaker.reset_after))

    def _failure_key(self, method: str, url: str, kwargs: dict[str, Any]) -> str | None:
        if method.upper() != "GET" or self.negative_ttl <= 0:
            return None
        # Per URL and credentials: one person's failed userinfo call never answers another's.
        return f"{url} {(kwargs.get('headers') or {}).get('Authorization', '')}"

    def _raise_if_failed_recently(self, key: str) -> None:
        with self._lock:
            until, kind, reason = self._failed.get(key, (0.0, UpstreamUnavailable, ""))
        if time.monotonic() < until:
            raise kind(f"{reason} (failed moments ago; not retried for {self.negative_ttl:g} s)")

    def _remember_failure(self, key: str, exc: UpstreamUnavailable) -> None:
        with self._lock:
            if len(self._failed) >= 1024:
                self._failed.clear()
            self._failed[key] = (time.monotonic() + self.negative_ttl, type(exc), str(exc))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._client.close()
