"""Every option of the man pages of squeue, sacct, scontrol, sinfo and scancel (Slurm 25.11,
doc/man/man1/*.1) is accepted: each row runs the real ``main()`` against the fake controller
and checks the exit status Slurm would give and that no getopt complaint was printed.

Rows whose Slurm behaviour is an error in a cluster without the mechanism (sacct -c without
a job completion plugin) expect that error's status.
"""

from __future__ import annotations

import pytest
import query_fake
from query_fake import job

from spurcli import sacct, scancel, scontrol, sinfo, squeue

SQUEUE = [
    ["-A", "acct"], ["--account=acct"], ["-a"], ["--all"], ["-r"], ["--array"], ["-M", "spur"],
    ["--clusters=spur"], ["--expand-patterns"], ["--federation"], ["-o", "%i"], ["--format=%i"],
    ["-O", "jobid"], ["--Format=jobid"], ["--hide"], ["-h"], ["--noheader"], ["-j", "5"], ["--jobs=5"],
    ["-L", "lic"], ["--licenses=lic"], ["--local"], ["-l"], ["--long"], ["--me"], ["-n", "x"],
    ["--name=x"], ["--noconvert"], ["-w", "n1"], ["--nodelist=n1"], ["--notme"], ["--only-job-state"],
    ["-p", "debug"], ["--partition=debug"], ["-P"], ["--priority"], ["-q", "normal"], ["--qos=normal"],
    ["-R", "resv"], ["--reservation=resv"], ["--running-over=1"], ["--running-under=10"], ["--sibling"],
    ["-S", "i"], ["--sort=-t,i"], ["--start"], ["-s"], ["--steps"], ["-t", "all"], ["--states=R"],
    ["-u", "root"], ["--user=root"], ["-v"], ["--verbose"], ["--json"], ["--yaml"], ["--json=v0.0.44"],
]
SQUEUE_EXITS = [
    ["-V"], ["--version"], ["--help"], ["--usage"], ["--helpformat"], ["--helpFormat"], ["--helpstate"],
    ["-i", "5", "--autocomplete=--st"],
]

ctld = query_fake.ctld  # the fake controller fixture (tests/unit/query_fake.py)


@pytest.mark.parametrize("args", SQUEUE, ids=" ".join)
def test_squeue_accepts(ctld, capsys, args):
    ctld.jobs = [job(5)]
    assert squeue.main(args) == 0
    err = capsys.readouterr().err
    assert "unrecognized" not in err and "invalid option" not in err, err


@pytest.mark.parametrize("args", SQUEUE_EXITS, ids=" ".join)
def test_squeue_informational(ctld, capsys, args):
    assert squeue.main(args) == 0
    out = capsys.readouterr()
    assert out.out and not out.err
    assert not ctld.calls  # answered without the controller


SACCT = [
    ["-a"], ["--allusers"], ["-A", "acct"], ["--accounts=acct"], ["-X"], ["--allocations"], ["--array"],
    ["-b"], ["--brief"], ["-C", "x"], ["--constraints=x"], ["--delimiter=,", "-p"], ["-D"], ["--duplicates"],
    ["-E", "now"], ["--endtime=now"], ["--expand-patterns"], ["--federation"], ["-F", "SchedMain"],
    ["--flags=SchedMain"], ["-g", "0"], ["--gid=0"], ["--group=root"], ["-i", "1"], ["--nnodes=1-2"],
    ["-I", "1"], ["--ncpus=1-4"], ["-j", "5"], ["--jobs=5"], ["-k", "1"], ["--timelimit-min=1"],
    ["-K", "100"], ["--timelimit-max=100", "-k", "1"], ["-l"], ["--long"], ["-L"], ["--allclusters"],
    ["--local"], ["-M", "spur"], ["--clusters=all"], ["--name=x"], ["-N", "n1"], ["--nodelist=n1"],
    ["--noconvert"], ["--units=M"], ["-n"], ["--noheader"], ["-o", "jobid"], ["--format=jobid"],
    ["--fields=jobid"], ["-p"], ["--parsable"], ["-P"], ["--parsable2"], ["-q", "normal"], ["--qos=normal"],
    ["-r", "debug"], ["--partition=debug"], ["-R", "None"], ["--reason=Priority"], ["-s", "CD"],
    ["--state=running"], ["-S", "2025-01-01"], ["--starttime=now-1hour"], ["-T"], ["--truncate"],
    ["-u", "root"], ["--uid=0"], ["--user=-1"], ["--use-local-uid"], ["-v"], ["--verbose"], ["-W", "k"],
    ["--wckeys=k"], ["--whole-hetjob"], ["--whole-hetjob=no"], ["-x", "1"], ["--associations=1"],
    ["--json"], ["--yaml"], ["-B", "-j", "5"], ["--batch-script", "-j", "5"], ["--env-vars", "-j", "5"],
]
SACCT_EXITS = [["-V"], ["--version"], ["-h"], ["--help"], ["-U"], ["--usage"], ["-e"], ["--helpformat"],
               ["--help-fields"], ["--helpstate"], ["--helpreason"]]


@pytest.mark.parametrize("args", SACCT, ids=" ".join)
def test_sacct_accepts(ctld, capsys, args):
    ctld.history = [job(5, "COMPLETED")]
    assert sacct.main(args) == 0
    err = capsys.readouterr().err
    assert "unrecognized" not in err and "invalid option" not in err, err


@pytest.mark.parametrize("args", SACCT_EXITS, ids=" ".join)
def test_sacct_informational(ctld, capsys, args):
    assert sacct.main(args) == 0
    out = capsys.readouterr()
    assert out.out and not out.err
    assert not ctld.calls


