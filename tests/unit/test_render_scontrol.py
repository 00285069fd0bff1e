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
    # info_job.c indents the -d "Nodes=" lines by two more spaces, but not with -o
    multi = show_job(finished_job(), detail=True, now=T0 + 60).replace("\n     Nodes=", "\n   Nodes=")
    assert text == " ".join(multi.split("\n   ")).rstrip() + "\n"


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
    """State=MIXED with AllocTRES; a node that stopped responding is DOWN+NOT_RESPONDING
    (node_state_string_complete) with a Reason=... [user@time] line naming SlurmUser
    (``slurm``) when the controller set it."""
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
    assert down.endswith("CurrentWatts=0 AveWatts=0\n   Reason=Not responding [slurm@2025-05-01T12:00:05]\n\n")
    assert "\n   State=DOWN+NOT_RESPONDING ThreadsPerCore=1 " in down
    one = show_node(node(state, "node02"), oneliner=True)
    assert one.count("\n") == 1 and "State=DOWN+NOT_RESPONDING " in one


# ---------------------------------------------------------------------------------------------
# job arrays, the updatable fields, steps, partitions, config, host lists


def array_records() -> list[dict[str, Any]]:
    """Array 1234 (``--array=0-99%10``): task 0 started as job 1235, tasks 1-99 pending."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(), T0))
    pending = job_info(state.jobs[job_id], state, T0 + 60)
    pending.update(group="alice", array_job_id=1234, array_task_id=None, array_pending=[[1, 99, 1]],
                   array_max_tasks=10, reason="JobArrayTaskLimit")
    other = cluster(1235)
    task_id = ok(other, JobSubmitted("r2", spec(), T0))
    ok(other, JobStart(task_id, ("node01",), 1, 1000, T0 + 1))
    task = job_info(other.jobs[task_id], other, T0 + 60)
    task.update(group="alice", array_job_id=1234, array_task_id=0, array_pending=[], array_max_tasks=10)
    return [pending, task]


def test_array_records_golden() -> None:
    """info_job.c line 1: ``JobId=1234 ArrayJobId=1234 ArrayTaskId=1-99%10
    ArrayTaskThrottle=10 JobName=job.sh`` on the pending record (its task string as
    xlate_array_task_str makes it), ``ArrayTaskId=0`` on a task's own record (its own JobId)."""
    text = show_jobs(array_records(), now=T0 + 60)
    check_golden("scontrol_show_job_array.txt", text)
    assert text.startswith("JobId=1234 ArrayJobId=1234 ArrayTaskId=1-99%10 ArrayTaskThrottle=10 JobName=job.sh\n")
    assert "\n\nJobId=1235 ArrayJobId=1234 ArrayTaskId=0 ArrayTaskThrottle=10 JobName=job.sh\n" in text


def test_array_task_of_pending_record_and_no_throttle() -> None:
    """``show job 1234_7`` prints the pending record with ArrayTaskId=7 (info_job.c sets
    array_task_id and clears array_task_str); without %N there is no ArrayTaskThrottle."""
    pending = {**array_records()[0], "array_task_id": 7, "array_max_tasks": 0}
    assert show_job(pending, now=T0, oneliner=True).startswith(
        "JobId=1234 ArrayJobId=1234 ArrayTaskId=7 JobName=job.sh UserId=")
    plain = show_job(finished_job(), now=T0, oneliner=True)
    assert plain.startswith("JobId=1234 JobName=job.sh ")


def test_updatable_fields_are_shown() -> None:
    """Fields ``scontrol update job`` changes are where info_job.c prints them: Nice, TimeMin
    (mins2time_str), Deadline, Requeue, ReqNodeList/ExcNodeList, Features, MinMemoryCPU,
    Comment, MailUser/MailType, KillOnInvalidDependent."""
    info = {**finished_job(), "nice": 5, "time_min": 600, "deadline": T0 + 86400, "requeue": 0,
            "req_nodes": "node01", "exc_nodes": "node02", "constraint": "fast", "mem_per_cpu": 2048,
            "comment": "hello", "mail_type": "END,FAIL", "mail_user": "a@b", "kill_on_invalid_dep": 1}
    text = show_job(info, now=T0 + 60)
    assert "   Priority=1 Nice=5 Account=acct1 QOS=normal\n" in text
    assert "TimeMin=00:10:00\n" in text
    assert "Deadline=2025-05-02T12:00:00\n" in text
    assert "   Requeue=0 Restarts=0 " in text
    assert "   ReqNodeList=node01 ExcNodeList=node02\n" in text
    assert "   Features=fast DelayBoot=00:00:00\n" in text
    assert "MinCPUsNode=1 MinMemoryCPU=2G MinTmpDiskNode=0" in text
    assert "   Comment=hello\n" in text
    assert text.endswith("   KillOnInvalidDependent=Yes\n   MailUser=a@b MailType=END,FAIL\n\n")


