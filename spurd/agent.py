"""The node agent: one connection to the leader, job starts, actions, reports, srun steps.

Invariants:
- The agent never owns a job's processes: every batch script and srun step runs under its
  own supervisor (``spurd.supervisor``, detached into its own session), so the agent may be
  stopped, crash or be ``kill -9``ed at any moment without touching a job. A restarted
  agent re-adopts every live supervisor from the rundirs under ``<spool>/jobs/``.
- Persist, then send (DESIGN.md 1.6): a completion report is in the durable spool
  (``spurd.spool``) before it is sent, and leaves the spool only when the controller has
  answered it. After every (re)connect the spool is flushed, in order, BEFORE any start
  or action received on that connection is handled.
- Idempotence (DESIGN.md 1.5): a start is keyed by (job id, requeue count) and a job
  already known on this node (running or finished, as recorded in the spool) is never
  started again; an action is keyed by its id and its ACK is stored durably
  (``<spool>/actions/<id>.json``) before it is sent, so a repeat is answered with the
  same ACK and nothing is done twice.
- A KILL is ACKed only after every supervisor it involved has written its final status
  and the resulting report has been answered by the controller, so the controller sees
  JobNodeComplete / JobStepComplete before ActionAcked.
- A supervisor that vanished without writing ``status.json`` (it was SIGKILLed; its job
  died with it through PDEATHSIG=SIGKILL) is reported as killed by SIGKILL: ``(0, 9)``.
  The agent writes that status into the rundir itself (``"synthetic": true``) so that a
  restart reports the same thing.

- Nothing from outside reaches a handler unvalidated (``spurcore.agentmsg``): controller
  notifications (a malformed one is logged once, naming the field, and dropped), step
  endpoint requests (answered ``bad_request``), ``status.json``.

Rundir life cycle (``<spool>/jobs/<id>/batch`` or ``.../step_<n>``): ``spec.json`` written
by the agent, ``supervisor.pid`` and finally ``status.json`` by the supervisor, then the
``reported`` marker by the agent once the report is spooled.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from spurcore import agentmsg, arrays, killplan
from spurcore.agentmsg import (
    AttachStep,
    CtlAttach,
    CtlKill,
    CtlResume,
    CtlSignal,
    CtlStat,
    CtlSuspend,
    HeartbeatReply,
    JobAction,
    KillJob,
    LaunchJob,
    LaunchTasks,
    Registered,
    RunStatus,
    StartJob,
    StepStat,
    SupervisorSpec,
)
from spurcore.exitcodes import raw_status
from spurcore.hostlist import compress
from spurcore.ops import ActionKind, SignalTarget
from spurcore.schema import BadRequest, structure, unstructure
from spurd import devices as devices_mod
from spurd import procs
from spurd.spool import ActionStore, ReportSpool, write_durable
from spurio import rpc, stepserver
from spurio.config import Config
from spurio.rpc import ConnectionFailed, RpcConnection, RpcError, RpcTimeout

log = logging.getLogger("spurd")

POLL_INTERVAL = 0.005  # status.json polling of live rundirs (longer with many live jobs)
LIVENESS_INTERVAL = 0.5  # how often a live supervisor's pid is checked
CONTROL_RETRY = 0.01  # while a new supervisor binds its control socket
START_GRACE = 15.0  # a rundir may lack supervisor.pid this long while its supervisor starts
BACKOFF_MIN = 0.05
BACKOFF_MAX = 0.5
RPC_TIMEOUT = 30.0
JOB_WAIT = 10.0  # run_step may arrive before the job's start: wait this long for it
JOB_DIR_TTL = 24 * 3600.0  # finished job directories are pruned after this
ACK_TTL = 7 * 24 * 3600.0
PRUNE_INTERVAL = 3600.0
SYNTHETIC_KILL = (0, 9)  # status of a supervisor that died without writing one

JOB_FILE = "job.json"
SCRIPT_FILE = "script"
ENDED_FILE = "ended"
REPORTED_FILE = "reported"
BATCH = "batch"

LEADERSHIP_ERRORS = ("not_leader", "no_leader")
HANDED_OVER = object()  # a step request whose connection now belongs to a supervisor
USAGE_INTERVAL = 30.0  # Slurm's JobAcctGatherFrequency default


# ---------------------------------------------------------------------------- pure helpers


def report_id(node: str, job_id: int, step: str | int, restarts: int = 0) -> str:
    """``node:job:step``; a requeued job's later runs add ``:r<restarts>`` so that their
    reports are not taken for duplicates of the first run's."""
    base = f"{node}:{job_id}:{step}"
    return f"{base}:r{restarts}" if restarts else base


def run_key(step: str | int) -> str:
    return BATCH if step == BATCH else f"step_{int(step)}"


def tasks_per_node(ntasks: int, nnodes: int) -> str:
    """Slurm's SLURM_TASKS_PER_NODE: block distribution, compressed (``2(x3),1``)."""
    nnodes = max(1, nnodes)
    ntasks = max(ntasks, nnodes)
    base, extra = divmod(ntasks, nnodes)
    counts = [base + 1] * extra + [base] * (nnodes - extra)
    return _repeat_compress(counts)


