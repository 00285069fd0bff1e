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
import functools
import weakref
from typing import Any

from spurcore.model import ClusterState, Job, JobState, Partition, assoc_key, partitions_of
from spurcore.resources import job_need

#: Slurm's priority/basic: the first job gets this and each later one one less.
BASIC_TOP = 4294901760
MAX_PRIORITY = 2**32 - 2
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
        self.weighted = bool(self.w_age or self.w_fs or self.w_js or self.w_part or self.w_qos or self.w_assoc)
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
        out["job_size"] = _job_size(ctx, spec)
    if ctx.w_part:
        out["partition"] = part.priority_job_factor / ctx.max_pjf
    if ctx.w_qos and spec.qos:
        q = state.qos.get(spec.qos)
        out["qos"] = (q.priority / ctx.max_qos) if q is not None else 0.0
    if ctx.w_assoc:
        out["assoc"] = _assoc_factor(ctx, spec)
    out["nice"] = float(spec.nice)
    return out


def _job_size(ctx: Context, spec: Any) -> float:
    need = job_need(spec)
    nodes = need.nodes
    cpus = need.cpus * nodes
    if ctx.favor_small:
        js = (ctx.node_count - nodes) / ctx.node_count if ctx.node_count > nodes else 0.0
        js = (js + (ctx.cluster_cpus - cpus) / ctx.cluster_cpus) / 2
    else:
        js = (nodes / ctx.node_count + cpus / ctx.cluster_cpus) / 2
    return min(1.0, max(0.0, js))


def _assoc_factor(ctx: Context, spec: Any) -> float:
    assocs = ctx.state.assocs
    if not assocs:
        return 0.0
    a = assocs.get(assoc_key(spec.account, spec.user)) or assocs.get(assoc_key(spec.account))
    return (a.priority / ctx.max_assoc) if a is not None else 0.0


def weighted(ctx: Context, f: dict[str, float]) -> dict[str, float]:
    """The factors times their weights (sprio's columns)."""
    return {
        "age": ctx.w_age * f["age"], "fairshare": ctx.w_fs * f["fairshare"], "job_size": ctx.w_js * f["job_size"],
        "partition": ctx.w_part * f["partition"], "qos": ctx.w_qos * f["qos"], "assoc": ctx.w_assoc * f["assoc"],
        "nice": f["nice"],
    }


def static_part(ctx: Context, job: Job, part: Partition) -> float | None:
    """The time-independent part of the weighted sum (None: the priority does not come from
    the weighted sum: fixed by an admin, priority/basic, or every weight 0)."""
    if job.priority_set >= 0 or ctx.basic or not ctx.weighted:
        return None
    # The weighted factors of ``factors``/``weighted`` without building their maps (this runs
    # for every pending job); the sum is taken in the same order as there.
    spec = job.spec
    js = 0.0
    if ctx.w_js:
        js = ctx.w_js * _job_size(ctx, spec)
    pf = ctx.w_part * (part.priority_job_factor / ctx.max_pjf) if ctx.w_part else 0.0
    qf = 0.0
    if ctx.w_qos and spec.qos:
        q = ctx.state.qos.get(spec.qos)
        qf = ctx.w_qos * ((q.priority / ctx.max_qos) if q is not None else 0.0)
    af = 0.0
    if ctx.w_assoc:
        af = ctx.w_assoc * _assoc_factor(ctx, spec)
    return js + pf + qf + af - float(spec.nice)


def _fixed(ctx: Context, job: Job) -> int:
    if job.priority_set >= 0:
        return job.priority_set
    if ctx.basic:
        return max(1, BASIC_TOP - job.job_id)
    return max(1, 1 - job.spec.nice) if job.spec.nice < 0 else 1


def _combine(ctx: Context, static: float, eligible: float, fs_key: str) -> int:
    total = static
    if ctx.w_age:
        total += ctx.w_age * min(1.0, max(0.0, ctx.t - eligible) / ctx.max_age)  # as queues() inlines it
    if ctx.w_fs:
        total += ctx.w_fs * ctx.fair.get(fs_key, 1.0)
    return max(1, min(MAX_PRIORITY, int(total)))


