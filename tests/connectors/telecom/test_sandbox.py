"""The operator SMS sandbox itself: what the connector and the demo rely on."""

from __future__ import annotations

import httpx

from tests.connectors.sandboxes import Sandbox
from tests.connectors.telecom.outbox import TELECOM_API_KEY, outbox

AUTH = {"Authorization": f"Bearer {TELECOM_API_KEY}"}


def send(sandbox: Sandbox, to: str, text: str, headers: dict[str, str] = AUTH) -> httpx.Response:
    return httpx.post(f"{sandbox.base_url}/v1/sms", json={"to": to, "text": text, "sender": "NIXA"}, headers=headers, timeout=5)


def test_sms_api_requires_the_api_key(telecom_sandbox: Sandbox) -> None:
    assert send(telecom_sandbox, "0911000001", "hello", headers={}).status_code == 401
    wrong = send(telecom_sandbox, "0911000001", "hello", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert outbox(telecom_sandbox.base_url, "0911000001") == []


def test_accepted_messages_land_in_the_outbox_newest_first(telecom_sandbox: Sandbox) -> None:
    first = send(telecom_sandbox, "0911000002", "first")
    second = send(telecom_sandbox, "+84911000002", "second")
    assert first.status_code == second.status_code == 202
    assert first.json()["message_id"] != second.json()["message_id"]
    messages = outbox(telecom_sandbox.base_url, "84911000002")  # any form of the number filters
    assert [m["text"] for m in messages] == ["second", "first"]
    assert {m["to"] for m in messages} == {"+84911000002"}
    assert messages[0]["message_id"] == second.json()["message_id"]


def test_invalid_destination_or_text_is_refused(telecom_sandbox: Sandbox) -> None:
    assert send(telecom_sandbox, "0241234567", "landline").status_code == 400
    assert send(telecom_sandbox, "0911000003", "").status_code == 400
    too_long_sender = httpx.post(
        f"{telecom_sandbox.base_url}/v1/sms", json={"to": "0911000003", "text": "x", "sender": "X" * 12}, headers=AUTH, timeout=5
    )
    assert too_long_sender.status_code == 400


def test_outbox_page_lists_messages_escaped_in_both_languages(telecom_sandbox: Sandbox) -> None:
    send(telecom_sandbox, "0911000004", "Mã <b>123456</b>")
    page = httpx.get(f"{telecom_sandbox.base_url}/outbox", params={"to": "0911000004"}, timeout=5)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Hộp thư SMS" in page.text and "SMS outbox" in page.text
    assert "Mã &lt;b&gt;123456&lt;/b&gt;" in page.text
    assert "<b>123456</b>" not in page.text


def test_fault_injection_fails_the_next_requests_then_recovers(telecom_sandbox: Sandbox) -> None:
    before = telecom_sandbox.requests_served()
    telecom_sandbox.set_faults(fail_status=503, count=2)
    try:
        assert send(telecom_sandbox, "0911000005", "a").status_code == 503
        assert httpx.get(f"{telecom_sandbox.base_url}/health", timeout=5).status_code == 503
        assert send(telecom_sandbox, "0911000005", "b").status_code == 202
    finally:
        telecom_sandbox.clear_faults()
    assert telecom_sandbox.requests_served() == before + 3
    assert [m["text"] for m in outbox(telecom_sandbox.base_url, "0911000005")] == ["b"]
