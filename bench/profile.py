"""Optional profile of a server under load (`python -m bench.run --profile`): py-spy samples the
process and its workers while a metric runs; the busiest frames are summarized."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def py_spy_path() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """Sample the server (and its workers) while a scenario runs; idle threads are left out."""
    return subprocess.Popen([py_spy_path(), "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", "250",
                             "--duration", str(max(1, int(seconds))), "--format", "raw", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarize_profile(proc: subprocess.Popen, out: Path, top: int = 12) -> dict:
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if not out.exists():
        return {"error": (err or b"").decode(errors="replace")[-500:]}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in out.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        # Idle: a threadpool worker waiting for work, the event loop inside uvloop (native, epoll).
        if frames and (frames[-1].startswith("Runner.run (asyncio/") or
                       (len(frames) > 1 and frames[-1].startswith("Condition.wait (") and frames[-2].startswith("Queue.get ("))):
            idle += n
            continue
        total += n
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            if f.split("(")[-1].startswith(("idp/", "keys/", "connectors/")):
                inclusive[f] += n
    pc = lambda n: round(100 * n / total, 1) if total else 0.0  # noqa: E731
    return {"samples": total, "idle_samples": idle, "file": out.name,
            "self_top": [[f, pc(n)] for f, n in own.most_common(top)],
            "nixa_inclusive_top": [[f, pc(n)] for f, n in inclusive.most_common(top)]}


def _frame(raw: str) -> str:
    """'sign (keys/ring.py:250)' → 'sign (keys/ring.py)', with paths shortened to the package."""
    name, _, where = raw.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/site-packages/", f"{ROOT.as_posix()}/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"
