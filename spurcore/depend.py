"""Job dependencies (``--dependency``), as Slurm 25.11 tests them.

Invariants:
- Pure: state, the dependent job (and, for a job array's pending record, one task index)
  and ``now`` in; a status out. Nothing here mutates state.
- Outcomes are derived on every test, never stored, except when a job a pending job depends
  on leaves the hot state: the reducer then keeps the outcome in ``Job.dep_resolved``
  (``remember``), so a failed dependency stays failed after the purge, as in Slurm. Arrays
  keep the outcomes of their purged tasks in ``ClusterState.array_purged`` until the whole
  array is gone.

Source: src/slurmctld/job_scheduler.c ``test_job_dependency``, ``_test_job_dependency_common``,
``_find_singleton_job``; src/slurmctld/job_mgr.c ``test_job_array_complete[d]``.
"""

from __future__ import annotations

import re

from spurcore.model import ClusterState, Job, JobState

KINDS = ("after", "afterany", "afterburstbuffer", "aftercorr", "afternotok", "afterok", "singleton")
_ITEM = re.compile(r"^(after|afterany|afterburstbuffer|aftercorr|afternotok|afterok):(.+)$")
_TARGET = re.compile(r"^(\d+)(?:_(\d+|\*))?(?:\+(\d+))?$")


class DependencyError(ValueError):
    pass


class DepItem:
    """One dependency: ``kind`` on job ``job_id`` (task ``task``: -1 the whole job or array);
    ``delay``: ``after:J+M`` minutes. ``singleton`` has job_id 0."""

    __slots__ = ("kind", "job_id", "task", "delay")

    def __init__(self, kind: str, job_id: int, task: int = -1, delay: int = 0) -> None:
        self.kind, self.job_id, self.task, self.delay = kind, job_id, task, delay

    @property
    def key(self) -> str:
        """The name under which ``Job.dep_resolved`` remembers this item's outcome."""
        if self.kind == "singleton":
            return "singleton"
        return f"{self.kind}:{self.job_id}" + (f"_{self.task}" if self.task >= 0 else "")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DepItem) and self.key == other.key and self.delay == other.delay

    def __repr__(self) -> str:
        delay = f"+{self.delay}" if self.delay else ""
        return f"DepItem({self.key}{delay})"


def parse_dependency(text: str) -> tuple[str, list[DepItem]]:
    """``afterok:1:2,afterany:3_4,singleton`` -> (",", items). ``,`` joins with AND, ``?``
    with OR (one separator per expression, as Slurm requires). Raises DependencyError."""
    text = text.strip()
    if not text:
        return ",", []
    if "," in text and "?" in text:
        raise DependencyError("mixed , and ? in a dependency")
    sep = "?" if "?" in text else ","
    items: list[DepItem] = []
    for part in text.split(sep):
        part = part.strip()
        if part == "singleton":
            items.append(DepItem("singleton", 0))
            continue
        m = _ITEM.match(part)
        if not m:
            raise DependencyError(f"invalid dependency: {part!r}")
        kind = m.group(1)
        for target in m.group(2).split(":"):
            t = _TARGET.match(target)
            if not t or int(t.group(1)) <= 0:
                raise DependencyError(f"invalid dependency: {part!r}")
            if t.group(3) and kind != "after":
                raise DependencyError(f"invalid dependency: {part!r}")  # +time: after only
            task = -1 if t.group(2) in (None, "*") else int(t.group(2))
            items.append(DepItem(kind, int(t.group(1)), task, int(t.group(3) or 0)))
    return sep, items


# --- the state of what a dependency points at --------------------------------------------


def _finished(job: Job) -> bool:
    return job.terminal and not job.completing


def _array_summary(state: ClusterState, array_id: int) -> tuple[bool, bool, bool, float] | None:
    """(is_pending, is_completed, is_complete, first start) over every task of an array,
    purged tasks included; None when nothing of the array is known (gone: lifted)."""
    members = state.array_members.get(array_id)
    purged = state.array_purged.get(array_id)
    if not members and purged is None:
        return None
    pending = completed_all = False
    completed_all = True
    complete_all = not (purged and purged[1])
    first_start = 0.0
    for job_id in members or ():
        job = state.jobs[job_id]
        if job.state is JobState.PENDING and not job.completing:
            pending = True
        if not _finished(job):
            completed_all = False
        if job.state is not JobState.COMPLETED or job.array_pending:
            complete_all = False
        if job.start_time and (not first_start or job.start_time < first_start):
            first_start = job.start_time
    return pending, completed_all and not pending, complete_all and completed_all and not pending, first_start


def _task_record(state: ClusterState, array_id: int, task: int) -> Job | None:
    from spurcore.arrays import contains

    for job_id in state.array_members.get(array_id, ()):
        job = state.jobs[job_id]
        if job.array_task_id == task or (job.array_task_id < 0 and contains(job.array_pending, task)):
            return job
    return None


def _common(kind: str, delay: int, is_pending: bool, is_completed: bool, is_complete: bool,
            start: float, now: float) -> str:
    """``_test_job_dependency_common`` for one target: "done", "wait" or "failed"."""
    if kind == "after":
        if is_pending:
            return "wait"
        if not delay or (start and now - start >= delay * 60):
            return "done"
        return "wait"
    if kind in ("afterany", "afterburstbuffer"):
        return "done" if is_completed else "wait"
    if not is_completed:
        return "wait"
    if kind == "afternotok":
        return "failed" if is_complete else "done"
    return "done" if is_complete else "failed"  # afterok, aftercorr


