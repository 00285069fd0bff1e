"""scancel: id parsing (job arrays included), request construction, Slurm's verbose and error
texts, environment variables, and the requests it sends to the fake controller."""

from __future__ import annotations

import pytest
import query_fake
from query_fake import array, job

from spurcli import scancel
from spurcli.common import CliError
from spurcli.jobrefs import CancelId

ctld = query_fake.ctld  # the fake controller fixture (tests/unit/query_fake.py)


def ids(*args):
    return [(c.job_id, c.task, c.step) for c in scancel.parse_args(list(args), environ={}).ids]


def test_ids_jobs_steps_and_arrays():
    """opts.c _xlate_job_step_ids: ``J``, ``J.S``, comma lists, ``J_T``, ``J_T.S``, ``J_*`` and
    ``J_[list]`` (no step with a list)."""
    assert ids("5", "6.1", "7,8") == [(5, None, None), (6, None, 1), (7, None, None), (8, None, None)]
    assert ids("12_3", "12_4.0", "13_*") == [(12, 3, None), (12, 4, 0), (13, "*", None)]
    assert ids("14_[1-3,7]") == [(14, 1, None), (14, 2, None), (14, 3, None), (14, 7, None)]
    (one,) = scancel.parse_args(["15_[2]"], environ={}).ids
    assert one == CancelId(15, 2, None, "15_2", "15_[2]")


@pytest.mark.parametrize("bad", ["INVALID", "0", "5.batch", "5x", "1.2.3", "12_[1-3].0", "12_[1-3],13", "12_x"])
def test_invalid_ids(bad):
    # Slurm test6.17: "scancel INVALID" and "scancel 0" fail with "Invalid job id".
    with pytest.raises(CliError) as info:
        scancel.parse_args([bad], environ={})
    assert info.value.message == f"Invalid job id {bad}"


def test_no_identification():
    with pytest.raises(CliError, match="No job identification provided"):
        scancel.parse_args(["-v"], environ={})


@pytest.mark.parametrize(("text", "num"), [("USR1", 10), ("SIGUSR1", 10), ("usr1", 10), ("10", 10),
                                            ("KILL", 9), ("STOP", 19)])
def test_signal_names_and_numbers(text, num):
    assert scancel.parse_args(["-s", text, "5"], environ={}).signal == num


def test_bad_signal():
    """opts.c: ``Unknown job signal: <name>`` (fprintf, no prefix), exit 1."""
    with pytest.raises(CliError) as info:
        scancel.parse_args(["--signal=NOPE", "5"], environ={})
    assert (info.value.message, info.value.raw, info.value.code) == ("Unknown job signal: NOPE", True, 1)


def test_bad_state():
    """opts.c _xlate_state_name: any state Slurm knows is taken (only PENDING, RUNNING and
    SUSPENDED jobs can match); an unknown one is two lines on stderr and exit 1."""
    assert scancel.parse_args(["-t", "CD"], environ={}).state == "COMPLETED"
    with pytest.raises(CliError) as info:
        scancel.parse_args(["-t", "bogus"], environ={})
    assert info.value.message == ("Invalid job state specified: bogus\n"
                                  "Valid job states are PENDING, RUNNING, and SUSPENDED")
    with pytest.raises(CliError) as info:
        scancel.parse_args(["5"], environ={"SCANCEL_STATE": "bogus"})
    assert info.value.message.startswith("Unrecognized SCANCEL_STATE value: bogus\n")


