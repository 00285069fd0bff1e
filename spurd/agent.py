"""The node agent: one connection to the leader, job starts, actions, reports, srun steps.

The agent is one asyncio program assembled from one class per concern, each in the module
of its name:

- ``spurd.session``: the connection to the leader (registration, heartbeats, the fencing
  lease, notifications);
- ``spurd.actions``: what the controller asks (starts, KILL/STOP/CONT/SIGNAL, reconciliation);
- ``spurd.runs``: the supervised runs and job records (start, watch, re-adopt, prune);
- ``spurd.reports``: the durable report spool and its delivery;
- ``spurd.steps``: the step endpoint (srun, sattach, sstat);
- ``spurd.env``: the batch script's environment (pure);
- and here: the state they share, start-up and shutdown, housekeeping.

Invariants (each module's docstring has its own):
- The agent never owns a job's processes: every batch script and srun step runs under its
  own supervisor (``spurd.supervisor``, detached into its own session), so the agent may be
  stopped, crash or be ``kill -9``ed at any moment without touching a job. A restarted
  agent re-adopts every live supervisor from the rundirs under ``<spool>/jobs/``.
- Persist, then send: a completion report is in the durable spool before it is sent, and
  the spool is flushed after every (re)connect before anything received is acted on.
- Idempotence: starts by (job id, requeue count), actions by id with durable ACKs.
- Nothing from outside reaches a handler unvalidated (``spurcore.agentmsg``): controller
  notifications (a malformed one is logged once, naming the field, and dropped), step
  endpoint requests (answered ``bad_request``), ``status.json``.
- One agent per spool (``spurd.lock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import socket
import sys
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from spurcore.schema import BadRequest
from spurd import devices as devices_mod
from spurd import procs
from spurd.actions import Actions
from spurd.reports import Reports
from spurd.runs import JobRecord, Run, Runs
from spurd.session import Session
from spurd.spool import ActionStore, ReportSpool
from spurd.steps import StepServer
from spurio import stepserver
from spurio.config import Config
from spurio.rpc import RpcConnection

log = logging.getLogger("spurd")

ACK_TTL = 7 * 24 * 3600.0
PRUNE_INTERVAL = 3600.0
USAGE_INTERVAL = 30.0  # Slurm's JobAcctGatherFrequency default


def acct_gather_interval(config: Config) -> float:
    """How often step usage is sampled: ``[cluster] job_acct_gather_frequency`` in
    spur.toml (Slurm's JobAcctGatherFrequency, seconds), 30 by default."""
    from spurio.config import read_toml

    try:
        value = read_toml(config.path).get("cluster", {}).get("job_acct_gather_frequency", USAGE_INTERVAL)
        return max(0.1, float(value))
    except (OSError, ValueError, TypeError, AttributeError):
        return USAGE_INTERVAL


def total_memory_mb(meminfo: str = "/proc/meminfo") -> int:
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Agent(Session, Actions, Runs, Reports, StepServer):
    """The node agent: the state every part shares, its start-up and shutdown."""

    def __init__(self, config: Config, name: str, *, cpus: int, mem_mb: int, spool_dir: str,
                 socket_path: str, python: str = sys.executable, cgroup_root: str | None = None,
                 rpc: str = "") -> None:
        self.config = config
        self.name = name
        self.cpus = cpus
        self.mem_mb = mem_mb
        self.spool_dir = os.path.abspath(spool_dir)
        self.socket_path = os.path.abspath(socket_path)
        # The TLS step endpoint, HOST:PORT ("" = none): bound at start, advertised in the
        # node's address (a wildcard HOST advertises the host's name, port 0 the port bound).
        self.rpc = rpc
        self.rpc_endpoint = ""
        self.python = python
        if cgroup_root is None:
            # Unique per spool: agents sharing a host (a local cluster, parallel test runs)
            # never share a job's cgroup, even with equal node names and job ids.
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            digest = hashlib.sha1(self.spool_dir.encode()).hexdigest()[:8]
            cgroup_root = f"spurd_{safe}_{digest}"
        self.cgroup_root = cgroup_root
        self.jobs_dir = os.path.join(self.spool_dir, "jobs")
        self.heartbeat_interval = config.heartbeat_interval
        self.kill_wait = config.kill_wait
        self.suspend_grace = config.suspend_grace
        # Fencing: set from the controllers' answer to node_register (0: off).
        self.fence_timeout = 0.0
        self.fence_grace = config.kill_wait
        self.lease_path = os.path.join(self.spool_dir, "lease")
        self.usage_interval = acct_gather_interval(config)
        self.is_root = os.geteuid() == 0
        # spurd.runs: what this node knows of its jobs and runs
        self.jobs: dict[int, JobRecord] = {}
        self.live: dict[str, Run] = {}  # rundir -> run whose supervisor has not ended
        self._watch_wake = asyncio.Event()  # a run to watch, or one to check at once
        self._locks: dict[int, asyncio.Lock] = {}  # per job: starts, launches and actions in turn
        # spurd.reports
        self.reports: ReportSpool
        self._reports_changed = asyncio.Event()
        self._reported_marks: dict[str, str] = {}
        self._delivered = asyncio.Condition()
        # spurd.actions
        self.actions: ActionStore
        self._inflight_actions: set[int] = set()
        # spurd.session
        self._conn: RpcConnection | None = None
        self._ready = asyncio.Event()  # set while _conn is registered and its spool flushed
        self.registered_count = 0
        # spurd.steps
        self._lsock: socket.socket | None = None
        self._tls_lsock: socket.socket | None = None
        self._relays: Any = None  # steprelay.Spawner while the TLS endpoint is open
        # srun clients are served by blocking socket calls with timeouts: in their own
        # threads, so that slow clients never starve supervisor starts and control calls.
        self._step_io = ThreadPoolExecutor(max_workers=64, thread_name_prefix="spurd-srun")
        # here
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._refused: set[str] = set()  # malformed inputs already logged (logged once each)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_fd = -1

    def stop(self) -> None:
        """Ask :meth:`run` to return (callable from any thread or a signal handler)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stop.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._stop.set()
        else:
            loop.call_soon_threadsafe(self._stop.set)

    async def run(self) -> None:
        """Run until :meth:`stop`. Jobs keep running under their supervisors afterwards."""
        self._loop = asyncio.get_running_loop()
        os.makedirs(self.spool_dir, mode=0o755, exist_ok=True)
        os.makedirs(self.jobs_dir, mode=0o755, exist_ok=True)
        if self.is_root:
            # The user's batch script lives below: it must be reachable (not readable).
            for d in (self.spool_dir, self.jobs_dir):
                with contextlib.suppress(OSError):
                    os.chmod(d, 0o755)
        self._lock_spool()
        procs.use_zygote(self.python)  # supervisors by fork: a job no longer costs an interpreter
        background: list[asyncio.Task[Any]] = []
        try:
            self.reports = ReportSpool(os.path.join(self.spool_dir, "reports"))
            self.actions = ActionStore(os.path.join(self.spool_dir, "actions"))
            self.actions.prune(ACK_TTL)
            self._recover()
            self._prune_jobs()
            os.makedirs(os.path.dirname(self.socket_path), exist_ok=True)
            self._lsock = stepserver.listen(self.socket_path)
            if self.rpc:
                self._tls_lsock = self._listen_tls()
            log.info("agent %s: %d cpus, %d MB, spool %s, socket %s%s", self.name, self.cpus, self.mem_mb,
                     self.spool_dir, self.socket_path, f", TLS {self.rpc_endpoint}" if self.rpc else "")
            background = [
                asyncio.create_task(self._stop.wait(), name="stop"),
                asyncio.create_task(self._watch_loop(), name="watch"),
                asyncio.create_task(self._accept_loop(self._lsock), name="steps"),
                *([asyncio.create_task(self._accept_tls_loop(self._tls_lsock), name="steps-tls")]
                  if self._tls_lsock is not None else []),
                asyncio.create_task(self._connection_loop(), name="connection"),
                asyncio.create_task(self._prune_loop(), name="prune"),
            ]
            done, _ = await asyncio.wait(background, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    raise exc
        finally:
            log.info("agent %s shutting down (%d jobs keep running)", self.name,
                     len({r.job_id for r in self.live.values()}))
            conn = self._conn
            if conn is not None:
                conn.close("agent shutting down")
            for task in [*background, *self._tasks]:
                task.cancel()
            await asyncio.gather(*background, *self._tasks, return_exceptions=True)
            if self._lsock is not None:
                self._lsock.close()
                with contextlib.suppress(OSError):
                    os.unlink(self.socket_path)
            if self._tls_lsock is not None:
                self._tls_lsock.close()
            if self._relays is not None:
                self._relays.close()  # the zygote exits; relays keep their steps' I/O going
            self._step_io.shutdown(wait=False, cancel_futures=True)
            if getattr(self, "reports", None) is not None:
                self.reports.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
            if not self.live:
                _remove_cgroup_root(self.cgroup_root)

    def _lock_spool(self) -> None:
        """One agent per spool: a second one would start and report the same jobs."""
        fd = os.open(os.path.join(self.spool_dir, "spurd.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OSError(errno.EBUSY, f"another spurd uses the spool {self.spool_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd  # held (and the lock with it) until the process exits

    def _spawn(self, coro: Awaitable[Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    def _refuse(self, what: str, error: BadRequest) -> None:
        """Log a malformed input once (the controller re-sends what it still wants: every
        repeat is the same error), naming the field; the input is then dropped."""
        text = f"{what}: {error}"
        if text in self._refused:
            log.debug("dropped again: %s", text)
            return
        if len(self._refused) > 1000:
            self._refused.clear()
        self._refused.add(text)
        log.error("dropped a malformed %s", text)

    def _lock(self, job_id: int) -> asyncio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = asyncio.Lock()
        return lock

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            self._prune_jobs()
            self.actions.prune(ACK_TTL)


def _remove_cgroup_root(cgroup_root: str) -> None:
    """rmdir the (empty) cgroup subtree of this agent's jobs; anything still in use stays."""
    devices_mod.remove_root(cgroup_root)
    try:
        from spurd.cgroups import detect

        hier = detect()
    except (OSError, ValueError):
        return
    if hier is None:
        return
    for base in {hier.track, hier.memory}:
        if base is None:
            continue
        root = os.path.join(base, cgroup_root)
        for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
