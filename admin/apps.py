"""Agency apps (relying parties): onboard, change, disable, delete, rotate a secret.

Every change goes through the same validation as `nixa clients import` (idp/oidc/metadata.py
and ClientRegistry.prepare: redirect, post-logout and back-channel logout URIs https or
loopback without fragment or wildcard, grant types, scopes, auth method, jwks or jwks_uri,
lifetimes, the sector identifier document), and a move to another sector (every person's
pairwise `sub` at the app changes) needs an explicit force, as the CLI's --force."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from admin.auth import ADMIN_SCOPE, CONSOLE_CLIENT_ID
from admin.service import AdminRefused, not_found, record
from idp.oidc.metadata import InvalidClientMetadata
from idp.store.models import Client

MAX_OVERLAP = 30 * 86400


def view(row: Client) -> dict[str, Any]:
    """An app as the API shows it: its metadata and state, never a secret or its hash."""
    md = {k: v for k, v in dict(row.metadata_).items() if k != "client_secret"}
    return {
        "client_id": row.client_id,
        "metadata": md,
        "disabled": bool(row.disabled),
        "first_party": bool(row.first_party),
        "national_id_authorized": bool(row.may_receive_national_id),
        "has_secret": bool(row.secret_hash),
        "previous_secret_expires_at": row.previous_secret_expires_at,
        "dynamically_registered": bool(row.registration_token_hash),
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


class AgencyApps:
    def __init__(self, nixa: Any) -> None:
        self.nixa = nixa

    # ---- reading ------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        with self.nixa.db.session() as s:
            return [view(r) for r in s.scalars(select(Client).order_by(Client.client_id))]

    def get(self, client_id: str) -> dict[str, Any]:
        with self.nixa.db.session() as s:
            row = s.get(Client, client_id) if len(client_id) <= 128 else None
            if row is None:
                raise not_found(f"agency app {client_id!r}")
            return view(row)

    # ---- changes ------------------------------------------------------------------------

    def _prepared(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, dict) and raw.get("client_id") == CONSOLE_CLIENT_ID:
            raise AdminRefused(409, "protected", "the admin console is NIXA's own client: it is configured, not edited")
        if isinstance(raw, dict) and ADMIN_SCOPE in str(raw.get("scope", "")).split():
            raise AdminRefused(400, "invalid_client_metadata", f"scope: {ADMIN_SCOPE!r} belongs to the admin console only")
        try:
            return self.nixa.clients.prepare(raw)
        except InvalidClientMetadata as exc:
            raise AdminRefused(400, exc.error, str(exc)) from None

    def create(self, actor: dict[str, Any], raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """A new app; returns its view and the generated secret (shown once), if any."""
        md = self._prepared(raw)
        with self.nixa.db.session() as s:
            if s.get(Client, md["client_id"]) is not None:
                raise AdminRefused(409, "conflict", f"an app {md['client_id']!r} exists already: change it instead")
        [(cid, secret, _)] = self.nixa.clients.write_all([md])
        after = self.get(cid)
        record(self.nixa, actor, "client.create", cid, after=after, client_id=cid)
        return after, secret

    def update(self, actor: dict[str, Any], client_id: str, raw: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
        before = self.get(client_id)
        if client_id == CONSOLE_CLIENT_ID:
            self._prepared({"client_id": client_id})
        if not isinstance(raw, dict):
            raise AdminRefused(400, "invalid_client_metadata", "the metadata must be a JSON object")
        if "client_secret" in raw:
            raise AdminRefused(400, "invalid_client_metadata", "client_secret: rotate the secret instead (it is never set by an edit)")
        md = self._prepared({**raw, "client_id": client_id})
        moved = self.nixa.clients.sector_change(md)
        if moved and not force:
            old, new, persons = moved
            raise AdminRefused(409, "sector_change", f"the sector would change from {old} to {new}: the `sub` of {persons} person(s) "
                                                     "at this app would change; repeat with force=true if that is intended")
        self.nixa.clients.write_all([md])
        after = self.get(client_id)
        record(self.nixa, actor, "client.update", client_id, before=before, after=after, client_id=client_id,
               **({"reason": f"sector moved {moved[0]} -> {moved[1]}"} if moved else {}))
        return after

    def set_disabled(self, actor: dict[str, Any], client_id: str, disabled: bool) -> tuple[dict[str, Any], int]:
        """Disabling stops the app at once: no sign-in, no token, and its grants are revoked.
        Returns the app and how many grants were revoked."""
        before = self._changeable(client_id)
        self.nixa.clients.set_disabled(client_id, disabled)
        revoked = self.nixa.tokens.revoke_client(client_id, "client_disabled") if disabled else 0
        after = self.get(client_id)
        record(self.nixa, actor, "client.disable" if disabled else "client.enable", client_id,
               before={"disabled": before["disabled"]}, after={"disabled": disabled, "grants_revoked": revoked}, client_id=client_id)
        return after, revoked

    def delete(self, actor: dict[str, Any], client_id: str) -> int:
        before = self._changeable(client_id)
        revoked = self.nixa.tokens.revoke_client(client_id, "client_deleted")
        self.nixa.clients.delete(client_id)
        record(self.nixa, actor, "client.delete", client_id, before=before, after={"deleted": True, "grants_revoked": revoked},
               client_id=client_id)
        return revoked

    def rotate_secret(self, actor: dict[str, Any], client_id: str, overlap: int = 0) -> tuple[str, float | None]:
        """A new secret; the old one stays valid `overlap` seconds beside it (at most 30 days)."""
        self._changeable(client_id)
        if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap <= MAX_OVERLAP:
            raise AdminRefused(400, "invalid_request", f"overlap: whole seconds from 0 to {MAX_OVERLAP}")
        try:
            secret, old_expires = self.nixa.clients.rotate_secret(client_id, overlap)
        except InvalidClientMetadata as exc:
            raise AdminRefused(409, "no_secret", str(exc)) from None
        record(self.nixa, actor, "client.rotate_secret", client_id, before=None,
               after={"secret_rotated": True, "previous_secret_expires_at": old_expires}, client_id=client_id)
        return secret, old_expires

    def _changeable(self, client_id: str) -> dict[str, Any]:
        current = self.get(client_id)
        if client_id == CONSOLE_CLIENT_ID:
            self._prepared({"client_id": client_id})
        return current
