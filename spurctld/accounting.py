"""Accounting: a projection of the WAL into SQLite, and time travel by replay.

Invariants:
- The projection is derived data. It folds the WAL (archived segments first) through the
  same reducer into a shadow state and upserts the info record of every job an op touched;
  a job about to be purged is written just before the purge is applied. So ``sacct`` sees
  every job and step that ever existed, long after the hot state forgot them.
- It is rebuilt from the WAL when the controller first answers a history query after it
  starts, and caught up before every query; dropping the database file loses nothing.
  History queries are answered by the leader (followers forward them), whose WAL holds
  the full history.
- Requeued runs keep separate rows: the key is (job id, restarts).
- ``job_at`` replays the log up to a moment and shows the job as it was then.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgpack

from spurcore.codec import CodecError, decode_batch
from spurcore.model import ClusterState
from spurcore.ops import JobRequeued, JobsPurged, NodeDown
from spurcore.reduce import apply, jobs_touched_by
from spurcore.views import job_info

if TYPE_CHECKING:
    from spurctld.service import Controller
    from spurctld.wal import Wal

log = logging.getLogger("spurctld.accounting")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER NOT NULL,
    restarts INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    user TEXT NOT NULL,
    state TEXT NOT NULL,
    submit_time REAL NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL NOT NULL,
    info BLOB NOT NULL,
    array_job_id INTEGER NOT NULL,
    array_task_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, restarts)
);
CREATE INDEX IF NOT EXISTS jobs_end ON jobs (end_time);
CREATE INDEX IF NOT EXISTS jobs_array ON jobs (array_job_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""




class Projector:
    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.lock = threading.Lock()
        self.index = 0
        self.state = ClusterState()
        if os.path.exists(db_path):
            os.unlink(db_path)  # derived data: always rebuilt from the WAL
        self.db = sqlite3.connect(db_path, check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.db.execute("PRAGMA synchronous=OFF")

    def _upsert(self, job_ids: Iterable[int], now: float) -> None:
        rows = []
        for job_id in job_ids:
            job = self.state.jobs.get(job_id)
            if job is None:
                continue
            info = job_info(job, self.state, now)
            rows.append((
                job_id, job.restarts, job.spec.uid, job.spec.user, info["state"], job.submit_time,
                job.start_time, job.end_time, msgpack.packb(info, use_bin_type=True),
                job.array_job_id, job.array_task_id,
            ))
        if rows:
            self.db.executemany("INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)

    def catch_up(self, wal: Wal) -> int:
        """Fold WAL records after ``self.index`` (only durable ones)."""
        with self.lock:
            limit = wal.durable_index
            count = 0
            for index, blob in wal.iter_records(self.index + 1):
                if index > limit:
                    break
                try:
                    ops = decode_batch(blob)
                except CodecError:
                    self.index = index
                    continue
                touched: set[int] = set()
                last_at = 0.0
                for op in ops:
                    last_at = getattr(op, "at", last_at)
                    if isinstance(op, JobsPurged):
                        self._upsert(touched | set(op.job_ids), op.at)
                        touched.clear()
                    # The same rule as the controller's read cache (an ACK can end a job, an
                    # array start creates a task record), taken before the op is applied.
                    ids = jobs_touched_by(self.state, op)
                    touched.update(ids)
                    runs = self._runs_before(op, ids)
                    apply(self.state, op)
                    if runs:
                        self._close_requeued_runs(runs, op)
                self._upsert(touched, last_at)
                self.index = index
                count += 1
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('index', ?)", (self.index,))
            self.db.commit()
            return count

    def _runs_before(self, op: Any, ids: Iterable[int]) -> dict[int, tuple[int, dict[str, Any]]]:
        """For ops that may requeue a job (scontrol requeue, a node failure): each job's run
        count and record before the op, so the run that ends keeps its own row."""
        if not isinstance(op, (JobRequeued, NodeDown)):
            return {}
        out = {}
        for job_id in ids:
            job = self.state.jobs.get(job_id)
            if job is not None and job.start_time:
                out[job_id] = (job.restarts, job_info(job, self.state, op.at))
        return out

    def _close_requeued_runs(self, runs: dict[int, tuple[int, dict[str, Any]]], op: Any) -> None:
        """The row of a run that a requeue ended: REQUEUED (scontrol requeue) or NODE_FAIL (its
        node failed), as sacct -D shows it; its steps that were running end with it."""
        rows = []
        for job_id, (restarts, info) in runs.items():
            job = self.state.jobs.get(job_id)
            if job is None or job.restarts == restarts:
                continue
            state = "NODE_FAIL" if isinstance(op, NodeDown) else "REQUEUED"
            info = dict(info, state=state, base_state=state, end_time=op.at, reason="None")
            info["steps"] = [
                dict(st, state=state if state == "NODE_FAIL" else "CANCELLED", end_time=op.at)
                if st.get("state") == "RUNNING" else st for st in info.get("steps", [])
            ]
            rows.append((job_id, restarts, job.spec.uid, job.spec.user, state, info["submit_time"],
                         info["start_time"], op.at, msgpack.packb(info, use_bin_type=True),
                         job.array_job_id, job.array_task_id))
        if rows:
            self.db.executemany("INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)

    def query(self, job_ids: set[int], start: float | None, end: float | None) -> list[dict[str, Any]]:
        """Rows of the jobs asked for (an array's id names all its records), or all rows."""
        with self.lock:
            if job_ids:
                marks = ",".join("?" * len(job_ids))
                ids = sorted(job_ids)
                cur = self.db.execute(
                    f"SELECT info FROM jobs WHERE job_id IN ({marks}) OR array_job_id IN ({marks})"
                    " ORDER BY job_id, restarts", ids + ids,
                )
            else:
                cur = self.db.execute("SELECT info FROM jobs ORDER BY job_id, restarts")
            rows = [msgpack.unpackb(r[0], raw=False) for r in cur]
        out = []
        for info in rows:
            if start is not None or end is not None:
                # A job belongs to [start, end] when it was eligible or running in the window.
                began = info["start_time"] or info["submit_time"]
                ended = info["end_time"] or time.time()
                if end is not None and began > end:
                    continue
                if start is not None and ended < start and info["state"] not in ("PENDING", "RUNNING"):
                    continue
            out.append(info)
        return out


def _projector(controller: Controller) -> Projector:
    proj = getattr(controller, "_projector", None)
    if proj is None:
        assert controller.replica is not None
        proj = Projector(os.path.join(controller.replica.dir, "accounting.sqlite"))
        controller._projector = proj  # type: ignore[attr-defined]
    return proj


def history(controller: Controller, params: dict[str, Any]) -> list[dict[str, Any]]:
    from spurctld.jobrpc import parse_ref

    assert controller.replica is not None
    proj = _projector(controller)
    proj.catch_up(controller.replica.wal)
    job_ids = {int(j) for j in params.get("job_ids") or ()}
    tasks: dict[int, set[int]] = {}  # array id -> the tasks asked for (``123_4``)
    for ref in params.get("job_refs") or ():
        head, wanted = parse_ref({"job_ref": ref})
        job_ids.add(head)
        if wanted is not None:
            tasks.setdefault(head, set()).update(wanted)
    start = params.get("start")
    end = params.get("end")
    rows = proj.query(job_ids, None if start is None else float(start), None if end is None else float(end))
    if tasks:
        rows = [r for r in rows if _row_wanted(r, job_ids, tasks)]
    return rows


def _row_wanted(row: dict[str, Any], job_ids: set[int], tasks: dict[int, set[int]]) -> bool:
    array_id = row.get("array_job_id") or 0
    if array_id not in tasks:
        return row["job_id"] in job_ids or array_id in job_ids
    wanted = tasks[array_id]
    if row.get("array_task_id") is not None:
        return row["array_task_id"] in wanted
    from spurcore.arrays import contains

    return any(contains(row.get("array_pending") or [], t) for t in wanted)


def job_at(controller: Controller, job_id: int, at: float) -> dict[str, Any] | None:
    """The job as it was at ``at``: replay every durable op stamped at or before it."""
    assert controller.replica is not None
    wal = controller.replica.wal
    state = ClusterState()
    limit = wal.durable_index
    for index, blob in wal.iter_records(1):
        if index > limit:
            break
        try:
            ops = decode_batch(blob)
        except CodecError:
            continue
        for op in ops:
            if getattr(op, "at", 0.0) <= at:
                apply(state, op)
    job = state.jobs.get(job_id)
    return None if job is None else job_info(job, state, at)
