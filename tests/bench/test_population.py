"""The benchmark at national size: Persons added until the database holds the size asked, and the
table that sets the figures at that size beside those at 1,000."""

from __future__ import annotations

from sqlalchemy import func, select

from bench import nixa as bench_nixa
from bench.report import render
from bench.run import _add_persons


def test_persons_are_added_until_the_database_holds_the_size_asked(tmp_path) -> None:  # noqa: ANN001
    from idp.store.db import Database, migrate
    from idp.store.models import LinkedIdentity, Person

    url = f"sqlite:///{(tmp_path / 'nixa.db').as_posix()}"
    migrate(url)
    be = bench_nixa.Backend("embedded", url, "")
    first = _add_persons(be, 300)
    second = _add_persons(be, 700)  # a second call adds new people, not the same ones again
    again = _add_persons(be, 500)  # already more: nothing added
    db = Database(url)
    with db.session() as s:
        persons = s.scalar(select(func.count()).select_from(Person))
        registry_links = s.scalar(select(func.count()).select_from(LinkedIdentity).where(LinkedIdentity.connector_id == "population"))
    db.engine.dispose()
    assert (first["persons"], second["persons"], again["persons"]) == (300, 700, 700)
    assert persons == 700 and registry_links == 700


def test_the_report_sets_the_figures_at_size_beside_those_at_1000() -> None:
    data = {"machine": {"cpu_model": "x", "cores": 2, "usable_cores": 2, "memory_mb": 1, "python": "3", "node": "", "commit": "c"},
            "cores": {"server": [0], "load": [1]}, "load_average_at_start": 0.1,
            "argon2": {"time_cost": 2, "memory_cost_kib": 19456, "parallelism": 1, "verify_cpu_ms": 30.0},
            "args": {"engine": "aiohttp", "concurrency": 4, "repeats": 2, "duration": 3, "warmup": 1, "retries": 2, "tolerance": 0.15},
            "backends": [{"backend": "scaleout", "metrics": {}, "population": {
                "base": 1000, "size": 1_000_000, "load": {"seconds": 200.0},
                "scenarios": {"userinfo": {"at_base": {"rate": 500.0, "p50_ms": 10.0, "p99_ms": 20.0},
                                           "at_size": {"rate": 480.0, "p50_ms": 11.0, "p99_ms": 25.0}}}}}]}
    text = render(data)
    assert "at 1,000,000 Persons against 1,000" in text
    row = next(line for line in text.splitlines() if line.startswith("| userinfo GET"))
    assert "500" in row and "480" in row and "10.0 / 20.0" in row and "11.0 / 25.0" in row
