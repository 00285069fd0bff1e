"""Job arrays in the pure core: expressions, splitting, throttles, dependencies, updates.

Slurm 25.11 (doc/html/job_array.shtml, src/slurmctld/job_mgr.c): one record while tasks wait;
a task that starts is split off with a new job id; the last task turns the first record
itself into that task; ``%N`` caps the tasks running at once.
"""

from __future__ import annotations

import attrs
import pytest

from spurcore import arrays
from spurcore.model import ClusterState, JobState
from spurcore.ops import (
    ActionKind,
    ActionRequested,
    ArrayTasksSplit,
    JobNodeComplete,
    JobSpec,
    JobsPurged,
    JobSubmitted,
    JobUpdated,
    NodeRegistered,
)
from spurcore.reduce import Rejected, apply
from spurcore.scheduler import pending_reasons, schedule
from spurcore.snapshot import decode_state, encode_state
from spurcore.views import expand_pattern, job_info, output_paths

SPEC = JobSpec("arr", "alice", 1000, 100, "#!/bin/sh\ntrue\n", (), {}, "/home/alice")


def cluster(cpus: int = 8, nodes: int = 1) -> ClusterState:
    state = ClusterState()
    for i in range(nodes):
        apply(state, NodeRegistered(f"n{i + 1}", cpus, 1000, "", 0.0))
    return state


def submit(state: ClusterState, now: float = 1.0, **fields) -> int:
    result = apply(state, JobSubmitted("", attrs.evolve(SPEC, **fields), now))
    assert isinstance(result, int), result
    return result


def run_pass(state: ClusterState, now: float) -> list[int]:
    """One leader pass: propose what the scheduler decides; returns the started job ids."""
    started = []
    for start in schedule(state, now):
        result = apply(state, start)
        assert not isinstance(result, Rejected), result
        started.append(result if start.array_task_id >= 0 else start.job_id)
    return started


def finish(state: ClusterState, job_id: int, code: int = 0, now: float = 5.0) -> None:
    job = state.jobs[job_id]
    assert apply(state, JobNodeComplete(job_id, job.batch_host, code, 0, False, now)) is None


# --- expressions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ranges", "throttle"),
    [
        ("0-99:2%10", [[0, 98, 2]], 10),
        ("1,3,5-7", [[1, 1, 1], [3, 3, 1], [5, 7, 1]], 0),
        ("[1-3]", [[1, 3, 1]], 0),
        ("0-9:3", [[0, 9, 3]], 0),
        ("0-10:3", [[0, 9, 3]], 0),  # the last index is the last one reached by whole steps
        ("5,1-3,2", [[1, 3, 1], [5, 5, 1]], 0),  # a bitmap: sorted, duplicates merged
        ("7%0", [[7, 7, 1]], 0),
    ],
)
def test_array_expressions_parse_as_slurm_does(text, ranges, throttle):
    assert arrays.parse_array(text) == (ranges, throttle)


@pytest.mark.parametrize("text", ["-1", "3-1", "0-5:0", "0-5:-1", "1001", "0-1001", "x", "1-", "", "1x", "1-3:2x"])
def test_array_expressions_slurm_refuses(text):
    with pytest.raises(arrays.ArrayError):
        arrays.parse_array(text)  # MaxArraySize 1001: indexes 0..1000


def test_max_array_size_bounds_the_indexes():
    assert arrays.parse_array("0-9", 10)[0] == [[0, 9, 1]]
    with pytest.raises(arrays.ArrayError):
        arrays.parse_array("0-10", 10)
    with pytest.raises(arrays.ArrayError):
        arrays.parse_array("0", 0)  # MaxArraySize=0 disables arrays


def test_bit_fmt_joins_runs_and_cuts_at_the_limit():
    assert arrays.fmt_bitmap([[1, 3, 1], [4, 6, 1], [8, 8, 1]]) == "1-6,8"
    assert arrays.fmt_bitmap([[0, 6, 2]]) == "0,2,4,6"
    long = arrays.fmt_bitmap([[0, 998, 2]])
    assert len(long) == 63 and long.startswith("0,2,4,6")  # snprintf into 64 bytes
    assert arrays.fmt_bitmap([[0, 998, 2]], 0).endswith("996,998")


