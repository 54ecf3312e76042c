"""NIXA side by side with node-oidc-provider: `python -m bench.run [--backend ...] [--duration S] ...`

One run measures, one server after the other, each pinned to the same single core with the load
generator (asyncio + aiohttp, bench/load.py) pinned to another:
  1. the framework ceilings: a trivial Starlette app on uvicorn and a trivial Node HTTP server;
  2. the reference: panva's oidc-provider (bench/reference, installed from its lock file when
     missing), configured like the NIXA below: same clients and secrets, same citizens, ES256 JWT
     access tokens for client_credentials, introspection, UserInfo, a sign-in form;
  3. NIXA embedded (SQLite + in-process store) and/or scale-out (a throwaway PostgreSQL + Redis,
     pinned to the server's core and counted as server CPU): `nixa migrate`, the seed, `nixa serve`;
  4. on scale-out, two workers on two cores against one (the scaling factor), and the Redis
     memory of SSO sessions made through the real session repository.
Each metric runs `--repeats` trials of `--duration` seconds; a disturbed one (errors, or trials
further apart than `--tolerance`) runs again, at most `--retries` more times. Server CPU comes
from /proc (the server's process tree, plus PostgreSQL and Redis when used). It prints one
side-by-side table per NIXA backend and writes JSON to bench/results/.

Everything is bounded (per-trial deadline and request budget, request timeout, start-up timeouts)
and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from array import array
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench import nixa, report, servers
from bench.load import ENGINES, FLOW_STEPS, SCENARIOS, code_flow, make_engine, run_scenario
from bench.machine import argon2_cost, machine_info
from bench.measure import Cores, machine_busy, measure, pct, peak_rss_mb, per_cpu_second, pin_tree, plan_cores, summary, tree_cpu
from bench.profile import py_spy_path, start_profile, summarize_profile

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
EXTRAS = ("ceiling", "scaling", "sso-memory")


# ---- one trial -----------------------------------------------------------------------------------


@dataclass
class Target:
    """A server under load: its URL, the load generator's context, where its CPU is counted."""

    name: str
    url: str
    ctx: dict
    cpu_roots: list[int]  # the server's process, and PostgreSQL + Redis when used
    password_cpu_s: float = 0.0  # CPU of one sign-in's password check (subtracted for "password excluded")


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_trial(pool: ProcessPoolExecutor, args: argparse.Namespace, target: Target, scenario: str, duration: float) -> dict:
    conc = _split(args.concurrency, args.clients)
    budget = _split(args.max_requests, args.clients)
    specs, offset = [], 0
    for i in range(args.clients):
        if conc[i] == 0 or budget[i] == 0:
            continue
        specs.append({"scenario": scenario, "engine": args.engine, "base_url": target.url, "ctx": target.ctx, "duration": duration,
                      "max_requests": budget[i], "concurrency": conc[i], "timeout": args.timeout, "offset": offset})
        offset += conc[i]
    cpu_before = tree_cpu(target.cpu_roots)
    busy_before = machine_busy()
    wall0 = time.time()
    results = [f.result() for f in [pool.submit(run_scenario, s) for s in specs]]
    wall = time.time() - wall0
    server_cpu = tree_cpu(target.cpu_roots) - cpu_before
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
    window = max(r["started"] + r["elapsed"] for r in results) - min(r["started"] for r in results)
    latencies.sort()
    n = len(latencies)
    client_cpu = sum(r["cpu_seconds"] for r in results)
    out = {
        "scenario": scenario,
        "requests": n,
        "seconds": round(window, 3),
        "rate": round(n / window, 1) if window > 0 else 0.0,
        "p50_ms": round(pct(latencies, 0.50) * 1000, 2) if n else None,
        "p99_ms": round(pct(latencies, 0.99) * 1000, 2) if n else None,
        "errors": errors,
        "outcomes": dict(labels),
        "error_samples": samples[:3],
        "server_cpu_s": round(server_cpu, 3),
        "ops_per_cpu_s": _round(per_cpu_second(n, server_cpu)),
        "cpu_percent": {"server": round(100 * server_cpu / wall, 1) if wall else None,
                        "load": round(100 * client_cpu / wall, 1) if wall else None,
                        # Everything else on the machine (the bench parent, other users' jobs): a noisy neighbour shows here.
                        "other": round(100 * max(0.0, busy - server_cpu - client_cpu) / wall, 1) if wall else None},
    }
    if scenario == "code_flow":
        out["http_requests"] = n * 4
        if target.password_cpu_s:
            out["ops_per_cpu_s_excl_password"] = _round(per_cpu_second(n, server_cpu - n * target.password_cpu_s))
        out["steps"] = {k: {"p50_ms": _ms(pct(sorted(steps.get(k, [])), 0.5)), "p99_ms": _ms(pct(sorted(steps.get(k, [])), 0.99))}
                        for k in FLOW_STEPS}
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def run_metrics(pool: ProcessPoolExecutor, args: argparse.Namespace, target: Target, scenarios: list[str],
                server: servers.ServerProcess) -> dict[str, dict]:
    """Every scenario on one target, each measured by the disturbed-metric rule."""
    out = {}
    for scenario in scenarios:
        if args.warmup > 0:
            run_trial(pool, args, target, scenario, args.warmup)
        prof = None
        if args.profile:
            prof_out = RESULTS / f"profile-{args.started}-{target.name}-{scenario}.txt"
            prof = start_profile(server.pid, args.duration * args.repeats, prof_out)
        metric = measure(lambda: run_trial(pool, args, target, scenario, args.duration), args.repeats, args.tolerance, args.retries)
        r = summary(metric)
        if prof is not None:
            r["profile"] = summarize_profile(prof, prof_out)
        out[scenario] = r
        print(f"  {target.name:14} {report.LABELS.get(scenario, scenario):34} {r['rate']:>9.1f}/s  p50 {r['p50_ms']} ms  "
              f"p99 {r['p99_ms']} ms  {r['ops_per_cpu_s']} /CPU-s  errors {r['errors']}  trials {r['trial_rates']}"
              + ("" if r["settled"] else f"  DISTURBED: {r['disturbed']}"), flush=True)
        if not server.alive():
            raise RuntimeError(f"{server.name} died during {scenario}:\n{server.tail()}")
    return out


