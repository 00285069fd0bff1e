"""The controller's packed rows (issue 14: ``jobs`` with ``fields`` packs each job's row
once and keeps it) on a real controller: the layouts that ask for fields print what the
ones that take whole records print, before and after ops change the jobs; ``scontrol show
job`` of every job (printed from the rows) prints what it prints of each job alone (from
records)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from spurctld.local import LocalCluster

BIN = Path(sys.executable).parent
LONG = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R"  # squeue -l's layout, asked for with -o


def run(cluster: LocalCluster, tmp: Path, *argv: str) -> str:
    out = subprocess.run([str(BIN / argv[0]), *argv[1:]], env=cluster.env, cwd=tmp, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, (argv, out.stdout, out.stderr)
    return out.stdout


def test_rows_asked_by_field_follow_the_jobs(make_cluster: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = make_cluster(replicas=1, nodes=0)  # no nodes: the jobs stay pending
    ids = [int(run(cluster, tmp_path, "sbatch", "--parsable", "-H", "-J", f"job{i}", "-o", "/dev/null",
                   "--wrap", "true").strip()) for i in range(3)]

    def check() -> str:
        fast = run(cluster, tmp_path, "squeue", "-h", "-l")  # asks for the layout's fields only
        assert fast == run(cluster, tmp_path, "squeue", "-h", "-o", LONG)  # whole records
        for flags in (["-o"], [], ["-d"]):
            every = run(cluster, tmp_path, "scontrol", *flags, "show", "job")
            assert every == "".join(run(cluster, tmp_path, "scontrol", *flags, "show", "job", str(i)) for i in ids)
        return fast

    first = check()
    assert first.count("(JobHeldUser)") == 3 and first.count("UNLIMITED") == 3
    assert run(cluster, tmp_path, "squeue", "-h", "-l") == first  # from the kept rows
    run(cluster, tmp_path, "scontrol", "update", f"JobId={ids[1]}", "TimeLimit=7")
    run(cluster, tmp_path, "scontrol", "release", str(ids[2]))
    later = check()
    assert later.count("(JobHeldUser)") == 2 and later.count("UNLIMITED") == 2 and "     7:00 " in later
    show = run(cluster, tmp_path, "scontrol", "show", "job", "-o", str(ids[1]))
    assert f"JobId={ids[1]} JobName=job1 " in show and " TimeLimit=00:07:00 " in show
