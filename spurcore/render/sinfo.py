"""``sinfo`` text: the ``-o`` and ``-O`` engines over node groups, the default, ``-l``,
``-N``, ``-s`` and ``-R`` layouts, sorting (``-S``), node state filters and ``--json``.

Pure module: node info dicts (``spurcore.views.node_info``) and partition records in, text
out.

Sources (Slurm 25.11): src/sinfo/opts.c (``fmt_data``, default formats, ``_node_state_id``),
src/sinfo/print.c (``_print_*``, ``_build_min_max_32_string``, field sizes),
src/sinfo/sinfo.c (``_match_node_data``, ``_match_part_data``, ``_update_sinfo``),
src/sinfo/sort.c (default ``#P,-t``, ``N`` with ``-N``).

Model: sinfo prints *groups* of nodes. Nodes of one partition fall into the same group when
every field the format shows agrees (the state word, the reason, ...; numbers only with
``-e``, otherwise they print as ``min+``). ``-N`` makes one group per node and partition.

Layouts:
- default: ``partition:9 ,available:.5 ,time:.10 ,nodes:.6 ,statecompact:.6 ,nodelist:0``;
  the partition column is as wide as the longest name (+1 for the default partition's
  ``*``), at least 9.
- ``-N``: ``nodelist:0 ,nodes:.6 ,partition:.9 ,statecompact:6``; the node column is as wide
  as the longest name, at least 9.
- ``-s``: ``partition:9 ,available:.5 ,time:.10 ,nodeaiot:.16 ,nodelist:0``.
- ``-R``: ``reason:20 ,user:9 ,timestamp:19 ,nodelist:0`` over down, failed and drained nodes.
"""

from __future__ import annotations

from _functools import cmp_to_key  # functools' own (C); functools itself imports collections

from spurcore.hostlist import compress, expand, strnatcmp
from spurcore.records import Record
from spurcore.render._common import make_time_str, print_str
from spurcore.timefmt import fmt_duration_squeue

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    _Value = tuple[str | None, bool]

__all__ = [
    "render",
    "render_partitions",
    "render_nodes",
    "render_format",
    "state_compact",
    "parse_format",
    "parse_long_format",
    "parse_states",
    "node_state_list",
    "help_format",
    "help_long_format",
    "Group",
    "build_groups",
    "to_json",
    "visible_partitions",
    "DEFAULT_FORMAT",
    "LONG_FORMAT",
    "NODE_FORMAT",
    "NODE_LONG_FORMAT",
    "SUMMARIZE_FORMAT",
    "REASONS_FORMAT",
    "REASONS_LONG_FORMAT",
]

DEFAULT_FORMAT = "partition:9 ,available:.5 ,time:.10 ,nodes:.6 ,statecompact:.6 ,nodelist:0"
LONG_FORMAT = ("partition:9 ,available:.5 ,time:.10 ,size:.10 ,root:.4 ,oversubscribe:.8 ,groups:.10 ,"
               "nodes:.6 ,statelong:.11 ,reservation:.11 ,nodelist:0")
NODE_FORMAT = "nodelist:0 ,nodes:.6 ,partition:.9 ,statecompact:6"
NODE_LONG_FORMAT = ("nodelist:0 ,nodes:.6 ,partition:.9 ,statelong:.11 ,cpus:4 ,socketcorethread:.8 ,"
                    "memory:.6 ,disk:.8 ,weight:.6 ,features:.8 ,reason:20")
SUMMARIZE_FORMAT = "partition:9 ,available:.5 ,time:.10 ,nodeaiot:.16 ,nodelist:0"
REASONS_FORMAT = "reason:20 ,user:9 ,timestamp:19 ,nodelist:0"
REASONS_LONG_FORMAT = "reason:20 ,userlong:12 ,timestamp:19 ,statecompact:6 ,nodelist:0"

_MIN_FIELD = 9

def _state(node: dict[str, Any]) -> tuple[str, str, int]:
    """(long, compact, number) of a node's state as sinfo prints and sorts it
    (``node_state_string``/``_compact`` lower-cased, ``*`` for a non-responding node)."""
    from spurcore.render import nodestate

    return (nodestate.state_long(node).lower(), nodestate.state_compact(node).lower(),
            nodestate.state_number(node))


def state_compact(node: dict[str, Any]) -> str:
    """``idle``, ``mix``, ``alloc``, ``drain``, ``down*`` (sinfo ``%t``)."""
    return _state(node)[1]


def _partitions_of(node: dict[str, Any]) -> list[str]:
    parts = node.get("partitions")
    if parts:
        return [str(p) for p in parts]
    return [str(node.get("partition") or "debug")]


# ---------------------------------------------------------------------------------------------
# node state filters (-t)

#: sinfo's list of node state names (opts.c ``_node_state_list``; ERROR is left out).
_STATE_NAMES = (
    "unknown,down,idle,allocated,mixed,future,drain,drained,draining,no_respond,reserved,planned,"
    "blocked,cloud,completing,powering_down,powered_down,power_down,powering_up,power_up,invalid_reg,"
    "fail,maint,reboot_requested,reboot_issued,external,dynamic_future,dynamic_norm"
)
_COMPACT_NAMES = {"unknown": "unk", "down": "down", "idle": "idle", "allocated": "alloc", "error": "err",
                  "mixed": "mix", "future": "futr"}


