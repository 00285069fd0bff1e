"""Completion reports: persist, then send (DESIGN.md 1.6).

Invariants:
- A report is in the durable spool (``spurd.spool.ReportSpool``) before it is sent, and
  leaves it only when the controller has answered it (``committed`` or ``rejected``: both
  final); the controller ignores duplicates, so delivery is at-least-once and application
  exactly-once.
- After every (re)connect the spool is flushed, in order, BEFORE any start or action
  received on that connection is handled (``spurd.session``).
- A KILL is ACKed only once the reports of the runs it ended are delivered
  (``_wait_delivered``), so the controller sees JobNodeComplete / JobStepComplete first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from spurcore.agentmsg import RunStatus
from spurd.runs import BATCH, REPORTED_FILE, Run, report_id
from spurd.session import BACKOFF_MIN, LEADERSHIP_ERRORS, RPC_TIMEOUT
from spurd.spool import ReportSpool, write_replace
from spurio.rpc import ConnectionFailed, RpcConnection, RpcError, RpcTimeout

log = logging.getLogger("spurd")



class Reports:
    """Report spooling and delivery (a part of :class:`spurd.agent.Agent`)."""

    reports: ReportSpool
    _reported_marks: dict[str, str]  # report id -> rundir, marked reported once durable
    _reports_changed: asyncio.Event
    _delivered: asyncio.Condition

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
        """Spool the report of a finished run (made durable by the sender, off the loop,
        before it is sent); the rundir is marked reported once it is durable."""
        report = self._report_for(run, status)
        rid = report["report_id"]
        if self.reports.put(report, durable=False):
            log.info("job %s step %s ended %d:%d%s", run.job_id, run.step, report["exit_code"],
                     report["signal"], " (OOM)" if report["oom"] else "")
        self._reported_marks[rid] = run.rundir
        if self.reports.is_synced(rid):
            self._mark_reported([rid])
        self._reports_changed.set()

    async def _sync_reports(self) -> None:
        """Make every spooled report durable (one fdatasync of the spool's log)."""
        ids, fd = self.reports.unsynced()
        if fd is None:
            return
        try:
            await asyncio.to_thread(os.fdatasync, fd)
        finally:
            os.close(fd)
        self.reports.synced(ids)
        self._mark_reported(ids)

    def _mark_reported(self, report_ids: list[str]) -> None:
        # Not fsynced: lost in a power cut, the report is spooled again from status.json (the
        # supervisor's, durable) and the controller ignores the duplicate. Written only once
        # the report is durable, so that a power cut never leaves the mark without it.
        for rid in report_ids:
            rundir = self._reported_marks.pop(rid, None)
            if rundir is not None:
                with contextlib.suppress(OSError):
                    write_replace(os.path.join(rundir, REPORTED_FILE), rid.encode(), 0o644)

    async def _report_sender(self, conn: RpcConnection) -> None:
        while True:
            await self._reports_changed.wait()
            self._reports_changed.clear()
            if not await self._flush_reports(conn):
                conn.close("report delivery failed")
                return

    async def _flush_reports(self, conn: RpcConnection) -> bool:
        """Send every spooled report; False if the connection is no good.

        Reports go in waves of concurrent calls, so the leader commits the ends that came
        together in one entry; a wave holds at most one report per job, which keeps each
        job's reports in spool order (its steps' ends before its own)."""
        backoff = BACKOFF_MIN
        while True:
            try:
                await self._sync_reports()
            except OSError as e:
                log.error("cannot make the report spool durable: %s", e)
                return False
            wave = self._next_wave()
            if not wave:
                if len(self.reports):
                    continue  # spooled while the others were synced: sync it first
                return True
            results = await asyncio.gather(
                *(conn.call("report", report, timeout=RPC_TIMEOUT) for report in wave), return_exceptions=True)
            broken = refused = False
            for report, result in zip(wave, results, strict=True):
                rid = report["report_id"]
                if isinstance(result, (ConnectionFailed, RpcTimeout)):
                    log.info("report %s not delivered: %s", rid, result)
                    broken = True
                elif isinstance(result, RpcError):
                    if result.code in LEADERSHIP_ERRORS:
                        broken = True
                    else:
                        log.warning("report %s refused (%s): retrying", rid, result)
                        refused = True
                elif isinstance(result, BaseException):
                    raise result
                else:
                    self.reports.delete(rid)
                    log.debug("report %s delivered", rid)
            async with self._delivered:
                self._delivered.notify_all()
            if broken:
                return False
            if refused:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _next_wave(self) -> list[dict[str, Any]]:
        """The spooled reports to send together: in spool order, up to the first one not yet
        durable, at most one per job."""
        wave: list[dict[str, Any]] = []
        jobs: set[int] = set()
        for report in self.reports.list():
            if not self.reports.is_synced(report["report_id"]):
                break
            if report["job_id"] not in jobs:
                jobs.add(report["job_id"])
                wave.append(report)
        return wave

    async def _wait_delivered(self, report_ids: list[str]) -> None:
        async with self._delivered:
            await self._delivered.wait_for(lambda: not any(rid in self.reports for rid in report_ids))
