"""spurcore.render.sacct: field table, --format parsing, fixed-width and parsable output.

"ref N" is a section of shared/reference/slurm-behaviour.md; sources are Slurm's
src/sacct/{sacct,options,print}.c and src/common/print_fields.c at tag slurm-25-11-7-1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

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
    NodeRegistered,
    StepCreated,
)
from spurcore.reduce import Rejected, apply
from spurcore.render.sacct import (
    BRIEF_FIELDS,
    DEFAULT_FIELDS,
    LONG_FIELDS,
    FormatError,
    parse_format,
    render,
    to_json,
)
from spurcore.views import job_info

pytestmark = pytest.mark.usefixtures("utc")  # tests/unit/conftest.py


T0 = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def ok(state: ClusterState, op: Any) -> Any:
    result = apply(state, op)
    assert not isinstance(result, Rejected), result
    return result


def started(script_name: str = "job.sh") -> tuple[ClusterState, int]:
    state = ClusterState(next_job_id=123)
    ok(state, NodeRegistered("node01", 4, 8000, "node01:6818", T0 - 60))
    spec = JobSpec(
        name=script_name,
        user="alice",
        uid=1000,
        gid=1000,
        script="#!/bin/sh\n",
        argv=(script_name,),
        env={},
        cwd="/home/alice",
        time_limit=3600,
        account="acct1",
    )
    job_id = ok(state, JobSubmitted("r1", spec, T0))
    ok(state, JobStart(job_id, ("node01",), 1, 0, T0 + 1))
    return state, job_id


def run_steps(state: ClusterState, job_id: int, codes: list[int], script_exit: int) -> dict[str, Any]:
    for i, code in enumerate(codes):
        step = ok(state, StepCreated(f"s{i}", job_id, "prog", ("prog",), 1, "node01", 1000, T0 + 2 + i))
        ok(state, JobStepComplete(job_id, step, "node01", code, 0, False, T0 + 2.5 + i))
    ok(state, JobNodeComplete(job_id, "node01", script_exit, 0, False, T0 + 10))
    return job_info(state.jobs[job_id], state, T0 + 20)


def test_test7_13_exit_and_derived_exit_codes() -> None:
    """Ref 7.A (test7.13) / ref 5: ``sacct -n -P -o JobID,ExitCode,DerivedExitCode`` for
    ``srun ok; srun exit123; exit 0`` gives ``123|0:0|123:0``, ``123.batch|0:0|``,
    ``123.0|0:0|``, ``123.1|123:0|`` (DerivedExitCode empty on step rows, ref 1.3)."""
    state, job_id = started()
    info = run_steps(state, job_id, [0, 123], 0)
    fields = parse_format("JobID,ExitCode,DerivedExitCode")
    text = render([info], fields, parsable2=True, noheader=True)
    assert text == "123|0:0|123:0\n123.batch|0:0|\n123.0|0:0|\n123.1|123:0|\n"


def test_test7_13_script_exit_33() -> None:
    """Ref 7.A part 2: ``srun ok; srun ok; exit 33`` -> ``J|33:0|0:0``, ``J.batch|33:0|``."""
    state, job_id = started()
    info = run_steps(state, job_id, [0, 0], 33)
    text = render([info], "jobid,exitcode,derivedexitcode", parsable2=True, noheader=True)
    assert text == "123|33:0|0:0\n123.batch|33:0|\n123.0|0:0|\n123.1|0:0|\n"


def cancelled_example() -> dict[str, Any]:
    """Ref 5's ``sacct -j 1234`` example after scancel (batch, extern and one srun step)."""
    return {
        "job_id": 1234,
        "name": "job.sh",
        "user": "alice",
        "uid": 1000,
        "gid": 1000,
        "state": "CANCELLED",
        "base_state": "CANCELLED",
        "reason": "None",
        "exit_code": 15,
        "derived_ec": 15,
        "priority": 1,
        "submit_time": T0,
        "eligible_time": T0,
        "start_time": T0 + 1,
        "end_time": T0 + 61,
        "run_time": 60.0,
        "time_limit": None,
        "partition": "debug",
        "account": "acct1",
        "nodes": "node01",
        "node_count": 1,
        "num_cpus": 1,
        "num_tasks": 1,
        "cpus_per_task": 1,
        "mem_mb": 0,
        "requid": 1000,
        "work_dir": "/home/alice",
        "steps": [
            {
                "job_id": 1234,
                "step_id": 0,
                "name": "sleep",
                "state": "CANCELLED",
                "exit_code": 15,
                "start_time": T0 + 2,
                "end_time": T0 + 61,
                "nodes": "node01",
                "node_count": 1,
                "ntasks": 1,
                "cpus": 1,
            },
            {
                "job_id": 1234,
                "step_id": "extern",
                "name": "extern",
                "state": "COMPLETED",
                "exit_code": 0,
                "start_time": T0 + 1,
                "end_time": T0 + 61,
                "nodes": "node01",
                "node_count": 1,
                "ntasks": 1,
                "cpus": 1,
            },
            {
                "job_id": 1234,
                "step_id": "batch",
                "name": "batch",
                "state": "CANCELLED",
                "exit_code": 15,
                "start_time": T0 + 1,
                "end_time": T0 + 61,
                "nodes": "node01",
                "node_count": 1,
                "ntasks": 1,
                "cpus": 1,
            },
        ],
    }


