"""scancel: id parsing, request construction and Slurm's verbose message texts."""

from __future__ import annotations

import pytest

from spurcli import scancel
from spurcli.common import CliError


def test_ids_jobs_and_steps():
    r = scancel.parse_args(["5", "6.1", "7,8"])
    assert r.ids == [(5, None), (6, 1), (7, None), (8, None)]


@pytest.mark.parametrize("bad", ["INVALID", "0", "12_3", "5.batch", "5x", "1.2.3"])
def test_invalid_ids(bad):
    # Slurm test6.17: "scancel INVALID" and "scancel 0" fail with "Invalid job id".
    with pytest.raises(CliError) as info:
        scancel.parse_args([bad])
    assert info.value.message == f"Invalid job id {bad}"


def test_no_identification():
    with pytest.raises(CliError, match="No job identification provided"):
        scancel.parse_args(["-v"])


@pytest.mark.parametrize(("text", "num"), [("USR1", 10), ("SIGUSR1", 10), ("usr1", 10), ("10", 10),
                                            ("KILL", 9), ("STOP", 19)])
def test_signal_names_and_numbers(text, num):
    assert scancel.parse_args(["-s", text, "5"]).signal == num


def test_bad_signal():
    with pytest.raises(CliError, match="Invalid job signal: NOPE"):
        scancel.parse_args(["--signal=NOPE", "5"])


def test_bad_state():
    with pytest.raises(CliError, match="Invalid job state specified: CD"):
        scancel.parse_args(["-t", "CD"])


def _msg(args, job, step):
    return scancel.verbose_message(scancel.parse_args(args), job, step)


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


def _params(args, job, step):
    return scancel.signal_params(scancel.parse_args(args), job, step)


def test_request_kinds_and_targets():
    assert _params(["5"], 5, None) == {"job_id": 5, "step_id": -1, "kind": 1, "signal": 9, "target": 0}
    assert _params(["5.2"], 5, 2) == {"job_id": 5, "step_id": 2, "kind": 1, "signal": 9, "target": 0}
    assert _params(["-s", "USR1", "5"], 5, None) == {
        "job_id": 5, "step_id": -1, "kind": 4, "signal": 10, "target": 0}
    assert _params(["-b", "-s", "USR1", "5"], 5, None)["target"] == 1
    assert _params(["-f", "-s", "USR1", "5"], 5, None)["target"] == 2
    assert _params(["-b", "5"], 5, None) == {"job_id": 5, "step_id": -1, "kind": 4, "signal": 9, "target": 1}
    assert _params(["-s", "TERM", "5.1"], 5, 1) == {
        "job_id": 5, "step_id": 1, "kind": 4, "signal": 15, "target": 0}


def test_filters_and_no_match_text():
    r = scancel.parse_args(["-n", "job", "-t", "pd", "-p", "debug", "-u", "0"])
    assert r.has_filters
    assert r.state == "PENDING"
    assert r.user_name == "root"
    assert r.filter_text() == "job_name=job partition=debug state=PENDING user_name=0 "


def test_job_matches():
    r = scancel.parse_args(["-n", "a", "-t", "R"])
    running = {"job_id": 1, "name": "a", "state": "RUNNING", "base_state": "RUNNING", "user": "x"}
    assert scancel.job_matches(r, running)
    assert not scancel.job_matches(r, {**running, "name": "b"})
    assert not scancel.job_matches(r, {**running, "state": "STOPPED"})  # Slurm compares the whole state
    assert not scancel.job_matches(r, {**running, "state": "COMPLETED", "base_state": "COMPLETED"})
