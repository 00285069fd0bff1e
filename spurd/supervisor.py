"""The per-job / per-step supervisor: Spur's slurmstepd.

``python -m spurd.supervisor <rundir>`` runs one job step described by ``rundir/spec.json``
and leaves its final wait status in ``rundir/status.json``. A supervisor forked by the
agent's zygote serves one step at a time, and may then serve later ones (``_serve``): once
a step's status is written and nothing of it is left in the process, it tells the zygote it
is idle and waits at / for the next; so most jobs cost neither an interpreter start nor a
fork, and a failure still touches one step.

The supervisor is one class assembled from one class per concern, each in the module of
its name: ``spurd.tasks`` (forking the tasks, and the child's side up to exec),
``spurd.stdio`` (an srun step's streams and clients), ``spurd.pmi_server``,
``spurd.usage`` (sampling), ``spurd.jobcontrol`` (the job's processes; ``spurcore.killplan``'s
steps carried out), ``spurd.control`` (the control socket); and here: the state they share,
the loop, the end of the step (the sweep, ``status.json``) and the entry points (the
launcher, the zygote).

Invariants:
- The supervisor outlives the agent (own session; SIGHUP/SIGINT/SIGPIPE ignored) and the
  job does not outlive the supervisor (the main process has PR_SET_PDEATHSIG=SIGKILL).
- It is a child subreaper, so every process the job leaves behind is a descendant of the
  supervisor; with a cgroup, the cgroup also holds them. "The job's processes" is the union
  of both, so no cgroup means no blind spot, only a weaker guard against fork races.
- The step ends when the main process has exited AND no process of the job remains: what
  is left when the main process exits is SIGKILLed (Slurm ends a step with its task).
  Only then is status.json written (tmp + rename), so a status file means nothing of the
  job still runs. It is made durable (fsync of the file and of rundir) unless the agent
  listens on the step's end pipe (a zygote's supervisor): the agent then makes the report
  durable in its spool before it tells anybody of the end (``spurd.reports``), so a second
  pair of fsyncs would protect nothing. A supervisor whose agent is gone (the pipe's
  read end closed) writes it durably.
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

import _signal
import contextlib
import fcntl
import json
import os
import select
import selectors
import signal
import socket
import sys
import time
from typing import Any

from spurcore import killplan
from spurcore.agentmsg import RunStatus, SupervisorSpec
from spurcore.killplan import Cause, Sequence
from spurcore.schema import structure, unstructure
from spurd import procs
from spurd.cgroups import JobCgroup, detect, step_relpath
from spurd.control import ControlSocket
from spurd.jobcontrol import JobControl
from spurd.pmi_server import PmiServer
from spurd.procs import read_lease
from spurd.stdio import Client, Stdio, Stream
from spurd.tasks import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, Task, Tasks, close_fds, prctl
from spurd.usage import Usage

SWEEP_INTERVAL = killplan.SWEEP_INTERVAL  # re-SIGKILL period for leftovers after the tasks exited
LEASE_CHECK = 0.5  # how often a supervisor reads its agent's lease (fencing)


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

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


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


class Supervisor(Tasks, Stdio, PmiServer, Usage, JobControl, ControlSocket):
    """One step on this node, from fork to ``status.json``: the state every part shares,
    the loop, the end of the step."""

    def __init__(self, rundir: str, spec: Spec, log: Log, client_fd: int = -1, end_fd: int = -1) -> None:
        self.rundir = rundir
        self.spec = spec
        self.log = log
        self.client_fd = client_fd  # srun's connection, handed over by the agent (-1: none)
        self.end_fd = end_fd  # the step's end pipe to the agent (-1: none; see tell_agent)
        self.pid = os.getpid()
        self.cgroup: JobCgroup | None = None
        self.sel = selectors.DefaultSelector()
        self.wake_r = self.wake_w = -1
        self.term_requested = False
        # spurd.tasks
        self.tasks: list[Task] = [Task(g, i) for i, g in enumerate(spec.tasks)]
        self.by_pid: dict[int, Task] = {}
        self.all_done = False
        self.started_at = 0.0
        self.ended_at = 0.0
        # spurd.jobcontrol (spurcore.killplan): the flags and the running sequence (a kill's
        # KillWait and repeated SIGKILLs, or a suspend's grace); the post-exit sweep here.
        self.suspended = False
        self.killing = False
        self.sequence = Sequence()
        self.sweep_deadline = 0.0
        self.next_sweep = 0.0
        self.unkillable: list[int] = []
        # fencing
        self.next_lease_check = 0.0
        self.fenced = False
        # spurd.usage
        self.next_sample = 0.0
        # spurd.control
        self.conns: dict[socket.socket, bytearray] = {}
        self.lsock: socket.socket | None = None
        # spurd.stdio
        self.streams: dict[int, Stream] = {}
        self.clients: list[Client] = []
        self.paused = False
        # spurd.pmi_server
        self.pmi: Any = None
        self.pmi_abort: tuple[int, int, str] | None = None

    @property
    def relay(self) -> bool:
        return self.spec.io is not None

    @property
    def main_pid(self) -> int:
        return self.tasks[0].pid

    def run(self) -> int:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r, self.wake_w = wake_r, wake_w
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        _signal.signal(signal.SIGCHLD, self._on_signal)
        _signal.signal(signal.SIGTERM, self._on_signal)
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
        how = "spawned" if all(t.spawned for t in self.tasks) else "forked"
        self.log(f"{self.spec.label} started ({how}): pids {[t.pid for t in self.tasks]} argv {list(self.spec.argv)}")
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
        for deadline in (self.sequence.deadline(), self.next_sample, lease):
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
        if now >= self.next_sample:
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
            usage=self._usage(final=True), unkillable=tuple(self.unkillable))
        # srun hears the end of this node's part before the status is on disk: the status
        # file must mean that nothing runs and nobody is connected any more.
        self._send_all(("done", {"status": raw, "oom": oom, "node": self.spec.node_name}))
        self._flush_clients()
        self._close_control()  # status.json present => nobody to talk to any more
        procs.write_atomic(os.path.join(self.rundir, procs.STATUS_FILE), json.dumps(unstructure(status)).encode(),
                           durable=not self._agent_listening())
        self.log(f"{self.spec.label} done: exit {code}:{sig}{' (OOM)' if oom else ''}")
        self.tell_agent()  # before the cgroups go: the agent's report path runs meanwhile
        self._cleanup()

    def _agent_listening(self) -> bool:
        """The agent holds the read end of the step's end pipe (it reports the end from
        its durable spool). A pipe whose readers are all gone polls POLLERR."""
        if self.end_fd < 0:
            return False
        poller = select.poll()
        poller.register(self.end_fd, 0)
        return not poller.poll(0)

    def tell_agent(self) -> None:
        """Close the end pipe: the agent hears the end now. Out of the rundir first, so
        that the agent no longer takes this process for the step's supervisor."""
        if self.end_fd >= 0:
            os.chdir("/")
            os.close(self.end_fd)
            self.end_fd = -1

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
            # ctl.sock stays (a connect is refused, as for a dead supervisor) and goes with the
            # rundir. Not unlinked: on ext4 without a journal every inode creation in the
            # block group steps over each inode freed in the last 60-360 s
            # (ialloc.c, recently_deleted), and one freed per job cost 20% of the machine's
            # CPU at 150 jobs/s (perf: find_get_block_common, recently_deleted).

    def _cleanup(self) -> None:
        self._close_control()
        if self.cgroup is not None:
            self.cgroup.remove()

    def release(self) -> None:
        """Give back what the step held in this process (the loop's descriptors, the
        signal handlers, the log), so that the process can serve another step."""
        signal.set_wakeup_fd(-1)
        _signal.signal(signal.SIGCHLD, _signal.SIG_DFL)
        _signal.signal(signal.SIGTERM, _signal.SIG_DFL)
        self.sel.close()
        for fd in (self.wake_r, self.wake_w):
            if fd >= 0:
                os.close(fd)
        self.wake_r = self.wake_w = -1
        self.log.close()

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


