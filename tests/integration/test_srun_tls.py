"""srun, sattach and sstat reaching the agents over TLS, and the end of a step whose launch
failed (issue 13), on loopback clusters.

"Another host" is a private mount namespace where the cluster's ``run/`` directory (the
controllers' and the agents' Unix sockets) is an empty tmpfs, as on a login node: the tools
must use the replicas' ``rpc`` and the agents' TLS endpoints with the user's certificate
(``SPUR_CERT``/``SPUR_KEY``). That needs root (``unshare --mount``), as the multi-host
scenarios do; the failed-launch test needs nothing special.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spurctld.local import LocalCluster, write_config
from tests.integration.conftest import wait_for

BIN = Path(sys.executable).parent
ME = pwd.getpwuid(os.getuid()).pw_name
OTHER = "nobody" if ME != "nobody" else "daemon"  # a real user who does not own our jobs
elsewhere_needs = "root and unshare (a mount namespace hides the cluster's sockets)"
needs_elsewhere = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                     reason=f"needs {elsewhere_needs}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    write_config(d, replicas=1, nodes=2, cpus=4, kill_wait=1.0, tls=True, tls_users=[(ME, "user"), (OTHER, "user")])
    c = LocalCluster(d)
    c.up()
    yield c
    c.down()


def elsewhere(cluster: LocalCluster, argv: list[str]) -> list[str]:
    """``argv`` on "another host": the cluster's Unix sockets are not there."""
    script = 'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, str(cluster.dir / "run"),
            *argv]


def tool(cluster, user, *args, check=True, timeout=90, remote=True, **kw):
    env = {**cluster.env, **cluster.client_cert(user)}
    argv = [str(BIN / args[0]), *args[1:]]
    proc = subprocess.run(elsewhere(cluster, argv) if remote else argv, capture_output=True, text=True, env=env,
                          timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    return proc


def sacct(cluster, job_id):
    return tool(cluster, ME, "sacct", "-n", "-P", "-j", str(job_id), "-o", "JobID,State,ExitCode",
                remote=False).stdout.split()


def last_job(cluster) -> int:
    with cluster.client() as c:
        return max(j["job_id"] for j in c.call("jobs", {})["jobs"])


def test_the_agents_register_both_endpoints(cluster):
    with cluster.client() as c:
        addresses = {n["name"]: n["address"] for n in c.call("nodes", {})["nodes"]}
    for name in ("node1", "node2"):
        assert re.fullmatch(rf"tcp:127\.0\.0\.1:\d+ unix:{re.escape(str(cluster.dir / 'run' / name))}\.sock",
                            addresses[name]), addresses


@needs_elsewhere
def test_srun_over_tls_runs_and_accounts_the_step(cluster, tmp_path):
    out = tool(cluster, ME, "srun", "-N2", "-n2", "-l", "bash", "-c", "echo $SLURMD_NODENAME; cat", cwd=tmp_path,
               input="to every task\n")
    lines = sorted(out.stdout.splitlines())
    assert lines == ["0: node1", "0: to every task", "1: node2", "1: to every task"], out.stderr
    assert out.stderr == ""
    job = last_job(cluster)
    assert sacct(cluster, job) == [f"{job}|COMPLETED|0:0", f"{job}.0|COMPLETED|0:0"]


@needs_elsewhere
def test_another_users_certificate_is_refused_by_the_agent(cluster, tmp_path):
    """The controllers let any user read the queue; the agent refuses to attach (or stat)
    someone else's step, in Slurm's words, as it does for a local peer uid."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\nsrun bash -c 'touch {started}; while [ ! -e {gate} ]; do sleep 0.05; done; "
                      "echo attached'\n")
    job = int(tool(cluster, ME, "sbatch", "--parsable", "-o", "/dev/null", str(script), cwd=tmp_path,
                   remote=False).stdout)
    try:
        wait_for(lambda: started.exists(), 60, "the step")
        refused = tool(cluster, OTHER, "sattach", f"{job}.0", check=False, stdin=subprocess.DEVNULL)
        assert refused.returncode == 1
        assert refused.stderr == "sattach: error: node1: Access/permission denied\n"
        stat = tool(cluster, OTHER, "sstat", "-n", "-P", "-j", f"{job}.0", "-o", "JobID", check=False)
        assert f"problem getting step_layout for {job}.0: Access/permission denied" in stat.stderr
        # the owner, from the same "host", gets through
        owner = subprocess.Popen(elsewhere(cluster, [str(BIN / "sattach"), f"{job}.0"]), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                 env={**cluster.env, **cluster.client_cert(ME)})
        assert tool(cluster, ME, "sstat", "-n", "-P", "-j", f"{job}.0", "-o", "JobID").stdout.strip() == f"{job}.0"
        time.sleep(1.0)  # let sattach attach before the output comes (as test_steps_e2e does)
        gate.touch()
        out, err = owner.communicate(timeout=60)
        assert owner.returncode == 0, err
        assert out == "attached\n"
    finally:
        gate.touch()


@needs_elsewhere
def test_agent_restart_keeps_a_tls_steps_io(cluster, tmp_path):
    """spurd SIGKILLed and restarted while it hosts part of a step srun reached over TLS:
    the relay, like the supervisor, is not the agent's, so the step's output still comes."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    srun = subprocess.Popen(
        elsewhere(cluster, [str(BIN / "srun"), "-N2", "-n2", "-l", "bash", "-c",
                            f"touch {started}.$SLURM_PROCID; while [ ! -e {gate} ]; do sleep 0.05; done; "
                            "echo end $SLURMD_NODENAME"]),
        env={**cluster.env, **cluster.client_cert(ME)}, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: Path(f"{started}.0").exists() and Path(f"{started}.1").exists(), 60, "both tasks")
        cluster.kill("node2", signal.SIGKILL)
        cluster.start_agent("node2")
        cluster.wait_nodes(["node2"])
    finally:
        gate.touch()
    out, err = srun.communicate(timeout=60)
    assert srun.returncode == 0, err
    assert sorted(out.splitlines()) == ["0: end node1", "1: end node2"]