def _repeat_compress(values: list[int]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        n = j - i
        parts.append(f"{values[i]}(x{n})" if n > 1 else str(values[i]))
        i = j
    return ",".join(parts)


def acct_gather_interval(config: Config) -> float:
    """How often step usage is sampled: ``[cluster] job_acct_gather_frequency`` in
    spur.toml (Slurm's JobAcctGatherFrequency, seconds), 30 by default."""
    from spurio.config import read_toml

    try:
        value = read_toml(config.path).get("cluster", {}).get("job_acct_gather_frequency", USAGE_INTERVAL)
        return max(0.1, float(value))
    except (OSError, ValueError, TypeError, AttributeError):
        return USAGE_INTERVAL


def tools_dir(python: str = sys.executable) -> str:
    """Where sbatch/srun live: the directory of the agent's interpreter (the venv's bin)."""
    return os.path.dirname(python)


def with_tools_path(env: dict[str, str], python: str = sys.executable) -> dict[str, str]:
    bindir = tools_dir(python)
    path = env.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    if bindir and path.split(os.pathsep)[0] != bindir:
        path = os.pathsep.join([bindir, path])
    env["PATH"] = path
    return env


def batch_env(info: LaunchJob, node: str, *, cluster: str, config_path: str, agent_socket: str,
              python: str = sys.executable, devices_constrained: bool = False) -> dict[str, str]:
    """The batch script's environment: the job's exported env plus Slurm's variables."""
    env = dict(info.env)
    node_list = list(info.node_list) or [node]
    nnodes = len(node_list)
    job_id = str(info.job_id)
    ntasks = info.num_tasks or 1
    cpus = info.cpus_per_node or 1
    cpus_per_task = info.cpus_per_task or 1
    nodelist = info.nodes or compress(node_list)
    slurm = {
        "SLURM_JOB_ID": job_id,
        "SLURM_JOBID": job_id,
        "SLURM_JOB_NAME": info.name,
        "SLURM_JOB_NODELIST": nodelist,
        "SLURM_NODELIST": nodelist,
        "SLURM_NNODES": str(nnodes),
        "SLURM_JOB_NUM_NODES": str(nnodes),
        "SLURM_NTASKS": str(ntasks),
        "SLURM_NPROCS": str(ntasks),
        "SLURM_CPUS_ON_NODE": str(cpus),
        "SLURM_JOB_CPUS_PER_NODE": _repeat_compress([cpus] * nnodes),
        "SLURM_SUBMIT_DIR": info.work_dir or info.cwd,
        "SLURM_SUBMIT_HOST": info.alloc_node or socket.gethostname(),
        "SLURM_JOB_USER": info.user,
        "SLURM_JOB_UID": "" if info.uid is None else str(info.uid),
        "SLURM_JOB_GID": "" if info.gid is None else str(info.gid),
        "SLURM_JOB_PARTITION": info.partition,
        "SLURM_CLUSTER_NAME": cluster,
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURMD_NODENAME": node,
        "SLURM_TASKS_PER_NODE": tasks_per_node(ntasks, nnodes),
        "SLURM_GTIDS": "0",
        "ENVIRONMENT": "BATCH",
        "SPUR_CONF": config_path,
        "SPURD_SOCKET": agent_socket,
    }
    if cpus_per_task > 1:
        slurm["SLURM_CPUS_PER_TASK"] = str(cpus_per_task)
    if info.account:
        slurm["SLURM_JOB_ACCOUNT"] = info.account
    if info.mem_mb > 0:
        slurm["SLURM_MEM_PER_NODE"] = str(info.mem_mb)
    if info.restarts > 0:
        slurm["SLURM_RESTART_COUNT"] = str(info.restarts)  # set only for a requeued job
    slurm.update(array_env(info))
    slurm.update(gpu_env(info, node, constrained=devices_constrained))
    if info.open_mode in ("append", "truncate"):
        slurm["SLURM_OPEN_MODE"] = "a" if info.open_mode == "append" else "t"  # for srun inside
    for value, var in ((info.comment, "SLURM_JOB_COMMENT"), (info.qos, "SLURM_JOB_QOS"), (info.wckey, "SLURM_WCKEY")):
        if value:
            slurm[var] = value
    if info.ntasks_per_node > 0:
        slurm["SLURM_NTASKS_PER_NODE"] = str(info.ntasks_per_node)
    if info.mem_per_cpu > 0:
        slurm["SLURM_MEM_PER_CPU"] = str(info.mem_per_cpu)
    if info.start_time:
        slurm["SLURM_JOB_START_TIME"] = str(int(info.start_time))
        if info.time_limit is not None:
            slurm["SLURM_JOB_END_TIME"] = str(int(info.start_time + info.time_limit))
    env.update(slurm)
    return with_tools_path(env, python)


def gpu_env(info: LaunchJob, node: str, *, constrained: bool = False) -> dict[str, str]:
    """The GPU variables of Slurm's gres/gpu plugin (src/plugins/gres/common/gres_common.c)
    for the GPUs this node gave the job: SLURM_JOB_GPUS lists their indexes on the node;
    CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES and GPU_DEVICE_ORDINAL
    the same, or 0..N-1 when a device cgroup hides the others (``constrained``); plus the
    request options (SLURM_GPUS, SLURM_GPUS_PER_NODE, ...)."""
    out: dict[str, str] = {}
    for value, var in ((info.gpus, "SLURM_GPUS"), (info.gpus_per_node, "SLURM_GPUS_PER_NODE"),
                       (info.gpus_per_task, "SLURM_GPUS_PER_TASK"), (info.cpus_per_gpu, "SLURM_CPUS_PER_GPU"),
                       (info.mem_per_gpu, "SLURM_MEM_PER_GPU")):
        if value:
            out[var] = str(value)
    gpus = sorted(info.gres_alloc.get(node, {}).get("gpu", ()))
    if not gpus:
        return out
    global_list = ",".join(str(i) for i in gpus)
    local_list = ",".join(str(i) for i in range(len(gpus))) if constrained else global_list
    out["SLURM_JOB_GPUS"] = global_list
    out["SLURM_GPUS_ON_NODE"] = str(len(gpus))
    for var in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL"):
        out[var] = local_list
    return out


def array_env(info: LaunchJob) -> dict[str, str]:
    """A job array task's variables (Slurm's job_array.shtml): the array's job id, this
    task's index, and the count, lowest, highest index and step of the whole array."""
    if not info.array_job_id or info.array_task_id is None:
        return {}
    try:
        ranges, _ = arrays.parse_array(info.array_spec or str(info.array_task_id), 2**31)
    except ValueError:  # the controller parsed it at submission: only a foreign record fails
        ranges, _ = arrays.parse_array(str(info.array_task_id), 2**31)
    return {
        "SLURM_ARRAY_JOB_ID": str(info.array_job_id),
        "SLURM_ARRAY_TASK_ID": str(info.array_task_id),
        "SLURM_ARRAY_TASK_COUNT": str(arrays.count(ranges)),
        "SLURM_ARRAY_TASK_MIN": str(arrays.first_index(ranges)),
        "SLURM_ARRAY_TASK_MAX": str(arrays.last_index(ranges)),
        "SLURM_ARRAY_TASK_STEP": str(arrays.step_of(ranges)),
    }


def script_argv(script_path: str, script: str, argv: list[str]) -> list[str]:
    """Run a script with a shebang directly (its interpreter), anything else with bash."""
    if script.startswith("#!"):
        return [script_path, *argv]
    return ["/bin/bash", script_path, *argv]


def supervisor_alive(pid: int, rundir: str) -> bool:
    """True if ``pid`` is a live (non-zombie) supervisor of ``rundir`` (pid reuse safe)."""
    return procs.is_supervisor_of(pid, rundir)


def find_supervisors(rundir: str) -> list[int]:
    """Every live process whose command line is a supervisor of ``rundir``."""
    out: list[int] = []
    for name in os.listdir("/proc"):
        if name.isdigit() and supervisor_alive(int(name), rundir):
            out.append(int(name))
    return out


def kill_notice(action: JobAction, run: Run, node: str) -> str:
    """slurmstepd's line in the job's stderr when the controller ends it (reference 9):
    ``*** JOB 12 ON node1 CANCELLED AT 2026-01-01T10:00:00 DUE TO TIME LIMIT ***``; "" for
    a KILL without a known reason (the job ended on its own: its other nodes are cleaned up)."""
    try:
        cause = killplan.Cause(action.why)
    except ValueError:  # "" or a reason this agent does not know: no notice
        return ""
    from spurcore.timefmt import fmt_timestamp

    label = f"JOB {run.job_id}" if run.step == BATCH else f"STEP {run.job_id}.{run.step}"
    return killplan.kill_notice(cause, label, node, fmt_timestamp(action.at or time.time()))


def failure_status(error: str, exit_code: int = 1, signal: int = 0) -> RunStatus:
    return RunStatus(wait_status=raw_status(exit_code, signal), exit_code=exit_code, signal=signal,
                     ended_at=time.time(), error=error, synthetic=True)


def total_memory_mb(meminfo: str = "/proc/meminfo") -> int:
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


# ---------------------------------------------------------------------------- records


@dataclass(eq=False)
class Run:
    """One supervised process tree: a job's batch script or one srun step on this node."""

    job_id: int
    step: str | int  # "batch" or the step id
    rundir: str
    restarts: int
    done: asyncio.Future[RunStatus]
    pid: int | None = None
    status: RunStatus | None = None
    since: float = field(default_factory=time.monotonic)
    next_check: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status is not None


@dataclass(eq=False)
class JobRecord:
    """What this node knows of a job (``<spool>/jobs/<id>/job.json`` plus its rundirs)."""

    job_id: int
    info: LaunchJob
    node: str
    directory: str
    restarts: int = 0
    runs: dict[str, Run] = field(default_factory=dict)
    ended: bool = False  # the allocation is over on this node: no new steps

    @property
    def uid(self) -> int:
        return os.getuid() if self.info.uid is None else self.info.uid

    @property
    def gid(self) -> int:
        return os.getgid() if self.info.gid is None else self.info.gid

    @property
    def is_batch_host(self) -> bool:
        return self.info.batch_host == self.node and self.info.script is not None

    def live_runs(self) -> list[Run]:
        return [r for r in self.runs.values() if not r.finished]


# ---------------------------------------------------------------------------- agent


class Agent:
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
        self.reports: ReportSpool
        self.actions: ActionStore
        self.jobs: dict[int, JobRecord] = {}
        self.live: dict[str, Run] = {}  # rundir -> run whose supervisor has not ended
        self._locks: dict[int, asyncio.Lock] = {}
        self._inflight_actions: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conn: RpcConnection | None = None
        self._ready = asyncio.Event()  # set while _conn is registered and its spool flushed
        self._reports_changed = asyncio.Event()
        self._delivered = asyncio.Condition()
        self._stop = asyncio.Event()
        self._lsock: socket.socket | None = None
        self._tls_lsock: socket.socket | None = None
        self._relays: Any = None  # steprelay.Spawner while the TLS endpoint is open
        # srun clients are served by blocking socket calls with timeouts: in their own
        # threads, so that slow clients never starve supervisor starts and control calls.
        self._step_io = ThreadPoolExecutor(max_workers=64, thread_name_prefix="spurd-srun")
        self.registered_count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_fd = -1
        self._refused: set[str] = set()  # malformed inputs already logged (logged once each)

    # ------------------------------------------------------------------ lifecycle

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

    def _read_status(self, rundir: str) -> RunStatus | None:
        """A run's final status; one that cannot be read counts as none (logged once): the
        run is then watched until its supervisor is gone, and reported as killed."""
        try:
            return read_run_status(rundir)
        except BadRequest as e:
            self._refuse(f"{rundir}/{procs.STATUS_FILE}", e)
        except ValueError as e:
            self._refuse(f"{rundir}/{procs.STATUS_FILE}", BadRequest("status", f"expected JSON ({e})"))
        return None

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

    # ------------------------------------------------------------------ connection

    def _register_params(self) -> dict[str, Any]:
        jobs = {r.job_id for r in self.live.values()}
        jobs |= {j.job_id for j in self.jobs.values() if not j.ended}
        return {
            "name": self.name,
            "cpus": self.cpus,
            "mem_mb": self.mem_mb,
            "address": stepserver.agent_address(self.socket_path, self.rpc_endpoint),
            "jobs": sorted(jobs),
        }

    async def _open(self, endpoint: str, on_notification: Any) -> RpcConnection:
        kind, _, where = endpoint.partition(":")
        if kind == "unix":
            return await rpc.connect_unix(where, None, on_notification, timeout=5.0)
        if kind == "tcp":
            host, _, port = where.rpartition(":")
            ctx = None
            if self.config.tls_ca:
                cert = os.environ.get("SPUR_CERT") or self.config.tls_cert or None
                key = os.environ.get("SPUR_KEY") or self.config.tls_key or None
                ctx = rpc.client_ssl_context(cert, key, self.config.tls_ca)
            return await rpc.connect_tcp(host.strip("[]"), int(port), ctx, None, on_notification, timeout=5.0)
        raise ConnectionFailed(f"unsupported endpoint {endpoint!r}")

    async def _connection_loop(self) -> None:
        endpoints = [r.endpoint for r in self.config.replicas]
        idx = 0
        hint: str | None = None
        redirects = 0
        backoff = BACKOFF_MIN
        while not self._stop.is_set():
            if hint:
                endpoint, hint = hint, None
            else:
                endpoint = endpoints[idx % len(endpoints)]
                idx += 1
            outcome, detail = await self._attempt(endpoint)
            if outcome == "session":
                idx, redirects, backoff = 0, 0, BACKOFF_MIN
                await asyncio.sleep(BACKOFF_MIN)
                continue
            if outcome == "not_leader" and detail and detail != endpoint and redirects <= len(endpoints):
                hint = detail
                redirects += 1
                continue
            redirects = 0
            if outcome == "no_leader" or idx % len(endpoints) == 0:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _attempt(self, endpoint: str) -> tuple[str, str]:
        """Connect, register and serve one session. ("session"|"not_leader"|"no_leader"|"failed", detail)."""
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        try:
            conn = await self._open(endpoint, lambda _c, method, params: queue.put_nowait((method, params)))
        except (RpcError, OSError, ValueError) as e:
            log.debug("cannot connect to %s: %s", endpoint, e)
            return "failed", str(e)
        try:
            raw = await conn.call("node_register", self._register_params(), timeout=RPC_TIMEOUT)
            reply = structure(Registered, raw)
        except RpcError as e:
            conn.close()
            if e.code in LEADERSHIP_ERRORS:
                log.debug("%s: %s %s", endpoint, e.code, e.message)
                return e.code, e.message
            log.warning("node_register at %s failed: %s", endpoint, e)
            return "failed", str(e)
        except BadRequest as e:
            conn.close()
            self._refuse(f"answer to node_register from {endpoint}", e)
            return "failed", str(e)
        except BaseException:
            conn.close()
            raise
        try:
            await self._session(conn, endpoint, reply, queue)
        finally:
            conn.close()
        return "session", ""

    async def _session(self, conn: RpcConnection, endpoint: str, reply: Registered,
                       queue: asyncio.Queue[tuple[str, Any]]) -> None:
        self.heartbeat_interval = reply.heartbeat_interval or self.config.heartbeat_interval
        if reply.kill_wait is not None:
            self.kill_wait = reply.kill_wait
        if reply.suspend_grace is not None:
            self.suspend_grace = reply.suspend_grace
        self.fence_timeout = reply.fence_timeout
        self.fence_grace = reply.fence_grace or self.kill_wait
        self._renew_lease()  # the leader that registered us holds a quorum
        self.registered_count += 1
        log.info("registered with the leader at %s (%d reports to resend)", endpoint, len(self.reports))
        tasks: list[asyncio.Task[Any]] = []
        try:
            # Reports first: nothing received on this connection is acted on before the
            # spool has been flushed (notifications wait in ``queue``).
            if not await self._flush_reports(conn):
                return
            self._conn = conn
            self._ready.set()
            tasks = [
                asyncio.create_task(self._report_sender(conn)),
                asyncio.create_task(self._heartbeat(conn)),
                asyncio.create_task(self._dispatch(queue)),
                asyncio.create_task(conn.closed()),
                asyncio.create_task(self._stop.wait()),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("session task failed", exc_info=task.exception())
        finally:
            self._ready.clear()
            if self._conn is conn:
                self._conn = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("connection to %s ended: %s", endpoint, conn.close_reason or "closing")

    async def _heartbeat(self, conn: RpcConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                raw = await conn.call("heartbeat", {"name": self.name},
                                      timeout=max(5.0, 3 * self.heartbeat_interval))
                reply = structure(HeartbeatReply, raw)
            except BadRequest as e:
                self._refuse("answer to heartbeat", e)  # fail safe: no lease renewal on it
                continue
            except (ConnectionFailed, RpcTimeout) as e:
                log.warning("heartbeat failed: %s", e)
                return
            except RpcError as e:
                log.warning("heartbeat refused (%s): registering again", e)
                return
            if reply.quorum:
                self._renew_lease()

    def _renew_lease(self) -> None:
        """Fencing (docs/reliability.md): while the agent is in touch with a leader that holds
        a quorum, its jobs may run for ``fence_timeout`` more seconds; every supervisor kills
        its job when the lease runs out, before the controllers may declare the node failed
        and run the job elsewhere."""
        if self.fence_timeout > 0:
            procs.write_lease(self.lease_path, self.fence_timeout)
        elif os.path.exists(self.lease_path):
            os.unlink(self.lease_path)  # fencing turned off by the controllers

    def _fencing(self) -> dict[str, Any]:
        """What every supervisor's spec carries for fencing."""
        if self.fence_timeout <= 0:
            return {}
        return {"lease_file": self.lease_path, "fence_grace": self.fence_grace}

    async def _dispatch(self, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        """Each notification, validated (``spurcore.agentmsg.NOTIFICATIONS``), to its handler;
        a malformed one is logged once and dropped."""
        while True:
            method, params = await queue.get()
            try:
                msg = agentmsg.notification(method, params)
            except BadRequest as e:
                self._refuse(f"{str(method)[:64]!r} notification", e)
                continue
            if isinstance(msg, StartJob):
                self._spawn(self._on_start(msg), "start")
            elif isinstance(msg, JobAction):
                self._spawn(self._on_action(msg), "action")
            elif isinstance(msg, KillJob):
                self._spawn(self._on_kill(msg), "kill")

    async def _call_current(self, method: str, params: dict[str, Any]) -> Any:
        """Call ``method`` on the current leader connection, retrying across reconnects."""
        while not self._stop.is_set():
            await self._ready.wait()
            conn = self._conn
            if conn is None:
                await asyncio.sleep(BACKOFF_MIN)
                continue
            try:
                return await conn.call(method, params, timeout=RPC_TIMEOUT)
            except (ConnectionFailed, RpcTimeout) as e:
                log.info("%s not answered (%s): retrying on the next connection", method, e)
                conn.close()
            except RpcError as e:
                if e.code not in LEADERSHIP_ERRORS:
                    log.warning("%s %s refused: %s", method, params, e)
                    return None
                conn.close()
            while self._conn is conn and not self._stop.is_set():
                await asyncio.sleep(BACKOFF_MIN)
        return None

    # ------------------------------------------------------------------ reports

    async def _report_sender(self, conn: RpcConnection) -> None:
        while True:
            await self._reports_changed.wait()
            self._reports_changed.clear()
            if not await self._flush_reports(conn):
                conn.close("report delivery failed")
                return

    async def _flush_reports(self, conn: RpcConnection) -> bool:
        """Send every spooled report in order; False if the connection is no good."""
        backoff = BACKOFF_MIN
        while True:
            pending = self.reports.list()
            if not pending:
                return True
            for report in pending:
                rid = report["report_id"]
                try:
                    await conn.call("report", report, timeout=RPC_TIMEOUT)
                except (ConnectionFailed, RpcTimeout) as e:
                    log.info("report %s not delivered: %s", rid, e)
                    return False
                except RpcError as e:
                    if e.code in LEADERSHIP_ERRORS:
                        return False
                    log.warning("report %s refused (%s): retrying", rid, e)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    break
                self.reports.delete(rid)
                log.debug("report %s delivered", rid)
                async with self._delivered:
                    self._delivered.notify_all()

    async def _wait_delivered(self, report_ids: list[str]) -> None:
        async with self._delivered:
            await self._delivered.wait_for(lambda: not any(rid in self.reports for rid in report_ids))

    def _report_for(self, run: Run, status: RunStatus) -> dict[str, Any]:
        batch = run.step == BATCH
        return {
            "report_id": report_id(self.name, run.job_id, run.step, run.restarts),
            "kind": "node" if batch else "step",
            "job_id": run.job_id,
            "step_id": BATCH if batch else int(run.step),
            "node": self.name,
            "exit_code": status.exit_code,
            "signal": status.signal,
            "oom": status.oom,
            "at": status.ended_at or time.time(),
            "usage": status.usage,
            "fenced": status.fenced,
        }

    def _spool_report(self, run: Run, status: RunStatus) -> None:
        """Persist the report of a finished run, then mark its rundir as reported."""
        report = self._report_for(run, status)
        if self.reports.put(report):
            log.info("job %s step %s ended %d:%d%s", run.job_id, run.step, report["exit_code"],
                     report["signal"], " (OOM)" if report["oom"] else "")
        write_durable(os.path.join(run.rundir, REPORTED_FILE), report["report_id"].encode(), 0o644)
        self._reports_changed.set()

    # ------------------------------------------------------------------ watching supervisors

    def _new_run(self, rec: JobRecord, step: str | int, rundir: str) -> Run:
        run = Run(rec.job_id, step, rundir, rec.restarts, asyncio.get_running_loop().create_future())
        rec.runs[run_key(step)] = run
        return run

    def _watch(self, run: Run) -> None:
        run.since = time.monotonic()
        run.next_check = run.since + LIVENESS_INTERVAL
        self.live[run.rundir] = run

    async def _watch_loop(self) -> None:
        while True:
            now = time.monotonic()
            for run in list(self.live.values()):
                try:
                    status = self._read_status(run.rundir)
                    if status is not None:
                        self._run_ended(run, status)
                    elif now >= run.next_check:
                        run.next_check = now + LIVENESS_INTERVAL
                        self._check_liveness(run, now)
                except Exception:
                    log.exception("watching %s failed", run.rundir)
            # Short polls keep job ends prompt; with many live jobs each poll costs more.
            await asyncio.sleep(max(POLL_INTERVAL, 0.00002 * len(self.live)))

    def _check_liveness(self, run: Run, now: float) -> None:
        if run.pid is None:
            run.pid = procs.read_supervisor_pid(run.rundir)
            if run.pid is not None or find_supervisors(run.rundir):
                return
            if now - run.since < START_GRACE:
                return
            status = failure_status("the supervisor never started")
        elif supervisor_alive(run.pid, run.rundir):
            return
        else:
            # It may have written its status just before exiting.
            status = self._read_status(run.rundir) or failure_status("the supervisor died", *SYNTHETIC_KILL)
        if status.synthetic:
            log.error("job %s step %s: %s; reporting %d:%d", run.job_id, run.step, status.error,
                      status.exit_code, status.signal)
            _kill_leftovers(run)
            _write_status(run.rundir, status)
        self._run_ended(run, status)

    def _run_ended(self, run: Run, status: RunStatus) -> None:
        if run.finished:
            return
        self._spool_report(run, status)
        run.status = status
        self.live.pop(run.rundir, None)
        if not run.done.done():
            run.done.set_result(status)
        rec = self.jobs.get(run.job_id)
        if rec is not None and run.step == BATCH:
            # Slurm: the job is over when its batch script ends; its steps end with it.
            self._mark_ended(rec)
            for other in rec.live_runs():
                self._spawn(self._control(other, CtlKill(kill_wait=self.kill_wait)), f"kill-steps-{rec.job_id}")

    def _mark_ended(self, rec: JobRecord) -> None:
        if rec.ended:
            return
        rec.ended = True
        with contextlib.suppress(OSError):
            write_durable(os.path.join(rec.directory, ENDED_FILE), b"", 0o644)

    async def _control(self, run: Run, op: Any) -> dict[str, Any]:
        """One control op (``spurcore.agentmsg.CONTROL_OPS``) to a run's supervisor
        ({"ok": False, "errno"} if unreachable)."""
        msg = agentmsg.control_request(op)
        deadline = time.monotonic() + START_GRACE
        while True:
            if run.finished:
                return {"ok": False, "errno": errno.ESRCH}
            try:
                reply = await asyncio.to_thread(procs.send_control, run.rundir, msg, 5.0)
                return reply if isinstance(reply, dict) else {"ok": False, "errno": errno.EIO}
            except (OSError, ValueError) as e:
                if run.finished or self._read_status(run.rundir) is not None:
                    return {"ok": False, "errno": errno.ESRCH}
                if isinstance(e, (FileNotFoundError, ConnectionRefusedError)) and time.monotonic() < deadline:
                    # A supervisor forked a moment ago has not bound its control socket yet:
                    # a kill must wait for it, never be dropped (the run ends or answers).
                    await asyncio.sleep(CONTROL_RETRY)
                    continue
                log.warning("control %s to %s failed: %s", msg.get("op"), run.rundir, e)
                return {"ok": False, "errno": getattr(e, "errno", None) or errno.EIO}

    # ------------------------------------------------------------------ restart / re-adoption

    def _recover(self) -> None:
        """Rebuild the job table from the spool and re-adopt every live supervisor."""
        for name in sorted(os.listdir(self.jobs_dir), key=lambda n: (len(n), n)):
            if not name.isdigit():
                continue
            directory = os.path.join(self.jobs_dir, name)
            try:
                with open(os.path.join(directory, JOB_FILE), "rb") as f:
                    saved = json.loads(f.read())
                info = agentmsg.launch_job(saved["info"])
                rec = JobRecord(int(name), info, str(saved["node"]), directory, int(saved.get("restarts", 0)))
            except (OSError, ValueError, KeyError, TypeError) as e:  # BadRequest is a ValueError
                if not _has_rundirs(directory):
                    log.warning("removing %s: interrupted start (%s)", directory, e)
                    shutil.rmtree(directory, ignore_errors=True)
                else:
                    log.error("cannot read %s: %s; leaving it alone", directory, e)
                continue
            rec.ended = os.path.exists(os.path.join(directory, ENDED_FILE))
            self.jobs[rec.job_id] = rec
            if not self._recover_runs(rec):
                log.warning("job %s: its start was interrupted; forgetting it so that it starts again",
                            rec.job_id)
                del self.jobs[rec.job_id]
                shutil.rmtree(directory, ignore_errors=True)
        adopted = sorted({r.job_id for r in self.live.values()})
        if adopted:
            log.info("re-adopted running jobs %s", adopted)

    def _recover_runs(self, rec: JobRecord) -> bool:
        """Re-adopt the rundirs of ``rec``; False if its batch script never started."""
        has_batch = False
        for sub in sorted(os.listdir(rec.directory)):
            rundir = os.path.join(rec.directory, sub)
            if sub == BATCH:
                step: str | int = BATCH
            elif sub.startswith("step_") and sub[5:].isdigit():
                step = int(sub[5:])
            else:
                continue
            if not os.path.isdir(rundir):
                continue
            status = self._read_status(rundir)
            pid = procs.read_supervisor_pid(rundir)
            if status is None and pid is None and not find_supervisors(rundir):
                if step == BATCH:
                    shutil.rmtree(rundir, ignore_errors=True)
                    continue  # never started: the leader will send the start again
                status = failure_status("the agent stopped before the step started")
                _write_status(rundir, status)
            has_batch = has_batch or step == BATCH
            run = self._new_run(rec, step, rundir)
            run.pid = pid
            if status is not None:
                run.status = status
                run.done.set_result(status)
                if not os.path.exists(os.path.join(rundir, REPORTED_FILE)):
                    self._spool_report(run, status)
                continue
            self._watch(run)  # a dead supervisor is noticed (and reported) by the watcher
            if pid is not None and not supervisor_alive(pid, rundir):
                run.next_check = 0.0
        return has_batch or not rec.is_batch_host

    def _prune_jobs(self) -> None:
        now = time.time()
        for rec in list(self.jobs.values()):
            if not rec.ended or rec.live_runs():
                continue
            if any(report_id(self.name, r.job_id, r.step, r.restarts) in self.reports for r in rec.runs.values()):
                continue
            try:
                age = now - os.stat(os.path.join(rec.directory, ENDED_FILE)).st_mtime
            except OSError:
                continue
            if age > JOB_DIR_TTL:
                shutil.rmtree(rec.directory, ignore_errors=True)
                self.jobs.pop(rec.job_id, None)
                self._locks.pop(rec.job_id, None)

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            self._prune_jobs()
            self.actions.prune(ACK_TTL)

    # ------------------------------------------------------------------ starts

    async def _on_start(self, msg: StartJob) -> None:
        info = msg.job
        if msg.node != self.name:
            log.error("start of job %s for node %s received by %s: ignored", info.job_id, msg.node, self.name)
            return
        job_id = info.job_id
        restarts = info.restarts
        async with self._lock(job_id):
            rec = self.jobs.get(job_id)
            if rec is not None and rec.restarts > restarts:
                log.info("stale start of job %s (run %d, known run %d): ignored", job_id, restarts, rec.restarts)
                return
            if rec is not None and rec.restarts < restarts:
                await self._retire(rec)
                rec = None
            if rec is None:
                await self._launch(info, restarts)
        await self._call_current("launched", {"job_id": job_id, "node": self.name})

    async def _retire(self, rec: JobRecord) -> None:
        """A requeued job starts again: end what is left of its previous run here."""
        log.info("job %s was requeued: retiring run %d", rec.job_id, rec.restarts)
        for run in rec.live_runs():
            await self._control(run, CtlKill(kill_wait=0))
        await asyncio.gather(*(asyncio.shield(r.done) for r in rec.runs.values()))
        self.jobs.pop(rec.job_id, None)
        await asyncio.to_thread(shutil.rmtree, rec.directory, True)

    async def _launch(self, info: LaunchJob, restarts: int) -> None:
        job_id = info.job_id
        directory = os.path.join(self.jobs_dir, str(job_id))
        os.makedirs(directory, mode=0o755, exist_ok=True)
        os.chmod(directory, 0o755)
        rec = JobRecord(job_id, info, self.name, directory, restarts)
        write_durable(os.path.join(directory, JOB_FILE),
                      json.dumps({"info": unstructure(info), "node": self.name, "restarts": restarts}).encode())
        self.jobs[job_id] = rec
        if not rec.is_batch_host:
            log.info("job %s: allocation recorded", job_id)
            return
        try:
            spec = self._batch_spec(rec)
        except Exception as e:  # the job must end with a report, never hang in RUNNING
            log.exception("job %s: cannot prepare the batch script", job_id)
            self._failed_run(rec, BATCH, f"cannot prepare the batch script: {e}")
            return
        await self._start_run(rec, BATCH, spec)

    def _batch_spec(self, rec: JobRecord) -> SupervisorSpec:
        """Write the script (owned by the user, mode 0700) and return the batch spec.json."""
        info = rec.info
        script = info.script or ""
        script_path = os.path.join(rec.directory, SCRIPT_FILE)
        fd = os.open(script_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o700)
        try:
            view = memoryview(script.encode())
            while view:
                view = view[os.write(fd, view):]
            if self.is_root:
                os.fchown(fd, rec.uid, rec.gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        argv = script_argv(script_path, script, list(info.argv))
        devices = self._confine_devices(rec)
        if devices:
            argv = devices_mod.wrap(devices, argv, self.python)
        return SupervisorSpec(
            job_id=rec.job_id,
            step=BATCH,
            argv=tuple(argv),
            cwd=info.cwd or info.work_dir or "/",
            env=batch_env(info, self.name, cluster=self.config.name, config_path=self.config.path,
                          agent_socket=self.socket_path, python=self.python, devices_constrained=bool(devices)),
            uid=rec.uid,
            gid=rec.gid,
            stdout=info.stdout or None,
            stderr=info.stderr or None,
            stdin=info.stdin or "/dev/null",
            # --open-mode, else Slurm's default: truncate, but append for a requeued run
            open_mode=info.open_mode or ("append" if rec.restarts else "truncate"),
            kill_wait=self.kill_wait,
            suspend_grace=self.suspend_grace,
            mem_limit_mb=info.mem_per_node or info.mem_mb,
            cgroup_root=self.cgroup_root,
            **self._fencing(),
        )

    def _confine_devices(self, rec: JobRecord) -> str | None:
        """The devices cgroup denying this node's GPUs the job was not given (None: no
        isolation here; see spurd.devices)."""
        info = rec.info
        every = info.gres_node_files.get(self.name, {}).get("gpu", ())
        mine = set(info.gres_files.get(self.name, {}).get("gpu", ()))
        deny = [f for f in every if f not in mine]
        if not deny:
            return None
        return devices_mod.confine(self.cgroup_root, rec.job_id, deny, rec.uid, set(self.jobs))

    def _failed_run(self, rec: JobRecord, step: str | int, error: str, exit_code: int = 1, sig: int = 0) -> Run:
        """A run that could not be started: it ends at once with exit code 1 (and is reported)."""
        rundir = os.path.join(rec.directory, run_key(step))
        os.makedirs(rundir, mode=0o700, exist_ok=True)
        _write_status(rundir, failure_status(error, exit_code, sig))
        run = self._new_run(rec, step, rundir)
        self._watch(run)
        return run

    async def _start_run(self, rec: JobRecord, step: str | int, spec: SupervisorSpec,
                         client: int | None = None) -> Run:
        rundir = os.path.join(rec.directory, run_key(step))
        try:
            raw = unstructure(spec)
            structure(SupervisorSpec, raw)  # what the supervisor will accept, checked here
        except BadRequest as e:
            log.error("job %s step %s: bad spec: %s", rec.job_id, step, e)
            return self._failed_run(rec, step, f"bad {procs.SPEC_FILE}: {e}")
        try:
            os.makedirs(rundir, mode=0o700, exist_ok=False)
            write_durable(os.path.join(rundir, procs.SPEC_FILE), json.dumps(raw).encode())
        except OSError as e:
            log.error("job %s step %s: cannot create %s: %s", rec.job_id, step, rundir, e)
            return self._failed_run(rec, step, f"cannot create the run directory: {e}")
        run = self._new_run(rec, step, rundir)
        try:
            run.pid = await asyncio.to_thread(procs.start_supervisor, rundir, self.python, (), client=client)
            log.info("job %s step %s started: supervisor %s", rec.job_id, step, run.pid or "forked")
        except (procs.SupervisorStartError, OSError) as e:
            if not find_supervisors(rundir) and self._read_status(rundir) is None:
                log.error("job %s step %s: cannot start the supervisor: %s", rec.job_id, step, e)
                _write_status(rundir, failure_status(f"cannot start the supervisor: {e}"))
            # else: it is only slow; the watcher picks up its pid or its status.
        self._watch(run)
        return run

    # ------------------------------------------------------------------ srun, sattach, sstat

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(lsock)
            except OSError as e:
                log.warning("accept on %s failed: %s", self.socket_path, e)
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._serve_step_client(client), "step_client")

    def _listen_tls(self) -> socket.socket:
        """Bind the TLS step endpoint and start the relays' zygote (spurd.steprelay).
        Raises OSError (or ssl.SSLError) on a bad address or unusable certificates."""
        from spurd.steprelay import Spawner
        from spurio.rpc import server_ssl_context

        host, port = stepserver.split_host_port(self.rpc)
        cert = os.environ.get("SPUR_CERT") or self.config.tls_cert
        key = os.environ.get("SPUR_KEY") or self.config.tls_key
        ca = self.config.tls_ca
        if not (cert and key and ca):
            raise OSError(f"the TLS step endpoint {self.rpc} needs [tls] ca, cert and key")
        server_ssl_context(cert, key, ca)  # fail here, not in every relay
        wildcard = host in ("", "0.0.0.0", "::", "*")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        bind_host = "" if wildcard else host
        lsock = socket.create_server((bind_host, port), family=family, backlog=128)
        lsock.setblocking(False)
        advertised = socket.gethostname() if wildcard else host
        bound = lsock.getsockname()[1]
        self.rpc_endpoint = f"[{advertised}]:{bound}" if ":" in advertised else f"{advertised}:{bound}"
        self._relays = Spawner(os.path.abspath(cert), os.path.abspath(key), os.path.abspath(ca), self.socket_path,
                               self.python)
        self._relays.start()
        return lsock

    async def _accept_tls_loop(self, lsock: socket.socket) -> None:
        """TCP connections on the TLS endpoint go to a relay each (spurd.steprelay), which
        authenticates the client and brings its request to the Unix socket above."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(lsock)
            except OSError as e:
                log.warning("accept on %s failed: %s", self.rpc_endpoint, e)
                await asyncio.sleep(0.1)
                continue
            with client:
                if not await self._in_step_thread(self._relays.spawn, client):
                    log.error("no relay for a TLS client: the relay zygote does not start")

    async def _serve_step_client(self, client: socket.socket) -> None:
        """One request per connection. A launch or an attach hands the connection over to
        the step's supervisor: the agent answers only errors (stepserver's docstring)."""
        with client:
            try:
                request = await self._in_step_thread(stepserver.recv_request, client)
            except stepserver.StepProtocolError as e:
                log.warning("bad step request: %s", e)
                if e.code != "connection_failed":
                    await self._in_step_thread(stepserver.send_reply, client, e.msgid or 0,
                                               {"code": e.code, "message": e.message}, None)
                return
            handler = {"launch_tasks": self._launch_tasks, "attach_step": self._attach_step,
                       "step_stat": self._step_stat}.get(request.method)
            error: dict[str, str] | None = None
            result: Any = None
            try:
                if handler is None:
                    raise RpcError("unknown_method", f"unknown method: {request.method[:64]!r} (methods: "
                                                     f"{', '.join(agentmsg.STEP_REQUESTS)})")
                try:
                    msg = agentmsg.step_request(request.method, request.params)
                except BadRequest as e:
                    raise RpcError("bad_request", f"{request.method}: {e}") from None
                result = await handler(request, msg, client)
            except RpcError as e:
                error = e.to_wire()
            except Exception as e:
                log.exception("%s failed", request.method)
                error = {"code": "internal", "message": f"{type(e).__name__}: {e}"}
            if result is HANDED_OVER:
                return
            await self._in_step_thread(stepserver.send_reply, client, request.msgid, error, result)

    async def _in_step_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._step_io, fn, *args)

    async def _step_job(self, request: stepserver.StepRequest,
                        msg: LaunchTasks | AttachStep | StepStat) -> tuple[JobRecord, int]:
        """The job and step a step request names, with the caller's right to them."""
        rec = await self._wait_for_job(msg.job_id)
        if rec is None:
            raise RpcError("invalid_job", "Invalid job id specified")
        tls_peer = unstructure(msg.tls_peer) if msg.tls_peer is not None else None
        if not stepserver.step_access(request.peer_uid, tls_peer, job_uid=rec.uid, own_uid=os.getuid(),
                                      node=self.name, uid_of=_uid_of):
            raise RpcError("permission_denied", "Access/permission denied")
        return rec, msg.step_id

    async def _launch_tasks(self, request: stepserver.StepRequest, msg: LaunchTasks, client: socket.socket) -> Any:
        rec, step_id = await self._step_job(request, msg)
        async with self._lock(rec.job_id):
            if rec.ended:
                raise RpcError("already_done", "Job/step already completing or completed")
            if run_key(step_id) in rec.runs:
                if rec.runs[run_key(step_id)].finished:
                    raise RpcError("already_done", "Job/step already completing or completed")
                raise RpcError("already_launched", f"Step {rec.job_id}.{step_id} was already launched here")
            spec = self._step_spec(rec, msg, request.msgid)
            run = await self._start_run(rec, step_id, spec, client=client.fileno())
        status = self._read_status(run.rundir)
        if status is not None and status.error:  # the supervisor never took the connection
            raise RpcError("launch_failed", status.error)
        return HANDED_OVER

    def _step_spec(self, rec: JobRecord, msg: LaunchTasks, msgid: int) -> SupervisorSpec:
        """spec.json of this node's part of an srun step: the step's environment from srun
        plus this node's variables (slurmstepd's part of Slurm's task environment)."""
        env = dict(msg.env)
        step_id, tasks, nodeid = msg.step_id, msg.tasks, msg.nodeid
        env.update({
            "SLURM_JOB_ID": str(rec.job_id),
            "SLURM_JOBID": str(rec.job_id),
            "SLURM_STEP_ID": str(step_id),
            "SLURM_STEPID": str(step_id),
            "SLURMD_NODENAME": self.name,
            "SLURM_NODEID": str(nodeid),
            "SLURM_GTIDS": ",".join(str(t) for t in tasks),
            "SLURM_CPUS_ON_NODE": str(msg.cpus_on_node or len(tasks)),
            "SPUR_CONF": self.config.path,
            "SPURD_SOCKET": self.socket_path,
        })
        return SupervisorSpec(
            job_id=rec.job_id,
            step=step_id,
            argv=msg.argv,
            cwd=msg.cwd or rec.info.cwd or "/",
            env=env,
            uid=rec.uid,
            gid=rec.gid,
            tasks=tasks,
            task_env=True,
            io=msg.io,
            pmi=msg.pmi,
            node_name=self.name,
            nodeid=nodeid,
            launch_msgid=msgid,
            open_mode=msg.open_mode or "truncate",
            usage_interval=max(0.1, msg.usage_interval or self.usage_interval),
            kill_wait=self.kill_wait,
            suspend_grace=self.suspend_grace,
            mem_limit_mb=rec.info.mem_per_node or rec.info.mem_mb,
            cgroup_root=self.cgroup_root,
            **self._fencing(),
        )

    async def _attach_step(self, request: stepserver.StepRequest, msg: AttachStep, client: socket.socket) -> Any:
        rec, step_id = await self._step_job(request, msg)
        run = rec.runs.get(run_key(step_id))
        if run is None or run.finished:
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} is not running here")
        try:
            reply = await asyncio.to_thread(procs.send_control, run.rundir,
                                            agentmsg.control_request(CtlAttach(msgid=request.msgid)), 5.0,
                                            [client.fileno()])
        except (OSError, ValueError) as e:
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} is not running here: {e}") from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} does not relay its I/O")
        return HANDED_OVER

    async def _step_stat(self, request: stepserver.StepRequest, msg: StepStat, client: socket.socket) -> Any:
        rec, step_id = await self._step_job(request, msg)
        run = rec.runs.get(run_key(step_id))
        if run is None or run.finished:
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} is not running here")
        reply = await self._control(run, CtlStat())
        if not reply.get("ok"):
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} is not running here")
        return {"node": self.name, "usage": reply.get("usage") or {}, "pids": reply.get("pids") or []}

    async def _wait_for_job(self, job_id: int) -> JobRecord | None:
        deadline = time.monotonic() + JOB_WAIT
        while True:
            rec = self.jobs.get(job_id)
            if rec is not None or time.monotonic() >= deadline:
                return rec
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ actions

    async def _on_action(self, msg: JobAction) -> None:
        action_id = msg.action_id
        ack = self.actions.get(action_id)
        if ack is None:
            if action_id in self._inflight_actions:
                return  # still being carried out; that task sends the ACK
            self._inflight_actions.add(action_id)
            try:
                try:
                    status, err = await self._carry_out(msg)
                except Exception:
                    log.exception("action %s failed", action_id)
                    status, err = 1, errno.EIO
                ack = {"action_id": action_id, "node": self.name, "status": status, "errno": err}
                self.actions.put(action_id, ack)
            finally:
                self._inflight_actions.discard(action_id)
        await self._call_current("ack", ack)

    async def _carry_out(self, msg: JobAction) -> tuple[int, int]:
        kind, job_id, step_id = msg.kind, msg.job_id, msg.step_id
        kill_wait = self.kill_wait if msg.kill_wait is None else msg.kill_wait
        rec = self.jobs.get(job_id)
        log.info("action %s: kind %s job %s step %s", msg.action_id, kind, job_id, step_id)
        if rec is None:
            return 0, 0  # unknown here: nothing runs, so a KILL is done and anything else moot
        if kind == ActionKind.KILL:
            async with self._lock(job_id):
                if step_id >= 0:
                    if run_key(step_id) not in rec.runs:
                        # Killed before srun's launch reached this node (Slurm revokes the
                        # step's credential): a late launch is refused, and this node's part
                        # ends killed, so that the step can end.
                        self._failed_run(rec, step_id, "the step was killed before it was launched here",
                                         *SYNTHETIC_KILL)
                    runs = [r for r in (rec.runs.get(run_key(step_id)),) if r is not None]
                else:
                    self._mark_ended(rec)
                    runs = list(rec.runs.values())
                for run in runs:
                    if not run.finished:
                        notice = kill_notice(msg, run, self.name)
                        await self._control(run, CtlKill(kill_wait=kill_wait, notice=notice or None, why=msg.why))
            await asyncio.gather(*(asyncio.shield(r.done) for r in runs))
            await self._wait_delivered([report_id(self.name, r.job_id, r.step, r.restarts) for r in runs])
            return 0, 0
        async with self._lock(job_id):
            step_runs = [r for k, r in rec.runs.items() if k != BATCH and not r.finished]
            batch = rec.runs.get(BATCH)
            batch_runs = [batch] if batch is not None and not batch.finished else []
            if kind in (ActionKind.STOP, ActionKind.CONT):
                op = CtlSuspend() if kind == ActionKind.STOP else CtlResume()
                replies = [await self._control(r, op) for r in batch_runs + step_runs]
            elif kind == ActionKind.SIGNAL:
                sig, target = msg.signal, msg.target
                if step_id >= 0:
                    targets = [(r, "full") for r in step_runs if r.step == step_id]
                elif target == SignalTarget.BATCH:
                    targets = [(r, "batch") for r in batch_runs]
                elif target == SignalTarget.FULL:
                    targets = [(r, "full") for r in batch_runs + step_runs]
                else:
                    targets = [(r, "full") for r in step_runs]
                replies = [await self._control(r, CtlSignal(sig=sig, target=t)) for r, t in targets]
            else:
                return 1, errno.EINVAL
        for reply in replies:
            err = int(reply.get("errno") or 0)
            if not reply.get("ok") and err != errno.ESRCH:  # ESRCH: it ended meanwhile, nothing to do
                return 1, err or errno.EIO
        return 0, 0

    async def _on_kill(self, msg: KillJob) -> None:
        job_id = msg.job_id
        rec = self.jobs.get(job_id)
        if rec is None:
            return
        log.info("job %s is unknown to the controller: killing it", job_id)
        async with self._lock(job_id):
            self._mark_ended(rec)
            for run in rec.live_runs():
                await self._control(run, CtlKill(kill_wait=self.kill_wait))


