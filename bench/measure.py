"""The arithmetic of the side-by-side benchmark, kept apart from the processes it measures so a
test can check it: percentiles, ratios, CPU seconds read from /proc, core pinning, and the rule
that says when a metric was disturbed and is measured again."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROC = Path("/proc")


# ---- figures ---------------------------------------------------------------------------------------


def pct(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank percentile `q` (0..1] of already sorted values; None when empty."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def ratio(ours: float | None, reference: float | None) -> float | None:
    """ours / reference, or None when either is missing or the reference is zero."""
    if ours is None or not reference:
        return None
    return ours / reference


def per_cpu_second(operations: int, cpu_seconds: float | None) -> float | None:
    """Operations per CPU-second of the server; None when no CPU was measured."""
    if cpu_seconds is None or cpu_seconds <= 0:
        return None
    return operations / cpu_seconds


# ---- CPU from /proc --------------------------------------------------------------------------------


def parse_stat(raw: str, ticks_per_second: int) -> tuple[int, float]:
    """(ppid, CPU seconds) from the text of /proc/<pid>/stat: its own user + system time and that
    of its reaped children (a worker that exited still counts). The command name (field 2) may
    hold spaces and parentheses, so the fields are split after its last ')'."""
    fields = raw[raw.rfind(")") + 2:].split()
    # fields[0] is the state (field 3): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
    ppid = int(fields[1])
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ppid, ticks / ticks_per_second


def proc_table(proc: Path = PROC) -> dict[int, tuple[int, float]]:
    """pid → (ppid, CPU seconds) of every process we can see."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            out[int(entry)] = parse_stat((proc / entry / "stat").read_text(), tick)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return out


def descendants(table: dict[int, tuple[int, float]], roots: Iterable[int]) -> list[int]:
    """The roots present in `table` and every process below them."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen: list[int] = []
    todo = [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def tree_cpu(roots: list[int], table: dict[int, tuple[int, float]] | None = None) -> float:
    """CPU seconds used so far by the processes under `roots`, themselves included."""
    table = proc_table() if table is None else table
    return sum(table[pid][1] for pid in descendants(table, roots))


def machine_busy(stat_text: str | None = None) -> float:
    """CPU seconds all cores spent busy (not idle or iowait) so far, from /proc/stat."""
    text = (PROC / "stat").read_text() if stat_text is None else stat_text
    values = [int(x) for x in text.split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user nice system idle iowait irq softirq steal


def peak_rss_mb(root: int) -> float | None:
    """Largest peak resident size (VmHWM) among a server's processes, MB."""
    peaks = []
    for pid in descendants(proc_table(), [root]):
        try:
            for line in (PROC / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return round(max(peaks), 1) if peaks else None


# ---- cores -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cores:
    """Which cores the servers and the load generator run on. With one usable core nothing can
    be separated: both get it and the report says so."""

    server: frozenset[int]
    load: frozenset[int]

    @property
    def separated(self) -> bool:
        return not (self.server & self.load)


def plan_cores(usable: Iterable[int], server_count: int = 1) -> Cores:
    """The load generator on the last usable core, the server on the first `server_count` of the
    others; when there are not enough others, the server's cores include the load's (shared)."""
    cores = sorted(usable)
    others = cores[:-1] if len(cores) > server_count else cores
    return Cores(frozenset(others[:server_count]), frozenset(cores[-1:]))


def pin_tree(pids: Iterable[int], cores: frozenset[int]) -> int:
    """Pin every thread of every process under `pids` to `cores` (threads keep their own
    affinity, so each task is set); returns how many threads were pinned."""
    pinned = 0
    for pid in descendants(proc_table(), pids):
        try:
            tasks = [int(t) for t in os.listdir(PROC / str(pid) / "task")]
        except OSError:
            continue
        for tid in tasks:
            try:
                os.sched_setaffinity(tid, cores)
                pinned += 1
            except OSError:
                pass  # exited meanwhile, or not ours
    return pinned


# ---- the disturbed-metric rule ---------------------------------------------------------------------


@dataclass
class Verdict:
    settled: bool
    reason: str = ""


def judge(trials: list[dict], repeats: int, tolerance: float) -> Verdict:
    """A metric is settled when its last `repeats` trials had no error and their rates differ by
    at most `tolerance` (0.15: the fastest at most 15 % above the slowest)."""
    if len(trials) < repeats:
        return Verdict(False, f"{len(trials)} of {repeats} trials")
    last = trials[-repeats:]
    failed = sum(t.get("errors", 0) for t in last)
    if failed:
        return Verdict(False, f"{failed} errors")
    rates = [t["rate"] for t in last]
    if min(rates) <= 0:
        return Verdict(False, "no operation completed")
    spread = max(rates) / min(rates) - 1
    if spread > tolerance:
        return Verdict(False, f"trials {spread:.0%} apart")
    return Verdict(True)


@dataclass
class Metric:
    """The trials of one metric on one server, and the one reported."""

    window: int = 2  # the trials judged and reported from: the last `repeats`
    trials: list[dict] = field(default_factory=list)
    verdict: Verdict = field(default_factory=lambda: Verdict(False))

    @property
    def reported(self) -> dict:
        # Of the last trials, the fastest: a neighbour's load only ever slows a trial down.
        return max(self.trials[-self.window:], key=lambda t: t["rate"])


def measure(run_trial: Callable[[], dict], repeats: int = 2, tolerance: float = 0.15, extra: int = 2) -> Metric:
    """Run `repeats` trials; while the metric is not settled (judge), run another, at most
    `extra` more. The result says whether it settled; it is reported either way."""
    metric = Metric(window=repeats)
    for _ in range(repeats + extra):
        metric.trials.append(run_trial())
        metric.verdict = judge(metric.trials, repeats, tolerance)
        if metric.verdict.settled:
            break
    return metric


def summary(metric: Metric, extra_fields: Callable[[dict], dict[str, Any]] | None = None) -> dict:
    """The reported trial with the rates of all trials and the verdict, for the JSON report."""
    out = dict(metric.reported)
    out["trial_rates"] = [t["rate"] for t in metric.trials]
    out["settled"] = metric.verdict.settled
    if not metric.verdict.settled:
        out["disturbed"] = metric.verdict.reason
    if extra_fields:
        out.update(extra_fields(out))
    return out
