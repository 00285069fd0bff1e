"""Slurm 25.11 exit-code semantics through the reducer (reference/slurm-behaviour.md 1.2-1.4)."""

from __future__ import annotations

import pytest

from spurcore import exitcodes
from spurcore.model import ClusterState
from spurcore.ops import (
    ActionAcked,
    ActionKind,
    ActionRequested,
    JobCancelled,
    JobNodeComplete,
    JobSpec,
    JobStart,
    JobStepComplete,
    JobSubmitted,
    JobTimeLimitReached,
    NodeDown,
    NodeRegistered,
    StepCreated,
)
from spurcore.reduce import (
    TRANSITIONS,
    Event,
    InvalidTransition,
    Rejected,
    apply,
    check_transition,
)
from spurcore.views import job_info

SPEC = JobSpec("job.sh", "alice", 1000, 100, "#!/bin/bash\n", (), {}, "/home/alice")


def running(nodes: tuple[str, ...] = ("n1",)) -> tuple[ClusterState, int]:
    state = ClusterState()
    for n in nodes:
        apply(state, NodeRegistered(n, 2, 1000, "", 0.0))
    job_id = apply(state, JobSubmitted("r", SPEC, 10.0))
    assert apply(state, JobStart(job_id, nodes, 1, 0, 11.0)) is None
    return state, job_id


def finish(state: ClusterState, job_id: int, code: int = 0, sig: int = 0, oom: bool = False) -> dict:
    apply(state, JobNodeComplete(job_id, "n1", code, sig, oom, 20.0))
    return job_info(state.jobs[job_id], state, 30.0)


def step(state: ClusterState, job_id: int, code: int, sig: int = 0, oom: bool = False) -> int:
    step_id = apply(state, StepCreated("", job_id, "prog", ("prog",), 1, "", 1000, 12.0))
    apply(state, JobStepComplete(job_id, step_id, "n1", code, sig, oom, 13.0))
    return step_id


@pytest.mark.parametrize(
    ("code", "sig", "state_name", "reason", "shown"),
    [
        (0, 0, "COMPLETED", "None", "0:0"),  # 1.4: script exit 0
        (33, 0, "FAILED", "NonZeroExitCode", "33:0"),  # 1.4: script exit 33
        (13, 0, "FAILED", "NonZeroExitCode", "13:0"),
        (200, 0, "FAILED", "NonZeroExitCode", "200:0"),
        (137, 0, "FAILED", "NonZeroExitCode", "137:0"),  # a child killed by 9: exit 137, not a signal
        (139, 0, "FAILED", "NonZeroExitCode", "139:0"),  # 2.3: child segfault seen by the shell
        (0, 9, "FAILED", "RaisedSignal:9(Killed)", "0:9"),  # 1.4 + test1.55: the shell itself killed
        (0, 2, "FAILED", "RaisedSignal:2(Interrupt)", "0:2"),
        (0, 15, "FAILED", "RaisedSignal:15(Terminated)", "0:15"),
        (0, 11, "FAILED", "RaisedSignal:11(Segmentation fault)", "0:11"),  # squeue keeps the space
    ],
)
def test_batch_script_status_decides_state_and_reason(code, sig, state_name, reason, shown):
    state, job_id = running()
    info = finish(state, job_id, code, sig)
    assert (info["state"], info["reason"], exitcodes.fmt_exit(info["exit_code"])) == (state_name, reason, shown)


def test_scontrol_replaces_whitespace_in_raised_signal():
    """2.3: scontrol prints RaisedSignal:11(Segmentation_fault)."""
    assert exitcodes.scontrol_reason("RaisedSignal:11(Segmentation fault)") == "RaisedSignal:11(Segmentation_fault)"
    assert exitcodes.scontrol_reason(exitcodes.raised_signal_desc(10)) == "RaisedSignal:10(User_defined_signal_1)"


def test_oom_is_out_of_memory_with_0_125():
    """1.4: OOM → OUT_OF_MEMORY / OutOfMemory / 0:125 (SIG_OOM = 253)."""
    state, job_id = running()
    info = finish(state, job_id, 0, 9, oom=True)
    assert (info["state"], info["reason"], exitcodes.fmt_exit(info["exit_code"])) == (
        "OUT_OF_MEMORY", "OutOfMemory", "0:125"
    )


