"""The controller process: one replica's RPC service over its pysyncobj replica.

``Controller`` is assembled from one module per concern:

* ``spurctld.commit``    group commit: ops proposed together share a replicated entry;
* ``spurctld.identity``  who is asking (peer credentials or certificate) and may they write;
* ``spurctld.jobrpc``    submit, signal, hold/release/requeue, update, steps;
* ``spurctld.reads``     jobs, nodes, history, ``--at``, config (followers forward reads);
* ``spurctld.agentrpc``  what agents call: register, heartbeat, report, launched, ack;
* ``spurctld.duties``    the leader's duties: spurcore.leader's decisions proposed, then
  delivered (the persist -> send -> apply order is documented there, once);
* ``spurctld.schedrpc``  configuration, nodes, partitions, accounts, priorities.

This module holds the life cycle, the dispatcher (every request is structured and validated
by its schema in ``spurcore.messages`` before a handler runs) and ``ping``/``digest``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from spurcore import leader, messages
from spurcore.ops import Op
from spurcore.schema import BadRequest
from spurctld.agentrpc import AgentMethods
from spurctld.commit import GroupCommit
from spurctld.duties import LeaderDuties, since_process_start
from spurctld.identity import ACCESS_DENIED, INVALID_JOB, Identity, identify, may_write
from spurctld.jobrpc import JobMethods
from spurctld.reads import ReadMethods
from spurctld.replica import Replica
from spurctld.schedrpc import SchedulingMethods
from spurio import rpc
from spurio.config import Config
from spurio.rpc import RpcError

log = logging.getLogger("spurctld")


class Controller(GroupCommit, JobMethods, ReadMethods, AgentMethods, LeaderDuties, SchedulingMethods):
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
        self._releasing: set[int] = set()  # jobs whose end is proposed, not yet applied
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
                 self.rid, self.me.raft, self.me.socket, self.me.rpc, since_process_start())

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

    def identity(self, conn: rpc.RpcConnection) -> Identity:
        return identify(conn.peer or {}, self._admin_uids, self.config.operators)

    def _writer(self, conn: rpc.RpcConnection) -> Identity:
        return may_write(self.identity(conn))

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

    def _typed_methods(self) -> dict[str, Any]:
        """Every method behind its request schema (spurcore.messages): the raw map is
        structured and validated before the handler runs, which reads the validated values
        (``to_params``). A bad request is ``bad_request`` naming the field and the rule."""
        methods = self._methods()
        missing = sorted(set(methods) - set(messages.REQUESTS))
        if missing:
            raise RuntimeError(f"methods without a request schema: {missing}")

        def typed(name: str, fn: Any) -> Any:
            async def handler(conn: rpc.RpcConnection, params: dict[str, Any]) -> Any:
                try:
                    msg = messages.parse_request(name, params)
                except BadRequest as exc:
                    raise RpcError("bad_request", str(exc)) from None
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
