"""Multi-host scenarios: network namespaces as hosts (root only).

- Without root, ``nft``, ``nsenter`` or ``openssl`` every test here is skipped, saying what
  is missing. CI runs as root, so they run there.
- Tests marked ``chaos`` run only with ``SPUR_CHAOS=1`` (``make chaos``); the others are the
  representative subset that ``make test`` runs.
- ``SPUR_CHAOS_SEEDS=1,2,3`` runs every seeded scenario once per seed.
- ``SPUR_HOSTS_OUT=DIR`` keeps each run's histories and ``report.json`` there.
- The ``hosts`` fixture destroys its cluster (processes by pid, mounts, namespaces) even
  when the test fails; at the session start, leftovers of killed runs are swept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hosts import netns
from tests.hosts.cluster import HostCluster
from tests.hosts.nemesis import Scenario

MISSING = netns.missing_tools()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: long multi-host fault scenarios (make chaos, SPUR_CHAOS=1)")
    config.addinivalue_line("markers", "hosts: needs root and network namespaces")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    chaos = os.environ.get("SPUR_CHAOS") == "1"
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        if "hosts" not in getattr(item, "fixturenames", ()):
            continue  # plain tests (the client's cache and connects) run anywhere
        item.add_marker(pytest.mark.hosts)
        if MISSING:
            item.add_marker(pytest.mark.skip(reason="multi-host tests need " + ", ".join(MISSING)))
        elif item.get_closest_marker("chaos") and not chaos:
            item.add_marker(pytest.mark.skip(reason="chaos scenario: run with `make chaos` (SPUR_CHAOS=1)"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed" in metafunc.fixturenames:
        seeds = [int(s) for s in os.environ.get("SPUR_CHAOS_SEEDS", "1").split(",") if s.strip()]
        metafunc.parametrize("seed", seeds)


@pytest.fixture(scope="session", autouse=True)
def _sweep_leftovers() -> None:
    if not MISSING:
        netns.sweep()


@pytest.fixture
def out_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    base = os.environ.get("SPUR_HOSTS_OUT")
    if not base:
        return tmp_path / "run"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    d = Path(base) / name
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Callable[..., HostCluster]]:
    """``hosts(replicas=3, nodes=2, ..., start=True)``: a cluster, destroyed afterwards."""
    made: list[HostCluster] = []

    def make(*, start: bool = True, **kwargs: Any) -> HostCluster:
        cluster = HostCluster(tmp_path / f"c{len(made)}", **kwargs)
        made.append(cluster)
        cluster.create()
        if start:
            cluster.up()
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.destroy()


@pytest.fixture
def scenario(request: pytest.FixtureRequest, out_dir: Path) -> Iterator[Callable[[HostCluster], Scenario]]:
    made: list[Scenario] = []

    def make(cluster: HostCluster) -> Scenario:
        print(f"\n  scenario {request.node.name}", flush=True)
        s = Scenario(cluster, request.node.name, out_dir)
        s.monitor.start()
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            s.close()
