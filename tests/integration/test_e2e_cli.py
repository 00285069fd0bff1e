"""End to end through Slurm's command names on a ``spur local`` cluster (real replica, real
agent, real jobs). Each case cites the Slurm behaviour it pins (reference/slurm-behaviour.md).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spurctld.local import LocalCluster, write_config
from tests.integration.conftest import wait_for

BIN = Path(sys.executable).parent
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    write_config(d, replicas=1, nodes=1, cpus=4, kill_wait=1.0)
    c = LocalCluster(d)
    c.up()
    yield c
    c.down()


@pytest.fixture
def work(tmp_path):
    return tmp_path


def run(cluster, *args, cwd=None, check=True, timeout=60):
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, env=cluster.env,
                          cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    return proc


def sbatch(cluster, work, script: str, *opts: str) -> int:
    path = work / f"job{time.monotonic_ns()}.sh"
    path.write_text(script)
    out = run(cluster, "sbatch", "--parsable", *opts, str(path), cwd=work).stdout.strip()
    return int(out)


def show(cluster, job_id: int) -> dict[str, str]:
    """Slurm's testsuite parser (atf.get_jobs): `scontrol -d -o show job N` key=value pairs."""
    line = run(cluster, "scontrol", "-d", "-o", "show", "job", str(job_id)).stdout.strip()
    return dict(re.findall(r" *([^ =]+)=(.*?)(?= +[^ =]+=| *$)", line))


def wait_state(cluster, job_id: int, states=FINISHED, timeout: float = 60) -> dict[str, str]:
    def check():
        fields = show(cluster, job_id)
        return fields if fields["JobState"] in states else None

    return wait_for(check, timeout, f"job {job_id} to reach {states}", interval=0.05)


def sacct_rows(cluster, job_id: int, fields: str = "JobID,State,ExitCode,DerivedExitCode") -> list[str]:
    return run(cluster, "sacct", "-n", "-P", "-j", str(job_id), "-o", fields).stdout.splitlines()


@pytest.mark.parametrize(
    ("body", "state", "reason", "exit_code", "batch"),
    [
        ("exit 0", "COMPLETED", "None", "0:0", "COMPLETED|0:0"),
        ("exit 13", "FAILED", "NonZeroExitCode", "13:0", "FAILED|13:0"),
        ("exit 200", "FAILED", "NonZeroExitCode", "200:0", "FAILED|200:0"),
        ("exit 137", "FAILED", "NonZeroExitCode", "137:0", "FAILED|137:0"),
        ("kill -INT $$", "FAILED", "RaisedSignal:2(Interrupt)", "0:2", "CANCELLED|0:2"),
        ("kill -TERM $$", "FAILED", "RaisedSignal:15(Terminated)", "0:15", "CANCELLED|0:15"),
        ("kill -SEGV $$", "FAILED", "RaisedSignal:11(Segmentation_fault)", "0:11", "CANCELLED|0:11"),
        ("kill -KILL $$", "FAILED", "RaisedSignal:9(Killed)", "0:9", "CANCELLED|0:9"),
    ],
)
def test_batch_exit_status(cluster, work, body, state, reason, exit_code, batch):
    """1.4: the batch script's own status decides JobState/Reason/ExitCode."""
    job_id = sbatch(cluster, work, f"#!/bin/bash\n{body}\n")
    fields = wait_state(cluster, job_id)
    assert (fields["JobState"], fields["Reason"], fields["ExitCode"], fields["DerivedExitCode"]) == (
        state, reason, exit_code, "0:0"
    )
    assert sacct_rows(cluster, job_id) == [f"{job_id}|{state}|{exit_code}|0:0", f"{job_id}.batch|{batch}|"]
    # squeue prints state_desc unchanged (with spaces) and the compact state
    line = run(cluster, "squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%i|%t|%r").stdout.strip()
    expected = f"{job_id}|F|{reason.replace('_', ' ')}" if state == "FAILED" else f"{job_id}|CD|{reason}"
    assert line == expected


