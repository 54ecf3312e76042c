from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorContext
from connectors.population.connector import PopulationRegistryConnector
from connectors.telecom.connector import TelecomSmsConnector
from idp.store.ephemeral import MemoryStore
from tests.connectors.clock import ManualClock
from tests.connectors.population.support import REGISTRY_API_KEY, SiblingConnectors, start_registry
from tests.connectors.sandboxes import Sandbox
from tests.connectors.telecom.outbox import TELECOM_API_KEY


@pytest.fixture(scope="session")
def registry_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry") / "registry.db"


@pytest.fixture(scope="session")
def registry_sandbox(registry_db: Path) -> Iterator[Sandbox]:
    with start_registry(registry_db) as sandbox:
        yield sandbox


@pytest.fixture
def siblings() -> SiblingConnectors:
    return SiblingConnectors()


@pytest.fixture
def telecom(
    store: MemoryStore, clock: ManualClock, telecom_sandbox: Sandbox, siblings: SiblingConnectors
) -> Iterator[TelecomSmsConnector]:
    config = {"base_url": telecom_sandbox.base_url, "api_key": TELECOM_API_KEY}
    connector = TelecomSmsConnector(ConnectorContext("telecom", config, store, clock, registry=siblings))
    siblings.add(connector)
    yield connector
    connector.close()


@pytest.fixture
def make_registry(
    store: MemoryStore, clock: ManualClock, registry_sandbox: Sandbox, siblings: SiblingConnectors
) -> Iterator[Callable[..., PopulationRegistryConnector]]:
    made: list[PopulationRegistryConnector] = []

    def make(base_url: str | None = None, **config: Any) -> PopulationRegistryConnector:
        settings = {"base_url": base_url or registry_sandbox.base_url, "api_key": REGISTRY_API_KEY, **config}
        connector = PopulationRegistryConnector(ConnectorContext("population", settings, store, clock, registry=siblings))
        siblings.add(connector)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()
