"""A step's tasks: forking them, and what each child does between fork and exec.

In the forked child, in this order (docs/architecture.md, section 6): ``setsid`` (its own
session and process group), every signal disposition reset and the mask cleared, the
cgroup joined, privileges dropped (``initgroups``/``setgid``/``setuid`` when root),
``PR_SET_PDEATHSIG=SIGKILL`` armed after the uid change (which would clear it) with a check
that the parent is still the supervisor, stdin/stdout/stderr opened as the user (files,
or the pipes and pty of an srun step), ``chdir``, every other descriptor closed, then
``execvpe``. Problems are reported on a pipe to the supervisor; exec failures exit 126/127.

A batch step's single task is spawned instead (``posix_spawn``: vfork and exec, with no copy
of the supervisor's memory and no Python in the child) where that leaves nothing the job can
see different: the job runs with the supervisor's own credentials (root's job as root, or an
unprivileged agent), its argv[0] is a path, and a v1 cgroup holds the step. The supervisor
opens the stdio files, steps into the step's cgroups and the job's working directory, spawns
with a new session, every signal at its default and an empty mask, then steps back. The one
thing given up is the task's parent-death signal: a SIGKILLed supervisor's job is then ended
by the agent, which kills what is left in the step's cgroup when it finds the supervisor gone
(docs/architecture.md, section 6). Any failure before the job runs (a stdio file, the working
directory, exec) starts nothing and falls back to the fork, which reports it as always.
``$SPUR_TASK_SPAWN=fork`` (in the agent's environment) forks every task.
"""

from __future__ import annotations

import _signal
import contextlib
import ctypes
import errno
import fcntl
import os
import pwd
import select
import selectors
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

from spurcore import multiprog
from spurcore.agentmsg import SupervisorSpec
from spurcore.multiprog import MultiProgError
from spurd.cgroups import JobCgroup
from spurd.stdio import Stream

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_LIBC = ctypes.CDLL(None, use_errno=True)
EXEC_WAIT = 5.0  # how long the supervisor waits for the job's exec before serving anyway
TASK_SPAWN_ENV = "SPUR_TASK_SPAWN"  # "auto" (default): spawn where allowed; "fork": always fork
#: What a spawned task gets at its default disposition: every signal that has one.
_ALL_SIGNALS = frozenset(_signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


def prctl(option: int, arg: int) -> None:
    rc = _LIBC.prctl(
        ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _high_fd(fd: int) -> int:
    """Move ``fd`` to >= 3 so the dup2 onto 0/1/2 cannot clobber another stdio fd."""
    if fd > 2:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return new


@dataclass(eq=False)
class Task:
    """One task (rank) on this node: its process group is its pid."""

    gid: int  # global task id (SLURM_PROCID)
    lid: int  # local id (SLURM_LOCALID)
    pid: int = 0
    status: int | None = None
    rusage: Any = None
    killed_by_cmd: bool = False  # still running when a kill was ordered: its status is ours
    spawned: bool = False  # started by posix_spawn (no parent-death signal), not forked
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


class Tasks:
    """Forking the tasks (a part of :class:`spurd.supervisor.Supervisor`)."""

    def _spawn_all(self) -> None:
        """Fork every task, then wait (bounded) until each has exec'd or failed."""
        if self.spec.pmi is not None:
            from spurcore.pmi import PmiNode

            p = self.spec.pmi
            self.pmi = PmiNode(p.jobid, p.size, tuple(self.spec.tasks), p.mapping)
        errs: list[int] = []
        for task in self.tasks:
            err_r = self._spawn(task)
            if err_r is not None:
                errs.append(err_r)
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

    def _spawn(self, task: Task) -> int | None:
        """Start one task: spawned (None: it has exec'd) or forked (the read end of its
        exec-error pipe)."""
        plan = self._stdio_plan(task)
        if not plan and self.pmi is None and self._spawn_direct(task):
            return None
        pmi_child = -1
        if self.pmi is not None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            ours.setblocking(False)
            task.pmi_sock = ours
            pmi_child = theirs.detach()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # Blocked across fork: no Python handler of ours may run in the child.
        # (_signal's functions: signal's wrappers turn every number into an enum member,
        # ~0.4 ms a task with the whole mask.)
        old_mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
        try:
            pid = os.fork()
            if pid == 0:
                os.close(err_r)
                _child(self.spec, self.cgroup, self.pid, err_w, task, plan, pmi_child)
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, old_mask)
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

    def _spawn_direct(self, task: Task) -> bool:
        """``posix_spawn`` the task where allowed (the module docstring says when); False
        when nothing was started: the caller forks it instead."""
        spec, cg = self.spec, self.cgroup
        if (cg is None or self.client_fd >= 0 or not cg.can_carry_self() or spec.task_env or spec.multi_prog
                or "/" not in spec.argv[0]
                or _credentials(spec) is not None or os.environ.get(TASK_SPAWN_ENV, "auto") == "fork"):
            return False
        mask = os.umask(spec.umask) if spec.umask is not None else None  # for the stdio files too
        fds: list[int] = []
        try:
            fds, error = _stdio_files(spec)
            if error:
                return False
            try:
                cg.join_self()  # the child is born in the step's cgroups
                os.chdir(spec.cwd)
                pid = os.posix_spawn(
                    spec.argv[0], list(spec.argv), spec.env,
                    file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)],
                    setsid=True, setsigmask=(), setsigdef=_ALL_SIGNALS)
            except OSError as e:
                self.log(f"spawning the task failed ({e}): forking it instead")
                return False
            finally:
                self._step_back(cg)
        finally:
            for fd in set(fds):
                os.close(fd)
            if mask is not None:
                os.umask(mask)
        task.pid, task.spawned = pid, True
        self.by_pid[pid] = task
        return True

    def _step_back(self, cg: JobCgroup) -> None:
        """Back to the supervisor's own directory and cgroups after a spawn."""
        os.chdir(self.rundir)
        try:
            cg.leave_self()
        except OSError as e:  # cannot happen short of a broken hierarchy: say so loudly
            self.log(f"error: cannot leave the step's cgroups ({e}): suspending this step would stop its supervisor")

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