# ---- token preparation -----------------------------------------------------------------------------


def prepare_tokens(target: Target, engine: str, introspect_resource: str | None = None) -> None:
    """A client_credentials token for the benchmark API (introspected by the API; for the
    reference, an opaque one of its twin resource), and a user token from a real code flow."""
    ctx = target.ctx

    async def client_credentials(http: Any, resource: str) -> str:
        r = await http.request("POST", "/token", data={"grant_type": "client_credentials", "scope": ctx["service_scope"],
                                                       "resource": resource}, headers={"Authorization": ctx["service_basic"]})
        if r.status != 200:
            raise RuntimeError(f"{target.name}: client_credentials failed: HTTP {r.status} {r.text[:300]}")
        return r.json()["access_token"]

    async def go() -> None:
        http = make_engine(engine, target.url, 4, 30.0)
        try:
            ctx["service_access_token"] = await client_credentials(http, ctx["service_resource"])
            if introspect_resource:
                ctx["introspected_token"] = await client_credentials(http, introspect_resource)
            token = await code_flow(http, {**ctx, "base_url": target.url}, ctx["prepare_citizen"])
            ctx["user_access_token"] = token["access_token"]
            r = await http.request("GET", "/userinfo", headers={"Authorization": "Bearer " + token["access_token"]})
            if r.status != 200:
                raise RuntimeError(f"{target.name}: userinfo failed: HTTP {r.status} {r.text[:300]}")
        finally:
            await http.close()

    asyncio.run(go())


# ---- the servers, one after the other ----------------------------------------------------------------


def run_ceilings(pool: ProcessPoolExecutor, args: argparse.Namespace, cores: Cores, tmp: Path, with_node: bool) -> dict:
    out = {}
    makers = [("starlette", servers.starlette_ceiling)] + ([("node", servers.node_ceiling)] if with_node else [])
    for name, make in makers:
        port = servers.free_port()
        server = make(port, tmp / f"ceiling-{name}.log", cores.server)
        try:
            server.wait_ready()
            target = Target(f"ceiling-{name}", server.url, {}, [server.pid])
            out[name] = run_metrics(pool, args, target, ["discovery"], server)["discovery"]
        finally:
            server.stop()
    return out


