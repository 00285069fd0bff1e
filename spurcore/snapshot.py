"""Snapshot encoding of the whole state, and the state digest.

Invariants:
- ``decode_state(encode_state(s)) == s`` and the encoding is canonical: sets are written
  sorted and dicts in their (deterministic) insertion order, so two replicas with equal
  state produce identical bytes, and ``digest`` is a stable hash of those bytes.
- The encoding is versioned; an unknown version is refused with ``SnapshotError``. Older
  versions are upcast here and nowhere else (golden files of each stay in tests/golden).
- Version 5 writes the jobs in columns, one array per ``Job`` field, and their specs as a
  table of distinct specs (``JobSpec`` is frozen; equal specs are shared, as an array's
  tasks already share theirs), also in columns. A column whose records all hold one scalar,
  or all an empty container, is written once. Decoding thus builds each record with one
  constructor call driven from C (``map(Job, *columns)``) and no per-field Python work:
  restart time is what the interpreter needs to allocate the objects. A column is constant
  only if its values are equal *and* of one type (``1``, ``1.0`` and ``True`` are equal),
  so decoding gives back exactly the values written and the bytes stay canonical.
"""

from __future__ import annotations

import gc
import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import compress, repeat
from operator import attrgetter, not_
from typing import Any

import attrs
import msgpack

from spurcore.codec import _spec_from, _spec_getter, upcast_spec, upcast_spec_v1
from spurcore.model import (
    Account,
    ActionRecord,
    Assoc,
    ClusterState,
    Job,
    JobState,
    Node,
    Partition,
    Qos,
    Step,
    User,
)
from spurcore.ops import JobSpec

SNAPSHOT_MAGIC = "spur-state"
SNAPSHOT_VERSION = 5
# 2: job arrays (four Job fields, array_purged) and JobSpec version 2
# 3: step layouts (seven Step fields: tasks, cpus, overlap, cpus_per_task, distribution,
#    node_status, usage) and Job.step_cpus
# 4: partitions, node states and configuration, accounting, usage; JobSpec version 3
# 5: jobs and their specs in columns (same fields as 4; see the module docstring), request
#    ids as three columns (ids, jobs, results)


class SnapshotError(ValueError):
    pass


_JOB_FIELDS = tuple(f.name for f in attrs.fields(Job))
_STEP_FIELDS = tuple(f.name for f in attrs.fields(Step))
_NODE_FIELDS = tuple(f.name for f in attrs.fields(Node))
_ACTION_FIELDS = tuple(f.name for f in attrs.fields(ActionRecord))
_job_get = attrgetter(*_JOB_FIELDS)
_step_get = attrgetter(*_STEP_FIELDS)
_node_get = attrgetter(*_NODE_FIELDS)
_action_get = attrgetter(*_ACTION_FIELDS)
_J = {name: i for i, name in enumerate(_JOB_FIELDS)}
_JOB_SETS = (_J["unlaunched"], _J["undone"])
_JOB_SPEC, _JOB_STATE, _JOB_STEPS, _JOB_NODES = _J["spec"], _J["state"], _J["steps"], _J["nodes"]
_STEP_TUPLES = tuple(_STEP_FIELDS.index(f) for f in ("argv", "nodes", "cpus"))
_STEP_TASKS = _STEP_FIELDS.index("tasks")
_NODE_JOBS = _NODE_FIELDS.index("jobs")
_ACTION_PENDING = _ACTION_FIELDS.index("pending")
_ACTION_ACKS = _ACTION_FIELDS.index("acks")


def _enc_node(node: Node) -> list[Any]:
    out = list(_node_get(node))
    out[_NODE_JOBS] = sorted(node.jobs)
    return out


class _Plain:
    """Encode/decode a small attrs record as its field list; tuple fields come back as tuples."""

    def __init__(self, cls: type) -> None:
        fields = attrs.fields(cls)
        self.cls = cls
        self.get = attrgetter(*(f.name for f in fields))
        self.tuples = tuple(i for i, f in enumerate(fields) if str(f.type).startswith("tuple"))

    def enc(self, obj: Any) -> list[Any]:
        return list(self.get(obj))

    def dec(self, values: list[Any]) -> Any:
        for i in self.tuples:
            values[i] = tuple(values[i])
        return self.cls(*values)


