"""The agent's one connection to the leader: registration, heartbeats, the fencing lease,
and the controller's notifications.

Invariants:
- One connection, to the leader: a follower's ``not_leader`` names the leader's endpoint,
  ``no_leader`` means wait and try the replicas again (bounded backoff).
- Nothing received on a connection is acted on before the report spool has been flushed
  on it (``spurd.reports``); notifications wait in a queue until then.
- Every notification is validated (``spurcore.agentmsg.NOTIFICATIONS``) before its
  handler (``spurd.actions``) sees it; a malformed one is logged once, naming the field,
  and dropped (the controller re-sends what it still wants).
- Fencing (docs/reliability.md): while the agent is in touch with a leader that holds a
  quorum it renews the node's lease; every supervisor kills its job when the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from spurcore import agentmsg
from spurcore.agentmsg import HeartbeatReply, JobAction, KillJob, Registered, StartJob
from spurcore.schema import BadRequest, structure
from spurd import procs
from spurio import rpc, stepserver
from spurio.rpc import ConnectionFailed, RpcConnection, RpcError, RpcTimeout

log = logging.getLogger("spurd")


BACKOFF_MIN = 0.05
BACKOFF_MAX = 0.5
RPC_TIMEOUT = 30.0
LEADERSHIP_ERRORS = ("not_leader", "no_leader")


class Session:
    """The controller connection (a part of :class:`spurd.agent.Agent`)."""

    _conn: RpcConnection | None
    _ready: asyncio.Event

    def _register_params(self) -> dict[str, Any]:
        jobs = {r.job_id for r in self.live.values()}
        jobs |= {j.job_id for j in self.jobs.values() if not j.ended}
        return {
            "name": self.name,
            "cpus": self.cpus,
            "mem_mb": self.mem_mb,
            "address": stepserver.agent_address(self.socket_path, self.rpc_endpoint),
            "jobs": sorted(jobs),
        }

    async def _open(self, endpoint: str, on_notification: Any) -> RpcConnection:
        kind, _, where = endpoint.partition(":")
        if kind == "unix":
            return await rpc.connect_unix(where, None, on_notification, timeout=5.0)
        if kind == "tcp":
            host, _, port = where.rpartition(":")
            ctx = None
            if self.config.tls_ca:
                cert = os.environ.get("SPUR_CERT") or self.config.tls_cert or None
                key = os.environ.get("SPUR_KEY") or self.config.tls_key or None
                ctx = rpc.client_ssl_context(cert, key, self.config.tls_ca)
            return await rpc.connect_tcp(host.strip("[]"), int(port), ctx, None, on_notification, timeout=5.0)
        raise ConnectionFailed(f"unsupported endpoint {endpoint!r}")

    async def _connection_loop(self) -> None:
        endpoints = [r.endpoint for r in self.config.replicas]
        idx = 0
        hint: str | None = None
        redirects = 0
        backoff = BACKOFF_MIN
        while not self._stop.is_set():
            if hint:
                endpoint, hint = hint, None
            else:
                endpoint = endpoints[idx % len(endpoints)]
                idx += 1
            outcome, detail = await self._attempt(endpoint)
            if outcome == "session":
                idx, redirects, backoff = 0, 0, BACKOFF_MIN
                await asyncio.sleep(BACKOFF_MIN)
                continue
            if outcome == "not_leader" and detail and detail != endpoint and redirects <= len(endpoints):
                hint = detail
                redirects += 1
                continue
            redirects = 0
            if outcome == "no_leader" or idx % len(endpoints) == 0:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _attempt(self, endpoint: str) -> tuple[str, str]:
        """Connect, register and serve one session. ("session"|"not_leader"|"no_leader"|"failed", detail)."""
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        try:
            conn = await self._open(endpoint, lambda _c, method, params: queue.put_nowait((method, params)))
        except (RpcError, OSError, ValueError) as e:
            log.debug("cannot connect to %s: %s", endpoint, e)
            return "failed", str(e)
        try:
            raw = await conn.call("node_register", self._register_params(), timeout=RPC_TIMEOUT)
            reply = structure(Registered, raw)
        except RpcError as e:
            conn.close()
            if e.code in LEADERSHIP_ERRORS:
                log.debug("%s: %s %s", endpoint, e.code, e.message)
                return e.code, e.message
            log.warning("node_register at %s failed: %s", endpoint, e)
            return "failed", str(e)
        except BadRequest as e:
            conn.close()
            self._refuse(f"answer to node_register from {endpoint}", e)
            return "failed", str(e)
        except BaseException:
            conn.close()
            raise
        try:
            await self._session(conn, endpoint, reply, queue)
        finally:
            conn.close()
        return "session", ""

    async def _session(self, conn: RpcConnection, endpoint: str, reply: Registered,
                       queue: asyncio.Queue[tuple[str, Any]]) -> None:
        self.heartbeat_interval = reply.heartbeat_interval or self.config.heartbeat_interval
        if reply.kill_wait is not None:
            self.kill_wait = reply.kill_wait
        if reply.suspend_grace is not None:
            self.suspend_grace = reply.suspend_grace
        self.fence_timeout = reply.fence_timeout
        self.fence_grace = reply.fence_grace or self.kill_wait
        self._renew_lease()  # the leader that registered us holds a quorum
        self.registered_count += 1
        log.info("registered with the leader at %s (%d reports to resend)", endpoint, len(self.reports))
        tasks: list[asyncio.Task[Any]] = []
        try:
            # Reports first: nothing received on this connection is acted on before the
            # spool has been flushed (notifications wait in ``queue``).
            if not await self._flush_reports(conn):
                return
            self._conn = conn
            self._ready.set()
            tasks = [
                asyncio.create_task(self._report_sender(conn)),
                asyncio.create_task(self._heartbeat(conn)),
                asyncio.create_task(self._dispatch(queue)),
                asyncio.create_task(conn.closed()),
                asyncio.create_task(self._stop.wait()),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("session task failed", exc_info=task.exception())
        finally:
            self._ready.clear()
            if self._conn is conn:
                self._conn = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("connection to %s ended: %s", endpoint, conn.close_reason or "closing")

    async def _heartbeat(self, conn: RpcConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                raw = await conn.call("heartbeat", {"name": self.name},
                                      timeout=max(5.0, 3 * self.heartbeat_interval))
                reply = structure(HeartbeatReply, raw)
            except BadRequest as e:
                self._refuse("answer to heartbeat", e)  # fail safe: no lease renewal on it
                continue
            except (ConnectionFailed, RpcTimeout) as e:
                log.warning("heartbeat failed: %s", e)
                return
            except RpcError as e:
                log.warning("heartbeat refused (%s): registering again", e)
                return
            if reply.quorum:
                self._renew_lease()

    def _renew_lease(self) -> None:
        """Fencing (docs/reliability.md): while the agent is in touch with a leader that holds
        a quorum, its jobs may run for ``fence_timeout`` more seconds; every supervisor kills
        its job when the lease runs out, before the controllers may declare the node failed
        and run the job elsewhere."""
        if self.fence_timeout > 0:
            procs.write_lease(self.lease_path, self.fence_timeout)
        elif os.path.exists(self.lease_path):
            os.unlink(self.lease_path)  # fencing turned off by the controllers

    def _fencing(self) -> dict[str, Any]:
        """What every supervisor's spec carries for fencing."""
        if self.fence_timeout <= 0:
            return {}
        return {"lease_file": self.lease_path, "fence_grace": self.fence_grace}

    async def _dispatch(self, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        """Each notification, validated (``spurcore.agentmsg.NOTIFICATIONS``), to its handler;
        a malformed one is logged once and dropped."""
        while True:
            method, params = await queue.get()
            try:
                msg = agentmsg.notification(method, params)
            except BadRequest as e:
                self._refuse(f"{str(method)[:64]!r} notification", e)
                continue
            if isinstance(msg, StartJob):
                self._spawn(self._on_start(msg), "start")
            elif isinstance(msg, JobAction):
                self._spawn(self._on_action(msg), "action")
            elif isinstance(msg, KillJob):
                self._spawn(self._on_kill(msg), "kill")

    async def _call_current(self, method: str, params: dict[str, Any]) -> Any:
        """Call ``method`` on the current leader connection, retrying across reconnects."""
        while not self._stop.is_set():
            await self._ready.wait()
            conn = self._conn
            if conn is None:
                await asyncio.sleep(BACKOFF_MIN)
                continue
            try:
                return await conn.call(method, params, timeout=RPC_TIMEOUT)
            except (ConnectionFailed, RpcTimeout) as e:
                log.info("%s not answered (%s): retrying on the next connection", method, e)
                conn.close()
            except RpcError as e:
                if e.code not in LEADERSHIP_ERRORS:
                    log.warning("%s %s refused: %s", method, params, e)
                    return None
                conn.close()
            while self._conn is conn and not self._stop.is_set():
                await asyncio.sleep(BACKOFF_MIN)
        return None
