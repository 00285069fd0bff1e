"""Fake process control: pure and clocked (``spurd.proccontrol.ProcessControl``).

A run's job is a tiny shell script that the fake interprets instead of running, statement
by statement (newlines or ``;``): ``sleep N``, ``exit N``, ``kill -SIG $$``, ``trap '' SIG...``
(ignored, and by the children, as in bash), ``trap 'exit N' SIG...``, ``true``/``:``/``echo``.
Anything else is refused (ValueError): a case the fake cannot model must not pass silently.

Signals follow POSIX defaults (TERM, INT, HUP, USR1, ... end the process; KILL always;
STOP/TSTP stop it and its clock; CONT resumes it; CHLD, URG, WINCH are ignored). Kills,
suspends, resumes and signals are ``spurcore.killplan``'s plans, carried out here exactly as
the supervisor (``spurd.jobcontrol``) carries them out, so the contract tests hold both to
the same sequences. Time moves only in :meth:`wait` (to the next event: a sleep ending, a
plan's wait running out, a lease check finding the lease run out), so a test that waits
for KillWait takes no real time; or in :meth:`advance_to`, by which the simulation
(``tests/sim``) drives every run of a node to its clock.

Fencing: a run whose spec names a ``lease_file`` reads that lease every ``LEASE_CHECK``
seconds from its start, as the supervisor does; :meth:`write_lease` and :meth:`remove_lease`
are the agent's side (``spurd.procs.write_lease``, unlinking the file). A check that finds
the lease run out kills the run (``Cause.FENCE``, ``fence_grace``) and its status says
``fenced``. A run without a lease, or whose lease file is absent, is never fenced.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

import attrs

from spurcore import killplan
from spurcore.agentmsg import RunStatus, SupervisorSpec
from spurcore.exitcodes import raw_status
from spurcore.killplan import (
    Cause,
    Every,
    Freeze,
    MarkKilled,
    Notice,
    Plan,
    Send,
    Sequence,
    Situation,
    Thaw,
    To,
)
from spurcore.signals import parse_signal
from spurd.supervisor import LEASE_CHECK

KILL, TERM, CONT, STOP, TSTP = 9, 15, 18, 19, 20
DEFAULT_IGNORED = {17, 23, 28, 18}  # CHLD, URG, WINCH; CONT only resumes


def _signal_number(text: str) -> int:
    return parse_signal(text.removeprefix("-"))


def parse(script: str) -> list[tuple[str, Any]]:
    """The statements of a script the fake can run (see the module docstring)."""
    out: list[tuple[str, Any]] = []
    for raw in re.split(r"[;\n]", script):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        cmd, args = words[0], words[1:]
        if cmd == "sleep" and len(args) == 1:
            out.append(("sleep", float(args[0])))
        elif cmd == "exit":
            out.append(("exit", int(args[0]) if args else 0))
        elif cmd == "kill" and len(args) == 2 and args[1] == "$$":
            out.append(("raise", _signal_number(args[0])))
        elif cmd == "trap" and len(args) >= 2:
            action = args[0]
            sigs = [_signal_number(a) for a in args[1:]]
            if action == "":
                out.append(("ignore", sigs))
            elif re.fullmatch(r"exit \d+", action):
                out.append(("trap", (sigs, int(action.split()[1]))))
            else:
                raise ValueError(f"the fake cannot run the trap {action!r}")
        elif cmd in ("true", ":", "echo"):
            continue
        else:
            raise ValueError(f"the fake cannot run {line!r}")
    return out


@attrs.define
class FakeTask:
    """One fake process: its statements, where it is, its dispositions and its status."""

    statements: list[tuple[str, Any]]
    pc: int = 0
    sleep_left: float = 0.0  # of the current sleep (the clock stops while it is stopped)
    sleep_since: float | None = None
    ignored: set[int] = attrs.Factory(set)
    traps: dict[int, int] = attrs.Factory(dict)
    stopped: bool = False
    trapped: int | None = None  # a trap's exit code, run once the foreground command ends
    status: tuple[int, int] | None = None  # (exit code, signal)
    killed_by_cmd: bool = False

    def next_event(self) -> float | None:
        if self.status is not None or self.stopped or self.sleep_since is None:
            return None
        return self.sleep_since + self.sleep_left

    def run(self, now: float) -> None:
        """Run statements until it sleeps, stops or ends."""
        while self.status is None and not self.stopped:
            if self.sleep_since is not None:
                if now < self.sleep_since + self.sleep_left:
                    return
                self.sleep_since, self.sleep_left = None, 0.0
                self.pc += 1
                if self.trapped is not None:
                    self.status = (self.trapped, 0)
                    return
                continue
            if self.pc >= len(self.statements):
                self.status = (0, 0)
                return
            op, arg = self.statements[self.pc]
            if op == "sleep":
                self.sleep_since, self.sleep_left = now, arg
                continue
            self.pc += 1
            if op == "exit":
                self.status = (arg, 0)
            elif op == "raise":
                self.deliver(arg, now)
            elif op == "ignore":
                self.ignored.update(arg)
                for sig in arg:
                    self.traps.pop(sig, None)
            elif op == "trap":
                sigs, code = arg
                for sig in sigs:
                    self.traps[sig] = code
                    self.ignored.discard(sig)

    def deliver(self, sig: int, now: float, shell_only: bool = False) -> None:
        """``sig`` to the shell and its foreground child (the process group), or to the
        shell alone (``shell_only``: scancel --batch)."""
        if self.status is not None or sig == 0:
            return
        if sig == KILL:
            self.status = (0, KILL)
        elif sig == CONT:
            if self.stopped:
                self.stopped = False
                if self.sleep_since is not None:
                    self.sleep_since = now
                self.run(now)
        elif sig in self.ignored:
            return
        elif sig in self.traps:
            if shell_only and self.sleep_since is not None:
                self.trapped = self.traps[sig]  # bash runs it when the foreground command ends
            else:
                # the foreground child dies of it too (a trap is not inherited): the trap runs
                self.status = (self.traps[sig], 0)
        elif sig in (STOP, TSTP):
            if not self.stopped:
                self.stopped = True
                if self.sleep_since is not None:
                    self.sleep_left -= now - self.sleep_since
                    self.sleep_since = now
        elif sig in DEFAULT_IGNORED:
            return
        else:
            self.status = (0, sig)


@attrs.define
class FakeRun:
    spec: SupervisorSpec
    task: FakeTask
    started: float
    sequence: Sequence = attrs.Factory(Sequence)
    killing: bool = False
    suspended: bool = False
    notices: list[str] = attrs.Factory(list)
    ended_at: float | None = None
    fenced: bool = False


class FakeProcesses:
    """:class:`spurd.proccontrol.ProcessControl` on fake processes and a simulated clock.
    ``cgroup``: runs have a cgroup (Freeze/Thaw steps are carried out as no-ops)."""

    def __init__(self, cgroup: bool = False, clock: float = 1000.0) -> None:
        self.clock = clock
        self.cgroup = cgroup
        self.runs: dict[str, FakeRun] = {}
        self.leases: dict[str, float] = {}  # lease file -> when it runs out (this clock)

    def now(self) -> float:
        return self.clock

    def start(self, spec: SupervisorSpec) -> str:
        if spec.argv[:2] != ("/bin/bash", "-c") or len(spec.argv) < 3:
            raise ValueError("the fake runs only /bin/bash -c SCRIPT")
        run = f"run{len(self.runs)}"
        task = FakeTask(parse(spec.argv[2]))
        self.runs[run] = FakeRun(spec, task, self.clock)
        self._advance_run(self.runs[run], self.clock)  # it runs, and reads its lease at once
        return run

    # --- the plans, carried out as spurd.jobcontrol carries them out ---------------------

    def _apply(self, r: FakeRun, plan: Plan) -> int:
        r.killing, r.suspended = plan.killing, plan.suspended
        if plan.replace:
            r.sequence = Sequence(plan.steps)
            return self._carry_out(r, r.sequence.advance(self.clock))
        return self._carry_out(r, plan.steps)

    def _carry_out(self, r: FakeRun, steps: Any) -> int:
        sent = 0
        for step in steps:
            if isinstance(step, Send):
                if r.task.status is None:
                    r.task.deliver(step.sig, self.clock, shell_only=step.to is To.BATCH)
                    sent += step.to is not To.CGROUP
            elif isinstance(step, MarkKilled):
                if r.task.status is None:
                    r.task.killed_by_cmd = True
            elif isinstance(step, Notice):
                r.notices.append(step.text)
            elif isinstance(step, (Freeze, Thaw)):
                pass  # no fork races among fake processes
            elif isinstance(step, Every):
                sent += self._carry_out(r, step.steps)
        self._settle(r)
        return sent

    def _settle(self, r: FakeRun) -> None:
        if r.task.status is not None and r.ended_at is None:
            r.ended_at = self.clock
            r.sequence.stop()  # its waits were "until every task has exited"

    def _ended(self, r: FakeRun) -> bool:
        return r.task.status is not None

    # --- the verbs ----------------------------------------------------------------------

    def signal(self, run: str, sig: int, target: str = "full") -> dict[str, Any]:
        r = self.runs[run]
        if self._ended(r):
            return {"ok": False, "errno": 3}
        sent = self._apply(r, killplan.deliver(sig, target, killing=r.killing, suspended=r.suspended))
        return {"ok": True} if sent else {"ok": False, "errno": 3}

    def kill(self, run: str, kill_wait: float | None = None, *, why: str = "", notice: str = "") -> None:
        r = self.runs[run]
        self._kill(r, Cause.of(why), r.spec.kill_wait if kill_wait is None else kill_wait, notice)

    def _kill(self, r: FakeRun, cause: Cause, wait: float, notice: str = "") -> None:
        """As ``spurd.jobcontrol``'s ``_kill``: the plan for the situation now."""
        deadline = r.sequence.deadline()
        left = None
        if r.killing:
            left = wait if deadline is None else max(0.0, deadline - self.clock)
        ended = self._ended(r)
        stopped = not ended and (r.suspended or r.task.stopped)
        self._apply(r, killplan.kill(Situation(
            cause=cause, kill_wait=wait, notice=notice, ended=ended, stopped=stopped, suspended=r.suspended,
            killing_left=left, cgroup=self.cgroup, relay=r.spec.io is not None)))

    def suspend(self, run: str) -> dict[str, Any]:
        r = self.runs[run]
        if self._ended(r):
            return {"ok": False, "errno": 3}
        if r.killing:
            return {"ok": False, "errno": 16}
        self._apply(r, killplan.suspend(grace=r.spec.suspend_grace, suspended=r.suspended, killing=False))
        return {"ok": True}

    def resume(self, run: str) -> dict[str, Any]:
        r = self.runs[run]
        if self._ended(r):
            return {"ok": False, "errno": 3}
        self._apply(r, killplan.resume(killing=r.killing))
        return {"ok": True}

    def wait(self, run: str, timeout: float) -> RunStatus | None:
        """Let simulated time pass, event by event, until the run ends or ``timeout``."""
        r = self.runs[run]
        deadline = self.clock + timeout
        while not self._ended(r):
            due = self._next_event(r)
            if due is None or due > deadline:
                break
            self._advance_run(r, due)
        self.clock = max(self.clock, deadline) if not self._ended(r) else self.clock
        return self.status(run)

    def advance_to(self, now: float) -> None:
        """Every run, event by event, up to ``now`` (a simulation's clock drives the fake)."""
        while True:
            pending = [(t, r) for r in self.runs.values() if not self._ended(r)
                       if (t := self._next_event(r)) is not None and t <= now]
            if not pending:
                break
            t, r = min(pending, key=lambda p: p[0])
            self._advance_run(r, t)
        self.clock = max(self.clock, now)

    def _next_event(self, r: FakeRun) -> float | None:
        events = [t for t in (r.task.next_event(), r.sequence.deadline(), self._fence_check(r)) if t is not None]
        return min(events) if events else None

    def _advance_run(self, r: FakeRun, at: float) -> None:
        self.clock = max(self.clock, at)
        r.task.run(self.clock)
        self._settle(r)
        fence = self._fence_check(r)
        if fence is not None and fence <= self.clock:  # the supervisor's timers: the lease first
            r.fenced = True
            self._kill(r, Cause.FENCE, r.spec.fence_grace)
        if r.sequence.running:
            self._carry_out(r, r.sequence.advance(self.clock))

    # --- fencing --------------------------------------------------------------------------

    def write_lease(self, path: str, seconds: float) -> None:
        """The agent renews the lease at ``path``: it runs out ``seconds`` from now."""
        self.leases[path] = self.clock + seconds

    def remove_lease(self, path: str) -> None:
        """No lease file: fencing is off (the agent unlinks it when the controllers say so)."""
        self.leases.pop(path, None)

    def _fence_check(self, r: FakeRun) -> float | None:
        """When ``r``'s supervisor will find its lease run out, if nothing renews it: the first
        of its checks (at its start, then every ``LEASE_CHECK``) not before the lease's end."""
        if r.fenced or r.spec.lease_file is None or self._ended(r):
            return None
        expiry = self.leases.get(r.spec.lease_file)
        if expiry is None:
            return None
        k = max(0, math.ceil((expiry - r.started) / LEASE_CHECK))
        at = r.started + k * LEASE_CHECK
        return at if at >= expiry else at + LEASE_CHECK

    def status(self, run: str) -> RunStatus | None:
        r = self.runs[run]
        if r.task.status is None:
            return None
        code, sig = r.task.status
        return RunStatus(wait_status=raw_status(code, sig), exit_code=code, signal=sig,
                         ended_at=r.ended_at if r.ended_at is not None else self.clock, killed=r.killing,
                         tasks={"0": raw_status(code, sig)}, fenced=r.fenced)

    def notices(self, run: str) -> list[str]:
        return list(self.runs[run].notices)
