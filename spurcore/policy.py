"""Partition access and accounting policy: who may submit where, and which limits hold.

Invariants:
- Pure: state in, decisions out. The reducer uses ``check_submit`` at submit time (refusals
  with Slurm's messages); the scheduler uses ``Usage`` and ``limit_reason`` for the pending
  reasons of jobs that wait on a limit. Both read the same association tree, so a limit
  that refuses a submission and one that holds a job back are the same limit.
- Enforcement is off unless ``AccountingStorageEnforce`` (``state.settings["enforce"]``)
  names it, as in Slurm: ``associations`` (the job's account must be one of the user's),
  ``qos`` (its QOS must be allowed), ``limits`` (MaxJobs, MaxSubmitJobs, GrpJobs,
  GrpSubmitJobs, GrpTRES, MaxTRESPerJob, MaxWall).
- Limits are looked up in Slurm's order: the job's QOS, then the user's association, then
  its account and the account's ancestors; the first level that sets a limit decides,
  except Grp* limits, which hold at every level (resource_limits.shtml, "Hierarchy").

Source: Slurm 25.11 doc/html/resource_limits.shtml, src/slurmctld/acct_policy.c.
"""

from __future__ import annotations

from typing import Any

from spurcore.model import Assoc, ClusterState, Job, JobState, Partition, Qos, assoc_key, partitions_of

INVALID_PARTITION = "Invalid partition name specified"
NO_DEFAULT_PARTITION = "No partition specified or system default partition"
PARTITION_NOT_AVAIL = "Required partition not available (inactive or drain)"
INVALID_ACCOUNT = "Invalid account or account/partition combination specified"
INVALID_QOS = "Invalid qos specification"
GROUP_NOT_PERMITTED = "User's group not permitted to use this partition"
ACCOUNTING_POLICY = (
    "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)"
)
ROOT = "root"
NORMAL_QOS = "normal"

#: Limits an association or QOS may carry; TRES maps are keyed cpu, mem, node, gres/gpu ...
LIMIT_KEYS = ("MaxJobs", "MaxSubmitJobs", "GrpJobs", "GrpSubmitJobs", "GrpTRES", "MaxTRESPerJob", "MaxWall")
TRES_LIMITS = ("GrpTRES", "MaxTRESPerJob")


def enforced(state: ClusterState, what: str) -> bool:
    return what in (state.settings.get("enforce") or ())


def job_partitions(state: ClusterState, spec_partition: str) -> list[str]:
    return [p.strip() for p in spec_partition.split(",") if p.strip()]


# --- partitions ----------------------------------------------------------------------------


def partition_access(part: Partition, account: str, uid: int, gid: int) -> str | None:
    """Why a job of ``account``/``uid``/``gid`` may not use ``part`` (None: it may)."""
    if part.allow_accounts and account not in part.allow_accounts:
        return INVALID_ACCOUNT
    if part.deny_accounts and account in part.deny_accounts:
        return INVALID_ACCOUNT
    if part.allow_groups and uid != 0 and uid not in part.allow_uids and gid not in part.allow_gids:
        return GROUP_NOT_PERMITTED
    return None


def partition_reason(part: Partition, nodes: int, time_limit: int | None) -> str | None:
    """A pending reason from the partition itself (None: the partition takes the job)."""
    if part.state == "INACTIVE":
        return "PartitionInactive"
    if part.state == "DOWN":
        return "PartitionDown"
    if part.max_time is not None and (time_limit is None or time_limit > part.max_time):
        return "PartitionTimeLimit"
    if (part.max_nodes is not None and nodes > part.max_nodes) or nodes < part.min_nodes:
        return "PartitionNodeLimit"
    return None


def effective_time_limit(part: Partition | None, time_limit: int | None) -> int | None:
    if time_limit is not None or part is None:
        return time_limit
    return part.default_time if part.default_time is not None else part.max_time


# --- associations --------------------------------------------------------------------------


