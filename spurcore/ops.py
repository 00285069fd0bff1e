"""The operation vocabulary: every change of cluster state is one of these records.

Invariants:
- Ops are frozen, slotted attrs classes named in the past tense.
- Each op carries every input its effect depends on (times as ``at``, ids, the user, the
  requester). ``apply`` reads nothing else.
- ``TYPE`` numbers are never reused and never renumbered; ``VERSION`` is the schema
  version of the op's fields. Changing a field list means a new VERSION and an upcaster in
  ``spurcore.codec`` (the only place that knows about old versions).
- Field order is the wire order (the codec writes fields positionally). Golden bytes in
  ``tests/golden/ops.msgpack.hex`` pin it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar

import attrs


class ActionKind(IntEnum):
    """What an agent is asked to do to a job. Wire values are never reused."""

    KILL = 1  # Slurm's terminate: SIGCONT, SIGTERM, KillWait, SIGKILL
    STOP = 2  # scontrol suspend: SIGTSTP, grace, SIGSTOP
    CONT = 3  # scontrol resume: SIGCONT
    SIGNAL = 4  # scancel -s N (STOP/CONT by signal keep the CPUs, unlike suspend)


class SignalTarget(IntEnum):
    """Slurm's recipients of ``scancel -s``."""

    STEPS = 0  # default: every step but not the batch shell
    BATCH = 1  # --batch: only the batch shell
    FULL = 2  # --full: the batch shell's whole process group, plus the steps


class HoldKind(IntEnum):
    NONE = 0
    USER = 1  # JobHeldUser
    ADMIN = 2  # JobHeldAdmin


@attrs.frozen(slots=True)
class JobSpec:
    """Everything the submitter asked for. Stored verbatim in the job record."""

    name: str
    user: str
    uid: int
    gid: int
    script: str | None  # None: an allocation for srun, no batch script
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    nodes: int = 1
    ntasks: int = 1
    cpus_per_task: int = 1
    mem_mb: int = 0  # per node; 0 = no explicit request
    time_limit: int | None = None  # seconds; None = UNLIMITED
    stdout: str = ""  # pattern (%j %x %u %N %%); "" = slurm-%j.out in cwd
    stderr: str = ""  # "" = same as stdout
    stdin: str = "/dev/null"
    hold: bool = False
    dependency: str = ""
    partition: str = ""  # -p: one name or "a,b" (the first that can start it); "" = the default
    account: str = ""
    command: str = ""  # the script path, or "(null)"
    submit_line: str = ""
    alloc_node: str = ""
    alloc_sid: int = 0
    # --- JobSubmitted version 2: job arrays and the rest of sbatch's option surface ---
    array: str = ""  # --array as given ("0-99:2%10"); "" = not an array
    ntasks_per_node: int = 0  # 0 = not given
    mem_per_cpu: int = 0  # MB per allocated CPU (exclusive with mem_mb); 0 = not given
    exclusive: str = ""  # "", "exclusive", "user", "mcs" or "topo"
    nodelist: str = ""  # -w: a hostlist the allocation must include
    exclude: str = ""  # -x: a hostlist the allocation must avoid
    begin_time: float = 0.0  # --begin as an absolute time; 0 = eligible at submit
    deadline: float = 0.0  # --deadline as an absolute time; 0 = none
    open_mode: str = ""  # --open-mode: "", "append" or "truncate"
    signal: int = 0  # --signal: signal number sent before the time limit (0 = none)
    signal_time: int = 0  # ... this many seconds before it
    signal_flags: str = ""  # "B": only the batch shell; "R": reservation end (recorded)
    requeue: int = -1  # -1: the cluster's JobRequeue; 0: --no-requeue; 1: --requeue
    kill_on_invalid_dep: int = -1  # -1: the cluster default; 0 or 1
    comment: str = ""
    wckey: str = ""
    nice: int = 0
    qos: str = ""
    constraint: str = ""  # -C/--constraint: node features
    time_min: int | None = None  # --time-min in seconds
    mail_type: str = ""  # recorded: Spur sends no mail
    mail_user: str = ""
    # Every other accepted option, recorded as given: long option name -> value ("" for a
    # flag). Shown where Slurm shows it; see the user guide's differences from Slurm.
    options: dict[str, str] = attrs.field(factory=dict)
    # --- JobSubmitted version 3: generic resources (typed forms of sbatch's text options;
    # the reducer also lifts them from ``options`` when a client sent them only there) ---
    gres: str = ""  # --gres: "gpu:2", "gpu:a100:1,nic:1" (per node)
    gpus: str = ""  # -G/--gpus: "[type:]count" for the whole job
    gpus_per_node: str = ""  # --gpus-per-node: "[type:]count"
    gpus_per_task: str = ""  # --gpus-per-task: "[type:]count"
    cpus_per_gpu: int = 0  # --cpus-per-gpu (0 = not given)
    mem_per_gpu: int = 0  # --mem-per-gpu in MB (0 = not given)


