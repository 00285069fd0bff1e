"""A job's end and the next start in one replicated round: the leader's projection.

When an agent's report would release a job's resources (``spurcore.reduce.report_frees``),
the leader schedules at once with those resources counted as free (``schedule(...,
releasing=...)``) and proposes the starts behind the report in the same entry. These tests
hold the projection to the reducer: it predicts a release only where applying the report
releases, it never hands out what the report does not free, and the reducer re-checks
every start, so a start ordered before the end it relied on is refused."""

from __future__ import annotations

import copy

import pytest

from spurcore.leader import LeaderConfig, decide
from spurcore.model import ClusterState, JobState
from spurcore.ops import ActionKind, ActionRequested, JobNodeComplete, JobStart, SignalTarget
from spurcore.reduce import Rejected, apply, report_frees
from spurcore.scheduler import schedule
from tests.unit.test_sched_core import T0, configured, run_pass, submit

ONE_NODE = """
NodeName=n1 CPUs=2 RealMemory=2000 Gres=gpu:1
NodeName=n2 CPUs=2 RealMemory=2000
PartitionName=batch Nodes=n1 Default=YES MaxTime=60 DefaultTime=10
PartitionName=both Nodes=n[1-2] MaxTime=60 DefaultTime=10
"""


def full_node(**running_fields) -> tuple[ClusterState, int, int, int]:
    """n1 (2 CPUs) runs two one-CPU jobs (the first with ``running_fields``); a third waits."""
    state = configured(ONE_NODE)
    first = submit(state, time_limit=5, **running_fields)
    second = submit(state, time_limit=5)
    assert run_pass(state) == [first, second]
    third = submit(state, time_limit=5)
    assert schedule(state, T0 + 1) == []
    return state, first, second, third


def report(job_id: int, node: str = "n1", fenced: bool = False) -> JobNodeComplete:
    return JobNodeComplete(job_id, node, 0, 0, False, T0 + 2, fenced)


def released_by(state: ClusterState, op: JobNodeComplete) -> bool:
    """Apply ``op`` to a copy of ``state``: did the job give its resources back?"""
    before = state.jobs.get(op.job_id)
    after = copy.deepcopy(state)
    apply(after, op)
    return before is not None and before.allocated and not after.jobs[op.job_id].allocated


# --- report_frees agrees with the reducer ---------------------------------------------------


def _scenarios() -> list[tuple[str, ClusterState, JobNodeComplete, bool, bool]]:
    """(name, state, report, predicted, released): a prediction is never a release that
    does not happen; a release it does not predict (a fenced node's) only waits for the
    report to be applied, as every end did before."""
    out = []
    state, first, _, _ = full_node()
    out.append(("a batch job ends on its node", state, report(first), True, True))
    out.append(("a report from another node", state, report(first, "n2"), False, False))
    out.append(("a fenced report (the node failed, to the job)", state, report(first, fenced=True), False, True))
    out.append(("an unknown job", state, report(999), False, False))

    state, first, _, _ = full_node()
    apply(state, report(first))
    out.append(("a duplicate report", state, report(first), False, False))

    state, first, _, _ = full_node()
    apply(state, ActionRequested("c", first, -1, ActionKind.KILL, 9, SignalTarget.STEPS, 0, T0 + 1))
    assert state.jobs[first].state is JobState.CANCELLED and state.jobs[first].completing
    out.append(("a cancelled job's node reports its end", state, report(first), True, True))

    state = configured(ONE_NODE)
    wide = submit(state, partition="both", ntasks=2, nodes=2, time_limit=5)
    assert run_pass(state) == [wide]
    out.append(("a two-node job: the other node still runs it", state, report(wide), False, False))

    state = configured(ONE_NODE)
    alloc = submit(state, script=None, time_limit=5)
    assert run_pass(state) == [alloc]
    out.append(("an salloc/srun allocation (no batch script)", state, report(alloc), False, False))
    return out


@pytest.mark.parametrize("name,state,op,predicted,released", _scenarios(), ids=[s[0] for s in _scenarios()])
def test_report_frees_predicts_what_the_reducer_does(name, state, op, predicted, released):
    assert report_frees(state, op.job_id, op.node, op.fenced) is predicted
    assert released_by(state, op) is released


# --- the scheduler's projection ----------------------------------------------------------------


