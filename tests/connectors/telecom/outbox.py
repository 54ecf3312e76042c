"""Reading the telecom sandbox's outbox, as a person reads their phone."""

from __future__ import annotations

import re
from typing import Any

import httpx

TELECOM_API_KEY = "telecom-test-key"
CODE = re.compile(r"\b(\d{6})\b")


def outbox(base_url: str, to: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base_url}/v1/outbox", params={"to": to}, timeout=5)
    response.raise_for_status()
    return response.json()["messages"]


def latest_code(base_url: str, to: str) -> str:
    """The code in the newest message that carries one (notices, such as "a sign-in method was
    linked", carry none)."""
    messages = outbox(base_url, to)
    assert messages, f"no SMS to {to}"
    for message in messages:
        match = CODE.search(message["text"])
        if match:
            return match.group(1)
    raise AssertionError(f"no code among {[m['text'] for m in messages]}")


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"
