"""The commands' real ``main()`` against a fake controller (an asyncio ``serve_unix`` server in a
background thread that implements a few methods and records every call).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spurcli import common, sacct, sbatch, scancel, scontrol, sinfo, squeue, srun
from spurio import rpc
from spurio.rpc import RpcError
from tests.contract.controller_contract import real_job_record, real_node_record, validate_request

INVALID_JOB = ("invalid_job_id", "Invalid job id specified")


def job_info(job_id: int, state: str = "RUNNING", **extra: Any) -> dict[str, Any]:
    """A job record shaped like spurcore.views.job_info."""
    base = extra.pop("base_state", state if state not in ("COMPLETING", "STOPPED") else "RUNNING")
    now = time.time()
    info = real_job_record(job_id, now)  # every field the real record has
    info.update({
        "job_id": job_id, "name": "job.sh", "user": "root", "uid": 0, "gid": 0, "state": state,
        "base_state": base, "reason": "None", "exit_code": 0 if base != "PENDING" else None,
        "derived_ec": 0, "priority": 1, "hold": 0, "submit_time": now - 10, "eligible_time": now - 10,
        "start_time": now - 5 if base != "PENDING" else 0, "end_time": 0, "suspend_time": 0,
        "run_time": 5, "time_limit": 3600, "partition": "debug", "account": "", "nodes": "n1",
        "node_count": 1, "num_cpus": 1, "num_tasks": 1, "cpus_per_task": 1, "mem_mb": 0,
        "dependency": "", "batch_flag": 1, "batch_host": "n1", "restarts": 0, "requid": -1,
        "failed_node": "", "command": "/tmp/job.sh", "submit_line": "sbatch job.sh", "work_dir": "/tmp",
        "stdout": f"/tmp/slurm-{job_id}.out", "stderr": f"/tmp/slurm-{job_id}.out",
        "stdin": "/dev/null", "alloc_node": "login", "alloc_sid": 1, "steps": [],
    })
    info.update(extra)
    return info


class FakeController:
    """A controller stand-in on a Unix socket; ``handlers[method](params)`` answers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.jobs: dict[int, dict[str, Any]] = {}
        self.next_id = 100
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "submit": self._submit,
            "jobs": self._jobs,
            "signal": self._signal,
            "signal_many": self._signal_many,
            "history": lambda p: {"jobs": list(self.jobs.values())},
            "nodes": lambda p: {"now": time.time(), "nodes": [dict(
                real_node_record("n1", 4, 1000), state="IDLE", registered_at=time.time(), partition="debug")]},
            "hold": self._known, "release": self._known, "requeue": self._known,
            "job_complete": self._known,
        }
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _submit(self, params: dict[str, Any]) -> dict[str, Any]:
        job_id = self.next_id
        self.next_id += 1
        self.jobs[job_id] = job_info(job_id, "PENDING", name=params["spec"]["name"])
        return {"job_id": job_id}

    def _jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        ids = params.get("job_ids") or list(self.jobs)
        return {"now": time.time(), "jobs": [self.jobs[j] for j in ids if j in self.jobs]}

    def _signal(self, params: dict[str, Any]) -> dict[str, Any]:
        self._known(params)
        return {"action_id": 1}

    def _signal_many(self, params: dict[str, Any]) -> dict[str, Any]:
        results = []
        for request in params["requests"]:
            self.calls.append(("signal", request))  # one signal each, as the real server does
            try:
                results.append(self._signal(request))
            except RpcError as exc:
                results.append({"error": exc.to_wire()})
        return {"results": results}

    def _known(self, params: dict[str, Any]) -> dict[str, Any]:
        if int(params["job_id"]) not in self.jobs:
            raise RpcError(*INVALID_JOB)
        return {}

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

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]

    def params(self, method: str) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m == method]


