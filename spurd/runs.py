"""Runs: one supervised process tree per batch script or srun step on this node, and the
job records they belong to; starting them, watching them end, re-adopting them after a
restart.

Invariants:
- The agent never owns a job's processes: every run is a supervisor
  (``spurd.supervisor``) detached into its own session, so the agent may stop, crash or be
  ``kill -9``ed at any moment; a restarted agent re-adopts every live supervisor from the
  rundirs under ``<spool>/jobs/`` (``_recover``), identified by ``supervisor.pid`` and
  ``/proc/<pid>/cmdline`` naming the rundir (pid reuse safe).
- A run ends when its ``status.json`` appears; its report is then spooled (``Reports``)
  before anything else. A supervisor that vanished without writing ``status.json`` (it
  was SIGKILLed; its job died with it through PDEATHSIG=SIGKILL) is reported as killed by
  SIGKILL, ``(0, 9)``; the agent writes that status into the rundir itself
  (``"synthetic": true``) so that a restart reports the same thing.

Rundir life cycle (``<spool>/jobs/<id>/batch`` or ``.../step_<n>``): ``spec.json`` written
by the agent, ``supervisor.pid`` and finally ``status.json`` by the supervisor, then the
``reported`` marker by the agent once the report is spooled.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from spurcore import agentmsg
from spurcore.agentmsg import CtlKill, LaunchJob, RunStatus, SupervisorSpec
from spurcore.exitcodes import raw_status
from spurcore.schema import BadRequest
from spurd import proccontrol, procs
from spurd.spool import write_replace
from spurio.fs import fsync_paths

log = logging.getLogger("spurd")


POLL_INTERVAL = 0.005  # status.json polling of live rundirs (longer with many live jobs)
LIVENESS_INTERVAL = 0.5  # how often a live supervisor's pid is checked
CONTROL_RETRY = 0.01  # while a new supervisor binds its control socket
START_GRACE = 15.0  # a rundir may lack supervisor.pid this long while its supervisor starts
JOB_DIR_TTL = 24 * 3600.0  # finished job directories are pruned after this
SYNTHETIC_KILL = (0, 9)  # status of a supervisor that died without writing one
JOB_FILE = "job.json"
ENDED_FILE = "ended"
REPORTED_FILE = "reported"
BATCH = "batch"


def report_id(node: str, job_id: int, step: str | int, restarts: int = 0) -> str:
    """``node:job:step``; a requeued job's later runs add ``:r<restarts>`` so that their
    reports are not taken for duplicates of the first run's."""
    base = f"{node}:{job_id}:{step}"
    return f"{base}:r{restarts}" if restarts else base


def run_key(step: str | int) -> str:
    return BATCH if step == BATCH else f"step_{int(step)}"


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


def failure_status(error: str, exit_code: int = 1, signal: int = 0) -> RunStatus:
    return RunStatus(wait_status=raw_status(exit_code, signal), exit_code=exit_code, signal=signal,
                     ended_at=time.time(), error=error, synthetic=True)


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
    notified: bool = False  # its end is heard on a descriptor (_notify_end): no status polling

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
    unsynced: list[str] = field(default_factory=list)  # written, to be fsynced before "launched"

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


def _has_rundirs(directory: str) -> bool:
    try:
        return any(os.path.isdir(os.path.join(directory, n)) for n in os.listdir(directory))
    except OSError:
        return False


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


