"""What the population tests share: keys, the sandbox command, a stand-in connector registry."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tests.connectors.sandboxes import Sandbox, running_sandbox

REGISTRY_API_KEY = "registry-test-key"
GENERATED = 2000
SEED = 7


class SiblingConnectors:
    """Tests only: the part of the connector registry a connector uses (`get(id)`)."""

    def __init__(self) -> None:
        self._connectors: dict[str, Any] = {}

    def add(self, connector: Any) -> None:
        self._connectors[connector.id] = connector

    def get(self, connector_id: str) -> Any:
        return self._connectors.get(connector_id)


def start_registry(db: Path, *extra: str) -> AbstractContextManager[Sandbox]:
    args = ("--api-key", REGISTRY_API_KEY, "--db", str(db), "--generate", str(GENERATED), "--seed", str(SEED))
    return running_sandbox("connectors.population.sandbox", *args, *extra)
