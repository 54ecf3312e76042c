"""Stand-in for a mobile operator's SMS API, with an outbox instead of a radio network.

    python -m connectors.telecom.sandbox --host 127.0.0.1 --port 9102 --api-key KEY

API (bearer API key):
    POST /v1/sms {to, text, sender}      → 202 {message_id, status: "queued"}
Developer views of what was "delivered" (no key: the sandbox listens on loopback only):
    GET  /v1/outbox?to=...&limit=50      → {messages: [...]}, newest first
    GET  /outbox?to=...                  → the same as an HTML page (Vietnamese / English)
    GET  /health
Fault injection: see connectors/telecom/sandbox_support.py.
"""

from __future__ import annotations

import html
import itertools
import threading
from collections import deque
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from connectors.telecom.phone import InvalidPhoneNumber, normalize_msisdn
from connectors.telecom.sandbox_support import FaultInjection, base_arguments, bearer_ok, serve, unauthorized

MAX_TEXT = 1530  # 10 concatenated GSM-7 segments
MAX_SENDER = 11  # alphanumeric sender IDs are at most 11 characters


class Outbox:
    """Messages the operator accepted, newest last; bounded so a long demo cannot grow forever."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._messages: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def append(self, to: str, text: str, sender: str) -> dict[str, Any]:
        with self._lock:
            message = {
                "message_id": f"sms-{next(self._ids):08d}",
                "to": to,
                "sender": sender,
                "text": text,
                "received_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            }
            self._messages.append(message)
            return message

    def newest_first(self, to: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            found = []
            for message in reversed(self._messages):
                if to is None or message["to"] == to:
                    found.append(dict(message))
                    if len(found) >= limit:
                        break
            return found


def _filter(request: Request) -> tuple[str | None, int, bool]:
    """(`to` in E.164 or None, limit, valid)."""
    raw_to = request.query_params.get("to", "").strip()
    try:
        limit = max(1, min(500, int(request.query_params.get("limit", "50"))))
    except ValueError:
        limit = 50
    if not raw_to:
        return None, limit, True
    try:
        return normalize_msisdn(raw_to), limit, True
    except InvalidPhoneNumber:
        return None, limit, False


def build_app(api_key: str) -> ASGIApp:
    outbox = Outbox()
    faults = FaultInjection()

    async def send_sms(request: Request) -> Response:
        if not bearer_ok(request, api_key):
            return unauthorized()
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid_json"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "invalid_json"}, status_code=400)
        text, sender = body.get("text"), body.get("sender") or "NIXA"
        try:
            to = normalize_msisdn(str(body.get("to") or ""))
        except InvalidPhoneNumber:
            return JSONResponse({"error": "invalid_destination"}, status_code=400)
        if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
            return JSONResponse({"error": "invalid_text"}, status_code=400)
        if not isinstance(sender, str) or len(sender) > MAX_SENDER:
            return JSONResponse({"error": "invalid_sender"}, status_code=400)
        message = outbox.append(to, text, sender)
        return JSONResponse({"message_id": message["message_id"], "status": "queued"}, status_code=202)

    async def outbox_json(request: Request) -> Response:
        to, limit, valid = _filter(request)
        if not valid:
            return JSONResponse({"error": "invalid_destination"}, status_code=400)
        return JSONResponse({"messages": outbox.newest_first(to, limit)})

    async def outbox_page(request: Request) -> Response:
        to, limit, valid = _filter(request)
        messages = outbox.newest_first(to, limit) if valid else []
        return HTMLResponse(render_outbox(messages, request.query_params.get("to", "")))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/v1/sms", send_sms, methods=["POST"]),
        Route("/v1/outbox", outbox_json, methods=["GET"]),
        Route("/outbox", outbox_page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        *faults.routes(),
    ]
    return faults.wrap(Starlette(routes=routes))


def render_outbox(messages: list[dict[str, Any]], to_filter: str) -> str:
    rows = "\n".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>".format(
            html.escape(m["received_at"]), html.escape(m["to"]), html.escape(m["sender"]), html.escape(m["text"])
        )
        for m in messages
    )
    if not rows:
        rows = '<tr><td colspan="4">Chưa có tin nhắn nào. / No messages yet.</td></tr>'
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>Hộp thư SMS (sandbox) / SMS outbox (sandbox)</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: .4rem .6rem; text-align: left; vertical-align: top; }}
pre {{ margin: 0; white-space: pre-wrap; font-family: inherit; }}
.en {{ color: #666; }}
</style></head>
<body>
<h1>Hộp thư SMS của nhà mạng (sandbox) <span class="en">/ Operator SMS outbox (sandbox)</span></h1>
<p>Tin nhắn mà nhà mạng thử nghiệm đã nhận gửi, mới nhất trước. Trang tự làm mới sau 5 giây.
<span class="en">Messages the sandbox operator accepted, newest first. This page refreshes every 5 seconds.</span></p>
<form method="get" action="/outbox">
<label>Số điện thoại / Phone number <input name="to" type="tel" value="{html.escape(to_filter)}"></label>
<button type="submit">Lọc / Filter</button>
</form>
<table>
<thead><tr><th>Thời gian / Time (UTC)</th><th>Người nhận / To</th><th>Người gửi / Sender</th><th>Nội dung / Text</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""


def main(argv: list[str] | None = None) -> None:
    args = base_arguments("Mobile operator SMS API sandbox for NIXA").parse_args(argv)
    serve(lambda: build_app(args.api_key), args.host, args.port, "telecom SMS")


if __name__ == "__main__":
    main()
