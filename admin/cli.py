"""`nixa`: the operator's command line (serve, demo, migrate, keys, clients, users, ...)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from idp.settings import Settings

app = typer.Typer(help="NIXA: national identity exchange and authentication", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Signing keys and the master key: list, rotate, retire, revoke, prune, rotate-master", no_args_is_help=True)
clients_app = typer.Typer(help="Relying parties (OpenID Connect clients)", no_args_is_help=True)
resources_app = typer.Typer(help="Resource servers: the agency APIs that accept NIXA access tokens (RFC 8707)", no_args_is_help=True)
users_app = typer.Typer(help="Local accounts for the demo and tests", no_args_is_help=True)
connectors_app = typer.Typer(help="Identity-source connectors", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(clients_app, name="clients")
app.add_typer(resources_app, name="resources")
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

    app.command("sign", help="Show a sign-in statement, check its origin, sign it with a PKCS#12 certificate (test stand-in for the USB-token plug-in)")(_sign)
except ImportError:
    pass
_mount_optional("connectors.population.cli", "registry", "Population registry sandbox data")
_mount_optional("admin.synthetic", "synthetic", "Synthetic Persons at national scale (benchmarks, capacity tests)")
_mount_optional("admin.docs", "docs", "The integration docs in docs/: generate the parts made from the code")
_mount_optional("admin.commands", "admin", "Administration: roles, agency apps, people and incidents, audit")


class _Invocation:
    """What the top-level options of this run said (the callback sets it before any command)."""

    actor_name = ""


@app.callback()
def _main(
    actor: str = typer.Option("", "--actor", envvar="NIXA_ACTOR", help="Who runs this command, recorded in the audit trail with the OS user and host."),
    var_dir: Path | None = typer.Option(None, "--var-dir", help="The deployment's state folder (else NIXA_VAR_DIR, else ./var); "
                                                                 "NIXA_DATABASE_URL, when set, names the database instead."),
) -> None:
    """NIXA: national identity exchange and authentication"""
    import os

    _Invocation.actor_name = actor
    if var_dir is not None:
        os.environ["NIXA_VAR_DIR"] = str(var_dir)


def _no_deployment_here(settings: Settings) -> str | None:
    """Why there is no NIXA where this command looks (an embedded database file that does not
    exist), or None. Opening it would silently create an empty second NIXA instead."""
    url = settings.sqlalchemy_url
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url[len("sqlite:///"):])
    if path.exists():
        return None
    return (f"no NIXA at {path} (no database there): point --var-dir, NIXA_VAR_DIR or NIXA_DATABASE_URL at the deployment, "
            "or create one there with `nixa migrate`")


def _actor() -> dict[str, str]:
    """Who runs this command, stamped on every event it causes: the OS user and the host, and
    the name given with --actor / NIXA_ACTOR (a shared service account says little alone)."""
    import getpass
    import os
    import socket

    try:
        os_user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        os_user = str(os.getuid())
    actor = {"via": "cli", "os_user": os_user, "host": socket.gethostname()}
    if _Invocation.actor_name:
        actor["name"] = _Invocation.actor_name
    return actor


def _with_demo_key(settings: Settings) -> Settings:
    """A command pointed at the demo's folder uses the demo's throwaway master key
    (var_dir/master.key, which only `nixa demo` makes), and says so. A real deployment keeps its
    key outside its data and passes it in NIXA_MASTER_KEY(_FILE); nothing else is looked for."""
    demo_key = Path(settings.var_dir) / "master.key"
    if settings.master_key or settings.database_url or not demo_key.is_file():
        return settings
    typer.echo(f"nixa: using the demo's throwaway master key ({demo_key})", err=True)
    return settings.model_copy(update={"master_key": demo_key.read_text().strip()})


def _settings() -> Settings:
    """The deployment's settings. A wrong one (a value of the wrong kind, a *_FILE that cannot be
    read) is a refusal to start, one line per setting, never a traceback."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()))
            text = str(error.get("msg", "")).removeprefix("Value error, ")
            typer.echo(f"nixa: configuration: {f'NIXA_{where.upper()}: ' if where else ''}{text}", err=True)
        raise typer.Exit(2) from None


