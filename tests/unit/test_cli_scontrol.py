"""scontrol's commands (src/scontrol/scontrol.c, info_job.c, update_job.c) against the fake
controller of query_fake.py: job arrays, job control, ``update job``, the show entities,
Slurm's messages and exit statuses."""

from __future__ import annotations

import json

import pytest
import query_fake
from query_fake import array, job

from spurcli import scontrol

ctld = query_fake.ctld  # the fake controller fixture (tests/unit/query_fake.py)


def arr():
    return array(10, [[4, 9, 1]], throttle=2, tasks={1: (11, "RUNNING"), 2: (12, "RUNNING")}, name="arr")


def run(capsys, *args):
    rc = scontrol.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---------------------------------------------------------------------------------- show job


def test_options_may_follow_the_command_as_getopt_permutes_them(ctld, capsys):
    """``scontrol show job -o`` is ``scontrol -o show job`` (GNU getopt_long permutes);
    after setdebugflags a ``-flag`` is the command's word, not an option."""
    ctld.jobs = [job(5), job(6)]
    rc, out, err = run(capsys, "show", "job", "-o")
    assert rc == 0 and err == "" and out == run(capsys, "-o", "show", "job")[1]
    assert [line.split()[0] for line in out.splitlines()] == ["JobId=5", "JobId=6"]
    rc, out, err = run(capsys, "setdebugflags", "-Backfill")
    assert (rc, err) == (1, "slurm_set_debugflags error:Requested operation is presently disabled\n")


def test_show_job_of_an_array_shows_every_record(ctld, capsys):
    ctld.jobs = [job(5)] + arr()
    rc, out, err = run(capsys, "-o", "show", "job", "10")
    lines = out.splitlines()
    assert rc == 0 and err == ""
    assert [line.split(" JobName")[0] for line in lines] == [
        "JobId=10 ArrayJobId=10 ArrayTaskId=4-9%2 ArrayTaskThrottle=2",
        "JobId=11 ArrayJobId=10 ArrayTaskId=1 ArrayTaskThrottle=2",
        "JobId=12 ArrayJobId=10 ArrayTaskId=2 ArrayTaskThrottle=2",
    ]
    assert ctld.params("jobs")[0]["job_refs"] == ["10"]


def test_show_job_of_one_task(ctld, capsys):
    """info_job.c: a task of the pending record prints that record with ``ArrayTaskId=<task>``;
    a started task its own record; a task the array does not have is ``Job 10_50 not found``
    (stdout) and exit 1."""
    ctld.jobs = [job(5)] + arr()
    rc, out, _ = run(capsys, "-o", "show", "job", "10_7")
    assert rc == 0 and out.startswith("JobId=10 ArrayJobId=10 ArrayTaskId=7 ArrayTaskThrottle=2 JobName=arr ")
    rc, out, _ = run(capsys, "-o", "show", "job", "10_2")
    assert rc == 0 and out.startswith("JobId=12 ArrayJobId=10 ArrayTaskId=2 ")
    assert out.count("\n") == 1
    rc, out, err = run(capsys, "show", "job", "10_50")
    assert (rc, out, err) == (1, "Job 10_50 not found\n", "")


def test_show_job_errors(ctld, capsys):
    ctld.jobs = [job(5)]
    assert run(capsys, "show", "job", "99") == (1, "", "slurm_load_jobs error: Invalid job id specified\n")
    assert run(capsys, "show", "job", "x5") == (1, "", "scontrol_print_job error: Invalid job id specified\n")
    assert run(capsys, "-Q", "show", "job", "99") == (1, "", "")
    ctld.jobs = []
    assert run(capsys, "show", "jobs") == (0, "No jobs in the system\n", "")


def test_show_job_json(ctld, capsys):
    ctld.jobs = arr()
    rc, out, _ = run(capsys, "--json", "show", "job", "10")
    data = json.loads(out)
    assert rc == 0 and [j["job_id"] for j in data["jobs"]] == [10, 11, 12]
    assert data["jobs"][0]["array_task_string"] == "4-9%2"


def test_show_job_environment(ctld, capsys, monkeypatch):
    """SLURM_TIME_FORMAT and SLURM_BITSTR_LEN reach the record."""
    ctld.jobs = array(10, [[0, 9, 1], [20, 29, 1], [40, 49, 1]], name="arr")
    monkeypatch.setenv("SLURM_TIME_FORMAT", "%H:%M")
    monkeypatch.setenv("SLURM_BITSTR_LEN", "8")
    rc, out, _ = run(capsys, "show", "job", "10")
    assert rc == 0 and out.startswith("JobId=10 ArrayJobId=10 ArrayTaskId=0-9,...")
    assert "   SubmitTime=11:58 EligibleTime=11:58\n" in out


# ---------------------------------------------------------------------------------- job control