@attrs.frozen(slots=True)
class NodeRegistered:
    TYPE: ClassVar[int] = 1
    VERSION: ClassVar[int] = 1
    name: str
    cpus: int
    mem_mb: int
    address: str
    at: float


@attrs.frozen(slots=True)
class NodeDown:
    TYPE: ClassVar[int] = 2
    VERSION: ClassVar[int] = 2  # 2: fenced, job_requeue, begin_time
    name: str
    reason: str
    at: float
    # The proposer's settings: the node's jobs are fenced (certain to have stopped), the
    # cluster's JobRequeue, and when requeued jobs may start again. Version 1: no requeue.
    fenced: bool = False
    job_requeue: bool = False
    begin_time: float = 0.0


@attrs.frozen(slots=True)
class JobSubmitted:
    """A new job; the reducer allocates its id. ``request_id`` makes retries idempotent."""

    TYPE: ClassVar[int] = 3
    VERSION: ClassVar[int] = 3  # 2: JobSpec grew the option-surface fields; 3: GRES fields
    request_id: str
    spec: JobSpec
    at: float


@attrs.frozen(slots=True)
class JobStart:
    """The scheduler's decision: run ``job_id`` on ``nodes`` (first one is the batch host)."""

    TYPE: ClassVar[int] = 4
    VERSION: ClassVar[int] = 3  # 2: array_task_id; 3: partition
    job_id: int
    nodes: tuple[str, ...]
    cpus_per_node: int
    mem_per_node: int
    at: float
    # For a job array's pending record: the task to split off and start (it becomes a job
    # of its own, with an id the reducer allocates). -1: start ``job_id`` itself.
    array_task_id: int = -1
    # The partition it starts in, one of the job's (``-p a,b``). "": the first of them that
    # holds the nodes (how version-2 records are read).
    partition: str = ""


@attrs.frozen(slots=True)
class JobLaunched:
    """An agent's ACK of a start: the start intent for ``node`` is cleared."""

    TYPE: ClassVar[int] = 5
    VERSION: ClassVar[int] = 1
    job_id: int
    node: str
    at: float


@attrs.frozen(slots=True)
class StepCreated:
    """``srun`` asked for a step; the reducer allocates the step id.

    Version 2 carries the layout the leader computed (``spurcore.steps.plan``): the step's
    ``nodes``, how many tasks run on each (``task_counts``) and which (``task_ids``,
    concatenated node by node), the CPUs given on each node and whether the step overlaps
    (holds none). The reducer re-checks that it fits. A version-1 record (no ``nodes``)
    is a step of ``ntasks`` tasks on ``node`` (the batch host when empty) holding nothing.
    """

    TYPE: ClassVar[int] = 6
    VERSION: ClassVar[int] = 2  # 2: the layout
    request_id: str
    job_id: int
    name: str
    argv: tuple[str, ...]
    ntasks: int
    node: str
    uid: int
    at: float
    nodes: tuple[str, ...] = ()
    task_counts: tuple[int, ...] = ()
    task_ids: tuple[int, ...] = ()
    cpus: tuple[int, ...] = ()
    overlap: bool = False
    cpus_per_task: int = 1
    distribution: str = ""


