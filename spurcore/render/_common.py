"""Helpers shared by the renderers: Slurm's column printer and small value rules.

Pure module (no clock, no I/O). See src/squeue/print.c and src/sinfo/print.c ``_print_str``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from typing import Any


NULL = "(null)"

#: States that end a job (the base state names of ``spurcore.model.JobState``).
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "CANCELLED",
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)
#: Job state flags that are displayed instead of the base state.
FLAG_STATES = frozenset({"COMPLETING", "STOPPED"})


def print_str(value: str | None, width: int, right: bool, cut: bool) -> str:
    """Slurm's ``_print_str(str, width, right, cut_output)``.

    * ``right`` and ``width > 0``: ``printf("%<width>s")``; cut to ``width`` only when ``cut``.
    * left and ``width > 0``: ``printf("%.<width>s")`` (always cut), then padded to ``width``.
    * ``width == 0``: the value at its natural length.

    ``None`` is a C NULL string: glibc prints ``(null)``, or nothing when a precision below 6
    is given (left-justified with a width under 6).
    """
    if value is None:
        value = "" if (not right and 0 < width < 6) else NULL
    if width < 0:  # "%s " (only reachable with an explicit negative -O size)
        return value + " "
    if width == 0:
        return value
    if right:
        text = value.rjust(width)
        if cut:
            text = text[:width]
    else:
        text = value[:width]
    if len(text) < width:
        text += " " * (width - len(text))
    return text


def null(text: str | None) -> str:
    """A string field as scontrol prints it: NULL (or empty) -> ``(null)``."""
    return text if text else NULL


def base_state(info: dict[str, Any]) -> str:
    """The base state of a job record (``base_state``, falling back to ``state``)."""
    return str(info.get("base_state") or info.get("state") or "")


def step_sort_key(step_id: int | str | None) -> tuple[int, int]:
    """Order of step rows: batch, extern, interactive, then numbered steps ascending."""
    if step_id == "batch":
        return (0, 0)
    if step_id == "extern":
        return (1, 0)
    if step_id == "interactive":
        return (2, 0)
    if isinstance(step_id, int):
        return (3, step_id)
    return (4, 0)


def step_id_text(step_id: int | str | None) -> str:
    """``log_build_step_id_str`` for the step part: ``batch``, ``0``, ``TBD`` (pending)."""
    if step_id is None:
        return "TBD"
    return str(step_id)


def tres_string(cpus: int, mem_mb: int, nodes: int, fmt_mem: Any) -> str:
    """``cpu=N,mem=M,node=n,billing=N``; zero counts are left out, as Slurm does."""
    parts = []
    if cpus:
        parts.append(f"cpu={cpus}")
    if mem_mb:
        parts.append(f"mem={fmt_mem(mem_mb)}")
    if nodes:
        parts.append(f"node={nodes}")
    if cpus:
        parts.append(f"billing={cpus}")
    return ",".join(parts)
