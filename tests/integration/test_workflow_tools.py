"""The workflow tools people drive Slurm with, unchanged, on a real `spur local` cluster
(issue: arrays and the option surface). Each test drives the library itself: submitit's
AutoExecutor and dask-jobqueue's SLURMCluster, installed as test extras, calling Spur's
sbatch, srun, squeue, sacct, scancel and scontrol as they would call Slurm's.

The tools find the commands on PATH and the cluster through SPUR_CONF, as a user's shell
would after `spur local up`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for

submitit = pytest.importorskip("submitit")

# slurm_env (tests/integration/conftest.py): a 1-node cluster whose commands are first on PATH


def state_now(job) -> str:
    """The job's state from a fresh sacct call (submitit caches what it read last)."""
    return job.get_info(mode="force").get("State") or "UNKNOWN"


def add(a: int, b: int) -> int:
    return a + b


def whoami() -> dict[str, str]:
    keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID", "SLURM_NTASKS")
    return {k: os.environ.get(k, "") for k in keys}


class Counter(submitit.helpers.Checkpointable):
    """Counts to ``target`` across requeues: the first run waits for the pre-timeout signal,
    checkpoints, and submitit requeues it (`scontrol requeue`); the second run finishes."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.runs = 0

    def __call__(self) -> int:
        self.runs += 1
        Path(self.marker).write_text(str(self.runs))
        if self.runs == 1:
            time.sleep(300)  # the USR2 handler checkpoints, requeues and exits
        return self.runs


def test_submitit_submit_map_array_cancel(slurm_env, tmp_path):
    executor = submitit.AutoExecutor(folder=tmp_path / "log", cluster="slurm")
    executor.update_parameters(timeout_min=5, slurm_comment="spur test", cpus_per_task=1, tasks_per_node=1,
                               slurm_mem_per_cpu="64M", slurm_array_parallelism=2)
    job = executor.submit(add, 2, 3)
    assert job.result() == 5
    # the result file is written before the job ends: wait for sacct to say COMPLETED
    wait_for(lambda: state_now(job) == "COMPLETED", 30, "job COMPLETED in sacct")
    env = executor.submit(whoami).result()
    assert env["SLURM_PROCID"] == "0" and env["SLURM_NTASKS"] == "1" and env["SLURM_JOB_ID"]

    jobs = executor.map_array(add, [1, 2, 3, 4], [10, 20, 30, 40])
    assert [j.result() for j in jobs] == [11, 22, 33, 44]
    array_ids = {j.job_id.split("_")[0] for j in jobs}
    assert len(array_ids) == 1 and all("_" in j.job_id for j in jobs)
    wait_for(lambda: all(state_now(j) == "COMPLETED" for j in jobs), 30, "array tasks COMPLETED in sacct")
    env_jobs = executor.map_array(lambda _: whoami(), [0, 1])
    tasks = sorted(j.result()["SLURM_ARRAY_TASK_ID"] for j in env_jobs)
    assert tasks == ["0", "1"]

    sleeper = executor.submit(time.sleep, 300)
    wait_for(lambda: state_now(sleeper) == "RUNNING", 60, "the sleeper running")
    sleeper.cancel()
    wait_for(lambda: state_now(sleeper).startswith("CANCELLED"), 60, "the sleeper cancelled")


def test_submitit_timeout_requeues_through_the_checkpoint(slurm_env, tmp_path):
    marker = tmp_path / "runs"
    executor = submitit.AutoExecutor(folder=tmp_path / "log", cluster="slurm")
    # 1 minute limit, USR2 55 s before it: the first run is signalled ~5 s in.
    executor.update_parameters(timeout_min=1, slurm_signal_delay_s=55)
    job = executor.submit(Counter(str(marker)))
    assert job.result() == 2  # the second run, after the requeue
    assert marker.read_text() == "2"
    # sacct keeps a row per run of the requeued job (Slurm's -D view); the last one completed
    wait_for(lambda: state_now(job) == "COMPLETED", 30, "the requeued job COMPLETED in sacct")


dask_jobqueue = pytest.importorskip("dask_jobqueue")


def test_dask_jobqueue_scale_compute_scale_down(slurm_env, tmp_path):
    from dask.distributed import Client

    cluster = dask_jobqueue.SLURMCluster(
        cores=1, processes=1, memory="512MB", walltime="00:10:00", interface="lo",
        log_directory=str(tmp_path / "logs"), local_directory=str(tmp_path / "scratch"),
        scheduler_options={"host": "127.0.0.1"}, job_extra_directives=["--comment=dask"],
    )
    try:
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            futures = client.map(lambda x: x * x, range(20))
            assert sum(client.gather(futures)) == sum(x * x for x in range(20))
            cluster.scale(0)
            wait_for(lambda: not client.scheduler_info()["workers"], 120, "the workers gone")
    finally:
        cluster.close()