def node_state_list() -> str:
    return _STATE_NAMES


class StateSel(Record):
    """One -t entry: a state name Spur can test and whether it is negated (``~``/``!``)."""

    __slots__ = ()

    def __new__(cls, name: str, negate: bool) -> StateSel:
        return tuple.__new__(cls, (name, negate))


class StateError(ValueError):
    """``Bad state string: "x"``."""


def parse_states(text: str) -> tuple[list[StateSel], bool]:
    """``-t`` list (``_build_state_list``): names (prefixes of a long or compact name, any
    case), ``~``/``!`` negates, ``+``/``&`` means all must hold (else any); ``all`` is every
    state. Returns (entries, and_mode). Raises StateError naming the bad entry."""
    if text.lower() == "all":
        return [], False
    and_mode = "+" in text or "&" in text
    out: list[StateSel] = []
    for item in (t for t in text.replace("&", ",").replace("+", ",").split(",") if t):  # not re: start-up
        negate = item[0] in "~!"
        name = item[1:] if negate else item
        state = _node_state_id(name)
        if state is None:
            raise StateError(f'Bad state string: "{name}"')
        out.append(StateSel(state, negate))
    return out, and_mode


def _node_state_id(text: str) -> str | None:
    """The state a (prefix of a) name means, as a lower-case name."""
    low = text.lower()
    if not low:
        return "unknown"
    for long, compact in _COMPACT_NAMES.items():
        if long.startswith(low) or compact.startswith(low):
            return long
    extra = {"blocked": ("blocked", "block"), "invalid_reg": ("invalid_reg", "inval"),
             "planned": ("planned", "plnd"), "drain": ("drain",), "drained": ("drained",),
             "reserved": ("resv", "reserved"), "draining": ("draining", "drng")}
    for name, words in extra.items():
        if any(w.startswith(low) for w in words):
            return name
    for name in _STATE_NAMES.split(","):
        if name.startswith(low):
            return name
    return None


def _has_state(node: dict[str, Any], name: str) -> bool:
    """Does ``node`` match ``-t`` state ``name`` (sinfo.c ``_filter_node_state``)?"""
    from spurcore.render.nodestate import has_state

    return has_state(node, name)


def node_matches_states(node: dict[str, Any], sels: list[StateSel], and_mode: bool) -> bool:
    if not sels:
        return True
    results = [(_has_state(node, s.name) != s.negate) for s in sels]
    return all(results) if and_mode else any(results)


# ---------------------------------------------------------------------------------------------
# groups


class Group:
    """One printed row: nodes of one partition that agree on every shown field (sinfo's
    ``sinfo_data_t``). A partition without a (selected) node is a row of its own, with no
    nodes (``first`` is then an empty record)."""

    __slots__ = ("part", "nodes", "first")

    def __init__(self, part: dict[str, Any] | None, first: dict[str, Any] | None) -> None:
        self.part = part
        self.first: dict[str, Any] = first if first is not None else {}
        self.nodes: list[dict[str, Any]] = [first] if first is not None else []

    @property
    def names(self) -> list[str]:
        return [str(n["name"]) for n in self.nodes]

    def minmax(self, key: str, default: int = 0) -> tuple[int, int]:
        values = [int(n.get(key) or default) for n in self.nodes] or [0]
        return min(values), max(values)

    def counts(self) -> tuple[int, int, int, int]:
        """(alloc, idle, other, total) nodes (``_update_sinfo``: ALLOCATED, MIXED or
        COMPLETING count as allocated, then DRAIN or DOWN as other)."""
        from spurcore.render.nodestate import state_bits

        alloc = idle = other = 0
        for n in self.nodes:
            base, flags = state_bits(n)
            if base in ("ALLOCATED", "MIXED") or "COMPLETING" in flags:
                alloc += 1
            elif "DRAIN" in flags or base == "DOWN":
                other += 1
            else:
                idle += 1
        return alloc, idle, other, len(self.nodes)

    def cpu_counts(self) -> tuple[int, int, int, int]:
        """(alloc, idle, other, total) CPUs: a DRAIN or DOWN node's free CPUs are other."""
        from spurcore.render.nodestate import state_bits

        alloc = idle = other = total = 0
        for n in self.nodes:
            cpus = int(n.get("cpus") or 0)
            used = int(n.get("alloc_cpus") or 0)
            total += cpus
            alloc += used
            base, flags = state_bits(n)
            if "DRAIN" in flags or base == "DOWN":
                other += cpus - used
            else:
                idle += cpus - used
        return alloc, idle, other, total


