"""Snapshot encoding of the whole state, and the state digest.

Invariants:
- ``decode_state(encode_state(s)) == s`` and the encoding is canonical: sets are written
  sorted and dicts in their (deterministic) insertion order, so two replicas with equal
  state produce identical bytes, and ``digest`` is a stable hash of those bytes.
- The encoding is versioned; an unknown version is refused with ``SnapshotError``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs
import msgpack

from spurcore.codec import _plain, _spec_from
from spurcore.model import ActionRecord, ClusterState, Job, JobState, Node, Step

SNAPSHOT_MAGIC = "spur-state"
SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    pass


_JOB_FIELDS = tuple(f.name for f in attrs.fields(Job))
_STEP_FIELDS = tuple(f.name for f in attrs.fields(Step))
_NODE_FIELDS = tuple(f.name for f in attrs.fields(Node))
_ACTION_FIELDS = tuple(f.name for f in attrs.fields(ActionRecord))


def _enc(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, JobState):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return [[k, _enc(v)] for k, v in value.items()]
    return value


def _enc_step(step: Step) -> list[Any]:
    return [_enc(getattr(step, f)) for f in _STEP_FIELDS]


def _enc_job(job: Job) -> list[Any]:
    out: list[Any] = []
    for f in _JOB_FIELDS:
        value = getattr(job, f)
        if f == "spec":
            out.append(_plain(value))
        elif f == "steps":
            out.append([_enc_step(s) for s in value.values()])
        else:
            out.append(_enc(value))
    return out


def encode_state(state: ClusterState) -> bytes:
    body = [
        SNAPSHOT_MAGIC,
        SNAPSHOT_VERSION,
        state.next_job_id,
        state.next_action_id,
        state.rejected,
        [_enc_job(j) for j in state.jobs.values()],
        [[_enc(getattr(n, f)) for f in _NODE_FIELDS] for n in state.nodes.values()],
        [[_enc(getattr(a, f)) for f in _ACTION_FIELDS] for a in state.actions.values()],
        [[k, list(v)] for k, v in state.requests.items()],
        list(state.pending),
        list(state.unlaunched),
    ]
    return msgpack.packb(body, use_bin_type=True)


def _dec_step(values: list[Any]) -> Step:
    d = dict(zip(_STEP_FIELDS, values, strict=True))
    d["argv"] = tuple(d["argv"])
    d["nodes"] = tuple(d["nodes"])
    return Step(**d)


def _dec_job(values: list[Any]) -> Job:
    d = dict(zip(_JOB_FIELDS, values, strict=True))
    d["spec"] = _spec_from(d["spec"])
    d["state"] = JobState(d["state"])
    d["nodes"] = tuple(d["nodes"])
    d["unlaunched"] = set(d["unlaunched"])
    d["undone"] = set(d["undone"])
    d["steps"] = {s.step_id: s for s in map(_dec_step, d["steps"])}
    return Job(**d)


def _dec_node(values: list[Any]) -> Node:
    d = dict(zip(_NODE_FIELDS, values, strict=True))
    d["jobs"] = set(d["jobs"])
    return Node(**d)


def _dec_action(values: list[Any]) -> ActionRecord:
    d = dict(zip(_ACTION_FIELDS, values, strict=True))
    d["pending"] = set(d["pending"])
    d["acks"] = {k: tuple(v) for k, v in d["acks"]}
    return ActionRecord(**d)


def decode_state(data: bytes) -> ClusterState:
    try:
        body = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:
        raise SnapshotError(f"undecodable state snapshot: {exc}") from exc
    if not isinstance(body, list) or len(body) < 2 or body[0] != SNAPSHOT_MAGIC:
        raise SnapshotError("not a spur state snapshot")
    if body[1] != SNAPSHOT_VERSION:
        raise SnapshotError(f"state snapshot version {body[1]} is not supported (this code reads {SNAPSHOT_VERSION})")
    try:
        (_, _, next_job, next_action, rejected, jobs, nodes, actions, requests, pending, unlaunched) = body
        state = ClusterState(next_job_id=next_job, next_action_id=next_action, rejected=rejected)
        for values in jobs:
            job = _dec_job(values)
            state.jobs[job.job_id] = job
        for values in nodes:
            node = _dec_node(values)
            state.nodes[node.name] = node
        for values in actions:
            action = _dec_action(values)
            state.actions[action.action_id] = action
        state.requests = {k: tuple(v) for k, v in requests}
        state.pending = dict.fromkeys(pending)
        state.unlaunched = dict.fromkeys(unlaunched)
    except (TypeError, ValueError, KeyError) as exc:
        raise SnapshotError(f"malformed state snapshot: {exc}") from exc
    return state


def digest(state: ClusterState) -> str:
    """A stable hash of the canonical encoding: equal states, equal digests."""
    return hashlib.sha256(encode_state(state)).hexdigest()
