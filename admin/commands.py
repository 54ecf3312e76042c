"""`nixa admin …`: the admin API's operations for scripts and for bootstrap (the first
super-admin is made here), over the same services (admin/apps.py, admin/people.py,
admin/audit.py, admin/registration.py); the actor is the command line's (OS user, host,
--actor), stamped on every audit event."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any, Optional

import typer

from admin.service import AdminRefused

app = typer.Typer(help="Administration: roles, agency apps, people and incidents, audit (the admin API's operations)",
                  no_args_is_help=True)


def _open() -> tuple[Any, dict[str, Any]]:
    from admin.cli import _actor, _nixa

    return _nixa(), _actor()


def _run(fn: Any, *args: Any, **kw: Any) -> Any:
    """Call a service operation; a refusal is one line on stderr and exit 2."""
    try:
        return fn(*args, **kw)
    except AdminRefused as exc:
        typer.echo(f"nixa: {exc.description}", err=True)
        raise typer.Exit(2) from exc


def _person(nixa: Any, person: str | None, national_id: str | None, username: str | None) -> str:
    """A person named by id, verified national ID or local account username."""
    from sqlalchemy import select

    from idp.store.models import LocalAccount, Person

    with nixa.db.session() as s:
        if national_id:
            found = s.scalar(select(Person.id).where(Person.national_id == national_id))
        elif username:
            found = s.scalar(select(LocalAccount.person_id).where(LocalAccount.username == username))
        else:
            found = person if person and s.get(Person, person) is not None else None
    if not found:
        typer.echo("nixa: no such person (give a person id, --national-id or --username)", err=True)
        raise typer.Exit(2)
    return found


PersonArg = typer.Argument(None, help="The person id (or use --national-id / --username)")
NationalId = typer.Option(None, "--national-id", help="The person's verified 12-digit national ID")
Username = typer.Option(None, "--username", help="The person's NIXA local account")
Reason = typer.Option(..., "--reason", help="Why: audited and shown to the person in their access log")


# ---- roles ---------------------------------------------------------------------------------------


@app.command("grant-role")
def grant_role(role: str = typer.Argument(..., help="super-admin, client-admin, connector-admin, support or auditor"),
               person: Optional[str] = PersonArg, national_id: Optional[str] = NationalId, username: Optional[str] = Username) -> None:
    """Give a person an admin role (the bootstrap of the first super-admin)."""
    from admin.api import grant
    from admin.roles import AdminRoles

    nixa, actor = _open()
    pid = _person(nixa, person, national_id, username)
    changed = _run(grant, nixa, AdminRoles(nixa.db), actor, pid, role)
    typer.echo(f"{pid}: {role} {'granted' if changed else 'already held'}")


@app.command("revoke-role")
def revoke_role(role: str, person: Optional[str] = PersonArg, national_id: Optional[str] = NationalId,
                username: Optional[str] = Username) -> None:
    from admin.api import revoke
    from admin.roles import AdminRoles

    nixa, actor = _open()
    pid = _person(nixa, person, national_id, username)
    changed = _run(revoke, nixa, AdminRoles(nixa.db), actor, pid, role)
    typer.echo(f"{pid}: {role} {'revoked' if changed else 'was not held'}")


@app.command("roles")
def roles() -> None:
    """Who holds which role."""
    from admin.roles import AdminRoles

    nixa, _ = _open()
    for row in AdminRoles(nixa.db).all():
        typer.echo(f"{row['person_id']:32} {row['role']:16} {row['granted_by'] or '-'}")


# ---- agency apps ---------------------------------------------------------------------------------


@app.command("registration-token")
def registration_token(label: str = typer.Option(..., "--label", help="Who it is for (the agency)"),
                       uses: int = typer.Option(1, "--uses", min=1, max=100)) -> None:
    """An initial access token for dynamic client registration (RFC 7591) at /register."""
    from admin.registration import InitialAccessTokens

    nixa, actor = _open()
    token, expires = InitialAccessTokens(nixa).issue(actor, label, uses)
    typer.echo(f"initial_access_token={token}  (shown once; valid until {datetime.fromtimestamp(expires).isoformat(timespec='minutes')}, "
               f"{uses} registration(s))")


# ---- people --------------------------------------------------------------------------------------


@app.command("search")
def search(reason: str = Reason, national_id: Optional[str] = NationalId, name: Optional[str] = typer.Option(None, "--name"),
           phone: Optional[str] = typer.Option(None, "--phone")) -> None:
    from admin.people import Support

    nixa, actor = _open()
    for p in _run(Support(nixa).search, actor, reason, national_id=national_id, name=name, phone=phone):
        typer.echo(f"{p['person_id']:32} {p['status']:10} {p['national_id'] or '-':12} {p['name'] or ''}")


def _on_person(operation: str, person: str | None, national_id: str | None, username: str | None, reason: str) -> tuple[str, Any]:
    """Run one of admin/people.py Support's operations on the person named."""
    from admin.people import Support

    nixa, actor = _open()
    pid = _person(nixa, person, national_id, username)
    return pid, _run(getattr(Support(nixa), operation), actor, pid, reason)


