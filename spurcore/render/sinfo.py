"""``sinfo`` text: the default partition view and ``sinfo -N``.

Pure module: node info dicts (``spurcore.views.node_info``) in, text out.

Sources (Slurm 25.11): src/sinfo/opts.c (default formats), src/sinfo/print.c (``_print_str``,
``_print_partition``, ``_print_state_compact``, ``_set_node_field_size``,
``_set_part_field_size``), src/sinfo/sort.c (``#P,-t`` and ``N``).

Layouts:
- default: ``partition:9 ,available:.5 ,time:.10 ,nodes:.6 ,statecompact:.6 ,nodelist:0``,
  i.e. ``PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST``; one row per (partition, state),
  partitions in configuration order, states by descending state number (mix, alloc, idle,
  down); the partition column is as wide as the longest name (+1 for the default
  partition's ``*``), at least 9.
- ``-N``: ``nodelist:0 ,nodes:.6 ,partition:.9 ,statecompact:6``, i.e.
  ``NODELIST   NODES PARTITION STATE `` (the last column is left-justified and padded, so
  lines end with spaces); one row per (node, partition) in node-name order; the node column
  is as wide as the longest name, at least 9.
"""

from __future__ import annotations

from functools import cmp_to_key

from spurcore.hostlist import compress, strnatcmp
from spurcore.render._common import print_str

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = ["render", "render_partitions", "render_nodes", "state_compact"]

_MIN_FIELD = 9

# node_state_string_compact (lower-cased by sinfo) and the enum value sinfo sorts by.
_COMPACT = {
    "UNKNOWN": ("unk", 0),
    "DOWN": ("down", 1),
    "IDLE": ("idle", 2),
    "ALLOCATED": ("alloc", 3),
    "ERROR": ("err", 4),
    "MIXED": ("mix", 5),
    "FUTURE": ("futr", 6),
    "DRAINED": ("drain", 1 | 0x200),
    "DRAINING": ("drng", 3 | 0x200),
    "COMPLETING": ("comp", 2 | 0x400),
}
_NO_RESPOND = 0x800


def _state(node: dict[str, Any]) -> tuple[str, int]:
    name = str(node.get("state") or "UNKNOWN").upper()
    text, value = _COMPACT.get(name, (name.lower(), 0))
    if node.get("not_responding"):
        text += "*"
        value |= _NO_RESPOND
    return text, value


def state_compact(node: dict[str, Any]) -> str:
    """``idle``, ``mix``, ``alloc``, ``down`` (``*`` appended for a non-responding node)."""
    return _state(node)[0]


def _partitions_of(node: dict[str, Any]) -> list[str]:
    parts = node.get("partitions")
    if parts:
        return [str(p) for p in parts]
    return [str(node.get("partition") or "debug")]


def _secs(secs: int) -> str:
    """sinfo's ``_print_secs``: ``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``."""
    days, rem = divmod(int(secs), 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def _part_label(name: str, default: bool, width: int) -> str:
    if default:
        if len(name) < width or width == 0:
            return name + "*"
        return name[: width - 1] + "*"
    return name


def _part_width(names: Iterable[str], default_partition: str | None) -> int:
    width = _MIN_FIELD
    for name in names:
        width = max(width, len(name) + (1 if name == default_partition else 0))
    return width


def _partition_order(nodes: list[dict[str, Any]], partitions: Iterable[str] | None) -> list[str]:
    order = list(partitions) if partitions is not None else []
    for node in nodes:
        for p in _partitions_of(node):
            if p not in order:
                order.append(p)
    return order


def render_partitions(
    nodes: Iterable[dict[str, Any]],
    *,
    noheader: bool = False,
    default_partition: str | None = "debug",
    partitions: Iterable[str] | None = None,
    time_limits: Mapping[str, int | None] | None = None,
) -> str:
    """Plain ``sinfo``.  ``partitions`` gives the configuration order (default: first seen);
    ``time_limits`` maps a partition to its MaxTime in seconds (missing or None: ``infinite``).
    """
    node_list = list(nodes)
    order = _partition_order(node_list, partitions)
    groups: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for node in node_list:
        text, value = _state(node)
        for p in _partitions_of(node):
            groups.setdefault((p, text), (value, []))[1].append(str(node["name"]))
    width = _part_width(order, default_partition)
    limits = time_limits or {}
    out: list[str] = []
    if not noheader:
        out.append(
            print_str("PARTITION", width, False, True)
            + " "
            + print_str("AVAIL", 5, True, True)
            + " "
            + print_str("TIMELIMIT", 10, True, True)
            + " "
            + print_str("NODES", 6, True, True)
            + " "
            + print_str("STATE", 6, True, True)
            + " "
            + "NODELIST"
            + "\n"
        )
    rank = {p: i for i, p in enumerate(order)}
    ordered = sorted(groups.items(), key=lambda kv: (rank[kv[0][0]], -kv[1][0], kv[0][1]))
    for (part, text), (_value, names) in ordered:
        limit = limits.get(part)
        out.append(
            print_str(_part_label(part, part == default_partition, width), width, False, True)
            + " "
            + print_str("up", 5, True, True)
            + " "
            + print_str("infinite" if limit is None else _secs(limit), 10, True, True)
            + " "
            + print_str(str(len(names)), 6, True, True)
            + " "
            + print_str(text, 6, True, True)
            + " "
            + compress(names)
            + "\n"
        )
    return "".join(out)


def render_nodes(
    nodes: Iterable[dict[str, Any]],
    *,
    noheader: bool = False,
    default_partition: str | None = "debug",
    partitions: Iterable[str] | None = None,
) -> str:
    """``sinfo -N``: one row per node and partition, in node-name order."""
    node_list = sorted(nodes, key=cmp_to_key(lambda a, b: strnatcmp(str(a["name"]), str(b["name"]))))
    order = _partition_order(node_list, partitions)
    rows = [(node, p) for node in node_list for p in _partitions_of(node)]
    node_width = max([_MIN_FIELD] + [len(str(n["name"])) for n, _p in rows])
    part_width = _part_width(order, default_partition)
    out: list[str] = []
    if not noheader:
        out.append(
            print_str("NODELIST", node_width, False, False)
            + " "
            + print_str("NODES", 6, True, True)
            + " "
            + print_str("PARTITION", part_width, True, True)
            + " "
            + print_str("STATE", 6, False, True)
            + "\n"
        )
    for node, part in rows:
        out.append(
            print_str(str(node["name"]), node_width, False, True)
            + " "
            + print_str("1", 6, True, True)
            + " "
            + print_str(_part_label(part, part == default_partition, part_width), part_width, True, True)
            + " "
            + print_str(state_compact(node), 6, False, True)
            + "\n"
        )
    return "".join(out)


def render(
    nodes: Iterable[dict[str, Any]],
    *,
    node_oriented: bool = False,
    noheader: bool = False,
    default_partition: str | None = "debug",
    partitions: Iterable[str] | None = None,
    time_limits: Mapping[str, int | None] | None = None,
) -> str:
    """``sinfo`` (``node_oriented`` is ``-N``)."""
    if node_oriented:
        return render_nodes(
            nodes, noheader=noheader, default_partition=default_partition, partitions=partitions
        )
    return render_partitions(
        nodes,
        noheader=noheader,
        default_partition=default_partition,
        partitions=partitions,
        time_limits=time_limits,
    )