def test_exit_code_comes_from_the_batch_script_only():
    """1.3 / test7.13: srun exit 0, srun exit 123, script exit 0 → ExitCode 0:0, Derived 123:0."""
    state, job_id = running()
    step(state, job_id, 0)
    step(state, job_id, 123)
    info = finish(state, job_id, 0)
    assert exitcodes.fmt_exit(info["exit_code"]) == "0:0"
    assert exitcodes.fmt_exit(info["derived_ec"]) == "123:0"
    assert [exitcodes.fmt_exit(s["exit_code"]) for s in info["steps"]] == ["0:0", "0:0", "123:0"]


def test_script_failure_with_successful_steps():
    """test7.13 part 2: srun ok; srun ok; exit 33 → 33:0 and DerivedExitCode 0:0."""
    state, job_id = running()
    step(state, job_id, 0)
    step(state, job_id, 0)
    info = finish(state, job_id, 33)
    assert (exitcodes.fmt_exit(info["exit_code"]), exitcodes.fmt_exit(info["derived_ec"])) == ("33:0", "0:0")


@pytest.mark.parametrize(
    ("steps", "derived"),
    [
        ([(7, 0), (3, 0), (2, 0)], "7:0"),  # ROCm/spur #274 verified against Slurm 25.11.6
        ([(2, 0), (3, 0), (7, 0)], "7:0"),
        ([(0, 15)], "0:15"),  # 1.3: a step killed by SIGTERM alone gives 0:15
        ([(0, 15), (1, 0)], "1:0"),  # any non-zero exit beats any signal (raw 256 > 15)
        ([(0, 9), (0, 15)], "0:15"),
        ([], "0:0"),  # no steps
    ],
)
def test_derived_exit_code_is_the_max_raw_status(steps, derived):
    state, job_id = running()
    for code, sig in steps:
        step(state, job_id, code, sig)
    info = finish(state, job_id, 0)
    assert exitcodes.fmt_exit(info["derived_ec"]) == derived


def test_oom_step_sets_sig_oom():
    """1.3: an OOM step always sets SIG_OOM (shown 0:125)."""
    state, job_id = running()
    step(state, job_id, 5)
    step(state, job_id, 0, 9, oom=True)
    info = finish(state, job_id, 0)
    assert exitcodes.fmt_exit(info["derived_ec"]) == "0:125"
    assert info["steps"][-1]["state"] == "OUT_OF_MEMORY"


@pytest.mark.parametrize(
    ("code", "sig", "step_state"),
    [(0, 0, "COMPLETED"), (42, 0, "FAILED"), (0, 15, "CANCELLED"), (0, 9, "CANCELLED")],
)
def test_step_states_for_sacct(code, sig, step_state):
    """1.4 (as_mysql_step_complete): signalled → CANCELLED, non-zero → FAILED."""
    state, job_id = running()
    step_id = step(state, job_id, code, sig)
    assert state.jobs[job_id].steps[step_id].state == step_state


def test_cancelled_running_job_is_completing_then_cancelled_with_0_15():
    """1.4 + 9: scancel of a running job → COMPLETING, then CANCELLED with the shell's 0:15."""
    state, job_id = running()
    action_id = apply(state, ActionRequested("c", job_id, -1, ActionKind.KILL, 0, 0, 1000, 15.0))
    info = job_info(state.jobs[job_id], state, 15.0)
    assert info["state"] == "COMPLETING" and info["base_state"] == "CANCELLED"
    assert info["requid"] == 1000
    apply(state, JobNodeComplete(job_id, "n1", 0, 15, False, 16.0))
    apply(state, ActionAcked(action_id, "n1", 0, 0, 16.5))
    info = job_info(state.jobs[job_id], state, 17.0)
    assert (info["state"], exitcodes.fmt_exit(info["exit_code"])) == ("CANCELLED", "0:15")
    assert info["steps"][0]["state"] == "CANCELLED"  # .batch CANCELLED 0:15
    assert info["end_time"] == 15.0  # Slurm records end_time at cancel
    assert state.nodes["n1"].alloc_cpus == 0


def test_cancelled_pending_job_keeps_its_reason_and_0_0():
    """1.4: scancel of a pending job keeps the old reason, 0:0, start=end=now."""
    state = ClusterState()
    apply(state, NodeRegistered("n1", 1, 1000, "", 0.0))
    first = apply(state, JobSubmitted("a", SPEC, 1.0))
    apply(state, JobStart(first, ("n1",), 1, 0, 2.0))
    second = apply(state, JobSubmitted("b", SPEC, 3.0))  # waits for Resources
    apply(state, JobCancelled(second, 1000, 4.0))
    info = job_info(state.jobs[second], state, 5.0)
    assert (info["state"], info["reason"], exitcodes.fmt_exit(info["exit_code"])) == ("CANCELLED", "Resources", "0:0")
    assert info["start_time"] == info["end_time"] == 4.0