REF_EXAMPLE = (
    "JobID           JobName  Partition    Account  AllocCPUS      State ExitCode \n"
    "------------ ---------- ---------- ---------- ---------- ---------- -------- \n"
    "1234             job.sh      debug      acct1          1 CANCELLED+      0:0 \n"
    "1234.batch        batch                 acct1          1  CANCELLED     0:15 \n"
    "1234.extern      extern                 acct1          1  COMPLETED      0:0 \n"
    "1234.0            sleep                 acct1          1  CANCELLED     0:15 \n"
)


def test_default_fixed_width_matches_reference_example() -> None:
    """Ref 5 example: ``%*.*s `` cells with a trailing space, the dashes line, JobID
    left-justified (-12), ``CANCELLED by 1000`` cut to ``CANCELLED+``, the job row ExitCode 0:0
    (written at cancel time), rows job, batch, extern, then numbered steps."""
    assert render([cancelled_example()]) == REF_EXAMPLE
    assert render([cancelled_example()], DEFAULT_FIELDS) == REF_EXAMPLE


def test_parsable_keeps_trailing_delimiter() -> None:
    """Ref 5: -p joins with | and ends every line (header too) with |; no dashes, no cutting."""
    text = render([cancelled_example()], parsable=True)
    assert text.splitlines() == [
        "JobID|JobName|Partition|Account|AllocCPUS|State|ExitCode|",
        "1234|job.sh|debug|acct1|1|CANCELLED by 1000|0:0|",
        "1234.batch|batch||acct1|1|CANCELLED|0:15|",
        "1234.extern|extern||acct1|1|COMPLETED|0:0|",
        "1234.0|sleep||acct1|1|CANCELLED|0:15|",
    ]


def test_parsable2_and_delimiter() -> None:
    """Ref 5: -P has no trailing delimiter; --delimiter changes the separator."""
    text = render([cancelled_example()], BRIEF_FIELDS, parsable2=True, delimiter=",")
    assert text == (
        "JobID,State,ExitCode\n1234,CANCELLED by 1000,0:0\n1234.batch,CANCELLED,0:15\n"
        "1234.extern,COMPLETED,0:0\n1234.0,CANCELLED,0:15\n"
    )


def test_noheader_and_allocations() -> None:
    """Ref 5: -n drops header and dashes; -X drops the step rows."""
    assert render([cancelled_example()], noheader=True) == REF_EXAMPLE.split("\n", 2)[2]
    assert render([cancelled_example()], allocations=True) == "".join(REF_EXAMPLE.splitlines(True)[:3])


def test_cancelled_by_0_test_105_12() -> None:
    """test_105_12: ``sacct -nP -X -o state%30`` == ``CANCELLED by 0``; the %30 width is not
    used by -P."""
    info = cancelled_example()
    info["requid"] = 0
    assert render([info], parse_format("state%30"), parsable2=True, noheader=True, allocations=True) == (
        "CANCELLED by 0\n"
    )
    assert render([info], "state%30", noheader=True, allocations=True) == f"{'CANCELLED by 0':>30} \n"


