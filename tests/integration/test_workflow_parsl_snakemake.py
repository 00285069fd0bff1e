"""Two more workflow tools, unchanged, on a real `spur local` cluster: Parsl's
HighThroughputExecutor with its SlurmProvider (a block job from `sbatch`, its workers
started by `srun`, watched with `squeue`, ended with `scancel`) and Snakemake's Slurm
executor plugin (`sbatch --parsable` per rule, status from `sacct`). Both are test extras;
each test drives the library or the command itself, as a user would after `spur local up`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for

BIN = str(Path(sys.executable).parent)


def _cli(*argv: str) -> str:
    return subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def test_parsl_block_job_runs_apps_then_is_cancelled(slurm_env, tmp_path):
    parsl = pytest.importorskip("parsl")
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.launchers import SrunLauncher
    from parsl.providers import SlurmProvider

    provider = SlurmProvider(
        partition="debug", nodes_per_block=1, init_blocks=1, min_blocks=0, max_blocks=1, walltime="00:10:00",
        launcher=SrunLauncher(), worker_init=f"export PATH={BIN}:$PATH", cmd_timeout=30,
    )
    config = Config(
        executors=[HighThroughputExecutor(label="spur", address="127.0.0.1", max_workers_per_node=2,
                                          provider=provider)],
        run_dir=str(tmp_path / "runinfo"), strategy="none",
    )

    # Local functions: parsl ships them by value, so the workers need not import this module.
    @parsl.python_app
    def square(x: int) -> int:
        return x * x

    @parsl.bash_app
    def where(stdout: str | None = None) -> str:
        return "echo $SLURM_JOB_ID $SLURM_STEP_ID $SLURM_JOB_PARTITION"

    dfk = parsl.load(config)
    try:
        assert [f.result(timeout=120) for f in [square(i) for i in range(8)]] == [i * i for i in range(8)]
        out = tmp_path / "where.out"
        where(stdout=str(out)).result(timeout=60)
        job_id, step_id, partition = out.read_text().split()
        assert (step_id, partition) == ("0", "debug")  # the workers run in the block job's srun step
        assert _cli("squeue", "-h", "-j", job_id, "-o", "%T").strip() == "RUNNING"
    finally:
        dfk.cleanup()
        parsl.clear()
    # parsl's cleanup cancels the block job (scancel)
    wait_for(lambda: _cli("sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State").strip().startswith("CANCELLED"),
             60, "the block job CANCELLED")


def test_snakemake_slurm_executor_runs_each_rule_as_a_job(slurm_env, tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    (tmp_path / "Snakefile").write_text(
        "rule all:\n"
        "    input: expand('out/{i}.txt', i=range(3))\n"
        "\n"
        "rule make:\n"
        "    output: 'out/{i}.txt'\n"
        "    resources: runtime=5, mem_mb=600\n"
        "    shell: 'echo $SLURM_JOB_ID $SLURM_JOB_PARTITION > {output}'\n"
    )
    proc = subprocess.run(
        [os.path.join(BIN, "snakemake"), "--executor", "slurm", "--jobs", "3",
         "--default-resources", "slurm_partition=debug", "--slurm-init-seconds-before-status-checks", "1",
         "--seconds-between-status-checks", "1", "--latency-wait", "10"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = []
    for i in range(3):
        job_id, partition = (tmp_path / "out" / f"{i}.txt").read_text().split()
        assert partition == "debug"
        ids.append(job_id)
    assert len(set(ids)) == 3  # one job per rule instance
    rows = _cli("sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", "JobID,State,ExitCode").split()
    assert sorted(rows) == sorted(f"{j}|COMPLETED|0:0" for j in ids)