@pytest.mark.parametrize(("codes", "derived"), [((7, 3, 2), "7:0"), ((2, 3, 7), "7:0"), ((0, 0), "0:0")])
def test_srun_steps_set_derived_exit_code(cluster, work, codes, derived):
    """1.3 / test7.13: DerivedExitCode = max over steps; ExitCode from the script only."""
    body = "".join(f"srun bash -c 'exit {c}'\n" for c in codes)
    job_id = sbatch(cluster, work, f"#!/bin/bash\n{body}exit 0\n")
    fields = wait_state(cluster, job_id)
    assert (fields["JobState"], fields["ExitCode"], fields["DerivedExitCode"]) == ("COMPLETED", "0:0", derived)
    rows = sacct_rows(cluster, job_id)
    assert rows[:2] == [f"{job_id}|COMPLETED|0:0|{derived}", f"{job_id}.batch|COMPLETED|0:0|"]
    expected_steps = [f"{job_id}.{i}|{'COMPLETED' if c == 0 else 'FAILED'}|{c}:0|" for i, c in enumerate(codes)]
    assert rows[2:] == expected_steps
    out = (work / f"slurm-{job_id}.out").read_text()
    for c in codes:
        if c:
            assert f"srun: error: node1: task 0: Exited with exit code {c}" in out


def test_step_killed_by_a_signal(cluster, work):
    """A step whose task dies of SIGSEGV: step CANCELLED 0:11; srun exits 139; the shell sees it."""
    job_id = sbatch(cluster, work, "#!/bin/bash\nsrun bash -c 'kill -SEGV $$'\necho rc=$?\n")
    fields = wait_state(cluster, job_id)
    assert (fields["JobState"], fields["ExitCode"], fields["DerivedExitCode"]) == ("COMPLETED", "0:0", "0:11")
    assert sacct_rows(cluster, job_id)[2] == f"{job_id}.0|CANCELLED|0:11|"
    out = (work / f"slurm-{job_id}.out").read_text()
    assert "srun: error: node1: task 0: Segmentation fault" in out and "rc=139" in out


def test_scancel_running_job(cluster, work):
    """1.4 + 9: scancel → CANCELLED, ExitCode 0:15 (the shell's status); sacct `CANCELLED by <uid>`."""
    marker = work / "started"
    job_id = sbatch(cluster, work, f"#!/bin/bash\ntouch {marker}\nsleep 300\n")
    wait_for(marker.exists, 30, "the job to start")
    run(cluster, "scancel", str(job_id))
    fields = wait_state(cluster, job_id, ("CANCELLED",))
    assert (fields["Reason"], fields["ExitCode"]) == ("None", "0:15")
    uid = os.getuid()
    assert sacct_rows(cluster, job_id) == [
        f"{job_id}|CANCELLED by {uid}|0:0|0:0", f"{job_id}.batch|CANCELLED|0:15|"
    ]
    fixed = run(cluster, "sacct", "-j", str(job_id), "-X", "-o", "JobID,State,ExitCode").stdout.splitlines()
    assert fixed[2].split() == [str(job_id), "CANCELLED+", "0:0"]
    out = (work / f"slurm-{job_id}.out").read_text()  # 9: slurmstepd's notice (25.05+ wording)
    assert re.search(rf"^slurmstepd: error: \*\*\* JOB {job_id} ON node1 CANCELLED AT \S+ "
                     r"DUE to SIGNAL Terminated \*\*\*$", out, re.M), out


def test_scancel_pending_job_keeps_reason(cluster, work):
    """1.4: scancel of a pending job: CANCELLED, old reason kept, 0:0, no batch step."""
    job_id = sbatch(cluster, work, "#!/bin/bash\ntrue\n", "-H")
    assert show(cluster, job_id)["Reason"] == "JobHeldUser"
    run(cluster, "scancel", str(job_id))
    fields = wait_state(cluster, job_id, ("CANCELLED",))
    assert (fields["Reason"], fields["ExitCode"]) == ("JobHeldUser", "0:0")
    assert sacct_rows(cluster, job_id) == [f"{job_id}|CANCELLED by {os.getuid()}|0:0|0:0"]


SIGNAL_SCRIPT = """#!/bin/bash
trap 'echo batch-got-usr1 >> {log}' USR1
bash -c 'trap "echo child-got-usr1 >> {log}" USR1; touch {ready}.child; while true; do sleep 0.1; done' &
srun bash -c 'trap "echo step-got-usr1 >> {log}" USR1; touch {ready}.step; while true; do sleep 0.1; done' &
while true; do sleep 0.1; done
"""