@pytest.fixture
def short_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="spurcli", dir="/tmp")  # Unix socket paths are short
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(short_dir: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeController]:
    sock = os.path.join(short_dir, "ctld.sock")
    conf = os.path.join(short_dir, "spur.toml")
    with open(conf, "w") as f:
        f.write(f'[cluster]\nkill_wait = 1\n\n[[replica]]\nid = 1\nraft = "127.0.0.1:1"\nsocket = "{sock}"\n')
    monkeypatch.setenv("SPUR_CONF", conf)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(common, "RETRY_FOR", 0.3)
    server = FakeController(sock)
    server.start()
    yield server
    server.stop()


# ------------------------------------------------------------------------------------ sbatch


def test_sbatch_parsable_wrap(fake, capsys):
    assert sbatch.main(["--parsable", "--wrap", "true"]) == 0
    assert capsys.readouterr().out == "100\n"
    (params,) = fake.params("submit")
    assert params["request_id"]
    assert params["spec"]["script"] == "#!/bin/sh\n# This script was created by sbatch --wrap.\n\ntrue\n"
    assert params["spec"]["name"] == "wrap"
    assert params["spec"]["submit_line"] == "sbatch --parsable --wrap true"


def test_sbatch_prints_submitted_line(fake, capsys):
    assert sbatch.main(["--wrap=true"]) == 0
    assert capsys.readouterr().out == "Submitted batch job 100\n"
    assert sbatch.main(["-Q", "--wrap=true"]) == 0
    assert capsys.readouterr().out == ""


def test_sbatch_submission_failure(fake, capsys):
    def refuse(params: dict[str, Any]) -> Any:
        raise RpcError("node_config", "Requested node configuration is not available")

    fake.handlers["submit"] = refuse
    assert sbatch.main(["--wrap=true"]) == 1
    err = capsys.readouterr().err
    assert err == "sbatch: error: Batch job submission failed: Requested node configuration is not available\n"


def test_sbatch_wait_exits_with_the_job_exit_code(fake, capsys, monkeypatch):
    monkeypatch.setattr(sbatch, "WAIT_FIRST_SLEEP", 0.01)
    polls = []

    def jobs(params: dict[str, Any]) -> Any:
        polls.append(params)
        state = "RUNNING" if len(polls) < 2 else "COMPLETING" if len(polls) < 3 else "FAILED"
        base = "FAILED" if state != "RUNNING" else "RUNNING"
        return {"now": time.time(), "jobs": [job_info(100, state, base_state=base, exit_code=3 << 8)]}

    fake.handlers["jobs"] = jobs
    assert sbatch.main(["--wait", "--wrap=exit 3"]) == 3
    assert capsys.readouterr().out == "Submitted batch job 100\n"
    assert len(polls) == 3  # COMPLETING is not the end yet


def test_sbatch_wait_signalled_job_exits_1(fake, capsys, monkeypatch):
    monkeypatch.setattr(sbatch, "WAIT_FIRST_SLEEP", 0.01)
    fake.handlers["jobs"] = lambda p: {"now": 0, "jobs": [job_info(100, "CANCELLED", exit_code=15)]}
    assert sbatch.main(["--wait", "--parsable", "--wrap=sleep 100"]) == 1


# ------------------------------------------------------------------------------------ scancel


def test_scancel_verbose_terminating(fake, capsys):
    fake.jobs[5] = job_info(5)
    assert scancel.main(["-v", "5"]) == 0
    assert capsys.readouterr().err == "scancel: Terminating job 5\n"
    (params,) = fake.params("signal")
    assert (params["job_id"], params["step_id"], params["kind"]) == (5, -1, 1)


def test_scancel_signal_to_step(fake, capsys):
    fake.jobs[5] = job_info(5)
    assert scancel.main(["--signal=HUP", "--verbose", "5.0"]) == 0
    assert capsys.readouterr().err == "scancel: Signal 1 to step 5.0\n"
    (params,) = fake.params("signal")
    assert (params["step_id"], params["kind"], params["signal"]) == (0, 4, 1)


def test_scancel_unknown_job_is_silent(fake, capsys):
    assert scancel.main(["99"]) == 0
    assert capsys.readouterr().err == ""
    assert scancel.main(["-v", "99"]) == 0
    err = capsys.readouterr().err
    assert err == ("scancel: Terminating job 99\n"
                   "scancel: error: Kill job error on job id 99: Invalid job id specified\n")