def user_assoc(state: ClusterState, account: str, user: str, partition: str = "") -> Assoc | None:
    return state.assocs.get(assoc_key(account, user, partition)) or state.assocs.get(assoc_key(account, user))


def account_chain(state: ClusterState, account: str) -> list[Assoc]:
    """The account's association and its ancestors', nearest first (loops cut)."""
    out: list[Assoc] = []
    seen: set[str] = set()
    name = account
    while name and name not in seen:
        seen.add(name)
        assoc = state.assocs.get(assoc_key(name))
        if assoc is None:
            break
        out.append(assoc)
        name = assoc.parent
    return out


def allowed_qos(state: ClusterState, assoc: Assoc) -> tuple[str, ...]:
    """The QOS an association may use: its own list, else its account's, up the tree; the
    root default is ``normal``."""
    if assoc.qos:
        return assoc.qos
    for parent in account_chain(state, assoc.account):
        if parent.qos:
            return parent.qos
    return (NORMAL_QOS,)


def default_qos(state: ClusterState, assoc: Assoc | None, user: str) -> str:
    if assoc is not None:
        if assoc.default_qos:
            return assoc.default_qos
        for parent in account_chain(state, assoc.account):
            if parent.default_qos:
                return parent.default_qos
    u = state.users.get(user)
    if u is not None and u.default_qos:
        return u.default_qos
    return NORMAL_QOS


def qos_of(state: ClusterState, name: str) -> Qos | None:
    q = state.qos.get(name)
    if q is None and name == NORMAL_QOS:
        return Qos(NORMAL_QOS)
    return q


def resolve_account(state: ClusterState, user: str, account: str) -> str:
    """``-A`` or the user's default account ("" when neither)."""
    if account:
        return account
    u = state.users.get(user)
    return u.default_account if u is not None else ""


def check_submit(state: ClusterState, user: str, uid: int, gid: int, account: str, qos: str,
                 partitions: list[str]) -> tuple[str, str, str | None]:
    """(account, qos, refusal) for a submission: the account and QOS filled in from the
    user's defaults when accounting knows the user, and Slurm's refusal message if any."""
    account = resolve_account(state, user, account)
    assoc = user_assoc(state, account, user, partitions[0] if partitions else "") if account else None
    if assoc is not None and not qos:
        qos = default_qos(state, assoc, user)
    if not enforced(state, "associations"):
        return account, qos, None
    if assoc is None:
        return account, qos, INVALID_ACCOUNT
    qos = qos or NORMAL_QOS
    if (enforced(state, "qos") or enforced(state, "associations")) and (
        qos_of(state, qos) is None or qos not in allowed_qos(state, assoc)
    ):
        return account, qos, INVALID_QOS
    if enforced(state, "limits") and _submit_limit_hit(state, assoc, qos, user):
        return account, qos, ACCOUNTING_POLICY
    return account, qos, None


def _active(job: Job) -> bool:
    return job.state in (JobState.PENDING, JobState.RUNNING, JobState.SUSPENDED) or job.completing


def _submit_limit_hit(state: ClusterState, assoc: Assoc, qos: str, user: str) -> bool:
    """MaxSubmitJobs (user association, then account up the tree; the QOS's counts per
    user) and GrpSubmitJobs (every level). Counts the user's active jobs: a scan, done only
    when such a limit is set."""
    q = qos_of(state, qos)
    max_submit = _first_limit([q] if q else [], [assoc, *account_chain(state, assoc.account)], "MaxSubmitJobs")
    grp = [(a, a.limits["GrpSubmitJobs"]) for a in account_chain(state, assoc.account) if "GrpSubmitJobs" in a.limits]
    if q is not None and "GrpSubmitJobs" in q.limits:
        grp_q = q.limits["GrpSubmitJobs"]
    else:
        grp_q = None
    if max_submit is None and not grp and grp_q is None:
        return False
    mine = acct = in_qos = 0
    tree = {a.account for a in account_chain(state, assoc.account)}
    for job in state.jobs.values():
        if not _active(job):
            continue
        spec = job.spec
        if spec.user == user and spec.account == assoc.account:
            mine += 1
        if grp and in_subtree(state, spec.account, tree):
            acct += 1
        if spec.qos == qos:
            in_qos += 1
    if max_submit is not None and mine >= max_submit:
        return True
    if grp_q is not None and in_qos >= grp_q:
        return True
    return any(acct >= limit for _, limit in grp)


