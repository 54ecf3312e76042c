"""SMS OTP sign-in against the real operator sandbox; time moved by an injected clock."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable

import pytest

from connectors.base import (
    Assertion,
    ChallengeConnector,
    ChallengeExpired,
    InvalidCredentials,
    LevelOfAssurance,
    RateLimited,
    UpstreamUnavailable,
)
from connectors.telecom.connector import TelecomSmsConnector
from idp.settings import Settings
from idp.store.ephemeral import MemoryStore
from idp.store.throttle import Throttle
from tests.connectors.clock import ManualClock
from tests.connectors.sandboxes import Sandbox, running_sandbox
from tests.connectors.telecom.outbox import TELECOM_API_KEY, latest_code, outbox, wrong_code

Make = Callable[..., TelecomSmsConnector]


def test_is_a_challenge_connector(make_telecom: Make) -> None:
    connector = make_telecom()
    assert isinstance(connector, ChallengeConnector)
    assert [f.name for f in connector.challenge_fields] == ["phone"]
    assert connector.id == "telecom"


def test_code_is_delivered_and_verified(make_telecom: Make, telecom_sandbox: Sandbox, clock: ManualClock) -> None:
    connector = make_telecom()
    challenge = connector.start({"phone": "0912 345 678"})
    assert challenge.masked_destination == "091****678"
    assert challenge.ttl == 300 and challenge.resend_after == 30
    message = outbox(telecom_sandbox.base_url, "+84912345678")[0]
    assert message["sender"] == "NIXA"
    code = latest_code(telecom_sandbox.base_url, "+84912345678")
    assert len(code) == 6 and code in message["text"]

    assertion = connector.verify(challenge.state, code)
    assert isinstance(assertion, Assertion)
    assert assertion.connector_id == "telecom"
    assert assertion.subject == "+84912345678"
    assert assertion.loa == LevelOfAssurance.LOW
    assert assertion.amr == ("sms", "otp")
    assert assertion.value("phone_number") == "+84912345678"
    assert assertion.value("phone_number_verified") is True
    assert assertion.attributes["phone_number"].source == "telecom"
    assert assertion.attributes["phone_number"].verified_at == clock.now
    assert assertion.authenticated_at == clock.now


def test_neither_the_state_nor_the_store_holds_the_code(make_telecom: Make, telecom_sandbox: Sandbox, store: MemoryStore) -> None:
    connector = make_telecom()
    challenge = connector.start({"phone": "+84912000001"})
    code = latest_code(telecom_sandbox.base_url, "+84912000001")
    assert set(challenge.state) == {"challenge_id", "purpose"}
    assert code not in json.dumps(dict(challenge.state))
    # Look at everything the store holds: only a MAC of the code, never the code.
    dump = json.dumps({key: value for key, (_, value) in store._data.items()})
    assert code not in dump
    assert challenge.state["challenge_id"] not in dump


def test_all_number_forms_reach_the_same_subscriber(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom(resend_after=0)
    for raw in ("0912000002", "+84912000002", "84912000002"):
        challenge = connector.start({"phone": raw})
        assert challenge.masked_destination == "091****002"
        assertion = connector.verify(challenge.state, latest_code(telecom_sandbox.base_url, "0912000002"))
        assert assertion.subject == "+84912000002"


def test_a_code_is_single_use(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom()
    challenge = connector.start({"phone": "0912000003"})
    code = latest_code(telecom_sandbox.base_url, "0912000003")
    connector.verify(challenge.state, code)
    with pytest.raises(ChallengeExpired):
        connector.verify(challenge.state, code)


def test_concurrent_right_answers_succeed_once(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom()
    challenge = connector.start({"phone": "0912000004"})
    code = latest_code(telecom_sandbox.base_url, "0912000004")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait(timeout=5)
        try:
            connector.verify(challenge.state, code)
            outcomes.append("ok")
        except ChallengeExpired:
            outcomes.append("expired")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(outcomes) == ["expired"] * 7 + ["ok"]


def test_an_expired_code_is_refused(make_telecom: Make, telecom_sandbox: Sandbox, clock: ManualClock) -> None:
    connector = make_telecom()
    challenge = connector.start({"phone": "0912000005"})
    code = latest_code(telecom_sandbox.base_url, "0912000005")
    clock.advance(301)
    with pytest.raises(ChallengeExpired):
        connector.verify(challenge.state, code)


def test_ttl_is_capped_at_five_minutes(make_telecom: Make) -> None:
    assert make_telecom(otp_ttl=3600).config.otp_ttl == 300
    assert make_telecom(otp_ttl=120).config.otp_ttl == 120


def test_five_wrong_answers_end_the_challenge(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom()
    challenge = connector.start({"phone": "0912000006"})
    code = latest_code(telecom_sandbox.base_url, "0912000006")
    for _ in range(4):
        with pytest.raises(InvalidCredentials) as wrong:
            connector.verify(challenge.state, wrong_code(code))
        assert wrong.value.code == "invalid_credentials"
    with pytest.raises(InvalidCredentials) as fifth:
        connector.verify(challenge.state, wrong_code(code))
    assert fifth.value.code == "too_many_attempts"
    with pytest.raises(ChallengeExpired):
        connector.verify(challenge.state, code)


def test_a_right_answer_after_some_wrong_ones_still_works(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom()
    challenge = connector.start({"phone": "0912000007"})
    code = latest_code(telecom_sandbox.base_url, "0912000007")
    for answer in ("", "abc", wrong_code(code), code[:5]):
        with pytest.raises(InvalidCredentials):
            connector.verify(challenge.state, answer)
    assert connector.verify(challenge.state, f" {code[:3]} {code[3:]} ").subject == "+84912000007"


def test_resend_is_throttled_and_the_new_code_supersedes_the_old(
    make_telecom: Make, telecom_sandbox: Sandbox, clock: ManualClock
) -> None:
    connector = make_telecom()
    first = connector.start({"phone": "0912000008"})
    old_code = latest_code(telecom_sandbox.base_url, "0912000008")
    clock.advance(10)
    with pytest.raises(RateLimited) as limited:
        connector.start({"phone": "+84912000008"})
    assert limited.value.retry_after == 20
    assert len(outbox(telecom_sandbox.base_url, "0912000008")) == 1

    clock.advance(21)
    second = connector.start({"phone": "0912000008"})
    new_code = latest_code(telecom_sandbox.base_url, "0912000008")
    with pytest.raises(ChallengeExpired):
        connector.verify(first.state, old_code)
    assert connector.verify(second.state, new_code).subject == "+84912000008"


def test_codes_per_hour_are_capped(make_telecom: Make, clock: ManualClock) -> None:
    connector = make_telecom(resend_after=0, sends_per_hour=3)
    for _ in range(3):
        connector.start({"phone": "0912000009"})
    with pytest.raises(RateLimited) as limited:
        connector.start({"phone": "0912000009"})
    assert 0 < limited.value.retry_after <= 3600
    clock.advance(3601)
    connector.start({"phone": "0912000009"})


def test_not_a_mobile_number_sends_nothing(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom()
    served = telecom_sandbox.requests_served()
    with pytest.raises(InvalidCredentials) as refused:
        connector.start({"phone": "024 3825 1234"})
    assert refused.value.code == "invalid_phone"
    assert telecom_sandbox.requests_served() == served


def test_a_challenge_for_another_purpose_is_not_accepted(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom()
    challenge = connector.send_otp("0912000010", purpose="population", binding="001090000001")
    code = latest_code(telecom_sandbox.base_url, "0912000010")
    with pytest.raises(ChallengeExpired):
        connector.verify(challenge.state, code)
    verified = connector.check_otp(challenge.state, code, purpose="population")
    assert (verified.msisdn, verified.purpose, verified.binding) == ("+84912000010", "population", "001090000001")


def test_loa_is_configurable(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom(loa="substantial")
    challenge = connector.start({"phone": "0912000011"})
    assertion = connector.verify(challenge.state, latest_code(telecom_sandbox.base_url, "0912000011"))
    assert assertion.loa == LevelOfAssurance.SUBSTANTIAL


def test_https_issuer_adds_an_origin_bound_code_line(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom(issuer="https://id.nixa.example")
    connector.start({"phone": "0912000012"})
    text = outbox(telecom_sandbox.base_url, "0912000012")[0]["text"]
    code = latest_code(telecom_sandbox.base_url, "0912000012")
    assert text.splitlines()[-1] == f"@id.nixa.example #{code}"
    assert text.startswith("NIXA: Ma xac thuc")


def test_health(make_telecom: Make) -> None:
    health = make_telecom().health()
    assert health.ok and health.latency_ms is not None


# ---- the operator misbehaving: each on its own sandbox process --------------------------


@pytest.fixture
def own_operator() -> Sandbox:
    with running_sandbox("connectors.telecom.sandbox", "--api-key", TELECOM_API_KEY) as sandbox:
        yield sandbox


def test_operator_down_is_upstream_unavailable_and_leaves_no_throttle(make_telecom: Make, own_operator: Sandbox) -> None:
    connector = make_telecom(base_url=own_operator.base_url, timeout=1)
    own_operator.stop()
    for _ in range(2):  # the second try is not RateLimited: nothing was sent the first time
        with pytest.raises(UpstreamUnavailable):
            connector.start({"phone": "0912000013"})
    assert not connector.health().ok


def test_operator_errors_open_the_circuit(make_telecom: Make, own_operator: Sandbox) -> None:
    # The circuit stays open 3 s: long enough that a loaded machine cannot let it half-open
    # between the failures and the fast refusal this test checks.
    connector = make_telecom(base_url=own_operator.base_url, breaker_threshold=2, breaker_reset_after=3)
    own_operator.set_faults(fail_status=503)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            connector.start({"phone": "0912000014"})
    served = own_operator.requests_served()
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        connector.start({"phone": "0912000014"})
    assert time.monotonic() - started < 0.2
    assert own_operator.requests_served() == served  # failed fast, without calling

    own_operator.clear_faults()
    time.sleep(3.1)  # half-open: one trial call goes through and closes the circuit
    connector.start({"phone": "0912000014"})
    assert latest_code(own_operator.base_url, "0912000014")


def test_slow_operator_times_out(make_telecom: Make, own_operator: Sandbox) -> None:
    connector = make_telecom(base_url=own_operator.base_url, timeout=0.3)
    own_operator.set_faults(delay_ms=2000)
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable):
        connector.start({"phone": "0912000015"})
    assert time.monotonic() - started < 1.5


def test_wrong_api_key_is_upstream_unavailable(make_telecom: Make, own_operator: Sandbox) -> None:
    connector = make_telecom(base_url=own_operator.base_url, api_key="not-the-key")
    with pytest.raises(UpstreamUnavailable):
        connector.start({"phone": "0912000016"})


# ---- the throttle service: one counter per number, per address, per request ---------------

FULL_WIDTH = {ord(d): chr(0xFF10 + int(d)) for d in "0123456789"}
ARABIC_INDIC = {ord(d): chr(0x0660 + int(d)) for d in "0123456789"}


def test_unicode_digit_variants_of_one_number_share_one_counter(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom(resend_after=0, sends_per_hour=3)
    plain = "0912100001"
    variants = [plain, plain.translate(FULL_WIDTH), plain.translate(ARABIC_INDIC), "0912\u3000100\u3000001"]
    assert variants[1] == "\uff10\uff19\uff11\uff12\uff11\uff10\uff10\uff10\uff10\uff11" and variants[2][0] == "\u0660"
    for variant in variants[:3]:
        assert connector.start({"phone": variant}).masked_destination == "091****001"
    with pytest.raises(RateLimited) as limited:
        connector.start({"phone": variants[3]})
    assert 0 < limited.value.retry_after <= 3600
    assert len(outbox(telecom_sandbox.base_url, "+84912100001")) == 3


def test_unicode_variants_share_the_resend_cooldown(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom()
    connector.start({"phone": "0912100002"})
    with pytest.raises(RateLimited):
        connector.start({"phone": "0912100002".translate(FULL_WIDTH)})
    assert len(outbox(telecom_sandbox.base_url, "+84912100002")) == 1


@pytest.mark.parametrize(
    "addresses",
    [["203.0.113.7"], ["2001:db8:7:1::1", "2001:db8:7:1:ffff:ffff:ffff:fffe", "2001:db8:7:1::abcd"]],
    ids=["ipv4", "ipv6-same-64"],
)
def test_many_numbers_from_one_address_are_stopped_at_the_per_address_limit(
    make_telecom: Make, telecom_sandbox: Sandbox, addresses: list[str]
) -> None:
    connector = make_telecom(resend_after=0)
    limit = Settings().sms_per_address_per_hour
    assert limit == 20
    block = "2" if addresses[0].count(".") else "3"
    sent, refused = [], []
    for i in range(25):
        number = f"09121{block}0{i:03d}"
        try:
            connector.start({"phone": number}, request_id=f"req-{block}-{i}", ip=addresses[i % len(addresses)])
            sent.append(number)
        except RateLimited as exc:
            assert exc.retry_after > 0
            refused.append(number)
    assert len(sent) == limit and sent == [f"09121{block}0{i:03d}" for i in range(limit)]
    assert len(refused) == 25 - limit
    assert all(outbox(telecom_sandbox.base_url, number) == [] for number in refused)
    # Another subscriber (another address, another /64) is not affected.
    other = "198.51.100.9" if block == "2" else "2001:db8:7:2::1"
    connector.start({"phone": f"09121{block}0999"}, request_id=f"req-{block}-other", ip=other)


def test_one_pending_request_may_send_only_a_few_messages(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom(resend_after=0)
    per_request = Settings().sms_per_request
    for i in range(per_request):
        connector.start({"phone": f"091210400{i}"}, request_id="one-request", ip="203.0.113.40")
    with pytest.raises(RateLimited):
        connector.start({"phone": "0912104009"}, request_id="one-request", ip="203.0.113.40")
    assert outbox(telecom_sandbox.base_url, "0912104009") == []
    connector.start({"phone": "0912104009"}, request_id="another-request", ip="203.0.113.40")


def test_a_challenge_from_another_request_does_not_cancel_the_first(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom(resend_after=0)
    victim = connector.start({"phone": "0912100005"}, request_id="victim-request", ip="198.51.100.5")
    victim_code = latest_code(telecom_sandbox.base_url, "0912100005")
    attacker = connector.start({"phone": "0912100005"}, request_id="attacker-request", ip="203.0.113.66")
    attacker_code = latest_code(telecom_sandbox.base_url, "0912100005")
    assert attacker_code != victim_code or attacker.state != victim.state
    assert connector.verify(victim.state, victim_code).subject == "+84912100005"


def test_a_resend_within_the_same_request_supersedes_its_previous_code(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom(resend_after=0)
    first = connector.start({"phone": "0912100006"}, request_id="same-request")
    old_code = latest_code(telecom_sandbox.base_url, "0912100006")
    second = connector.start({"phone": "0912100006"}, request_id="same-request")
    new_code = latest_code(telecom_sandbox.base_url, "0912100006")
    with pytest.raises(ChallengeExpired):
        connector.verify(first.state, old_code)
    assert connector.verify(second.state, new_code).subject == "+84912100006"


def test_send_notice_is_throttled_on_its_own_channel(make_telecom: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_telecom(resend_after=0, sends_per_hour=2)
    text = "NIXA: Mot phuong thuc dang nhap moi da duoc lien ket. / A new sign-in method was linked."
    connector.send_notice("0912100007", text, ip="203.0.113.70")
    connector.send_notice("+84912100007".translate(FULL_WIDTH), text, ip="203.0.113.70")
    messages = outbox(telecom_sandbox.base_url, "0912100007")
    assert [m["text"] for m in messages] == [text, text]
    assert not any(re.search(r"\b\d{6}\b", m["text"]) for m in messages)  # no code in a notice
    with pytest.raises(RateLimited):
        connector.send_notice("0912100007", text, ip="203.0.113.70")
    assert len(outbox(telecom_sandbox.base_url, "0912100007")) == 2
    # Notices do not use up the number's codes.
    connector.start({"phone": "0912100007"}, ip="203.0.113.70")
    assert len(outbox(telecom_sandbox.base_url, "0912100007")) == 3


def test_send_notice_to_an_operator_that_is_down_is_upstream_unavailable(make_telecom: Make, own_operator: Sandbox) -> None:
    connector = make_telecom(base_url=own_operator.base_url)
    own_operator.set_faults(fail_status=503)
    with pytest.raises(UpstreamUnavailable):
        connector.send_notice("0912100008", "NIXA: notice")
    with pytest.raises(InvalidCredentials):
        connector.send_notice("024 3825 1234", "NIXA: notice")


def test_without_the_throttle_service_codes_per_number_are_still_capped(make_telecom: Make, clock: ManualClock) -> None:
    connector = make_telecom(throttle=False, resend_after=0, sends_per_hour=2)
    assert connector.ctx.throttle is None
    connector.start({"phone": "0912100009"})
    connector.start({"phone": "0912100009".translate(ARABIC_INDIC)})
    with pytest.raises(RateLimited):
        connector.start({"phone": "0912100009"})
    clock.advance(3601)
    connector.start({"phone": "0912100009"})


def test_sends_are_counted_in_the_shared_throttle(make_telecom: Make, store: MemoryStore) -> None:
    throttle = Throttle(store, Settings(sms_global_per_hour=3))
    a = make_telecom(throttle=throttle, resend_after=0)
    b = make_telecom(throttle=throttle, resend_after=0)  # another worker, same store
    a.start({"phone": "0912100010"})
    b.start({"phone": "0912100011"})
    a.start({"phone": "0912100012"})
    with pytest.raises(RateLimited):
        b.start({"phone": "0912100013"})