_PARTITION, _ACCOUNT, _USER, _ASSOC, _QOS = (_Plain(c) for c in (Partition, Account, User, Assoc, Qos))
_NODE_FEATURES = _NODE_FIELDS.index("features")


def _enc_action(action: ActionRecord) -> list[Any]:
    out = list(_action_get(action))
    out[_ACTION_PENDING] = sorted(action.pending)
    out[_ACTION_ACKS] = [[k, list(v)] for k, v in action.acks.items()]
    return out


# --- version 5: jobs in columns ------------------------------------------------------------

_CONST, _EMPTY, _VALUES = 0, 1, 2  # [0, value] | [1] (every record: an empty container) | [2, [values]]
_SCALARS = frozenset((str, int, float, bool, type(None)))
_CONTAINERS = {tuple: "tuple", list: "list", set: "set", dict: "dict"}


def _kinds(cls: type, special: dict[str, str]) -> tuple[str, ...]:
    """Each field's column kind: its container type from the annotation, else ``scalar``."""
    out = []
    for f in attrs.fields(cls):
        kind = special.get(f.name) or next((k for k in ("tuple", "list", "set", "dict") if str(f.type).startswith(k)),
                                           "scalar")
        out.append(kind)
    return tuple(out)


_JOB_KINDS = _kinds(Job, {"spec": "scalar", "state": "scalar", "steps": "steps"})
_SPEC_KINDS = _kinds(JobSpec, {})
_SPEC_FIELD_COUNT = len(_SPEC_KINDS)
_STATE_VALUES = {s: s.value for s in JobState}


def _float_sign(x: float) -> float:
    return math.copysign(1.0, x)


def _family(t: type) -> type:
    """The type msgpack writes a value of type ``t`` as (an IntEnum as an int, and so on)."""
    if t is bool:
        return bool
    return next((base for base in (int, float, str) if issubclass(t, base)), t)


def _enc_column(values: Any, kind: str) -> list[Any]:
    """One field of every record. ``values`` is a non-empty sequence (sets as sorted lists)."""
    first = values[0]
    t = _family(type(first))
    if (t in _SCALARS or (t in _CONTAINERS and not first)) and values.count(first) == len(values) \
            and {_family(v) for v in set(map(type, values))} == {t}:
        if t in _CONTAINERS:
            return [_EMPTY]
        if t is not float or first != 0.0 or len(set(map(_float_sign, values))) == 1:  # 0.0 == -0.0
            return [_CONST, first]
    if kind == "set":
        values = list(map(sorted, values))
    return [_VALUES, values]


def _enc_steps(values: Any) -> list[Any]:
    if not any(values):
        return [_EMPTY]
    return [_VALUES, [[_step_get(step) for step in steps.values()] for steps in values]]


def _enc_columns(rows: list[Any], kinds: tuple[str, ...]) -> list[list[Any]]:
    if not rows:
        return [[_VALUES, []] for _ in kinds]
    return [_enc_column(column, kind) for column, kind in zip(zip(*rows, strict=True), kinds, strict=True)]


def _enc_jobs(jobs: list[Job]) -> list[Any]:
    """[count, columns, [spec count, spec columns]]: the spec column holds indexes into the
    table of distinct specs (first appearance first; equal means equal encoding)."""
    spec_rows: list[Any] = []
    by_encoding: dict[bytes, int] = {}
    by_id: dict[int, int] = {}  # specs shared in memory (array tasks) are looked up once
    indexes = []
    for spec in map(_job_spec, jobs):
        i = by_id.get(id(spec))
        if i is None:
            row = _spec_getter(spec)
            i = by_encoding.setdefault(msgpack.packb(row, use_bin_type=True), len(spec_rows))
            if i == len(spec_rows):
                spec_rows.append(row)
            by_id[id(spec)] = i
        indexes.append(i)
    rows = list(map(_job_get, jobs))
    if rows:
        columns = list(zip(*rows, strict=True))
        columns[_JOB_SPEC] = indexes
        columns[_JOB_STATE] = list(map(_STATE_VALUES.__getitem__, columns[_JOB_STATE]))
        encoded = [_enc_steps(c) if kind == "steps" else _enc_column(c, kind)
                   for c, kind in zip(columns, _JOB_KINDS, strict=True)]
    else:
        encoded = [[_VALUES, []] for _ in _JOB_KINDS]
    return [len(rows), encoded, [len(spec_rows), _enc_columns(spec_rows, _SPEC_KINDS)]]