def test_widths_and_justification() -> None:
    """options.c: ``name%N`` sets the width, right-justified (even JobID); ``%-N`` left; values
    longer than the width end in ``+``; headers are cut without a marker."""
    info = cancelled_example()
    text = render([info], "jobid%6,jobname%-3,state%-5", allocations=True)
    assert text == " JobID Job State \n------ --- ----- \n  1234 jo+ CANC+ \n"


def test_empty_and_numeric_fields() -> None:
    """print_fields.c: a NULL string and NO_VAL numbers print blank (padded in fixed width,
    empty with -p); numbers and durations are never cut.  User and UID are job-row fields,
    NTasks a step-row field (print.c)."""
    info = cancelled_example()
    text = render([info], "jobid,user,uid,ntasks,elapsed%3", parsable2=True)
    assert text.splitlines() == [
        "JobID|User|UID|NTasks|Elapsed",
        "1234|alice|1000||00:01:00",
        "1234.batch|||1|00:01:00",
        "1234.extern|||1|00:01:00",
        "1234.0|||1|00:00:59",
    ]
    fixed = render([info], "jobid%4,user%3,uid%2,ntasks%2,elapsed%3", noheader=True)
    assert fixed.splitlines()[:2] == ["1234 al+ 1000    00:01:00 ", "123+         1 00:01:00 "]


def test_dates_timelimit_nodelist() -> None:
    """Ref 5: dates as scontrol (Unknown for 0), Timelimit UNLIMITED or [D-]HH:MM:SS on job
    rows only; a pending job's NodeList is ``None assigned`` and its AllocCPUS 0."""
    state = ClusterState(next_job_id=7)
    ok(state, NodeRegistered("node01", 4, 8000, "node01:6818", T0 - 60))
    spec = JobSpec(
        name="w",
        user="bob",
        uid=1001,
        gid=1001,
        script="#!/bin/sh\n",
        argv=("w",),
        env={},
        cwd="/tmp",
        time_limit=90061,
        ntasks=2,
    )
    job_id = ok(state, JobSubmitted("r", spec, T0))
    info = job_info(state.jobs[job_id], state, T0 + 5)
    fields = "jobid,state,alloccpus,nnodes,nodelist,start,end,submit,timelimit,reason"
    assert render([info], fields, parsable2=True, noheader=True) == (
        "7|PENDING|0|1|None assigned|Unknown|Unknown|2025-05-01T12:00:00|1-01:01:01|None\n"
    )
    # print_fields_date: slurm_make_time_str into a buffer of the column's width + 1; a time
    # that does not fit fills it with '#' (parse_time.c), "Unknown" fits.
    fixed = render([info], "submit%10,start%-8", noheader=True)
    assert fixed == "########## Unknown  \n"
    assert render([info], "submit%20", noheader=True) == " 2025-05-01T12:00:00 \n"


def test_cancelled_pending_job() -> None:
    """Ref 1.4: scancel of a pending job -> ``CANCELLED by <uid>`` 0:0, no step rows, start =
    end = cancel time; Reason keeps the pending reason."""
    state = ClusterState(next_job_id=9)
    ok(state, NodeRegistered("node01", 1, 8000, "node01:6818", T0 - 60))
    spec = JobSpec(
        name="w",
        user="bob",
        uid=1001,
        gid=1001,
        script="#!/bin/sh\n",
        argv=("w",),
        env={},
        cwd="/tmp",
        hold=True,
    )
    job_id = ok(state, JobSubmitted("r", spec, T0))
    ok(state, JobCancelled(job_id, 1001, T0 + 30))
    info = job_info(state.jobs[job_id], state, T0 + 40)
    text = render([info], "jobid,state,exitcode,start,end,elapsed,reason", parsable2=True, noheader=True)
    assert text == "9|CANCELLED by 1001|0:0|2025-05-01T12:00:30|2025-05-01T12:00:30|00:00:00|JobHeldUser\n"


