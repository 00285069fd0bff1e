"""Snapshot version 5 writes jobs in columns (spurcore/snapshot.py's docstring): what it must
keep exactly as a field-by-field encoding did, and what it refuses."""

from __future__ import annotations

import attrs
import msgpack
import pytest

from spurcore.model import ClusterState
from spurcore.ops import JobSpec, JobStart, JobSubmitted, NodeRegistered
from spurcore.reduce import apply
from spurcore.snapshot import SnapshotError, decode_state, digest, encode_state

SPEC = JobSpec("j", "alice", 1000, 100, "#!/bin/sh\ntrue\n", (), {"HOME": "/home/alice"}, "/home/alice", hold=True)


def queued(n: int, spec: JobSpec = SPEC) -> ClusterState:
    state = ClusterState()
    apply(state, NodeRegistered("n1", 4, 4000, "", 1.0))
    for i in range(n):
        apply(state, JobSubmitted(f"r{i}", spec, 10.0 + i))
    return state


def test_equal_specs_are_shared_and_mutable_fields_are_not():
    state = decode_state(encode_state(queued(3)))
    one, two, three = state.jobs.values()
    assert one.spec is two.spec is three.spec  # frozen: one object for equal specs
    for field in ("unlaunched", "undone", "steps", "dep_resolved", "array_pending", "step_cpus", "gres_alloc"):
        assert getattr(one, field) is not getattr(two, field), field  # each job mutates its own
    one.unlaunched.add("n1")
    assert two.unlaunched == set()


def test_specs_that_differ_stay_apart_and_in_order():
    state = queued(0)
    for i, name in enumerate(["a", "b", "a", "c"]):
        apply(state, JobSubmitted(f"r{i}", attrs.evolve(SPEC, name=name), 1.0))
    restored = decode_state(encode_state(state))
    assert [j.spec.name for j in restored.jobs.values()] == ["a", "b", "a", "c"]
    assert restored.jobs[1].spec is restored.jobs[3].spec and restored == state


def test_equal_values_of_different_types_come_back_as_written():
    # 1 == 1.0 == True and 0.0 == -0.0: a column of them must not be written as one value,
    # or a restored replica would encode (and digest) differently after its next change.
    state = queued(4)
    jobs = list(state.jobs.values())
    for job, value in zip(jobs, (1, 1.0, True, 1), strict=True):
        job.eligible_time = value
    for job, value in zip(jobs, (0.0, -0.0, 0.0, 0.0), strict=True):
        job.start_time = value
    restored = decode_state(encode_state(state))
    assert [type(j.eligible_time) for j in restored.jobs.values()] == [int, float, bool, int]
    assert [str(j.start_time) for j in restored.jobs.values()] == ["0.0", "-0.0", "0.0", "0.0"]
    assert encode_state(restored) == encode_state(state)


def test_equal_states_have_equal_digests_however_their_specs_are_shared():
    shared = queued(3)
    separate = queued(0)
    for i in range(3):  # equal specs, distinct objects
        apply(separate, JobSubmitted(f"r{i}", attrs.evolve(SPEC), 10.0 + i))
    assert shared == separate and digest(shared) == digest(separate)
    assert digest(decode_state(encode_state(shared))) == digest(separate)


def test_running_jobs_with_steps_and_an_empty_state_round_trip():
    assert decode_state(encode_state(ClusterState())) == ClusterState()
    state = queued(2, attrs.evolve(SPEC, hold=False))
    apply(state, JobStart(1, ("n1",), 1, 0, 20.0))
    restored = decode_state(encode_state(state))
    assert restored == state and restored.jobs[1].nodes == ("n1",) and restored.jobs[1].unlaunched == {"n1"}
    assert encode_state(restored) == encode_state(state)


def _body(state: ClusterState) -> list:
    return msgpack.unpackb(encode_state(state), raw=False, strict_map_key=False)


@pytest.mark.parametrize("damage", [
    lambda jobs: jobs[1].pop(),  # a column missing
    lambda jobs: jobs[1][2].__setitem__(1, jobs[1][2][1][:1]),  # a column one record short
    lambda jobs: jobs[1][1].__setitem__(1, 5),  # the spec index out of the table
    lambda jobs: jobs[1][1].__setitem__(1, -1),  # a negative spec index
    lambda jobs: jobs[1][3].__setitem__(1, "RUNNIN"),  # no such state
    lambda jobs: jobs[1][23].__setitem__(0, 0),  # a set column written as a scalar
    lambda jobs: jobs[2][1][6].__setitem__(1, ["HOME", "HOME"]),  # env not a map
])
def test_damaged_columns_are_refused(damage):
    body = _body(queued(2))
    damage(body[5])
    with pytest.raises(SnapshotError, match="malformed"):
        decode_state(msgpack.packb(body, use_bin_type=True))
