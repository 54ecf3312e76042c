"""Who is calling the admin API: a bearer access token NIXA issued itself.

The admin API is one of the resource servers of RFC 8707 (idp/oidc/resources.py), registered at
startup with its own client, the admin console (`nixa-admin-console`, first-party, PKCE, never
below substantial). An operator signs in to the console through the normal code flow asking
for `resource=<issuer>/admin/api` and the scope `admin`; the token that comes back carries that
audience, the level reached (`acr`) and the sealed person reference. Here each request's token
is checked in that order: ours and alive (signature, issuer, expiry, revocation), for this
audience, issued to the console, at substantial or higher, for a person who holds a role. The
roles are read from the database at every request: a role revoked is gone at the next call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.base import ACR_BY_LEVEL, LEVEL_BY_ACR, LevelOfAssurance
from admin.roles import AdminRoles, Role, allowed
from idp.events import ADMIN_CONSOLE_CLIENT_ID
from idp.oidc.tokens import InvalidToken

CONSOLE_CLIENT_ID = ADMIN_CONSOLE_CLIENT_ID  # idp/events.py: support actions are shown to the citizen as done here
ADMIN_SCOPE = "admin"
MINIMUM_LEVEL = LevelOfAssurance.SUBSTANTIAL
API_PATH = "/admin/api"


def admin_resource(issuer: str) -> str:
    """The admin API's resource identifier: the `aud` of its tokens."""
    return f"{issuer}{API_PATH}"


def console_redirect_uris(settings: Any) -> list[str]:
    return list(settings.admin_console_redirect_uris) or [f"{settings.issuer}/admin/console/callback"]


def console_metadata(settings: Any) -> dict[str, Any]:
    """The admin console's client metadata, normalised as validate_metadata would leave it. It
    lives on the issuer's own origin, so it is http only when the issuer is (development)."""
    substantial = ACR_BY_LEVEL[MINIMUM_LEVEL]
    return {
        "client_id": CONSOLE_CLIENT_ID,
        "client_name": "NIXA – Quản trị / Administration",
        "redirect_uris": console_redirect_uris(settings),
        "post_logout_redirect_uris": [f"{settings.issuer}/admin/console/"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "application_type": "web",
        "token_endpoint_auth_method": "none",
        "id_token_signed_response_alg": settings.default_signing_alg,
        "subject_type": "pairwise",
        "scope": f"openid {ADMIN_SCOPE}",
        "default_acr_values": [substantial],
        "nixa_minimum_acr": substantial,
        "nixa_first_party": True,
    }


def register_admin_resource(nixa: Any) -> None:
    """At startup (every worker, idempotent): the console client and the admin API resource."""
    from idp.oidc.metadata import _check_uri

    md = console_metadata(nixa.settings)
    if nixa.settings.issuer.startswith("https://"):
        for uri in md["redirect_uris"]:
            _check_uri(uri, "admin_console_redirect_uris")
    current = nixa.clients.get(CONSOLE_CLIENT_ID)
    if current is None or current.metadata != md:
        from sqlalchemy.exc import IntegrityError

        try:
            nixa.clients.write_all([md])
        except IntegrityError:
            pass  # another worker wrote the same row at the same moment
    nixa.resources.register_own(admin_resource(nixa.settings.issuer), name="NIXA admin API", scopes=[ADMIN_SCOPE],
                                client_id=CONSOLE_CLIENT_ID)


class AdminAuthError(Exception):
    """401 (no usable token: RFC 6750 §3.1 invalid_token) or 403 (a token, but not enough)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass(frozen=True)
class Admin:
    """The operator behind one request."""

    person_id: str
    roles: frozenset[Role]
    acr: str
    ip: str | None = None
    token_jti: str | None = field(default=None, repr=False)

    def actor(self) -> dict[str, Any]:
        """What every audit event of this request says about who did it."""
        return {"via": "api", "person_id": self.person_id, "roles": sorted(r.value for r in self.roles), "acr": self.acr,
                **({"ip": self.ip} if self.ip else {})}

    def require(self, permission: str) -> None:
        if not allowed(self.roles, permission):
            raise AdminAuthError(403, "access_denied", f"none of your roles may {permission}")


def authenticate(nixa: Any, roles: AdminRoles, authorization: str | None, ip: str | None) -> Admin:
    if not authorization:
        raise AdminAuthError(401, "invalid_token", "an access token for the admin API is required (Authorization: Bearer)")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AdminAuthError(401, "invalid_request", "the Authorization header must be 'Bearer <token>'")
    try:
        info = nixa.tokens.validate_access_token(value.strip())
    except InvalidToken as exc:
        raise AdminAuthError(401, "invalid_token", exc.description) from None
    if admin_resource(nixa.settings.issuer) not in info.audience:
        raise AdminAuthError(401, "invalid_token", "the access token is not meant for the admin API (RFC 8707 audience)")
    if info.client_id != CONSOLE_CLIENT_ID:
        raise AdminAuthError(401, "invalid_token", "the access token was not issued to the admin console")
    if ADMIN_SCOPE not in info.scope or not info.person_id:
        raise AdminAuthError(403, "insufficient_scope", "the access token does not carry the admin scope of a person")
    level = LEVEL_BY_ACR.get(str(info.claims.get("acr", "")))
    if level is None or level < MINIMUM_LEVEL:
        # RFC 9470 names the error; the console signs the operator in again at substantial.
        raise AdminAuthError(403, "insufficient_user_authentication", "admin sign-in requires the substantial level or higher")
    held = roles.of(info.person_id)
    if not held:
        raise AdminAuthError(403, "access_denied", "this person holds no admin role")
    return Admin(info.person_id, held, str(info.claims["acr"]), ip, info.claims.get("jti"))