def compute(ctx: Context, job: Job, part: Partition) -> int:
    static = static_part(ctx, job, part)
    if static is None:
        return _fixed(ctx, job)
    return _combine(ctx, static, job.eligible_time, _fs_key(job.spec.account, job.spec.user))


# --- fair share ----------------------------------------------------------------------------


def _fs_key(account: str, user: str) -> str:
    return f"{account}|{user}"


def fair_shares(state: ClusterState, now: float) -> dict[str, float]:
    """"account|user" -> fair-share factor in [0, 1] (classic), as of ``now``'s period."""
    return {row["key"]: row["fairshare"] for row in share_rows(state, now) if row["user"]}


def share_rows(state: ClusterState, now: float) -> list[dict[str, Any]]:
    """sshare's rows: the association tree depth first (root, accounts, their users), each
    with raw and normalized shares, raw (decayed) and effective usage, and the fair-share
    factor of users (classic: F = 2^(-effective usage / normalized shares))."""
    t = period_start(state, now)
    half_life = float(state.settings.get("priority_decay_half_life", 7 * 86400))
    usage: dict[str, float] = {}
    for key, (value, at) in _usage(state, now).items():
        if half_life > 0 and t > at:
            value *= 0.5 ** ((t - at) / half_life)
        usage[key] = value
    total = sum(usage.values())
    rows: list[dict[str, Any]] = []
    users = [a for a in state.assocs.values() if a.user]
    if not state.assocs:
        # No associations: every user with usage is a child of root with one share.
        n = max(1, len(usage))
        for key, value in usage.items():
            account, _, user = key.partition("|")
            norm = value / total if total > 0 else 0.0
            rows.append({"key": key, "account": account, "user": user, "depth": 1, "raw_shares": 1,
                         "norm_shares": 1.0 / n, "raw_usage": value, "norm_usage": norm, "effective_usage": norm,
                         "fairshare": 2.0 ** (-norm * n)})
        return rows
    accounts = {a.account: a for a in state.assocs.values() if not a.user}
    children: dict[str, list[Any]] = {}
    for a in accounts.values():
        if a.account != "root":
            children.setdefault(a.parent or "root", []).append(a)
    for a in users:
        children.setdefault(a.account, []).append(a)

    def node_usage(a: Any, depth: int = 0) -> float:
        if a.user:
            return usage.get(_fs_key(a.account, a.user), 0.0)
        if depth > 32:
            return 0.0
        return sum(node_usage(c, depth + 1) for c in children.get(a.account, ()))

    rows.append({"key": "root|", "account": "root", "user": "", "depth": 0, "raw_shares": 1, "norm_shares": 1.0,
                 "raw_usage": total, "norm_usage": 1.0 if total > 0 else 0.0,
                 "effective_usage": 1.0 if total > 0 else 0.0, "fairshare": 1.0})

    def walk(parent: str, s_parent: float, ue_parent: float, depth: int) -> None:
        kids = children.get(parent, [])
        if depth > 32 or not kids:
            return
        shares = sum(max(0, k.shares) for k in kids) or 1
        for k in sorted(kids, key=lambda a: (bool(a.user), a.user or a.account, a.partition)):
            s = s_parent * max(0, k.shares) / shares
            raw = node_usage(k)
            ua = raw / total if total > 0 else 0.0
            ue = ua + (ue_parent - ua) * max(0, k.shares) / shares
            rows.append({"key": _fs_key(k.account, k.user), "account": k.account, "user": k.user,
                         "partition": k.partition, "depth": depth + 1, "raw_shares": k.shares, "norm_shares": s,
                         "raw_usage": raw, "norm_usage": ua, "effective_usage": ue,
                         "fairshare": (2.0 ** (-ue / s) if s > 0 else 0.0)})
            if not k.user:
                walk(k.account, s, ue, depth + 1)

    walk("root", 1.0, 0.0, 0)
    return rows


# --- the queue -----------------------------------------------------------------------------


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


