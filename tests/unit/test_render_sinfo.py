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


# ---------------------------------------------------------------------------------------------
# the format engines, layouts, filters and --json


def test_summarize_layout() -> None:
    """opts.c -s ``partition:9 ,available:.5 ,time:.10 ,nodeaiot:.16 ,nodelist:0``: one row per
    partition, NODES(A/I/O/T) from _update_sinfo (mixed and allocated count as allocated,
    down as other)."""
    from spurcore.render.sinfo import SUMMARIZE_FORMAT, render_format

    assert render_format(NODES, long_fmt=SUMMARIZE_FORMAT, default_fields=True) == (
        "PARTITION AVAIL  TIMELIMIT   NODES(A/I/O/T) NODELIST\n"
        "debug*       up   infinite          3/2/1/6 node[01-05,10]\n"
    )


def test_percent_format_letters() -> None:
    """print.c: %P %a %l %D %t %T %c %m %C %A %F %N %E; numbers of a group print ``min+``
    unless all equal (``_build_min_max_32_string`` without a range); an unknown letter is
    printed verbatim and reported."""
    from spurcore.render.sinfo import parse_format, render_format

    nodes = [node("a1", cpus=4), node("a2", cpus=8, mem_mb=16000), node("b1", "DOWN", reason="broken")]
    text = render_format(nodes, "%P|%a|%l|%D|%t|%T|%c|%m|%C|%A|%F|%N|%E", sort="N")
    assert text == (
        "PARTITION|AVAIL|TIMELIMIT|NODES|STATE|STATE|CPUS|MEMORY|CPUS(A/I/O/T)|NODES(A/I)|NODES(A/I/O/T)|"
        "NODELIST|REASON\n"
        "debug*|up|infinite|2|idle|idle|4+|8000+|0/12/0/12|0/2|0/2/0/2|a[1-2]|none\n"
        "debug*|up|infinite|1|down|down|4|8000|0/0/4/4|0/0|0/0/1/1|b1|broken\n"
    )
    assert parse_format("%P %@").errors == ["Invalid node format specification: @"]
    assert render_format(nodes[:1], "x%P %@y", noheader=True) == "xdebug* %@y\n"


def test_exact_splits_groups() -> None:
    """-e: nodes group only with equal CPUs and memory (``_match_node_data`` exact)."""
    from spurcore.render.sinfo import render_format

    nodes = [node("a1", cpus=4), node("a2", cpus=8)]
    assert render_format(nodes, "%c %N", noheader=True) == "4+ a[1-2]\n"
    assert render_format(nodes, "%c %N", noheader=True, exact=True, sort="N") == "4 a1\n8 a2\n"


def test_long_and_node_long_layouts() -> None:
    """opts.c -l and -N -l default formats (STATE as the long name)."""
    from spurcore.render.sinfo import LONG_FORMAT, NODE_LONG_FORMAT, render_format

    text = render_format(NODES[:2], long_fmt=LONG_FORMAT, default_fields=True)
    assert text.splitlines()[0] == (
        "PARTITION AVAIL  TIMELIMIT   JOB_SIZE ROOT OVERSUBS     GROUPS  NODES       STATE RESERVATION "
        "NODELIST")
    assert text.splitlines()[1] == (
        "debug*       up   infinite 1-infinite   no       NO        all      1   allocated             "
        "node03")
    text = render_format([node("n1")], long_fmt=NODE_LONG_FORMAT, node_oriented=True, default_fields=True)
    assert text == (
        "NODELIST   NODES PARTITION       STATE CPUS    S:C:T MEMORY TMP_DISK WEIGHT AVAIL_FE REASON              \n"
        "n1             1    debug*        idle 4       4:1:1   8000        0      1   (null) none                \n"
    )


