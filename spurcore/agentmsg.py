"""Typed, validated messages at the node agent's boundaries (pure: no I/O).

Three boundaries, each one table from method (or op) name to a frozen attrs class whose
fields carry ``spurcore.schema`` kinds; the receiver structures the raw map before any
handler runs, so no handler sees an unvalidated value:

- controller -> agent (``NOTIFICATIONS``: ``start``, ``action``, ``kill``; the answers to
  ``node_register`` and ``heartbeat``: ``Registered``, ``HeartbeatReply``). A notification
  that does not fit is logged once, naming the field, and dropped: the controller re-sends
  what it still wants, and the agent keeps serving.
- srun / sattach / sstat -> the agent's step endpoint (``STEP_REQUESTS``: ``launch_tasks``,
  ``attach_step``, ``step_stat``), answered ``bad_request`` naming the field, as the
  controller answers; then, after the hand-over, the client's frames to the step's
  supervisor (``CLIENT_FRAMES``: ``in``, ``signal``, ``kill``, ``pmi_fence_done``,
  ``winch``; positional, so :func:`client_frame` reads them).
- agent <-> supervisor: the control socket's ops (``CONTROL_OPS``, one JSON object per line
  with ``op``; a bad one gets ``{"ok": false, "errno": EINVAL, "error": ...}``), the job
  spec file the agent writes (``SupervisorSpec``, ``spec.json``) and the final status the
  supervisor writes (``RunStatus``, ``status.json``).

Rules, as in ``spurcore.messages``: job ids 1..2^32-2 (Slurm's), step ids 0..2^31-1,
signal numbers 0..64, bounded strings, lists and maps; unknown fields are refused, except in
the job record of ``start`` (``LaunchJob``), which is the controller's display record of the
job (``spurcore.views.launch_info``: squeue's fields and more): the agent types the fields
it reads and ignores the others, so that a field added for a renderer never stops a start.

Versions: a class may carry ``VERSION``/``UPCASTS`` (``spec.json`` is at version 2: version 1
carried ``inherit_stdio``, which nothing read).
"""

from __future__ import annotations

from typing import Any

import attrs

from spurcore.schema import (
    MAX_PATH,
    MAX_TEXT,
    NODE_NAME,
    U32,
    AnyMap,
    BadRequest,
    Bool,
    Either,
    Float,
    Int,
    IntList,
    Kind,
    Nested,
    OneOf,
    Optional,
    Str,
    StrList,
    StrMap,
    field,
    structure,
    unstructure,
)

__all__ = [
    "BadRequest", "LaunchJob", "launch_job", "StartJob", "JobAction", "KillJob", "Registered", "HeartbeatReply",
    "NOTIFICATIONS", "notification", "TlsPeer", "IoRoute", "StepIo", "PmiSpec", "LaunchTasks", "AttachStep",
    "StepStat", "STEP_REQUESTS", "step_request", "StdinData", "SignalTasks", "KillStep", "PmiFenceDone",
    "Winch", "CLIENT_FRAMES", "client_frame", "CtlAttach", "CtlSignal", "CtlKill", "CtlSuspend", "CtlResume",
    "CtlStatus", "CtlStat", "CONTROL_OPS", "control_op", "control_request", "SupervisorSpec", "RunStatus",
    "structure", "unstructure",
]

JOB_ID = Int(1, U32 - 1)
STEP_ID = Int(0, 2**31 - 1)
SIGNAL = Int(0, 64)
SECONDS = Float(0, 1e9)  # KillWait, grace periods, intervals (about 30 years)
TIME = Float(0, 1e11)  # epoch seconds
NODE = Str(64, pattern=NODE_NAME, what="a node name (letters, digits, '_', '.', '-')")
UID = Int(0, U32 - 2)
MSGID = Int(0, 2**63 - 1)
ARG_MAX = 128 * 1024
SCRIPT_MAX = 4 * 1024 * 1024  # Slurm's DEFAULT_BATCH_SCRIPT_LIMIT
MAX_TASKS = 10_000_000
MAX_FRAME_DATA = 16 * 1024 * 1024  # spurio.stepserver.MAX_STEP_FRAME
CGROUP_MODES = ("auto", "none", "v1", "v2")  # spurd.cgroups.MODES


