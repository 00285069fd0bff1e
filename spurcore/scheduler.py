"""The pure scheduler: FIFO with resource fit, holds, dependencies and job arrays.

Invariants:
- Functions here read state and the ``now`` they are given; they never mutate state.
  The leader proposes what ``schedule`` returns; the reducer re-checks the fit.
- Pending reasons are derived, not stored: the same walk that decides what starts also
  says why the others wait (``Resources`` for the first job that does not fit, then
  ``Priority``), so every replica and every restart shows the same reason.
- Strict FIFO: once a job is blocked on resources, later jobs wait behind it (Slurm's
  main scheduler without backfill), so a wide job is never starved by narrow ones.
- A job array's pending record starts as many of its tasks as fit, lowest index first,
  never more running at once than its ``%N`` throttle (``JobArrayTaskLimit`` otherwise);
  each start is a ``JobStart`` naming the task, which the reducer splits off.
"""

from __future__ import annotations

from spurcore import arrays
from spurcore.depend import DependencyError, dependency_status, item_status, parse_dependency
from spurcore.hostlist import expand
from spurcore.model import ClusterState, Job, JobState, Node
from spurcore.ops import HoldKind, JobSpec, JobStart

__all__ = [
    "DependencyError",
    "parse_dependency",
    "dependency_status",
    "schedule",
    "pending_reasons",
    "pending_reason",
    "could_ever_fit",
    "node_count",
    "cpus_per_node",
    "mem_per_node",
    "array_running",
]


# --- what a job asks for -------------------------------------------------------------------


def _names(text: str) -> list[str]:
    if not text:
        return []
    try:
        return expand(text)
    except ValueError:
        return []


