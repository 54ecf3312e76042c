"""`nixa`: the operator's command line (serve, demo, migrate, keys, clients, users, ...)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from idp.settings import Settings

app = typer.Typer(help="NIXA: national identity exchange and authentication", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Signing keys: list, rotate, prune", no_args_is_help=True)
clients_app = typer.Typer(help="Relying parties (OpenID Connect clients)", no_args_is_help=True)
users_app = typer.Typer(help="Local accounts for the demo and tests", no_args_is_help=True)
connectors_app = typer.Typer(help="Identity-source connectors", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(clients_app, name="clients")
app.add_typer(users_app, name="users")
app.add_typer(connectors_app, name="connectors")
app.add_typer(audit_app, name="audit")


def _mount_optional(module: str, name: str, help_text: str) -> None:
    """Connector packages bring their own commands (test PKI, registry generator...)."""
    import importlib

    try:
        sub = importlib.import_module(module)
    except ImportError:
        return
    if hasattr(sub, "app"):
        app.add_typer(sub.app, name=name, help=help_text)


_mount_optional("connectors.certificate.cli", "pki", "Test PKI: root and licensed CAs, citizen certificates, CRL")
try:  # the stand-in for the USB-token signing plug-in
    from connectors.certificate.cli import sign as _sign

    app.command("sign", help="Sign a sign-in challenge with a PKCS#12 certificate (test stand-in for the USB-token plug-in)")(_sign)
except ImportError:
    pass
_mount_optional("connectors.population.cli", "registry", "Population registry sandbox data")


def _nixa(settings: Settings | None = None):  # noqa: ANN202
    from idp.app import Nixa

    return Nixa(settings or Settings())


@app.command("config")
def config_reference(markdown: bool = typer.Option(False, "--markdown", help="A Markdown table for the docs")) -> None:
    """Every setting with its environment variable, default and meaning (from idp/settings.py)."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()
        shown = "(empty)" if default in ("", None, []) else str(default).lower() if isinstance(default, bool) else str(default)
        rows.append((f"NIXA_{name.upper()}", shown, field.description or ""))
    if markdown:
        typer.echo("| variable | default | meaning |\n| --- | --- | --- |")
        for var, default, doc in rows:
            typer.echo(f"| `{var}` | `{default}` | {doc} |")
        return
    for var, default, doc in rows:
        typer.echo(f"{var:30} {default:28} {doc}")