def in_subtree(state: ClusterState, account: str, names: set[str]) -> bool:
    return any(a.account in names for a in account_chain(state, account))


def _first_limit(qos: list[Qos], assocs: list[Assoc], key: str) -> Any:
    for holder in (*qos, *assocs):
        if key in holder.limits:
            return holder.limits[key]
    return None


# --- limits that hold a pending job back ---------------------------------------------------


class Usage:
    """What running jobs hold, per association and QOS, for the scheduler's limit checks;
    ``add`` keeps it current as a pass starts jobs."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.user_jobs: dict[str, int] = {}  # user assoc key -> running jobs
        self.acct_jobs: dict[str, int] = {}  # account -> running jobs in its subtree
        self.acct_tres: dict[str, dict[str, int]] = {}
        self.qos_user_jobs: dict[tuple[str, str], int] = {}
        self.qos_jobs: dict[str, int] = {}
        self.qos_tres: dict[str, dict[str, int]] = {}
        seen: set[int] = set()
        for node in state.nodes.values():
            for job_id in node.jobs:
                if job_id in seen:
                    continue
                seen.add(job_id)
                job = state.jobs.get(job_id)
                if job is not None and (job.allocated or job.state is JobState.SUSPENDED) and not job.terminal:
                    self.add(job, _job_tres(job.spec, len(job.nodes), job.cpus_per_node, job.mem_per_node))

    def add(self, job: Job, tres: dict[str, int]) -> None:
        spec = job.spec
        key = assoc_key(spec.account, spec.user)
        self.user_jobs[key] = self.user_jobs.get(key, 0) + 1
        for a in account_chain(self.state, spec.account):
            self.acct_jobs[a.account] = self.acct_jobs.get(a.account, 0) + 1
            held = self.acct_tres.setdefault(a.account, {})
            for k, v in tres.items():
                held[k] = held.get(k, 0) + v
        if spec.qos:
            qk = (spec.qos, spec.user)
            self.qos_user_jobs[qk] = self.qos_user_jobs.get(qk, 0) + 1
            self.qos_jobs[spec.qos] = self.qos_jobs.get(spec.qos, 0) + 1
            held = self.qos_tres.setdefault(spec.qos, {})
            for k, v in tres.items():
                held[k] = held.get(k, 0) + v


def _job_tres(spec: Any, nodes: int, cpus_per_node: int, mem_per_node: int, gpus_per_node: int = 0) -> dict[str, int]:
    tres = {"cpu": cpus_per_node * nodes, "node": nodes, "mem": mem_per_node * nodes}
    if gpus_per_node:
        tres["gres/gpu"] = gpus_per_node * nodes
    return tres


job_tres = _job_tres

#: Slurm's reason names (src/common/job_state_reason.c), which are not regular.
_MAX_PER_JOB = {
    ("QOS", "cpu"): "QOSMaxCpuPerJobLimit", ("Assoc", "cpu"): "AssocMaxCpuPerJobLimit",
    ("QOS", "node"): "QOSMaxNodePerJobLimit", ("Assoc", "node"): "AssocMaxNodePerJobLimit",
    ("QOS", "mem"): "QOSMaxMemoryPerJob", ("Assoc", "mem"): "AssocMaxMemPerJob",
    ("QOS", "gres"): "QOSMaxGRESPerJob", ("Assoc", "gres"): "AssocMaxGRESPerJob",
}
_GRP = {
    ("QOS", "cpu"): "QOSGrpCpuLimit", ("Assoc", "cpu"): "AssocGrpCpuLimit",
    ("QOS", "node"): "QOSGrpNodeLimit", ("Assoc", "node"): "AssocGrpNodeLimit",
    ("QOS", "mem"): "QOSGrpMemLimit", ("Assoc", "mem"): "AssocGrpMemLimit",
    ("QOS", "gres"): "QOSGrpGRES", ("Assoc", "gres"): "AssocGrpGRES",
}


def _tres_kind(key: str) -> str:
    return key if key in ("cpu", "node", "mem") else "gres"


def limit_reason(state: ClusterState, usage: Usage, job: Job, tres: dict[str, int],
                 time_limit: int | None, partition: str) -> str | None:
    """The pending reason of an association or QOS limit that ``job`` would exceed if it
    started now with ``tres`` (None: none does). Only with AccountingStorageEnforce=limits."""
    if not enforced(state, "limits"):
        return None
    spec = job.spec
    assoc = user_assoc(state, spec.account, spec.user, partition)
    chain = account_chain(state, spec.account)
    assocs = ([assoc] if assoc is not None else []) + chain
    q = qos_of(state, spec.qos) if spec.qos else None
    qos = [q] if q is not None else []
    # MaxWall and MaxTRESPerJob: the first level that sets them decides.
    for holder, prefix in ((qos, "QOS"), (assocs, "Assoc")):
        for h in holder:
            if "MaxWall" in h.limits:
                if time_limit is None or time_limit > h.limits["MaxWall"]:
                    return f"{prefix}MaxWallDurationPerJobLimit"
                break
        else:
            continue
        break
    for key, value in tres.items():
        limit, prefix = _first_tres(qos, assocs, "MaxTRESPerJob", key)
        if limit is not None and value > limit:
            return _MAX_PER_JOB[(prefix, _tres_kind(key))]
    # MaxJobs: QOS per user, else the user's association, else up the accounts.
    if q is not None and "MaxJobs" in q.limits:
        if usage.qos_user_jobs.get((q.name, spec.user), 0) >= q.limits["MaxJobs"]:
            return "QOSMaxJobsPerUserLimit"
    else:
        for a in assocs:
            if "MaxJobs" in a.limits:
                if usage.user_jobs.get(assoc_key(spec.account, spec.user), 0) >= a.limits["MaxJobs"]:
                    return "AssocMaxJobsLimit"
                break
    # Grp limits: every level.
    if q is not None:
        if "GrpJobs" in q.limits and usage.qos_jobs.get(q.name, 0) >= q.limits["GrpJobs"]:
            return "QOSGrpJobsLimit"
        for key, limit in (q.limits.get("GrpTRES") or {}).items():
            if usage.qos_tres.get(q.name, {}).get(key, 0) + tres.get(key, 0) > limit:
                return _GRP[("QOS", _tres_kind(key))]
    for a in chain:
        if "GrpJobs" in a.limits and usage.acct_jobs.get(a.account, 0) >= a.limits["GrpJobs"]:
            return "AssocGrpJobsLimit"
        for key, limit in (a.limits.get("GrpTRES") or {}).items():
            if usage.acct_tres.get(a.account, {}).get(key, 0) + tres.get(key, 0) > limit:
                return _GRP[("Assoc", _tres_kind(key))]
    if assoc is not None:
        if "GrpJobs" in assoc.limits and usage.user_jobs.get(assoc_key(spec.account, spec.user), 0) >= assoc.limits["GrpJobs"]:
            return "AssocGrpJobsLimit"
    return None


def _first_tres(qos: list[Qos], assocs: list[Assoc], key: str, tres: str) -> tuple[int | None, str]:
    for holder, prefix in ((qos, "QOS"), (assocs, "Assoc")):
        for h in holder:
            m = h.limits.get(key)
            if m and tres in m:
                return m[tres], prefix
    return None, ""


def never_runs_reason(state: ClusterState, job: Job, partitions: list[str]) -> str | None:
    """None, or why a job can never start in any of its partitions as they stand (unknown
    since submission: a partition deleted by a reconfiguration)."""
    parts = partitions_of(state)
    if not any(p in parts for p in partitions):
        return "PartitionConfig"
    return None
