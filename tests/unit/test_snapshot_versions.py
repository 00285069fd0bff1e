"""Snapshots written by earlier versions still load (upcast in spurcore.snapshot only).

If this fails because the snapshot layout changed on purpose, bump SNAPSHOT_VERSION, upcast
the old layout in ``decode_state``, and ADD a golden file; never replace an existing one.
"""

from __future__ import annotations

from pathlib import Path

from spurcore.model import JobState
from spurcore.snapshot import decode_state, encode_state

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def test_version_1_snapshot_loads_with_array_fields_defaulted():
    # Written by the code before job arrays: node1, job 1 RUNNING, job 2 PENDING (afterok:1).
    state = decode_state((GOLDEN / "snapshot-v1.bin").read_bytes())
    assert sorted(state.jobs) == [1, 2]
    running, waiting = state.jobs[1], state.jobs[2]
    assert running.state is JobState.RUNNING and running.nodes == ("node1",)
    assert waiting.spec.dependency == "afterok:1" and list(state.pending) == [2]
    for job in (running, waiting):
        assert (job.array_job_id, job.array_task_id, job.array_pending, job.array_throttle) == (0, -1, [], 0)
        assert job.spec.array == "" and job.spec.requeue == -1 and job.spec.options == {}
    assert state.array_members == {} and state.array_purged == {}
    # and it round-trips in the current version
    assert decode_state(encode_state(state)) == state


def test_version_2_snapshot_loads_with_no_configuration_applied():
    # Written by version-2 code (before steps, partitions, accounting): node1 up, node2 down (Not responding),
    # array 1 (0-3%2) with task 0 running as job 2, job 3 PENDING (afterok:1) in "debug".
    from spurcore.model import partitions_of

    state = decode_state((GOLDEN / "snapshot-v2-arrays.bin").read_bytes())
    assert sorted(state.jobs) == [1, 2, 3]
    task = state.jobs[2]
    assert (task.state, task.array_job_id, task.array_task_id, task.nodes) == (JobState.RUNNING, 1, 0, ("node1",))
    assert (task.partition, task.priority_set, task.gres_alloc) == ("", -1, {})
    assert task.spec.gres == "" and task.spec.cpus_per_gpu == 0 and task.spec.comment == "c"
    node1, node2 = state.nodes["node1"], state.nodes["node2"]
    assert (node1.cpus, node1.alloc_cpus, node1.registered, node1.configured) == (4, 2, True, False)
    assert (node1.reported_cpus, node1.reported_mem, node1.features, node1.gres) == (4, 2000, (), [])
    assert node2.display_state == "DOWN" and node2.reason == "Not responding"
    assert state.partitions == {} and list(partitions_of(state)) == ["debug"]
    assert (state.config_digest, state.accounts, state.assocs, state.usage, state.prio_rev) == ("", {}, {}, {}, 0)
    assert decode_state(encode_state(state)) == state


def test_version_3_snapshot_loads_with_no_configuration_applied():
    # Written by version-3 code (steps, before partitions and accounting): node1 up running
    # job 1 (2 CPUs, partition "debug" in its spec), node2 down, job 2 PENDING.
    from spurcore.model import partitions_of

    state = decode_state((GOLDEN / "snapshot-v3.bin").read_bytes())
    running, waiting = state.jobs[1], state.jobs[2]
    assert running.state is JobState.RUNNING and running.nodes == ("node1",) and running.step_cpus == {}
    assert (running.partition, running.priority_set, running.gres_alloc) == ("", -1, {})
    assert running.partition_list == "debug" and waiting.spec.gpus == "" and list(state.runnable) == [2]
    assert state.nodes["node2"].display_state == "DOWN" and state.nodes["node1"].reported_cpus == 4
    assert state.partitions == {} and list(partitions_of(state)) == ["debug"] and state.config_digest == ""
    assert decode_state(encode_state(state)) == state


def test_version_4_snapshot_loads_and_is_rewritten_in_columns():
    # Written by version-4 code (one field list per job): partitions batch and gpu, user alice
    # in account phys, job 1 RUNNING on n1 with steps 0 (done) and 1, job 2 RUNNING on g1 with
    # GPU 0, job 3 COMPLETED, array 4 (0-5%2) with tasks 2-5 pending and tasks 0 (job 6,
    # RUNNING) and 1 (job 7, COMPLETING: a KILL awaits n2's ACK), job 5 held (afterok:1).
    import msgpack

    data = (GOLDEN / "snapshot-v4.bin").read_bytes()
    assert msgpack.unpackb(data)[1] == 4
    state = decode_state(data)
    assert [(j.job_id, j.display_state) for j in state.jobs.values()] == [
        (1, "RUNNING"), (2, "RUNNING"), (3, "COMPLETED"), (4, "PENDING"), (5, "PENDING"), (6, "RUNNING"),
        (7, "COMPLETING")]
    steps = state.jobs[1].steps
    assert list(steps) == ["batch", 0, 1] and steps[0].state == "COMPLETED" and steps[1].overlap
    assert steps[1].argv == ("sleep", "9") and steps[0].tasks == ((0, 1),) and steps[0].cpus == (2,)
    assert state.jobs[2].gres_alloc == {"g1": {"gpu": [0]}} and state.nodes["g1"].gres_used == {"gpu": [0]}
    assert state.jobs[4].array_pending == [[2, 5, 1]] and state.array_members == {4: {4: None, 6: None, 7: None}}
    assert state.jobs[5].hold and state.jobs[5].spec.dependency == "afterok:1" and list(state.runnable) == [4]
    assert state.jobs[1].unlaunched == {"n1"} and state.jobs[7].undone == {"n2"}
    assert [(a.job_id, a.pending) for a in state.actions.values()] == [(7, {"n2"})]
    assert list(state.partitions) == ["batch", "gpu"] and state.users["alice"].default_account == "phys"
    assert state.assocs["phys|alice|"].limits == {"MaxJobs": 8} and list(state.qos) == ["normal", "high"]
    assert list(state.usage) == ["phys|alice"]
    rewritten = encode_state(state)
    assert msgpack.unpackb(rewritten)[1] == 5
    restored = decode_state(rewritten)
    assert restored == state and encode_state(restored) == rewritten
    assert restored.jobs[6].spec is restored.jobs[4].spec  # equal specs are shared from version 5