def test_time_format_applies_to_every_timestamp() -> None:
    """parse_time.c slurm_make_time_str: SLURM_TIME_FORMAT (a strftime format, or
    ``relative``) for every time scontrol prints."""
    text = show_job(finished_job(), now=T0 + 60, time_format="%d/%m %H:%M")
    assert "SubmitTime=01/05 12:00 EligibleTime=01/05 12:00\n" in text
    assert "StartTime=01/05 12:00 EndTime=01/05 12:00 Deadline=N/A" in text
    rel = show_job(finished_job(), now=T0 + 60, time_format="relative")
    assert "SubmitTime=12:00:00 " in rel
    assert "Unknown" not in rel.split("AccrueTime=")[0]


def test_show_step() -> None:
    """info_job.c _sprint_step_info: StepId, UserId, StartTime, TimeLimit; State, Partition,
    NodeList; Nodes, CPUs, Tasks, Name, Network; TRES; ResvPorts; CPUFreqReq; SrunHost:Pid.
    A task's steps are ``<array>_<task>.<step>``."""
    from spurcore.render.scontrol import show_step

    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(), T0))
    ok(state, JobStart(job_id, ("node01",), 1, 1000, T0 + 1))
    ok(state, StepCreated("s", job_id, "hostname", ("hostname",), 1, "node01", 1000, T0 + 2))
    info = job_info(state.jobs[job_id], state, T0 + 60)
    step = next(s for s in info["steps"] if s["step_id"] == 0)
    assert show_step(step, info, now=T0 + 60) == (
        "StepId=1234.0 UserId=1000 StartTime=2025-05-01T12:00:02 TimeLimit=UNLIMITED\n"
        "   State=RUNNING Partition=debug NodeList=node01\n"
        "   Nodes=1 CPUs=1 Tasks=1 Name=hostname Network=(null)\n"
        "   TRES=cpu=1,mem=0,node=1\n"
        "   ResvPorts=(null)\n"
        "   CPUFreqReq=Default Dist=Block\n"
        "   SrunHost:Pid=login1:0\n\n"
    )
    task = {**info, "array_job_id": 1200, "array_task_id": 34}
    assert show_step(step, task, oneliner=True, now=T0).startswith("StepId=1200_34.0 UserId=1000 ")


def test_show_partition_golden() -> None:
    """api/partition_info.c slurm_sprint_partition_info for Spur's partition built from its
    nodes (not trimmed; ``\\n\\n`` after the record)."""
    from spurcore.render.scontrol import partitions_from_nodes, show_partition

    state = cluster()
    nodes = [node_info(state, n) for n in ("node01", "node02")]
    (part,) = partitions_from_nodes(nodes)
    check_golden("scontrol_show_partition.txt", show_partition(part))
    assert show_partition(part, oneliner=True).count("\n") == 1


def test_show_config_layout() -> None:
    """slurm_print_ctl_conf: ``Configuration data as of <time>``, ``%-23s = %s`` in
    slurm_ctl_conf_2_key_pairs' order with Slurm's units, other keys after, then a blank line."""
    from spurcore.render.scontrol import show_config

    text = show_config({"MinJobAge": 300, "ClusterName": "spur", "KillWait": 30, "MaxArraySize": 1001,
                        "SpurThing": "x", "AccountingStorageType": None}, last_update=T0)
    assert text == (
        "Configuration data as of 2025-05-01T12:00:00\n"
        "AccountingStorageType   = (null)\n"
        "ClusterName             = spur\n"
        "KillWait                = 30 sec\n"
        "MaxArraySize            = 1001\n"
        "MinJobAge               = 300 sec\n"
        "SpurThing               = x\n"
        "\n"
    )


def test_hostlist_forms() -> None:
    """info_job.c scontrol_encode_hostlist: ``show hostlist`` keeps the order given
    (hostlist_ranged_string), ``show hostlistsorted`` sorts and merges."""
    from spurcore.render.scontrol import hostlist_ranged

    assert hostlist_ranged(["n3", "n1", "n2"]) == "n[3,1-2]"
    assert hostlist_ranged(["n3", "n1", "n2"], sort=True) == "n[1-3]"
    assert hostlist_ranged(["n1", "n2", "n3", "m1"]) == "n[1-3],m1"
    assert hostlist_ranged(["a", "n01", "n02"]) == "a,n[01-02]"
    assert hostlist_ranged(["n9", "n10"]) == "n[9-10]"


@pytest.mark.parametrize(("kw", "shown"), [
    ({}, "OK"), ({"exclusive": "exclusive"}, "NO"), ({"exclusive": "user"}, "USER"),
    ({"exclusive": "mcs"}, "MCS"), ({"options": {"oversubscribe": True}}, "YES")])
def test_oversubscribe_is_the_job_share_string(kw: dict[str, Any], shown: str) -> None:
    """slurm_job_info.c prints ``OverSubscribe=`` with job_share_string() as squeue's %h does:
    an --exclusive job shows NO (maestrowf reads it), --exclusive=user USER, -s YES."""
    state = cluster()
    job_id = ok(state, JobSubmitted("r1", spec(**kw), T0))
    text = show_job(job_info(state.jobs[job_id], state, T0 + 1), now=T0 + 1)
    assert f" OverSubscribe={shown} Contiguous=0 " in text.replace("\n   ", " ")
