"""Process helpers for the node agent and the job supervisor (Linux /proc based).

Invariants:
- Nothing here raises for a process that vanished while it was being looked at: a pid
  that is gone is simply absent from the answer (races with exiting processes are normal).
- ``start_supervisor`` never leaves a zombie in the caller: the supervisor is started
  through a short-lived intermediate (``python -m spurd.supervisor --detach``) that forks
  the real supervisor into its own session and exits at once; the caller reaps only the
  intermediate. The caller must not be a child subreaper, or it inherits the supervisor.
- ``supervisor.pid`` existing in a rundir means the supervisor's control socket is
  accepting and the job has been forked (or ``status.json`` already says why it was not).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# One decoder for the whole code base: (WEXITSTATUS, 0) if exited, (0, WTERMSIG) if signalled.
from spurcore.exitcodes import decode_wait_status as decode_wait_status
from spurio.fs import write_atomic as write_atomic  # one atomic write for every process (spurio.fs)

SPEC_FILE = "spec.json"
PID_FILE = "supervisor.pid"
STATUS_FILE = "status.json"
CTL_SOCK = "ctl.sock"
LOG_FILE = "supervisor.log"

_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1


class SupervisorStartError(RuntimeError):
    """The supervisor did not come up (its log is in ``rundir/supervisor.log``)."""


# ---------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (index 0 = state, 1 = ppid, 2 = pgrp)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: the state follows the LAST ')'.
    end = data.rfind(b")")
    if end < 0:
        return None
    return data[end + 2 :].decode("ascii", "replace").split()


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat ("R", "S", "T", "Z", ...), None if gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def proc_ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def proc_pgid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def _children_file_supported() -> bool:
    return os.path.exists(f"/proc/self/task/{os.getpid()}/children")


_HAS_CHILDREN_FILE: bool | None = None


def children(pid: int) -> set[int]:
    """Direct children of ``pid`` (all threads), zombies included."""
    global _HAS_CHILDREN_FILE
    if _HAS_CHILDREN_FILE is None:
        _HAS_CHILDREN_FILE = _children_file_supported()
    if not _HAS_CHILDREN_FILE:
        return _children_by_scan().get(pid, set())
    out: set[int] = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.update(int(x) for x in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def _children_by_scan() -> dict[int, set[int]]:
    """ppid -> children from a scan of /proc (kernels without CONFIG_PROC_CHILDREN)."""
    tree: dict[int, set[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        ppid = proc_ppid(int(name))
        if ppid is not None:
            tree.setdefault(ppid, set()).add(int(name))
    return tree


def descendants(pid: int) -> set[int]:
    """Every descendant of ``pid`` (children, their children, ...), zombies included."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in out and child != pid:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    state = proc_state(pid)
    return state is not None and state != "Z"


def signal_all(pids: Iterable[int], sig: int) -> int:
    """Send ``sig`` to each pid; returns how many deliveries succeeded (ESRCH is ignored)."""
    sent = 0
    me = os.getpid()
    for pid in pids:
        if pid <= 0 or pid == me:
            continue
        try:
            os.kill(pid, sig)
            sent += 1
        except ProcessLookupError:
            pass
        except PermissionError:
            pass
    return sent


# ---------------------------------------------------------------------------- files


def write_lease(path: str | os.PathLike[str], seconds: float) -> None:
    """Renew the node's fencing lease: a CLOCK_MONOTONIC deadline ``seconds`` from now (the
    clock every process on this host shares, immune to wall-clock jumps). Not fsynced: after
    a reboot the deadline means nothing, and no supervisor survives one anyway."""
    write_atomic(path, f"{time.monotonic() + seconds:.3f}\n".encode(), durable=False)


