"""One scheduling pass over a large simulated state (issue: scheduler benchmark).

    python -m benchmarks.sched [--jobs 100000] [--nodes 1000] [--partitions 10] [--quick]

The state is built through the reducer, as a replica holds it: ``nodes`` nodes of 32 CPUs in
``partitions`` partitions, every node busy with running jobs of staggered time limits, and
``jobs`` pending jobs of mixed sizes (1-4 nodes, 1-32 CPUs per node, 10 min to 4 h) spread
over the partitions, under priority/multifactor with age, job size, partition and fair-share
weights. Measured, each the median of several runs:

- ``main``: ``schedule()`` with SchedulerType=sched/builtin (the main scheduler alone);
- ``main + backfill``: ``schedule()`` with sched/backfill (bf_max_job_test reservations);
- ``cold``: the same after a priority period starts (every priority recomputed, queue resorted);
- ``reasons``: ``pending_reasons()``, what every squeue pays (walks every pending job);
- ``idle start``: the first pass over an idle cluster (starts as many jobs as fit).

``growth`` repeats the warm passes for 1k/10k/100k jobs and 100/1000 nodes.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from typing import Any

import attrs

from spurcore.model import ClusterState
from spurcore.ops import ClusterConfigured, JobSpec, JobStart, JobSubmitted, NodeRegistered
from spurcore.reduce import Rejected, apply
from spurcore.scheduler import pending_reasons, schedule
from spurcore.slurmconf import SETTINGS

CPUS = 32
MEM = 128_000


def build(jobs: int, nodes: int, partitions: int, *, busy: bool = True, backfill: bool = True,
          seed: int = 7) -> ClusterState:
    rng = random.Random(seed)
    per = max(1, nodes // partitions)
    node_recs = [{"name": f"n{i:05d}", "cpus": CPUS, "real_memory": MEM, "gres": [], "features": [],
                  "weight": 1, "state": "UNKNOWN", "reason": ""} for i in range(nodes)]
    part_recs = []
    for p in range(partitions):
        names = [f"n{i:05d}" for i in range(p * per, nodes if p == partitions - 1 else (p + 1) * per)]
        part_recs.append({"name": f"p{p}", "nodes": names, "default": p == 0, "max_time": None, "default_time": None,
                          "max_nodes": None, "min_nodes": 0, "state": "UP", "priority_tier": 1,
                          "priority_job_factor": 1 + p % 3, "allow_accounts": [], "deny_accounts": [],
                          "allow_groups": [], "oversubscribe": "NO", "hidden": False, "exclusive_user": False})
    settings = dict(SETTINGS, scheduler_type="sched/backfill" if backfill else "sched/builtin",
                    priority_weight_age=1000, priority_weight_job_size=500, priority_weight_partition=1000,
                    priority_weight_fairshare=2000)
    state = ClusterState()
    apply(state, ClusterConfigured("bench", tuple(node_recs), tuple(part_recs), settings, 0.0))
    for rec in node_recs:
        apply(state, NodeRegistered(rec["name"], CPUS, MEM, "", 0.0))
    base = JobSpec("bench", "u0", 1000, 100, "#!/bin/sh\ntrue\n", (), {}, "/tmp")
    now = 1_000_000.0
    if busy:  # every node busy but a few CPUs: one job each, ending over the next 4 hours
        for i in range(nodes):
            spec = attrs.evolve(base, partition=f"p{min(partitions - 1, i // per)}",
                                ntasks=CPUS - rng.choice((0, 0, 0, 2, 4, 8)),
                                time_limit=rng.choice((600, 1800, 3600, 7200, 14400)), user=f"u{i % 50}",
                                account=f"a{i % 5}")
            job_id = apply(state, JobSubmitted("", spec, now - 100))
            r = apply(state, JobStart(job_id, (f"n{i:05d}",), spec.ntasks, 0, now - 50 - rng.random() * 3000, -1,
                                      spec.partition))
            assert not isinstance(r, Rejected), r
    for _ in range(jobs):
        n = rng.choice((1, 1, 1, 2, 4))
        spec = attrs.evolve(base, partition=f"p{rng.randrange(partitions)}", nodes=n,
                            ntasks=n * rng.choice((1, 4, 8, 16, 32)), time_limit=rng.choice((600, 1800, 3600, 14400)),
                            user=f"u{rng.randrange(200)}", account=f"a{rng.randrange(5)}", nice=rng.choice((0, 0, 10)))
        r = apply(state, JobSubmitted("", spec, now - rng.random() * 86400))
        assert not isinstance(r, Rejected), r
    return state


def _time(fn: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def measure(jobs: int, nodes: int, partitions: int, runs: int = 5) -> dict[str, Any]:
    now = 1_000_000.0
    row: dict[str, Any] = {"jobs": jobs, "nodes": nodes, "partitions": partitions}
    for label, backfill in (("main", False), ("main+backfill", True)):
        state = build(jobs, nodes, partitions, backfill=backfill)
        schedule(state, now)  # warm: the period's priorities are computed once
        warm = _time(lambda s=state: schedule(s, now + 1), runs)
        row[label] = statistics.median(warm)
        period = state.settings["priority_calc_period"]
        row[label + " cold"] = _time(lambda s=state, p=period: schedule(s, now + p), 1)[0]
        if backfill:
            row["started"] = len(schedule(state, now + 1))
            row["reasons"] = statistics.median(_time(lambda s=state: pending_reasons(s, now + 1), max(1, runs // 2)))
    idle = build(jobs, nodes, partitions, busy=False)
    row["idle start"] = _time(lambda: schedule(idle, now), 1)[0]
    row["idle started"] = len(schedule(idle, now))
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from spurcore.snapshot import tune_gc

    tune_gc()  # as spurctld does: the state is millions of long-lived objects
    main_row = measure(args.jobs if not args.quick else 20_000, args.nodes, args.partitions, runs=3 if args.quick else 5)
    growth = []
    for jobs, nodes in ((1000, 1000), (10_000, 1000), (100_000, 1000), (100_000, 100)) if not args.quick else \
            ((1000, 1000), (10_000, 1000)):
        if (jobs, nodes) == (main_row["jobs"], main_row["nodes"]):
            growth.append(main_row)
            continue
        growth.append(measure(jobs, nodes, args.partitions, runs=3))
    out = {"pass": main_row, "growth": growth}
    _print(out)
    return out


def _print(out: dict[str, Any]) -> None:
    cols = ("jobs", "nodes", "main", "main cold", "main+backfill", "main+backfill cold", "reasons", "idle start",
            "idle started")
    print(" | ".join(cols))
    for row in out["growth"]:
        print(" | ".join(f"{row[c] * 1000:.1f} ms" if isinstance(row[c], float) else str(row[c]) for c in cols))


if __name__ == "__main__":
    json.dump(main(sys.argv[1:]), sys.stdout, indent=1)
    print()
