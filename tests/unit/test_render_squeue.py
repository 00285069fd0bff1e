"""spurcore.render.squeue: squeue's -o/-O engines, default layouts, sorting and filters.

"ref N" is a section of shared/reference/slurm-behaviour.md; sources are Slurm's
src/squeue/{opts,print,sort,squeue}.c at tag slurm-25-11-7-1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from spurcore.model import ClusterState
from spurcore.ops import (
    ActionKind,
    ActionRequested,
    JobSpec,
    JobStart,
    JobSubmitted,
    NodeRegistered,
    StepCreated,
)
from spurcore.reduce import Rejected, apply
from spurcore.render.squeue import (
    DEFAULT_FORMAT,
    LONG_FORMAT,
    STEPS_FORMAT,
    default_sort,
    filter_jobs,
    job_shown,
    parse_format,
    parse_long_format,
    parse_states,
    render_jobs,
    render_steps,
    to_json,
)
from spurcore.views import job_info

pytestmark = pytest.mark.usefixtures("utc")  # tests/unit/conftest.py


T0 = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()  # Thu 2025-05-01 12:00:00


def job(**kw: Any) -> dict[str, Any]:
    """A job info record shaped like spurcore.views.job_info."""
    info: dict[str, Any] = {
        "job_id": 1234,
        "name": "myjob.sh",
        "user": "alice",
        "uid": 1000,
        "gid": 1000,
        "state": "RUNNING",
        "base_state": "RUNNING",
        "reason": "None",
        "exit_code": None,
        "derived_ec": 0,
        "priority": 1,
        "hold": 0,
        "submit_time": T0,
        "eligible_time": T0,
        "start_time": T0,
        "end_time": T0 + 7200,
        "suspend_time": 0.0,
        "run_time": 3723.0,
        "time_limit": 7200,
        "partition": "debug",
        "account": "acct1",
        "nodes": "node01",
        "node_count": 1,
        "num_cpus": 1,
        "num_tasks": 1,
        "cpus_per_task": 1,
        "mem_mb": 0,
        "dependency": "",
        "batch_flag": 1,
        "batch_host": "node01",
        "restarts": 0,
        "requid": -1,
        "failed_node": "",
        "command": "/home/alice/myjob.sh",
        "submit_line": "sbatch myjob.sh",
        "work_dir": "/home/alice",
        "stdout": "/home/alice/slurm-1234.out",
        "stderr": "/home/alice/slurm-1234.out",
        "stdin": "/dev/null",
        "alloc_node": "login1",
        "alloc_sid": 1,
        "steps": [],
    }
    info.update(kw)
    return info


def pending(**kw: Any) -> dict[str, Any]:
    base = dict(
        job_id=1235,
        name="averylongname",
        user="bob",
        uid=1001,
        state="PENDING",
        base_state="PENDING",
        reason="Resources",
        start_time=0.0,
        end_time=0.0,
        run_time=0.0,
        nodes="",
        node_count=2,
        batch_host="",
    )
    base.update(kw)
    return job(**base)


EXAMPLE = (
    "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)\n"
    "              1234     debug myjob.sh    alice  R    1:02:03      1 node01\n"
    "              1235     debug averylon      bob PD       0:00      2 (Resources)\n"
)


def test_default_layout_matches_reference_example() -> None:
    """Ref 4.1: the exact default header and rows (name cut to 8, no trailing spaces)."""
    assert render_jobs([job(), pending()], now=T0 + 3723) == EXAMPLE


def test_default_format_string_prints_the_same() -> None:
    """Ref 4.1: the -o default string and the -O list squeue builds print the same thing."""
    jobs = [job(), pending()]
    assert render_jobs(jobs, fmt=DEFAULT_FORMAT, now=T0) == EXAMPLE


def test_noheader() -> None:
    """test5.4 / ref 4.4: -h drops the header (no PARTITION)."""
    text = render_jobs([job(), pending()], noheader=True, now=T0)
    assert text == EXAMPLE.split("\n", 1)[1]
    assert "PARTITION" not in text


def test_prefix_and_suffix_text() -> None:
    """test5.4 / ref 4.2: --format="jid=%i uid=%U" -> header ``jid=JOBID uid=UID``, lines
    ``jid=<n> uid=<n>``."""
    text = render_jobs([job(), pending()], fmt="jid=%i uid=%U", now=T0)
    assert text == "jid=JOBID uid=UID\njid=1234 uid=1000\njid=1235 uid=1001\n"


def test_width_rules() -> None:
    """Ref 4.2: %.N right-justifies, %N left-justifies and pads; both cut values and headers to
    N; no width prints the natural length."""
    j = [job(name="abcdefghij")]
    assert render_jobs(j, fmt="%.5j|", now=T0) == " NAME|\nabcde|\n"
    assert render_jobs(j, fmt="%5j|", now=T0) == "NAME |\nabcde|\n"
    assert render_jobs(j, fmt="%j|", now=T0) == "NAME|\nabcdefghij|\n"
    assert render_jobs([job(name="ab")], fmt="%.5j|%5j|", now=T0) == " NAME|NAME |\n   ab|ab   |\n"
    assert render_jobs(j, fmt="%.3P", now=T0) == "PAR\ndeb\n"


def test_uncut_columns() -> None:
    """print.c: the node list, the NODELIST(REASON) header and durations are never cut when
    right-justified (cut_output=false)."""
    j = [job(nodes="node[01-10]", run_time=3723.0)]
    assert render_jobs(j, fmt="%.4N|%.4M|%.4R", now=T0) == (
        "NODELIST|TIME|NODELIST(REASON)\nnode[01-10]|1:02:03|node[01-10]\n"
    )
    # a left-justified column uses "%.Ns", which always cuts
    assert render_jobs(j, fmt="%4N|", now=T0) == "NODE|\nnode|\n"


def test_long_format_option() -> None:
    """test5.9 / ref 4.2: -O name:4 is 4 wide, left-justified; no size means 20; a suffix is
    printed verbatim; -Ocomment:4 shows ``1234`` of ``12345``."""
    assert render_jobs([job()], Fmt="name:4", now=T0) == "NAME\nmyjo\n"
    assert render_jobs([job()], Fmt="jobid,name", now=T0) == (
        "JOBID               NAME                \n1234                myjob.sh            \n"
    )
    assert render_jobs([job()], Fmt="jobid:.6 |,username:.6", now=T0) == " JOBID |  USER\n  1234 | alice\n"
    assert render_jobs([job(comment="12345")], Fmt="comment:4", now=T0) == "COMM\n1234\n"
    assert render_jobs([job()], Fmt="STATE:0,REASON:0", now=T0) == "STATEREASON\nRUNNINGNone\n"


def test_long_layout_has_date_line_unless_noheader() -> None:
    """Ref 4.1: -l uses %.8T and %.9l and prints a ctime-style date line first (not with -h)."""
    j = [job(), pending()]
    text = render_jobs(j, long=True, now=T0)
    assert text == (
        "Thu May  1 12:00:00 2025\n"
        "             JOBID PARTITION     NAME     USER    STATE       TIME TIME_LIMI  NODES NODELIST(REASON)\n"
        "              1234     debug myjob.sh    alice  RUNNING    1:02:03   2:00:00      1 node01\n"
        "              1235     debug averylon      bob  PENDING       0:00   2:00:00      2 (Resources)\n"
    )
    assert render_jobs(j, fmt=LONG_FORMAT, now=T0) == text.split("\n", 1)[1]
    assert render_jobs(j, long=True, noheader=True, now=T0) == text.split("\n", 2)[2]


def test_reason_list_rules() -> None:
    """Ref 4.3 %R: (reason) for PENDING/TIMEOUT/OOM/FAILED jobs that are not COMPLETING,
    the node list otherwise; squeue prints state_desc with its spaces (ref 2.3)."""
    failed = job(state="FAILED", base_state="FAILED", reason="RaisedSignal:11(Segmentation fault)")
    completing = job(state="COMPLETING", base_state="FAILED", reason="NonZeroExitCode")
    cancelled = job(state="CANCELLED", base_state="CANCELLED")
    timeout = job(state="TIMEOUT", base_state="TIMEOUT", reason="TimeLimit")
    stopped = job(state="STOPPED", base_state="RUNNING")
    rows = render_jobs([failed, completing, cancelled, timeout, stopped], fmt="%t %R", noheader=True, now=T0)
    assert (
        rows == "F (RaisedSignal:11(Segmentation fault))\nCG node01\nCA node01\nTO (TimeLimit)\nST node01\n"
    )
    assert render_jobs([failed], fmt="%r", noheader=True, now=T0) == "RaisedSignal:11(Segmentation fault)\n"


def test_durations_and_timestamps() -> None:
    """Ref 4.2: M:SS, H:MM:SS, D-HH:MM:SS; %l/%L UNLIMITED; timestamps N/A for 0; %e of an
    infinite-limit running job prints NONE."""
    row = "%M|%l|%L|%S|%V|%e"
    assert render_jobs([pending(time_limit=None)], fmt=row, noheader=True, now=T0) == (
        "0:00|UNLIMITED|UNLIMITED|N/A|2025-05-01T12:00:00|N/A\n"
    )
    assert render_jobs([job(run_time=90061.0, time_limit=2 * 86400)], fmt=row, noheader=True, now=T0) == (
        "1-01:01:01|2-00:00:00|22:58:59|2025-05-01T12:00:00|2025-05-01T12:00:00|2025-05-01T14:00:00\n"
    )
    assert render_jobs([job(time_limit=None, end_time=0.0)], fmt="%e", noheader=True, now=T0) == "NONE\n"
    assert render_jobs([job(time_limit=60, run_time=120.0)], fmt="%L", noheader=True, now=T0) == "INVALID\n"


def test_other_codes() -> None:
    """Ref 4.3: %A %u %U %C %D %P %a %q %Q %p %Z %o %E %k and the exit_code/DerivedEC -O fields
    (a job without a status yet has 0, printed 0:0)."""
    j = job(dependency="afterok:7(unfulfilled)", num_cpus=4)
    assert render_jobs([j], fmt="%A %u %U %C %D %P %a %q %Q", noheader=True, now=T0) == (
        "1234 alice 1000 4 1 debug acct1 normal 1\n"
    )
    assert render_jobs([j], fmt="%p|%Z|%o|%E|%k", noheader=True, now=T0) == (
        "0.00000000023283|/home/alice|/home/alice/myjob.sh|afterok:7(unfulfilled)|(null)\n"
    )
    done = job(state="FAILED", base_state="FAILED", exit_code=3 << 8, derived_ec=15)
    assert render_jobs([done, job()], Fmt="exit_code:.9,derivedec:.11", now=T0) == (
        "EXIT_CODE DERIVED_EC\n      3:0       0:15\n      0:0        0:0\n"
    )


def test_invalid_letter_is_printed_verbatim() -> None:
    """opts.c parse_format: an unknown letter is an error and prints as ``%<token>``. Every
    letter of a-z and A-Z is a 25.11 job field (``%b`` is the hidden Gres), so only other
    characters are unknown."""
    parsed = parse_format("%i %5@!")
    assert parsed.errors == ["Invalid job format specification: @"]
    assert render_jobs([job()], fmt="%i %5@!", now=T0) == "JOBID %5@!\n1234 %5@!\n"
    assert parse_format("%b").errors == []
    assert parse_long_format("jobid,bogus:3").errors == ["Invalid job format specification: bogus"]


def test_parse_tokens() -> None:
    """opts.c _parse_token: [.]digits letter suffix; strtok drops empty tokens, so ``%%y`` is
    ``%y`` (Nice)."""
    items = parse_format("x%.18i %9P%%y").items
    assert [(i.key, i.width, i.right, i.suffix) for i in items] == [
        (None, 0, False, "x"),
        ("JobArrayId", 18, True, " "),
        ("Partition", 9, False, ""),
        ("Nice", 0, False, ""),
    ]


# ---------------------------------------------------------------------------------------------
# sorting and filtering


def test_default_sort() -> None:
    """Ref 4.4: default sort P,t,-p (compact state as text: CG < PD < R), then job id."""
    jobs = [
        job(job_id=5, partition="debug", state="RUNNING"),
        pending(job_id=4, partition="debug", priority=1),
        pending(job_id=3, partition="debug", priority=5),
        job(job_id=2, partition="batch"),
        job(job_id=1, state="COMPLETING", base_state="CANCELLED"),
        job(job_id=6, partition="debug", state="RUNNING"),
    ]
    assert [j["job_id"] for j in default_sort(jobs)] == [2, 1, 3, 4, 5, 6]


def test_default_state_filter() -> None:
    """Ref 4.4 / print.c _filter_job: PENDING, RUNNING, SUSPENDED and any COMPLETING job by
    default (a STOPPED job is RUNNING underneath); finished jobs only with -t."""
    shown = ["PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED"]
    hidden = ["COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"]
    base = {"COMPLETING": "CANCELLED", "STOPPED": "RUNNING"}
    jobs = [job(state=s, base_state=base.get(s, s)) for s in shown + hidden]
    assert [j["state"] for j in filter_jobs(jobs)] == shown


def test_state_list_filter() -> None:
    """Ref 2.1 / 4.4: -t takes long or short names in any case, ``all`` shows everything; a
    base state matches the whole state word, so -t R leaves out STOPPED (print.c)."""
    assert parse_states("pd,R") == {"PENDING", "RUNNING"}
    assert parse_states("CG") == {"COMPLETING"}
    assert "CANCELLED" in parse_states("all")
    with pytest.raises(ValueError, match="Invalid job state specified: bogus"):
        parse_states("bogus")
    stopped = job(state="STOPPED", base_state="RUNNING")
    completing = job(state="COMPLETING", base_state="CANCELLED")
    assert not job_shown(stopped, parse_states("R")) and job_shown(stopped, parse_states("st"))
    assert not job_shown(completing, parse_states("CA")) and job_shown(completing, parse_states("CG"))
    done = job(state="CANCELLED", base_state="CANCELLED")
    assert job_shown(done, parse_states("all")) and job_shown(done, parse_states("ca"))
    assert render_jobs(filter_jobs([pending(), job()], parse_states("PD")), fmt="%t", noheader=True) == "PD\n"


def test_only_job_state_style_format() -> None:
    """test_114_4: --noheader --format='%i=%T' gives ``<id>=RUNNING``."""
    assert render_jobs([job()], fmt="%i=%T", noheader=True, now=T0) == "1234=RUNNING\n"


# ---------------------------------------------------------------------------------------------
# steps and an end-to-end case through the reducer


def _state() -> tuple[ClusterState, int]:
    state = ClusterState(next_job_id=1234)
    assert apply(state, NodeRegistered("node01", 4, 8000, "node01:6818", T0 - 60)) is None
    spec = JobSpec(
        name="myjob.sh",
        user="alice",
        uid=1000,
        gid=1000,
        script="#!/bin/sh\n",
        argv=("myjob.sh",),
        env={},
        cwd="/home/alice",
        time_limit=3600,
    )
    job_id = apply(state, JobSubmitted("r1", spec, T0))
    assert job_id == 1234
    assert apply(state, JobStart(job_id, ("node01",), 1, 0, T0 + 1)) is None
    step = apply(state, StepCreated("s0", job_id, "sleep", ("sleep", "60"), 1, "node01", 1000, T0 + 2))
    assert step == 0
    return state, job_id


def test_steps_layout() -> None:
    """Ref 4.1 -s: "%.15i %.8j %.9P %.8u %.9M %N", steps sorted P,i (numbered steps before
    batch, SLURM_BATCH_SCRIPT=0xfffffffb)."""
    state, job_id = _state()
    info = job_info(state.jobs[job_id], state, T0 + 62)
    text = render_steps([info], now=T0 + 62)
    assert text == (
        "         STEPID     NAME PARTITION     USER      TIME NODELIST\n"
        "         1234.0    sleep     debug    alice      1:00 node01\n"
        "     1234.batch    batch     debug    alice      1:01 node01\n"
    )
    assert render_steps([info], fmt=STEPS_FORMAT, noheader=True, now=T0 + 62) == text.split("\n", 1)[1]
    assert render_steps([info], Fmt="stepid:12,stepname:.6", now=T0 + 62) == (
        "STEPID        NAME\n1234.0       sleep\n1234.batch   batch\n"
    )


def test_end_to_end_running_then_completing() -> None:
    """A job from the reducer: RUNNING shows its node; after scancel it is CG and still listed
    by default."""
    state, job_id = _state()
    info = job_info(state.jobs[job_id], state, T0 + 3724)
    assert render_jobs([info], now=T0 + 3724) == (
        "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)\n"
        "              1234     debug myjob.sh    alice  R    1:02:03      1 node01\n"
    )
    result = apply(state, ActionRequested("c", job_id, -1, ActionKind.KILL, 9, 0, 1000, T0 + 3800))
    assert not isinstance(result, Rejected)
    info = job_info(state.jobs[job_id], state, T0 + 3801)
    assert filter_jobs([info]) == [info]
    assert render_jobs([info], noheader=True, now=T0 + 3801) == (
        "              1234     debug myjob.sh    alice CG    1:03:19      1 node01\n"
    )


def test_json() -> None:
    """Ref 4.4 / test_114_3: --json is an object with meta (command) and jobs."""
    state, job_id = _state()
    data = to_json([job_info(state.jobs[job_id], state, T0 + 5)], now=T0 + 5)
    assert set(data) >= {"meta", "jobs", "errors", "warnings"}
    assert data["meta"]["command"] == ["squeue", "--json"]
    (j,) = data["jobs"]
    assert j["job_id"] == 1234 and j["job_state"] == ["RUNNING"] and j["nodes"] == "node01"
    assert j["user_name"] == "alice" and j["time_limit"] == {"set": True, "infinite": False, "number": 60}
    assert j["exit_code"]["status"] == ["PENDING"]
    done = to_json([job(state="COMPLETING", base_state="CANCELLED", exit_code=15)])["jobs"][0]
    assert done["job_state"] == ["CANCELLED", "COMPLETING"]
    assert done["exit_code"]["status"] == ["SIGNALED"] and done["exit_code"]["signal"]["id"]["number"] == 15


def test_null_strings() -> None:
    """print.c passes NULL strings to printf: glibc prints ``(null)``, or nothing when a
    precision under 6 applies (``%5a`` is ``%.5s``)."""
    j = [job(account="")]
    assert render_jobs(j, fmt="%a|%5a|%.8a|%.3a|", noheader=True, now=T0) == "(null)|     |  (null)|(nu|\n"


# ---------------------------------------------------------------------------------------------
# job arrays (print.c _print_job_job_id / _print_job_array_*; squeue.c -r; print.c
# _combine_pending_array_tasks; slurm_protocol_defs.c xlate_array_task_str)

GOLDEN = __import__("pathlib").Path(__file__).resolve().parents[1] / "golden" / "render"


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/render/<name>; SPUR_UPDATE_GOLDEN=1 rewrites the file."""
    import os

    path = GOLDEN / name
    if os.environ.get("SPUR_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def array_jobs() -> list[dict[str, Any]]:
    """Array 100 (``--array=0-99%10``): tasks 0-2 started as jobs 101-103 (task 1 done), task 3
    split off while pending (held), tasks 4-99 still in the array's pending record; and a
    plain job 200."""
    pend = dict(state="PENDING", base_state="PENDING", reason="JobArrayTaskLimit", start_time=0.0,
                end_time=0.0, run_time=0.0, nodes="", batch_host="", name="arr.sh", array_job_id=100,
                array_max_tasks=10)
    run = dict(name="arr.sh", array_job_id=100, array_max_tasks=10)
    return [
        job(job_id=100, array_task_id=None, array_pending=[[4, 99, 1]], **pend),
        job(job_id=101, array_task_id=0, **run),
        job(job_id=102, array_task_id=1, state="COMPLETED", base_state="COMPLETED", **run),
        job(job_id=103, array_task_id=2, nodes="node02", **run),
        job(job_id=104, array_task_id=3, **{**pend, "reason": "JobHeldUser", "priority": 0, "hold": 1}),
        job(job_id=200, name="plain.sh"),
    ]


def test_array_default_layout_golden() -> None:
    """The pending record shows ``100_[4-99%10]`` until the held pending task 104 is folded
    into it (same name and partition), which re-formats the tasks with bit_fmt: ``100_[3-99]``
    and the reasons joined ``(JobArrayTaskLimit,JobHeldUser)``; started tasks show
    ``100_<task>``; finished ones are filtered out by default."""
    rows = default_sort(filter_jobs(array_jobs()))
    check_golden("squeue_array_default.txt", render_jobs(rows, now=T0 + 3723))


def test_array_pending_record_alone_keeps_throttle() -> None:
    """xlate_array_task_str: without a folded task the unpacked text is printed, ``%N``
    throttle included."""
    rec = array_jobs()[0]
    assert render_jobs([rec], fmt="%i|%K|%F|%A", noheader=True) == "100_[4-99%10]|4-99%10|100|100\n"


def test_array_expanded_r_golden() -> None:
    """squeue -r: one line per pending task (``100_4`` ... ``100_99``), no folding."""
    from spurcore.render.squeue import View

    rows = default_sort(filter_jobs(array_jobs()))
    text = render_jobs(rows, fmt="%.18i %.8j %.2t %r", view=View(T0, array=True, bitstr_len=0))
    assert text.count("\n") == 1 + 96 + 1 + 2 + 1  # header, tasks 4-99, held task 3, tasks 0 and 2, job 200
    assert "100_[" not in text
    check_golden("squeue_array_r.txt", text)


def test_array_format_codes_golden() -> None:
    """%i (JobArrayId), %A (JobId: the record's own id), %F (ArrayJobId), %K (ArrayTaskId:
    task list on the pending record, N/A outside arrays)."""
    rows = default_sort(filter_jobs(array_jobs(), parse_states("all")))
    check_golden("squeue_array_codes.txt", render_jobs(rows, fmt="%i|%A|%F|%K|%t|%r", now=T0))


def test_array_long_fields_golden() -> None:
    """-O JobArrayID, ArrayJobID, ArrayTaskID, JobID (case-insensitive names)."""
    rows = default_sort(filter_jobs(array_jobs(), parse_states("all")))
    text = render_jobs(rows, Fmt="jobarrayid:.16,arrayjobid:.13,arraytaskid:.14,jobid:.6,statecompact:.3",
                       now=T0)
    check_golden("squeue_array_long_fields.txt", text)


def test_array_task_string_forms() -> None:
    """xlate_array_task_str: more than five indexes spanning more than ten with the second
    one unset print as ``first-last:step``; a text longer than SLURM_BITSTR_LEN-3 (default
    64) ends in ``...``; SLURM_BITSTR_LEN=0 prints it whole (and %i is then uncut); %i of a
    pending record is cut to 31 characters (FORMAT_STRING_SIZE) otherwise."""
    from spurcore.arrays import compress
    from spurcore.render.squeue import View

    stepped = job(job_id=7, state="PENDING", base_state="PENDING", array_job_id=7, array_task_id=None,
                  array_pending=[[1, 99, 2]])
    assert render_jobs([stepped], fmt="%i", noheader=True) == "7_[1-99:2]\n"
    sparse = compress([i for i in range(0, 300) if i % 3])
    big = job(job_id=8, state="PENDING", base_state="PENDING", array_job_id=8, array_task_id=None,
              array_pending=sparse)
    text = render_jobs([big], fmt="%K", noheader=True)
    assert text == "1-2,4-5,7-8,10-11,13-14,16-17,19-20,22-23,25-26,28-29,31-32,...\n"
    assert len(text) - 1 == 63
    cut = render_jobs([big], fmt="%i", noheader=True)
    assert cut == "8_[1-2,4-5,7-8,10-11,13-14,16-1\n" and len(cut) - 1 == 31
    full = render_jobs([big], fmt="%.12i", noheader=True, view=View(T0, bitstr_len=0))
    assert full.startswith("8_[1-2,4-5,") and full.endswith(",295-296,298-299]\n")
    assert render_jobs([big], fmt="%K", noheader=True, view=View(T0, bitstr_len=20)) == "1-2,4-5,7-8,10-1...\n"


def test_array_job_filter_narrows_pending_record() -> None:
    """print.c _filter_job: ``-j 100_7`` keeps the pending record but only task 7 (printed
    ``100_7``); two of its tasks print ``100_[7,9]``; ``-j 100`` keeps every record of the
    array; ``-j 101`` (a task's own job id) keeps only that record."""
    from spurcore.render.squeue import JobFilter, JobSel, select_jobs

    jobs = array_jobs()

    def ids(sels: list[tuple[int, int | None]]) -> str:
        flt = JobFilter(jobs=[JobSel(j, t) for j, t in sels], states=["ALL"])
        return render_jobs(select_jobs(jobs, flt), fmt="%i", noheader=True)

    assert ids([(100, 7)]) == "100_7\n"
    assert ids([(100, 7), (100, 9)]) == "100_[7,9]\n"
    assert ids([(100, 2)]) == "100_2\n"
    # every record; the held pending task 3 is then folded into the pending record's line
    assert ids([(100, None)]).split() == ["100_[3-99]", "100_0", "100_1", "100_2"]
    assert ids([(101, None)]) == "100_0\n"
    assert ids([(100, 500)]) == ""


def test_array_sort_by_id() -> None:
    """sort.c _sort_job_by_id: the array id, then the task (the pending record, NO_VAL, last)."""
    from spurcore.render.squeue import sort_jobs

    rows = sort_jobs(filter_jobs(array_jobs(), parse_states("all")), "i")
    assert [(r["job_id"], r.get("array_task_id")) for r in rows] == [
        (101, 0), (102, 1), (103, 2), (104, 3), (100, None), (200, None)]


def test_array_steps() -> None:
    """print.c _print_step_id: a task's steps are ``<array>_<task>.<step>``."""
    j = job(job_id=103, array_job_id=100, array_task_id=2, steps=[
        {"step_id": 0, "name": "s", "state": "RUNNING", "start_time": T0, "nodes": "node01", "ntasks": 1,
         "cpus": 1, "uid": 1000}])
    assert render_steps([j], fmt="%i|%A", noheader=True, now=T0 + 5) == "100_2.0|1\n"
    assert render_steps([j], Fmt="ArrayJobId:5,ArrayTaskId:5,JobId:5", noheader=True, now=T0) == (
        "100  2    103  \n")


def test_array_json_shape() -> None:
    """data_parser v0.0.44 JOB_INFO: array_job_id / array_task_id / array_max_tasks are
    ``{"set","infinite","number"}``; the pending record has ``array_task_id`` unset and its
    tasks in ``array_task_string``."""
    data = to_json(array_jobs()[:2], now=T0)
    pend, task = data["jobs"]
    assert pend["array_job_id"] == {"set": True, "infinite": False, "number": 100}
    assert pend["array_task_id"] == {"set": False, "infinite": False, "number": 0}
    assert pend["array_max_tasks"] == {"set": True, "infinite": False, "number": 10}
    assert pend["array_task_string"] == "4-99%10"
    assert pend["job_state"] == ["PENDING"] and pend["state_reason"] == "JobArrayTaskLimit"
    assert task["job_id"] == 101 and task["array_task_id"] == {"set": True, "infinite": False, "number": 0}
    assert task["array_task_string"] == ""
    plain = to_json([job()], now=T0)["jobs"][0]
    assert plain["array_job_id"]["number"] == 0 and plain["array_task_id"]["set"] is False
    for key in ("accrue_time", "eligible_time", "end_time", "start_time", "submit_time", "time_limit",
                "cpus", "node_count", "tasks", "priority"):
        assert set(plain[key]) == {"set", "infinite", "number"}, key
    assert set(data) == {"jobs", "last_backfill", "last_update", "meta", "errors", "warnings"}
    assert data["meta"]["plugin"]["data_parser"] == "data_parser/v0.0.44"


def test_every_field_golden() -> None:
    """Every -O field of fmt_data_job (hidden ones included) for a running job, a pending
    array record and a job with most options set; what Spur keeps no data for prints what
    Slurm prints when it is unset (``(null)``, ``N/A``, ``0``, ``*``...). One field a line:
    ``name=value``."""
    from spurcore.render.squeue import _JOB_TABLE

    rich = job(job_id=300, comment="c", wckey="k", nice=5, qos="high", constraint="fast", req_nodes="node01",
               exc_nodes="node02", deadline=T0 + 86400, time_min=600, ntasks_per_node=2, mem_per_cpu=512,
               exclusive="user", requeue=0, mail_type="END")
    lines = []
    for info in (job(), array_jobs()[0], rich):
        for name, *_rest in _JOB_TABLE:
            text = render_jobs([info], Fmt=f"{name}:0", noheader=True, now=T0 + 3723)
            lines.append(f"{info['job_id']} {name}={text.rstrip(chr(10))}")
    check_golden("squeue_every_field.txt", "\n".join(lines) + "\n")


def test_percent_all() -> None:
    """opts.c ``%all``: every letter a-z then A-Z, ``|``-separated, unknown ones skipped."""
    text = render_jobs([job()], fmt="%all", now=T0)
    header, row = text.splitlines()
    assert header.startswith("ACCOUNT|TRES_PER_NODE|MIN_CPUS|MIN_TMP_DISK|END_TIME|")
    assert len(header.split("|")) == 52 and len(row.split("|")) == 52
