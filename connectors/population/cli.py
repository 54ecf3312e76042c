"""`nixa registry ...`: commands for the population registry sandbox (mounted by admin/cli.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from connectors.population.demo_data import DEMO_CITIZENS
from connectors.population.generate import DEFAULT_SEED, generate, sign_in_hints

app = typer.Typer(help="Population registry sandbox: synthetic citizens. / Sandbox CSDL dân cư: công dân giả lập.")


@app.command("generate")
def generate_command(
    db: Path = typer.Option(Path("var/registry.db"), help="SQLite file of the registry sandbox."),
    count: int = typer.Option(1_000_000, min=0, help="How many synthetic citizens."),
    seed: int = typer.Option(DEFAULT_SEED, help="Random seed: same seed, same citizens."),
    force: bool = typer.Option(False, help="Regenerate even if the file already holds this generation."),
) -> None:
    """Fill the registry sandbox with synthetic citizens (plus the demo records)."""
    shown = [0]

    def progress(made: int) -> None:
        tenth = made * 10 // max(1, count)
        if tenth > shown[0]:
            shown[0] = tenth
            typer.echo(f"  {made:,} / {count:,}", err=True)

    report = generate(db, count, seed, force=force, progress=progress)
    verb = "already there" if report.skipped else f"generated in {report.seconds:.1f} s"
    typer.echo(f"{report.count:,} citizens (seed {report.seed}) {verb} → {db}")
    for line in sign_in_hints(db):
        typer.echo(line)


@app.command("demo")
def demo_command() -> None:
    """List the well-known demo citizens (always present in the sandbox)."""
    for c in DEMO_CITIZENS:
        typer.echo(f"{c.pin}  {c.full_name:<20} {c.date_of_birth}  {c.sex:<6}  {c.status:<8}  {c.phone or '-'}")
