"""The printed report of bench.run: one side-by-side table per NIXA backend (Markdown, so it can be
pasted into the README as it is), then the scaling factor and the SSO sessions' Redis memory."""

from __future__ import annotations

from bench.measure import ratio

LABELS = {
    "discovery": "discovery GET",
    "jwks": "JWKS GET",
    "client_credentials": "token POST (client_credentials, ES256 JWT)",
    "introspection": "introspection POST",
    "userinfo": "userinfo GET",
    "code_flow": "code flows (login form included)",
}
HEAD = ["metric", "reference ops/s", "p50 / p99 ms", "ops/CPU-s", "% ceiling",
        "NIXA ops/s", "p50 / p99 ms", "ops/CPU-s", "% ceiling", "ratio ops/s", "ratio ops/CPU-s", "note"]


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _pc(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f} %"


def _note(side: str, m: dict | None) -> list[str]:
    if not m:
        return []
    notes = []
    if not m.get("settled", True):
        notes.append(f"{side} disturbed: {m.get('disturbed')}")
    elif m.get("errors"):
        notes.append(f"{side}: {m['errors']} errors")
    return notes


def rows(reference: dict[str, dict], ours: dict[str, dict], ceiling: dict[str, dict]) -> list[list[str]]:
    """The table's rows: the framework ceiling, each metric, and code flows with NIXA's password
    check taken out of its CPU."""
    node_ceiling = (ceiling.get("node") or {}).get("rate")
    starlette_ceiling = (ceiling.get("starlette") or {}).get("rate")
    out = []
    if ceiling:
        node, star = ceiling.get("node"), ceiling.get("starlette")
        out.append(_row("framework ceiling (trivial GET: Node, Starlette)", node, star, None, None))
    for scenario, label in LABELS.items():
        ref, nix = reference.get(scenario), ours.get(scenario)
        if ref is None and nix is None:
            continue
        out.append(_row(label, ref, nix, node_ceiling, starlette_ceiling))
    flows = ours.get("code_flow")
    if flows and flows.get("ops_per_cpu_s_excl_password") is not None:
        ref = reference.get("code_flow") or {}
        excl = flows["ops_per_cpu_s_excl_password"]
        out.append(["code flows, NIXA's password check excluded", "", "", _num(ref.get("ops_per_cpu_s")), "", "", "",
                    _num(excl), "", "", _x(ratio(excl, ref.get("ops_per_cpu_s"))), "argon2id verify CPU subtracted"])
    return out


def _row(label: str, ref: dict | None, nix: dict | None, ref_ceiling: float | None, our_ceiling: float | None) -> list[str]:
    ref, nix = ref or {}, nix or {}
    lat = lambda m: f"{_ms(m.get('p50_ms'))} / {_ms(m.get('p99_ms'))}" if m else "-"  # noqa: E731
    return [label,
            _num(ref.get("rate")), lat(ref), _num(ref.get("ops_per_cpu_s")), _pc(ratio(ref.get("rate"), ref_ceiling)),
            _num(nix.get("rate")), lat(nix), _num(nix.get("ops_per_cpu_s")), _pc(ratio(nix.get("rate"), our_ceiling)),
            _x(ratio(nix.get("rate"), ref.get("rate"))), _x(ratio(nix.get("ops_per_cpu_s"), ref.get("ops_per_cpu_s"))),
            "; ".join(_note("reference", ref) + _note("NIXA", nix))]


def markdown(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)) + " |"  # noqa: E731
    sep = "| " + " | ".join("-" * w if i == 0 else "-" * (w - 1) + ":" for i, w in enumerate(widths)) + " |"
    return "\n".join([fmt(head), sep, *(fmt(r) for r in body)])


