"""spurcore.render.scontrol: ``scontrol show job`` / ``show node`` text (Slurm 25.11).

Each test names the Slurm behaviour it pins: "ref N" is a section of
shared/reference/slurm-behaviour.md; source files are Slurm's at tag slurm-25-11-7-1.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from spurcore.model import ClusterState
from spurcore.ops import (
    ActionAcked,
    ActionKind,
    ActionRequested,
    JobNodeComplete,
    JobSpec,
    JobStart,
    JobStepComplete,
    JobSubmitted,
    NodeDown,
    NodeRegistered,
    StepCreated,
)
from spurcore.reduce import Rejected, apply
from spurcore.render.scontrol import show_job, show_jobs, show_node
from spurcore.views import job_info, node_info

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "render"


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/render/<name>; SPUR_UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN / name
    if os.environ.get("SPUR_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


pytestmark = pytest.mark.usefixtures("utc")  # tests/unit/conftest.py


T0 = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()  # 2025-05-01T12:00:00


def ok(state: ClusterState, op: Any) -> Any:
    result = apply(state, op)
    assert not isinstance(result, Rejected), result
    return result


def spec(**kw: Any) -> JobSpec:
    base: dict[str, Any] = dict(
        name="job.sh",
        user="alice",
        uid=1000,
        gid=1000,
        script="#!/bin/sh\n",
        argv=("job.sh",),
        env={},
        cwd="/home/alice",
        time_limit=3600,
        mem_mb=1000,
        account="acct1",
        command="/home/alice/job.sh",
        submit_line="sbatch job.sh",
        alloc_node="login1",
        alloc_sid=4242,
    )
    base.update(kw)
    return JobSpec(**base)


def cluster(first_job_id: int = 1234) -> ClusterState:
    state = ClusterState(next_job_id=first_job_id)
    ok(state, NodeRegistered("node01", 4, 8000, "10.0.0.1:6818", T0 - 100))
    ok(state, NodeRegistered("node02", 4, 8000, "10.0.0.2:6818", T0 - 100))
    return state


def finished_job(exit_code: int = 3, signal: int = 0) -> dict[str, Any]:
    """Ref 3's example: a batch job on node01 that ran 12:00:01-12:00:06."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(), T0))
    ok(state, JobStart(job_id, ("node01",), 1, 1000, T0 + 1))
    ok(state, JobNodeComplete(job_id, "node01", exit_code, signal, False, T0 + 6))
    info = job_info(state.jobs[job_id], state, T0 + 60)
    info["group"] = "alice"
    return info


def test_finished_job_detail_matches_reference_layout() -> None:
    """Ref 3 example (finished batch job, ``scontrol -d show job``): line order, 3-space
    continuation lines, DerivedExitCode after the ExitCode line, blank line after the record.
    25.11 (info_job.c at slurm-25-11-7-1) has no ``Exclusive=`` on the OverSubscribe line."""
    text = show_job(finished_job(), detail=True, now=T0 + 60)
    check_golden("scontrol_show_job_finished_detail.txt", text)
    assert text.endswith("StdOut=/home/alice/slurm-1234.out\n\n")
    assert "\n   DerivedExitCode=0:0\n   RunTime=00:00:05 " in text
    assert "OverSubscribe=OK Contiguous=0 Licenses=(null) LicensesAlloc=(null) Network=(null)" in text


def test_finished_job_without_detail_has_no_derived_exit_code() -> None:
    """Ref 1.3: DerivedExitCode only with -d."""
    text = show_job(finished_job(), now=T0 + 60)
    assert "DerivedExitCode" not in text
    assert "ExitCode=3:0\n   RunTime=00:00:05 TimeLimit=01:00:00 TimeMin=N/A\n" in text


def test_oneliner() -> None:
    """Ref 3: -o joins the fields with single spaces and ends with one newline (test2.10)."""
    text = show_job(finished_job(), detail=True, oneliner=True, now=T0 + 60)
    check_golden("scontrol_show_job_finished_oneliner.txt", text)
    assert text.count("\n") == 1 and text.endswith("\n") and "  " not in text
    assert text == " ".join(show_job(finished_job(), detail=True, now=T0 + 60).split("\n   ")).rstrip() + "\n"


def test_oneliner_parses_with_the_testsuite_regex() -> None:
    """Ref 3: atf.get_jobs splits ``scontrol -d -o show job`` with a key=value regex."""
    text = show_job(finished_job(0, 11), detail=True, oneliner=True, now=T0 + 60)
    pairs = dict(re.findall(r" *([^ =]+)=(.*?)(?= +[^ =]+=| *$)", text.strip()))
    assert pairs["JobState"] == "FAILED"
    assert pairs["Reason"] == "RaisedSignal:11(Segmentation_fault)"
    assert pairs["ExitCode"] == "0:11"
    assert pairs["DerivedExitCode"] == "0:0"
    assert pairs["Dependency"] == "(null)"


