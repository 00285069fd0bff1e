"""A fake controller for the query tools' tests: a real ``serve_unix`` server in a thread
that answers ``jobs`` (``job_refs``, ``job_ids``, ``users``, ``states``), ``nodes``,
``history``, ``config``, ``ping``, ``signal``/``signal_many``, ``hold``, ``release``,
``requeue`` and ``update_job`` (``job_ref``), ``partitions``, ``sched_config``,
``update_node``, ``update_partition`` and ``reconfigure`` from records the test sets up,
recording every call. It follows the RPC contract of the query tools (job arrays as the controller keeps
them: one record of pending tasks, one record per started task).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spurcli import common
from spurcore.arrays import contains
from spurio import rpc
from spurio.rpc import RpcError
from tests.contract.controller_contract import real_job_record, real_node_record, validate_request

INVALID_JOB = ("invalid_job_id", "Invalid job id specified")
NOW = 1746100800.0  # 2025-05-01T12:00:00Z


def job(job_id: int, state: str = "RUNNING", **extra: Any) -> dict[str, Any]:
    """A job record shaped like spurcore.views.job_info."""
    base = extra.pop("base_state", state if state not in ("COMPLETING", "STOPPED") else "RUNNING")
    pending = base == "PENDING"
    info = real_job_record(job_id, NOW)  # every field the real record has
    info.update({
        "job_id": job_id, "name": "job.sh", "user": "root", "uid": 0, "gid": 0,
        "state": state, "base_state": base, "reason": "Priority" if pending else "None",
        "exit_code": None if pending else 0, "derived_ec": 0, "priority": 1, "hold": 0,
        "submit_time": NOW - 100, "eligible_time": NOW - 100, "start_time": 0 if pending else NOW - 60,
        "end_time": 0 if pending else NOW + 3540, "suspend_time": 0, "run_time": 0 if pending else 60,
        "time_limit": 3600, "partition": "debug", "account": "", "nodes": "" if pending else "n1",
        "node_count": 1, "num_cpus": 1, "num_tasks": 1, "cpus_per_task": 1, "mem_mb": 0,
        "dependency": "(null)", "batch_flag": 1, "batch_host": "" if pending else "n1", "restarts": 0,
        "requid": -1, "failed_node": "", "command": "/tmp/job.sh", "submit_line": "sbatch job.sh",
        "work_dir": "/tmp", "stdout": f"/tmp/slurm-{job_id}.out", "stderr": f"/tmp/slurm-{job_id}.out",
        "stdin": "/dev/null", "alloc_node": "login", "alloc_sid": 1, "steps": [],
        "array_job_id": 0, "array_task_id": None, "array_pending": [], "array_max_tasks": 0,
        "array_spec": "", "ntasks_per_node": 0, "mem_per_cpu": 0, "exclusive": "", "req_nodes": "",
        "exc_nodes": "", "deadline": 0.0, "open_mode": "", "signal": 0, "signal_time": 0,
        "signal_flags": "", "requeue": -1, "kill_on_invalid_dep": -1, "comment": "", "wckey": "",
        "nice": 0, "qos": "", "constraint": "", "time_min": None, "mail_type": "", "mail_user": "",
        "options": {},
    })
    info.update(extra)
    return info


def array(array_id: int, pending: list[list[int]], *, throttle: int = 0, tasks: dict[int, tuple[int, str]] | None = None,
          **extra: Any) -> list[dict[str, Any]]:
    """The records of an array: the pending record (id ``array_id``) and one record per
    started task (``tasks``: task -> (job id, state))."""
    spec = extra.pop("array_spec", "")
    out = [job(array_id, "PENDING", array_job_id=array_id, array_pending=pending, array_max_tasks=throttle,
               array_spec=spec, **extra)]
    for task, (job_id, state) in (tasks or {}).items():
        out.append(job(job_id, state, array_job_id=array_id, array_task_id=task, array_max_tasks=throttle,
                       array_spec=spec, **extra))
    return out


def _matches(info: dict[str, Any], ref: str) -> bool:
    """The contract: "123" = job 123 or every record of array 123; "123_4" = that task's
    record, or the pending record holding task 4."""
    job_part, under, task_part = ref.partition("_")
    job_id = int(job_part)
    array_id = int(info.get("array_job_id") or 0)
    if not under:
        return job_id in (int(info["job_id"]), array_id)
    task = int(task_part)
    if array_id != job_id:
        return False
    if info.get("array_task_id") is not None:
        return int(info["array_task_id"]) == task
    return contains([list(r) for r in info.get("array_pending") or ()], task)


class FakeController:
    """A controller stand-in on a Unix socket; ``handlers[method](params)`` answers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.jobs: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.now = NOW
        self.nodes: list[dict[str, Any]] = [dict(real_node_record(n["name"]), **n) for n in [
            {"name": "n1", "state": "MIXED", "cpus": 4, "alloc_cpus": 1, "mem_mb": 8000, "alloc_mem": 0,
             "address": "unix:/x", "reason": "", "registered_at": NOW - 3600, "down_at": 0, "jobs": [1],
             "partition": "debug"},
            {"name": "n2", "state": "IDLE", "cpus": 4, "alloc_cpus": 0, "mem_mb": 8000, "alloc_mem": 0,
             "address": "unix:/y", "reason": "", "registered_at": NOW - 3600, "down_at": 0, "jobs": [],
             "partition": "debug"},
        ]]
        self.config: dict[str, Any] = {"ClusterName": "spur", "MinJobAge": 300, "KillWait": 30,
                                       "MaxArraySize": 1001}
        # None: a controller without the ``partitions``/``sched_config`` methods
        self.partitions: list[dict[str, Any]] | None = None
        self.default_partition = "debug"
        self.sched_config: dict[str, Any] | None = None
        self.refused: dict[str, tuple[str, str]] = {}  # job_ref -> error for writes
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "jobs": self._jobs,
            "nodes": lambda p: {"now": self.now, "nodes": self.nodes},
            "history": lambda p: {"jobs": list(self.history)},
            "config": lambda p: {"now": self.now, "config": self.config},
            "ping": lambda p: {"id": 1, "leader": True, "ready": True},
            "signal": self._write,
            "signal_many": self._signal_many,
            "hold": self._write,
            "release": self._write,
            "requeue": self._write,
            "update_job": self._write,
            "partitions": self._partitions,
            "sched_config": self._sched_config,
            "update_node": self._admin_write,
            "update_partition": self._admin_write,
            "reconfigure": lambda p: self._admin_write(p) or {"digest": "d1", "unused": ["slurm.conf:3: X=1"]},
        }
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        jobs = self.jobs
        if params.get("job_refs"):
            refs = [str(r) for r in params["job_refs"]]
            jobs = [j for j in jobs if any(_matches(j, r) for r in refs)]
            if not jobs:
                raise RpcError(*INVALID_JOB)
        if params.get("job_ids"):
            ids = {int(i) for i in params["job_ids"]}
            jobs = [j for j in jobs if int(j["job_id"]) in ids]
        if params.get("states"):
            states = {str(s).upper() for s in params["states"]}
            jobs = [j for j in jobs if j["state"] in states or j["base_state"] in states]
        return {"now": self.now, "jobs": [dict(j) for j in jobs]}

    def _partitions(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.partitions is None:
            raise RpcError("unknown_method", "unknown method: partitions")
        return {"partitions": [dict(p) for p in self.partitions], "default": self.default_partition}

    def _sched_config(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.sched_config is None:
            raise RpcError("unknown_method", "unknown method: sched_config")
        return {"config": dict(self.sched_config)}

    def _admin_write(self, params: dict[str, Any]) -> dict[str, Any]:
        """update_node/update_partition/reconfigure: ``refused`` keyed by the method's name
        (``"update_node"``) holds the error to answer."""
        for method, refusal in self.refused.items():
            if method in ("update_node", "update_partition", "reconfigure") and self.calls[-1][0] == method:
                raise RpcError(*refusal)
        return {}

    def _write(self, params: dict[str, Any]) -> dict[str, Any]:
        ref = str(params.get("job_ref") or params.get("job_id"))
        if ref in self.refused:
            raise RpcError(*self.refused[ref])
        if not any(_matches(j, ref) for j in self.jobs):
            raise RpcError(*INVALID_JOB)
        return {"action_id": 1} if "kind" in params else {}

    def _signal_many(self, params: dict[str, Any]) -> dict[str, Any]:
        results = []
        for request in params["requests"]:
            self.calls.append(("signal", request))
            try:
                results.append(self._write(request))
            except RpcError as exc:
                results.append({"error": exc.to_wire()})
        return {"results": results}

    async def _handle(self, conn: Any, method: str, params: dict[str, Any]) -> Any:
        self.calls.append((method, params))
        fn = self.handlers.get(method)
        if fn is None:
            raise RpcError("unknown_method", f"unknown method: {method}")
        validate_request(method, params)  # as the real controller does, before any handler
        return fn(params)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await rpc.serve_unix(self.path, self._handle)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(5)

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def params(self, method: str) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m == method]

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]


@pytest.fixture
def ctld(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeController]:
    """A running fake controller, ``SPUR_CONF`` pointing at it, UTC times and none of the
    query tools' environment variables set."""
    d = tempfile.mkdtemp(prefix="spurq", dir="/tmp")  # Unix socket paths are short
    sock = os.path.join(d, "ctld.sock")
    conf = os.path.join(d, "spur.toml")
    with open(conf, "w") as f:
        f.write(f'[cluster]\nname = "spur"\n\n[[replica]]\nid = 1\nraft = "127.0.0.1:1"\nsocket = "{sock}"\n')
    monkeypatch.setenv("SPUR_CONF", conf)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    for var in list(os.environ):
        if var.startswith(("SQUEUE_", "SACCT_", "SINFO_", "SCANCEL_", "SCONTROL_")) or var in (
            "SLURM_TIME_FORMAT", "SLURM_BITSTR_LEN", "SLURM_CLUSTERS", "SLURM_JSON", "SLURM_JOB_ID",
        ):
            monkeypatch.delenv(var)
    monkeypatch.setattr(common, "RETRY_FOR", 0.3)
    server = FakeController(sock)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(d, ignore_errors=True)
    monkeypatch.undo()
    time.tzset()
