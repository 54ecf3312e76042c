"""The admin API's connector routes (/connectors, /connector-types), over admin/connector_admin.py,
the service the CLI (`nixa connectors …`) and the console call too.

A connector's configuration is read and written as its type declares it
(connectors/declaration.py): unknown keys refused by name, secrets write-only (shown back only as
`{"set": true}`; an edit that leaves one out keeps it). A save bumps the connector's version and
every worker reopens it within seconds (connectors/registry.py): no restart."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from admin import connector_admin
from admin.api import operator
from admin.auth import Admin
from admin.service import not_found

class Health(BaseModel):
    ok: bool
    detail: str


class ConnectorView(BaseModel):
    id: str
    type: str
    version: int
    enabled: bool
    loa: str
    display_name_vi: str
    display_name_en: str
    position: int
    config: dict[str, Any] = Field(..., description="As declared; each secret only as {\"set\": true|false}")
    health: Health | None = Field(None, description="The source's answer to a probe now (list only)")


class ConnectorOption(BaseModel):
    name: str
    kind: str
    required: bool
    default: Any = None
    secret: bool
    doc: str


class ConnectorType(BaseModel):
    type: str
    options: list[ConnectorOption]
    form: dict[str, Any] = Field(..., description="The configuration as a JSON Schema object (secrets writeOnly)")


class ConnectorSave(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(..., min_length=1, max_length=64, description="One of GET /connector-types")
    config: dict[str, Any] = Field(default_factory=dict, description="The declared keys; a secret left out keeps the stored one")
    loa: Literal["low", "substantial", "high"] = "low"  # connector_admin.LEVELS
    display_name_vi: str = Field("", max_length=128)
    display_name_en: str = Field("", max_length=128)
    position: int = Field(100, ge=0, le=10_000, description="Order in the sign-in chooser")


ConnectorId = Annotated[str, Path(min_length=1, max_length=64, pattern=connector_admin.CONNECTOR_ID_PATTERN)]


# The caller of a route, by what the route needs (admin/roles.py PERMISSIONS).
ReadsConnectors = Annotated[Admin, Depends(operator("connectors.read"))]
ChangesConnectors = Annotated[Admin, Depends(operator("connectors.write"))]


def install(api: FastAPI, nixa: Any) -> None:

    def known(connector_id: str) -> Any:
        try:
            return connector_admin.show(nixa, connector_id)
        except connector_admin.UnknownConnector:
            raise not_found(f"connector {connector_id!r}") from None

    @api.get("/connectors", response_model=list[ConnectorView], tags=["connectors"])
    def list_connectors(admin: ReadsConnectors, health: Annotated[bool, Query(description="Probe each enabled source now")] = True) -> Any:
        return [v.as_dict() for v in connector_admin.list_connectors(nixa, health=health)]

    @api.get("/connector-types", response_model=list[ConnectorType], tags=["connectors"])
    def connector_types(admin: ReadsConnectors) -> Any:
        return connector_admin.types()

    @api.get("/connectors/{connector_id}", response_model=ConnectorView, tags=["connectors"])
    def get_connector(admin: ReadsConnectors, connector_id: ConnectorId) -> Any:
        return known(connector_id).as_dict()

    @api.put("/connectors/{connector_id}", response_model=ConnectorView, tags=["connectors"])
    def save_connector(admin: ChangesConnectors, connector_id: ConnectorId, body: ConnectorSave) -> Any:
        """Create, or edit (live: no restart). An edit keeps a disabled connector disabled."""
        view = connector_admin.save_or_refuse(nixa, connector_id, body.type, body.config, actor=admin.actor(), loa=body.loa,
                                              display_name_vi=body.display_name_vi, display_name_en=body.display_name_en,
                                              position=body.position, ip=admin.ip)
        return view.as_dict()

    def enabled(admin: Admin, connector_id: str, value: bool) -> Any:
        try:
            return connector_admin.set_enabled(nixa, connector_id, value, actor=admin.actor(), ip=admin.ip).as_dict()
        except connector_admin.UnknownConnector:
            raise not_found(f"connector {connector_id!r}") from None

    @api.post("/connectors/{connector_id}/enable", response_model=ConnectorView, tags=["connectors"])
    def enable_connector(admin: ChangesConnectors, connector_id: ConnectorId) -> Any:
        return enabled(admin, connector_id, True)

    @api.post("/connectors/{connector_id}/disable", response_model=ConnectorView, tags=["connectors"])
    def disable_connector(admin: ChangesConnectors, connector_id: ConnectorId) -> Any:
        return enabled(admin, connector_id, False)

    @api.post("/connectors/{connector_id}/test", response_model=Health, tags=["connectors"])
    def test_connector(admin: ChangesConnectors, connector_id: ConnectorId) -> Any:
        """Ask the source whether it answers now (bounded: a few seconds at most)."""
        try:
            return connector_admin.test(nixa, connector_id)
        except connector_admin.UnknownConnector:
            raise not_found(f"connector {connector_id!r}") from None
