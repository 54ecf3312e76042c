"""Which connector types exist, and the live instances built from configuration in the database.

Adding a connector type is one package plus one line in CONNECTOR_TYPES. Configuration rows
carry a version: when an administrator edits one, the next lookup reopens that connector.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from connectors.base import ConnectorContext, LevelOfAssurance
from idp.store.db import Database
from idp.store.models import ConnectorConfig

CONNECTOR_TYPES: dict[str, str] = {
    "population": "connectors.population.connector:PopulationRegistryConnector",
    "telecom_sms": "connectors.telecom.connector:TelecomSmsConnector",
    "oidc": "connectors.oidc.connector:UpstreamOidcConnector",
    "certificate": "connectors.certificate.connector:CertificateConnector",
    "ldap": "connectors.ldap.connector:LdapConnector",
}


def load_type(type_name: str) -> type:
    target = CONNECTOR_TYPES.get(type_name)
    if target is None:
        raise KeyError(f"unknown connector type {type_name!r}; known: {', '.join(sorted(CONNECTOR_TYPES))}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


@dataclass(frozen=True)
class ConnectorEntry:
    id: str
    type: str
    version: int
    loa: LevelOfAssurance
    display_name_vi: str
    display_name_en: str
    position: int
    config: dict[str, Any]
    instance: Any


class ConnectorRegistry:
    def __init__(self, db: Database, store: Any, issuer: str, clock: Callable[[], float] = time.time, check_every: float = 5.0,
                 *, throttle: Any = None) -> None:
        self.db = db
        self.store = store
        self.throttle = throttle  # idp.store.throttle.Throttle, handed to every connector
        self.issuer = issuer
        self.clock = clock
        self.check_every = check_every
        self._entries: dict[str, ConnectorEntry] = {}
        self._checked = 0.0
        self._lock = threading.Lock()

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.check_every:
            return
        with self._lock:
            if not force and time.monotonic() - self._checked < self.check_every:
                return
            with self.db.session() as s:
                rows = s.scalars(select(ConnectorConfig).where(ConnectorConfig.enabled.is_(True))).all()
            fresh: dict[str, ConnectorEntry] = {}
            for row in rows:
                current = self._entries.get(row.id)
                if current is not None and current.version == row.version:
                    fresh[row.id] = current
                    continue
                ctx = ConnectorContext(connector_id=row.id, config=dict(row.config), store=self.store, clock=self.clock,
                                       issuer=self.issuer, registry=self, throttle=self.throttle)
                try:
                    instance = load_type(row.type)(ctx)
                except Exception:  # a broken configuration disables that connector, not NIXA
                    import logging

                    logging.getLogger("nixa.connectors").exception("connector %s failed to open", row.id)
                    continue
                fresh[row.id] = ConnectorEntry(row.id, row.type, row.version, LevelOfAssurance(row.loa), row.display_name_vi,
                                               row.display_name_en, row.position, dict(row.config), instance)
            self._entries = fresh
            self._checked = time.monotonic()

    def entries(self) -> list[ConnectorEntry]:
        self._refresh()
        return sorted(self._entries.values(), key=lambda e: (e.position, e.id))

    def entry(self, connector_id: str) -> ConnectorEntry | None:
        self._refresh()
        return self._entries.get(connector_id)

    def get(self, connector_id: str) -> Any:
        entry = self.entry(connector_id)
        if entry is None:
            raise KeyError(f"no enabled connector {connector_id!r}")
        return entry.instance

    def reload(self) -> None:
        self._refresh(force=True)

    def upsert(self, connector_id: str, type_name: str, config: dict[str, Any], *, loa: int | str = 1, display_name_vi: str = "",
               display_name_en: str = "", enabled: bool = True, position: int = 100) -> int:
        """Create or edit a connector configuration; a change bumps its version (live reopen)."""
        # Refuse an unknown type or a configuration the connector itself rejects, before writing.
        probe = load_type(type_name)(ConnectorContext(connector_id=connector_id, config=dict(config), store=self.store, clock=self.clock,
                                                      issuer=self.issuer, registry=self, throttle=self.throttle))
        if hasattr(probe, "close"):
            probe.close()
        level = int(LevelOfAssurance.parse(loa))
        with self.db.session() as s:
            row = s.get(ConnectorConfig, connector_id)
            if row is None:
                row = ConnectorConfig(id=connector_id, type=type_name, version=0)
                s.add(row)
            new = (type_name, config, level, display_name_vi, display_name_en, enabled, position)
            old = (row.type, row.config, row.loa, row.display_name_vi, row.display_name_en, row.enabled, row.position)
            if new != old or row.version == 0:
                (row.type, row.config, row.loa, row.display_name_vi, row.display_name_en, row.enabled, row.position) = new
                row.version += 1
                row.updated_at = time.time()
            version = row.version
        self._refresh(force=True)
        return version