def test_ranges_remove_and_compress():
    assert arrays.remove([[0, 10, 2]], 4) == [[0, 2, 2], [6, 10, 2]]
    assert arrays.remove([[0, 10, 2]], 5) == [[0, 10, 2]]
    assert arrays.compress([1, 2, 3, 5, 7, 9, 10]) == [[1, 3, 1], [5, 9, 2], [10, 10, 1]]
    assert arrays.count([[0, 99998, 2]]) == 50000


# --- the record and its tasks --------------------------------------------------------------


def test_pending_array_is_one_small_record():
    state = cluster()
    job_id = submit(state, array="0-99999%10")
    assert list(state.jobs) == [job_id] and state.jobs[job_id].array_pending == [[0, 99999, 1]]
    assert len(encode_state(state)) < 10_000


def test_tasks_split_off_as_they_start_and_the_last_is_the_first_record():
    state = cluster(cpus=2)
    array_id = submit(state, array="1-3")
    first = run_pass(state, 2.0)
    assert first == [2, 3]  # tasks 1 and 2 got new job ids; the record keeps task 3
    assert [(state.jobs[j].array_job_id, state.jobs[j].array_task_id) for j in first] == [(1, 1), (1, 2)]
    record = state.jobs[array_id]
    assert record.state is JobState.PENDING and record.array_pending == [[3, 3, 1]]
    assert pending_reasons(state, 2.0)[array_id] == "Resources"
    finish(state, 2)
    assert run_pass(state, 6.0) == [array_id]
    assert (record.state, record.array_task_id, record.array_pending) == (JobState.RUNNING, 3, [])
    assert state.next_job_id == 4  # the array took ids 1 (task 3), 2 (task 1), 3 (task 2)


def test_throttle_caps_running_tasks_and_gives_the_reason():
    state = cluster(cpus=8)
    array_id = submit(state, array="0-9%3")
    assert len(run_pass(state, 2.0)) == 3
    assert run_pass(state, 3.0) == []
    assert pending_reasons(state, 3.0)[array_id] == "JobArrayTaskLimit"
    finish(state, 2)
    assert len(run_pass(state, 6.0)) == 1
    assert apply(state, JobUpdated(array_id, 1000, False, {"ArrayTaskThrottle": 5}, 7.0)) is None
    assert len(run_pass(state, 7.0)) == 2


def test_throttled_array_does_not_block_the_queue():
    state = cluster(cpus=4)
    array_id = submit(state, array="0-9%1")
    other = submit(state)
    started = run_pass(state, 2.0)
    assert len(started) == 2 and other in started
    assert pending_reasons(state, 2.0)[array_id] == "JobArrayTaskLimit"


def test_output_patterns_of_array_tasks():
    state = cluster()
    submit(state, array="4-5", stdout="out-%A_%a-%j.txt")
    job = state.jobs[run_pass(state, 2.0)[0]]
    assert output_paths(job)[0] == "/home/alice/out-1_4-2.txt"
    default = cluster()
    submit(default, array="4-5")
    assert output_paths(default.jobs[run_pass(default, 2.0)[0]])[0] == "/home/alice/slurm-1_4.out"
    # outside an array: %A is the job id and %a Slurm's NO_VAL
    assert expand_pattern("%A-%a-%%-%5j", 7, "n", "u", "h") == "7-4294967294-%-00007"


def test_info_record_of_an_array():
    state = cluster(cpus=1)
    array_id = submit(state, array="0-6:2%2")
    task = run_pass(state, 2.0)[0]
    rec = job_info(state.jobs[array_id], state, 3.0)
    assert (rec["array_job_id"], rec["array_task_id"], rec["array_pending"], rec["array_max_tasks"]) == (
        1, None, [[2, 6, 2]], 2)
    rec = job_info(state.jobs[task], state, 3.0)
    assert (rec["job_id"], rec["array_job_id"], rec["array_task_id"]) == (2, 1, 0)


def test_cancel_whole_array_keeps_its_pending_tasks_for_display():
    state = cluster(cpus=1)
    array_id = submit(state, array="0-3")
    task = run_pass(state, 2.0)[0]
    apply(state, ActionRequested("", array_id, -1, int(ActionKind.KILL), 0, 0, 1000, 3.0))
    apply(state, ActionRequested("", task, -1, int(ActionKind.KILL), 0, 0, 1000, 3.0))
    record = state.jobs[array_id]
    assert record.state is JobState.CANCELLED and record.array_pending == [[1, 3, 1]]
    assert state.jobs[task].state is JobState.CANCELLED
    assert not state.pending and not state.runnable


