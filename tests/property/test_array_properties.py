"""Job arrays under any throttle, any size and any completion order (Slurm's ``%N``):
never more tasks at once than the throttle, every task exactly once, and the log replays to
the same digest."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from spurcore import arrays
from spurcore.model import ClusterState, JobState
from spurcore.ops import JobNodeComplete, JobSpec, JobSubmitted, NodeRegistered
from spurcore.reduce import Rejected, apply
from spurcore.scheduler import array_running, schedule
from spurcore.snapshot import decode_state, digest, encode_state

SPEC = JobSpec("arr", "alice", 1000, 100, "#!/bin/sh\ntrue\n", (), {}, "/tmp")

expressions = st.one_of(
    st.tuples(st.integers(0, 20), st.integers(0, 30), st.integers(1, 4)).map(
        lambda t: f"{t[0]}-{t[0] + t[1]}:{t[2]}"),
    st.lists(st.integers(0, 40), min_size=1, max_size=12).map(lambda xs: ",".join(map(str, xs))),
)


@given(
    expr=expressions,
    throttle=st.integers(0, 5),
    node_cpus=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    order=st.randoms(use_true_random=False),
    snapshot_at=st.integers(0, 40),
)
def test_throttle_is_never_exceeded_and_each_task_runs_once(expr, throttle, node_cpus, order, snapshot_at):
    text = f"{expr}%{throttle}" if throttle else expr
    expected = sorted(arrays.indexes(arrays.parse_array(text)[0]))
    state = ClusterState()
    log = []

    def do(op):
        log.append(op)
        return apply(state, op)

    for i, cpus in enumerate(node_cpus):
        do(NodeRegistered(f"n{i}", cpus, 1000, "", 0.0))
    array_id = do(JobSubmitted("r", attrs.evolve(SPEC, array=text), 1.0))
    assert isinstance(array_id, int)
    started: list[int] = []
    now = 2.0
    steps = 0
    while len(started) < len(expected):
        steps += 1
        assert steps < 10 * len(expected) + 10, "no progress"
        for start in schedule(state, now):
            result = do(start)
            assert not isinstance(result, Rejected), result
            job_id = result if start.array_task_id >= 0 else start.job_id
            started.append(state.jobs[job_id].array_task_id)
        running = [j for j in state.array_members[array_id]
                   if state.jobs[j].state is JobState.RUNNING]
        assert len(running) == array_running(state, array_id)
        if throttle:
            assert len(running) <= throttle
        if running:
            victim = order.choice(sorted(running))
            do(JobNodeComplete(victim, state.jobs[victim].batch_host, order.choice([0, 1]), 0, False, now))
        if len(log) == snapshot_at:
            state = decode_state(encode_state(state))  # a restart mid-way changes nothing
        now += 1.0
    assert sorted(started) == expected  # each task exactly once
    assert len(state.array_members[array_id]) == len(expected)
    replayed = ClusterState()
    for op in log:
        apply(replayed, op)
    assert digest(replayed) == digest(state)
