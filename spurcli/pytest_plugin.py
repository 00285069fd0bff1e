"""pytest plugin (entry point ``spur``): a real Spur cluster as a fixture.

    def test_my_pipeline(spur_cluster):
        out = subprocess.run(["sbatch", "--wrap", "echo hi"], env=spur_cluster.env, ...)
        job_id = spur_cluster.client.call("jobs", {})["jobs"][0]["job_id"]

The cluster (1 replica and 1 two-CPU node by default) is started in a temporary
directory and stopped, by pid, when the test ends. Markers change the shape:
``@pytest.mark.spur_cluster(replicas=3, nodes=2, cpus=2)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


class SpurClusterHandle:
    """What the fixture yields: the environment for the Slurm commands and a client."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.dir = cluster.dir
        self.config_path = str(cluster.config_path)
        self.env: dict[str, str] = cluster.env
        self.client = cluster.client()

    def wait_job(self, job_id: int, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the job has finished (not COMPLETING) and return its info record."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            jobs = self.client.call("jobs", {"job_ids": [job_id]})["jobs"]
            if jobs and jobs[0]["state"] not in ("PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED"):
                return jobs[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
            time.sleep(0.02)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "spur_cluster(replicas=1, nodes=1, cpus=2, kill_wait=2.0): shape of the spur_cluster fixture"
    )


@pytest.fixture
def spur_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpurClusterHandle]:
    from spurctld.local import LocalCluster, write_config

    marker = request.node.get_closest_marker("spur_cluster")
    shape: dict[str, Any] = {"replicas": 1, "nodes": 1, "cpus": 2, "kill_wait": 2.0}
    if marker is not None:
        shape.update(marker.kwargs)
    directory = tmp_path_factory.mktemp("spur")
    write_config(directory, **shape)
    cluster = LocalCluster(directory)
    try:
        cluster.up()
        handle = SpurClusterHandle(cluster)
        yield handle
        handle.client.close()
    finally:
        cluster.down()
        for proc in cluster.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
