"""The cluster state that ``apply`` folds ops into.

Invariants:
- The state is plain data (no locks, sockets or callables) so it can be snapshotted and
  compared byte for byte.
- Only ``spurcore.reduce.apply`` mutates it. Everything else reads.
- Job base state and the COMPLETING / STOPPED flags are kept apart, as Slurm does; the
  name a tool prints is ``Job.display_state``.
- Indexes (``pending``, ``unlaunched``, ``open_actions``) are part of the state and kept by
  the reducer, so that what agents must still be told is derived from state alone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import attrs

from spurcore.ops import JobSpec
from spurcore.states import STATE_CODES, TERMINAL_STATES


class JobState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    DEADLINE = "DEADLINE"


TERMINAL = frozenset(s for s in JobState if s.value in TERMINAL_STATES)

COMPACT = STATE_CODES  # display name -> compact code

BATCH_STEP = "batch"


@attrs.define(slots=True, eq=True)
class Step:
    """A job step. An srun step runs ``tasks[i]`` (global task ids) on ``nodes[i]`` and holds
    ``cpus[i]`` CPUs there (none when ``overlap``); it stays RUNNING until every one of its
    nodes has reported (``node_status``), and its status is then Slurm's combination of
    theirs. Steps recorded before layouts existed have empty ``tasks``/``cpus``: all their
    tasks ran on ``nodes[0]`` and they held no CPUs."""

    job_id: int
    step_id: int | str  # an int for srun steps, "batch" for the batch script
    name: str
    argv: tuple[str, ...]
    ntasks: int
    nodes: tuple[str, ...]
    state: str  # RUNNING, COMPLETED, FAILED, CANCELLED, OUT_OF_MEMORY, NODE_FAIL
    start_time: float
    end_time: float = 0.0
    exit_status: int | None = None  # raw wait status
    uid: int = 0
    # --- snapshot version 3: layouts, per-node completion and usage ---
    tasks: tuple[tuple[int, ...], ...] = ()
    cpus: tuple[int, ...] = ()
    overlap: bool = False
    cpus_per_task: int = 1
    distribution: str = ""
    node_status: dict[str, int] = attrs.field(factory=dict)  # node -> raw status it reported
    usage: dict[str, dict[str, float]] = attrs.field(factory=dict)  # node -> its usage record

    @property
    def task_ids(self) -> tuple[tuple[int, ...], ...]:
        """Global task ids per node (a pre-layout step: all on its first node)."""
        return self.tasks or ((tuple(range(self.ntasks)),) if self.nodes else ())


@attrs.define(slots=True, eq=True)
class Job:
    job_id: int
    spec: JobSpec
    submit_time: float
    state: JobState = JobState.PENDING
    completing: bool = False
    stopped: bool = False
    reason: str = "None"  # Slurm reason for non-pending jobs (pending ones are derived)
    state_desc: str = ""  # e.g. RaisedSignal:11(Segmentation fault)
    hold: int = 0  # HoldKind
    eligible_time: float = 0.0
    start_time: float = 0.0
    end_time: float = 0.0
    suspend_time: float = 0.0
    suspended_secs: float = 0.0
    nodes: tuple[str, ...] = ()
    cpus_per_node: int = 0
    mem_per_node: int = 0
    exit_status: int | None = None  # raw wait status of the batch script
    derived_ec: int = 0
    requid: int = -1
    failed_node: str = ""
    restarts: int = 0
    allocated: bool = False  # holds CPUs and memory on its nodes (suspend releases them)
    unlaunched: set[str] = attrs.field(factory=set)  # start intents not yet ACKed
    undone: set[str] = attrs.field(factory=set)  # nodes that still run something of the job
    node_reported: bool = False  # the batch host's JobNodeComplete arrived
    steps: dict[int | str, Step] = attrs.field(factory=dict)
    next_step_id: int = 0
    # "kind:job" -> "done"/"failed": dependencies resolved when their job left the hot
    # state (Slurm keeps a failed dependency failed after the other job is purged).
    dep_resolved: dict[str, str] = attrs.field(factory=dict)
    # Job arrays (as Slurm keeps them): the array's first record, whose id is the array's
    # job id, holds every task not yet started as ranges; each task that starts (or is
    # cancelled, held or updated alone) is split off as a record of its own, and the last
    # one turns the first record itself into that task.
    array_job_id: int = 0  # 0: not part of an array
    array_task_id: int = -1  # this record's task; -1 on the record of the pending tasks
    array_pending: list[list[int]] = attrs.field(factory=list)  # [[first, last, step], ...]
    array_throttle: int = 0  # the array's %N: tasks running at once (0: no limit)
    # CPUs held on each node by its running (non-overlapping) srun steps (snapshot v3).
    step_cpus: dict[str, int] = attrs.field(factory=dict)
    # --- snapshot version 4: partitions, priority, GRES ---
    # The partition it runs in once started; before that, when -p was not given, the default
    # partition at submission (``partition_list`` is what a pending job may run in).
    partition: str = ""
    priority_set: int = -1  # scontrol update job Priority=N (admin): fixed; -1 = computed
    # node -> GRES name -> device indexes allocated on that node ({"n1": {"gpu": [0, 1]}})
    gres_alloc: dict[str, dict[str, list[int]]] = attrs.field(factory=dict)

    @property
    def partition_list(self) -> str:
        """The partitions the job asked for (``-p a,b``), or the default one it was given."""
        return self.spec.partition or self.partition

    @property
    def display_state(self) -> str:
        if self.completing:
            return "COMPLETING"
        if self.stopped:
            return "STOPPED"
        return self.state.value

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def batch_host(self) -> str:
        return self.nodes[0] if self.nodes else ""

    @property
    def ncpus(self) -> int:
        if self.nodes:
            return self.cpus_per_node * len(self.nodes)
        spec = self.spec
        options = spec.options
        if options and ("overcommit" in options or "mincpus" in options):  # -O, --mincpus: as allocated
            from spurcore.resources import task_cpus_per_node

            nodes = max(spec.nodes, 1)
            return task_cpus_per_node(spec, nodes) * nodes
        return max(spec.ntasks * spec.cpus_per_task, spec.nodes)


@attrs.define(slots=True, eq=True)
class Node:
    """A compute node. ``cpus``/``mem_mb`` are what the scheduler allocates: the configured
    values for a configured node (Slurm schedules by the configuration), the registered ones
    otherwise. Base state and flags are kept apart as in Slurm: ``up`` (the agent is
    registered and responding), ``admin_down`` (scontrol state=down), and the DRAIN and
    FAIL flags; ``display_state`` combines them with the allocation as sinfo names it."""

    name: str
    cpus: int
    mem_mb: int
    address: str
    up: bool = True
    reason: str = ""
    registered_at: float = 0.0
    down_at: float = 0.0
    alloc_cpus: int = 0
    alloc_mem: int = 0
    jobs: set[int] = attrs.field(factory=set)
    # --- snapshot version 4: the configuration and Slurm's node states ---
    configured: bool = False  # named by the configuration (False: registered before any)
    registered: bool = True  # an agent has registered it at least once (False: UNKNOWN)
    drain: bool = False
    fail: bool = False
    admin_down: bool = False
    reason_time: float = 0.0
    reason_uid: int = -1  # -1: set by the controller itself (slurm's "root")
    reported_cpus: int = 0  # what the agent last registered with
    reported_mem: int = 0
    features: tuple[str, ...] = ()
    weight: int = 1
    # GRES devices as configured: [[name, type, count, files], ...]; devices of one name are
    # numbered 0.. in this order ("gpu:a100:2,gpu:v100:1": a100 = 0-1, v100 = 2)
    gres: list[list[Any]] = attrs.field(factory=list)
    gres_used: dict[str, list[int]] = attrs.field(factory=dict)  # name -> allocated indexes, sorted

    @property
    def usable(self) -> bool:
        """May take new jobs: responding, not DOWN, DRAIN or FAIL."""
        return self.up and not (self.admin_down or self.drain or self.fail)

    @property
    def display_state(self) -> str:
        if self.admin_down or (not self.up and self.registered):
            return "DOWN"
        if not self.up:
            return "UNKNOWN"  # configured, never registered
        busy = self.alloc_cpus > 0 or bool(self.jobs)
        if self.fail:
            return "FAILING" if busy else "FAIL"
        if self.drain:
            return "DRAINING" if busy else "DRAINED"
        if self.alloc_cpus == 0:
            return "IDLE"
        if self.alloc_cpus >= self.cpus:
            return "ALLOCATED"
        return "MIXED"

    @property
    def state_flags(self) -> tuple[str, ...]:
        flags = []
        if self.drain:
            flags.append("DRAIN")
        if self.fail:
            flags.append("FAIL")
        if not self.up and self.registered and not self.admin_down:
            flags.append("NOT_RESPONDING")
        return tuple(flags)


@attrs.define(slots=True, eq=True)
class Partition:
    """A partition as configured (``PartitionName=`` keys), in canonical units: times in
    seconds (None: UNLIMITED), node counts (None: UNLIMITED), names expanded."""

    name: str
    nodes: tuple[str, ...] = ()
    all_nodes: bool = False  # Nodes=ALL: every configured node, also ones added later
    default: bool = False
    max_time: int | None = None
    default_time: int | None = None
    max_nodes: int | None = None
    min_nodes: int = 0
    state: str = "UP"  # UP, DOWN, DRAIN, INACTIVE
    priority_tier: int = 1
    priority_job_factor: int = 1
    allow_accounts: tuple[str, ...] = ()  # (): ALL
    deny_accounts: tuple[str, ...] = ()
    allow_groups: tuple[str, ...] = ()  # (): ALL
    allow_uids: tuple[int, ...] = ()  # members of allow_groups, resolved by the proposer
    allow_gids: tuple[int, ...] = ()
    oversubscribe: str = "NO"  # NO, EXCLUSIVE, YES, FORCE (recorded; sharing CPUs is not done)
    hidden: bool = False
    exclusive_user: bool = False


#: The partition of a state that no configuration has named: every node, the default.
IMPLICIT_PARTITION = "debug"


@attrs.define(slots=True, eq=True)
class Account:
    name: str
    description: str = ""
    organization: str = ""


@attrs.define(slots=True, eq=True)
class User:
    name: str
    default_account: str = ""
    admin_level: str = "None"  # None, Operator, Administrator
    default_qos: str = ""


@attrs.define(slots=True, eq=True)
class Assoc:
    """An association (Slurm's cluster/account/user/partition tuple; the cluster is this
    one). ``user == ""`` is the account's own association, whose ``parent`` is the parent
    account ("" for root). ``limits`` maps Slurm's limit names to values: MaxJobs,
    MaxSubmitJobs, GrpJobs, GrpSubmitJobs, MaxWall (seconds) and the TRES maps GrpTRES,
    MaxTRESPerJob ({"cpu": 8, "node": 2, "mem": 4096, "gres/gpu": 2})."""

    account: str
    user: str = ""
    partition: str = ""
    parent: str = ""
    shares: int = 1
    priority: int = 0
    qos: tuple[str, ...] = ()  # allowed QOS (): inherited from the parent (root: normal)
    default_qos: str = ""
    limits: dict[str, Any] = attrs.field(factory=dict)

    @property
    def key(self) -> str:
        return assoc_key(self.account, self.user, self.partition)


def assoc_key(account: str, user: str = "", partition: str = "") -> str:
    return f"{account}|{user}|{partition}"


@attrs.define(slots=True, eq=True)
class Qos:
    """A QOS. ``limits`` as for ``Assoc``; MaxJobs and MaxSubmitJobs count per user
    (Slurm's MaxJobsPerUser, MaxSubmitJobsPerUser)."""

    name: str
    description: str = ""
    priority: int = 0
    limits: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(slots=True, eq=True)
class ActionRecord:
    action_id: int
    job_id: int
    step_id: int  # -1: the whole job
    kind: int  # ActionKind
    signal: int
    target: int  # SignalTarget
    uid: int
    at: float
    pending: set[str] = attrs.field(factory=set)  # nodes that have not ACKed yet
    acks: dict[str, tuple[int, int]] = attrs.field(factory=dict)  # node -> (status, errno)


@attrs.define(slots=True, eq=True)
class ClusterState:
    next_job_id: int = 1
    next_action_id: int = 1
    jobs: dict[int, Job] = attrs.field(factory=dict)
    nodes: dict[str, Node] = attrs.field(factory=dict)
    actions: dict[int, ActionRecord] = attrs.field(factory=dict)  # open intents only
    requests: dict[str, tuple[int, int]] = attrs.field(factory=dict)  # request id -> (job, result)
    pending: dict[int, None] = attrs.field(factory=dict)  # pending job ids in submit order
    # Pending jobs the scheduler may start (not held), kept sorted by job id: held jobs, however
    # many, cost the scheduler nothing. Derived from ``pending`` (see snapshot.decode_state).
    runnable: dict[int, None] = attrs.field(factory=dict)
    unlaunched: dict[int, None] = attrs.field(factory=dict)  # jobs with start intents
    # Array job id -> ids of its records in the hot state (derived from ``jobs``, see
    # snapshot.decode_state), and the outcomes of its purged tasks: [completed, not].
    array_members: dict[int, dict[int, None]] = attrs.field(factory=dict)
    array_purged: dict[int, list[int]] = attrs.field(factory=dict)
    rejected: int = 0  # count of ops rejected so far (deterministic on every replica)
    # --- snapshot version 4: the configuration, accounting and usage ---
    # Partitions in configuration order; empty until a configuration is applied, which
    # means the one implicit partition ``debug`` holding every node (``partitions_of``).
    partitions: dict[str, Partition] = attrs.field(factory=dict)
    settings: dict[str, Any] = attrs.field(factory=dict)  # scheduling settings (slurmconf.SETTINGS)
    config_digest: str = ""  # the file content a ClusterConfigured last brought ("": none yet)
    accounts: dict[str, Account] = attrs.field(factory=dict)
    users: dict[str, User] = attrs.field(factory=dict)
    assocs: dict[str, Assoc] = attrs.field(factory=dict)  # assoc_key -> association
    qos: dict[str, Qos] = attrs.field(factory=dict)
    # Fair-share usage: "account|user" -> [CPU-seconds decayed to ``at``, at], charged when an
    # allocation ends; ``usage_epoch`` is the same as of the start of the priority period of
    # the latest charge (what priorities of that period see, as Slurm recalculates them once
    # per PriorityCalcPeriod), ``usage_epoch_no`` that period's number.
    usage: dict[str, list[float]] = attrs.field(factory=dict)
    usage_epoch: dict[str, list[float]] = attrs.field(factory=dict)
    usage_epoch_no: int = -1
    # Bumped by every op that changes a priority input other than the clock and the set of
    # pending jobs (configuration, accounting, a job's nice/priority/partition): readers that
    # cache priorities (spurcore.priority) recompute them when it moves.
    prio_rev: int = 0


def partitions_of(state: ClusterState) -> dict[str, Partition]:
    """The partitions in effect: the configured ones, or the implicit ``debug`` (every node,
    the default) while no configuration has named any."""
    if state.partitions:
        return state.partitions
    return _IMPLICIT


_IMPLICIT = {IMPLICIT_PARTITION: Partition(IMPLICIT_PARTITION, all_nodes=True, default=True)}


def partition_nodes(state: ClusterState, part: Partition) -> tuple[str, ...]:
    if part.all_nodes:
        return tuple(state.nodes)
    return part.nodes


_MEMBERS: dict[int, tuple[tuple[str, ...], frozenset[str]]] = {}


def in_partition(state: ClusterState, part: Partition, names: Any) -> bool:
    """Every node of ``names`` belongs to ``part`` (memoized per node tuple: starts are many)."""
    if part.all_nodes:
        return all(n in state.nodes for n in names)
    cached = _MEMBERS.get(id(part.nodes))
    if cached is None or cached[0] is not part.nodes:
        if len(_MEMBERS) > 256:
            _MEMBERS.clear()
        cached = _MEMBERS[id(part.nodes)] = (part.nodes, frozenset(part.nodes))
    return all(n in cached[1] for n in names)


def default_partition(state: ClusterState) -> str:
    for part in partitions_of(state).values():
        if part.default:
            return part.name
    return ""
