"""squeue's command line (src/squeue/opts.c), its environment, its errors and what it asks
the controller, against the fake controller of query_fake.py."""

from __future__ import annotations

import json

import pytest
import query_fake
from query_fake import array, job

from spurcli import squeue
from spurcli.common import CliError
from spurcore.render.squeue import JobSel

ctld = query_fake.ctld  # the fake controller fixture (tests/unit/query_fake.py)


def filters(q) -> dict:
    """The server-side filters of a squeue query (the field projection is checked apart)."""
    return {k: v for k, v in q.params().items() if k != "fields"}


def test_default_query():
    q = squeue.parse_args([], environ={})
    assert filters(q) == {"states": ["PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED"]}
    assert q.fmt is None and q.Fmt is None


def test_jobs_users_states():
    q = squeue.parse_args(["-j5,6", "-u", "root,0", "-t", "pd,R"], environ={})
    assert filters(q) == {"job_refs": ["5", "6"], "users": ["0"], "states": ["PENDING", "RUNNING"]}


def test_job_refs_with_arrays():
    """opts.c _build_job_list: ``J`` and ``J_T``; Spur also takes ``J_[1-3]``."""
    q = squeue.parse_args(["-j", "12,12_4,13_[1-3]"], environ={})
    assert q.jobs == [JobSel(12, None), JobSel(12, 4), JobSel(13, 1), JobSel(13, 2), JobSel(13, 3)]
    assert q.params()["job_refs"] == ["12", "12_4", "13_1", "13_2", "13_3"]


def test_jobs_list_as_following_operand():
    # Slurm: --jobs takes an optional argument; "squeue -j 5" reads the list from the operand.
    assert squeue.parse_args(["-j", "5"], environ={}).job_ids == [5]
    assert squeue.parse_args(["--jobs", "7,8"], environ={}).job_ids == [7, 8]


def test_single_job_is_loaded_whatever_its_state():
    q = squeue.parse_args(["--jobs=5"], environ={})
    assert filters(q) == {"job_refs": ["5"]}


def test_all_states():
    q = squeue.parse_args(["-t", "all"], environ={})
    assert filters(q) == {}
    assert q.states == ["ALL"]


def test_me_and_steps():
    import os

    q = squeue.parse_args(["--me", "-s"], environ={})
    assert q.params()["users"] == [str(os.geteuid())]
    assert q.params()["with_steps"] is True


def test_bad_values(capsys):
    """opts.c errors: an unknown state ends squeue after listing the valid ones; a job id <= 0
    is ``Invalid job id: <item>``; an operand is ``Unrecognized option`` plus the usage."""
    with pytest.raises(CliError) as info:
        squeue.parse_args(["-t", "bogus"], environ={})
    assert capsys.readouterr().err == "squeue: error: Invalid job state specified: bogus\n"
    assert info.value.message.startswith("Valid job states include: pending,running,suspended,completed,")
    assert info.value.message.endswith(",stage_out,stopped\n")
    with pytest.raises(CliError, match="Invalid job id: x"):
        squeue.parse_args(["-j", "x"], environ={})
    with pytest.raises(CliError) as info:
        squeue.parse_args(["5"], environ={})
    out = capsys.readouterr()
    assert out.err == "squeue: error: Unrecognized option: 5\n" and out.out == squeue.USAGE


def test_unknown_user_is_reported_and_matches_nothing(capsys):
    """opts.c _build_user_list: ``Invalid user: x`` is printed and squeue goes on."""
    q = squeue.parse_args(["-u", "no-such-user-here"], environ={})
    assert q.users == []
    assert capsys.readouterr().err == "squeue: error: Invalid user: no-such-user-here\n\n"


def test_format_environment_variables():
    # Slurm test5.4: SQUEUE_FORMAT works like --format; the command line wins.
    assert squeue.parse_args([], environ={"SQUEUE_FORMAT": "%i"}).fmt == "%i"
    assert squeue.parse_args([], environ={"SQUEUE_FORMAT2": "jobid"}).Fmt == "jobid"
    q = squeue.parse_args(["-o", "%t"], environ={"SQUEUE_FORMAT": "%i"})
    assert q.fmt == "%t"
    q = squeue.parse_args(["-O", "name"], environ={"SQUEUE_FORMAT": "%i"})
    assert q.fmt is None and q.Fmt == "name"
    # -l and --start also override the environment (override_format_env)
    assert squeue.parse_args(["-l"], environ={"SQUEUE_FORMAT": "%i"}).fmt is None