def test_cancelled_running_job_end_to_end() -> None:
    """Ref 1.4 / DESIGN 3: a running job cancelled by uid 1000: job row ``CANCELLED by 1000``
    with 0:0 (scontrol then shows 0:15), ``.batch`` ``CANCELLED 0:15``, the srun step
    ``CANCELLED 0:15``."""
    state, job_id = started()
    step = ok(state, StepCreated("s", job_id, "sleep", ("sleep", "99"), 1, "node01", 1000, T0 + 2))
    action = ok(state, ActionRequested("c", job_id, -1, ActionKind.KILL, 9, 0, 1000, T0 + 10))
    ok(state, JobStepComplete(job_id, step, "node01", 0, 15, False, T0 + 11))
    ok(state, JobNodeComplete(job_id, "node01", 0, 15, False, T0 + 11))
    ok(state, ActionAcked(action, "node01", 0, 0, T0 + 12))
    info = job_info(state.jobs[job_id], state, T0 + 20)
    assert info["exit_code"] == 15  # what scontrol shows
    assert render([info]) == (
        "JobID           JobName  Partition    Account  AllocCPUS      State ExitCode \n"
        "------------ ---------- ---------- ---------- ---------- ---------- -------- \n"
        "123              job.sh      debug      acct1          1 CANCELLED+      0:0 \n"
        "123.batch         batch                 acct1          1  CANCELLED     0:15 \n"
        "123.0             sleep                 acct1          1  CANCELLED     0:15 \n"
    )


def test_running_job_and_step() -> None:
    """A running job: End Unknown, ExitCode 0:0, the running step's elapsed time from ``now``."""
    state, job_id = started()
    ok(state, StepCreated("s", job_id, "sleep", ("sleep", "99"), 1, "node01", 1000, T0 + 2))
    info = job_info(state.jobs[job_id], state, T0 + 32)
    text = render([info], "jobid,state,exitcode,elapsed,end", parsable2=True, noheader=True, now=T0 + 32)
    assert text == (
        "123|RUNNING|0:0|00:00:31|Unknown\n"
        "123.batch|RUNNING|0:0|00:00:31|Unknown\n"
        "123.0|RUNNING|0:0|00:00:30|Unknown\n"
    )


def test_parse_format() -> None:
    """options.c: names match case-insensitively as prefixes in table order (``jobid`` ->
    JobID, not JobIDRaw; ``user`` -> User), ``%N`` right-justified, ``%-N`` left."""
    parsed = parse_format(" JobID , jobidraw%-20,STATE%12,user,exit")
    assert [(f.name, w, left) for f, w, left in parsed] == [
        ("JobID", 12, True),
        ("JobIDRaw", 20, True),
        ("State", 12, False),
        ("User", 9, False),
        ("ExitCode", 8, False),
    ]
    with pytest.raises(FormatError, match='Invalid field requested: "bogus"'):
        parse_format("jobid,bogus")
    assert len(parse_format(LONG_FIELDS)) == 54


def test_json() -> None:
    """Ref 5 --json: meta (command), jobs with steps; the same exit-code rules."""
    data = to_json([cancelled_example()])
    assert data["meta"]["command"] == ["sacct", "--json"]
    (j,) = data["jobs"]
    assert j["job_id"] == 1234 and j["state"]["current"] == ["CANCELLED"]
    assert j["kill_request_user"] == "1000"
    assert j["exit_code"]["status"] == ["SUCCESS"]
    assert [s["step"]["id"] for s in j["steps"]] == ["1234.batch", "1234.extern", "1234.0"]
    assert j["steps"][0]["exit_code"]["signal"]["id"]["number"] == 15
    assert j["derived_exit_code"]["status"] == ["SIGNALED"]


