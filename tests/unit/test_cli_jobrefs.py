"""spurcli.jobrefs: the job id grammars of squeue, sacct, scontrol and scancel, and the small
shared helpers (clusters, --autocomplete, documents); spurcore.render._common's time, mail
type and YAML helpers; spurcore.arrays.task_str."""

from __future__ import annotations

import time

import pytest

from spurcli import jobrefs
from spurcli.common import Opt
from spurcli.jobrefs import JobSel, RefError, StepSel
from spurcore.arrays import compress, task_str
from spurcore.render import _common


def test_squeue_jobs():
    """opts.c _build_job_list: strtol of the job, then of a task after ``_``; trailing junk is
    ignored as strtol ignores it."""
    assert jobrefs.squeue_jobs("5,5_3,7x,8_[1-2]") == [
        JobSel(5, None), JobSel(5, 3), JobSel(7, None), JobSel(8, 1), JobSel(8, 2)]
    for bad in ("0", "x", "-4", "_3"):
        with pytest.raises(RefError, match=f"Invalid job id: {bad}"):
            jobrefs.squeue_jobs(bad)


def test_squeue_steps():
    assert jobrefs.squeue_steps("5.0,6_2.batch") == [StepSel(5, None, 0), StepSel(6, 2, "batch")]
    with pytest.raises(RefError, match=r"Invalid job_step id: 5\.\?\?"):
        jobrefs.squeue_steps("5")
    with pytest.raises(RefError, match=r"Invalid job_step id: 0\.1"):
        jobrefs.squeue_steps("0.1")


def test_sacct_steps():
    assert jobrefs.sacct_steps("5,6.batch,7_2.0,8_[1,3]") == [
        StepSel(5, None, None), StepSel(6, None, "batch"), StepSel(7, 2, 0), StepSel(8, 1, None),
        StepSel(8, 3, None)]
    for bad in ("x", "5.y", "5_z", "5+"):
        if bad == "5+":
            assert jobrefs.sacct_steps(bad) == [StepSel(5, None, None)]
            continue
        with pytest.raises(RefError):
            jobrefs.sacct_steps(bad)


def test_scontrol_job_ids():
    """update_job.c _is_job_id / _next_job_id."""
    assert jobrefs.scontrol_job_ids("5") == ["5"]
    assert jobrefs.scontrol_job_ids("5,6 7") == ["5", "6", "7"]
    assert jobrefs.scontrol_job_ids("12_[1-3]") == ["12_1-3"]
    assert jobrefs.scontrol_job_ids("12_4") == ["12_4"]
    assert jobrefs.scontrol_job_ids("[10-12]") == ["10", "11", "12"]
    assert jobrefs.scontrol_job_ids("[10-11]_[1,3]") == ["10_1,3", "11_1,3"]
    for bad in ("", "5-6", "a5", "5__3", "12_[1-3", "5++1"):
        assert jobrefs.scontrol_job_ids(bad) is None, bad


def test_expand_job_str():
    assert jobrefs.expand_job_str("12_1-3") == ["12_1", "12_2", "12_3"]
    assert jobrefs.expand_job_str("12_1,3") == ["12_1", "12_3"]
    assert jobrefs.expand_job_str("12_*") == ["12"]
    assert jobrefs.expand_job_str("12") == ["12"]
    assert jobrefs.expand_job_str("12_7") == ["12_7"]
    with pytest.raises(RefError):
        jobrefs.expand_job_str("12_3-1")


def test_check_clusters():
    assert jobrefs.check_clusters("spur", "spur", "squeue") == ["spur"]
    assert jobrefs.check_clusters("all", "spur", "squeue") == ["spur"]
    with pytest.raises(RefError, match="'x' can't be reached now, or it is an invalid entry for SLURM_CLUSTERS."):
        jobrefs.check_clusters("x", "spur", "squeue", isenv=True)