def test_failed_launch_ends_the_step_and_the_job(make_cluster, tmp_path):
    """node2's agent cannot be reached (its socket is gone; it still talks to the
    controller): srun prints Slurm's lines, kills the step through the controller (the
    tasks node1 started end; node2's agent reports its part killed), and the job srun
    made for itself ends FAILED with no step left RUNNING (issue 13: it was CANCELLED
    with the step RUNNING forever)."""
    c = make_cluster(replicas=1, nodes=2, cpus=2, kill_wait=1.0)
    sock = c.dir / "run" / "node2.sock"
    aside = c.dir / "run" / "node2.sock.aside"
    try:
        os.rename(sock, aside)
        marker = tmp_path / "ran"
        t0 = time.monotonic()
        proc = subprocess.run([str(BIN / "srun"), "-N2", "-n2", "bash", "-c", f"echo $$ >> {marker}; sleep 60"],
                              env=c.env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert time.monotonic() - t0 < 40  # not the tasks' 60 s: node1's part was killed
    finally:
        os.rename(aside, sock)
    with c.client() as cl:
        job = max(j["job_id"] for j in cl.call("jobs", {})["jobs"])
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[:4] == [
        f"srun: error: node2: cannot connect to the agent at unix:{sock}: No such file or directory",
        f"srun: error: Task launch for StepId={job}.0 failed on node node2: Communication connection failure",
        "srun: error: Application launch failed: Communication connection failure",
        "srun: Job step aborted: Waiting up to 3 seconds for job step to finish.",
    ]
    # then only slurmstepd's notice from node1 (the task lines of a step srun killed are quiet)
    assert all(re.fullmatch(rf"slurmstepd: error: \*\*\* STEP {job}\.0 ON node1 CANCELLED AT \S+ .*\*\*\*", x)
               for x in lines[4:]), lines
    pid = int(marker.read_text().split()[0])  # node1's task started, then was killed
    assert not _alive(pid)
    rows = subprocess.run([str(BIN / "sacct"), "-n", "-P", "-j", str(job), "-o", "JobID,State,ExitCode"], env=c.env,
                          capture_output=True, text=True).stdout.split()
    # the step's status is its nodes' highest: node1's task SIGTERMed (node2's part: 0:9)
    assert rows == [f"{job}|FAILED|1:0", f"{job}.0|CANCELLED|0:15"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
