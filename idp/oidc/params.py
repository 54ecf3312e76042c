"""Strict parsing of protocol parameters: the first line of defence against bad input.

RFC 6749 §3.1/§3.2: parameters sent without a value are treated as omitted; request and
response parameters MUST NOT be included more than once.
"""

from __future__ import annotations

import re

from urllib.parse import parse_qsl

from starlette.requests import Request

from idp.oidc.errors import note, refusal

FORM = "application/x-www-form-urlencoded"
# RFC 8707 §2: `resource` may be repeated; its values (absolute URIs, which hold no space) are
# kept joined by a space, like scope values, so every parameter stays one string.
REPEATABLE = {"resource"}


class BadRequest(Exception):
    """A refusal of the catalogue (idp/oidc/errors.py) before any protocol logic: JSON at API
    endpoints, a friendly page in the browser."""

    def __init__(self, reason: str, **values: object) -> None:
        entry = refusal(reason)
        note(reason)
        self.reason = reason
        self.values = values
        self.description = entry.text(**values)
        super().__init__(self.description)
        self.status = entry.status
        self.error = entry.error


_SPACE = re.compile(r"\s")


def parse_params(raw: bytes | str, *, max_length: int, source: str = "request") -> dict[str, str]:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise BadRequest("not_utf8", source=source) from None
    else:
        text = raw
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict", max_num_fields=100)
    except UnicodeDecodeError:
        raise BadRequest("percent_not_utf8", source=source) from None
    except ValueError:
        raise BadRequest("too_many_params", source=source) from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise BadRequest("nul_character")
        if len(name) > 128:
            raise BadRequest("param_name_too_long")
        if len(value) > max_length:
            raise BadRequest("param_too_long", name=name[:40], limit=max_length)
        if value == "":
            continue  # sent without a value: treated as omitted
        if name in REPEATABLE:
            if _SPACE.search(value):
                raise BadRequest("resource_has_space", name=name)
            params[name] = f"{params[name]} {value}" if name in params else value
            continue
        if name in params:
            raise BadRequest("param_repeated", name=name[:40])
        params[name] = value
    return params


async def read_form(request: Request, *, max_body: int, max_length: int) -> dict[str, str]:
    """The body of a POST to an OAuth endpoint: form-encoded, UTF-8, bounded."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM:
        raise BadRequest("form_content_type", media_type=FORM)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        raise BadRequest("body_too_large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise BadRequest("body_too_large")
    return parse_params(body, max_length=max_length, source="request body")


def read_query(request: Request, *, max_length: int) -> dict[str, str]:
    raw = request.scope.get("query_string", b"")
    if len(raw) > max_length * 8:
        raise BadRequest("query_too_long")
    return parse_params(raw, max_length=max_length, source="query string")