class Queues:
    """The runnable jobs of each partition in scheduling order, as int keys
    ``(MAX_PRIORITY - priority) << 32 | job_id`` (ascending = highest priority, then lowest
    job id); ``tiers`` the partitions' PriorityTier. A job asking for several partitions is
    in each of their lists. Lists may hold jobs no longer runnable: callers skip ids not in
    ``state.runnable``."""

    __slots__ = ("static_key", "period_key", "static", "lists", "tiers", "known", "ctx", "ctx_key", "best")

    def __init__(self) -> None:
        self.static_key: tuple[Any, ...] | None = None
        self.period_key: tuple[Any, ...] | None = None
        # job id -> (eligible time, fair-share key, ((partition, static part or None), ...))
        self.static: dict[int, tuple[float, str, tuple[tuple[str, float | None], ...]]] = {}
        self.lists: dict[str, list[int]] = {}
        self.tiers: dict[str, int] = {}
        self.known: dict[int, None] = {}
        self.ctx: Context | None = None
        self.ctx_key: tuple[Any, ...] | None = None
        self.best: dict[int, int] = {}  # job id -> its highest priority over its partitions


_QUEUES = PerState()
MASK = 0xFFFFFFFF


def context(state: ClusterState, now: float) -> Context:
    """The period's Context (memoized per state and period)."""
    q = _queues(state)
    key = (period_start(state, now), state.prio_rev, *_totals(state))
    if q.ctx is None or q.ctx_key != key:
        q.ctx, q.ctx_key = Context(state, now), key
    return q.ctx


def _queues(state: ClusterState) -> Queues:
    q = _QUEUES.get(state)
    if q is None:
        q = Queues()
        _QUEUES[state] = q
    return q