def test_environment(capsys):
    """opts.c _opt_env: SCANCEL_* apply, the command line wins; a bad boolean is reported."""
    env = {"SCANCEL_ACCOUNT": "ACCT", "SCANCEL_BATCH": "T", "SCANCEL_NAME": "n", "SCANCEL_PARTITION": "p",
           "SCANCEL_QOS": "High", "SCANCEL_STATE": "R", "SCANCEL_USER": "root", "SCANCEL_VERBOSE": "true",
           "SCANCEL_WCKEY": "k", "SCANCEL_INTERACTIVE": "false", "SCANCEL_FULL": "F", "SCANCEL_HURRY": "",
           "SCANCEL_CTLD": "", "SCANCEL_CRON": ""}
    r = scancel.parse_args([], environ=env)
    assert (r.account, r.batch, r.name, r.partition, r.qos, r.state, r.user_name, r.verbose, r.wckey) == (
        "acct", True, "n", "p", "high", "RUNNING", "root", 1, "k")
    assert (r.interactive, r.full, r.hurry, r.ctld, r.cron) == (False, False, True, True, True)
    r = scancel.parse_args(["-n", "other"], environ={"SCANCEL_NAME": "n"})
    assert r.name == "other"
    scancel.parse_args(["5"], environ={"SCANCEL_BATCH": "maybe"})
    assert capsys.readouterr().err == "scancel: error: Unrecognized SCANCEL_BATCH value: maybe\n"


def _msg(args, job_, step):
    return scancel.verbose_message(scancel.parse_args(args, environ={}), job_, step)


def test_verbose_messages():
    # Slurm src/scancel/scancel.c, test_107_4 / test6.7
    assert _msg(["5"], 5, None) == "Terminating job 5"
    assert _msg(["-s", "HUP", "5"], 5, None) == "Signal 1 to job 5"
    assert _msg(["-b", "-s", "STOP", "5"], 5, None) == "Signal 19 to batch job 5"
    assert _msg(["-f", "-s", "USR1", "5"], 5, None) == "Signal 10 to full job 5"
    assert _msg(["-b", "5"], 5, None) == "Terminating batch job 5"
    assert _msg(["5.0"], 5, 0) == "Terminating step 5.0"
    assert _msg(["-s", "KILL", "5.0"], 5, 0) == "Terminating step 5.0"
    assert _msg(["-s", "HUP", "5.0"], 5, 0) == "Signal 1 to step 5.0"
    assert _msg(["12_3"], "12_3", None) == "Terminating job 12_3"


def _params(args, job_, step):
    return scancel.signal_params(scancel.parse_args(args, environ={}), job_, step)


def test_request_kinds_and_targets():
    plain = {"job_ref": "5", "job_id": 5}
    assert _params(["5"], 5, None) == {**plain, "step_id": -1, "kind": 1, "signal": 9, "target": 0}
    assert _params(["5.2"], 5, 2) == {**plain, "step_id": 2, "kind": 1, "signal": 9, "target": 0}
    assert _params(["-s", "USR1", "5"], 5, None) == {**plain, "step_id": -1, "kind": 4, "signal": 10, "target": 0}
    assert _params(["-b", "-s", "USR1", "5"], 5, None)["target"] == 1
    assert _params(["-f", "-s", "USR1", "5"], 5, None)["target"] == 2
    assert _params(["-b", "5"], 5, None) == {**plain, "step_id": -1, "kind": 4, "signal": 9, "target": 1}
    assert _params(["-s", "TERM", "5.1"], 5, 1) == {**plain, "step_id": 1, "kind": 4, "signal": 15, "target": 0}
    # an array task goes by reference only
    assert _params(["12_3"], "12_3", None) == {"job_ref": "12_3", "step_id": -1, "kind": 1, "signal": 9,
                                                "target": 0}


def test_filters_and_no_match_text():
    r = scancel.parse_args(["-n", "job", "-t", "pd", "-p", "debug", "-u", "0", "-w", "n1", "-q", "Q",
                            "--wckey=k", "-A", "a", "-R", "r"], environ={})
    assert r.has_filters
    assert r.state == "PENDING"
    assert r.user_name == "root"
    assert r.filter_text() == ("account=a job_name=job nodelist=n1 partition=debug qos=q reservation=r "
                               "state=PENDING user_name=0 wckey=k ")


def test_job_matches():
    """scancel.c _filter_job_records compares the base state: a STOPPED job is RUNNING."""
    r = scancel.parse_args(["-n", "a", "-t", "R"], environ={})
    running = {"job_id": 1, "name": "a", "state": "RUNNING", "base_state": "RUNNING", "user": "x", "uid": 5}
    assert scancel.job_matches(r, running)
    assert not scancel.job_matches(r, {**running, "name": "b"})
    assert scancel.job_matches(r, {**running, "state": "STOPPED"})
    assert not scancel.job_matches(r, {**running, "state": "COMPLETED", "base_state": "COMPLETED"})
    r = scancel.parse_args(["-w", "n[2-3]"], environ={})
    assert scancel.job_matches(r, {**running, "nodes": "n[1-2]"})
    assert not scancel.job_matches(r, {**running, "nodes": "n1"})