class NonEmpty(Kind):
    """The inner kind (a list), with at least one item."""

    def __init__(self, inner: Kind) -> None:
        self.inner = inner
        self.expected = f"a non-empty {inner.expected.removeprefix('a ')}"

    def check(self, where: str, value: Any) -> Any:
        try:
            out = self.inner.check(where, value)
        except BadRequest as e:
            if e.where == where:  # not a list at all: say what is expected of it
                raise self.fail(where) from None
            raise  # an item: its own message names it
        if not out:
            raise self.fail(where)
        return out

    def dump(self, value: Any) -> Any:
        return self.inner.dump(value)


class NodeMap(Kind):
    """``{node: {gres name: [items]}}`` (a job's GRES per node: indexes or device files)."""

    def __init__(self, items: Kind) -> None:
        self.items = items
        self.expected = "a map of node names to maps of GRES names to lists"

    def check(self, where: str, value: Any) -> dict[str, dict[str, tuple[Any, ...]]]:
        if not isinstance(value, dict) or len(value) > 100_000:
            raise self.fail(where)
        out: dict[str, dict[str, tuple[Any, ...]]] = {}
        for node, per_gres in value.items():
            node = NODE.check(f"{where}.<key>", node)
            if not isinstance(per_gres, dict) or len(per_gres) > 64:
                raise BadRequest(f"{where}.{node}", "expected a map of GRES names to lists")
            inner: dict[str, tuple[Any, ...]] = {}
            for name, items in per_gres.items():
                name = Str(64, allow_empty=False).check(f"{where}.{node}.<key>", name)
                inner[name] = self.items.check(f"{where}.{node}.{name}", items)
            out[node] = inner
        return out

    def dump(self, value: Any) -> Any:
        return {n: {g: list(v) for g, v in m.items()} for n, m in value.items()}