def _text_list(value: Any) -> str:
    """A record's list (features) as sinfo prints the string slurmctld holds."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value or "")


#: Which node fields decide the grouping for each field (``match_flags``,
#: ``_match_node_data``); numbers only with ``-e`` (``exact``).
def _match_key(key: str, node: dict[str, Any], exact: bool) -> Any:
    if key in ("StateCompact", "StateLong"):
        return _state(node)[0]
    if key == "StateComplete":
        from spurcore.render.nodestate import state_complete

        return state_complete(node)
    if key == "Reason":
        return str(node.get("reason") or "")
    if key == "TimeStamp":
        return float(node.get("reason_time") or node.get("down_at") or 0)
    if key in ("User", "UserLong"):
        return node.get("reason_uid", -1) if node.get("reason") else None
    if key == "AllocMem":
        return int(node.get("alloc_mem") or 0)
    if key in ("NodeAddr", "NodeHost"):
        return str(node["name"])
    if key == "Features":
        return _text_list(node.get("features"))
    if key == "features_act":
        return _text_list(node.get("active_features", node.get("features")))
    if key == "Gres":
        return str(node.get("gres") or "")
    if key == "GresUsed":
        return str(node.get("gres_used") or "")
    if exact and key in ("CPUs", "CPUsState", "Memory", "Disk", "Weight", "Sockets", "Cores", "Threads",
                         "SocketCoreThread", "CPUsLoad", "FreeMem", "Version", "Port"):
        return (int(node.get("cpus") or 0), int(node.get("mem_mb") or 0), int(node.get("weight") or 1))
    return None


#: The partition attribute each field compares (``_match_part_data``'s match flags).
_PART_KEYS = {
    "Available": "state", "Groups": "allow_groups", "Size": "size", "DefaultTime": "default_time",
    "Time": "max_time", "Root": "root", "OverSubscribe": "oversubscribe", "Share": "oversubscribe",
    "PreemptMode": "preempt_mode", "PriorityTier": "priority_tier", "PriorityJobFactor": "priority_job_factor",
    "MaxCPUsPerNode": "max_cpus_per_node",
}


def _part_sig(part: dict[str, Any], keys: list[str]) -> tuple[Any, ...]:
    sig: list[Any] = []
    for key in keys:
        if key in ("Partition", "PartitionName"):
            sig.append(("name", part["name"]))
        elif key in _PART_KEYS:
            attr = _PART_KEYS[key]
            value = (part.get("min_nodes"), part.get("max_nodes")) if attr == "size" else part.get(attr)
            sig.append((attr, repr(value)))
    return tuple(sig)


def build_groups(
    nodes: Iterable[dict[str, Any]],
    parts: list[dict[str, Any]],
    keys: Iterable[str],
    *,
    node_oriented: bool = False,
    exact: bool = False,
    reasons: bool = False,
) -> list[Group]:
    """The rows (sinfo.c ``_build_sinfo_data``): for each partition in order, each of its
    nodes joins the first row whose partition and nodes agree on every shown field
    (``_match_part_data``, ``_match_node_data``), else starts a row. A format showing the
    partition starts with one row per partition, so a partition without nodes still shows
    (``0 n/a``); one that does not lets partitions share rows; ``reasons`` (``-R``) ignores
    partitions; ``node_oriented`` (``-N``) gives every node of every partition a row."""
    keys = list(keys)
    shows_partition = any(k in ("Partition", "PartitionName") for k in keys)
    node_list = list(nodes)
    out: list[Group] = []
    index: dict[Any, Group] = {}
    empty: dict[int, Group] = {}
    if shows_partition and not node_oriented and not reasons:
        for part in parts:
            group = Group(part, None)
            empty[id(part)] = group
            out.append(group)
    for part in parts:
        psig = () if reasons else _part_sig(part, keys)
        for node in node_list:
            if part["name"] not in _partitions_of(node):
                continue
            if node_oriented:
                out.append(Group(part, node))
                continue
            sig = (psig, tuple(_match_key(k, node, exact) for k in keys))
            group = index.get(sig)
            if group is None:
                group = empty.pop(id(part), None)
                if group is not None:  # the partition's own first row
                    group.first, group.nodes = node, [node]
                else:
                    group = Group(part, node)
                    out.append(group)
                index[sig] = group
            elif str(node["name"]) not in group.names:
                group.nodes.append(node)
    return out


# ---------------------------------------------------------------------------------------------
# fields


def _min_max(lo: int, hi: int, *, range_: bool = False) -> str:
    """``_build_min_max_32_string``: ``n``, ``lo-hi`` (range) or ``lo+``."""
    if lo == hi:
        return str(hi)
    if range_:
        return f"{lo}-{hi}"
    return f"{lo}+"


def _part_attr(key: str, default: Any = None) -> Callable[[Group, Any], _Value]:
    def fn(g: Group, _v: Any) -> _Value:
        if g.part is None:
            return "n/a", True
        return str(g.part.get(key, default)), True

    return fn


def _avail(g: Group, _v: Any) -> _Value:
    if g.part is None:
        return "n/a", True
    return str(g.part.get("state") or "UP").lower(), True


def _time(key: str) -> Callable[[Group, Any], _Value]:
    def fn(g: Group, _v: Any) -> _Value:
        if g.part is None:
            return "n/a", True
        limit = g.part.get(key)
        if limit is None:
            return ("infinite" if key == "max_time" else "n/a"), True
        return fmt_duration_squeue(int(limit)), True

    return fn


def _partition(g: Group, v: Any) -> _Value:
    if g.part is None:
        return "n/a", True
    name = str(g.part["name"])
    if g.part.get("default"):
        width = v.part_width
        if width == 0 or len(name) < width:
            name += "*"
        else:
            name = name[: width - 1] + "*"
    return name, True


def _state_field(which: int) -> Callable[[Group, Any], _Value]:
    def fn(g: Group, _v: Any) -> _Value:
        if not g.nodes:
            return "n/a", True
        return _state(g.first)[which], True

    return fn


def _reason(g: Group, _v: Any) -> _Value:
    reason = str(g.first.get("reason") or "") or "none"
    if reason.startswith("(null)"):
        reason = "none"
    return reason, True


def _timestamp(g: Group, v: Any) -> _Value:
    t = float(g.first.get("reason_time") or g.first.get("down_at") or 0)
    if not t:
        return "Unknown", True
    return make_time_str(t, v.time_format, v.now), True


def _user(long: bool) -> Callable[[Group, Any], _Value]:
    """``%u``/``%U``: who set the reason (``Unknown`` without one). The reader resolves
    ``reason_uid`` into ``reason_user``; -1 (the controller) is SlurmUser, ``slurm``; a uid
    with no name is ``Unk(uid)`` (``uid_to_string_or_null``)."""

    def fn(g: Group, _v: Any) -> _Value:
        if not g.first.get("reason"):
            return "Unknown", True
        uid = g.first.get("reason_uid", -1)
        uid = -1 if uid is None else int(uid)
        name = g.first.get("reason_user") or ("slurm" if uid < 0 else "root" if uid == 0 else None)
        if long:
            return f"{name or 'Unk'}({uid})", True
        return (name or f"Unk({uid})"), True

    return fn


def _node_text(key: str, default: str = "(null)") -> Callable[[Group, Any], _Value]:
    """A node string field of the row's first node (features, GRES): ``(null)`` when unset."""

    def fn(g: Group, _v: Any) -> _Value:
        if not g.nodes:
            return None, True
        text = _text_list(g.first.get(key))
        return (text or default), True

    return fn