_job_spec = attrgetter("spec")
_job_id = attrgetter("job_id")
_job_hold = attrgetter("hold")
_job_array_id = attrgetter("array_job_id")


def _fresh(kind: str, n: int) -> list[Any]:
    """``n`` empty containers of ``kind``, each its own (records must not share mutable ones).
    Literals, not calls: ``{}`` is twice as fast as ``dict()``."""
    if kind == "tuple":
        return [()] * n
    if kind == "set":
        return [set() for _ in repeat(None, n)]
    if kind == "list":
        return [[] for _ in repeat(None, n)]
    return [{} for _ in repeat(None, n)]  # dict, steps


_CONTAINER_TYPES: dict[str, type] = {"list": list, "set": set, "dict": dict}


def _dec_column(encoded: Any, kind: str, n: int) -> list[Any]:
    tag = encoded[0]
    if tag == _CONST and kind == "scalar":
        return [encoded[1]] * n
    if tag == _EMPTY and kind != "scalar":
        return _fresh(kind, n)
    if tag != _VALUES or type(encoded[1]) is not list or len(encoded[1]) != n:
        raise ValueError(f"bad column {encoded[:1]} of {n} records")
    values = encoded[1]
    if kind == "tuple":
        return list(map(tuple, values))
    if kind == "set":
        return list(map(set, values))
    if kind == "steps":
        return [{s.step_id: s for s in map(_dec_step, steps)} if steps else {} for steps in values]
    if kind != "scalar" and not set(map(type, values)) <= {_CONTAINER_TYPES[kind]}:
        raise ValueError(f"a {kind} column holds {sorted(t.__name__ for t in set(map(type, values)))}")
    return values


def _dec_columns(encoded: Any, kinds: tuple[str, ...], n: int) -> list[list[Any]]:
    if type(encoded) is not list or len(encoded) != len(kinds):
        raise ValueError(f"{len(encoded)} columns, expected {len(kinds)}")
    return [_dec_column(c, kind, n) for c, kind in zip(encoded, kinds, strict=True)]


def _dec_jobs(block: Any) -> list[Job]:
    n, columns, (spec_count, spec_columns) = block
    specs = list(map(JobSpec, *_dec_columns(spec_columns, _SPEC_KINDS, spec_count))) if spec_count else []
    columns = _dec_columns(columns, _JOB_KINDS, n)
    if n and min(columns[_JOB_SPEC]) < 0:
        raise ValueError("negative spec index")
    columns[_JOB_SPEC] = list(map(specs.__getitem__, columns[_JOB_SPEC]))
    columns[_JOB_STATE] = list(map(_STATES.__getitem__, columns[_JOB_STATE]))
    return list(map(Job, *columns)) if n else []


def tune_gc() -> None:
    """For processes that hold a large state (the controller, replays): the state is
    millions of small long-lived objects, so collect the young generation less often."""
    gc.set_threshold(50_000, 50, 100)


