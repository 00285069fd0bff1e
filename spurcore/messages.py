"""Every request to the controller as a typed, validated, versioned message.

Each RPC method has one frozen attrs class here (``REQUESTS[method]``); the controller's
dispatcher structures the raw msgpack map into it (``spurcore.schema.structure``) before a
handler runs, so no handler sees an unvalidated value and a bad request gets
``bad_request`` naming the field and what was expected (never ``internal``).

What the rules say, and why:
- Bounds follow Slurm where it has them (``_test_job_desc_fields``: 1024 characters for
  names, comments, accounts; PATH_MAX for paths; 4 MiB scripts; 1 MiB submit lines).
- Node names follow Slurm's NodeName syntax (hostname characters): ``[True]`` or
  ``{'nodes': None}`` are not names. Job ids are 1..2^32-1 as Slurm's; signal numbers 0..64.
- ``JOB_SPEC`` names a kind for every ``JobSpec`` field (a test keeps the two in step):
  what enters the replicated log is checked here first, and the reducer refuses what still
  slips through.
- The tools send plain maps (no attrs on their start-up path); the classes are the schema.
  docs/protocol.md lists them.

Versions: a request may carry ``"v"``; each class's ``UPCASTS`` turns an older shape into
the current one (none yet: every request is at version 1).
"""

from __future__ import annotations

from typing import Any

import attrs

from spurcore.ops import JobSpec
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
    Nested,
    NestedList,
    OneOf,
    Optional,
    Str,
    StrList,
    StrMap,
    field,
    structure,
)

JOB_ID = Int(1, U32 - 1)
TIME = Float(0, 1e11)  # epoch seconds, up to year 5138
REQUEST_ID = Str(128)
NODE = Str(64, pattern=NODE_NAME, what="a node name (letters, digits, '_', '.', '-')")
JOB_REF = Str(4096, what="a job reference (123, 123_4 or 123_[1-3])")
SCRIPT_MAX = 4 * 1024 * 1024  # Slurm's DEFAULT_BATCH_SCRIPT_LIMIT
SUBMIT_LINE_MAX = 1024 * 1024  # DEFAULT_MAX_SUBMIT_LINE_SIZE
ARG_MAX = 128 * 1024

#: Every JobSpec field with its wire rule (all optional on the wire: the controller fills
#: identity fields and JobSpec's defaults apply to the rest).
JOB_SPEC: dict[str, Any] = {
    "name": Str(MAX_TEXT),
    "user": Str(256),
    "uid": Int(0, U32 - 2),
    "gid": Int(0, U32 - 2),
    "script": Optional(Str(SCRIPT_MAX)),
    "argv": StrList(100_000, ARG_MAX),
    "env": StrMap(100_000, ARG_MAX),
    "cwd": Str(MAX_PATH),
    "nodes": Int(1, 100_000),
    "ntasks": Int(1, 10_000_000),
    "cpus_per_task": Int(1, 100_000),
    "mem_mb": Int(0, 2**50),
    "time_limit": Optional(Int(0, 2**31)),
    "stdout": Str(MAX_PATH),
    "stderr": Str(MAX_PATH),
    "stdin": Str(MAX_PATH),
    "hold": Bool(),
    "dependency": Str(128 * 1024),
    "partition": Str(MAX_TEXT),
    "account": Str(MAX_TEXT),
    "command": Str(MAX_PATH),
    "submit_line": Str(SUBMIT_LINE_MAX),
    "alloc_node": Str(MAX_TEXT),
    "alloc_sid": Int(0, 2**31),
    "array": Str(4096),
    "ntasks_per_node": Int(0, 100_000),
    "mem_per_cpu": Int(0, 2**50),
    "exclusive": OneOf("", "exclusive", "user", "mcs", "topo"),
    "nodelist": Str(128 * 1024),
    "exclude": Str(128 * 1024),
    "begin_time": TIME,
    "deadline": TIME,
    "open_mode": OneOf("", "append", "truncate"),
    "signal": Int(0, 64),
    "signal_time": Int(0, 65535),
    "signal_flags": OneOf("", "B", "R", "BR", "RB"),
    "requeue": OneOf(-1, 0, 1),
    "kill_on_invalid_dep": OneOf(-1, 0, 1),
    "comment": Str(MAX_TEXT),
    "wckey": Str(MAX_TEXT),
    "nice": Int(-2147483645, 2147483645),
    "qos": Str(MAX_TEXT),
    "constraint": Str(MAX_TEXT),
    "time_min": Optional(Int(0, 2**31)),
    "mail_type": Str(MAX_TEXT),
    "mail_user": Str(MAX_TEXT),
    "options": StrMap(1000, ARG_MAX),
    # JobSpec version 3: GRES (the scheduler's; spurcore.gres parses them)
    "gres": Str(MAX_TEXT),
    "gpus": Str(MAX_TEXT),
    "gpus_per_node": Str(MAX_TEXT),
    "gpus_per_task": Str(MAX_TEXT),
    "cpus_per_gpu": Int(0, 100_000),
    "mem_per_gpu": Int(0, 2**50),
}


