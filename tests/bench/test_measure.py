"""The benchmark's arithmetic (bench/measure.py, bench/report.py): percentiles, ratios, CPU seconds
read from /proc, the placement on cores, and the rule that measures a disturbed metric again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.measure import (judge, machine_busy, measure, parse_stat, pct, per_cpu_second, pin_tree, plan_cores, ratio, summary,
                           tree_cpu)
from bench.report import rows


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert pct(values, 0.5) == 50.0
    assert pct(values, 0.99) == 99.0
    assert pct(values, 1.0) == 100.0
    assert pct([7.0], 0.99) == 7.0
    assert pct([1.0, 2.0, 3.0], 0.5) == 2.0
    assert pct([], 0.5) is None


def test_ratio_and_operations_per_cpu_second():
    assert ratio(150.0, 100.0) == 1.5
    assert ratio(50.0, 0.0) is None  # a reference that did nothing is no yardstick
    assert ratio(None, 100.0) is None and ratio(100.0, None) is None
    assert per_cpu_second(300, 1.5) == 200.0
    assert per_cpu_second(300, 0.0) is None and per_cpu_second(300, None) is None


def test_stat_line_is_read_after_the_command_name_and_counts_reaped_children():
    # The command name may hold spaces and ')' itself; utime 300, stime 100, cutime 50, cstime 25 ticks.
    raw = "4242 (node (weird) x) S 17 4242 4242 0 -1 4194560 900 0 0 0 300 100 50 25 20 0 11 0 123 456 789"
    assert parse_stat(raw, 100) == (17, 4.75)


def test_tree_cpu_sums_a_process_and_everything_below_it_only():
    table = {1: (0, 5.0), 10: (1, 1.0), 11: (10, 2.0), 12: (11, 0.5), 20: (0, 7.0), 21: (20, 3.0)}
    assert tree_cpu([10], table) == 3.5
    assert tree_cpu([1], table) == 8.5
    assert tree_cpu([10, 21], table) == 6.5
    assert tree_cpu([99], table) == 0.0  # gone: nothing to count


def test_tree_cpu_reads_a_real_busy_process_from_proc():
    burn = ("import sys, time\n"
            "while time.process_time() < 0.3: pass\n"
            "print('burnt', flush=True)\n"
            "sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "burnt"
        used = tree_cpu([child.pid])
        assert 0.29 <= used < 5.0
        assert tree_cpu([child.pid]) >= used  # monotonic
    finally:
        child.communicate(timeout=30)


def test_machine_busy_leaves_idle_and_iowait_out():
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = "cpu  100 10 50 1000 20 5 5 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
    assert machine_busy(stat) == pytest.approx((100 + 10 + 50 + 5 + 5 + 3) / tick)


def test_load_goes_on_the_last_core_and_servers_on_the_others():
    two = plan_cores({0, 1}, 1)
    assert two.server == {0} and two.load == {1} and two.separated
    both = plan_cores({0, 1}, 2)  # two workers on a two-core machine: the load has to share
    assert both.server == {0, 1} and both.load == {1} and not both.separated
    three = plan_cores({0, 1, 2}, 2)
    assert three.server == {0, 1} and three.load == {2} and three.separated
    one = plan_cores({5}, 1)
    assert one.server == one.load == {5} and not one.separated


def test_pinning_reaches_every_thread_of_every_process_below():
    """PostgreSQL and Redis are started before they are pinned: each of their threads, and their
    children's, must end up on the server's core."""
    code = ("import subprocess, sys, threading, time\n"
            "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print(child.pid, flush=True)\n"
            "sys.stdin.read()\n"
            "child.kill()\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        core = frozenset({max(os.sched_getaffinity(0))})
        assert pin_tree([parent.pid], core) >= 3  # the parent's two threads and the child
        tasks = [int(t) for pid in (parent.pid, child) for t in os.listdir(f"/proc/{pid}/task")]
        assert len(tasks) >= 3 and all(os.sched_getaffinity(t) == core for t in tasks)
    finally:
        parent.communicate(timeout=30)


def _trials(rates: list[float], errors: list[int] | None = None):
    errors = errors or [0] * len(rates)
    made = iter([{"rate": r, "errors": e} for r, e in zip(rates, errors)])
    return lambda: next(made)


def test_a_metric_is_settled_when_the_last_trials_agree_and_had_no_error():
    assert judge([{"rate": 100, "errors": 0}, {"rate": 110, "errors": 0}], 2, 0.15).settled
    assert not judge([{"rate": 100, "errors": 0}, {"rate": 120, "errors": 0}], 2, 0.15).settled
    assert "errors" in judge([{"rate": 100, "errors": 0}, {"rate": 100, "errors": 3}], 2, 0.15).reason
    assert not judge([{"rate": 100, "errors": 0}], 2, 0.15).settled
    assert not judge([{"rate": 0, "errors": 0}, {"rate": 0, "errors": 0}], 2, 0.15).settled


def test_a_disturbed_metric_is_measured_again_until_two_trials_agree():
    metric = measure(_trials([100, 50, 95, 97]), repeats=2, tolerance=0.15, extra=2)
    assert [t["rate"] for t in metric.trials] == [100, 50, 95, 97]
    assert metric.verdict.settled
    assert metric.reported["rate"] == 97  # the faster of the two that agree
    assert summary(metric)["trial_rates"] == [100, 50, 95, 97] and "disturbed" not in summary(metric)


def test_a_settled_metric_is_not_measured_again():
    metric = measure(_trials([100, 104, 10, 10]), repeats=2, tolerance=0.15, extra=2)
    assert len(metric.trials) == 2 and metric.reported["rate"] == 104


def test_remeasuring_is_bounded_and_a_still_disturbed_metric_says_so():
    metric = measure(_trials([100, 200, 100, 200, 100, 200], errors=[0, 0, 0, 0, 1, 0]), repeats=2, tolerance=0.15, extra=2)
    assert len(metric.trials) == 4  # 2 + at most 2 more
    out = summary(metric)
    assert out["settled"] is False and out["disturbed"] == "trials 100% apart"


def test_the_table_gives_both_figures_the_ratios_and_the_flows_without_the_password_check():
    reference = {"client_credentials": {"rate": 3000.0, "p50_ms": 9.0, "p99_ms": 20.0, "ops_per_cpu_s": 3100.0, "settled": True},
                 "code_flow": {"rate": 200.0, "p50_ms": 150.0, "p99_ms": 300.0, "ops_per_cpu_s": 210.0, "settled": True}}
    ours = {"client_credentials": {"rate": 1500.0, "p50_ms": 18.0, "p99_ms": 40.0, "ops_per_cpu_s": 1550.0, "settled": False,
                                   "disturbed": "trials 30% apart"},
            "code_flow": {"rate": 20.0, "p50_ms": 1500.0, "p99_ms": 3000.0, "ops_per_cpu_s": 21.0, "settled": True,
                          "ops_per_cpu_s_excl_password": 105.0}}
    ceiling = {"node": {"rate": 20000.0, "ops_per_cpu_s": 21000.0}, "starlette": {"rate": 6000.0, "ops_per_cpu_s": 6100.0}}
    table = {r[0]: r for r in rows(reference, ours, ceiling)}
    cc = table["token POST (client_credentials, ES256 JWT)"]
    assert cc[1] == "3,000" and cc[2] == "9.00 / 20.0" and cc[4] == "15 %"  # 3,000 of Node's 20,000
    assert cc[5] == "1,500" and cc[8] == "25 %"  # 1,500 of Starlette's 6,000
    assert cc[9] == "0.50" and cc[10] == "0.50"
    assert cc[11] == "NIXA disturbed: trials 30% apart"
    excluded = table["code flows, NIXA's password check excluded"]
    assert excluded[3] == "210" and excluded[7] == "105" and excluded[10] == "0.50"
    assert table["framework ceiling (trivial GET: Node, Starlette)"][1] == "20,000"


def test_scaling_gives_the_throughput_factor_and_the_work_per_operation_of_two_workers_against_one():
    from bench.run import scaling_of

    one = {"rate": 2000.0, "ops_per_cpu_s": 2100.0}
    two = {"rate": 2400.0, "ops_per_cpu_s": 1995.0}  # the load generator took part of the second core
    v = scaling_of(one, two)
    assert v["factor"] == 1.2 and v["per_cpu_factor"] == 0.95
    assert (v["one_worker_per_cpu_s"], v["two_workers_per_cpu_s"]) == (2100.0, 1995.0)
    assert scaling_of(one, {"rate": 0.0, "ops_per_cpu_s": None})["per_cpu_factor"] is None  # nothing measured: no figure
    assert scaling_of({"rate": 0.0, "ops_per_cpu_s": None}, two)["factor"] is None
    assert "one_core_per_cpu_factor" not in v  # not measured: not reported
    # Two workers on the one worker's core, the load generator apart: a second worker's cost.
    w = scaling_of(one, two, {"rate": 1900.0, "ops_per_cpu_s": 1932.0})
    assert w["one_core_per_cpu_factor"] == 0.92 and w["one_core_two_workers"] == 1900.0