def run_reference(pool: ProcessPoolExecutor, args: argparse.Namespace, cores: Cores, tmp: Path, population: nixa.Population) -> dict:
    print("\n== reference: oidc-provider ==", flush=True)
    version = servers.ensure_reference()
    port = servers.free_port()
    issuer = f"http://127.0.0.1:{port}"
    config = servers.reference_config(issuer, port, population.secrets, population.citizens, nixa.BENCH_API,
                                      nixa.BENCH_API_OPAQUE, nixa.BENCH_SCOPE)
    server = servers.reference_server(config, tmp, cores.server)
    try:
        server.wait_ready()
        print(f"  oidc-provider {version} on {server.url}, core(s) {sorted(cores.server)}", flush=True)
        target = Target("oidc-provider", server.url, population.load_context(), [server.pid])
        prepare_tokens(target, args.engine, introspect_resource=nixa.BENCH_API_OPAQUE)
        return {"version": version, "metrics": run_metrics(pool, args, target, args.scenario_list, server),
                "peak_rss_mb": peak_rss_mb(server.pid)}
    finally:
        server.stop()


def run_nixa(name: str, pool: ProcessPoolExecutor, args: argparse.Namespace, usable: set[int], tmp: Path, population: nixa.Population,
             password_cpu_s: float) -> dict:
    print(f"\n== NIXA {name} ==", flush=True)
    cores = plan_cores(usable, 1)
    (tmp / "var").mkdir(parents=True)
    master_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    port = servers.free_port()
    issuer = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"backend": name}
    with nixa.backend(name, tmp) as be:
        pin_tree(be.service_pids, cores.server)  # PostgreSQL and Redis work for the server: its core, its CPU
        env = nixa.server_env(be, tmp, issuer, master_key)
        t0 = time.monotonic()
        nixa.migrate(env)
        result["seed"] = nixa.seed(be, tmp, issuer, master_key, population)
        server = servers.nixa_server(env, port, 1, tmp / "server.log", cores.server)
        try:
            server.wait_ready()
            print(f"  nixa serve on {server.url}, 1 worker on core(s) {sorted(cores.server)}, ready in {time.monotonic() - t0:.1f}s "
                  f"(migrate + seed + start)", flush=True)
            target = Target(f"nixa-{name}", server.url, population.load_context(), [server.pid, *be.service_pids], password_cpu_s)
            if args.population:
                _add_persons(be, POPULATION_BASE)  # the main table is measured at this size
            prepare_tokens(target, args.engine)
            result["metrics"] = run_metrics(pool, args, target, args.scenario_list, server)
            result["peak_rss_mb"] = peak_rss_mb(server.pid)
            if args.population:
                result["population"] = _extra("population", lambda: run_population(pool, args, target, server, be, result["metrics"]))
        finally:
            server.stop()
        if name == "scaleout" and "scaling" in args.extras:
            result["scaling"] = _extra("scaling", lambda: run_scaling(pool, args, usable, env, tmp, be, population, result["metrics"]))
        if name == "scaleout" and "sso-memory" in args.extras and args.sso_sessions > 0:
            print(f"  Redis memory: {args.sso_sessions} SSO sessions through the session repository...", flush=True)
            result["sso_memory"] = _extra("sso-memory", lambda: nixa.sso_session_memory(be.redis_url, args.sso_sessions))
            print(f"  Redis memory: {result['sso_memory'].get('mb_per_100k')} MB per 100,000 SSO sessions", flush=True)
    return result


POPULATION_BASE = 1_000


def _add_persons(be: nixa.Backend, total: int) -> dict:
    """Synthetic Persons with their registry and operator links and attributes (admin/synthetic.py,
    COPY on PostgreSQL) until the database holds `total` of them."""
    from sqlalchemy import func, select

    from admin.synthetic import load_persons
    from idp.store.db import Database
    from idp.store.models import Person

    db = Database(be.database_url)
    try:
        with db.session() as s:
            have = s.scalar(select(func.count()).select_from(Person)) or 0
        if have >= total:
            return {"persons": have, "seconds": 0.0}
        t0 = time.monotonic()
        report = load_persons(db, total - have, seed=4242 + have)  # another seed per call: new IDs, not the same ones skipped
        loaded = round(time.monotonic() - t0, 1)
        if db.dialect == "postgresql":
            # Let PostgreSQL finish the work a bulk load leaves (the visibility map, the dirty
            # pages) before measuring, as a deployment would have long done: otherwise autovacuum
            # and the checkpointer run on the server's core during the metrics.
            raw = db.engine.raw_connection()
            try:
                raw.driver_connection.autocommit = True  # the DBAPI connection itself, not the pool's proxy
                cur = raw.cursor()
                for table in ("persons", "linked_identities", "person_attributes"):
                    cur.execute(f"VACUUM (ANALYZE) {table}")
                cur.execute("CHECKPOINT")
            finally:
                raw.close()
        return {"persons": have + report.persons, "links": report.links, "attributes": report.attributes, "seconds": loaded,
                "settled_seconds": round(time.monotonic() - t0 - loaded, 1)}
    finally:
        db.engine.dispose()