def write_pid(rundir: str) -> None:
    procs.write_atomic(os.path.join(rundir, procs.PID_FILE), f"{os.getpid()}\n".encode(), durable=False)


def write_failure(rundir: str, error: str, exit_code: int = 1) -> None:
    """status.json for a step that never ran (bad spec, fork failure)."""
    status = RunStatus(wait_status=(exit_code & 0xFF) << 8, exit_code=exit_code, ended_at=time.time(),
                       error=error[:64 * 1024])
    procs.write_atomic(os.path.join(rundir, procs.STATUS_FILE), json.dumps(unstructure(status)).encode())


def supervise(rundir: str, client_fd: int = -1, end_fd: int = -1) -> int:
    """Run the step of ``rundir`` to completion in this process (see the module doc).
    ``client_fd``: the srun connection the agent handed over (an srun step); ``end_fd``:
    the write end of the step's end pipe, closed (always, by the time this returns) once
    status.json is written."""
    rundir = os.path.abspath(rundir)
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        _signal.signal(sig, _signal.SIG_IGN)  # (_signal: signal's wrapper makes enums, ~40 us a call)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])  # whatever the agent had blocked (_signal: no enums)
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
        log.close()
        for fd in (client_fd, end_fd):
            if fd >= 0:
                os.close(fd)
        return 1
    supervisor = Supervisor(rundir, spec, log, client_fd, end_fd)
    try:
        return supervisor.run()
    finally:
        supervisor.release()
        supervisor.tell_agent()  # if run() left early


