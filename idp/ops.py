"""What operators watch: a request id on every request (propagated from a trusted proxy, sent
back as X-Request-Id, stamped on audit events and log lines), liveness and readiness probes,
Prometheus metrics fed from the typed events and one request middleware, and JSON logs.

Metrics live in a registry of their own per NIXA instance (prometheus-client), so two instances
in one process (the tests, a CLI next to a server) never mix their figures."""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import re
import secrets
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pythonjsonlogger.json import JsonFormatter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

disable_created_metrics()  # no `_created` twin of every counter: half the exposition, nothing a dashboard uses
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("nixa_request_id", default=None)
# What the code noted about a refusal of this request (its reason, its client: idp/oidc/errors.py
# note()). A dict the request's threads share: a route's threadpool call runs in a copy of the
# context, so the variable itself cannot carry anything back; the dict it names can.
current_refusal: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("nixa_refusal", default=None)
SCOPE_KEY = "nixa.request_id"
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Buckets from a cached JWKS answer (~1 ms) to a sign-in waiting on a slow registry (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _networks(values: list[str]) -> list[Any]:
    return [ipaddress.ip_network(v, strict=False) for v in values]


def _peer_in(scope: dict, networks: list[Any]) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    return any(address in n for n in networks)


class Metrics:
    """The figures, in their own registry; `observe_event` turns typed events into counters."""

    def __init__(self, nixa: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("nixa_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r)
        self.latency = Histogram("nixa_http_request_duration_seconds", "Time to answer, per route", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.sign_ins = Counter("nixa_sign_ins", "Sign-in steps by method and outcome", ["method", "outcome"], registry=r)
        self.tokens = Counter("nixa_tokens_issued", "Token responses by grant type", ["grant"], registry=r)
        self.events = Counter("nixa_events", "Security events by type (the audit trail's own types)", ["type"], registry=r)
        audit = getattr(nixa, "audit", None)
        Gauge("nixa_audit_queue_depth", "Audit events waiting for their commit", registry=r).set_function(
            lambda: len(getattr(audit, "_queue", ())))
        self._breakers = Gauge("nixa_connector_breaker_open", "1 while a connector's circuit breaker is open", ["connector"],
                               registry=r)
        self.nixa = nixa
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # The labelled children, looked up once per (route, method, status): prometheus-client's
        # labels() validates and hashes its arguments at every call.
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route))
            if len(self._children) < 10_000:  # routes are templates, methods and statuses few: bounded anyway
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_event(self, event: Any) -> None:
        self.events.labels(event.type).inc()
        if event.type in ("login.succeeded", "login.failed", "login.throttled"):
            method = str(event.data.get("method") or "unknown")[:64]
            self.sign_ins.labels(method, event.type.split(".", 1)[1]).inc()
        elif event.type == "token.issued":
            self.tokens.labels(str(event.data.get("grant_type") or "unknown")[:32]).inc()

    def exposition(self) -> bytes:
        from connectors.base import GuardedConnector

        for entry in self.nixa.connectors.entries():
            if isinstance(entry.instance, GuardedConnector):
                self._breakers.labels(entry.id).set(1 if entry.instance.circuit_open() else 0)
        return generate_latest(self.registry)


class RequestContext:
    """A plain ASGI middleware: the request id (a trusted proxy's X-Request-Id, else a new one),
    in a context variable for events and logs, and back in the response; the request's route,
    status and latency counted; and every refusal made answerable (`Refusals`)."""

    def __init__(self, app: Any, metrics: Metrics, trusted_proxies: list[str], refusals: Refusals) -> None:
        self.app = app
        self.metrics = metrics
        self.trusted = _networks(trusted_proxies)
        self.refusals = refusals

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        if self.trusted and _peer_in(scope, self.trusted):
            incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
            rid = incoming if _INCOMING_ID.match(incoming) else None
        rid = rid or secrets.token_hex(8)
        token = request_id.set(rid)
        scope[SCOPE_KEY] = rid  # for the 500 handler, which runs outside this middleware (app.py)
        noted: dict[str, str] = {}
        noted_token = current_refusal.set(noted)
        started = time.perf_counter()
        status = [500]
        held: list[dict] = []  # an error's start message and body, until the body is complete

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                if self.refusals.is_refusal(scope, message, noted):
                    held.append(message)
                    return
            elif held:
                held.append(message)
                if message.get("more_body"):
                    return
                for part in await self.refusals.answer(scope, rid, noted, held):
                    await send(part)
                held.clear()
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None) or ("static" if scope["path"].startswith("/static/") else "unmatched")
            self.metrics.observe_request(route, scope["method"], status[0], time.perf_counter() - started)
            current_refusal.reset(noted_token)
            request_id.reset(token)


class Refusals:
    """Every refused request, in one place: an error status (or a redirect carrying an OAuth
    error to the client) emits one `request.rejected` audit event with the request id, the
    reason the code noted (idp/oidc/errors.py), the client when known, the path and the
    address; a JSON error body gets the same id as `request_id`, the reference an integrator
    quotes (pages show it already, error redirects carry it). The event is committed before the
    answer leaves, so the reference a client holds is always in the audit log."""

    def __init__(self, nixa: Any) -> None:
        self.nixa = nixa

    PROBES = ("/healthz", "/readyz", "/health")  # a 503 there says NIXA is not ready, it refuses nobody

    def is_refusal(self, scope: dict, start: dict, noted: dict[str, str]) -> bool:
        if scope["path"] in self.PROBES:
            return False
        if start["status"] == 404 and getattr(scope.get("route"), "path", None) is None and not noted:
            # A path no route knows (a scanner's /wp-login.php, a missing static file) refuses no
            # protocol request: counted in the request metrics (route "unmatched"), not written to
            # the audit chain, where every probe of a scan was one signed row and one commit.
            return False
        return start["status"] >= 400 or (start["status"] in (302, 303) and "error" in noted)

    async def answer(self, scope: dict, rid: str, noted: dict[str, str], held: list[dict]) -> list[dict]:
        import json

        from starlette.concurrency import run_in_threadpool

        start, parts = held[0], held[1:]
        headers = dict(start.get("headers") or [])
        body = b"".join(p.get("body", b"") for p in parts)
        error = noted.get("error")
        if headers.get(b"content-type", b"").startswith(b"application/json"):
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            if isinstance(document, dict) and "error" in document:
                error = str(document["error"])[:64]
                body = json.dumps({**document, "request_id": rid}, ensure_ascii=False, separators=(",", ":")).encode()
                start["headers"] = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                start["headers"].append((b"content-length", str(len(body)).encode()))
        await run_in_threadpool(self.audit, scope, start["status"], error, noted)
        return [start, {"type": "http.response.body", "body": body, "more_body": False}]

    def audit(self, scope: dict, status: int, error: str | None, noted: dict[str, str]) -> None:
        from starlette.requests import Request

        from idp.oidc.endpoints import client_ip

        try:
            ip = client_ip(Request(scope), self.nixa)
        except Exception:  # an address we cannot read is no reason to lose the event
            ip = None
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        try:
            self.nixa.events.emit("request.rejected", client_id=noted.get("client_id"), ip=ip,
                                  data={"reason": noted.get("reason"), "error": error, "status": status, "route": route,
                                        "method": scope.get("method")})
        except Exception:  # the refusal still goes out; the failed audit write is logged with its request id
            logging.getLogger("nixa").exception("the audit event of a refused request could not be written")


def install(app: Any, nixa: Any) -> None:
    """Probes, metrics and request ids on `app`."""
    metrics = Metrics(nixa)
    nixa.metrics = metrics
    nixa.refusals = Refusals(nixa)
    nixa.events.subscribe(metrics.observe_event)
    allowed = _networks(nixa.settings.metrics_allowed_networks)
    app.add_middleware(RequestContext, metrics=metrics, trusted_proxies=nixa.settings.trusted_proxies, refusals=nixa.refusals)
    # Graceful shutdown (uvicorn finishes the requests in flight first): the delivery thread
    # stops between deliveries, the audit writer after its queue.
    app.router.on_shutdown.extend([nixa.backchannel.stop, nixa.audit.close])

    @app.get("/healthz")
    def healthz() -> dict:
        """Liveness: the process answers (restart it if not)."""
        return {"status": "alive"}

    @app.get("/readyz")
    def readyz() -> Response:
        """Readiness: send traffic only when every dependency answers."""
        checks = readiness(nixa)
        ready = all(c["ok"] for c in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503,
                            headers={"Cache-Control": "no-store", **({} if ready else {"Retry-After": "5"})})

    app.add_api_route("/health", readyz, methods=["GET"], include_in_schema=False)  # the older name

    @app.get("/metrics")
    def prometheus(request: Request) -> Response:
        if not _peer_in(request.scope, allowed):
            return JSONResponse({"error": "not_found", "error_description": "Not Found"}, status_code=404)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def readiness(nixa: Any) -> dict[str, dict[str, Any]]:
    """Each dependency: {"ok": bool, "detail": str}. Never raises."""
    from idp.store.db import check_schema

    out: dict[str, dict[str, Any]] = {}

    def check(name: str, fn: Any) -> None:
        try:
            detail = fn()
            out[name] = {"ok": True, "detail": detail or "ok"}
        except Exception as exc:  # a probe reports, it never fails itself
            out[name] = {"ok": False, "detail": f"{type(exc).__name__}: {str(exc)[:200]}"}

    check("database", lambda: check_schema(nixa.db.engine) or "schema current")

    def store() -> str:
        if not nixa.store.ping():
            raise ConnectionError("the ephemeral store does not answer")
        return "ok"

    check("store", store)

    def key_ring() -> str:
        if not nixa.keys.jwks().get("keys"):
            raise LookupError("no signing key published")
        return "ok"

    check("key_ring", key_ring)
    if nixa.hsm is not None:
        check("hsm", nixa.keys.check_hsm)  # a token gone away fails readiness, not every sign-in
    return out


class JsonLogs(JsonFormatter):
    """One JSON object a line (python-json-logger), with the request being answered."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        rid = request_id.get()
        if rid:
            log_record["request_id"] = rid


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for NIXA's own loggers and uvicorn's (`nixa serve`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogs())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