@app.command()
def migrate() -> None:
    """Bring the database schema to this version (Alembic upgrade head)."""
    from idp.store.db import migrate as do_migrate

    settings = Settings()
    do_migrate(settings.sqlalchemy_url)
    typer.echo(f"schema at head ({settings.sqlalchemy_url.split('@')[-1]})")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve NIXA (refuses to start on a schema it does not know)."""
    import uvicorn

    from idp.store.db import SchemaMismatch, check_schema, make_engine

    settings = Settings()
    if workers > 1 and not settings.redis_url:
        # The in-process ephemeral store lives inside one process: pending sign-ins, codes and
        # sessions made by one worker would be unknown to the others.
        typer.echo("nixa: several workers need a shared ephemeral store: set NIXA_REDIS_URL (or use --workers 1)", err=True)
        raise typer.Exit(2)
    try:
        check_schema(make_engine(settings.sqlalchemy_url))
    except SchemaMismatch as exc:
        typer.echo(f"nixa: {exc}", err=True)
        raise typer.Exit(2) from exc
    uvicorn.run("idp.asgi:app", host=host, port=port, workers=workers, log_level="warning", proxy_headers=False)


@app.command()
def demo(host: str = "127.0.0.1", port: int = 8000, rp_port: int = 8001, tax_port: int = 8002) -> None:
    """The embedded default with demo data, the demo portal and the sandboxes of national systems."""
    from idp.demo.run import run_demo

    run_demo(host=host, port=port, rp_port=rp_port, tax_port=tax_port)


# ---- keys --------------------------------------------------------------------------------------


@keys_app.command("list")
def keys_list() -> None:
    for k in _nixa().keys.describe():
        typer.echo(f"{k['kid']:32} {k['alg']:6} {k['state']}")


@keys_app.command("rotate")
def keys_rotate(alg: list[str] = typer.Option(["ES256", "RS256", "EdDSA"], "--alg")) -> None:
    """pending → active, active → retired (verify-only), a new pending published."""
    nixa = _nixa()
    for a in alg:
        won = nixa.keys.rotate(a)
        if won:
            nixa.events.emit("key.rotated", data={"alg": a, "active": nixa.keys.active_kid(a)})
        typer.echo(f"{a}: {'rotated' if won else 'another worker rotated it at the same time; nothing changed'}")


@keys_app.command("prune")
def keys_prune() -> None:
    """Remove retired keys once every token they signed has expired."""
    nixa = _nixa()
    removed = nixa.keys.prune()
    if removed:
        nixa.events.emit("key.pruned", data={"kids": removed})
    typer.echo(f"removed {len(removed)} retired key(s)")


# ---- clients -----------------------------------------------------------------------------------


@clients_app.command("import")
def clients_import(file: Path) -> None:
    """Create or update clients from a JSON list of RFC 7591 client metadata. Idempotent."""
    from idp.oidc.clients import InvalidClientMetadata

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        typer.echo(f"nixa: cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        typer.echo("nixa: the file must hold a JSON list of client metadata objects", err=True)
        raise typer.Exit(2)
    from idp.oidc.clients import validate_metadata

    problems = []
    for i, raw in enumerate(data):
        try:
            validate_metadata(raw)
        except InvalidClientMetadata as exc:
            cid = raw.get("client_id") if isinstance(raw, dict) else None
            problems.append(f"client #{i + 1} ({cid or 'no client_id'}): {exc.error}: {exc}")
    if problems:
        for p in problems:
            typer.echo(f"nixa: {p}", err=True)
        typer.echo("nixa: nothing imported", err=True)
        raise typer.Exit(2)
    nixa = _nixa()
    for raw in data:
        cid, secret, created = nixa.clients.upsert(raw)
        nixa.events.emit("client.changed", client_id=cid, data={"created": created, "source": "cli import"})
        line = f"{'created' if created else 'updated'} {cid}"
        if secret:
            line += f"  client_secret={secret}  (shown once; store it now)"
        typer.echo(line)


@clients_app.command("list")
def clients_list(as_json: bool = typer.Option(False, "--json")) -> None:
    clients = _nixa().clients.all()
    if as_json:
        typer.echo(json.dumps([{**c.metadata, "client_id": c.client_id} for c in clients], indent=2, ensure_ascii=False))
        return
    for c in clients:
        typer.echo(f"{c.client_id:28} {c.metadata.get('token_endpoint_auth_method'):20} {c.name}")


@clients_app.command("rotate-secret")
def clients_rotate_secret(client_id: str) -> None:
    nixa = _nixa()
    secret = nixa.clients.rotate_secret(client_id)
    nixa.events.emit("client.changed", client_id=client_id, data={"secret_rotated": True})
    typer.echo(f"client_secret={secret}  (shown once)")


# ---- users -------------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    username: str,
    password: Optional[str] = typer.Option(None, help="Read from stdin when omitted"),
    name: Optional[str] = None,
    email: Optional[str] = None,
    phone: Optional[str] = None,
    national_id: Optional[str] = typer.Option(None, help="12-digit personal identification number (test data only)"),
) -> None:
    """Add (or reset) a local test account with an argon2id password."""
    if password is None:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        typer.echo("nixa: the password must have at least 8 characters", err=True)
        raise typer.Exit(2)
    attrs = {k: v for k, v in {"name": name, "email": email, "phone_number": phone, "preferred_username": username}.items() if v}
    nixa = _nixa()
    person_id = nixa.people.add_local_account(username, password, attrs, national_id=national_id)
    nixa.events.emit("admin.changed", person_id=person_id, data={"local_account": username, "source": "cli"})
    typer.echo(f"account {username} → person {person_id}")


# ---- connectors ----------------------------------------------------------------------------------


@connectors_app.command("list")
def connectors_list() -> None:
    for e in _nixa().connectors.entries():
        typer.echo(f"{e.id:16} {e.type:14} v{e.version} {e.loa.name.lower():12} {e.display_name_en}")


@connectors_app.command("health")
def connectors_health() -> None:
    """Ask every enabled connector whether its external system answers."""
    failing = 0
    for e in _nixa().connectors.entries():
        try:
            h = e.instance.health()
            ok, detail = h.ok, h.detail
        except Exception as exc:  # a health probe must never take the command down
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        failing += not ok
        typer.echo(f"{e.id:16} {'ok' if ok else 'FAILING':8} {detail}")
    raise typer.Exit(1 if failing else 0)


@connectors_app.command("set")
def connectors_set(connector_id: str, type_name: str, config_file: Path, loa: str = "low", name_vi: str = "", name_en: str = "",
                   position: int = 100) -> None:
    """Create or edit a connector from a JSON config file; running workers reopen it live."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("the configuration must be a JSON object")
        nixa = _nixa()
        version = nixa.connectors.upsert(connector_id, type_name, config, loa=loa, display_name_vi=name_vi, display_name_en=name_en,
                                          position=position)
    except (OSError, ValueError, KeyError) as exc:
        typer.echo(f"nixa: {exc}", err=True)
        raise typer.Exit(2) from exc
    nixa.events.emit("connector.changed", data={"connector": connector_id, "version": version})
    typer.echo(f"{connector_id}: version {version}")


# ---- audit ---------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain; exit 1 and name the first broken row if anything was altered."""
    ok, broken = _nixa().audit.verify_chain()
    if ok:
        typer.echo("audit chain intact")
        return
    typer.echo(f"nixa: audit chain broken at event {broken}", err=True)
    raise typer.Exit(1)


@audit_app.command("tail")
def audit_tail(count: int = typer.Option(20, "-n", min=1, max=10_000), type_prefix: str = typer.Option("", "--type")) -> None:
    """The latest events, oldest first (time, type, person, client, data)."""
    import datetime as dt

    from sqlalchemy import select

    from idp.store.models import AuditEvent

    nixa = _nixa()
    with nixa.db.session() as s:
        q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(count)
        if type_prefix:
            q = q.where(AuditEvent.type.startswith(type_prefix))
        rows = list(reversed(s.scalars(q).all()))
    for r in rows:
        at = dt.datetime.fromtimestamp(r.at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        typer.echo(f"{r.id:>8} {at} {r.type:20} {r.person_id or '-':32} {r.client_id or '-':24} {json.dumps(r.data, ensure_ascii=False)}")


if __name__ == "__main__":
    app()