def test_time_limit_gives_timeout_and_timelimit():
    state, job_id = running()
    apply(state, JobTimeLimitReached(job_id, 50.0))
    info = job_info(state.jobs[job_id], state, 50.5)
    assert (info["state"], info["reason"]) == ("COMPLETING", "TimeLimit")  # until the node is done
    apply(state, JobNodeComplete(job_id, "n1", 0, 15, False, 51.0))
    action = next(iter(state.actions))
    apply(state, ActionAcked(action, "n1", 0, 0, 52.0))
    info = job_info(state.jobs[job_id], state, 60.0)
    assert (info["state"], info["reason"], exitcodes.fmt_exit(info["exit_code"])) == ("TIMEOUT", "TimeLimit", "0:15")


def test_node_failure_gives_node_fail_0_1_and_failed_node():
    """1.4: NODE_FAIL / NodeDown / 0:1, FailedNode=<node>; the dead node gets a KILL intent."""
    state, job_id = running()
    apply(state, NodeDown("n1", "Not responding", 40.0))
    info = job_info(state.jobs[job_id], state, 41.0)
    assert (info["state"], info["reason"], exitcodes.fmt_exit(info["exit_code"]), info["failed_node"]) == (
        "NODE_FAIL", "NodeDown", "0:1", "n1"
    )
    assert [a.pending for a in state.actions.values()] == [{"n1"}]  # delivered when it comes back


def test_signal_to_pending_job_is_refused_like_slurm():
    """6: a non-KILL signal to a pending job → ESLURM_TRANSITION_STATE_NO_UPDATE."""
    state = ClusterState()
    job_id = apply(state, JobSubmitted("a", SPEC, 1.0))
    result = apply(state, ActionRequested("", job_id, -1, ActionKind.SIGNAL, 10, 0, 0, 2.0))
    assert result == Rejected("transition_state_no_update", "Job can not be altered now, try again later")


def test_unknown_job_is_rejected_with_slurm_words_and_changes_nothing():
    state = ClusterState()
    before = dict(state.jobs)
    result = apply(state, JobCancelled(42, 0, 1.0))
    assert result == Rejected("invalid_job_id", "Invalid job id specified")
    assert state.jobs == before and state.rejected == 1


def test_transition_table_refuses_illegal_transitions():
    """h11-style: an illegal transition raises, and the reducer then changes nothing."""
    for state_name, targets in TRANSITIONS.items():
        for event in Event:
            if event in targets:
                check_transition(state_name, event)
            else:
                with pytest.raises(InvalidTransition):
                    check_transition(state_name, event)
    state, job_id = running()
    finish(state, job_id, 0)
    snapshot = state.jobs[job_id].state
    result = apply(state, JobTimeLimitReached(job_id, 99.0))
    assert isinstance(result, Rejected) and state.jobs[job_id].state == snapshot


def test_wait_status_decoding():
    assert exitcodes.decode_wait_status(3 << 8) == (3, 0)
    assert exitcodes.decode_wait_status(9) == (0, 9)
    assert exitcodes.decode_wait_status(11 | 0x80) == (0, 11)  # core dumped
    assert exitcodes.fmt_exit(None) == ""


def test_failed_dependency_stays_failed_after_the_job_is_purged():
    """2.2: afterok on a failed job → DependencyNeverSatisfied, and it stays so after the
    failed job leaves the hot state (MinJobAge), as Slurm remembers it."""
    from spurcore.ops import JobsPurged
    from spurcore.scheduler import pending_reasons

    state, first = running()
    finish(state, first, 1)
    dependent = apply(state, JobSubmitted("d", attrs_evolve(SPEC, dependency=f"afterok:{first}"), 21.0))
    assert pending_reasons(state, 22.0)[dependent] == "DependencyNeverSatisfied"
    assert apply(state, JobsPurged((first,), 400.0)) == 1
    assert first not in state.jobs
    assert pending_reasons(state, 401.0)[dependent] == "DependencyNeverSatisfied"
    assert job_info(state.jobs[dependent], state, 401.0)["dependency"] == f"afterok:{first}(failed)"


def test_unknown_partition_is_rejected_like_slurm():
    state = ClusterState()
    result = apply(state, JobSubmitted("p", attrs_evolve(SPEC, partition="gpu"), 1.0))
    assert result == Rejected("invalid_partition", "Invalid partition name specified")


def attrs_evolve(spec, **changes):
    import attrs

    return attrs.evolve(spec, **changes)
