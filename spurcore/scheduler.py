"""The pure scheduler: FIFO with resource fit, holds and dependencies.

Invariants:
- Functions here read state and the ``now`` they are given; they never mutate state.
  The leader proposes what ``schedule`` returns; the reducer re-checks the fit.
- Pending reasons are derived, not stored: the same walk that decides what starts also
  says why the others wait (``Resources`` for the first job that does not fit, then
  ``Priority``), so every replica and every restart shows the same reason.
- Strict FIFO: once a job is blocked on resources, later jobs wait behind it (Slurm's
  main scheduler without backfill), so a wide job is never starved by narrow ones.
"""

from __future__ import annotations

import re

from spurcore.model import ClusterState, Job, JobState
from spurcore.ops import HoldKind, JobStart

_DEP_TYPES = ("after", "afterany", "afterok", "afternotok")
_DEP_ITEM = re.compile(r"^(after|afterany|afterok|afternotok):(\d+(?::\d+)*)$")


class DependencyError(ValueError):
    pass


def parse_dependency(text: str) -> tuple[str, list[tuple[str, int]]]:
    """``afterok:1:2,afterany:3`` -> ("," , [("afterok",1),("afterok",2),("afterany",3)]).

    ``,`` joins with AND, ``?`` with OR (one kind per expression, as Slurm requires).
    """
    text = text.strip()
    if not text:
        return ",", []
    sep = "?" if "?" in text else ","
    items: list[tuple[str, int]] = []
    for part in text.split(sep):
        m = _DEP_ITEM.match(part.strip())
        if not m:
            raise DependencyError(f"invalid dependency: {part!r}")
        for jid in m.group(2).split(":"):
            items.append((m.group(1), int(jid)))
    return sep, items


def dependency_item_status(state: ClusterState, kind: str, dep_id: int) -> str:
    """"done", "wait" or "failed" for one dependency entry."""
    dep = state.jobs.get(dep_id)
    if dep is None:
        return "done"  # purged: Slurm clears dependencies on jobs it no longer knows
    if kind == "after":
        return "wait" if dep.state is JobState.PENDING else "done"
    if not dep.terminal or dep.completing:
        return "wait"
    if kind == "afterany":
        return "done"
    ok = dep.state is JobState.COMPLETED
    if kind == "afterok":
        return "done" if ok else "failed"
    return "failed" if ok else "done"


def dependency_status(state: ClusterState, job: Job) -> tuple[str, str]:
    """("none"|"done"|"wait"|"failed", the Dependency= text as scontrol shows it)."""
    if not job.spec.dependency:
        return "none", "(null)"
    sep, items = parse_dependency(job.spec.dependency)
    shown: list[str] = []
    statuses: list[str] = []
    for kind, dep_id in items:
        st = job.dep_resolved.get(f"{kind}:{dep_id}") or dependency_item_status(state, kind, dep_id)
        statuses.append(st)
        if st == "wait":
            shown.append(f"{kind}:{dep_id}(unfulfilled)")
        elif st == "failed":
            shown.append(f"{kind}:{dep_id}(failed)")
    if sep == "?":
        overall = "done" if "done" in statuses else ("wait" if "wait" in statuses else "failed")
    else:
        overall = "failed" if "failed" in statuses else ("wait" if "wait" in statuses else "done")
    if overall == "done":
        return "done", "(null)"
    return overall, sep.join(shown) if shown else "(null)"


def cpus_per_node(job: Job) -> int:
    spec = job.spec
    total = spec.ntasks * spec.cpus_per_task
    return max(1, -(-total // spec.nodes))


def _fit(state: ClusterState, job: Job, free: dict[str, tuple[int, int]]) -> tuple[str, ...] | None:
    need_cpus = cpus_per_node(job)
    need_mem = job.spec.mem_mb
    chosen = []
    for name, (cpus, mem) in free.items():
        if cpus >= need_cpus and mem >= need_mem:
            chosen.append(name)
            if len(chosen) == job.spec.nodes:
                return tuple(chosen)
    return None


def _free_resources(state: ClusterState) -> dict[str, tuple[int, int]]:
    return {
        name: (node.cpus - node.alloc_cpus, node.mem_mb - node.alloc_mem)
        for name, node in sorted(state.nodes.items())
        if node.up
    }


def could_ever_fit(state: ClusterState, job: Job) -> bool:
    """False when no set of registered nodes is big enough (Slurm rejects such a submit)."""
    if not state.nodes:
        return True
    need, mem, wanted = cpus_per_node(job), job.spec.mem_mb, job.spec.nodes
    for node in state.nodes.values():
        if node.cpus >= need and node.mem_mb >= mem:
            wanted -= 1
            if wanted == 0:
                return True
    return False


def _walk(
    state: ClusterState, now: float, starts: list[JobStart] | None, stop_at: int | None = None
) -> dict[int, str]:
    free = _free_resources(state)
    reasons: dict[int, str] = {}
    blocked = False
    # Deciding starts needs only the jobs that may run; reasons need every pending job.
    for job_id in state.runnable if starts is not None else state.pending:
        if stop_at is not None and stop_at in reasons:
            break
        job = state.jobs[job_id]
        if job.completing:
            reasons[job_id] = "None"
            continue
        if job.hold == HoldKind.USER:
            reasons[job_id] = "JobHeldUser"
            continue
        if job.hold == HoldKind.ADMIN:
            reasons[job_id] = "JobHeldAdmin"
            continue
        if job.eligible_time > now:
            reasons[job_id] = "BeginTime"
            continue
        dep, _ = dependency_status(state, job)
        if dep == "wait":
            reasons[job_id] = "Dependency"
            continue
        if dep == "failed":
            reasons[job_id] = "DependencyNeverSatisfied"
            continue
        if blocked:
            if starts is not None:
                break  # strict FIFO: nothing behind a blocked job starts; reasons not wanted
            reasons[job_id] = "Priority"
            continue
        nodes = _fit(state, job, free)
        if nodes is None:
            reasons[job_id] = "Resources"
            blocked = True
            continue
        reasons[job_id] = "None"
        need = cpus_per_node(job)
        for n in nodes:
            cpus, mem = free[n]
            free[n] = (cpus - need, mem - job.spec.mem_mb)
        if starts is not None:
            starts.append(JobStart(job_id, nodes, need, job.spec.mem_mb, now))
    return reasons


def schedule(state: ClusterState, now: float) -> list[JobStart]:
    """The jobs to start now, in FIFO order, each with its nodes and per-node allocation."""
    starts: list[JobStart] = []
    _walk(state, now, starts)
    return starts


def pending_reasons(state: ClusterState, now: float) -> dict[int, str]:
    """Why each pending job waits, as squeue and scontrol show it."""
    return _walk(state, now, None)


def pending_reason(state: ClusterState, job_id: int, now: float) -> str:
    """The reason of one pending job; walks the queue only up to it."""
    return _walk(state, now, None, stop_at=job_id).get(job_id, "None")
