"""NIXA load benchmark: `python -m bench.run [--backend embedded|scaleout|both] [--duration S] ...`

For each backend it:
  1. (scale-out) starts a throwaway PostgreSQL + Redis with scripts/services.sh;
  2. runs `nixa migrate`, seeds clients and citizens through the Python API (idp.app.Nixa on the
     same database), then starts `nixa serve` as a separate process on a free loopback port;
  3. pre-issues the tokens the scenarios need (a client_credentials token to introspect, a user
     access token from a real code flow for userinfo);
  4. runs each scenario for `--duration` seconds (and at most `--max-requests` requests) from
     `--clients` client processes (asyncio + httpx, bench/load.py), after a short warm-up;
  5. stops everything it started, prints one table per backend and writes JSON to bench/results/.

Everything is bounded (per-scenario deadline and request budget, request timeout, start-up
timeouts) and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

import httpx

from bench.load import ENGINES, FLOW_STEPS, SCENARIOS, basic_auth, code_flow, make_engine, run_scenario

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
START_TIMEOUT = 60.0  # seconds for the server to answer /health
STOP_TIMEOUT = 15.0
BENCH_API = "https://api.bench.example/v1"  # a resource identifier (RFC 8707), never contacted

LABELS = {
    "discovery": "discovery GET",
    "jwks": "JWKS GET",
    "client_credentials": "token POST (client_credentials)",
    "introspection": "introspection POST",
    "userinfo": "userinfo GET",
    "code_flow": "code flows (4 HTTP req each)",
}


# ---- machine -------------------------------------------------------------------------------------


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
    versions = {}
    for pkg in ("uvicorn", "fastapi", "starlette", "authlib", "joserfc", "sqlalchemy", "httpx", "argon2-cffi", "uvloop", "httptools"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = None
    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_mb": mem_mb,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
        "commit": commit,
    }


def argon2_cost() -> dict:
    """What one local sign-in costs on the server (the verify of an argon2id hash)."""
    from idp.identity.people import password_hasher
    from idp.settings import Settings

    settings = Settings()
    hasher = password_hasher(settings.password_memory_kib, settings.password_time_cost, settings.password_parallelism)
    stored = hasher.hash("benchmark-password")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        hasher.verify(stored, "benchmark-password")
        times.append(time.perf_counter() - t0)
    return {"time_cost": hasher.time_cost, "memory_cost_kib": hasher.memory_cost, "parallelism": hasher.parallelism,
            "verify_ms_median": round(statistics.median(times) * 1000, 1)}


# ---- CPU accounting from /proc ---------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid → (ppid, CPU seconds) for every process we can see."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        # fields[0] is state (field 3): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick)
    return out


def machine_busy() -> float:
    """CPU seconds all cores spent busy (not idle/iowait) so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by the processes under `roots` (themselves included). Reaped
    children count through cutime/cstime."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, seen, todo = 0.0, set(), [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total


def peak_rss_mb(root: int) -> float | None:
    """Largest peak resident size (VmHWM) among the server's processes, MB."""
    table = _proc_table()
    pids = [root] + [p for p, (pp, _) in table.items() if pp == root]
    peaks = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return round(max(peaks), 1) if peaks else None


# ---- the backends ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Backend:
    name: str
    database_url: str
    redis_url: str
    service_pids: list[int] = field(default_factory=list)  # PostgreSQL postmaster, Redis


@contextmanager
def backend(name: str, tmp: Path) -> Iterator[Backend]:
    if name == "embedded":
        yield Backend(name, f"sqlite:///{(tmp / 'var' / 'nixa.db').as_posix()}", "")
        return
    services = tmp / "services"
    print("  starting PostgreSQL + Redis (scripts/services.sh)...", flush=True)
    try:
        subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "start", str(services)], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)
        env = dict(line.split("=", 1) for line in (services / "env").read_text().split() if "=" in line)
        pids = []
        try:
            pgdata = Path((services / "pgdata").read_text().strip())
            pids.append(int((pgdata / "postmaster.pid").read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        try:
            pids.append(int((services / "redis.pid").read_text().strip()))
        except (OSError, ValueError):
            pass
        yield Backend(name, env["NIXA_TEST_DATABASE_URL"], env["NIXA_TEST_REDIS_URL"], pids)
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "stop", str(services)], timeout=120,
                       stdout=subprocess.DEVNULL)