def test_job_control_commands_and_arrays(ctld, capsys):
    """Each id list is expanded into single references: ``10_[4-5]`` is two calls, ``[5-6]``
    two jobs; hold/uhold/holdu/release/suspend/resume/requeue/requeuehold map to their calls."""
    ctld.jobs = [job(5), job(6)] + arr()
    assert run(capsys, "hold", "10_[4-5]", "jobid=5") == (0, "", "")
    assert run(capsys, "holdu", "[5-6]") == (0, "", "")
    assert run(capsys, "uhold", "10_4,10_5") == (0, "", "")
    assert run(capsys, "release", "10") == (0, "", "")
    assert run(capsys, "suspend", "11") == (0, "", "")
    assert run(capsys, "resume", "10_1") == (0, "", "")
    assert run(capsys, "requeue", "Incomplete", "11") == (0, "", "")
    assert run(capsys, "requeuehold", "State=SpecialExit", "12") == (0, "", "")
    calls = [(m, p.get("job_ref"), p.get("user_hold"), p.get("kind"), p.get("hold")) for m, p in ctld.calls]
    assert calls == [
        ("hold", "10_4", None, None, None), ("hold", "10_5", None, None, None), ("hold", "5", None, None, None),
        ("hold", "5", True, None, None), ("hold", "6", True, None, None),
        ("hold", "10_4", True, None, None), ("hold", "10_5", True, None, None),
        ("release", "10", None, None, None),
        ("signal", "11", None, 2, None), ("signal", "10_1", None, 3, None),
        ("requeue", "11", None, None, False), ("requeue", "12", None, None, True),
    ]


def test_job_control_errors(ctld, capsys):
    """update_job.c: ``<strerror> for job <id>`` (the task for a list), exit 1; an id that is
    not one is ``Invalid job id specified for job <text>``."""
    ctld.jobs = [job(5)] + arr()
    ctld.refused["10_5"] = ("job_not_pending", "Job is no longer pending execution")
    assert run(capsys, "hold", "10_[4-5]") == (1, "", "Job is no longer pending execution for job 10_5\n")
    assert run(capsys, "resume", "5,99") == (1, "", "Invalid job id specified for job 99\n")
    assert run(capsys, "release", "abc") == (1, "", "Invalid job id specified for job abc\n")
    assert run(capsys, "suspend") == (1, "", "too few arguments for keyword:suspend\n")
    assert run(capsys, "hold", "5-6") == (1, "", "Invalid job id specified for job 5-6\n")


def test_hold_by_name(ctld, capsys):
    """scontrol_hold ``Name=``: every job of that name (a pending array record's tasks)."""
    ctld.jobs = [job(5, "PENDING", name="x")] + array(10, [[4, 5, 1]], name="x")
    assert run(capsys, "hold", "Name=x") == (0, "", "")
    assert [p["job_ref"] for p in ctld.params("hold")] == ["5", "10_4", "10_5"]


# ---------------------------------------------------------------------------------- update job


def test_update_job_fields(ctld, capsys):
    """Values parsed as Slurm parses them: TimeLimit/TimeMin in seconds (None for UNLIMITED),
    StartTime/Deadline epochs, Nice/ArrayTaskThrottle/Requeue ints, others strings."""
    ctld.jobs = [job(5)] + arr()
    rc = scontrol.main([
        "update", "JobId=10_5", "TimeLimit=1:30", "TimeMin=UNLIMITED", "Name=new", "Comment=c", "Dependency=afterok:5",
        "Partition=p2", "Nice=-5", "ArrayTaskThrottle=3", "QOS=high", "Account=a", "WCKey=w", "Requeue=0",
        "MailUser=u@x", "MailType=END,FAIL", "Features=fast", "StartTime=now+1hour", "Deadline=2030-01-01",
    ])
    assert rc == 0
    ((params),) = ctld.params("update_job")
    changes = params["changes"]
    assert params["job_ref"] == "10_5"
    assert changes["TimeLimit"] == 120 and changes["TimeMin"] is None
    assert (changes["Name"], changes["Comment"], changes["Dependency"], changes["Partition"]) == (
        "new", "c", "afterok:5", "p2")
    assert (changes["Nice"], changes["ArrayTaskThrottle"], changes["Requeue"]) == (-5, 3, 0)
    assert (changes["QOS"], changes["Account"], changes["WCKey"], changes["MailUser"], changes["MailType"],
            changes["Features"]) == ("high", "a", "w", "u@x", "END,FAIL", "fast")
    import time

    assert abs(changes["StartTime"] - (time.time() + 3600)) < 120
    assert changes["Deadline"] == time.mktime((2030, 1, 1, 0, 0, 0, 0, 0, -1))
    assert capsys.readouterr() == ("", "")


