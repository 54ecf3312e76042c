"""Stand-in for the national population registry: an HTTP/JSON service over a SQLite file.

    python -m connectors.population.sandbox --host 127.0.0.1 --port 9101 --api-key KEY \
        --db var/registry.db [--generate 1000000] [--seed 42]

API (bearer API key):
    GET  /v1/citizens/{pin}                      → the record, or 404
    POST /v1/verify {pin, full_name, date_of_birth}
                                                 → {match, status}; status only when match is
                                                   true: the registry tells nothing about a
                                                   person the caller could not identify
    GET  /health
Sandbox only (no key; loopback):
    PUT  /_sandbox/citizens/{pin}/status {status}   change a record's status (tests, demo)
    /_sandbox/faults, /_sandbox/stats               see connectors/telecom/sandbox_support.py
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from connectors.population import registry_db
from connectors.population.cccd import InvalidPin, normalize_pin
from connectors.population.citizen import STATUSES, name_key
from connectors.population.generate import DEFAULT_SEED, generate
from connectors.telecom.sandbox_support import FaultInjection, base_arguments, bearer_ok, serve, unauthorized


class RegistryFile:
    """One SQLite connection per server thread (sqlite3 connections are not shared)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self.path, timeout=10)
        return conn


def _bad_request(error: str = "invalid_request") -> JSONResponse:
    return JSONResponse({"error": error}, status_code=400)


def build_app(db_path: str | Path, api_key: str) -> ASGIApp:
    registry = RegistryFile(db_path)
    faults = FaultInjection()

    def lookup(pin: str):
        return registry_db.find(registry.conn(), pin)

    async def get_citizen(request: Request) -> Response:
        if not bearer_ok(request, api_key):
            return unauthorized()
        try:
            pin = normalize_pin(request.path_params["pin"])
        except InvalidPin:
            return _bad_request("invalid_pin")
        citizen = await run_in_threadpool(lookup, pin)
        if citizen is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(citizen.to_json())

    async def verify(request: Request) -> Response:
        if not bearer_ok(request, api_key):
            return unauthorized()
        try:
            body = await request.json()
            pin = normalize_pin(str(body["pin"]))
            full_name = str(body["full_name"])
            born = dt.date.fromisoformat(str(body["date_of_birth"])).isoformat()
        except (ValueError, KeyError, TypeError, InvalidPin):
            return _bad_request()
        citizen = await run_in_threadpool(lookup, pin)
        match = citizen is not None and citizen.date_of_birth == born and name_key(citizen.full_name) == name_key(full_name)
        return JSONResponse({"match": match, "status": citizen.status if match else None})

    async def set_status(request: Request) -> Response:
        body = await request.json()
        status = body.get("status") if isinstance(body, dict) else None
        if status not in STATUSES:
            return _bad_request("invalid_status")
        pin = request.path_params["pin"]
        changed = await run_in_threadpool(lambda: registry_db.set_status(registry.conn(), pin, status))
        return JSONResponse({"updated": changed}, status_code=200 if changed else 404)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/v1/citizens/{pin}", get_citizen, methods=["GET"]),
        Route("/v1/verify", verify, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/_sandbox/citizens/{pin}/status", set_status, methods=["PUT"]),
        *faults.routes(),
    ]
    return faults.wrap(Starlette(routes=routes))


def prepare(db_path: str | Path, generate_count: int | None, seed: int) -> None:
    """Create the file, generate citizens if asked (skipped when already there), seed demo records."""
    if generate_count:
        report = generate(db_path, generate_count, seed)
        state = "kept" if report.skipped else f"generated in {report.seconds:.1f} s"
        print(f"registry: {report.count:,} synthetic citizens {state}", file=sys.stderr, flush=True)
    conn = registry_db.connect(db_path)
    try:
        registry_db.ensure_schema(conn)
        registry_db.seed_demo(conn)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = base_arguments("National population registry sandbox for NIXA")
    parser.add_argument("--db", required=True, help="SQLite file holding the synthetic citizens")
    parser.add_argument("--generate", type=int, metavar="N", help="make sure the file holds N generated citizens")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    args = parser.parse_args(argv)
    prepare(args.db, args.generate, args.seed)
    serve(lambda: build_app(args.db, args.api_key), args.host, args.port, "population registry")


if __name__ == "__main__":
    main()