class Record(Kind):
    """A record of which only ``cls``'s fields are read: the other keys are ignored (the
    controller's display record of a job; see the module docstring)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.names = {f.name for f in attrs.fields(cls)}
        self.expected = f"a map ({cls.__name__})"

    def check(self, where: str, value: Any) -> Any:
        if not isinstance(value, dict):
            raise self.fail(where)
        return structure(self.cls, {k: v for k, v in value.items() if k in self.names}, where)

    def dump(self, value: Any) -> Any:
        return unstructure(value)


# --- controller -> agent -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LaunchJob:
    """What the agent reads of the job record in ``start`` (``spurcore.views.launch_info``):
    identity, script, environment, I/O paths, layout and the options that become Slurm's
    variables. The agent keeps it in ``job.json`` (as :func:`unstructure` writes it)."""

    job_id: int = field(JOB_ID)
    restarts: int = field(Int(0, 2**31 - 1), 0)
    name: str = field(Str(MAX_TEXT), "")
    user: str = field(Str(256), "")
    uid: int | None = field(Optional(UID), None)
    gid: int | None = field(Optional(UID), None)
    script: str | None = field(Optional(Str(SCRIPT_MAX)), None)
    argv: tuple[str, ...] = field(StrList(100_000, ARG_MAX), ())
    env: dict[str, str] = field(StrMap(100_000, ARG_MAX), factory=dict)
    cwd: str = field(Str(MAX_PATH), "")
    work_dir: str = field(Str(MAX_PATH), "")
    stdout: str = field(Str(MAX_PATH), "")
    stderr: str = field(Str(MAX_PATH), "")
    stdin: str = field(Str(MAX_PATH), "")
    open_mode: str = field(OneOf("", "append", "truncate"), "")
    node_list: tuple[str, ...] = field(StrList(100_000, 64, NODE_NAME), ())
    nodes: str = field(Str(128 * 1024), "")
    num_tasks: int = field(Int(0, MAX_TASKS), 1)
    cpus_per_node: int = field(Int(0, 1_000_000), 1)
    cpus_per_task: int = field(Int(0, 100_000), 1)
    ntasks_per_node: int = field(Int(0, 100_000), 0)
    mem_mb: int = field(Int(0, 2**50), 0)
    mem_per_node: int = field(Int(0, 2**50), 0)
    mem_per_cpu: int = field(Int(0, 2**50), 0)
    time_limit: float | None = field(Optional(Float(0, 1e11)), None)
    start_time: float = field(TIME, 0.0)
    partition: str = field(Str(MAX_TEXT), "")
    account: str = field(Str(MAX_TEXT), "")
    alloc_node: str = field(Str(MAX_TEXT), "")
    comment: str = field(Str(MAX_TEXT), "")
    qos: str = field(Str(MAX_TEXT), "")
    wckey: str = field(Str(MAX_TEXT), "")
    array_job_id: int = field(Int(0, U32 - 1), 0)
    array_task_id: int | None = field(Optional(Int(0, 2**31 - 1)), None)
    array_spec: str = field(Str(4096), "")
    gpus: str = field(Str(MAX_TEXT), "")
    gpus_per_node: str = field(Str(MAX_TEXT), "")
    gpus_per_task: str = field(Str(MAX_TEXT), "")
    cpus_per_gpu: int = field(Int(0, 100_000), 0)
    mem_per_gpu: int = field(Int(0, 2**50), 0)
    gres_alloc: dict[str, dict[str, tuple[int, ...]]] = field(NodeMap(IntList(100_000, 0, 1_000_000)), factory=dict)
    gres_files: dict[str, dict[str, tuple[str, ...]]] = field(NodeMap(StrList(100_000, MAX_PATH)), factory=dict)
    gres_node_files: dict[str, dict[str, tuple[str, ...]]] = field(NodeMap(StrList(100_000, MAX_PATH)), factory=dict)

    @property
    def batch_host(self) -> str:
        return self.node_list[0] if self.node_list else ""


@attrs.frozen(kw_only=True)
class StartJob:
    """``start``: run ``job`` here (its batch script on the batch host; an allocation elsewhere)."""

    job: LaunchJob = field(Record(LaunchJob))
    node: str = field(NODE)


@attrs.frozen(kw_only=True)
class JobAction:
    """``action``: KILL (1), STOP (2, suspend), CONT (3, resume) or SIGNAL (4) a job or a step.
    ``why`` names the reason of a KILL for slurmstepd's notice (``spurcore.leader.kill_reason``;
    a reason this agent does not know prints no notice)."""

    action_id: int = field(Int(1, 2**63 - 1))
    job_id: int = field(JOB_ID)
    step_id: int = field(Int(-1, 2**31 - 1), -1)
    kind: int = field(OneOf(1, 2, 3, 4))
    signal: int = field(SIGNAL, 0)
    target: int = field(OneOf(0, 1, 2), 0)
    kill_wait: float | None = field(Optional(SECONDS), None)
    suspend_grace: float | None = field(Optional(SECONDS), None)
    node: str = field(Str(64), "")
    why: str = field(Str(64), "")
    at: float = field(TIME, 0.0)


@attrs.frozen(kw_only=True)
class KillJob:
    """``kill``: reconciliation; the controller no longer knows this job here (no ACK)."""

    job_id: int = field(JOB_ID)


@attrs.frozen(kw_only=True)
class Registered:
    """The answer to ``node_register``: timings, and fencing (0: off)."""

    heartbeat_interval: float | None = field(Optional(Float(0.01, 86400)), None)
    kill_wait: float | None = field(Optional(SECONDS), None)
    suspend_grace: float | None = field(Optional(SECONDS), None)
    fence_timeout: float = field(SECONDS, 0.0)
    fence_grace: float | None = field(Optional(SECONDS), None)


@attrs.frozen(kw_only=True)
class HeartbeatReply:
    """``quorum``: the leader's read lease holds, so the agent may renew its fencing lease."""

    quorum: bool = field(Bool(), True)


def launch_job(raw: Any) -> LaunchJob:
    """A job record (``start``'s, or ``job.json``'s as the agent saved it) as a LaunchJob."""
    return Record(LaunchJob).check("job", raw)


NOTIFICATIONS: dict[str, type] = {"start": StartJob, "action": JobAction, "kill": KillJob}


def notification(method: str, params: Any) -> Any:
    """A controller notification as its class, or BadRequest naming the field."""
    cls = NOTIFICATIONS.get(method)
    if cls is None:
        raise BadRequest("method", f"expected one of {', '.join(NOTIFICATIONS)}, got {str(method)[:64]!r}")
    return structure(cls, params)


# --- srun / sattach / sstat -> the agent's step endpoint ----------------------------------


@attrs.frozen(kw_only=True)
class TlsPeer:
    """The client certificate's identity, added by the agent's TLS relay (believed only from
    a peer running as root or as the agent: ``spurio.stepserver.step_access``)."""

    user: str = field(Str(256), "")
    role: str = field(Str(32), "")


@attrs.frozen(kw_only=True)
class IoRoute:
    """Where one stream of a task goes: ``relay`` (to srun; stdin ``all``), one ``task``
    only, a ``file`` pattern opened on the node, ``none``; stderr ``same`` as stdout."""

    mode: str = field(OneOf("relay", "all", "task", "file", "none", "same"))
    task: int = field(Int(-1, MAX_TASKS), -1)
    pattern: str = field(Str(MAX_PATH), "")


