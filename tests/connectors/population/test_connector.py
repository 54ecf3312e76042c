"""Knowledge check, refusals, attribute source, refresh and outages, against the registry sandbox."""

from __future__ import annotations

import sqlite3
from contextlib import closing
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from connectors.base import (
    Assertion,
    AttributeSource,
    ChallengeConnector,
    Gone,
    InvalidCredentials,
    LevelOfAssurance,
    NotAllowed,
    PasswordConnector,
    RefreshingConnector,
    UpstreamUnavailable,
    VerifiedAttribute,
)
from connectors.population.connector import PopulationRegistryConnector
from connectors.population.demo_data import DEMO_CITIZEN, DEMO_CITIZEN_2, DEMO_DECEASED, DEMO_LOCKED
from tests.connectors.clock import ManualClock
from tests.connectors.population.support import start_registry
from tests.connectors.sandboxes import Sandbox

Make = Callable[..., PopulationRegistryConnector]
AN = {"pin": DEMO_CITIZEN.pin, "full_name": DEMO_CITIZEN.full_name, "date_of_birth": DEMO_CITIZEN.date_of_birth}


def form(citizen, **changes: str) -> dict[str, str]:
    return {"pin": citizen.pin, "full_name": citizen.full_name, "date_of_birth": citizen.date_of_birth, **changes}


def test_capabilities(make_registry: Make) -> None:
    connector = make_registry()
    for capability in (ChallengeConnector, AttributeSource, RefreshingConnector):
        assert isinstance(connector, capability)
    # Knowing is not proving: the details printed on the card never sign anyone in by themselves.
    assert not isinstance(connector, PasswordConnector)
    assert not hasattr(connector, "login")
    assert [f.name for f in connector.challenge_fields] == ["pin", "full_name", "date_of_birth"]
    assert all(f.label_vi and f.label_en for f in connector.challenge_fields)


def test_identification_finds_the_record_and_proves_nothing(make_registry: Make) -> None:
    citizen = make_registry().find(AN)
    assert citizen.pin == DEMO_CITIZEN.pin and citizen.status == "active"
    assert not isinstance(citizen, Assertion)  # a record handle, never an assertion


def test_registry_attributes_on_enrich(make_registry: Make, clock: ManualClock) -> None:
    other = Assertion(connector_id="certificate", subject="cert-1",
                      attributes={"national_id": VerifiedAttribute("national_id", DEMO_CITIZEN.pin, "certificate", clock.now)})
    attrs = make_registry().enrich(other)
    expected = {
        "national_id": "001090000001",
        "name": "Nguyễn Văn An",
        "family_name": "Nguyễn",
        "middle_name": "Văn",
        "given_name": "An",
        "birthdate": "1990-01-15",
        "gender": "male",
        "phone_number": "+84912345678",
    }
    for name, value in expected.items():
        assert attrs[name].value == value, name
        assert attrs[name].source == "population"
        assert attrs[name].verified_at == clock.now
    assert attrs["address"].value == {"formatted": DEMO_CITIZEN.residence, "region": "Hà Nội", "country": "VN"}
    assert "phone_number_verified" not in attrs  # on record, not proven possessed


@pytest.mark.parametrize(
    "changes",
    [
        {"full_name": "  nguyễn   văn AN "},
        {"full_name": unicodedata.normalize("NFD", "Nguyễn Văn An")},
        {"date_of_birth": "15/01/1990"},
        {"pin": "001 090 000 001"},
    ],
)
def test_what_people_type_is_accepted(make_registry: Make, changes: dict[str, str]) -> None:
    assert make_registry().find({**AN, **changes}).pin == DEMO_CITIZEN.pin


def test_generated_citizens_sign_in_too(make_registry: Make, registry_db: Path, registry_sandbox: Sandbox) -> None:
    with closing(sqlite3.connect(registry_db)) as conn:
        pin, full_name, born = conn.execute(
            "SELECT pin, full_name, date_of_birth FROM citizens WHERE demo = 0 AND status = 'active' LIMIT 1"
        ).fetchone()
    assert make_registry().find({"pin": pin, "full_name": full_name, "date_of_birth": born}).full_name == full_name


@pytest.mark.parametrize(
    "changes",
    [
        {"full_name": "Nguyen Van An"},  # diacritics are part of the name
        {"full_name": "Nguyễn Văn Anh"},
        {"date_of_birth": "1990-01-16"},
        {"pin": "001090999999"},  # unknown
        {"pin": "00109000000"},  # malformed
        {"full_name": ""},
        {"date_of_birth": "not a date"},
    ],
)
def test_mismatch_and_unknown_look_the_same(make_registry: Make, changes: dict[str, str]) -> None:
    with pytest.raises(InvalidCredentials) as refused:
        make_registry().find({**AN, **changes})
    assert refused.value.code == "invalid_credentials"


def test_deceased_and_locked_are_refused(make_registry: Make) -> None:
    connector = make_registry()
    with pytest.raises(NotAllowed) as deceased:
        connector.find(form(DEMO_DECEASED))
    assert deceased.value.code == "deceased"
    with pytest.raises(NotAllowed) as locked:
        connector.find(form(DEMO_LOCKED))
    assert locked.value.code == "id_locked"
    # Wrong answers about a deceased person say nothing about the status.
    with pytest.raises(InvalidCredentials):
        connector.find(form(DEMO_DECEASED, date_of_birth="1945-03-03"))