def test_update_forms(ctld, capsys):
    """Abbreviated tags, ``Tag value`` pairs, ``JobId`` anywhere, lists, ``JobName=`` alone
    (jobs of that name), bare ``Nice``, ``TimeLimit+=``."""
    ctld.jobs = [job(5, name="a", time_limit=3600), job(6, name="a")] + arr()
    assert run(capsys, "update", "jobid=5,6", "timel", "10") == (0, "", "")
    assert run(capsys, "update", "Nice", "JobId=5") == (0, "", "")
    assert run(capsys, "update", "JobId=5", "TimeLimit+=30") == (0, "", "")
    assert run(capsys, "update", "JobName=a", "Comment=x") == (0, "", "")
    assert run(capsys, "update", "JobId=10_[4-5]", "Comment=x") == (0, "", "")
    got = [(p["job_ref"], p["changes"]) for p in ctld.params("update_job")]
    assert got == [
        ("5", {"TimeLimit": 600}), ("6", {"TimeLimit": 600}), ("5", {"Nice": 100}),
        ("5", {"TimeLimit": 5400}), ("5", {"Comment": "x"}), ("6", {"Comment": "x"}),
        ("10_4", {"Comment": "x"}), ("10_5", {"Comment": "x"}),
    ]


@pytest.mark.parametrize(("args", "err"), [
    (["JobId=5", "TimeLimit=abc"], "scontrol: error: Invalid TimeLimit value\n"),
    (["JobId=5", "TimeMin=x"], "scontrol: error: Invalid TimeMin value\n"),
    (["JobId=5", "Nice=3000000000"], "scontrol: error: Nice value out of range (+/- 2147483645). Value ignored\n"),
    (["JobId=5", "ArrayTaskThrottle=-1"], "scontrol: error: Invalid ArrayTaskThrottle value\n"),
    (["JobId=5", "Requeue=maybe"], "scontrol: error: Invalid Requeue value: maybe\n"),
    (["JobId=5", "MailType=sometimes"], "Invalid MailType: sometimes\n"),
    (["JobId=5", "Bogus=1"], "Update of this parameter is not supported: Bogus=1\nRequest aborted\n"),
    (["JobId=5", "Comment"], "Invalid input: Comment\nRequest aborted\n"),
    (["JobId=5"], "No changes specified\n"),
    (["JobId=5", "Comment+=x"], "scontrol: error: Option Comment does not accept [+|-]= syntax\n"),
    (["JobId=5", "TimeLimit+=-5"], "scontrol: error: Invalid syntax, variations of +=- are not accepted.\n"),
    (["TimeLimit+=5", "JobId=5"], "scontrol: error: JobId must precede TimeLimit increment or decrement\n"),
    (["JobId=5", "TimeLimit-=200"], "scontrol: error: TimeLimit decrement larger than current time limit "
                                    "(200 > 60)\n"),
    (["JobId=x5", "Comment=x"], "Invalid job id specified for job x5\n"),
    (["JobName=none", "Comment=x"], "scontrol: error: No jobs with name 'none'\n"),
    (["Comment=x", "Account=a"], 'No valid entity in update command\nInput line must include "NodeName", '
                                   '"PartitionName", "Reservation", "JobId", or "SlurmctldDebug"\n'),
])
def test_update_errors(ctld, capsys, args, err):
    ctld.jobs = [job(5)]
    assert run(capsys, "update", *args) == (1, "", err)
    assert not ctld.params("update_job")


def test_update_refused_by_controller(ctld, capsys):
    ctld.jobs = [job(5)]
    ctld.refused["5"] = ("access_denied", "Access/permission denied")
    assert run(capsys, "update", "JobId=5", "Comment=x") == (1, "", "Access/permission denied for job 5\n")


# ---------------------------------------------------------------------------------- other entities


def test_show_config_and_ping(ctld, capsys):
    rc, out, err = run(capsys, "show", "config")
    assert rc == 0 and err == ""
    head, rest = out.split("\n", 1)
    assert head == "Configuration data as of 2025-05-01T12:00:00" or head.startswith("Configuration data as of ")
    assert rest.startswith("ClusterName             = spur\nKillWait                = 30 sec\n")
    assert rest.endswith("\nSlurmctld(primary) at " + ctld.path + " is UP\n")
    rc, out, _ = run(capsys, "ping")
    assert (rc, out) == (0, f"Slurmctld(primary) at {ctld.path} is UP\n")


