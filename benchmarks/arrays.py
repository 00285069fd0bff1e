"""Job array benchmarks (issue: arrays), each beside a baseline measured in the same run.

    python -m benchmarks.arrays [--tasks N]

1. What a pending 100,000-task array costs: its log entry (the encoded replicated entry)
   and its hot-state record (snapshot bytes and Python heap), beside 100,000 separate
   pending jobs. Target: under 10 KB each.
2. A 10,000-task array of ``true`` on one 2-CPU node: tasks/s from submit to the last task
   done, beside the same number of separate jobs' rate through the same client (measured on
   a smaller count: separate jobs are the slow path the array avoids). Target >= 200 tasks/s.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from typing import Any

from benchmarks.spur_workloads import Metric, spur_local

SPEC_FIELDS = {"name": "arr", "script": "#!/bin/sh\ntrue\n", "stdout": "/dev/null"}


def pending_cost(tasks: int = 100_000) -> list[Metric]:
    from spurcore.codec import encode_batch
    from spurcore.model import ClusterState
    from spurcore.ops import JobSpec, JobSubmitted, NodeRegistered
    from spurcore.reduce import apply
    from spurcore.snapshot import encode_state

    spec = JobSpec("arr", "alice", 1000, 100, "#!/bin/sh\ntrue\n", (), {"HOME": "/home/alice"}, "/home/alice",
                   array=f"0-{tasks - 1}%100")

    def measure(ops: list[Any]) -> tuple[int, int, int]:
        base = ClusterState()
        apply(base, NodeRegistered("n1", 2, 4096, "", 0.0))
        empty = len(encode_state(base))
        log_bytes = len(encode_batch(ops))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for op in ops:
            apply(base, op)
        heap = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return log_bytes, len(encode_state(base)) - empty, heap

    one = JobSubmitted("r", spec, 1.0)
    import attrs

    plain = attrs.evolve(spec, array="")
    separate = [JobSubmitted(f"r{i}", plain, 1.0) for i in range(tasks)]
    a_log, a_state, a_heap = measure([one])
    s_log, s_state, s_heap = measure(separate)
    return [
        Metric("array.pending.log", f"pending {tasks:,}-task array: log entry", "bytes", [float(a_log)]),
        Metric("array.pending.log.base", f"{tasks:,} separate pending jobs: log", "bytes", [float(s_log)]),
        Metric("array.pending.state", f"pending {tasks:,}-task array: hot-state (snapshot) bytes", "bytes",
               [float(a_state)]),
        Metric("array.pending.state.base", f"{tasks:,} separate pending jobs: snapshot bytes", "bytes",
               [float(s_state)]),
        Metric("array.pending.heap", f"pending {tasks:,}-task array: Python heap", "bytes", [float(a_heap)]),
        Metric("array.pending.heap.base", f"{tasks:,} separate pending jobs: Python heap", "bytes",
               [float(s_heap)]),
    ]


ACTIVE = ["PENDING", "RUNNING", "COMPLETING", "SUSPENDED"]


def _rows(client: Any, refs: list[str], states: list[str] | None = None) -> list[Any]:
    import msgpack

    query: dict[str, Any] = {"job_refs": refs, "fields": ["state"], "columns": True}
    if states:
        query["states"] = states
    recs = client.call("jobs", query)
    return [r for chunk in recs.get("row_chunks", []) for r in msgpack.unpackb(chunk, raw=False)]


def _wait_done(client: Any, refs: list[str], budget: float) -> int:
    """Poll every 50 ms, as `squeue -t PD,R,CG,S` would, until no record of ``refs`` is
    pending, running, completing or suspended (the query lists only those: the finished
    ones would make each poll cost more as they pile up, which is the poll's cost, not the
    scheduler's; `make bench-slurm` polls the same way, with `squeue -r -t ...`). Returns
    how many records ended, counted once at the end (or raises after ``budget`` seconds)."""
    deadline = time.monotonic() + budget
    while True:
        busy = [r for r in _rows(client, refs, ACTIVE) if r[0] in ACTIVE]
        if not busy:
            return len(_rows(client, refs))
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(busy)} records still busy after {budget:.0f} s")
        time.sleep(0.05)


def array_throughput(cluster: Any, tasks: int = 10_000, separate: int = 300, budget: float = 600) -> list[Metric]:
    from spurio.client import Client, new_request_id
    from spurio.config import load

    config = load(os.path.join(cluster.extra["dir"], "spur.toml"))
    spec = {**SPEC_FIELDS, "cwd": str(cluster.workdir)}
    with Client(config, retry_for=60) as client:
        t0 = time.monotonic()
        array_id = client.call("submit", {"request_id": new_request_id(),
                                          "spec": {**spec, "array": f"0-{tasks - 1}"}})["job_id"]
        done = _wait_done(client, [str(array_id)], budget)
        array_s = time.monotonic() - t0
        t0 = time.monotonic()
        ids = [client.call("submit", {"request_id": new_request_id(), "spec": spec})["job_id"]
               for _ in range(separate)]
        _wait_done(client, [str(j) for j in ids], budget)
        separate_s = time.monotonic() - t0
    return [
        Metric("array.rate", f"{tasks:,}-task array of `true`, one 2-CPU node: tasks/s, submit -> last done",
               "tasks/s", [done / array_s], higher_is_better=True),
        Metric("array.rate.base", f"{separate} separate jobs of `true`, same client: jobs/s", "jobs/s",
               [separate / separate_s], higher_is_better=True),
    ]


def run(tasks: int = 10_000, quick: bool = False) -> list[Metric]:
    metrics = pending_cost(10_000 if quick else 100_000)
    with spur_local(replicas=3, nodes=1, cpus=2, kill_wait=2.0, max_array_size=max(tasks, 1001) + 1) as cluster:
        metrics += array_throughput(cluster, tasks=1000 if quick else tasks, separate=100 if quick else 300)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for m in run(args.tasks, args.quick):
        print(f"{m.label}: {m.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
