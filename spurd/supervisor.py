"""The per-job / per-step supervisor: Spur's slurmstepd.

``python -m spurd.supervisor <rundir>`` runs one job step described by ``rundir/spec.json``
and leaves its final wait status in ``rundir/status.json``.

Invariants:
- The supervisor outlives the agent (own session; SIGHUP/SIGINT/SIGPIPE ignored) and the
  job does not outlive the supervisor (the main process has PR_SET_PDEATHSIG=SIGKILL).
- It is a child subreaper, so every process the job leaves behind is a descendant of the
  supervisor; with a cgroup, the cgroup also holds them. "The job's processes" is the union
  of both, so no cgroup means no blind spot, only a weaker guard against fork races.
- The step ends when the main process has exited AND no process of the job remains: what
  is left when the main process exits is SIGKILLed (Slurm ends a step with its task).
  Only then is status.json written (tmp + fsync + rename + fsync dir), so a status file
  means nothing of the job still runs.
- One thread, one selectors loop. SIGCHLD/SIGTERM arrive through set_wakeup_fd and every
  loop turn reaps with waitpid(-1, WNOHANG), so no exit is missed. Timed work (KillWait,
  suspend grace, the post-exit sweep) is deadlines checked by the loop, never sleeps, so
  the control socket always answers.
- Every signal of a "whole job" delivery reaches each process once: killpg for the main
  process group, then single kills for the job's processes outside that group.

Files in rundir: spec.json (in), supervisor.pid, ctl.sock, cgroup.json, supervisor.log,
status.json (out). Control: one JSON object per line on ctl.sock, one JSON line back.
Everything that comes in (spec.json, control ops, srun's frames) is validated by
``spurcore.agentmsg`` before it is acted on; what does not fit is refused naming the field,
and the supervisor serves on.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import pwd
import select
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from spurcore import agentmsg, killplan
from spurcore.agentmsg import (
    CtlAttach,
    CtlKill,
    CtlResume,
    CtlSignal,
    CtlStat,
    CtlStatus,
    CtlSuspend,
    KillStep,
    PmiFenceDone,
    RunStatus,
    SignalTasks,
    StdinData,
    SupervisorSpec,
    Winch,
)
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
from spurcore.schema import BadRequest, structure, unstructure
from spurd import procs
from spurd.cgroups import JobCgroup, detect, step_relpath
from spurd.procs import read_lease

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_LIBC = ctypes.CDLL(None, use_errno=True)

EXEC_WAIT = 5.0  # how long the supervisor waits for the job's exec before serving anyway
SWEEP_INTERVAL = killplan.SWEEP_INTERVAL  # re-SIGKILL period for leftovers after the tasks exited
LEASE_CHECK = 0.5  # how often a supervisor reads its agent's lease (fencing)


def prctl(option: int, arg: int) -> None:
    rc = _LIBC.prctl(
        ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


#: spec.json, validated (``spurcore.agentmsg.SupervisorSpec``: the schema, its versions).
Spec = SupervisorSpec


class Log:
    """Append-only supervisor.log (the supervisor's stderr may be the job's)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def __call__(self, msg: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with contextlib.suppress(OSError):
            os.write(self.fd, f"{stamp} spurstepd[{os.getpid()}]: {msg}\n".encode())


def _high_fd(fd: int) -> int:
    """Move ``fd`` to >= 3 so the dup2 onto 0/1/2 cannot clobber another stdio fd."""
    if fd > 2:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return new


# ---------------------------------------------------------------------- tasks and I/O


@dataclass(eq=False)
class Task:
    """One task (rank) on this node: its process group is its pid."""

    gid: int  # global task id (SLURM_PROCID)
    lid: int  # local id (SLURM_LOCALID)
    pid: int = 0
    status: int | None = None
    rusage: Any = None
    killed_by_cmd: bool = False  # still running when a kill was ordered: its status is ours
    reported: bool = False  # its exit went to srun
    stdin_fd: int = -1  # our end of its stdin pipe (relay)
    stdin_buf: bytearray = field(default_factory=bytearray)
    stdin_eof: bool = False
    pmi_sock: socket.socket | None = None
    # usage samples (bytes, seconds)
    peak_rss: int = 0
    peak_vm: int = 0
    peak_pages: int = 0
    sum_rss: float = 0.0
    sum_vm: float = 0.0
    sum_pages: float = 0.0
    samples: int = 0
    cpu: tuple[float, float] = (0.0, 0.0)


@dataclass(eq=False)
class Stream:
    """A task's stdout (1) or stderr (2) read end, relayed to the clients."""

    fd: int
    task: int
    kind: int
    partial: bytearray = field(default_factory=bytearray)


@dataclass(eq=False)
class Client:
    """A connection from srun (``primary``: gets exits, fences and the launch answer) or
    from sattach. Frames are ``spurio.stepserver`` notifications."""

    sock: socket.socket
    primary: bool
    out: bytearray = field(default_factory=bytearray)
    reader: Any = None
    closing: bool = False
    refused: bool = False  # a malformed frame from it was logged


MAX_CLIENT_BUFFER = 4 << 20  # stop reading task output while a client lags this much
MAX_STDIN_BUFFER = 1 << 20  # per task: input beyond this is dropped for that task
LINE_FLUSH = 64 << 10  # a partial line this long is sent anyway


def _node_status(tasks: list[Task]) -> int:
    """slurmstepd's ``_get_exit_code``: tasks killed on order do not count; the first
    signalled task decides; OOM sticks; otherwise the highest status; when every task
    was killed on order, the first task's status."""
    rc: int | None = None
    for t in tasks:
        status = t.status if t.status is not None else 0
        if t.killed_by_cmd:
            continue
        if os.WIFSIGNALED(status):
            return status
        if (status & 0xFF) == SIG_OOM:
            rc = status
        elif rc is None or (rc & 0xFF) != SIG_OOM:
            rc = max(rc or 0, status)
    if rc is None:
        return tasks[0].status or 0 if tasks else 0
    return rc


SIG_OOM = 253


class Supervisor:
    def __init__(self, rundir: str, spec: Spec, log: Log, client_fd: int = -1) -> None:
        self.rundir = rundir
        self.spec = spec
        self.log = log
        self.client_fd = client_fd  # srun's connection, handed over by the agent (-1: none)
        self.pid = os.getpid()
        self.cgroup: JobCgroup | None = None
        self.tasks: list[Task] = [Task(g, i) for i, g in enumerate(spec.tasks)]
        self.by_pid: dict[int, Task] = {}
        self.all_done = False
        self.started_at = 0.0
        self.ended_at = 0.0
        # Process control (spurcore.killplan): the flags and the running sequence (a kill's
        # KillWait and repeated SIGKILLs, or a suspend's grace).
        self.suspended = False
        self.killing = False
        self.sequence = Sequence()
        self.next_lease_check = 0.0
        self.fenced = False
        self.sweep_deadline = 0.0
        self.next_sweep = 0.0
        self.next_sample = 0.0
        self.unkillable: list[int] = []
        self.term_requested = False
        self.sel = selectors.DefaultSelector()
        self.conns: dict[socket.socket, bytearray] = {}
        self.lsock: socket.socket | None = None
        self.wake_r = -1
        self.streams: dict[int, Stream] = {}
        self.clients: list[Client] = []
        self.paused = False
        self.pmi: Any = None
        self.pmi_abort: tuple[int, int, str] | None = None

    @property
    def relay(self) -> bool:
        return self.spec.io is not None

    @property
    def main_pid(self) -> int:
        return self.tasks[0].pid

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r = wake_r
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        self.sel.register(wake_r, selectors.EVENT_READ, self._on_wakeup)
        self.lsock = self._listen()
        self.sel.register(self.lsock, selectors.EVENT_READ, self._on_accept)
        if self.client_fd >= 0:
            self._add_client(socket.socket(fileno=self.client_fd), primary=True)
        self.cgroup = self._make_cgroup()
        try:
            self._spawn_all()
        except OSError as e:
            self.log(f"cannot start {self.spec.label}: {e}")
            write_pid(self.rundir)
            self._send_all(("error", {"message": f"fork failed: {e}"}), primary_only=True)
            self._flush_clients()
            self._close_control()
            write_failure(self.rundir, f"fork failed: {e}")
            self._cleanup()
            return 1
        self.started_at = time.time()
        self.log(f"{self.spec.label} started: pids {[t.pid for t in self.tasks]} argv {list(self.spec.argv)}")
        write_pid(self.rundir)
        if self.relay:
            self._answer_launch()
        self.next_sample = time.monotonic() + min(1.0, self.spec.usage_interval)
        self._loop()
        self._finish()
        return 0

    def _loop(self) -> None:
        while True:
            if self.term_requested:
                self.term_requested = False
                self.log("SIGTERM received: terminating the job")
                self._kill(Cause.TERMINATED, self.spec.kill_wait)
            self._reap()
            now = time.monotonic()
            self._run_timers(now)
            if self.all_done and self._sweep(now):
                self._drain_streams()
                return
            for key, _ in self.sel.select(self._timeout(time.monotonic())):
                key.data(key.fileobj)

    def _timeout(self, now: float) -> float:
        t = 1.0
        lease = self.next_lease_check if self.spec.lease_file is not None else None
        for deadline in (self.sequence.deadline(), self.next_sample if self.relay else None, lease):
            if deadline is not None:
                t = min(t, deadline - now)
        if self.all_done:
            t = min(t, self.next_sweep - now)
        return max(0.0, t)

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGTERM:
            self.term_requested = True

    def _on_wakeup(self, fileobj: object) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self.wake_r, 4096):
                pass

    def _reap(self) -> None:
        ended: list[Task] = []
        while True:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:
                break
            task = self.by_pid.get(pid)
            if task is not None and task.status is None:
                task.status, task.rusage = status, rusage
                ended.append(task)
                self.log(f"{self.spec.label} task {task.gid} (pid {pid}) ended: {procs.decode_wait_status(status)}")
        if ended:
            self._tasks_ended(ended)
        if not self.all_done and all(t.status is not None for t in self.tasks):
            self.all_done = True
            self.ended_at = time.time()
            self.sequence.stop()  # its waits were "until every task has exited"
            self.sweep_deadline = time.monotonic() + self.spec.unkillable_timeout
            self.next_sweep = 0.0

    def _tasks_ended(self, ended: list[Task]) -> None:
        """slurmstepd's exit messages: the tasks that ended together, one message per status."""
        if self.pmi is not None and self.pmi.aborted is not None and self.pmi_abort is None:
            self.pmi_abort = self.pmi.aborted
        for stream in [s for s in self.streams.values() if s.task in {t.gid for t in ended}]:
            self._drain_available(stream)  # its output before its exit, as srun prints them
        by_status: dict[int, list[int]] = {}
        for t in ended:
            if t.status is not None:
                by_status.setdefault(t.status, []).append(t.gid)
            if t.stdin_fd >= 0:
                self._close_stdin(t)
        for status, gids in by_status.items():
            self._send_all(("exit", [gids, status]), primary_only=True)

    def _check_lease(self, now: float) -> None:
        """Fence: kill the step once the agent's lease on this node has run out (the agent
        lost the controllers' quorum, or died, for longer than the fence timeout)."""
        self.next_lease_check = now + LEASE_CHECK
        if self.fenced or self.all_done:
            return
        expiry = read_lease(self.spec.lease_file)
        if expiry is None or time.monotonic() < expiry:
            return
        self.fenced = True
        self.log(f"no contact with a controller quorum since the lease ran out: fencing {self.spec.label}")
        self._kill(Cause.FENCE, self.spec.fence_grace)

    def _run_timers(self, now: float) -> None:
        if self.spec.lease_file is not None and now >= self.next_lease_check:
            self._check_lease(now)
        if self.sequence.running:
            due = self.sequence.advance(now)
            for label in self.sequence.expired:
                self.log(f"{label} expired")
            self.sequence.expired.clear()
            self._carry_out(due)
        if self.relay and now >= self.next_sample:
            self.next_sample = now + self.spec.usage_interval
            self._sample()

    def _sweep(self, now: float) -> bool:
        """After every task ended: SIGKILL what is left; True once nothing is."""
        left = self._job_pids(include_zombies=True)
        if not left:
            return True
        live = {p for p in left if procs.alive(p)}
        if now >= self.sweep_deadline:
            self.unkillable = sorted(live)
            self.log(f"processes survived SIGKILL for {self.spec.unkillable_timeout}s: {self.unkillable}")
            return True
        if now >= self.next_sweep:
            if live:
                self.log(f"killing processes left by the tasks: {sorted(live)}")
                self._carry_out(killplan.sweep(self.cgroup is not None))
            self.next_sweep = now + SWEEP_INTERVAL
        return False

    def _finish(self) -> None:
        raw = _node_status(self.tasks)
        if self.pmi_abort is not None:
            raw = (self.pmi_abort[1] & 0xFF) << 8  # PMI_Abort: that task's code decides
        code, sig = procs.decode_wait_status(raw)
        oom = False
        if self.cgroup is not None:
            try:
                oom = self.cgroup.oom_killed()
            except OSError as e:
                self.log(f"cannot read OOM state: {e}")
        status = RunStatus(
            wait_status=raw, exit_code=code, signal=sig, oom=oom, ended_at=self.ended_at or time.time(),
            started_at=self.started_at, main_pid=self.main_pid, killed=self.killing,
            tasks={str(t.gid): t.status for t in self.tasks}, fenced=self.fenced,
            usage=self._usage(final=True) if self.relay else {}, unkillable=tuple(self.unkillable))
        # srun hears the end of this node's part before the status is on disk: the status
        # file must mean that nothing runs and nobody is connected any more.
        self._send_all(("done", {"status": raw, "oom": oom, "node": self.spec.node_name}))
        self._flush_clients()
        self._close_control()  # status.json present => nobody to talk to any more
        procs.write_atomic(os.path.join(self.rundir, procs.STATUS_FILE), json.dumps(unstructure(status)).encode())
        self.log(f"{self.spec.label} done: exit {code}:{sig}{' (OOM)' if oom else ''}")
        self._cleanup()

    def _close_control(self) -> None:
        for conn in list(self.conns):
            self._close(conn)
        for client in list(self.clients):
            self._drop_client(client)
        if self.lsock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.lsock)
            self.lsock.close()
            self.lsock = None
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.rundir, procs.CTL_SOCK))

    def _cleanup(self) -> None:
        self._close_control()
        if self.cgroup is not None:
            self.cgroup.remove()

    # ------------------------------------------------------------------ setup

    def _listen(self) -> socket.socket:
        # Bound relative to the cwd (the rundir): sun_path is only 108 bytes long.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(procs.CTL_SOCK)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            sock.bind(procs.CTL_SOCK)
        finally:
            os.umask(old)
        sock.listen(16)
        sock.setblocking(False)
        return sock

    def _make_cgroup(self) -> JobCgroup | None:
        spec = self.spec
        if spec.cgroup_root is None:
            return None
        try:
            hier = detect(spec.cgroup_mode)
        except ValueError as e:
            self.log(f"cgroups disabled: {e}")
            return None
        if hier is None:
            self.log("no writable cgroup hierarchy: running without cgroups")
            return None
        cg: JobCgroup | None = None
        try:
            cg = JobCgroup(hier, step_relpath(spec.cgroup_root, spec.job_id, spec.step), spec.mem_limit_mb)
            cg.create()
        except (OSError, ValueError) as e:
            self.log(f"cannot create cgroups, running without: {e}")
            if cg is not None:
                cg.remove()
            return None
        with contextlib.suppress(OSError):
            procs.write_atomic(
                os.path.join(self.rundir, "cgroup.json"), json.dumps(cg.describe()).encode(), durable=False
            )
        return cg

    def _spawn_all(self) -> None:
        """Fork every task, then wait (bounded) until each has exec'd or failed."""
        if self.spec.pmi is not None:
            from spurcore.pmi import PmiNode

            p = self.spec.pmi
            self.pmi = PmiNode(p.jobid, p.size, tuple(self.spec.tasks), p.mapping)
        errs: list[int] = []
        for task in self.tasks:
            errs.append(self._spawn(task))
        messages: dict[int, bytes] = {fd: b"" for fd in errs}
        deadline = time.monotonic() + EXEC_WAIT
        open_fds = set(errs)
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                self.log("a task has still not exec'd: serving anyway")
                for fd in open_fds:
                    self.sel.register(fd, selectors.EVENT_READ, self._on_child_messages)
                break
            ready, _, _ = select.select(list(open_fds), [], [], left)
            for fd in ready:
                try:
                    chunk = os.read(fd, 4096)
                except InterruptedError:
                    continue
                if not chunk:
                    os.close(fd)
                    open_fds.discard(fd)
                else:
                    messages[fd] += chunk
        for data in messages.values():
            for line in data.decode(errors="replace").splitlines():
                self.log(f"job process: {line}")

    def _spawn(self, task: Task) -> int:
        """Fork one task; returns the read end of its exec-error pipe."""
        plan = self._stdio_plan(task)
        pmi_child = -1
        if self.pmi is not None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            ours.setblocking(False)
            task.pmi_sock = ours
            pmi_child = theirs.detach()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # Blocked across fork: no Python handler of ours may run in the child.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            pid = os.fork()
            if pid == 0:
                os.close(err_r)
                _child(self.spec, self.cgroup, self.pid, err_w, task, plan, pmi_child)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(err_w)
        task.pid = pid
        self.by_pid[pid] = task
        for fd in plan.get("close_after_fork", ()):
            with contextlib.suppress(OSError):
                os.close(fd)
        if pmi_child >= 0:
            os.close(pmi_child)
            assert task.pmi_sock is not None
            self.sel.register(task.pmi_sock, selectors.EVENT_READ, self._on_pmi)
        for kind, fd in plan.get("streams", ()):
            os.set_blocking(fd, False)
            self.streams[fd] = Stream(fd, task.gid, kind)
            self.sel.register(fd, selectors.EVENT_READ, self._on_stream)
        if plan.get("stdin_fd", -1) >= 0:
            task.stdin_fd = plan["stdin_fd"]
            os.set_blocking(task.stdin_fd, False)
        return err_r

    def _stdio_plan(self, task: Task) -> dict[str, Any]:
        """What the child gets as fds 0-2 (``child``: fd or path per stream) and what we keep."""
        io = self.spec.io
        if io is None:
            return {}
        child: dict[int, Any] = {}
        streams: list[tuple[int, int]] = []
        close_after: list[int] = []
        stdin_fd = -1
        if io.pty and task.lid == 0 and task.gid == 0:
            master, slave = os.openpty()
            os.set_inheritable(slave, False)
            fcntl.fcntl(master, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
            rows, cols = io.winsize or (0, 0)
            if rows and cols:
                import struct
                import termios

                with contextlib.suppress(OSError):
                    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            child = {0: slave, 1: slave, 2: slave, "pty": True}
            streams.append((1, master))
            close_after.append(slave)
            stdin_fd = os.dup(master)
            fcntl.fcntl(stdin_fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
            return {"child": child, "streams": streams, "close_after_fork": close_after, "stdin_fd": stdin_fd}
        for kind, key in ((1, "stdout"), (2, "stderr")):
            how = io.route(key)
            mode = how.mode
            if kind == 2 and mode == "same":
                child[2] = child[1]
                continue
            if mode == "task" and how.task != task.gid:
                mode = "none"
            if mode in ("relay", "task"):
                r, w = os.pipe2(os.O_CLOEXEC)
                child[kind] = w
                close_after.append(w)
                streams.append((kind, r))
            elif mode == "file":
                child[kind] = ("path", _task_path(how.pattern, task, self.spec))
            else:
                child[kind] = ("path", os.devnull)
        how = io.route("stdin")
        mode = how.mode
        if mode == "task" and how.task != task.gid:
            mode = "none"
        if mode in ("all", "task"):
            r, w = os.pipe2(os.O_CLOEXEC)
            child[0] = r
            close_after.append(r)
            stdin_fd = w
        elif mode == "file":
            child[0] = ("path", _task_path(how.pattern, task, self.spec))
        else:
            child[0] = ("path", os.devnull)
        return {"child": child, "streams": streams, "close_after_fork": close_after, "stdin_fd": stdin_fd}

    def _on_child_messages(self, fileobj: object) -> None:
        assert isinstance(fileobj, int)
        fd = fileobj
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            return
        if chunk:
            for line in chunk.decode(errors="replace").splitlines():
                self.log(f"job process: {line}")
            return
        self.sel.unregister(fd)
        os.close(fd)

    # ------------------------------------------------------------------ the job's processes

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

    # ------------------------------------------------------------------ usage (jobacct_gather)

    def _sample(self) -> None:
        """One poll of every running task's process tree (/proc): RSS, VM size, major
        faults and CPU time; peaks and running averages per task."""
        tree: dict[int, set[int]] | None = None
        for t in self.tasks:
            if t.status is not None or not t.pid:
                continue
            if tree is None:
                tree = {}
            pids = {t.pid} | procs.descendants(t.pid)
            rss = vm = pages = 0
            user = system = 0.0
            for pid in pids:
                stat = _proc_usage(pid)
                if stat is None:
                    continue
                rss += stat[0]
                vm += stat[1]
                pages += stat[2]
                user += stat[3]
                system += stat[4]
            t.peak_rss, t.peak_vm, t.peak_pages = max(t.peak_rss, rss), max(t.peak_vm, vm), max(t.peak_pages, pages)
            t.sum_rss += rss
            t.sum_vm += vm
            t.sum_pages += pages
            t.samples += 1
            t.cpu = (max(t.cpu[0], user), max(t.cpu[1], system))

    def _usage(self, final: bool = False) -> dict[str, Any]:
        """This node's usage record (``spurcore.usage``): exact CPU times and peaks from
        wait4 for ended tasks, the samples for running ones; the cgroup's memory peak
        stands for a node with a single task."""
        if not final:
            self._sample()
        rec: dict[str, Any] = {"ntasks": len(self.tasks)}
        user = system = 0.0
        peaks: dict[str, tuple[int, int]] = {}
        sums = {"rss": 0.0, "vmsize": 0.0, "pages": 0.0}
        min_cpu: tuple[float, int] | None = None
        cg_peak = self.cgroup.memory_peak() if self.cgroup is not None and len(self.tasks) == 1 else None
        for t in self.tasks:
            u, s = t.cpu
            rss, vm, pages = t.peak_rss, t.peak_vm, t.peak_pages
            if t.rusage is not None:
                u, s = max(u, t.rusage.ru_utime), max(s, t.rusage.ru_stime)
                rss = max(rss, int(t.rusage.ru_maxrss) * 1024)
                pages = max(pages, int(t.rusage.ru_majflt))
            if cg_peak:
                rss = max(rss, cg_peak)
            user += u
            system += s
            n = max(t.samples, 1)
            sums["rss"] += t.sum_rss / n if t.samples else rss
            sums["vmsize"] += t.sum_vm / n if t.samples else vm
            sums["pages"] += t.sum_pages / n if t.samples else pages
            for key, value in (("max_rss", rss), ("max_vmsize", vm), ("max_pages", pages)):
                if key not in peaks or value > peaks[key][0]:
                    peaks[key] = (value, t.gid)
            if min_cpu is None or u + s < min_cpu[0]:
                min_cpu = (u + s, t.gid)
        rec["user_cpu"], rec["sys_cpu"] = round(user, 6), round(system, 6)
        for key, (value, gid) in peaks.items():
            rec[key], rec[f"{key}_task"] = int(value), gid
        for key, value in sums.items():
            rec[f"ave_{key}_sum"] = float(value)
        if min_cpu is not None:
            rec["min_cpu"], rec["min_cpu_task"] = round(min_cpu[0], 6), min_cpu[1]
        return rec

    # ------------------------------------------------------------------ relay (srun, sattach)

    def _add_client(self, sock: socket.socket, primary: bool) -> Client:
        from spurio.stepserver import FrameReader

        sock.setblocking(False)
        client = Client(sock, primary, reader=FrameReader())
        self.clients.append(client)
        self.sel.register(sock, selectors.EVENT_READ, self._on_client)
        return client

    def _answer_launch(self) -> None:
        from spurio.stepserver import response

        reply = {"node": self.spec.node_name, "nodeid": self.spec.nodeid, "tasks": list(self.spec.tasks),
                 "pids": [t.pid for t in self.tasks]}
        for c in self.clients:
            if c.primary:
                self._queue(c, response(self.spec.launch_msgid, None, reply))

    def _queue(self, client: Client, data: bytes) -> None:
        if client.closing:
            return
        was_empty = not client.out
        client.out += data
        if was_empty:
            self._try_send(client)
        if len(client.out) > MAX_CLIENT_BUFFER and not self.paused:
            self._pause_streams(True)

    def _send_all(self, msg: tuple[str, Any], primary_only: bool = False) -> None:
        from spurio.stepserver import notification

        if not self.clients:
            return
        data = notification(*msg)
        for c in list(self.clients):
            if c.primary or not primary_only:
                self._queue(c, data)

    def _try_send(self, client: Client) -> None:
        while client.out:
            try:
                n = client.sock.send(client.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop_client(client)
                return
            del client.out[:n]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(client.sock, events, self._on_client)
        if self.paused and all(len(c.out) < MAX_CLIENT_BUFFER // 4 for c in self.clients):
            self._pause_streams(False)

    def _flush_clients(self, timeout: float = 5.0) -> None:
        """Block (bounded) until every client has its queued frames (the end of a step)."""
        deadline = time.monotonic() + timeout
        for c in list(self.clients):
            with contextlib.suppress(OSError):
                c.sock.setblocking(True)
                while c.out and time.monotonic() < deadline:
                    c.sock.settimeout(max(0.01, deadline - time.monotonic()))
                    n = c.sock.send(c.out)
                    del c.out[:n]

    def _drop_client(self, client: Client) -> None:
        client.closing = True
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(client.sock)
        with contextlib.suppress(OSError):
            client.sock.close()
        if client in self.clients:
            self.clients.remove(client)
        if client.primary and not self.all_done:
            self.log("srun's connection closed: the tasks keep running, their output is discarded")
        if self.paused and all(len(c.out) < MAX_CLIENT_BUFFER // 4 for c in self.clients):
            self._pause_streams(False)

    def _pause_streams(self, pause: bool) -> None:
        self.paused = pause
        for fd in self.streams:
            with contextlib.suppress(KeyError, ValueError):
                if pause:
                    self.sel.unregister(fd)
                else:
                    self.sel.register(fd, selectors.EVENT_READ, self._on_stream)

    def _on_client(self, fileobj: object) -> None:
        sock = fileobj
        client = next((c for c in self.clients if c.sock is sock), None)
        if client is None:
            return
        if client.out:
            self._try_send(client)
            if client.closing:
                return
        try:
            data = client.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop_client(client)
            return
        try:
            messages = client.reader.feed(data)
        except ValueError as e:
            self.log(f"bad frame from a client: {e}")
            self._drop_client(client)
            return
        for msg in messages:
            self._client_message(client, msg)

    def _client_message(self, client: Client, msg: list[Any]) -> None:
        """A client's notification (``spurcore.agentmsg.CLIENT_FRAMES``), validated; one that
        does not fit is logged (once per client) and ignored: the step runs on."""
        if msg[0] != 2 or len(msg) != 3:
            return  # requests and responses are not ours to answer on a step connection
        try:
            frame = agentmsg.client_frame(msg[1], msg[2])
        except BadRequest as e:
            if not client.refused:
                client.refused = True
                self.log(f"ignoring a malformed frame from a client: {e}")
            return
        if isinstance(frame, StdinData):
            self._stdin(frame.task, frame.data)
        elif isinstance(frame, SignalTasks):
            if 0 < frame.signal < signal.NSIG and not self.all_done:
                self._apply(killplan.deliver(frame.signal, "full", killing=self.killing, suspended=self.suspended))
        elif isinstance(frame, KillStep):
            self._kill(Cause.SRUN, self.spec.kill_wait if frame.kill_wait is None else frame.kill_wait)
        elif isinstance(frame, PmiFenceDone):
            if self.pmi is not None:
                for rank, reply in self.pmi.fence_done(frame.kvs):
                    self._pmi_send(rank, reply)
        elif isinstance(frame, Winch):
            self._winch(frame)

    def _stdin(self, task_id: int, data: bytes) -> None:
        targets = [t for t in self.tasks if t.stdin_fd >= 0 and (task_id < 0 or t.gid == task_id)]
        for t in targets:
            if not data:
                t.stdin_eof = True
            elif len(t.stdin_buf) < MAX_STDIN_BUFFER:
                t.stdin_buf += data
            self._write_stdin(t)

    def _write_stdin(self, t: Task) -> None:
        while t.stdin_buf and t.stdin_fd >= 0:
            try:
                n = os.write(t.stdin_fd, t.stdin_buf)
            except BlockingIOError:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.register(t.stdin_fd, selectors.EVENT_WRITE, lambda _f, t=t: self._stdin_ready(t))
                return
            except OSError:  # EPIPE: the task closed its stdin
                self._close_stdin(t)
                return
            del t.stdin_buf[:n]
        if t.stdin_eof and t.stdin_fd >= 0 and not (self.spec.io is not None and self.spec.io.pty):
            self._close_stdin(t)

    def _stdin_ready(self, t: Task) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(t.stdin_fd)
        self._write_stdin(t)

    def _close_stdin(self, t: Task) -> None:
        if t.stdin_fd < 0:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(t.stdin_fd)
        with contextlib.suppress(OSError):
            os.close(t.stdin_fd)
        t.stdin_fd = -1
        t.stdin_buf.clear()

    def _winch(self, size: Winch) -> None:
        import struct
        import termios

        t = self.tasks[0]
        if t.stdin_fd >= 0:
            rows, cols = size.rows, size.cols
            with contextlib.suppress(OSError):
                fcntl.ioctl(t.stdin_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            with contextlib.suppress(OSError):
                os.killpg(t.pid, signal.SIGWINCH)

    def _on_stream(self, fileobj: object) -> None:
        assert isinstance(fileobj, int)
        stream = self.streams.get(fileobj)
        if stream is None:
            return
        try:
            data = os.read(stream.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: a pty whose slave side is closed
            data = b""
        self._stream_data(stream, data)

    def _stream_data(self, stream: Stream, data: bytes) -> None:
        """Line-buffered unless --unbuffered (slurmstepd sends whole lines); EOF flushes."""
        unbuffered = self.spec.io is not None and self.spec.io.unbuffered
        if not data:
            if stream.partial:
                self._send_all(("out", [stream.task, stream.kind, bytes(stream.partial)]))
                stream.partial.clear()
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(stream.fd)
            os.close(stream.fd)
            del self.streams[stream.fd]
            return
        if unbuffered:
            self._send_all(("out", [stream.task, stream.kind, data]))
            return
        stream.partial += data
        end = stream.partial.rfind(b"\n")
        if end >= 0:
            self._send_all(("out", [stream.task, stream.kind, bytes(stream.partial[:end + 1])]))
            del stream.partial[:end + 1]
        elif len(stream.partial) >= LINE_FLUSH:
            self._send_all(("out", [stream.task, stream.kind, bytes(stream.partial)]))
            stream.partial.clear()

    def _drain_available(self, stream: Stream) -> None:
        for _ in range(64):  # bounded: a grandchild may keep writing
            if stream.fd not in self.streams:
                return
            try:
                data = os.read(stream.fd, 65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            self._stream_data(stream, data)
            if not data:
                return

    def _drain_streams(self) -> None:
        """Every writer is gone: read what is left in the pipes, then EOF."""
        for stream in list(self.streams.values()):
            while stream.fd in self.streams:
                try:
                    data = os.read(stream.fd, 65536)
                except BlockingIOError:
                    data = b""
                except OSError:
                    data = b""
                self._stream_data(stream, data)

    def _on_pmi(self, fileobj: object) -> None:
        sock = fileobj
        task = next((t for t in self.tasks if t.pmi_sock is sock), None)
        if task is None or self.pmi is None:
            return
        try:
            data = task.pmi_sock.recv(65536) if task.pmi_sock is not None else b""
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(sock)
            if task.pmi_sock is not None:
                task.pmi_sock.close()
            task.pmi_sock = None
            return
        replies, fence = self.pmi.feed(task.gid, data)
        for rank, reply in replies:
            self._pmi_send(rank, reply)
        if fence is not None:
            self._send_all(("pmi_fence", fence), primary_only=True)
        if self.pmi.aborted is not None and self.pmi_abort is None:
            self.pmi_abort = self.pmi.aborted
            rank, code, message = self.pmi_abort
            self.log(f"task {rank} called PMI abort ({code}): {message}")
            self._send_all(("pmi_abort", [rank, code, message]), primary_only=True)

    def _pmi_send(self, rank: int, data: bytes) -> None:
        task = next((t for t in self.tasks if t.gid == rank), None)
        if task is None or task.pmi_sock is None:
            return
        with contextlib.suppress(OSError):
            task.pmi_sock.setblocking(True)
            task.pmi_sock.settimeout(5.0)
            task.pmi_sock.sendall(data)
            task.pmi_sock.setblocking(False)

    # ------------------------------------------------------------------ control socket

    def _on_accept(self, fileobj: object) -> None:
        assert self.lsock is not None
        try:
            conn, _ = self.lsock.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.settimeout(2.0)  # for sendall; recv only runs when readable
        self.conns[conn] = bytearray()
        self.sel.register(conn, selectors.EVENT_READ, self._on_conn)

    def _close(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn)
        self.conns.pop(conn, None)
        conn.close()

    def _on_conn(self, fileobj: object) -> None:
        conn = fileobj
        assert isinstance(conn, socket.socket)
        fds: list[int] = []
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 1)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            for fd in fds:
                os.close(fd)
            self._close(conn)
            return
        buf = self.conns[conn]
        buf += data
        if len(buf) > 1 << 20:
            self._close(conn)
            return
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            reply = self._dispatch(line, fds)
            fds = []
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                self._close(conn)
                return
        for fd in fds:
            os.close(fd)

    def _dispatch(self, line: bytes, fds: list[int] | None = None) -> dict[str, Any]:
        """One control request (``spurcore.agentmsg.CONTROL_OPS``), validated before its
        handler runs; a bad one is answered EINVAL naming the field. Descriptors that came
        with it are closed unless ``attach`` took them."""
        fds = list(fds or [])
        try:
            try:
                op = agentmsg.control_op(json.loads(line))
            except BadRequest as e:
                return {"ok": False, "errno": errno.EINVAL, "error": f"bad request: {e}"}
            except ValueError as e:
                return {"ok": False, "errno": errno.EINVAL, "error": f"bad request: expected a JSON object ({e})"}
            if isinstance(op, CtlAttach):
                taken, fds = fds, []
                return self._op_attach(op, taken)
            handler: Callable[[Any], dict[str, Any]] = {
                CtlSignal: self._op_signal,
                CtlKill: self._op_kill,
                CtlSuspend: self._op_suspend,
                CtlResume: self._op_resume,
                CtlStatus: self._op_status,
                CtlStat: self._op_stat,
            }[type(op)]
            try:
                return handler(op)
            except Exception as e:  # the supervisor must outlive anything a handler meets
                self.log(f"control op {op.OP} failed: {e!r}")
                return {"ok": False, "errno": getattr(e, "errno", None) or errno.EIO, "error": str(e)}
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _op_attach(self, msg: CtlAttach, fds: list[int]) -> dict[str, Any]:
        """sattach: the agent hands over the client's connection (SCM_RIGHTS)."""
        if len(fds) != 1 or not self.relay:
            for fd in fds:
                os.close(fd)
            return {"ok": False, "errno": errno.EINVAL}
        from spurio.stepserver import response

        client = self._add_client(socket.socket(fileno=fds[0]), primary=False)
        self._queue(client, response(msg.msgid, None, {
            "node": self.spec.node_name, "nodeid": self.spec.nodeid, "tasks": list(self.spec.tasks)}))
        return {"ok": True}

    def _op_signal(self, msg: CtlSignal) -> dict[str, Any]:
        sig, target = msg.sig, msg.target
        if sig >= signal.NSIG:
            return {"ok": False, "errno": errno.EINVAL}
        if self.all_done:
            return {"ok": False, "errno": errno.ESRCH}
        # "steps" is fanned out by the agent to each step's supervisor: here it is "full".
        try:
            sent = self._apply(killplan.deliver(sig, target, killing=self.killing, suspended=self.suspended))
        except OSError as e:
            return {"ok": False, "errno": e.errno}
        return {"ok": True} if sent else {"ok": False, "errno": errno.ESRCH}

    def _op_kill(self, msg: CtlKill) -> dict[str, Any]:
        self._kill(Cause.of(msg.why), self.spec.kill_wait if msg.kill_wait is None else msg.kill_wait,
                   msg.notice or "")
        return {"ok": True}

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

    def _op_suspend(self, msg: CtlSuspend) -> dict[str, Any]:
        if self.all_done:
            return {"ok": False, "errno": errno.ESRCH}
        if self.killing:
            return {"ok": False, "errno": errno.EBUSY}
        self._apply(killplan.suspend(grace=self.spec.suspend_grace, suspended=self.suspended, killing=False))
        return {"ok": True}

    def _op_resume(self, msg: CtlResume) -> dict[str, Any]:
        if self.all_done:
            return {"ok": False, "errno": errno.ESRCH}
        self._apply(killplan.resume(killing=self.killing))
        return {"ok": True}

    def _op_status(self, msg: CtlStatus) -> dict[str, Any]:
        return {
            "ok": True,
            "running": not self.all_done,
            "main_pid": self.main_pid,
            "task_pids": {str(t.gid): t.pid for t in self.tasks if t.status is None},
            "pids": sorted(self._job_pids()),
            "suspended": self.suspended,
            "killing": self.killing,
            "cgroup": self.cgroup.describe() if self.cgroup is not None else None,
        }

    def _op_stat(self, msg: CtlStat) -> dict[str, Any]:
        """sstat: a fresh sample of this node's tasks (slurmstepd polls on request too)."""
        return {"ok": True, "node": self.spec.node_name, "usage": self._usage(),
                "pids": sorted(self._job_pids())}


def _proc_usage(pid: int) -> tuple[int, int, int, float, float] | None:
    """(rss bytes, vm bytes, major faults, user s, system s) of one process from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    try:
        majflt = int(fields[9])
        utime, stime = int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK
        vsize, rss_pages = int(fields[20]), int(fields[21])
    except (IndexError, ValueError):
        return None
    return rss_pages * _PAGE, vsize, majflt, utime, stime


_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _task_path(pattern: str, task: Task, spec: Spec) -> str:
    """A ``-o/-e/-i`` pattern for this task (``%t %n %N %j %s %J %u %x %%``), relative to
    the step's working directory."""
    from spurcore.steps import expand_io_pattern

    path = expand_io_pattern(pattern, job_id=spec.job_id, step_id=spec.step, task=task.gid, nodeid=spec.nodeid,
                             node=spec.node_name, user=spec.env.get("SLURM_JOB_USER", spec.env.get("USER", "")),
                             name=spec.env.get("SLURM_JOB_NAME", ""))
    return path if os.path.isabs(path) else os.path.join(spec.cwd, path)


# ---------------------------------------------------------------------- the job process


def _child(spec: Spec, cgroup: JobCgroup | None, supervisor_pid: int, err_w: int,
           task: Task | None = None, plan: dict[str, Any] | None = None, pmi_fd: int = -1) -> NoReturn:
    """Runs in the forked child; never returns. Reports problems on err_w and stderr."""
    code = 1
    try:
        code = _child_setup_and_exec(spec, cgroup, supervisor_pid, err_w, task, plan or {}, pmi_fd)
    except BaseException as e:  # noqa: B036 - nothing may escape a forked child
        _child_error(err_w, f"slurmstepd: error: {e!r}", to_stderr=False)
    finally:
        os._exit(code)


def _child_error(err_w: int, msg: str, to_stderr: bool = True) -> None:
    data = (msg + "\n").encode(errors="replace")
    if to_stderr:
        with contextlib.suppress(OSError):
            os.write(2, data)
    with contextlib.suppress(OSError):
        os.write(err_w, data)


def _child_setup_and_exec(spec: Spec, cgroup: JobCgroup | None, supervisor_pid: int, err_w: int,
                          task: Task | None, plan: dict[str, Any], pmi_fd: int) -> int:
    os.setsid()
    signal.set_wakeup_fd(-1)
    for signum in range(1, signal.NSIG):
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])

    if cgroup is not None:
        try:
            cgroup.add_pid(os.getpid())
        except OSError as e:  # still tracked through the subreaper
            _child_error(err_w, f"warning: cannot join cgroup {cgroup.track_dir}: {e}", to_stderr=False)

    if not _drop_privileges(spec, err_w):
        return 1
    # After the credential change: changing euid clears the parent-death signal.
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor_pid:
        return 1  # the supervisor died before we could arm the death signal
    if spec.umask is not None:
        os.umask(spec.umask)
    child = plan.get("child")
    if child is not None:
        if not _task_stdio(child, spec, err_w):
            return 1
    elif not _open_stdio(spec, err_w):
        return 1
    try:
        os.chdir(spec.cwd)
    except OSError as e:
        _child_error(err_w, f"slurmstepd: error: couldn't chdir to `{spec.cwd}': {e.strerror}")
        return 1
    env = spec.env
    keep = {0, 1, 2, err_w}
    if spec.task_env and task is not None:
        env = dict(env)
        env.update({"SLURM_PROCID": str(task.gid), "SLURM_LOCALID": str(task.lid),
                    "SLURM_TASK_PID": str(os.getpid())})
        if pmi_fd >= 0 and spec.pmi is not None:
            env.update({"PMI_FD": str(pmi_fd), "PMI_RANK": str(task.gid), "PMI_SIZE": str(spec.pmi.size),
                        "PMI_JOBID": spec.pmi.jobid, "PMI_SPAWNED": "0"})
            os.set_inheritable(pmi_fd, True)
            keep.add(pmi_fd)
    _close_fds(keep=keep)
    try:
        os.execvpe(spec.argv[0], list(spec.argv), env)
    except OSError as e:
        _child_error(err_w, f"slurmstepd: error: execve(): {spec.argv[0]}: {e.strerror}")
        return 126 if e.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.EPERM) else 127
    return 127  # not reached


def _task_stdio(child: dict[Any, Any], spec: Spec, err_w: int) -> bool:
    """An srun task's fds 0-2: pipe ends or a pty from the supervisor, or files (opened
    here, as the user) for ``-o/-e/-i`` patterns."""
    out_flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    out_flags |= os.O_APPEND if spec.open_mode == "append" else os.O_TRUNC
    fds: dict[int, int] = {}
    opened: dict[str, int] = {}
    for target in (0, 1, 2):
        how = child.get(target)
        if isinstance(how, int):
            fds[target] = _high_fd(how) if how <= 2 else how
            continue
        path = how[1] if isinstance(how, (list, tuple)) else os.devnull
        if path in opened and target != 0:
            fds[target] = opened[path]
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC) if target == 0 else os.open(path, out_flags, 0o644)
        except OSError as e:
            what = ("stdin", "stdout", "stderr")[target]
            _child_error(err_w, f"slurmstepd: error: Could not open {what} file {path}: {e.strerror}")
            return False
        fd = _high_fd(fd)
        if target:
            opened[path] = fd
        fds[target] = fd
    if child.get("pty"):
        import termios

        with contextlib.suppress(OSError):
            fcntl.ioctl(fds[0], termios.TIOCSCTTY, 0)
    for target, fd in fds.items():
        os.dup2(fd, target)
    return True


def _drop_privileges(spec: Spec, err_w: int) -> bool:
    if os.geteuid() != 0:
        return True  # not root: runs as the agent's user whatever the spec says
    uid = spec.uid if spec.uid is not None else 0
    gid = spec.gid
    try:
        name: str | None = pwd.getpwuid(uid).pw_name
        if gid is None:
            gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        name = None
    if gid is None:
        gid = os.getgid()
    if uid == 0 and gid == os.getgid():
        return True
    try:
        if name is not None:
            os.initgroups(name, gid)
        else:
            os.setgroups([gid])
        os.setgid(gid)
        if uid != 0:
            os.setuid(uid)
    except OSError as e:
        _child_error(err_w, f"slurmstepd: error: cannot switch to uid {uid} gid {gid}: {e.strerror}")
        return False
    return True


def _open_stdio(spec: Spec, err_w: int) -> bool:
    def path_of(p: str | None, default: str) -> str:
        p = p or default
        return p if os.path.isabs(p) else os.path.join(spec.cwd, p)

    out_flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    out_flags |= os.O_APPEND if spec.open_mode == "append" else os.O_TRUNC
    in_path = path_of(spec.stdin, os.devnull)
    out_path = path_of(spec.stdout, os.devnull)
    err_path = path_of(spec.stderr, out_path)  # Slurm: no --error means stderr joins stdout
    opened: list[int] = []
    try:
        what = "stdin"
        fd_in = _high_fd(os.open(in_path, os.O_RDONLY | os.O_CLOEXEC))
        opened.append(fd_in)
        what = "stdout"
        fd_out = _high_fd(os.open(out_path, out_flags, 0o644))
        opened.append(fd_out)
        what = "stderr"
        if os.path.normpath(err_path) == os.path.normpath(out_path):
            fd_err = fd_out
        else:
            fd_err = _high_fd(os.open(err_path, out_flags, 0o644))
            opened.append(fd_err)
    except OSError as e:
        path = {"stdin": in_path, "stdout": out_path, "stderr": err_path}[what]
        _child_error(err_w, f"slurmstepd: error: Could not open {what} file {path}: {e.strerror}")
        return False
    os.dup2(fd_in, 0)
    os.dup2(fd_out, 1)
    os.dup2(fd_err, 2)
    for fd in opened:
        os.close(fd)
    return True


def _close_fds(keep: set[int]) -> None:
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


# ---------------------------------------------------------------------- entry points


def write_pid(rundir: str) -> None:
    procs.write_atomic(os.path.join(rundir, procs.PID_FILE), f"{os.getpid()}\n".encode(), durable=False)


def write_failure(rundir: str, error: str, exit_code: int = 1) -> None:
    """status.json for a step that never ran (bad spec, fork failure)."""
    status = RunStatus(wait_status=(exit_code & 0xFF) << 8, exit_code=exit_code, ended_at=time.time(),
                       error=error[:64 * 1024])
    procs.write_atomic(os.path.join(rundir, procs.STATUS_FILE), json.dumps(unstructure(status)).encode())


def supervise(rundir: str, client_fd: int = -1) -> int:
    """Run the step of ``rundir`` to completion in this process (see the module doc).
    ``client_fd``: the srun connection the agent handed over (an srun step)."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # whatever the agent had blocked
    os.chdir(rundir)
    log = Log(os.path.join(rundir, procs.LOG_FILE))
    try:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError as e:
        log(f"warning: PR_SET_CHILD_SUBREAPER failed ({e}): orphans may escape")
    try:
        with open(os.path.join(rundir, procs.SPEC_FILE), "rb") as f:
            spec = structure(Spec, json.loads(f.read()))
    except (OSError, ValueError) as e:  # BadRequest (a ValueError) names the field
        log(f"bad {procs.SPEC_FILE}: {e}")
        write_pid(rundir)
        write_failure(rundir, f"bad {procs.SPEC_FILE}: {e}")
        if client_fd >= 0:
            os.close(client_fd)
        return 1
    return Supervisor(rundir, spec, log, client_fd).run()


#: Where a supervisor forked by the zygote finds the srun connection it was handed.
CLIENT_FD = 3


def _spawn_from_zygote(rundir: str, fds: list[int]) -> None:
    """In the zygote: fork a detached supervisor for ``rundir`` (double fork, own session)
    with fds 0-2 /dev/null and the rundir's log, and ``fds[0]`` (if any), srun's
    connection, as ``CLIENT_FD``. Returns in the zygote."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)  # the intermediate child exits at once
        return
    code = 1
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        log_fd = os.open(os.path.join(rundir, procs.LOG_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        stdio = [os.open(os.devnull, os.O_RDONLY), log_fd, log_fd]
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        client = -1
        if fds:
            os.dup2(fds[0], CLIENT_FD)
            client = CLIENT_FD
        os.closerange(CLIENT_FD + 1 if client >= 0 else 3, os.sysconf("SC_OPEN_MAX"))
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code = supervise(rundir, client)  # (fork cleared the zygote's parent-death signal)
    finally:
        os._exit(code)


def zygote(sock_fd: int) -> int:
    """``python -m spurd.supervisor --zygote FD``: a single-threaded supervisor factory.

    The agent (an asyncio program with threads, where fork() is unsafe) keeps one zygote
    and asks it for supervisors: one datagram per request, the rundir path, with 0 or 1
    file descriptor attached (SCM_RIGHTS): srun's connection for an srun step. The reply is
    ``ok`` or ``error: ...``. A job then costs a fork instead of an interpreter start and
    the imports above. The zygote dies with the agent; its supervisors, in sessions of
    their own and not its children, do not.
    """
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        return 0
    sock = socket.socket(fileno=sock_fd)
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
        except OSError:
            return 0
        if not msg:
            return 0  # the agent closed its end
        try:
            _spawn_from_zygote(os.fsdecode(msg), fds)
            reply = b"ok"
        except Exception as exc:  # report it, keep serving
            reply = f"error: {exc}".encode()
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(reply)
        except OSError:
            return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "--zygote":
        return zygote(int(args[1]))
    detach = bool(args) and args[0] == "--detach"
    if detach:
        args = args[1:]
    client_fd = -1
    if len(args) == 3 and args[0] == "--client-fd":
        client_fd, args = int(args[1]), args[2:]
    if len(args) != 1:
        print("usage: python -m spurd.supervisor [--detach] [--client-fd FD] RUNDIR", file=sys.stderr)
        return 2
    rundir = os.path.abspath(args[0])
    if detach:
        # The launcher exits at once (the agent reaps it); the supervisor is reparented
        # away from the agent and leads a session of its own.
        if os.fork() != 0:
            os._exit(0)
        os.setsid()
    return supervise(rundir, client_fd)


if __name__ == "__main__":
    sys.exit(main())
