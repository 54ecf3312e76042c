"""The console's connector forms: create a connector and edit one, each generated from its type's
declaration (connectors/declaration.py `form`: a JSON Schema object), saved through
admin/connector_admin.save_or_refuse, as the admin API's PUT /connectors/{id}: permission
connectors.write, audited as `connector.changed` with the console actor, live on every worker
without a restart.

One input per declared key, of the kind it declares (a checkbox for a boolean, a select for an
enum, a number, a list as lines, a mapping as JSON); a secret is a password input that is never
filled back: left empty, the stored secret stays (connectors.declaration.merge_secrets). A key
the declaration does not have cannot come from the form, and the service refuses it by name if
it is posted anyway."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from admin import connector_admin
from admin.console import CONSOLE_PATH, Visit, get_page, notice_page, page, post_action
from admin.service import AdminRefused
from idp.login.pages import redirect

CONNECTORS = CONSOLE_PATH + "/connectors"
FIELD = "cfg."  # the form's name of a declared key: cfg.<key>, apart from the connector's own fields


def _schema(type_name: str) -> dict[str, Any] | None:
    return next((t["form"] for t in connector_admin.types() if t["type"] == type_name), None)


def _input(prop: dict[str, Any]) -> str:
    """The HTML input of a declared key, by its JSON Schema."""
    kind = prop.get("type")
    if prop.get("writeOnly"):
        return "password" if kind == "string" else "secret-text"
    if "enum" in prop:
        return "select"
    return {"boolean": "checkbox", "integer": "number", "number": "number", "array": "lines", "object": "json"}.get(
        kind if isinstance(kind, str) else "", "json" if isinstance(kind, list) else "text")


def _shown(value: Any) -> str:
    """A stored value as its input shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, indent=1)
    return str(value)


def fields(v: Visit, schema: dict[str, Any], values: dict[str, str], secrets_set: set[str]) -> list[dict[str, Any]]:
    """The inputs of a form, in the declaration's order; `values` by key as the inputs show them
    (a secret's never: only whether one is stored)."""
    required = set(schema.get("required", ()))
    out = []
    for key, prop in schema["properties"].items():
        kind = _input(prop)
        secret = kind in ("password", "secret-text")
        out.append({"key": key, "name": FIELD + key, "id": "cfg-" + key.replace(".", "-"), "input": kind,
                    "label": prop.get(f"x-label-{v.t.lang}") or prop.get("title") or key, "doc": prop.get("description", ""),
                    "required": key in required and not (secret and key in secrets_set), "options": prop.get("enum", []),
                    "value": "" if secret else values.get(key, ""), "secret_set": key in secrets_set,
                    "step": "any" if prop.get("type") == "number" else "1"})
    return out