def test_raised_signal_reason_has_underscores() -> None:
    """Ref 2.3: scontrol replaces whitespace in state_desc with '_' (squeue does not)."""
    text = show_job(finished_job(0, 11), now=T0 + 60)
    assert "\n   JobState=FAILED Reason=RaisedSignal:11(Segmentation_fault) Dependency=(null)\n" in text
    assert "ExitCode=0:11\n" in text


def test_pending_job() -> None:
    """Ref 3 "For a pending job": NodeList=(null), StartTime/EndTime=Unknown, RunTime 0,
    AllocTRES=(null), no BatchHost line; a held job has EligibleTime/AccrueTime Unknown
    (job_mgr.c job_independent leaves begin_time 0 while priority is 0)."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(hold=True, time_limit=None), T0))
    info = job_info(state.jobs[job_id], state, T0 + 30)
    text = show_job(info, now=T0 + 30)
    check_golden("scontrol_show_job_pending_held.txt", text)
    assert "JobState=PENDING Reason=JobHeldUser Dependency=(null)" in text
    assert "Priority=0 " in text
    assert "RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A" in text
    assert "EligibleTime=Unknown\n   AccrueTime=Unknown\n" in text
    assert "StartTime=Unknown EndTime=Unknown Deadline=N/A" in text
    assert "\n   NodeList=(null)\n   NumNodes=1 " in text
    assert "BatchHost" not in text
    assert "\n   AllocTRES=(null)\n" in text
    assert "LastSchedEval=2025-05-01T12:00:00 " in text


def test_running_unlimited_job_end_time_unknown_and_run_time_from_now() -> None:
    """Ref 3 RunTime rules: (now - start) while running; EndTime of an infinite-limit running
    job prints Unknown."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(time_limit=None), T0))
    ok(state, JobStart(job_id, ("node01",), 1, 1000, T0 + 1))
    info = job_info(state.jobs[job_id], state, T0 + 3724)
    text = show_job(info, now=T0 + 3724)
    assert "RunTime=01:02:03 TimeLimit=UNLIMITED TimeMin=N/A" in text
    assert "StartTime=2025-05-01T12:00:01 EndTime=Unknown Deadline=N/A" in text
    assert "JobState=RUNNING Reason=None Dependency=(null)" in text
    assert "ExitCode=0:0" in text  # no status yet


def test_cancelled_running_job_completing_then_cancelled() -> None:
    """Ref 1.4 / DESIGN 3: scancel of a running batch job shows JobState=COMPLETING, then
    CANCELLED with ExitCode=0:15 once the shell's status arrives."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(), T0))
    ok(state, JobStart(job_id, ("node01",), 1, 1000, T0 + 1))
    action = ok(state, ActionRequested("c1", job_id, -1, ActionKind.KILL, 9, 0, 1000, T0 + 10))
    text = show_job(job_info(state.jobs[job_id], state, T0 + 11), now=T0 + 11)
    assert "JobState=COMPLETING Reason=None Dependency=(null)" in text
    ok(state, JobNodeComplete(job_id, "node01", 0, 15, False, T0 + 11))
    ok(state, ActionAcked(action, "node01", 0, 0, T0 + 12))
    text = show_job(job_info(state.jobs[job_id], state, T0 + 20), now=T0 + 20)
    assert "JobState=CANCELLED Reason=None Dependency=(null)" in text
    assert "ExitCode=0:15\n" in text
    assert "RunTime=00:00:09 " in text
    assert "EndTime=2025-05-01T12:00:10 " in text


def test_node_fail_has_failed_node_and_exit_0_1() -> None:
    """Ref 1.4: NODE_FAIL / NodeDown / 0:1, and a ``FailedNode=`` field after the Reason."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(), T0))
    ok(state, JobStart(job_id, ("node01",), 1, 1000, T0 + 1))
    ok(state, NodeDown("node01", "Not responding", T0 + 30))
    text = show_job(job_info(state.jobs[job_id], state, T0 + 40), now=T0 + 40)
    assert "\n   JobState=NODE_FAIL Reason=NodeDown FailedNode=node01 Dependency=(null)\n" in text
    assert "ExitCode=0:1\n" in text