def test_enrich_an_assertion_from_another_source(make_registry: Make, clock: ManualClock) -> None:
    other = Assertion(
        connector_id="certificate",
        subject="CN=NGUYEN VAN AN",
        attributes={"national_id": VerifiedAttribute("national_id", DEMO_CITIZEN_2.pin, "certificate", clock.now)},
        loa=LevelOfAssurance.HIGH,
    )
    attributes = make_registry().enrich(other)
    assert attributes["name"].value == "Phạm Ngọc Mai"
    assert attributes["birthdate"].value == "2002-11-30"
    assert attributes["gender"].value == "female"
    assert attributes["phone_number"].value == "+84356789012"
    assert {a.source for a in attributes.values()} == {"population"}


def test_enrich_without_a_usable_national_id_adds_nothing(make_registry: Make) -> None:
    connector = make_registry()
    assert connector.enrich(Assertion(connector_id="ldap", subject="an.nv")) == {}
    unknown = {"national_id": VerifiedAttribute("national_id", "001090999999", "certificate", 0)}
    assert connector.enrich(Assertion(connector_id="certificate", subject="x", attributes=unknown)) == {}


def test_enrich_refuses_a_deceased_person(make_registry: Make) -> None:
    deceased = {"national_id": VerifiedAttribute("national_id", DEMO_DECEASED.pin, "certificate", 0)}
    with pytest.raises(NotAllowed) as refused:
        make_registry().enrich(Assertion(connector_id="certificate", subject="x", attributes=deceased))
    assert refused.value.code == "deceased"


def test_refresh(make_registry: Make) -> None:
    connector = make_registry()
    fresh = connector.refresh(DEMO_CITIZEN.pin, {})
    assert isinstance(fresh, Assertion)
    assert fresh.subject == DEMO_CITIZEN.pin and fresh.amr == ()
    assert fresh.value("name") == "Nguyễn Văn An"
    gone_reasons = {DEMO_DECEASED.pin: "deceased", DEMO_LOCKED.pin: "id_locked", "001090999999": "unknown", "junk": "unknown"}
    for subject, reason in gone_reasons.items():
        gone = connector.refresh(subject, {})
        assert isinstance(gone, Gone) and gone.reason == reason


def test_refresh_sees_a_status_change(make_registry: Make, registry_db: Path, registry_sandbox: Sandbox) -> None:
    with closing(sqlite3.connect(registry_db)) as conn:
        (pin,) = conn.execute("SELECT pin FROM citizens WHERE demo = 0 AND status = 'active' LIMIT 1 OFFSET 7").fetchone()
    connector = make_registry()
    assert isinstance(connector.refresh(pin, {}), Assertion)
    url = f"{registry_sandbox.base_url}/_sandbox/citizens/{pin}/status"
    httpx.put(url, json={"status": "locked"}, timeout=5).raise_for_status()
    try:
        gone = connector.refresh(pin, {})
        assert isinstance(gone, Gone) and gone.reason == "id_locked"
    finally:
        httpx.put(url, json={"status": "active"}, timeout=5).raise_for_status()


def test_health(make_registry: Make) -> None:
    health = make_registry().health()
    assert health.ok and health.latency_ms is not None


# ---- outages: each on its own registry process ---------------------------------------------


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[Sandbox]:
    with start_registry(tmp_path / "own.db") as sandbox:
        yield sandbox


def test_registry_down_is_upstream_unavailable(make_registry: Make, own_registry: Sandbox) -> None:
    connector = make_registry(base_url=own_registry.base_url, timeout=1)
    assert connector.find(AN).pin == DEMO_CITIZEN.pin
    own_registry.stop()
    with pytest.raises(UpstreamUnavailable):
        connector.find(AN)
    with pytest.raises(UpstreamUnavailable):
        connector.refresh(DEMO_CITIZEN.pin, {})
    assert not connector.health().ok


def test_failures_open_the_circuit_then_it_recovers(make_registry: Make, own_registry: Sandbox) -> None:
    connector = make_registry(base_url=own_registry.base_url, retries=0, breaker_threshold=3, breaker_reset_after=0.5)
    own_registry.set_faults(fail_status=503)
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            connector.find(AN)
    served = own_registry.requests_served()
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(UpstreamUnavailable, match="circuit open"):
            connector.find(AN)
    assert time.monotonic() - started < 0.2
    assert own_registry.requests_served() == served  # failed fast: the registry saw nothing

    own_registry.clear_faults()
    time.sleep(0.6)
    assert connector.find(AN).pin == DEMO_CITIZEN.pin  # half-open trial succeeds, circuit closes
    assert connector.find(AN).pin == DEMO_CITIZEN.pin


def test_retries_ride_over_a_single_failure(make_registry: Make, own_registry: Sandbox) -> None:
    connector = make_registry(base_url=own_registry.base_url, retries=1)
    own_registry.set_faults(fail_status=502, count=1)
    assert connector.find(AN).pin == DEMO_CITIZEN.pin


def test_slow_registry_times_out(make_registry: Make, own_registry: Sandbox) -> None:
    connector = make_registry(base_url=own_registry.base_url, timeout=0.3, retries=0)
    own_registry.set_faults(delay_ms=2000)
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable):
        connector.find(AN)
    assert time.monotonic() - started < 1.5


def test_wrong_api_key_is_upstream_unavailable(make_registry: Make, own_registry: Sandbox) -> None:
    with pytest.raises(UpstreamUnavailable):
        make_registry(base_url=own_registry.base_url, api_key="wrong").find(AN)
