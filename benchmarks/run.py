"""``make bench``: every Spur benchmark, each figure beside a baseline measured in the same run.

    python -m benchmarks.run [--quick] [--only cli,...] [--bindir DIR]

``--bindir`` names the directory of the commands to measure (``make bench`` passes a venv
with a regular, non-editable ``pip install .``: the tools as users install them); the
cluster itself always runs from this interpreter's venv.

Writes ``benchmarks/results/latest.json`` and ``benchmarks/results/latest.md`` (figure,
baseline, ratio, spread; ``latest-<groups>.*`` for an ``--only`` subset) and prints the
table. Workloads (issue: benchmarks):
  1 replay       decode+apply ops/s for 1M ops vs bare msgpack decode of the same bytes
  2 commit       pipelined submissions/s through 3 journaled replicas vs raw pysyncobj;
                 single-op commit latency p50/p99
  3 CLI          squeue/sbatch/scancel wall time, each beside `python -I -S -c pass` run in
                 the same loop; sbatch/s from 4 shell loops
  4 latency      submit -> RUNNING on an idle cluster
  5 throughput   500 trivial jobs on one 2-CPU node
  6 kill         scancel -> processes gone / -> CANCELLED, p50/p99 over 20 runs
  7 scale        squeue and scontrol show job -o, and controller restart -> first answer, with
                 an empty queue (the baselines) and 1k/10k/20k/100k queued jobs; restart after
                 SIGKILL; restart data cost with a 1,000,000-op history; memory per job
  8 failover     leader SIGKILLed -> next commit
  9 array        a 10,000-task array through `sbatch --array` (as make bench-slurm runs it)
 10 restart      a restart's phases in one process: snapshot decode in this format beside the
                 previous one (version 4), the collection a load used to trigger, WAL tail replay
                 (benchmarks/restart.py)
  9 steps        srun -n 64 true on 2 nodes inside an allocation vs srun -n 1 true (benchmarks/steps.py)
 11 scheduler    one pass (main, main + backfill) over 1,000 nodes and 100,000 pending jobs in
                 10 partitions (benchmarks/sched.py), and how it grows with jobs and nodes
plus growth: how squeue, restart and memory cost grow with 1k/10k/100k jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import commit, replay
from benchmarks import sched as sched_bench
from benchmarks.spur_workloads import (
    Metric,
    array_throughput,
    cli_latency,
    failover,
    kill_latency,
    scale,
    spur_local,
    start_latency,
    throughput,
)

RESULTS = Path(__file__).resolve().parent / "results"
ERRORS: list[str] = []  # workloads that failed in this run (printed under the table, and the exit status)


def _row(figure: str, value: float, baseline: float | None, baseline_name: str, unit: str,
         spread: float = 0.0, target: str = "", samples: list[float] | None = None) -> dict[str, Any]:
    return {
        "figure": figure, "value": value, "unit": unit, "baseline": baseline, "baseline_name": baseline_name,
        "ratio": (value / baseline) if baseline else None, "spread": spread, "target": target,
        "samples": samples or [],
    }


def _spread(samples: list[float]) -> float:
    if len(samples) < 2:
        return 0.0
    med = statistics.median(samples)
    return (max(samples) - min(samples)) / med if med else 0.0


def _metric_rows(metrics: list[Metric], baselines: dict[str, tuple[str, str]], targets: dict[str, str]
                 ) -> list[dict[str, Any]]:
    """Turn workload Metrics into rows; ``baselines`` maps a metric key to the key (and name)
    of the metric measured in the same run that it is compared with."""
    by_key = {m.key: m for m in metrics}
    rows = []
    for m in metrics:
        if m.key.startswith("cli.") and m.key.endswith((".base", ".ratio")):  # in the baseline/ratio columns
            continue
        if not m.samples:
            rows.append(_row(m.label, float("nan"), None, m.note, m.unit))
            continue
        if m.percentiles:
            s = sorted(m.samples)
            p50 = statistics.median(s)
            p99 = s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]
            base_key, base_name = baselines.get(m.key, ("", ""))
            base = by_key.get(base_key)
            rows.append(_row(f"{m.label} p50", p50, base.median if base else None, base_name, m.unit,
                             _spread(m.samples), targets.get(m.key + ".p50", ""), m.samples))
            rows.append(_row(f"{m.label} p99", p99, None, "", m.unit, 0.0, targets.get(m.key + ".p99", "")))
            continue
        base_key, base_name = baselines.get(m.key, ("", ""))
        base = by_key.get(base_key)
        rows.append(_row(m.label, m.median, base.median if base else None, base_name, m.unit, _spread(m.samples),
                         targets.get(m.key, ""), m.samples))
    return rows


def history_restart(n_ops: int) -> dict[str, Any]:
    """Restart data cost with an ``n_ops`` history: newest snapshot + WAL tail, as a replica
    loads them (snapshots every 20,000 ops as spurctld takes them), beside replaying the whole
    history from the first op (what a system without snapshots would do)."""
    from spurcore.codec import decode_batch
    from spurcore.model import ClusterState
    from spurcore.reduce import apply
    from spurcore.snapshot import decode_state, encode_state, gc_paused
    from spurctld.wal import Wal, load_latest_snapshot, write_snapshot

    blobs = replay.generate(n_ops)
    with tempfile.TemporaryDirectory(prefix="spur-history-") as d:
        wal = Wal(os.path.join(d, "wal"))
        state = ClusterState()
        since = 0
        for index, blob in enumerate(blobs, start=1):
            for op in decode_batch(blob):
                apply(state, op)
            wal.append(index, blob)
            since += 100
            if since >= 20000 and index < len(blobs) - 3:  # leave a short tail, as in life
                write_snapshot(d, index, encode_state(state))
                since = 0
        wal.sync()
        t0 = time.perf_counter()
        with gc_paused():
            snap = load_latest_snapshot(d)  # None below 20,000 ops: the tail is everything
            snap_index, restored = (snap[0], decode_state(snap[1])) if snap else (0, ClusterState())
            for _index, blob in wal.iter_records(snap_index + 1):
                for op in decode_batch(blob):
                    apply(restored, op)
        with_snapshot = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = ClusterState()
        for _index, blob in wal.iter_records(1):
            for op in decode_batch(blob):
                apply(full, op)
        full_replay = time.perf_counter() - t0
        wal.close()
    return {"ops": n_ops, "jobs_hot": len(restored.jobs), "snapshot_plus_tail_s": with_snapshot,
            "full_replay_s": full_replay}


def memory_per_job(n_jobs: int) -> float:
    """Bytes of Python heap per job in the hot state (a finished batch job with one step)."""
    from spurcore.model import ClusterState
    from spurcore.ops import (
        JobLaunched,
        JobNodeComplete,
        JobSpec,
        JobStart,
        JobStepComplete,
        JobSubmitted,
        NodeRegistered,
        StepCreated,
    )
    from spurcore.reduce import apply

    spec = JobSpec("job.sh", "alice", 1000, 100, "#!/bin/bash\nsrun true\n", (), {"HOME": "/home/alice"},
                   "/home/alice", command="/home/alice/job.sh", submit_line="sbatch job.sh")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state = ClusterState()
    apply(state, NodeRegistered("n1", 10**6, 10**9, "", 0.0))
    for i in range(n_jobs):
        j = apply(state, JobSubmitted(f"r{i}", spec, 1.0))
        apply(state, JobStart(j, ("n1",), 1, 0, 2.0))
        apply(state, JobLaunched(j, "n1", 2.0))
        apply(state, StepCreated(f"s{i}", j, "true", ("true",), 1, "", 1000, 3.0))
        apply(state, JobStepComplete(j, 0, "n1", 0, 0, False, 4.0))
        apply(state, JobNodeComplete(j, "n1", 0, 0, False, 5.0))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / n_jobs


def api_workloads(cluster: Any, jobs: int, kills: int) -> list[Metric]:
    """The same questions as workloads 5 and 6, asked through the Python client instead of
    the command-line tools, so the system's own latency shows apart from CLI start-up."""
    from benchmarks.spur_workloads import env_job_pids
    from spurio.client import Client, new_request_id
    from spurio.config import load

    config = load(os.path.join(cluster.extra["dir"], "spur.toml"))
    workdir = str(cluster.workdir)
    out: list[Metric] = []
    with Client(config, retry_for=60) as client:
        spec = {"name": "t", "script": "#!/bin/sh\ntrue\n", "cwd": workdir, "stdout": "/dev/null"}
        t0 = time.monotonic()
        ids = [client.call("submit", {"request_id": new_request_id(), "spec": spec})["job_id"] for _ in range(jobs)]
        while client.call("jobs", {"job_ids": ids[-1:], "states": ["PENDING", "RUNNING", "COMPLETING"]})["jobs"]:
            time.sleep(0.02)
        while any(j["state"] in ("PENDING", "RUNNING", "COMPLETING")
                  for j in client.call("jobs", {"job_ids": ids})["jobs"]):
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        out.append(Metric("api.throughput", f"{jobs} trivial jobs through the Python client: jobs/s", "jobs/s",
                          [jobs / elapsed], higher_is_better=True))
        gone, cancelled = [], []
        for _ in range(kills):
            spec = {"name": "k", "script": "#!/bin/bash\nsleep 1000\n", "cwd": workdir, "stdout": "/dev/null"}
            job_id = client.call("submit", {"request_id": new_request_id(), "spec": spec})["job_id"]
            deadline = time.monotonic() + 60
            while not any(_comm(p) == "sleep" for p in env_job_pids(job_id)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job_id} did not start")
                time.sleep(0.002)
            t0 = time.monotonic()
            client.call("signal", {"request_id": new_request_id(), "job_id": job_id, "kind": 1})
            while env_job_pids(job_id):
                time.sleep(0.0005)
            gone.append(time.monotonic() - t0)
            while client.call("jobs", {"job_ids": [job_id]})["jobs"][0]["state"] != "CANCELLED":
                time.sleep(0.001)
            cancelled.append(time.monotonic() - t0)
        out.append(Metric("api.kill.gone", "cancel RPC -> all job processes gone", "s", gone, percentiles=True))
        out.append(Metric("api.kill.cancelled", "cancel RPC -> CANCELLED committed and visible", "s", cancelled,
                          percentiles=True))
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated subset of {','.join(GROUPS)}")
    parser.add_argument("--bindir", help="where the measured commands are (default: beside this interpreter)")
    args = parser.parse_args(argv)
    only = {g for g in args.only.split(",") if g}
    if only - set(GROUPS):
        parser.error(f"unknown groups: {', '.join(sorted(only - set(GROUPS)))}")
    q = args.quick
    rows: list[dict[str, Any]] = []
    started = time.time()
    if "replay" in only:
        rows += replay_rows(q)
    if "commit" in only:
        rows += commit_rows(q)
    if "restart" in only:
        rows += restart_rows(q)
    if only & CLUSTER_GROUPS:
        rows += cluster_rows(q, only, args.bindir)
    growth: list[dict[str, Any]] = []
    if "arrays" in only:
        rows += array_rows(q)
    if "steps" in only:
        rows += step_rows(q)
    if "growth" in only:
        growth_rows, growth = growth_figures(q)
        rows += growth_rows
    if "scheduler" in only:
        sched_rows, sched_growth = scheduler_rows(q)
        rows += sched_rows
        growth.append({"scheduler": sched_growth})
    name = "latest" if only == set(GROUPS) else "latest-" + "-".join(g for g in GROUPS if g in only)
    write(rows, growth, started, name)
    for error in ERRORS:
        print(f"FAILED: {error}")
    return 1 if ERRORS else 0