def _job_status(job: Job) -> tuple[bool, bool, bool, float]:
    pending = job.state is JobState.PENDING and not job.completing
    if job.array_task_id < 0 and job.array_pending:
        pending = True  # the record of an array's pending tasks, asked for one of them
    completed = _finished(job)
    return pending, completed, completed and job.state is JobState.COMPLETED, job.start_time


def item_status(state: ClusterState, job: Job, item: DepItem, now: float, task: int = -1) -> str:
    """"done", "wait" or "failed" for one item of ``job``'s dependency. ``task``: the
    index of the dependent array task being tested (aftercorr), -1 for the whole job."""
    remembered = job.dep_resolved.get(item.key)
    if remembered is not None:
        return remembered
    if item.kind == "singleton":
        return "wait" if _singleton_blocked(state, job) else "done"
    target_task = item.task
    if item.kind == "aftercorr":
        own = job.array_task_id if job.array_task_id >= 0 else task
        if own >= 0 and item.job_id in state.array_members:
            rec = _task_record(state, item.job_id, own)
            if rec is not None:
                pending, completed, complete, start = _job_status(rec)
                return _common("afterok", 0, pending, completed, complete, start, now)
    if target_task >= 0:
        rec = _task_record(state, item.job_id, target_task)
        if rec is None:
            return "done"  # gone: Slurm lifts a dependency on a job it no longer knows
        return _common(item.kind, item.delay, *_job_status(rec), now)
    dep = state.jobs.get(item.job_id)
    if item.job_id in state.array_members or item.job_id in state.array_purged:
        if dep is None or dep.array_job_id == item.job_id:
            summary = _array_summary(state, item.job_id)
            if summary is None:
                return "done"
            return _common(item.kind, item.delay, *summary, now)
    if dep is None:
        return "done"
    return _common(item.kind, item.delay, *_job_status(dep), now)


def _singleton_blocked(state: ClusterState, job: Job) -> bool:
    """Another job of the same user and name runs, or was submitted earlier and waits."""
    spec = job.spec
    for other in state.jobs.values():
        if other is job or other.spec.uid != spec.uid or other.spec.name != spec.name:
            continue
        if other.state in (JobState.RUNNING, JobState.SUSPENDED):
            return True
        if other.state is JobState.PENDING and not other.completing and other.job_id < job.job_id:
            return True
    return False


def _shown(state: ClusterState, item: DepItem) -> str:
    """How scontrol names an item: ``afterok:12``, ``afterok:12_*`` (a whole array),
    ``afterok:12_3``, ``after:12+5``, ``singleton``."""
    if item.kind == "singleton":
        return "singleton"
    target = str(item.job_id)
    if item.task >= 0:
        target += f"_{item.task}"
    elif item.job_id in state.array_members or item.job_id in state.array_purged:
        target += "_*"
    if item.delay:
        target += f"+{item.delay}"
    return f"{item.kind}:{target}"


def dependency_status(state: ClusterState, job: Job, now: float, task: int = -1) -> tuple[str, str]:
    """("none"|"done"|"wait"|"failed", the Dependency= text as scontrol shows it)."""
    if not job.spec.dependency:
        return "none", "(null)"
    sep, items = parse_dependency(job.spec.dependency)
    shown: list[str] = []
    statuses: list[str] = []
    for item in items:
        st = item_status(state, job, item, now, task)
        statuses.append(st)
        if st == "wait":
            shown.append(f"{_shown(state, item)}(unfulfilled)")
        elif st == "failed":
            shown.append(f"{_shown(state, item)}(failed)")
    if sep == "?":
        overall = "done" if "done" in statuses else ("wait" if "wait" in statuses else "failed")
    else:
        overall = "failed" if "failed" in statuses else ("wait" if "wait" in statuses else "done")
    if overall == "done":
        return "done", "(null)"
    return overall, sep.join(shown) if shown else "(null)"


def references(job: Job) -> list[DepItem]:
    """The items of ``job``'s dependency ([] when it has none or it does not parse)."""
    if not job.spec.dependency:
        return []
    try:
        return parse_dependency(job.spec.dependency)[1]
    except DependencyError:
        return []


def remember(state: ClusterState, leaving: set[int], now: float) -> None:
    """Before the jobs ``leaving`` leave the hot state, pending jobs that depend on them keep
    each outcome (arrays: only once their last record goes)."""
    gone_arrays = set()
    for array_id, members in state.array_members.items():
        if members and all(j in leaving for j in members):
            gone_arrays.add(array_id)
    for job_id in state.pending:
        job = state.jobs[job_id]
        for item in references(job):
            if item.kind == "singleton" or item.key in job.dep_resolved:
                continue
            hit = item.job_id in gone_arrays if item.task < 0 and item.job_id in state.array_members else None
            if hit is None:
                target = state.jobs.get(item.job_id)
                if item.task >= 0:
                    target = _task_record(state, item.job_id, item.task)
                hit = target is not None and target.job_id in leaving
            if hit:
                job.dep_resolved[item.key] = item_status(state, job, item, now)