def server_env(be: Backend, tmp: Path, issuer: str, master_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIXA_")}
    env.update(NIXA_ISSUER=issuer, NIXA_DATABASE_URL=be.database_url, NIXA_REDIS_URL=be.redis_url,
               NIXA_VAR_DIR=str(tmp / "var"), NIXA_MASTER_KEY=master_key)
    return env


def migrate(env: dict[str, str], tmp: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "admin.cli", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"nixa migrate failed:\n{r.stdout}\n{r.stderr}")


@dataclass
class Seed:
    ctx: dict
    summary: dict


def seed(be: Backend, tmp: Path, issuer: str, master_key: str, n_citizens: int) -> Seed:
    """Clients and citizens through the Python API, on the database the server will use."""
    from idp.app import Nixa
    from idp.settings import Settings

    settings = Settings(issuer=issuer, database_url=be.database_url, redis_url=be.redis_url, var_dir=tmp / "var",
                        master_key=master_key)
    nixa = Nixa(settings)
    redirect_uri = "http://127.0.0.1/bench/callback"  # never contacted: the benchmark reads the code off the Location header
    web_secret = secrets.token_urlsafe(32)
    nixa.clients.upsert({
        "client_id": "bench-web",
        "client_name": "Benchmark web app",
        "client_secret": web_secret,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile email",
        "nixa_first_party": True,  # no consent page: a flow is authorize → login → token
    })
    service_secret = secrets.token_urlsafe(32)
    nixa.clients.upsert({
        "client_id": "bench-service",
        "client_name": "Benchmark service",
        "client_secret": service_secret,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "bench.read",
    })
    # The API the service calls: its tokens are asked for with `resource` and it introspects
    # them with its own client (RFC 8707 / RFC 7662), the path an agency API takes.
    api_secret = secrets.token_urlsafe(32)
    nixa.clients.upsert({
        "client_id": "bench-api",
        "client_name": "Benchmark API (resource server)",
        "client_secret": api_secret,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "",
    })
    nixa.resources.upsert(BENCH_API, name="Benchmark API", scopes=["bench.read"], client_id="bench-api")
    citizens = []
    for i in range(n_citizens):
        username = f"bench{i}"
        password = secrets.token_urlsafe(12)
        nixa.people.add_local_account(username, password, {
            "name": f"Nguyễn Văn Thử {i}", "given_name": "Thử", "family_name": "Nguyễn", "email": f"{username}@example.vn",
            "preferred_username": username,
        })
        citizens.append({"username": username, "password": password})
    nixa.db.engine.dispose()
    ctx = {
        "web_client_id": "bench-web",
        "web_basic": basic_auth("bench-web", web_secret),
        "redirect_uri": redirect_uri,
        "service_basic": basic_auth("bench-service", service_secret),
        "service_scope": "bench.read",
        "service_resource": BENCH_API,
        "api_basic": basic_auth("bench-api", api_secret),
        "citizens": citizens,
    }
    return Seed(ctx, {"clients": ["bench-web (confidential, first party)", "bench-service (client_credentials)",
                                  f"bench-api (introspects the tokens for resource {BENCH_API})"],
                      "citizens": n_citizens})


class Server:
    """`nixa serve` in its own session (process group), so stopping it stops its workers too."""

    def __init__(self, env: dict[str, str], port: int, workers: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "admin.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            cwd=ROOT, env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=2.0, trust_env=False) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nixa serve exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    if c.get(self.url + "/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"nixa serve did not answer /health within {START_TIMEOUT:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        if not self._fh.closed:
            self._fh.flush()
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of its process group (uvicorn workers), by the group id we created.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=STOP_TIMEOUT)
        self._fh.close()


def prepare_tokens(base_url: str, ctx: dict, engine: str) -> None:
    """A client_credentials token for the benchmark API (which introspects it) and a user token
    from a real code flow (userinfo)."""
    import asyncio

    async def go() -> None:
        http = make_engine(engine, base_url, 4, 30.0)
        try:
            r = await http.request("POST", "/token", data={"grant_type": "client_credentials", "scope": ctx["service_scope"],
                                                           "resource": ctx["service_resource"]},
                                   headers={"Authorization": ctx["service_basic"]})
            if r.status != 200:
                raise RuntimeError(f"client_credentials failed: HTTP {r.status} {r.text[:300]}")
            ctx["service_access_token"] = r.json()["access_token"]
            token = await code_flow(http, ctx, ctx["citizens"][0])
            ctx["user_access_token"] = token["access_token"]
            r = await http.request("GET", "/userinfo", headers={"Authorization": "Bearer " + token["access_token"]})
            if r.status != 200:
                raise RuntimeError(f"userinfo failed: HTTP {r.status} {r.text[:300]}")
        finally:
            await http.close()

    asyncio.run(go())


# ---- running scenarios -------------------------------------------------------------------------------


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    import math

    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))  # nearest rank
    return sorted_values[k]


