from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.base import ConnectorContext
from connectors.telecom.connector import TelecomSmsConnector
from idp.settings import Settings
from idp.store.ephemeral import MemoryStore
from idp.store.throttle import Throttle
from tests.connectors.clock import ManualClock
from tests.connectors.sandboxes import Sandbox
from tests.connectors.telecom.outbox import TELECOM_API_KEY


@pytest.fixture
def make_telecom(
    store: MemoryStore, clock: ManualClock, telecom_sandbox: Sandbox
) -> Iterator[Callable[..., TelecomSmsConnector]]:
    made: list[TelecomSmsConnector] = []

    def make(base_url: str | None = None, issuer: str = "", throttle: Throttle | None | bool = True, **config: Any) -> TelecomSmsConnector:
        """A connector on the test store; with the app's throttle service over that store unless
        `throttle` is False (or a Throttle of the test's own)."""
        settings = {"base_url": base_url or telecom_sandbox.base_url, "api_key": TELECOM_API_KEY, **config}
        if throttle is True:
            throttle = Throttle(store, Settings())
        ctx = ConnectorContext("telecom", settings, store, clock, issuer, throttle=throttle or None)
        connector = TelecomSmsConnector(ctx)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()

