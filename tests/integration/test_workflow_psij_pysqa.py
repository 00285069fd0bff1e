"""Two more job-submission libraries, unchanged, on a real `spur local` cluster: PSI/J's Slurm
executor (ExaWorks; a generated batch script with `#SBATCH` lines, state from `squeue -O
JobArrayID,StateCompact,Reason -t all --me`, cancel with `scancel -Q`) and pysqa (pyiron's
queue adapter; `sbatch --parsable` of a Jinja template with `--get-user-env=L`, an `afterok`
dependency, status from `squeue --format "%A|%u|%t|%.15j|%Z" --noheader`, `scancel`). Both
are test extras; each test drives the library as its users do after `spur local up`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for

BIN = str(Path(sys.executable).parent)
WAIT = timedelta(seconds=120)


def _cli(*argv: str) -> str:
    return subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def test_psij_runs_jobs_reports_exit_codes_and_cancels(slurm_env, tmp_path):
    pytest.importorskip("psij")
    from psij import Job, JobExecutor, JobSpec, JobState
    from psij.executors.batch.slurm import SlurmExecutorConfig

    config = SlurmExecutorConfig(work_directory=tmp_path / "psij", queue_polling_interval=1)
    executor = JobExecutor.get_instance("slurm", config=config)
    jobs = []
    for i in range(3):
        spec = JobSpec(executable="/bin/sh", arguments=["-c", f"echo hello {i}; exit {i}"], directory=tmp_path,
                       stdout_path=tmp_path / f"out{i}")
        job = Job(spec)
        executor.submit(job)
        jobs.append(job)
    for i, job in enumerate(jobs):
        status = job.wait(timeout=WAIT)
        assert status is not None and status.state == (JobState.COMPLETED if i == 0 else JobState.FAILED), status
        assert status.exit_code == i
        assert (tmp_path / f"out{i}").read_text() == f"hello {i}\n"
    sleeper = Job(JobSpec(executable="/bin/sleep", arguments=["300"]))
    executor.submit(sleeper)
    assert sleeper.wait(timeout=WAIT, target_states=[JobState.ACTIVE]).state == JobState.ACTIVE
    assert _cli("squeue", "-h", "-j", sleeper.native_id, "-o", "%T").strip() == "RUNNING"
    sleeper.cancel()
    assert sleeper.wait(timeout=WAIT).state == JobState.CANCELED
    assert _cli("sacct", "-X", "-n", "-P", "-j", sleeper.native_id, "-o", "State").strip().startswith("CANCELLED")


def test_pysqa_submits_with_a_dependency_lists_and_deletes(slurm_env, tmp_path):
    pytest.importorskip("pysqa")
    from pysqa import QueueAdapter

    qa = QueueAdapter(queue_type="slurm")
    first = qa.submit_job(command="sleep 1; echo first > first.txt", working_directory=str(tmp_path), cores=1,
                          run_time_max=120, memory_max=1, job_name="first")
    assert isinstance(first, int), "sbatch refused pysqa's script (see pysqa.err)"
    second = qa.submit_job(command="cat first.txt > second.txt", working_directory=str(tmp_path), cores=1,
                           job_name="second", dependency_list=[str(first)])
    assert isinstance(second, int)
    table = qa.get_queue_status()
    assert set(table.jobid) >= {first, second}
    assert [n.strip() for n in table[table.jobid == second].jobname] == ["second"]  # %.15j pads on the left
    assert set(table.working_directory) == {str(tmp_path)}
    assert qa.get_status_of_job(process_id=second) == "pending"  # afterok: first is still running
    wait_for(lambda: qa.get_status_of_job(process_id=second) is None, 60, "both jobs done")
    assert (tmp_path / "second.txt").read_text() == "first\n"
    assert _cli("sacct", "-n", "-X", "-P", "-j", str(second), "-o", "State").strip() == "COMPLETED"

    third = qa.submit_job(command="sleep 300", working_directory=str(tmp_path), cores=1, job_name="third")
    wait_for(lambda: qa.get_status_of_job(process_id=third) == "running", 60, "the third job running")
    qa.delete_job(process_id=third)
    wait_for(lambda: qa.get_status_of_job(process_id=third) is None, 60, "the third job gone from squeue")
    assert _cli("sacct", "-n", "-X", "-P", "-j", str(third), "-o", "State").strip().startswith("CANCELLED")