def test_scancel_non_kill_signal_error_exits_1(fake, capsys):
    assert scancel.main(["-s", "USR1", "99"]) == 1
    assert capsys.readouterr().err == ""


def test_scancel_other_errors_are_printed(fake, capsys):
    def denied(params: dict[str, Any]) -> Any:
        raise RpcError("access_denied", "Access/permission denied")

    fake.handlers["signal"] = denied
    assert scancel.main(["7"]) == 1
    assert capsys.readouterr().err == "scancel: error: Kill job error on job id 7: Access/permission denied\n"
    assert scancel.main(["-Q", "7"]) == 1
    assert capsys.readouterr().err == ""


def test_scancel_retries_transitional_state(fake, capsys, monkeypatch):
    monkeypatch.setattr(scancel, "RETRY_SLEEP", 0.0)

    def busy(params: dict[str, Any]) -> Any:
        raise RpcError("transition_state_no_update", "Job can not be altered now, try again later")

    fake.handlers["signal"] = busy
    assert scancel.main(["-s", "USR1", "8"]) == 1
    assert len(fake.params("signal")) == scancel.MAX_RETRIES
    assert capsys.readouterr().err == (
        "scancel: error: Kill job error on job id 8: Job can not be altered now, try again later\n")


def test_scancel_invalid_id(fake, capsys):
    assert scancel.main(["12_x"]) == 1
    assert capsys.readouterr().err == "scancel: error: Invalid job id 12_x\n"
    assert fake.calls == []


def test_scancel_filters(fake, capsys):
    fake.jobs[5] = job_info(5, "RUNNING", name="a")
    fake.jobs[6] = job_info(6, "PENDING", name="a")
    fake.jobs[7] = job_info(7, "PENDING", name="b")
    fake.jobs[8] = job_info(8, "COMPLETED", name="a")
    assert scancel.main(["-v", "-n", "a"]) == 0
    err = capsys.readouterr().err
    assert err == "scancel: Terminating job 6\nscancel: Terminating job 5\n"  # pending jobs first
    assert [p["job_id"] for p in fake.params("signal")] == [6, 5]


def test_scancel_filters_without_match(fake, capsys):
    fake.jobs[5] = job_info(5, "RUNNING", name="a")
    assert scancel.main(["-n", "zzz"]) == 0
    assert capsys.readouterr().err == ""
    assert scancel.main(["-v", "-n", "zzz", "-t", "R"]) == 0
    assert capsys.readouterr().err == (
        "scancel: error: No active jobs match ALL job filters, including: job_name=zzz state=RUNNING \n")


def test_scancel_filters_verify_given_ids(fake, capsys):
    fake.jobs[5] = job_info(5, "RUNNING", name="a")
    assert scancel.main(["-n", "a", "5", "9"]) == 1
    assert capsys.readouterr().err == "scancel: error: Kill job error on job id 9: Invalid job id specified\n"
    assert [p["job_id"] for p in fake.params("signal")] == [5]


# ------------------------------------------------------------------------------------ squeue


