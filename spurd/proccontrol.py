"""Process control: a run of a job step under its own supervisor, as the agent drives it.

The verbs: start a run from a spec (``spurcore.agentmsg.SupervisorSpec``), send it control
ops (a signal, a kill as ``spurcore.killplan`` plans it, suspend, resume, ...) and read how
it ended (``RunStatus``: exit code, signal, OOM). The functions below are the ones the agent
uses (``spurd.runs``, ``spurd.steps``); :class:`ProcessControl` is the same verbs per run,
with :class:`SupervisorProcesses` its real implementation (a real supervisor process per
run). The contract tests (``tests/contract/test_process_contract.py``) run the same cases
against it and against a fake, pure and clocked (``tests/contract/fakeproc.py``), which
carries out the same kill plans on fake processes.

Invariants:
- A spec is checked against its schema before anything is written (``write_spec``): the
  agent never starts a supervisor that would refuse its spec.
- ``read_status`` returns None while the run has no status; a status that does not fit
  ``RunStatus`` raises BadRequest naming the field.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Iterable
from typing import Any, Protocol

from spurcore.agentmsg import (
    CtlKill,
    CtlResume,
    CtlSignal,
    CtlSuspend,
    RunStatus,
    SupervisorSpec,
    control_request,
)
from spurcore.schema import structure, unstructure
from spurd import procs
from spurd.spool import write_replace


def write_spec(rundir: str, spec: SupervisorSpec) -> list[str]:
    """Create ``rundir`` and write its ``spec.json`` atomically, not yet durably: returns
    what to fsync (``spurio.fs.fsync_paths``) to make it durable. Raises BadRequest (naming
    the field) for a spec the supervisor would refuse, before anything is written; OSError."""
    raw = unstructure(spec)
    structure(SupervisorSpec, raw)
    os.makedirs(rundir, mode=0o700, exist_ok=False)
    path = os.path.join(rundir, procs.SPEC_FILE)
    write_replace(path, json.dumps(raw).encode())
    return [path, rundir, os.path.dirname(rundir)]


def start(rundir: str, python: str = sys.executable, client: int | None = None,
          zygote: bool = True) -> tuple[int | None, int | None]:
    """Start the supervisor of ``rundir`` (``procs.launch_supervisor``: through the agent's
    zygote when it has one, unless ``zygote`` is False): its pid (None when not known yet)
    and, from the zygote, the step's end pipe to watch (the caller closes it)."""
    return procs.launch_supervisor(rundir, python, (), client=client, zygote=zygote)


def control(rundir: str, op: Any, timeout: float = 5.0, fds: Iterable[int] = ()) -> dict[str, Any]:
    """One control op (``spurcore.agentmsg.CONTROL_OPS``) and the supervisor's answer.
    Raises OSError when no supervisor listens, ValueError for an answer that is not JSON."""
    reply = procs.send_control(rundir, control_request(op), timeout, fds)
    return reply if isinstance(reply, dict) else {"ok": False, "errno": errno.EIO}


async def control_async(rundir: str, op: Any, timeout: float = 5.0) -> dict[str, Any]:
    """``control`` (without fds) on the running event loop (``procs.send_control_async``)."""
    reply = await procs.send_control_async(rundir, control_request(op), timeout)
    return reply if isinstance(reply, dict) else {"ok": False, "errno": errno.EIO}


def read_status(rundir: str) -> RunStatus | None:
    """A rundir's ``status.json`` (None while the run has none). Raises BadRequest (naming
    the field) for one that does not fit ``RunStatus``, ValueError for one that is not JSON."""
    try:
        raw = procs.read_status(rundir)
    except OSError:
        return None
    return None if raw is None else structure(RunStatus, raw)


def write_status(rundir: str, status: RunStatus) -> None:
    procs.write_atomic(os.path.join(rundir, procs.STATUS_FILE), json.dumps(unstructure(status)).encode())


class ProcessControl(Protocol):
    """A run's process control, as the contract tests drive it. ``now`` is the
    implementation's clock (the fake's is simulated); ``wait`` lets it run until the run
    ends or ``timeout`` passes."""

    def now(self) -> float: ...

    def start(self, spec: SupervisorSpec) -> str: ...

    def signal(self, run: str, sig: int, target: str = "full") -> dict[str, Any]: ...

    def kill(self, run: str, kill_wait: float | None = None, *, why: str = "", notice: str = "") -> None: ...

    def suspend(self, run: str) -> dict[str, Any]: ...

    def resume(self, run: str) -> dict[str, Any]: ...

    def wait(self, run: str, timeout: float) -> RunStatus | None: ...

    def notices(self, run: str) -> list[str]: ...


class SupervisorProcesses:
    """:class:`ProcessControl` with real supervisors: one rundir per run below ``base``."""

    POLL = 0.005

    def __init__(self, base: str, python: str = sys.executable) -> None:
        self.base = base
        self.python = python
        self.runs: dict[str, tuple[str, SupervisorSpec]] = {}

    def now(self) -> float:
        return time.monotonic()

    def start(self, spec: SupervisorSpec) -> str:
        run = f"run{len(self.runs)}"
        rundir = os.path.join(self.base, run)
        write_spec(rundir, spec)
        start(rundir, self.python)
        self.runs[run] = (rundir, spec)
        return run

    def _control(self, run: str, op: Any) -> dict[str, Any]:
        rundir = self.runs[run][0]
        deadline = time.monotonic() + 10.0
        while True:
            try:
                return control(rundir, op)
            except (FileNotFoundError, ConnectionRefusedError):
                if read_status(rundir) is not None:
                    return {"ok": False, "errno": errno.ESRCH}
                if time.monotonic() >= deadline:
                    raise
                time.sleep(self.POLL)  # a supervisor forked a moment ago binds its socket

    def signal(self, run: str, sig: int, target: str = "full") -> dict[str, Any]:
        return self._control(run, CtlSignal(sig=sig, target=target))

    def kill(self, run: str, kill_wait: float | None = None, *, why: str = "", notice: str = "") -> None:
        self._control(run, CtlKill(kill_wait=kill_wait, notice=notice or None, why=why))

    def suspend(self, run: str) -> dict[str, Any]:
        return self._control(run, CtlSuspend())

    def resume(self, run: str) -> dict[str, Any]:
        return self._control(run, CtlResume())

    def wait(self, run: str, timeout: float) -> RunStatus | None:
        rundir = self.runs[run][0]
        deadline = time.monotonic() + timeout
        while True:
            status = read_status(rundir)
            if status is not None or time.monotonic() >= deadline:
                return status
            time.sleep(self.POLL)

    def notices(self, run: str) -> list[str]:
        spec = self.runs[run][1]
        path = spec.stderr or spec.stdout
        if not path:
            return []
        try:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        prefix = "slurmstepd: error: "
        return [line[len(prefix):] for line in lines if line.startswith(prefix)]
