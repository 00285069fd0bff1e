"""spurcore.render.sinfo: default ``sinfo`` and ``sinfo -N``.

Sources: Slurm's src/sinfo/{opts,print,sort}.c at tag slurm-25-11-7-1.
"""

from __future__ import annotations

from typing import Any

from spurcore.model import ClusterState
from spurcore.ops import JobSpec, JobStart, JobSubmitted, NodeDown, NodeRegistered
from spurcore.reduce import Rejected, apply
from spurcore.render.sinfo import render, render_nodes, render_partitions, state_compact
from spurcore.views import node_info


def node(name: str, state: str = "IDLE", **kw: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": name,
        "state": state,
        "cpus": 4,
        "alloc_cpus": 0,
        "mem_mb": 8000,
        "alloc_mem": 0,
        "address": name,
        "reason": "",
        "partition": "debug",
    }
    info.update(kw)
    return info


NODES = [
    node("node03", "ALLOCATED"),
    node("node01"),
    node("node10", "MIXED"),
    node("node02"),
    node("node04", "DOWN"),
    node("node05", "MIXED"),
]


def test_default_layout() -> None:
    """opts.c default ``partition:9 ,available:.5 ,time:.10 ,nodes:.6 ,statecompact:.6 ,
    nodelist:0``: one row per (partition, state), ``*`` on the default partition, ``infinite``
    MaxTime, compressed node lists; sort ``#P,-t`` (state numbers MIXED 5, ALLOCATED 3,
    IDLE 2, DOWN 1, descending)."""
    assert render(NODES) == (
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\n"
        "debug*       up   infinite      2    mix node[05,10]\n"
        "debug*       up   infinite      1  alloc node03\n"
        "debug*       up   infinite      2   idle node[01-02]\n"
        "debug*       up   infinite      1   down node04\n"
    )


def test_default_layout_partition_width_and_limits() -> None:
    """print.c _set_part_field_size: the partition column is max(9, longest name, +1 for the
    default's ``*``); a MaxTime prints like squeue's durations; -h drops the header."""
    nodes = [node("n1", partitions=["verylongpartition", "debug"]), node("n2", "DOWN", not_responding=True)]
    text = render_partitions(
        nodes, partitions=["debug", "verylongpartition"], time_limits={"debug": 3600}, noheader=True
    )
    assert text == (
        "debug*               up    1:00:00      1  down* n2\n"
        "debug*               up    1:00:00      1   idle n1\n"
        "verylongpartition    up   infinite      1   idle n1\n"
    )


def test_node_oriented_layout() -> None:
    """opts.c -N ``nodelist:0 ,nodes:.6 ,partition:.9 ,statecompact:6`` with the node column
    sized to max(9, longest name): ``NODELIST   NODES PARTITION STATE `` (left-justified last
    column, so lines end in spaces), nodes in natural name order."""
    assert render(NODES, node_oriented=True) == (
        "NODELIST   NODES PARTITION STATE \n"
        "node01         1    debug* idle  \n"
        "node02         1    debug* idle  \n"
        "node03         1    debug* alloc \n"
        "node04         1    debug* down  \n"
        "node05         1    debug* mix   \n"
        "node10         1    debug* mix   \n"
    )
    assert render_nodes([node("a-very-long-node-name")], noheader=True) == (
        "a-very-long-node-name      1    debug* idle  \n"
    )


def test_state_compact() -> None:
    """node_state_string_compact, lower-cased; ``*`` marks a non-responding node."""
    assert [state_compact(node("n", s)) for s in ("IDLE", "MIXED", "ALLOCATED", "DOWN")] == [
        "idle",
        "mix",
        "alloc",
        "down",
    ]
    assert state_compact(node("n", "DOWN", not_responding=True)) == "down*"


def test_from_cluster_state() -> None:
    """End to end from spurcore.views.node_info: a busy node is mix/alloc, a failed one down*
    (Slurm's ``*``: not responding)."""
    state = ClusterState()
    for name in ("c1", "c2", "c3"):
        assert apply(state, NodeRegistered(name, 2, 4000, f"{name}:6818", 100.0)) is None
    spec = JobSpec(name="j", user="u", uid=1, gid=1, script="", argv=(), env={}, cwd="/", ntasks=2)
    job_id = apply(state, JobSubmitted("r", spec, 200.0))
    assert not isinstance(job_id, Rejected)
    assert apply(state, JobStart(job_id, ("c2",), 2, 0, 201.0)) is None
    assert apply(state, NodeDown("c3", "Not responding", 300.0)) is None
    nodes = [node_info(state, n) for n in ("c1", "c2", "c3")]
    assert render(nodes) == (
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\n"
        "debug*       up   infinite      1  down* c3\n"
        "debug*       up   infinite      1  alloc c2\n"
        "debug*       up   infinite      1   idle c1\n"
    )
    assert render(nodes, node_oriented=True, noheader=True) == (
        "c1             1    debug* idle  \nc2             1    debug* alloc \nc3             1    debug* down* \n"
    )
