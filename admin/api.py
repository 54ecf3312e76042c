"""The admin REST API under /admin/api, described by OpenAPI 3.1 at /admin/api/openapi.json.

Its own FastAPI application mounted into NIXA's (idp/app.py): its own OpenAPI document, JSON
errors everywhere ({"error", "error_description"}), and no route of the citizen-facing app
changed. Routes are thin: they check the caller (admin/auth.py) and the caller's role for the
operation (admin/roles.py), then call the services the CLI calls too (admin/apps.py,
admin/people.py, admin/audit.py, admin/registration.py, admin/connector_admin.py,
keys/service.py). The connector and key routes live in admin/api_connectors.py and admin/api_keys.py. Routes are plain `def`: the services
do blocking database work, so they run in the threadpool."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from admin.apps import AgencyApps
from admin.audit import AuditFilter, AuditTrail
from admin.auth import API_PATH, Admin, AdminAuthError, authenticate
from admin.people import Support
from admin.registration import InitialAccessTokens
from admin.roles import AdminRoles, Role, UnknownRole, parse_role
from admin.service import AdminRefused, not_found, record

log = logging.getLogger("nixa")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": "Error", "description": text}
    for code, text in ((400, "Bad input"), (401, "No valid access token for the admin API"),
                       (403, "Not allowed (role, scope or level of the sign-in)"), (404, "Not found"), (409, "Conflict"))
}

# ---- schemas ---------------------------------------------------------------------------------------


class Error(BaseModel):
    error: str
    error_description: str


class Me(BaseModel):
    person_id: str
    roles: list[str]
    acr: str


class AppView(BaseModel):
    client_id: str
    metadata: dict[str, Any]
    disabled: bool
    first_party: bool
    national_id_authorized: bool
    has_secret: bool
    previous_secret_expires_at: float | None
    dynamically_registered: bool
    version: int
    created_at: float
    updated_at: float


class AppCreated(BaseModel):
    app: AppView
    client_secret: str | None = Field(None, description="Shown once: NIXA keeps only a keyed hash")


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap: int = Field(0, ge=0, le=30 * 86400, description="Seconds the current secret stays valid beside the new one")


class RotatedSecret(BaseModel):
    client_secret: str
    previous_secret_expires_at: float | None


class Deleted(BaseModel):
    grants_revoked: int


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=3, max_length=500, description="Why: audited and shown to the person in their access log")


class MergeRequest(Reason):
    source: str = Field(..., max_length=32, description="The person folded into the other, then deleted")
    into: str = Field(..., max_length=32)


class PersonSummary(BaseModel):
    person_id: str
    status: str
    national_id: str | None
    name: Any = None
    phone_number: Any = None
    created_at: float


class PersonDetail(PersonSummary):
    attributes: dict[str, Any]
    links: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    devices: dict[str, Any]
    consents: list[dict[str, Any]]
    grants: list[dict[str, Any]]
    access_log: list[dict[str, Any]]


class Revoked(BaseModel):
    grants_revoked: int
    sessions_ended: int


class AuditEventView(BaseModel):
    id: int
    at: float
    type: str
    person_id: str | None
    client_id: str | None
    ip: str | None
    data: dict[str, Any]
    hash: str


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checkpoint: str | None = Field(None, max_length=8192, description="A checkpoint JWS kept from `nixa audit checkpoint`")


class ChainVerdict(BaseModel):
    ok: bool
    events: int
    bad_event: int | None
    reason: str | None
    legacy: int
    summary: str


class RoleGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: str = Field(..., max_length=32)
    role: Role


class RoleHolder(BaseModel):
    person_id: str
    role: str
    granted_at: float
    granted_by: str | None


class Changed(BaseModel):
    changed: bool


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(..., min_length=1, max_length=128, description="Who it is for (the agency)")
    uses: int = Field(1, ge=1, le=100, description="How many registrations it allows")


class InitialToken(BaseModel):
    initial_access_token: str = Field(..., description="Shown once: NIXA keeps only its SHA-256")
    expires_at: float
    uses: int


# ---- the caller ------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An access token from the admin console's sign-in (audience: the admin API)")


def _nixa(request: Request) -> Any:
    return request.app.state.nixa


def operator(permission: str) -> Callable[..., Admin]:
    """The dependency of a route that needs `permission` (admin/roles.py PERMISSIONS)."""

    def check(request: Request, _: Annotated[Any, Depends(_bearer)] = None) -> Admin:
        from idp.oidc.endpoints import client_ip

        nixa = _nixa(request)
        admin = authenticate(nixa, request.app.state.roles, request.headers.get("authorization"), client_ip(request, nixa))
        admin.require(permission)
        return admin

    return check


def _reason_query() -> Any:
    return Query(..., min_length=3, max_length=500, description="Why: audited (and shown to the person when about one)")


def audit_filter(actor: Annotated[str | None, Query(max_length=132, description="An operator's person id, or cli:<os user>")] = None,
                 subject: Annotated[str | None, Query(max_length=128, description="A person id or a client id")] = None,
                 event: Annotated[str | None, Query(max_length=64, description="A type, or a prefix ending with a dot")] = None,
                 since: Annotated[datetime | None, Query(description="Inclusive (ISO 8601)")] = None,
                 until: Annotated[datetime | None, Query(description="Exclusive (ISO 8601)")] = None) -> AuditFilter:
    return AuditFilter(actor, subject, event, _epoch(since), _epoch(until)).checked()

Filter = Annotated[AuditFilter, Depends(audit_filter)]


# The caller of a route, by what the route needs (admin/roles.py PERMISSIONS).
AnyRole = Annotated[Admin, Depends(operator("me"))]
ReadsApps = Annotated[Admin, Depends(operator("clients.read"))]
ChangesApps = Annotated[Admin, Depends(operator("clients.write"))]
IssuesRegistrationTokens = Annotated[Admin, Depends(operator("registration.write"))]
ReadsPeople = Annotated[Admin, Depends(operator("people.read"))]
HelpsPeople = Annotated[Admin, Depends(operator("people.write"))]
ReadsAudit = Annotated[Admin, Depends(operator("audit.read"))]
ReadsRoles = Annotated[Admin, Depends(operator("roles.read"))]
ChangesRoles = Annotated[Admin, Depends(operator("roles.write"))]
ClientId = Annotated[str, Path(max_length=128)]
PersonId = Annotated[str, Path(max_length=32)]


# ---- the application -------------------------------------------------------------------------------


def create_admin_api(nixa: Any) -> FastAPI:
    api = FastAPI(title="NIXA admin API", version="1", openapi_url="/openapi.json", docs_url=None, redoc_url=None,
                  description="Administration of the NIXA federation: agency apps, people and incidents, connectors (identity "
                              "sources), signing keys, the audit trail, roles. "
                              "Bearer access tokens for the resource " + API_PATH + " (RFC 8707), from the admin console's "
                              "sign-in at substantial or higher.",
                  responses={code: {"model": Error, "description": v["description"]} for code, v in ERROR_RESPONSES.items()})
    api.state.nixa = nixa
    api.state.roles = AdminRoles(nixa.db)
    apps, support, trail, tokens = AgencyApps(nixa), Support(nixa), AuditTrail(nixa), InitialAccessTokens(nixa)
    _errors(api)

    @api.get("/me", response_model=Me, tags=["session"])
    def me(admin: AnyRole) -> Me:
        return Me(person_id=admin.person_id, roles=sorted(r.value for r in admin.roles), acr=admin.acr)

    # ---- agency apps ------------------------------------------------------------------------------

    @api.get("/clients", response_model=list[AppView], tags=["agency apps"])
    def list_clients(admin: ReadsApps) -> Any:
        return apps.list()

    @api.post("/clients", response_model=AppCreated, status_code=201, tags=["agency apps"])
    def create_client(admin: ChangesApps,
                      metadata: Annotated[dict[str, Any], Body(description="RFC 7591 client metadata, as `nixa clients import` takes")]) -> Any:
        view, secret = apps.create(admin.actor(), metadata)
        return {"app": view, "client_secret": secret}

    @api.get("/clients/{client_id}", response_model=AppView, tags=["agency apps"])
    def get_client(admin: ReadsApps, client_id: ClientId) -> Any:
        return apps.get(client_id)

    @api.put("/clients/{client_id}", response_model=AppView, tags=["agency apps"])
    def update_client(admin: ChangesApps, client_id: ClientId,
                      metadata: Annotated[dict[str, Any], Body(description="The whole metadata (client_id from the path)")],
                      force: Annotated[bool, Query(description="Allow a move to another sector (pairwise subs change)")] = False) -> Any:
        return apps.update(admin.actor(), client_id, metadata, force=force)

    @api.post("/clients/{client_id}/disable", response_model=AppView, tags=["agency apps"])
    def disable_client(admin: ChangesApps, client_id: ClientId) -> Any:
        return apps.set_disabled(admin.actor(), client_id, True)[0]

    @api.post("/clients/{client_id}/enable", response_model=AppView, tags=["agency apps"])
    def enable_client(admin: ChangesApps, client_id: ClientId) -> Any:
        return apps.set_disabled(admin.actor(), client_id, False)[0]

    @api.delete("/clients/{client_id}", response_model=Deleted, tags=["agency apps"])
    def delete_client(admin: ChangesApps, client_id: ClientId) -> Any:
        return {"grants_revoked": apps.delete(admin.actor(), client_id)}

    @api.post("/clients/{client_id}/secret", response_model=RotatedSecret, tags=["agency apps"])
    def rotate_secret(admin: ChangesApps, client_id: ClientId,
                      body: SecretRotation | None = None) -> Any:
        secret, expires = apps.rotate_secret(admin.actor(), client_id, (body or SecretRotation()).overlap)
        return {"client_secret": secret, "previous_secret_expires_at": expires}

    @api.post("/registration-tokens", response_model=InitialToken, status_code=201, tags=["agency apps"])
    def new_registration_token(admin: IssuesRegistrationTokens, body: TokenRequest) -> Any:
        token, expires = tokens.issue(admin.actor(), body.label, body.uses)
        return {"initial_access_token": token, "expires_at": expires, "uses": body.uses}

    # ---- people and incidents ---------------------------------------------------------------------

    @api.get("/people", response_model=list[PersonSummary], tags=["people"])
    def search_people(admin: ReadsPeople, reason: Annotated[str, _reason_query()],
                      national_id: Annotated[str | None, Query(max_length=12)] = None,
                      name: Annotated[str | None, Query(max_length=128)] = None,
                      phone: Annotated[str | None, Query(max_length=32)] = None) -> Any:
        return support.search(admin.actor(), reason, national_id=national_id, name=name, phone=phone)

    @api.get("/people/{person_id}", response_model=PersonDetail, tags=["people"])
    def view_person(admin: ReadsPeople, person_id: PersonId,
                    reason: Annotated[str, _reason_query()]) -> Any:
        return support.view(admin.actor(), person_id, reason)

    @api.post("/people/{person_id}/lock", response_model=PersonSummary, tags=["people"])
    def lock_person(admin: HelpsPeople, person_id: PersonId, body: Reason) -> Any:
        return support.lock(admin.actor(), person_id, body.reason)

    @api.post("/people/{person_id}/unlock", response_model=PersonSummary, tags=["people"])
    def unlock_person(admin: HelpsPeople, person_id: PersonId, body: Reason) -> Any:
        return support.unlock(admin.actor(), person_id, body.reason)

    @api.post("/people/{person_id}/links/{link_id}/unlink", status_code=204, tags=["people"])
    def unlink_identity(admin: HelpsPeople, person_id: PersonId,
                        link_id: Annotated[str, Path(max_length=32)], body: Reason) -> Response:
        support.unlink(admin.actor(), person_id, link_id, body.reason)
        return Response(status_code=204)

    @api.post("/people/{person_id}/sessions/revoke", response_model=Revoked, tags=["people"])
    def revoke_sessions(admin: HelpsPeople, person_id: PersonId, body: Reason) -> Any:
        return support.revoke_sessions(admin.actor(), person_id, body.reason)

    @api.post("/people/{person_id}/grants/{grant_id}/revoke", status_code=204, tags=["people"])
    def revoke_grant(admin: HelpsPeople, person_id: PersonId,
                     grant_id: Annotated[str, Path(max_length=32)], body: Reason) -> Response:
        support.revoke_grant(admin.actor(), person_id, grant_id, body.reason)
        return Response(status_code=204)

    @api.post("/people/merge", response_model=PersonSummary, tags=["people"])
    def merge_people(admin: HelpsPeople, body: MergeRequest) -> Any:
        return support.merge(admin.actor(), body.source, body.into, body.reason)

    # ---- connectors and signing keys (their own modules) ----------------------------------------

    from admin import api_connectors, api_keys

    api_connectors.install(api, nixa)
    api_keys.install(api, nixa)

    # ---- audit --------------------------------------------------------------------------------------

    @api.get("/audit/events", response_model=list[AuditEventView], tags=["audit"])
    def audit_events(admin: ReadsAudit, flt: Filter,
                     before_id: Annotated[int | None, Query(ge=1, le=2**62, description="The page before this event id")] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Any:
        return trail.page(flt, before_id=before_id, limit=limit)

    def export(admin: Admin, flt: AuditFilter, kind: str) -> StreamingResponse:
        record(nixa, admin.actor(), "audit.export", kind, viewed=True)
        body, media_type = (trail.export_jsonl(flt), "application/jsonl") if kind == "jsonl" else (trail.export_csv(flt), "text/csv")
        return StreamingResponse(body, media_type=media_type,
                                 headers={"Content-Disposition": f'attachment; filename="nixa-audit.{kind}"', "Cache-Control": "no-store"})

    @api.get("/audit/export.jsonl", tags=["audit"], response_class=StreamingResponse,
             responses={200: {"content": {"application/jsonl": {"schema": {"type": "string"}}}, "description": "One event a line"}})
    def audit_export_jsonl(admin: ReadsAudit, flt: Filter) -> StreamingResponse:
        return export(admin, flt, "jsonl")

    @api.get("/audit/export.csv", tags=["audit"], response_class=StreamingResponse,
             responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "A header row, then one event a row"}})
    def audit_export_csv(admin: ReadsAudit, flt: Filter) -> StreamingResponse:
        return export(admin, flt, "csv")

    @api.post("/audit/verify", response_model=ChainVerdict, tags=["audit"])
    def audit_verify(admin: ReadsAudit, body: VerifyRequest | None = None) -> Any:
        return trail.verify((body or VerifyRequest()).checkpoint)

    # ---- roles --------------------------------------------------------------------------------------

    @api.get("/roles", response_model=list[RoleHolder], tags=["roles"])
    def list_roles(admin: ReadsRoles) -> Any:
        return api.state.roles.all()

    @api.post("/roles", response_model=Changed, tags=["roles"])
    def grant_role(admin: ChangesRoles, body: RoleGrant) -> Any:
        return {"changed": grant(nixa, api.state.roles, admin.actor(), body.person_id, body.role.value)}

    @api.delete("/roles/{person_id}/{role}", response_model=Changed, tags=["roles"])
    def revoke_role(admin: ChangesRoles, person_id: PersonId, role: Role) -> Any:
        if person_id == admin.person_id and role == Role.SUPER_ADMIN:
            raise AdminRefused(409, "conflict", "a super-admin cannot remove their own super-admin role (ask another)")
        return {"changed": revoke(nixa, api.state.roles, admin.actor(), person_id, role.value)}

    return api


def grant(nixa: Any, roles: AdminRoles, actor: dict[str, Any], person_id: str, role_name: str) -> bool:
    """Give a person a role (the API and `nixa admin grant-role`)."""
    role = _role(role_name)
    try:
        changed = roles.grant(person_id, role, by=str(actor.get("person_id") or actor.get("name") or actor.get("os_user") or "?"))
    except KeyError:
        raise not_found(f"person {person_id!r}") from None
    if changed:
        record(nixa, actor, "role.grant", person_id, before=None, after={"role": role.value}, person_id=person_id)
    return changed


def revoke(nixa: Any, roles: AdminRoles, actor: dict[str, Any], person_id: str, role_name: str) -> bool:
    role = _role(role_name)
    changed = roles.revoke(person_id, role)
    if changed:
        record(nixa, actor, "role.revoke", person_id, before={"role": role.value}, after=None, person_id=person_id)
    return changed


def _role(name: str) -> Role:
    try:
        return parse_role(name)
    except UnknownRole as exc:
        raise AdminRefused(400, "invalid_request", str(exc)) from None


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    try:
        return value.timestamp()  # a naive time is read as the server's local time
    except (OverflowError, OSError, ValueError):
        raise AdminRefused(400, "invalid_request", "a time out of range") from None


def _error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={"Cache-Control": "no-store", **headers})


def _errors(api: FastAPI) -> None:
    @api.exception_handler(AdminAuthError)
    async def _auth(request: Request, exc: AdminAuthError) -> Response:
        # RFC 6750 §3: the challenge names the error; RFC 9470 adds the level needed.
        # RFC 6750 §3.1: a request without any token gets the bare challenge, no error code.
        bare = "authorization" not in request.headers
        challenge = 'Bearer realm="nixa-admin"' + ("" if bare else f', error="{exc.error}"')
        if exc.error == "insufficient_user_authentication":
            from admin.auth import MINIMUM_LEVEL

            challenge += f', acr_values="{MINIMUM_LEVEL.acr}"'
        return _error(exc.status, exc.error, exc.description, **{"WWW-Authenticate": challenge})

    @api.exception_handler(AdminRefused)
    async def _refused(request: Request, exc: AdminRefused) -> Response:
        return _error(exc.status, exc.error, exc.description)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return _error(400, "invalid_request", f"{where}: {first.get('msg', 'invalid')}"[:300])

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "invalid_request", str(exc.detail))

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "server_error", "The server could not answer; try again")