@attrs.frozen(kw_only=True)
class StepIo:
    stdout: IoRoute | None = field(Optional(Nested(IoRoute)), None)
    stderr: IoRoute | None = field(Optional(Nested(IoRoute)), None)
    stdin: IoRoute | None = field(Optional(Nested(IoRoute)), None)
    unbuffered: bool = field(Bool(), False)
    pty: bool = field(Bool(), False)
    winsize: tuple[int, ...] | None = field(Optional(IntList(2, 0, 65535)), None)

    def route(self, key: str) -> IoRoute:
        """The route of ``stdout``/``stderr``/``stdin`` (relay, and stdin to all, by default)."""
        got = getattr(self, key)
        return got if got is not None else IoRoute(mode="all" if key == "stdin" else "relay")


@attrs.frozen(kw_only=True)
class PmiSpec:
    """PMI for the step (``--mpi=pmi2``): the KVS name, the world size, PMI_process_mapping."""

    jobid: str = field(Str(MAX_TEXT), "")
    size: int = field(Int(1, MAX_TASKS))
    mapping: str = field(Str(ARG_MAX), "")


@attrs.frozen(kw_only=True)
class LaunchTasks:
    """``launch_tasks``: this node's part of an srun step."""

    job_id: int = field(JOB_ID)
    step_id: int = field(STEP_ID)
    argv: tuple[str, ...] = field(NonEmpty(StrList(100_000, ARG_MAX)))
    env: dict[str, str] = field(StrMap(100_000, ARG_MAX), factory=dict)
    cwd: str = field(Str(MAX_PATH), "")
    tasks: tuple[int, ...] = field(NonEmpty(IntList(100_000, 0, MAX_TASKS - 1)))
    nodeid: int = field(Int(0, 100_000), 0)
    cpus_on_node: int = field(Int(0, 1_000_000), 0)
    io: StepIo = field(Nested(StepIo), factory=StepIo)
    pmi: PmiSpec | None = field(Optional(Nested(PmiSpec)), None)
    open_mode: str = field(OneOf("", "append", "truncate"), "truncate")
    usage_interval: float | None = field(Optional(SECONDS), None)
    tls_peer: TlsPeer | None = field(Optional(Nested(TlsPeer)), None)
    multi_prog: bool = field(Bool(), False)  # argv is [file, its text, *args]: spurcore.multiprog
    task_prolog: str = field(Str(MAX_PATH), "")  # srun --task-prolog: run before each task's exec


@attrs.frozen(kw_only=True)
class AttachStep:
    """``attach_step`` (sattach)."""

    job_id: int = field(JOB_ID)
    step_id: int = field(STEP_ID)
    tls_peer: TlsPeer | None = field(Optional(Nested(TlsPeer)), None)


@attrs.frozen(kw_only=True)
class StepStat:
    """``step_stat`` (sstat)."""

    job_id: int = field(JOB_ID)
    step_id: int = field(STEP_ID)
    tls_peer: TlsPeer | None = field(Optional(Nested(TlsPeer)), None)


STEP_REQUESTS: dict[str, type] = {"launch_tasks": LaunchTasks, "attach_step": AttachStep, "step_stat": StepStat}


def step_request(method: str, params: Any) -> Any:
    """A step endpoint request as its class; BadRequest naming the field. The caller checks
    the method against ``STEP_REQUESTS`` first (an unknown one is ``unknown_method``)."""
    return structure(STEP_REQUESTS[method], params)


# --- client -> supervisor frames (after the hand-over) -------------------------------------


@attrs.frozen
class StdinData:
    """``in`` ``[task or -1, bytes]``: input for one task or all; empty bytes = EOF."""

    task: int
    data: bytes


@attrs.frozen
class SignalTasks:
    """``signal`` ``N``: deliver N to every task (0: nothing)."""

    signal: int


@attrs.frozen
class KillStep:
    """``kill`` ``kill_wait or nil``: srun forces termination."""

    kill_wait: float | None


@attrs.frozen
class PmiFenceDone:
    """``pmi_fence_done`` ``{key: value}``: the merged KVS of every node."""

    kvs: dict[str, str]


@attrs.frozen
class Winch:
    """``winch`` ``[rows, cols]``: the terminal of srun --pty changed size."""

    rows: int
    cols: int