@contextmanager
def gc_paused(freeze: bool = False) -> Iterator[None]:
    """Building or tearing down a large state creates millions of containers; the cyclic
    collector would walk all of them again and again (it halves snapshot speed).

    ``freeze``: what was built meanwhile is long-lived state (a restart's load): move it to
    the permanent generation (``gc.freeze``) before the collector is on again. Otherwise the
    first allocation after it triggers a young collection that walks every object just built
    (0.3-0.5 s for 100,000 jobs), and older generations keep walking them later. The state is
    acyclic plain data, so reference counting alone frees what it drops."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


def _enc_requests(requests: dict[str, tuple[int, int]]) -> list[list[Any]]:
    """Request ids, their jobs and their results: three columns (version 5)."""
    if not requests:
        return [[], [], []]
    return [list(requests), *map(list, zip(*requests.values(), strict=True))]


def encode_state(state: ClusterState) -> bytes:
    with gc_paused():
        return _encode_state(state)


def _encode_state(state: ClusterState) -> bytes:
    body = [
        SNAPSHOT_MAGIC,
        SNAPSHOT_VERSION,
        state.next_job_id,
        state.next_action_id,
        state.rejected,
        _enc_jobs(list(state.jobs.values())),
        [_enc_node(n) for n in state.nodes.values()],
        [_enc_action(a) for a in state.actions.values()],
        _enc_requests(state.requests),
        list(state.pending),
        list(state.unlaunched),
        [[k, v] for k, v in state.array_purged.items()],
        [_PARTITION.enc(p) for p in state.partitions.values()],
        state.settings,
        state.config_digest,
        [_ACCOUNT.enc(a) for a in state.accounts.values()],
        [_USER.enc(u) for u in state.users.values()],
        [_ASSOC.enc(a) for a in state.assocs.values()],
        [_QOS.enc(q) for q in state.qos.values()],
        [[k, v] for k, v in state.usage.items()],
        [[k, v] for k, v in state.usage_epoch.items()],
        state.usage_epoch_no,
        state.prio_rev,
    ]
    return msgpack.packb(body, use_bin_type=True)


def _dec_step(values: list[Any]) -> Step:
    for i in _STEP_TUPLES:
        values[i] = tuple(values[i])
    values[_STEP_TASKS] = tuple(map(tuple, values[_STEP_TASKS]))
    return Step(*values)


_STATES = {s.value: s for s in JobState}
_UNLAUNCHED, _UNDONE = _JOB_SETS


def _dec_job(values: list[Any]) -> Job:
    # Restart time is dominated by this function: plain lookups, no Enum() calls.
    values[_JOB_SPEC] = _spec_from(values[_JOB_SPEC])
    values[_JOB_STATE] = _STATES[values[_JOB_STATE]]
    values[_JOB_NODES] = tuple(values[_JOB_NODES])
    values[_UNLAUNCHED] = set(values[_UNLAUNCHED])
    values[_UNDONE] = set(values[_UNDONE])
    steps = values[_JOB_STEPS]
    values[_JOB_STEPS] = {s.step_id: s for s in map(_dec_step, steps)} if steps else {}
    return Job(*values)


def _dec_node(values: list[Any]) -> Node:
    values[_NODE_JOBS] = set(values[_NODE_JOBS])
    values[_NODE_FEATURES] = tuple(values[_NODE_FEATURES])
    return Node(*values)


def _dec_action(values: list[Any]) -> ActionRecord:
    values[_ACTION_PENDING] = set(values[_ACTION_PENDING])
    values[_ACTION_ACKS] = {k: tuple(v) for k, v in values[_ACTION_ACKS]}
    return ActionRecord(*values)


_JOB_V1_FIELDS = _J["dep_resolved"] + 1
_JOB_V2_DEFAULTS = (0, -1, [], 0)  # array_job_id, array_task_id, array_pending, array_throttle


def _upcast_v1(body: list[Any]) -> list[Any]:
    """A version-1 snapshot in version 2's shape: no arrays anywhere, JobSpec version 1."""
    for values in body[5]:
        if len(values) == _JOB_V1_FIELDS:
            values[_JOB_SPEC] = upcast_spec_v1(values[_JOB_SPEC])
            values.extend(list(d) if isinstance(d, list) else d for d in _JOB_V2_DEFAULTS)
    return [*body, []]


_STEP_V2_FIELDS = _STEP_FIELDS.index("uid") + 1
_JOB_V2_FIELDS = _J["array_throttle"] + 1


def _upcast_v2(body: list[Any]) -> list[Any]:
    """A version-2 snapshot in version 3's shape: steps without layouts (they held no CPUs)."""
    for values in body[5]:
        if len(values) == _JOB_V2_FIELDS:
            for step in values[_JOB_STEPS]:
                if len(step) == _STEP_V2_FIELDS:
                    step.extend([[], [], False, 1, "", {}, {}])
            values.append({})  # step_cpus
    return body


_JOB_V3_FIELDS = _J["step_cpus"] + 1
_JOB_V4_DEFAULTS = (("partition", ""), ("priority_set", -1), ("gres_alloc", None))
_NODE_V3_FIELDS = _NODE_FIELDS.index("jobs") + 1