def test_filter_environment_variables():
    """opts.c: SQUEUE_ACCOUNT, SQUEUE_NAMES, SQUEUE_LICENSES, SQUEUE_PARTITION, SQUEUE_QOS,
    SQUEUE_STATES, SQUEUE_USERS, SQUEUE_SORT, SQUEUE_ARRAY, SQUEUE_ALL, SQUEUE_PRIORITY apply
    when the option is not given."""
    env = {"SQUEUE_ACCOUNT": "a1", "SQUEUE_NAMES": "n1,n2", "SQUEUE_LICENSES": "l", "SQUEUE_PARTITION": "p",
           "SQUEUE_QOS": "q", "SQUEUE_STATES": "R", "SQUEUE_USERS": "0", "SQUEUE_SORT": "-i",
           "SQUEUE_ARRAY": "", "SQUEUE_ALL": "", "SQUEUE_PRIORITY": ""}
    q = squeue.parse_args([], environ=env)
    assert (q.accounts, q.names, q.licenses, q.partitions, q.qos, q.states, q.users, q.sort) == (
        ["a1"], ["n1", "n2"], ["l"], ["p"], ["q"], ["RUNNING"], ["0"], "-i")
    assert q.array and q.all and q.priority
    q = squeue.parse_args(["-A", "x", "-n", "y", "-p", "z", "-t", "PD", "-u", "root", "-S", "i"], environ=env)
    assert (q.accounts, q.names, q.partitions, q.states, q.users, q.sort) == (
        ["x"], ["y"], ["z"], ["PENDING"], ["0"], "i")


def test_start_defaults():
    """opts.c --start: format with %S and %Y, sort S, pending jobs."""
    q = squeue.parse_args(["--start"], environ={})
    assert q.fmt == "%.18i %.9P %.8j %.8u %.2t %.19S %.6D %20Y %R" and q.sort == "S"
    assert q.states == ["PENDING"]


def test_option_conflicts():
    """opts.c: -o with -O, -l with -o, --only-job-state with other filters, -j with -s."""
    with pytest.raises(CliError, match=r"-O \(--Format\) is incompatible with -o \(--format\)"):
        squeue.parse_args(["-o", "%i", "-O", "jobid"], environ={})
    with pytest.raises(CliError, match=r"-o \(--format\) is incompatible with -O \(--Format\)"):
        squeue.parse_args(["-O", "jobid", "-o", "%i"], environ={})
    with pytest.raises(CliError) as info:
        squeue.parse_args(["-l", "-o", "%i"], environ={})
    assert info.value.message == ("squeue: fatal: Options -o(--format) and -l(--long) are mutually exclusive. "
                                  "Please remove one and retry.")
    with pytest.raises(CliError, match="fatal: Option --only-job-state only works alone"):
        squeue.parse_args(["--only-job-state", "-u", "root"], environ={})
    with pytest.raises(CliError, match="Incompatible options --jobs and --steps"):
        squeue.parse_args(["-j", "-s"], environ={})


def test_bad_numbers_and_times():
    """--iterate must be positive; --running-over/under take a time."""
    with pytest.raises(CliError) as info:
        squeue.parse_args(["-i", "0"], environ={})
    assert info.value.message == "--iterate=0\n"
    with pytest.raises(CliError, match="fatal: Invalid time limit specification"):
        squeue.parse_args(["--running-over=soon"], environ={})
    with pytest.raises(CliError, match=r"fatal: --running-over=00:10:00 and --running-under=00:01:00 will"):
        squeue.parse_args(["--running-over=10", "--running-under=1"], environ={})


def test_default_layout_asks_only_for_its_fields():
    """The default and -l layouts fetch a projection; a custom format fetches everything."""
    q = squeue.parse_args([], environ={})
    assert q.params()["fields"] == list(squeue.DEFAULT_LAYOUT_FIELDS)
    assert "fields" not in squeue.parse_args(["-o", "%i %Z"], environ={}).params()


# ---------------------------------------------------------------------------------- main()


