"""Calls to external systems: timeouts, bounded retries and a circuit breaker, in one place.

The breaker is per worker on purpose (like every client-side breaker): it protects this worker
from piling requests on a sick upstream; no other worker needs its state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from connectors.base import UpstreamUnavailable


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
    and a breaker. Failures surface as `UpstreamUnavailable`, never as a raw transport error."""

    def __init__(
        self,
        base_url: str = "",
        *,
        timeout: float = 3.0,
        retries: int = 1,
        breaker: CircuitBreaker | None = None,
        name: str = "upstream",
        **client_kwargs: Any,
    ) -> None:
        self.name = name
        self.retries = retries
        self.breaker = breaker or CircuitBreaker()
        self._client = httpx.Client(base_url=base_url, timeout=timeout, **client_kwargs)

    def request(self, method: str, url: str, *, retry: bool | None = None, **kwargs: Any) -> httpx.Response:
        if not self.breaker.allow():
            raise UpstreamUnavailable(f"{self.name}: circuit open")
        idempotent = method.upper() in ("GET", "HEAD", "OPTIONS") if retry is None else retry
        attempts = 1 + (self.retries if idempotent else 0)
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                last = exc
            else:
                if response.status_code < 500:
                    self.breaker.success()
                    return response
                last = httpx.HTTPStatusError(f"{response.status_code}", request=response.request, response=response)
            if attempt + 1 < attempts:
                time.sleep(min(0.05 * (2**attempt), 0.5))
        self.breaker.failure()
        raise UpstreamUnavailable(f"{self.name}: {type(last).__name__}: {last}")

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._client.close()