def run_one(pool: ProcessPoolExecutor, engine: str, n_clients: int, base_url: str, ctx: dict, scenario: str, duration: float,
            max_requests: int, concurrency: int, timeout: float, cpu_roots: dict[str, list[int]]) -> dict:
    conc = _split(concurrency, n_clients)
    budget = _split(max_requests, n_clients)
    specs = []
    offset = 0
    for i in range(n_clients):
        if conc[i] == 0 or budget[i] == 0:
            continue
        specs.append({"scenario": scenario, "engine": engine, "base_url": base_url, "ctx": ctx, "duration": duration, "max_requests": budget[i],
                      "concurrency": conc[i], "timeout": timeout, "offset": offset})
        offset += conc[i]
    cpu_before = {k: tree_cpu(v) for k, v in cpu_roots.items()}
    busy_before = machine_busy()
    wall0 = time.time()
    results = [f.result() for f in [pool.submit(run_scenario, s) for s in specs]]
    wall = time.time() - wall0
    cpu = {k: tree_cpu(v) - cpu_before[k] for k, v in cpu_roots.items()}
    busy = machine_busy() - busy_before

    latencies: list[float] = []
    steps: dict[str, list[float]] = {}
    labels: Counter[str] = Counter()
    samples: list[str] = []
    errors = 0
    for r in results:
        a = array("d")
        a.frombytes(r["latencies"])
        latencies.extend(a)
        for k, raw in r["steps"].items():
            b = array("d")
            b.frombytes(raw)
            steps.setdefault(k, []).extend(b)
        labels.update(r["labels"])
        samples.extend(r["samples"])
        errors += r["errors"]
    # The measured window: first client start to last client end.
    window = max(r["started"] + r["elapsed"] for r in results) - min(r["started"] for r in results)
    latencies.sort()
    n = len(latencies)
    client_cpu = sum(r["cpu_seconds"] for r in results)
    out = {
        "scenario": scenario,
        "label": LABELS[scenario],
        "requests": n,
        "seconds": round(window, 3),
        "rate": round(n / window, 1) if window > 0 else 0.0,
        "p50_ms": round(pct(latencies, 0.50) * 1000, 2) if n else None,
        "p99_ms": round(pct(latencies, 0.99) * 1000, 2) if n else None,
        "max_ms": round(latencies[-1] * 1000, 2) if n else None,
        "errors": errors,
        "outcomes": dict(labels),
        "error_samples": samples[:5],
        "cpu_percent": {"server": round(100 * cpu["server"] / wall, 1) if wall else None,
                        **({"services": round(100 * cpu["services"] / wall, 1)} if "services" in cpu and wall else {}),
                        "clients": round(100 * client_cpu / wall, 1) if wall else None,
                        # Everything else on the machine (the bench parent, other users' jobs): a noisy neighbour shows here.
                        "other": round(100 * max(0.0, busy - sum(cpu.values()) - client_cpu) / wall, 1) if wall else None},
        "wall_seconds": round(wall, 2),
    }
    if scenario == "code_flow":
        out["http_requests"] = n * 4
        out["steps"] = {}
        for k in FLOW_STEPS:
            v = sorted(steps.get(k, []))
            out["steps"][k] = {"count": len(v), "p50_ms": round(pct(v, 0.5) * 1000, 2) if v else None,
                               "p99_ms": round(pct(v, 0.99) * 1000, 2) if v else None}
    return out


