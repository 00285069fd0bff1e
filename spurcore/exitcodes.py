"""Slurm's exit-code semantics (Slurm 25.11; see reference/slurm-behaviour.md section 1).

Invariants:
- Exit status travels as the pair ``(exit_code, signal)`` decoded from the wait status;
  the raw wait status is rebuilt only where Slurm compares raw values (DerivedExitCode).
- Exactly one half of a real status is non-zero: exited -> ``code:0``, signalled -> ``0:sig``.
"""

from __future__ import annotations

from spurcore.signals import strsignal

SIG_OOM = 253  # Slurm's raw status for an OOM-killed job or step: shown 0:125


def decode_wait_status(raw: int) -> tuple[int, int]:
    """``(exit_code, signal)`` as every Slurm tool prints it."""
    sig = raw & 0x7F
    if sig != 0 and sig != 0x7F:  # WIFSIGNALED
        return 0, sig
    if sig == 0:  # WIFEXITED
        return (raw >> 8) & 0xFF, 0
    return 0, 0  # stopped: not a final status


def raw_status(exit_code: int, signal: int) -> int:
    """The wait status for a decoded pair (core-dump bit not kept)."""
    if signal:
        return signal & 0x7F
    return (exit_code & 0xFF) << 8


def fmt_exit(raw: int | None) -> str:
    """``code:signal``; None (NO_VAL) renders empty, as sacct does."""
    if raw is None:
        return ""
    code, sig = decode_wait_status(raw)
    return f"{code}:{sig}"


def raised_signal_desc(sig: int) -> str:
    """Slurm's state_desc for a batch shell killed by ``sig`` (squeue prints it as is)."""
    return f"RaisedSignal:{sig}({strsignal(sig)})"


def scontrol_reason(text: str) -> str:
    """scontrol replaces every whitespace character of state_desc with ``_``."""
    return "".join("_" if c.isspace() else c for c in text)


def final_state(raw: int, oom: bool) -> tuple[str, str, str]:
    """(JobState, Reason, state_desc) for a batch script that ended with wait status ``raw``.

    Slurm's order (job_mgr.c _job_complete): OOM, non-zero exit, signal, success. Node
    failure, cancel and time limit are decided before a status exists; see the reducer.
    """
    if oom or (raw & 0xFF) == SIG_OOM:
        return "OUT_OF_MEMORY", "OutOfMemory", ""
    code, sig = decode_wait_status(raw)
    if sig == 0 and code != 0:
        return "FAILED", "NonZeroExitCode", ""
    if sig != 0:
        return "FAILED", "RaisedSignal", raised_signal_desc(sig)
    return "COMPLETED", "None", ""


def step_state(raw: int, oom: bool) -> str:
    """Step state for sacct (as_mysql_step_complete): OOM, signalled, non-zero, success."""
    if oom or raw == SIG_OOM:
        return "OUT_OF_MEMORY"
    code, sig = decode_wait_status(raw)
    if sig:
        return "CANCELLED"
    if code:
        return "FAILED"
    return "COMPLETED"


def derive(current: int, step_raw: int, oom: bool) -> int:
    """DerivedExitCode update when a user step ends: max of raw statuses, OOM always wins."""
    if oom or step_raw == SIG_OOM:
        return SIG_OOM
    return step_raw if step_raw > current else current