def _nixa(settings: Settings | None = None):  # noqa: ANN202
    """The one way a command opens NIXA, so every command's audit events carry its actor."""
    from idp.app import Nixa
    from idp.store.db import SchemaMismatch
    from keys.pkcs11 import HsmProblem
    from keys.sealing import MasterKeyProblem

    settings = _with_demo_key(settings or _settings())
    missing = _no_deployment_here(settings)
    if missing:
        typer.echo(f"nixa: {missing}", err=True)
        raise typer.Exit(2)
    try:
        nixa = Nixa(settings)
    except (MasterKeyProblem, SchemaMismatch, HsmProblem) as exc:  # a refusal to start, said plainly
        typer.echo(f"nixa: {exc}", err=True)
        raise typer.Exit(2) from exc
    nixa.events.actor = _actor()
    return nixa


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

    settings = _settings()
    if settings.sqlalchemy_url.startswith("sqlite:///"):
        Path(settings.sqlalchemy_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)  # a new var dir
    do_migrate(settings.sqlalchemy_url)
    typer.echo(f"schema at head ({settings.sqlalchemy_url.split('@')[-1]})")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve NIXA (refuses to start on a schema it does not know, or without its master key)."""
    import uvicorn

    settings = _settings()
    if workers > 1 and not settings.redis_url:
        # The in-process ephemeral store lives inside one process: pending sign-ins, codes and
        # sessions made by one worker would be unknown to the others.
        typer.echo("nixa: several workers need a shared ephemeral store: set NIXA_REDIS_URL (or use --workers 1)", err=True)
        raise typer.Exit(2)
    # Open NIXA once here, so a wrong schema or master key is one clear line, not a traceback per worker.
    _nixa(settings).db.engine.dispose()
    # log_config None: the workers' own JSON logging (idp/asgi.py) is not replaced by uvicorn's.
    uvicorn.run("idp.asgi:app", host=host, port=port, workers=workers, log_level="warning", proxy_headers=False,
                **({"log_config": None} if settings.log_format == "json" else {}))


@app.command()
def demo(host: str = "127.0.0.1", port: int = 8000, rp_port: int = 8001, tax_port: int = 8002,
         https: bool = typer.Option(False, "--https", envvar="NIXA_DEMO_HTTPS",
                                    help="Serve NIXA and the portals over HTTPS with a CA made for this demo (var/tls/ca.pem)")) -> None:
    """The embedded default with demo data, the demo portal and the sandboxes of national systems."""
    from idp.demo.run import run_demo

    run_demo(host=host, port=port, rp_port=rp_port, tax_port=tax_port, https=https)


# ---- keys --------------------------------------------------------------------------------------


def _when(at: float | None) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if at else "-"


@keys_app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json", help="One JSON object per key")) -> None:
    """Every signing key: kid, alg, state, backend (database or pkcs11), created, activated, retired (UTC)."""
    nixa = _nixa()
    keys = nixa.signing_keys.list()
    if as_json:
        for k in keys:
            typer.echo(json.dumps(k.as_dict()))
        return
    typer.echo(f"{'kid':28} {'alg':6} {'state':8} {'backend':8} {'created':20} {'activated':20} retired")
    for k in keys:
        typer.echo(f"{k.kid:28} {k.alg:6} {k.state:8} {k.backend:8} {_when(k.created_at):20} {_when(k.activated_at):20} {_when(k.retired_at)}")
    typer.echo(f"new keys are made in: {nixa.signing_keys.backend}")


@contextmanager
def _key_operation(kid: str = "") -> Iterator[None]:
    """What a key operation can refuse, said in one line (exit 2): no such key, an unknown alg,
    an HSM that stopped answering."""
    from keys.pkcs11 import HsmProblem
    from keys.service import UnknownKey

    try:
        yield
    except UnknownKey:
        typer.echo(f"nixa: no signing key {kid} (see `nixa keys list`)", err=True)
        raise typer.Exit(2) from None
    except (ValueError, HsmProblem) as exc:
        typer.echo(f"nixa: {exc}", err=True)
        raise typer.Exit(2) from exc


@keys_app.command("rotate")
def keys_rotate(alg: list[str] = typer.Option(["ES256", "RS256", "EdDSA"], "--alg")) -> None:
    """pending → active, active → retired (verify-only), a new pending published."""
    nixa = _nixa()
    for a in alg:
        with _key_operation():
            won = nixa.signing_keys.rotate(a, actor=_actor())
        typer.echo(f"{a}: {'rotated' if won else 'another worker rotated it at the same time; nothing changed'}")


@keys_app.command("retire")
def keys_retire(kid: str) -> None:
    """Stop one key signing: it stays published and verifies what it signed until `nixa keys prune`;
    if it was signing, the published next key takes over."""
    nixa = _nixa()
    with _key_operation(kid):
        done = nixa.signing_keys.retire(kid, actor=_actor())
    typer.echo(f"{kid} retired (was {done['state']})" if done["changed"] else f"{kid} was already retired; nothing changed")


@keys_app.command("prune")
def keys_prune() -> None:
    """Remove retired keys once every token they signed has expired (every worker drops them within seconds)."""
    nixa = _nixa()
    with _key_operation():
        removed = nixa.signing_keys.prune(actor=_actor())
    typer.echo(f"removed {len(removed)} retired key(s)")


@keys_app.command("revoke")
def keys_revoke(kid: str, reason: str = typer.Option("", "--reason", help="Why (recorded in the audit trail)")) -> None:
    """A compromised key: out of the JWKS and no longer trusted, whatever its state; if it was
    signing, the published next key takes over. Tokens it signed stop verifying."""
    nixa = _nixa()
    with _key_operation(kid):
        done = nixa.signing_keys.revoke(kid, actor=_actor(), reason=reason)
    typer.echo(f"{kid} revoked ({done['state']} {done['alg']} key, {done['backend']}); every worker drops it within seconds")


@keys_app.command("rotate-master")
def keys_rotate_master() -> None:
    """Re-seal every secret at rest (signing keys, stable secrets, connector secrets, TOTP secrets) under a new
    master key, in one transaction. The new key comes from NIXA_NEW_MASTER_KEY(_FILE) or a prompt.
    Run it again with the same new key to re-seal what a worker sealed under the old one meanwhile."""
    from sqlalchemy.exc import IntegrityError

    from keys.sealing import MasterKey, MasterKeyProblem

    settings = _settings()
    if not settings.audit_key:
        # The audit key is derived from the master key until it is pinned: rotating now would
        # leave every earlier audit row keyed with a key nobody holds any more.
        typer.echo("nixa: pin the audit key first (`nixa audit pin-key`, then set NIXA_AUDIT_KEY on every worker): "
                   "it is derived from the master key until then", err=True)
        raise typer.Exit(2)
    value = settings.new_master_key or typer.prompt("New master key (32 bytes, base64url)", hide_input=True)
    try:
        new = MasterKey.from_b64(value.strip())
    except ValueError as exc:
        typer.echo(f"nixa: {exc}", err=True)
        raise typer.Exit(2) from exc
    nixa = _nixa(settings)
    try:
        from idp.identity import factors

        version, count = nixa.sealer.rotate(new, (nixa.keys.reseal, nixa.stable.reseal, nixa.connectors.reseal, factors.reseal))
    except MasterKeyProblem as exc:
        typer.echo(f"nixa: {exc}", err=True)
        raise typer.Exit(2) from exc
    except IntegrityError as exc:
        typer.echo("nixa: another master-key rotation ran at the same time; nothing changed", err=True)
        raise typer.Exit(1) from exc
    nixa.events.emit("master_key.rotated", data={"version": version, "resealed": count})
    typer.echo(f"re-sealed {count} value(s) under master key version {version}.\n"
               "Now set NIXA_MASTER_KEY to the new key on every worker (with the old one as NIXA_PREVIOUS_MASTER_KEY "
               "until all have restarted), then destroy the old key.")


# ---- clients -----------------------------------------------------------------------------------


@clients_app.command("import")
def clients_import(file: Path, force: bool = typer.Option(False, "--force", help="Allow moving a client to another sector "
                                                                                  "(every user's pairwise `sub` at it changes)")) -> None:
    """Create or update clients from a JSON list of RFC 7591 client metadata: all of them or none. Idempotent."""
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
    nixa = _nixa()
    problems, prepared = [], []
    for i, raw in enumerate(data):
        cid = raw.get("client_id") if isinstance(raw, dict) else None
        try:
            md = nixa.clients.prepare(raw)  # the metadata, and the fetches it needs (sector, jwks_uri)
        except InvalidClientMetadata as exc:
            problems.append(f"client #{i + 1} ({cid or 'no client_id'}): {exc.error}: {exc}")
            continue
        moved = nixa.clients.sector_change(md)
        if moved and not force:
            old, new, persons = moved
            problems.append(f"client #{i + 1} ({cid}): its sector would change from {old} to {new}: the `sub` of {persons} "
                            "person(s) at this client would change; re-run with --force if that is intended")
        prepared.append(md)
    if problems:
        for p in problems:
            typer.echo(f"nixa: {p}", err=True)
        typer.echo("nixa: nothing imported", err=True)
        raise typer.Exit(2)
    for cid, secret, created in nixa.clients.write_all(prepared):
        nixa.events.emit("client.changed", client_id=cid, data={"created": created, "source": "cli import"})
        line = f"{'created' if created else 'updated'} {cid}"
        if secret:
            line += f"  client_secret={secret}  (shown once; store it now)"
        typer.echo(line)


def _apps():  # noqa: ANN202
    """The agency-app operations of the admin API (admin/apps.py), with this command's actor."""
    from admin.apps import AgencyApps

    return AgencyApps(_nixa()), _actor()