def jobs_with_array():
    return [job(5), job(6, "PENDING"), job(7, "COMPLETED")] + array(
        10, [[4, 9, 1]], throttle=2, tasks={1: (11, "RUNNING"), 2: (12, "COMPLETED")}, name="arr")


def test_main_default_table(ctld, capsys):
    ctld.jobs = jobs_with_array()
    assert squeue.main([]) == 0
    assert capsys.readouterr().out == (
        "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)\n"
        "                 6     debug   job.sh     root PD       0:00      1 (Priority)\n"
        "        10_[4-9%2]     debug      arr     root PD       0:00      1 (Priority)\n"
        "                 5     debug   job.sh     root  R       1:00      1 n1\n"
        "              10_1     debug      arr     root  R       1:00      1 n1\n"
    )
    (params,) = ctld.params("jobs")
    assert params["columns"] is True and "job_refs" not in params


def test_main_array_flag_and_env(ctld, capsys, monkeypatch):
    """-r (and SQUEUE_ARRAY) print one line per pending task."""
    ctld.jobs = jobs_with_array()
    assert squeue.main(["-r", "-h", "-o", "%i %t", "-j", "10"]) == 0
    assert capsys.readouterr().out.split("\n") == [
        "10_4 PD", "10_5 PD", "10_6 PD", "10_7 PD", "10_8 PD", "10_9 PD", "10_1 R", ""]
    assert ctld.params("jobs")[-1]["job_refs"] == ["10"]
    monkeypatch.setenv("SQUEUE_ARRAY", "1")
    assert squeue.main(["-h", "-o", "%i", "-t", "PD"]) == 0
    assert capsys.readouterr().out.count("\n") == 7


def test_main_task_of_pending_record(ctld, capsys):
    """``-j 10_5`` of a task still in the pending record prints that task alone."""
    ctld.jobs = jobs_with_array()
    assert squeue.main(["-j", "10_5", "-o", "%i|%A|%K|%T", "-h"]) == 0
    assert capsys.readouterr().out == "10_5|10|5|PENDING\n"
    assert ctld.params("jobs")[-1]["job_refs"] == ["10_5"]


def test_main_bitstr_len(ctld, capsys, monkeypatch):
    """SLURM_BITSTR_LEN: the length at which the pending task list is cut (with ``...``)."""
    ctld.jobs = array(10, [[0, 900, 3]], name="arr")
    assert squeue.main(["-h", "-o", "%K"]) == 0
    assert capsys.readouterr().out == "0-900:3\n"
    ctld.jobs = array(10, [[0, 900, 3], [902, 902, 1], [904, 1000, 1]], name="arr")
    monkeypatch.setenv("SLURM_BITSTR_LEN", "12")
    assert squeue.main(["-h", "-o", "%K"]) == 0
    assert capsys.readouterr().out == "0,3,6,9,...\n"


def test_main_time_format(ctld, capsys, monkeypatch):
    """SLURM_TIME_FORMAT applies to %S/%V/%e; an unusable one is reported and ignored."""
    ctld.jobs = [job(5)]
    monkeypatch.setenv("SLURM_TIME_FORMAT", "%H:%M")
    assert squeue.main(["-h", "-o", "%V|%S"]) == 0
    assert capsys.readouterr().out == "11:58|11:59\n"
    monkeypatch.setenv("SLURM_TIME_FORMAT", "nopercent")
    assert squeue.main(["-h", "-o", "%V"]) == 0
    out = capsys.readouterr()
    assert out.out == "2025-05-01T11:58:20\n"
    assert out.err == "squeue: error: invalid SLURM_TIME_FORMAT = 'nopercent'\n"


def test_main_unknown_single_job(ctld, capsys):
    ctld.jobs = [job(5)]
    assert squeue.main(["-j", "99"]) == 1
    assert capsys.readouterr().err == "slurm_load_jobs error: Invalid job id specified\n"


