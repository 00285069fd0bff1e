"""sacct's command line (src/sacct/options.c), its defaults, errors, environment and output,
against the fake controller of query_fake.py."""

from __future__ import annotations

import json
import time

import pytest
import query_fake
from query_fake import array, job

from spurcli import sacct
from spurcli.common import CliError
from spurcli.jobrefs import StepSel

NOW = time.mktime((2025, 5, 1, 12, 0, 0, 0, 0, -1))

ctld = query_fake.ctld  # the fake controller fixture (tests/unit/query_fake.py)


def test_default_window_is_today():
    q = sacct.parse_args([], now=NOW, environ={}, uid=1000)
    assert q.start == time.mktime((2025, 5, 1, 0, 0, 0, 0, 0, -1))
    assert q.end == NOW
    assert q.users == ["1000"]  # a user sees their own jobs by default


def test_jobs_window_from_epoch_all_users():
    q = sacct.parse_args(["-j", "5,6.0,6.batch"], now=NOW, environ={}, uid=1000)
    assert q.start == 0.0
    assert q.job_ids == [5, 6]
    assert q.users == []


def test_job_array_selections():
    """slurm_addto_step_list: ``J_T``, ``J_[1-3]``, ``J_T.S``."""
    q = sacct.parse_args(["-j", "7_3,8_[1-2],9_4.batch"], now=NOW, environ={}, uid=0)
    assert q.jobs == [StepSel(7, 3, None), StepSel(8, 1, None), StepSel(8, 2, None), StepSel(9, 4, "batch")]
    with pytest.raises(CliError, match="fatal: Bad job/step specified: x"):
        sacct.parse_args(["-j", "x"], now=NOW, environ={}, uid=0)


def test_root_sees_everyone():
    assert sacct.parse_args([], now=NOW, environ={}, uid=0).users == []
    assert sacct.parse_args(["-a"], now=NOW, environ={}, uid=1000).users == []
    assert sacct.parse_args(["-u", "-1"], now=NOW, environ={}, uid=1000).users == []
    assert sacct.parse_args(["-N", "n1"], now=NOW, environ={}, uid=1000).users == []


def test_fields():
    """options.c: -o, -b and -l append to the field list; SACCT_FORMAT only without them."""
    from spurcore.render import sacct as render

    assert sacct.parse_args([], now=NOW, environ={}, uid=0).fields == render.DEFAULT_FIELDS
    assert sacct.parse_args([], now=NOW, environ={"SACCT_FORMAT": "jobid,state"}, uid=0).fields == "jobid,state"
    assert sacct.parse_args(["-b"], now=NOW, environ={}, uid=0).fields == render.BRIEF_FIELDS
    assert sacct.parse_args(["-o", "jobid", "-b"], now=NOW, environ={}, uid=0).fields == (
        "jobid," + render.BRIEF_FIELDS)
    assert sacct.parse_args(["-o", "jobid", "-o", "state"], now=NOW, environ={}, uid=0).fields == "jobid,state"


def test_times():
    q = sacct.parse_args(["-S", "2025-04-30", "-E", "now"], now=NOW, environ={}, uid=0)
    assert q.start == time.mktime((2025, 4, 30, 0, 0, 0, 0, 0, -1))
    assert q.end == NOW
    q = sacct.parse_args(["-S", "now-1hour"], now=NOW, environ={}, uid=0)
    assert q.start == NOW - 3600


def test_bad_time(capsys):
    """parse_time: ``Invalid time specification (pos=N): x`` and exit 1."""
    with pytest.raises(CliError) as info:
        sacct.parse_args(["-S", "yesterdayish"], now=NOW, environ={}, uid=0)
    assert info.value.code == 1
    assert capsys.readouterr().err == "Invalid time specification (pos=0): yesterdayish\n"


def test_start_after_end(capsys):
    with pytest.raises(CliError):
        sacct.parse_args(["-S", "2025-05-01T10:00", "-E", "2025-05-01T09:00"], now=NOW, environ={}, uid=0)
    assert capsys.readouterr().err == ("sacct: error: Start time (2025-05-01T10:00:00) requested is after "
                                       "end time (2025-05-01T09:00:00).\n")


