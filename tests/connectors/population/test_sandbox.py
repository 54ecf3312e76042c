"""The registry sandbox's HTTP API, called directly."""

from __future__ import annotations

import unicodedata

import httpx

from connectors.population.demo_data import DEMO_CITIZEN, DEMO_DECEASED
from tests.connectors.population.support import REGISTRY_API_KEY
from tests.connectors.sandboxes import Sandbox

AUTH = {"Authorization": f"Bearer {REGISTRY_API_KEY}"}


def verify(sandbox: Sandbox, pin: str, full_name: str, born: str) -> httpx.Response:
    body = {"pin": pin, "full_name": full_name, "date_of_birth": born}
    return httpx.post(f"{sandbox.base_url}/v1/verify", json=body, headers=AUTH, timeout=5)


def test_lookup_needs_the_api_key(registry_sandbox: Sandbox) -> None:
    url = f"{registry_sandbox.base_url}/v1/citizens/{DEMO_CITIZEN.pin}"
    assert httpx.get(url, timeout=5).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    record = httpx.get(url, headers=AUTH, timeout=5).json()
    assert record["full_name"] == "Nguyễn Văn An"
    assert record["phone"] == "0912345678" and record["status"] == "active"


def test_lookup_unknown_and_malformed(registry_sandbox: Sandbox) -> None:
    assert httpx.get(f"{registry_sandbox.base_url}/v1/citizens/001090999999", headers=AUTH, timeout=5).status_code == 404
    assert httpx.get(f"{registry_sandbox.base_url}/v1/citizens/12345", headers=AUTH, timeout=5).status_code == 400


def test_name_comparison(registry_sandbox: Sandbox) -> None:
    pin, born = DEMO_CITIZEN.pin, DEMO_CITIZEN.date_of_birth
    for same in ("Nguyễn Văn An", "  nguyễn   văn AN ", "NGUYỄN VĂN AN", unicodedata.normalize("NFD", "Nguyễn Văn An")):
        assert verify(registry_sandbox, pin, same, born).json() == {"match": True, "status": "active"}
    for other in ("Nguyen Van An", "Nguyễn Văn Ân", "Nguyễn An"):
        assert verify(registry_sandbox, pin, other, born).json() == {"match": False, "status": None}
    assert verify(registry_sandbox, pin, "Nguyễn Văn An", "1990-01-16").json()["match"] is False


def test_status_only_told_on_a_match(registry_sandbox: Sandbox) -> None:
    d = DEMO_DECEASED
    assert verify(registry_sandbox, d.pin, d.full_name, d.date_of_birth).json() == {"match": True, "status": "deceased"}
    assert verify(registry_sandbox, d.pin, "Someone Else", d.date_of_birth).json() == {"match": False, "status": None}
    assert verify(registry_sandbox, "001090999999", "Nguyễn Văn An", "1990-01-15").json() == {"match": False, "status": None}


def test_malformed_verify_request(registry_sandbox: Sandbox) -> None:
    assert verify(registry_sandbox, DEMO_CITIZEN.pin, "Nguyễn Văn An", "15/01/1990").status_code == 400
    response = httpx.post(f"{registry_sandbox.base_url}/v1/verify", json={"pin": "x"}, headers=AUTH, timeout=5)
    assert response.status_code == 400
