"""The leader's duties, carried out: the pure decisions of ``spurcore.leader`` proposed and
delivered. A mixin of ``spurctld.service.Controller``.

The order of work on the leader (etcd's "Ready" contract, in one place):
  1. read state (under the lock, briefly) and ask spurcore what to do
     (``spurcore.leader.decide``: schedule, time limits, node liveness, purges);
  2. propose the resulting ops and wait until they are committed and durable;
  3. only then send to agents what state says they must still be told
     (``spurcore.leader.deliveries``: starts, actions, kills).
Nothing in step 3 is remembered across a failover except what state holds: the new
leader recomputes its to-do list from state and re-sends (agents are idempotent).

Duties run only while this replica is the leader *and* has applied every entry of earlier
terms (its read lease holds); they are fenced by the term in which they were decided.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from spurcore import leader
from spurcore.ops import Op
from spurcore.reduce import report_frees
from spurctld.replica import Replica
from spurio import rpc

log = logging.getLogger("spurctld")
RESEND_AFTER = 5.0  # seconds before an unanswered start/action/kill is sent again


def since_process_start() -> float:
    """Seconds since this process was created (from /proc), for start-up logging."""
    import os

    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return -1.0


class LeaderDuties:
    """Mixed into Controller: its replica, agents and the leader's memory (rebuilt from
    state whenever this replica starts leading)."""

    rid: int
    replica: Replica | None
    agents: dict[str, rpc.RpcConnection]
    _wake: asyncio.Event | None
    _stopping: bool
    _lead_term: int
    _sent: dict[tuple[str, int, str], float]
    _last_seen: dict[str, float]
    _inflight: set[tuple[str, Any]]
    _releasing: set[int]
    _leader_cfg: leader.LeaderConfig

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _leader_loop(self) -> None:
        assert self._wake is not None and self.replica is not None
        last_purge = 0.0
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), 0.25)
            except TimeoutError:
                pass
            self._wake.clear()
            replica = self.replica
            if not replica.leader_ready():
                # A lapsed lease (a short stall) only pauses the duties; agents are let go
                # when leadership itself is lost or a new term began.
                if self._lead_term != -1 and (not replica._isLeader() or replica.term != self._lead_term):
                    log.info("replica %d: no longer leading", self.rid)
                    self._lead_term = -1
                    for conn in list(self.agents.values()):
                        conn.close()
                    self.agents.clear()
                continue
            term = replica.term
            if term != self._lead_term:
                log.info("replica %d: leading in term %d (%.3f s after process start)", self.rid, term,
                         since_process_start())
                self._lead_term = term
                self._sent.clear()
                self._inflight.clear()
                self._releasing.clear()
                now_m = time.monotonic()
                self._last_seen = {n: now_m for n in replica.state.nodes}
            try:
                now_m = time.monotonic()
                purge_due = now_m - last_purge > 1.0
                if purge_due:
                    last_purge = now_m  # scan the whole table at most once a second
                ops = self._decide(time.time(), now_m, purge_due)
                for op, key in ops:
                    self._propose_tracked(op, key, term)
                self._dispatch(term)
            except Exception:
                log.exception("leader loop")

    def _propose_tracked(self, op: Op, key: tuple[str, Any], term: int) -> None:
        self._inflight.add(key)
        fut = self.propose(op)

        def done(f: asyncio.Future[Any]) -> None:
            self._inflight.discard(key)
            if not f.cancelled() and f.exception() is None:
                self._kick()

        fut.add_done_callback(done)

    def _decide(self, now: float, now_m: float, purge_due: bool) -> list[tuple[Op, tuple[Any, ...]]]:
        """The pure core's decisions (spurcore.leader), minus those still in flight."""
        assert self.replica is not None
        self._maybe_configure(self._lead_term)
        with self.replica.state_lock:
            state = self.replica.state
            silence = {name: now_m - self._last_seen.get(name, now_m) for name in state.nodes}
            mode = self._schedule_mode(state, now_m)
            decisions = leader.decide(state, now, silence, self._leader_cfg, purge=purge_due, scheduler=mode,
                                      releasing=self._releasing)
        return [(d.op, d.key) for d in decisions if d.key not in self._inflight]

    def _start_behind(self, job_id: int, node: str, fenced: bool, end: asyncio.Future[Any]) -> None:
        """A job's end (``end``: its report, just queued for the next entry) and the starts
        it makes room for, in one replicated round: when the report frees the job's
        resources (``spurcore.reduce.report_frees``), schedule now as if it were applied, so
        that the starts join the same entry, behind it in log order. The reducer re-checks
        each start, so a wrong projection costs a rejected start, never an overcommit."""
        replica = self.replica
        term = self._lead_term
        if replica is None or term == -1 or replica.term != term or not replica.leader_ready():
            return
        with replica.state_lock:
            if not report_frees(replica.state, job_id, node, fenced):
                return
            self._releasing.add(job_id)
            try:
                # Only the scheduler: time limits, liveness and purges wait for the loop.
                decisions = leader.starts(replica.state, time.time(), "main", self._releasing)
            except Exception:
                log.exception("scheduling behind a report")
                decisions = []
        end.add_done_callback(lambda _f: self._releasing.discard(job_id))
        for d in decisions:
            if d.key not in self._inflight:
                self._propose_tracked(d.op, d.key, term)

    def _schedule_mode(self, state: Any, now_m: float) -> str:
        """Slurm's two schedulers: the main one whenever the state changed (or a second
        passed: BeginTime and dependency delays come due), the backfill one, which also
        plans reservations, at most every ``bf_interval`` seconds (the settings' value).
        -> "backfill", "main" or "none" (``spurcore.leader.decide``'s ``scheduler``)."""
        applied = self.replica.applied_index if self.replica is not None else 0
        last_applied, last_main, last_bf = getattr(self, "_sched_marks", (-1, -1e9, -1e9))
        backfill = state.settings.get("scheduler_type", "sched/backfill") == "sched/backfill"
        interval = max(0.0, float(state.settings.get("bf_interval", 30)))
        if backfill and now_m - last_bf >= interval:
            self._sched_marks = (applied, now_m, now_m)
            return "backfill"
        if applied == last_applied and now_m - last_main < 1.0:
            return "none"
        self._sched_marks = (applied, now_m, last_bf)
        return "main"

    def _dispatch(self, term: int) -> None:
        """Send agents what state's intents say they must still be told (spurcore.leader),
        each at most every RESEND_AFTER seconds, and only if this term still leads."""
        assert self.replica is not None
        if not self.agents:
            return
        now_m = time.monotonic()

        def wanted(key: tuple[Any, ...]) -> bool:
            return key[2] in self.agents and now_m - self._sent.get(key, -1e9) >= RESEND_AFTER

        with self.replica.state_lock:
            messages = leader.deliveries(self.replica.state, time.time(), self._leader_cfg, wanted)
        if self.replica.term != term:
            return  # fenced: decided in an earlier term
        for msg in messages:
            self._sent[msg.key] = now_m
            conn = self.agents.get(msg.node)
            if conn is not None and not conn.is_closed:
                conn.notify(msg.method, msg.params)
        if len(self._sent) > 100000:
            self._sent = {k: v for k, v in self._sent.items() if now_m - v < RESEND_AFTER}
