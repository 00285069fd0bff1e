"""One pysyncobj replica around the spurcore reducer, with our own durable WAL and snapshots.

Invariants (DESIGN.md 3a; reference/pysyncobj-notes.md):
- Exactly one ``@replicated`` method, ``apply_batch(blob)``, taking an encoded batch of ops,
  so pysyncobj's method ids never change. It never raises: undecodable input and invalid
  ops become ``Rejected`` results, identically on every replica.
- Every applied entry is appended to the WAL (raft index + the batch bytes) inside apply;
  the WAL is fsynced once per tick, and a client's write is answered only once its index is
  durable (``propose``'s callback fires after the fsync).
- Restart = newest snapshot + WAL tail, loaded before pysyncobj starts, with the cyclic
  collector off and the loaded state frozen out of its reach (``gc_paused(freeze=True)``).
  pysyncobj then re-applies its journal; entries at or below ``applied_index`` are skipped,
  so nothing is applied twice and nothing is written to the WAL twice. A clean stop writes
  a snapshot first (``_snapshot_on_close``), so a planned restart replays no tail.
- pysyncobj's dump file holds our msgpack snapshot (custom serializer), never pickle. A
  corrupt snapshot or dump refuses to start (``SnapshotCorrupt``), never loads half-way.
- ``state_lock`` guards the state: the tick thread applies under it; readers in other
  threads take it briefly.

Elections (etcd raft's PreVote and CheckQuorum, built on pysyncobj 0.3.17, which has
neither; issue 13):
- A replica that has heard of no election and no leader since it started asks for
  pre-votes within half of raft_min_timeout (``_next_election``), not after a full timeout:
  a cluster restarted as a whole elects as soon as a majority has loaded its state.
- PreVote: this class owns the election timer. pysyncobj's own deadline stays parked far
  in the future; when our timer fires we ask the peers whether they *would* vote for us
  at term+1 (``spur_pre_vote``, which changes nothing on the receiver), and only with a
  majority of yes let pysyncobj campaign. A replica cut off from the leader therefore no
  longer raises its term, and cannot depose a healthy leader when it comes back.
- Two replicas whose pre-votes overlap (each said yes to the other) both back off and ask
  again after a new random delay instead of campaigning together and splitting the votes.
- Leader stickiness: a replica that heard from a leader less than ``raft_min_timeout``
  ago refuses pre-votes and ignores ``request_vote`` (and a leader that heard from a
  majority that recently does too), so a disruptive candidate cannot win.
- CheckQuorum: a leader that has not heard from a majority for ``raft_max_timeout`` (an
  election timeout) steps down. "Heard" means: a follower answered an append sent at
  that time (send times, not receive times, so a leader paused by SIGSTOP or a long GC
  never counts late answers to old appends as fresh contact).
- Lease: ``leader_ready()`` (which gates local reads and leader duties) also requires a
  majority to have answered appends sent less than 0.9 * ``raft_min_timeout`` ago. No
  follower grants a (pre-)vote within ``raft_min_timeout`` of an append, so no other
  leader can exist while the lease holds: reads on the leader are linearizable.
- A replica with a higher term than the leader's answers its appends with ``spur_term``,
  and the leader steps down (etcd's answer to a stale higher term): that replica would
  otherwise never rejoin. With PreVote this happens only after a real election.
- Fail-stop: if the WAL or pysyncobj's journal cannot be written or synced (ENOSPC, EIO),
  or the state directory's file system has under MIN_FREE_BYTES left, the replica stops
  taking part in Raft at once (``failed`` says why): it sends, acknowledges and applies
  nothing more, so it acknowledges nothing it could not make durable; pending clients
  get ``unknown_outcome`` and retry elsewhere. Restart it once the disk is fixed.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.config import SERIALIZER_STATE
from pysyncobj.monotonic import monotonic as raft_clock  # CLOCK_MONOTONIC_RAW: pysyncobj's deadlines
from pysyncobj.syncobj import _RAFT_STATE

from spurcore.codec import CodecError, decode_batch
from spurcore.model import ClusterState
from spurcore.reduce import Rejected, apply, jobs_touched_by
from spurcore.snapshot import decode_state, encode_state, gc_paused
from spurctld.raftcipher import RaftCipher
from spurctld.wal import (
    SnapshotCorrupt,
    Wal,
    WalError,
    load_latest_snapshot,
    read_snapshot_file,
    write_snapshot,
    write_snapshot_file,
)
from spurio.config import Config

log = logging.getLogger("spurctld.replica")

TICK = 0.01  # longest wait of one Raft tick; events (peers, proposals) wake it earlier
PARKED = 1e18  # pysyncobj's election deadline while our own timer (PreVote) is in charge
LEASE_FRACTION = 0.9  # of raft_min_timeout: margin for clock rate differences between hosts
MAX_INFLIGHT_APPENDS = 4096  # per peer; past that the oldest send times are forgotten
# pysyncobj's journal is an mmap'd sparse file: writing a page the file system cannot back
# kills the process with SIGBUS. Stop first (fail-stop) when the state directory's file
# system has less than this left.
MIN_FREE_BYTES = 16 * 1024 * 1024
DISK_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EROFS, errno.EDQUOT}
# A clean stop writes a snapshot when at least this many ops would otherwise be replayed
# at the next start (a 1,000-op tail replays in about 20 ms; a snapshot of 100,000 jobs
# takes 0.2-0.4 s to write).
CLOSE_SNAPSHOT_OPS = 1000

Done = Callable[[list[Any] | None, str | None], None]

FAIL_NAMES = {
    FAIL_REASON.QUEUE_FULL: "queue_full",
    FAIL_REASON.MISSING_LEADER: "no_leader",
    FAIL_REASON.DISCARDED: "leader_changed",
    FAIL_REASON.NOT_LEADER: "no_leader",
    FAIL_REASON.LEADER_CHANGED: "leader_changed",
    FAIL_REASON.REQUEST_DENIED: "no_leader",
}
if hasattr(FAIL_REASON, "UNKNOWN_OUTCOME"):
    FAIL_NAMES[FAIL_REASON.UNKNOWN_OUTCOME] = "unknown_outcome"


def _snapshot_payload(applied_index: int, state_bytes: bytes, raft: Any) -> bytes:
    return msgpack.packb([applied_index, state_bytes, raft], use_bin_type=True)


def _file_identity(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _parse_payload(payload: bytes, where: str) -> tuple[int, bytes, Any]:
    try:
        applied_index, state_bytes, raft = msgpack.unpackb(payload, raw=False)
        return int(applied_index), state_bytes, raft
    except Exception as exc:
        raise SnapshotCorrupt(f"{where}: malformed snapshot payload: {exc}") from exc


class Replica(SyncObj):
    def __init__(self, config: Config, rid: int, *, on_applied: Callable[[], None] | None = None) -> None:
        me = config.replica(rid)
        self.config = config
        self.rid = rid
        self.dir = config.replica_dir(rid)
        os.makedirs(self.dir, exist_ok=True)
        self.state_lock = threading.RLock()
        self.state = ClusterState()
        self.applied_index = 0
        self.on_applied = on_applied
        self._durable_waiters: list[tuple[int, Done, list[Any]]] = []
        self._dump_child = 0
        self._dump_index = 0
        # Jobs changed since a reader last looked (see service's info cache); a whole new
        # state (snapshot install) sets touched_all. Guarded by state_lock.
        self.touched: set[int] = set()
        self.touched_all = True
        self._ops_since_snapshot = 0
        self._waiters_lock = threading.Lock()
        self.failed: str | None = None  # why this replica stopped (fail-stop), or None
        self._disk_checked = 0.0
        # Elections (tick thread only): see the module docstring.
        self._election_at = 0.0
        self._campaign_allowed = False
        self._prevote: tuple[int, set[str]] | None = None  # (term asked for, who said yes)
        self._yielded = False  # granted a rival's pre-vote while ours was open (split-vote guard)
        self._heard_leader = 0.0  # monotonic time of the last append from a current leader
        self._quiet_start = True  # no election or leader heard of since start (_next_election)
        self._leader_since = 0.0
        self._appends: dict[str, deque[float]] = {}  # peer -> send times of unanswered appends
        self._acked: dict[str, float] = {}  # peer -> send time of the newest answered append
        self.raft_stats = {"pre_votes": 0, "pre_votes_won": 0, "pre_votes_yielded": 0, "votes_ignored": 0,
                           "check_quorum_step_downs": 0, "stale_term_step_downs": 0}
        t_wal = time.monotonic()
        self.wal = Wal(os.path.join(self.dir, "wal"))
        self.dump_file = os.path.join(self.dir, "raft.dump")
        self._dump_read: tuple[Any, int, Any] | None = None  # (file identity, index, raft data)
        self._load_times: tuple[float, int, float] = (0.0, 0, 0.0)
        t0 = time.monotonic()
        with gc_paused(freeze=True):  # the state is long-lived: keep the collector off it
            self._load_local()
        journal = os.path.join(self.dir, "raft.journal")
        if self.applied_index > 0 and not os.path.exists(journal) and not os.path.exists(self.dump_file):
            # Our state is ahead of an empty Raft log: every new entry would be taken for one
            # already applied and silently skipped. Refuse instead of losing writes.
            self.wal.close()
            raise WalError(
                f"{self.dir}: the WAL and snapshots reach index {self.applied_index} but pysyncobj's "
                "raft.journal and raft.dump are missing; restore them together with wal/ and "
                "snapshots/, or move wal/ and snapshots/ away to rejoin from the other replicas"
            )
        loaded = time.monotonic()
        secret = config.read_secret()
        conf = SyncObjConf(
            password=None,  # messages are sealed by our RaftCipher instead (set below)
            journalFile=os.path.join(self.dir, "raft.journal"),
            fullDumpFile=self.dump_file,
            serializer=self._serialize_dump,
            serializeChecker=self._check_dump,
            deserializer=self._deserialize_dump,
            appendEntriesUseBatch=False,
            autoTick=False,  # our own tick thread (see _tick_forever)
            autoTickPeriod=TICK,
            appendEntriesPeriod=min(0.05, config.raft_min_timeout / 4),
            raftMinTimeout=config.raft_min_timeout,
            raftMaxTimeout=config.raft_max_timeout,
            connectionTimeout=max(config.raft_max_timeout, 0.5),
            # A peer not listening yet (restarted at the same time, still loading) is tried
            # again this soon: one connect at a time per peer, only while disconnected.
            connectionRetryTime=0.05,
            leaderFallbackTimeout=config.leader_fallback_timeout,
            logCompactionMinEntries=config.compaction_entries,
            logCompactionMinTime=3600 * 24 * 365,
            logCompactionSplit=False,
            commandsWaitLeader=True,
            dynamicMembershipChange=False,
            bindRetryTime=0.2,
        )
        others = [r.raft for r in config.replicas if r.id != rid]
        super().__init__(me.raft, others, conf)
        # Our cipher instead of pysyncobj's Fernet (spurctld.raftcipher): pysyncobj hands its
        # encryptor to each connection it makes; the outgoing ones exist already (none has
        # connected: that happens in ticks, and no tick has run).
        cipher = RaftCipher(secret)
        self._SyncObj__encryptor = cipher
        for conn in self._SyncObj__transport._connections.values():
            conn.encryptor = cipher
        log.info(
            "replica %d: state loaded at index %d (%d jobs) in %.3f s: WAL opened in %.3f s, snapshot %.3f s, "
            "WAL tail of %d entries %.3f s; pysyncobj started in %.3f s", rid, self.applied_index,
            len(self.state.jobs), time.monotonic() - t_wal, t0 - t_wal, *self._load_times, time.monotonic() - loaded,
        )
        self._single = not others
        self._majority = len(config.replicas) // 2 + 1
        if self._single:  # a single replica has nobody to wait for: elect itself at once
            self._SyncObj__raftElectionDeadline = 0
        else:
            transport = self._SyncObj__transport
            send = transport.send

            def send_and_note(node: Any, message: Any) -> Any:
                # Remember when each append left, so that an answer dates the follower's
                # contact by the send time (see _on_raft_message, next_node_idx).
                if type(message) is dict and message.get("type") == "append_entries":
                    q = self._appends.setdefault(node.id, deque())
                    if len(q) >= MAX_INFLIGHT_APPENDS:
                        q.popleft()
                    q.append(raft_clock())
                return send(node, message)

            transport.send = send_and_note
        self.addOnTickCallback(self._on_tick)
        self._stop_ticking = False
        self._ticker = threading.Thread(target=self._tick_forever, name=f"raft-tick-{rid}", daemon=True)
        self._ticker.start()

    def _tick_forever(self) -> None:
        """pysyncobj's own tick thread sleeps a fixed 100 ms before its first tick; a restart
        must answer sooner than that allows, so we run the same loop without the sleep."""
        while not self._stop_ticking:
            try:
                if not self._single:
                    self._before_tick(raft_clock())
                self.doTick(TICK)
            except OSError as exc:
                log.exception("raft tick failed")
                if exc.errno in DISK_ERRNOS:  # pysyncobj's journal or meta file
                    self._fail_stop(f"pysyncobj's journal: {exc}")
                time.sleep(TICK)
            except Exception:  # a tick must never kill the replica
                log.exception("raft tick failed")
                time.sleep(TICK)
        try:
            self._doDestroy()
        except Exception:  # a failed disk may refuse the journal's last flush
            log.exception("replica %d: closing pysyncobj failed", self.rid)

    # --- elections: PreVote, CheckQuorum, lease (tick thread) ----------------------------

    def _before_tick(self, now: float) -> None:
        """Runs before every pysyncobj tick: owns the election timer (PreVote) on followers
        and candidates, and checks the quorum (CheckQuorum) on the leader."""
        if self._SyncObj__raftState == _RAFT_STATE.LEADER:
            if now - self._quorum_contact(self._leader_since) > self.config.raft_max_timeout:
                log.warning("replica %d: no answer from a majority for %.2f s: stepping down (CheckQuorum)",
                            self.rid, self.config.raft_max_timeout)
                self.raft_stats["check_quorum_step_downs"] += 1
                self._step_down(self.term, now)
            return
        deadline = self._SyncObj__raftElectionDeadline
        if deadline == 0 and self._campaign_allowed:
            self._campaign_allowed = False  # pysyncobj campaigns in this tick
            return
        if deadline != PARKED:
            # pysyncobj (re)armed its timer (an append from the leader, a vote granted):
            # take it over.
            self._election_at = deadline if not self._quiet_start else min(deadline, self._next_election(now))
            self._SyncObj__raftElectionDeadline = PARKED
            self._campaign_allowed = False
        if now < self._election_at:
            return
        self._election_at = self._next_election(now)
        term = self.term + 1
        log.debug("replica %d: election timeout (last heard a leader %.3f s ago): pre-vote for term %d",
                  self.rid, now - self._heard_leader, term)
        self._prevote = (term, {self._SyncObj__selfNode.id})
        self._yielded = False
        self.raft_stats["pre_votes"] += 1
        message = {
            "type": "spur_pre_vote", "term": term,
            "last_log_index": self._SyncObj__getCurrentLogIndex(),
            "last_log_term": self._SyncObj__getCurrentLogTerm(),
        }
        for node in self._SyncObj__otherNodes:
            self._SyncObj__transport.send(node, message)

    def _next_election(self, now: float) -> float:
        """When to ask for pre-votes next. Until this replica has heard of any election or
        leader since it started (``_quiet_start``), soon: within half of raft_min_timeout
        (randomized, so that replicas restarted together rarely ask at once), and again as
        soon if nobody answered (peers still loading). Asking is harmless: a peer that heard
        a leader within raft_min_timeout refuses, and the leader's next append (within
        appendEntriesPeriod) ends the quiet start. Without this a cluster restarted as a
        whole waits a full election timeout (0.25-0.75 s) after loading before electing."""
        if self._quiet_start:
            return now + random.uniform(0.0, self.config.raft_min_timeout / 2)
        return now + self._SyncObj__generateRaftTimeout()

    def _step_down(self, term: int, now: float) -> None:
        if term > self.term:
            self._SyncObj__setCurrentTerm(term, None)
        self._SyncObj__setState(_RAFT_STATE.FOLLOWER)
        self._SyncObj__raftLeader = None
        self._SyncObj__raftElectionDeadline = now + self._SyncObj__generateRaftTimeout()

    def _quorum_contact(self, floor: float = 0.0) -> float:
        """The latest time at which a majority (us included) is known to have been reachable:
        the send time of the newest append each peer answered, majority-th newest."""
        times = sorted((max(self._acked.get(n.id, 0.0), floor) for n in self._SyncObj__otherNodes), reverse=True)
        need = self._majority - 1
        return times[need - 1] if need <= len(times) else 0.0

    def _in_lease(self, now: float) -> bool:
        """A current leader is known: refuse (pre-)votes (leader stickiness)."""
        if self._SyncObj__raftState == _RAFT_STATE.LEADER:
            return now - self._quorum_contact() < self.config.raft_min_timeout
        return self._SyncObj__raftLeader is not None and now - self._heard_leader < self.config.raft_min_timeout

    def _log_up_to_date(self, message: dict[str, Any]) -> bool:
        last_term = self._SyncObj__getCurrentLogTerm()
        if message["last_log_term"] != last_term:
            return message["last_log_term"] > last_term
        return message["last_log_index"] >= self._SyncObj__getCurrentLogIndex()

    def _SyncObj__onMessageReceived(self, node: Any, message: Any) -> None:  # noqa: N802 (pysyncobj's name)
        """Every Raft message passes here first (pysyncobj registers this at construction)."""
        if self.failed is not None:
            return
        kind = message.get("type") if type(message) is dict else None
        now = raft_clock()
        if kind == "spur_pre_vote":
            granted = (
                message["term"] > self.term and not self._in_lease(now) and self._log_up_to_date(message)
            )
            if granted and self._prevote is not None and message["term"] >= self._prevote[0]:
                self._yielded = True  # a rival asks while our own round is open: see the response below
            self._SyncObj__transport.send(node, {
                "type": "spur_pre_vote_response", "term": message["term"], "granted": granted, "current": self.term,
            })
            return
        if kind == "spur_pre_vote_response":
            if not message["granted"] and message["current"] > self.term:
                self._step_down(message["current"], now)  # we are behind: follow that term
                return
            if message["granted"] and self._prevote is not None and message["term"] == self._prevote[0] == self.term + 1:
                self._prevote[1].add(node.id)
                if len(self._prevote[1]) >= self._majority and self._SyncObj__raftState != _RAFT_STATE.LEADER:
                    if self._yielded:
                        # We also said yes to a rival's pre-vote for this term: if both of us
                        # campaigned now the votes would split and everyone would wait a whole
                        # timeout. Both back off and ask again after a new random delay.
                        self.raft_stats["pre_votes_yielded"] += 1
                        log.info("replica %d: pre-vote for term %d won but a rival asked too: asking again later",
                                 self.rid, message["term"])
                        self._prevote = None
                        self._election_at = self._next_election(now)
                        return
                    self.raft_stats["pre_votes_won"] += 1
                    log.info("replica %d: pre-vote for term %d won (%s)", self.rid, message["term"],
                             ", ".join(sorted(self._prevote[1])))
                    self._prevote = None
                    self._campaign_allowed = True
                    self._quiet_start = False
                    self._SyncObj__raftElectionDeadline = 0
            return
        if kind == "spur_term":
            if message["term"] > self.term:
                log.info("replica %d: a peer is at term %d > %d: stepping down", self.rid, message["term"], self.term)
                self.raft_stats["stale_term_step_downs"] += 1
                self._step_down(message["term"], now)
            return
        if kind == "request_vote":
            self._quiet_start = False  # an election is under way: normal timeouts from now on
            if self._in_lease(now):
                self.raft_stats["votes_ignored"] += 1
                return  # neither adopt its term nor vote: a leader is alive
        if kind == "append_entries":
            if message["term"] >= self.term:
                self._heard_leader = now
                self._quiet_start = False
            else:
                self._SyncObj__transport.send(node, {"type": "spur_term", "term": self.term})
        elif kind == "next_node_idx":
            q = self._appends.get(node.id)
            if q:
                sent = q.popleft()
                if sent > self._acked.get(node.id, 0.0):
                    self._acked[node.id] = sent
        SyncObj._SyncObj__onMessageReceived(self, node, message)

    def _SyncObj__onBecomeLeader(self) -> None:  # noqa: N802 (pysyncobj's name)
        self._leader_since = raft_clock()  # the voters just heard from us
        self._acked.clear()
        SyncObj._SyncObj__onBecomeLeader(self)

    def _SyncObj__onNodeDisconnected(self, node: Any) -> None:  # noqa: N802 (pysyncobj's name)
        self._appends.pop(node.id, None)  # answers to those appends will never come
        SyncObj._SyncObj__onNodeDisconnected(self, node)

    def _fail_stop(self, reason: str) -> None:
        """Stop taking part in Raft: our WAL can no longer make anything durable."""
        if self.failed is not None:
            return
        self.failed = reason
        log.critical("replica %d: %s; leaving the Raft group (fail-stop): restart this replica once fixed",
                     self.rid, reason)
        self._SyncObj__setState(_RAFT_STATE.FOLLOWER)
        self._SyncObj__raftLeader = None
        self._stop_ticking = True
        with self._waiters_lock:
            waiters, self._durable_waiters = self._durable_waiters, []
        for _, done, _ in waiters:
            done(None, "unknown_outcome")

    # --- restart -------------------------------------------------------------------------

    def _load_local(self) -> None:
        t0 = time.monotonic()
        best: tuple[int, bytes] | None = None
        snap = load_latest_snapshot(self.dir)  # raises SnapshotCorrupt: refuse to start
        if snap is not None:
            _, payload = snap
            best = _parse_payload(payload, "snapshot")[:2]
        if os.path.exists(self.dump_file):
            _, payload = read_snapshot_file(self.dump_file)  # raises SnapshotCorrupt
            applied, state_bytes, raft = _parse_payload(payload, self.dump_file)
            # pysyncobj reads the dump again in its first tick for these (_deserialize_dump)
            self._dump_read = (_file_identity(self.dump_file), applied, raft)
            if best is None or applied > best[0]:
                best = (applied, state_bytes)
        if best is not None:
            self.applied_index = best[0]
            self.state = decode_state(best[1])
        t1 = time.monotonic()
        replayed = 0
        for index, blob in self.wal.iter_records(self.applied_index + 1):
            self._ops_since_snapshot += len(self._apply_blob(blob))
            self.applied_index = index
            replayed += 1
        self._load_times = (t1 - t0, replayed, time.monotonic() - t1)

    def _serialize_dump(self, filename: str, raft_data: Any) -> None:
        """pysyncobj's snapshot hook (tick thread): our state, never pickle, written by a
        forked child so that encoding a large state never stalls heartbeats. pysyncobj's
        own rename of ``filename`` then fails harmlessly; the child renames into place and
        ``_check_dump`` reports the outcome (pysyncobj compacts its log only on success)."""
        last, prev, cluster = raft_data
        raft = [list(last), list(prev), sorted(getattr(n, "id", str(n)) for n in cluster)]
        if self._dump_child:
            return
        with self.state_lock:  # the tick thread is the only writer: the state is quiescent
            index = self.applied_index
            pid = os.fork()
        if pid:
            self._dump_child, self._dump_index = pid, index
            return
        # Child: no threads, no logging (its locks may be held by threads that are gone), and
        # none of the parent's descriptors: a child that outlives a SIGKILLed parent must not
        # hold its listening sockets or the WAL lock against the restarted replica.
        code = 1
        try:
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            payload = _snapshot_payload(index, encode_state(self.state), raft)
            write_snapshot_file(self.dump_file, index, payload)
            write_snapshot(self.dir, index, payload)
            code = 0
        finally:
            os._exit(code)

    def _check_dump(self) -> int:
        if not self._dump_child:
            return SERIALIZER_STATE.NOT_SERIALIZING
        pid, status = os.waitpid(self._dump_child, os.WNOHANG)
        if pid == 0:
            return SERIALIZER_STATE.SERIALIZING
        self._dump_child = 0
        if os.waitstatus_to_exitcode(status) != 0:
            log.error("replica %d: snapshot at index %d failed (status %d)", self.rid, self._dump_index, status)
            return SERIALIZER_STATE.FAILED
        self._ops_since_snapshot = 0
        moved = self.wal.archive_before(self._dump_index)
        log.info("replica %d: snapshot at index %d written, %d WAL segments archived",
                 self.rid, self._dump_index, moved)
        return SERIALIZER_STATE.SUCCESS

    def _deserialize_dump(self, filename: str) -> tuple[Any, Any, Any]:
        """Called at start-up and when a leader installs its snapshot on this follower."""
        seen, self._dump_read = self._dump_read, None
        if seen is not None and seen[0] == _file_identity(filename) and seen[1] <= self.applied_index:
            raft = seen[2]  # the dump _load_local read and checked: our state is at or past it
            last, prev, cluster = raft
            return tuple(last), tuple(prev), set(cluster)
        _, payload = read_snapshot_file(filename)
        applied, state_bytes, raft = _parse_payload(payload, filename)
        with self.state_lock:
            if applied > self.applied_index:
                with gc_paused(freeze=True):
                    self.state = decode_state(state_bytes)
                self.applied_index = applied
                self.touched_all = True
                write_snapshot(self.dir, applied, payload)
                log.info("replica %d: installed snapshot at index %d", self.rid, applied)
        last, prev, cluster = raft
        return tuple(last), tuple(prev), set(cluster)

    def _snapshot_on_close(self) -> None:
        """A clean stop leaves a snapshot of what it applied (slurmctld saves its state at
        shutdown too), so that the next start replays no WAL tail. Snapshots are derived data:
        if this fails, the next start replays the tail as after a crash. Its payload carries no
        Raft data: only pysyncobj's dump needs that, and this is not one."""
        if self.failed is not None or self._dump_child or self._ops_since_snapshot < CLOSE_SNAPSHOT_OPS:
            return
        t0 = time.monotonic()
        try:
            with self.state_lock:
                index = self.applied_index
                payload = _snapshot_payload(index, encode_state(self.state), None)
            write_snapshot(self.dir, index, payload)
            moved = self.wal.archive_before(index)  # the next start then reads less of the WAL
        except Exception:
            log.exception("replica %d: snapshot at stop failed (the next start replays the WAL tail)", self.rid)
            return
        self._ops_since_snapshot = 0
        log.info("replica %d: snapshot at index %d written at stop in %.3f s, %d WAL segments archived",
                 self.rid, index, time.monotonic() - t0, moved)

    # --- apply ---------------------------------------------------------------------------

    def _apply_blob(self, blob: bytes) -> list[Any]:
        try:
            ops = decode_batch(blob)
        except CodecError as exc:
            self.state.rejected += 1
            return [Rejected("bad_op", str(exc))]
        results = []
        touched = self.touched
        for op in ops:
            try:
                touched.update(jobs_touched_by(self.state, op))
                results.append(apply(self.state, op))
            except Exception as exc:  # a reducer bug: deterministic on every replica
                log.exception("reducer raised on %r", op)
                results.append(Rejected("internal", f"{type(exc).__name__}: {exc}"))
        return results

    @replicated
    def apply_batch(self, blob: bytes) -> Any:
        index = self.raftLastApplied + 1
        try:
            with self.state_lock:
                if index <= self.applied_index:
                    return (index, None)  # already in our state (WAL tail or snapshot)
                results = self._apply_blob(blob)
                self.applied_index = index
                self._ops_since_snapshot += len(results)
                try:
                    self.wal.append(index, blob)
                except Exception as exc:
                    log.exception("WAL append failed at index %d", index)
                    self._fail_stop(f"WAL append failed at index {index}: {exc}")
            if self.on_applied is not None:
                self.on_applied()
            return (index, results)
        except Exception:  # never block the log
            log.exception("apply_batch failed at index %d", index)
            return (index, None)

    def _on_tick(self) -> None:
        if self._ops_since_snapshot >= self.config.compaction_entries and not self._dump_child:
            # pysyncobj counts log entries; one entry may carry thousands of ops. Snapshot by
            # ops too, so that a restart never replays a long tail.
            self._ops_since_snapshot = 0
            self.forceLogCompaction()
        if self._single and self.raftCommitIndex < self._SyncObj__getCurrentLogIndex():
            # pysyncobj appends new commands at the end of a tick and, alone, has no peer
            # reply to wake it up: without this the commit waits a whole tick period.
            self._SyncObj__pipeNotifier.notify()
        if self.failed is not None:
            return
        now = time.monotonic()
        if now - self._disk_checked > 0.2:
            self._disk_checked = now
            try:
                st = os.statvfs(self.dir)
                free = st.f_bavail * st.f_frsize
            except OSError:
                free = MIN_FREE_BYTES
            if free < MIN_FREE_BYTES:
                self._fail_stop(f"{self.dir}: only {free} bytes left on its file system")
                return
        try:
            durable = self.wal.sync()
        except Exception as exc:
            log.exception("WAL sync failed")
            self._fail_stop(f"WAL sync failed: {exc}")
            return
        if not self._durable_waiters:
            return
        with self._waiters_lock:
            ready = [w for w in self._durable_waiters if w[0] <= durable]
            self._durable_waiters = [w for w in self._durable_waiters if w[0] > durable]
        for _, done, results in ready:
            done(results, None)

    def propose(self, blob: bytes, done: Done) -> None:
        """Replicate ``blob``; ``done(results, None)`` once applied here and durable in our WAL,
        or ``done(None, error_code)``. Called from any thread; ``done`` runs in the tick thread."""
        if self.failed is not None:
            done(None, "no_leader")
            return

        def callback(res: Any, err: int) -> None:
            if err != FAIL_REASON.SUCCESS:
                done(None, FAIL_NAMES.get(err, "leader_changed"))
                return
            index, results = res
            if results is None or self.failed is not None:
                done(None, "unknown_outcome")
                return
            with self._waiters_lock:
                self._durable_waiters.append((index, done, results))

        self.apply_batch(blob, callback=callback)

    # --- status --------------------------------------------------------------------------

    @property
    def term(self) -> int:
        return self._getTerm()

    def leader_address(self) -> str | None:
        if self.failed is not None:
            return None
        leader = self._getLeader()
        return None if leader is None else getattr(leader, "id", str(leader))

    def leader_ready(self) -> bool:
        """Leader, every entry of earlier terms is applied here (our no-op is applied), and
        the lease holds (a majority answered an append sent within 0.9 raft_min_timeout):
        no other replica can have been elected meanwhile, so local reads are current."""
        if not self._isLeader() or self.failed is not None:
            return False
        noop = getattr(self, "_SyncObj__noopIDx", None)
        if noop is None or self.raftLastApplied < noop:
            return False
        return self._single or (
            raft_clock() - self._quorum_contact() < LEASE_FRACTION * self.config.raft_min_timeout
        )

    def digest(self) -> tuple[str, int]:
        from spurcore.snapshot import digest

        with self.state_lock:
            return digest(self.state), self.applied_index

    def close(self) -> None:
        self._stop_ticking = True
        self._ticker.join(10)
        if not self._ticker.is_alive():
            self._snapshot_on_close()
        try:
            self.wal.close()
        except Exception:
            if self.failed is None:
                raise
            log.exception("replica %d: closing the failed WAL", self.rid)