@attrs.frozen(slots=True)
class JobStepComplete:
    """One node's part of a step ended with the raw status Slurm's slurmstepd reports for
    it (``exit_code``, ``signal``, ``oom``) and the usage it measured (version 2): CPU
    seconds, memory peaks and averages over that node's tasks (``spurcore.usage``)."""

    TYPE: ClassVar[int] = 7
    VERSION: ClassVar[int] = 2  # 2: usage
    job_id: int
    step_id: int
    node: str
    exit_code: int
    signal: int
    oom: bool
    at: float
    usage: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class JobNodeComplete:
    """The batch script (or, for an srun-created job, its only step) ended on ``node``."""

    TYPE: ClassVar[int] = 8
    VERSION: ClassVar[int] = 3  # 2: fenced, job_requeue, begin_time; 3: usage
    job_id: int
    node: str
    exit_code: int
    signal: int
    oom: bool
    at: float
    # The node's supervisor killed the script because the node lost the controllers' quorum
    # (fencing): the job's node failed. job_requeue and begin_time: the proposer's requeue
    # settings, as in NodeDown.
    fenced: bool = False
    job_requeue: bool = False
    begin_time: float = 0.0
    # What the batch script's process tree used (version 3; ``spurcore.usage``'s node
    # record, from wait4): sacct's batch step row
    usage: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class ActionRequested:
    """An intent for the agents: committed before anything is sent, cleared only by ACKs.

    ``step_id`` is -1 for the whole job. The reducer allocates the action id.
    """

    TYPE: ClassVar[int] = 9
    VERSION: ClassVar[int] = 1
    request_id: str
    job_id: int
    step_id: int
    kind: int  # ActionKind
    signal: int
    target: int  # SignalTarget
    uid: int
    at: float


@attrs.frozen(slots=True)
class ActionAcked:
    TYPE: ClassVar[int] = 10
    VERSION: ClassVar[int] = 1
    action_id: int
    node: str
    status: int  # 0 = done
    errno: int
    at: float


@attrs.frozen(slots=True)
class JobCancelled:
    """scancel of a job; for a pending job this is the whole story (no agent involved)."""

    TYPE: ClassVar[int] = 11
    VERSION: ClassVar[int] = 1
    job_id: int
    uid: int
    at: float


@attrs.frozen(slots=True)
class JobTimeLimitReached:
    TYPE: ClassVar[int] = 12
    VERSION: ClassVar[int] = 1
    job_id: int
    at: float


@attrs.frozen(slots=True)
class JobHeld:
    TYPE: ClassVar[int] = 13
    VERSION: ClassVar[int] = 1
    job_id: int
    uid: int
    admin: bool
    at: float


@attrs.frozen(slots=True)
class JobReleased:
    TYPE: ClassVar[int] = 14
    VERSION: ClassVar[int] = 1
    job_id: int
    uid: int
    at: float


@attrs.frozen(slots=True)
class JobsPurged:
    """Terminal jobs leave the hot state (after MinJobAge); history stays in the WAL."""

    TYPE: ClassVar[int] = 15
    VERSION: ClassVar[int] = 1
    job_ids: tuple[int, ...]
    at: float


@attrs.frozen(slots=True)
class JobRequeued:
    """scontrol requeue: a running job is terminated and goes back to PENDING."""

    TYPE: ClassVar[int] = 16
    VERSION: ClassVar[int] = 2  # 2: begin_time
    job_id: int
    uid: int
    hold: bool
    at: float
    # When the job may start again (Slurm: now + cred_expire + 1); decided by the proposer.
    # Version 1 records are upcast to at + 121, Slurm's default.
    begin_time: float = 0.0


@attrs.frozen(slots=True)
class ArrayTasksSplit:
    """Pending tasks of a job array leave its pending record and become jobs of their own
    (ids allocated by the reducer), so that one task can be cancelled, held or updated
    alone, as Slurm splits them. Splitting a task that already stands alone is a no-op."""

    TYPE: ClassVar[int] = 17
    VERSION: ClassVar[int] = 1
    array_job_id: int
    task_ids: tuple[int, ...]
    at: float


@attrs.frozen(slots=True)
class JobUpdated:
    """``scontrol update job``: ``changes`` maps Slurm's field names (``TimeLimit``,
    ``Name``, ``Comment``, ``ArrayTaskThrottle`` ...) to values already parsed by the
    proposer (seconds, ints, strings). The reducer validates each against the job's state
    and the requester's rights and applies all of them or none."""

    TYPE: ClassVar[int] = 18
    VERSION: ClassVar[int] = 1
    job_id: int
    uid: int
    admin: bool
    changes: dict[str, Any]
    at: float