#: The groups of figures ``--only`` selects (in the order they run).
GROUPS = ("replay", "commit", "restart", "cli", "latency", "throughput", "kill", "array", "scale", "api", "failover",
          "arrays", "steps", "growth", "scheduler")
CLUSTER_GROUPS = {"cli", "latency", "throughput", "kill", "array", "scale", "api", "failover"}

#: Each CLI figure beside the baseline run in the same loop (benchmarks.spur_workloads.cli_latency).
CLI_CASES = ("cli.python", "cli.true", "cli.squeue", "cli.squeue_small", "cli.sbatch", "cli.scancel")
CLI_TARGETS = {"cli.squeue": "<= 2.0x", "cli.squeue_small": "<= 2.0x", "cli.sbatch": "<= 2.5x",
               "cli.scancel": "<= 2.5x", "cli.sbatch_rate_held": ">= 80 jobs/s", "cli.sbatch_rate": ">= 80 jobs/s"}
SCALE_SIZES = (1000, 5000, 10_000, 20_000, 100_000)
#: Issue 14's targets; Slurm's figures are those of the last `make bench-slurm` (docs/performance.md).
ISSUE_TARGETS = {
    **CLI_TARGETS, "latency.running.p50": "<= 50 ms",
    "throughput.rate": ">= 50 jobs/s", "kill.gone.p50": "<= 20 ms (Slurm 11 ms)",
    "kill.cancelled.p50": "<= 30 ms", "failover.commit.p50": "<= 1 s",
    "scale.squeue.20000": "< Slurm's 200 ms", "scale.scontrol.20000": "< Slurm's 429 ms",
    "scale.restart.100000": "<= 1 s", "api.throughput": ">= 150 jobs/s", "api.kill.gone.p50": "<= 20 ms",
    "api.kill.cancelled.p50": "<= 30 ms", "array.cli.rate": ">= 200 tasks/s",
}