@pytest.mark.parametrize(
    ("flags", "verbose", "expected"),
    [
        ((), "Signal 10 to job {id}", {"step-got-usr1"}),
        (("-b",), "Signal 10 to batch job {id}", {"batch-got-usr1"}),
        (("-f",), "Signal 10 to full job {id}", {"batch-got-usr1", "child-got-usr1", "step-got-usr1"}),
    ],
)
def test_scancel_signal_recipients(cluster, work, flags, verbose, expected):
    """6 + test6.15: no flag → steps only; --batch → the shell only; --full → everything."""
    log, ready = work / "signals.log", work / "ready"
    job_id = sbatch(cluster, work, SIGNAL_SCRIPT.format(log=log, ready=ready))
    wait_for(lambda: Path(f"{ready}.child").exists() and Path(f"{ready}.step").exists(), 30, "the job's processes")
    proc = run(cluster, "scancel", "-v", "-s", "USR1", *flags, str(job_id))
    assert verbose.format(id=job_id) in proc.stderr
    wait_for(lambda: log.exists() and set(log.read_text().split()) >= expected, 20, f"{expected} in {log}")
    time.sleep(0.3)  # let a wrongly signalled process show itself before checking none did
    assert set(log.read_text().split()) == expected
    run(cluster, "scancel", str(job_id))
    wait_state(cluster, job_id, ("CANCELLED",))