def _active_features(g: Group, v: Any) -> _Value:
    if "active_features" not in g.first:
        return _node_text("features")(g, v)
    return _node_text("active_features")(g, v)


def _weight(g: Group, _v: Any) -> _Value:
    lo, hi = g.minmax("weight", 1)
    return _min_max(lo, hi), True


def _mem(g: Group, _v: Any) -> _Value:
    lo, hi = g.minmax("mem_mb")
    return _min_max(lo, hi), True


def _cpus(g: Group, _v: Any) -> _Value:
    lo, hi = g.minmax("cpus")
    return _min_max(lo, hi), True


def _sockets(g: Group, _v: Any) -> _Value:
    lo, hi = g.minmax("cpus", 1)
    return _min_max(lo, hi), True


def _sct(g: Group, _v: Any) -> _Value:
    lo, hi = g.minmax("cpus", 1)
    return f"{_min_max(lo, hi)}:1:1", True


def _free_mem(g: Group, _v: Any) -> _Value:
    if all("free_mem" not in n for n in g.nodes):
        return "N/A", True
    lo, hi = g.minmax("free_mem")
    return _min_max(lo, hi, range_=True), True


def _cpu_load(g: Group, _v: Any) -> _Value:
    if all("cpu_load" not in n for n in g.nodes):
        return "N/A", True
    values = [float(n.get("cpu_load") or 0) for n in g.nodes]
    lo, hi = min(values), max(values)
    return (f"{hi:.2f}" if lo == hi else f"{lo:.2f}-{hi:.2f}"), True


def _nodelist(g: Group, _v: Any) -> _Value:
    return compress(g.names), True


def _addr(g: Group, _v: Any) -> _Value:
    from spurcore.endpoints import node_addr

    return compress([node_addr(str(n.get("address") or ""), str(n["name"])) for n in g.nodes]), True


def _counts(fmt: str) -> Callable[[Group, Any], _Value]:
    def fn(g: Group, _v: Any) -> _Value:
        alloc, idle, other, total = g.counts()
        if fmt == "ai":
            return f"{alloc}/{idle}", True
        if fmt == "aiot":
            return f"{alloc}/{idle}/{other}/{total}", True
        return str(total), True

    return fn


def _cpus_aiot(g: Group, _v: Any) -> _Value:
    return "/".join(str(x) for x in g.cpu_counts()), True


def _alloc_mem(g: Group, _v: Any) -> _Value:
    return str(int(g.first.get("alloc_mem") or 0)), True


def _const(text: str | None) -> Callable[[Group, Any], _Value]:
    return lambda _g, _v: (text, True)


def _part_const(text: str) -> Callable[[Group, Any], _Value]:
    return lambda g, _v: ("n/a" if g.part is None else text, True)


def _size(g: Group, _v: Any) -> _Value:
    """JOB_SIZE: MinNodes-MaxNodes (MinNodes 0 reads 1 when a maximum exists, and there
    always is one: UNLIMITED is ``infinite``)."""
    if g.part is None:
        return "n/a", True
    lo = int(g.part.get("min_nodes") or 0)
    hi = g.part.get("max_nodes")
    lo = max(lo, 1)
    if hi is None:
        return f"{lo}-infinite", True
    return _min_max(lo, int(hi), range_=True), True


def _groups(g: Group, _v: Any) -> _Value:
    if g.part is None:
        return "n/a", True
    return (",".join(str(x) for x in g.part.get("allow_groups") or ()) or "all"), True


def _part_oversubscribe(g: Group, _v: Any) -> _Value:
    from spurcore.render._common import oversubscribe_text

    if g.part is None:
        return "n/a", True
    return oversubscribe_text(g.part.get("oversubscribe")), True


def _part_number(key: str) -> Callable[[Group, Any], _Value]:
    def fn(g: Group, _v: Any) -> _Value:
        if g.part is None:
            return "n/a", True
        return str(int(g.part.get(key) or 1)), True

    return fn


