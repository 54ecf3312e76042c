"""A test PKI in a temporary directory and its OCSP/CRL sandbox on a free loopback port.

The PKI and the sandbox are made once for this test package (RSA key generation is the slow part); every
test gets fresh connectors (fresh CRL cache, fresh breakers) and a sandbox with no faults.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from connectors.base import ConnectorContext
from connectors.certificate.connector import CertificateConnector
from connectors.certificate.pki import TestPKI
from idp.store.ephemeral import MemoryStore
from tests.connectors.sandboxes import free_port, running_sandbox

PROXY_ADDR = "127.0.0.1"
ISSUER = "https://id.nixa.example.vn"


@dataclass
class Sandbox:
    """The OCSP/CRL sandbox with its certificate-specific fault switches."""

    base_url: str

    def faults(self, **faults: Any) -> None:
        httpx.post(f"{self.base_url}/_sandbox/faults", json=faults, timeout=5).raise_for_status()

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.base_url}/_sandbox/stats", timeout=5).json()


@pytest.fixture(scope="package")
def pki_and_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestPKI, Sandbox]]:
    # The certificates carry the responder's URL, so the port is chosen before the PKI is made.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    pki = TestPKI.init(tmp_path_factory.mktemp("pki"), ocsp_url=f"{base}/ocsp", crl_url=f"{base}/crl")
    with running_sandbox("connectors.certificate.sandbox", "--pki", str(pki.dir), port=port, health_timeout=15) as box:
        yield pki, Sandbox(box.base_url)


@pytest.fixture
def pki(pki_and_sandbox) -> TestPKI:
    return pki_and_sandbox[0]


@pytest.fixture
def sandbox(pki_and_sandbox) -> Iterator[Sandbox]:
    box = pki_and_sandbox[1]
    box.faults()
    yield box
    box.faults()


class ManualClock:
    """Real time plus whatever the test adds, so the sandbox's signatures stay current."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Connectors:
    pki: TestPKI
    clock: ManualClock = field(default_factory=ManualClock)
    made: list[CertificateConnector] = field(default_factory=list)

    def __call__(self, *, issuer: str = ISSUER, **overrides: Any) -> CertificateConnector:
        config = {
            "trust_anchors": [str(self.pki.trust_anchor_path)],
            "ocsp_timeout": 2,
            "trusted_proxies": [f"{PROXY_ADDR}/32", "10.20.0.0/16"],
            **overrides,
        }
        connector = CertificateConnector(ConnectorContext("certificate", config, MemoryStore(self.clock), clock=self.clock, issuer=issuer))
        self.made.append(connector)
        return connector


@pytest.fixture
def connectors(pki: TestPKI, sandbox: Sandbox) -> Iterator[Connectors]:
    made = Connectors(pki)
    yield made
    for connector in made.made:
        connector.close()