def test_main_filters(ctld, capsys):
    """-A -q -n -p -w --notme -R -L and -t apply to every record."""
    ctld.jobs = [job(5, account="a1", qos="high", name="x"), job(6, nodes="n2"), job(7, "PENDING", partition="long")]
    run = lambda *a: (squeue.main(["-h", "-o", "%A", *a]), capsys.readouterr().out.split())  # noqa: E731
    assert run("-A", "A1") == (0, ["5"])  # accounts compare case-insensitively
    assert run("-q", "high") == (0, ["5"])
    assert run("-n", "X") == (0, ["5"])
    assert run("-p", "long") == (0, ["7"])
    assert run("-w", "n2") == (0, ["6"])
    assert run("-R", "resv") == (0, [])
    assert run("-L", "lic") == (0, [])
    import os

    assert run("--notme") == (0, [] if os.getuid() == 0 else ["5", "6", "7"])  # the fake jobs are uid 0
    assert run("-t", "PD,R")[1] == ["5", "6", "7"]  # P,t,-p: partition debug before long


def test_main_invalid_node(ctld, capsys):
    """opts.c _map_node_name: ``Invalid node name x`` and exit 1."""
    assert squeue.main(["-w", "nope"]) == 1
    assert capsys.readouterr().err == "squeue: error: Invalid node name nope\n"


def test_main_sort_error_after_header(ctld, capsys):
    """sort.c: an unknown sort letter is an error once the header is out."""
    ctld.jobs = [job(5)]
    assert squeue.main(["-S", "y", "-o", "%i"]) == 1
    out = capsys.readouterr()
    assert out.out == "JOBID\n" and out.err == "squeue: error: Invalid sort specification: y\n"


def test_main_steps(ctld, capsys):
    step = {"job_id": 11, "step_id": 0, "name": "s", "state": "RUNNING", "start_time": 1746100740.0,
            "nodes": "n1", "node_count": 1, "ntasks": 1, "cpus": 1, "uid": 0}
    ctld.jobs = array(10, [[4, 9, 1]], tasks={1: (11, "RUNNING")}, name="arr")
    ctld.jobs[1]["steps"] = [step]
    assert squeue.main(["-s", "-h", "-o", "%i"]) == 0
    assert capsys.readouterr().out == "10_1.0\n"
    assert squeue.main(["-s", "10_1.0", "-h", "-o", "%i"]) == 0
    assert capsys.readouterr().out == "10_1.0\n"
    assert squeue.main(["-s", "10_1.1", "-h", "-o", "%i"]) == 0
    assert capsys.readouterr().out == ""


def test_main_json_and_yaml(ctld, capsys, monkeypatch):
    """--json/--yaml: data_parser's document (jobs, meta, errors, warnings); SLURM_JSON=compact."""
    ctld.jobs = jobs_with_array()
    assert squeue.main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"jobs", "last_backfill", "last_update", "meta", "errors", "warnings"}
    assert [j["job_id"] for j in data["jobs"]] == [5, 6, 10, 11]
    assert data["meta"]["command"] == ["squeue", "--json"]
    monkeypatch.setenv("SLURM_JSON", "compact")
    assert squeue.main(["--json", "-j", "10_5"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and ", " not in out
    (one,) = json.loads(out)["jobs"]
    assert one["array_task_id"]["number"] == 5
    assert squeue.main(["--yaml", "-j", "5"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("---\njobs:\n- account: \"\"\n") and "  job_id: 5\n" in text


def test_main_clusters(ctld, capsys):
    """-M: Spur's own cluster prints ``CLUSTER: <name>`` first; any other is Slurm's error."""
    ctld.jobs = [job(5)]
    assert squeue.main(["-M", "spur", "-o", "%i"]) == 0
    assert capsys.readouterr().out == "CLUSTER: spur\nJOBID\n5\n"
    assert squeue.main(["-M", "other"]) == 1
    assert capsys.readouterr().err == (
        "squeue: error: 'other' can't be reached now, or it is an invalid entry for --cluster.  "
        "Use 'sacctmgr list clusters' to see available clusters.\n"
        "squeue: fatal: Could not get cluster information\n")


def test_main_helpformat(ctld, capsys):
    """opts.c _print_job_fmt_fields: ``%a    %A    ...`` eight a line (visible letters)."""
    assert squeue.main(["--helpformat"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "%a    %F    %K    %B    %o    %k    %O    %I    "
    assert all(len(line.split()) <= 8 for line in lines)
    assert squeue.main(["--helpFormat"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Account             AccrueTime          admin_comment       AllocNodes          \n")
    assert "PackJobId" not in out
