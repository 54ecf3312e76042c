"""A test PKI in a temporary directory and its OCSP/CRL sandbox on a free loopback port.

The PKI and the sandbox are made once for this test package (RSA key generation is the slow part); every
test gets fresh connectors (fresh CRL cache, fresh breakers) and a sandbox with no faults.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import ConnectorContext
from connectors.certificate.connector import CertificateConnector
from connectors.certificate.pki import TestPKI
from idp.store.ephemeral import MemoryStore

REPO_ROOT = Path(__file__).resolve().parents[3]
STARTUP_ATTEMPTS = 150  # × 0.1 s
PROXY_ADDR = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Sandbox:
    base_url: str
    process: subprocess.Popen

    def faults(self, **faults: Any) -> None:
        httpx.post(f"{self.base_url}/_sandbox/faults", json=faults, timeout=5).raise_for_status()

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.base_url}/_sandbox/stats", timeout=5).json()


@pytest.fixture(scope="package")
def pki_and_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestPKI, Sandbox]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    pki = TestPKI.init(tmp_path_factory.mktemp("pki"), ocsp_url=f"{base}/ocsp", crl_url=f"{base}/crl")
    log_path = pki.dir.parent / "sandbox.log"  # a file, not a pipe nobody drains
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.certificate.sandbox", "--host", "127.0.0.1", "--port", str(port), "--pki", str(pki.dir)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(STARTUP_ATTEMPTS):
            if process.poll() is not None:
                raise RuntimeError(f"sandbox exited: {log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("sandbox did not become healthy")
        yield pki, Sandbox(base, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


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

    def __call__(self, **overrides: Any) -> CertificateConnector:
        config = {
            "trust_anchors": [str(self.pki.trust_anchor_path)],
            "ocsp_timeout": 2,
            "trusted_proxies": [f"{PROXY_ADDR}/32", "10.20.0.0/16"],
            **overrides,
        }
        connector = CertificateConnector(ConnectorContext("certificate", config, MemoryStore(self.clock), clock=self.clock))
        self.made.append(connector)
        return connector


@pytest.fixture
def connectors(pki: TestPKI, sandbox: Sandbox) -> Iterator[Connectors]:
    made = Connectors(pki)
    yield made
    for connector in made.made:
        connector.close()
