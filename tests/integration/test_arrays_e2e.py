"""Job arrays on a real cluster (replica, agent, jobs): each task runs once with Slurm's
array variables and %A/%a file names, the throttle holds, and tasks are addressed as
``A_T`` for control (Slurm 25.11 doc/html/job_array.shtml)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from spurio.client import Client
from spurio.rpc import RpcError
from tests.integration.conftest import wait_for

FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "DEADLINE"}


def submit(client: Client, script: str, cwd: Path, **spec) -> int:
    body = {"name": "arr", "script": script, "cwd": str(cwd), **spec}
    return client.call("submit", {"request_id": f"t-{time.monotonic_ns()}", "spec": body})["job_id"]


def records(client: Client, ref: str) -> list[dict]:
    return client.call("jobs", {"job_refs": [ref]})["jobs"]


def all_finished(client: Client, ref: str) -> list[dict] | None:
    recs = records(client, ref)
    return recs if recs and all(r["base_state"] in FINISHED and r["state"] != "COMPLETING" for r in recs) else None


def test_array_tasks_run_once_with_slurm_variables_and_file_names(make_cluster, tmp_path):
    cluster = make_cluster(replicas=1, nodes=1, cpus=2)
    script = (
        "#!/bin/sh\n"
        'echo "$SLURM_JOB_ID $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT '
        '$SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX $SLURM_ARRAY_TASK_STEP"\n'
        'if [ "$SLURM_ARRAY_TASK_ID" = 4 ]; then exit 3; fi\n'
    )
    with Client(cluster.config, retry_for=30) as client:
        array_id = submit(client, script, tmp_path, array="0-8:2%2", stdout="out-%A_%a.txt")
        recs = wait_for(lambda: all_finished(client, str(array_id)), 60, "every task finished")
        assert len(recs) == 5
        by_task = {r["array_task_id"]: r for r in recs}
        assert sorted(by_task) == [0, 2, 4, 6, 8]
        assert by_task[8]["job_id"] == array_id  # the first record runs last, as the last task
        assert {r["array_job_id"] for r in recs} == {array_id}
        assert by_task[4]["base_state"] == "FAILED" and by_task[4]["exit_code"] == 3 << 8
        assert all(r["base_state"] == "COMPLETED" for t, r in by_task.items() if t != 4)
        # one line per task, with Slurm's variables
        for task, rec in by_task.items():
            text = (tmp_path / f"out-{array_id}_{task}.txt").read_text()
            assert text == f"{rec['job_id']} {array_id} {task} 5 0 8 2\n"
        # never more than 2 at once (start/end times of the tasks)
        spans = sorted((r["start_time"], r["end_time"]) for r in recs)
        for start, _ in spans:
            assert sum(1 for s, e in spans if s <= start < e) <= 2
        # a task by its A_T name
        assert [r["job_id"] for r in records(client, f"{array_id}_4")] == [by_task[4]["job_id"]]


def test_pending_tasks_cancelled_alone_and_whole(make_cluster, tmp_path):
    cluster = make_cluster(replicas=1, nodes=1, cpus=1)
    with Client(cluster.config, retry_for=30) as client:
        array_id = submit(client, "#!/bin/sh\nsleep 30\n", tmp_path, array="1-5")
        running = wait_for(lambda: [r for r in records(client, str(array_id)) if r["state"] == "RUNNING"], 30,
                           "a task running")
        assert [r["array_task_id"] for r in running] == [1]
        # task 3 is pending: it is split off and cancelled alone
        client.call("signal", {"job_ref": f"{array_id}_3", "kind": 1, "request_id": "c3"})
        recs = records(client, str(array_id))
        pending = [r for r in recs if r["array_task_id"] is None]
        assert pending and pending[0]["array_pending"] == [[2, 2, 1], [4, 5, 1]]
        cancelled = [r for r in recs if r["array_task_id"] == 3]
        assert cancelled[0]["base_state"] == "CANCELLED"
        with pytest.raises(RpcError) as err:
            client.call("signal", {"job_ref": f"{array_id}_9", "kind": 1, "request_id": "c9"})
        assert err.value.message == "Invalid job id specified"
        # the whole array: the running task and the pending record
        client.call("signal", {"job_ref": str(array_id), "kind": 1, "request_id": "call"})
        recs = wait_for(lambda: all_finished(client, str(array_id)), 30, "the array cancelled")
        assert {r["base_state"] for r in recs} == {"CANCELLED"}


def test_array_throttle_update_and_max_array_size(make_cluster, tmp_path):
    cluster = make_cluster(replicas=1, nodes=1, cpus=4)
    with Client(cluster.config, retry_for=30) as client:
        with pytest.raises(RpcError) as err:
            submit(client, "#!/bin/sh\ntrue\n", tmp_path, array="0-1001")  # MaxArraySize 1001
        assert err.value.message == "Invalid job array specification"
        array_id = submit(client, "#!/bin/sh\nsleep 30\n", tmp_path, array="0-5%1")
        wait_for(lambda: sum(r["state"] == "RUNNING" for r in records(client, str(array_id))) == 1, 30,
                 "one task running")
        pending = [r for r in records(client, str(array_id)) if r["array_task_id"] is None][0]
        assert pending["reason"] == "JobArrayTaskLimit" and pending["array_max_tasks"] == 1
        client.call("update_job", {"job_ref": str(array_id), "changes": {"ArrayTaskThrottle": 3}})
        wait_for(lambda: sum(r["state"] == "RUNNING" for r in records(client, str(array_id))) == 3, 30,
                 "three tasks running")
        client.call("signal", {"job_ref": str(array_id), "kind": 1, "request_id": "c"})
        wait_for(lambda: all_finished(client, str(array_id)), 30, f"the array cancelled: {records(client, str(array_id))}")


def test_each_task_starts_in_the_round_that_ends_the_one_before(make_cluster, tmp_path):
    """One replicated round per task on a full node: the report that ends a task and the
    start of the next one are one log entry (the leader schedules behind the report)."""
    from spurcore.codec import decode_batch
    from spurctld.wal import Wal

    cluster = make_cluster(replicas=1, nodes=1, cpus=1)
    with Client(cluster.config, retry_for=30) as client:
        array_id = submit(client, "#!/bin/sh\ntrue\n", tmp_path, array="0-5", stdout="/dev/null")
        recs = wait_for(lambda: all_finished(client, str(array_id)), 60, "every task finished")
        assert sorted(r["array_task_id"] for r in recs) == [0, 1, 2, 3, 4, 5]
        assert all(r["base_state"] == "COMPLETED" for r in recs)
    cluster.down()
    entries = []
    with Wal(cluster.dir / "state" / "ctld-1" / "wal") as wal:
        for _, blob in wal.iter_records(0):
            entries.append([type(op).__name__ for op in decode_batch(blob)])
    behind = [names for names in entries if names[:2] == ["JobNodeComplete", "JobStart"]]
    assert len(behind) == 5, entries  # tasks 1-5, each behind the end of the task before it
    assert sum(names.count("JobStart") for names in entries) == 6