def test_list_reasons() -> None:
    """-R ``reason:20 ,user:9 ,timestamp:19 ,nodelist:0`` over nodes grouped by reason, user
    and time (the partition does not matter); a reason the controller set (``reason_uid``
    -1) names SlurmUser, ``slurm``."""
    from spurcore.render.sinfo import REASONS_FORMAT, node_matches_states, parse_states, render_format

    t = 1746100800.0
    nodes = [node("n1", "DOWN", reason="Not responding", down_at=t), node("n2", "DOWN", reason="Not responding",
             down_at=t), node("n3")]
    sels, and_mode = parse_states("down,fail,drain")
    shown = [n for n in nodes if node_matches_states(n, sels, and_mode)]
    assert render_format(shown, long_fmt=REASONS_FORMAT, reasons=True, time_format="%F") == (
        "REASON               USER      TIMESTAMP           NODELIST\n"
        "Not responding       slurm     2025-05-01          n[1-2]\n"
    )


def test_state_filters() -> None:
    """opts.c _build_state_list: prefixes of long or compact names, ``~`` negates, ``+``
    requires all; an unknown name is ``Bad state string``."""
    import pytest

    from spurcore.render.sinfo import StateError, node_matches_states, parse_states

    def keep(spec: str) -> list[str]:
        sels, and_mode = parse_states(spec)
        return [n["name"] for n in NODES if node_matches_states(n, sels, and_mode)]

    assert keep("idle") == ["node01", "node02"]
    assert keep("mix,alloc") == ["node03", "node10", "node05"]
    assert keep("~idle") == ["node03", "node10", "node04", "node05"]
    assert keep("all") == [n["name"] for n in NODES]
    # sinfo.c _filter_node_state: "allocated" is any node with allocated CPUs (MIXED too)
    assert keep("al") == ["node03", "node10", "node05"]
    with pytest.raises(StateError, match='Bad state string: "bogus"'):
        parse_states("idle,bogus")


def test_sort_option() -> None:
    """sort.c: ``-S N`` by node list, ``-S -D`` by node count descending."""
    from spurcore.render.sinfo import render_format

    by_count = render_format(NODES, "%t %D", noheader=True, sort="-D").splitlines()
    assert sorted(by_count[:2]) == ["idle 2", "mix 2"] and sorted(by_count[2:]) == ["alloc 1", "down 1"]
    assert render_format(NODES, "%t %N", noheader=True, sort="N").splitlines()[0] == "idle node[01-02]"


def test_long_format_names_and_all() -> None:
    """-O names are case-insensitive; ``all`` expands to every letter (opts.c)."""
    from spurcore.render.sinfo import parse_long_format

    assert [i.key for i in parse_long_format("nodelist,StateLong,cpusstate").items] == [
        "NodeList", "StateLong", "CPUsState"]
    assert parse_long_format("bogus").errors == ["Invalid job format specification: bogus"]
    assert len(parse_long_format("all").items) > 40


def test_json_shape() -> None:
    """data_parser SINFO_DATA: ``{"sinfo": [...], "meta", "errors", "warnings"}``, one entry
    per (partition, state) group with node and CPU counts."""
    from spurcore.render.sinfo import to_json

    data = to_json(NODES, meta={"plugin": {}})
    assert set(data) == {"sinfo", "meta", "errors", "warnings"}
    first = data["sinfo"][0]
    assert first["partition"]["name"] == "debug" and first["partition"]["flags"] == ["DEFAULT"]
    assert first["node"]["state"] == ["ALLOCATED"] and first["nodes"]["nodes"] == ["node03"]
    assert first["cpus"]["total"] == 4
    assert sum(e["nodes"]["total"] for e in data["sinfo"]) == len(NODES)


def test_every_field_golden() -> None:
    """Every -O field of fmt_data (``all`` prints every letter) over Spur's node records."""
    from pathlib import Path

    from spurcore.render.sinfo import _TABLE, render_format

    nodes = [node("n1", "MIXED", alloc_cpus=2, alloc_mem=100), node("n2", "DOWN", reason="broken",
             down_at=1746100800.0, reason_user="root", reason_uid=0)]
    lines = [f"{name}={render_format(nodes, long_fmt=f'{name}:0', noheader=True, sort='N', time_format='%F')!r}"
             for name, *_rest in _TABLE]
    text = "\n".join(lines) + "\n"
    path = Path(__file__).resolve().parents[1] / "golden" / "render" / "sinfo_every_field.txt"
    import os

    if os.environ.get("SPUR_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
