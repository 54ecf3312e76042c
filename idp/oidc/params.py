"""Strict parsing of protocol parameters: the first line of defence against bad input.

RFC 6749 §3.1/§3.2: parameters sent without a value are treated as omitted; request and
response parameters MUST NOT be included more than once.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

FORM = "application/x-www-form-urlencoded"
# RFC 8707 §2: `resource` may be repeated; its values (absolute URIs, which hold no space) are
# kept joined by a space, like scope values, so every parameter stays one string.
REPEATABLE = {"resource"}


class BadRequest(Exception):
    """Becomes `invalid_request` (JSON at API endpoints, a friendly page in the browser)."""

    def __init__(self, description: str, status: int = 400, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.error = error


def parse_params(raw: bytes | str, *, max_length: int, source: str = "request") -> dict[str, str]:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(f"The {source} is not valid UTF-8.") from None
    else:
        text = raw
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict", max_num_fields=100)
    except UnicodeDecodeError:
        raise BadRequest(f"The {source} has percent-encoded bytes that are not valid UTF-8.") from None
    except ValueError:
        raise BadRequest(f"The {source} has too many parameters.") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise BadRequest("Parameters must not contain NUL characters.")
        if len(name) > 128:
            raise BadRequest("A parameter name is too long.")
        if len(value) > max_length:
            raise BadRequest(f"The parameter '{name[:40]}' is too long (at most {max_length} characters).")
        if value == "":
            continue  # sent without a value: treated as omitted
        if name in REPEATABLE:
            if any(ch.isspace() for ch in value):
                raise BadRequest(f"A {name} value must be an absolute URI (no spaces).", error="invalid_target")
            params[name] = f"{params[name]} {value}" if name in params else value
            continue
        if name in params:
            raise BadRequest(f"The parameter '{name[:40]}' is included more than once.")
        params[name] = value
    return params


async def read_form(request: Request, *, max_body: int, max_length: int) -> dict[str, str]:
    """The body of a POST to an OAuth endpoint: form-encoded, UTF-8, bounded."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM:
        raise BadRequest(f"The request must be sent as {FORM}.")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        raise BadRequest("The request body is too large.", status=413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise BadRequest("The request body is too large.", status=413)
    return parse_params(body, max_length=max_length, source="request body")


def read_query(request: Request, *, max_length: int) -> dict[str, str]:
    raw = request.scope.get("query_string", b"")
    if len(raw) > max_length * 8:
        raise BadRequest("The query string is too long.", status=414)
    return parse_params(raw, max_length=max_length, source="query string")