def read_lease(path: str | os.PathLike[str] | None) -> float | None:
    """The lease deadline (CLOCK_MONOTONIC), or None when there is no lease file."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return float(f.read().strip() or b"0")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return 0.0  # unreadable: treat as run out (fail safe: fence)


def read_status(rundir: str | os.PathLike[str]) -> dict | None:
    """The supervisor's final ``status.json``, None while the job runs."""
    try:
        with open(os.path.join(rundir, STATUS_FILE), "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


def is_supervisor_of(pid: int, rundir: str | os.PathLike[str]) -> bool:
    """True if ``pid`` is a live (non-zombie) supervisor of ``rundir``: a ``spurd.supervisor``
    process (started by the launcher or forked by the zygote) whose working directory is
    ``rundir`` (a supervisor chdirs there first). Safe against pid reuse."""
    if pid <= 0 or not alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"spurd.supervisor" not in f.read():
                return False
        return os.readlink(f"/proc/{pid}/cwd") == os.path.abspath(os.fspath(rundir))
    except OSError:
        return False


def read_supervisor_pid(rundir: str | os.PathLike[str]) -> int | None:
    try:
        with open(os.path.join(rundir, PID_FILE), "rb") as f:
            return int(f.read().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


# ---------------------------------------------------------------------------- agent side


class ZygoteProcess:
    """A single-threaded forking helper (``python -m MODULE --zygote FD ARGS``) started on
    first use and again when it died, reached through a SEQPACKET socket pair; it exits when
    its end of the socket closes. Subclasses send it requests under ``_lock``."""

    def __init__(self, module: str, args: list[str] | None = None, python: str = sys.executable) -> None:
        import threading

        self._lock = threading.Lock()
        self._module = module
        self._args = list(args or ())
        self._python = python
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._alock: Any = None  # asyncio.Lock of start_async (made on first use, in its loop)

    def _ensure(self) -> socket.socket:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return self._sock
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen(
            [self._python, "-m", self._module, "--zygote", str(theirs.fileno()), *self._args],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, cwd="/", env=env,
        )
        theirs.close()
        self._sock = ours
        return ours

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)  # it exits when its end of the socket closes
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


class Zygote(ZygoteProcess):
    """The agent's side of ``python -m spurd.supervisor --zygote``: supervisors by fork.

    Thread-safe (one request at a time). ``start`` returns 0 when the zygote is gone or
    failed, and the caller falls back to starting an interpreter.
    """

    def __init__(self, python: str = sys.executable) -> None:
        super().__init__("spurd.supervisor", python=python)

    def start(self, rundir: str, client: int | None, timeout: float) -> tuple[int, int | None]:
        """The supervisor's pid (0 if none) and the read end of the step's end pipe, which
        reads end-of-file once the step's status.json is written (the caller closes it)."""
        with self._lock:
            try:
                sock = self._ensure()
                sock.settimeout(timeout)
                socket.send_fds(sock, [os.fsencode(rundir)], [client] if client is not None else [])
                data, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
            except OSError:
                self.close()
                return 0, None
        return _started(data, fds)

    async def start_async(self, rundir: str, client: int | None, timeout: float) -> tuple[int, int | None]:
        """``start`` on the running event loop, without a thread: the request is sent at
        once and the answer read when the socket turns readable (one request at a time).
        Only an agent's loop calls it; ``start`` stays for callers without one."""
        import asyncio

        loop = asyncio.get_running_loop()
        if self._alock is None:
            self._alock = asyncio.Lock()
        async with self._alock:
            with self._lock:
                try:
                    sock = self._ensure()
                    sock.setblocking(False)
                    socket.send_fds(sock, [os.fsencode(rundir)], [client] if client is not None else [])
                except OSError:  # (a full socket buffer too: the zygote is stuck)
                    self.close()
                    return 0, None
                answer: asyncio.Future[tuple[bytes, list[int]]] = loop.create_future()

                def readable() -> None:
                    try:
                        data, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
                    except BlockingIOError:
                        return
                    except OSError:  # the zygote is gone: the caller falls back
                        data, fds = b"", []
                    loop.remove_reader(sock.fileno())
                    if not answer.done():
                        answer.set_result((data, fds))

                loop.add_reader(sock.fileno(), readable)
                try:
                    data, fds = await asyncio.wait_for(answer, timeout)
                except TimeoutError:
                    loop.remove_reader(sock.fileno())
                    self.close()
                    return 0, None
        return _started(data, fds)


def _started(reply: bytes, fds: list[int]) -> tuple[int, int | None]:
    """A zygote's answer: (pid, end pipe) for ``ok <pid>``, else (0, None) with any
    descriptor that came along closed."""
    pid = started_pid(reply)
    if pid:
        return pid, (fds[0] if fds else None)
    for fd in fds:
        os.close(fd)
    return 0, None


def started_pid(reply: bytes) -> int:
    """The pid in a zygote's or a supervisor's ``ok <pid>`` answer; 0 for anything else."""
    words = reply.split()
    return int(words[1]) if len(words) == 2 and words[0] == b"ok" and words[1].isdigit() else 0


_zygote: Zygote | None = None


def use_zygote(python: str = sys.executable) -> None:
    """Start supervisors through a forking zygote from now on (the agent calls this)."""
    global _zygote
    _zygote = Zygote(python)


async def start_through_zygote(rundir: str, client: int | None = None,
                               timeout: float = 10.0) -> tuple[int, int | None]:
    """``launch_supervisor`` through the zygote (``use_zygote``) from an event loop, without
    a thread: (pid, end pipe), or (0, None) when there is no zygote or it failed."""
    if _zygote is None:
        return 0, None
    return await _zygote.start_async(os.path.abspath(rundir), client, timeout)


def _wait_pid_file(rundir: str, deadline: float, timeout: float) -> int:
    delay = 0.001
    while True:
        pid = read_supervisor_pid(rundir)
        if pid is not None:
            return pid
        if time.monotonic() >= deadline:
            raise SupervisorStartError(f"no {PID_FILE} in {rundir} after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def start_supervisor(
    rundir: str | os.PathLike[str],
    python: str = sys.executable,
    pass_fds: Iterable[int] = (),
    *,
    client: int | None = None,
    timeout: float = 10.0,
) -> int | None:
    """``launch_supervisor``, for callers that watch the supervisor by its pid only."""
    pid, end = launch_supervisor(rundir, python, pass_fds, client=client, timeout=timeout)
    if end is not None:
        os.close(end)
    return pid


def launch_supervisor(
    rundir: str | os.PathLike[str],
    python: str = sys.executable,
    pass_fds: Iterable[int] = (),
    *,
    client: int | None = None,
    timeout: float = 10.0,
    zygote: bool = True,
) -> tuple[int | None, int | None]:
    """Start the supervisor of ``rundir`` and return its pid, with, through the zygote,
    the read end of the step's end pipe (end-of-file once its status.json is written; the
    caller closes it). Without a zygote: ``python -m spurd.supervisor rundir`` detached.

    Through the zygote (``use_zygote``) it returns as soon as a supervisor took the step
    (it may not have reached its rundir yet: ``is_supervisor_of`` says no until it has;
    and it may be one that served earlier steps); the launcher path waits for the pid file.

    ``client``: srun's connection, handed to the supervisor of an srun step (the caller
    may close its copy once this returns). The supervisor's stdin is /dev/null and its
    stdout/stderr go to ``rundir/supervisor.log``. ``pass_fds`` are further fds kept open
    in the supervisor. ``zygote=False``: the launcher even where a zygote is in use (the
    agent's fallback once ``start_through_zygote`` failed). Raises SupervisorStartError
    after ``timeout``.
    """
    rundir = os.path.abspath(os.fspath(rundir))
    deadline = time.monotonic() + timeout
    if zygote and _zygote is not None and not tuple(pass_fds):
        pid, end = _zygote.start(rundir, client, timeout)
        if pid:
            return pid, end
    env = dict(os.environ)
    # The supervisor must import this package whatever the caller's cwd/sys.path.
    pkg_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
    log_fd = os.open(
        os.path.join(rundir, LOG_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
    )
    argv = [python, "-m", "spurd.supervisor", "--detach"]
    keep = tuple(pass_fds)
    if client is not None:
        argv += ["--client-fd", str(client)]
        keep += (client,)
    try:
        inter = subprocess.Popen(
            [*argv, rundir],
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            pass_fds=keep,
            cwd="/",
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(log_fd)
    try:
        rc = inter.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        inter.kill()
        inter.wait()
        raise SupervisorStartError(f"supervisor launcher for {rundir} hung") from None
    if rc != 0:
        raise SupervisorStartError(f"supervisor launcher for {rundir} exited with {rc}")
    return _wait_pid_file(rundir, deadline, timeout), None


def _ctl_address(rundir: str) -> tuple[str, int]:
    """Where to connect to ``rundir``'s control socket, and a descriptor to close once
    connected (-1: none). sun_path is short (108 bytes): a longer path is reached through
    an O_PATH descriptor of the rundir."""
    path = os.path.join(rundir, CTL_SOCK)
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path, -1
    dfd = os.open(rundir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{dfd}/{CTL_SOCK}", dfd


def _connect(sock: socket.socket, rundir: str) -> None:
    address, dfd = _ctl_address(rundir)
    try:
        sock.connect(address)
    finally:
        if dfd >= 0:
            os.close(dfd)


def send_control(rundir: str | os.PathLike[str], msg: dict, timeout: float = 5.0,
                 fds: Iterable[int] = ()) -> dict:
    """Send one JSON request to the supervisor of ``rundir`` and return its JSON reply.
    ``fds`` travel with it (SCM_RIGHTS): a client connection for ``attach``.

    Raises OSError (FileNotFoundError/ConnectionRefusedError) when no supervisor listens
    and TimeoutError when it does not answer within ``timeout``.
    """
    rundir = os.path.abspath(os.fspath(rundir))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        _connect(sock, rundir)
        data = json.dumps(msg).encode() + b"\n"
        fds = list(fds)
        if fds:
            sent = socket.send_fds(sock, [data], fds)
            data = data[sent:]
        sock.sendall(data)
        buf = b""
        while b"\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError(errno.ECONNRESET, "supervisor closed the connection")
            buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


async def send_control_async(rundir: str | os.PathLike[str], msg: dict, timeout: float = 5.0) -> dict:
    """``send_control`` (without fds) on the running event loop: no thread, so the request
    leaves at once instead of when a worker thread next gets the interpreter lock (up to
    its 5 ms switch interval while the loop is busy). The same errors."""
    import asyncio

    loop = asyncio.get_running_loop()
    rundir = os.path.abspath(os.fspath(rundir))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)

        async def exchange() -> bytes:
            address, dfd = _ctl_address(rundir)
            try:
                await loop.sock_connect(sock, address)
            finally:
                if dfd >= 0:
                    os.close(dfd)
            await loop.sock_sendall(sock, json.dumps(msg).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    raise ConnectionResetError(errno.ECONNRESET, "supervisor closed the connection")
                buf += chunk
            return buf

        buf = await asyncio.wait_for(exchange(), timeout)
    return json.loads(buf.split(b"\n", 1)[0])


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal ``pid`` and everything below it (best effort; for cleanup paths and tests)."""
    signal_all(descendants(pid) | {pid}, sig)