def _cluster(g: Group, v: Any) -> _Value:
    return (v.cluster or "N/A"), True


def _version(g: Group, _v: Any) -> _Value:
    return str(g.first.get("version") or "25.11.0"), True


#: fmt_data in order: (-O name, letter, header, value function, hidden).
_TABLE: tuple[tuple[str, str, str, Callable[[Group, Any], _Value], bool], ...] = (
    ("AllocMem", "", "ALLOCMEM", _alloc_mem, False),
    ("AllocNodes", "S", "ALLOCNODES", _part_const("all"), False),
    ("Available", "a", "AVAIL", _avail, False),
    ("Cluster", "V", "CLUSTER", _cluster, False),
    ("Comment", "", "COMMENT", _const(None), False),
    ("Cores", "Y", "CORES", _const("1"), False),
    ("CPUs", "c", "CPUS", _cpus, False),
    ("CPUsLoad", "O", "CPU_LOAD", _cpu_load, False),
    ("CPUsState", "C", "CPUS(A/I/O/T)", _cpus_aiot, False),
    ("DefaultTime", "L", "DEFAULTTIME", _time("default_time"), False),
    ("Disk", "d", "TMP_DISK", _const("0"), False),
    ("Extra", "", "EXTRA", _const(None), False),
    ("Features", "f", "AVAIL_FEATURES", _node_text("features"), False),
    ("features_act", "b", "ACTIVE_FEATURES", _active_features, False),
    ("FreeMem", "e", "FREE_MEM", _free_mem, False),
    ("Gres", "G", "GRES", _node_text("gres"), False),
    ("GresUsed", "", "GRES_USED", _node_text("gres_used"), False),
    ("Groups", "g", "GROUPS", _groups, False),
    ("MaxCPUsPerNode", "B", "MAX_CPUS_PER_NODE", _const("UNLIMITED"), False),
    ("Memory", "m", "MEMORY", _mem, False),
    ("NodeAddr", "o", "NODE_ADDR", _addr, False),
    ("NodeAI", "A", "NODES(A/I)", _counts("ai"), False),
    ("NodeAIOT", "F", "NODES(A/I/O/T)", _counts("aiot"), False),
    ("NodeHost", "n", "HOSTNAMES", _nodelist, False),
    ("NodeList", "N", "NODELIST", _nodelist, False),
    ("Nodes", "D", "NODES", _counts("t"), False),
    ("OverSubscribe", "h", "OVERSUBSCRIBE", _part_oversubscribe, False),
    ("Partition", "P", "PARTITION", _partition, False),
    ("PartitionName", "R", "PARTITION", lambda g, _v: ("n/a" if g.part is None else str(g.part["name"]), True),
     False),
    ("Port", "", "PORT", _const("6818"), False),
    ("PreemptMode", "M", "PREEMPT_MODE", _const("OFF"), False),
    ("PriorityJobFactor", "I", "PRIO_JOB_FACTOR", _part_number("priority_job_factor"), False),
    ("PriorityTier", "p", "PRIO_TIER", _part_number("priority_tier"), False),
    ("Reason", "E", "REASON", _reason, False),
    ("Reservation", "i", "RESERVATION", _const(""), False),
    ("Root", "r", "ROOT", _part_const("no"), False),
    ("Share", "h", "OVERSUBSCRIBE", _part_oversubscribe, True),
    ("Size", "s", "JOB_SIZE", _size, False),
    ("Sockets", "X", "SOCKETS", _sockets, False),
    ("SocketCoreThread", "z", "S:C:T", _sct, False),
    ("StateCompact", "t", "STATE", _state_field(1), False),
    ("StateComplete", "", "STATECOMPLETE", _state_field(0), False),
    ("StateLong", "T", "STATE", _state_field(0), False),
    ("Threads", "Z", "THREADS", _const("1"), False),
    ("Time", "l", "TIMELIMIT", _time("max_time"), False),
    ("TimeStamp", "H", "TIMESTAMP", _timestamp, False),
    ("User", "u", "USER", _user(False), False),
    ("UserLong", "U", "USER", _user(True), False),
    ("Version", "v", "VERSION", _version, False),
    ("Weight", "w", "WEIGHT", _weight, False),
)
_FIELDS: dict[str, tuple[str, Callable[[Group, Any], _Value]]] = {k: (h, fn) for k, _l, h, fn, _h in _TABLE}
_LETTERS: dict[str, str] = {}
for _name, _letter, _h, _f, _hidden in _TABLE:
    if _letter and _letter not in _LETTERS:
        _LETTERS[_letter] = _name
_NAMES = {k.lower(): k for k in _FIELDS}
_UNCUT_HEADERS = frozenset({"NodeList", "NodeHost", "NodeAddr"})

class FormatItem(Record):
    """One printed item (as squeue's): a field (``key``), or verbatim text (``key`` None)."""

    __slots__ = ()

    def __new__(cls, key: str | None, width: int = 0, right: bool = False, suffix: str = "") -> FormatItem:
        return tuple.__new__(cls, (key, width, right, suffix))


class ParsedFormat(Record):
    """``items`` (list of FormatItem) and ``errors`` (sinfo's "Invalid ... specification" lines)."""

    __slots__ = ()

    def __new__(cls, items: list[FormatItem], errors: list[str]) -> ParsedFormat:
        return tuple.__new__(cls, (items, errors))