#: Where a supervisor forked by the zygote holds, while it serves a step, the srun
#: connection it was handed (if any), its link to the zygote, and the write end of the
#: step's end pipe (closed once status.json is written: the agent hears the end on it).
CLIENT_FD, LINK_FD, END_FD = 3, 4, 5
#: Steps one supervisor process serves, one after the other, before it exits.
REUSE_LIMIT = 100
#: Idle supervisors the zygote keeps; one more that says it is idle is let go (it exits).
MAX_IDLE = 16


def _place(fds: dict[int, int]) -> None:
    """Put each source fd at its target number (close-on-exec: a task inherits none of
    them) and close every other descriptor above 2, whatever their numbers were."""
    high = {target: fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 64) for target, src in fds.items()}
    for target, fd in high.items():
        os.dup2(fd, target, inheritable=False)
    close_fds({0, 1, 2, *high})


def _stdio_to(log_path: str | None) -> None:
    """fds 0-2: /dev/null, and the step's supervisor.log (or /dev/null while idle)."""
    null = os.open(os.devnull, os.O_RDWR)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log_path else null
    for target, fd in enumerate((null, out, out)):
        os.dup2(fd, target)
    for fd in {null, out} - {0, 1, 2}:
        os.close(fd)


def _reusable() -> bool:
    """After a step: nothing of it left in this process, so it may serve another: no child
    and no descriptor but 0-2 and the zygote's link (a leaked one could be closed later by
    its owner's finalizer while its number belongs to the next step)."""
    try:
        if os.waitpid(-1, os.WNOHANG) is not None:
            return False  # a child (a zombie or alive): not clean
    except ChildProcessError:
        pass
    kept = {0, 1, 2, LINK_FD}
    lister = min(set(range(len(kept) + 1)) - kept)  # the fd os.listdir itself opens
    return {int(n) for n in os.listdir("/proc/self/fd")} == kept | {lister}


def _serve(rundir: str, has_client: bool) -> int:
    """In a supervisor forked by the zygote: serve the step of ``rundir``, then, while
    the process is clean (``_reusable``) and under ``REUSE_LIMIT``, tell the zygote it is
    idle and serve the next step it hands over (``[client?, end]`` fds with the rundir;
    the answer ``ok <pid>``). It exits when the zygote is gone. Idle, it holds no rundir
    (its working directory is /), so the agent never takes it for a step's supervisor."""
    link = socket.socket(fileno=LINK_FD)
    for served in range(1, REUSE_LIMIT + 1):
        _stdio_to(os.path.join(rundir, procs.LOG_FILE))
        code = supervise(rundir, CLIENT_FD if has_client else -1, END_FD)  # closes END_FD
        os.chdir("/")  # idle at / (supervise left the rundir before closing END_FD)
        _stdio_to(None)
        if code != 0 or served == REUSE_LIMIT or not _reusable():
            return code
        try:
            link.send(b"idle")
            msg, fds, _flags, _addr = socket.recv_fds(link, 4096, 2)
        except OSError:
            return 0
        if not msg or not fds:
            for fd in fds:
                os.close(fd)
            return 0  # the zygote is gone (the agent stopped): nothing more to serve
        rundir, has_client = os.fsdecode(msg), len(fds) == 2
        places = {END_FD: fds[-1], LINK_FD: LINK_FD}
        if has_client:
            places[CLIENT_FD] = fds[0]
        _place(places)
        try:
            link.send(b"ok %d" % os.getpid())
        except OSError:
            return 0
    return 0


