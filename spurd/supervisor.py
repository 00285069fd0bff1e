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
from dataclasses import dataclass
from typing import Any, NoReturn

from spurd import procs
from spurd.cgroups import JobCgroup, detect, step_relpath

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_LIBC = ctypes.CDLL(None, use_errno=True)

EXEC_WAIT = 5.0  # how long the supervisor waits for the job's exec before serving anyway
SWEEP_INTERVAL = 0.05  # re-SIGKILL period for leftovers after the main process exited
KILL_REPEAT = 1.0  # re-SIGKILL period while the main process survives past KillWait


def prctl(option: int, arg: int) -> None:
    rc = _LIBC.prctl(
        ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@dataclass(frozen=True)
class Spec:
    """spec.json, validated. Unknown keys are ignored (the agent may add its own)."""

    job_id: int
    step: str
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]
    uid: int | None = None
    gid: int | None = None
    stdin: str | None = "/dev/null"
    stdout: str | None = None
    stderr: str | None = None
    inherit_stdio: bool = False
    open_mode: str = "append"  # or "truncate"
    kill_wait: float = 30.0
    suspend_grace: float = 2.0
    mem_limit_mb: int = 0
    cgroup_root: str | None = None
    cgroup_mode: str | None = None  # auto | none | v1 | v2; None: $SPUR_CGROUP or auto
    umask: int | None = None
    unkillable_timeout: float = 120.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Spec:
        argv = d["argv"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty list of strings")
        env = d.get("env") or {}
        if not isinstance(env, dict):
            raise ValueError("env must be an object")
        open_mode = str(d.get("open_mode") or "append")
        if open_mode not in ("append", "truncate"):
            raise ValueError("open_mode must be append or truncate")

        def opt_int(key: str) -> int | None:
            v = d.get(key)
            return None if v is None else int(v)

        return cls(
            job_id=int(d["job_id"]),
            step=str(d.get("step", "batch")),
            argv=tuple(argv),
            cwd=str(d.get("cwd") or "/"),
            env={str(k): str(v) for k, v in env.items()},
            uid=opt_int("uid"),
            gid=opt_int("gid"),
            stdin=d.get("stdin", "/dev/null"),
            stdout=d.get("stdout"),
            stderr=d.get("stderr"),
            inherit_stdio=bool(d.get("inherit_stdio", False)),
            open_mode=open_mode,
            kill_wait=max(0.0, float(d.get("kill_wait", 30.0))),
            suspend_grace=max(0.0, float(d.get("suspend_grace", 2.0))),
            mem_limit_mb=int(d.get("mem_limit_mb") or 0),
            cgroup_root=d.get("cgroup_root"),
            cgroup_mode=d.get("cgroup_mode"),
            umask=opt_int("umask"),
            unkillable_timeout=float(d.get("unkillable_timeout", 120.0)),
        )

    @property
    def label(self) -> str:
        """How slurmstepd names the step in messages: ``JOB 12`` or ``STEP 12.0``."""
        return f"JOB {self.job_id}" if self.step == "batch" else f"STEP {self.job_id}.{self.step}"


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


class Supervisor:
    def __init__(self, rundir: str, spec: Spec, log: Log) -> None:
        self.rundir = rundir
        self.spec = spec
        self.log = log
        self.pid = os.getpid()
        self.cgroup: JobCgroup | None = None
        self.main_pid = 0
        self.main_status: int | None = None
        self.started_at = 0.0
        self.ended_at = 0.0
        self.suspended = False
        self.killing = False
        self.kill_deadline: float | None = None
        self.suspend_deadline: float | None = None
        self.sweep_deadline = 0.0
        self.next_sweep = 0.0
        self.unkillable: list[int] = []
        self.term_requested = False
        self.sel = selectors.DefaultSelector()
        self.conns: dict[socket.socket, bytearray] = {}
        self.lsock: socket.socket | None = None
        self.wake_r = -1

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
        self.cgroup = self._make_cgroup()
        try:
            self.main_pid = self._spawn()
        except OSError as e:
            self.log(f"cannot start {self.spec.label}: {e}")
            write_pid(self.rundir)
            self._close_control()
            write_failure(self.rundir, f"fork failed: {e}")
            self._cleanup()
            return 1
        self.started_at = time.time()
        self.log(f"{self.spec.label} started: pid {self.main_pid} argv {list(self.spec.argv)}")
        write_pid(self.rundir)
        self._loop()
        self._finish()
        return 0

    def _loop(self) -> None:
        while True:
            if self.term_requested:
                self.term_requested = False
                self.log("SIGTERM received: terminating the job")
                self._start_kill(self.spec.kill_wait)
            self._reap()
            now = time.monotonic()
            self._run_timers(now)
            if self.main_status is not None and self._sweep(now):
                return
            for key, _ in self.sel.select(self._timeout(time.monotonic())):
                key.data(key.fileobj)

    def _timeout(self, now: float) -> float:
        t = 1.0
        for deadline in (self.kill_deadline, self.suspend_deadline):
            if deadline is not None:
                t = min(t, deadline - now)
        if self.main_status is not None:
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
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if pid == self.main_pid and self.main_status is None:
                self.main_status = status
                self.ended_at = time.time()
                self.kill_deadline = None
                self.suspend_deadline = None
                self.sweep_deadline = time.monotonic() + self.spec.unkillable_timeout
                self.next_sweep = 0.0
                self.log(f"{self.spec.label} main process {pid} ended: {procs.decode_wait_status(status)}")

    def _run_timers(self, now: float) -> None:
        if self.suspend_deadline is not None and now >= self.suspend_deadline:
            self.suspend_deadline = None
            self._signal_job(signal.SIGSTOP)
        if self.kill_deadline is not None and now >= self.kill_deadline:
            self.log("KillWait expired: SIGKILL")
            self._kill_hard()
            self.kill_deadline = now + KILL_REPEAT

    def _sweep(self, now: float) -> bool:
        """After the main process ended: SIGKILL what is left; True once nothing is."""
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
                self.log(f"killing processes left by the main process: {sorted(live)}")
                self._kill_hard()
            self.next_sweep = now + SWEEP_INTERVAL
        return False

    def _finish(self) -> None:
        raw = self.main_status if self.main_status is not None else 0
        code, sig = procs.decode_wait_status(raw)
        oom = False
        if self.cgroup is not None:
            try:
                oom = self.cgroup.oom_killed()
            except OSError as e:
                self.log(f"cannot read OOM state: {e}")
        status: dict[str, Any] = {
            "wait_status": raw,
            "exit_code": code,
            "signal": sig,
            "oom": oom,
            "ended_at": self.ended_at or time.time(),
            "started_at": self.started_at,
            "main_pid": self.main_pid,
            "killed": self.killing,
        }
        if self.unkillable:
            status["unkillable"] = self.unkillable
        self._close_control()  # status.json present => nobody to talk to any more
        procs.write_atomic(os.path.join(self.rundir, procs.STATUS_FILE), json.dumps(status).encode())
        self.log(f"{self.spec.label} done: exit {code}:{sig}{' (OOM)' if oom else ''}")
        self._cleanup()

    def _close_control(self) -> None:
        for conn in list(self.conns):
            self._close(conn)
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

    def _spawn(self) -> int:
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # Blocked across fork: no Python handler of ours may run in the child.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            pid = os.fork()
            if pid == 0:
                os.close(err_r)
                _child(self.spec, self.cgroup, self.pid, err_w)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(err_w)
        # EOF on err_r means exec succeeded (CLOEXEC) or the child died: its setsid and
        # cgroup join are done either way, so signals aimed at its group are safe.
        messages = b""
        deadline = time.monotonic() + EXEC_WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.log("job process still not exec'd: serving anyway")
                self.sel.register(err_r, selectors.EVENT_READ, self._on_child_messages)
                break
            ready, _, _ = select.select([err_r], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(err_r, 4096)
            except InterruptedError:
                continue
            if not chunk:
                os.close(err_r)
                break
            messages += chunk
        for line in messages.decode(errors="replace").splitlines():
            self.log(f"job process: {line}")
        if self.spec.inherit_stdio:
            # Drop our copies of the job's stdio so its readers see EOF when the job ends.
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.close(null)
            os.dup2(self.log.fd, 1)
            os.dup2(self.log.fd, 2)
        return pid

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
        group = self.main_pid
        # After the main process is reaped its pid may be reused: killpg only while a
        # process of ours still carries that process group.
        if self.main_status is not None and not any(procs.proc_pgid(p) == group for p in targets):
            group = 0
        sent = 0
        if group:
            try:
                os.killpg(group, sig)
                sent += 1
            except (ProcessLookupError, PermissionError):
                group = 0
        rest = [p for p in targets if not group or procs.proc_pgid(p) != group]
        return sent + procs.signal_all(rest, sig)

    def _kill_hard(self) -> None:
        """SIGKILL everything; with a cgroup, frozen first so nothing forks in between."""
        if self.cgroup is None:
            self._signal_job(signal.SIGKILL)
            return
        self.cgroup.freeze()
        try:
            self.cgroup.kill_all(signal.SIGKILL)
            self._signal_job(signal.SIGKILL)
        finally:
            self.cgroup.thaw()

    def _start_kill(self, kill_wait: float) -> None:
        """Slurm's terminate sequence: SIGCONT, SIGTERM, KillWait, SIGKILL."""
        if self.main_status is not None:
            return  # already ending: the sweep SIGKILLs whatever is left
        now = time.monotonic()
        self.suspend_deadline = None
        if self.suspended or procs.proc_state(self.main_pid) == "T":
            # Slurm: a suspended step is killed at once, without a graceful SIGTERM.
            self.killing = True
            self.suspended = False
            self._kill_hard()
            self._signal_job(signal.SIGCONT)
            self.kill_deadline = now + KILL_REPEAT
            return
        if self.killing:
            if self.kill_deadline is None or now + kill_wait < self.kill_deadline:
                self.kill_deadline = now + kill_wait
            return
        self.killing = True
        self._signal_job(signal.SIGCONT)
        self._signal_job(signal.SIGTERM)
        self.kill_deadline = now + kill_wait

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
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
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
            reply = self._dispatch(line)
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                self._close(conn)
                return

    def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise ValueError("request must be a JSON object")
        except ValueError as e:
            return {"ok": False, "errno": errno.EINVAL, "error": f"bad request: {e}"}
        op = msg.get("op")
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = {
            "signal": self._op_signal,
            "kill": self._op_kill,
            "suspend": self._op_suspend,
            "resume": self._op_resume,
            "status": self._op_status,
        }.get(str(op))
        if handler is None:
            return {"ok": False, "errno": errno.EINVAL, "error": f"unknown op {op!r}"}
        try:
            return handler(msg)
        except Exception as e:  # the supervisor must outlive any bad request
            self.log(f"control op {op} failed: {e!r}")
            return {"ok": False, "errno": getattr(e, "errno", None) or errno.EIO, "error": str(e)}

    def _op_signal(self, msg: dict[str, Any]) -> dict[str, Any]:
        sig = msg.get("sig")
        target = msg.get("target", "full")
        if not isinstance(sig, int) or not 0 <= sig < signal.NSIG or target not in ("steps", "batch", "full"):
            return {"ok": False, "errno": errno.EINVAL}
        if self.main_status is not None:
            return {"ok": False, "errno": errno.ESRCH}
        if target == "batch":
            try:
                os.kill(self.main_pid, sig)
            except OSError as e:
                return {"ok": False, "errno": e.errno}
            return {"ok": True}
        # "steps" is fanned out by the agent to each step's supervisor: here it is "full".
        if self._signal_job(sig) == 0:
            return {"ok": False, "errno": errno.ESRCH}
        return {"ok": True}

    def _op_kill(self, msg: dict[str, Any]) -> dict[str, Any]:
        notice = msg.get("notice")
        if notice and self.main_status is None and not self.killing:
            self._write_notice(str(notice))
        kill_wait = msg.get("kill_wait")
        self._start_kill(self.spec.kill_wait if kill_wait is None else max(0.0, float(kill_wait)))
        return {"ok": True}

    def _write_notice(self, text: str) -> None:
        """slurmstepd's ``error:`` line in the job's stderr (where the job's own stderr goes)."""
        line = f"slurmstepd: error: {text}\n".encode()
        spec = self.spec
        try:
            if spec.inherit_stdio:
                os.write(2, line)
                return
            path = spec.stderr or spec.stdout or os.devnull
            path = path if os.path.isabs(path) else os.path.join(spec.cwd, path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:
            self.log(f"cannot write the kill notice: {e}")

    def _op_suspend(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.main_status is not None:
            return {"ok": False, "errno": errno.ESRCH}
        if self.killing:
            return {"ok": False, "errno": errno.EBUSY}
        if not self.suspended:
            self.suspended = True
            self._signal_job(signal.SIGTSTP)
            self.suspend_deadline = time.monotonic() + self.spec.suspend_grace
        return {"ok": True}

    def _op_resume(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.main_status is not None:
            return {"ok": False, "errno": errno.ESRCH}
        self.suspended = False
        self.suspend_deadline = None
        self._signal_job(signal.SIGCONT)
        return {"ok": True}

    def _op_status(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "running": self.main_status is None,
            "main_pid": self.main_pid,
            "pids": sorted(self._job_pids()),
            "suspended": self.suspended,
            "killing": self.killing,
            "cgroup": self.cgroup.describe() if self.cgroup is not None else None,
        }


# ---------------------------------------------------------------------- the job process


def _child(spec: Spec, cgroup: JobCgroup | None, supervisor_pid: int, err_w: int) -> NoReturn:
    """Runs in the forked child; never returns. Reports problems on err_w and stderr."""
    code = 1
    try:
        code = _child_setup_and_exec(spec, cgroup, supervisor_pid, err_w)
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


def _child_setup_and_exec(spec: Spec, cgroup: JobCgroup | None, supervisor_pid: int, err_w: int) -> int:
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
    if not spec.inherit_stdio and not _open_stdio(spec, err_w):
        return 1
    try:
        os.chdir(spec.cwd)
    except OSError as e:
        _child_error(err_w, f"slurmstepd: error: couldn't chdir to `{spec.cwd}': {e.strerror}")
        return 1
    _close_fds(keep={0, 1, 2, err_w})
    try:
        os.execvpe(spec.argv[0], list(spec.argv), spec.env)
    except OSError as e:
        _child_error(err_w, f"slurmstepd: error: execve(): {spec.argv[0]}: {e.strerror}")
        return 126 if e.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.EPERM) else 127
    return 127  # not reached


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
    status = {
        "wait_status": (exit_code & 0xFF) << 8,
        "exit_code": exit_code,
        "signal": 0,
        "oom": False,
        "ended_at": time.time(),
        "error": error,
    }
    procs.write_atomic(os.path.join(rundir, procs.STATUS_FILE), json.dumps(status).encode())


def supervise(rundir: str) -> int:
    """Run the step of ``rundir`` to completion in this process (see the module doc)."""
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
            spec = Spec.from_dict(json.loads(f.read()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        log(f"bad {procs.SPEC_FILE}: {e!r}")
        write_pid(rundir)
        write_failure(rundir, f"bad {procs.SPEC_FILE}: {e}")
        return 1
    return Supervisor(rundir, spec, log).run()


def _spawn_from_zygote(rundir: str, fds: list[int]) -> None:
    """In the zygote: fork a detached supervisor for ``rundir`` (double fork, own session)
    whose fds 0-2 are ``fds`` (or /dev/null and the rundir's log). Returns in the zygote."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)  # the intermediate child exits at once
        return
    code = 1
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        if len(fds) == 3:
            stdio = fds
        else:
            log_fd = os.open(os.path.join(rundir, procs.LOG_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            stdio = [os.open(os.devnull, os.O_RDONLY), log_fd, log_fd]
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the zygote's socket and anything else
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code = supervise(rundir)  # (fork cleared the zygote's parent-death signal)
    finally:
        os._exit(code)


def zygote(sock_fd: int) -> int:
    """``python -m spurd.supervisor --zygote FD``: a single-threaded supervisor factory.

    The agent (an asyncio program with threads, where fork() is unsafe) keeps one zygote
    and asks it for supervisors: one datagram per request, the rundir path, with 0 or 3
    file descriptors attached (SCM_RIGHTS) to become the supervisor's stdio. The reply is
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
            msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 3)
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
    if len(args) != 1:
        print("usage: python -m spurd.supervisor [--detach] RUNDIR", file=sys.stderr)
        return 2
    rundir = os.path.abspath(args[0])
    if detach:
        # The launcher exits at once (the agent reaps it); the supervisor is reparented
        # away from the agent and leads a session of its own.
        if os.fork() != 0:
            os._exit(0)
        os.setsid()
    return supervise(rundir)


if __name__ == "__main__":
    sys.exit(main())