def run_population(pool: ProcessPoolExecutor, args: argparse.Namespace, target: Target, server: servers.ServerProcess,
                   be: nixa.Backend, at_base: dict[str, dict]) -> dict:
    """The same metrics again once the database holds `--population` Persons (the server idle
    while they are loaded), against the figures just measured at 1,000."""
    scenarios = [s for s in args.population_scenarios if s in at_base]
    print(f"  loading {args.population:,} synthetic Persons (links, attributes)...", flush=True)
    loaded = _add_persons(be, args.population)
    print(f"  {loaded['persons']:,} Persons in the database ({loaded['seconds']} s to load)", flush=True)
    at_size = run_metrics(pool, args, target, scenarios, server)
    return {"base": POPULATION_BASE, "size": loaded["persons"], "load": loaded,
            "scenarios": {s: {"at_base": {k: at_base[s].get(k) for k in ("rate", "p50_ms", "p99_ms")},
                              "at_size": {k: at_size[s].get(k) for k in ("rate", "p50_ms", "p99_ms")}} for s in scenarios}}


def _extra(name: str, run: Any) -> dict:
    """An extra measurement that fails is reported as failed; the side-by-side table still prints."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 (a server that would not start, a refused sign-in, Redis gone: said, not raised)
        print(f"  {name} failed: {exc}", flush=True)
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def run_scaling(pool: ProcessPoolExecutor, args: argparse.Namespace, usable: set[int], env: dict[str, str], tmp: Path,
                be: nixa.Backend, population: nixa.Population, one_worker: dict[str, dict]) -> dict:
    """Two workers on two cores against the one worker on one core just measured; and two
    workers on that one core, the load generator still on its own: whether a second worker adds
    work per operation (the shared store and database, the audit chain's lock), measured apart
    from the cores' sharing with the load generator, which the first figure cannot avoid on a
    two-core machine."""
    scenarios = [s for s in args.scaling_scenarios if s in one_worker]
    cores = plan_cores(usable, 2)
    if len(cores.server) < 2 or not scenarios:
        return {"skipped": "fewer than two usable cores" if len(cores.server) < 2 else "no scaling scenario was measured"}
    one_core = plan_cores(usable, 1)
    out: dict[str, Any] = {"cores": sorted(cores.server), "load_shares_cores": not cores.separated}
    runs = [("two_cores", cores)] + ([("one_core", one_core)] if one_core.separated and not cores.separated else [])
    measured: dict[str, dict[str, dict]] = {}
    for label, placed in runs:
        pin_tree(be.service_pids, placed.server)
        port = servers.free_port()
        env_2 = dict(env, NIXA_ISSUER=f"http://127.0.0.1:{port}")
        server = servers.nixa_server(env_2, port, 2, tmp / f"server-2-{label}.log", placed.server)
        try:
            server.wait_ready()
            note = "" if placed.separated else " (the load generator shares them: too few cores to keep it apart)"
            print(f"  nixa serve, 2 workers on cores {sorted(placed.server)}{note}", flush=True)
            target = Target(f"nixa-2-workers-{label}", server.url, population.load_context(), [server.pid, *be.service_pids])
            prepare_tokens(target, args.engine)
            measured[label] = run_metrics(pool, args, target, scenarios, server)
        finally:
            server.stop()
    pin_tree(be.service_pids, one_core.server)
    out["scenarios"] = {s: scaling_of(one_worker[s], measured["two_cores"][s], measured.get("one_core", {}).get(s)) for s in scenarios}
    if "one_core" in measured:
        out["one_core"] = sorted(one_core.server)
    return out


def scaling_of(one: dict, two: dict, two_on_one_core: dict | None = None) -> dict:
    """The throughput factor, and the work per operation of two workers against one (operations
    per server CPU-second, PostgreSQL and Redis included): near 1.0, running two adds no work
    (no lock, no cache or store contention between them), so two workers on two cores of their
    own give twice the throughput. That one can be measured where the factor cannot: when the
    load generator shares the two cores, the factor only says how the cores were split."""
    per_cpu = (one.get("ops_per_cpu_s"), two.get("ops_per_cpu_s"))
    return {"one_worker": one["rate"], "two_workers": two["rate"],
            "factor": round(two["rate"] / one["rate"], 2) if one["rate"] else None,
            "one_worker_per_cpu_s": per_cpu[0], "two_workers_per_cpu_s": per_cpu[1],
            "per_cpu_factor": round(per_cpu[1] / per_cpu[0], 2) if per_cpu[0] and per_cpu[1] else None,
            "two_workers_detail": two, **_on_one_core(one, two_on_one_core)}


def _on_one_core(one: dict, two: dict | None) -> dict:
    """Two workers on the one worker's core, the load generator apart: the same CPU, so their
    operations per CPU-second against one worker's say what a second worker costs; at 1.0, two
    workers on cores of their own would do twice the work of one (the target: 1.8x)."""
    if two is None:
        return {}
    factor = round(two["ops_per_cpu_s"] / one["ops_per_cpu_s"], 2) if one.get("ops_per_cpu_s") and two.get("ops_per_cpu_s") else None
    return {"one_core_two_workers": two["rate"], "one_core_two_workers_per_cpu_s": two.get("ops_per_cpu_s"),
            "one_core_per_cpu_factor": factor, "one_core_detail": two}


# ---- command line ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description="NIXA side by side with node-oidc-provider, on loopback.")
    p.add_argument("--backend", choices=["embedded", "scaleout", "both"], default="both",
                   help="NIXA's backend: embedded (SQLite + in-process store), scaleout (PostgreSQL + Redis), both (default)")
    p.add_argument("--no-reference", action="store_true", help="NIXA only: do not install or run oidc-provider")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per trial (default 3)")
    p.add_argument("--repeats", type=int, default=2, help="trials per metric that must agree (default 2)")
    p.add_argument("--tolerance", type=float, default=0.15, help="how far apart those trials may be, 0.15 = 15%% (default)")
    p.add_argument("--retries", type=int, default=2, help="extra trials for a disturbed metric, at most (default 2)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each metric (default 1)")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent requests (code flows) in flight (default 32)")
    p.add_argument("--clients", type=int, default=1, help="load-generator processes (default 1), all on the load core")
    p.add_argument("--engine", choices=sorted(ENGINES), default="aiohttp",
                   help="HTTP client of the load generator (default aiohttp: httpx costs the client ~10x more CPU per request)")
    p.add_argument("--max-requests", type=int, default=100_000, help="request budget per trial (default 100000)")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds (default 10)")
    p.add_argument("--citizens", type=int, default=0,
                   help="local accounts the code flows sign in as (default: one per concurrent flow, so no account "
                        "has several sign-ins in flight for the throttle to count)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--extras", default=",".join(EXTRAS),
                   help=f"comma-separated subset of {','.join(EXTRAS)} (default all; '' for none): the framework ceilings, "
                        "two workers on two cores (scale-out), Redis memory of SSO sessions (scale-out)")
    p.add_argument("--scaling-scenarios", default="client_credentials,userinfo", help="metrics of the scaling measurement")
    p.add_argument("--population", type=int, default=0,
                   help="also measure with this many synthetic Persons in NIXA's database (e.g. 1000000), against the "
                        "figures at 1,000; loading takes minutes per million (default 0: off)")
    p.add_argument("--population-scenarios", default="code_flow,client_credentials,introspection,userinfo",
                   help="metrics measured again at --population")
    p.add_argument("--sso-sessions", type=int, default=20_000,
                   help="SSO sessions made for the Redis memory figure, reported per 100,000 (default 20000; "
                        "100000 makes them all, about a minute on a quiet machine)")
    p.add_argument("--profile", action="store_true",
                   help="sample the servers with py-spy during each metric (pip install py-spy into the venv first); "
                        "collapsed stacks go to bench/results/, the top costs are printed")
    args = p.parse_args(argv)
    args.scenario_list = _names(p, args.scenarios, SCENARIOS, "scenario")
    args.extras = _names(p, args.extras, EXTRAS, "extra")
    args.scaling_scenarios = _names(p, args.scaling_scenarios, SCENARIOS, "scaling scenario")
    args.population_scenarios = _names(p, args.population_scenarios, SCENARIOS, "population scenario")
    if args.population and not POPULATION_BASE < args.population <= 20_000_000:
        p.error(f"--population in ({POPULATION_BASE:,}, 20,000,000]")
    if args.profile and not py_spy_path():
        p.error("--profile needs py-spy: .venv/bin/pip install py-spy")
    for name in ("duration", "timeout"):
        if not 0 < getattr(args, name) <= 600:
            p.error(f"--{name} must be in (0, 600]")
    if not 0 <= args.warmup <= 60 or not 0 < args.tolerance < 10:
        p.error("--warmup must be in [0, 60], --tolerance in (0, 10)")
    args.citizens = args.citizens or args.concurrency
    for name in ("concurrency", "clients", "max_requests", "citizens", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.concurrency > 1000 or args.clients > 16 or args.repeats > 5 or not 0 <= args.retries <= 5:
        p.error("--concurrency ≤ 1000, --clients ≤ 16, --repeats ≤ 5, --retries in [0, 5]")
    if not 0 <= args.sso_sessions <= 2_000_000:
        p.error("--sso-sessions in [0, 2000000]")
    args.clients = min(args.clients, args.concurrency)
    return args


def _names(p: argparse.ArgumentParser, raw: str, known: tuple[str, ...], what: str) -> list[str]:
    names = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = set(names) - set(known)
    if unknown:
        p.error(f"unknown {what}(s): {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    return names


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    # A SIGTERM (CI cancel) unwinds through the finally blocks: the servers and services stop.
    signal.signal(signal.SIGTERM, _interrupted)
    usable = os.sched_getaffinity(0)
    cores = plan_cores(usable, 1)
    # This process and its load generator live on the load core from here; each server is
    # pinned to the server core as it starts (bench/servers.py), PostgreSQL and Redis after.
    info = machine_info()
    os.sched_setaffinity(0, cores.load)
    cost = argon2_cost()
    print(f"NIXA side-by-side benchmark — {info['cpu_model']}, {info['cores']} cores, Python {info['python']}, "
          f"Node {info['node'] or '-'}, commit {info['commit'] or '?'}", flush=True)
    print(f"server core(s) {sorted(cores.server)}, load generator on {sorted(cores.load)}"
          + ("" if cores.separated else " — ONE usable core: server and load share it, figures are not comparable"), flush=True)
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: load average {load1:.2f} before the start: something else is using the CPU, expect disturbed figures",
              flush=True)
    started = time.strftime("%Y%m%d-%H%M%S")
    args.started = started
    RESULTS.mkdir(exist_ok=True)
    report_data: dict[str, Any] = {
        "started": started,
        "command": " ".join([Path(sys.executable).name, "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "args": {k: v for k, v in vars(args).items() if k not in ("scenario_list", "started")} | {"scenarios": args.scenario_list},
        "machine": info, "cores": {"server": sorted(cores.server), "load": sorted(cores.load)},
        "load_average_at_start": round(load1, 2), "argon2": cost, "backends": [],
    }
    population = nixa.Population.make(args.citizens)
    backends = ["embedded", "scaleout"] if args.backend == "both" else [args.backend]
    tmp = Path(tempfile.mkdtemp(prefix="nixa-bench-"))
    t0 = time.monotonic()
    try:
        with ProcessPoolExecutor(max_workers=args.clients, mp_context=get_context("spawn"), initializer=os.sched_setaffinity,
                                 initargs=(0, cores.load)) as pool:
            if "ceiling" in args.extras:
                print("\n== framework ceilings ==", flush=True)
                report_data["ceiling"] = run_ceilings(pool, args, cores, tmp, with_node=not args.no_reference)
            if not args.no_reference:
                report_data["reference"] = run_reference(pool, args, cores, tmp, population)
            for name in backends:
                report_data["backends"].append(run_nixa(name, pool, args, usable, tmp / name, population,
                                                        cost["verify_cpu_ms"] / 1000))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report_data["total_seconds"] = round(time.monotonic() - t0, 1)

    print()
    print(report.render(report_data))
    out = RESULTS / f"bench-{started}.json"
    out.write_text(json.dumps(report_data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nJSON: {out.relative_to(ROOT)}  (total {report_data['total_seconds']}s)")
    failed = sum(m["errors"] for b in report_data["backends"] for m in b.get("metrics", {}).values())
    failed += sum(m["errors"] for m in report_data.get("reference", {}).get("metrics", {}).values())
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nbench: interrupted; the servers and services it started are stopped", file=sys.stderr)
        sys.exit(130)