def test_the_next_job_starts_behind_the_end_in_log_order():
    state, first, second, third = full_node()
    starts = schedule(state, T0 + 1, backfill=False, releasing={first})
    assert [(s.job_id, s.nodes) for s in starts] == [(third, ("n1",))]
    # The reducer re-checks: before the end is applied, the start does not fit ...
    early = copy.deepcopy(state)
    assert isinstance(apply(early, starts[0]), Rejected)
    # ... behind it (one entry: the report, then the start) both are accepted.
    assert apply(state, report(first)) is None
    assert not isinstance(apply(state, starts[0]), Rejected)
    assert state.jobs[third].state is JobState.RUNNING and state.jobs[first].state is JobState.COMPLETED
    assert state.nodes["n1"].alloc_cpus == 2


def test_the_projection_frees_only_what_the_releasing_jobs_hold():
    state, first, second, third = full_node()
    big = submit(state, cpus_per_task=2, time_limit=5)
    starts = schedule(state, T0 + 1, backfill=True, releasing={first})
    assert [s.job_id for s in starts] == [third]  # one CPU comes back: the two-CPU job waits
    both = schedule(state, T0 + 1, backfill=True, releasing={first, second})
    assert [s.job_id for s in both] == [third]  # FIFO: `big` waits behind it with one CPU left
    assert big not in [s.job_id for s in both]


def test_gres_and_exclusive_jobs_keep_their_resources_until_applied():
    state, first, _, third = full_node(gres="gpu:1")
    assert schedule(state, T0 + 1, backfill=False, releasing={first}) == []
    state = configured(ONE_NODE)
    whole = submit(state, exclusive="exclusive", time_limit=5)
    assert run_pass(state) == [whole]
    after = submit(state, time_limit=5)
    assert schedule(state, T0 + 1, backfill=True, releasing={whole}) == []
    assert apply(state, report(whole)) is None
    assert [s.job_id for s in schedule(state, T0 + 1)] == [after]


def test_an_ended_job_already_applied_is_not_counted_twice():
    state, first, second, third = full_node()
    fourth = submit(state, time_limit=5)
    assert apply(state, report(first)) is None  # applied: `first` no longer holds anything
    starts = schedule(state, T0 + 1, backfill=True, releasing={first})
    assert [s.job_id for s in starts] == [third]
    assert fourth not in [s.job_id for s in starts]


def test_decide_passes_the_projection_to_the_scheduler():
    state, first, _, third = full_node()
    cfg = LeaderConfig()
    assert [d.op for d in decide(state, T0 + 1, {}, cfg, purge=False, scheduler="main")] == []
    ops = [d.op for d in decide(state, T0 + 1, {}, cfg, purge=False, scheduler="main", releasing={first})]
    assert [(type(o), o.job_id) for o in ops] == [(JobStart, third)]


def test_array_tasks_follow_each_other_one_per_round():
    state = configured(ONE_NODE)
    array = submit(state, array="0-3", time_limit=5)
    first_two = run_pass(state)
    assert len(first_two) == 2
    for ended in first_two:
        starts = schedule(state, T0 + 1, backfill=False, releasing={ended})
        assert len(starts) == 1 and starts[0].job_id == array
        assert apply(state, report(ended)) is None
        assert not isinstance(apply(state, starts[0]), Rejected)
    assert sorted(j.array_task_id for j in state.jobs.values() if j.state is JobState.RUNNING) == [2, 3]


def test_nothing_or_an_unknown_job_releasing_frees_nothing():
    state, *_ = full_node()
    assert schedule(state, T0 + 1, backfill=False, releasing=()) == []
    assert schedule(state, T0 + 1, backfill=False, releasing={12345}) == []


def test_a_pass_deciding_starts_lists_no_more_tasks_than_cpus_are_free():
    """The leader's pass over a large pending array looks at as many tasks as can start
    (each takes a CPU); a read's pass still sees the whole record for its reason."""
    from spurcore.scheduler import _ready_tasks, pending_reasons

    state = configured(ONE_NODE)
    array = submit(state, array="0-999", time_limit=5)
    record = state.jobs[array]
    assert _ready_tasks(state, record, T0 + 1, 2)[0] == [0, 1]
    assert len(_ready_tasks(state, record, T0 + 1)[0]) == 1000
    assert [s.array_task_id for s in schedule(state, T0 + 1, backfill=False)] == [0, 1]
    assert len(run_pass(state, T0 + 1)) == 2
    assert schedule(state, T0 + 1, backfill=False) == []
    assert pending_reasons(state, T0 + 1)[array] == "Resources"
