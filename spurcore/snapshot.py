"""Snapshot encoding of the whole state, and the state digest.

Invariants:
- ``decode_state(encode_state(s)) == s`` and the encoding is canonical: sets are written
  sorted and dicts in their (deterministic) insertion order, so two replicas with equal
  state produce identical bytes, and ``digest`` is a stable hash of those bytes.
- The encoding is versioned; an unknown version is refused with ``SnapshotError``.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from typing import Any

import attrs
import msgpack

from spurcore.codec import _plain, _spec_from, upcast_spec, upcast_spec_v1
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

SNAPSHOT_MAGIC = "spur-state"
SNAPSHOT_VERSION = 4
# 2: job arrays (four Job fields, array_purged) and JobSpec version 2
# 3: step layouts (seven Step fields: tasks, cpus, overlap, cpus_per_task, distribution,
#    node_status, usage) and Job.step_cpus
# 4: partitions, node states and configuration, accounting, usage; JobSpec version 3


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


def _enc_job(job: Job) -> list[Any]:
    # Field by field in attrs order; only sets, the enum, the spec and steps need converting
    # (msgpack writes tuples as arrays).
    out = list(_job_get(job))
    out[_JOB_SPEC] = _plain(job.spec)
    out[_JOB_STATE] = job.state.value
    for i in _JOB_SETS:
        out[i] = sorted(out[i])
    out[_JOB_STEPS] = [_step_get(step) for step in job.steps.values()]
    return out


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


def tune_gc() -> None:
    """For processes that hold a large state (the controller, replays): the state is
    millions of small long-lived objects, so collect the young generation less often."""
    gc.set_threshold(50_000, 50, 100)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building or tearing down a large state creates millions of containers; the cyclic
    collector would walk all of them again and again (it halves snapshot speed)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
        [_enc_job(j) for j in state.jobs.values()],
        [_enc_node(n) for n in state.nodes.values()],
        [_enc_action(a) for a in state.actions.values()],
        [[k, v] for k, v in state.requests.items()],
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
    if body[1] not in (1, 2, 3, SNAPSHOT_VERSION):
        raise SnapshotError(f"state snapshot version {body[1]} is not supported (this code reads {SNAPSHOT_VERSION})")
    try:
        if body[1] == 1:
            body = _upcast_v1(body)
        if body[1] in (1, 2):
            body = _upcast_v2(body)
        if body[1] in (1, 2, 3):
            body = _upcast_v3(body)
        (_, _, next_job, next_action, rejected, jobs, nodes, actions, requests, pending, unlaunched,
         array_purged, partitions, settings, config_digest, accounts, users, assocs, qos, usage, usage_epoch,
         usage_epoch_no, prio_rev) = body
        state = ClusterState(next_job_id=next_job, next_action_id=next_action, rejected=rejected)
        members = state.array_members
        for values in jobs:
            job = _dec_job(values)
            state.jobs[job.job_id] = job
            if job.array_job_id:
                members.setdefault(job.array_job_id, {})[job.job_id] = None
        for values in nodes:
            node = _dec_node(values)
            state.nodes[node.name] = node
        for values in actions:
            action = _dec_action(values)
            state.actions[action.action_id] = action
        state.requests = {k: tuple(v) for k, v in requests}
        state.pending = dict.fromkeys(pending)
        state.runnable = dict.fromkeys(j for j in sorted(pending) if not state.jobs[j].hold)
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
    except (TypeError, ValueError, KeyError) as exc:
        raise SnapshotError(f"malformed state snapshot: {exc}") from exc
    return state


def digest(state: ClusterState) -> str:
    """A stable hash of the canonical encoding: equal states, equal digests."""
    return hashlib.sha256(encode_state(state)).hexdigest()
