"""A `nixa serve` worker (idp/asgi.py) freezes what it built at startup, so the cyclic garbage
collector's full collections no longer walk the ~200,000 objects that live as long as the worker.
Unfrozen, each was a pause of the event loop of 50-80 ms, several in a worker's first seconds
under load (make bench: the p99 of client_credentials on PostgreSQL + Redis measured first was
95 ms, 23 ms once frozen). The latency itself is the benchmark's to measure; this holds the cause."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path


def test_a_worker_freezes_its_startup_heap_so_full_collections_walk_little(tmp_path: Path) -> None:
    from idp.store.db import migrate

    database_url = f"sqlite:///{(tmp_path / 'nixa.db').as_posix()}"
    migrate(database_url)
    env = {**os.environ, "NIXA_DATABASE_URL": database_url, "NIXA_REDIS_URL": "", "NIXA_VAR_DIR": str(tmp_path),
           "NIXA_MASTER_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}
    env.pop("NIXA_MASTER_KEY_FILE", None)
    probe = ("import gc, idp.asgi\n"
             "frozen = gc.get_freeze_count()\n"
             "print(frozen, len(gc.get_objects()))\n")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    frozen, walked = out.stdout.split()
    assert int(frozen) > 100_000, out.stdout  # the application's modules and registries
    assert int(walked) < int(frozen) // 5, out.stdout  # what a full collection still walks