def _spec_class() -> type:
    """The wire shape of a JobSpec: every field optional, with its kind."""
    fields = {}
    for f in attrs.fields(JobSpec):
        fields[f.name] = field(JOB_SPEC[f.name], None)
    return attrs.make_class("JobSpecMsg", fields, frozen=True, slots=True)


JobSpecMsg = _spec_class()


def spec_fields(msg: Any) -> dict[str, Any]:
    """The fields a client set in a JobSpecMsg. None means "not given"; for ``script``,
    ``time_limit`` and ``time_min`` that is also JobSpec's default (no script, no limit)."""
    return {k: v for k, v in attrs.asdict(msg, recurse=False).items() if v is not None}


# --- tools -> controller ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Empty:
    """Methods without parameters (ping, config, digest)."""


@attrs.frozen(kw_only=True)
class Read:
    """Read methods forwarded by a follower carry ``_forwarded``."""

    _forwarded: bool = field(Bool(), False)


@attrs.frozen(kw_only=True)
class Submit:
    request_id: str = field(REQUEST_ID, "")
    spec: Any = field(Nested(JobSpecMsg))
    test_only: bool = field(Bool(), False)


@attrs.frozen(kw_only=True)
class Signal:
    """scancel / scontrol suspend, resume: ``job_id`` or ``job_ref``."""

    request_id: str = field(REQUEST_ID, "")
    job_id: int | None = field(Optional(JOB_ID), None)
    job_ref: str | None = field(Optional(JOB_REF), None)
    kind: int = field(OneOf(1, 2, 3, 4), 1)
    signal: int = field(Int(0, 64), 0)
    target: int = field(OneOf(0, 1, 2), 0)
    step_id: int = field(Int(-1, 2**31 - 1), -1)


@attrs.frozen(kw_only=True)
class SignalMany:
    requests: tuple[Signal, ...] = field(NestedList(Signal, 1_000_000))


@attrs.frozen(kw_only=True)
class JobControl:
    """hold / release / requeue: ``job_id`` or ``job_ref``."""

    request_id: str = field(REQUEST_ID, "")
    job_id: int | None = field(Optional(JOB_ID), None)
    job_ref: str | None = field(Optional(JOB_REF), None)
    user_hold: bool = field(Bool(), False)
    hold: bool = field(Bool(), False)


@attrs.frozen(kw_only=True)
class UpdateJob:
    request_id: str = field(REQUEST_ID, "")
    job_id: int | None = field(Optional(JOB_ID), None)
    job_ref: str | None = field(Optional(JOB_REF), None)
    changes: dict[str, Any] = field(AnyMap(64))