def node_count(spec: JobSpec) -> int:
    """Nodes to allocate: ``-N``, raised to the ``-w`` list's length and to what
    ``--ntasks-per-node`` needs for ``-n`` tasks (Slurm's controller does the same)."""
    n = spec.nodes
    if spec.nodelist:
        n = max(n, len(_names(spec.nodelist)))
    if spec.ntasks_per_node > 0:
        n = max(n, -(-spec.ntasks // spec.ntasks_per_node))
    return n


def cpus_per_node(job: Job | JobSpec) -> int:
    spec = job.spec if isinstance(job, Job) else job
    nodes = node_count(spec)
    per_node = -(-(spec.ntasks * spec.cpus_per_task) // nodes)
    if spec.ntasks_per_node > 0:
        per_node = max(per_node, spec.ntasks_per_node * spec.cpus_per_task)
    return max(1, per_node)


def mem_per_node(spec: JobSpec, cpus: int) -> int:
    """``--mem`` per node, or ``--mem-per-cpu`` times the CPUs allocated on a node."""
    if spec.mem_per_cpu > 0:
        return spec.mem_per_cpu * cpus
    return spec.mem_mb


def array_running(state: ClusterState, array_job_id: int) -> int:
    """Tasks of an array holding resources (what its ``%N`` throttle counts)."""
    n = 0
    for job_id in state.array_members.get(array_job_id, ()):
        job = state.jobs[job_id]
        if job.allocated or job.completing:
            n += 1
    return n


# --- fit -----------------------------------------------------------------------------------


def _node_usable(state: ClusterState, node: Node, spec: JobSpec) -> bool:
    """Exclusivity: ``--exclusive`` wants an empty node; a node running an exclusive job
    takes nobody else (``--exclusive=user``: nobody but the same user's exclusive=user jobs)."""
    if spec.exclusive and node.jobs:
        if spec.exclusive != "user":
            return False
        return all(
            (j := state.jobs.get(jid)) is None or (j.spec.uid == spec.uid and j.spec.exclusive == "user")
            for jid in node.jobs
        )
    for jid in node.jobs:
        other = state.jobs.get(jid)
        if other is None or not other.spec.exclusive or not (other.allocated or other.completing):
            continue
        if other.spec.exclusive != "user" or other.spec.uid != spec.uid:
            return False
    return True


def _fit(state: ClusterState, job: Job, free: dict[str, tuple[int, int]]) -> tuple[tuple[str, ...], int, int] | None:
    """(nodes, cpus per node, memory per node) for ``job`` on the free resources, or None.
    ``-w`` nodes come first (the batch host is the first of them), then the others in name
    order; ``-x`` nodes are never used."""
    spec = job.spec
    wanted = node_count(spec)
    required = _names(spec.nodelist)
    excluded = set(_names(spec.exclude))
    chosen: list[str] = []
    need = cpus_per_node(job)
    mem = mem_per_node(spec, need)
    candidates = required + [n for n in free if n not in required]
    exclusive_cpus = 0
    for name in candidates:
        if name in excluded or name not in free:
            if name in required:
                return None
            continue
        cpus, mem_free = free[name]
        node = state.nodes[name]
        if spec.exclusive:
            if cpus < node.cpus or not _node_usable(state, node, spec) or cpus < need or mem_free < mem:
                if name in required:
                    return None
                continue
            exclusive_cpus = node.cpus if not exclusive_cpus else min(exclusive_cpus, node.cpus)
        elif cpus < need or mem_free < mem or not _node_usable(state, node, spec):
            if name in required:
                return None
            continue
        chosen.append(name)
        if len(chosen) == wanted:
            if spec.exclusive:
                return tuple(chosen), exclusive_cpus, mem_per_node(spec, exclusive_cpus)
            return tuple(chosen), need, mem
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
    spec = job.spec
    need = cpus_per_node(job)
    mem = mem_per_node(spec, need)
    excluded = set(_names(spec.exclude))
    required = _names(spec.nodelist)
    if any(n not in state.nodes or n in excluded for n in required):
        return False
    wanted = node_count(spec)
    for name, node in state.nodes.items():
        if name not in excluded and node.cpus >= need and node.mem_mb >= mem:
            wanted -= 1
            if wanted == 0:
                return True
    return False


# --- the walk ------------------------------------------------------------------------------


def _waiting_reason(state: ClusterState, job: Job, now: float) -> str | None:
    """Why ``job`` cannot be considered at all now (None: it may start if it fits)."""
    if job.completing:
        return "None"
    if job.hold == HoldKind.USER:
        return "JobHeldUser"
    if job.hold == HoldKind.ADMIN:
        return "JobHeldAdmin"
    if job.eligible_time > now:
        return "BeginTime"
    return None


def _dependency_reason(status: str) -> str | None:
    if status == "wait":
        return "Dependency"
    if status == "failed":
        return "DependencyNeverSatisfied"
    return None


def _has_aftercorr(job: Job) -> bool:
    return "aftercorr" in job.spec.dependency


def _ready_tasks(state: ClusterState, job: Job, now: float) -> tuple[list[int], str | None]:
    """The pending record's tasks that may start now, lowest first, within the throttle;
    else ([], reason)."""
    limit = job.array_throttle
    room = limit - array_running(state, job.array_job_id) if limit else arrays.count(job.array_pending)
    if room <= 0:
        return [], "JobArrayTaskLimit"
    if not _has_aftercorr(job):
        dep, _ = dependency_status(state, job, now)
        reason = _dependency_reason(dep)
        if reason:
            return [], reason
        out = []
        for index in arrays.indexes(job.array_pending):
            out.append(index)
            if len(out) >= room:
                break
        return out, None
    # aftercorr: each task waits for its own counterpart.
    sep, items = parse_dependency(job.spec.dependency)
    out, waiting = [], False
    for index in arrays.indexes(job.array_pending):
        statuses = [item_status(state, job, item, now, index) for item in items]
        if sep == "?":
            ready, failed = "done" in statuses, all(s == "failed" for s in statuses)
        else:
            ready, failed = all(s == "done" for s in statuses), "failed" in statuses
        if ready:
            out.append(index)
            if len(out) >= room:
                break
        elif not failed:
            waiting = True
    if out:
        return out, None
    # The record waits while any of its tasks may still become ready.
    return [], "Dependency" if waiting else "DependencyNeverSatisfied"


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
        reason = _waiting_reason(state, job, now)
        if reason is not None:
            reasons[job_id] = reason
            continue
        tasks: list[int] = []
        if job.array_task_id < 0 and job.array_pending:
            tasks, reason = _ready_tasks(state, job, now)
        else:
            dep, _ = dependency_status(state, job, now)
            reason = _dependency_reason(dep)
        if reason is not None:
            reasons[job_id] = reason
            continue
        if blocked:
            if starts is not None:
                break  # strict FIFO: nothing behind a blocked job starts; reasons not wanted
            reasons[job_id] = "Priority"
            continue
        started = 0
        for task in tasks or [-1]:
            fit = _fit(state, job, free)
            if fit is None:
                break
            nodes, cpus, mem = fit
            for n in nodes:
                c, m = free[n]
                free[n] = (c - cpus, m - mem)
            started += 1
            if starts is not None:
                starts.append(JobStart(job_id, nodes, cpus, mem, now, task))
        if started == 0:
            reasons[job_id] = "Resources"
            blocked = True
        elif tasks and started < len(tasks):
            reasons[job_id] = "Resources"  # the rest of the array waits for room
            blocked = True
        elif tasks and job.array_throttle and started < arrays.count(job.array_pending):
            reasons[job_id] = "JobArrayTaskLimit"
        else:
            reasons[job_id] = "None"
    return reasons


def schedule(state: ClusterState, now: float) -> list[JobStart]:
    """The jobs (and array tasks) to start now, in FIFO order, each with its nodes and
    per-node allocation."""
    starts: list[JobStart] = []
    _walk(state, now, starts)
    return starts


def pending_reasons(state: ClusterState, now: float) -> dict[int, str]:
    """Why each pending job waits, as squeue and scontrol show it."""
    return _walk(state, now, None)


def pending_reason(state: ClusterState, job_id: int, now: float) -> str:
    """The reason of one pending job; walks the queue only up to it."""
    return _walk(state, now, None, stop_at=job_id).get(job_id, "None")


def dependency_text(state: ClusterState, job: Job, now: float) -> str:
    return dependency_status(state, job, now)[1]


__all__ += ["dependency_text", "JobState"]
