"""squeue / sacct argument handling: the filters sent to the controller and applied here."""

from __future__ import annotations

import time

import pytest

from spurcli import common, sacct, squeue
from spurcli.common import CliError


def test_default_query():
    q = squeue.parse_args([], environ={})
    assert filters(q) == {"states": ["PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED"]}
    assert q.fmt is None and q.Fmt is None


def test_jobs_users_states():
    q = squeue.parse_args(["-j5,6", "-u", "root,0", "-t", "pd,R"], environ={})
    assert filters(q) == {"job_ids": [5, 6], "users": ["root"], "states": ["PENDING", "RUNNING"]}


def test_jobs_list_as_following_operand():
    # Slurm: --jobs takes an optional argument; "squeue -j 5" reads the list from the operand.
    assert squeue.parse_args(["-j", "5"], environ={}).job_ids == [5]
    assert squeue.parse_args(["--jobs", "7,8"], environ={}).job_ids == [7, 8]


def test_single_job_is_loaded_whatever_its_state():
    q = squeue.parse_args(["--jobs=5"], environ={})
    assert filters(q) == {"job_ids": [5]}


def test_all_states():
    q = squeue.parse_args(["-t", "all"], environ={})
    assert filters(q) == {}
    assert q.states is None


def test_me_and_steps():
    q = squeue.parse_args(["--me", "-s"], environ={})
    assert q.params()["users"] == [common.current_user()[0]]
    assert q.params()["with_steps"] is True


def test_bad_values():
    with pytest.raises(CliError, match="Invalid job state specified: bogus"):
        squeue.parse_args(["-t", "bogus"], environ={})
    with pytest.raises(CliError, match="Invalid job id: x"):
        squeue.parse_args(["-j", "x"], environ={})
    with pytest.raises(CliError, match="Invalid user: no-such-user-here"):
        squeue.parse_args(["-u", "no-such-user-here"], environ={})
    with pytest.raises(CliError, match="Unrecognized option: 5"):
        squeue.parse_args(["5"], environ={})


def test_format_environment_variables():
    # Slurm test5.4: SQUEUE_FORMAT works like --format; the command line wins.
    assert squeue.parse_args([], environ={"SQUEUE_FORMAT": "%i"}).fmt == "%i"
    assert squeue.parse_args([], environ={"SQUEUE_FORMAT2": "jobid"}).Fmt == "jobid"
    q = squeue.parse_args(["-o", "%t"], environ={"SQUEUE_FORMAT": "%i"})
    assert q.fmt == "%t"
    q = squeue.parse_args(["-O", "name"], environ={"SQUEUE_FORMAT": "%i"})
    assert q.fmt is None and q.Fmt == "name"


def _job(job_id, state, base=None, name="j", partition="debug", user="root"):
    return {"job_id": job_id, "state": state, "base_state": base or state, "name": name,
            "partition": partition, "user": user, "uid": 0}


def test_client_side_filters():
    jobs = [_job(1, "RUNNING"), _job(2, "STOPPED", "RUNNING"), _job(3, "COMPLETED"),
            _job(4, "COMPLETING", "CANCELLED"), _job(5, "PENDING", name="other"),
            _job(6, "PENDING", partition="long")]
    q = squeue.parse_args([], environ={})
    assert [j["job_id"] for j in squeue.filter_jobs(q, jobs)] == [1, 2, 4, 5, 6]
    q = squeue.parse_args(["-t", "R"], environ={})
    assert [j["job_id"] for j in squeue.filter_jobs(q, jobs)] == [1]
    q = squeue.parse_args(["-n", "other"], environ={})
    assert [j["job_id"] for j in squeue.filter_jobs(q, jobs)] == [5]
    q = squeue.parse_args(["-p", "long"], environ={})
    assert [j["job_id"] for j in squeue.filter_jobs(q, jobs)] == [6]
    q = squeue.parse_args(["-t", "all"], environ={})
    assert len(squeue.filter_jobs(q, jobs)) == 6


# ---------------------------------------------------------------------------------- sacct


NOW = time.mktime((2025, 5, 1, 12, 0, 0, 0, 0, -1))


