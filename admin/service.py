"""What every admin operation shares: its refusals, and the audit record of each change
(`admin.changed`: actor, what, target, before, after, reason), with secrets left out.

The API (admin/api.py) and the CLI (admin/cli.py) call the same operations (admin/apps.py,
admin/people.py, admin/audit.py); they differ only in how they name the actor."""

from __future__ import annotations

from typing import Any

# Never in an audit record: a secret in clear or its hash (a hash of a low-entropy value is one).
SECRET_KEYS = frozenset({"client_secret", "secret_hash", "previous_secret_hash", "registration_access_token",
                         "registration_token_hash", "initial_access_token", "password", "api_key"})
MAX_REASON = 500


class AdminRefused(Exception):
    """An operation refused, with its HTTP status, an error code and a reason for the operator."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def not_found(what: str) -> AdminRefused:
    return AdminRefused(404, "not_found", f"no {what}")


def redacted(value: Any) -> Any:
    """`value` with every secret-bearing key replaced by a marker that says one was there."""
    if isinstance(value, dict):
        return {k: ("(secret)" if k in SECRET_KEYS else redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


def check_reason(reason: str | None) -> str:
    """Support actions need a reason (it is audited and shown to the citizen)."""
    text = " ".join((reason or "").split())
    if len(text) < 3:
        raise AdminRefused(400, "reason_required", "give a reason (at least 3 characters): it is recorded and shown to the person")
    if len(text) > MAX_REASON:
        raise AdminRefused(400, "invalid_request", f"the reason must be at most {MAX_REASON} characters")
    return text


def record(nixa: Any, actor: dict[str, Any], what: str, target: str, *, before: Any = None, after: Any = None,
           person_id: str | None = None, client_id: str | None = None, reason: str | None = None, support: bool = False,
           viewed: bool = False) -> None:
    """One audit event for one admin operation. `support`: an action on a person, shown in
    their access log (idp/events.py); `viewed`: a look, not a change (`admin.viewed`)."""
    data: dict[str, Any] = {"actor": actor, "what": what, "target": target}
    if not viewed:
        data["before"], data["after"] = redacted(before), redacted(after)
    if reason:
        data["reason"] = reason
    if support and person_id:
        data["support"] = {"action": what.rsplit(".", 1)[-1], "reason": reason or ""}
    nixa.events.emit("admin.viewed" if viewed else "admin.changed", person_id=person_id, client_id=client_id,
                     ip=actor.get("ip"), data=data)
