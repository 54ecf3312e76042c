"""A real slapd per test (it starts in well under a second), stopped even when the test fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import ConnectorContext
from connectors.ldap.connector import LdapConnector
from connectors.ldap.sandbox import DirectoryHandle, start_directory
from idp.store.ephemeral import MemoryStore
from tests.connectors.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    """Moves the breaker's reset window by hand."""
    return ManualClock()


@pytest.fixture
def directory(tmp_path) -> Iterator[DirectoryHandle]:
    handle = start_directory(tmp_path / "slapd", 0, timeout=15)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def tls_directory(tmp_path) -> Iterator[DirectoryHandle]:
    handle = start_directory(tmp_path / "slapd-tls", 0, tls=True, timeout=15)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def make_connector():
    def make(directory: DirectoryHandle, clock: Any = None, **overrides: Any) -> LdapConnector:
        config = {**directory.connector_config(), **overrides}
        ctx = ConnectorContext("mof", config, MemoryStore(), **({"clock": clock} if clock else {}))
        return LdapConnector(ctx)

    return make