def replay_rows(q: bool) -> list[dict[str, Any]]:
    rows = []
    print("== 1 replay", flush=True)
    r = replay.main(["--ops", "200000" if q else "1000000", "--repeat", "3"])
    rows.append(_row("replay: decode+apply ops/s", r["value"], r["baseline"], "bare msgpack decode, same bytes",
                     "ops/s", r["spread"], ">= 200,000 ops/s"))
    return rows


def restart_rows(q: bool) -> list[dict[str, Any]]:
    print("== 10 restart phases in one process", flush=True)
    from benchmarks import restart

    rows = []
    sizes = (1000, 10_000) if q else (1000, 10_000, 100_000)
    for r in restart.main(["--jobs", ",".join(map(str, sizes)), "--repeat", "3"]):
        if "kind" not in r:
            rows.append(_row(f"restart: WAL tail of {r['ops']:,} submissions replayed", r["replay_s"], None, "", "s"))
            continue
        what = f"{r['jobs']:,} jobs, {'equal' if r['kind'] == 'held' else 'distinct'} specs"
        rows.append(_row(f"restart: snapshot decode, {what}", r["decode_v5_s"], r["decode_v4_s"],
                         "version 4 (previous format), same state", "s"))
        rows.append(_row(f"restart: collection after an unfrozen load, {what}", r["young_collection_s"], None,
                         "paid by every load before gc.freeze", "s"))
        rows.append(_row(f"restart: snapshot bytes, {what}", r["bytes_v5"], r["bytes_v4"], "version 4", "bytes"))
        rows.append(_row(f"restart: snapshot encode, {what}", r["encode_v5_s"], r["encode_v4_s"], "version 4", "s"))
    return rows