# ---------------------------------------------------------------------------- helpers


def _uid_of(user: str) -> int | None:
    """The uid of a TLS certificate's CN on this node (None: no such user)."""
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def read_run_status(rundir: str) -> RunStatus | None:
    """A rundir's ``status.json`` (None while the run has none). Raises BadRequest (naming
    the field) for one that does not fit ``RunStatus``, ValueError for one that is not JSON."""
    try:
        raw = procs.read_status(rundir)
    except OSError:
        return None
    return None if raw is None else structure(RunStatus, raw)


def _write_status(rundir: str, status: RunStatus) -> None:
    procs.write_atomic(os.path.join(rundir, procs.STATUS_FILE), json.dumps(unstructure(status)).encode())


def _has_rundirs(directory: str) -> bool:
    try:
        return any(os.path.isdir(os.path.join(directory, n)) for n in os.listdir(directory))
    except OSError:
        return False


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


def _kill_leftovers(run: Run) -> None:
    """Best effort after a supervisor died: SIGKILL what is left in the step's cgroup
    (its path is in the ``cgroup.json`` the supervisor wrote)."""
    try:
        with open(os.path.join(run.rundir, "cgroup.json"), "rb") as f:
            desc = json.loads(f.read())
    except (OSError, ValueError):
        return
    dirs = [d for d in (desc.get("track"), desc.get("memory")) if isinstance(d, str) and d]
    if not dirs:
        return
    track = dirs[0]
    if desc.get("version") == 2:
        with contextlib.suppress(OSError), open(os.path.join(track, "cgroup.kill"), "w") as f:
            f.write("1")
    for _ in range(20):
        try:
            with open(os.path.join(track, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            break
        if not pids:
            break
        procs.signal_all(pids, 9)
        time.sleep(0.01)
    for d in reversed(dirs):
        with contextlib.suppress(OSError):
            os.rmdir(d)
