"""The pure scheduler: Slurm's main scheduler and sched/backfill in one pass.

``plan(state, now)`` walks the runnable jobs in scheduling order (partition PriorityTier,
then priority from ``spurcore.priority``, then job id) and decides, for each:

- why it cannot be considered (held, BeginTime, dependencies, an array's ``%N`` throttle,
  its partition's state and limits, an association or QOS limit): a pending reason;
- else whether it fits now on its partition's usable nodes (``-w``/``-x``, ``--exclusive``,
  ``--constraint`` features, GRES; lower node Weight first) without delaying any reservation
  made earlier in the pass: then it starts (a ``JobStart``);
- else it waits (``Resources`` for the first such job of its partition, ``Priority`` for
  later ones), and with sched/backfill it gets a reservation: the earliest time its nodes
  are free, computed from the running jobs' time limits and the reservations of the jobs
  before it (at most ``bf_max_job_test`` of them, within ``bf_window``, times rounded up to
  ``bf_resolution``). Later jobs start only where they end before, or do not touch, every
  reservation: backfill never delays the reserved start of a higher-priority job.

With sched/builtin there are no reservations: once a job of a partition waits, later jobs of
that partition wait too (strict FIFO per partition, Slurm's main scheduler alone).

Invariants:
- Functions here read state and the ``now`` they are given; they never mutate state. The
  leader proposes what ``schedule`` returns; the reducer re-checks the fit.
- Pending reasons and expected start times are derived, never stored: the same walk that
  decides what starts also says why the others wait, so every replica and every restart
  shows the same reason.
- The degenerate case is FIFO: with every priority weight 0 and one partition, jobs are
  taken in job id order and the first that does not fit blocks the rest (sched/builtin) or
  holds a reservation that later jobs may only fill around (sched/backfill).
- A job array's pending record starts as many of its tasks as fit, lowest index first,
  never more running at once than its ``%N`` throttle (``JobArrayTaskLimit`` otherwise);
  each start is a ``JobStart`` naming the task, which the reducer splits off.
- A pass over 100,000 pending jobs stays cheap: the priority order is memoized, jobs of a
  blocked partition cost a dictionary lookup, and the walk ends once every partition is
  blocked (or no CPU is free) and the backfill test budget is spent.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Collection
from typing import Any

from spurcore import arrays, gres, policy
from spurcore.depend import DependencyError, dependency_status, item_status, parse_dependency
from spurcore.model import ClusterState, Job, JobState, Node, Partition, partition_nodes, partitions_of
from spurcore.ops import HoldKind, JobSpec, JobStart
from spurcore.priority import MASK, PerState, queues
from spurcore.resources import (
    Need,
    features_valid,
    has_features,
    job_need,
    mem_per_node,
    node_count,
)

__all__ = [
    "DependencyError",
    "parse_dependency",
    "dependency_status",
    "schedule",
    "plan",
    "Plan",
    "pending_reasons",
    "pending_reason",
    "planned_start",
    "could_ever_fit",
    "node_count",
    "cpus_per_node",
    "mem_per_node",
    "array_running",
    "features_valid",
    "job_need",
]

INF = math.inf


def cpus_per_node(job: Job | JobSpec) -> int:
    spec = job.spec if isinstance(job, Job) else job
    return job_need(spec).cpus


def array_running(state: ClusterState, array_job_id: int) -> int:
    """Tasks of an array holding resources (what its ``%N`` throttle counts)."""
    n = 0
    for job_id in state.array_members.get(array_job_id, ()):
        job = state.jobs[job_id]
        if job.allocated or job.completing:
            n += 1
    return n


# --- exclusivity ---------------------------------------------------------------------------


def effective_exclusive(part: Partition | None, spec: JobSpec) -> str:
    """``--exclusive``, or what the partition imposes (OverSubscribe=EXCLUSIVE: whole nodes;
    ExclusiveUser=YES: nodes shared only by one user's jobs)."""
    if part is not None:
        if part.oversubscribe == "EXCLUSIVE":
            return "exclusive"
        if part.exclusive_user and not spec.exclusive:
            return "user"
    return spec.exclusive


def _running_exclusive(state: ClusterState, job: Job) -> str:
    return effective_exclusive(partitions_of(state).get(job.partition), job.spec)


def _node_usable(state: ClusterState, node: Node, spec: JobSpec, exclusive: str) -> bool:
    """Exclusivity: ``--exclusive`` wants an empty node; a node running an exclusive job
    takes nobody else (``--exclusive=user``: nobody but the same user's exclusive=user jobs)."""
    if not node.jobs:
        return True
    if exclusive:
        if exclusive != "user":
            return False
        return all(
            (j := state.jobs.get(jid)) is None or (j.spec.uid == spec.uid and _running_exclusive(state, j) == "user")
            for jid in node.jobs
        )
    for jid in node.jobs:
        other = state.jobs.get(jid)
        if other is None or not (other.allocated or other.completing):
            continue
        other_excl = _running_exclusive(state, other)
        if not other_excl:
            continue
        if other_excl != "user" or other.spec.uid != spec.uid:
            return False
    return True


# --- the reservation timeline (sched/backfill) ---------------------------------------------


def _gsub(a: dict[Any, int], b: dict[Any, int]) -> dict[Any, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) - v
    return out


def _gadd(a: dict[Any, int], b: dict[Any, int]) -> dict[Any, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def _consumption(node: Node, request: gres.Request) -> dict[tuple[str, str], int]:
    """The typed devices ``request`` takes on ``node`` (chosen on its device layout)."""
    if not request:
        return {}
    total = gres.total_counts(node.gres)
    left = gres.take(total, request)
    if left is None:
        return {}
    return {k: total[k] - left.get(k, 0) for k in total if total[k] != left.get(k, 0)}


class _Profile:
    """One node's availability over time: breakpoints ``times`` (ascending, the first is
    now) and, from each until the next, the free CPUs, memory and GRES counts."""

    __slots__ = ("times", "cpus", "mem", "gres", "version")

    def __init__(self, now: float, cpus: int, mem: int, g: dict[Any, int] | None) -> None:
        self.times: list[float] = [now]
        self.cpus: list[int] = [cpus]
        self.mem: list[int] = [mem]
        self.gres: list[dict[Any, int]] = [dict(g or {})]
        self.version = 0

    def _split(self, t: float) -> int:
        """The index of a breakpoint at ``t`` (made if needed; t >= now)."""
        i = bisect.bisect_left(self.times, t)
        if i < len(self.times) and self.times[i] == t:
            return i
        self.times.insert(i, t)
        self.cpus.insert(i, self.cpus[i - 1])
        self.mem.insert(i, self.mem[i - 1])
        self.gres.insert(i, dict(self.gres[i - 1]))
        return i

    def add(self, t0: float, t1: float, cpus: int, mem: int, g: dict[Any, int] | None) -> None:
        """Add (or with negative amounts, take) resources during [t0, t1)."""
        i = self._split(t0)
        j = self._split(t1) if t1 != INF else len(self.times)
        for k in range(i, j):
            self.cpus[k] += cpus
            self.mem[k] += mem
            if g:
                gk = self.gres[k]
                for key, v in g.items():
                    gk[key] = gk.get(key, 0) + v
        self.version += 1

    def _ok(self, k: int, cpus: int, mem: int, request: gres.Request) -> bool:
        return self.cpus[k] >= cpus and self.mem[k] >= mem and (
            not request or gres.take(self.gres[k], request) is not None)

    def fits(self, t0: float, duration: float, cpus: int, mem: int, request: gres.Request) -> bool:
        times = self.times
        k = max(0, bisect.bisect_right(times, t0) - 1)
        end = t0 + duration
        while k < len(times) and times[k] < end:
            if not self._ok(k, cpus, mem, request):
                return False
            k += 1
        return True

    def windows(self, duration: float, cpus: int, mem: int, request: gres.Request) -> list[tuple[float, float]]:
        """The start times at which the node could run the job for ``duration``, as closed
        intervals [start, end] (end INF: any later start)."""
        times = self.times
        out: list[tuple[float, float]] = []
        start = times[0]
        n = len(times)
        for k in range(n):
            if self._ok(k, cpus, mem, request):
                continue
            a, b = times[k], times[k + 1] if k + 1 < n else INF
            lo = a - duration  # starts in (a - duration, b) overlap this segment; lo itself ends at a
            if lo >= start:
                out.append((start, lo))
            if b > start:
                start = b
            if start == INF:
                return out
        out.append((start, INF))
        return out


class _Timeline:
    """The nodes' profiles for one pass: free now, plus the running jobs' ends (their time
    limits, rounded up to bf_resolution), less the reservations made so far."""

    def __init__(self, state: ClusterState, now: float, resolution: int, free: dict[str, list[Any]],
                 started: list[tuple[str, float, int, int, dict[Any, int]]], projected: Collection[int] = ()) -> None:
        self.state, self.now, self.res = state, now, max(1, resolution)
        self.free = free
        self.releases: dict[str, list[tuple[float, int, int, dict[Any, int]]]] = {}
        self.profiles: dict[str, _Profile] = {}
        self.cache: dict[tuple[Any, ...], list[tuple[float, float]]] = {}
        seen: set[int] = set()
        for node in state.nodes.values():
            for job_id in node.jobs:
                if job_id in seen:
                    continue
                seen.add(job_id)
                job = state.jobs.get(job_id)
                if job is None or not job.allocated or job_id in projected:  # projected: free now
                    continue
                if job.completing:
                    end = now
                elif job.spec.time_limit is None:
                    continue  # never ends: never comes back
                else:
                    end = job.start_time + job.suspended_secs + job.spec.time_limit
                for name in job.nodes:
                    self.releases.setdefault(name, []).append(
                        (self.round(end), job.cpus_per_node, job.mem_per_node, _job_consumption(state, job, name)))
        for name, end, cpus, mem, consumption in started:  # jobs this pass started before
            self.releases.setdefault(name, []).append((self.round(end), cpus, mem, consumption))

    def round(self, t: float) -> float:
        if t <= self.now:
            return self.now
        return self.now + math.ceil((t - self.now) / self.res) * self.res

    def profile(self, name: str) -> _Profile:
        prof = self.profiles.get(name)
        if prof is None:
            base = self.free[name]
            prof = self.profiles[name] = _Profile(self.now, base[0], base[1], base[2])
            for t, cpus, mem, g in self.releases.pop(name, ()):
                prof.add(t, INF, cpus, mem, g)
        return prof

    def started(self, name: str, duration: float, cpus: int, mem: int, g: dict[Any, int]) -> None:
        """A job the pass starts now on ``name``: taken now, back at its end."""
        if name in self.profiles:
            self.profiles[name].add(self.now, self.round(self.now + duration) if duration != INF else INF,
                                    -cpus, -mem, {k: -v for k, v in g.items()})
        elif duration != INF:
            self.releases.setdefault(name, []).append((self.round(self.now + duration), cpus, mem, g))

    def reserve(self, name: str, start: float, end: float, cpus: int, mem: int, g: dict[Any, int]) -> None:
        self.profile(name).add(start, end, -cpus, -mem, {k: -v for k, v in g.items()})

    def fits(self, name: str, duration: float, cpus: int, mem: int, request: gres.Request) -> bool:
        """Free during all of [now, now + duration)? (Only nodes with a profile can differ
        from what is free now, which the caller has checked.)"""
        prof = self.profiles.get(name)
        return prof is None or prof.fits(self.now, duration, cpus, mem, request)

    def windows(self, name: str, duration: float, cpus: int, mem: int, request: gres.Request) -> list[tuple[float, float]]:
        prof = self.profile(name)
        key = (name, prof.version, duration, cpus, mem, request)
        w = self.cache.get(key)
        if w is None:
            w = self.cache[key] = [(self.round(s), e) for s, e in prof.windows(duration, cpus, mem, request)
                                   if self.round(s) <= e]
        return w


def _job_consumption(state: ClusterState, job: Job, name: str) -> dict[Any, int]:
    """The typed GRES devices a running job holds on ``name``."""
    alloc = job.gres_alloc.get(name)
    if not alloc:
        return {}
    node = state.nodes.get(name)
    if node is None:
        return {}
    types = gres.device_types(node.gres)
    out: dict[Any, int] = {}
    for gname, indexes in alloc.items():
        for i in indexes:
            if i < len(types.get(gname, ())):
                key = (gname, types[gname][i])
                out[key] = out.get(key, 0) + 1
    return out


# --- the walk ------------------------------------------------------------------------------


class Plan:
    """One pass: what starts, why the others wait, when the tested ones are expected to start."""

    __slots__ = ("starts", "reasons", "planned")

    def __init__(self) -> None:
        self.starts: list[JobStart] = []
        self.reasons: dict[int, str] = {}
        self.planned: dict[int, tuple[float, tuple[str, ...]]] = {}


def _waiting_reason(job: Job, now: float) -> str | None:
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


def _ready_tasks(state: ClusterState, job: Job, now: float, most: int | None = None) -> tuple[list[int], str | None]:
    """The pending record's tasks that may start now, lowest first, within the throttle;
    else ([], reason). ``most``: no more than that many (what can start at all: the free
    CPUs, when no reason is wanted), so that a pass over a 100,000-task record does not
    list every index."""
    limit = job.array_throttle
    room = limit - array_running(state, job.array_job_id) if limit else arrays.count(job.array_pending)
    if room <= 0:
        return [], "JobArrayTaskLimit"
    if most is not None:
        room = min(room, max(1, most))
    if "aftercorr" not in job.spec.dependency:
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


class _Pass:
    """The mutable bookkeeping of one walk (free resources, blocked partitions, reservations)."""

    def __init__(self, state: ClusterState, now: float, releasing: Collection[int] = ()) -> None:
        self.state, self.now = state, now
        s = state.settings
        self.backfill = s.get("scheduler_type", "sched/backfill") == "sched/backfill"
        self.bf_max = int(s.get("bf_max_job_test", 500))
        self.horizon = now + int(s.get("bf_window", 86400))
        self.resolution = int(s.get("bf_resolution", 60))
        self.tested = 0
        self.parts = partitions_of(state)
        self.free: dict[str, list[Any]] = {}
        self.free_cpus = 0
        for name, node in state.nodes.items():
            if node.usable:
                g = gres.free_counts(node.gres, node.gres_used) if node.gres else None
                self.free[name] = [node.cpus - node.alloc_cpus, node.mem_mb - node.alloc_mem, g]
                self.free_cpus += max(0, node.cpus - node.alloc_cpus)
        self.projected = self._project(releasing)
        self.order: dict[str, list[str]] = {}
        self.first_free: dict[str, int] = {}
        self.blocked: set[str] = set()
        self.timeline: _Timeline | None = None
        self.started: list[tuple[str, float, int, int, dict[Any, int]]] = []  # for a later timeline
        self.never: dict[tuple[Any, ...], bool] = {}
        self.heaps: dict[tuple[Any, ...], list[Any]] = {}
        self.usage: policy.Usage | None = None
        self.limits = policy.enforced(state, "limits")

    def _project(self, releasing: Collection[int]) -> set[int]:
        """Count as free what the jobs of ``releasing`` hold (their end is in the log but not
        yet applied). Only plain CPU and memory are projected: a job holding GRES or a node
        exclusively keeps its resources until its end is applied (the reducer re-checks CPU
        and memory, not exclusivity or devices). -> the jobs projected."""
        out: set[int] = set()
        for job_id in releasing:
            job = self.state.jobs.get(job_id)
            if job is None or not job.allocated or job.gres_alloc or _running_exclusive(self.state, job):
                continue
            for name in job.nodes:
                f = self.free.get(name)
                if f is not None:
                    f[0] += job.cpus_per_node
                    f[1] += job.mem_per_node
                    self.free_cpus += job.cpus_per_node
            out.add(job_id)
        return out

    def nodes_of(self, part: Partition) -> list[str]:
        order = self.order.get(part.name)
        if order is None:
            nodes = self.state.nodes
            names = [n for n in partition_nodes(self.state, part) if n in nodes]
            names.sort(key=lambda n: nodes[n].weight)  # stable: configuration order within a weight
            order = self.order[part.name] = names
            self.first_free[part.name] = 0
        return order

    def timeline_for(self) -> _Timeline:
        if self.timeline is None:
            self.timeline = _Timeline(self.state, self.now, self.resolution, self.free, self.started, self.projected)
        return self.timeline

    def done(self) -> bool:
        """Nothing more can start in this pass: no CPU is free, or every partition waits
        on a job and the backfill budget is spent."""
        if self.free_cpus <= 0:
            return True
        return len(self.blocked) >= len(self.parts) and (not self.backfill or self.tested >= self.bf_max)

    # fit now ---------------------------------------------------------------------------
    def fit(self, job: Job, need: Need, part: Partition, duration: float) -> tuple[tuple[str, ...], int, int] | None:
        """(nodes, cpus per node, memory per node) for ``job`` now in ``part``, or None."""
        state, free = self.state, self.free
        spec = job.spec
        exclusive = effective_exclusive(part, spec)
        order = self.nodes_of(part)
        required = need.required
        timeline = self.timeline
        chosen: list[str] = []
        min_cpus = 0
        start = self.first_free.get(part.name, 0)
        candidates: Any = required + [n for n in order[start:] if n not in required] if required else order[start:]
        members = None
        for name in candidates:
            if required and name in required:
                if members is None:
                    members = set(order)
                if name not in members:
                    return None
            f = free.get(name)
            if f is None or name in need.excluded:
                if name in required:
                    return None
                continue
            node = state.nodes[name]
            cpus = node.cpus if exclusive and exclusive != "user" else need.cpus
            mem = need.mem_for(spec, cpus) if exclusive and exclusive != "user" else need.mem
            ok = f[0] >= cpus and f[1] >= mem
            if ok and exclusive and exclusive != "user":
                ok = f[0] >= node.cpus
            if ok and need.features is not None:
                ok = has_features(need.features, node.features)
            if ok and need.gres:
                ok = f[2] is not None and gres.take(f[2], need.gres) is not None
            if ok:
                ok = _node_usable(state, node, spec, exclusive)
            if ok and timeline is not None:
                ok = timeline.fits(name, duration, cpus, mem, need.gres)
            if not ok:
                if name in required:
                    return None
                continue
            chosen.append(name)
            min_cpus = node.cpus if not min_cpus else min(min_cpus, node.cpus)
            if len(chosen) == need.nodes:
                if exclusive and exclusive != "user":
                    return tuple(chosen), min_cpus, need.mem_for(spec, min_cpus)
                return tuple(chosen), need.cpus, need.mem
        return None

    def take(self, nodes: tuple[str, ...], cpus: int, mem: int, need: Need, duration: float, job: Job) -> None:
        for name in nodes:
            f = self.free[name]
            f[0] -= cpus
            f[1] -= mem
            if need.gres and f[2] is not None:
                f[2] = gres.take(f[2], need.gres) or f[2]
            self.free_cpus -= cpus
        if self.backfill:
            for name in nodes:
                consumption = _consumption(self.state.nodes[name], need.gres)
                if self.timeline is not None:
                    self.timeline.started(name, duration, cpus, mem, consumption)
                elif duration != INF:
                    self.started.append((name, self.now + duration, cpus, mem, consumption))
        for pname, order in self.order.items():  # skip nodes that filled up
            i = self.first_free.get(pname, 0)
            while i < len(order) and (f := self.free.get(order[i])) is not None and f[0] <= 0:
                i += 1
            self.first_free[pname] = i

    # backfill --------------------------------------------------------------------------
    def _candidate(self, name: str, need: Need, spec: JobSpec, whole: bool) -> tuple[int, int] | None:
        """(cpus, memory) the job takes on ``name``, or None when the node can never host it."""
        if name not in self.free or name in need.excluded:
            return None
        node = self.state.nodes[name]
        if need.features is not None and not has_features(need.features, node.features):
            return None
        cpus = node.cpus if whole else need.cpus
        mem = need.mem_for(spec, cpus) if whole else need.mem
        if node.cpus < cpus or node.mem_mb < mem:
            return None
        return cpus, mem

    def reserve(self, job: Job, need: Need, part: Partition, duration: float) -> tuple[float, tuple[str, ...]] | None:
        """The earliest start of ``job`` in ``part`` given running jobs and earlier
        reservations; reserves it (within bf_window) and returns (start, nodes)."""
        timeline = self.timeline_for()
        spec = job.spec
        exclusive = effective_exclusive(part, spec)
        whole = bool(exclusive) and exclusive != "user"
        found = None
        if not need.required:
            found = self._earliest_by_heap(need, spec, part, duration, whole)
        if found is None:
            found = self._earliest_by_sweep(need, spec, part, duration, whole)
        if found is None:
            return None
        start, chosen, amounts = found
        if start > self.horizon:
            return None
        end = start + duration
        for name in chosen:
            cpus, mem = amounts[name]
            timeline.reserve(name, start, end, cpus, mem, _consumption(self.state.nodes[name], need.gres))
        return start, tuple(chosen)

    def _earliest_by_heap(self, need: Need, spec: JobSpec, part: Partition, duration: float,
                          whole: bool) -> tuple[float, list[str], dict[str, tuple[int, int]]] | None:
        """The k nodes whose first free window starts earliest, kept per job shape in a lazy
        heap (within a pass a node's windows only get later, so a stale top is refreshed
        and pushed back). When those k nodes are all free at the k-th start, that start is
        the earliest possible for any k nodes; otherwise None (the caller sweeps)."""
        timeline = self.timeline
        assert timeline is not None
        key = (part.name, duration, need.cpus, need.mem, need.gres, need.features, need.excluded, whole)
        heap = self.heaps.get(key)
        if heap is None:
            heap = []
            for index, name in enumerate(self.nodes_of(part)):
                amounts = self._candidate(name, need, spec, whole)
                if amounts is None:
                    continue
                w = timeline.windows(name, duration, amounts[0], amounts[1], need.gres)
                if w:
                    heap.append((w[0][0], index, name, timeline.profile(name).version, amounts))
            heapq.heapify(heap)
            self.heaps[key] = heap
        # Pop in (first start, index) order until k nodes are found; t, the k-th start, is
        # the earliest any k nodes can start. Then take every node whose first start is <= t
        # and place the job on the first k of them (Weight, configuration order) that are
        # free at t, as the sweep (and Slurm's node selection at the start time) would.
        popped: list[tuple[float, int, str, int, tuple[int, int]]] = []
        t = -INF
        while heap:
            entry = heap[0]
            if len(popped) >= need.nodes and entry[0] > t:
                break
            heapq.heappop(heap)
            _start, index, name, version, amounts = entry
            prof = timeline.profile(name)
            if prof.version != version:
                w = timeline.windows(name, duration, amounts[0], amounts[1], need.gres)
                if w:
                    heapq.heappush(heap, (w[0][0], index, name, prof.version, amounts))
                continue
            popped.append(entry)
            if len(popped) == need.nodes:
                t = entry[0]
        for entry in popped:
            heapq.heappush(heap, entry)
        if len(popped) < need.nodes:
            return None
        chosen = []
        for _s, _i, name, _v, amounts in sorted(popped, key=lambda e: e[1]):
            w = timeline.windows(name, duration, amounts[0], amounts[1], need.gres)
            if any(s <= t <= e for s, e in w):
                chosen.append((name, amounts))
                if len(chosen) == need.nodes:
                    return t, [c[0] for c in chosen], dict(chosen)
        return None

    def _earliest_by_sweep(self, need: Need, spec: JobSpec, part: Partition, duration: float,
                           whole: bool) -> tuple[float, list[str], dict[str, tuple[int, int]]] | None:
        timeline = self.timeline
        assert timeline is not None
        required = need.required
        order = self.nodes_of(part)
        windows: dict[str, list[tuple[float, float]]] = {}
        amounts: dict[str, tuple[int, int]] = {}
        for name in (required + [n for n in order if n not in required]) if required else order:
            a = self._candidate(name, need, spec, whole)
            if a is None:
                continue
            w = timeline.windows(name, duration, a[0], a[1], need.gres)
            if w:
                windows[name], amounts[name] = w, a
        if any(r not in windows for r in required):
            return None
        for t in sorted({s for w in windows.values() for s, _ in w}):
            if t > self.horizon:
                return None
            ok = [n for n, w in windows.items() if any(s <= t <= e for s, e in w)]
            if len(ok) >= need.nodes and all(r in ok for r in required):
                return t, (required + [n for n in ok if n not in required])[: need.nodes], amounts
        return None

    def could_ever_fit(self, job: Job, need: Need, part: Partition) -> bool:
        key = (id(job.spec), part.name)
        known = self.never.get(key)
        if known is None:
            known = self.never[key] = could_ever_fit(self.state, job, part)
        return known


def _duration(part: Partition, spec: JobSpec) -> float:
    limit = policy.effective_time_limit(part, spec.time_limit)
    return INF if limit is None else float(limit)


def _reason_for_nodes(state: ClusterState, need: Need) -> str | None:
    down = [n for n in need.required if (node := state.nodes.get(n)) is None or not node.usable]
    if down:
        return f"ReqNodeNotAvail, UnavailableNodes:{','.join(down)}"
    return None


def _merged(qs: Any, p: _Pass, want_reasons: bool) -> Any:
    """(job id, partition) of the partitions' lists merged by (PriorityTier, priority, job
    id). When only starts are wanted, a partition drops out once it is blocked and the
    backfill budget is spent (the rest of it would wait with reason Priority)."""
    lists = [(name, lst) for name, lst in qs.lists.items() if lst]

    def closed(pname: str) -> bool:
        return not want_reasons and pname in p.blocked and (not p.backfill or p.tested >= p.bf_max)

    if len(lists) == 1:  # one partition: no merge
        pname, lst = lists[0]
        for key in lst:
            if closed(pname):
                return
            yield key & MASK, pname
        return
    heap = [(-qs.tiers.get(name, 1), lst[0], name, 0) for name, lst in lists]
    heapq.heapify(heap)
    by_name = dict(lists)
    while heap:
        negtier, key, pname, i = heapq.heappop(heap)
        if closed(pname):
            continue
        lst = by_name[pname]
        if i + 1 < len(lst):
            heapq.heappush(heap, (negtier, lst[i + 1], pname, i + 1))
        yield key & MASK, pname


def plan(state: ClusterState, now: float, *, want_starts: bool = True, want_reasons: bool = True,
         stop_at: int | None = None, reserve: bool = True, releasing: Collection[int] = ()) -> Plan:
    """One scheduling pass (see the module docstring). ``reserve=False`` skips the backfill
    planning: every job after a partition's first waiting job waits with reason Priority
    (what a read needs: the leader has already started whatever backfill would start).
    ``releasing``: jobs whose end is committed-to-be but not applied yet (the leader's
    projection, ``_Pass._project``); such a plan is not remembered for reads."""
    out = Plan()
    p = _Pass(state, now, releasing)
    if not reserve:
        p.bf_max = 0
    reasons = out.reasons
    jobs, runnable = state.jobs, state.runnable
    started: set[int] = set()
    qs = queues(state, now)
    for job_id, pname in _merged(qs, p, want_reasons):
        if job_id not in runnable or job_id in started:
            continue
        if stop_at is not None and stop_at in reasons:
            break
        if not want_reasons and p.done():
            break
        first_entry = job_id not in reasons
        job = jobs[job_id]
        reason = _waiting_reason(job, now)
        if reason is not None:
            reasons.setdefault(job_id, reason)
            continue
        part = p.parts.get(pname)
        if part is None:
            reasons.setdefault(job_id, "PartitionConfig")
            continue
        tasks: list[int] = []
        if job.array_task_id < 0 and job.array_pending:
            # Every task takes a CPU: a pass that only decides starts lists no more
            # tasks than CPUs are free (the reasons shown need the whole count).
            tasks, reason = _ready_tasks(state, job, now, None if want_reasons else p.free_cpus)
        elif job.spec.dependency:
            reason = _dependency_reason(dependency_status(state, job, now)[0])
        if reason is not None:
            reasons.setdefault(job_id, reason)
            continue
        blocked = pname in p.blocked
        if blocked and (not p.backfill or p.tested >= p.bf_max):
            # Slurm's main scheduler: a partition whose earlier job waits takes no more
            # (failed_parts), before limits are even looked at.
            reasons.setdefault(job_id, "Priority")
            continue
        need = job_need(job.spec)
        duration = _duration(part, job.spec)
        limit = policy.effective_time_limit(part, job.spec.time_limit)
        reason = policy.partition_reason(part, need.nodes, limit)
        if reason is None and policy.partition_access(part, job.spec.account, job.spec.uid, job.spec.gid):
            reason = "PartitionConfig"
        if reason is None and p.limits:
            if p.usage is None:
                p.usage = policy.Usage(state)
            tres = policy.job_tres(job.spec, need.nodes, need.cpus, need.mem, need.gpus)
            reason = policy.limit_reason(state, p.usage, job, tres, limit, pname)
        if reason is not None:
            if first_entry or reasons.get(job_id) in (None, "Priority"):
                reasons[job_id] = reason
            continue
        started_here = 0
        for task in tasks or [-1]:
            fit = p.fit(job, need, part, duration)
            if fit is None:
                break
            nodes, cpus, mem = fit
            p.take(nodes, cpus, mem, need, duration, job)
            started_here += 1
            if p.usage is not None:
                p.usage.add(job, policy.job_tres(job.spec, len(nodes), cpus, mem, need.gpus))
            out.starts.append(JobStart(job_id, nodes, cpus, mem, now, task, pname))
            if p.limits and tasks:
                tres = policy.job_tres(job.spec, need.nodes, need.cpus, need.mem, need.gpus)
                if policy.limit_reason(state, p.usage, job, tres, limit, pname) is not None:  # type: ignore[arg-type]
                    break
        if started_here and not tasks:
            started.add(job_id)
            reasons[job_id] = "None"
            continue
        if tasks and started_here == len(tasks):
            if job.array_throttle and started_here < arrays.count(job.array_pending):
                reasons[job_id] = "JobArrayTaskLimit"
            else:
                reasons[job_id] = "None"
            started.add(job_id)
            continue
        # It (or the rest of its array) waits for resources.
        if not started_here and not p.could_ever_fit(job, need, part):
            reasons.setdefault(job_id, _reason_for_nodes(state, need) or "BadConstraints")
            continue
        why = "Priority" if blocked else (_reason_for_nodes(state, need) or "Resources")
        if first_entry or reasons.get(job_id) == "Priority":
            reasons[job_id] = why
        p.blocked.add(pname)
        if p.backfill and p.tested < p.bf_max:
            p.tested += 1
            planned = p.reserve(job, need, part, duration)
            if planned is not None and (job_id not in out.planned or planned[0] < out.planned[job_id][0]):
                out.planned[job_id] = planned
        if started_here:
            started.add(job_id)
    if want_reasons:
        for job_id in state.pending:
            if job_id not in reasons:
                job = jobs[job_id]
                reasons[job_id] = _waiting_reason(job, now) or "None"
    if reserve and not p.projected:
        _LAST[state] = (now, out)
    return out


_LAST = PerState()


def schedule(state: ClusterState, now: float, *, backfill: bool = True,
             releasing: Collection[int] = ()) -> list[JobStart]:
    """The jobs (and array tasks) to start now, in scheduling order, each with its nodes,
    per-node allocation and partition. ``backfill=False`` is Slurm's main scheduler alone
    (no reservations; a partition's later jobs wait behind its first waiting job), what the
    leader runs between backfill cycles (``bf_interval``). ``releasing``: jobs whose end the
    leader has proposed but not yet applied, their CPUs and memory counted as free (the
    starts go into the log after that end, and the reducer re-checks each fit)."""
    if not backfill and not releasing and not any(n.usable and n.alloc_cpus < n.cpus for n in state.nodes.values()):
        # Every job needs a CPU: with none free, the main scheduler can start nothing, and
        # skipping its walk of the queue keeps a commit's cost flat in the queue's length.
        # (The backfill pass still runs in full: it plans the reservations squeue --start shows.)
        return []
    return plan(state, now, want_reasons=False, reserve=backfill, releasing=releasing).starts


def pending_reasons(state: ClusterState, now: float) -> dict[int, str]:
    """Why each pending job waits, as squeue and scontrol show it (without the backfill
    planning: expected starts come from the last full pass, ``planned_start``)."""
    return plan(state, now, want_starts=False, reserve=False).reasons


def pending_reason(state: ClusterState, job_id: int, now: float) -> str:
    """The reason of one pending job; walks the queue only up to it, and not at all for one
    that is not runnable (held, say: the walk never reaches it, and its reason is its own;
    ``scancel -u`` of 100,000 held jobs walked the queue once per job)."""
    if job_id not in state.runnable:
        job = state.jobs.get(job_id)
        return (_waiting_reason(job, now) if job is not None else None) or "None"
    reasons = plan(state, now, want_starts=False, stop_at=job_id, reserve=False).reasons
    if job_id in reasons:
        return reasons[job_id]
    job = state.jobs.get(job_id)
    return (_waiting_reason(job, now) if job is not None else None) or "None"


def planned_start(state: ClusterState, job_id: int, now: float) -> tuple[float, tuple[str, ...]] | None:
    """The expected start time and nodes of a pending job from the last full pass over this
    state (the leader's, at most one loop old; squeue --start's StartTime and SchedNodes),
    None when that pass did not reserve for it. As in Slurm, where the backfill cycle sets
    them, they may be a pass behind."""
    last = _LAST.get(state)
    if last is None or last[0] > now:
        return None
    return last[1].planned.get(job_id)


def could_ever_fit(state: ClusterState, job: Job, part: Partition | None = None) -> bool:
    """False when no set of the partition's configured nodes is big enough, whatever runs
    (Slurm rejects such a submission: "Requested node configuration is not available")."""
    if part is None:
        parts = partitions_of(state)
        names = policy.job_partitions(state, job.partition_list)
        return any(could_ever_fit(state, job, parts[n]) for n in names if n in parts) if names else True
    if not state.nodes:
        return True
    spec = job.spec
    need = job_need(spec)
    if need.error:
        return False
    exclusive = effective_exclusive(part, spec)
    members = partition_nodes(state, part)
    member_set = set(members)
    if any(n not in member_set or n in need.excluded for n in need.required):
        return False
    wanted = need.nodes
    if not members:
        return not state.config_digest  # an empty partition of an unconfigured state: wait
    for name in members:
        node = state.nodes.get(name)
        if node is None or name in need.excluded:
            continue
        cpus = node.cpus if exclusive and exclusive != "user" else need.cpus
        mem = need.mem_for(spec, cpus) if exclusive and exclusive != "user" else need.mem
        if node.cpus < cpus or node.mem_mb < mem:
            continue
        if need.features is not None and not has_features(need.features, node.features):
            continue
        if need.gres and gres.take(gres.total_counts(node.gres), need.gres) is None:
            continue
        wanted -= 1
        if wanted == 0:
            return True
    return False


def dependency_text(state: ClusterState, job: Job, now: float) -> str:
    return dependency_status(state, job, now)[1]


__all__ += ["dependency_text", "JobState", "effective_exclusive"]
