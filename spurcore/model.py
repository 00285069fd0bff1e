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

import attrs

from spurcore.ops import JobSpec
from spurcore.states import STATE_CODES


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


TERMINAL = frozenset(
    {
        JobState.COMPLETED,
        JobState.CANCELLED,
        JobState.FAILED,
        JobState.TIMEOUT,
        JobState.NODE_FAIL,
        JobState.OUT_OF_MEMORY,
        JobState.DEADLINE,
    }
)

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
        return max(self.spec.ntasks * self.spec.cpus_per_task, self.spec.nodes)


@attrs.define(slots=True, eq=True)
class Node:
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

    @property
    def display_state(self) -> str:
        if not self.up:
            return "DOWN"
        if self.alloc_cpus == 0:
            return "IDLE"
        if self.alloc_cpus >= self.cpus:
            return "ALLOCATED"
        return "MIXED"


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
