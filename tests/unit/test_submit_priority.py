"""sbatch --priority at the controller (spurctld.jobrpc.with_priority) and in the reducer:
Slurm's validate_job_create_req and _job_create. An operator's value fixes the job's
priority (its array's tasks too), 0 holds the job, other users' values are ignored, and a
client cannot smuggle in the fixed priority itself."""

from __future__ import annotations

import types

from spurcore.model import ClusterState
from spurcore.ops import ArrayTasksSplit, HoldKind, JobSpec, JobSubmitted, NodeRegistered
from spurcore.priority import job_priority
from spurcore.reduce import FIXED_PRIORITY, apply
from spurctld.identity import Identity
from spurctld.jobrpc import JobMethods, submit_priority, with_priority


def spec(**options: str) -> JobSpec:
    return JobSpec("j", "alice", 1000, 1000, "#!/bin/sh\n", (), {}, "/tmp", options=options)


def submitted(s: JobSpec) -> tuple[ClusterState, int]:
    state = ClusterState()
    apply(state, NodeRegistered("n1", 4, 1000, "unix:/x", 1.0))
    job_id = apply(state, JobSubmitted("r", s, 2.0))
    assert isinstance(job_id, int)
    return state, job_id


def test_values_as_sbatch_sends_them() -> None:
    assert [submit_priority(spec(priority=v)) for v in ("1234", "TOP", "top", "0", "x")] == [
        1234, 0xFFFFFFFD, 0xFFFFFFFD, 0, None]
    assert submit_priority(spec()) is None


def test_an_operators_priority_is_fixed_and_a_users_ignored() -> None:
    state, job_id = submitted(with_priority(spec(priority="1234"), operator=True))
    assert state.jobs[job_id].priority_set == 1234 and job_priority(state, state.jobs[job_id], 3.0) == 1234
    state, job_id = submitted(with_priority(spec(priority="1234"), operator=False))
    assert state.jobs[job_id].priority_set == -1 and FIXED_PRIORITY not in state.jobs[job_id].spec.options


def test_priority_0_holds_the_job_for_anyone() -> None:
    for operator in (True, False):
        state, job_id = submitted(with_priority(spec(priority="0"), operator=operator))
        assert state.jobs[job_id].hold == HoldKind.USER and job_id not in state.runnable


def test_the_tasks_of_an_array_keep_the_fixed_priority() -> None:
    s = with_priority(JobSpec("j", "alice", 1000, 1000, "#!/bin/sh\n", (), {}, "/tmp", array="0-3",
                              options={"priority": "77"}), operator=True)
    state, job_id = submitted(s)
    apply(state, ArrayTasksSplit(job_id, (1, 2), 3.0))
    tasks = [j for j in state.jobs.values() if j.array_job_id == job_id]
    assert len(tasks) == 3 and {j.priority_set for j in tasks} == {77}


def test_a_client_cannot_send_the_fixed_priority() -> None:
    methods = types.SimpleNamespace()
    raw = {"name": "j", "script": "#!/bin/sh\n", "options": {FIXED_PRIORITY: "99999", "comment": "x"}}
    s = JobMethods._spec_from(methods, Identity("alice", 1000, "user"), raw)  # type: ignore[arg-type]
    assert s.options == {"comment": "x"}
    state, job_id = submitted(s)
    assert state.jobs[job_id].priority_set == -1