def _stdin(params: Any) -> StdinData:
    if not isinstance(params, (list, tuple)) or len(params) != 2:
        raise BadRequest("in", "expected [task or -1, bytes]")
    task = Int(-1, MAX_TASKS).check("in[0]", params[0])
    data = params[1]
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_FRAME_DATA:
        raise BadRequest("in[1]", f"expected bytes (at most {MAX_FRAME_DATA})")
    return StdinData(task, bytes(data))


def _winch(params: Any) -> Winch:
    if not isinstance(params, (list, tuple)) or len(params) != 2:
        raise BadRequest("winch", "expected [rows, cols]")
    rows, cols = (Int(0, 65535).check(f"winch[{i}]", v) for i, v in enumerate(params))
    return Winch(rows, cols)


CLIENT_FRAMES: dict[str, Any] = {
    "in": _stdin,
    "signal": lambda p: SignalTasks(SIGNAL.check("signal", p)),
    "kill": lambda p: KillStep(Optional(SECONDS).check("kill", p)),
    "pmi_fence_done": lambda p: PmiFenceDone(StrMap(1_000_000, MAX_FRAME_DATA).check("pmi_fence_done", p)),
    "winch": _winch,
}


def client_frame(method: Any, params: Any) -> Any:
    """A client's notification to a step's supervisor as its class, or BadRequest."""
    parse = CLIENT_FRAMES.get(method) if isinstance(method, str) else None
    if parse is None:
        raise BadRequest("method", f"expected one of {', '.join(CLIENT_FRAMES)}, got {str(method)[:64]!r}")
    return parse(params)


# --- agent -> supervisor: control ops (ctl.sock) ------------------------------------------


@attrs.frozen(kw_only=True)
class CtlAttach:
    """sattach: the client's connection travels with it (SCM_RIGHTS); ``msgid`` is its request's."""

    OP = "attach"
    msgid: int = field(MSGID, 0)


@attrs.frozen(kw_only=True)
class CtlSignal:
    """Deliver ``sig`` to the batch shell only (``batch``) or the whole step (``full``;
    ``steps`` is fanned out by the agent, and means ``full`` to one supervisor)."""

    OP = "signal"
    sig: int = field(SIGNAL)
    target: str = field(OneOf("steps", "batch", "full"), "full")


@attrs.frozen(kw_only=True)
class CtlKill:
    """Terminate the step (``spurcore.killplan``), writing ``notice`` first when given."""

    OP = "kill"
    kill_wait: float | None = field(Optional(SECONDS), None)
    notice: str | None = field(Optional(Str(MAX_TEXT)), None)
    why: str = field(Str(64), "")


@attrs.frozen(kw_only=True)
class CtlSuspend:
    OP = "suspend"


@attrs.frozen(kw_only=True)
class CtlResume:
    OP = "resume"


@attrs.frozen(kw_only=True)
class CtlStatus:
    OP = "status"


@attrs.frozen(kw_only=True)
class CtlStat:
    """sstat: a fresh usage sample."""

    OP = "stat"


CONTROL_OPS: dict[str, type] = {c.OP: c for c in (CtlAttach, CtlSignal, CtlKill, CtlSuspend, CtlResume,
                                                   CtlStatus, CtlStat)}


def control_op(raw: Any) -> Any:
    """A control request (a decoded JSON object with ``op``) as its class, or BadRequest."""
    if not isinstance(raw, dict):
        raise BadRequest("request", "expected a JSON object with an op")
    op = raw.get("op")
    cls = CONTROL_OPS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise BadRequest("op", f"expected one of {', '.join(CONTROL_OPS)}, got {str(op)[:64]!r}")
    return structure(cls, {k: v for k, v in raw.items() if k != "op"})


def control_request(msg: Any) -> dict[str, Any]:
    """The JSON object for a control op (``control_op`` reads it back)."""
    return {"op": type(msg).OP, **unstructure(msg)}


# --- agent -> supervisor: spec.json --------------------------------------------------------


def _spec_v1(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k != "inherit_stdio"}