def commit_rows(q: bool) -> list[dict[str, Any]]:
    rows = []
    print("== 2 commit", flush=True)
    for c in commit.main(["--jobs", "3000" if q else "10000", "--runs", "1" if q else "3"]):
        rows.append(_row(c["figure"], c["value"], c["baseline"], c["baseline_name"],
                         "jobs/s" if "pipelined" in c["figure"] else "ms", c["spread"], c["target"]))
    return rows


def q_sizes(q: bool) -> tuple[int, ...]:
    """The queue sizes of the scale workload (issue 14: how each cost grows)."""
    return (1000, 5000) if q else (1000, 10_000, 20_000, 100_000)


def cluster_rows(q: bool, only: set[str], bindir: str | None) -> list[dict[str, Any]]:
    print("== 3-8 on a 3-replica local cluster with one 2-CPU node", flush=True)
    metrics: list[Metric] = []
    with spur_local(replicas=3, nodes=1, cpus=2, kill_wait=2.0, max_array_size=10_001) as cluster:
        if bindir:  # the commands as installed there, talking to this cluster
            bindir = os.path.abspath(bindir)
            cluster = dataclasses.replace(cluster, bindir=bindir, python=os.path.join(bindir, "python3"))
            print(f"   commands from {bindir}", flush=True)
        workloads: dict[str, Callable[[], list[Metric]]] = {
            "cli": lambda: cli_latency(cluster, runs=10 if q else 20, per_loop=25 if q else 50),
            "latency": lambda: start_latency(cluster, runs=5 if q else 10),
            "throughput": lambda: throughput(cluster, jobs=100 if q else 500),
            "kill": lambda: kill_latency(cluster, runs=5 if q else 20),
            "array": lambda: array_throughput(cluster, tasks=1000 if q else 10_000, budget=300),
            "scale": lambda: scale(cluster, sizes=q_sizes(q)),
            "api": lambda: api_workloads(cluster, jobs=100 if q else 500, kills=5 if q else 20),
            "failover": lambda: failover(cluster, runs=2 if q else 5),
        }
        for name, workload in workloads.items():
            if name not in only:
                continue
            try:
                metrics += workload()
            except Exception as exc:  # keep what it measured, report it, go on with the next one
                metrics += getattr(exc, "metrics", [])
                ERRORS.append(f"{name}: {exc}")
                print(f"   {name} FAILED: {exc}", flush=True)
                with contextlib.suppress(Exception):
                    cluster.cancel_all()
                    cluster.wait_idle(300)
    baselines = {key: (key + ".base", "`python -I -S -c pass`, same loop") for key in CLI_CASES}
    baselines.update({key + ".cpu": (key + ".cpu.base", "`python -I -S -c pass`, same loop")
                      for key in CLI_CASES})
    # A queue's costs beside the same figure with an empty queue (what does not grow); the
    # CLI's kill beside the same kill through the Python client (what the command adds).
    for what, name in (("squeue", "`squeue`"), ("scontrol", "`scontrol show job -o`"),
                       ("restart", "restart")):
        for size in SCALE_SIZES:
            baselines[f"scale.{what}.{size}"] = (f"scale.{what}.0", f"{name}, empty queue, same run")
    largest = max(q_sizes(q))
    baselines["scale.crash_restart"] = (f"scale.restart.{largest}", "restart after SIGTERM, same queue, same run")
    baselines["kill.gone"] = ("api.kill.gone", "the same kill through the Python client, p50")
    baselines["kill.cancelled"] = ("api.kill.cancelled", "the same cancel through the Python client, p50")
    return _metric_rows(metrics, baselines, ISSUE_TARGETS)


