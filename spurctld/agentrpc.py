"""What agents call: register (with reconciliation of the jobs they still run), heartbeat,
report (a job's or a step's end on a node), launched, ack (an action carried out). A mixin
of ``spurctld.service.Controller``.

Only a node identity (or root/an operator) may call these, and only on the leader: a
follower answers ``not_leader`` with the leader's endpoint, and the agent moves there. An
agent's connection is the leader's channel to it (``agents``): the leader duties
(``spurctld.duties``) send it starts, actions and kills.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from spurcore.ops import ActionAcked, JobLaunched, JobNodeComplete, JobStepComplete, NodeRegistered, Op
from spurcore.reduce import Rejected
from spurctld.identity import ACCESS_DENIED, Identity
from spurctld.replica import Replica
from spurio import rpc
from spurio.config import Config, ConfigError
from spurio.rpc import RpcError

log = logging.getLogger("spurctld")


class AgentMethods:
    """Mixed into Controller: its config, replica, agents and liveness memory."""

    config: Config
    replica: Replica | None
    agents: dict[str, rpc.RpcConnection]
    _last_seen: dict[str, float]
    _sent: dict[tuple[str, int, str], float]

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
        # validated by messages.NodeRegister: a node name, counts in range, an address string
        name, cpus, mem, address = params["name"], params["cpus"], params["mem_mb"], params["address"]
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
        raw_usage = params.get("usage") if isinstance(params.get("usage"), dict) else {}
        usage = {str(k): v for k, v in raw_usage.items() if isinstance(v, (int, float, str))}
        if params.get("kind") == "step":
            op: Op = JobStepComplete(job_id, int(params["step_id"]), str(params["node"]), code, sig, oom, at, usage)
        else:
            fenced = bool(params.get("fenced"))
            op = JobNodeComplete(job_id, str(params["node"]), code, sig, oom, at, fenced,
                                 bool(self.config.job_requeue), time.time() + self.config.requeue_delay, usage)
        end = self.propose(op)
        if isinstance(op, JobNodeComplete):
            self._start_behind(job_id, op.node, op.fenced, end)
        result = await asyncio.wait_for(end, 10.0)
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
