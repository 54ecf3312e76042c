"""Fixtures every connector's tests share: a hand-moved clock, an in-process store on it, and
the operator SMS sandbox (a real process) that the telecom and registry connectors both use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from idp.store.ephemeral import MemoryStore
from tests.connectors.clock import ManualClock
from tests.connectors.sandboxes import Sandbox, running_sandbox
from tests.connectors.telecom.outbox import TELECOM_API_KEY


@pytest.fixture(scope="session")
def telecom_sandbox() -> Iterator[Sandbox]:
    with running_sandbox("connectors.telecom.sandbox", "--api-key", TELECOM_API_KEY) as sandbox:
        yield sandbox


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> MemoryStore:
    return MemoryStore(clock)
