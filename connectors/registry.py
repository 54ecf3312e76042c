"""Which connector types exist, and the live instances built from configuration in the database.

Adding a connector type is one package plus one line in CONNECTOR_TYPES. Configuration rows
carry a version: when an administrator edits one, the next lookup reopens that connector.

The config keys a connector class lists in `secret_keys` (passwords, API keys, private keys) are
sealed in the row (keys/sealing.py), bound to connector and key: `{"$sealed": "<blob>"}`. They
are opened only to build the connector; a plaintext value from before sealing still reads and
is sealed at the next write or master-key rotation.
"""

from __future__ import annotations

import base64
import importlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import ConnectorContext, LevelOfAssurance
from idp.store.db import Database
from idp.store.models import ConnectorConfig
from keys.sealing import Sealer, place

SEALED = "$sealed"

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


def secret_keys(type_name: str) -> frozenset[str]:
    return frozenset(getattr(load_type(type_name), "secret_keys", ()))


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED}


def seal_config(sealer: Sealer, connector_id: str, type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """The row's form: each declared secret sealed (as JSON, so a JWK stays a JWK)."""
    hidden = secret_keys(type_name)
    out = {}
    for key, value in config.items():
        if key in hidden and value is not None and not _is_sealed(value):
            blob = sealer.seal(json.dumps(value).encode(), _aad(connector_id, key))
            value = {SEALED: base64.b64encode(blob).decode()}
        out[key] = value
    return out


def open_config(sealer: Sealer, connector_id: str, config: dict[str, Any]) -> dict[str, Any]:
    return {key: json.loads(sealer.open(base64.b64decode(value[SEALED]), _aad(connector_id, key))) if _is_sealed(value) else value
            for key, value in config.items()}


def _aad(connector_id: str, key: str) -> str:
    return place("connector_configs", connector_id, f"config.{key}")


@dataclass(frozen=True)
class ConnectorEntry:
    id: str
    type: str
    version: int
    loa: LevelOfAssurance
    display_name_vi: str
    display_name_en: str
    position: int
    config: dict[str, Any] = field(repr=False)  # opened: secrets in the clear, in memory only
    instance: Any = field(repr=False)


@dataclass(frozen=True)
class StoredConnector:
    id: str
    type: str
    version: int
    enabled: bool
    loa: LevelOfAssurance
    display_name_vi: str
    display_name_en: str
    position: int
    config: dict[str, Any] = field(repr=False)


class ConnectorRegistry:
    def __init__(self, db: Database, store: Any, issuer: str, clock: Callable[[], float] = time.time, check_every: float = 5.0,
                 *, throttle: Any = None, sealer: Sealer, fetch_policy: Any = None) -> None:
        self.db = db
        self.sealer = sealer
        self.store = store
        self.throttle = throttle  # idp.store.throttle.Throttle, handed to every connector
        self.fetch_policy = fetch_policy  # connectors.safe_fetch.FetchPolicy, handed to every connector
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
                try:
                    config = open_config(self.sealer, row.id, row.config)
                    ctx = ConnectorContext(connector_id=row.id, config=config, store=self.store, clock=self.clock,
                                           issuer=self.issuer, registry=self, throttle=self.throttle, fetch_policy=self.fetch_policy)
                    instance = load_type(row.type)(ctx)
                except Exception:  # a broken configuration disables that connector, not NIXA
                    import logging

                    logging.getLogger("nixa.connectors").exception("connector %s failed to open", row.id)
                    continue
                fresh[row.id] = ConnectorEntry(row.id, row.type, row.version, LevelOfAssurance(row.loa), row.display_name_vi,
                                               row.display_name_en, row.position, config, instance)
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
        """Create or edit a connector configuration; a change bumps its version (live reopen).

        Secrets are write-only: one left out of `config` (or empty) keeps the stored value."""
        from connectors.declaration import check, merge_secrets

        load_type(type_name)  # an unknown type is refused before anything else
        stored = self.stored(connector_id)
        if stored is not None and stored.type == type_name:
            config = merge_secrets(type_name, stored.config, config)
        # Refuse keys the type does not declare, values of the wrong kind, and a configuration
        # the connector itself rejects, before writing.
        check(type_name, config)
        probe = load_type(type_name)(ConnectorContext(connector_id=connector_id, config=dict(config), store=self.store, clock=self.clock,
                                                      issuer=self.issuer, registry=self, throttle=self.throttle,
                                                      fetch_policy=self.fetch_policy))
        if hasattr(probe, "close"):
            probe.close()
        level = int(LevelOfAssurance.parse(loa))
        with self.db.session() as s:
            row = s.get(ConnectorConfig, connector_id)
            if row is None:
                row = ConnectorConfig(id=connector_id, type=type_name, version=0)
                s.add(row)
            new = (type_name, config, level, display_name_vi, display_name_en, enabled, position)
            old = (row.type, open_config(self.sealer, connector_id, row.config or {}), row.loa, row.display_name_vi, row.display_name_en,
                   row.enabled, row.position)
            if new != old or row.version == 0:
                (row.type, _, row.loa, row.display_name_vi, row.display_name_en, row.enabled, row.position) = new
                row.version += 1
                row.updated_at = time.time()
            row.config = seal_config(self.sealer, connector_id, type_name, config)  # also seals a value from before sealing
            version = row.version
        self._refresh(force=True)
        return version

    def stored(self, connector_id: str) -> StoredConnector | None:
        """The row as configured, enabled or not (secrets opened: for the service layer only,
        never shown; connectors.declaration.public_view hides them)."""
        with self.db.session() as s:
            row = s.get(ConnectorConfig, connector_id)
            if row is None:
                return None
            return StoredConnector(row.id, row.type, row.version, bool(row.enabled), LevelOfAssurance(row.loa), row.display_name_vi,
                                   row.display_name_en, row.position, open_config(self.sealer, row.id, row.config or {}))

    def all_stored(self) -> list[StoredConnector]:
        with self.db.session() as s:
            ids = list(s.scalars(select(ConnectorConfig.id).order_by(ConnectorConfig.position, ConnectorConfig.id)))
        return [c for c in (self.stored(i) for i in ids) if c is not None]

    def set_enabled(self, connector_id: str, enabled: bool) -> int | None:
        """Enable or disable a connector (a new version: every worker sees it within seconds).
        None when there is no such connector; the version unchanged when nothing changed."""
        with self.db.session() as s:
            row = s.get(ConnectorConfig, connector_id)
            if row is None:
                return None
            if bool(row.enabled) != enabled:
                row.enabled = enabled
                row.version += 1
                row.updated_at = time.time()
            version = row.version
        self._refresh(force=True)
        return version

    def reseal(self, s: Session, sealer: Sealer) -> int:
        """Master-key rotation: every connector secret sealed again under the sealer's version,
        plaintext ones from before sealing included."""
        count = 0
        for row in s.scalars(select(ConnectorConfig)).all():
            opened = open_config(sealer, row.id, row.config)
            row.config = seal_config(sealer, row.id, row.type, opened)
            count += sum(1 for v in row.config.values() if _is_sealed(v))
        return count