def parse_format(fmt: str) -> ParsedFormat:
    """``sinfo -o`` (``_parse_format``): prefix, ``%[.][size]letter[suffix]`` items."""
    out = ParsedFormat([], [])
    pos = fmt.find("%")
    if pos != 0:
        out.items.append(FormatItem(None, suffix=fmt if pos < 0 else fmt[:pos]))
        if pos < 0:
            return out
        fmt = fmt[pos:]
    format_all = fmt.lower() == "%all"
    if format_all:
        letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
        fmt = "|".join("%" + c for c in letters) + "".join(
            "|%" + chr(c) + " " for c in range(ord("A"), ord("Z") + 1))
    for token in (t for t in fmt.split("%") if t):
        i = 0
        right = token.startswith(".")
        if right:
            i += 1
        digits = ""
        while i < len(token) and token[i].isdigit():
            digits += token[i]
            i += 1
        width = int(digits) if digits else 0
        letter = token[i] if i < len(token) else ""
        suffix = token[i + 1 :]
        key = _LETTERS.get(letter) if letter else None
        if key is not None:
            out.items.append(FormatItem(key, width, right, suffix))
        elif not format_all:
            out.items.append(FormatItem(None, width, right, "%" + token))
            out.errors.append(f"Invalid node format specification: {letter}")
    return out


def parse_long_format(fmt: str) -> ParsedFormat:
    """``sinfo -O`` (``_parse_long_format``): ``name[:[.]size[suffix]]``; ``all`` is ``%all``."""
    out = ParsedFormat([], [])
    for token in (t for t in fmt.split(",") if t):
        name, colon, spec = token.partition(":")
        suffix = ""
        if colon:
            right = spec.startswith(".")
            if right:
                spec = spec[1:]
            j = 1 if spec[:1] in ("+", "-") else 0
            k = j
            while k < len(spec) and spec[k].isdigit():
                k += 1
            width = int(spec[:k]) if k > j else 0
            suffix = spec[k:] if k > j else spec
        else:
            right, width = False, 20
        if name.lower() == "all":
            out.items.extend(parse_format("%all").items)
            continue
        key = _NAMES.get(name.lower())
        if key is None:
            out.items.append(FormatItem(None, width, right, suffix))
            out.errors.append(f"Invalid job format specification: {name}")
        else:
            out.items.append(FormatItem(key, width, right, suffix))
    return out


def help_format() -> str:
    """``--helpformat``: ``%<letter>`` of every visible field with one, eight a line."""
    cells = [f"%{letter:<5}" for name, letter, _h, _f, hidden in _TABLE if letter and not hidden]
    return _columns(cells, 8)


def help_long_format() -> str:
    cells = [f"{name:<20}" for name, _l, _h, _f, hidden in _TABLE if not hidden]
    return _columns(cells, 4)


def _columns(cells: list[str], per: int) -> str:
    out = []
    for i, cell in enumerate(cells):
        if i and i % per == 0:
            out.append("\n")
        out.append(cell)
    return "".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# sorting


def _sort_key(letter: str, part_rank: dict[str, int], part_order: bool) -> Callable[[Group], Any] | None:
    def state_num(g: Group) -> int:
        return _state(g.first)[2]

    keys: dict[str, Callable[[Group], Any]] = {
        "a": lambda g: str((g.part or {}).get("state") or "UP"),
        "A": lambda g: g.counts()[:2],
        "c": lambda g: g.minmax("cpus")[0],
        "D": lambda g: len(g.nodes),
        "E": lambda g: str(g.first.get("reason") or ""),
        "F": lambda g: g.counts()[:2],
        "H": lambda g: float(g.first.get("reason_time") or g.first.get("down_at") or 0),
        "m": lambda g: g.minmax("mem_mb")[0],
        "n": lambda g: _node_cmp_key(g),
        "N": lambda g: _node_cmp_key(g),
        "o": lambda g: _node_cmp_key(g),
        "P": (lambda g: part_rank.get(str((g.part or {}).get("name")), 0)) if part_order
        else (lambda g: str((g.part or {}).get("name") or "")),
        "R": lambda g: str((g.part or {}).get("name") or ""),
        "t": state_num,
        "T": state_num,
        "u": lambda g: str(g.first.get("reason_user") or ""),
        "U": lambda g: str(g.first.get("reason_user") or ""),
        "V": lambda g: "",
    }
    return keys.get(letter)


def _node_cmp_key(g: Group) -> Any:
    first = sorted(g.names, key=cmp_to_key(strnatcmp))[0] if g.names else ""
    return cmp_to_key(strnatcmp)(first)


def sort_groups(groups: list[Group], spec: str, part_order: list[str]) -> list[Group]:
    """sort.c: keys applied from the last to the first with stable sorts; ``-`` reverses,
    ``#P`` sorts partitions in configuration order."""
    rank = {p: i for i, p in enumerate(part_order)}
    out = list(groups)
    i = len(spec) - 1
    while i >= 0:
        c = spec[i]
        if c in ",#+-":
            i -= 1
            continue
        reverse = i > 0 and spec[i - 1] == "-"
        hashed = i > 0 and spec[i - 1] == "#"
        fn = _sort_key(c, rank, hashed)
        if fn is not None:
            out.sort(key=fn, reverse=reverse)
        i -= 1
    return out


# ---------------------------------------------------------------------------------------------
# printing


