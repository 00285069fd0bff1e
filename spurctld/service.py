"""The controller process: RPC service, group commit, and the leader's duties.

The order of work on the leader (etcd's "Ready" contract, in one place):
  1. read state (under the lock, briefly) and ask spurcore what to do: ``schedule``,
     time limits, node liveness, purges, ``pending_starts`` / ``pending_actions``;
  2. propose the resulting ops and wait until they are committed and durable;
  3. only then send to agents what state says they must still be told.
Nothing in step 3 is remembered across a failover except what state holds: the new
leader recomputes its to-do list from state and re-sends (agents are idempotent).

Leader duties run only while this replica is the leader *and* has applied every entry of
earlier terms; they are fenced by the term in which they were decided.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import pwd
import re
import threading
import time
from typing import Any

import attrs
import msgpack

from spurcore import arrays, leader, messages
from spurcore.codec import encode_batch
from spurcore.model import COMPACT, JobState
from spurcore.ops import (
    ActionAcked,
    ActionKind,
    ActionRequested,
    ArrayTasksSplit,
    JobHeld,
    JobLaunched,
    JobNodeComplete,
    JobReleased,
    JobRequeued,
    JobSpec,
    JobStepComplete,
    JobSubmitted,
    JobUpdated,
    NodeRegistered,
    Op,
    SignalTarget,
    StepCreated,
)
from spurcore.reduce import Rejected
from spurcore.scheduler import pending_reasons, schedule
from spurcore.schema import BadRequest, structure
from spurcore.views import job_info, node_info, refresh_info
from spurctld.replica import Replica
from spurctld.schedrpc import SchedulingMethods
from spurio import rpc
from spurio.config import Config, ConfigError
from spurio.rpc import RpcError

log = logging.getLogger("spurctld")

ACCESS_DENIED = RpcError("access_denied", "Access/permission denied")
INVALID_JOB = RpcError("invalid_job_id", "Invalid job id specified")
INVALID_USER = RpcError("invalid_user", "Invalid user id")  # Slurm's ESLURM_USER_ID_MISSING
RESEND_AFTER = 5.0
READ_SLICE = 512  # jobs rendered per hold of the state lock
MAX_BATCH = 4000
SPEC_FIELDS = {f.name for f in attrs.fields(JobSpec)}
INVALID_ARRAY = RpcError("invalid_array", "Invalid job array specification")
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# What each JobSpec field must be on the wire (validated before anything is proposed).
_STR, _INT, _FLOAT = ("str",), ("int",), ("float",)
_SPEC_TYPES: dict[str, tuple[str, ...]] = {
    f.name: (
        ("str", "none") if f.type in ("str | None",) else
        ("int", "none") if f.type in ("int | None",) else
        ("float",) if f.type == "float" else
        ("int",) if f.type == "int" else
        ("bool",) if f.type == "bool" else
        ("strs",) if f.type.startswith("tuple") else
        ("map",) if f.type.startswith("dict") else
        ("str",)
    )
    for f in attrs.fields(JobSpec)
}


def _check_spec_value(name: str, value: Any) -> Any:
    """``value`` as JobSpec field ``name`` wants it, or RpcError(bad_request) naming it."""
    kinds = _SPEC_TYPES[name]
    if value is None and "none" in kinds:
        return None
    kind = kinds[0]
    if kind == "str" and isinstance(value, str) and "\x00" not in value:
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63:
        return value
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "strs" and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if kind == "map" and isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return value
    expected = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
                "strs": "a list of strings", "map": "a map of strings"}[kind]
    raise RpcError("bad_request", f"Invalid job specification: {name} must be {expected}")


@attrs.frozen
class Identity:
    user: str
    uid: int
    role: str  # admin, operator, user, viewer, node

    @property
    def privileged(self) -> bool:
        return self.role in ("admin", "operator")


def _since_process_start() -> float:
    """Seconds since this process was created (from /proc), for start-up logging."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return -1.0


@functools.lru_cache(maxsize=4096)
def _passwd(uid: int) -> tuple[str, int]:
    """(name, primary gid) of ``uid``; cached: reading /etc/passwd per request is slow."""
    try:
        pw = pwd.getpwuid(uid)
        return pw.pw_name, pw.pw_gid
    except KeyError:
        return str(uid), uid


def _user_name(uid: int) -> str:
    return _passwd(uid)[0]


