"""Scenarios for issue 13's parts the lead built after the harness: fencing of cut-off
agents, requeue on NODE_FAIL, refusing unresolvable TLS users, srun from a login host.
One still missing is ``xfail(strict=True)``: when it lands the test passes, strict xfail
turns that into a failure, and the marker comes off."""

from __future__ import annotations

import time

import pytest

from tests.hosts.cluster import wait_for
from tests.hosts.history import load_tasks
from tests.hosts.workload import SCRIPT


def _submit(cluster, name, seconds, host="login", extra=()):
    r = cluster.tool(host, ["sbatch", "--parsable", "-J", name, "-o", "/dev/null", *extra,
                            "--wrap", SCRIPT.format(seconds=seconds)])
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def _job(cluster, job_id):
    jobs = cluster.client_call("jobs", {"job_ids": [job_id]})["jobs"]
    return jobs[0] if jobs else None


def _alive(pid, job_id):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"SLURM_JOB_ID={job_id}\0".encode() in f.read()
    except OSError:
        return False


@pytest.mark.chaos
def test_cut_off_agent_fences_its_jobs(hosts, scenario):
    """An agent cut off from every controller for longer than node_timeout must stop its
    jobs (the controller has ended them NODE_FAIL and may start them elsewhere)."""
    cluster = hosts(nodes=1)
    s = scenario(cluster)
    job = _submit(cluster, "fence", 120)
    wait_for(lambda: [t for t in load_tasks(cluster.task_dir) if t.job == job], 20, "the job to start")
    task = next(t for t in load_tasks(cluster.task_dir) if t.job == job)
    s.isolate(task.node)
    # the node fails: the job ends NODE_FAIL, and (JobRequeue) waits for a new run
    wait_for(lambda: (j := _job(cluster, job) or {}).get("state") == "NODE_FAIL" or j.get("restarts", 0) >= 1,
             cluster.settings["node_timeout"] + 15, "NODE_FAIL (and the requeue)")
    deadline = time.monotonic() + cluster.settings["kill_wait"] + 5
    while _alive(task.pid, job) and time.monotonic() < deadline:
        time.sleep(0.2)
    s.heal()
    assert not _alive(task.pid, job), "the NODE_FAIL job still runs on the cut-off node"


@pytest.mark.chaos
def test_node_fail_requeues_the_job(hosts, scenario):
    """Slurm requeues a batch job whose node failed (JobRequeue=1): it runs again on
    another node with SLURM_RESTART_COUNT=1, and never on two nodes at once."""
    cluster = hosts(nodes=2, settings={"requeue_delay": 1})  # Slurm's cred_expire + 1 is 121 s
    s = scenario(cluster)
    job = _submit(cluster, "requeue", 120)
    wait_for(lambda: [t for t in load_tasks(cluster.task_dir) if t.job == job], 20, "the job to start")
    first = next(t for t in load_tasks(cluster.task_dir) if t.job == job)
    s.isolate(first.node)
    wait_for(lambda: [t for t in load_tasks(cluster.task_dir) if t.job == job and t.restarts >= 1],
             cluster.settings["node_timeout"] + 30, "the job to run again elsewhere")
    s.heal()
    again = [t for t in load_tasks(cluster.task_dir) if t.job == job and t.restarts >= 1]
    assert again[0].node != first.node


@pytest.mark.xfail(strict=True, reason="srun over TLS from a host without an agent is not implemented (issue 13, lead)")
def test_srun_from_the_login_host(hosts):
    """srun on a login host (TLS only, no local agent) runs a step on a compute node."""
    cluster = hosts(nodes=1)
    r = cluster.tool("login", ["srun", "-N1", "hostname"], timeout=30)
    assert r.returncode == 0, r.stderr


def test_unresolvable_tls_user_is_refused(hosts):
    """A client certificate whose CN has no passwd entry is refused, not run as uid -1."""
    cluster = hosts(nodes=1, extra_users=(("nosuchuser", "user"),))
    home = cluster.host_dir("login") / "home"
    r = cluster.tool("login", ["sbatch", "-o", "/dev/null", "--wrap", "true"],
                     env={"SPUR_CERT": str(home / "nosuchuser.pem"), "SPUR_KEY": str(home / "nosuchuser.key")})
    assert r.returncode == 1, r.stdout
    assert r.stderr.strip() == "sbatch: error: Batch job submission failed: Invalid user id"
