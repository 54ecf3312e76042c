"""OpenID Dynamic Client Registration (RFC 7591) and its management protocol (RFC 7592), for
agencies that onboard themselves in the sandbox.

Registration is not open: it needs an initial access token (RFC 7591 §3) that an admin makes
(POST /admin/api/registration-tokens), stored as SHA-256 with an expiry and a number of uses.
The metadata goes through the same validation as every other client (admin/apps.py); what an
agency may not grant itself is refused: NIXA's own flags (first-party, the national ID, PKCE
optional), a chosen client_id or secret. The response carries a registration access token
(stored as SHA-256 on the client) with which the agency reads, replaces or deletes its client."""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import update

from admin.apps import AgencyApps
from admin.service import AdminRefused, record
from idp.oidc.tokens import token_hash
from idp.store.models import Client, InitialAccessToken

SELF_REFUSED = ("nixa_first_party", "nixa_national_id_authorized", "nixa_pkce_optional", "client_secret")
MAX_BODY = 64 * 1024

router = APIRouter()


class InitialAccessTokens:
    def __init__(self, nixa: Any) -> None:
        self.nixa = nixa

    def issue(self, actor: dict[str, Any], label: str, uses: int) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires = time.time() + self.nixa.settings.registration_token_ttl
        with self.nixa.db.session() as s:
            s.add(InitialAccessToken(token_hash=token_hash(token), label=label, created_at=time.time(), expires_at=expires, uses_left=uses))
        record(self.nixa, actor, "registration_token.issue", label, after={"uses": uses, "expires_at": expires})
        return token, expires

    def spend(self, token: str) -> str | None:
        """One use of a live token (atomic: two registrations cannot share the last use);
        returns its label, or None."""
        if not token or len(token) > 512:
            return None
        digest = token_hash(token)
        with self.nixa.db.session() as s:
            spent = s.execute(update(InitialAccessToken).where(InitialAccessToken.token_hash == digest, InitialAccessToken.uses_left > 0,
                                                               InitialAccessToken.expires_at > time.time())
                              .values(uses_left=InitialAccessToken.uses_left - 1)).rowcount
            return s.get(InitialAccessToken, digest).label if spent == 1 else None


def _error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="{error}"'
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


def _ip(request: Request) -> str | None:
    from idp.oidc.endpoints import client_ip

    return client_ip(request, request.app.state.nixa)


def _bearer(request: Request) -> str | None:
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _metadata(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise AdminRefused(400, "invalid_client_metadata", "the metadata is too large")
    import json

    try:
        raw = json.loads(body or b"null")
    except ValueError:
        raise AdminRefused(400, "invalid_client_metadata", "the body must be a JSON object of client metadata") from None
    if not isinstance(raw, dict):
        raise AdminRefused(400, "invalid_client_metadata", "the body must be a JSON object of client metadata")
    refused = sorted(set(raw) & set(SELF_REFUSED))
    if refused:
        raise AdminRefused(400, "invalid_client_metadata", f"{', '.join(refused)}: not for an app to set itself (ask the federation's operators)")
    return raw


def _response(nixa: Any, view: dict[str, Any], *, secret: str | None = None, registration_token: str | None = None) -> dict[str, Any]:
    """RFC 7591 §3.2.1: the metadata as registered, with what NIXA issued."""
    body = {**view["metadata"], "client_id": view["client_id"], "client_id_issued_at": int(view["created_at"]),
            "registration_client_uri": f"{nixa.settings.issuer}/register/{view['client_id']}"}
    if view["has_secret"]:
        body["client_secret_expires_at"] = 0  # RFC 7591 §3.2.1: 0, it does not expire
    if secret:
        body["client_secret"] = secret
    if registration_token:
        body["registration_access_token"] = registration_token
    return body


def _set_registration_token(nixa: Any, client_id: str) -> str:
    token = secrets.token_urlsafe(32)
    with nixa.db.session() as s:
        s.get(Client, client_id).registration_token_hash = token_hash(token)
    return token


@router.post("/register")
async def register(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    nixa = request.app.state.nixa
    ip = _ip(request)
    try:
        raw = await _metadata(request)
        label = await run_in_threadpool(InitialAccessTokens(nixa).spend, _bearer(request) or "")
        if label is None:
            return _error(401, "invalid_token", "registration needs a valid initial access token (RFC 7591 §3)")

        def create() -> tuple[dict[str, Any], str | None, str]:
            md = {**raw, "client_id": f"dcr-{secrets.token_urlsafe(12)}"}
            view, secret = AgencyApps(nixa).create({"via": "registration", "initial_access_token": label, "ip": ip}, md)
            return view, secret, _set_registration_token(nixa, view["client_id"])

        view, secret, token = await run_in_threadpool(create)
    except AdminRefused as exc:
        return _error(exc.status, exc.error, exc.description)
    return JSONResponse(_response(nixa, view, secret=secret, registration_token=token), status_code=201,
                        headers={"Cache-Control": "no-store"})


def _registered(nixa: Any, request: Request, client_id: str) -> dict[str, Any] | None:
    """The client this registration access token manages (RFC 7592 §2), or None."""
    token = _bearer(request)
    if not token or len(client_id) > 128:
        return None
    with nixa.db.session() as s:
        row = s.get(Client, client_id)
        stored = row.registration_token_hash if row is not None else None
    if not stored or not hmac.compare_digest(stored, token_hash(token)):
        return None
    return AgencyApps(nixa).get(client_id)


@router.api_route("/register/{client_id}", methods=["GET", "PUT", "DELETE"])
async def manage(request: Request, client_id: str) -> Response:
    from starlette.concurrency import run_in_threadpool

    nixa = request.app.state.nixa
    actor = {"via": "registration", "client_id": client_id, "ip": _ip(request)}
    try:
        raw = await _metadata(request) if request.method == "PUT" else None
        view = await run_in_threadpool(_registered, nixa, request, client_id)
        if view is None:
            # RFC 7592 §2.1: an unknown client or a wrong token are told alike.
            return _error(401, "invalid_token", "the registration access token is not valid for this client")
        if request.method == "GET":
            return JSONResponse(_response(nixa, view), headers={"Cache-Control": "no-store"})
        if request.method == "DELETE":
            await run_in_threadpool(AgencyApps(nixa).delete, actor, client_id)
            return Response(status_code=204)
        if raw.get("client_id", client_id) != client_id:
            return _error(400, "invalid_client_metadata", "client_id must be this client's (RFC 7592 §2.2)")
        for issued in ("registration_access_token", "registration_client_uri", "client_id_issued_at", "client_secret_expires_at"):
            raw.pop(issued, None)  # RFC 7592 §2.2: sent back as they were, never metadata
        view = await run_in_threadpool(lambda: AgencyApps(nixa).update(actor, client_id, {k: v for k, v in raw.items() if k != "client_id"}))
    except AdminRefused as exc:
        return _error(exc.status, exc.error, exc.description)
    return JSONResponse(_response(nixa, view), headers={"Cache-Control": "no-store"})
