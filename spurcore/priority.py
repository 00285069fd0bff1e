"""Job priority, as Slurm's priority/multifactor computes it (and priority/basic: FIFO).

    priority = PriorityWeightAge * age + PriorityWeightFairshare * fair_share
             + PriorityWeightJobSize * job_size + PriorityWeightPartition * partition
             + PriorityWeightQOS * qos + PriorityWeightAssoc * assoc - nice

Each factor is in [0, 1] (priority_multifactor.shtml); the result is an integer >= 1, or the
value an admin fixed (``scontrol update job Priority=N``). The scheduler takes jobs by
partition PriorityTier, then priority, then job id: with every weight 0 (the default) all
priorities are equal and the order is the job id order, FIFO.

Invariants:
- Pure functions of the state and a time. Like Slurm, which recalculates priorities once per
  PriorityCalcPeriod, priorities are computed as of the start of the current period
  (``period_start``), and fair share reads the usage as of that start (the reducer keeps it,
  ``ClusterState.usage_epoch``): a job's priority changes only when a period begins or an op
  changes one of its inputs (``ClusterState.prio_rev``).
- ``queue`` returns the runnable jobs in scheduling order. It memoizes that order per state
  (a cache of a pure function: the same state and period give the same order), adding newly
  runnable jobs by insertion, so a pass over 100,000 pending jobs does not recompute 100,000
  priorities.
- Fair share is Slurm's "classic" algorithm over the association tree (shares normalized
  down the tree, decayed usage normalized by the cluster's, effective usage propagated from
  the parent): F = 2^(-usage/shares). Without associations every user is a child of root with
  equal shares.
"""

from __future__ import annotations

import bisect
import weakref
from typing import Any

from spurcore.model import ClusterState, Job, Partition, assoc_key, partitions_of
from spurcore.resources import job_need

#: Slurm's priority/basic: the first job gets this and each later one one less.
BASIC_TOP = 4294901760
FACTORS = ("age", "fairshare", "job_size", "partition", "qos", "assoc", "nice")