def test_state_window_starts_now():
    """slurmdb_job_cond_def_start_end: with -s and no -j, -S is now and -E is -S."""
    q = sacct.parse_args(["-s", "CD"], now=NOW, environ={}, uid=0)
    assert q.start == NOW and q.end == NOW and q.states == ["COMPLETED"]
    q = sacct.parse_args(["-s", "CD", "-j", "5"], now=NOW, environ={}, uid=0)
    assert q.start == 0.0 and q.end == NOW


def test_bad_values(capsys):
    """options.c: each value check with its message."""
    cases = [
        (["-s", "bogus"], "sacct: fatal: unrecognized job state value 'bogus'"),
        (["-s", "stopped"], "sacct: fatal: job state stopped is not supported / accounted"),
        (["-R", "bogus"], "sacct: fatal: unrecognized job reason value 'bogus'"),
        (["-k", "x"], "sacct: fatal: Invalid time limit specification"),
        (["--units=Q"], "sacct: fatal: Invalid unit type"),
        (["-l", "-o", "jobid"], "sacct: fatal: Options -o(--format) and -l(--long) are mutually exclusive. "
                                "Please remove one and retry."),
        (["-B"], "sacct: fatal: When requesting job scripts you must also request specific jobs with the "
                 "'-j' option."),
        (["-B", "--env-vars", "-j", "5"], "sacct: fatal: Options --batch-script and --env-vars are mutually "
                                         "exclusive"),
    ]
    for args, message in cases:
        with pytest.raises(CliError) as info:
            sacct.parse_args(args, now=NOW, environ={}, uid=0)
        assert info.value.message == message and info.value.raw, args
    for args, message in ((["-i", "x"], "invalid node range -i 'x'"), (["-I", "3-1"], "invalid cpu range -i '3-1'")):
        with pytest.raises(CliError, match=message):
            sacct.parse_args(args, now=NOW, environ={}, uid=0)
    with pytest.raises(CliError):
        sacct.parse_args(["-u", "no-such-user-here"], now=NOW, environ={}, uid=0)
    assert capsys.readouterr().err == "sacct: error: Invalid user id: no-such-user-here\n"
    with pytest.raises(CliError):
        sacct.parse_args(["--whole-hetjob=maybe"], now=NOW, environ={}, uid=0)
    assert capsys.readouterr().err == ('sacct: error: Invalid --whole-hetjob value "maybe". '
                                       "Valid values: [yes|no].\n")
    with pytest.raises(CliError):
        sacct.parse_args(["extra", "args"], now=NOW, environ={}, uid=0)
    assert capsys.readouterr().err == "sacct: error: Unknown arguments:\nsacct: error:  extra\nsacct: error:  args\n"


def test_step_selection():
    job_ = {"job_id": 6, "user": "root", "uid": 0, "state": "COMPLETED", "base_state": "COMPLETED",
            "steps": [{"step_id": "batch"}, {"step_id": 0}, {"step_id": 1}]}
    q = sacct.parse_args(["-j", "6.0,6.batch"], now=NOW, environ={}, uid=0)
    (out,) = sacct.select(q, [job_])
    assert [s["step_id"] for s in out["steps"]] == ["batch", 0]
    q = sacct.parse_args(["-j", "6"], now=NOW, environ={}, uid=0)
    assert len(sacct.select(q, [job_])[0]["steps"]) == 3
    q = sacct.parse_args(["-j", "6", "-s", "F"], now=NOW, environ={}, uid=0)
    assert sacct.select(q, [job_]) == []


def test_latest_record_unless_duplicates():
    # A requeued job has one accounting record per run (test_101_5); sacct -D shows them all.
    runs = [{"job_id": 7, "restarts": r, "user": "root", "uid": 0, "state": "COMPLETED",
             "base_state": "COMPLETED", "steps": []} for r in (0, 1)]
    q = sacct.parse_args(["-j", "7"], now=NOW, environ={}, uid=0)
    assert [j["restarts"] for j in sacct.select(q, runs)] == [1]
    q = sacct.parse_args(["-j", "7", "-D"], now=NOW, environ={}, uid=0)
    assert [j["restarts"] for j in sacct.select(q, runs)] == [0, 1]


