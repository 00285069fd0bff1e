"""The agent's step endpoint: srun (``launch_tasks``), sattach (``attach_step``) and sstat
(``step_stat``), on its Unix socket and, through relays (``spurd.steprelay``), on its TLS
endpoint (docs/architecture.md, section 13; docs/protocol.md).

Invariants:
- One request per connection, read exactly (``spurio.stepserver.recv_request``) and
  validated (``spurcore.agentmsg.STEP_REQUESTS``): a request that does not fit is answered
  ``bad_request`` naming the field; an unknown method ``unknown_method``.
- Who may touch a step is ``spurio.stepserver.step_access`` (the peer uid, or the
  certificate a relay vouches for), and the job must be one the controller started here.
- A launch or an attach hands the connection itself to the step's supervisor: the agent
  answers only errors, and is off the step's I/O path from then on.
- Clients are served by blocking socket calls in their own threads (``_step_io``), so that
  slow clients never starve supervisor starts and control calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from spurcore import agentmsg
from spurcore.agentmsg import AttachStep, CtlAttach, CtlStat, LaunchTasks, StepStat, SupervisorSpec
from spurcore.schema import BadRequest, unstructure
from spurd import proccontrol
from spurd.runs import JobRecord, run_key
from spurio import stepserver
from spurio.rpc import RpcError

log = logging.getLogger("spurd")


JOB_WAIT = 10.0  # run_step may arrive before the job's start: wait this long for it
HANDED_OVER = object()  # a step request whose connection now belongs to a supervisor


def _uid_of(user: str) -> int | None:
    """The uid of a TLS certificate's CN on this node (None: no such user)."""
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