def period_start(state: ClusterState, now: float) -> float:
    period = max(1, int(state.settings.get("priority_calc_period", 300)))
    return (now // period) * period


def _usage(state: ClusterState, now: float) -> dict[str, list[float]]:
    """The usage every priority of ``now``'s period sees."""
    period = max(1, int(state.settings.get("priority_calc_period", 300)))
    if int(now // period) > state.usage_epoch_no:
        return state.usage
    return state.usage_epoch


class Context:
    """What every job's priority of one period shares: weights, normalizers, fair shares."""

    def __init__(self, state: ClusterState, now: float) -> None:
        s = state.settings
        self.t = period_start(state, now)
        self.basic = s.get("priority_type", "priority/multifactor") == "priority/basic"
        self.w_age = s.get("priority_weight_age", 0)
        self.w_fs = s.get("priority_weight_fairshare", 0)
        self.w_js = s.get("priority_weight_job_size", 0)
        self.w_part = s.get("priority_weight_partition", 0)
        self.w_qos = s.get("priority_weight_qos", 0)
        self.w_assoc = s.get("priority_weight_assoc", 0)
        self.max_age = max(1, s.get("priority_max_age", 7 * 86400))
        self.favor_small = bool(s.get("priority_favor_small", False))
        nodes = [n for n in state.nodes.values() if n.configured or not state.config_digest]
        self.node_count = max(1, len(nodes))
        self.cluster_cpus = max(1, sum(n.cpus for n in nodes))
        parts = partitions_of(state)
        self.max_pjf = max((p.priority_job_factor for p in parts.values()), default=1) or 1
        self.max_qos = max((q.priority for q in state.qos.values()), default=0) or 1
        self.max_assoc = max((a.priority for a in state.assocs.values()), default=0) or 1
        self.state = state
        self.fair: dict[str, float] = fair_shares(state, now) if self.w_fs else {}

    def key(self) -> tuple[Any, ...]:
        return (self.t, self.state.prio_rev, self.node_count, self.cluster_cpus)


def factors(ctx: Context, job: Job, part: Partition) -> dict[str, float]:
    """The normalized factors of ``job`` in ``part`` (what sprio shows, before weights)."""
    spec = job.spec
    state = ctx.state
    out = dict.fromkeys(FACTORS, 0.0)
    if ctx.w_age:
        waited = max(0.0, ctx.t - job.eligible_time)
        out["age"] = min(1.0, waited / ctx.max_age)
    if ctx.w_fs:
        out["fairshare"] = ctx.fair.get(_fs_key(spec.account, spec.user), 1.0)
    if ctx.w_js:
        need = job_need(spec)
        nodes = need.nodes
        cpus = need.cpus * nodes
        if ctx.favor_small:
            js = (ctx.node_count - nodes) / ctx.node_count if ctx.node_count > nodes else 0.0
            js = (js + (ctx.cluster_cpus - cpus) / ctx.cluster_cpus) / 2
        else:
            js = (nodes / ctx.node_count + cpus / ctx.cluster_cpus) / 2
        out["job_size"] = min(1.0, max(0.0, js))
    if ctx.w_part:
        out["partition"] = part.priority_job_factor / ctx.max_pjf
    if ctx.w_qos and spec.qos:
        q = state.qos.get(spec.qos)
        out["qos"] = (q.priority / ctx.max_qos) if q is not None else 0.0
    if ctx.w_assoc:
        a = state.assocs.get(assoc_key(spec.account, spec.user)) or state.assocs.get(assoc_key(spec.account))
        out["assoc"] = (a.priority / ctx.max_assoc) if a is not None else 0.0
    out["nice"] = float(spec.nice)
    return out


def weighted(ctx: Context, f: dict[str, float]) -> dict[str, float]:
    """The factors times their weights (sprio's columns)."""
    return {
        "age": ctx.w_age * f["age"], "fairshare": ctx.w_fs * f["fairshare"], "job_size": ctx.w_js * f["job_size"],
        "partition": ctx.w_part * f["partition"], "qos": ctx.w_qos * f["qos"], "assoc": ctx.w_assoc * f["assoc"],
        "nice": f["nice"],
    }


def compute(ctx: Context, job: Job, part: Partition) -> int:
    if job.priority_set >= 0:
        return job.priority_set
    if ctx.basic:
        return max(1, BASIC_TOP - job.job_id)
    if not (ctx.w_age or ctx.w_fs or ctx.w_js or ctx.w_part or ctx.w_qos or ctx.w_assoc):
        return max(1, 1 - job.spec.nice) if job.spec.nice < 0 else 1
    w = weighted(ctx, factors(ctx, job, part))
    total = w["age"] + w["fairshare"] + w["job_size"] + w["partition"] + w["qos"] + w["assoc"] - w["nice"]
    return max(1, min(2**32 - 2, int(total)))


# --- fair share ----------------------------------------------------------------------------


def _fs_key(account: str, user: str) -> str:
    return f"{account}|{user}"


def fair_shares(state: ClusterState, now: float) -> dict[str, float]:
    """"account|user" -> fair-share factor in [0, 1] (classic), as of ``now``'s period."""
    t = period_start(state, now)
    half_life = float(state.settings.get("priority_decay_half_life", 7 * 86400))
    usage: dict[str, float] = {}
    for key, (value, at) in _usage(state, now).items():
        if half_life > 0 and t > at:
            value *= 0.5 ** ((t - at) / half_life)
        usage[key] = value
    total = sum(usage.values())
    users = [a for a in state.assocs.values() if a.user]
    out: dict[str, float] = {}
    if not users:
        # No associations: every user with usage is a child of root with one share.
        n = max(1, len(usage))
        for key, value in usage.items():
            norm = value / total if total > 0 else 0.0
            out[key] = 2.0 ** (-norm / (1.0 / n))
        return out
    accounts = {a.account: a for a in state.assocs.values() if not a.user}
    children: dict[str, list[Any]] = {}
    for a in accounts.values():
        if a.account != "root":
            children.setdefault(a.parent or "root", []).append(a)
    for a in users:
        children.setdefault(a.account, []).append(a)

    def node_usage(a: Any) -> float:
        if a.user:
            return usage.get(_fs_key(a.account, a.user), 0.0)
        return sum(node_usage(c) for c in children.get(a.account, ()))

    def walk(parent: str, s_parent: float, ue_parent: float, depth: int) -> None:
        kids = children.get(parent, [])
        if depth > 32 or not kids:
            return
        shares = sum(max(0, k.shares) for k in kids) or 1
        for k in kids:
            s = s_parent * max(0, k.shares) / shares
            ua = node_usage(k) / total if total > 0 else 0.0
            ue = ua + (ue_parent - ua) * max(0, k.shares) / shares
            if k.user:
                out[_fs_key(k.account, k.user)] = 2.0 ** (-ue / s) if s > 0 else 0.0
            else:
                walk(k.account, s, ue, depth + 1)

    walk("root", 1.0, 0.0, 0)
    return out


# --- the queue -----------------------------------------------------------------------------


class _Queue:
    """The runnable jobs' (tier, priority, job id, partition) entries, sorted."""

    __slots__ = ("key", "entries", "known", "prio", "ctx")

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.entries: list[tuple[int, int, int, str]] = []  # (-tier, -priority, job id, partition)
        self.known: dict[int, None] = {}
        self.prio: dict[tuple[int, str], int] = {}
        self.ctx: tuple[tuple[Any, ...], Context] | None = None


def context(state: ClusterState, now: float) -> Context:
    """The period's Context (memoized per state and period)."""
    q = _QUEUES.get(state)
    if q is None:
        q = _QUEUES[state] = _Queue()
    key = (period_start(state, now), state.prio_rev, *_totals(state))
    if q.ctx is None or q.ctx[0] != key:
        q.ctx = (key, Context(state, now))
    return q.ctx[1]


class PerState:
    """A memo keyed by state object (ClusterState compares by value, so it cannot be a weak
    dictionary key): entries go when their state is collected."""

    def __init__(self) -> None:
        self._data: dict[int, tuple[weakref.ref[ClusterState], Any]] = {}

    def get(self, state: ClusterState) -> Any:
        entry = self._data.get(id(state))
        if entry is None or entry[0]() is not state:
            return None
        return entry[1]

    def __setitem__(self, state: ClusterState, value: Any) -> None:
        key = id(state)
        data = self._data
        data[key] = (weakref.ref(state, lambda _r: data.pop(key, None)), value)


_QUEUES = PerState()


def _entries_of(ctx: Context, job: Job, parts: dict[str, Partition], out: list[Any], prio: dict[Any, int]) -> None:
    names = [p.strip() for p in job.spec.partition.split(",") if p.strip()] or [""]
    for name in names:
        part = parts.get(name)
        if part is None:
            out.append((0, -1, job.job_id, name))  # a partition gone since submission: last
            prio[(job.job_id, name)] = 1
            continue
        p = compute(ctx, job, part)
        prio[(job.job_id, name)] = p
        out.append((-part.priority_tier, -p, job.job_id, name))


def queue(state: ClusterState, now: float) -> list[tuple[int, int, int, str]]:
    """The runnable jobs in scheduling order, as (-tier, -priority, job id, partition);
    a job asking for several partitions has one entry per partition. May hold entries of
    jobs no longer runnable: callers skip ids not in ``state.runnable``."""
    q = _QUEUES.get(state)
    if q is None:
        q = _QUEUES[state] = _Queue()
    ctx_key = (period_start(state, now), state.prio_rev, *_totals(state))
    parts = partitions_of(state)
    runnable = state.runnable
    if q.key != ctx_key or len(q.entries) > 2 * len(runnable) + 1024:
        ctx = context(state, now)
        entries: list[Any] = []
        prio: dict[Any, int] = {}
        jobs = state.jobs
        for job_id in runnable:
            _entries_of(ctx, jobs[job_id], parts, entries, prio)
        entries.sort()
        q.key, q.entries, q.known, q.prio = ctx_key, entries, dict.fromkeys(runnable), prio
        return q.entries
    known = q.known
    if len(known) != len(runnable) or known.keys() != runnable.keys():
        for job_id in known.keys() - runnable.keys():
            del known[job_id]
        new = runnable.keys() - known.keys()
        if new:
            ctx = context(state, now)
            added: list[Any] = []
            for job_id in sorted(new):
                _entries_of(ctx, state.jobs[job_id], parts, added, q.prio)
                known[job_id] = None
            if len(added) > 64:
                q.entries = sorted(q.entries + added)
            else:
                for entry in added:
                    bisect.insort(q.entries, entry)
    return q.entries


def _totals(state: ClusterState) -> tuple[int, int]:
    return len(state.nodes), sum(n.cpus for n in state.nodes.values())


def job_priority(state: ClusterState, job: Job, now: float) -> int:
    """The priority squeue and scontrol show: for a pending job the one it is queued with
    (the highest of its partitions'), for a started job the one it had in its partition."""
    parts = partitions_of(state)
    if job.job_id in state.runnable:
        queue(state, now)
        q = _QUEUES.get(state)
        if q is not None:
            names = [p.strip() for p in job.spec.partition.split(",") if p.strip()]
            best = [q.prio[(job.job_id, n)] for n in names if (job.job_id, n) in q.prio]
            if best:
                return max(best)
    ctx = context(state, now)
    part = parts.get(job.partition) or next(
        (parts[n.strip()] for n in job.spec.partition.split(",") if n.strip() in parts), None)
    if part is None:
        return 1
    return compute(ctx, job, part)
