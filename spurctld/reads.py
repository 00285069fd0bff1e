"""The controller's reads: jobs (squeue, scontrol show job), nodes, accounting history and
``--at`` time travel, the settings (``scontrol show config``). A mixin of
``spurctld.service.Controller``.

Reads answer from the leader's state while its read lease holds (``_read_local``); a
follower forwards them to the leader (``_forward_read``), so a read sees every acknowledged
write. Large answers are built in slices of ``READ_SLICE`` jobs, letting the tick thread
(and its Raft heartbeats) take the state lock in between; job records are cached per job
and rebuilt only when an op touched the job.
"""

from __future__ import annotations

import asyncio
import time
from operator import itemgetter
from typing import Any

import msgpack

from spurcore.model import COMPACT
from spurcore.scheduler import pending_reasons
from spurcore.views import DYNAMIC_FIELDS, job_info, node_info, refresh_info
from spurctld.identity import INVALID_JOB
from spurctld.jobrpc import parse_ref, ref_records
from spurctld.replica import Replica
from spurio import rpc
from spurio.config import Config
from spurio.rpc import RpcError

READ_SLICE = 512  # jobs rendered per hold of the state lock


class PackedRows:
    """The jobs' rows of one field list (a ``jobs`` request's ``fields``), each packed once
    and kept while it stays right: the hot part of a long squeue was building and packing
    20,000 rows, each read touching every value of every record.

    A chunk of rows is an msgpack array of rows; msgpack is concatenative, so a chunk is the
    array's header followed by the rows' bytes, the same bytes as packing the list at once.
    A job's row stays valid while its record is the same object (an op on the job replaces
    it, see ``_invalidate_info_cache``) and the fields ``refresh_info`` rewrites have equal
    values (it gives each of them one type, so equal values pack alike). Runs on the event
    loop's thread only, like the record cache."""

    __slots__ = ("fields", "_take", "_dynamic", "_rows", "_packer")

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self._take = itemgetter(*fields) if len(fields) > 1 else (lambda info, f=fields[0]: (info[f],))
        dynamic = [f for f in fields if f in DYNAMIC_FIELDS]
        self._dynamic = itemgetter(*dynamic) if dynamic else None
        self._rows: dict[int, tuple[dict[str, Any], Any, bytes]] = {}
        self._packer = msgpack.Packer(use_bin_type=True)

    def chunk(self, infos: list[dict[str, Any]]) -> bytes:
        """The packed list of ``infos``' rows (None for a field a record lacks)."""
        rows, dynamic, pack = self._rows, self._dynamic, self._packer.pack
        parts = [self._packer.pack_array_header(len(infos))]
        for info in infos:
            job_id = info["job_id"]
            entry = rows.get(job_id)
            try:
                current = dynamic(info) if dynamic is not None else None
            except KeyError:  # a record without one of them (packed every time)
                parts.append(pack(self._row(info)))
                continue
            if entry is None or entry[0] is not info or entry[1] != current:
                entry = rows[job_id] = (info, current, pack(self._row(info)))
            parts.append(entry[2])
        return b"".join(parts)

    def _row(self, info: dict[str, Any]) -> Any:
        try:
            return self._take(info)
        except KeyError:  # a field the record lacks: None
            return [info.get(f) for f in self.fields]

    def drop(self, job_id: int) -> None:
        self._rows.pop(job_id, None)

    def clear(self) -> None:
        self._rows.clear()


MAX_PACKED_FIELD_LISTS = 4  # squeue's, scontrol's and a few others' (the oldest is dropped)


class ReadMethods:
    """Mixed into Controller: its config, replica and leader connection."""

    config: Config
    replica: Replica | None
    _info_cache: dict[int, dict[str, Any]]
    _packed: dict[tuple[str, ...], PackedRows]  # made by _packed_rows
    _leader_conn: rpc.RpcConnection | None
    _leader_conn_for: str | None

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
        parsed_refs = [parse_ref({"job_ref": r}) for r in refs]
        users = {str(u) for u in params.get("users") or ()}
        states = {str(s).upper() for s in params.get("states") or ()}
        now = time.time()
        lock = self.replica.state_lock
        cache = self._info_cache
        with lock:
            state = self.replica.state
            self._invalidate_info_cache()
            for head, tasks in parsed_refs:
                job_ids.update(ref_records(state, head, tasks))
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
        if "ALL" in states:
            states = set()
        for start in range(0, len(jobs), READ_SLICE):
            with lock:
                self._invalidate_info_cache()
                for job in jobs[start : start + READ_SLICE]:
                    if users and job.spec.user not in users and str(job.spec.uid) not in users:
                        continue
                    info = cache.get(job.job_id)
                    if states:
                        # a cached record's state is the job's display state (only ops change it)
                        shown = job.display_state if info is None else info["state"]
                        if shown not in states and COMPACT.get(shown) not in states:
                            continue
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
            packed = self._packed_rows(tuple(fields)) if wanted else None
            chunks = []
            for start in range(0, len(out), READ_SLICE):
                part = out[start : start + READ_SLICE]
                if packed is not None:
                    chunks.append(packed.chunk(part))
                else:
                    chunks.append(msgpack.packb([list(info.values()) for info in part], use_bin_type=True))
                time.sleep(0)
            return {"now": now, "fields": fields, "row_chunks": chunks}
        return {"now": now, "jobs": out}

    def _packed_rows(self, fields: tuple[str, ...]) -> PackedRows:
        """The packed rows of ``fields`` (made on first use; the mixin has no __init__)."""
        lists: dict[tuple[str, ...], PackedRows] | None = getattr(self, "_packed", None)
        if lists is None:
            lists = self._packed = {}
        packed = lists.pop(fields, None)
        if packed is None:
            packed = PackedRows(fields)
            while len(lists) >= MAX_PACKED_FIELD_LISTS:
                del lists[next(iter(lists))]
        lists[fields] = packed  # the most recently used last
        return packed

    def _invalidate_info_cache(self) -> None:
        """Drop the cached records (and packed rows) of jobs an op touched since (call with
        the state lock)."""
        replica = self.replica
        assert replica is not None
        packed = list(getattr(self, "_packed", {}).values())
        if replica.touched_all:
            self._info_cache.clear()
            for rows in packed:
                rows.clear()
            replica.touched_all = False
        for job_id in replica.touched:
            self._info_cache.pop(job_id, None)
            for rows in packed:
                rows.drop(job_id)
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

    async def m_config(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """``scontrol show config``: the settings Spur has, under Slurm's names."""
        self.identity(conn)
        c = self.config
        return {"now": time.time(), "config": {
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