@pytest.mark.parametrize("args", [["-c"], ["--completion"], ["-f", "/etc/hostname"]])
def test_sacct_completion_without_plugin(ctld, capsys, args):
    """sacct.c: without JobCompType, ``Slurm job completion is disabled`` and exit 1."""
    assert sacct.main(args) == 1
    assert capsys.readouterr().err == "Slurm job completion is disabled\n"


SCONTROL = [
    ["-a", "show", "job"], ["--all", "show", "job"], ["-d", "show", "job"], ["--details", "show", "job"],
    ["--federation", "show", "job"], ["-F", "show", "node"], ["--future", "show", "node"],
    ["--hide", "show", "job"], ["--local", "show", "job"], ["-M", "spur", "show", "job"],
    ["--clusters=spur", "show", "job"], ["-o", "show", "job"], ["--oneliner", "show", "job"],
    ["-Q", "show", "job"], ["--quiet", "show", "job"], ["--sibling", "show", "job"],
    ["-u", "root", "show", "job"], ["--uid=0", "show", "job"], ["-v", "show", "job"],
    ["--verbose", "show", "job"], ["--json", "show", "job"], ["--yaml", "show", "job"],
]


@pytest.mark.parametrize("args", SCONTROL, ids=" ".join)
def test_scontrol_accepts(ctld, capsys, args):
    ctld.jobs = [job(5)]
    assert scontrol.main(args) == 0
    err = capsys.readouterr().err
    assert "unrecognized" not in err and "invalid option" not in err, err


@pytest.mark.parametrize("args", [["-V"], ["--version"], ["-h"], ["--help"], ["--usage"]], ids=" ".join)
def test_scontrol_informational(ctld, capsys, args):
    assert scontrol.main(args) == 0
    assert capsys.readouterr().out
    assert not ctld.calls


SINFO = [
    ["-a"], ["--all"], ["-d"], ["--dead"], ["-e"], ["--exact"], ["--federation"], ["-F"], ["--future"],
    ["--hide"], ["-h"], ["--noheader"], ["--local"], ["-l"], ["--long"], ["-M", "spur"],
    ["--clusters=spur"], ["-n", "n1"], ["--nodes=n[1-2]"], ["--noconvert"], ["-N"], ["--Node"],
    ["-o", "%P %N"], ["--format=%P"], ["-O", "partition"], ["--Format=nodelist"], ["-p", "debug"],
    ["--partition=debug"], ["-r"], ["--responding"], ["-R"], ["--list-reasons"], ["-s"], ["--summarize"],
    ["-S", "N"], ["--sort=-P"], ["-t", "idle"], ["--states=mix,idle"], ["-T"], ["--reservation"], ["-v"],
    ["--verbose"], ["--json"], ["--yaml"],
]


@pytest.mark.parametrize("args", SINFO, ids=" ".join)
def test_sinfo_accepts(ctld, capsys, args):
    assert sinfo.main(args) == 0
    err = capsys.readouterr().err
    assert "unrecognized" not in err and "invalid option" not in err, err


@pytest.mark.parametrize("args", [["-V"], ["--version"], ["--help"], ["--usage"], ["--helpformat"],
                                  ["--helpFormat"], ["--helpstate"]], ids=" ".join)
def test_sinfo_informational(ctld, capsys, args):
    assert sinfo.main(args) == 0
    assert capsys.readouterr().out
    assert not ctld.calls


SCANCEL = [
    ["-A", "acct"], ["--account=acct"], ["--admin-comment=x", "5"], ["-b", "5"], ["--batch", "5"],
    ["--ctld", "5"], ["-c", "5"], ["--cron", "5"], ["-f", "5"], ["--full", "5"], ["-H", "5"],
    ["--hurry", "5"], ["-M", "spur", "5"], ["--clusters=spur", "5"], ["-n", "job.sh"], ["--name=job.sh"],
    ["--jobname=job.sh"], ["--me"], ["-w", "n1"], ["--nodelist=n1"], ["-p", "debug"],
    ["--partition=debug"], ["-q", "normal"], ["--qos=normal"], ["-Q", "5"], ["--quiet", "5"],
    ["-R", "resv"], ["--reservation=resv"], ["--sibling=spur", "5"], ["-s", "USR1", "5"],
    ["--signal=10", "5"], ["-t", "R"], ["--state=PENDING"], ["-u", "root"], ["--user=0"], ["-v", "5"],
    ["--verbose", "5"], ["--wckey=k"],
]


@pytest.mark.parametrize("args", SCANCEL, ids=" ".join)
def test_scancel_accepts(ctld, capsys, args):
    ctld.jobs = [job(5)]
    assert scancel.main(args) == 0
    err = capsys.readouterr().err
    assert "unrecognized" not in err and "invalid option" not in err, err


@pytest.mark.parametrize("args", [["-V"], ["--version"], ["--help"], ["--usage"]], ids=" ".join)
def test_scancel_informational(ctld, capsys, args):
    assert scancel.main(args) == 0
    assert capsys.readouterr().out
    assert not ctld.calls


def test_scancel_interactive_asks(ctld, capsys, monkeypatch):
    """scancel.c _confirmation: ``Cancel job_id=5 name=job.sh partition=debug [y/n]? ``;
    ``n`` leaves the job alone, ``y`` cancels it."""
    import io

    ctld.jobs = [job(5)]
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert scancel.main(["-i", "5"]) == 0
    assert capsys.readouterr().out == "Cancel job_id=5 name=job.sh partition=debug [y/n]? "
    assert not ctld.params("signal")
    monkeypatch.setattr("sys.stdin", io.StringIO("maybe\ny\n"))
    assert scancel.main(["--interactive", "5"]) == 0
    assert capsys.readouterr().out.count("[y/n]? ") == 2
    assert [p["job_ref"] for p in ctld.params("signal")] == ["5"]