def _job_pids(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmd:
                pids.append(int(entry))
    return pids


def _proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_suspend_and_resume(cluster, work):
    """9: scontrol suspend → SUSPENDED, processes stopped (T); resume → RUNNING again."""
    marker = f"spur-suspend-{time.monotonic_ns()}"
    job_id = sbatch(cluster, work, f"#!/bin/bash\nexec -a {marker} sleep 300\n")
    wait_state(cluster, job_id, ("RUNNING",))
    wait_for(lambda: _job_pids(marker), 20, "the job's process")
    run(cluster, "scontrol", "suspend", str(job_id))
    assert show(cluster, job_id)["JobState"] == "SUSPENDED"
    wait_for(lambda: all(_proc_state(p) == "T" for p in _job_pids(marker)), 20, "processes in state T")
    run(cluster, "scontrol", "resume", str(job_id))
    assert show(cluster, job_id)["JobState"] == "RUNNING"
    wait_for(lambda: all(_proc_state(p) in ("S", "R") for p in _job_pids(marker)), 20, "processes running")
    run(cluster, "scancel", str(job_id))
    wait_state(cluster, job_id, ("CANCELLED",))
    wait_for(lambda: not _job_pids(marker), 20, "no process of the job left")


def test_dependency_never_satisfied(cluster, work):
    """2.2: afterok on a failed job → Dependency=afterok:N(failed), Reason=DependencyNeverSatisfied."""
    first = sbatch(cluster, work, "#!/bin/bash\nexit 1\n")
    wait_state(cluster, first)
    second = sbatch(cluster, work, "#!/bin/bash\ntrue\n", "-d", f"afterok:{first}")
    fields = wait_for(lambda: (f := show(cluster, second))["Reason"] == "DependencyNeverSatisfied" and f, 20,
                      "DependencyNeverSatisfied")
    assert fields["JobState"] == "PENDING"
    assert fields["Dependency"] == f"afterok:{first}(failed)"
    line = run(cluster, "squeue", "-h", "-j", str(second), "-o", "%i %t %R").stdout.strip()
    assert line == f"{second} PD (DependencyNeverSatisfied)"
    run(cluster, "scancel", str(second))


def test_time_limit(cluster, work):
    """9 + 1.4: a job past its limit is terminated (SIGTERM, KillWait, SIGKILL): TIMEOUT / TimeLimit."""
    client = cluster.client()
    spec = {"name": "tl", "script": "#!/bin/bash\ntrap '' TERM\nsleep 300\n", "cwd": str(work), "time_limit": 1}
    job_id = client.call("submit", {"request_id": f"tl-{time.monotonic_ns()}", "spec": spec})["job_id"]
    fields = wait_state(cluster, job_id, ("TIMEOUT",), timeout=30)
    assert (fields["Reason"], fields["ExitCode"]) == ("TimeLimit", "0:9")  # TERM ignored: KILL after KillWait
    assert sacct_rows(cluster, job_id)[0] == f"{job_id}|TIMEOUT|0:0|0:0"
    out = (work / f"slurm-{job_id}.out").read_text()
    assert re.search(rf"^slurmstepd: error: \*\*\* JOB {job_id} ON node1 CANCELLED AT "
                     r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d DUE TO TIME LIMIT \*\*\*$", out, re.M), out


def test_sbatch_wait_exits_with_the_job_exit_code(cluster, work):
    """test17.42: sbatch --wait blocks until the job ends and exits with its exit code."""
    path = work / "w.sh"
    path.write_text("#!/bin/bash\nexit 5\n")
    proc = run(cluster, "sbatch", "--wait", str(path), cwd=work, check=False)
    assert proc.returncode == 5
    assert re.match(r"Submitted batch job \d+", proc.stdout)


def test_unknown_job_id_messages(cluster):
    """3: scontrol/squeue on an unknown id: `slurm_load_jobs error: Invalid job id specified`, exit 1."""
    proc = run(cluster, "scontrol", "show", "job", "999999", check=False)
    assert proc.returncode == 1 and "slurm_load_jobs error: Invalid job id specified" in proc.stderr
    proc = run(cluster, "squeue", "-j", "999999", check=False)
    assert proc.returncode == 1 and "slurm_load_jobs error: Invalid job id specified" in proc.stderr
    proc = run(cluster, "scancel", "999999", check=False)  # silently ignored (6)
    assert proc.returncode == 0 and proc.stderr == ""


def test_srun_outside_an_allocation_creates_a_one_step_job(cluster, work):
    proc = run(cluster, "srun", "bash", "-c", "echo out-of-allocation; exit 4", cwd=work, check=False)
    assert proc.returncode == 4
    assert "out-of-allocation" in proc.stdout
    assert "srun: error: node1: task 0: Exited with exit code 4" in proc.stderr


def test_controller_unreachable_message(tmp_path):
    write_config(tmp_path, replicas=3, nodes=0)
    env = dict(os.environ, SPUR_CONF=str(tmp_path / "spur.toml"), SPUR_CLIENT_RETRY="0.3")
    proc = subprocess.run([str(BIN / "squeue")], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "controller unavailable: no leader (0 of 3 replicas reachable)" in proc.stderr


def test_spur_log_follows_without_gap_or_duplicate(cluster, work):
    """Joblet #172: history then live output, no gap and no duplicate, several readers at once."""
    job_id = sbatch(cluster, work, "#!/bin/bash\nfor i in $(seq 1 40); do echo line$i; sleep 0.02; done\n")
    readers = [subprocess.Popen([str(BIN / "spur"), "log", "-f", str(job_id)], stdout=subprocess.PIPE, text=True,
                                env=cluster.env) for _ in range(3)]
    outs = [r.communicate(timeout=60)[0] for r in readers]
    expected = "".join(f"line{i}\n" for i in range(1, 41))
    assert outs == [expected] * 3


def test_spur_local_status_lists_daemons(cluster):
    proc = run(cluster, "spur", "local", "status", "--dir", str(cluster.dir), "--json")
    import json

    rows = json.loads(proc.stdout)
    roles = {r["name"]: r["role"] for r in rows}
    assert roles["ctld-1"] == "leader" and roles["node1"] == "agent"
    assert all(r["pid"] for r in rows)


def test_history_shows_the_job_as_it_was(cluster, work):
    marker = work / "started"
    job_id = sbatch(cluster, work, f"#!/bin/bash\ntouch {marker}\nsleep 2.5\n")
    wait_for(marker.exists, 30, "the job to start")
    during = int(time.time()) + 1  # a whole second at which the job surely runs
    wait_state(cluster, job_id)
    proc = run(cluster, "spur", "history", str(job_id), "--at", f"uts{during}")
    assert "JobState=RUNNING" in proc.stdout
    now = run(cluster, "spur", "history", str(job_id)).stdout
    assert "JobState=COMPLETED" in now


def test_agent_restart_keeps_jobs_and_reports(cluster, work):
    """spurd SIGKILLed while a job runs: the job keeps running; after restart its exit code arrives."""
    marker = work / "started"
    job_id = sbatch(cluster, work, f"#!/bin/bash\ntouch {marker}\nsleep 2\nexit 7\n")
    wait_for(marker.exists, 30, "the job to start")
    cluster.kill("node1", signal.SIGKILL)
    cluster.start_agent("node1")
    fields = wait_state(cluster, job_id)
    assert (fields["JobState"], fields["ExitCode"]) == ("FAILED", "7:0")


def test_scancel_by_user_cancels_a_whole_queue_in_few_calls(cluster, work):
    """6: `scancel -u USER` ends every pending and running job of the user (signal_many)."""
    import pwd

    ids = [sbatch(cluster, work, "#!/bin/bash\ntrue\n", "-H", "-J", "bulk") for _ in range(30)]
    user = pwd.getpwuid(os.getuid()).pw_name
    run(cluster, "scancel", "-u", user, "-n", "bulk")
    for job_id in ids:
        assert show(cluster, job_id)["JobState"] == "CANCELLED"