def _fork_supervisor(rundir: str, fds: list[int], end_w: int) -> tuple[int, socket.socket]:
    """In the zygote: fork a supervisor for ``rundir`` (the zygote ignores SIGCHLD, so the
    kernel reaps it; a session of its own), handing it ``fds[0]`` (if any: srun's
    connection) and the end pipe's write end. Returns its pid and the zygote's end of
    its link."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid:
        theirs.close()
        return pid, ours
    code = 1
    try:
        _signal.signal(signal.SIGCHLD, _signal.SIG_DFL)  # it waits for its own children
        _signal.signal(signal.SIGTERM, _signal.SIG_DFL)
        os.setsid()
        places = {LINK_FD: theirs.fileno(), END_FD: end_w}
        if fds:
            places[CLIENT_FD] = fds[0]
        _place(places)  # also closes the zygote's descriptors (the agent's socket, links)
        theirs.detach()
        ours.detach()
        code = _serve(rundir, bool(fds))  # (fork cleared the zygote's parent-death signal)
    finally:
        os._exit(code)


def _hand_over(link: socket.socket, msg: bytes, fds: list[int]) -> int:
    """Give an idle supervisor a step; its pid, or 0 if it is gone."""
    try:
        socket.send_fds(link, [msg], fds)
        link.settimeout(5.0)
        reply = link.recv(64)
        link.settimeout(None)
    except OSError:
        return 0
    return procs.started_pid(reply)


def zygote(sock_fd: int) -> int:
    """``python -m spurd.supervisor --zygote FD``: a single-threaded supervisor factory.

    The agent (an asyncio program with threads, where fork() is unsafe) keeps one zygote
    and asks it for supervisors: one datagram per request, the rundir path, with 0 or 1
    file descriptor attached (SCM_RIGHTS): srun's connection for an srun step. The reply is
    ``ok <pid>`` with the read end of the step's end pipe attached (it reads end-of-file
    once the step's status.json is written), or ``error: ...``. A step goes to a supervisor
    that finished an earlier one and said it is idle (``_serve``), else to a new one by
    fork: a job then costs neither an interpreter start nor, mostly, a fork. The zygote
    dies with the agent; its supervisors, in sessions of their own, do not (they are
    re-parented), and the idle ones exit when their link to it closes.
    """
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        return 0
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # no zombies: nobody here waits for them
    import resource  # noqa: F401  (os.wait4 imports it at a step's end)

    import spurcore.steps  # noqa: F401
    import spurio.stepserver  # noqa: F401
    from spurd import cgroups

    cgroups.remember_detection()  # the hierarchies are found once, here, for every supervisor
    with contextlib.suppress(ValueError):
        cgroups.detect()
    # The schema's per-class plans (spurcore.schema), made here once instead of in every
    # supervisor: reading spec.json and writing status.json.
    with contextlib.suppress(Exception):  # only a head start: never a reason not to serve
        structure(Spec, {"job_id": 1, "step": "batch", "argv": ["true"], "cwd": "/"})
        unstructure(RunStatus(wait_status=0, exit_code=0))
    agent = socket.socket(fileno=sock_fd)
    sel = selectors.DefaultSelector()
    sel.register(agent, selectors.EVENT_READ)
    idle: list[socket.socket] = []  # supervisors waiting for a step, the latest last
    while True:
        # Supervisors first: one that became idle takes the request that came with it.
        for key, _ in sorted(sel.select(), key=lambda event: event[0].fileobj is agent):
            link = key.fileobj
            if link is not agent:  # a busy supervisor says it is idle, or it exited
                assert isinstance(link, socket.socket)
                sel.unregister(link)
                try:
                    said = link.recv(64)
                except OSError:
                    said = b""
                if said == b"idle" and len(idle) < MAX_IDLE:
                    idle.append(link)
                else:
                    link.close()  # gone, or one idle supervisor too many: it exits
                continue
            try:
                msg, fds, _flags, _addr = socket.recv_fds(agent, 4096, 1)
            except OSError:
                return 0
            if not msg:
                return 0  # the agent closed its end
            end_r, end_w = os.pipe2(os.O_CLOEXEC)
            reply_fds: list[int] = []
            try:
                pid = 0
                while idle and not pid:
                    link = idle.pop()
                    pid = _hand_over(link, msg, [*fds, end_w])
                    if not pid:
                        link.close()
                if not pid:
                    pid, link = _fork_supervisor(os.fsdecode(msg), fds, end_w)
                sel.register(link, selectors.EVENT_READ)
                reply, reply_fds = b"ok %d" % pid, [end_r]
            except Exception as exc:  # report it, keep serving
                reply = f"error: {exc}".encode()
            finally:
                for fd in fds:
                    os.close(fd)
                os.close(end_w)
            try:
                socket.send_fds(agent, [reply], reply_fds)
            except OSError:
                return 0
            finally:
                os.close(end_r)


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
