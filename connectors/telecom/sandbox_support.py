"""What every sandbox process shares: bearer API-key checks, fault injection, serving.

Fault injection lets a test make the stand-in system slow or failing on demand, through the
network, like a real outage would look to NIXA:

    POST   /_sandbox/faults  {"delay_ms": 1500, "fail_status": 503, "count": 3}
    DELETE /_sandbox/faults
    GET    /_sandbox/stats   {"requests": n}   (requests that reached the service's API)

`count` (optional) limits the fault to the next n requests; without it the fault stays until
cleared. `/_sandbox/*` itself is never delayed, failed or counted.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import sys
import threading
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

SANDBOX_PREFIX = "/_sandbox/"


def bearer_ok(request: Request, api_key: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def unauthorized() -> JSONResponse:
    return JSONResponse({"error": "invalid_api_key"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


class FaultInjection:
    """ASGI middleware: delays or fails API requests as configured through /_sandbox/faults."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.delay_ms = 0
        self.fail_status = 0
        self.count: int | None = None
        self.requests = 0
        self._lock = threading.Lock()

    def wrap(self, app: ASGIApp) -> FaultInjection:
        """Wrap the service (built with `self.routes()` among its routes) and return the ASGI app."""
        self.app = app
        return self

    def configure(self, delay_ms: int = 0, fail_status: int = 0, count: int | None = None) -> None:
        with self._lock:
            self.delay_ms, self.fail_status, self.count = max(0, delay_ms), fail_status, count

    def _next_fault(self) -> tuple[int, int]:
        with self._lock:
            self.requests += 1
            if self.count is not None:
                if self.count <= 0:
                    return 0, 0
                self.count -= 1
            return self.delay_ms, self.fail_status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "call wrap(app) first"
        if scope["type"] != "http" or scope["path"].startswith(SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        delay_ms, fail_status = self._next_fault()
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if fail_status:
            response = JSONResponse({"error": "injected_fault"}, status_code=fail_status)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def routes(self) -> list[Route]:
        async def set_faults(request: Request) -> Response:
            body: dict[str, Any] = await request.json() if await request.body() else {}
            count = body.get("count")
            delay_ms, fail_status = int(body.get("delay_ms") or 0), int(body.get("fail_status") or 0)
            self.configure(delay_ms, fail_status, None if count is None else int(count))
            return JSONResponse(self.snapshot())

        async def clear_faults(request: Request) -> Response:
            self.configure()
            return JSONResponse(self.snapshot())

        async def get_faults(request: Request) -> Response:
            return JSONResponse(self.snapshot())

        async def stats(request: Request) -> Response:
            return JSONResponse({"requests": self.requests})

        return [
            Route("/_sandbox/faults", set_faults, methods=["POST"]),
            Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
            Route("/_sandbox/faults", get_faults, methods=["GET"]),
            Route("/_sandbox/stats", stats, methods=["GET"]),
        ]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"delay_ms": self.delay_ms, "fail_status": self.fail_status, "count": self.count}


def base_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--api-key", required=True, help="bearer API key that callers must present")
    return parser


def serve(build_app: Callable[[], ASGIApp], host: str, port: int, name: str) -> None:
    import uvicorn

    app = build_app()
    print(f"{name} sandbox on http://{host}:{port}", file=sys.stderr, flush=True)
    # A short graceful shutdown: tests stop sandboxes while an injected delay may be pending.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
