"""Replay benchmark: decode+apply ops/s over 1,000,000 generated ops, beside the bare msgpack
decode rate of the same bytes, measured in the same run.

    python -m benchmarks.replay [--ops N] [--repeat R]

The op mix follows a job's life: submit, start, launch ACK, a step created and completed,
the batch script's completion, plus cancels with their KILL ACK; node registrations first.
Ops are grouped in batches of 100 as the controller's group commit writes them.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import msgpack

from spurcore.codec import decode_batch, encode_batch
from spurcore.model import ClusterState
from spurcore.ops import (
    ActionAcked,
    ActionRequested,
    JobLaunched,
    JobNodeComplete,
    JobSpec,
    JobsPurged,
    JobStart,
    JobStepComplete,
    JobSubmitted,
    NodeRegistered,
    StepCreated,
)
from spurcore.reduce import apply
from spurcore.snapshot import tune_gc


def generate(n_ops: int, batch: int = 100) -> list[bytes]:
    spec = JobSpec("job.sh", "alice", 1000, 100, "#!/bin/bash\nsrun true\n", (), {"HOME": "/home/alice"}, "/home/alice")
    nodes = [f"node{i}" for i in range(1, 65)]
    ops: list = [NodeRegistered(n, 64, 256000, "", 0.0) for n in nodes]
    job_id, action_id, t = 0, 0, 1.0
    while len(ops) < n_ops:
        job_id += 1
        t += 0.001
        node = nodes[job_id % len(nodes)]
        ops.append(JobSubmitted(f"r{job_id}", spec, t))
        ops.append(JobStart(job_id, (node,), 1, 0, t))
        ops.append(JobLaunched(job_id, node, t))
        if job_id % 10 == 0:
            action_id += 1
            ops.append(ActionRequested("", job_id, -1, 1, 0, 0, 1000, t))
            ops.append(JobNodeComplete(job_id, node, 0, 15, False, t))
            ops.append(ActionAcked(action_id, node, 0, 0, t))
        else:
            ops.append(StepCreated(f"s{job_id}", job_id, "true", ("true",), 1, "", 1000, t))
            ops.append(JobStepComplete(job_id, 0, node, 0, 0, False, t))
            ops.append(JobNodeComplete(job_id, node, job_id % 3, 0, False, t))
        if job_id % 1000 == 0:  # MinJobAge purges keep the hot state bounded
            ops.append(JobsPurged(tuple(range(job_id - 1999, job_id - 999)), t))
    ops = ops[:n_ops]
    return [encode_batch(ops[i : i + batch]) for i in range(0, len(ops), batch)]


def measure(blobs: list[bytes], n_ops: int) -> tuple[float, float]:
    gc.collect()
    t0 = time.perf_counter()
    for blob in blobs:
        msgpack.unpackb(blob, raw=False, use_list=True, strict_map_key=False)
    bare = n_ops / (time.perf_counter() - t0)
    state = ClusterState()
    t0 = time.perf_counter()
    for blob in blobs:
        for op in decode_batch(blob):
            apply(state, op)
    full = n_ops / (time.perf_counter() - t0)
    return full, bare


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    tune_gc()  # as spurctld runs
    blobs = generate(args.ops)
    runs = [measure(blobs, args.ops) for _ in range(args.repeat)]
    full = statistics.median(r[0] for r in runs)
    bare = statistics.median(r[1] for r in runs)
    spread = (max(r[0] for r in runs) - min(r[0] for r in runs)) / full
    print(f"replay: decode+apply {full:,.0f} ops/s; bare msgpack decode {bare:,.0f} ops/s; "
          f"ratio {full / bare:.3f}; spread ±{spread * 50:.1f}% over {args.repeat} runs of {args.ops:,} ops "
          f"(target >= 200,000 ops/s)")
    return {"figure": "replay decode+apply ops/s", "value": full, "baseline": bare, "ratio": full / bare,
            "spread": spread, "target": 200_000}


if __name__ == "__main__":
    main()
