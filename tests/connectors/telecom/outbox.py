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
    messages = outbox(base_url, to)
    assert messages, f"no SMS to {to}"
    match = CODE.search(messages[0]["text"])
    assert match, messages[0]["text"]
    return match.group(1)


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"
