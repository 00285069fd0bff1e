"""The leader's decisions as one pure function (etcd raft's ``Ready``, for Spur).

``ready(state, now, silence, cfg, ...)`` returns what the leader must do now: ops to propose
and messages to send to agents. The caller (spurctld's leader loop, or the deterministic
simulation in tests/sim) carries them out in the one order that is safe:

  1. **persist**: propose ``Ready.ops`` and wait until they are committed and durable;
  2. **send**: deliver ``Ready.messages`` (computed from the state *before* those ops; a
     message about a job an op just changed is recomputed on the next pass: agents are
     idempotent, so a duplicate is harmless and a missing one is re-derived);
  3. **apply** happens on every replica as entries commit; the next pass reads the result.

Invariants:
- Pure: state, the clock value ``now`` and the agents' silences are inputs; nothing here
  mutates state, reads a clock or does I/O.
- Every op carries a ``key``: the caller keeps keys of ops in flight and does not propose
  the same decision twice while the first is uncommitted (``inflight``). Decisions are
  re-derived from state on every pass, so a leader that has just taken over needs nothing
  but the state.
- Messages are derived only from the intents in state (``pending_starts`` and
  ``pending_actions``); the caller decides how often to resend one (``resend_after``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

from spurcore.depend import dependency_status
from spurcore.intents import pending_actions, pending_starts
from spurcore.model import ActionRecord, ClusterState, Job, JobState
from spurcore.ops import (
    ActionKind,
    ActionRequested,
    JobCancelled,
    JobDeadlineReached,
    JobsPurged,
    JobTimeLimitReached,
    NodeDown,
    Op,
    SignalTarget,
)
from spurcore.scheduler import schedule
from spurcore.views import launch_info

PURGE_BATCH = 10_000  # terminal jobs purged per op


@attrs.frozen
class LeaderConfig:
    """The settings the leader's decisions depend on (from spur.toml)."""

    node_timeout: float = 30.0
    min_job_age: float = 300.0
    kill_wait: float = 30.0
    suspend_grace: float = 2.0
    kill_invalid_depend: bool = False
    fenced: bool = False  # agents fence themselves within node_timeout (spur.toml fence_timeout)
    job_requeue: bool = True  # Slurm's JobRequeue
    requeue_delay: float = 121.0


@attrs.frozen
class Decision:
    op: Op
    key: tuple[Any, ...]


@attrs.frozen
class Message:
    """A notification for the agent of ``node``: ``start`` or ``action``. ``key`` names the
    intent (the caller's resend bookkeeping)."""

    node: str
    method: str
    params: dict[str, Any]
    key: tuple[Any, ...]


@attrs.frozen
class Ready:
    ops: list[Decision]
    messages: list[Message]


def ready(state: ClusterState, now: float, silence: Mapping[str, float], cfg: LeaderConfig, *,
          inflight: Collection[tuple[Any, ...]] = (), purge: bool = True, messages: bool = True) -> Ready:
    """Everything the leader must do at ``now``. ``silence``: seconds since each node's agent
    was last heard from (nodes missing from it count as just heard)."""
    ops = [d for d in decide(state, now, silence, cfg, purge=purge) if d.key not in inflight]
    return Ready(ops, deliveries(state, now, cfg) if messages else [])


def decide(state: ClusterState, now: float, silence: Mapping[str, float], cfg: LeaderConfig, *,
           purge: bool = True, scheduler: str = "backfill", releasing: Collection[int] = ()) -> list[Decision]:
    """``scheduler``: "backfill" (the full pass, reservations included), "main" (Slurm's
    main scheduler alone, between backfill cycles) or "none" (nothing changed since).
    ``releasing``: jobs whose end the caller has proposed (``report_frees``) but not yet
    applied; the starts their CPUs and memory allow are decided now, to be proposed behind
    that end (the end of one job and the next start in one round; the reducer re-checks).
    ``purge``: the periodic pass (the leader's is once a second), which also walks the whole
    pending queue for deadlines and dependencies that can never be met: walking it on every
    applied entry made each commit cost time linear in the queue (5 ms at 15,000 jobs)."""
    out = starts(state, now, scheduler, releasing)
    if purge:
        out.extend(pending_duties(state, now, cfg))
    out.extend(running_duties(state, now))
    for node in state.nodes.values():
        if node.up and silence.get(node.name, 0.0) > cfg.node_timeout:
            op = NodeDown(node.name, "Not responding", now, cfg.fenced, cfg.job_requeue, now + cfg.requeue_delay)
            out.append(Decision(op, ("down", node.name)))
    if purge:
        old = purgeable(state, now, cfg.min_job_age)
        if old:
            out.append(Decision(JobsPurged(tuple(old), now), ("purge", 0)))
    return out


def starts(state: ClusterState, now: float, scheduler: str = "main",
           releasing: Collection[int] = ()) -> list[Decision]:
    """The scheduler's part of ``decide`` alone: what the leader runs behind an agent's
    report, with that job in ``releasing``."""
    if scheduler == "none":
        return []
    return [Decision(start, ("start", start.job_id, start.array_task_id))
            for start in schedule(state, now, backfill=scheduler == "backfill", releasing=releasing)]


