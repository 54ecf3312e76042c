"""Registry knowledge check + SMS code to the phone on record → SUBSTANTIAL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.base import ChallengeExpired, InvalidCredentials, LevelOfAssurance, NotAllowed, RateLimited, UpstreamUnavailable
from connectors.population import demo_data as demo
from connectors.population.connector import PopulationRegistryConnector
from connectors.telecom.connector import TelecomSmsConnector
from tests.connectors.clock import ManualClock
from tests.connectors.sandboxes import Sandbox
from tests.connectors.telecom.outbox import latest_code, outbox, wrong_code

Make = Callable[..., PopulationRegistryConnector]
DEMO_CITIZEN, DEMO_CITIZEN_2, DEMO_PHONE_E164 = demo.DEMO_CITIZEN, demo.DEMO_CITIZEN_2, demo.DEMO_PHONE_E164
DEMO_DECEASED, DEMO_LOCKED, DEMO_NO_PHONE = demo.DEMO_DECEASED, demo.DEMO_LOCKED, demo.DEMO_NO_PHONE

# Every test here has the telecom connector registered as the registry's OTP sibling.
pytestmark = pytest.mark.usefixtures("telecom")


def form(citizen) -> dict[str, str]:
    return {"pin": citizen.pin, "full_name": citizen.full_name, "date_of_birth": citizen.date_of_birth}


def test_code_to_the_phone_on_record_gives_substantial(make_registry: Make, telecom_sandbox: Sandbox, clock: ManualClock) -> None:
    connector = make_registry()
    challenge = connector.start(form(DEMO_CITIZEN))
    assert challenge.masked_destination == "091****678"
    assert challenge.ttl == 300 and challenge.resend_after == 30
    assert challenge.state["pin"] == DEMO_CITIZEN.pin
    code = latest_code(telecom_sandbox.base_url, DEMO_PHONE_E164)
    assert code not in repr(dict(challenge.state))

    assertion = connector.verify(challenge.state, code)
    assert assertion.connector_id == "population"
    assert assertion.subject == DEMO_CITIZEN.pin
    assert assertion.loa == LevelOfAssurance.SUBSTANTIAL
    assert assertion.amr == ("kba", "sms", "otp", "mfa")
    assert assertion.national_id == DEMO_CITIZEN.pin
    assert assertion.value("name") == "Nguyễn Văn An"
    assert assertion.value("birthdate") == "1990-01-15"
    assert assertion.value("address")["region"] == "Hà Nội"
    assert assertion.value("phone_number") == "+84912345678"
    assert assertion.value("phone_number_verified") is True
    assert {a.source for a in assertion.attributes.values()} == {"population"}
    assert assertion.authenticated_at == clock.now


def test_phone_on_record_in_international_form(make_registry: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_registry()
    challenge = connector.start(form(DEMO_CITIZEN_2))
    assert challenge.masked_destination == "035****012"
    assertion = connector.verify(challenge.state, latest_code(telecom_sandbox.base_url, "0356789012"))
    assert assertion.value("phone_number") == "+84356789012"


def test_replayed_and_expired_codes(make_registry: Make, telecom_sandbox: Sandbox, clock: ManualClock) -> None:
    connector = make_registry()
    challenge = connector.start(form(DEMO_CITIZEN))
    code = latest_code(telecom_sandbox.base_url, DEMO_PHONE_E164)
    connector.verify(challenge.state, code)
    with pytest.raises(ChallengeExpired):
        connector.verify(challenge.state, code)

    clock.advance(31)  # past the resend throttle
    challenge = connector.start(form(DEMO_CITIZEN))
    code = latest_code(telecom_sandbox.base_url, DEMO_PHONE_E164)
    clock.advance(301)
    with pytest.raises(ChallengeExpired):
        connector.verify(challenge.state, code)


def test_five_wrong_codes_end_it(make_registry: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_registry()
    challenge = connector.start(form(DEMO_CITIZEN))
    code = latest_code(telecom_sandbox.base_url, DEMO_PHONE_E164)
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            connector.verify(challenge.state, wrong_code(code))
    with pytest.raises(ChallengeExpired):
        connector.verify(challenge.state, code)


def test_the_code_vouches_for_one_person_only(make_registry: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_registry()
    challenge = connector.start(form(DEMO_CITIZEN))
    code = latest_code(telecom_sandbox.base_url, DEMO_PHONE_E164)
    with pytest.raises(ChallengeExpired):
        connector.verify({**challenge.state, "pin": DEMO_CITIZEN_2.pin}, code)


def test_a_telecom_sign_in_challenge_is_not_a_registry_one(
    make_registry: Make, telecom: TelecomSmsConnector, telecom_sandbox: Sandbox
) -> None:
    challenge = telecom.start({"phone": "0912345678"})
    code = latest_code(telecom_sandbox.base_url, DEMO_PHONE_E164)
    with pytest.raises(ChallengeExpired):
        make_registry().verify({**challenge.state, "pin": DEMO_CITIZEN.pin}, code)


def test_resend_is_throttled(make_registry: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_registry()
    connector.start(form(DEMO_CITIZEN_2))
    with pytest.raises(RateLimited) as limited:
        connector.start(form(DEMO_CITIZEN_2))
    assert limited.value.retry_after == 30


def test_no_code_is_sent_to_refused_people(make_registry: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_registry()
    for citizen, code in ((DEMO_DECEASED, "deceased"), (DEMO_LOCKED, "id_locked"), (DEMO_NO_PHONE, "no_phone_on_record")):
        with pytest.raises(NotAllowed) as refused:
            connector.start(form(citizen))
        assert refused.value.code == code
    assert outbox(telecom_sandbox.base_url, DEMO_DECEASED.phone) == []
    assert outbox(telecom_sandbox.base_url, DEMO_LOCKED.phone) == []
    with pytest.raises(InvalidCredentials):
        connector.start({**form(DEMO_CITIZEN), "full_name": "Nguyen Van An"})


def test_without_the_otp_connector_the_method_is_unavailable(make_registry: Make) -> None:
    connector = make_registry(otp_connector="operator-x")
    with pytest.raises(UpstreamUnavailable):
        connector.start(form(DEMO_CITIZEN))


def test_levels_are_configurable(make_registry: Make, telecom_sandbox: Sandbox) -> None:
    connector = make_registry(loa="urn:nixa:loa:low", challenge_loa=3)
    assert connector.config.loa == LevelOfAssurance.LOW
    challenge = connector.start(form(DEMO_CITIZEN_2))
    assertion = connector.verify(challenge.state, latest_code(telecom_sandbox.base_url, "0356789012"))
    assert assertion.loa == LevelOfAssurance.HIGH
