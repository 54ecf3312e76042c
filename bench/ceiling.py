"""The framework ceiling of NIXA's side: a Starlette app that answers every GET with a fixed small
JSON document and does nothing else. bench.run serves it with uvicorn as `nixa serve` does, on
the same core as NIXA, and runs the discovery load against it: no NIXA path can be faster than
this on this machine, so each path's distance from it is what NIXA's own code costs."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"issuer":"http://127.0.0.1","status":"ok"}'


async def fixed(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/{path:path}", fixed, methods=["GET"])])