def run_backend(name: str, args: argparse.Namespace, pool: ProcessPoolExecutor, scenarios: list[str]) -> dict:
    print(f"\n== backend: {name} ==", flush=True)
    workers = args.workers
    note = None
    if name == "embedded" and workers > 1:
        # The embedded store is in-process: a sign-in started in one worker is unknown to the next.
        note = f"embedded backend runs 1 worker (asked {workers}): its ephemeral store is per process"
        print(f"  note: {note}", flush=True)
        workers = 1
    tmp = Path(tempfile.mkdtemp(prefix=f"nixa-bench-{name}-"))
    try:
        return _run_backend(name, args, pool, scenarios, tmp, workers, note)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _run_backend(name: str, args: argparse.Namespace, pool: ProcessPoolExecutor, scenarios: list[str], tmp: Path, workers: int,
                 note: str | None) -> dict:
    (tmp / "var").mkdir()
    master_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"backend": name, "workers": workers, "note": note, "scenarios": []}
    with backend(name, tmp) as be:
        env = server_env(be, tmp, issuer, master_key)
        t0 = time.monotonic()
        migrate(env, tmp)
        s = seed(be, tmp, issuer, master_key, args.citizens)
        result["seed"] = s.summary
        server = Server(env, port, workers, tmp / "server.log")
        try:
            server.wait_ready()
            print(f"  nixa serve on {server.url}, {workers} worker(s), ready in {time.monotonic() - t0:.1f}s "
                  f"(migrate + seed + start)", flush=True)
            prepare_tokens(server.url, s.ctx, args.engine)
            cpu_roots = {"server": [server.proc.pid]}
            if be.service_pids:
                cpu_roots["services"] = be.service_pids
            for scenario in scenarios:
                if args.warmup > 0:
                    run_one(pool, args.engine, args.clients, server.url, s.ctx, scenario, args.warmup, args.max_requests, args.concurrency,
                            args.timeout, cpu_roots)
                prof = None
                if args.profile:
                    prof_out = RESULTS / f"profile-{args.started}-{name}-{scenario}.txt"
                    prof = start_profile(server.proc.pid, args.duration, prof_out)
                r = run_one(pool, args.engine, args.clients, server.url, s.ctx, scenario, args.duration, args.max_requests, args.concurrency,
                            args.timeout, cpu_roots)
                if prof is not None:
                    r["profile"] = summarize_profile(prof, prof_out)
                result["scenarios"].append(r)
                print(f"  {r['label']:32} {r['requests']:>8} req  {r['rate']:>8.1f}/s  p50 {r['p50_ms']} ms  "
                      f"p99 {r['p99_ms']} ms  errors {r['errors']}", flush=True)
                if server.proc.poll() is not None:
                    raise RuntimeError(f"nixa serve died during {scenario}:\n{server.tail()}")
            result["server_peak_rss_mb"] = peak_rss_mb(server.proc.pid)
        finally:
            server.stop()
            log_tail = server.tail(20)
            if log_tail.strip():
                result["server_log_tail"] = log_tail
    return result


# ---- optional profile of the server (py-spy) ------------------------------------------------------------


def py_spy_path() -> str | None:
    import shutil

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


# ---- output ----------------------------------------------------------------------------------------