class StepServer:
    """The step endpoint (a part of :class:`spurd.agent.Agent`)."""

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(lsock)
            except OSError as e:
                log.warning("accept on %s failed: %s", self.socket_path, e)
                await asyncio.sleep(0.1)
                continue
            self._spawn(self._serve_step_client(client), "step_client")

    def _listen_tls(self) -> socket.socket:
        """Bind the TLS step endpoint and start the relays' zygote (spurd.steprelay).
        Raises OSError (or ssl.SSLError) on a bad address or unusable certificates."""
        from spurd.steprelay import Spawner
        from spurio.rpc import server_ssl_context

        host, port = stepserver.split_host_port(self.rpc)
        cert = os.environ.get("SPUR_CERT") or self.config.tls_cert
        key = os.environ.get("SPUR_KEY") or self.config.tls_key
        ca = self.config.tls_ca
        if not (cert and key and ca):
            raise OSError(f"the TLS step endpoint {self.rpc} needs [tls] ca, cert and key")
        server_ssl_context(cert, key, ca)  # fail here, not in every relay
        wildcard = host in ("", "0.0.0.0", "::", "*")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        bind_host = "" if wildcard else host
        lsock = socket.create_server((bind_host, port), family=family, backlog=128)
        lsock.setblocking(False)
        advertised = socket.gethostname() if wildcard else host
        bound = lsock.getsockname()[1]
        self.rpc_endpoint = f"[{advertised}]:{bound}" if ":" in advertised else f"{advertised}:{bound}"
        self._relays = Spawner(os.path.abspath(cert), os.path.abspath(key), os.path.abspath(ca), self.socket_path,
                               self.python)
        self._relays.start()
        return lsock

    async def _accept_tls_loop(self, lsock: socket.socket) -> None:
        """TCP connections on the TLS endpoint go to a relay each (spurd.steprelay), which
        authenticates the client and brings its request to the Unix socket above."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(lsock)
            except OSError as e:
                log.warning("accept on %s failed: %s", self.rpc_endpoint, e)
                await asyncio.sleep(0.1)
                continue
            with client:
                if not await self._in_step_thread(self._relays.spawn, client):
                    log.error("no relay for a TLS client: the relay zygote does not start")

    async def _serve_step_client(self, client: socket.socket) -> None:
        """One request per connection. A launch or an attach hands the connection over to
        the step's supervisor: the agent answers only errors (stepserver's docstring)."""
        with client:
            try:
                request = await self._in_step_thread(stepserver.recv_request, client)
            except stepserver.StepProtocolError as e:
                log.warning("bad step request: %s", e)
                if e.code != "connection_failed":
                    await self._in_step_thread(stepserver.send_reply, client, e.msgid or 0,
                                               {"code": e.code, "message": e.message}, None)
                return
            handler = {"launch_tasks": self._launch_tasks, "attach_step": self._attach_step,
                       "step_stat": self._step_stat}.get(request.method)
            error: dict[str, str] | None = None
            result: Any = None
            try:
                if handler is None:
                    raise RpcError("unknown_method", f"unknown method: {request.method[:64]!r} (methods: "
                                                     f"{', '.join(agentmsg.STEP_REQUESTS)})")
                try:
                    msg = agentmsg.step_request(request.method, request.params)
                except BadRequest as e:
                    raise RpcError("bad_request", f"{request.method}: {e}") from None
                result = await handler(request, msg, client)
            except RpcError as e:
                error = e.to_wire()
            except Exception as e:
                log.exception("%s failed", request.method)
                error = {"code": "internal", "message": f"{type(e).__name__}: {e}"}
            if result is HANDED_OVER:
                return
            await self._in_step_thread(stepserver.send_reply, client, request.msgid, error, result)

    async def _in_step_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._step_io, fn, *args)

    async def _step_job(self, request: stepserver.StepRequest,
                        msg: LaunchTasks | AttachStep | StepStat) -> tuple[JobRecord, int]:
        """The job and step a step request names, with the caller's right to them."""
        rec = await self._wait_for_job(msg.job_id)
        if rec is None:
            raise RpcError("invalid_job", "Invalid job id specified")
        tls_peer = unstructure(msg.tls_peer) if msg.tls_peer is not None else None
        if not stepserver.step_access(request.peer_uid, tls_peer, job_uid=rec.uid, own_uid=os.getuid(),
                                      node=self.name, uid_of=_uid_of):
            raise RpcError("permission_denied", "Access/permission denied")
        return rec, msg.step_id

    async def _launch_tasks(self, request: stepserver.StepRequest, msg: LaunchTasks, client: socket.socket) -> Any:
        rec, step_id = await self._step_job(request, msg)
        async with self._lock(rec.job_id):
            if rec.ended:
                raise RpcError("already_done", "Job/step already completing or completed")
            if run_key(step_id) in rec.runs:
                if rec.runs[run_key(step_id)].finished:
                    raise RpcError("already_done", "Job/step already completing or completed")
                raise RpcError("already_launched", f"Step {rec.job_id}.{step_id} was already launched here")
            spec = self._step_spec(rec, msg, request.msgid)
            run = await self._start_run(rec, step_id, spec, client=client.fileno())
        status = self._read_status(run.rundir)
        if status is not None and status.error:  # the supervisor never took the connection
            raise RpcError("launch_failed", status.error)
        return HANDED_OVER

    def _step_spec(self, rec: JobRecord, msg: LaunchTasks, msgid: int) -> SupervisorSpec:
        """spec.json of this node's part of an srun step: the step's environment from srun
        plus this node's variables (slurmstepd's part of Slurm's task environment)."""
        env = dict(msg.env)
        step_id, tasks, nodeid = msg.step_id, msg.tasks, msg.nodeid
        env.update({
            "SLURM_JOB_ID": str(rec.job_id),
            "SLURM_JOBID": str(rec.job_id),
            "SLURM_STEP_ID": str(step_id),
            "SLURM_STEPID": str(step_id),
            "SLURMD_NODENAME": self.name,
            "SLURM_NODEID": str(nodeid),
            "SLURM_GTIDS": ",".join(str(t) for t in tasks),
            "SLURM_CPUS_ON_NODE": str(msg.cpus_on_node or len(tasks)),
            "SPUR_CONF": self.config.path,
            "SPURD_SOCKET": self.socket_path,
        })
        return SupervisorSpec(
            job_id=rec.job_id,
            step=step_id,
            argv=msg.argv,
            cwd=msg.cwd or rec.info.cwd or "/",
            env=env,
            uid=rec.uid,
            gid=rec.gid,
            tasks=tasks,
            task_env=True,
            multi_prog=msg.multi_prog,
            task_prolog=msg.task_prolog,
            io=msg.io,
            pmi=msg.pmi,
            node_name=self.name,
            nodeid=nodeid,
            launch_msgid=msgid,
            open_mode=msg.open_mode or "truncate",
            usage_interval=max(0.1, msg.usage_interval or self.usage_interval),
            kill_wait=self.kill_wait,
            suspend_grace=self.suspend_grace,
            mem_limit_mb=rec.info.mem_per_node or rec.info.mem_mb,
            cgroup_root=self.cgroup_root,
            **self._fencing(),
        )

    async def _attach_step(self, request: stepserver.StepRequest, msg: AttachStep, client: socket.socket) -> Any:
        rec, step_id = await self._step_job(request, msg)
        run = rec.runs.get(run_key(step_id))
        if run is None or run.finished:
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} is not running here")
        try:
            reply = await asyncio.to_thread(proccontrol.control, run.rundir, CtlAttach(msgid=request.msgid), 5.0,
                                            [client.fileno()])
        except (OSError, ValueError) as e:
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} is not running here: {e}") from None
        if not reply.get("ok"):
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} does not relay its I/O")
        return HANDED_OVER

    async def _step_stat(self, request: stepserver.StepRequest, msg: StepStat, client: socket.socket) -> Any:
        rec, step_id = await self._step_job(request, msg)
        run = rec.runs.get(run_key(step_id))
        if run is None or run.finished:
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} is not running here")
        reply = await self._control(run, CtlStat())
        if not reply.get("ok"):
            raise RpcError("invalid_step", f"Job step {rec.job_id}.{step_id} is not running here")
        return {"node": self.name, "usage": reply.get("usage") or {}, "pids": reply.get("pids") or []}

    async def _wait_for_job(self, job_id: int) -> JobRecord | None:
        deadline = time.monotonic() + JOB_WAIT
        while True:
            rec = self.jobs.get(job_id)
            if rec is not None or time.monotonic() >= deadline:
                return rec
            await asyncio.sleep(0.02)