def test_squeue_unknown_single_job(fake, capsys):
    def invalid(params: dict[str, Any]) -> Any:
        raise RpcError(*INVALID_JOB)

    fake.handlers["jobs"] = invalid
    assert squeue.main(["-j", "99"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "slurm_load_jobs error: Invalid job id specified\n"
    assert captured.out == ""


def test_squeue_unknown_single_job_empty_answer(fake, capsys):
    assert squeue.main(["--jobs=99"]) == 1
    assert capsys.readouterr().err == "slurm_load_jobs error: Invalid job id specified\n"
    (params,) = fake.params("jobs")
    assert params["job_refs"] == ["99"] and params["columns"] is True


def test_squeue_default_table(fake, capsys):
    fake.jobs[5] = job_info(5, "RUNNING", name="myjob.sh")
    fake.jobs[6] = job_info(6, "COMPLETED")
    assert squeue.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
    assert len(out) == 2 and out[1].split()[:5] == ["5", "debug", "myjob.sh", "root", "R"]
    (params,) = fake.params("jobs")
    assert params["states"] == ["PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED"]
    assert params["columns"] is True and "job_id" in params["fields"]


def test_squeue_format_and_noheader(fake, capsys):
    fake.jobs[5] = job_info(5, "PENDING")
    assert squeue.main(["--noheader", "--format=%t", "--states=PD"]) == 0
    assert capsys.readouterr().out == "PD\n"


def test_squeue_finished_single_job_shows_header_only(fake, capsys):
    fake.jobs[6] = job_info(6, "COMPLETED")
    assert squeue.main(["-j6", "-o", "%i %T"]) == 0
    assert capsys.readouterr().out == "JOBID STATE\n"
    assert squeue.main(["-j6", "-o", "%i %T", "-t", "all", "-h"]) == 0
    assert capsys.readouterr().out == "6 COMPLETED\n"


def test_squeue_json(fake, capsys):
    import json

    fake.jobs[5] = job_info(5)
    assert squeue.main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [j["job_id"] for j in data["jobs"]] == [5]


# ------------------------------------------------------------------------------------ scontrol


def test_scontrol_show_job(fake, capsys):
    assert scontrol.main(["show", "job"]) == 0
    assert capsys.readouterr().out == "No jobs in the system\n"
    fake.jobs[5] = job_info(5)
    assert scontrol.main(["show", "job", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("JobId=5 JobName=job.sh\n   UserId=root(0) GroupId=")
    assert scontrol.main(["-o", "show", "job", "5"]) == 0
    assert capsys.readouterr().out.count("\n") == 1
    assert scontrol.main(["show", "job", "99"]) == 1
    assert capsys.readouterr().err == "slurm_load_jobs error: Invalid job id specified\n"


def test_scontrol_show_job_at(fake, capsys):
    fake.handlers["job_at"] = lambda p: {"job": job_info(int(p["job_id"]), "PENDING")}
    assert scontrol.main(["show", "job", "5", "--at", "now-1hours"]) == 0
    assert "JobState=PENDING" in capsys.readouterr().out
    (params,) = fake.params("job_at")
    assert params["job_id"] == 5 and abs(params["at"] - (time.time() - 3600)) < 5


def test_scontrol_show_node(fake, capsys):
    assert scontrol.main(["show", "node", "n1"]) == 0
    assert capsys.readouterr().out.startswith("NodeName=n1 ")
    assert scontrol.main(["show", "node", "nope"]) == 1
    assert capsys.readouterr().out == "Node nope not found\n"  # info_node.c: printf


def test_scontrol_job_control(fake, capsys):
    fake.jobs[5] = job_info(5)
    assert scontrol.main(["suspend", "5"]) == 0
    assert scontrol.main(["uhold", "5"]) == 0
    assert scontrol.main(["requeuehold", "5"]) == 0
    assert [(m, p.get("kind"), p.get("user_hold"), p.get("hold")) for m, p in fake.calls] == [
        ("signal", 2, None, None), ("hold", None, True, None), ("requeue", None, None, True)]
    assert scontrol.main(["resume", "5,99"]) == 1
    assert capsys.readouterr().err == "Invalid job id specified for job 99\n"
    assert scontrol.main(["release", "abc"]) == 1
    assert capsys.readouterr().err == "Invalid job id specified for job abc\n"
    assert scontrol.main(["bogus"]) == 1
    assert capsys.readouterr().err == "invalid keyword: bogus\n"


# ------------------------------------------------------------------------------------ sacct, sinfo


def test_sacct_jobs(fake, capsys):
    fake.jobs[5] = job_info(5, "COMPLETED", steps=[
        {"job_id": 5, "step_id": "batch", "name": "batch", "state": "COMPLETED", "exit_code": 0,
         "start_time": 1, "end_time": 2, "nodes": "n1", "node_count": 1, "ntasks": 1, "cpus": 1, "argv": [],
         "uid": 0}])
    fake.jobs[6] = job_info(6, "COMPLETED")
    assert sacct.main(["-j", "5", "-P", "-n", "-o", "jobid,state,exitcode"]) == 0
    assert capsys.readouterr().out == "5|COMPLETED|0:0\n5.batch|COMPLETED|0:0\n"
    (params,) = fake.params("history")
    assert params["job_ids"] == [5] and params["start"] == 0.0


def test_sacct_bad_field(fake, capsys):
    assert sacct.main(["-o", "bogus"]) == 1
    assert capsys.readouterr().err == 'sacct: error: Invalid field requested: "bogus"\n'


def test_sinfo_node_oriented(fake, capsys):
    assert sinfo.main(["-N", "-h"]) == 0
    assert capsys.readouterr().out.split() == ["n1", "1", "debug*", "idle"]


# ------------------------------------------------------------------------------------ srun


class FakeAgent:
    """An agent's step socket standing in for the agent and the step's supervisor: takes
    one ``launch_tasks`` request, answers it, then sends ``script`` (a list of
    notifications, each ``(method, params)``, or a callable run in between) and ``done``."""

    def __init__(self, path: str, script: list[Any]) -> None:
        self.path = path
        self.script = script
        self.request: list[Any] = []
        self.received: list[list[Any]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from spurio import stepserver

        conn, _ = self.sock.accept()
        with conn:
            reader = stepserver.FrameReader()
            while not self.request:
                for msg in reader.feed(conn.recv(65536)):
                    self.request = msg
            conn.sendall(stepserver.response(self.request[1], None, {"node": "n1", "tasks": [0], "pids": [1]}))
            for item in self.script:
                if callable(item):
                    item(conn, reader, self)
                else:
                    conn.sendall(stepserver.notification(*item))
            conn.sendall(stepserver.notification("done", {"status": 0, "oom": False, "node": "n1"}))
        self.sock.close()


def _step_create(agent_path: str) -> Callable[[dict[str, Any]], Any]:
    return lambda p: {"step_id": 0, "job_id": p["job_id"], "job": {"nodes": "n1", "node_count": 1},
                      "nodes": [{"name": "n1", "address": f"unix:{agent_path}", "tasks": [0], "cpus": 1}]}


def test_srun_inside_allocation(fake, short_dir, capsys, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.delenv("SLURM_NNODES", raising=False)
    fake.jobs[5] = job_info(5)
    agent = FakeAgent(os.path.join(short_dir, "agent.sock"),
                      [("out", [0, 1, b"hello\n"]), ("exit", [[0], 3 << 8])])
    fake.handlers["step_create"] = _step_create(agent.path)
    assert srun.main(["-n", "1", "/bin/sh", "-c", "exit 3"]) == 3
    captured = capsys.readouterr()
    assert captured.err == "srun: error: n1: task 0: Exited with exit code 3\n"
    (params,) = fake.params("step_create")
    assert params["job_id"] == 5 and params["name"] == "sh" and params["argv"] == ["/bin/sh", "-c", "exit 3"]
    assert params["ntasks"] == 1 and params["distribution"] == "block"
    agent.thread.join(5)
    tag, msgid, method, run = agent.request
    assert (tag, method) == (0, "launch_tasks")
    assert run["job_id"] == 5 and run["step_id"] == 0 and run["argv"] == ["/bin/sh", "-c", "exit 3"]
    assert run["tasks"] == [0] and run["nodeid"] == 0
    assert run["env"]["SLURM_STEP_ID"] == "0" and run["env"]["SLURM_STEP_NUM_TASKS"] == "1"
    assert run["env"]["SLURM_STEP_TASKS_PER_NODE"] == "1" and run["env"]["SLURM_STEP_NODELIST"] == "n1"
    assert run["cwd"] == os.getcwd()


def test_srun_signalled_step(fake, short_dir, capsys, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    agent = FakeAgent(os.path.join(short_dir, "agent.sock"), [("exit", [[0], 9])])
    fake.handlers["step_create"] = _step_create(agent.path)
    assert srun.main(["sleep", "100"]) == 128 + 9
    assert capsys.readouterr().err == "srun: error: n1: task 0: Killed\n"


def test_srun_exit_status_rules(fake, short_dir, capsys, monkeypatch):
    """launch.c _task_finish: a signal outranks any exit code; the highest code otherwise;
    one line per exit message, tasks as Slurm lists them."""
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    agent = FakeAgent(os.path.join(short_dir, "agent.sock"),
                      [("exit", [[0, 1, 2], 2 << 8]), ("exit", [[3], 15]), ("exit", [[4], 7 << 8])])
    fake.handlers["step_create"] = lambda p: {
        "step_id": 0, "job_id": 5, "job": {}, "nodes": [
            {"name": "n1", "address": f"unix:{agent.path}", "tasks": [0, 1, 2, 3, 4], "cpus": 5}]}
    assert srun.main(["-n", "5", "true"]) == 128 + 15
    assert capsys.readouterr().err == (
        "srun: error: n1: tasks 0-2: Exited with exit code 2\n"
        "srun: error: n1: task 3: Terminated\n"
        "srun: error: n1: task 4: Exited with exit code 7\n")


def test_srun_outside_allocation(fake, short_dir, capsys, monkeypatch):
    monkeypatch.setattr(srun, "POLL_FIRST_SLEEP", 0.01)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    agent = FakeAgent(os.path.join(short_dir, "agent.sock"), [("exit", [[0], 0])])
    fake.handlers["step_create"] = _step_create(agent.path)
    polls = []

    def jobs(params: dict[str, Any]) -> Any:
        polls.append(params)
        state = "PENDING" if len(polls) < 2 else "RUNNING"
        return {"now": time.time(), "jobs": [job_info(100, state)]}

    fake.handlers["jobs"] = jobs
    assert srun.main(["-J", "hn", "hostname"]) == 0
    assert capsys.readouterr().err == ""
    (submit,) = fake.params("submit")
    assert submit["spec"]["script"] is None and submit["spec"]["name"] == "hn"
    assert submit["spec"]["argv"] == ["hostname"]
    assert fake.methods()[:4] == ["submit", "jobs", "jobs", "step_create"]
    assert fake.methods()[-1] == "job_complete"
    (done,) = fake.params("job_complete")
    assert (done["job_id"], done["exit_code"], done["signal"]) == (100, 0, 0)


def test_srun_allocation_revoked(fake, capsys, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    fake.handlers["jobs"] = lambda p: {"now": 0, "jobs": [job_info(100, "CANCELLED")]}
    assert srun.main(["hostname"]) == 1
    assert capsys.readouterr().err == "srun: error: Job allocation 100 has been revoked.\n"


def test_srun_without_command(fake, capsys):
    assert srun.main(["-n", "2"]) == 1
    assert capsys.readouterr().err == "srun: fatal: No command given to execute.\n"


# ------------------------------------------------------------------------------------ no controller


@pytest.mark.parametrize("tool", [sbatch, squeue, scancel, scontrol, sacct, sinfo])
def test_unreachable_controller(tool, short_dir, monkeypatch, capsys):
    conf = os.path.join(short_dir, "spur.toml")
    with open(conf, "w") as f:
        f.write('[[replica]]\nid = 1\nraft = "x"\nsocket = "gone.sock"\n'
                '[[replica]]\nid = 2\nraft = "y"\nsocket = "gone2.sock"\n')
    monkeypatch.setenv("SPUR_CONF", conf)
    monkeypatch.setattr(common, "RETRY_FOR", 0.05)
    args = {sbatch: ["--wrap=true"], squeue: [], scancel: ["5"], scontrol: ["show", "job"],
            sacct: [], sinfo: []}[tool]
    assert tool.main(args) == 1
    assert capsys.readouterr().err == (
        f"{tool.PROG}: error: controller unavailable: no leader (0 of 2 replicas reachable)\n")


def test_no_config(tmp_path, monkeypatch, capsys):
    if os.path.exists("/etc/spur/spur.toml"):
        pytest.skip("a system-wide spur.toml exists")
    monkeypatch.delenv("SPUR_CONF", raising=False)
    monkeypatch.chdir(tmp_path)
    assert squeue.main([]) == 1
    assert capsys.readouterr().err == "squeue: error: no spur.toml found (set SPUR_CONF)\n"


def _signal_srun(sig: int, times: int = 1) -> Callable[..., None]:
    """A script step: signal srun (as a terminal would) and wait for it to react."""
    import signal as signal_module

    main_ident = threading.main_thread().ident

    def step(conn: socket.socket, reader: Any, agent: FakeAgent) -> None:
        for _ in range(times):
            signal_module.pthread_kill(main_ident, sig)
            time.sleep(0.05)

    return step


def _wait_for_kill(fake: FakeController) -> Callable[..., None]:
    def step(conn: socket.socket, reader: Any, agent: FakeAgent) -> None:
        deadline = time.monotonic() + 5
        while not fake.params("signal") and time.monotonic() < deadline:
            time.sleep(0.01)
    return step


def test_srun_sigterm_kills_the_step(fake, short_dir, capsys, monkeypatch):
    """srun_job.c: SIGTERM forces termination: the step is killed through the controller
    (slurm_kill_job_step), "Job step aborted: Waiting up to KillWait+2 seconds"."""
    import signal as signal_module

    monkeypatch.setenv("SLURM_JOB_ID", "5")
    fake.jobs[5] = job_info(5)
    fake.handlers["signal"] = lambda p: {"action_id": 1}
    agent = FakeAgent(os.path.join(short_dir, "agent.sock"),
                      [_signal_srun(signal_module.SIGTERM), _wait_for_kill(fake), ("exit", [[0], 9])])
    fake.handlers["step_create"] = _step_create(agent.path)
    before = signal_module.getsignal(signal_module.SIGTERM)
    assert srun.main(["sleep", "100"]) == 137
    agent.thread.join(5)
    assert capsys.readouterr().err == (
        "srun: forcing job termination\n"
        "srun: Job step aborted: Waiting up to 3 seconds for job step to finish.\n"
        "srun: error: n1: task 0: Killed\n")
    (params,) = fake.params("signal")
    assert (params["job_id"], params["step_id"], params["kind"]) == (5, 0, 1)
    assert signal_module.getsignal(signal_module.SIGTERM) is before  # handlers restored


def test_srun_one_sigint_prints_status_two_abort(fake, short_dir, capsys, monkeypatch):
    """srun_job.c _handle_intr: one Ctrl-C prints the tasks' states; two within a second
    send Ctrl-C to the tasks and force termination (quiet task lines afterwards)."""
    import signal as signal_module

    monkeypatch.setenv("SLURM_JOB_ID", "5")
    fake.handlers["signal"] = lambda p: {"action_id": 1}

    def check_forwarded(conn: socket.socket, reader: Any, agent: FakeAgent) -> None:
        conn.settimeout(5)
        while not any(m[1] == "signal" for m in agent.received):
            agent.received.extend(reader.feed(conn.recv(65536)))

    def pause(*_args: Any) -> None:
        time.sleep(0.2)

    agent = FakeAgent(os.path.join(short_dir, "agent.sock"),
                      [pause, _signal_srun(signal_module.SIGINT), pause, _signal_srun(signal_module.SIGINT),
                       check_forwarded, _wait_for_kill(fake), ("exit", [[0], 9])])
    fake.handlers["step_create"] = _step_create(agent.path)
    assert srun.main(["sleep", "100"]) == 137
    agent.thread.join(5)
    err = capsys.readouterr().err
    assert err.startswith("srun: interrupt (one more within 1 sec to abort)\n"
                          "srun: StepId=5.0 task 0: running\n")
    assert "srun: sending Ctrl-C to StepId=5.0\nsrun: forcing job termination\n" in err
    assert "Killed" not in err  # srun's job is cancelled: signalled tasks only with -v
    assert [m[2] for m in agent.received if m[1] == "signal"] == [signal_module.SIGINT]