@attrs.frozen(kw_only=True)
class Jobs:
    job_ids: tuple[int, ...] = field(IntList(1_000_000, 1, U32 - 1), ())
    job_refs: tuple[str, ...] = field(StrList(100_000, 4096), ())
    users: tuple[str, ...] = field(StrList(10_000, 256), ())
    states: tuple[str, ...] = field(StrList(64, 32), ())
    columns: bool = field(Bool(), False)
    fields: tuple[str, ...] = field(StrList(512, 64), ())
    with_steps: bool = field(Bool(), False)
    _forwarded: bool = field(Bool(), False)


@attrs.frozen(kw_only=True)
class History:
    job_ids: tuple[int, ...] = field(IntList(1_000_000, 1, U32 - 1), ())
    job_refs: tuple[str, ...] = field(StrList(100_000, 4096), ())
    start: float | None = field(Optional(TIME), None)
    end: float | None = field(Optional(TIME), None)
    _forwarded: bool = field(Bool(), False)


@attrs.frozen(kw_only=True)
class JobAt:
    job_id: int = field(JOB_ID)
    at: float = field(TIME, 0.0)
    _forwarded: bool = field(Bool(), False)


@attrs.frozen(kw_only=True)
class JobComplete:
    """srun outside an allocation ends the job it made with its step's status."""

    request_id: str = field(REQUEST_ID, "")
    job_id: int = field(JOB_ID)
    exit_code: int = field(Int(0, 255), 0)
    signal: int = field(Int(0, 255), 0)


@attrs.frozen(kw_only=True)
class StepCreate:
    request_id: str = field(REQUEST_ID, "")
    job_id: int = field(JOB_ID)
    name: str = field(Str(MAX_TEXT), "")
    argv: tuple[str, ...] = field(StrList(100_000, ARG_MAX), ())
    ntasks: int = field(Int(-1, 10_000_000), 1)
    min_nodes: int = field(Int(-1, 100_000), 0)
    max_nodes: int = field(Int(-1, 100_000), 0)
    cpus_per_task: int = field(Int(-1, 100_000), 1)
    ntasks_per_node: int = field(Int(-1, 100_000), 0)
    distribution: str = field(Str(64), "block")
    plane_size: int = field(Int(-1, 100_000), 0)
    nodelist: tuple[str, ...] = field(StrList(100_000, 64, NODE_NAME), ())
    exclude: tuple[str, ...] = field(StrList(100_000, 64, NODE_NAME), ())
    exact: bool = field(Bool(), False)
    overlap: bool = field(Bool(), False)
    relative: int = field(Int(-1, 100_000), -1)
    wait: float = field(Float(0, 86400), 0.0)
    overcommit: bool = field(Bool(), False)


# --- agents -> controller ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NodeRegister:
    name: str = field(NODE)
    cpus: int = field(Int(1, 1_000_000), 1)
    mem_mb: int = field(Int(0, 2**50), 0)
    address: str = field(Str(MAX_PATH), "")
    jobs: tuple[int, ...] = field(IntList(1_000_000, 1, U32 - 1), ())


@attrs.frozen(kw_only=True)
class Heartbeat:
    name: str = field(NODE)


@attrs.frozen(kw_only=True)
class Report:
    report_id: str = field(Str(256))
    kind: str = field(OneOf("node", "step"), "node")
    job_id: int = field(JOB_ID)
    step_id: Any = field(Either(OneOf("batch"), Int(0, 2**31 - 1)), "batch")
    node: str = field(NODE)
    exit_code: int = field(Int(0, 255), 0)
    signal: int = field(Int(0, 255), 0)
    oom: bool = field(Bool(), False)
    at: float = field(TIME, 0.0)
    usage: dict[str, Any] = field(AnyMap(64), factory=dict)
    fenced: bool = field(Bool(), False)


@attrs.frozen(kw_only=True)
class Launched:
    job_id: int = field(JOB_ID)
    node: str = field(NODE)