@attrs.frozen(kw_only=True)
class SupervisorSpec:
    """``spec.json``: one job step for ``spurd.supervisor``.

    A batch script is one task with file stdio (``stdin``/``stdout``/``stderr`` paths). An
    srun step's part on this node is ``tasks`` (global task ids, in local order) with ``io``
    saying where each stream goes, and srun's connection handed to the supervisor; ``env``
    is the step's environment, to which each task adds its own variables (``task_env``).
    Fencing: the agent renews ``lease_file`` (a CLOCK_MONOTONIC deadline) while it is in
    touch with a controller quorum; past it the step is killed, ``fence_grace`` from
    SIGTERM to SIGKILL."""

    VERSION = 2
    UPCASTS = {1: _spec_v1}

    job_id: int = field(JOB_ID)
    step: str | int = field(Either(OneOf("batch"), STEP_ID), "batch")
    argv: tuple[str, ...] = field(NonEmpty(StrList(100_000, ARG_MAX)))
    cwd: str = field(Str(MAX_PATH), "/")
    env: dict[str, str] = field(StrMap(100_000, ARG_MAX), factory=dict)
    uid: int | None = field(Optional(UID), None)
    gid: int | None = field(Optional(UID), None)
    stdin: str | None = field(Optional(Str(MAX_PATH)), "/dev/null")
    stdout: str | None = field(Optional(Str(MAX_PATH)), None)
    stderr: str | None = field(Optional(Str(MAX_PATH)), None)
    open_mode: str = field(OneOf("append", "truncate"), "append")
    kill_wait: float = field(SECONDS, 30.0)
    suspend_grace: float = field(SECONDS, 2.0)
    mem_limit_mb: int = field(Int(0, 2**50), 0)
    cgroup_root: str | None = field(Optional(Str(MAX_PATH)), None)
    cgroup_mode: str | None = field(Optional(OneOf(*CGROUP_MODES)), None)  # None: $SPUR_CGROUP or auto
    umask: int | None = field(Optional(Int(0, 0o777)), None)
    unkillable_timeout: float = field(SECONDS, 120.0)
    # --- srun steps ---
    tasks: tuple[int, ...] = field(NonEmpty(IntList(100_000, 0, MAX_TASKS - 1)), (0,))
    io: StepIo | None = field(Optional(Nested(StepIo)), None)  # None: file stdio (batch)
    launch_msgid: int = field(MSGID, 0)
    node_name: str = field(Str(64, pattern=NODE_NAME), "")
    nodeid: int = field(Int(0, 100_000), 0)
    pmi: PmiSpec | None = field(Optional(Nested(PmiSpec)), None)
    usage_interval: float = field(Float(0.1, 1e9), 30.0)
    task_env: bool = field(Bool(), False)
    multi_prog: bool = field(Bool(), False)  # each task's argv from argv[1] (spurcore.multiprog)
    task_prolog: str = field(Str(MAX_PATH), "")  # run in each task's process before its exec
    # --- fencing ---
    lease_file: str | None = field(Optional(Str(MAX_PATH)), None)
    fence_grace: float = field(SECONDS, 5.0)

    @property
    def batch(self) -> bool:
        return self.step == "batch"

    @property
    def label(self) -> str:
        """How slurmstepd names the step in messages: ``JOB 12`` or ``STEP 12.0``."""
        return f"JOB {self.job_id}" if self.batch else f"STEP {self.job_id}.{self.step}"


# --- supervisor -> agent: status.json -------------------------------------------------------


class TaskStatuses(Kind):
    """``{"<task id>": raw wait status or null}``."""

    expected = "a map of task ids to wait statuses"

    def check(self, where: str, value: Any) -> dict[str, int | None]:
        if not isinstance(value, dict) or len(value) > 100_000:
            raise self.fail(where)
        out: dict[str, int | None] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not k.lstrip("-").isdigit() or len(k) > 12:
                raise BadRequest(where, "expected task ids as keys")
            out[k] = Optional(Int(0, 0xFFFF)).check(f"{where}.{k}", v)
        return out


@attrs.frozen(kw_only=True)
class RunStatus:
    """``status.json``: how a run ended (written by the supervisor, or by the agent for a
    run that never started or whose supervisor vanished: ``synthetic``)."""

    wait_status: int = field(Int(0, 0xFFFF))
    exit_code: int = field(Int(0, 255), 0)
    signal: int = field(Int(0, 255), 0)
    oom: bool = field(Bool(), False)
    ended_at: float = field(TIME, 0.0)
    started_at: float = field(TIME, 0.0)
    main_pid: int = field(Int(0, 2**31 - 1), 0)
    killed: bool = field(Bool(), False)
    tasks: dict[str, int | None] = field(TaskStatuses(), factory=dict)
    fenced: bool = field(Bool(), False)
    usage: dict[str, Any] = field(AnyMap(64), factory=dict)
    unkillable: tuple[int, ...] = field(IntList(100_000, 0, 2**31 - 1), ())
    error: str = field(Str(64 * 1024), "")
    synthetic: bool = field(Bool(), False)
