"""The admin API's signing-key routes (/keys), over keys/service.py KeyAdministration
(nixa.signing_keys), the operations `nixa keys …` runs too.

The key ring keeps them safe with several workers (keys/ring.py); here each change is also one
`admin.changed` event with the actor and the ring of that algorithm before and after (kids and
states: never key material). A revoked key leaves the JWKS at once and verifies nothing more."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

from admin.api import Reason, operator
from admin.auth import Admin
from admin.service import AdminRefused, not_found, record
from keys.service import UnknownKey


class KeyView(BaseModel):
    kid: str
    alg: str
    state: str = Field(..., description="pending (published, not signing), active (signing), retired (verify-only)")
    backend: str = Field(..., description="database (sealed under the master key) or pkcs11 (an HSM)")
    created_at: float
    activated_at: float | None
    retired_at: float | None


class KeyRing(BaseModel):
    backend: str = Field(..., description="Where new keys are made")
    keys: list[KeyView]


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alg: str = Field(..., min_length=1, max_length=16, description="ES256, RS256 or EdDSA (those the deployment signs with)")


class Rotated(BaseModel):
    rotated: bool = Field(..., description="False: another worker rotated this algorithm at the same moment")
    keys: list[KeyView]


class KeyChange(BaseModel):
    kid: str
    alg: str
    was: str = Field(..., description="The state the key was in")
    changed: bool
    keys: list[KeyView]


Kid = Annotated[str, Path(min_length=1, max_length=128)]


# The caller of a route, by what the route needs (admin/roles.py PERMISSIONS).
ReadsKeys = Annotated[Admin, Depends(operator("keys.read"))]
ChangesKeys = Annotated[Admin, Depends(operator("keys.write"))]


def install(api: FastAPI, nixa: Any) -> None:
    def keys() -> Any:
        return nixa.signing_keys  # looked up per request: `nixa admin openapi` builds the app without a key ring

    def ring(alg: str | None = None) -> list[dict[str, Any]]:
        return [k.as_dict() for k in keys().list() if alg in (None, k.alg)]

    def states(alg: str) -> dict[str, str]:
        return {k["kid"]: k["state"] for k in ring(alg)}

    @api.get("/keys", response_model=KeyRing, tags=["keys"])
    def list_keys(admin: ReadsKeys) -> Any:
        return {"backend": keys().backend, "keys": ring()}

    @api.post("/keys/rotate", response_model=Rotated, tags=["keys"])
    def rotate_key(admin: ChangesKeys, body: Rotation) -> Any:
        """pending → active, active → retired, a new pending key published."""
        if body.alg not in keys().ring.algs:
            raise AdminRefused(400, "invalid_request", f"alg: one of {', '.join(keys().ring.algs)}")
        before = states(body.alg)
        rotated = keys().rotate(body.alg, actor=admin.actor())
        if rotated:
            record(nixa, admin.actor(), "key.rotate", body.alg, before=before, after=states(body.alg))
        return {"rotated": rotated, "keys": ring()}

    def leave(admin: Admin, kid: str, what: str, act: Any, reason: str | None = None) -> dict[str, Any]:
        alg = next((k["alg"] for k in ring() if k["kid"] == kid), None)
        if alg is None:
            raise not_found(f"signing key {kid!r}")
        before = states(alg)
        try:
            done = act()
        except UnknownKey:  # removed by another worker meanwhile
            raise not_found(f"signing key {kid!r}") from None
        changed = bool(done.get("changed", True))
        if changed:
            record(nixa, admin.actor(), what, kid, before=before, after=states(alg), reason=reason)
        return {"kid": kid, "alg": alg, "was": done["state"], "changed": changed, "keys": ring()}

    @api.post("/keys/{kid}/retire", response_model=KeyChange, tags=["keys"])
    def retire_key(admin: ChangesKeys, kid: Kid) -> Any:
        """Stop it signing; it still verifies what it signed until pruned."""
        return leave(admin, kid, "key.retire", lambda: keys().retire(kid, actor=admin.actor()))

    @api.post("/keys/{kid}/revoke", response_model=KeyChange, tags=["keys"])
    def revoke_key(admin: ChangesKeys, kid: Kid, body: Reason) -> Any:
        """A compromised key: out of the JWKS and trusted for nothing, at once, whatever its state."""
        return leave(admin, kid, "key.revoke", lambda: keys().revoke(kid, actor=admin.actor(), reason=body.reason),
                     reason=body.reason)
