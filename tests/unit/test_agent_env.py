"""The batch script's environment (spurd.env.batch_env) as Slurm sets it."""

from __future__ import annotations

from spurcore.agentmsg import launch_job
from spurd.env import batch_env

INFO = {"job_id": 7, "name": "j", "user": "alice", "uid": 1000, "gid": 100, "node_list": ["n1", "n2"],
        "nodes": "n[1-2]", "num_tasks": 2, "cpus_per_node": 1, "cpus_per_task": 1, "partition": "debug",
        "work_dir": "/home/alice", "env": {"HOME": "/home/alice", "PATH": "/usr/bin"}}


def env(**changes):
    return batch_env(launch_job({**INFO, **changes}), "n1", cluster="c", config_path="/etc/spur/spur.toml",
                     agent_socket="/run/spurd.sock", python="/opt/spur/bin/python")


def test_slurm_variables_and_tools_first_on_path():
    e = env()
    assert (e["SLURM_JOB_ID"], e["SLURM_JOB_NODELIST"], e["SLURM_NNODES"], e["SLURM_NTASKS"]) == ("7", "n[1-2]", "2", "2")
    assert e["SLURMD_NODENAME"] == "n1" and e["HOME"] == "/home/alice"
    assert e["PATH"].split(":")[0] == "/opt/spur/bin"  # srun resolves inside the script


def test_restart_count_only_for_a_requeued_job():
    """Slurm sets SLURM_RESTART_COUNT only once a job has been requeued."""
    assert "SLURM_RESTART_COUNT" not in env()
    assert env(restarts=2)["SLURM_RESTART_COUNT"] == "2"
