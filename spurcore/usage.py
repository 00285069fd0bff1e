"""Step usage records (Slurm's jobacct_gather data) and how sacct/sstat print them.

A *node record* is what one node's supervisor measured over that node's tasks of a step;
``combine`` folds the node records of a step into the step's record, as slurmctld's
``jobacctinfo_aggregate`` does. Keys (all optional; absent = never measured):

- ``ntasks``: tasks measured;
- ``user_cpu``, ``sys_cpu``: CPU seconds summed over the tasks (and their descendants);
- ``max_rss``/``max_vmsize``/``max_pages`` with ``..._task`` (global task id) and, once
  combined, ``..._node``: the largest peak of one task (bytes; major page faults);
- ``ave_rss_sum``/``ave_vmsize_sum``/``ave_pages_sum``: sums over tasks of each task's
  average, divided by ``ntasks`` when combined (``ave_rss`` ...);
- ``min_cpu`` with ``min_cpu_task``/``min_cpu_node``: the smallest CPU time of one task.

Pure: dicts in, dicts and strings out. Memory is in bytes, CPU time in seconds.
"""

from __future__ import annotations

TYPE_CHECKING = False  # annotations only: sacct imports this module on the CLI path
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

_PEAKS = ("max_rss", "max_vmsize", "max_pages")
_AVES = ("rss", "vmsize", "pages")


def combine(records: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The step's record from ``(node, node record)`` pairs (empty when none measured)."""
    out: dict[str, Any] = {}
    ntasks = 0
    sums: dict[str, float] = {}  # only what some node measured
    for node, rec in records:
        if not rec:
            continue
        n = int(rec.get("ntasks") or 0)
        ntasks += n
        for key in ("user_cpu", "sys_cpu"):
            out[key] = out.get(key, 0.0) + float(rec.get(key) or 0.0)
        for key in _PEAKS:
            if key in rec and (key not in out or rec[key] > out[key]):
                out[key] = rec[key]
                out[f"{key}_task"] = int(rec.get(f"{key}_task") or 0)
                out[f"{key}_node"] = node
        if "min_cpu" in rec and ("min_cpu" not in out or rec["min_cpu"] < out["min_cpu"]):
            out["min_cpu"] = float(rec["min_cpu"])
            out["min_cpu_task"] = int(rec.get("min_cpu_task") or 0)
            out["min_cpu_node"] = node
        for key in _AVES:
            if f"ave_{key}_sum" in rec:
                sums[key] = sums.get(key, 0.0) + float(rec[f"ave_{key}_sum"])
    if not out:
        return {}
    out["ntasks"] = ntasks
    if ntasks:
        for key, total in sums.items():
            out[f"ave_{key}"] = total / ntasks
        out["ave_cpu"] = (out.get("user_cpu", 0.0) + out.get("sys_cpu", 0.0)) / ntasks
    out["total_cpu"] = out.get("user_cpu", 0.0) + out.get("sys_cpu", 0.0)
    return out


def fmt_size(value: float | None) -> str:
    """Bytes as sacct/sstat print them (``convert_num_unit`` from no unit, exact): divided by
    1024 while that stays exact to a half unit, e.g. ``210309120`` -> ``205380K``."""
    if value is None:
        return ""
    num = float(value)
    if int(num) == 0:
        return "0"
    units = "\0KMGTP"
    unit = 0
    while num >= 1024 and int(num) % 512 == 0 and unit < 5:
        num /= 1024
        unit += 1
    suffix = units[unit] if unit else ""
    return f"{int(num)}{suffix}" if num == int(num) else f"{num:.2f}{suffix}"


def fmt_size_unit(value: float | None, units: str | None = None, noconvert: bool = False) -> str:
    """Bytes as sacct prints them with ``--units=[KMGTP]`` (convert_num_unit's spec_type: to
    that unit, ``%.2f`` unless whole) or ``--noconvert`` (whole bytes); otherwise
    :func:`fmt_size`."""
    if value is None:
        return ""
    if units and int(value):
        num = float(value) / 1024 ** ("KMGTP".index(units) + 1)
        return f"{int(num)}{units}" if num == int(num) else f"{num:.2f}{units}"
    if noconvert or units:  # a zero prints as 0 in every unit
        return str(int(value))
    return fmt_size(value)


def fmt_cpu(seconds: float | None, subsec: bool = True) -> str:
    """sacct's ``_elapsed_time``: ``[D-]HH:MM:SS``, or ``MM:SS.mmm`` below an hour when
    there are milliseconds (``subsec``; AveCPU and MinCPU are printed without)."""
    if seconds is None:
        return ""
    total_us = int(round(float(seconds) * 1_000_000))
    secs, usecs = divmod(total_us, 1_000_000)
    milli = usecs // 1000 if subsec else 0
    s, m, h, d = secs % 60, (secs // 60) % 60, (secs // 3600) % 24, secs // 86400
    if d:
        return f"{d}-{h:02d}:{m:02d}:{s:02d}"
    if h:
        return f"{h:02d}:{m:02d}:{s:02d}"
    if milli:
        return f"{m:02d}:{s:02d}.{milli:03d}"
    return f"00:{m:02d}:{s:02d}"
