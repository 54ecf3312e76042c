"""Fill a registry sandbox file with synthetic citizens, fast and reproducibly.

    python -m connectors.population.generate --db var/registry.db --count 1000000 [--seed 42]

Same seed and count → same file content. The demo records (demo_data.py) are written as well.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from connectors.population import registry_db
from connectors.population.synthetic import CitizenFactory

DEFAULT_SEED = 20240101
BATCH = 20_000


@dataclass(frozen=True)
class GenerationReport:
    count: int
    seed: int
    seconds: float
    skipped: bool = False  # the file already held exactly this generation


def generate(
    db_path: str | Path,
    count: int,
    seed: int = DEFAULT_SEED,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> GenerationReport:
    """Replace the generated citizens in `db_path` with `count` new ones (demo records kept)."""
    started = time.perf_counter()
    conn = registry_db.connect(db_path)
    try:
        registry_db.ensure_schema(conn)
        done = (registry_db.get_meta(conn, "generated_count"), registry_db.get_meta(conn, "generated_seed"))
        if not force and done == (str(count), str(seed)):
            registry_db.seed_demo(conn)
            return GenerationReport(count, seed, time.perf_counter() - started, skipped=True)
        # Bulk load without fsync: a crash mid-way just means "generate again".
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB of page cache for the B-tree
        with conn:
            conn.execute("DELETE FROM meta WHERE key LIKE 'generated_%'")
            conn.execute("DROP TABLE citizens")
        registry_db.ensure_schema(conn)
        factory = CitizenFactory(random.Random(seed))
        made = 0
        with conn:
            while made < count:
                n = min(BATCH, count - made)
                rows = [factory.row() for _ in range(n)]
                rows.sort()  # appending in key order keeps the WITHOUT ROWID B-tree dense and fast
                conn.executemany(registry_db.INSERT, rows)
                made += n
                if progress:
                    progress(made)
            registry_db.set_meta(conn, "generated_count", str(count))
            registry_db.set_meta(conn, "generated_seed", str(seed))
        registry_db.seed_demo(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return GenerationReport(count, seed, time.perf_counter() - started)
    finally:
        conn.close()


def sign_in_hints(db_path: str | Path, limit: int = 3, outbox: str = "http://127.0.0.1:8102/outbox") -> list[str]:
    """How to sign in as the first generated citizens (registry + SMS code), for the person who
    just generated them; the demo personas are in docs/personas.md."""
    conn = registry_db.connect(db_path)
    try:
        sample = registry_db.generated_sample(conn, limit)
    finally:
        conn.close()
    if not sample:
        return []
    lines = ["Sign in as one of them (method: population registry + SMS code; level substantial):"]
    lines += [f"  ID {c.pin}  name {c.full_name}  born {c.date_of_birth}  phone on record {c.phone}" for c in sample]
    lines += [f"  The code goes to the phone on record; in the demo it shows in the operator's SMS outbox, {outbox}",
              "  More people to sign in as, with every level and refusal: docs/personas.md (/sandbox/personas in the demo)."]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate synthetic citizens for the population registry sandbox")
    parser.add_argument("--db", required=True, help="SQLite file to (re)fill")
    parser.add_argument("--count", type=int, default=1_000_000, help="how many citizens (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (same seed, same data)")
    parser.add_argument("--force", action="store_true", help="regenerate even if the file already holds this generation")
    args = parser.parse_args(argv)
    shown = [0]

    def progress(made: int) -> None:
        tenth = made * 10 // max(1, args.count)
        if tenth > shown[0]:
            shown[0] = tenth
            print(f"  {made:,} / {args.count:,}", file=sys.stderr, flush=True)

    report = generate(args.db, args.count, args.seed, force=args.force, progress=progress)
    verb = "already generated" if report.skipped else "generated"
    print(f"{verb} {report.count:,} citizens (seed {report.seed}) in {report.seconds:.1f} s → {args.db}")
    print("\n".join(sign_in_hints(args.db)))


if __name__ == "__main__":
    main()