def test_sacct_default_window_is_today():
    q = sacct.parse_args([], now=NOW, environ={}, uid=1000)
    assert q.start == time.mktime((2025, 5, 1, 0, 0, 0, 0, 0, -1))
    assert q.end == NOW
    assert q.users  # a user sees their own jobs by default


def test_sacct_jobs_window_from_epoch_all_users():
    q = sacct.parse_args(["-j", "5,6.0,6.batch"], now=NOW, environ={}, uid=1000)
    assert q.start == 0.0
    assert q.job_ids == [5, 6]
    assert q.users == []


def test_sacct_root_sees_everyone():
    assert sacct.parse_args([], now=NOW, environ={}, uid=0).users == []
    assert sacct.parse_args(["-a"], now=NOW, environ={}, uid=1000).users == []


def test_sacct_fields():
    from spurcore.render import sacct as render

    assert sacct.parse_args([], now=NOW, environ={}, uid=0).fields == render.DEFAULT_FIELDS
    assert sacct.parse_args([], now=NOW, environ={"SACCT_FORMAT": "jobid,state"}, uid=0).fields == "jobid,state"
    assert sacct.parse_args(["-b"], now=NOW, environ={}, uid=0).fields == render.BRIEF_FIELDS
    assert sacct.parse_args(["-o", "jobid", "-b"], now=NOW, environ={}, uid=0).fields == "jobid"


def test_sacct_times():
    q = sacct.parse_args(["-S", "2025-04-30", "-E", "now"], now=NOW, environ={}, uid=0)
    assert q.start == time.mktime((2025, 4, 30, 0, 0, 0, 0, 0, -1))
    assert q.end == NOW
    with pytest.raises(CliError, match="Invalid time specification"):
        sacct.parse_args(["-S", "yesterdayish"], now=NOW, environ={}, uid=0)


def test_sacct_step_selection():
    job = {"job_id": 6, "user": "root", "uid": 0, "state": "COMPLETED", "base_state": "COMPLETED",
           "steps": [{"step_id": "batch"}, {"step_id": 0}, {"step_id": 1}]}
    q = sacct.parse_args(["-j", "6.0,6.batch"], now=NOW, environ={}, uid=0)
    (out,) = sacct.select(q, [job])
    assert [s["step_id"] for s in out["steps"]] == ["batch", 0]
    q = sacct.parse_args(["-j", "6"], now=NOW, environ={}, uid=0)
    assert len(sacct.select(q, [job])[0]["steps"]) == 3
    q = sacct.parse_args(["-j", "6", "-s", "F"], now=NOW, environ={}, uid=0)
    assert sacct.select(q, [job]) == []


def test_sacct_state_window_starts_now():
    q = sacct.parse_args(["-s", "CD"], now=NOW, environ={}, uid=0)
    assert q.start == NOW and q.states == ["COMPLETED"]


def test_sacct_latest_record_unless_duplicates():
    # A requeued job has one accounting record per run (test_101_5); sacct -D shows them all.
    runs = [{"job_id": 7, "restarts": r, "user": "root", "uid": 0, "state": "COMPLETED",
             "base_state": "COMPLETED", "steps": []} for r in (0, 1)]
    q = sacct.parse_args(["-j", "7"], now=NOW, environ={}, uid=0)
    assert [j["restarts"] for j in sacct.select(q, runs)] == [1]
    q = sacct.parse_args(["-j", "7", "-D"], now=NOW, environ={}, uid=0)
    assert [j["restarts"] for j in sacct.select(q, runs)] == [0, 1]


def filters(q) -> dict:
    """The server-side filters of a squeue query (the field projection is checked apart)."""
    return {k: v for k, v in q.params().items() if k != "fields"}


def test_default_layout_asks_only_for_its_fields():
    """The default and -l layouts fetch a projection; a custom format fetches everything."""
    q = squeue.parse_args([], environ={})
    assert q.params()["fields"] == list(squeue.DEFAULT_LAYOUT_FIELDS)
    assert "fields" not in squeue.parse_args(["-o", "%i %Z"], environ={}).params()