# ---------------------------------------------------------------------------------- main()


def test_main_array_refs(ctld, capsys):
    """Each task goes to the controller as its own reference; ``J_[1-3]`` is one verbose line
    (scancel prints the id as given), ``J_*`` is the whole array ``J``."""
    ctld.jobs = array(10, [[3, 9, 1]], tasks={1: (11, "RUNNING")}, name="arr")
    assert scancel.main(["-v", "10_[4-5]", "10_1", "10_*", "10_1.0"]) == 0
    assert capsys.readouterr().err == (
        "scancel: Terminating job 10_[4-5]\n"
        "scancel: Terminating job 10_1\n"
        "scancel: Terminating job 10_*\n"
        "scancel: Terminating step 10_1.0\n")
    assert [(p["job_ref"], p["step_id"]) for p in ctld.params("signal")] == [
        ("10_4", -1), ("10_5", -1), ("10_1", -1), ("10", -1), ("10_1", 0)]


def test_main_unknown_task_is_silent_for_kill(ctld, capsys):
    ctld.jobs = array(10, [[3, 9, 1]], name="arr")
    assert scancel.main(["10_50"]) == 0
    assert capsys.readouterr().err == ""
    assert scancel.main(["-v", "10_50"]) == 0
    assert capsys.readouterr().err == ("scancel: Terminating job 10_50\n"
                                       "scancel: error: Kill job error on job id 10_50: Invalid job id specified\n")
    assert scancel.main(["-s", "USR1", "10_50"]) == 1


def test_main_errors_name_the_task(ctld, capsys):
    ctld.jobs = array(10, [[3, 9, 1]], name="arr")
    ctld.refused["10_4"] = ("access_denied", "Access/permission denied")
    assert scancel.main(["10_[3-4]"]) == 1
    assert capsys.readouterr().err == "scancel: error: Kill job error on job id 10_4: Access/permission denied\n"
    assert scancel.main(["-Q", "10_[3-4]"]) == 1
    assert capsys.readouterr().err == ""


def test_main_filters_reach_array_records(ctld, capsys):
    """The filter path cancels what matched: a pending array record by each of its pending
    tasks (never ``J`` alone, which would end its running tasks too), pending jobs first."""
    ctld.jobs = [job(5, name="arr")] + array(10, [[3, 4, 1]], tasks={1: (11, "RUNNING")}, name="arr")
    assert scancel.main(["-v", "-n", "arr", "-t", "PD"]) == 0
    assert capsys.readouterr().err == "scancel: Terminating job 10_[3-4]\n"
    assert [p["job_ref"] for p in ctld.params("signal")] == ["10_3", "10_4"]
    ctld.calls.clear()
    assert scancel.main(["-n", "arr"]) == 0
    assert [p["job_ref"] for p in ctld.params("signal")] == ["10_3", "10_4", "5", "10_1"]


def test_main_filters_verify_given_ids(ctld, capsys):
    ctld.jobs = [job(5, name="a")] + array(10, [[3, 4, 1]], name="a")
    assert scancel.main(["-n", "a", "5", "9", "10_4", "10_8"]) == 1
    assert capsys.readouterr().err == (
        "scancel: error: Kill job error on job id 9: Invalid job id specified\n"
        "scancel: error: Kill job error on job id 10_8: Invalid job id specified\n")
    assert sorted(p["job_ref"] for p in ctld.params("signal")) == ["10_4", "5"]


def test_main_bad_user_and_cluster(ctld, capsys):
    assert scancel.main(["-u", "no-such-user-here"]) == 1
    assert capsys.readouterr().err == "scancel: error: Invalid user name: no-such-user-here\n"
    assert scancel.main(["-M", "elsewhere", "5"]) == 1
    assert "scancel: fatal: Could not get cluster information\n" in capsys.readouterr().err
