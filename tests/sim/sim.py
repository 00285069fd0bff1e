"""A deterministic simulation of a whole Spur cluster: replicas on an in-memory log, agents
on fake process control, a fake clock and a fake network, all driven by one seeded RNG.

What is real here: the op codec, the reducer (``spurcore.reduce.apply``), the leader's
decisions (``spurcore.leader.ready``), the intents, the renderers. What is simulated:

* **The log** (``SimLog``) is a majority-commit model of Raft: a leader appends entries;
  an entry is committed once a majority of replicas (the leader's side of any partition)
  hold it; a new leader is elected ``election_timeout`` after the old one became
  unreachable, among the replicas that can reach a majority, preferring the most complete
  log; followers that rejoin take the leader's log, losing uncommitted entries. It obeys
  the same log contract as the pysyncobj-backed replica (tests/contract).
* **Processes** are the contract-tested fake process control (``tests/contract/fakeproc.py``,
  one per node, its clock driven by the Sim every tick): a job's script is interpreted
  (``sleep 5; exit 3``, ``trap '' TERM; sleep 60``), and kills, suspends, signals and
  fencing are ``spurcore.killplan``'s plans carried out as the real supervisor carries them
  out (SIGTERM, KillWait, SIGKILL). An agent asks of it what spurd asks of its supervisors,
  keeps a durable spool (reports until committed, ACKs), and its supervisors (and their
  lease) outlive an agent crash, as the real ones do.
* **The network** delays, drops, duplicates and partitions messages, by seed.

Invariants checked after every run (``Sim.check``): every acknowledged submit exists
exactly once; no job run starts twice or on two nodes; action intents are cleared only by
ACKs; after healing, every replica's state digest is equal and every job has ended.
"""

from __future__ import annotations

import errno
import heapq
import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from spurcore import leader
from spurcore.agentmsg import JobAction, SupervisorSpec
from spurcore.codec import decode_batch, encode_batch
from spurcore.model import ClusterState, JobState
from spurcore.ops import (
    ActionAcked,
    ActionKind,
    ActionRequested,
    JobLaunched,
    JobNodeComplete,
    JobSpec,
    JobSubmitted,
    NodeRegistered,
    Op,
    SignalTarget,
)
from spurcore.reduce import Rejected, apply
from spurcore.snapshot import digest
from spurcore.views import job_info
from spurd.actions import kill_notice
from spurd.runs import BATCH
from tests.contract.fakeproc import FakeProcesses

EPOCH = 1_800_000_000.0  # sim time 0, as wall-clock seconds (renderers print dates)
TICK = 0.05


# ---------------------------------------------------------------------------------- network


