"""The supervisor's process control as data: which signal to send to which processes, in
which order, and how long to wait in between (pure: no processes, no clock).

Each function takes the situation and returns a :class:`Plan`: ordered steps (``Notice``,
``MarkKilled``, ``Send``, ``Freeze``, ``Thaw``, ``Wait``, ``Every``) and the supervisor's
flags afterwards. ``spurd.supervisor`` carries the steps out (``Sequence`` says which are
due at a given ``now``) and decides nothing about their order; the contract tests' fake
process control (tests/contract) carries out the same plans on fake processes.

Slurm's sequences (src/slurmd/slurmd/req.c ``_rpc_terminate_job``, ``_rpc_timelimit``;
slurmstepd's req.c), as Spur keeps them:

| situation | steps |
|---|---|
| every task has exited | nothing: the post-exit sweep SIGKILLs what is left (``sweep``) |
| stopped (suspended, or a task stopped by a debugger) | notice, mark killed, hard kill, SIGCONT, hard kill every second |
| a kill is already under way | mark killed, wait for whichever comes first, the running kill's next SIGKILL or the new KillWait, then hard kill every second |
| running | notice, mark killed, SIGCONT, SIGTERM, wait KillWait, then hard kill every second |

- The notice is slurmstepd's ``*** JOB 12 ON n1 CANCELLED AT ... DUE TO TIME LIMIT ***``
  line (:func:`kill_notice`), written to the job's stderr first (a batch script's file, or
  srun as slurmstepd's own output for a step), and only by the first kill.
- Every cause (scancel, time limit, node failure, requeue, srun's forced termination,
  SIGTERM to the supervisor, the fencing lease running out) has the same sequence; they
  differ in the notice and the grace: KillWait, 0 for a requeued job's previous run, the
  fence grace for fencing. Slurm waits ``MAX(KillWait, 5)``; Spur waits KillWait as
  configured (small ones make tests and local clusters fast).
- A "hard kill" is SIGKILL to every process of the step; with a cgroup the step is frozen
  first and thawed after, so that nothing forks in between (``hard_kill``).
- Tasks still running when a kill is ordered are "killed by command": slurmstepd ignores
  their status when it computes the node's (``MarkKilled``).
- Waits end early when every task has exited: the caller stops the sequence then.
- Suspend is SIGTSTP, ``suspend_grace``, SIGSTOP; resume is SIGCONT (and ends a suspend
  still in its grace, never a kill); a signal (``scancel -s``, ``--signal``'s warning, srun
  forwarding one) goes to the batch shell only (``batch``) or to the whole step.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

KILL_REPEAT = 1.0  # re-SIGKILL period while a task survives past KillWait
SWEEP_INTERVAL = 0.05  # re-SIGKILL period for leftovers once every task has exited

# Linux's numbers (as spurcore.signals): the core reads no OS module.
SIGKILL = 9
SIGTERM = 15
SIGCONT = 18
SIGSTOP = 19
SIGTSTP = 20


class To(enum.Enum):
    """Which processes a signal reaches."""

    JOB = "job"  # every process of the step: each task's process group, then the others once each
    BATCH = "batch"  # the batch shell (the main process) only
    CGROUP = "cgroup"  # every member of the step's cgroup (with ``Freeze`` first for SIGKILL)


class Cause(enum.Enum):
    """Why a step is being ended (``spurcore.leader.kill_reason`` for the controller's)."""

    CANCEL = "cancel"
    TIME_LIMIT = "time_limit"
    NODE_FAIL = "node_fail"
    REQUEUE = "requeue"
    SRUN = "srun"  # srun forces termination (its own SIGTERM, two SIGINTs, -K, -W)
    TERMINATED = "terminated"  # SIGTERM to the supervisor
    FENCE = "fence"  # the node's lease ran out: no contact with a controller quorum

    @classmethod
    def of(cls, why: str) -> Cause:
        """The controller's ``why`` of a KILL ("": an ordinary cancel)."""
        try:
            return cls(why)
        except ValueError:
            return cls.CANCEL


# --- steps --------------------------------------------------------------------------------


@attrs.frozen
class Notice:
    """slurmstepd's ``error:`` line, to srun (``to_client``) or to the job's stderr file."""

    text: str
    to_client: bool = False


@attrs.frozen
class MarkKilled:
    """Tasks still running are killed on order: their status does not decide the node's."""


@attrs.frozen
class Send:
    sig: int
    to: To = To.JOB


@attrs.frozen
class Freeze:
    """Freeze the step's cgroup (nothing runs, so nothing forks, until ``Thaw``)."""


@attrs.frozen
class Thaw:
    pass


@attrs.frozen
class Wait:
    """Until every task has exited (the caller stops the sequence then), at most ``seconds``;
    ``label`` names the wait in the supervisor's log when it runs out."""

    seconds: float
    label: str = ""


@attrs.frozen
class Every:
    """``steps`` now and then every ``seconds``, for as long as the sequence runs."""

    seconds: float
    steps: tuple[Any, ...]


Step = Notice | MarkKilled | Send | Freeze | Thaw | Wait | Every


@attrs.frozen
class Plan:
    """``steps`` in order. ``replace``: they become the running sequence (a kill replaces a
    suspend in its grace); else they are carried out at once beside it (no ``Wait``/``Every``).
    ``killing``/``suspended``: the supervisor's flags afterwards (``status`` shows them, and
    a suspend is refused while killing)."""

    steps: tuple[Step, ...]
    replace: bool
    killing: bool
    suspended: bool


def hard_kill(cgroup: bool) -> tuple[Step, ...]:
    """SIGKILL every process of the step; with a cgroup, frozen in between."""
    if not cgroup:
        return (Send(SIGKILL, To.JOB),)
    return (Freeze(), Send(SIGKILL, To.CGROUP), Send(SIGKILL, To.JOB), Thaw())


# --- situations and plans -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Situation:
    """What the supervisor knows when a kill is ordered.

    ``kill_wait``: the grace between SIGTERM and SIGKILL. ``notice``: the line to write
    ("" for none). ``ended``: every task has exited. ``stopped``: suspended, or a task is
    stopped (``suspended``: the supervisor's flag, kept when there is nothing to do). ``killing_left``: a kill is under way, its next SIGKILL this many seconds
    away (None: no kill yet). ``cgroup``: the step has one. ``relay``: an srun step (the
    notice goes to srun)."""

    cause: Cause
    kill_wait: float
    notice: str = ""
    ended: bool = False
    stopped: bool = False
    suspended: bool = False
    killing_left: float | None = None
    cgroup: bool = False
    relay: bool = False


def kill(s: Situation) -> Plan:
    """The terminate sequence for ``s`` (the module docstring's table)."""
    killing = s.killing_left is not None
    if s.ended:
        return Plan((), replace=False, killing=killing, suspended=s.suspended)
    notice: tuple[Step, ...] = (Notice(s.notice, s.relay),) if s.notice and not killing else ()
    hard = hard_kill(s.cgroup)
    repeat = Every(KILL_REPEAT, hard)
    if s.stopped:
        # Slurm: a suspended step gets no graceful SIGTERM; SIGCONT lets the SIGKILL land.
        steps = (*notice, MarkKilled(), *hard, Send(SIGCONT), Wait(KILL_REPEAT), repeat)
    elif killing:
        assert s.killing_left is not None
        steps = (MarkKilled(), Wait(max(0.0, min(s.killing_left, s.kill_wait)), "KillWait"), repeat)
    else:
        steps = (*notice, MarkKilled(), Send(SIGCONT), Send(SIGTERM), Wait(max(0.0, s.kill_wait), "KillWait"),
                 repeat)
    return Plan(steps, replace=True, killing=True, suspended=False)


def sweep(cgroup: bool) -> tuple[Step, ...]:
    """Once every task has exited: what is left of the step, SIGKILLed (the caller repeats
    it every ``SWEEP_INTERVAL`` until nothing is left, or gives up after the unkillable
    timeout: a status file means nothing of the job runs)."""
    return hard_kill(cgroup)


def suspend(*, grace: float, suspended: bool, killing: bool) -> Plan:
    """scontrol suspend: SIGTSTP, ``grace`` seconds, SIGSTOP (a no-op when suspended). The
    caller refuses it while killing (EBUSY) or once the tasks have ended (ESRCH)."""
    if suspended:
        return Plan((), replace=False, killing=killing, suspended=True)
    steps = (Send(SIGTSTP), Wait(max(0.0, grace), "suspend grace"), Send(SIGSTOP))
    return Plan(steps, replace=True, killing=killing, suspended=True)


def resume(*, killing: bool) -> Plan:
    """scontrol resume: SIGCONT; it ends a suspend still in its grace, never a kill."""
    return Plan((Send(SIGCONT),), replace=not killing, killing=killing, suspended=False)


def deliver(sig: int, target: str, *, killing: bool, suspended: bool) -> Plan:
    """``scancel -s`` (``batch``: the batch shell only; ``full``/``steps``: the whole step),
    ``--signal``'s warning before the time limit, or a signal srun forwards."""
    to = To.BATCH if target == "batch" else To.JOB
    return Plan((Send(sig, to),), replace=False, killing=killing, suspended=suspended)


# --- the notice -----------------------------------------------------------------------------

_WHY = {
    Cause.TIME_LIMIT: " DUE TO TIME LIMIT",
    Cause.CANCEL: " DUE to SIGNAL Terminated",  # Slurm 25.05+ wording (and its capitalisation)
    Cause.NODE_FAIL: " DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS",
    Cause.REQUEUE: " DUE TO JOB REQUEUE",
}


def kill_notice(cause: Cause, label: str, node: str, at: str) -> str:
    """slurmstepd's line in the job's stderr when the controller ends it (slurmstepd req.c):
    ``*** JOB 12 ON node1 CANCELLED AT 2026-01-01T10:00:00 DUE TO TIME LIMIT ***`` ("" for
    causes without one). ``label`` is ``JOB 12`` or ``STEP 12.0``; ``at`` the time, formatted."""
    why = _WHY.get(cause)
    if why is None:
        return ""
    return f"*** {label} ON {node} CANCELLED AT {at}{why} ***"


# --- carrying a plan out ------------------------------------------------------------------


class Sequence:
    """A running plan: :meth:`advance` returns the steps due at ``now``, in order, and
    remembers where it stopped (a ``Wait`` not yet over, or the next round of an ``Every``).
    Pure: time comes in as ``now``; the caller carries the steps out, and stops the sequence
    when every task has exited."""

    def __init__(self, steps: tuple[Step, ...] = ()) -> None:
        self.steps = steps
        self.index = 0
        self.until: float | None = None  # the end of the current Wait, or the next Every round
        self.expired: list[str] = []  # labels of waits that ran out (for the caller's log)

    @property
    def running(self) -> bool:
        return self.index < len(self.steps)

    def advance(self, now: float) -> list[Step]:
        out: list[Step] = []
        while self.index < len(self.steps):
            step = self.steps[self.index]
            if isinstance(step, Wait):
                if self.until is None:
                    self.until = now + step.seconds
                if now < self.until:
                    return out
                self.until = None
                if step.label:
                    self.expired.append(step.label)
                self.index += 1
            elif isinstance(step, Every):
                if self.until is not None and now < self.until:
                    return out
                out.extend(step.steps)
                self.until = now + step.seconds
                return out
            else:
                out.append(step)
                self.index += 1
        return out

    def deadline(self) -> float | None:
        """When :meth:`advance` next has something to do (None: the sequence is over)."""
        return self.until if self.running else None

    def stop(self) -> None:
        self.index = len(self.steps)
        self.until = None