def test_show_partition_node_step(ctld, capsys):
    rc, out, _ = run(capsys, "show", "partition")
    assert rc == 0 and out.startswith("PartitionName=debug\n   AllowGroups=ALL ")
    assert "   Nodes=n[1-2]\n" in out
    # info_part.c / info_node.c print "not found" with printf: on stdout
    assert run(capsys, "show", "partition", "nope") == (1, "Partition nope not found\n", "")
    rc, out, _ = run(capsys, "-o", "show", "node", "n[1-2]")
    assert rc == 0 and out.count("\n") == 2
    assert run(capsys, "show", "node", "nope") == (1, "Node nope not found\n", "")
    step = {"job_id": 11, "step_id": 0, "name": "s", "state": "RUNNING", "start_time": 1746100740.0,
            "nodes": "n1", "node_count": 1, "ntasks": 1, "cpus": 1, "uid": 0}
    ctld.jobs = arr()
    ctld.jobs[1]["steps"] = [step]
    rc, out, _ = run(capsys, "-o", "show", "step")
    assert rc == 0 and out.startswith("StepId=10_1.0 UserId=0 StartTime=2025-05-01T11:59:00 TimeLimit=UNLIMITED ")
    rc, out, _ = run(capsys, "-o", "show", "step", "10_1.0")
    assert rc == 0 and out.startswith("StepId=10_1.0 ")
    assert run(capsys, "show", "step", "10_1.5") == (1, "Job step 10_1.5 not found\n", "")


def test_show_hosts(ctld, capsys, monkeypatch, tmp_path):
    assert run(capsys, "show", "hostnames", "n[1-3],m1") == (0, "n1\nn2\nn3\nm1\n", "")
    monkeypatch.setenv("SLURM_NODELIST", "a[1-2]")
    assert run(capsys, "show", "hostnames") == (0, "a1\na2\n", "")
    assert run(capsys, "show", "hostlist", "n3,n1,n2") == (0, "n[3,1-2]\n", "")
    assert run(capsys, "show", "hostlistsorted", "n3,n1,n2") == (0, "n[1-3]\n", "")
    names = tmp_path / "hosts"
    names.write_text("n2\nn1\n\nn3\n")
    assert run(capsys, "show", "hostlistsorted", str(names)) == (0, "n[1-3]\n", "")
    assert run(capsys, "show", "hostlist", "n[1-") == (1, "", "Invalid hostlist: n[1-\n")
    rc, out, err = run(capsys, "show", "hostlist")
    assert rc == 1 and err == "invalid encode argument\n" and out.startswith("scontrol [<OPTION>] [<COMMAND>]")
    assert not ctld.calls


def test_keywords_and_session(ctld, capsys):
    """_process_command: prefixes of a minimum length; unknown words; argument counts."""
    ctld.jobs = [job(5)]
    assert run(capsys, "sho", "j", "5")[0] == 0
    assert run(capsys, "sh", "job") == (1, "", "invalid keyword: sh\n")
    assert run(capsys, "show") == (1, "", "too few arguments for keyword:show\n")
    assert run(capsys, "show", "job", "5", "6") == (1, "", "too many arguments for keyword:show\n")
    assert run(capsys, "show", "bogus") == (1, "", "invalid entity:bogus for keyword:show\n")
    assert run(capsys, "ping", "x") == (1, "", "too many arguments for keyword:ping\n")
    assert run(capsys, "reconfigure") == (0, "", "")
    assert ctld.methods()[-1] == "reconfigure"
    ctld.refused["reconfigure"] = ("access_denied", "Access/permission denied")
    # _printf_error: "<what>:<strerror>", no space
    assert run(capsys, "reconfigure") == (1, "", "slurm_reconfigure error:Access/permission denied\n")
    assert run(capsys, "errnumstr", "2017") == (0, "Invalid job id specified\n", "")
    assert run(capsys, "errnumstr", "x") == (1, "", "numeric arguments required for keyword:errnumstr\n")
    assert run(capsys, "show", "reservation") == (0, "No reservations in the system\n", "")
    assert run(capsys, "show", "licenses") == (0, "No licenses configured\n", "")
    assert run(capsys, "version") == (0, "slurm 25.11.0\n", "")
    assert run(capsys, "-v", "version") == (0, "slurm 25.11.0\nslurm_api_version: 44, 25.11.0\n", "")


def test_interactive_mode(ctld, capsys, monkeypatch):
    """Commands from stdin, one a line; ``!!`` repeats the last; ``quit`` ends."""
    import io

    ctld.jobs = [job(5)]
    monkeypatch.setattr("sys.stdin", io.StringIO("oneliner\nshow job 5\n!!\nquit\nshow job 5\n"))
    assert scontrol.main([]) == 0
    assert capsys.readouterr().out.count("JobId=5 JobName=job.sh ") == 2


def test_completing(ctld, capsys):
    ctld.jobs = [job(5, "COMPLETING", base_state="CANCELLED", end_time=1746100790.0)]
    assert run(capsys, "completing") == (
        0, "JobId=5 EndTime=2025-05-01T11:59:50 CompletingTime=00:00:10 Nodes(COMPLETING)=n1 \n", "")