def array_rows(q: bool) -> list[dict[str, Any]]:
    print("== 9 job arrays", flush=True)
    from benchmarks import arrays

    array_metrics = arrays.run(quick=q)
    return _metric_rows(array_metrics, {
        "array.rate": ("array.rate.base", "separate jobs, same client, same run"),
        "array.pending.log": ("array.pending.log.base", "as many separate pending jobs"),
        "array.pending.state": ("array.pending.state.base", "as many separate pending jobs"),
        "array.pending.heap": ("array.pending.heap.base", "as many separate pending jobs"),
    }, {"array.rate": ">= 200 tasks/s", "array.pending.log": "< 10 KB", "array.pending.state": "< 10 KB"})



def step_rows(q: bool) -> list[dict[str, Any]]:
    print("== 10 steps: srun -n 64 on 2 nodes", flush=True)
    from benchmarks import steps as step_bench

    return step_bench.measure(runs=3 if q else 10)


def growth_figures(q: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = []
    print("== 7 restart data cost vs history size, memory per job", flush=True)
    growth = []
    for n_ops in ((10_000, 100_000) if q else (10_000, 100_000, 1_000_000)):
        h = history_restart(n_ops)
        growth.append(h)
        rows.append(_row(f"restart data: snapshot + WAL tail, {n_ops:,}-op history", h["snapshot_plus_tail_s"],
                         h["full_replay_s"], "replaying the whole history", "s", 0.0,
                         "<= 0.5 s" if n_ops == 1_000_000 else ""))
    for n_jobs in ((1000, 10000) if q else (1000, 10_000, 100_000)):
        rows.append(_row(f"memory per job in the hot state ({n_jobs:,} jobs)", memory_per_job(n_jobs), None, "",
                         "bytes"))
    return rows, growth


def scheduler_rows(q: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    print("== 11 scheduler pass", flush=True)
    sched = sched_bench.main(["--quick"] if q else [])
    p = sched["pass"]
    n = f"{p['jobs']:,} pending jobs, {p['nodes']:,} nodes, {p['partitions']} partitions"
    rows = [
        _row(f"scheduler: main pass, {n}", p["main"], None, "", "s", 0.0, "<= 100 ms"),
        _row(f"scheduler: main + backfill pass (bf_max_job_test=500), {n}", p["main+backfill"], None, "", "s", 0.0,
             "<= 100 ms + bounded backfill"),
        _row(f"scheduler: pass at a new PriorityCalcPeriod (priorities recombined), {n}", p["main+backfill cold"],
             None, "", "s"),
        _row(f"scheduler: pending reasons of every job (squeue), {n}", p["reasons"], None, "", "s"),
    ]
    return rows, sched["growth"]


def _fmt(v: float | None, unit: str) -> str:
    if v is None or v != v:
        return "n/a"
    if unit in ("s",):
        return f"{v * 1000:.3g} ms" if v < 1 else f"{v:.3g} s"
    if unit == "ms":
        return f"{v:.3g} ms"
    return f"{v:,.0f} {unit}" if v >= 100 else f"{v:.3g} {unit}"


def write(rows: list[dict[str, Any]], growth: list[dict[str, Any]], started: float, name: str = "latest") -> None:
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "duration_s": round(time.time() - started, 1),
    }
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows, "history": growth}, indent=1))
    lines = [f"Measured {meta['date']} on {meta['machine']['cpus']} CPUs, Python {meta['machine']['python']}.", "",
             "| figure | value | baseline (same run) | ratio | spread | target |", "|---|---|---|---|---|---|"]
    for r in rows:
        unit = r.get("unit", "")
        base = f"{_fmt(r['baseline'], unit)} ({r.get('baseline_name', '')})" if r.get("baseline") else \
            r.get("baseline_name", "")
        ratio = f"{r['ratio']:.3g}x" if r.get("ratio") else ""
        spread = f"±{r['spread'] * 50:.0f}%" if r.get("spread") else ""
        lines.append(f"| {r['figure']} | {_fmt(r['value'], unit)} | {base} | {ratio} | {spread} | {r.get('target', '')} |")
    table = "\n".join(lines)
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print()
    print(table)


if __name__ == "__main__":
    sys.exit(main())