def table(result: dict) -> str:
    head = ["scenario", "requests", "req/s", "p50 ms", "p99 ms", "errors", "CPU% srv", "CPU% db+redis", "CPU% client", "CPU% other"]
    rows = []
    for r in result["scenarios"]:
        cpu = r["cpu_percent"]
        rows.append([r["label"], str(r["requests"]), f"{r['rate']:.1f}", _ms(r["p50_ms"]), _ms(r["p99_ms"]), str(r["errors"]),
                     _pc(cpu.get("server")), _pc(cpu.get("services")), _pc(cpu.get("clients")),
                     _pc(cpu.get("other"))])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head)),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
    for r in result["scenarios"]:
        if r.get("steps"):
            parts = ", ".join(f"{k} p50 {_ms(v['p50_ms'])} / p99 {_ms(v['p99_ms'])} ms" for k, v in r["steps"].items())
            lines.append(f"code flow steps: {parts}")
        if r["errors"]:
            lines.append(f"{r['scenario']} outcomes: {r['outcomes']}")
            for sample in r["error_samples"][:2]:
                lines.append(f"    e.g. {sample[:200]}")
    return "\n".join(lines)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _pc(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description="Load benchmark of NIXA on loopback.")
    p.add_argument("--backend", choices=["embedded", "scaleout", "both"], default="both",
                   help="embedded: SQLite + in-process store; scaleout: PostgreSQL + Redis (default: both)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario (default 10)")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent requests (code flows) in flight (default 32)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1; embedded always runs 1)")
    p.add_argument("--clients", type=int, default=1,
                   help="load-generator processes (default 1; the concurrency is split among them)")
    p.add_argument("--engine", choices=sorted(ENGINES), default="aiohttp",
                   help="HTTP client of the load generator (default aiohttp: httpx costs the client ~10x more CPU per request)")
    p.add_argument("--max-requests", type=int, default=100_000, help="request budget per scenario (default 100000)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each scenario (default 1)")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds (default 10)")
    p.add_argument("--citizens", type=int, default=4, help="local accounts the code flows sign in as (default 4)")
    p.add_argument("--profile", action="store_true",
                   help="sample the server with py-spy during each scenario (pip install py-spy into the venv first); "
                        "collapsed stacks go to bench/results/, the top costs are printed")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    args = p.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    args.scenario_list = scenarios
    if args.profile and not py_spy_path():
        p.error("--profile needs py-spy: .venv/bin/pip install py-spy")
    for name in ("duration", "timeout"):
        if getattr(args, name) <= 0 or getattr(args, name) > 600:
            p.error(f"--{name} must be in (0, 600]")
    for name in ("concurrency", "workers", "clients", "max_requests", "citizens"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.concurrency > 1000 or args.workers > 32 or args.clients > 16:
        p.error("--concurrency ≤ 1000, --workers ≤ 32, --clients ≤ 16")
    if args.clients > args.concurrency:
        args.clients = args.concurrency
    return args


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    # A SIGTERM (CI cancel) unwinds through the finally blocks: the server and services stop.
    signal.signal(signal.SIGTERM, _interrupted)
    info = machine_info()
    cost = argon2_cost()
    print(f"NIXA benchmark — {info['cpu_model']}, {info['cores']} cores, Python {info['python']}, "
          f"commit {info['commit'] or '?'}", flush=True)
    print(f"client and server share this machine's {info['usable_cores']} cores; argon2id verify (one sign-in): "
          f"{cost['verify_ms_median']} ms (t={cost['time_cost']}, m={cost['memory_cost_kib']} KiB, p={cost['parallelism']})",
          flush=True)
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: load average {load1:.2f} before the start: something else is using the CPU, expect noisy numbers "
              f"(column 'CPU% other')", flush=True)
    backends = ["embedded", "scaleout"] if args.backend == "both" else [args.backend]
    started = time.strftime("%Y%m%d-%H%M%S")
    args.started = started
    RESULTS.mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "started": started,
        "command": " ".join([Path(sys.executable).name, "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "args": {k: v for k, v in vars(args).items() if k not in ("scenario_list", "started")} | {"scenarios": args.scenario_list},
        "machine": info,
        "load_average_at_start": round(load1, 2),
        "argon2": cost,
        "backends": [],
    }
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.clients, mp_context=get_context("spawn")) as pool:
        for name in backends:
            report["backends"].append(run_backend(name, args, pool, args.scenario_list))
    report["total_seconds"] = round(time.monotonic() - t0, 1)

    print()
    print(f"Machine: {info['cpu_model']}, {info['cores']} cores ({info['usable_cores']} usable), {info['memory_mb']} MB, "
          f"Python {info['python']} ({info['implementation']}), {info['platform']}")
    print(f"Run: {args.duration:g}s per scenario (+{args.warmup:g}s warm-up), concurrency {args.concurrency}, "
          f"{args.clients} {args.engine} client process(es), request budget {args.max_requests}/scenario; client and server share the CPU")
    print(f"Sign-in cost: argon2id verify {cost['verify_ms_median']} ms per login (t={cost['time_cost']}, "
          f"m={cost['memory_cost_kib']} KiB, p={cost['parallelism']})")
    for b in report["backends"]:
        print(f"\n[{b['backend']}] {b['workers']} uvicorn worker(s), server peak RSS {b.get('server_peak_rss_mb')} MB"
              + (f" — {b['note']}" if b.get("note") else ""))
        print(table(b))
        for r in b["scenarios"]:
            prof = r.get("profile")
            if prof and "self_top" in prof:
                print(f"  profile {r['scenario']} ({prof['samples']} busy-thread samples, % of those; bench/results/{prof['file']}):")
                print("    self: " + "; ".join(f"{f} {p}%" for f, p in prof["self_top"][:8]))
                print("    NIXA inclusive: " + "; ".join(f"{f} {p}%" for f, p in prof["nixa_inclusive_top"][:8]))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{started}.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nJSON: {out.relative_to(ROOT)}  (total {report['total_seconds']}s)")
    failed = sum(r["errors"] for b in report["backends"] for r in b["scenarios"])
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nbench: interrupted; the server and services it started are stopped", file=sys.stderr)
        sys.exit(130)