class Runs:
    """The agent's runs (a part of :class:`spurd.agent.Agent`): the job table (``jobs``), the
    live runs (``live``: rundir -> run), their supervisors' control sockets (``_control``).
    """

    jobs: dict[int, JobRecord]
    live: dict[str, Run]
    _watch_wake: asyncio.Event
    jobs_dir: str

    def _read_status(self, rundir: str) -> RunStatus | None:
        """A run's final status; one that cannot be read counts as none (logged once): the
        run is then watched until its supervisor is gone, and reported as killed."""
        try:
            return proccontrol.read_status(rundir)
        except BadRequest as e:
            self._refuse(f"{rundir}/{procs.STATUS_FILE}", e)
        except ValueError as e:
            self._refuse(f"{rundir}/{procs.STATUS_FILE}", BadRequest("status", f"expected JSON ({e})"))
        return None

    def _new_run(self, rec: JobRecord, step: str | int, rundir: str) -> Run:
        run = Run(rec.job_id, step, rundir, rec.restarts, asyncio.get_running_loop().create_future())
        rec.runs[run_key(step)] = run
        return run

    def _watch(self, run: Run) -> None:
        run.since = time.monotonic()
        run.next_check = run.since + LIVENESS_INTERVAL
        self.live[run.rundir] = run
        self._watch_wake.set()

    def _notify_end(self, run: Run, fd: int) -> None:
        """Hear the step's end at once: ``fd`` (ours to close) turns readable once its
        status.json is written: the end pipe from the zygote, or a pidfd of a supervisor
        that exits after writing it. The watcher's polling stays the fallback (and the only
        way for runs re-adopted after a restart)."""
        loop = asyncio.get_running_loop()

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            run.notified = False  # from now on the watcher polls it, as any other
            if run.finished:
                return
            try:
                status = self._read_status(run.rundir)
            except Exception:
                log.exception("watching %s failed", run.rundir)
                return
            if status is not None:
                self._run_ended(run, status)
            else:
                run.next_check = 0.0  # gone without a status: the liveness check reports it
                self._watch_wake.set()

        loop.add_reader(fd, exited)
        run.notified = True

    async def _watch_loop(self) -> None:
        """Poll the status.json of every live run whose end is not heard on a descriptor
        (re-adopted after a restart, or started without one) every POLL_INTERVAL, and check
        each live run's supervisor every LIVENESS_INTERVAL; asleep when neither is due."""
        while True:
            self._watch_wake.clear()
            now = time.monotonic()
            polled = False
            wake = now + LIVENESS_INTERVAL
            for run in list(self.live.values()):
                try:
                    status = None if run.notified and now < run.next_check else self._read_status(run.rundir)
                    if status is not None:
                        self._run_ended(run, status)
                        continue
                    if now >= run.next_check:
                        run.next_check = now + LIVENESS_INTERVAL
                        self._check_liveness(run, now)
                    polled = polled or not run.notified
                    wake = min(wake, run.next_check)
                except Exception:
                    log.exception("watching %s failed", run.rundir)
            if polled:  # short polls keep job ends prompt; with many live jobs each costs more
                await asyncio.sleep(max(POLL_INTERVAL, 0.00002 * len(self.live)))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._watch_wake.wait(), max(0.0, wake - now))

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
            proccontrol.write_status(run.rundir, status)
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
            # not fsynced: after a power cut nothing of the job runs here any more
            write_replace(os.path.join(rec.directory, ENDED_FILE), b"", 0o644)

    async def _control(self, run: Run, op: Any) -> dict[str, Any]:
        """One control op (``spurcore.agentmsg.CONTROL_OPS``) to a run's supervisor
        ({"ok": False, "errno"} if unreachable)."""
        deadline = time.monotonic() + START_GRACE
        while True:
            if run.finished:
                return {"ok": False, "errno": errno.ESRCH}
            try:
                return await proccontrol.control_async(run.rundir, op, 5.0)
            except (OSError, ValueError) as e:
                if run.finished or self._read_status(run.rundir) is not None:
                    return {"ok": False, "errno": errno.ESRCH}
                if isinstance(e, (FileNotFoundError, ConnectionRefusedError)) and time.monotonic() < deadline:
                    # A supervisor forked a moment ago has not bound its control socket yet:
                    # a kill must wait for it, never be dropped (the run ends or answers).
                    await asyncio.sleep(CONTROL_RETRY)
                    continue
                log.warning("control %s to %s failed: %s", op.OP, run.rundir, e)
                return {"ok": False, "errno": getattr(e, "errno", None) or errno.EIO}

    async def _start_run(self, rec: JobRecord, step: str | int, spec: SupervisorSpec,
                         client: int | None = None, unsynced: list[str] | None = None,
                         defer_sync: bool = False) -> Run:
        """Start a supervisor for ``rundir``; returns once it is forked and the run's files
        (and ``unsynced``) are durable: the fsyncs come after the fork, off the loop.
        ``defer_sync``: leave them in ``rec.unsynced`` instead, for whoever needs them
        durable first (a batch job's "launched"; a job that ends sooner never does)."""
        rundir = os.path.join(rec.directory, run_key(step))
        try:
            unsynced = [*(unsynced or ()), *proccontrol.write_spec(rundir, spec)]  # checked first
        except BadRequest as e:
            log.error("job %s step %s: bad spec: %s", rec.job_id, step, e)
            return self._failed_run(rec, step, f"bad {procs.SPEC_FILE}: {e}")
        except OSError as e:
            log.error("job %s step %s: cannot create %s: %s", rec.job_id, step, rundir, e)
            return self._failed_run(rec, step, f"cannot create the run directory: {e}")
        run = self._new_run(rec, step, rundir)
        try:
            pid, end = await procs.start_through_zygote(rundir, client)
            if not pid:  # no zygote, or it failed: the launcher (blocking: in a thread)
                pid, end = await asyncio.to_thread(proccontrol.start, rundir, self.python, client, False)
            log.info("job %s step %s started: supervisor %s", rec.job_id, step, pid or "forked")
            # run.pid stays unset: the watcher takes it from supervisor.pid, written once the
            # supervisor is in its rundir (which is how supervisor_alive tells it is ours).
            if end is not None:
                self._notify_end(run, end)
            elif pid:
                with contextlib.suppress(OSError):
                    self._notify_end(run, os.pidfd_open(pid))
        except (procs.SupervisorStartError, OSError) as e:
            if not find_supervisors(rundir) and self._read_status(rundir) is None:
                log.error("job %s step %s: cannot start the supervisor: %s", rec.job_id, step, e)
                proccontrol.write_status(rundir, failure_status(f"cannot start the supervisor: {e}"))
            # else: it is only slow; the watcher picks up its pid or its status.
        self._watch(run)
        if defer_sync:
            rec.unsynced += unsynced
        else:
            await self._sync(unsynced)
        return run

    async def _sync(self, paths: list[str]) -> None:
        try:
            await asyncio.to_thread(fsync_paths, paths)
        except OSError as e:  # the files are in place; only their durability is in doubt
            log.warning("cannot fsync %s: %s", paths[0], e)

    def _failed_run(self, rec: JobRecord, step: str | int, error: str, exit_code: int = 1, sig: int = 0) -> Run:
        """A run that could not be started: it ends at once with exit code 1 (and is reported)."""
        rundir = os.path.join(rec.directory, run_key(step))
        os.makedirs(rundir, mode=0o700, exist_ok=True)
        proccontrol.write_status(rundir, failure_status(error, exit_code, sig))
        run = self._new_run(rec, step, rundir)
        self._watch(run)
        return run

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
                proccontrol.write_status(rundir, status)
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