class Controller(SchedulingMethods):
    """One replica's process: the pysyncobj replica plus its asyncio RPC service."""

    def __init__(self, config: Config, rid: int) -> None:
        self.config = config
        self.rid = rid
        self.me = config.replica(rid)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.replica: Replica | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._servers: list[asyncio.AbstractServer] = []
        self._queue: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        # leader memory: rebuilt from state whenever this replica becomes leader
        self.agents: dict[str, rpc.RpcConnection] = {}
        self._lead_term = -1
        self._sent: dict[tuple[str, int, str], float] = {}
        self._last_seen: dict[str, float] = {}
        self._inflight: set[tuple[str, Any]] = set()
        self._leader_conn: rpc.RpcConnection | None = None
        self._leader_conn_for: str | None = None
        self._admin_uids = {0, os.getuid()}
        self._ready = threading.Event()
        self._info_cache: dict[int, dict[str, Any]] = {}  # job id -> info record (see m_jobs)
        self._leader_cfg = leader.LeaderConfig(
            node_timeout=config.node_timeout, min_job_age=config.min_job_age, kill_wait=config.kill_wait,
            suspend_grace=config.suspend_grace, kill_invalid_depend=config.kill_invalid_depend,
            fenced=config.fence[0] > 0, job_requeue=bool(config.job_requeue), requeue_delay=config.requeue_delay,
        )

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.replica = Replica(self.config, self.rid, on_applied=self._on_applied)
        handler = rpc.Dispatcher(self._typed_methods())
        if self.me.socket:
            os.makedirs(os.path.dirname(self.me.socket), exist_ok=True)
            self._servers.append(await rpc.serve_unix(self.me.socket, handler, on_connect=self._on_connect))
        if self.me.rpc and self.config.tls_cert:
            host, _, port = self.me.rpc.rpartition(":")
            ctx = rpc.server_ssl_context(self.config.tls_cert, self.config.tls_key, self.config.tls_ca)
            self._servers.append(await rpc.serve_tcp(host, int(port), handler, ctx, on_connect=self._on_connect))
        self._tasks = [asyncio.create_task(self._leader_loop())]
        self._ready.set()
        log.info("spurctld %d serving (raft %s, socket %s, rpc %s) %.3f s after process start",
                 self.rid, self.me.raft, self.me.socket, self.me.rpc, _since_process_start())

    async def stop(self) -> None:
        self._stopping = True
        for task in getattr(self, "_tasks", []):
            task.cancel()
        for server in self._servers:
            server.close()
        for conn in list(self.agents.values()):
            conn.close()
        if self._leader_conn is not None:
            self._leader_conn.close()
        if self.replica is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.replica.close)
        if self.me.socket and os.path.exists(self.me.socket):
            try:
                os.unlink(self.me.socket)
            except OSError:
                pass

    def _on_applied(self) -> None:  # tick thread
        loop, wake = self.loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def _on_connect(self, conn: rpc.RpcConnection) -> None:
        conn.max_reply_frame = rpc.MAX_REPLY_FRAME  # squeue of 100,000 jobs is ~60 MB
        async def forget() -> None:
            await conn.closed()
            name = conn.data.get("node")
            if name and self.agents.get(name) is conn:
                del self.agents[name]

        asyncio.ensure_future(forget())

    # --- group commit --------------------------------------------------------------------

    def propose(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op`` for the next replicated entry; the future gets its result."""
        assert self.loop is not None
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._queue.append((op, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        assert self.replica is not None and self.loop is not None
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            futures = [f for _, f in batch]
            if self.replica.leader_address() is None:
                for f in futures:
                    if not f.done():
                        f.set_exception(RpcError("no_leader", "no leader"))
                continue

            def done(
                results: list[Any] | None, err: str | None, futures: list = futures, loop: Any = self.loop
            ) -> None:
                loop.call_soon_threadsafe(self._resolve, futures, results, err)

            self.replica.propose(encode_batch(op for op, _ in batch), done)

    @staticmethod
    def _resolve(futures: list[asyncio.Future[Any]], results: list[Any] | None, err: str | None) -> None:
        for i, fut in enumerate(futures):
            if fut.done():
                continue
            if err is not None or results is None:
                fut.set_exception(RpcError(err or "unknown_outcome", err or "unknown outcome"))
            else:
                fut.set_result(results[i])

    async def commit(self, op: Op, timeout: float = 5.0) -> Any:
        """Propose and wait; a ``Rejected`` result becomes an RpcError with Slurm's words."""
        try:
            result = await asyncio.wait_for(self.propose(op), timeout)
        except TimeoutError:
            raise RpcError("timeout", "timed out waiting for the log to commit") from None
        if isinstance(result, Rejected):
            raise RpcError(result.code, result.message)
        return result

    # --- identity --------------------------------------------------------------------------

    def identity(self, conn: rpc.RpcConnection) -> Identity:
        peer = conn.peer or {}
        if peer.get("transport") == "unix":
            uid = int(peer.get("uid", -1))
            if uid in self._admin_uids:
                role = "admin"
            elif uid in self.config.operators:
                role = "operator"
            else:
                role = "user"
            return Identity(_user_name(uid), uid, role)
        cn, ou = peer.get("cn"), peer.get("ou")
        if not cn:
            raise ACCESS_DENIED
        try:
            uid = pwd.getpwnam(cn).pw_uid
        except KeyError:
            uid = -1
        role = ou if ou in ("admin", "operator", "user", "viewer", "node") else "viewer"
        return Identity(cn, uid, role)

    def _writer(self, conn: rpc.RpcConnection) -> Identity:
        ident = self.identity(conn)
        if ident.role == "viewer":
            raise ACCESS_DENIED
        if ident.uid < 0 and ident.role in ("user", "operator"):
            raise INVALID_USER  # a certificate whose CN this cluster cannot resolve to a uid
        return ident

    def _job_owner_check(self, ident: Identity, job_id: int) -> Any:
        assert self.replica is not None
        with self.replica.state_lock:
            job = self.replica.state.jobs.get(job_id)
        if job is None:
            raise INVALID_JOB
        owner = job.spec.uid == ident.uid and job.spec.user == ident.user
        if not ident.privileged and ident.role != "node" and not owner:
            raise ACCESS_DENIED
        return job

    # --- methods -------------------------------------------------------------------------

    def _typed_methods(self) -> dict[str, Any]:
        """Every method behind its request schema (spurcore.messages): the raw map is
        structured and validated before the handler runs, which reads the validated values
        (``to_params``). A bad request is ``bad_request`` naming the field and the rule."""
        methods = self._methods()
        missing = sorted(set(methods) - set(messages.REQUESTS))
        if missing:
            raise RuntimeError(f"methods without a request schema: {missing}")

        def typed(name: str, fn: Any) -> Any:
            cls = messages.REQUESTS[name]

            async def handler(conn: rpc.RpcConnection, params: dict[str, Any]) -> Any:
                try:
                    msg = structure(cls, params)
                except BadRequest as exc:
                    raise RpcError("bad_request", f"{name}: {exc}") from None
                return await fn(conn, messages.to_params(msg))

            return handler

        return {name: typed(name, fn) for name, fn in methods.items()}

    def _methods(self) -> dict[str, Any]:
        return {
            "ping": self.m_ping,
            "submit": self.m_submit,
            "signal": self.m_signal,
            "signal_many": self.m_signal_many,
            "hold": self.m_hold,
            "release": self.m_release,
            "requeue": self.m_requeue,
            "update_job": self.m_update_job,
            "config": self.m_config,
            "jobs": self.m_jobs,
            "nodes": self.m_nodes,
            "step_create": self.m_step_create,
            "job_complete": self.m_job_complete,
            "history": self.m_history,
            "job_at": self.m_job_at,
            "digest": self.m_digest,
            "node_register": self.m_node_register,
            "heartbeat": self.m_heartbeat,
            "report": self.m_report,
            "launched": self.m_launched,
            "ack": self.m_ack,
            **self._sched_methods(),
        }

    def _endpoint_of(self, raft_addr: str | None, *, remote: bool = False) -> str:
        """How to reach the replica at ``raft_addr``: its Unix socket when it is on this
        host (the file exists here), else its TLS address. ``remote``: for a peer that may
        be elsewhere (an agent), the TLS address whenever there is one."""
        for r in self.config.replicas:
            if r.raft == raft_addr:
                if r.socket and not (remote and r.rpc) and (os.path.exists(r.socket) or not r.rpc):
                    return f"unix:{r.socket}"
                return f"tcp:{r.rpc}" if r.rpc else f"unix:{r.socket}"
        return ""

    async def m_ping(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """This replica's own view (never forwarded). ``agents``: on a leader running its
        duties, seconds since each node's agent was last heard (``None``: not since this
        replica became leader) and whether it is connected here; empty elsewhere."""
        assert self.replica is not None
        replica = self.replica
        leader = replica.leader_address()
        agents: dict[str, dict[str, Any]] = {}
        if self._lead_term != -1:
            now_m = time.monotonic()
            with replica.state_lock:
                names = sorted(replica.state.nodes)
            for name in names:
                seen = self._last_seen.get(name)
                agents[name] = {
                    "last_contact": None if seen is None else round(now_m - seen, 3),
                    "connected": name in self.agents,
                }
        return {
            "id": self.rid,
            "leader": replica._isLeader(),
            "ready": replica.leader_ready(),
            "term": replica.term,
            "leader_endpoint": self._endpoint_of(leader),
            "applied_index": replica.applied_index,
            "commit_index": replica.raftCommitIndex,
            "pid": os.getpid(),
            "failed": replica.failed,
            "raft": dict(replica.raft_stats),
            "agents": agents,
        }

    async def m_digest(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        assert self.replica is not None
        digest, index = await asyncio.get_running_loop().run_in_executor(None, self.replica.digest)
        return {"digest": digest, "applied_index": index}

    def _spec_from(self, ident: Identity, raw: Any) -> JobSpec:
        if not isinstance(raw, dict):
            raise RpcError("bad_request", "Invalid job specification")
        fields = {k: v for k, v in raw.items() if k in SPEC_FIELDS}
        if not ident.privileged or "uid" not in fields:
            fields["uid"] = ident.uid
            fields["user"] = ident.user
            if not ident.privileged or "gid" not in fields:
                fields["gid"] = _passwd(ident.uid)[1]
        fields.setdefault("name", "sbatch")
        fields.setdefault("script", None)
        fields.setdefault("argv", ())
        fields.setdefault("env", {})
        fields.setdefault("cwd", "/")
        fields = {k: _check_spec_value(k, v) for k, v in fields.items()}
        if fields["uid"] < 0 or fields.get("gid", 0) < 0:
            raise INVALID_USER
        try:
            spec = JobSpec(**fields)
        except TypeError as exc:
            raise RpcError("bad_request", f"Invalid job specification: {exc}") from None
        if spec.array:
            if spec.script is None:
                raise INVALID_ARRAY
            try:
                arrays.parse_array(spec.array, self.config.max_array_size)
            except arrays.ArrayError:
                raise INVALID_ARRAY from None
        return spec

    async def m_submit(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        spec = self._spec_from(ident, params.get("spec"))
        if params.get("test_only"):
            return self._will_run(spec)
        job_id = await self.commit(JobSubmitted(str(params.get("request_id", "")), spec, time.time()))
        return {"job_id": job_id}

    def _will_run(self, spec: JobSpec) -> dict[str, Any]:
        """``sbatch --test-only``: where and when the job would start, on a copy of the state
        (nothing is proposed). Slurm: ``Job N to start at T using C processors on nodes L``."""
        import copy

        from spurcore.hostlist import compress
        from spurcore.reduce import apply

        assert self.replica is not None
        now = time.time()
        with self.replica.state_lock:
            state = copy.deepcopy(self.replica.state)
        job_id = apply(state, JobSubmitted("", spec, now))
        if isinstance(job_id, Rejected):
            raise RpcError(job_id.code, job_id.message)
        # Run the queue forward on the copy: running jobs end at their time limits.
        t = now
        for _ in range(10000):
            for start in schedule(state, t):
                apply(state, start)
                started = state.jobs.get(start.job_id)
                if start.job_id == job_id and started is not None:
                    nodes = started.nodes
                    return {"job_id": job_id, "start_time": t, "nodes": compress(nodes),
                            "partition": spec.partition, "cpus": started.cpus_per_node * len(nodes)}
            ends = sorted(j.start_time + j.suspended_secs + j.spec.time_limit for j in state.jobs.values()
                          if j.state is JobState.RUNNING and j.spec.time_limit is not None
                          and j.start_time + j.suspended_secs + j.spec.time_limit > t)
            if not ends:
                break
            t = ends[0]
            for j in list(state.jobs.values()):
                if j.state is JobState.RUNNING and j.spec.time_limit is not None \
                        and j.start_time + j.suspended_secs + j.spec.time_limit <= t:
                    apply(state, JobNodeComplete(j.job_id, j.batch_host, 0, 0, False, t))
        raise RpcError("not_startable", "Requested node configuration is not available")

    async def m_signal_many(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """Many ``signal`` requests in one call (``scancel -u`` of a whole queue): they are
        proposed together, so they share replicated entries instead of one commit each.
        Each result is ``{"action_id": N}`` or ``{"error": {"code", "message"}}``."""
        requests = params.get("requests")
        if not isinstance(requests, list):
            raise RpcError("bad_request", "requests must be a list")

        async def one(request: Any) -> dict[str, Any]:
            try:
                if not isinstance(request, dict):
                    raise RpcError("bad_request", "each request must be a map")
                return await self.m_signal(conn, request)
            except RpcError as exc:
                return {"error": exc.to_wire()}

        return {"results": await asyncio.gather(*(one(r) for r in requests))}

    # --- job references: 123, 123_4, 123_[1-3] -------------------------------------------

    def _parse_ref(self, params: dict[str, Any]) -> tuple[int, list[int] | None]:
        """(job id, task indexes or None for the job / the whole array) from ``job_ref``
        (``"123"``, ``"123_4"``, ``"123_[1-3]"``) or ``job_id``."""
        ref = params.get("job_ref")
        if ref is None:
            job_id = params.get("job_id", 0)
            if not isinstance(job_id, int) or isinstance(job_id, bool) or not 0 < job_id < 2**32:
                raise INVALID_JOB
            return job_id, None
        if not isinstance(ref, str):
            raise RpcError("bad_request", "job_ref must be a string")
        head, sep, tasks = ref.strip().partition("_")
        if not (head.isascii() and head.isdigit()) or not 0 < int(head) < 2**32:
            raise INVALID_JOB
        if not sep:
            return int(head), None
        try:
            ranges, _ = arrays.parse_array(tasks.strip("[]"), arrays.DEFAULT_MAX_ARRAY_SIZE * 4000)
        except arrays.ArrayError:
            raise INVALID_JOB from None
        if arrays.count(ranges) > 100_000:
            raise RpcError("bad_request", "too many array tasks in one reference")
        return int(head), list(arrays.indexes(ranges))

    async def _resolve_ref(self, ident: Identity, params: dict[str, Any], *, split: bool = True) -> list[int]:
        """The job ids a reference names, each checked for ownership. ``123`` is every
        record of array 123; ``123_4`` a task, split off its array's pending record first
        when ``split`` (Slurm splits a task that is acted on alone)."""
        head, tasks = self._parse_ref(params)
        assert self.replica is not None
        with self.replica.state_lock:
            state = self.replica.state
            members = state.array_members.get(head)
            if tasks is None:
                ids = sorted(members) if members and head in members else [head]
            elif not members:
                job = state.jobs.get(head)
                # Slurm accepts 123_N for a plain job only as nothing: invalid
                ids = [head] if job is not None and job.array_task_id in tasks else []
                if not ids:
                    raise INVALID_JOB
            else:
                by_task = {state.jobs[j].array_task_id: j for j in members if state.jobs[j].array_task_id >= 0}
                ids = [by_task[t] for t in tasks if t in by_task]
                missing = tuple(t for t in tasks if t not in by_task)
        if tasks is not None and members and missing:
            if not split:
                raise INVALID_JOB
            self._job_owner_check(ident, head)
            result = await self.commit(ArrayTasksSplit(head, missing, time.time()))
            ids = sorted(set(ids) | set(result.values()))
            if len(result) < len(missing):
                raise INVALID_JOB
        for job_id in ids:
            self._job_owner_check(ident, job_id)
        return ids

    async def _each(self, ids: list[int], make: Any, *, quiet: set[str] = frozenset()) -> list[Any]:
        """Commit ``make(job_id)`` for every id. One id: its error propagates. Several (a
        whole array): errors in ``quiet`` are skipped (Slurm ignores finished tasks when an
        array is cancelled), any other is raised once every op has been tried."""
        if len(ids) == 1:
            return [await self.commit(make(ids[0]))]
        results, first_error = [], None
        for fut in [self.propose(make(j)) for j in ids]:
            result = await asyncio.wait_for(fut, 10.0)
            if isinstance(result, Rejected):
                if result.code not in quiet and first_error is None:
                    first_error = RpcError(result.code, result.message)
                continue
            results.append(result)
        if first_error is not None and not results:
            raise first_error
        return results

    async def m_signal(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        kind = params.get("kind", ActionKind.KILL)
        if not isinstance(kind, int) or kind not in {k.value for k in ActionKind}:
            raise RpcError("bad_request", f"unknown action kind {kind!r}")
        ids = await self._resolve_ref(ident, params)
        if kind in (ActionKind.STOP, ActionKind.CONT) and not ident.privileged:
            raise ACCESS_DENIED
        target, step_id, signal = params.get("target", SignalTarget.STEPS), params.get("step_id", -1), params.get("signal", 0)
        if target not in {t.value for t in SignalTarget}:
            raise RpcError("bad_request", "target must be 0, 1 or 2")
        if not isinstance(step_id, int) or not -1 <= step_id < 2**31:
            raise RpcError("bad_request", "step_id must be an integer >= -1")
        if not isinstance(signal, int) or not 0 <= signal <= 64:
            raise RpcError("bad_request", "signal must be a signal number (0-64)")
        request_id = str(params.get("request_id", ""))
        now = time.time()

        def make(job_id: int) -> Op:
            rid = request_id if len(ids) == 1 or not request_id else f"{request_id}:{job_id}"
            return ActionRequested(rid, job_id, step_id, kind, signal, target, ident.uid, now)

        results = await self._each(ids, make, quiet={"already_done", "job_pending"})
        return {"action_id": results[-1] if results else 0}

    async def m_hold(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        ids = await self._resolve_ref(ident, params)
        admin = ident.privileged and not params.get("user_hold", False)
        now = time.time()
        await self._each(ids, lambda j: JobHeld(j, ident.uid, admin, now), quiet={"already_done"})
        return {}

    async def m_release(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        ids = await self._resolve_ref(ident, params)
        assert self.replica is not None
        with self.replica.state_lock:
            admin_held = any(
                (job := self.replica.state.jobs.get(j)) is not None and job.hold == 2 for j in ids
            )
        if admin_held and not ident.privileged:
            raise ACCESS_DENIED
        now = time.time()
        await self._each(ids, lambda j: JobReleased(j, ident.uid, now), quiet={"already_done"})
        return {}

    async def m_requeue(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        ids = await self._resolve_ref(ident, params)
        hold, now = bool(params.get("hold", False)), time.time()
        begin = now + self.config.requeue_delay
        await self._each(ids, lambda j: JobRequeued(j, ident.uid, hold, now, begin), quiet={"not_running"})
        return {}

    async def m_update_job(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """``scontrol update job``: ``changes`` in Slurm's field names, values parsed by the
        tool; the reducer applies all of them or none, for each record referenced."""
        ident = self._writer(conn)
        changes = params.get("changes")
        if not isinstance(changes, dict) or not changes or not all(isinstance(k, str) for k in changes):
            raise RpcError("bad_request", "changes must be a non-empty map of field names")
        from spurcore.reduce import UPDATABLE

        unknown = sorted(set(changes) - set(UPDATABLE))
        if unknown:
            raise RpcError("bad_request", f"Update of {unknown[0]} is not supported")
        ids = await self._resolve_ref(ident, params)
        admin, now = ident.privileged, time.time()
        await self._each(ids, lambda j: JobUpdated(j, ident.uid, admin, dict(changes), now))
        return {}

    async def m_config(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """``scontrol show config``: the settings Spur has, under Slurm's names."""
        self.identity(conn)
        c = self.config
        return {"config": {
            "ClusterName": c.name,
            "JobRequeue": int(c.job_requeue),
            "KillWait": int(c.kill_wait),
            "MaxArraySize": int(c.max_array_size),
            "MinJobAge": int(c.min_job_age),
            "SchedulerParameters": "kill_invalid_depend" if c.kill_invalid_depend else "(null)",
            "SchedulerType": "sched/builtin",
            "SlurmctldHost": [f"spurctld-{r.id}({r.rpc or r.socket})" for r in c.replicas],
            "SlurmctldTimeout": int(c.node_timeout),
            "SlurmdTimeout": int(c.node_timeout),
            "StateSaveLocation": c.state_dir,
            "SuspendTime": "NONE",
            "SlurmctldParameters": "(null)",
            "MessageTimeout": 10,
            "HealthCheckInterval": 0,
            "SchedulerTimeSlice": 30,
            "KillOnBadExit": 0,
            "MpiDefault": "pmi2",
            "ProctrackType": "proctrack/cgroup",
            "TaskPlugin": "task/none",
            "SlurmdSpoolDir": c.agent_dir,
            "AuthType": "auth/munge" if not c.tls_ca else "auth/tls",
            "SLURM_VERSION": "25.11.0",
        }}

    async def m_step_create(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """A new step: the leader lays it out (``spurcore.steps.plan``) and commits a
        ``StepCreated`` carrying the layout. A step that does not fit yet only because
        other steps hold the CPUs waits here up to ``wait`` seconds (re-planned as steps
        end), then the caller gets ``nodes_busy`` and retries, as Slurm's srun does."""
        from spurcore import steps
        from spurcore.hostlist import compress

        ident = self._writer(conn)
        job_id = int(params.get("job_id", 0))
        self._job_owner_check(ident, job_id)
        argv = tuple(str(a) for a in params.get("argv", ()))
        req = self._step_request(params)
        deadline = time.monotonic() + max(0.0, min(float(params.get("wait") or 0), 600.0))
        request_id = str(params.get("request_id", ""))
        assert self.replica is not None
        while True:
            with self.replica.state_lock:
                state = self.replica.state
                job = state.jobs.get(job_id)
                known = state.requests.get(request_id) if request_id else None
                if job is None:
                    raise INVALID_JOB
                layout = None if known is not None else steps.plan(job.nodes, job.cpus_per_node, job.step_cpus, req)
            if isinstance(layout, steps.StepRefusal):
                if job.state is JobState.RUNNING and not job.completing:
                    if not layout.busy or time.monotonic() >= deadline:
                        raise RpcError(layout.code, layout.message)
                    await asyncio.sleep(0.05)
                    continue
                layout = None  # the reducer refuses it in the job's words
            op = StepCreated(
                request_id, job_id, str(params.get("name", argv[0] if argv else "")), argv, req.ntasks, "",
                ident.uid, time.time(),
                *(() if layout is None else (
                    layout.nodes, layout.task_counts, tuple(t for ts in layout.tasks for t in ts), layout.cpus,
                    layout.overlap, req.cpus_per_task, req.distribution)),
            )
            try:
                step_id = await self.commit(op)
            except RpcError as exc:
                if exc.code == "nodes_busy" and time.monotonic() < deadline:
                    continue  # another step got there first
                raise
            break
        with self.replica.state_lock:
            state = self.replica.state
            job = state.jobs[job_id]
            step = job.steps[step_id]
            nodes = [{"name": n, "address": state.nodes[n].address if n in state.nodes else "", "tasks": list(t),
                      "cpus": (step.cpus[i] if step.cpus else 0)}
                     for i, (n, t) in enumerate(zip(step.nodes, step.task_ids, strict=True))]
            job_part = {"nodes": compress(job.nodes), "node_count": len(job.nodes), "name": job.spec.name,
                        "cpus_per_node_text": steps.compress_counts([job.cpus_per_node] * len(job.nodes)),
                        "cluster": self.config.name, "partition": job.spec.partition}
        return {"step_id": step_id, "job_id": job_id, "nodes": nodes, "job": job_part,
                "node": nodes[0]["name"], "agent": nodes[0]["address"]}

    @staticmethod
    def _step_request(params: dict[str, Any]) -> Any:
        from spurcore import steps

        def num(key: str, default: int) -> int:
            value = params.get(key, default)
            if value is None:
                return default
            if not isinstance(value, int) or isinstance(value, bool) or not -1 <= value < 2**31:
                raise RpcError("bad_request", f"{key} must be an integer")
            return value

        def names(key: str) -> tuple[str, ...]:
            value = params.get(key) or ()
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise RpcError("bad_request", f"{key} must be a list of node names")
            return tuple(value)

        return steps.StepRequest(
            ntasks=max(1, num("ntasks", 1)), min_nodes=max(0, num("min_nodes", 0)),
            max_nodes=max(0, num("max_nodes", 0)), cpus_per_task=max(1, num("cpus_per_task", 1)),
            ntasks_per_node=max(0, num("ntasks_per_node", 0)),
            distribution=steps.node_distribution(str(params.get("distribution") or "block")),
            plane_size=max(0, num("plane_size", 0)), nodelist=names("nodelist"), exclude=names("exclude"),
            exact=bool(params.get("exact")), overlap=bool(params.get("overlap")), relative=num("relative", -1),
        )

    async def m_job_complete(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        job_id = int(params.get("job_id", 0))
        job = self._job_owner_check(ident, job_id)
        op = JobNodeComplete(
            job_id, job.batch_host, int(params.get("exit_code", 0)), int(params.get("signal", 0)), False, time.time()
        )
        await self.commit(op)
        return {}

    # --- reads ---------------------------------------------------------------------------

    async def _forward_read(self, method: str, params: dict[str, Any]) -> Any:
        """A follower answers reads through the leader, so reads see every acknowledged write."""
        assert self.replica is not None
        leader = self.replica.leader_address()
        if leader is None:
            raise RpcError("no_leader", "no leader")
        endpoint = self._endpoint_of(leader)
        if self._leader_conn is None or self._leader_conn.is_closed or self._leader_conn_for != endpoint:
            if self._leader_conn is not None:
                self._leader_conn.close()
            try:
                if endpoint.startswith("unix:"):
                    self._leader_conn = await rpc.connect_unix(endpoint[5:], timeout=2.0,
                                                               max_frame=rpc.MAX_REPLY_FRAME)
                else:
                    host, _, port = endpoint[4:].rpartition(":")
                    ctx = rpc.client_ssl_context(self.config.tls_cert, self.config.tls_key, self.config.tls_ca)
                    self._leader_conn = await rpc.connect_tcp(host, int(port), ctx, timeout=2.0,
                                                              max_frame=rpc.MAX_REPLY_FRAME)
            except RpcError:
                raise RpcError("no_leader", "leader unreachable") from None
            self._leader_conn_for = endpoint
        params = dict(params)
        params["_forwarded"] = True
        try:
            return await self._leader_conn.call(method, params, timeout=10.0)
        except rpc.ConnectionFailed:
            raise RpcError("no_leader", "leader unreachable") from None

    def _read_local(self, params: dict[str, Any]) -> bool:
        """True: answer here (the leader, lease held). A leader whose lease lapsed answers
        ``not_ready`` itself (clients retry) instead of forwarding the read to itself."""
        assert self.replica is not None
        if self.replica.leader_ready():
            return True
        if params.get("_forwarded") or self.replica._isLeader():
            raise RpcError("not_ready", "not the leader" if params.get("_forwarded") else "leader not ready")
        return False

    async def m_jobs(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        self.identity(conn)
        if not self._read_local(params):
            return await self._forward_read("jobs", params)
        assert self.replica is not None
        job_ids = {int(j) for j in params.get("job_ids") or ()}
        refs = params.get("job_refs") or ()
        if not isinstance(refs, (list, tuple)):
            raise RpcError("bad_request", "job_refs must be a list of strings")
        parsed_refs = [self._parse_ref({"job_ref": r}) for r in refs]
        users = {str(u) for u in params.get("users") or ()}
        states = {str(s).upper() for s in params.get("states") or ()}
        now = time.time()
        lock = self.replica.state_lock
        cache = self._info_cache
        with lock:
            state = self.replica.state
            self._invalidate_info_cache()
            for head, tasks in parsed_refs:
                job_ids.update(self._ref_records(state, head, tasks))
            if parsed_refs and not job_ids:
                raise INVALID_JOB
            if job_ids or parsed_refs:
                jobs = [state.jobs[j] for j in sorted(job_ids) if j in state.jobs]
            else:
                jobs = list(state.jobs.values())
            reasons = pending_reasons(state, now)
        out = []
        # The tick thread applies under the same lock and also sends Raft heartbeats: build
        # a large answer in short slices, letting it in between, so that a big squeue never
        # delays heartbeats past an election timeout. Each job's record is consistent, and
        # comes from the cache unless an op touched the job since it was built.
        for start in range(0, len(jobs), READ_SLICE):
            with lock:
                self._invalidate_info_cache()
                for job in jobs[start : start + READ_SLICE]:
                    if users and job.spec.user not in users and str(job.spec.uid) not in users:
                        continue
                    shown = job.display_state
                    if states and "ALL" not in states and shown not in states and COMPACT.get(shown) not in states:
                        continue
                    info = cache.get(job.job_id)
                    if info is None:
                        info = cache[job.job_id] = job_info(job, state, now, reasons.get(job.job_id))
                    else:
                        refresh_info(info, job, state, now, reasons.get(job.job_id))
                    out.append(info)
            time.sleep(0)  # drop the GIL: a waiting tick thread gets the lock first
        if params.get("columns"):
            # Field names once, then one list per job (only the fields asked for, if any):
            # far smaller and quicker to decode than a map per job (squeue of 20,000 jobs).
            # Rows are packed in slices, dropping the GIL in between: packing 100,000 jobs in
            # one msgpack call would hold it for most of a second and starve the tick thread
            # (and its Raft heartbeats) that long.
            wanted = params.get("fields")
            fields = [str(f) for f in wanted] if wanted else (list(out[0]) if out else [])
            chunks = []
            for start in range(0, len(out), READ_SLICE):
                part = out[start : start + READ_SLICE]
                if wanted:
                    rows = [[info.get(f) for f in fields] for info in part]
                else:
                    rows = [list(info.values()) for info in part]
                chunks.append(msgpack.packb(rows, use_bin_type=True))
                time.sleep(0)
            return {"now": now, "fields": fields, "row_chunks": chunks}
        return {"now": now, "jobs": out}

    @staticmethod
    def _ref_records(state: Any, head: int, tasks: list[int] | None) -> list[int]:
        """The records a read names: a job, every record of an array, or the records holding
        the given tasks (a task not yet started is in its array's pending record)."""
        members = state.array_members.get(head)
        if not members:
            job = state.jobs.get(head)
            if job is None or (tasks is not None and job.array_task_id not in tasks):
                return []
            return [head]
        if tasks is None:
            return list(members)
        wanted = set(tasks)
        out = []
        for job_id in members:
            job = state.jobs[job_id]
            if job.array_task_id in wanted or (
                job.array_task_id < 0 and any(arrays.contains(job.array_pending, t) for t in wanted)
            ):
                out.append(job_id)
        return out

    def _invalidate_info_cache(self) -> None:
        """Drop the cached records of jobs an op touched since (call with the state lock)."""
        replica = self.replica
        assert replica is not None
        if replica.touched_all:
            self._info_cache.clear()
            replica.touched_all = False
        for job_id in replica.touched:
            self._info_cache.pop(job_id, None)
        replica.touched.clear()

    async def m_nodes(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        self.identity(conn)
        if not self._read_local(params):
            return await self._forward_read("nodes", params)
        assert self.replica is not None
        with self.replica.state_lock:
            nodes = [node_info(self.replica.state, n) for n in sorted(self.replica.state.nodes)]
        return {"now": time.time(), "nodes": nodes}

    async def m_history(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        self.identity(conn)
        if not self._read_local(params):
            return await self._forward_read("history", params)
        from spurctld.accounting import history

        assert self.replica is not None
        jobs = await asyncio.get_running_loop().run_in_executor(None, history, self, params)
        return {"jobs": jobs}

    async def m_job_at(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        self.identity(conn)
        if not self._read_local(params):
            return await self._forward_read("job_at", params)
        from spurctld.accounting import job_at

        job = await asyncio.get_running_loop().run_in_executor(
            None, job_at, self, int(params.get("job_id", 0)), float(params.get("at", 0))
        )
        if job is None:
            raise INVALID_JOB
        return {"job": job}

    # --- agents --------------------------------------------------------------------------

    def _agent(self, conn: rpc.RpcConnection) -> Identity:
        ident = self.identity(conn)
        if ident.role not in ("admin", "operator", "node"):
            raise ACCESS_DENIED
        assert self.replica is not None
        if not self.replica._isLeader():
            raise RpcError("not_leader", self._endpoint_of(self.replica.leader_address(), remote=True))
        return ident

    async def m_node_register(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        self._agent(conn)
        assert self.replica is not None
        name, cpus, mem = params.get("name"), params.get("cpus", 1), params.get("mem_mb", 0)
        address = params.get("address", "")
        if not isinstance(name, str) or not _NODE_NAME.fullmatch(name):
            raise RpcError("invalid_node", f"Invalid node name specified: {name!r}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**40 for v in (cpus, mem)) or \
                not isinstance(address, str):
            raise RpcError("bad_request", "cpus and mem_mb must be non-negative integers, address a string")
        # An agent registers only as a node the configuration names (with at least the
        # configured resources, else the reducer drains it: "Low CPUs", "Low RealMemory").
        try:
            await self.ensure_configured()
        except ConfigError as exc:
            raise RpcError("bad_config", str(exc)) from None
        conf = self.load_cluster()
        if conf.nodes and conf.node(name) is None:
            raise RpcError("invalid_node", f"Invalid node name specified: {name} is not in the configuration"
                                           f" ({self.config.path})")
        with self.replica.state_lock:
            node = self.replica.state.nodes.get(name)
            changed = node is None or not node.up or \
                (node.reported_cpus, node.reported_mem, node.address) != (cpus, mem, address)
        # Heartbeat first: the leader loop wakes on the NodeRegistered apply and must not
        # see the old silence and take the node down again.
        self._last_seen[name] = time.monotonic()
        if changed:
            await self.commit(NodeRegistered(name, cpus, mem, address, time.time()))
        old = self.agents.get(name)
        if old is not None and old is not conn:
            old.close()
        conn.data["node"] = name
        self.agents[name] = conn
        self._last_seen[name] = time.monotonic()
        # Reconciliation: jobs the agent runs that the controller has ended or forgotten.
        with self.replica.state_lock:
            state = self.replica.state
            stale = []
            for job_id in params.get("jobs") or ():
                job = state.jobs.get(int(job_id))
                if job is None or name not in job.nodes or (job.terminal and not job.completing):
                    stale.append(int(job_id))
        for job_id in stale:
            conn.notify("kill", {"job_id": job_id})
        for key in [k for k in self._sent if k[2] == name]:
            del self._sent[key]
        self._kick()
        fence_timeout, fence_grace = self.config.fence
        return {
            "heartbeat_interval": self.config.heartbeat_interval,
            "kill_wait": self.config.kill_wait,
            "suspend_grace": self.config.suspend_grace,
            "fence_timeout": fence_timeout,
            "fence_grace": fence_grace,
        }

    async def m_heartbeat(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        self._agent(conn)
        name = str(params.get("name", conn.data.get("node", "")))
        assert self.replica is not None
        with self.replica.state_lock:
            node = self.replica.state.nodes.get(name)
            up = node is not None and node.up
        if not up:
            # Marked DOWN while this connection stayed open (the agent was stopped, or the
            # network dropped packets without closing it): refusing makes it register again.
            raise RpcError("not_registered", f"node {name} is not registered or is DOWN: register again")
        self._last_seen[name] = time.monotonic()
        # quorum: this leader's read lease holds, so the agent may renew its fencing lease
        return {"quorum": self.replica.leader_ready()}

    async def m_report(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        self._agent(conn)
        job_id = int(params["job_id"])
        at = float(params.get("at") or time.time())
        code, sig, oom = int(params.get("exit_code", 0)), int(params.get("signal", 0)), bool(params.get("oom"))
        if params.get("kind") == "step":
            usage = params.get("usage") if isinstance(params.get("usage"), dict) else {}
            op: Op = JobStepComplete(job_id, int(params["step_id"]), str(params["node"]), code, sig, oom, at,
                                     {str(k): v for k, v in usage.items() if isinstance(v, (int, float, str))})
        else:
            fenced = bool(params.get("fenced"))
            op = JobNodeComplete(job_id, str(params["node"]), code, sig, oom, at, fenced,
                                 bool(self.config.job_requeue), time.time() + self.config.requeue_delay)
        result = await asyncio.wait_for(self.propose(op), 10.0)
        if isinstance(result, Rejected):
            log.info("report %s rejected: %s", params.get("report_id"), result.message)
            return {"status": "rejected", "message": result.message}
        return {"status": "committed"}

    async def m_launched(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        self._agent(conn)
        await asyncio.wait_for(self.propose(JobLaunched(int(params["job_id"]), str(params["node"]), time.time())), 10.0)
        return {}

    async def m_ack(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        self._agent(conn)
        op = ActionAcked(
            int(params["action_id"]), str(params["node"]), int(params.get("status", 0)),
            int(params.get("errno", 0)), time.time(),
        )
        await asyncio.wait_for(self.propose(op), 10.0)
        return {}

    # --- leader duties -------------------------------------------------------------------

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
                         _since_process_start())
                self._lead_term = term
                self._sent.clear()
                self._inflight.clear()
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
            decisions = leader.decide(state, now, silence, self._leader_cfg, purge=purge_due, scheduler=mode)
        return [(d.op, d.key) for d in decisions if d.key not in self._inflight]

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


def run_in_thread(config: Config, rid: int) -> tuple[Controller, threading.Thread, asyncio.AbstractEventLoop]:
    """Run one replica in-process on its own event loop thread (for embedding and tests)."""
    loop = asyncio.new_event_loop()
    controller = Controller(config, rid)

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(controller.start())
        loop.run_forever()
        loop.run_until_complete(controller.stop())
        loop.close()

    thread = threading.Thread(target=main, name=f"spurctld-{rid}", daemon=True)
    thread.start()
    controller._ready.wait(30)
    return controller, thread, loop