# ---------------------------------------------------------------------------------------------
# job arrays (slurmdb_defs.c slurmdb_get_job_id_str, print.c _print_expanded_array_job)


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/render/<name>; SPUR_UPDATE_GOLDEN=1 rewrites the file."""
    import os
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "golden" / "render" / name
    if os.environ.get("SPUR_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def array_history() -> list[dict[str, Any]]:
    """Array 123 (``--array=0-99%10``): task 0 ran as job 124 (a batch step and step 0),
    tasks 5-99 never started (the array's pending record, job 123)."""
    state, job_id = started()
    info = run_steps(state, job_id, [0], 0)
    task = {**info, "job_id": 124, "array_job_id": 123, "array_task_id": 0, "array_pending": [],
            "array_max_tasks": 10}
    task["steps"] = [{**s, "job_id": 124} for s in task["steps"]]
    never = {**info, "job_id": 123, "state": "PENDING", "base_state": "PENDING", "reason": "JobArrayTaskLimit",
             "start_time": 0, "end_time": 0, "run_time": 0, "nodes": "", "steps": [], "exit_code": None,
             "array_job_id": 123, "array_task_id": None, "array_pending": [[5, 99, 1]], "array_max_tasks": 10}
    return [never, task]


def test_array_rows_golden() -> None:
    """``123_0``, ``123_0.batch``, ``123_0.0`` for the task that ran (JobIDRaw ``124``,
    ``124.batch``); ``123_[5-99%10]`` for the never-started tasks (JobIDRaw ``123``)."""
    text = render(array_history(), "jobid%16,jobidraw,jobname,state,exitcode", now=T0 + 30)
    check_golden("sacct_array.txt", text)
    rows = render(array_history(), "jobid,jobidraw,state", parsable2=True, noheader=True, now=T0 + 30)
    assert rows.splitlines() == [
        "123_[5-99%10]|123|PENDING",
        "123_0|124|COMPLETED",
        "123_0.batch|124.batch|COMPLETED",
        "123_0.0|124.0|COMPLETED",
    ]


def test_array_option_expands_never_started_tasks() -> None:
    """sacct --array: the record of never-started tasks prints one row per task."""
    rows = render(array_history(), "jobid,jobidraw", parsable2=True, noheader=True, allocations=True,
                  array=True, now=T0).splitlines()
    assert rows[:2] == ["123_5|123", "123_6|123"]
    assert rows[94] == "123_99|123" and rows[95] == "123_0|124" and len(rows) == 96


def test_array_json() -> None:
    """data_parser JOB: ``array`` object {job_id, limits.max.running.tasks, task_id, task}."""
    never, task = to_json(array_history(), now=T0)["jobs"]
    assert never["array"] == {"job_id": 123, "limits": {"max": {"running": {"tasks": 10}}},
                              "task_id": {"set": False, "infinite": False, "number": 0}, "task": "5-99%10"}
    assert task["array"]["task_id"] == {"set": True, "infinite": False, "number": 0}
    assert task["job_id"] == 124 and [s["step"]["id"] for s in task["steps"]] == ["124.batch", "124.0"]
    assert set(task) >= {"account", "comment", "time", "exit_code", "state", "steps", "tres", "wckey",
                         "required", "working_directory", "submit_line", "hold", "priority"}


def test_time_format_and_truncated_dates() -> None:
    """SLURM_TIME_FORMAT for Start/End/Submit/Eligible (print_fields_date)."""
    state, job_id = started()
    info = run_steps(state, job_id, [], 0)
    assert render([info], "start,end", parsable2=True, noheader=True, time_format="%H:%M",
                  allocations=True) == "12:00|12:00\n"


def test_every_field_golden() -> None:
    """``-o ALL`` (every field of sacct.c's table, in order) for a job with a batch step and a
    numbered step, parsable; fields Spur keeps no data for print empty (NO_VAL/NULL)."""
    state, job_id = started()
    info = run_steps(state, job_id, [1 << 8], 0)
    info["group"] = "alice"
    text = render([info], "ALL", parsable2=True, now=T0 + 30)
    header, *rows = text.splitlines()
    assert len(header.split("|")) == len(FIELDS_ALL()) and all(len(r.split("|")) == len(FIELDS_ALL()) for r in rows)
    lines = [f"{name}={'|'.join(r.split('|')[i] for r in rows)}" for i, name in enumerate(header.split("|"))]
    check_golden("sacct_every_field.txt", "\n".join(lines) + "\n")


def FIELDS_ALL() -> list[str]:  # noqa: N802 - the table's name
    from spurcore.render.sacct import FIELDS

    return [f.name for f in FIELDS]