def _task_path(pattern: str, task: Task, spec: SupervisorSpec) -> str:
    """A ``-o/-e/-i`` pattern for this task (``%t %n %N %j %s %J %u %x %%``), relative to
    the step's working directory."""
    from spurcore.steps import expand_io_pattern

    path = expand_io_pattern(pattern, job_id=spec.job_id, step_id=spec.step, task=task.gid, nodeid=spec.nodeid,
                             node=spec.node_name, user=spec.env.get("SLURM_JOB_USER", spec.env.get("USER", "")),
                             name=spec.env.get("SLURM_JOB_NAME", ""))
    return path if os.path.isabs(path) else os.path.join(spec.cwd, path)


def _child(spec: SupervisorSpec, cgroup: JobCgroup | None, supervisor_pid: int, err_w: int,
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


def _child_setup_and_exec(spec: SupervisorSpec, cgroup: JobCgroup | None, supervisor_pid: int, err_w: int,
                          task: Task | None, plan: dict[str, Any], pmi_fd: int) -> int:
    os.setsid()
    signal.set_wakeup_fd(-1)
    default, skip = _signal.SIG_DFL, (signal.SIGKILL, signal.SIGSTOP)
    for signum in range(1, signal.NSIG):
        if signum not in skip:
            try:
                _signal.signal(signum, default)
            except (OSError, ValueError, RuntimeError):
                pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])

    if cgroup is not None:
        try:
            cgroup.join_self()
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
    if spec.task_prolog and task is not None:
        env = dict(env)
        status = _run_task_prolog(spec.task_prolog, env, err_w)
        if status:
            _child_error(err_w, f"slurmstepd: error: TaskProlog failed status={status}")
            return status
    argv = list(spec.argv)
    if spec.multi_prog and task is not None:
        try:
            argv = multiprog.task_argv(spec.argv[1], task.gid, spec.argv[2:])
        except (MultiProgError, IndexError) as e:
            _child_error(err_w, f"slurmstepd: error: {e}")
            return 1
        if not argv:
            _child_error(err_w, "slurmstepd: error: No executable program specified for this task")
            return 1
    close_fds(keep=keep)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        _child_error(err_w, f"slurmstepd: error: execve(): {argv[0]}: {e.strerror}")
        return 126 if e.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.EPERM) else 127
    return 127  # not reached