class _View:
    __slots__ = ("now", "time_format", "part_width", "node_width", "cluster")

    def __init__(self, now: float, time_format: str | None, cluster: str) -> None:
        self.now = now
        self.time_format = time_format
        self.part_width = 0
        self.node_width = 0
        self.cluster = cluster


def render_format(
    nodes: Iterable[dict[str, Any]],
    fmt: str | None = None,
    *,
    long_fmt: str | None = None,
    noheader: bool = False,
    node_oriented: bool = False,
    exact: bool = False,
    reasons: bool = False,
    default_fields: bool = False,
    sort: str | None = None,
    default_partition: str | None = "debug",
    partitions: Iterable[str] | None = None,
    time_limits: Mapping[str, int | None] | None = None,
    part_records: Iterable[dict[str, Any]] | None = None,
    now: float = 0.0,
    time_format: str | None = None,
    cluster: str = "",
) -> str:
    """The sinfo table: ``fmt`` (``-o``) or ``long_fmt`` (``-O``) over node groups.
    ``default_fields`` sizes the partition and node columns as sinfo does for its own
    layouts (``part_field_flag``/``node_field_flag``). ``part_records`` are the partitions
    to show (the ``partitions`` answer, already filtered: ``-p``, hidden ones); without
    them, partitions are made from the nodes' names (``partitions``, ``time_limits``,
    ``default_partition``)."""
    items = parse_format(fmt).items if fmt is not None else parse_long_format(long_fmt or DEFAULT_FORMAT).items
    node_list = list(nodes)
    parts = _partition_list(node_list, part_records, partitions, time_limits, default_partition)
    order = [str(p["name"]) for p in parts]
    keys = [i.key for i in items if i.key is not None]
    if node_oriented:
        node_list.sort(key=cmp_to_key(lambda a, b: strnatcmp(str(a["name"]), str(b["name"]))))
    groups = build_groups(node_list, parts, keys, node_oriented=node_oriented, exact=exact, reasons=reasons)
    groups = sort_groups(groups, sort or ("N" if node_oriented else "#P,-t"), order)
    view = _View(now, time_format, cluster)
    if default_fields:
        view.part_width = max([_MIN_FIELD] + [len(str(p["name"])) + (1 if p.get("default") else 0) for p in parts
                                              if any(g.part is p for g in groups)] or [_MIN_FIELD])
        view.node_width = max([_MIN_FIELD] + [len(compress(g.names)) for g in groups])
    out: list[str] = []

    def width_of(item: FormatItem) -> int:
        if default_fields and item.key in ("Partition", "PartitionName"):
            return view.part_width
        if default_fields and node_oriented and item.key in ("NodeList", "NodeHost"):
            return view.node_width
        return item.width

    if not noheader:
        parts_out = []
        for item in items:
            if item.key is not None:
                header = _FIELDS[item.key][0]
                parts_out.append(print_str(header, width_of(item), item.right, item.key not in _UNCUT_HEADERS))
            parts_out.append(item.suffix)
        out.append("".join(parts_out) + "\n")
    for group in groups:
        row = []
        for item in items:
            if item.key is not None:
                text, cut = _FIELDS[item.key][1](group, view)
                row.append(print_str(text, width_of(item), item.right, cut))
            row.append(item.suffix)
        out.append("".join(row) + "\n")
    return "".join(out)


def visible_partitions(parts: Iterable[dict[str, Any]], *, show_all: bool, uid: int,
                       groups: Iterable[str]) -> list[dict[str, Any]]:
    """The partitions slurmctld sends without SHOW_ALL (part_mgr.c ``part_is_visible``):
    not Hidden, and, when AllowGroups is set, holding one of the caller's ``groups``.
    ``show_all`` (sinfo -a/-p, scontrol -a) or root sees them all."""
    out = []
    mine = set(groups)
    for part in parts:
        allowed = [str(g) for g in part.get("allow_groups") or ()]
        if not show_all and uid != 0 and (part.get("hidden") or (allowed and not mine & set(allowed))):
            continue
        out.append(part)
    return out


def _partition_list(nodes: list[dict[str, Any]], records: Iterable[dict[str, Any]] | None,
                    names: Iterable[str] | None, time_limits: Mapping[str, int | None] | None,
                    default_partition: str | None) -> list[dict[str, Any]]:
    """The partitions rows are made for, in configuration order."""
    if records is not None:
        return [dict(p) for p in records]
    order = list(names) if names is not None else []
    for node in nodes:
        for p in _partitions_of(node):
            if p not in order:
                order.append(p)
    limits = time_limits or {}
    return [{"name": p, "default": p == default_partition, "state": "UP", "max_time": limits.get(p),
             "default_time": None} for p in order]


def render_partitions(
    nodes: Iterable[dict[str, Any]],
    *,
    noheader: bool = False,
    default_partition: str | None = "debug",
    partitions: Iterable[str] | None = None,
    time_limits: Mapping[str, int | None] | None = None,
    part_records: Iterable[dict[str, Any]] | None = None,
) -> str:
    """Plain ``sinfo``.  ``part_records``: the partitions (the ``partitions`` answer); or
    ``partitions`` gives the configuration order (default: first seen) and ``time_limits``
    maps a partition to its MaxTime in seconds (missing or None: ``infinite``)."""
    return render_format(nodes, long_fmt=DEFAULT_FORMAT, noheader=noheader, default_fields=True,
                         default_partition=default_partition, partitions=partitions, time_limits=time_limits,
                         part_records=part_records)