def test_derived_exit_code_test7_13() -> None:
    """Ref 7.A (test7.13): ``srun exit0; srun exit123; exit 0`` -> ExitCode=0:0,
    DerivedExitCode=123:0 with -d."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(), T0))
    ok(state, JobStart(job_id, ("node01",), 1, 1000, T0 + 1))
    for i, code in enumerate((0, 123)):
        step = ok(state, StepCreated(f"s{i}", job_id, "prog", ("prog",), 1, "node01", 1000, T0 + 2 + i))
        ok(state, JobStepComplete(job_id, step, "node01", code, 0, False, T0 + 2.5 + i))
    ok(state, JobNodeComplete(job_id, "node01", 0, 0, False, T0 + 5))
    text = show_job(job_info(state.jobs[job_id], state, T0 + 9), detail=True, now=T0 + 9)
    assert "JobState=COMPLETED Reason=None " in text
    assert "ExitCode=0:0\n   DerivedExitCode=123:0\n" in text


def test_group_falls_back_to_gid_and_null_account() -> None:
    """Ref 3: a NULL string prints (null); gid_to_string gives the number for an unknown group."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(account="", gid=4321, submit_line=""), T0))
    text = show_job(job_info(state.jobs[job_id], state, T0), now=T0)
    assert "UserId=alice(1000) GroupId=4321(4321) MCS_label=N/A" in text
    assert "Account=(null) QOS=normal" in text
    assert "SubmitLine=(null)" in text


def test_non_batch_job_has_no_stdio_lines_but_a_batch_host() -> None:
    """info_job.c: StdErr/StdIn/StdOut only when batch_flag; BatchHost whenever set
    (node_scheduler.c pick_batch_host runs for every allocation)."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(script=None, command="hostname", mem_mb=0), T0))
    ok(state, JobStart(job_id, ("node02",), 1, 0, T0 + 1))
    text = show_job(job_info(state.jobs[job_id], state, T0 + 2), now=T0 + 2)
    assert "BatchFlag=0 " in text
    assert "\n   BatchHost=node02\n" in text
    assert "StdOut" not in text and "StdErr" not in text
    assert text.endswith("WorkDir=/home/alice\n\n")
    assert "ReqTRES=cpu=1,node=1,billing=1" in text  # zero memory is left out


def test_requeued_job_counts_batch_flag() -> None:
    """Ref 6 (scontrol requeue): Restarts++ and BatchFlag++."""
    info = finished_job()
    info.update(restarts=1, state="PENDING", base_state="PENDING", nodes="", batch_host="")
    text = show_job(info, now=T0 + 60)
    assert "Requeue=1 Restarts=1 BatchFlag=2 Reboot=0 " in text


def test_show_jobs_concatenates_records() -> None:
    """Ref 3: records are separated by a blank line."""
    a, b = finished_job(), finished_job(0, 9)
    text = show_jobs([a, b], now=T0 + 60)
    assert text == show_job(a, now=T0 + 60) + show_job(b, now=T0 + 60)
    assert text.count("\n\nJobId=") == 1


# ---------------------------------------------------------------------------------------------
# show node


def node(state: ClusterState, name: str = "node01") -> dict[str, Any]:
    return node_info(state, name)


def test_show_node_idle() -> None:
    """node_info.c slurm_sprint_node_table (25.11): trailing spaces after CoresPerSocket=,
    OS= and Partitions= are Slurm's; CPUs=4 alone gives Sockets=4 (read_config.c)."""
    state = cluster()
    text = show_node(node(state))
    check_golden("scontrol_show_node_idle.txt", text)
    assert text.startswith(
        "NodeName=node01 Arch=x86_64 CoresPerSocket=1 \n   CPUAlloc=0 CPUEfctv=4 CPUTot=4 "
    )
    assert "\n   State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A\n" in text
    assert "\n   AllocTRES=\n   CurrentWatts=0 AveWatts=0\n\n" in text


def test_show_node_mixed_and_down_with_reason() -> None:
    """State=MIXED with AllocTRES; a down node gets a Reason=... [user@time] line."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(ntasks=2), T0))
    ok(state, JobStart(job_id, ("node01",), 2, 1000, T0 + 1))
    text = show_node(node(state))
    assert "CPUAlloc=2 CPUEfctv=4 CPUTot=4 CPULoad=0.00" in text
    assert "RealMemory=8000 AllocMem=1000 FreeMem=N/A Sockets=4 Boards=1" in text
    assert "State=MIXED " in text
    assert "\n   AllocTRES=cpu=2,mem=1000M\n" in text
    ok(state, NodeDown("node02", "Not responding", T0 + 5))
    down = show_node(node(state, "node02"))
    check_golden("scontrol_show_node_down.txt", down)
    assert down.endswith("CurrentWatts=0 AveWatts=0\n   Reason=Not responding [root@2025-05-01T12:00:05]\n\n")
    one = show_node(node(state, "node02"), oneliner=True)
    assert one.count("\n") == 1 and "State=DOWN " in one
