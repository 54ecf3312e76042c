"""`nixa synthetic persons`: fill a deployment's database with Persons the way sign-ins would
have made them, to measure and test NIXA at the size of a country.

The Persons are the first N citizens the registry sandbox generates from the same seed
(connectors/population/synthetic.py), so a registry sign-in of one of them finds its existing
Person and link, as it would in production after years of use. Each Person gets:
- its national ID and the registry's attributes (name, birth date, sex, phone on record);
- a link to the registry connector (subject: the ID, proven by the registry's code, substantial);
- for those with a phone on record, a link to the operator connector (subject: the number),
  as an operator sign-in after proofing makes it.
Only the sandbox's synthetic data: no real person is involved.

PostgreSQL is loaded with COPY (about a minute per million Persons here); SQLite with batched
INSERTs. Existing rows are never touched: Persons already holding one of the IDs are skipped,
so the command can be re-run after an interruption.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import typer
from sqlalchemy import select

from connectors.population.synthetic import CitizenFactory
from connectors.telecom.phone import InvalidPhoneNumber, normalize_msisdn

app = typer.Typer(help="Synthetic data at national scale (benchmarks, capacity tests)", no_args_is_help=True)

BATCH = 20_000
DEFAULT_SEED = 42
LOA_SUBSTANTIAL = 2


@dataclass(frozen=True)
class LoadReport:
    persons: int
    links: int
    attributes: int
    skipped: int
    seconds: float


def _rows(count: int, seed: int, registry: str, operator: str | None, at: float) -> Iterator[tuple[list, list, list]]:
    """Batches of (persons, links, attributes) rows in column order."""
    factory = CitizenFactory(random.Random(seed))
    ids = random.Random(seed ^ 0x5EED)
    made = 0
    numbers: set[str] = set()  # one SIM, one owner: a number drawn twice is linked to the first only
    while made < count:
        persons, links, attributes = [], [], []
        for _ in range(min(BATCH, count - made)):
            pin, family, middle, given, full, born, sex, _res, _prov, phone, status, _ = factory.row()
            pid = f"{ids.getrandbits(128):032x}"
            persons.append((pid, pin, status, at, at))
            links.append((f"{ids.getrandbits(128):032x}", pid, registry, pin, LOA_SUBSTANTIAL, "{}", at, at, registry,
                          LOA_SUBSTANTIAL, None))
            values = {"name": full, "family_name": family, "given_name": f"{middle} {given}", "birthdate": born, "gender": sex}
            msisdn = None
            if phone:
                try:
                    msisdn = normalize_msisdn(phone)
                except InvalidPhoneNumber:
                    msisdn = None
            if msisdn:
                values["phone_number"] = msisdn
                if operator and msisdn not in numbers:
                    numbers.add(msisdn)
                    links.append((f"{ids.getrandbits(128):032x}", pid, operator, msisdn, LOA_SUBSTANTIAL, "{}", at, at, registry,
                                  LOA_SUBSTANTIAL, None))
            attributes.extend((pid, name, json.dumps(value, ensure_ascii=False), registry, at) for name, value in values.items())
        made += len(persons)
        yield persons, links, attributes


PERSON_COLUMNS = ("id", "national_id", "status", "created_at", "updated_at")
LINK_COLUMNS = ("id", "person_id", "connector_id", "subject", "loa", "connector_data", "created_at", "last_used_at",
                "proof_method", "proof_loa", "linked_from")
ATTRIBUTE_COLUMNS = ("person_id", "name", "value", "source", "verified_at")


def load_persons(db, count: int, *, seed: int = DEFAULT_SEED, registry: str = "population", operator: str | None = "operator",  # noqa: ANN001
                 progress: Callable[[int], None] | None = None) -> LoadReport:
    """Add `count` synthetic Persons with their links and attributes to NIXA's database."""
    from idp.store.models import LinkedIdentity, Person

    started = time.perf_counter()
    at = time.time()
    totals = [0, 0, 0, 0]
    postgres = db.engine.dialect.name == "postgresql"
    for persons, links, attributes in _rows(count, seed, registry, operator, at):
        with db.session() as s:
            known = set(s.scalars(select(Person.national_id).where(Person.national_id.in_([p[1] for p in persons]))))
            taken = set(s.scalars(select(LinkedIdentity.subject).where(
                LinkedIdentity.connector_id == operator, LinkedIdentity.subject.in_([li[3] for li in links if li[2] == operator]))))
        if taken:
            links = [li for li in links if not (li[2] == operator and li[3] in taken)]
        if known:
            kept = {p[0] for p in persons if p[1] not in known}
            totals[3] += len(persons) - len(kept)
            persons = [p for p in persons if p[0] in kept]
            links = [link for link in links if link[1] in kept]
            attributes = [a for a in attributes if a[0] in kept]
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            if postgres:
                for table, columns, rows in (("persons", PERSON_COLUMNS, persons), ("linked_identities", LINK_COLUMNS, links),
                                             ("person_attributes", ATTRIBUTE_COLUMNS, attributes)):
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            else:
                for table, columns, rows in (("persons", PERSON_COLUMNS, persons), ("linked_identities", LINK_COLUMNS, links),
                                             ("person_attributes", ATTRIBUTE_COLUMNS, attributes)):
                    marks = ", ".join("?" for _ in columns)
                    cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            raw.commit()
        finally:
            raw.close()
        totals[0] += len(persons)
        totals[1] += len(links)
        totals[2] += len(attributes)
        if progress:
            progress(totals[0] + totals[3])
    if postgres:
        raw = db.engine.raw_connection()
        try:
            raw.driver_connection.autocommit = True  # the DBAPI connection itself: ANALYZE outside a transaction that is rolled back
            cur = raw.cursor()
            for table in ("persons", "linked_identities", "person_attributes"):
                cur.execute(f"ANALYZE {table}")  # the planner sees the new size at once
        finally:
            raw.close()
    return LoadReport(totals[0], totals[1], totals[2], totals[3], time.perf_counter() - started)


@app.command("persons")
def persons_command(
    count: int = typer.Option(1_000_000, min=1, help="How many Persons to add."),
    seed: int = typer.Option(DEFAULT_SEED, help="The registry sandbox's seed: the Persons are its first citizens."),
    registry: str = typer.Option("population", help="The registry connector's id (the links' connector)."),
    operator: str = typer.Option("operator", help="The operator connector's id; '' for no operator links."),
) -> None:
    """Add synthetic Persons, linked as registry and operator sign-ins would have linked them."""
    from admin.cli import _nixa

    nixa = _nixa()
    shown = [0]

    def progress(done: int) -> None:
        tenth = done * 10 // count
        if tenth > shown[0]:
            shown[0] = tenth
            typer.echo(f"  {done:,} / {count:,}", err=True)

    report = load_persons(nixa.db, count, seed=seed, registry=registry, operator=operator or None, progress=progress)
    typer.echo(f"{report.persons:,} Persons, {report.links:,} links, {report.attributes:,} attributes added in "
               f"{report.seconds:.1f} s ({report.skipped:,} already there)")
