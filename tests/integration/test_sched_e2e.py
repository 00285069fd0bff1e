"""The scheduler end to end on a ``spur local`` cluster: two partitions (batch = node1-2,
gpu = node3), three 2-CPU nodes with two fake GPUs each. Placement, pending reasons,
backfill, the GPU environment, drain/resume and accounting limits, through the controller's
RPCs and the command-line tools, as an admin and a user would see them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spurctld.local import LocalCluster, write_config
from spurio.client import Client
from spurio.rpc import RpcError
from tests.integration.conftest import wait_for

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    d = tmp_path_factory.mktemp("sched")
    write_config(d, replicas=1, nodes=3, cpus=2, gpus=2, partitions="batch=node[1-2];gpu=node3")
    c = LocalCluster(d)
    try:
        c.up()
        yield c
    finally:
        c.down()


def submit(client: Client, cwd: Path, script: str = "#!/bin/sh\nsleep 30\n", **spec) -> int:
    body = {"name": "t", "script": script, "cwd": str(cwd), "stdout": str(cwd / "out-%j.txt"), **spec}
    return client.call("submit", {"request_id": f"t-{time.monotonic_ns()}", "spec": body})["job_id"]


def job(client: Client, job_id: int) -> dict:
    return client.call("jobs", {"job_ids": [job_id]})["jobs"][0]


def cancel(client: Client, *job_ids: int) -> None:
    for job_id in job_ids:
        try:
            client.call("signal", {"request_id": f"k-{time.monotonic_ns()}", "job_id": job_id, "kind": 1})
        except RpcError:
            pass


def wait_state(client: Client, job_id: int, states: tuple[str, ...], timeout: float = 30) -> dict:
    return wait_for(lambda: (j := job(client, job_id))["state"] in states and j, timeout,
                    f"job {job_id} in {states}")


def idle(client: Client) -> bool:
    nodes = client.call("nodes")["nodes"]
    return all(n["state"] == "IDLE" for n in nodes)


def test_partitions_and_nodes_as_configured(cluster: LocalCluster) -> None:
    with Client(cluster.config, retry_for=30) as client:
        parts = client.call("partitions")
        assert parts["default"] == "batch"
        assert [(p["name"], p["nodes"]) for p in parts["partitions"]] == [("batch", "node[1-2]"), ("gpu", "node3")]
        nodes = {n["name"]: n for n in client.call("nodes")["nodes"]}
        assert nodes["node3"]["gres"] == "gpu:2" and nodes["node3"]["partitions"] == ["gpu"]
        assert nodes["node1"]["partitions"] == ["batch"] and nodes["node1"]["state"] == "IDLE"


def test_unknown_partition_is_refused_by_sbatch(cluster: LocalCluster, tmp_path: Path) -> None:
    out = subprocess.run([str(BIN / "sbatch"), "-p", "nope", "--wrap", "true"], env=cluster.env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr == "sbatch: error: Batch job submission failed: Invalid partition name specified\n"


def test_an_agent_with_an_unconfigured_name_is_refused(cluster: LocalCluster) -> None:
    from spurio import rpc

    with rpc.SyncClient.unix(cluster.config.replicas[0].socket, timeout=5) as c:
        for name in ("node9", ["True"], {"nodes": None}):
            with pytest.raises(RpcError) as err:
                c.call("node_register", {"name": name, "cpus": 2, "mem_mb": 4096, "address": ""})
            assert err.value.code in ("invalid_node", "bad_request")
    with Client(cluster.config) as client:
        assert sorted(n["name"] for n in client.call("nodes")["nodes"]) == ["node1", "node2", "node3"]


def test_gpu_jobs_get_their_devices_in_the_environment(cluster: LocalCluster, tmp_path: Path) -> None:
    script = "#!/bin/sh\necho $CUDA_VISIBLE_DEVICES $ROCR_VISIBLE_DEVICES $HIP_VISIBLE_DEVICES " \
             "$GPU_DEVICE_ORDINAL $SLURM_JOB_GPUS $SLURM_GPUS_ON_NODE $SLURM_JOB_PARTITION\nsleep 3\n"
    with Client(cluster.config, retry_for=30) as client:
        first = submit(client, tmp_path, script, partition="gpu", gpus="1", time_limit=60)
        second = submit(client, tmp_path, script, partition="gpu", gres="gpu:1", time_limit=60)
        third = submit(client, tmp_path, script, partition="gpu", gpus_per_node="2", time_limit=60)
        a, b = wait_state(client, first, ("RUNNING", "COMPLETED")), wait_state(client, second, ("RUNNING",
                                                                                                  "COMPLETED"))
        assert a["nodes"] == b["nodes"] == "node3"
        assert "gres/gpu=1" in a["alloc_tres"]
        info = job(client, third)
        assert (info["state"], info["reason"]) == ("PENDING", "Resources")
        for job_id in (first, second, third):
            wait_state(client, job_id, ("COMPLETED",), 60)
        texts = [(tmp_path / f"out-{j}.txt").read_text() for j in (first, second, third)]
        assert texts == ["0 0 0 0 0 1 gpu\n", "1 1 1 1 1 1 gpu\n", "0,1 0,1 0,1 0,1 0,1 2 gpu\n"]


def test_backfill_fills_around_the_reservation_of_a_wide_job(cluster: LocalCluster, tmp_path: Path) -> None:
    with Client(cluster.config, retry_for=30) as client:
        wait_for(lambda: idle(client), 30, "idle nodes")
        long = submit(client, tmp_path, nodelist="node1", ntasks=2, time_limit=300)
        wait_state(client, long, ("RUNNING",))
        wide = submit(client, tmp_path, nodes=2, ntasks=4, time_limit=300)
        late = submit(client, tmp_path, ntasks=2, time_limit=600)  # would delay the wide job
        short = submit(client, tmp_path, ntasks=2, time_limit=120)  # ends before it: backfills
        started = wait_state(client, short, ("RUNNING",))
        assert started["nodes"] == "node2"
        w, lt = job(client, wide), job(client, late)
        assert (w["state"], w["reason"], lt["state"], lt["reason"]) == ("PENDING", "Resources", "PENDING", "Priority")
        started_long = job(client, long)["start_time"]
        # squeue --start: the wide job is expected when the long job's time limit ends
        assert abs(w["start_time"] - (started_long + 300)) <= 61
        assert w["sched_nodes"] == "node[1-2]"
        cancel(client, long, wide, late, short)


def test_drain_and_resume_through_the_controller(cluster: LocalCluster, tmp_path: Path) -> None:
    with Client(cluster.config, retry_for=30) as client:
        wait_for(lambda: idle(client), 30, "idle nodes")
        client.call("update_node", {"names": "node2", "state": "DRAIN", "reason": "bad fan"})
        nodes = {n["name"]: n for n in client.call("nodes")["nodes"]}
        assert (nodes["node2"]["state"], nodes["node2"]["reason"]) == ("DRAINED", "bad fan")
        pinned = submit(client, tmp_path, nodelist="node2", time_limit=60, script="#!/bin/sh\ntrue\n")
        info = wait_for(lambda: (j := job(client, pinned))["reason"] != "None" and j, 10, "a reason")
        assert info["reason"].startswith("ReqNodeNotAvail")
        with pytest.raises(RpcError) as err:
            client.call("update_node", {"names": "node2", "state": "DOWN", "reason": ""})
        assert err.value.message == "You must specify a reason when DOWNING or DRAINING a node"
        client.call("update_node", {"names": "node2", "state": "RESUME"})
        wait_state(client, pinned, ("COMPLETED",))


def test_sacctmgr_and_limits(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    d = tmp_path_factory.mktemp("limits")
    write_config(d, replicas=1, nodes=1, cpus=2, scheduling={"AccountingStorageEnforce": "associations,limits,qos"})
    c = LocalCluster(d)
    user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
    try:
        c.up()

        def sacctmgr(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(BIN / "sacctmgr"), *args], env=c.env, capture_output=True, text=True)

        assert sacctmgr("-i", "add", "account", "phys", "Description=physics").returncode == 0
        assert sacctmgr("-i", "add", "user", user, "Account=phys", "MaxJobs=1").returncode == 0
        shown = sacctmgr("-n", "-P", "show", "association", "format=Account,User,MaxJobs").stdout
        assert f"phys|{user}|1\n" in shown
        refused = subprocess.run([str(BIN / "sbatch"), "-A", "chem", "--wrap", "true"], env=c.env, cwd=tmp_path,
                                 capture_output=True, text=True)
        assert refused.returncode == 1 and refused.stderr == (
            "sbatch: error: Batch job submission failed: "
            "Invalid account or account/partition combination specified\n")
        with Client(c.config, retry_for=30) as client:
            first = submit(client, tmp_path, time_limit=60)
            second = submit(client, tmp_path, time_limit=60)
            assert wait_state(client, first, ("RUNNING",))["account"] == "phys"
            info = wait_for(lambda: (j := job(client, second))["reason"] == "AssocMaxJobsLimit" and j, 10,
                            "the limit's reason")
            assert info["state"] == "PENDING"
            cancel(client, first)
            wait_state(client, second, ("RUNNING",))
            cancel(client, second)
        share = subprocess.run([str(BIN / "sshare"), "-a", "-P"], env=c.env, capture_output=True, text=True)
        assert share.returncode == 0 and f"phys|{user}|1|" in share.stdout
    finally:
        c.down()


def test_gpus_are_isolated_by_a_devices_cgroup_where_the_node_allows_it(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Slurm's ConstrainDevices: a job sees only the device files of its GPUs, numbered from 0.
    Two character devices stand in for the GPUs: /dev/zero is GPU 0 and /dev/full GPU 1."""
    from spurd import devices

    if os.geteuid() != 0 or devices._devices_base() is None:
        pytest.skip("needs root and a cgroup v1 devices hierarchy")
    d = tmp_path_factory.mktemp("devices")
    write_config(d, replicas=1, nodes=1, cpus=2, gpus=2,
                 extra='\n[[gres]]\nName = "gpu"\nFile = "/dev/zero,/dev/full"\n')
    c = LocalCluster(d)
    script = ("#!/bin/sh\necho $CUDA_VISIBLE_DEVICES $SLURM_JOB_GPUS\n"
              "for dev in zero full; do head -c1 /dev/$dev >/dev/null 2>&1 && echo $dev-ok || echo $dev-denied; done\n"
              "sleep 2\n")
    try:
        c.up()
        with Client(c.config, retry_for=30) as client:
            first = submit(client, tmp_path, script, gpus="1", time_limit=60)
            second = submit(client, tmp_path, script, gpus="1", time_limit=60)
            for job_id in (first, second):
                wait_state(client, job_id, ("COMPLETED", "FAILED"), 60)
        assert (tmp_path / f"out-{first}.txt").read_text() == "0 0\nzero-ok\nfull-denied\n"
        assert (tmp_path / f"out-{second}.txt").read_text() == "0 1\nzero-denied\nfull-ok\n"
    finally:
        c.down()


def test_test_only_names_the_partition_the_job_would_start_in(cluster, tmp_path):
    """sbatch --test-only -p gpu,batch: the answer names the partition picked, not the list
    (nothing is submitted)."""
    with Client(cluster.config) as client:
        before = len(client.call("jobs")["jobs"])
        answer = client.call("submit", {"test_only": True, "spec": {
            "name": "t", "script": "#!/bin/sh\ntrue\n", "cwd": str(tmp_path), "partition": "gpu,batch",
            "nodelist": "node3"}})
        assert answer["partition"] == "gpu" and answer["nodes"] == "node3"
        answer = client.call("submit", {"test_only": True, "spec": {
            "name": "t", "script": "#!/bin/sh\ntrue\n", "cwd": str(tmp_path), "partition": "gpu,batch",
            "nodelist": "node1"}})
        assert answer["partition"] == "batch" and answer["nodes"] == "node1"
        assert len(client.call("jobs")["jobs"]) == before