def test_split_one_pending_task_to_cancel_it_alone():
    state = cluster(cpus=1)
    array_id = submit(state, array="0-3")
    assert apply(state, ArrayTasksSplit(array_id, (2,), 2.0)) == {2: 2}
    assert apply(state, ArrayTasksSplit(array_id, (2,), 2.5)) == {2: 2}  # idempotent
    assert state.jobs[array_id].array_pending == [[0, 1, 1], [3, 3, 1]]
    assert list(state.pending) == [1, 2] and list(state.runnable) == [1, 2]
    apply(state, ActionRequested("", 2, -1, int(ActionKind.KILL), 0, 0, 1000, 3.0))
    assert state.jobs[2].state is JobState.CANCELLED
    assert isinstance(apply(state, ArrayTasksSplit(array_id, (9,), 4.0)), Rejected)
    started = run_pass(state, 4.0)
    assert [state.jobs[j].array_task_id for j in started] == [0]


def test_held_array_holds_its_tasks_and_release_lets_them_run():
    state = cluster()
    array_id = submit(state, array="0-1", hold=True)
    assert run_pass(state, 2.0) == []
    assert pending_reasons(state, 2.0)[array_id] == "JobHeldUser"


def test_snapshot_round_trips_arrays_and_rebuilds_the_member_index():
    state = cluster(cpus=2)
    array_id = submit(state, array="0-5%2")
    run_pass(state, 2.0)
    restored = decode_state(encode_state(state))
    assert restored == state
    assert restored.array_members == {array_id: {1: None, 2: None, 3: None}}


# --- dependencies --------------------------------------------------------------------------


def test_afterok_on_an_array_waits_for_every_task_and_fails_on_one_failure():
    state = cluster(cpus=8)
    array_id = submit(state, array="0-2")
    dep = submit(state, dependency=f"afterok:{array_id}")
    tasks = run_pass(state, 2.0)
    assert len(tasks) == 3
    assert pending_reasons(state, 2.0)[dep] == "Dependency"
    assert job_info(state.jobs[dep], state, 2.0)["dependency"] == f"afterok:{array_id}_*(unfulfilled)"
    finish(state, tasks[0])
    finish(state, tasks[1], code=1)
    assert pending_reasons(state, 6.0)[dep] == "Dependency"  # one task still runs
    finish(state, tasks[2])
    assert pending_reasons(state, 7.0)[dep] == "DependencyNeverSatisfied"


def test_afterok_on_an_array_survives_the_purge_of_its_tasks():
    state = cluster(cpus=8)
    array_id = submit(state, array="0-1")
    tasks = run_pass(state, 2.0)
    finish(state, tasks[0], code=3)
    assert apply(state, JobsPurged((tasks[0],), 10.0)) == 1  # the failed task leaves first
    dep = submit(state, dependency=f"afterok:{array_id}", now=11.0)
    finish(state, tasks[1])
    assert pending_reasons(state, 12.0)[dep] == "DependencyNeverSatisfied"
    apply(state, JobsPurged((tasks[1],), 13.0))  # the whole array is gone now
    assert array_id not in state.array_members and array_id not in state.array_purged
    assert pending_reasons(state, 14.0)[dep] == "DependencyNeverSatisfied"


def test_aftercorr_runs_each_task_after_its_counterpart():
    state = cluster(cpus=8)
    first = submit(state, array="0-2")
    second = submit(state, array="0-2", dependency=f"aftercorr:{first}")
    tasks = run_pass(state, 2.0)
    assert [state.jobs[t].array_job_id for t in tasks] == [first] * 3
    by_index = {state.jobs[t].array_task_id: t for t in tasks}
    finish(state, by_index[1])
    started = run_pass(state, 6.0)
    assert [(state.jobs[j].array_job_id, state.jobs[j].array_task_id) for j in started] == [(second, 1)]
    finish(state, by_index[0], code=1)
    assert run_pass(state, 7.0) == []
    assert pending_reasons(state, 7.0)[second] == "Dependency"  # task 2's counterpart still runs


def test_dependency_on_one_task():
    state = cluster(cpus=8)
    array_id = submit(state, array="0-3%1")
    dep = submit(state, dependency=f"afterany:{array_id}_2")
    run_pass(state, 2.0)
    assert pending_reasons(state, 2.0)[dep] == "Dependency"
    assert job_info(state.jobs[dep], state, 2.0)["dependency"] == f"afterany:{array_id}_2(unfulfilled)"


