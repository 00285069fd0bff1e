"""Fixtures that start real replicas and agents on loopback, and always stop them."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spurctld.local import LocalCluster, write_config
from spurio import rpc


@pytest.fixture
def make_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalCluster]]:
    clusters: list[LocalCluster] = []

    def make(replicas: int = 1, nodes: int = 0, start: bool = True, **kwargs: Any) -> LocalCluster:
        d = tmp_path_factory.mktemp("cluster")
        write_config(d, replicas=replicas, nodes=nodes, **kwargs)
        cluster = LocalCluster(d)
        clusters.append(cluster)
        if start:
            cluster.up()
        return cluster

    yield make
    for cluster in clusters:
        try:
            cluster.down()
        except Exception:  # keep tearing the others down
            pass
        for proc in cluster.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition", interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


async def submit_many(socket_path: str, n: int, spec: dict[str, Any], window: int = 200) -> None:
    """``n`` submissions of ``spec`` (request ids ``bulk-<i>``), ``window`` of them in flight."""
    conn = await rpc.connect_unix(socket_path)
    sem = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with sem:
            await conn.call("submit", {"request_id": f"bulk-{i}", "spec": spec}, timeout=60)

    await asyncio.gather(*(one(i) for i in range(n)))
    conn.close()


@pytest.fixture
def slurm_env(make_cluster: Callable[..., LocalCluster], monkeypatch: pytest.MonkeyPatch) -> LocalCluster:
    """A 1-replica, 1-node cluster (2 CPUs) whose commands (this interpreter's bin directory)
    are first on PATH and which SPUR_CONF names: what a user's shell has after `spur local up`,
    for the workflow tools' tests."""
    cluster = make_cluster(replicas=1, nodes=1, cpus=2, settings={"requeue_delay": 1})
    monkeypatch.setenv("SPUR_CONF", str(cluster.config_path))
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return cluster
