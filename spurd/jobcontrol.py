"""Job control: which processes are the step's, and carrying out ``spurcore.killplan``'s
steps on them (signals, the cgroup's freezer, the kill notice).

Invariants:
- "The job's processes" are the supervisor's descendants (it is a child subreaper) plus
  its cgroup's members: no cgroup means no blind spot, only a weaker guard against fork
  races.
- Every signal of a "whole job" delivery reaches each process once: killpg for each task's
  process group (only while a process of ours still carries it: a reaped task's pid may be
  reused), then single kills for the job's processes outside those groups.
- The order of the steps is the plan's; nothing here decides it. A step that fails is
  logged and the next one still runs (a Thaw always follows its Freeze).
"""

from __future__ import annotations

import os
import time
from typing import Any

from spurcore import killplan
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
from spurd import procs


class JobControl:
    """Job control (a part of :class:`spurd.supervisor.Supervisor`)."""

    def _job_pids(self, include_zombies: bool = False) -> set[int]:
        pids = procs.descendants(self.pid)
        if self.cgroup is not None:
            pids |= {p for p in self.cgroup.pids() if procs.alive(p)}
        pids.discard(self.pid)
        if include_zombies:
            return pids
        return {p for p in pids if procs.alive(p)}

    def _signal_job(self, sig: int) -> int:
        """Send ``sig`` once to every process of the job; returns how many got it."""
        targets = self._job_pids()
        # A reaped task's pid may be reused: killpg only while a process of ours still
        # carries that process group.
        groups = set()
        for t in self.tasks:
            if t.pid and (t.status is None or any(procs.proc_pgid(p) == t.pid for p in targets)):
                groups.add(t.pid)
        sent = 0
        for group in list(groups):
            try:
                os.killpg(group, sig)
                sent += 1
            except (ProcessLookupError, PermissionError):
                groups.discard(group)
        rest = [p for p in targets if procs.proc_pgid(p) not in groups]
        return sent + procs.signal_all(rest, sig)

    def _kill(self, cause: Cause, kill_wait: float, notice: str = "") -> None:
        """End the step as ``spurcore.killplan.kill`` plans it for the situation now."""
        now = time.monotonic()
        deadline = self.sequence.deadline()
        left = None
        if self.killing:
            left = kill_wait if deadline is None else max(0.0, deadline - now)
        stopped = not self.all_done and (
            self.suspended or any(procs.proc_state(t.pid) == "T" for t in self.tasks if t.status is None))
        plan = killplan.kill(Situation(
            cause=cause, kill_wait=kill_wait, notice=notice, ended=self.all_done, stopped=stopped,
            suspended=self.suspended, killing_left=left, cgroup=self.cgroup is not None, relay=self.relay))
        if plan.steps and not self.killing:
            self.log(f"terminating {self.spec.label} ({cause.value}): "
                     f"{'SIGKILL at once (stopped)' if stopped else f'KillWait {kill_wait:g}s'}")
        self._apply(plan)

    def _apply(self, plan: Plan) -> int:
        """Carry out a plan: it replaces the running sequence, or its steps run at once
        beside it. Returns how many processes the signals reached."""
        self.killing, self.suspended = plan.killing, plan.suspended
        if plan.replace:
            self.sequence = Sequence(plan.steps)
            return self._carry_out(self.sequence.advance(time.monotonic()))
        return self._carry_out(plan.steps, strict=True)

    def _carry_out(self, steps: Any, strict: bool = False) -> int:
        """The steps in their order. ``strict``: an OSError (the batch shell gone) is raised
        to the caller; else it is logged and the next step still runs (a Thaw always follows
        its Freeze)."""
        sent = 0
        for step in steps:
            try:
                sent += self._carry_out_step(step)
            except OSError as e:
                if strict:
                    raise
                self.log(f"{step}: {e}")
        return sent

    def _carry_out_step(self, step: Any) -> int:
        if isinstance(step, Send):
            if step.to is To.BATCH:
                os.kill(self.main_pid, step.sig)
                return 1
            if step.to is To.CGROUP:
                return self.cgroup.kill_all(step.sig) if self.cgroup is not None else 0
            return self._signal_job(step.sig)
        if isinstance(step, MarkKilled):
            for t in self.tasks:
                if t.status is None:
                    t.killed_by_cmd = True
        elif isinstance(step, Notice):
            self._write_notice(step.text, step.to_client)
        elif isinstance(step, Freeze):
            if self.cgroup is not None:
                self.cgroup.freeze()
        elif isinstance(step, Thaw):
            if self.cgroup is not None:
                self.cgroup.thaw()
        elif isinstance(step, Every):  # never handed out by Sequence; for completeness
            return self._carry_out(step.steps)
        return 0

    def _write_notice(self, text: str, to_client: bool) -> None:
        """slurmstepd's ``error:`` line in the job's stderr (where the job's own stderr goes)."""
        line = f"slurmstepd: error: {text}\n".encode()
        spec = self.spec
        if to_client:
            # srun prints it as slurmstepd's own stderr (task -1: no label).
            self._send_all(("out", [-1, 2, line]))
            return
        try:
            path = spec.stderr or spec.stdout or os.devnull
            path = path if os.path.isabs(path) else os.path.join(spec.cwd, path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:
            self.log(f"cannot write the kill notice: {e}")