@attrs.frozen(kw_only=True)
class Ack:
    action_id: int = field(Int(1, 2**63 - 1))
    node: str = field(NODE)
    status: int = field(Int(-(2**31), 2**31 - 1), 0)
    errno: int = field(Int(0, 4095), 0)


# --- administration (scheduler configuration, accounts) ----------------------------------


@attrs.frozen(kw_only=True)
class UpdateNode:
    """scontrol update nodename=LIST state=... reason=..."""

    request_id: str = field(REQUEST_ID, "")
    names: str = field(Str(128 * 1024, allow_empty=False))
    state: str = field(Str(32), "")  # "": only the reason changes
    reason: str = field(Str(MAX_TEXT), "")


@attrs.frozen(kw_only=True)
class Reconfigure:
    """scontrol reconfigure (a write: it proposes the file's configuration)."""

    request_id: str = field(REQUEST_ID, "")


@attrs.frozen(kw_only=True)
class UpdatePartition:
    """scontrol update partitionname=NAME Key=Value ... (Slurm's keys, values as text)."""

    request_id: str = field(REQUEST_ID, "")
    name: str = field(Str(MAX_TEXT, allow_empty=False))
    changes: dict[str, Any] = field(AnyMap(64))


@attrs.frozen(kw_only=True)
class AccountingUpdate:
    """sacctmgr add/modify/delete account|user|qos ..."""

    request_id: str = field(REQUEST_ID, "")
    action: str = field(OneOf("add", "modify", "delete"))
    entity: str = field(Str(32, allow_empty=False))
    names: tuple[str, ...] = field(StrList(10_000, MAX_TEXT), ())
    where: dict[str, str] = field(StrMap(64, MAX_TEXT), factory=dict)
    fields: dict[str, str] = field(StrMap(64, MAX_TEXT), factory=dict)


@attrs.frozen(kw_only=True)
class Sprio:
    job_ids: tuple[int, ...] = field(IntList(1_000_000, 1, U32 - 1), ())
    users: tuple[str, ...] = field(StrList(10_000, 256), ())
    _forwarded: bool = field(Bool(), False)


#: method -> its request class. The dispatcher refuses a method not named here.
REQUESTS: dict[str, type] = {
    "ping": Empty,
    "config": Empty,
    "digest": Empty,
    "submit": Submit,
    "signal": Signal,
    "signal_many": SignalMany,
    "hold": JobControl,
    "release": JobControl,
    "requeue": JobControl,
    "update_job": UpdateJob,
    "jobs": Jobs,
    "nodes": Read,
    "history": History,
    "job_at": JobAt,
    "job_complete": JobComplete,
    "step_create": StepCreate,
    "node_register": NodeRegister,
    "heartbeat": Heartbeat,
    "report": Report,
    "launched": Launched,
    "ack": Ack,
    "update_node": UpdateNode,
    "update_partition": UpdatePartition,
    "reconfigure": Reconfigure,
    "accounting_update": AccountingUpdate,
    "partitions": Read,
    "accounting_show": Read,
    "sprio": Sprio,
    "sshare": Read,
    "sched_config": Read,
}


def parse_request(method: str, params: Any) -> Any:
    """The typed request of ``method`` (a name in ``REQUESTS``), or BadRequest naming the
    method, the field and what was expected (the controller's dispatcher, and the tests'
    fake controllers, which must refuse what the real one refuses)."""
    try:
        return structure(REQUESTS[method], params)
    except BadRequest as exc:
        raise BadRequest(f"{method}: {exc.where}", exc.expected) from None


def to_params(msg: Any) -> dict[str, Any]:
    """A validated request as the map its handler reads: every field present (defaults
    filled), a nested job spec with only the fields the client gave."""
    out: dict[str, Any] = {}
    for f in attrs.fields(type(msg)):
        value = getattr(msg, f.name)
        if isinstance(value, JobSpecMsg):
            value = spec_fields(value)
        elif isinstance(value, tuple) and value and attrs.has(type(value[0])):
            value = [to_params(v) for v in value]
        out[f.name] = value
    return out