@functools.lru_cache(maxsize=1024)
def partition_names(text: str) -> tuple[str, ...]:
    """``a,b`` -> (a, b)."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _static_of(ctx: Context, job: Job, parts: dict[str, Partition]) -> tuple[float, str, tuple[Any, ...]]:
    names = partition_names(job.partition_list)
    per = tuple((name, static_part(ctx, job, parts[name]) if name in parts else None) for name in names)
    return job.eligible_time, _fs_key(job.spec.account, job.spec.user), per


def _keys_of(ctx: Context, job: Job, static: tuple[float, str, tuple[Any, ...]],
             lists: dict[str, list[int]], best: dict[int, int]) -> None:
    eligible, fs_key, per = static
    fixed = None
    top = 1
    for name, part_static in per:
        lst = lists.get(name)
        if lst is None:
            continue  # a partition gone since submission
        if part_static is None:
            if fixed is None:
                fixed = _fixed(ctx, job)
            prio = fixed
        else:
            prio = _combine(ctx, part_static, eligible, fs_key)
        top = max(top, prio)
        lst.append(((MAX_PRIORITY - prio) << 32) | job.job_id)
    best[job.job_id] = top


def queues(state: ClusterState, now: float) -> Queues:
    """The per-partition scheduling order of the runnable jobs at ``now``.

    Static parts of the priorities are computed once per job (again when ``prio_rev`` moves);
    each priority period recombines them with age and fair share and sorts each partition's
    keys; in between, newly runnable jobs are inserted."""
    q = _queues(state)
    totals = _totals(state)
    static_key = (state.prio_rev, *totals)
    period_key = (period_start(state, now), *static_key)
    parts = partitions_of(state)
    runnable, jobs = state.runnable, state.jobs
    ctx = context(state, now)
    if q.static_key != static_key:
        q.static = {}
        q.static_key = static_key
        q.period_key = None
    if q.period_key != period_key:
        static = q.static
        if len(static) > 2 * len(runnable) + 1024:
            static = q.static = {j: static[j] for j in runnable if j in static}
        lists: dict[str, list[int]] = {name: [] for name in parts}
        best: dict[int, int] = {}
        # _keys_of inlined for the common case (one partition, a weighted sum): this loop runs
        # over every runnable job once per period. Same arithmetic, same order as _combine.
        t, w_age, w_fs, max_age, fair = ctx.t, ctx.w_age, ctx.w_fs, ctx.max_age, ctx.fair
        if not ctx.weighted and not ctx.basic:
            # Every weight 0 (the default): the priority is 1, -nice, or an admin's; no
            # factor to compute (FIFO by job id within a priority).
            for job_id in runnable:
                job = jobs[job_id]
                prio = _fixed(ctx, job)
                best[job_id] = prio
                key = ((MAX_PRIORITY - prio) << 32) | job_id
                for name in partition_names(job.partition_list):
                    lst = lists.get(name)
                    if lst is not None:
                        lst.append(key)
            for lst in lists.values():
                lst.sort()
            q.lists, q.known, q.period_key, q.best = lists, dict.fromkeys(runnable), period_key, best
            q.tiers = {name: part.priority_tier for name, part in parts.items()}
            return q
        for job_id in runnable:
            job = jobs[job_id]
            st = static.get(job_id)
            if st is None or st[0] != job.eligible_time:
                st = static[job_id] = _static_of(ctx, job, parts)
            eligible, fs_key, per = st
            if len(per) != 1 or per[0][1] is None:
                _keys_of(ctx, job, st, lists, best)
                continue
            name, total = per[0]
            lst = lists.get(name)
            if lst is None:
                continue
            if w_age:
                x = t - eligible
                x = (x if x > 0.0 else 0.0) / max_age
                total += w_age * (x if x < 1.0 else 1.0)
            if w_fs:
                total += w_fs * fair.get(fs_key, 1.0)
            prio = int(total)
            prio = 1 if prio < 1 else (MAX_PRIORITY if prio > MAX_PRIORITY else prio)
            best[job_id] = prio
            lst.append(((MAX_PRIORITY - prio) << 32) | job_id)
        for lst in lists.values():
            lst.sort()
        q.lists, q.known, q.period_key, q.best = lists, dict.fromkeys(runnable), period_key, best
        q.tiers = {name: part.priority_tier for name, part in parts.items()}
        return q
    known = q.known
    if len(known) != len(runnable) or known.keys() != runnable.keys():
        for job_id in known.keys() - runnable.keys():
            del known[job_id]
        new = runnable.keys() - known.keys()
        if new:
            added: dict[str, list[int]] = {name: [] for name in q.lists}
            for job_id in sorted(new):
                job = jobs[job_id]
                st = q.static[job_id] = _static_of(ctx, job, parts)
                _keys_of(ctx, job, st, added, q.best)
                known[job_id] = None
            for name, keys in added.items():
                if not keys:
                    continue
                lst = q.lists[name]
                if len(keys) > 64:
                    lst.extend(keys)
                    lst.sort()
                else:
                    for key in keys:
                        bisect.insort(lst, key)
        stale = sum(len(lst) for lst in q.lists.values()) - len(runnable)
        if stale > len(runnable) + 1024:  # mostly started jobs: compact
            q.lists = {name: [k for k in lst if (k & MASK) in runnable] for name, lst in q.lists.items()}
    return q


def entry_priority(key: int) -> int:
    return MAX_PRIORITY - (key >> 32)


def _totals(state: ClusterState) -> tuple[int, int]:
    return len(state.nodes), sum(n.cpus for n in state.nodes.values())


def queued_priority(state: ClusterState, job: Job, now: float) -> int:
    """A pending job's priority as the scheduler orders it: from the queues the last pass
    (or reasons walk) memoized for this state and period, else computed. Called once per
    job by readers (squeue of 100,000 jobs), so it does no per-state work itself."""
    q = _QUEUES.get(state)
    if q is not None and q.period_key is not None and q.period_key[:2] == (period_start(state, now), state.prio_rev):
        prio = q.best.get(job.job_id)
        if prio is not None:
            return prio
    return job_priority(state, job, now)


def partition_priorities(state: ClusterState, job: Job, now: float) -> dict[str, int]:
    """A pending job's priority in each partition it may run in (squeue -P lists it once
    per partition, each with its own)."""
    parts = partitions_of(state)
    ctx = context(state, now)
    return {n: compute(ctx, job, parts[n]) for n in partition_names(job.partition_list) if n in parts}


def job_priority(state: ClusterState, job: Job, now: float) -> int:
    """The priority squeue and scontrol show: for a pending job the highest of its
    partitions', for a started job the one it has in its partition."""
    parts = partitions_of(state)
    ctx = context(state, now)
    started = job.state is not JobState.PENDING and job.partition
    names = [job.partition] if started else list(partition_names(job.partition_list))
    best = [compute(ctx, job, parts[n]) for n in names if n in parts]
    return max(best) if best else 1
