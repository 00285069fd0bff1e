"""The query tools on a ``spur local`` cluster with the scheduler at work: two partitions
(batch = node[1-2], the default; gpu = node3), three 2-CPU nodes with two fake GPUs each.
Each command runs as a user types it (the installed launchers) and its output is checked
in Slurm 25.11's layouts: squeue --start and %Q, scontrol show node/partition/job, sinfo
with the default partition's ``*``, drain/resume through scontrol update and sinfo -R,
scontrol update partition, and a --gres job in scontrol show job."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spurctld.local import LocalCluster, write_config
from spurio.client import Client
from tests.integration.conftest import wait_for

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    d = tmp_path_factory.mktemp("query-sched")
    write_config(d, replicas=1, nodes=3, cpus=2, gpus=2, partitions="batch=node[1-2];gpu=node3")
    c = LocalCluster(d)
    try:
        c.up()
        with Client(c.config, retry_for=30) as client:
            wait_for(lambda: all(n["state"] == "IDLE" for n in client.call("nodes")["nodes"]), 30, "idle nodes")
        yield c
    finally:
        c.down()


def cmd(cluster: LocalCluster, tmp: Path, *argv: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(BIN / argv[0]), *argv[1:]], env=cluster.env, cwd=tmp, capture_output=True,
                         text=True, timeout=60)
    if ok:
        assert out.returncode == 0, (argv, out.stdout, out.stderr)
    return out


def sbatch(cluster: LocalCluster, tmp: Path, *args: str) -> int:
    out = cmd(cluster, tmp, "sbatch", "--parsable", "-o", str(tmp / "out-%j.txt"), *args)
    return int(out.stdout.strip().split(";")[0])


def squeue_row(cluster: LocalCluster, tmp: Path, job_id: int, fmt: str) -> str:
    return cmd(cluster, tmp, "squeue", "-h", "-j", str(job_id), "-o", fmt).stdout.strip()


def test_sinfo_and_scontrol_show_the_configured_partitions_and_nodes(cluster: LocalCluster, tmp_path: Path) -> None:
    out = cmd(cluster, tmp_path, "sinfo").stdout
    assert out == ("PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\n"
                   "batch*       up   infinite      2   idle node[1-2]\n"
                   "gpu          up   infinite      1   idle node3\n")
    node = cmd(cluster, tmp_path, "scontrol", "show", "node", "node3").stdout
    assert "\n   Gres=gpu:2\n" in node and "\n   Partitions=gpu \n" in node
    assert "\n   State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=1 " in node
    assert "\n   NodeAddr=node3 NodeHostName=node3 " in node  # a Unix-socket agent: the node's name
    assert "\n   CfgTRES=cpu=2,mem=4G,billing=2,gres/gpu=2\n" in node
    part = cmd(cluster, tmp_path, "scontrol", "show", "partition", "batch").stdout
    assert part.startswith("PartitionName=batch\n   AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL\n"
                           "   AllocNodes=ALL Default=YES QoS=N/A\n")
    assert "\n   Nodes=node[1-2]\n" in part and "State=UP TotalCPUs=4 TotalNodes=2 " in part


def test_squeue_start_priority_and_expected_nodes(cluster: LocalCluster, tmp_path: Path) -> None:
    long = sbatch(cluster, tmp_path, "-w", "node1", "-n", "2", "-t", "5", "--wrap", "sleep 60")
    wait_for(lambda: squeue_row(cluster, tmp_path, long, "%t") == "R", 30, "the long job running")
    wide = sbatch(cluster, tmp_path, "-N", "2", "-n", "4", "-t", "5", "--wrap", "true")
    try:
        # the backfill cycle (bf_interval=1 on local clusters) reserves node[1-2] for it
        row = wait_for(lambda: (r := squeue_row(cluster, tmp_path, wide, "%i|%P|%Q|%t|%S|%Y|%R")).split("|")[5]
                       != "(null)" and r, 30, "a reservation")
        job_id, part, prio, state, start, nodes, reason = row.split("|")
        assert (job_id, part, state, nodes, reason) == (str(wide), "batch", "PD", "node[1-2]", "(Resources)")
        assert int(prio) >= 1 and start != "N/A"
        start_out = cmd(cluster, tmp_path, "squeue", "--start").stdout.splitlines()
        assert start_out[0].split() == ["JOBID", "PARTITION", "NAME", "USER", "ST", "START_TIME", "NODES",
                                        "SCHEDNODES", "NODELIST(REASON)"]
        assert [line.split()[0] for line in start_out[1:]] == [str(wide)]  # pending jobs only
        assert start_out[1].split()[5:8] == [start, "2", "node[1-2]"]
        shown = cmd(cluster, tmp_path, "scontrol", "show", "job", str(wide)).stdout
        assert "\n   NodeList=(null) SchedNodeList=node[1-2]\n" in shown
        assert f"\n   StartTime={start} EndTime=" in shown and "Partition=batch " in shown
    finally:
        cmd(cluster, tmp_path, "scancel", str(long), str(wide), ok=False)


def test_an_operators_priority_is_fixed_and_priority_0_holds(cluster: LocalCluster, tmp_path: Path) -> None:
    """sbatch --priority (the tests run as root, an operator): the job's priority is that
    number, also for each task an array splits off; TOP is the highest; 0 holds the job
    (JobHeldUser), as validate_job_create_req and _job_create do."""
    later = sbatch(cluster, tmp_path, "--priority=1234", "--begin=now+1hour", "--wrap", "true")
    top = sbatch(cluster, tmp_path, "--priority=TOP", "--begin=now+1hour", "--wrap", "true")
    held = sbatch(cluster, tmp_path, "--priority=0", "--wrap", "true")
    array = sbatch(cluster, tmp_path, "--priority=777", "-a", "0-1", "-p", "gpu", "--wrap", "sleep 30")
    try:
        assert squeue_row(cluster, tmp_path, later, "%Q|%r") == "1234|BeginTime"
        assert squeue_row(cluster, tmp_path, top, "%Q") == str(0xFFFFFFFD)
        assert squeue_row(cluster, tmp_path, held, "%t|%r") == "PD|JobHeldUser"
        wait_for(lambda: cmd(cluster, tmp_path, "squeue", "-h", "-r", "-j", str(array), "-o", "%t").stdout.split()
                 == ["R", "R"], 30, "both tasks running")
        assert cmd(cluster, tmp_path, "squeue", "-h", "-r", "-j", str(array), "-o", "%i %Q").stdout.split("\n")[:2] \
            == [f"{array}_0 777", f"{array}_1 777"]
        assert "Priority=1234 " in cmd(cluster, tmp_path, "scontrol", "show", "job", str(later)).stdout
    finally:
        cmd(cluster, tmp_path, "scancel", str(later), str(top), str(held), str(array), ok=False)


def test_drain_with_scontrol_then_sinfo_lists_the_reason_and_resume(cluster: LocalCluster, tmp_path: Path) -> None:
    cmd(cluster, tmp_path, "scontrol", "update", "nodename=node2", "state=drain", "reason=x")
    try:
        out = cmd(cluster, tmp_path, "sinfo", "-R", "-h").stdout
        reason, user, when, nodes = out.split()
        assert (reason, nodes) == ("x", "node2") and user != "Unknown" and when.startswith("20")
        assert "  drain node2\n" in cmd(cluster, tmp_path, "sinfo", "-h").stdout
        node = cmd(cluster, tmp_path, "scontrol", "show", "node", "node2").stdout
        assert "\n   State=IDLE+DRAIN " in node and f"\n   Reason=x [{user}@" in node
        refused = cmd(cluster, tmp_path, "scontrol", "update", "nodename=node2", "state=drain", ok=False)
        assert (refused.returncode, refused.stderr) == (
            1, "You must specify a reason when DOWNING or DRAINING a node. Request denied\n")
        bad = cmd(cluster, tmp_path, "scontrol", "update", "nodename=node9", "state=resume", ok=False)
        assert bad.returncode == 1 and bad.stderr.startswith("slurm_update error: Invalid node name specified")
    finally:
        cmd(cluster, tmp_path, "scontrol", "update", "nodename=node2", "state=resume")
    assert cmd(cluster, tmp_path, "sinfo", "-R", "-h").stdout == ""
    assert cmd(cluster, tmp_path, "sinfo", "-h", "-n", "node2", "-o", "%t").stdout == "idle\n"


def test_resume_idle_and_reason_only_updates_as_slurm(cluster: LocalCluster, tmp_path: Path) -> None:
    """RESUME on a node that is not DOWN/DRAIN/FAIL is an invalid transition; a reason alone
    is recorded without a state change; State=IDLE brings a drained node back."""
    bad = cmd(cluster, tmp_path, "scontrol", "update", "nodename=node2", "state=resume", ok=False)
    assert (bad.returncode, bad.stderr) == (1, "slurm_update error: Invalid node state transition\n")
    cmd(cluster, tmp_path, "scontrol", "update", "nodename=node2", "reason=cable check")
    node = cmd(cluster, tmp_path, "scontrol", "show", "node", "node2").stdout
    assert "\n   State=IDLE " in node and "\n   Reason=cable check [" in node
    cmd(cluster, tmp_path, "scontrol", "update", "nodename=node2", "state=drain", "reason=x")
    cmd(cluster, tmp_path, "scontrol", "update", "nodename=node2", "state=idle")
    assert cmd(cluster, tmp_path, "sinfo", "-h", "-n", "node2", "-o", "%t").stdout == "idle\n"
    assert cmd(cluster, tmp_path, "sinfo", "-R", "-h").stdout == ""


def test_scontrol_update_partition(cluster: LocalCluster, tmp_path: Path) -> None:
    cmd(cluster, tmp_path, "scontrol", "update", "partitionname=gpu", "MaxTime=30", "Hidden=YES")
    try:
        shown = cmd(cluster, tmp_path, "scontrol", "-a", "show", "partition", "gpu").stdout
        assert "MaxTime=00:30:00 " in shown and " Hidden=YES\n" in shown
        assert "   30:00      1   idle node3\n" in cmd(cluster, tmp_path, "sinfo", "-a").stdout
        bad = cmd(cluster, tmp_path, "scontrol", "update", "partitionname=gpu", "State=sleepy", ok=False)
        assert bad.returncode == 1 and "Acceptable State values are UP, DOWN, DRAIN and INACTIVE" in bad.stderr
    finally:
        cmd(cluster, tmp_path, "scontrol", "update", "partitionname=gpu", "MaxTime=UNLIMITED", "Hidden=NO")
    assert "MaxTime=UNLIMITED " in cmd(cluster, tmp_path, "scontrol", "show", "partition", "gpu").stdout


def test_a_gres_job_in_scontrol_show_job_and_squeue(cluster: LocalCluster, tmp_path: Path) -> None:
    job_id = sbatch(cluster, tmp_path, "-p", "gpu", "--gres=gpu:1", "-t", "5", "--wrap", "sleep 30")
    try:
        wait_for(lambda: squeue_row(cluster, tmp_path, job_id, "%t") == "R", 30, "the GPU job running")
        shown = cmd(cluster, tmp_path, "scontrol", "-d", "show", "job", str(job_id)).stdout
        assert "\n   TresPerNode=gres/gpu:1\n" in shown
        assert ",gres/gpu=1\n   AllocTRES=" in shown and shown.count("gres/gpu=1") == 2  # ReqTRES, AllocTRES
        assert "\n   JOB_GRES=gpu:1\n     Nodes=node3 CPU_IDs=N/A Mem=" in shown
        assert " GRES=gpu:1(IDX:0)\n" in shown
        assert squeue_row(cluster, tmp_path, job_id, "%b|%P|%N") == "gres/gpu:1|gpu|node3"
        node = cmd(cluster, tmp_path, "scontrol", "-d", "show", "node", "node3").stdout
        assert "\n   GresUsed=gpu:1(IDX:0)\n" in node and "\n   State=MIXED " in node
    finally:
        cmd(cluster, tmp_path, "scancel", str(job_id), ok=False)
    with Client(cluster.config, retry_for=30) as client:
        wait_for(lambda: all(n["state"] == "IDLE" for n in client.call("nodes")["nodes"]), 30, "idle again")


def test_squeue_P_lists_each_partitions_own_priority_and_sprio_the_qos(tmp_path: Path) -> None:
    """A job pending in two partitions is listed once per partition, each with its priority
    there (the partitions' PriorityJobFactor differ and the partition factor weighs in)."""
    d = tmp_path / "cluster"
    write_config(d, replicas=1, nodes=2, cpus=2, partitions="low=node1;high=node2",
                 scheduling={"PriorityType": "priority/multifactor", "PriorityWeightPartition": 1000})
    cluster = LocalCluster(d)
    cluster.up()
    try:
        cmd(cluster, tmp_path, "scontrol", "update", "partitionname=high", "PriorityJobFactor=100")
        job = sbatch(cluster, tmp_path, "-p", "low,high", "--begin=now+1hour", "--wrap", "true")
        rows = cmd(cluster, tmp_path, "squeue", "-h", "-P", "-j", str(job), "-o", "%P %Q").stdout.split("\n")[:-1]
        prio = {part: int(p) for part, p in (r.split() for r in rows)}
        assert sorted(prio) == ["high", "low"] and prio["high"] > prio["low"], rows
        sprio = cmd(cluster, tmp_path, "sprio", "-h", "-j", str(job), "-o", "%i %r %n").stdout.split("\n")[:-1]
        assert sorted(s.split() for s in sprio) == [[str(job), "high", "normal"], [str(job), "low", "normal"]]
    finally:
        cluster.down()