def render_nodes(
    nodes: Iterable[dict[str, Any]],
    *,
    noheader: bool = False,
    default_partition: str | None = "debug",
    partitions: Iterable[str] | None = None,
    part_records: Iterable[dict[str, Any]] | None = None,
) -> str:
    """``sinfo -N``: one row per node and partition, in node-name order."""
    return render_format(nodes, long_fmt=NODE_FORMAT, noheader=noheader, node_oriented=True, default_fields=True,
                         default_partition=default_partition, partitions=partitions, part_records=part_records)


def render(
    nodes: Iterable[dict[str, Any]],
    *,
    node_oriented: bool = False,
    noheader: bool = False,
    default_partition: str | None = "debug",
    partitions: Iterable[str] | None = None,
    time_limits: Mapping[str, int | None] | None = None,
    part_records: Iterable[dict[str, Any]] | None = None,
) -> str:
    """``sinfo`` (``node_oriented`` is ``-N``)."""
    if node_oriented:
        return render_nodes(nodes, noheader=noheader, default_partition=default_partition, partitions=partitions,
                            part_records=part_records)
    return render_partitions(nodes, noheader=noheader, default_partition=default_partition, partitions=partitions,
                             time_limits=time_limits, part_records=part_records)


# ---------------------------------------------------------------------------------------------
# --json (data_parser v0.0.44 SINFO_DATA)


def _num(value: int | None, *, infinite: bool = False) -> dict[str, Any]:
    if infinite:
        return {"set": False, "infinite": True, "number": 0}
    if value is None:
        return {"set": False, "infinite": False, "number": 0}
    return {"set": True, "infinite": False, "number": int(value)}


def to_json(nodes: Iterable[dict[str, Any]], *, meta: dict[str, Any], default_partition: str = "debug",
            partitions: Iterable[str] | None = None, time_limits: Mapping[str, int | None] | None = None,
            part_records: Iterable[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``sinfo --json``: one ``sinfo`` entry per (partition, state) group, as sinfo's
    data_parser output groups them (``{"sinfo": [...], "meta", "errors", "warnings"}``)."""
    from spurcore.render.nodestate import state_bits

    node_list = list(nodes)
    parts = _partition_list(node_list, part_records, partitions, time_limits, default_partition)
    groups = build_groups(node_list, parts, ["PartitionName", "StateLong", "Reason"])
    out = []
    for g in groups:
        if not g.nodes:
            continue
        base, flags = state_bits(g.first)
        lo_weight, hi_weight = g.minmax("weight", 1)
        default_time = (g.part or {}).get("default_time")
        alloc, idle, other, total = g.counts()
        calloc, cidle, cother, ctotal = g.cpu_counts()
        lo_cpu, hi_cpu = g.minmax("cpus")
        lo_mem, hi_mem = g.minmax("mem_mb")
        part = g.part or {}
        limit = part.get("max_time")
        out.append({
            "port": 6818,
            "node": {"state": [base, *flags]},
            "nodes": {"allocated": alloc, "idle": idle, "other": other, "total": total,
                      "hostnames": [], "addresses": [], "nodes": expand(compress(g.names))},
            "cpus": {"allocated": calloc, "idle": cidle, "other": cother, "total": ctotal,
                     "minimum": lo_cpu, "maximum": hi_cpu, "load": {"minimum": 0, "maximum": 0},
                     "per_node": {"max": _num(None, infinite=True)}},
            "sockets": {"minimum": lo_cpu, "maximum": hi_cpu},
            "cores": {"minimum": 1, "maximum": 1},
            "threads": {"minimum": 1, "maximum": 1},
            "disk": {"minimum": 0, "maximum": 0},
            "memory": {"minimum": lo_mem, "maximum": hi_mem, "free": {"minimum": _num(None), "maximum": _num(None)},
                       "allocated": int(g.first.get("alloc_mem") or 0)},
            "weight": {"minimum": lo_weight, "maximum": hi_weight},
            "features": {"total": _text_list(g.first.get("features")),
                         "active": _text_list(g.first.get("active_features", g.first.get("features")))},
            "gres": {"total": "" if g.first.get("gres") in (None, "(null)") else str(g.first["gres"]),
                     "used": "" if g.first.get("gres_used") in (None, "(null)") else str(g.first["gres_used"])},
            "cluster": "",
            "comment": "",
            "extra": "",
            "reason": {"description": str(g.first.get("reason") or ""), "time": _num(
                int(g.first.get("reason_time") or g.first.get("down_at") or 0) or None),
                "user": str(g.first.get("reason_user") or "")},
            "reservation": "",
            "partition": {
                "name": part.get("name", ""),
                "partition": {"state": [str(part.get("state") or "UP")]},
                "maximums": {"time": _num(None if limit is None else int(limit) // 60, infinite=limit is None)},
                "defaults": {"time": _num(None if default_time is None else int(default_time) // 60)},
                "nodes": {"configured": compress(g.names), "total": total},
                "cpus": {"total": ctotal},
                "flags": (["DEFAULT"] if part.get("default") else []) + (["HIDDEN"] if part.get("hidden") else []),
            },
        })
    return {"sinfo": out, "meta": meta, "errors": [], "warnings": []}