def history():
    done = job(5, "COMPLETED", steps=[
        {"job_id": 5, "step_id": "batch", "name": "batch", "state": "COMPLETED", "exit_code": 0,
         "start_time": 1, "end_time": 2, "nodes": "n1", "node_count": 1, "ntasks": 1, "cpus": 1, "argv": [],
         "uid": 0}], comment="c1", wckey="k1", constraint="fast")
    return [done, job(6, "FAILED", name="other", exit_code=3 << 8)] + array(
        10, [[3, 20, 1]], throttle=4, tasks={1: (11, "COMPLETED"), 2: (12, "RUNNING")}, name="arr")


def test_main_array_rows(ctld, capsys):
    ctld.history = history()
    assert sacct.main(["-j", "10", "-P", "-n", "-o", "jobid,jobidraw,state"]) == 0
    assert capsys.readouterr().out == "10_[3-20%4]|10|PENDING\n10_1|11|COMPLETED\n10_2|12|RUNNING\n"
    assert sacct.main(["-j", "10_7,10_2", "-P", "-n", "-o", "jobid,jobidraw"]) == 0
    assert capsys.readouterr().out == "10_7|10\n10_2|12\n"
    assert sacct.main(["-j", "10", "--array", "-X", "-P", "-n", "-o", "jobid"]) == 0
    assert capsys.readouterr().out.split() == [f"10_{t}" for t in range(3, 21)] + ["10_1", "10_2"]
    (params,) = ctld.params("history")[:1]
    assert params["job_ids"] == [10] and params["start"] == 0.0


def test_main_filters(ctld, capsys):
    ctld.history = history()
    run = lambda *a: (sacct.main(["-a", "-X", "-P", "-n", "-o", "jobid", *a]),  # noqa: E731
                      capsys.readouterr().out.split())
    assert run("--name=other") == (0, ["6"])
    assert run("-s", "F") == (0, ["6"])
    assert run("-W", "k1") == (0, ["5"])
    assert run("-C", "fast") == (0, ["5"])
    assert run("-x", "1") == (0, [])
    assert run("-r", "nope") == (0, [])


def test_main_fields_known_to_spur(ctld, capsys):
    ctld.history = history()[:1]
    assert sacct.main(["-a", "-X", "-P", "-n", "-o", "jobidraw,comment,wckey,constraints,reqmem,nodelist,"
                                                       "submitline,qos,flags,reason"]) == 0
    assert capsys.readouterr().out == "5|c1|k1|fast|0|n1|sbatch job.sh|normal|SchedMain|None\n"


def test_main_bad_field(ctld, capsys):
    assert sacct.main(["-o", "bogus"]) == 1
    assert capsys.readouterr().err == 'sacct: error: Invalid field requested: "bogus"\n'


def test_main_time_format(ctld, capsys, monkeypatch):
    ctld.history = history()[:1]
    monkeypatch.setenv("SLURM_TIME_FORMAT", "%d.%m. %H:%M")
    assert sacct.main(["-a", "-X", "-P", "-n", "-o", "submit,start"]) == 0
    assert capsys.readouterr().out == "01.05. 11:58|01.05. 11:59\n"


def test_main_json(ctld, capsys):
    ctld.history = history()
    assert sacct.main(["-a", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"jobs", "meta", "errors", "warnings"}
    assert [j["job_id"] for j in data["jobs"]] == [5, 6, 10, 11, 12]
    assert data["jobs"][2]["array"]["task"] == "3-20%4"
    assert data["meta"]["command"] == ["sacct", "-a", "--json"]


def test_main_batch_script(ctld, capsys):
    """sacct -B: ``Batch Script for <id>`` and a rule, then the script (``NONE`` unknown)."""
    ctld.history = history()[:1]
    assert sacct.main(["-B", "-j", "5"]) == 0
    assert capsys.readouterr().out == "Batch Script for 5\n" + "-" * 80 + "\nNONE\n"


def test_main_help_fields(ctld, capsys):
    """options.c _help_fields_msg: every field, four a line, ``%-19s``."""
    assert sacct.main(["-e"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Account             AdminComment        AllocCPUS           AllocNodes         "
    assert lines[-1].split()[-1] == "WorkDir"