def render(data: dict) -> str:
    info, cores, cost = data["machine"], data["cores"], data["argon2"]
    args = data["args"]
    reference = data.get("reference") or {}
    lines = [
        f"Machine: {info['cpu_model']}, {info['cores']} cores ({info['usable_cores']} usable), {info['memory_mb']} MB, "
        f"Python {info['python']}, Node {info.get('node') or '-'}, commit {info.get('commit') or '?'}; "
        f"load average {data['load_average_at_start']} at the start",
        f"Each server alone on core(s) {cores['server']}, the load generator ({args['engine']}, concurrency {args['concurrency']}) "
        f"on {cores['load']}; {args['repeats']} trials of {args['duration']:g} s per metric (+{args['warmup']:g} s warm-up), "
        f"up to {args['retries']} more when disturbed (errors, or trials more than {args['tolerance']:.0%} apart); "
        f"ops/CPU-s: operations per CPU-second of the server (PostgreSQL and Redis included when used), from /proc",
        f"Password check (NIXA's local sign-in): argon2id t={cost['time_cost']}, m={cost['memory_cost_kib']} KiB, "
        f"p={cost['parallelism']}: {cost['verify_cpu_ms']} ms of CPU per verify; the reference compares SHA-256 digests",
    ]
    if reference:
        lines.append(f"Reference: oidc-provider {reference.get('version')} (its introspection figure is for an opaque token: "
                     "it refuses to introspect its JWT access tokens)")
    ceiling = data.get("ceiling") or {}
    for b in data["backends"]:
        title = {"embedded": "NIXA embedded (SQLite + in-process store)", "scaleout": "NIXA scale-out (PostgreSQL + Redis)"}[b["backend"]]
        lines += ["", f"### {title}, 1 worker, against oidc-provider {reference.get('version', '(not run)')}", ""]
        lines.append(markdown(HEAD, rows(reference.get("metrics", {}), b.get("metrics", {}), ceiling)))
        flows = b.get("metrics", {}).get("code_flow")
        if flows and flows.get("steps"):
            lines.append("NIXA code flow steps: " + ", ".join(f"{k} p50 {_ms(v['p50_ms'])} / p99 {_ms(v['p99_ms'])} ms"
                                                              for k, v in flows["steps"].items()))
        for side, metrics in (("reference", reference.get("metrics", {})), ("NIXA", b.get("metrics", {}))):
            for m in metrics.values():
                for sample in m.get("error_samples", [])[:1]:
                    lines.append(f"{side} {m['scenario']} error, e.g. {sample[:200]}")
        scaling = b.get("scaling")
        if scaling:
            lines.append("")
            if "skipped" in scaling or "error" in scaling:
                lines.append(f"Scaling: {'skipped (' + scaling['skipped'] + ')' if 'skipped' in scaling else 'failed: ' + scaling['error']}")
            for s, v in scaling.get("scenarios", {}).items():
                shared = " (the load generator shared those cores)" if scaling["load_shares_cores"] else ""
                lines.append(f"Scaling, {LABELS[s]}: 1 worker on 1 core {_num(v['one_worker'])}/s, 2 workers on cores "
                             f"{scaling['cores']} {_num(v['two_workers'])}/s: {_x(v['factor'])}x{shared}"
                             + (f"; operations per server CPU-second {_num(v['one_worker_per_cpu_s'])} with one worker, "
                                f"{_num(v['two_workers_per_cpu_s'])} with two: {_x(v['per_cpu_factor'])}x "
                                "(1.0: running two adds no work per operation)"
                                if v.get("per_cpu_factor") is not None else ""))
                if v.get("one_core_per_cpu_factor") is not None:
                    lines.append(f"Scaling, {LABELS[s]}: 2 workers on core(s) {scaling['one_core']}, the load generator apart: "
                                 f"{_num(v['one_core_two_workers'])}/s, {_num(v['one_core_two_workers_per_cpu_s'])} operations per "
                                 f"server CPU-second: {_x(v['one_core_per_cpu_factor'])}x one worker's (1.0: a second worker adds "
                                 f"no work, and two on cores of their own would do {_x(2 * v['one_core_per_cpu_factor'])}x)")
        grown = b.get("population")
        if grown and "error" in grown:
            lines.append(f"At scale: failed: {grown['error']}")
        elif grown:
            lines += ["", f"NIXA {b['backend']} at {grown['size']:,} Persons against {grown['base']:,} "
                          f"(loaded in {grown['load']['seconds']} s):", ""]
            lines.append(markdown(["metric", f"ops/s at {grown['base']:,}", "p50 / p99 ms", f"ops/s at {grown['size']:,}", "p50 / p99 ms"],
                                  [[LABELS.get(s, s), _num(v["at_base"]["rate"]), f"{_ms(v['at_base']['p50_ms'])} / {_ms(v['at_base']['p99_ms'])}",
                                    _num(v["at_size"]["rate"]), f"{_ms(v['at_size']['p50_ms'])} / {_ms(v['at_size']['p99_ms'])}"]
                                   for s, v in grown["scenarios"].items()]))
        mem = b.get("sso_memory")
        if mem and "error" in mem:
            lines.append(f"Redis memory: failed: {mem['error']}")
        elif mem:
            lines.append(f"Redis memory: {mem['sessions']:,} SSO sessions ({mem['keys']:,} keys) took "
                         f"{mem['used_memory_after'] - mem['used_memory_before']:,} bytes of used_memory: "
                         f"{mem['bytes_per_session']:,} bytes each, {mem['mb_per_100k']} MB per 100,000"
                         + ("" if mem["sessions"] == 100_000 else f" (scaled linearly from {mem['sessions']:,})"))
    return "\n".join(lines)