def running_duties(state: ClusterState, now: float) -> list[Decision]:
    """Time limits (TIMEOUT), and ``--signal`` warnings sent ``signal_time`` seconds before
    them, once per run (the request id makes them idempotent across passes and failovers)."""
    out: list[Decision] = []
    seen: set[int] = set()
    for node in state.nodes.values():
        for job_id in node.jobs:
            if job_id in seen:
                continue
            seen.add(job_id)
            job = state.jobs.get(job_id)
            if job is None or job.state is not JobState.RUNNING or job.completing or job.spec.time_limit is None:
                continue
            ends_at = job.start_time + job.suspended_secs + job.spec.time_limit
            if now >= ends_at:
                out.append(Decision(JobTimeLimitReached(job_id, now), ("timeout", job_id)))
            elif job.spec.signal and now >= ends_at - job.spec.signal_time:
                rid = f"warn:{job_id}:{job.restarts}"
                if rid not in state.requests:
                    target = SignalTarget.BATCH if "B" in job.spec.signal_flags else SignalTarget.STEPS
                    op = ActionRequested(rid, job_id, -1, ActionKind.SIGNAL, job.spec.signal, target, 0, now)
                    out.append(Decision(op, ("warn", job_id)))
    return out


def pending_duties(state: ClusterState, now: float, cfg: LeaderConfig) -> list[Decision]:
    """Pending jobs the leader ends: past their ``--deadline`` (DEADLINE), or with a
    dependency that can never be satisfied when ``--kill-on-invalid-dep`` (or the cluster's
    kill_invalid_depend) asks for it (CANCELLED, as Slurm's _kill_dependent)."""
    out: list[Decision] = []
    for job_id in state.runnable:
        job = state.jobs[job_id]
        spec = job.spec
        if spec.deadline:
            need = spec.time_min if spec.time_min is not None else (spec.time_limit or 0)
            if now + need > spec.deadline:
                out.append(Decision(JobDeadlineReached(job_id, now), ("deadline", job_id)))
                continue
        kill = spec.kill_on_invalid_dep == 1 or (spec.kill_on_invalid_dep == -1 and cfg.kill_invalid_depend)
        if spec.dependency and kill and dependency_status(state, job, now)[0] == "failed":
            out.append(Decision(JobCancelled(job_id, 0, now), ("cancel", job_id)))
    return out


def purgeable(state: ClusterState, now: float, min_job_age: float) -> list[int]:
    """Terminal jobs older than MinJobAge (at most PURGE_BATCH)."""
    out: list[int] = []
    for job in state.jobs.values():
        if job.terminal and not job.completing and job.end_time + min_job_age <= now:
            out.append(job.job_id)
            if len(out) >= PURGE_BATCH:
                break
    return out


def kill_reason(state: ClusterState, action: ActionRecord) -> str:
    """Why a KILL was asked, for slurmstepd's notice in the job's stderr ("" for none)."""
    if action.kind != ActionKind.KILL:
        return ""
    if action.step_id >= 0:
        return "cancel"
    job = state.jobs.get(action.job_id)
    if job is None:
        return ""
    return {
        JobState.TIMEOUT: "time_limit",
        JobState.NODE_FAIL: "node_fail",
        JobState.CANCELLED: "cancel",
        JobState.PENDING: "requeue",
    }.get(job.state, "")  # "": the job ended on its own, other nodes are only cleaned up


def start_message(state: ClusterState, job: Job, node: str, now: float) -> Message:
    # The run (requeue count) is part of the key: a requeued job's new start is a new message,
    # not a resend of the old run's (which the resend policy would hold back).
    return Message(node, "start", {"job": launch_info(job, state, now), "node": node},
                   ("start", job.job_id, node, job.restarts))


def action_message(state: ClusterState, action: ActionRecord, node: str, cfg: LeaderConfig) -> Message:
    return Message(node, "action", {
        "action_id": action.action_id, "job_id": action.job_id, "step_id": action.step_id,
        "kind": action.kind, "signal": action.signal, "target": action.target,
        "kill_wait": cfg.kill_wait, "suspend_grace": cfg.suspend_grace, "node": node,
        "why": kill_reason(state, action), "at": action.at,
    }, ("action", action.action_id, node))


def deliveries(state: ClusterState, now: float, cfg: LeaderConfig,
               wanted: Callable[[tuple[Any, ...]], bool] | None = None) -> list[Message]:
    """Every start and action the agents must still be told (state's intents); with
    ``wanted``, only those whose key it accepts (the caller's resend policy), so that a
    start's launch record is built only when it is going to be sent."""
    out: list[Message] = []
    for i in pending_starts(state):
        if wanted is None or wanted(("start", i.job.job_id, i.node, i.job.restarts)):
            out.append(start_message(state, i.job, i.node, now))
    for a in pending_actions(state):
        if wanted is None or wanted(("action", a.action.action_id, a.node)):
            out.append(action_message(state, a.action, a.node, cfg))
    return out