def _app_operation(client_id: str, fn, *args):  # noqa: ANN001, ANN002, ANN202
    from admin.service import AdminRefused

    try:
        return fn(*args)
    except AdminRefused as exc:
        typer.echo(f"nixa: {f'no client {client_id!r}' if exc.status == 404 else exc.description}", err=True)
        raise typer.Exit(2) from exc


@clients_app.command("disable")
def clients_disable(client_id: str) -> None:
    """Stop a client at once: it can no longer sign anyone in or get tokens, and its grants are revoked."""
    apps, actor = _apps()
    _, revoked = _app_operation(client_id, apps.set_disabled, actor, client_id, True)
    typer.echo(f"disabled {client_id} ({revoked} grant(s) revoked)")


@clients_app.command("enable")
def clients_enable(client_id: str) -> None:
    """Let a disabled client work again (people sign in anew: its old grants stay revoked)."""
    apps, actor = _apps()
    _app_operation(client_id, apps.set_disabled, actor, client_id, False)
    typer.echo(f"enabled {client_id}")


@clients_app.command("delete")
def clients_delete(client_id: str, yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation")) -> None:
    """Delete a client with its consents and resource-server registration; its grants are revoked."""
    apps, actor = _apps()
    _app_operation(client_id, apps.get, client_id)
    if not yes and not typer.confirm(f"Delete {client_id} and its consents? This cannot be undone"):
        raise typer.Exit(1)
    revoked = _app_operation(client_id, apps.delete, actor, client_id)
    typer.echo(f"deleted {client_id} ({revoked} grant(s) revoked)")


@clients_app.command("list")
def clients_list(as_json: bool = typer.Option(False, "--json")) -> None:
    clients = _nixa().clients.all()
    if as_json:
        typer.echo(json.dumps([{**c.metadata, "client_id": c.client_id} for c in clients], indent=2, ensure_ascii=False))
        return
    for c in clients:
        typer.echo(f"{c.client_id:28} {c.metadata.get('token_endpoint_auth_method'):20} {c.name}")


@clients_app.command("rotate-secret")
def clients_rotate_secret(client_id: str, overlap: int = typer.Option(0, "--overlap", min=0, max=30 * 86400,
                                                                     help="Seconds the current secret stays valid beside the new one")) -> None:
    apps, actor = _apps()
    secret, _ = _app_operation(client_id, apps.rotate_secret, actor, client_id, overlap)
    typer.echo(f"client_secret={secret}  (shown once)")


# ---- resource servers ----------------------------------------------------------------------------


@resources_app.command("add")
def resources_add(
    identifier: str = typer.Argument(..., help="The API's resource identifier: an absolute URI without fragment, its tokens' `aud`"),
    name: str = typer.Option(..., "--name", help="Shown to operators"),
    scope: list[str] = typer.Option([], "--scope", help="A scope the API accepts (repeat for each)"),
    client_id: str = typer.Option(..., "--client", help="The registered client the API introspects tokens with"),
) -> None:
    """Register a resource server, or update it (same identifier). Idempotent."""
    from idp.oidc.resources import InvalidResourceServer

    nixa = _nixa()
    try:
        created = nixa.resources.upsert(identifier, name=name, scopes=scope, client_id=client_id)
    except InvalidResourceServer as exc:
        typer.echo(f"nixa: {exc}", err=True)
        raise typer.Exit(2) from exc
    nixa.events.emit("resource.changed", client_id=client_id,
                     data={"resource": identifier, "scopes": sorted(set(scope)), "created": created, "source": "cli"})
    typer.echo(f"{'created' if created else 'updated'} {identifier}")


@resources_app.command("list")
def resources_list(as_json: bool = typer.Option(False, "--json")) -> None:
    servers = _nixa().resources.all()
    if as_json:
        typer.echo(json.dumps([{"identifier": r.identifier, "name": r.name, "scopes": sorted(r.scopes), "client_id": r.client_id}
                               for r in servers], indent=2, ensure_ascii=False))
        return
    for r in servers:
        typer.echo(f"{r.identifier:40} {r.client_id:24} {' '.join(sorted(r.scopes)):30} {r.name}")


@resources_app.command("remove")
def resources_remove(identifier: str) -> None:
    """No new token is issued for it and its client can no longer introspect; JWTs already issued stay valid until they expire."""
    nixa = _nixa()
    if not nixa.resources.remove(identifier):
        typer.echo(f"nixa: no resource server {identifier}", err=True)
        raise typer.Exit(2)
    nixa.events.emit("resource.changed", data={"resource": identifier, "removed": True, "source": "cli"})
    typer.echo(f"removed {identifier}")


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
def connectors_list(health: bool = typer.Option(False, "--health", help="Also ask each enabled source whether it answers"),
                    as_json: bool = typer.Option(False, "--json")) -> None:
    """Every configured connector, enabled or not (secrets never shown)."""
    from admin import connector_admin

    views = connector_admin.list_connectors(_nixa(), health=health)
    if as_json:
        typer.echo(json.dumps([v.as_dict() for v in views], ensure_ascii=False, indent=2, default=str))
        return
    for v in views:
        state = "enabled" if v.enabled else "disabled"
        line = f"{v.id:16} {v.type:14} v{v.version} {v.loa:12} {state:9} {v.display_name_en}"
        if v.health is not None:
            line += f"  [{'ok' if v.health['ok'] else 'FAILING'}: {v.health['detail']}]"
        typer.echo(line)


@connectors_app.command("health")
def connectors_health() -> None:
    """Ask every enabled connector whether its external system answers (exit 1 when one fails)."""
    from admin import connector_admin

    failing = 0
    for v in connector_admin.list_connectors(_nixa(), health=True):
        if not v.enabled:
            continue
        failing += not v.health["ok"]
        typer.echo(f"{v.id:16} {'ok' if v.health['ok'] else 'FAILING':8} {v.health['detail']}")
    raise typer.Exit(1 if failing else 0)


@connectors_app.command("test")
def connectors_test(connector_id: str) -> None:
    """Test one connector's connection to its external system (exit 1 when it fails)."""
    from admin import connector_admin

    try:
        h = connector_admin.test(_nixa(), connector_id)
    except connector_admin.UnknownConnector:
        typer.echo(f"nixa: no connector {connector_id!r}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{connector_id}: {'ok' if h['ok'] else 'FAILING'} {h['detail']}")
    raise typer.Exit(0 if h["ok"] else 1)


@connectors_app.command("describe")
def connectors_describe(type_name: Optional[str] = typer.Argument(None, help="One type; all when left out"),
                        as_json: bool = typer.Option(False, "--json")) -> None:
    """The configuration keys each connector type declares: kind, default, required, secret."""
    from admin import connector_admin

    described = [t for t in connector_admin.types() if type_name in (None, t["type"])]
    if not described:
        typer.echo(f"nixa: unknown connector type {type_name!r}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(described, ensure_ascii=False, indent=2, default=str))
        return
    for t in described:
        typer.echo(t["type"])
        for o in t["options"]:
            flags = ", ".join(f for f, on in (("required", o["required"]), ("secret, write-only", o["secret"])) if on)
            default = "" if o["required"] or o["secret"] else f" = {json.dumps(o['default'], ensure_ascii=False, default=str)}"
            typer.echo(f"  {o['name']} ({o['kind']}{', ' + flags if flags else ''}){default}: {o['doc']}")


@connectors_app.command("show")
def connectors_show(connector_id: str) -> None:
    """One connector's configuration as JSON; secrets only as whether they are set."""
    from admin import connector_admin

    try:
        view = connector_admin.show(_nixa(), connector_id)
    except connector_admin.UnknownConnector:
        typer.echo(f"nixa: no connector {connector_id!r}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(view.as_dict(), ensure_ascii=False, indent=2, default=str))


def _enable(connector_id: str, enabled: bool) -> None:
    from admin import connector_admin

    try:
        view = connector_admin.set_enabled(_nixa(), connector_id, enabled, actor=_actor())
    except connector_admin.UnknownConnector:
        typer.echo(f"nixa: no connector {connector_id!r}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{connector_id}: {'enabled' if view.enabled else 'disabled'} (version {view.version})")


@connectors_app.command("enable")
def connectors_enable(connector_id: str) -> None:
    """Offer this connector again; running workers pick it up within seconds."""
    _enable(connector_id, True)


@connectors_app.command("disable")
def connectors_disable(connector_id: str) -> None:
    """Stop offering this connector; running workers drop it within seconds. Its links stay."""
    _enable(connector_id, False)


@connectors_app.command("set")
def connectors_set(connector_id: str, type_name: str, config_file: Path, loa: str = "low", name_vi: str = "", name_en: str = "",
                   position: int = 100) -> None:
    """Create or edit a connector from a JSON config file; running workers reopen it live.
    Only the keys the type declares (`nixa connectors describe TYPE`); a secret left out keeps
    the stored one."""
    from admin import connector_admin

    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("the configuration must be a JSON object")
        view = connector_admin.save(_nixa(), connector_id, type_name, config, actor=_actor(), loa=loa, display_name_vi=name_vi,
                                    display_name_en=name_en, position=position)
    except (OSError, ValueError, KeyError) as exc:
        typer.echo(f"nixa: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{connector_id}: version {view.version}")


# ---- audit ---------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="A checkpoint kept from `nixa audit checkpoint`: also catches rows deleted from the end and a rewritten chain."
    ),
) -> None:
    """Recompute the keyed chain; exit 1 with one line naming the first bad event if anything was altered."""
    from idp.audit_chain import InvalidCheckpoint

    nixa = _nixa()
    held = None
    if checkpoint is not None:
        try:
            held = nixa.audit.checkpoints.read(checkpoint.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, InvalidCheckpoint) as exc:
            typer.echo(f"nixa: checkpoint {checkpoint} refused: {exc}", err=True)
            raise typer.Exit(2) from exc
    report = nixa.audit.verify_chain(held)
    if not report.ok:
        typer.echo(f"nixa: {report.line()}", err=True)
        raise typer.Exit(1)
    typer.echo(report.line() + (f"; it holds the checkpoint of event {held.event_id}" if held else ""))


@audit_app.command("checkpoint")
def audit_checkpoint(out: Optional[Path] = typer.Option(None, "--out", help="Write the JWS to this file instead of standard output.")) -> None:
    """The newest signed checkpoint (made now if events came after it), for an auditor to keep outside NIXA."""
    nixa = _nixa()
    token = nixa.audit.checkpoint_now()
    if token is None:
        typer.echo("nixa: the audit trail is empty; nothing to checkpoint", err=True)
        raise typer.Exit(1)
    if out is None:
        typer.echo(token)
        return
    out.write_text(token + "\n", encoding="utf-8")
    typer.echo(f"checkpoint of event {nixa.audit.checkpoints.read(token).event_id} written to {out}")


@audit_app.command("pin-key")
def audit_pin_key() -> None:
    """Print the audit key derived from the master key, to set as NIXA_AUDIT_KEY before the master key is rotated."""
    from idp.audit_chain import derived_key, encode_key, key_id

    nixa = _nixa()
    if nixa.settings.audit_key:
        typer.echo("nixa: NIXA_AUDIT_KEY is already set; nothing to pin", err=True)
        raise typer.Exit(2)
    key = derived_key(nixa.master)
    nixa.events.emit("admin.changed", data={"audit_key_exported": key_id(key)})
    typer.echo(f"NIXA_AUDIT_KEY={encode_key(key)}")
    typer.echo("keep it in the secret store beside the master key, never in the database", err=True)


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