class Network:
    """Seeded delays, drops, duplicates and partitions between named endpoints."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.queue: list[tuple[float, int, str, str, Any]] = []
        self.seq = 0
        self.groups: list[set[str]] | None = None  # partitions; None = everyone talks
        self.drop = 0.0
        self.dup = 0.0
        self.delay = (0.001, 0.02)
        self.sent = self.dropped = self.duplicated = 0

    def connected(self, a: str, b: str) -> bool:
        if self.groups is None or a == b:
            return True
        return any(a in g and b in g for g in self.groups)

    def send(self, now: float, src: str, dst: str, msg: Any) -> None:
        self.sent += 1
        if not self.connected(src, dst) or self.rng.random() < self.drop:
            self.dropped += 1
            return
        copies = 2 if self.rng.random() < self.dup else 1
        self.duplicated += copies - 1
        for _ in range(copies):
            self.seq += 1
            at = now + self.rng.uniform(*self.delay)
            heapq.heappush(self.queue, (at, self.seq, src, dst, msg))

    def due(self, now: float) -> list[tuple[str, str, Any]]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            _, _, src, dst, msg = heapq.heappop(self.queue)
            if self.connected(src, dst):  # a partition also cuts what is in flight
                out.append((src, dst, msg))
            else:
                self.dropped += 1
        return out


# ---------------------------------------------------------------------------------- the log


@attrs.define
class Entry:
    term: int
    blob: bytes  # an encoded batch, as in the real log
    waiters: list[Callable[[list[Any] | None], None]] = attrs.field(factory=list, eq=False)


@attrs.define
class SimReplica:
    rid: int
    alive: bool = True
    log: list[Entry] = attrs.field(factory=list)
    commit: int = 0  # entries [0, commit) are known committed here
    applied: int = 0
    state: ClusterState = attrs.field(factory=ClusterState)
    results: list[list[Any]] = attrs.field(factory=list)
    by_request: dict[str, Any] = attrs.field(factory=dict)  # request id -> first result (or Rejected)

    @property
    def name(self) -> str:
        return f"ctld{self.rid}"

    def apply_committed(self, on_apply: Callable[[SimReplica, Op, Any], None]) -> None:
        while self.applied < self.commit:
            entry = self.log[self.applied]
            out = []
            for op in decode_batch(entry.blob):
                before = _intents(self.state)
                result = apply(self.state, op)
                on_apply(self, op, (before, result))
                rid = getattr(op, "request_id", "")
                if rid:
                    self.by_request.setdefault(rid, result)
                out.append(result)
            self.applied += 1
            self.results.append(out)

    def restart(self) -> None:
        """A crash keeps the durable log and loses memory: the state is rebuilt from it."""
        self.alive = True
        self.state = ClusterState()
        self.applied = 0
        self.results = []
        self.by_request = {}
        for entry in self.log:
            entry.waiters = []


def _intents(state: ClusterState) -> set[tuple[int, str]]:
    return {(a.action_id, n) for a in state.actions.values() for n in a.pending}


class SimLog:
    """Majority commit over ``replicas``; see the module docstring for what it models."""

    def __init__(self, replicas: list[SimReplica], net: Network, election_timeout: float) -> None:
        self.replicas = replicas
        self.net = net
        self.election_timeout = election_timeout
        self.term = 0
        self.leader: SimReplica | None = None
        self.leader_lost_at: float | None = 0.0
        self.elections = 0

    def majority(self) -> int:
        return len(self.replicas) // 2 + 1

    def reachable(self, r: SimReplica) -> list[SimReplica]:
        return [o for o in self.replicas if o.alive and self.net.connected(r.name, o.name)]

    def tick(self, now: float) -> None:
        cur = self.leader
        if cur is not None and (not cur.alive or len(self.reachable(cur)) < self.majority()):
            self.leader = None  # lost its majority (CheckQuorum) or crashed
            self.leader_lost_at = now
        if self.leader is None and self.leader_lost_at is not None and now - self.leader_lost_at >= self.election_timeout:
            self._elect()
        if self.leader is not None:
            self._replicate()

    def _elect(self) -> None:
        candidates = [r for r in self.replicas if r.alive and len(self.reachable(r)) >= self.majority()]
        if not candidates:
            return
        # The most complete log wins (last term, then length), then the lowest id.
        best = max(candidates, key=lambda r: ((r.log[-1].term if r.log else 0), len(r.log), -r.rid))
        self.term += 1
        self.elections += 1
        self.leader = best
        self.leader_lost_at = None
        for entry in best.log[best.commit:]:
            entry.term = entry.term  # kept: a new leader commits its predecessor's entries with its own
        self.append(best, encode_batch([]), lambda _: None)  # the no-op of the new term

    def _replicate(self) -> None:
        ldr = self.leader
        assert ldr is not None
        peers = self.reachable(ldr)
        for peer in peers:
            if peer is ldr:
                continue
            # AppendEntries: the follower's log becomes the leader's (conflicting tails go).
            same = 0
            while same < min(len(peer.log), len(ldr.log)) and peer.log[same].term == ldr.log[same].term \
                    and peer.log[same].blob == ldr.log[same].blob:
                same += 1
            if same < len(peer.log) or len(peer.log) < len(ldr.log):
                if same < peer.applied:  # never happens to committed entries; guard the model
                    raise AssertionError(f"replica {peer.rid} would lose an applied entry")
                peer.log = peer.log[:same] + [Entry(e.term, e.blob) for e in ldr.log[same:]]
        if len(peers) >= self.majority():
            new_commit = len(ldr.log)
            old = ldr.commit
            for peer in peers:
                peer.commit = max(peer.commit, min(new_commit, len(peer.log)))
            for entry in ldr.log[old:new_commit]:
                for w in entry.waiters:
                    w(None)  # resolved after apply, below (see Sim._on_commit)
            ldr.commit = new_commit

    def append(self, ldr: SimReplica, blob: bytes, waiter: Callable[[list[Any] | None], None]) -> None:
        ldr.log.append(Entry(self.term, blob, [waiter]))


# ---------------------------------------------------------------------------------- agents


Key = tuple[int, int]  # a job's run: (job id, requeue count)


class SimAgent:
    """spurd on the contract-tested fake process control (``tests/contract/fakeproc.py``),
    asking of it what spurd asks of its supervisors (``spurd/actions.py``, ``spurd/runs.py``):
    a start per run, kills as the controller orders them (KillWait, why, slurmstepd's
    notice), suspend/resume, signals, the fencing lease. Idempotent starts and actions, a
    durable spool of reports (kept until committed), ACKs of a KILL after the reports of
    its runs are committed.

    Durable across a crash: ``procs`` (the supervisors, and the lease file they read: the
    Sim drives its clock whether or not the agent runs), ``runs`` and ``reported`` (the
    rundirs and their ``reported`` markers), the spool and the ACK store."""

    def __init__(self, sim: Sim, node: str, cpus: int) -> None:
        self.sim, self.node, self.cpus = sim, node, cpus
        self.alive = True
        self.registered = False
        self.procs = FakeProcesses(clock=sim.now)
        self.lease_file = f"/var/spool/spur/{node}/lease"
        self.runs: dict[Key, str] = {}  # the run's id in ``procs``
        self.reported: set[Key] = set()
        self.spool: dict[str, dict[str, Any]] = {}  # durable report spool
        self.acks: dict[int, dict[str, Any]] = {}  # durable ACK store
        self.waiting_acks: dict[int, list[Key]] = {}  # KILL action id -> its runs, reported and committed first
        self.next_heartbeat = 0.0
        self.next_resend = 0.0
        self.last_answer = 0.0

    @property
    def name(self) -> str:
        return f"agent-{self.node}"

    def report_id(self, key: Key) -> str:
        return f"{self.node}:{key[0]}:{key[1]}"

    def live(self) -> list[Key]:
        """The runs still going (their supervisors have no status yet)."""
        return [k for k, run in self.runs.items() if k not in self.reported and self.procs.status(run) is None]

    def send(self, method: str, params: dict[str, Any]) -> None:
        ldr = self.sim.log.leader
        target = ldr.name if ldr is not None else "ctld1"
        self.sim.net.send(self.sim.now, self.name, target, ("agent", self.node, method, params))

    def tick(self, now: float) -> None:
        if not self.alive:
            return  # its supervisors run on: the Sim drives ``procs`` to ``now`` all the same
        self._notice_ends(self.runs)
        if self.registered and now - self.last_answer > 3.0:
            self.registered = False  # the heartbeat call timed out: connect and register again
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + 1.0
            self.send("node_register" if not self.registered else "heartbeat",
                      {"name": self.node, "cpus": self.cpus, "mem_mb": 4096,
                       "jobs": sorted({job_id for job_id, _ in self.live()})})
        if now >= self.next_resend and self.spool:
            self.next_resend = now + 0.5
            for report in list(self.spool.values()):
                self.send("report", report)

    def _notice_ends(self, keys: Iterable[Key]) -> None:
        """Spool and send the report of every run of ``keys`` that has ended (spurd's watcher)."""
        for key in list(keys):
            if key in self.reported:
                continue
            status = self.procs.status(self.runs[key])
            if status is None:
                continue
            self.reported.add(key)
            rid = self.report_id(key)
            self.spool[rid] = {"report_id": rid, "job_id": key[0], "node": self.node, "exit_code": status.exit_code,
                               "signal": status.signal, "at": EPOCH + status.ended_at, "fenced": status.fenced}
            self.send("report", self.spool[rid])

    def _renew_lease(self) -> None:
        """An answer from a leader (a quorum's, in this model): the jobs may run for
        fence_timeout more seconds (spurd.session's ``_renew_lease``)."""
        if self.sim.fence_timeout > 0:
            self.procs.write_lease(self.lease_file, self.sim.fence_timeout)
        else:
            self.procs.remove_lease(self.lease_file)

    def receive(self, method: str, params: dict[str, Any]) -> None:
        if not self.alive:
            return
        self.last_answer = self.sim.now
        if method in ("registered", "heartbeat_ok"):
            self._renew_lease()
        if method == "registered":
            self.registered = True
        elif method == "not_registered":
            self.registered = False  # spurd: a refused heartbeat means register again
        elif method == "start":
            info = params["job"]
            self._start((info["job_id"], int(info.get("restarts") or 0)), info)
            self.send("launched", {"job_id": info["job_id"], "node": self.node})
        elif method == "action":
            self._action(params)
        elif method == "kill":  # reconciliation: the controller does not know the job here
            mine = self._job_runs(params["job_id"])
            live = self.live()
            for key in mine:
                if key in live:
                    self.procs.kill(self.runs[key], self.sim.cfg.kill_wait)
            self._notice_ends(mine)
        elif method == "committed":
            self.spool.pop(params["report_id"], None)
            for action_id in list(self.waiting_acks):
                self._ack_when_reported(action_id)

    def _job_runs(self, job_id: int) -> list[Key]:
        return [k for k in self.runs if k[0] == job_id]

    def _start(self, key: Key, info: dict[str, Any]) -> None:
        """A run is started once; a stale start of an earlier run is ignored; a newer run
        first retires the old one (spurd's ``_retire``: killed with no KillWait)."""
        known = self._job_runs(key[0])
        if key in self.runs or any(k[1] > key[1] for k in known):
            return
        live = self.live()
        for old in known:
            if old in live:
                self.procs.kill(self.runs[old], 0)
                assert self.procs.status(self.runs[old]) is not None, "a kill with no KillWait ends the run at once"
            self._notice_ends([old])
            del self.runs[old]
            self.reported.discard(old)
        cfg = self.sim.cfg
        fencing = {"lease_file": self.lease_file, "fence_grace": self.sim.fence_grace} \
            if self.sim.fence_timeout > 0 else {}
        spec = SupervisorSpec(job_id=key[0], argv=("/bin/bash", "-c", info.get("script") or ""),
                              kill_wait=cfg.kill_wait, suspend_grace=cfg.suspend_grace, **fencing)
        self.runs[key] = self.procs.start(spec)
        self.sim.started.append((key, self.node, self.sim.now))

    def _action(self, params: dict[str, Any]) -> None:
        """spurd's ``_on_action``/``_carry_out``: the ACK is stored before it is sent, and a
        repeat gets the same ACK with nothing redone."""
        action_id = params["action_id"]
        if action_id in self.acks:
            if action_id not in self.waiting_acks:
                self.send("ack", self.acks[action_id])
            return
        action = JobAction(**params)
        mine = self._job_runs(action.job_id)
        live = [k for k in self.live() if k[0] == action.job_id]
        status, err = 0, 0
        if action.kind == ActionKind.KILL:
            if action.step_id < 0:  # the sim runs no steps: a step's KILL finds nothing here
                kill_wait = self.sim.cfg.kill_wait if action.kill_wait is None else action.kill_wait
                for key in live:
                    notice = kill_notice(action, _BatchRun(key[0]), self.node)
                    self.procs.kill(self.runs[key], kill_wait, why=action.why, notice=notice)
                self._notice_ends(mine)
                self.acks[action_id] = {"action_id": action_id, "node": self.node, "status": 0, "errno": 0}
                self.waiting_acks[action_id] = mine
                self._ack_when_reported(action_id)
                return
        elif action.kind in (ActionKind.STOP, ActionKind.CONT):
            verb = self.procs.suspend if action.kind == ActionKind.STOP else self.procs.resume
            status, err = _replies([verb(self.runs[k]) for k in live])
        elif action.kind == ActionKind.SIGNAL:
            target = {SignalTarget.BATCH: "batch", SignalTarget.FULL: "full"}.get(SignalTarget(action.target))
            if action.step_id < 0 and target is not None:  # STEPS (or one step): the sim runs none
                status, err = _replies([self.procs.signal(self.runs[k], action.signal, target) for k in live])
        else:
            status, err = 1, errno.EINVAL
        self.acks[action_id] = {"action_id": action_id, "node": self.node, "status": status, "errno": err}
        self.send("ack", self.acks[action_id])

    def _ack_when_reported(self, action_id: int) -> None:
        """A KILL is ACKed once every run it involved has ended and its report is committed,
        so that the controller sees JobNodeComplete first."""
        keys = self.waiting_acks[action_id]
        if all(k in self.reported and self.report_id(k) not in self.spool for k in keys if k in self.runs):
            del self.waiting_acks[action_id]
            self.send("ack", self.acks[action_id])

    def crash(self) -> None:
        self.alive = False
        self.registered = False

    def restart(self) -> None:
        self.alive = True
        self.next_heartbeat = self.sim.now
        self.last_answer = self.sim.now


@attrs.frozen
class _BatchRun:
    """What ``spurd.actions.kill_notice`` reads of a run."""

    job_id: int
    step: str = BATCH


def _replies(replies: list[dict[str, Any]]) -> tuple[int, int]:
    """The ACK's (status, errno) from the supervisors' replies, as spurd computes it (ESRCH:
    the run ended meanwhile, nothing to do)."""
    for reply in replies:
        err = int(reply.get("errno") or 0)
        if not reply.get("ok") and err != errno.ESRCH:
            return 1, err or errno.EIO
    return 0, 0


# ---------------------------------------------------------------------------------- controller


class SimController:
    """The service side of the leader: client and agent methods, and the leader loop, the way
    spurctld carries out ``spurcore.leader.ready``."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.inflight: set[tuple[Any, ...]] = set()
        self.sent: dict[tuple[Any, ...], float] = {}
        self.last_seen: dict[str, float] = {}
        self.lead_term = -1

    def propose(self, ops: list[Op], done: Callable[[list[Any] | None], None]) -> None:
        ldr = self.sim.log.leader
        if ldr is None:
            done(None)
            return
        self.sim.log.append(ldr, encode_batch(ops), done)

    def tick(self, now: float) -> None:
        log = self.sim.log
        ldr = log.leader
        if ldr is None or ldr.applied < ldr.commit or ldr.applied < len(ldr.log) and log.term != self.lead_term \
                and ldr.commit < len(ldr.log):
            return  # not ready: the new term's no-op is not applied yet
        if log.term != self.lead_term:
            self.lead_term = log.term
            self.inflight.clear()
            self.sent.clear()
            self.last_seen = {n: now for n in ldr.state.nodes}
        silence = {n: now - self.last_seen.get(n, now) for n in ldr.state.nodes}
        rd = leader.ready(ldr.state, self.sim.wall(), silence, self.sim.cfg, inflight=self.inflight,
                          purge=False)
        for d in rd.ops:
            self.inflight.add(d.key)
            self.propose([d.op], lambda _r, key=d.key: self.inflight.discard(key))
        for msg in rd.messages:
            if now - self.sent.get(msg.key, -1e9) >= 1.0:
                self.sent[msg.key] = now
                self.sim.net.send(now, ldr.name, f"agent-{msg.node}", ("ctld", msg.method, msg.params))

    def on_agent(self, src: str, node: str, method: str, params: dict[str, Any]) -> None:
        ldr = self.sim.log.leader
        if ldr is None:
            return  # not the leader: the agent will find it again
        self.last_seen[node] = self.sim.now
        reply = lambda m, p: self.sim.net.send(self.sim.now, ldr.name, src, ("ctld", m, p))  # noqa: E731
        if method == "node_register":
            known = ldr.state.nodes.get(node)
            if known is None or not known.up:
                self.propose([NodeRegistered(node, params["cpus"], params["mem_mb"], "", self.sim.wall())],
                             lambda _r: reply("registered", {}))
            else:
                reply("registered", {})
            for job_id in params["jobs"]:  # reconciliation, as m_node_register does
                job = ldr.state.jobs.get(job_id)
                if job is None or node not in job.nodes or (job.terminal and not job.completing):
                    reply("kill", {"job_id": job_id})
            self.sent = {k: v for k, v in self.sent.items() if k[2] != node}
        elif method == "heartbeat":
            known = ldr.state.nodes.get(node)
            reply("heartbeat_ok" if known is not None and known.up else "not_registered", {})
        elif method == "report":
            op = JobNodeComplete(params["job_id"], node, params["exit_code"], params["signal"], False, params["at"],
                                 params["fenced"], self.sim.cfg.job_requeue, self.sim.wall() + self.sim.cfg.requeue_delay)
            self.propose([op], lambda r: r is not None and reply("committed", {"report_id": params["report_id"]}))
        elif method == "launched":
            self.propose([JobLaunched(params["job_id"], node, self.sim.wall())], lambda _r: None)
        elif method == "ack":
            self.propose([ActionAcked(params["action_id"], node, params["status"], params["errno"],
                                      self.sim.wall())], lambda _r: None)


# ---------------------------------------------------------------------------------- the sim


@attrs.define
class ClientOp:
    """One client call, retried with the same request id until it resolves, as the real
    client does: ``ok``/``fail`` once committed; a call still unresolved at the end is
    ``unknown``."""

    kind: str  # submit | cancel | suspend | resume | signal
    name: str
    request_id: str
    invoked: float
    make: Callable[[], Op | None] = attrs.field(eq=False, repr=False)
    outcome: str = "pending"  # pending | ok | fail | unknown
    result: Any = None
    sent_at: float = -1e9
    attempts: int = 0


class Sim:
    def __init__(self, seed: int, replicas: int = 3, nodes: int = 2, cpus: int = 2,
                 election_timeout: float = 0.5, node_timeout: float = 10.0, kill_wait: float = 1.0,
                 fence_timeout: float = 5.0, requeue_delay: float = 1.0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0.0
        self.net = Network(self.rng)
        self.replicas = [SimReplica(i + 1) for i in range(replicas)]
        self.log = SimLog(self.replicas, self.net, election_timeout)
        # Fencing and requeue on NODE_FAIL as spurctld runs them: the checker proves no run of a
        # requeued job overlaps the run its failed node was still fencing.
        self.fence_timeout = fence_timeout
        # The SIGTERM -> SIGKILL grace of fencing, as spurio.config's ``fence`` gives it.
        self.fence_grace = max(0.0, min(kill_wait, node_timeout - fence_timeout - max(1.0, node_timeout * 0.1)))
        self.cfg = leader.LeaderConfig(node_timeout=node_timeout, min_job_age=10**9, kill_wait=kill_wait,
                                       fenced=fence_timeout > 0, job_requeue=True, requeue_delay=requeue_delay)
        self.ctl = SimController(self)
        self.agents = {f"node{i + 1}": SimAgent(self, f"node{i + 1}", cpus) for i in range(nodes)}
        self.history: list[ClientOp] = []
        self.started: list[tuple[tuple[int, int], str, float]] = []
        self.violations: list[str] = []
        self.names: dict[str, int] = {}  # submission name -> job id, once acknowledged

    def wall(self) -> float:
        return EPOCH + self.now

    # --- client operations (retried with the same request id until they resolve) -------

    def submit(self, name: str, script: str, **spec_fields: Any) -> ClientOp:
        spec = JobSpec(name, "alice", 1000, 100, "#!/bin/sh\n" + script + "\n", (), {}, "/home/alice",
                       **spec_fields)
        op = ClientOp("submit", name, f"sub-{name}", self.now,
                      lambda: JobSubmitted(f"sub-{name}", spec, self.wall()))
        self.history.append(op)
        return op

    def cancel(self, name: str) -> ClientOp:
        return self._action("cancel", "can", name, ActionKind.KILL, 1000)

    def suspend(self, name: str) -> ClientOp:
        """scontrol suspend (an operator's)."""
        return self._action("suspend", "sus", name, ActionKind.STOP, 0)

    def resume(self, name: str) -> ClientOp:
        return self._action("resume", "res", name, ActionKind.CONT, 0)

    def signal(self, name: str, sig: int, target: SignalTarget = SignalTarget.STEPS) -> ClientOp:
        """scancel -s SIG (``--batch``, ``--full``: ``target``)."""
        return self._action("signal", "sig", name, ActionKind.SIGNAL, 1000, sig, target)

    def _action(self, kind: str, prefix: str, name: str, action: ActionKind, uid: int, sig: int = 0,
                target: SignalTarget = SignalTarget.STEPS) -> ClientOp:
        rid = f"{prefix}-{name}-{len(self.history)}"

        def make() -> Op | None:
            job_id = self.names.get(name)
            if job_id is None:
                return None  # its submit is not acknowledged yet: wait
            return ActionRequested(rid, job_id, -1, action, sig, target, uid, self.wall())

        op = ClientOp(kind, name, rid, self.now, make)
        self.history.append(op)
        return op

    def _clients(self) -> None:
        """Clients send each unresolved call to the leader they know and retry it (same
        request id) when no answer came within a second: a lost request, a lost reply and a
        leader change all look the same to a client."""
        ldr = self.log.leader
        target = ldr.name if ldr is not None else "ctld1"
        for index, op in enumerate(self.history):
            if op.outcome != "pending" or self.now - op.sent_at < 1.0:
                continue
            op.attempts += 1
            op.sent_at = self.now
            self.net.send(self.now, "client", target, ("client", index))

    def _on_client_request(self, dst: str, index: int) -> None:
        ldr = self.log.leader
        if ldr is None or dst != ldr.name:
            return  # a follower: the client retries elsewhere
        call = self.history[index].make()
        if call is None:
            return

        def answer(results: list[Any] | None) -> None:
            if results:
                self.net.send(self.now, ldr.name, "client", ("reply", index, results[0]))

        self.ctl.propose([call], answer)

    def _on_reply(self, index: int, result: Any) -> None:
        op = self.history[index]
        if op.outcome != "pending":
            return  # a duplicate reply
        if isinstance(result, Rejected):
            op.outcome, op.result = "fail", result.message
        else:
            op.outcome, op.result = "ok", result
            if op.kind == "submit":
                self.names[op.name] = result

    # --- applying -----------------------------------------------------------------------

    def _on_apply(self, replica: SimReplica, op: Op, info: Any) -> None:
        before, _result = info
        gone = before - _intents(replica.state)
        if gone and not isinstance(op, ActionAcked):
            self.violations.append(f"replica {replica.rid}: {type(op).__name__} cleared intents {sorted(gone)}")
        if isinstance(op, ActionAcked):
            extra = gone - {(op.action_id, op.node)}
            if extra:
                self.violations.append(f"ActionAcked cleared other intents {sorted(extra)}")

    def _settle(self) -> None:
        """Replicas apply what is committed; waiters of applied leader entries are answered."""
        for replica in self.replicas:
            if replica.alive:
                replica.apply_committed(self._on_apply)
        ldr = self.log.leader
        if ldr is None:
            return
        for index in range(ldr.applied):
            entry = ldr.log[index]
            if entry.waiters:
                waiters, entry.waiters = entry.waiters, []
                results = ldr.results[index] if index < len(ldr.results) else []
                for w in waiters:
                    w(results)

    # --- faults ---------------------------------------------------------------------------

    def replica(self, which: str) -> SimReplica:
        if which == "leader":
            assert self.log.leader is not None, "no leader to name"
            return self.log.leader
        return self.replicas[int(which) - 1]

    def crash_replica(self, which: str) -> None:
        r = self.replica(which)
        r.alive = False

    def restart_replica(self, which: str) -> None:
        r = self.replica(which)
        if not r.alive:
            r.restart()

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        named = []
        for group in groups:
            g: set[str] = set()
            for member in group:
                if member.isdigit():
                    g.add(f"ctld{member}")
                elif member == "leader":
                    g.add(self.replica("leader").name)
                else:
                    g.add(f"agent-{member}")
            named.append(g)
        everyone = {r.name for r in self.replicas} | {a.name for a in self.agents.values()} | {"client"}
        rest = everyone - set().union(*named)
        if rest:  # endpoints not named stay with the first group
            named[0] |= rest
        self.net.groups = named

    def heal(self) -> None:
        self.net.groups = None
        self.net.drop = self.net.dup = 0.0

    # --- running --------------------------------------------------------------------------

    def step(self) -> None:
        self.now = round(self.now + TICK, 6)
        for agent in self.agents.values():  # the supervisors first: they run whatever else fails
            agent.procs.advance_to(self.now)
        self.log.tick(self.now)
        for src, dst, msg in self.net.due(self.now):
            self._deliver(src, dst, msg)
        self._settle()
        self._clients()
        self.ctl.tick(self.now)
        for agent in self.agents.values():
            agent.tick(self.now)
        self._check_running()

    def _deliver(self, src: str, dst: str, msg: Any) -> None:
        if msg[0] == "client":
            self._on_client_request(dst, msg[1])
        elif msg[0] == "reply":
            self._on_reply(msg[1], msg[2])
        elif msg[0] == "agent":
            ldr = self.log.leader
            if ldr is not None and dst == ldr.name:
                _, node, method, params = msg
                self.ctl.on_agent(src, node, method, params)
        elif msg[0] == "ctld":
            agent = self.agents.get(dst.removeprefix("agent-"))
            if agent is not None:
                agent.receive(msg[1], msg[2])

    def run_until(self, t: float) -> None:
        while self.now < t - 1e-9:
            self.step()

    def quiesce(self, limit: float = 600.0) -> None:
        """Heal, restart everything, and run until every job has ended and every replica
        has applied everything (or ``limit`` seconds of sim time pass)."""
        self.heal()
        for r in self.replicas:
            if not r.alive:
                r.restart()
        for a in self.agents.values():
            if not a.alive:
                a.restart()
        end = self.now + limit
        while self.now < end:
            self.step()
            ldr = self.log.leader
            if ldr is None or any(op.outcome == "pending" for op in self.history):
                continue
            busy = [j for j in ldr.state.jobs.values() if not j.terminal or j.completing]
            synced = all(r.applied == len(ldr.log) == r.commit for r in self.replicas)
            if not busy and synced and not ldr.state.actions and not ldr.state.unlaunched:
                return
        raise AssertionError(f"seed {self.seed}: not quiescent after {limit} s of sim time")

    # --- checks ---------------------------------------------------------------------------

    def _check_running(self) -> None:
        running: dict[int, set[str]] = {}
        for agent in self.agents.values():
            for job_id, _ in agent.live():
                running.setdefault(job_id, set()).add(agent.node)
        for job_id, nodes in running.items():
            if len(nodes) > 1:
                self.violations.append(f"t={self.now}: job {job_id} runs on {sorted(nodes)} at once")

    def check(self) -> None:
        ldr = self.log.leader
        assert ldr is not None
        for op in self.history:
            if op.outcome == "pending":
                op.outcome = "unknown"
        problems = list(self.violations)
        starts = [key for key, _, _ in self.started]
        for key in {k for k in starts if starts.count(k) > 1}:
            problems.append(f"job run {key} started {starts.count(key)} times")
        for op in self.history:
            if op.kind == "submit" and op.outcome == "ok":
                jobs = [j for j in ldr.state.jobs.values() if j.spec.name == op.name]
                if len(jobs) != 1:
                    problems.append(f"acknowledged submit {op.name} exists {len(jobs)} times")
            if op.kind == "cancel" and op.outcome == "ok":
                job = ldr.state.jobs.get(self.names[op.name])
                if job is None or not job.terminal:
                    problems.append(f"acknowledged cancel of {op.name} did not end it")
        digests = {r.rid: digest(r.state) for r in self.replicas}
        if len(set(digests.values())) != 1:
            problems.append(f"replica digests differ: {digests}")
        if problems:
            raise AssertionError(f"seed {self.seed}: " + "; ".join(problems))

    # --- views ----------------------------------------------------------------------------

    def infos(self) -> list[dict[str, Any]]:
        ldr = self.log.leader
        assert ldr is not None
        from spurcore.scheduler import pending_reasons

        reasons = pending_reasons(ldr.state, self.wall())
        return [job_info(j, ldr.state, self.wall(), reasons.get(j.job_id)) for j in ldr.state.jobs.values()]

    def figures(self) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for op in self.history:
            outcomes[op.outcome] = outcomes.get(op.outcome, 0) + 1
        return {"seed": self.seed, "sim_seconds": round(self.now, 2), "elections": self.log.elections,
                "messages": self.net.sent, "dropped": self.net.dropped, "duplicated": self.net.duplicated,
                "fenced": sum(1 for a in self.agents.values() for r in a.procs.runs.values() if r.fenced),
                "requeued": sum(1 for j in self.log.leader.state.jobs.values() if j.restarts) if self.log.leader else 0,
                "ops": outcomes, "jobs": len(self.log.leader.state.jobs) if self.log.leader else 0,
                "states": sorted({j.state.value for j in self.log.leader.state.jobs.values()})
                if self.log.leader else []}


__all__ = ["Sim", "JobState"]
