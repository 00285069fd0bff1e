"""Node states as Slurm names them, from a node record (``spurcore.views.node_info``).

Slurm keeps a node's state as a base state (UNKNOWN, DOWN, IDLE, ALLOCATED, MIXED, FUTURE)
plus flags (COMPLETING, DRAIN, FAIL, NOT_RESPONDING, ...), and prints it three ways
(src/common/slurm_protocol_defs.c at slurm-25-11-7-1):

* ``node_state_string_complete`` (scontrol show node ``State=``): the base, then ``+FLAG``
  for each flag in ``node_state_flags[]`` order: ``IDLE+DRAIN``, ``DOWN+NOT_RESPONDING``,
  ``MIXED+DRAIN+NOT_RESPONDING``;
* ``node_state_string`` (sinfo ``%T``, lower-cased): ``DRAINED``/``DRAINING``,
  ``FAIL``/``FAILING``, ``DOWN``, ``ALLOCATED``, ``IDLE``, ... with ``*`` for a node that
  is not responding;
* ``node_state_string_compact`` (sinfo ``%t``): ``DRAIN``/``DRNG``, ``FAIL``/``FAILG``,
  ``ALLOC``, ``MIX``, ``UNK``, ... with the same ``*``.

A record carries Spur's display state (``state``: what ``node_state_string`` would print,
without the ``*``), ``state_flags`` (DRAIN, FAIL, NOT_RESPONDING) and ``not_responding``;
``state_bits`` turns them back into Slurm's base and flags, and every name comes from
those. Pure functions; a record missing fields reads as Slurm's defaults.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "state_bits", "state_complete", "state_long", "state_compact", "state_number", "has_state",
    "is_down", "is_drain", "FLAG_ORDER",
]

#: node_state_flags[] order (the order ``+FLAG`` suffixes are printed in).
FLAG_ORDER = ("COMPLETING", "DRAIN", "FAIL", "NOT_RESPONDING")
#: The enum values of the base states (slurm.h ``node_states``), and the flag bits sinfo
#: sorts by (``-S t`` compares the whole state word).
_BASE_NUMBER = {"UNKNOWN": 0, "DOWN": 1, "IDLE": 2, "ALLOCATED": 3, "ERROR": 4, "MIXED": 5, "FUTURE": 6}
_FLAG_BITS = {"DRAIN": 1 << 9, "COMPLETING": 1 << 10, "NOT_RESPONDING": 1 << 11, "FAIL": 1 << 13}


def state_bits(node: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(base state, flags in ``FLAG_ORDER``) of a node record.

    DRAINED/FAIL nodes hold no CPUs (base IDLE); DRAINING/FAILING ones hold some (base
    ALLOCATED when all, else MIXED; a node whose jobs hold no CPU any more is IDLE and
    COMPLETING). A DOWN node stays DOWN whatever its flags."""
    shown = str(node.get("state") or "UNKNOWN").upper().rstrip("*")
    given = {str(f).upper() for f in node.get("state_flags") or ()}
    flags = set()
    if "DRAIN" in given or shown in ("DRAINED", "DRAINING", "DRAIN"):
        flags.add("DRAIN")
    if "FAIL" in given or shown in ("FAIL", "FAILING"):
        flags.add("FAIL")
    if "NOT_RESPONDING" in given or node.get("not_responding"):
        flags.add("NOT_RESPONDING")
    if "COMPLETING" in given:
        flags.add("COMPLETING")
    if shown in _BASE_NUMBER:
        base = shown
    elif shown in ("DRAINING", "FAILING"):
        cpus, alloc = int(node.get("cpus") or 0), int(node.get("alloc_cpus") or 0)
        if alloc <= 0:
            base = "IDLE"
            flags.add("COMPLETING")
        else:
            base = "ALLOCATED" if alloc >= cpus else "MIXED"
    elif shown == "COMPLETING":
        base = "IDLE"
        flags.add("COMPLETING")
    else:  # DRAINED, FAIL, and anything unknown to this table
        base = "IDLE" if shown in ("DRAINED", "DRAIN", "FAIL") else "UNKNOWN"
    return base, tuple(f for f in FLAG_ORDER if f in flags)


def state_complete(node: dict[str, Any]) -> str:
    """``node_state_string_complete``: ``IDLE``, ``IDLE+DRAIN``, ``DOWN+NOT_RESPONDING``."""
    base, flags = state_bits(node)
    return base + "".join("+" + f for f in flags)


def _state_string(node: dict[str, Any], compact: bool) -> str:
    base, flags = state_bits(node)
    star = "*" if "NOT_RESPONDING" in flags else ""
    busy = "COMPLETING" in flags or base in ("ALLOCATED", "MIXED")
    if "DRAIN" in flags:
        if busy:
            return ("DRNG" if compact else "DRAINING") + star
        return ("DRAIN" if compact else "DRAINED") + star
    if "FAIL" in flags:
        if busy:
            return ("FAILG" if compact else "FAILING") + star
        return "FAIL" + star
    if base == "DOWN":
        return "DOWN" + star
    if base == "ALLOCATED":
        return ("ALLOC" if compact else "ALLOCATED") + (star or ("+" if "COMPLETING" in flags else ""))
    if "COMPLETING" in flags:
        return ("COMP" if compact else "COMPLETING") + star
    names = {"IDLE": ("IDLE", "IDLE"), "MIXED": ("MIXED", "MIX"), "FUTURE": ("FUTURE", "FUTR"),
             "ERROR": ("ERROR", "ERR"), "UNKNOWN": ("UNKNOWN", "UNK")}
    long, short = names.get(base, (base, base))
    return (short if compact else long) + star


def state_long(node: dict[str, Any]) -> str:
    """``node_state_string``: ``DRAINED``, ``DRAINING``, ``MIXED``, ``DOWN*``, ..."""
    return _state_string(node, False)


def state_compact(node: dict[str, Any]) -> str:
    """``node_state_string_compact``: ``DRAIN``, ``DRNG``, ``MIX``, ``DOWN*``, ``UNK``, ..."""
    return _state_string(node, True)


def state_number(node: dict[str, Any]) -> int:
    """The state word (base enum | flag bits) sinfo sorts ``-S t`` by."""
    base, flags = state_bits(node)
    value = _BASE_NUMBER.get(base, 0)
    for f in flags:
        value |= _FLAG_BITS[f]
    return value


def is_drain(node: dict[str, Any]) -> bool:
    return "DRAIN" in state_bits(node)[1]


def is_down(node: dict[str, Any]) -> bool:
    return state_bits(node)[0] == "DOWN"


def has_state(node: dict[str, Any], name: str) -> bool:
    """sinfo ``-t`` (sinfo.c ``_filter_node_state``) for one lower-case state name:
    ``drain`` any node with the DRAIN flag, ``draining``/``drained`` what
    ``node_state_string`` calls so, flags (``fail``, ``no_respond``, ``completing``, ...)
    by their flag, ``allocated`` any node with allocated CPUs, other names the base state."""
    base, flags = state_bits(node)
    if name == "drain":
        return "DRAIN" in flags
    if name in ("draining", "drained"):
        return "DRAIN" in flags and state_long(node).rstrip("*").lower() == name
    flag = {"fail": "FAIL", "no_respond": "NOT_RESPONDING", "completing": "COMPLETING"}.get(name)
    if flag is not None:
        return flag in flags
    if name == "allocated":  # any allocated CPU (a MIXED node too)
        return int(node.get("alloc_cpus") or 0) > 0 or base in ("ALLOCATED", "MIXED")
    return base.lower() == name
