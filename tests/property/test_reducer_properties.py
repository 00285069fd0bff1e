"""Properties of the codec, the reducer, snapshots and intents (DESIGN.md 1-2)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spurcore.codec import decode_batch, decode_op, encode_batch, encode_op
from spurcore.intents import pending_actions, pending_starts
from spurcore.model import ClusterState
from spurcore.ops import (
    ActionAcked,
    ActionKind,
    ActionRequested,
    JobLaunched,
    JobNodeComplete,
    JobSpec,
    JobStart,
    JobStepComplete,
    JobSubmitted,
    NodeRegistered,
    StepCreated,
)
from spurcore.reduce import Rejected, apply
from spurcore.snapshot import decode_state, digest, encode_state
from tests.property.strategies import exit_codes, op_lists, ops, signals


def fold(op_seq, state=None):
    state = ClusterState() if state is None else state
    for op in op_seq:
        apply(state, op)
    return state


@given(ops)
def test_codec_round_trips_every_op(op):
    assert decode_op(encode_op(op)) == op
    assert decode_batch(encode_batch([op, op])) == [op, op]


@given(op_lists)
def test_runnable_queue_is_the_unheld_pending_jobs_in_id_order(op_seq):
    """The scheduler's queue (an index the reducer keeps) never drifts from what it indexes."""
    state = ClusterState()
    for op in op_seq:
        apply(state, op)
        expected = [j for j in sorted(state.pending) if not state.jobs[j].hold]
        assert list(state.runnable) == expected


@given(op_lists)
def test_replay_is_deterministic(op_seq):
    """The same log gives the same state, byte for byte (DESIGN.md 1.2)."""
    assert digest(fold(op_seq)) == digest(fold(op_seq))


@given(op_lists)
def test_apply_never_raises_and_decoded_ops_behave_the_same(op_seq):
    # Replaying the decoded log (what every replica does) gives the same state.
    decoded = [decode_op(encode_op(op)) for op in op_seq]
    assert digest(fold(op_seq)) == digest(fold(decoded))


@given(op_lists, st.integers(min_value=0, max_value=60))
def test_snapshot_at_any_point_plus_tail_equals_full_replay(op_seq, cut):
    cut = min(cut, len(op_seq))
    head = fold(op_seq[:cut])
    restored = decode_state(encode_state(head))
    assert restored == head
    assert digest(fold(op_seq[cut:], restored)) == digest(fold(op_seq))


def _digest_ignoring_rejections(state: ClusterState) -> str:
    saved, state.rejected = state.rejected, 0
    try:
        return digest(state)
    finally:
        state.rejected = saved


@given(op_lists)
def test_duplicate_reports_and_acks_are_no_ops(op_seq):
    """At-least-once reports, exactly-once effects (DESIGN.md 1.6)."""
    state = ClusterState()
    for op in op_seq:
        first = apply(state, op)
        if isinstance(op, (JobNodeComplete, JobStepComplete, ActionAcked, JobLaunched)):
            before = _digest_ignoring_rejections(state)
            second = apply(state, op)
            assert _digest_ignoring_rejections(state) == before
            if not isinstance(first, Rejected):
                assert second is None  # a duplicate is a silent no-op, not a rejection


def _running_job(state: ClusterState, nodes: tuple[str, ...] = ("n1",)) -> int:
    for n in nodes:
        apply(state, NodeRegistered(n, 4, 4000, "", 0.0))
    spec = JobSpec("j", "alice", 1000, 100, "#!/bin/sh\n", (), {}, "/tmp", nodes=len(nodes), ntasks=len(nodes))
    job_id = apply(state, JobSubmitted("", spec, 1.0))
    assert apply(state, JobStart(job_id, nodes, 1, 0, 2.0)) is None
    return job_id


@given(st.lists(st.tuples(exit_codes, signals, st.booleans()), min_size=1, max_size=6), st.randoms())
def test_derived_exit_code_is_order_independent(steps, rnd):
    """Slurm: DerivedExitCode is the max raw status over user steps, whatever their order."""

    def run(order):
        state = ClusterState()
        job_id = _running_job(state)
        ids = [apply(state, StepCreated("", job_id, "s", ("x",), 1, "", 1000, 3.0)) for _ in order]
        for step_id, (code, sig, oom) in zip(ids, order, strict=True):
            apply(state, JobStepComplete(job_id, step_id, "n1", code, sig, oom, 4.0))
        return state.jobs[job_id].derived_ec

    shuffled = list(steps)
    rnd.shuffle(shuffled)
    if any(oom for _, _, oom in steps):
        # Slurm's rule: an OOM step always sets SIG_OOM, so the last OOM wins over larger
        # statuses that came before it; only the OOM-free case is order-independent.
        return
    assert run(steps) == run(shuffled)


@given(st.permutations(["n1", "n2", "n3"]), st.sampled_from([ActionKind.KILL, ActionKind.STOP, ActionKind.SIGNAL]))
def test_pending_intents_disappear_exactly_when_acked_on_every_node(ack_order, kind):
    state = ClusterState()
    job_id = _running_job(state, ("n1", "n2", "n3"))
    assert {i.node for i in pending_starts(state)} == {"n1", "n2", "n3"}
    for n in ack_order:
        apply(state, JobLaunched(job_id, n, 3.0))
    assert pending_starts(state) == []
    action_id = apply(state, ActionRequested("", job_id, -1, kind, 10, 0, 0, 4.0))
    remaining = {"n1", "n2", "n3"}
    for n in ack_order:
        assert {i.node for i in pending_actions(state)} == remaining
        apply(state, ActionAcked(action_id, n, 0, 0, 5.0))
        apply(state, ActionAcked(action_id, n, 0, 0, 5.0))  # duplicate ACK: no effect
        remaining.discard(n)
    assert pending_actions(state) == []
    if kind == ActionKind.KILL:
        assert state.jobs[job_id].display_state == "CANCELLED"