@attrs.frozen(slots=True)
class JobDeadlineReached:
    """A pending job that can no longer end before its ``--deadline`` is removed
    (state DEADLINE, reason ``DeadLine``), as Slurm does."""

    TYPE: ClassVar[int] = 19
    VERSION: ClassVar[int] = 1
    job_id: int
    at: float


# --- the configuration, node states, partitions and accounting (TYPE 30+) --------------------


@attrs.frozen(slots=True)
class ClusterConfigured:
    """The configuration's nodes, partitions and scheduling settings, as the leader read
    them from spur.toml / slurm.conf (``spurcore.slurmconf``), proposed at start-up when the
    file differs from what the state last took from it, and on ``scontrol reconfigure``.

    ``nodes`` and ``partitions`` are the canonical records of ``slurmconf`` (plain maps,
    one per node name); ``settings`` the scheduling settings (``slurmconf.SETTINGS``).
    Partitions and settings are replaced; node records are created or updated, and nodes
    the configuration no longer names leave once idle. ``digest`` names the file content."""

    TYPE: ClassVar[int] = 30
    VERSION: ClassVar[int] = 1
    digest: str
    nodes: tuple[dict[str, Any], ...]
    partitions: tuple[dict[str, Any], ...]
    settings: dict[str, Any]
    at: float


@attrs.frozen(slots=True)
class NodeStateUpdated:
    """``scontrol update nodename=... state=...``: ``state`` is one of Slurm's DOWN,
    DRAIN, FAIL, RESUME, UNDRAIN (upper case). DOWN ends the jobs on the node (NODE_FAIL)."""

    TYPE: ClassVar[int] = 31
    VERSION: ClassVar[int] = 1
    names: tuple[str, ...]
    state: str
    reason: str
    uid: int
    at: float


@attrs.frozen(slots=True)
class PartitionUpdated:
    """``scontrol update partitionname=... key=value ...``: ``changes`` maps canonical
    partition keys (``slurmconf.PARTITION_KEYS``) to values already parsed by the proposer."""

    TYPE: ClassVar[int] = 32
    VERSION: ClassVar[int] = 1
    name: str
    changes: dict[str, Any]
    uid: int
    at: float


@attrs.frozen(slots=True)
class AccountingUpdated:
    """``sacctmgr add|modify|delete account|user|qos``: ``names`` are the entities named
    (for modify and delete, with ``where`` narrowing them, e.g. ``{"account": "physics"}``
    for a user's association), ``fields`` the values to set (Slurm's names, parsed:
    ``{"MaxJobs": 4, "GrpTRES": {"cpu": 8}, "Fairshare": 10}``). All or nothing."""

    TYPE: ClassVar[int] = 33
    VERSION: ClassVar[int] = 1
    action: str  # add, modify, delete
    entity: str  # account, user, qos
    names: tuple[str, ...]
    where: dict[str, Any]
    fields: dict[str, Any]
    uid: int
    at: float


Op = (
    NodeRegistered
    | NodeDown
    | JobSubmitted
    | JobStart
    | JobLaunched
    | StepCreated
    | JobStepComplete
    | JobNodeComplete
    | ActionRequested
    | ActionAcked
    | JobCancelled
    | JobTimeLimitReached
    | JobHeld
    | JobReleased
    | JobsPurged
    | JobRequeued
    | ArrayTasksSplit
    | JobUpdated
    | JobDeadlineReached
    | ClusterConfigured
    | NodeStateUpdated
    | PartitionUpdated
    | AccountingUpdated
)

ALL_OPS: tuple[type, ...] = (
    NodeRegistered,
    NodeDown,
    JobSubmitted,
    JobStart,
    JobLaunched,
    StepCreated,
    JobStepComplete,
    JobNodeComplete,
    ActionRequested,
    ActionAcked,
    JobCancelled,
    JobTimeLimitReached,
    JobHeld,
    JobReleased,
    JobsPurged,
    JobRequeued,
    ArrayTasksSplit,
    JobUpdated,
    JobDeadlineReached,
    ClusterConfigured,
    NodeStateUpdated,
    PartitionUpdated,
    AccountingUpdated,
)