def _upcast_v3(body: list[Any]) -> list[Any]:
    """A version-3 snapshot in version 4's shape: no configuration applied (the implicit
    ``debug`` partition), nodes as their agents registered them, no accounting or usage."""
    for values in body[5]:
        if len(values) == _JOB_V3_FIELDS:
            values[_JOB_SPEC] = upcast_spec(values[_JOB_SPEC])
            values.extend({} if d is None else d for _, d in _JOB_V4_DEFAULTS)
    for values in body[6]:
        if len(values) == _NODE_V3_FIELDS:
            cpus, mem = values[1], values[2]
            # configured, registered, drain, fail, admin_down, reason_time, reason_uid,
            # reported_cpus, reported_mem, features, weight, gres, gres_used
            values.extend([False, True, False, False, False, 0.0, -1, cpus, mem, [], 1, [], {}])
    return [*body, [], {}, "", [], [], [], [], [], [], -1, 0]


def decode_state(data: bytes) -> ClusterState:
    with gc_paused():
        return _decode_state(data)


def _decode_state(data: bytes) -> ClusterState:
    try:
        body = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:
        raise SnapshotError(f"undecodable state snapshot: {exc}") from exc
    if not isinstance(body, list) or len(body) < 2 or body[0] != SNAPSHOT_MAGIC:
        raise SnapshotError("not a spur state snapshot")
    version = body[1]
    if version not in (1, 2, 3, 4, SNAPSHOT_VERSION):
        raise SnapshotError(f"state snapshot version {version} is not supported (this code reads {SNAPSHOT_VERSION})")
    try:
        if version == 1:
            body = _upcast_v1(body)
        if version in (1, 2):
            body = _upcast_v2(body)
        if version in (1, 2, 3):
            body = _upcast_v3(body)
        (_, _, next_job, next_action, rejected, jobs, nodes, actions, requests, pending, unlaunched,
         array_purged, partitions, settings, config_digest, accounts, users, assocs, qos, usage, usage_epoch,
         usage_epoch_no, prio_rev) = body
        state = ClusterState(next_job_id=next_job, next_action_id=next_action, rejected=rejected)
        # Versions 1-4 hold one field list per job; 5 holds columns (see the module docstring).
        records = _dec_jobs(jobs) if version == SNAPSHOT_VERSION else list(map(_dec_job, jobs))
        state.jobs = dict(zip(map(_job_id, records), records, strict=True))
        if len(state.jobs) != len(records):
            raise ValueError("a job id appears twice")
        members = state.array_members
        for job in filter(_job_array_id, records):
            members.setdefault(job.array_job_id, {})[job.job_id] = None
        for values in nodes:
            node = _dec_node(values)
            state.nodes[node.name] = node
        for values in actions:
            action = _dec_action(values)
            state.actions[action.action_id] = action
        if version == SNAPSHOT_VERSION:  # [ids, jobs, results]
            state.requests = dict(zip(requests[0], zip(requests[1], requests[2], strict=True), strict=True))
        else:  # [[id, [job, result]], ...]
            state.requests = {k: tuple(v) for k, v in requests}
        state.pending = dict.fromkeys(pending)
        ordered = sorted(pending)
        held = map(_job_hold, map(state.jobs.__getitem__, ordered))
        state.runnable = dict.fromkeys(compress(ordered, map(not_, held)))
        state.unlaunched = dict.fromkeys(unlaunched)
        state.array_purged = {k: list(v) for k, v in array_purged}
        state.partitions = {p.name: p for p in map(_PARTITION.dec, partitions)}
        state.settings = dict(settings)
        state.config_digest = config_digest
        state.accounts = {a.name: a for a in map(_ACCOUNT.dec, accounts)}
        state.users = {u.name: u for u in map(_USER.dec, users)}
        state.assocs = {a.key: a for a in map(_ASSOC.dec, assocs)}
        state.qos = {q.name: q for q in map(_QOS.dec, qos)}
        state.usage = {k: list(v) for k, v in usage}
        state.usage_epoch = {k: list(v) for k, v in usage_epoch}
        state.usage_epoch_no, state.prio_rev = usage_epoch_no, prio_rev
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise SnapshotError(f"malformed state snapshot: {exc}") from exc
    return state


def digest(state: ClusterState) -> str:
    """A stable hash of the canonical encoding: equal states, equal digests."""
    return hashlib.sha256(encode_state(state)).hexdigest()
