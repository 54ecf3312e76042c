"""`nixa docs generate`: the integration docs' generated files (claims.md, errors.md) from the code."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The integration docs in docs/: generate the parts made from the code", no_args_is_help=True)


@app.command("generate")
def generate(root: Path = typer.Option(Path("."), "--root", help="The checkout whose docs/ to write"),
             check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 when a file is out of step")) -> None:
    """docs/claims.md from idp/identity/claims.py, docs/errors.md from idp/oidc/errors.py."""
    from idp import reference

    if check:
        stale = reference.stale(root)
        for path in stale:
            typer.echo(f"{path} is out of step with the code: run `nixa docs generate`", err=True)
        raise typer.Exit(1 if stale else 0)
    for path in reference.generate(root):
        typer.echo(f"wrote {path}")
