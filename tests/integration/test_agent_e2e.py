"""The agent with real controllers and real jobs: kills reach every process, results and
intents survive agent and controller restarts (issue: spurd)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from spurd.spool import LOG_NAME, read_reports
from spurio.client import Client
from tests.integration.conftest import wait_for
from tests.integration.test_e2e_cli import _job_pids, _proc_state

FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


def submit(cluster, script: str, cwd: Path, **spec) -> int:
    with Client(cluster.config, retry_for=30) as client:
        body = {"name": "t", "script": script, "cwd": str(cwd), **spec}
        return client.call("submit", {"request_id": f"t-{time.monotonic_ns()}", "spec": body})["job_id"]


def job(cluster, job_id: int) -> dict:
    with Client(cluster.config, retry_for=30) as client:
        return client.call("jobs", {"job_ids": [job_id]})["jobs"][0]


def wait_job(cluster, job_id: int, states=FINISHED, timeout: float = 60) -> dict:
    return wait_for(lambda: (j := job(cluster, job_id))["state"] in states and j, timeout,
                    f"job {job_id} in {states}", interval=0.05)


def test_scancel_leaves_nothing_of_a_daemonizing_job(make_cluster, tmp_path):
    """seed 003: a double-forked `setsid sleep` grandchild is found and killed too."""
    cluster = make_cluster(replicas=1, nodes=1)
    marker = f"spur-daemon-{time.monotonic_ns()}"
    script = (
        "#!/bin/bash\n"
        f"( setsid bash -c 'exec -a {marker}-gc sleep 300' & ) \n"
        f"exec -a {marker}-main sleep 300\n"
    )
    job_id = submit(cluster, script, tmp_path)
    wait_for(lambda: len(_job_pids(marker)) == 2, 30, "the job and its daemonized grandchild")
    with Client(cluster.config) as client:
        client.call("signal", {"request_id": f"k{job_id}", "job_id": job_id, "kind": 1})
    info = wait_job(cluster, job_id)
    assert info["state"] == "CANCELLED"
    wait_for(lambda: not _job_pids(marker), 10, "no process of the job left")


def test_result_of_a_job_finishing_while_controllers_are_down_arrives_once(make_cluster, tmp_path):
    cluster = make_cluster(replicas=1, nodes=1)
    gate = tmp_path / "gate"
    job_id = submit(cluster, f"#!/bin/bash\nwhile [ ! -e {gate} ]; do sleep 0.05; done\nexit 6\n", tmp_path)
    wait_job(cluster, job_id, ("RUNNING",))
    cluster.kill("ctld-1", signal.SIGTERM)
    gate.touch()  # the job ends while no controller runs
    spool = str(Path(cluster.config.agent_dir) / "node1" / "reports" / LOG_NAME)
    wait_for(lambda: read_reports(spool), 30, "the report in the agent's durable spool")
    cluster.start_replica(1)
    info = wait_job(cluster, job_id)
    assert (info["state"], info["exit_code"] >> 8) == ("FAILED", 6)
    assert [s["step_id"] for s in info["steps"]] == ["batch"]
    wait_for(lambda: not read_reports(spool), 30, "the spool to drain once the report is committed")


def test_kill_requested_while_the_agent_is_down_is_delivered_after_controller_restart(make_cluster, tmp_path):
    cluster = make_cluster(replicas=3, nodes=1, node_timeout=60.0)
    marker = f"spur-kill-later-{time.monotonic_ns()}"
    job_id = submit(cluster, f"#!/bin/bash\nexec -a {marker} sleep 300\n", tmp_path)
    wait_job(cluster, job_id, ("RUNNING",))
    wait_for(lambda: _job_pids(marker), 30, "the job's process")
    cluster.kill("node1", signal.SIGKILL)
    with Client(cluster.config, retry_for=30) as client:
        client.call("signal", {"request_id": f"k{job_id}", "job_id": job_id, "kind": 1})
    assert job(cluster, job_id)["state"] == "COMPLETING"
    for r in cluster.config.replicas:
        cluster.kill(f"ctld-{r.id}", signal.SIGKILL)
    assert _job_pids(marker), "the job must still run: nobody has told the agent yet"
    for r in cluster.config.replicas:
        cluster.start_replica(r.id)
    cluster.wait_leader()
    cluster.start_agent("node1")
    wait_for(lambda: not _job_pids(marker), 30, "the kill to reach the job")
    info = wait_job(cluster, job_id)
    assert info["state"] == "CANCELLED"


def test_kill_wait_is_honoured(make_cluster, tmp_path):
    """9: SIGTERM, then KillWait (here 1 s), then SIGKILL for what ignores SIGTERM."""
    cluster = make_cluster(replicas=1, nodes=1, kill_wait=1.0)
    ready = tmp_path / "ready"
    job_id = submit(cluster, f"#!/bin/bash\ntrap 'echo got-term >> {tmp_path}/log' TERM\ntouch {ready}\n"
                             "while true; do sleep 0.05; done\n", tmp_path)
    wait_for(ready.exists, 30, "the job to start")
    t0 = time.monotonic()
    with Client(cluster.config) as client:
        client.call("signal", {"request_id": f"k{job_id}", "job_id": job_id, "kind": 1})
    info = wait_job(cluster, job_id)
    elapsed = time.monotonic() - t0
    assert info["state"] == "CANCELLED" and info["exit_code"] == 9  # SIGKILLed after KillWait
    assert 0.9 <= elapsed < 5, elapsed
    assert "got-term" in (tmp_path / "log").read_text()


def test_node_failure_and_reconciliation(make_cluster, tmp_path):
    """Without fencing (fence_timeout = 0): a silent node goes DOWN, its job ends NODE_FAIL
    (and is not requeued: nothing proves it stopped); when the node returns, the job is
    killed there (reconciliation)."""
    cluster = make_cluster(replicas=1, nodes=1, node_timeout=2.0, settings={"fence_timeout": 0})
    marker = f"spur-nf-{time.monotonic_ns()}"
    job_id = submit(cluster, f"#!/bin/bash\nexec -a {marker} sleep 300\n", tmp_path)
    wait_job(cluster, job_id, ("RUNNING",))
    wait_for(lambda: _job_pids(marker), 30, "the job's process")
    pid = cluster.pid("node1")
    os.kill(pid, signal.SIGSTOP)  # the agent goes silent, its jobs keep running
    try:
        info = wait_job(cluster, job_id, ("NODE_FAIL",), timeout=30)
        assert (info["reason"], info["exit_code"], info["failed_node"]) == ("NodeDown", 1, "node1")
        assert all(_proc_state(p) in ("S", "R") for p in _job_pids(marker))
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: not _job_pids(marker), 30, "the returning node to kill the failed job")


def test_node_marked_down_while_its_agent_was_stopped_comes_back(make_cluster):
    """An agent stopped (SIGSTOP) past node_timeout keeps its connection open; the leader
    marks the node DOWN. After SIGCONT its heartbeats are refused, so it registers again
    and the node is UP (found by the simulation: heartbeats used to be accepted and the node
    stayed DOWN for good)."""
    cluster = make_cluster(replicas=1, nodes=1, node_timeout=2.0)
    with Client(cluster.config, retry_for=30) as client:
        def node_state() -> str:
            return client.call("nodes", {})["nodes"][0]["state"]

        wait_for(lambda: node_state() == "IDLE", 20, "node1 up")
        pid = cluster.pid("node1")
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: node_state() == "DOWN", 20, "node1 DOWN while its agent is stopped")
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(lambda: node_state() == "IDLE", 20, "node1 UP again after SIGCONT")


def test_agent_out_of_touch_fences_its_job_and_the_job_runs_again_elsewhere(make_cluster, tmp_path):
    """Fencing and JobRequeue (docs/reliability.md): node1's agent is stopped, so nothing
    renews its lease; its job's supervisor kills the job after fence_timeout (node_timeout / 2),
    before the controller may declare node1 failed; then the job (NODE_FAIL) is requeued and
    runs on node2 with SLURM_RESTART_COUNT=1. The two runs never overlap."""
    cluster = make_cluster(replicas=1, nodes=2, node_timeout=4.0, settings={"requeue_delay": 0.5})
    marker = tmp_path / "runs"
    name = f"spur-fence-{time.monotonic_ns()}"
    script = (f"#!/bin/bash\necho \"$SLURMD_NODENAME $SLURM_RESTART_COUNT\" >> {marker}\n"
              f"exec -a {name} sleep 300\n")
    with Client(cluster.config, retry_for=30) as client:
        job_id = client.call("submit", {"request_id": "fence", "spec": {
            "name": "fence", "script": script, "cwd": str(tmp_path), "stdout": "/dev/null"}})["job_id"]
        first = wait_for(lambda: _job_pids(name), 30, "the first run")
        assert job(cluster, job_id)["nodes"] == "node1"  # the scheduler fills node1 first
        agent = cluster.pid("node1")
        os.kill(agent, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            wait_for(lambda: not any(_proc_state(p) for p in first), 15, "the fenced run gone")
            fenced_after = time.monotonic() - t0
            second = wait_for(lambda: [p for p in _job_pids(name) if p not in first], 30, "the second run")
            info = job(cluster, job_id)
        finally:
            os.kill(agent, signal.SIGCONT)
        # gone before the controller could have declared node1 failed (node_timeout 4 s)
        assert fenced_after < 4.0, f"fenced {fenced_after:.1f} s after the agent stopped"
        assert (info["state"], info["nodes"], info["restarts"]) == ("RUNNING", "node2", 1)
        assert marker.read_text().splitlines() == ["node1 ", "node2 1"]  # SLURM_RESTART_COUNT: run 2 only
        assert second
        client.call("signal", {"job_id": job_id, "kind": 1, "request_id": "done"})
        wait_job(cluster, job_id)