def test_suggest_completion():
    """slurm_opt.c suggest_completion: short flags and long options containing the query,
    ``=`` after those with an argument, a space too for optional ones."""
    opts = (Opt("jobs", "j", "jobs", 2), Opt("noheader", "h", "noheader"), Opt("name", "n", "name", 1))
    assert jobrefs.suggest_completion(opts, "--n") == "--noheader\n--name=\n\n"
    assert jobrefs.suggest_completion(opts, "--j") == "--jobs=\n--jobs \n\n"
    assert jobrefs.suggest_completion(opts, "-j") == "-j\n--jobs=\n--jobs \n\n"
    assert jobrefs.suggest_completion(opts, "") == ""


def test_job_state_num():
    assert jobrefs.job_state_num("pd") == "PENDING"
    assert jobrefs.job_state_num("Completed") == "COMPLETED"
    assert jobrefs.job_state_num("OOM") == "OUT_OF_MEMORY"
    assert jobrefs.job_state_num("nope") is None


def test_dump_document():
    doc = {"a": [1, {"b": "x y"}], "c": {}, "d": [], "e": None, "f": True, "g": "123", "h": "-x"}
    assert jobrefs.dump_document(doc, "json", {"SLURM_JSON": "compact"}) == (
        '{"a":[1,{"b":"x y"}],"c":{},"d":[],"e":null,"f":true,"g":"123","h":"-x"}\n')
    assert jobrefs.dump_document(doc, "yaml", {}) == (
        "---\na:\n- 1\n- b: x y\nc: {}\nd: []\ne: null\nf: true\ng: \"123\"\nh: \"-x\"\n")


# ---------------------------------------------------------------------------------- times


@pytest.mark.usefixtures("utc")
def test_make_time_str():
    """parse_time.c slurm_make_time_str and _relative_date_fmt."""
    now = time.mktime((2025, 5, 14, 12, 0, 0, 0, 0, -1))  # a Wednesday
    day = 86400
    assert _common.make_time_str(0) == "Unknown"
    assert _common.make_time_str(now) == "2025-05-14T12:00:00"
    assert _common.make_time_str(now, "standard") == "2025-05-14T12:00:00"
    assert _common.make_time_str(now, "%d/%m/%y") == "14/05/25"
    assert _common.make_time_str(now, "relative", now) == "12:00:00"
    assert _common.make_time_str(now - day, "relative", now) == "Ystday 12:00"
    assert _common.make_time_str(now + day, "relative", now) == "Tomorr 12:00"
    assert _common.make_time_str(now + 3 * day, "relative", now) == "Sat 12:00"
    assert _common.make_time_str(now - 10 * day, "relative", now) == "4 May 12:00"
    assert _common.make_time_str(now - 400 * day, "relative", now) == "9 Apr 2024"
    assert _common.make_time_str(now, "no percent") == "2025-05-14T12:00:00"
    assert _common.make_time_str(now, "%Y" * 20) == "2025-05-14T12:00:00"  # too long: refused
    assert _common.make_time_str(now, size=10) == "#########"
    assert _common.time_format_error("no percent") == "invalid SLURM_TIME_FORMAT = 'no percent'"
    assert _common.time_format_error("%F") is None and _common.time_format_error(None) is None


def test_mail_types():
    """proc_args.c parse_mail_type / print_mail_type."""
    assert _common.print_mail_type("end,begin") == "BEGIN,END"
    assert _common.print_mail_type("ALL") == "INVALID_DEPEND,BEGIN,END,FAIL,REQUEUE,STAGE_OUT"
    assert _common.print_mail_type("NONE") == "NONE"
    assert _common.parse_mail_type("sometimes") is None
    assert _common.parse_mail_type("NONE,END") == 0


def test_task_str():
    """xlate_array_task_str: step form, bit_fmt, the ``...`` cut, the throttle."""
    assert task_str([[0, 20, 4]]) == "0-20:4"
    assert task_str([[0, 8, 4]]) == "0,4,8"  # spans under 11: no step form
    assert task_str([[1, 2, 1], [4, 20, 2]]) == "1-2,4,6,8,10,12,14,16,18,20"
    assert task_str([[5, 5, 1]], 3) == "5%3"
    long = compress(list(range(0, 200, 2)))
    assert task_str(long[:1] + [[201, 201, 1]], 0, 16) == "0,2,4,6,8,10..."
    assert len(task_str(long[:1] + [[201, 201, 1]], 0, 0)) > 100
