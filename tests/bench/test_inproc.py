"""bench/inproc.py drives the real application through every hot path (a real code flow for the
citizen's token); each request must succeed, or its figures would be for an error page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_inproc_measures_every_hot_path_and_each_request_succeeds():
    r = subprocess.run([sys.executable, "-m", "bench.inproc", "--requests", "40", "--concurrency", "4"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:] if line.strip()}
    for path in ("discovery", "jwks", "client_credentials", "introspection", "userinfo"):
        assert path in rows and float(rows[path][1]) > 0, r.stdout
