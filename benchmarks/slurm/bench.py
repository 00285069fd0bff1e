"""Spur next to Debian's Slurm on this machine: the workloads of benchmarks/spur_workloads.py
through Slurm's own commands and through Spur's, in the same run, side by side with ratios.

    benchmarks/slurm/setup.sh && .venv/bin/python -m benchmarks.slurm.bench [--quick]

Needs root and the Slurm that setup.sh started (SLURM_CONF=/var/tmp/spur-bench-slurm/etc/slurm.conf).
Slurm runs twice for the scheduling-sensitive workloads: with its default SchedulerParameters
and with the "tuned" set from Slurm's high_throughput guide (setup.sh switches them with
`scontrol reconfigure`). Spur runs as `spur local up --replicas 3 --nodes 1 --cpus <nproc>`
with KillWait 30 s and MaxArraySize 10,001 like Slurm. Results also go to a JSON file (--json).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from benchmarks import spur_workloads as wl
from benchmarks.slurm.common import BASE, machine_info, set_scheduler, slurm_cluster

SLURM = "Slurm 22.05 (default)"
TUNED = "Slurm 22.05 (tuned)"
SPUR = "Spur (3 replicas)"

WORKLOADS = ("cli", "latency", "throughput", "kill", "array", "scale", "failover")
ARRAY_TASKS = 10_000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def quiet_machine() -> None:
    """Between the phases: stop Slurm's daemons (its figures are taken) so that Spur's phase
    runs on a machine as quiet as Slurm's did, not beside slurmctld purging the scale
    workload's 100,000 jobs (MinJobAge) and deleting their files. Then flush the file systems
    and let 61 s pass: on an ext4 without a journal (this machine's root), each inode creation
    steps over every inode of its block group freed in the last 60 s, or in the last 360 s
    while that inode table block is dirty (ext4's ialloc.c, ``recently_deleted``), and Slurm's
    deletions would be paid for by Spur's file creations."""
    log("stopping Slurm's daemons (benchmarks/slurm/stop.sh) for Spur's phase")
    subprocess.run([str(Path(__file__).with_name("stop.sh"))], check=False, stdout=subprocess.DEVNULL,
                   timeout=600)
    os.sync()
    time.sleep(61.0)


def plan(quick: bool, tuned: bool = False) -> dict[str, Callable[[wl.Cluster], list[wl.Metric]]]:
    """The workloads and their sizes. With the tuned SchedulerParameters Slurm schedules batch
    jobs every 20 s on this one-node cluster, so fewer latency runs and a shorter throughput budget."""
    if quick:
        return {
            "cli": lambda c: wl.cli_latency(c, runs=5, loops=4, per_loop=5),
            "latency": lambda c: wl.start_latency(c, runs=2 if tuned else 3),
            "throughput": lambda c: wl.throughput(c, jobs=40, budget=25 if tuned else 40),
            "kill": lambda c: wl.kill_latency(c, runs=3),
            "array": lambda c: wl.array_throughput(c, tasks=200, budget=40),
            "scale": lambda c: wl.scale(c, sizes=(200, 400), runs=2, restart_runs=1, purge_timeout=30),
            "failover": lambda c: wl.failover(c, runs=2),
        }
    return {
        "cli": lambda c: wl.cli_latency(c, runs=20, loops=4, per_loop=50),
        "latency": lambda c: wl.start_latency(c, runs=4 if tuned else 10),
        "throughput": lambda c: wl.throughput(c, jobs=500, budget=65 if tuned else 150),
        "kill": lambda c: wl.kill_latency(c, runs=20),
        "array": lambda c: wl.array_throughput(c, tasks=ARRAY_TASKS, budget=150 if not tuned else 65),
        "scale": lambda c: wl.scale(c, sizes=(1000, 10000, 20000, 100000), runs=3, restart_runs=3),
        "failover": lambda c: wl.failover(c, runs=5),
    }


def run_workloads(cluster: wl.Cluster, names: list[str], steps: dict[str, Callable[[wl.Cluster], list[wl.Metric]]],
                  column: str, results: dict[str, list[wl.Metric]], errors: list[str]) -> None:
    for name in names:
        log(f"{column}: {name}")
        t0 = time.monotonic()
        try:
            results.setdefault(column, []).extend(steps[name](cluster))
        except Exception as exc:  # report it and go on with the next workload
            results.setdefault(column, []).extend(getattr(exc, "metrics", []))
            errors.append(f"{column} / {name}: {exc}")
            log(f"{column}: {name} FAILED: {exc}")
            traceback.print_exc(file=sys.stderr)
            with contextlib.suppress(Exception):
                cluster.cancel_all()
                cluster.wait_idle(120)
        log(f"{column}: {name} done in {time.monotonic() - t0:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few runs and small sizes (a smoke test)")
    parser.add_argument("--only", choices=["both", "slurm", "spur"], default="both")
    parser.add_argument("--no-tuned", action="store_true", help="skip Slurm with the tuned SchedulerParameters")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--json", default=str(BASE / "results.json"), help="where to write all samples")
    parser.add_argument("--bindir", help="where Spur's commands are (make bench-slurm: a regular `pip install .`, "
                        "as for make bench); the Spur cluster runs from this interpreter's venv")
    args = parser.parse_args(argv)
    names = [w for w in args.workloads.split(",") if w]
    unknown = set(names) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    steps = plan(args.quick)
    results: dict[str, list[wl.Metric]] = {}
    errors: list[str] = []
    info = machine_info()
    started = time.monotonic()
    log(f"machine: {info}")

    work = Path(tempfile.mkdtemp(prefix="spur-bench-slurm-work-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    try:
        if args.only in ("both", "slurm"):
            cluster = slurm_cluster(work / "slurm")
            cluster.workdir.mkdir()
            cluster.cancel_all()
            cluster.wait_idle(120)
            set_scheduler("default")
            first = [n for n in names if n not in ("scale", "failover")]
            run_workloads(cluster, first, steps, SLURM, results, errors)
            if not args.no_tuned:
                tuned = [n for n in names if n in ("cli", "latency", "throughput", "array")]
                if tuned:
                    set_scheduler("tuned")
                    try:
                        run_workloads(cluster, tuned, plan(args.quick, tuned=True), TUNED, results, errors)
                    finally:
                        set_scheduler("default")
            last = [n for n in names if n in ("scale", "failover")]
            run_workloads(cluster, last, steps, SLURM, results, errors)
            if args.only == "both" and not os.environ.get("KEEP_SLURM"):
                quiet_machine()
        if args.only in ("both", "spur"):
            (work / "spur").mkdir()
            log("starting spur local (3 replicas, 1 node)")
            with wl.spur_local(work / "spur-cluster", replicas=3, nodes=1, cpus=os.cpu_count(), kill_wait=30.0,
                               workdir=work / "spur", max_array_size=ARRAY_TASKS + 1) as spur:
                if args.bindir:  # the commands as installed there, talking to this cluster
                    bindir = os.path.abspath(args.bindir)
                    spur = dataclasses.replace(spur, bindir=bindir, python=os.path.join(bindir, "python3"))
                    log(f"Spur's commands from {bindir}")
                run_workloads(spur, names, steps, SPUR, results, errors)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    columns = {k: results[k] for k in (SLURM, TUNED, SPUR) if k in results}
    ratio = (SPUR, SLURM) if SPUR in columns and SLURM in columns else None
    print(f"# Spur vs Slurm on {info['hostname']}, {info['date']}")
    print(f"nproc={info['nproc']} ({info['cpu']}), memory {info['mem_mb']} MB, kernel {info['kernel']}, "
          f"Python {info['python']}, {info['slurm']}{' (QUICK run)' if args.quick else ''}")
    print()
    print("Values: median [min–max] n=runs, or p50/p99 [min–max]; the last column is the ratio of the medians.")
    print()
    print(wl.render_table(columns, ratio))
    print()
    print("Notes:")
    print(wl.notes(columns))
    if errors:
        print()
        print("Errors:")
        for e in errors:
            print(f"- {e}")
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    try:
        Path(args.json).write_text(json.dumps(
            {"machine": info, "quick": args.quick, "errors": errors,
             "results": {k: [asdict(m) for m in v] for k, v in columns.items()}}, indent=1))
        print(f"all samples: {args.json}")
    except OSError as exc:
        print(f"could not write {args.json}: {exc}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
