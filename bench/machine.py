"""What the report says about the machine and the password check it is measured with."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for pkg in ("uvicorn", "fastapi", "starlette", "authlib", "joserfc", "sqlalchemy", "aiohttp", "argon2-cffi", "uvloop", "httptools"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    commit = node_version = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        if shutil.which("node"):
            node_version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "memory_mb": mem_mb,
            "python": platform.python_version(), "implementation": platform.python_implementation(), "node": node_version,
            "platform": platform.platform(), "packages": versions, "commit": commit}


def argon2_cost() -> dict:
    """What one local sign-in's password check costs the server: an argon2id verify at NIXA's
    settings, as CPU time (unaffected by a busy machine) and as wall time."""
    from idp.identity.people import password_hasher
    from idp.settings import Settings

    settings = Settings()
    hasher = password_hasher(settings.password_memory_kib, settings.password_time_cost, settings.password_parallelism)
    stored = hasher.hash("benchmark-password")
    cpu, wall = [], []
    for _ in range(5):
        c0, t0 = time.process_time(), time.perf_counter()
        hasher.verify(stored, "benchmark-password")
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return {"time_cost": hasher.time_cost, "memory_cost_kib": hasher.memory_cost, "parallelism": hasher.parallelism,
            "verify_cpu_ms": round(statistics.median(cpu) * 1000, 1), "verify_ms_median": round(statistics.median(wall) * 1000, 1)}