def _run_task_prolog(path: str, env: dict[str, str], err_w: int) -> int:
    """srun ``--task-prolog`` (slurmstepd's ``_run_script_and_set_env``), run in the task's
    process as the user just before the task's exec: the program gets the task's
    environment; lines it prints ``export NAME=value`` / ``unset NAME`` change ``env`` and
    ``print TEXT`` goes to the task's stdout. Its exit status (0 when it may not be run)."""
    if not os.access(path, os.R_OK | os.X_OK):
        return 0
    r, w = os.pipe()
    try:
        pid = os.posix_spawn(path, [path], env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, w, 1)])
    except OSError as e:
        os.close(r)
        os.close(w)
        _child_error(err_w, f"slurmstepd: error: execve({path}): {e.strerror}")
        return 127
    os.close(w)
    with os.fdopen(r, "rb") as out:
        for raw in out:
            line = raw.decode(errors="surrogateescape").rstrip("\n")
            if line.startswith("export ") and "=" in line:
                name, _, value = line[7:].partition("=")
                env[name] = value
            elif line.startswith("unset "):
                env.pop(line[6:], None)
            elif line.startswith("print "):
                with contextlib.suppress(OSError):
                    os.write(1, raw[6:] if raw.endswith(b"\n") else raw[6:] + b"\n")
    status = os.waitpid(pid, 0)[1]
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _task_stdio(child: dict[Any, Any], spec: SupervisorSpec, err_w: int) -> bool:
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


def _credentials(spec: SupervisorSpec) -> tuple[int, int, pwd.struct_passwd | None] | None:
    """The uid and gid the job runs as (and the user entry, if read), or None when they
    are the supervisor's own: not root (the agent's user whatever the spec says), or root's
    job as root."""
    if os.geteuid() != 0:
        return None
    uid = spec.uid if spec.uid is not None else 0
    entry = _passwd(uid) if spec.gid is None else None  # the user database only when needed
    gid = spec.gid if spec.gid is not None else entry.pw_gid if entry is not None else os.getgid()
    if uid == 0 and gid == os.getgid():
        return None
    return uid, gid, entry


def _drop_privileges(spec: SupervisorSpec, err_w: int) -> bool:
    change = _credentials(spec)
    if change is None:
        return True  # nothing to change
    uid, gid, entry = change
    if entry is None:
        entry = _passwd(uid)
    name = entry.pw_name if entry is not None else None
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


def _passwd(uid: int) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        return None


def _stdio_files(spec: SupervisorSpec) -> tuple[list[int], str]:
    """A batch step's stdin, stdout and stderr, opened (close-on-exec, above fd 2):
    ``([in, out, err], "")`` (stderr may be stdout's fd), or ``([], Slurm's error line)``
    with nothing left open."""
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
        opened.append(_high_fd(os.open(in_path, os.O_RDONLY | os.O_CLOEXEC)))
        what = "stdout"
        opened.append(_high_fd(os.open(out_path, out_flags, 0o644)))
        what = "stderr"
        if os.path.normpath(err_path) == os.path.normpath(out_path):
            opened.append(opened[1])
        else:
            opened.append(_high_fd(os.open(err_path, out_flags, 0o644)))
    except OSError as e:
        for fd in opened:
            os.close(fd)
        path = {"stdin": in_path, "stdout": out_path, "stderr": err_path}[what]
        return [], f"slurmstepd: error: Could not open {what} file {path}: {e.strerror}"
    return opened, ""


def _open_stdio(spec: SupervisorSpec, err_w: int) -> bool:
    fds, error = _stdio_files(spec)
    if error:
        _child_error(err_w, error)
        return False
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds):
        os.close(fd)
    return True


def close_fds(keep: set[int]) -> None:
    """Close every fd but ``keep``: one ``os.closerange`` (close_range(2)) per gap."""
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