@app.command("show")
def show(person: Optional[str] = PersonArg, reason: str = Reason, national_id: Optional[str] = NationalId,
         username: Optional[str] = Username) -> None:
    """Everything support may see about a person, as JSON (the look is shown to them)."""
    _, view = _on_person("view", person, national_id, username, reason)
    typer.echo(json.dumps(view, indent=2, ensure_ascii=False, default=str))


@app.command("lock")
def lock(person: Optional[str] = PersonArg, reason: str = Reason, national_id: Optional[str] = NationalId,
         username: Optional[str] = Username) -> None:
    """Lock a person: every session and grant ends, every app is told, no sign-in until unlocked."""
    pid, _ = _on_person("lock", person, national_id, username, reason)
    typer.echo(f"{pid}: locked")


@app.command("unlock")
def unlock(person: Optional[str] = PersonArg, reason: str = Reason, national_id: Optional[str] = NationalId,
           username: Optional[str] = Username) -> None:
    """Lift an administrator's lock."""
    pid, _ = _on_person("unlock", person, national_id, username, reason)
    typer.echo(f"{pid}: active")


@app.command("sign-out")
def sign_out(person: Optional[str] = PersonArg, reason: str = Reason, national_id: Optional[str] = NationalId,
             username: Optional[str] = Username) -> None:
    """End every session and grant of a person (the apps are told by back-channel logout)."""
    pid, done = _on_person("revoke_sessions", person, national_id, username, reason)
    typer.echo(f"{pid}: {done['sessions_ended']} session(s) ended, {done['grants_revoked']} grant(s) revoked")


@app.command("merge")
def merge(source: str = typer.Argument(..., help="The person folded in, then deleted"), into: str = typer.Argument(...),
          reason: str = Reason) -> None:
    from admin.people import Support

    nixa, actor = _open()
    _run(Support(nixa).merge, actor, source, into, reason)
    typer.echo(f"{source} merged into {into}")


# ---- audit ---------------------------------------------------------------------------------------


@app.command("audit-export")
def audit_export(fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv"), actor: Optional[str] = typer.Option(None, "--actor-id"),
                 subject: Optional[str] = typer.Option(None, "--subject"), event: Optional[str] = typer.Option(None, "--event"),
                 since: Optional[datetime] = typer.Option(None, "--since"), until: Optional[datetime] = typer.Option(None, "--until")) -> None:
    """The audit events matching the filter, oldest first, to standard output."""
    from admin.audit import AuditFilter, AuditTrail

    if fmt not in ("jsonl", "csv"):
        typer.echo("nixa: --format jsonl or csv", err=True)
        raise typer.Exit(2)
    nixa, who = _open()
    flt = _run(AuditFilter(actor, subject, event, since.timestamp() if since else None, until.timestamp() if until else None).checked)
    from admin.service import record

    record(nixa, who, "audit.export", fmt, viewed=True)
    trail = AuditTrail(nixa)
    for chunk in trail.export_jsonl(flt) if fmt == "jsonl" else trail.export_csv(flt):
        sys.stdout.write(chunk)


@app.command("openapi")
def openapi() -> None:
    """The admin API's OpenAPI 3.1 document (as served at /admin/api/openapi.json)."""
    typer.echo(json.dumps(openapi_document(), indent=2, ensure_ascii=False, sort_keys=True))


def openapi_document() -> dict[str, Any]:
    """Built without a database: the document depends on the code only."""
    from types import SimpleNamespace

    from admin.api import create_admin_api

    api = create_admin_api(SimpleNamespace(db=None, settings=None))
    api.root_path = "/admin/api"
    document = api.openapi()
    document["servers"] = [{"url": "/admin/api"}]
    return document
