"""The hot paths (discovery, JWKS, token, introspection, revocation, UserInfo) answered by exact
path, in front of FastAPI's router.

Every government sign-in pays for these paths, and FastAPI's route machinery (a linear match
over some hundred routes, the dependency solver, a threadpool hop for a sync dependency) did
nothing for them but cost most of their time (bench/inproc.py: 355 µs of 370 on discovery).
Their handlers take the Starlette `Request` and return a `Response`; nothing about what they
check changes. The layer sits inside the request-id, metrics and refusal middleware and the
security headers (idp/ops.py, idp/app.py), so those apply as before, and an exception a handler
raises goes to the application's own exception handlers, looked up by class as Starlette does
(BadRequest, the outages' 503, an unknown method's 405); anything else reaches the catch-all
500 page of the server-error middleware, as from any route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request, Any], Awaitable[Response]]


@dataclass(frozen=True)
class HotRoute:
    path: str  # what metrics and the refusal audit name the route by (scope["route"].path)
    handlers: dict[str, Handler]  # by method; GET answers HEAD too


class HotRoutes:
    """The table the decorator fills (idp/oidc/endpoints.py) and the dispatcher reads."""

    def __init__(self) -> None:
        self.routes: dict[str, HotRoute] = {}

    def route(self, path: str, method: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            entry = self.routes.setdefault(path, HotRoute(path, {}))
            entry.handlers[method] = handler
            if method == "GET":
                entry.handlers.setdefault("HEAD", handler)
            return handler

        return register


class HotPaths:
    """A plain ASGI middleware: a path in the table is answered here, anything else goes on."""

    def __init__(self, app: Any, routes: HotRoutes) -> None:
        self.app = app
        self.routes = routes.routes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        entry = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if entry is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = entry
        request = Request(scope, receive)
        app = scope["app"]
        try:
            handler = entry.handlers.get(scope["method"])
            if handler is None:
                raise HTTPException(405, headers={"Allow": ", ".join(sorted(entry.handlers))})
            response = await handler(request, app.state.nixa)
        except Exception as exc:
            answer = _exception_handler(app, exc)
            if answer is None:
                raise
            response = await answer(request, exc)
        await response(scope, receive, send)


def _exception_handler(app: Any, exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]] | None:
    """The application's handler for this exception's class or its nearest base, the catch-all
    `Exception` left to the server-error middleware (it logs the bug and answers the 500)."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