def test_singleton_waits_for_earlier_jobs_of_the_same_name_and_user():
    state = cluster(cpus=8)
    first = submit(state, name="solo")
    second = submit(state, name="solo", dependency="singleton")
    other_user = submit(state, name="solo", dependency="singleton", uid=1001, user="bob")
    started = run_pass(state, 2.0)
    assert first in started and other_user in started  # another user's job of that name: no wait
    assert second not in started
    assert pending_reasons(state, 2.0)[second] == "Dependency"
    finish(state, first)
    assert second in run_pass(state, 6.0)


def test_after_with_a_delay_counts_minutes_from_the_start():
    state = cluster(cpus=8)
    first = submit(state)
    dep = submit(state, dependency=f"after:{first}+1")
    run_pass(state, 2.0)
    assert pending_reasons(state, 30.0)[dep] == "Dependency"
    assert dep in run_pass(state, 62.5)


# --- updates -------------------------------------------------------------------------------


def test_update_rules():
    state = cluster(cpus=1)
    job_id = submit(state, time_limit=600)
    assert apply(state, JobUpdated(job_id, 1000, False, {"TimeLimit": 300, "Comment": "c"}, 2.0)) is None
    assert (state.jobs[job_id].spec.time_limit, state.jobs[job_id].spec.comment) == (300, "c")
    denied = apply(state, JobUpdated(job_id, 1000, False, {"TimeLimit": 900}, 2.0))
    assert denied == Rejected("access_denied", "Access/permission denied")  # users may only lower it
    assert apply(state, JobUpdated(job_id, 0, True, {"TimeLimit": None}, 2.0)) is None
    assert isinstance(apply(state, JobUpdated(job_id, 0, True, {"Partition": "nope"}, 2.0)), Rejected)
    # all or nothing: a bad field leaves the good one unapplied
    assert isinstance(apply(state, JobUpdated(job_id, 0, True, {"JobName": "x", "Nice": "y"}, 2.0)), Rejected)
    assert state.jobs[job_id].spec.name == "arr"
    run_pass(state, 3.0)
    assert apply(state, JobUpdated(job_id, 0, True, {"Dependency": ""}, 4.0)) == Rejected(
        "not_pending", "Job is no longer pending execution")


# --- requeue -------------------------------------------------------------------------------


def test_requeue_waits_until_the_proposed_begin_time_and_no_requeue_refuses():
    from spurcore.ops import JobRequeued

    state = cluster(cpus=2)
    job_id = submit(state)
    run_pass(state, 2.0)
    assert apply(state, JobRequeued(job_id, 0, False, 3.0, 5.0)) is None
    job = state.jobs[job_id]
    assert (job.state, job.eligible_time, job.restarts) == (JobState.PENDING, 5.0, 1)
    fixed = submit(state, requeue=0)
    run_pass(state, 2.0)
    assert apply(state, JobRequeued(fixed, 0, False, 3.0, 5.0)) == Rejected(
        "disabled", "Requested operation is presently disabled")  # sbatch --no-requeue


# --- node failure: requeue (Slurm's JobRequeue) once fenced ----------------------------------


def test_node_failure_requeues_batch_jobs_only_when_fenced_and_allowed():
    from spurcore.ops import NodeDown

    for fenced, requeue, expect in ((True, -1, JobState.PENDING), (False, -1, JobState.NODE_FAIL),
                                    (True, 0, JobState.NODE_FAIL), (True, 1, JobState.PENDING)):
        state = cluster(cpus=2)
        job_id = submit(state, requeue=requeue)
        run_pass(state, 2.0)
        assert apply(state, NodeDown("n1", "Not responding", 3.0, fenced, True, 5.0)) is None
        job = state.jobs[job_id]
        assert job.state is expect, (fenced, requeue)
        if expect is JobState.PENDING:  # a new run, eligible after the requeue delay
            assert (job.restarts, job.eligible_time, job.reason) == (1, 5.0, "BeginTime")


def test_a_fenced_report_is_a_node_failure_of_that_job():
    state = cluster(cpus=2)
    job_id = submit(state)
    run_pass(state, 2.0)
    apply(state, JobNodeComplete(job_id, "n1", 0, 15, False, 3.0, True, True, 6.0))
    job = state.jobs[job_id]
    assert (job.state, job.restarts, job.eligible_time) == (JobState.PENDING, 1, 6.0)
    assert state.nodes["n1"].up  # the node itself is back; only the job's run failed
