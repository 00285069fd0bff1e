"""The history checker: what clients saw, what nodes ran, and what the replicas hold.

Inputs are plain data (pure functions, no I/O except ``load_*``):
- client histories (``workload.py``'s JSON lines): invoke, then ok / fail / unknown;
- task records (``<task_dir>/<node>.log``): ``start|end JOB RESTARTS NODE PID UPTIME``;
- the final job table and every replica's (digest, applied index) after healing;
- the scenario's own log: fault windows, and which clients were cut off with a minority.

The properties (each violation is one line of text naming the op or job):
1. every acknowledged submit exists exactly once, with the acknowledged job id; an
   unknown submit exists at most once; a failed submit not at all; no job nobody submitted;
2. every acknowledged cancel ends its job (CANCELLED, and its task is no longer running);
3. no job runs on two nodes, or twice, without a requeue (same restart count);
4. a client confined to a minority never has a write acknowledged in that window;
5. a read invoked after a write was acknowledged sees that write (linearizable reads);
6. replicas at the same applied index have the same digest, and all reach one index.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTIVE = {"PENDING", "RUNNING", "SUSPENDED", "CONFIGURING", "PD", "R", "S"}
WRITES = ("submit", "cancel")


@dataclass
class Op:
    client: str
    kind: str
    req: str
    invoke: float
    end: float | None = None
    outcome: str = "pending"  # ok, fail, unknown; pending if the client never finished it
    job: int | None = None
    name: str | None = None
    error: str = ""
    seen: dict[str, str] = field(default_factory=dict)


@dataclass
class Task:
    job: int
    restarts: int
    node: str
    pid: int
    start: float
    end: float | None = None


def load_history(paths: Iterable[Path]) -> list[Op]:
    ops: dict[tuple[str, str], Op] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a line torn by a killed client
            if e.get("op") not in ("submit", "cancel", "read"):
                continue
            key = (e["client"], e["req"])
            if e["phase"] == "invoke":
                ops[key] = Op(e["client"], e["op"], e["req"], e["t"], job=e.get("job"), name=e.get("name"))
                continue
            op = ops.get(key)
            if op is None:
                continue
            op.end, op.outcome = e["t"], e["phase"]
            op.job = e.get("job", op.job)
            op.error = e.get("error", "")
            op.seen = e.get("seen") or {}
    return sorted(ops.values(), key=lambda o: o.invoke)


def load_tasks(task_dir: Path) -> list[Task]:
    tasks: dict[tuple[int, int, str, int], Task] = {}
    for path in sorted(task_dir.glob("*.log")):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) < 6 or parts[0] not in ("start", "end"):
                continue
            job, restarts, node, pid, t = int(parts[1]), int(parts[2]), parts[3], int(parts[4]), float(parts[5])
            key = (job, restarts, node, pid)
            if parts[0] == "start":
                tasks[key] = Task(job, restarts, node, pid, t)
            elif key in tasks:
                tasks[key].end = t
    return list(tasks.values())


@dataclass
class Window:
    """Clients cut off with a minority of replicas from ``start`` to ``end`` (monotonic)."""

    clients: tuple[str, ...]
    start: float
    end: float


def check(ops: list[Op], tasks: list[Task], jobs: list[dict[str, Any]],
          digests: dict[int, tuple[str, int] | None], *, minority: Iterable[Window] = (),
          alive: set[int] | None = None) -> list[str]:
    """Every violation of the properties above (empty: the history is fine).
    ``jobs``: the final job table (``job_id``, ``name``, ``state``); ``alive``: pids of task
    records still running now (property 2 looks for cancelled jobs among them)."""
    bad: list[str] = []
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in jobs:
        by_name[str(j.get("name"))].append(j)
    by_id = {int(j["job_id"]): j for j in jobs}
    submitted_names = {o.name for o in ops if o.kind == "submit"}

    # 1. submits
    for o in ops:
        if o.kind != "submit":
            continue
        found = by_name.get(str(o.name), [])
        if o.outcome == "ok":
            if len(found) != 1:
                bad.append(f"acknowledged submit {o.req[:12]} (job {o.job}) exists {len(found)} times")
            elif int(found[0]["job_id"]) != o.job:
                bad.append(f"acknowledged submit {o.req[:12]}: job {found[0]['job_id']}, acknowledged as {o.job}")
        elif o.outcome in ("unknown", "pending") and len(found) > 1:
            bad.append(f"submit {o.req[:12]} with unknown outcome exists {len(found)} times")
        elif o.outcome == "fail" and found:
            bad.append(f"failed submit {o.req[:12]} ({o.error}) exists as job {found[0]['job_id']}")
    for name, found in by_name.items():
        if name.startswith("w") and name not in submitted_names:
            bad.append(f"job {found[0]['job_id']} ({name}) was never submitted")

    # 2. cancels
    for o in ops:
        if o.kind == "cancel" and o.outcome == "ok":
            j = by_id.get(int(o.job or 0))
            if j is None:
                bad.append(f"acknowledged cancel of job {o.job}: job missing")
            elif j["state"] != "CANCELLED":
                bad.append(f"acknowledged cancel of job {o.job}: final state {j['state']}")
            elif alive:
                running = [t for t in tasks if t.job == o.job and t.pid in alive]
                if running:
                    bad.append(f"cancelled job {o.job} still runs (pid {running[0].pid} on {running[0].node})")

    # 3. tasks
    runs: dict[tuple[int, int], list[Task]] = defaultdict(list)
    for t in tasks:
        runs[(t.job, t.restarts)].append(t)
    for (job, restarts), ts in sorted(runs.items()):
        if len(ts) > 1:
            where = ", ".join(sorted(t.node for t in ts))
            bad.append(f"job {job} run {restarts} started {len(ts)} times ({where})")
        j = by_id.get(job)
        if j is not None and j["state"] == "PENDING":
            bad.append(f"job {job} ran on {ts[0].node} but is PENDING")

    # 4. minority writes
    for w in minority:
        for o in ops:
            if (o.kind in WRITES and o.client in w.clients and o.outcome == "ok" and o.invoke >= w.start
                    and o.end is not None and o.end <= w.end):
                bad.append(f"{o.kind} {o.req[:12]} by {o.client} acknowledged from a minority")

    # 5. read after write
    acked = sorted((o for o in ops if o.kind in WRITES and o.outcome == "ok" and o.end is not None),
                   key=lambda o: o.end or 0.0)
    for r in ops:
        if r.kind != "read" or r.outcome != "ok":
            continue
        for w in acked:
            if w.end is None or w.end >= r.invoke:
                break
            state = r.seen.get(str(w.job))
            if w.kind == "submit" and state is None:
                bad.append(f"read {r.req[:12]} by {r.client} misses job {w.job} acknowledged "
                           f"{r.invoke - w.end:.3f} s before it")
            elif w.kind == "cancel" and state in ACTIVE:
                bad.append(f"read {r.req[:12]} by {r.client} shows job {w.job} {state} after its cancel "
                           f"was acknowledged")

    # 6. digests
    indexes = {v[1] for v in digests.values() if v}
    if any(v is None for v in digests.values()):
        bad.append(f"replicas without a digest: {sorted(r for r, v in digests.items() if v is None)}")
    if len(indexes) > 1:
        bad.append(f"replicas did not converge: {sorted(indexes)}")
    by_index: dict[int, set[str]] = defaultdict(set)
    for v in digests.values():
        if v:
            by_index[v[1]].add(v[0])
    for index, ds in by_index.items():
        if len(ds) > 1:
            bad.append(f"replicas differ at applied index {index}: {sorted(d[:12] for d in ds)}")
    return bad


def unavailability(ops: list[Op], start: float, end: float, *, threshold: float = 1.0) -> list[tuple[float, float]]:
    """Gaps longer than ``threshold`` between acknowledged writes, within [start, end]."""
    acks = sorted(o.end for o in ops if o.kind in WRITES and o.outcome == "ok" and o.end is not None)
    points = [start] + [t for t in acks if start <= t <= end] + [end]
    return [(a, b) for a, b in zip(points, points[1:], strict=False) if b - a > threshold]


def figures(ops: list[Op], *, fault: float | None = None, heal: float | None = None,
            start: float | None = None, end: float | None = None) -> dict[str, Any]:
    """The numbers a scenario prints: outcomes, latencies, failover, unavailability."""
    out: dict[str, Any] = {}
    counts = Counter((o.kind, o.outcome) for o in ops)
    out["ops"] = {f"{k}:{v}": n for (k, v), n in sorted(counts.items())}
    lat = sorted(o.end - o.invoke for o in ops if o.kind in WRITES and o.outcome == "ok" and o.end is not None)
    if lat:
        out["write_latency_s"] = {
            "p50": round(statistics.median(lat), 3),
            "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3),
            "max": round(lat[-1], 3),
        }
    if start is None:
        start = min((o.invoke for o in ops), default=0.0)
    if end is None:
        end = max((o.end or o.invoke for o in ops), default=start)
    windows = unavailability(ops, start, end)
    out["unavailable_s"] = [(round(a - start, 2), round(b - a, 2)) for a, b in windows]
    if fault is not None:
        after = [o for o in ops if o.kind in WRITES and o.outcome == "ok" and o.invoke >= fault]
        out["first_write_after_fault_s"] = round(min(o.end for o in after) - fault, 3) if after else None
        blocked = [(a, b) for a, b in windows if b >= fault and (heal is None or a <= heal)]
        out["longest_write_gap_during_fault_s"] = round(max((b - a for a, b in blocked), default=0.0), 2)
    return out
