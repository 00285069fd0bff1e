"""Step launch benchmark (issue 10): ``srun -n 64 true`` on 2 nodes inside an allocation,
from srun's start to its exit, beside ``srun -n 1 true`` in the same allocation.

    python -m benchmarks.steps [--runs N]

An allocation of 2 nodes x 32 CPUs is held by ``salloc`` running this module's inner
loop, so every measured srun is a step of a running job (step_create, launch on both
agents, 64 task forks, relayed exits, JobStepComplete from both nodes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def _inner(runs: int) -> None:
    """Inside the allocation: time each srun, print the samples as JSON."""
    out: dict[str, list[float]] = {"n64": [], "n1": []}
    for _ in range(runs):
        for key, ntasks, nodes in (("n1", 1, 1), ("n64", 64, 2)):
            t0 = time.perf_counter()
            subprocess.run([str(BIN / "srun"), f"-n{ntasks}", f"-N{nodes}", "true"], check=True)
            out[key].append(time.perf_counter() - t0)
    print(json.dumps(out), flush=True)


def measure(runs: int = 10) -> list[dict[str, Any]]:
    from spurctld.local import LocalCluster, write_config

    with tempfile.TemporaryDirectory(prefix="spur-steps-bench") as d:
        write_config(d, replicas=1, nodes=2, cpus=32, kill_wait=2.0)
        cluster = LocalCluster(d)
        cluster.up()
        try:
            proc = subprocess.run(
                [str(BIN / "salloc"), "-Q", "-N2", "-n64", sys.executable, "-m", "benchmarks.steps", "--inner",
                 "--runs", str(runs)], env=cluster.env, capture_output=True, text=True, timeout=600,
                cwd=str(Path(__file__).resolve().parent.parent))
        finally:
            cluster.down()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark allocation failed: {proc.stderr}")
    samples = json.loads(proc.stdout.strip().splitlines()[-1])
    n64, n1 = samples["n64"], samples["n1"]
    return [{"figure": "srun -n 64 true on 2 nodes, launch to exit p50", "value": statistics.median(n64),
             "baseline": statistics.median(n1), "baseline_name": "srun -n 1 true, same allocation", "unit": "s",
             "spread": (max(n64) - min(n64)) / 2 if len(n64) > 1 else 0.0, "target": "", "samples": n64}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        _inner(args.runs)
        return 0
    for row in measure(args.runs):
        print(f"{row['figure']}: {row['value'] * 1000:.0f} ms (srun -n 1: {row['baseline'] * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
