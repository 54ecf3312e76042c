"""Connector administration, one service for the CLI and the admin API: list with live health,
describe a type's declared configuration, show (secrets hidden), save (declared keys only,
secrets write-only), enable, disable, test. Every change is audited (`connector.changed`) with
the actor and what changed, before and after (a secret only as "(changed)")."""

from __future__ import annotations

import concurrent.futures
import re
from dataclasses import dataclass
from typing import Any

from admin.service import AdminRefused
from connectors.declaration import ConfigRefused, changed_keys, form, options, public_view
from connectors.registry import CONNECTOR_TYPES

HEALTH_TIMEOUT = 5.0
CONNECTOR_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # at most 64 characters: a path segment and a log field
LEVELS = ("low", "substantial", "high")


@dataclass(frozen=True)
class ConnectorView:
    id: str
    type: str
    version: int
    enabled: bool
    loa: str
    display_name_vi: str
    display_name_en: str
    position: int
    config: dict[str, Any]
    health: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class UnknownConnector(LookupError):
    pass


def types() -> list[dict[str, Any]]:
    """Every connector type with its declared options (for `nixa connectors describe`) and the
    same as a JSON Schema object (`form`, for the admin API's and the console's forms)."""
    return [{"type": t, "options": [o.as_dict() for o in options(t)], "form": form(t)} for t in sorted(CONNECTOR_TYPES)]


def _view(stored: Any, health: dict[str, Any] | None = None) -> ConnectorView:
    return ConnectorView(stored.id, stored.type, stored.version, stored.enabled, stored.loa.name.lower(), stored.display_name_vi,
                         stored.display_name_en, stored.position, public_view(stored.type, stored.config), health)


def test(nixa: Any, connector_id: str) -> dict[str, Any]:
    """Ask the connector's external system whether it answers (bounded; never raises)."""
    stored = nixa.connectors.stored(connector_id)
    if stored is None:
        raise UnknownConnector(connector_id)
    if not stored.enabled:
        return {"ok": False, "detail": "disabled"}
    entry = nixa.connectors.entry(connector_id)
    if entry is None:
        return {"ok": False, "detail": "the configuration does not open (see the log)"}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        h = pool.submit(entry.instance.health).result(timeout=HEALTH_TIMEOUT)
        return {"ok": bool(h.ok), "detail": str(h.detail)}
    except concurrent.futures.TimeoutError:
        return {"ok": False, "detail": f"no answer within {HEALTH_TIMEOUT:g} s"}
    except Exception as exc:  # a probe must never take the caller down
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    finally:
        pool.shutdown(wait=False)


def list_connectors(nixa: Any, *, health: bool = False) -> list[ConnectorView]:
    return [_view(s, test(nixa, s.id) if health else None) for s in nixa.connectors.all_stored()]


def show(nixa: Any, connector_id: str) -> ConnectorView:
    stored = nixa.connectors.stored(connector_id)
    if stored is None:
        raise UnknownConnector(connector_id)
    return _view(stored)


def save(nixa: Any, connector_id: str, type_name: str, config: dict[str, Any], *, actor: dict[str, Any], loa: str | int = "low",
         display_name_vi: str = "", display_name_en: str = "", position: int = 100, ip: str | None = None) -> ConnectorView:
    """Create or edit; raises ConfigRefused (ValueError) or KeyError (unknown type) before writing."""
    before = nixa.connectors.stored(connector_id)
    # An edit keeps a disabled connector disabled: enabling is its own, audited, action.
    version = nixa.connectors.upsert(connector_id, type_name, config, loa=loa, display_name_vi=display_name_vi,
                                     display_name_en=display_name_en, position=position,
                                     enabled=before.enabled if before is not None else True)
    after = nixa.connectors.stored(connector_id)
    changes = changed_keys(type_name, before.config if before else {}, after.config)
    for name in ("type", "loa", "display_name_vi", "display_name_en", "position"):
        old, new = (getattr(before, name) if before else None), getattr(after, name)
        if old != new:
            changes[name] = {"before": old.name.lower() if hasattr(old, "name") else old,
                             "after": new.name.lower() if hasattr(new, "name") else new}
    nixa.events.emit("connector.changed", ip=ip, data={"connector": connector_id, "version": version, "actor": actor,
                                                       "action": "created" if before is None else "edited", "changes": changes})
    return _view(after)


def save_or_refuse(nixa: Any, connector_id: str, type_name: str, config: dict[str, Any], **kw: Any) -> ConnectorView:
    """`save`, its refusals as the admin API and the console answer them: AdminRefused 400
    `invalid_connector_config` naming the key (or the connector's own objection)."""
    if len(connector_id) > 64 or not re.match(CONNECTOR_ID_PATTERN, connector_id):
        raise AdminRefused(400, "invalid_connector_config", "id: letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit")
    if str(kw.get("loa", "low")) not in LEVELS:
        raise AdminRefused(400, "invalid_connector_config", f"loa: one of {', '.join(LEVELS)}")
    try:
        return save(nixa, connector_id, type_name, config, **kw)
    except ConfigRefused as exc:
        raise AdminRefused(400, "invalid_connector_config", str(exc)[:1000]) from None
    except KeyError:
        raise AdminRefused(400, "invalid_connector_config", f"no connector type {type_name!r} (GET /connector-types)") from None
    except (ValueError, TypeError, LookupError, AttributeError, OSError) as exc:
        # the connector itself refused the meaning of a value when the registry opened it
        # (a URL it cannot use, a certificate file that is not there)
        raise AdminRefused(400, "invalid_connector_config", f"{type_name} connector: {exc}"[:1000]) from None


def set_enabled(nixa: Any, connector_id: str, enabled: bool, *, actor: dict[str, Any], ip: str | None = None) -> ConnectorView:
    before = nixa.connectors.stored(connector_id)
    if before is None:
        raise UnknownConnector(connector_id)
    version = nixa.connectors.set_enabled(connector_id, enabled)
    if before.enabled != enabled:
        nixa.events.emit("connector.changed", ip=ip, data={
            "connector": connector_id, "version": version, "actor": actor, "action": "enabled" if enabled else "disabled",
            "changes": {"enabled": {"before": before.enabled, "after": enabled}}})
    return show(nixa, connector_id)
