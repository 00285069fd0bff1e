"""Embedding: in-process replicas, the pytest fixture, refusal of a corrupt snapshot, and
the no-quorum message (issue: spurctld, "Configuration and embedding")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spurctld.local import write_config
from spurctld.service import run_in_thread
from spurio.client import Client, ControllerUnavailable
from spurio.config import load
from tests.integration.conftest import wait_for

SPEC = {"name": "x", "script": "#!/bin/bash\nexit 0\n", "cwd": "/tmp"}


def test_three_replicas_in_process(tmp_path):
    """spurctld.service.run_in_thread: a whole replicated controller inside this process."""
    config = load(write_config(tmp_path, replicas=3, nodes=0))
    running = [run_in_thread(config, r.id) for r in config.replicas]
    try:
        with Client(config, retry_for=20) as client:
            ids = [client.call("submit", {"request_id": f"r{i}", "spec": SPEC})["job_id"] for i in range(20)]
            assert ids == list(range(1, 21))
            assert len(client.call("jobs", {})["jobs"]) == 20

        def agree() -> bool:
            digests = {c.replica.digest()[0] for c, _, _ in running}
            return len(digests) == 1

        wait_for(agree, 20, "the in-process replicas to agree")
    finally:
        for _controller, thread, loop in running:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
            assert not thread.is_alive()


@pytest.mark.spur_cluster(replicas=1, nodes=1, cpus=2)
def test_the_pytest_fixture_runs_real_jobs(spur_cluster, tmp_path):
    """The `spur_cluster` fixture other projects use (entry point `spur`)."""
    bindir = Path(sys.executable).parent
    out = subprocess.run([str(bindir / "sbatch"), "--parsable", "--wrap", "echo fixture; exit 3"],
                         env=spur_cluster.env, cwd=tmp_path, capture_output=True, text=True, check=True)
    job = spur_cluster.wait_job(int(out.stdout))
    assert (job["state"], job["exit_code"] >> 8) == ("FAILED", 3)
    assert (tmp_path / f"slurm-{job['job_id']}.out").read_text() == "fixture\n"


def test_corrupt_snapshot_is_refused_with_a_clear_error(make_cluster):
    cluster = make_cluster(replicas=1, compaction_entries=50)
    with Client(cluster.config) as client:
        for i in range(120):
            client.call("submit", {"request_id": f"r{i}", "spec": SPEC})
    snap_dir = Path(cluster.config.replica_dir(1)) / "snapshots"
    wait_for(lambda: list(snap_dir.glob("*.snap")), 20, "a snapshot")
    cluster.kill("ctld-1", signal.SIGTERM)
    newest = sorted(snap_dir.glob("*.snap"))[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "spurctld.main", "--config", str(cluster.config_path), "--id", "1"],
                          capture_output=True, text=True, timeout=60, env=cluster.env)
    assert proc.returncode == 1
    assert "spurctld: error:" in proc.stderr and newest.name in proc.stderr


def test_no_quorum_message(make_cluster):
    cluster = make_cluster(replicas=3)
    leader = cluster.leader()
    for r in cluster.config.replicas:
        if r.id != leader:
            cluster.kill(f"ctld-{r.id}", signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(ControllerUnavailable) as err, Client(cluster.config, retry_for=3.0) as client:
        client.call("submit", {"request_id": "nq", "spec": SPEC})
    assert err.value.message == "controller unavailable: no leader (1 of 3 replicas reachable)"
    assert time.monotonic() - t0 < 15  # bounded
    env = dict(cluster.env, SPUR_CLIENT_RETRY="2")
    proc = subprocess.run([str(Path(sys.executable).parent / "squeue")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == "squeue: error: controller unavailable: no leader (1 of 3 replicas reachable)\n"


def test_spur_top_draws_the_live_view(make_cluster):
    cluster = make_cluster(replicas=1, nodes=1)
    proc = subprocess.run([str(Path(sys.executable).parent / "spur"), "top", "--iterations", "2",
                           "--interval", "0.05"], env=dict(cluster.env, COLUMNS="100"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "node1" in proc.stdout and "IDLE" in proc.stdout


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user")
def test_local_cluster_as_a_plain_user(tmp_path_factory):
    """`spur local up` works as a plain user: jobs then run as that user."""
    import shutil
    import tempfile

    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-c",
                            f"{Path(sys.executable).parent / 'spur'} --version"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("this interpreter or checkout is not readable by uid 65534 (e.g. under /root)")
    d = Path(tempfile.mkdtemp(prefix="spur-user-", dir="/tmp"))
    d.chmod(0o777)
    spur = str(Path(sys.executable).parent / "spur")
    sbatch = str(Path(sys.executable).parent / "sbatch")
    script = (
        f"set -e; {spur} local up --dir {d}/c --nodes 1 --cpus 1 >/dev/null; export SPUR_CONF={d}/c/spur.toml; "
        f"cd {d}; j=$({sbatch} --parsable --wrap 'id -u'); "
        f"for i in $(seq 1 200); do [ -s slurm-$j.out ] && break; sleep 0.05; done; cat slurm-$j.out; "
        f"{spur} local down --dir {d}/c"
    )
    try:
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-c", script],
                              capture_output=True, text=True, timeout=120, cwd=str(d),
                              env={**os.environ, "HOME": str(d)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip().splitlines()[-1] == "65534"
    finally:
        subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", spur, "local", "down",
                        "--dir", f"{d}/c"], capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def test_local_up_on_a_partly_running_cluster_starts_only_what_is_missing(make_cluster):
    """`spur local up` again: the running daemons are kept, the missing ones start on the same state."""
    cluster = make_cluster(replicas=3, nodes=1)
    with Client(cluster.config) as client:
        job_id = client.call("submit", {"request_id": "keep", "spec": SPEC})["job_id"]
    kept = cluster.pid("ctld-1")
    cluster.kill("ctld-2", signal.SIGKILL)
    cluster.kill("node1", signal.SIGKILL)
    out = subprocess.run([str(Path(sys.executable).parent / "spur"), "local", "up", "--dir", str(cluster.dir)],
                         env=cluster.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"export SPUR_CONF={cluster.config_path}"
    fresh = type(cluster)(cluster.dir)  # what a second `spur local status` sees
    assert fresh.pid("ctld-1") == kept  # untouched
    assert fresh.pid("ctld-2") is not None and fresh.pid("node1") is not None
    with Client(cluster.config) as client:
        assert [j["job_id"] for j in client.call("jobs", {})["jobs"]] == [job_id]
    fresh.down()
