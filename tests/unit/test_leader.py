"""spurcore.leader: the leader's decisions, tested without processes (issue: a pure core).

Each case builds a state with the reducer, asks ``ready`` what to do at some ``now`` and
checks the ops and messages, as spurctld's leader loop would carry them out."""

from __future__ import annotations

import attrs

from spurcore.leader import LeaderConfig, deliveries, ready
from spurcore.model import ClusterState, JobState
from spurcore.ops import (
    ActionKind,
    ActionRequested,
    JobCancelled,
    JobDeadlineReached,
    JobNodeComplete,
    JobSpec,
    JobsPurged,
    JobStart,
    JobSubmitted,
    JobTimeLimitReached,
    NodeDown,
    NodeRegistered,
    SignalTarget,
)
from spurcore.reduce import apply

SPEC = JobSpec("j", "alice", 1000, 100, "#!/bin/sh\ntrue\n", (), {}, "/tmp")
CFG = LeaderConfig(node_timeout=30, min_job_age=300, kill_wait=5, suspend_grace=1)


def cluster(*specs: JobSpec, cpus: int = 4) -> ClusterState:
    state = ClusterState()
    apply(state, NodeRegistered("n1", cpus, 1000, "", 0.0))
    for i, spec in enumerate(specs):
        apply(state, JobSubmitted(f"r{i}", spec, 1.0))
    return state


def ops_of(state, now, silence=None, **kw):
    return [d.op for d in ready(state, now, silence or {}, CFG, **kw).ops]


def run_all(state, now):
    for op in ops_of(state, now):
        if isinstance(op, JobStart):
            apply(state, op)


def test_starts_what_fits_then_times_out_at_the_limit():
    state = cluster(attrs.evolve(SPEC, time_limit=60))
    ops = ops_of(state, 2.0)
    assert [type(o) for o in ops] == [JobStart]
    apply(state, ops[0])
    assert ops_of(state, 61.9) == []
    assert ops_of(state, 62.0) == [JobTimeLimitReached(1, 62.0)]


def test_signal_warning_once_per_run_before_the_limit():
    state = cluster(attrs.evolve(SPEC, time_limit=120, signal=12, signal_time=90, signal_flags="B"))
    run_all(state, 2.0)
    assert ops_of(state, 31.0) == []
    warn = ops_of(state, 32.0)
    assert warn == [ActionRequested("warn:1:0", 1, -1, ActionKind.SIGNAL, 12, SignalTarget.BATCH, 0, 32.0)]
    apply(state, warn[0])
    assert ops_of(state, 33.0) == []  # the request id is in the state: never twice


def test_silent_nodes_go_down_and_purges_wait_for_min_job_age():
    state = cluster(SPEC)
    run_all(state, 2.0)
    assert ops_of(state, 3.0, {"n1": 29.0}) == []
    assert ops_of(state, 3.0, {"n1": 31.0}) == [NodeDown("n1", "Not responding", 3.0, False, True, 124.0)]
    apply(state, JobNodeComplete(1, "n1", 0, 0, False, 4.0))
    assert state.jobs[1].state is JobState.COMPLETED
    assert ops_of(state, 303.0) == []
    assert ops_of(state, 304.0) == [JobsPurged((1,), 304.0)]
    assert ops_of(state, 304.0, purge=False) == []


def test_deadline_and_kill_on_invalid_dependency():
    late = attrs.evolve(SPEC, time_limit=600, deadline=500.0, hold=True)
    state = cluster(late)
    apply(state, JobSubmitted("x", attrs.evolve(SPEC, hold=False, time_limit=600, deadline=500.0), 1.0))
    assert JobDeadlineReached(2, 2.0) in ops_of(state, 2.0)  # 2 + 600 > 500; held job 1 is not runnable
    state = cluster(SPEC, cpus=1)
    apply(state, JobCancelled(1, 0, 2.0))
    apply(state, JobSubmitted("a", attrs.evolve(SPEC, dependency="afterok:1", kill_on_invalid_dep=1), 3.0))
    apply(state, JobSubmitted("b", attrs.evolve(SPEC, dependency="afterok:1"), 3.0))
    assert ops_of(state, 4.0) == [JobCancelled(2, 0, 4.0)]  # job 3 keeps waiting (cluster default off)
    assert JobCancelled(3, 0, 4.0) in [d.op for d in ready(
        state, 4.0, {}, attrs.evolve(CFG, kill_invalid_depend=True)).ops]


def test_inflight_decisions_are_not_repeated():
    state = cluster(SPEC)
    first = ready(state, 2.0, {}, CFG).ops
    assert ready(state, 2.0, {}, CFG, inflight={d.key for d in first}).ops == []


def test_messages_come_from_intents_and_the_callers_resend_policy():
    state = cluster(SPEC)
    run_all(state, 2.0)
    msgs = deliveries(state, 3.0, CFG)
    assert [(m.node, m.method, m.key) for m in msgs] == [("n1", "start", ("start", 1, "n1", 0))]
    assert msgs[0].params["job"]["job_id"] == 1 and msgs[0].params["job"]["script"] == SPEC.script
    assert deliveries(state, 3.0, CFG, wanted=lambda key: False) == []
    apply(state, ActionRequested("c", 1, -1, ActionKind.KILL, 0, 0, 1000, 4.0))
    (kill,) = [m for m in deliveries(state, 5.0, CFG) if m.method == "action"]
    assert kill.params["why"] == "cancel" and kill.params["kill_wait"] == 5


def test_the_pending_queue_is_walked_only_by_the_periodic_pass():
    """Deadlines and dependencies that can never be met are the periodic pass's (purge=True,
    once a second on the leader), not every applied entry's: a commit's cost stays flat in
    the queue's length."""
    state = cluster(attrs.evolve(SPEC, time_limit=600, deadline=500.0))
    assert JobDeadlineReached(1, 2.0) in ops_of(state, 2.0)
    assert not any(isinstance(o, JobDeadlineReached) for o in ops_of(state, 2.0, purge=False))


def test_the_main_scheduler_with_no_free_cpu_starts_nothing_as_the_full_walk_would():
    from spurcore.scheduler import plan, schedule

    state = cluster(*[SPEC] * 5, cpus=2)
    run_all(state, 2.0)
    assert state.nodes["n1"].alloc_cpus == 2
    assert schedule(state, 3.0, backfill=False) == [] == plan(state, 3.0, want_reasons=False, reserve=False).starts
    apply(state, JobNodeComplete(1, "n1", 0, 0, False, 4.0))  # a CPU frees: the walk runs again
    assert [s.job_id for s in schedule(state, 5.0, backfill=False)] == [3]


def test_a_pending_jobs_reason_without_the_walk_is_the_walks():
    """pending_reason skips the queue walk for a job that is not runnable (a held one): the
    walk never reaches such a job, so the answer must be the one it would have given."""
    from spurcore.scheduler import _waiting_reason, pending_reason, plan

    specs = [attrs.evolve(SPEC, hold=i % 3 == 0, time_limit=60 * (i + 1)) for i in range(9)]
    state = cluster(*specs, cpus=2)
    run_all(state, 2.0)
    pending = [j for j in state.jobs.values() if j.state is JobState.PENDING]
    assert any(j.job_id in state.runnable for j in pending) and any(j.job_id not in state.runnable for j in pending)
    for job in pending:
        walked = plan(state, 3.0, want_starts=False, stop_at=job.job_id, reserve=False).reasons.get(job.job_id)
        expected = walked or _waiting_reason(job, 3.0) or "None"
        assert pending_reason(state, job.job_id, 3.0) == expected, job.job_id