def config_from_form(schema: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The configuration the form says, in the kinds the declaration has. An empty input is left
    out: the default, or for a secret the stored value. A value of the wrong kind is passed as
    typed so the declaration's check names it; a posted key it does not declare too."""
    config: dict[str, Any] = {}
    for key, prop in schema["properties"].items():
        kind, raw = prop.get("type"), form.get(FIELD + key)
        if kind == "boolean" and not prop.get("writeOnly"):
            config[key] = bool(raw)
            continue
        text = (raw or "").strip()
        if not text:
            continue
        if kind == "integer":
            config[key] = int(text) if re.fullmatch(r"-?\d{1,18}", text) else text
        elif kind == "number":
            try:
                config[key] = float(text)
            except ValueError:
                config[key] = text
        elif kind == "array":
            config[key] = [line.strip() for line in text.splitlines() if line.strip()]
        elif kind == "object" or (isinstance(kind, list) and text.startswith("{")):
            try:
                config[key] = json.loads(text)
            except ValueError:
                raise AdminRefused(400, "invalid_connector_config", f"`{key}` must be a JSON object") from None
        else:
            config[key] = text
    for name, value in form.items():
        if name.startswith(FIELD) and name[len(FIELD):] not in schema["properties"]:
            config[name[len(FIELD):]] = value
    return config


def _connector_fields(form: dict[str, str]) -> dict[str, Any]:
    """The connector's own fields: its level of assurance, names in the chooser, position."""
    raw = (form.get("position") or "100").strip()
    if not raw.isdigit() or int(raw) > 10_000:
        raise AdminRefused(400, "invalid_connector_config", "position: a whole number from 0 to 10000")
    return {"loa": form.get("loa", "low"), "display_name_vi": (form.get("display_name_vi") or "").strip()[:128],
            "display_name_en": (form.get("display_name_en") or "").strip()[:128], "position": int(raw)}


def install_connector_forms(router: APIRouter) -> None:
    def connector_form(v: Visit, *, type_name: str | None, current: connector_admin.ConnectorView | None = None,
                       form: dict[str, str] | None = None, error: str | None = None, status: int = 200) -> Response:
        schema = _schema(type_name) if type_name else None
        if current is not None:
            secrets_set = {k for k, val in current.config.items() if isinstance(val, dict) and val.get("set") is True
                           and (schema or {}).get("properties", {}).get(k, {}).get("writeOnly")}
        else:
            secrets_set = set()
        if form is None:  # the form as the connector is now, or the declared defaults
            stored = current.config if current else {}
            values = {k: _shown(stored.get(k, prop.get("default"))) for k, prop in (schema or {}).get("properties", {}).items()}
            own = ({"id": current.id, "loa": current.loa, "display_name_vi": current.display_name_vi,
                    "display_name_en": current.display_name_en, "position": str(current.position)} if current
                   else {"id": "", "loa": "low", "display_name_vi": "", "display_name_en": "", "position": "100"})
        else:
            values = {k[len(FIELD):]: val for k, val in form.items() if k.startswith(FIELD)}
            own = {k: form.get(k, "") for k in ("id", "loa", "display_name_vi", "display_name_en", "position")}
            if current:
                own["id"] = current.id
        return page(v, "console_connector_form.html", status, current=current, type_name=type_name if schema else None,
                    types=[t["type"] for t in connector_admin.types()], levels=connector_admin.LEVELS, own=own,
                    fields=fields(v, schema, values, secrets_set) if schema else [], error=error)

    @router.get(CONNECTORS + "/new")
    @get_page("connectors.write")
    def connector_new(v: Visit) -> Response:
        type_name = v.request.query_params.get("type") or None
        if type_name and _schema(type_name) is None:
            return connector_form(v, type_name=None, error=f"no connector type {type_name[:64]!r}", status=400)
        return connector_form(v, type_name=type_name)

    @router.post(CONNECTORS + "/new")
    @post_action("connectors.write")
    def connector_create(v: Visit, form: dict[str, str]) -> Response:
        type_name, connector_id = form.get("type", ""), (form.get("id") or "").strip()
        schema = _schema(type_name)
        if schema is None:
            return connector_form(v, type_name=None, error=f"no connector type {type_name[:64]!r}", status=400)
        try:
            if v.nixa.connectors.stored(connector_id) is not None:  # "new" never overwrites: an edit is its own form
                raise AdminRefused(409, "conflict", f"a connector {connector_id!r} exists already: edit it instead")
            connector_admin.save_or_refuse(v.nixa, connector_id, type_name, config_from_form(schema, form), actor=v.actor(),
                                           ip=v.admin.ip, **_connector_fields(form))
        except AdminRefused as exc:
            return connector_form(v, type_name=type_name, form=form, error=exc.description, status=exc.status)
        return redirect(f"{CONNECTORS}?notice=created")

    def known(v: Visit, connector_id: str) -> connector_admin.ConnectorView | None:
        try:
            return connector_admin.show(v.nixa, connector_id)
        except connector_admin.UnknownConnector:
            return None

    @router.get(CONNECTORS + "/{connector_id}/edit")
    @get_page("connectors.write")
    def connector_edit(v: Visit, connector_id: str) -> Response:
        current = known(v, connector_id)
        if current is None:
            return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
        return connector_form(v, type_name=current.type, current=current)

    @router.post(CONNECTORS + "/{connector_id}/edit")
    @post_action("connectors.write")
    def connector_save(v: Visit, form: dict[str, str], connector_id: str) -> Response:
        current = known(v, connector_id)
        schema = _schema(current.type) if current else None
        if current is None or schema is None:
            return notice_page(v.request, v.t, "console_not_found", 404, visit=v)
        try:
            connector_admin.save_or_refuse(v.nixa, connector_id, current.type, config_from_form(schema, form), actor=v.actor(),
                                           ip=v.admin.ip, **_connector_fields(form))
        except AdminRefused as exc:
            return connector_form(v, type_name=current.type, current=current, form=form, error=exc.description, status=exc.status)
        return redirect(f"{CONNECTORS}?notice=saved")
