"""The replicated controller with real replica processes on loopback (issue: spurctld)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spurctld.local import LocalCluster, write_config
from spurio import rpc
from spurio.client import Client
from tests.integration.conftest import submit_many, wait_for

SPEC = {"name": "x", "script": "#!/bin/bash\nexit 0\n", "cwd": "/tmp"}


def _leader(cluster: LocalCluster) -> int:
    return wait_for(cluster.leader, 20, "a leader")


def _same_digests(cluster: LocalCluster) -> bool:
    digests = cluster.digests()
    return len(digests) == len(cluster.config.replicas) and len({d for d, _ in digests.values()}) == 1


def test_submit_1000_jobs_while_the_leader_is_killed_twice(make_cluster):
    """Every acknowledged job exists exactly once; retries never duplicate (request ids)."""
    cluster = make_cluster(replicas=3)
    total, workers = 1000, 8
    acked: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with Client(cluster.config, retry_for=30.0) as client:
                for i in range(k, total, workers):
                    name = f"j{i}"
                    spec = dict(SPEC, name=name)
                    job_id = client.call("submit", {"request_id": f"req-{i}", "spec": spec})["job_id"]
                    with lock:
                        acked[name] = job_id
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for threshold in (300, 600):
        wait_for(lambda threshold=threshold: len(acked) >= threshold or not any(t.is_alive() for t in threads),
                 60, f"{threshold} acknowledged submissions")
        victim = _leader(cluster)
        cluster.kill(f"ctld-{victim}", signal.SIGKILL)
        cluster.start_replica(victim)  # back as a follower, so the next kill keeps a quorum
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(acked) == total

    with Client(cluster.config, retry_for=30.0) as client:
        jobs = client.call("jobs", {})["jobs"]
    by_name: dict[str, list[int]] = {}
    for job in jobs:
        by_name.setdefault(job["name"], []).append(job["job_id"])
    assert len(jobs) == total, "a retried submission created a second job"
    for name, job_id in acked.items():
        assert by_name[name] == [job_id]
    wait_for(lambda: _same_digests(cluster), 30, "identical state digests on all replicas")


def test_all_replicas_sigkilled_and_restarted_keep_the_same_state(make_cluster):
    cluster = make_cluster(replicas=3)
    with Client(cluster.config) as client:
        for i in range(50):
            client.call("submit", {"request_id": f"r{i}", "spec": SPEC})
    wait_for(lambda: _same_digests(cluster), 20, "replicas to agree")
    before = cluster.digests()[1]
    for r in cluster.config.replicas:
        cluster.kill(f"ctld-{r.id}", signal.SIGKILL)
    for r in cluster.config.replicas:
        cluster.start_replica(r.id)
    _leader(cluster)
    wait_for(lambda: _same_digests(cluster), 20, "replicas to agree after restart")
    after = cluster.digests()[1]
    assert after[0] == before[0]
    with Client(cluster.config) as client:
        assert client.call("submit", {"request_id": "r0", "spec": SPEC})["job_id"] == 1  # still deduplicated
        assert len(client.call("jobs", {})["jobs"]) == 50


def test_restart_with_20000_jobs_answers_within_half_a_second(make_cluster):
    """Process start (SIGKILL, then a new spurctld) to the first answer that shows the
    20,000th job. The machine is shared and noisy, and noise only adds time: the best of
    three restarts must be under 0.5 s (each restart is printed)."""
    cluster = make_cluster(replicas=1)
    asyncio.run(submit_many(cluster.config.replicas[0].socket, 20000, SPEC, window=500))

    def answered() -> bool:
        try:
            with rpc.SyncClient.unix(cluster.config.replicas[0].socket, timeout=1) as c:
                return len(c.call("jobs", {"job_ids": [20000]})["jobs"]) == 1
        except rpc.RpcError:
            return False

    times = []
    for _ in range(3):
        cluster.kill("ctld-1", signal.SIGKILL)
        t0 = time.monotonic()
        cluster.start_replica(1)
        wait_for(answered, 10, "the restarted replica to answer", interval=0.005)
        times.append(time.monotonic() - t0)
    print("restart -> first answer with 20,000 jobs:", ", ".join(f"{t:.3f} s" for t in times))
    assert min(times) < 0.5, f"restarts with 20,000 jobs took {times} s to answer"


def test_truncated_wal_tail_is_cut_and_caught_up_from_peers(make_cluster):
    cluster = make_cluster(replicas=3)
    with Client(cluster.config) as client:
        for i in range(30):
            client.call("submit", {"request_id": f"r{i}", "spec": SPEC})
    wait_for(lambda: _same_digests(cluster), 20, "replicas to agree")
    leader = _leader(cluster)
    victim = next(r.id for r in cluster.config.replicas if r.id != leader)
    cluster.kill(f"ctld-{victim}", signal.SIGKILL)
    seg_dir = Path(cluster.config.replica_dir(victim)) / "wal" / "segments"
    segment = sorted(seg_dir.glob("*.seg"))[-1]
    size = segment.stat().st_size
    with open(segment, "r+b") as f:
        f.truncate(size - 7)  # mid-record
    with Client(cluster.config) as client:  # the cluster moves on meanwhile
        for i in range(30, 40):
            client.call("submit", {"request_id": f"r{i}", "spec": SPEC})
    cluster.start_replica(victim)
    wait_for(lambda: _same_digests(cluster), 30, "the cut replica to catch up")
    log = (cluster.log_dir / f"ctld-{victim}.log").read_text()
    assert "torn" in log.lower() or "cut" in log.lower() or "truncat" in log.lower(), log[-2000:]


def test_a_replica_with_the_wrong_secret_cannot_join(make_cluster):
    cluster = make_cluster(replicas=3, start=False)
    cluster.start_replica(1)
    cluster.start_replica(2)
    _leader(cluster)
    bad = cluster.dir / "bad.toml"
    text = cluster.config_path.read_text().replace(str(cluster.dir / "secret"), str(cluster.dir / "badsecret"))
    (cluster.dir / "badsecret").write_text("not-the-secret\n")
    bad.write_text(text)
    env = dict(cluster.env, SPUR_CONF=str(bad))
    proc = subprocess.Popen([sys.executable, "-m", "spurctld.main", "--config", str(bad), "--id", "3"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client(cluster.config) as client:
            for i in range(20):
                client.call("submit", {"request_id": f"r{i}", "spec": SPEC})
        sock3 = cluster.config.replica(3).socket
        wait_for(lambda: os.path.exists(sock3), 10, "replica 3 to listen")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # it must stay outside for a while, not just at first
            with rpc.SyncClient.unix(sock3, timeout=2) as c:
                info = c.call("ping", {})
            assert info["applied_index"] == 0 and not info["leader"]
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()


def test_tcp_client_needs_a_valid_certificate(make_cluster, tmp_path):
    from spurio.pki import generate_test_pki

    # Two users the host knows (a TLS user the cluster cannot resolve is refused: "Invalid user id").
    pki = generate_test_pki(tmp_path / "pki", [("daemon", "user"), ("nobody", "user"), ("ghost-user", "user")])
    port = __import__("spurctld.local", fromlist=["free_ports"]).free_ports(1)[0]
    extra = (
        f'\n[tls]\nca = "{pki["ca_cert"]}"\ncert = "{pki["server_cert"]}"\nkey = "{pki["server_key"]}"\n'
    )
    cluster = make_cluster(replicas=1, start=False, extra=extra)
    text = cluster.config_path.read_text().replace("id = 1\n", f'id = 1\nrpc = "127.0.0.1:{port}"\n', 1)
    cluster.config_path.write_text(text)
    cluster = LocalCluster(cluster.dir)
    cluster.start_replica(1)
    _leader(cluster)
    try:
        wait_for(lambda: _port_open(port), 10, "the TLS port")
        # no client certificate: refused
        with pytest.raises(rpc.ConnectionFailed):
            ctx = rpc.client_ssl_context(None, None, pki["ca_cert"])
            with rpc.SyncClient.tcp("127.0.0.1", port, timeout=5, ssl_context=ctx) as c:
                c.call("ping", {})
        # a valid certificate: CN is the user; alice (daemon) may not cancel bob's (nobody's) job
        alice = pki["clients"]["daemon"]
        bob = pki["clients"]["nobody"]
        ghost = pki["clients"]["ghost-user"]
        with rpc.SyncClient.tcp("127.0.0.1", port, timeout=5,
                                ssl_context=rpc.client_ssl_context(bob["cert"], bob["key"], pki["ca_cert"])) as c:
            spec = dict(SPEC, uid=4242)  # ignored: a user submits as itself
            job_id = c.call("submit", {"request_id": "b1", "spec": spec})["job_id"]
            assert c.call("jobs", {"job_ids": [job_id]})["jobs"][0]["user"] == "nobody"
        with rpc.SyncClient.tcp("127.0.0.1", port, timeout=5,
                                ssl_context=rpc.client_ssl_context(ghost["cert"], ghost["key"], pki["ca_cert"])) as c:
            with pytest.raises(rpc.RpcError) as err:
                c.call("submit", {"request_id": "g1", "spec": SPEC})
            assert err.value.message == "Invalid user id"  # no passwd entry for the CN
        with rpc.SyncClient.tcp("127.0.0.1", port, timeout=5,
                                ssl_context=rpc.client_ssl_context(alice["cert"], alice["key"], pki["ca_cert"])) as c:
            with pytest.raises(rpc.RpcError) as err:
                c.call("signal", {"request_id": "a1", "job_id": job_id, "kind": 1})
            assert err.value.message == "Access/permission denied"
    finally:
        cluster.down()


def _port_open(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another uid")
def test_a_user_cannot_cancel_another_users_job(tmp_path):
    import shutil
    import tempfile

    # pytest's own temp root is private to root; the other user must reach the socket.
    d = Path(tempfile.mkdtemp(prefix="spur-perm-", dir="/tmp"))
    d.chmod(0o755)
    write_config(d, replicas=1, nodes=0)
    (d / "run").chmod(0o755)
    cluster = LocalCluster(d)
    try:
        cluster.up()
        _cancel_as_nobody(cluster)
    finally:
        cluster.down()
        shutil.rmtree(d, ignore_errors=True)


def _cancel_as_nobody(cluster: LocalCluster) -> None:
    with Client(cluster.config) as client:
        job_id = client.call("submit", {"request_id": "root-1", "spec": SPEC})["job_id"]
    code = (
        "import os,sys\n"
        "from spurio import rpc\n"
        "os.setgid(65534); os.setuid(65534)\n"
        f"c = rpc.SyncClient.unix({cluster.config.replicas[0].socket!r}, timeout=5)\n"
        "try:\n"
        f"    c.call('signal', {{'request_id': 'n1', 'job_id': {job_id}, 'kind': 1}})\n"
        "    print('ALLOWED')\n"
        "except rpc.RpcError as e:\n"
        "    print(e.message)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         cwd=str(Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "Access/permission denied", out.stderr
    with Client(cluster.config) as client:
        job = client.call("jobs", {"job_ids": [job_id]})["jobs"][0]
    assert job["state"] == "PENDING"


def test_snapshots_bound_the_logs_and_restart_from_snapshot_plus_tail(make_cluster):
    """Snapshots (written by a forked child) compact pysyncobj's journal and archive WAL
    segments; a full restart = snapshot + WAL tail gives the same state."""
    cluster = make_cluster(replicas=3, compaction_entries=300)
    asyncio.run(submit_many(cluster.config.replica(_leader(cluster)).socket, 2000, SPEC, window=50))
    with Client(cluster.config) as client:  # some light traffic so every replica compacts
        for i in range(400):
            client.call("submit", {"request_id": f"tail-{i}", "spec": SPEC})
    wait_for(lambda: _same_digests(cluster), 30, "replicas to agree")
    for r in cluster.config.replicas:
        snaps = list((Path(cluster.config.replica_dir(r.id)) / "snapshots").glob("snap-*.snap"))
        assert snaps, f"replica {r.id} wrote no snapshot"
        assert (Path(cluster.config.replica_dir(r.id)) / "raft.dump").exists()
    before = cluster.digests()[1][0]
    for r in cluster.config.replicas:
        cluster.kill(f"ctld-{r.id}", signal.SIGKILL)
    for r in cluster.config.replicas:
        cluster.start_replica(r.id)
    _leader(cluster)
    wait_for(lambda: _same_digests(cluster), 30, "replicas to agree after restart")
    assert cluster.digests()[1][0] == before
    with Client(cluster.config) as client:
        assert len(client.call("jobs", {})["jobs"]) == 2400
        assert client.call("submit", {"request_id": "tail-3", "spec": SPEC})["job_id"] == 2004
