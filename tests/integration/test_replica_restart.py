"""How a replica comes back (spurctld/replica.py: restart = newest snapshot + WAL tail): a
clean stop leaves a snapshot so that nothing is replayed, a crash replays the tail, and a
snapshot written by the previous format's code still starts a controller."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import msgpack

from spurctld.local import LocalCluster
from spurctld.replica import CLOSE_SNAPSHOT_OPS
from spurctld.wal import Wal, load_latest_snapshot, read_snapshot_file, write_snapshot
from spurio.client import Client
from tests.integration.conftest import submit_many, wait_for

SPEC = {"name": "x", "script": "#!/bin/bash\nexit 0\n", "cwd": "/tmp", "hold": True}
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _jobs(cluster: LocalCluster) -> list[dict]:
    with Client(cluster.config, retry_for=30.0) as client:
        return client.call("jobs", {})["jobs"]


def _load_lines(cluster: LocalCluster) -> list[str]:
    log = (cluster.log_dir / "ctld-1.log").read_text()
    return re.findall(r"state loaded at index \d+ \(\d+ jobs\).*WAL tail of \d+ entries", log)


def test_a_clean_stop_leaves_a_snapshot_and_a_crash_replays_the_tail(make_cluster):
    cluster = make_cluster(replicas=1)
    asyncio.run(submit_many(cluster.config.replicas[0].socket, CLOSE_SNAPSHOT_OPS + 200, SPEC))
    before = cluster.digests()[1]
    state_dir = cluster.config.replica_dir(1)
    cluster.kill("ctld-1", signal.SIGTERM)
    index, _ = load_latest_snapshot(state_dir)
    with Wal(Path(state_dir) / "wal") as wal:
        assert index == wal.last_index == before[1]  # the stop's snapshot covers every applied entry

    cluster.start_replica(1)
    wait_for(lambda: cluster.digests().get(1) == before, 20, "the same state after the clean restart")
    assert _load_lines(cluster)[-1].endswith("WAL tail of 0 entries")
    with Client(cluster.config) as client:  # a tail after that snapshot, then a crash
        for i in range(20):
            client.call("submit", {"request_id": f"tail-{i}", "spec": SPEC})
    after = cluster.digests()[1]
    cluster.kill("ctld-1", signal.SIGKILL)
    cluster.start_replica(1)
    wait_for(lambda: cluster.digests().get(1) == after, 20, "the same state after the crash")
    assert _load_lines(cluster)[-1].endswith("WAL tail of 20 entries")
    assert len(_jobs(cluster)) == CLOSE_SNAPSHOT_OPS + 220


def test_a_controller_starts_from_a_snapshot_of_the_previous_version(make_cluster):
    """The newest snapshot written by version-4 code (tests/golden/snapshot-v4.bin, see
    tests/unit/test_snapshot_versions.py) is what the replica serves after its start. Its
    finished job 3 ended at time 1,000,005 (January 1970): a MinJobAge of a century keeps
    the leader's once-a-second purge from racing the first read."""
    cluster = make_cluster(replicas=1, min_job_age=4e9)
    with Client(cluster.config) as client:
        client.call("submit", {"request_id": "r1", "spec": SPEC})
    state_dir = cluster.config.replica_dir(1)
    cluster.kill("ctld-1", signal.SIGTERM)
    dump = Path(state_dir) / "raft.dump"
    dump_index = read_snapshot_file(dump)[0] if dump.exists() else 0
    with Wal(Path(state_dir) / "wal") as wal:
        index = max(wal.last_index, dump_index)  # newer than the dump and the WAL: nothing to replay
    v4 = (GOLDEN / "snapshot-v4.bin").read_bytes()
    assert msgpack.unpackb(v4)[1] == 4
    write_snapshot(state_dir, index, msgpack.packb([index, v4, None], use_bin_type=True))

    cluster.start_replica(1)
    jobs = wait_for(lambda: _jobs(cluster), 20, "the replica to answer")
    assert [(j["job_id"], j["name"]) for j in jobs] == [
        (1, "steps"), (2, "gpu"), (3, "done"), (4, "arr"), (5, "held"), (6, "arr"), (7, "arr")]
