"""What the controller asks of this node: starts, actions (KILL, STOP, CONT, SIGNAL) and
reconciliation kills.

Invariants (DESIGN.md 1.5, idempotence):
- A start is keyed by (job id, requeue count): a job already known here (running or
  finished, as recorded in the spool) is never started again, a stale start of an earlier
  run is ignored, and a newer run first retires the old one.
- An action is keyed by its id and its ACK is stored durably
  (``<spool>/actions/<id>.json``) before it is sent, so a repeat is answered with the same
  ACK and nothing is done twice.
- A KILL is ACKed only after every supervisor it involved has written its final status and
  the resulting report has been answered by the controller, so the controller sees
  JobNodeComplete / JobStepComplete before ActionAcked. How a supervisor ends its step is
  ``spurcore.killplan``'s.
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

from spurcore import killplan
from spurcore.agentmsg import (
    CtlKill,
    CtlResume,
    CtlSignal,
    CtlSuspend,
    JobAction,
    KillJob,
    LaunchJob,
    StartJob,
    SupervisorSpec,
)
from spurcore.ops import ActionKind, SignalTarget
from spurcore.schema import unstructure
from spurd import devices as devices_mod
from spurd.env import batch_env, script_argv
from spurd.runs import BATCH, JOB_FILE, SYNTHETIC_KILL, JobRecord, Run, find_supervisors, report_id, run_key
from spurd.spool import ActionStore, write_replace

log = logging.getLogger("spurd")


SCRIPT_FILE = "script"
#: How long a batch host holds back "launched": a job that ends sooner has its report
#: (JobNodeComplete, which clears the start intent too) stand for it, one replicated entry
#: instead of two. The leader sends a start again only after RESEND_AFTER (5 s).
LAUNCH_ACK_DELAY = 0.25


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


class Actions:
    """Starts and actions (a part of :class:`spurd.agent.Agent`)."""

    actions: ActionStore
    _inflight_actions: set[int]

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
        rec = self.jobs.get(job_id)
        run = rec.runs.get(BATCH) if rec is not None else None
        if run is not None and not run.finished:
            # A short job ends within LAUNCH_ACK_DELAY: its report then says "launched" too.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.done), LAUNCH_ACK_DELAY)
        if self._report_pending(rec):
            # The job already ended here and its report waits in the spool: the report
            # (JobNodeComplete) clears the start intent as "launched" would, in the same
            # round trip. (Once delivered, a start sent again is answered "launched".)
            return
        if rec is not None and rec.unsynced:
            # The job's files, durable before "launched" ends the start intent. A job that
            # ended sooner never needs them: its report, durable in the spool, ends it.
            paths, rec.unsynced = rec.unsynced, []
            await self._sync(paths)
        await self._call_current("launched", {"job_id": job_id, "node": self.name})

    def _report_pending(self, rec: JobRecord | None) -> bool:
        run = rec.runs.get(BATCH) if rec is not None else None
        return run is not None and run.finished and \
            report_id(self.name, run.job_id, run.step, run.restarts) in self.reports

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
        if os.path.isdir(directory):
            self._clear_leftover(job_id, directory)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        os.chmod(directory, 0o755)
        rec = JobRecord(job_id, info, self.name, directory, restarts)
        # Durable before "launched" (which ends the start intent: until then a start lost in
        # a power cut is sent again). Synced off the loop: on a batch host only when
        # "launched" is sent (_on_start), which a job shorter than LAUNCH_ACK_DELAY never
        # needs; its report does the same, from the durable spool.
        job_file = os.path.join(directory, JOB_FILE)
        write_replace(job_file, json.dumps({"info": unstructure(info), "node": self.name, "restarts": restarts}).encode())
        unsynced = [job_file, directory, self.jobs_dir]
        self.jobs[job_id] = rec
        if not rec.is_batch_host:
            await self._sync(unsynced)
            log.info("job %s: allocation recorded", job_id)
            return
        try:
            spec = self._batch_spec(rec)
        except Exception as e:  # the job must end with a report, never hang in RUNNING
            log.exception("job %s: cannot prepare the batch script", job_id)
            self._failed_run(rec, BATCH, f"cannot prepare the batch script: {e}")
            return
        await self._start_run(rec, BATCH, spec, unsynced=unsynced, defer_sync=True)

    def _clear_leftover(self, job_id: int, directory: str) -> None:
        """The directory of a job no record holds: the remains of a start whose job.json
        did not survive a power cut (recovery leaves such a directory alone). Removed, so
        that the start sent again begins afresh, as after a node failure; left alone if a
        supervisor still runs in it."""
        with contextlib.suppress(OSError):
            for sub in os.listdir(directory):
                rundir = os.path.join(directory, sub)
                if os.path.isdir(rundir) and find_supervisors(rundir):
                    log.error("job %s: a supervisor of an earlier start still runs in %s", job_id, rundir)
                    return
        log.warning("job %s: removing the remains of an interrupted start in %s", job_id, directory)
        shutil.rmtree(directory, ignore_errors=True)

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
            usage_interval=self.usage_interval,  # the batch step is sampled as srun's are
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
                    runs = list(rec.runs.values())
                for run in runs:
                    if not run.finished:
                        notice = kill_notice(msg, run, self.name)
                        await self._control(run, CtlKill(kill_wait=kill_wait, notice=notice or None, why=msg.why))
                if step_id < 0:
                    self._mark_ended(rec)  # after the kills are on their way (the job's lock is held)
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
