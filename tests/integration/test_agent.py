"""The real ``spurd`` (a subprocess) against a fake leader that records every call.

Pins docs/protocol.md's agent side: registration, starts answered by ``launched``,
completion reports (Slurm's ``exit_code:signal``), KILL reported before its ACK,
idempotent actions, re-adoption after ``kill -9`` of the agent, reports spooled while
the leader is away, and the srun step socket with SCM_RIGHTS descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spurcore.agentmsg import Registered
from spurcore.schema import structure
from spurd.spool import LOG_NAME, read_reports
from spurio import rpc
from spurio.rpc import RpcConnection
from tests.contract.controller_contract import validate_request

pytestmark = pytest.mark.timeout(120)

NODE = "n1"
REPO = Path(__file__).resolve().parents[2]


def wait_until(pred: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class FakeLeader:
    """An asyncio RPC server in a background thread, playing the leader for one agent.

    Like the real leader it re-pushes starts until ``launched`` and actions until ``ack``
    after every registration."""

    def __init__(self, path: str, follower_path: str) -> None:
        self.path = path
        self.follower_path = follower_path
        self.follower_calls: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pending_starts: dict[int, dict[str, Any]] = {}
        self.pending_actions: dict[int, dict[str, Any]] = {}
        self.conns: set[RpcConnection] = set()
        self.agent: RpcConnection | None = None
        self.server: asyncio.AbstractServer | None = None
        self.up()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    # -- server side (event loop thread)

    async def _handler(self, conn: RpcConnection, method: str, params: dict[str, Any]) -> Any:
        # What the real controller accepts, checked by its own request schemas (a request
        # it would refuse gets its bad_request here too), and answers the agent's own
        # schemas accept (spurcore.agentmsg.Registered).
        validate_request(method, params)
        with self.lock:
            self.calls.append((method, dict(params)))
        if method == "node_register":
            self.agent = conn
            self.loop.call_soon(self._push_pending, conn)
            answer = {"heartbeat_interval": 0.5, "kill_wait": 2, "suspend_grace": 0.5}
            structure(Registered, answer)
            return answer
        if method == "report":
            return {"status": "committed"}  # a duplicate too: the controller ignores it
        if method == "launched":
            self.pending_starts.pop(int(params["job_id"]), None)
        elif method == "ack":
            self.pending_actions.pop(int(params["action_id"]), None)
        return {}

    def _push_pending(self, conn: RpcConnection) -> None:
        for params in list(self.pending_starts.values()):
            conn.notify("start", params)
        for params in list(self.pending_actions.values()):
            conn.notify("action", params)

    async def _follower(self, conn: RpcConnection, method: str, params: dict[str, Any]) -> Any:
        # A follower: it names the leader's endpoint, or (every other time) knows no leader.
        self.follower_calls.append(method)
        if len(self.follower_calls) % 2 == 0:
            raise rpc.RpcError("no_leader", "no leader")
        raise rpc.RpcError("not_leader", f"unix:{self.path}")

    async def _up(self) -> None:
        self.server = await rpc.serve_unix(self.path, self._handler, on_connect=self.conns.add)
        if not os.path.exists(self.follower_path):
            await rpc.serve_unix(self.follower_path, self._follower)

    async def _down(self) -> None:
        assert self.server is not None
        self.server.close()
        for conn in list(self.conns):
            conn.close("leader going down")
        self.conns.clear()
        self.agent = None
        await self.server.wait_closed()
        self.server = None

    async def _notify(self, method: str, params: dict[str, Any]) -> None:
        if self.agent is not None and not self.agent.is_closed:
            self.agent.notify(method, params)

    # -- test side

    def up(self) -> None:
        self._run(self._up())

    def down(self) -> None:
        self._run(self._down())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.server is not None:
                self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def start_job(self, info: dict[str, Any], node: str = NODE) -> None:
        params = {"job": info, "node": node}
        self.pending_starts[int(info["job_id"])] = params
        self._run(self._notify("start", params))

    def resend_start(self, info: dict[str, Any], node: str = NODE) -> None:
        self._run(self._notify("start", {"job": info, "node": node}))

    def action(self, params: dict[str, Any]) -> None:
        self.pending_actions[int(params["action_id"])] = params
        self._run(self._notify("action", params))

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for m, p in self.calls if m == method]

    def reports(self, rid: str) -> list[dict[str, Any]]:
        return [p for p in self.calls_of("report") if p["report_id"] == rid]

    def index_of(self, method: str, pred: Callable[[dict[str, Any]], bool]) -> int:
        with self.lock:
            return next(i for i, (m, p) in enumerate(self.calls) if m == method and pred(p))


class Cluster:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.work = base / "work"
        self.work.mkdir()
        self.spool = base / "spool"
        self.sock = str(base / "a.sock")
        self.leader = FakeLeader(str(base / "l.sock"), str(base / "f.sock"))
        self.config = base / "spur.toml"
        self.config.write_text(
            f'[cluster]\nname = "testc"\nstate_dir = "{base}/state"\nkill_wait = 2\nsuspend_grace = 0.5\n'
            f'heartbeat_interval = 0.5\n\n[[replica]]\nid = 1\nraft = "127.0.0.1:1"\nsocket = "{base}/f.sock"\n'
            f'\n[[replica]]\nid = 2\nraft = "127.0.0.1:2"\nsocket = "{base}/l.sock"\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.next_job = 1

    def start_agent(self) -> None:
        log = open(self.base / "spurd.log", "ab")  # noqa: SIM115 - owned by the subprocess
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spurd.main", "--config", str(self.config), "--name", NODE, "--cpus", "2",
             "--mem", "1000", "--spool", str(self.spool), "--socket", self.sock],
            cwd=REPO, stdout=log, stderr=log,
        )
        log.close()

    def kill_agent(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(10)
        self.proc = None

    def job(self, script: str | None, **extra: Any) -> dict[str, Any]:
        job_id = self.next_job
        self.next_job += 1
        out = str(self.work / f"slurm-{job_id}.out")
        info = {
            "job_id": job_id, "name": f"job{job_id}", "user": "tester", "uid": os.getuid(), "gid": os.getgid(),
            "script": script, "argv": [], "env": {"PATH": "/usr/bin:/bin", "HOME": str(self.work)},
            "cwd": str(self.work), "work_dir": str(self.work), "stdout": out if script else "",
            "stderr": out if script else "", "stdin": "/dev/null" if script else "", "node_list": [NODE],
            "nodes": NODE, "cpus_per_node": 1, "mem_per_node": 0, "mem_mb": 0, "time_limit": None,
            "num_tasks": 1, "cpus_per_task": 1, "partition": "debug", "account": "", "restarts": 0,
            "alloc_node": "login1", "submit_line": "sbatch x",
        }
        info.update(extra)
        return info

    def output(self, job_id: int) -> str:
        path = self.work / f"slurm-{job_id}.out"
        return path.read_text() if path.exists() else ""

    def report(self, rid: str, timeout: float = 15.0) -> dict[str, Any]:
        return wait_until(lambda: self.leader.reports(rid), timeout, f"report {rid}")[0]

    def launched(self, job_id: int) -> int:
        return len([p for p in self.leader.calls_of("launched") if p["job_id"] == job_id])

    def cleanup(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.kill_agent(signal.SIGTERM)
        # Whatever still runs (a failed test) must not outlive the test.
        for pidfile in self.spool.glob("jobs/*/*/supervisor.pid"):
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
        self.leader.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="spt", dir="/tmp"))  # short: Unix socket paths
    c = Cluster(base)
    try:
        c.start_agent()
        yield c
    finally:
        c.cleanup()
        log = base / "spurd.log"
        if log.exists():  # shown by pytest only when something failed
            sys.stderr.write(log.read_text(errors="replace"))
        shutil.rmtree(base, ignore_errors=True)


def test_registers_with_the_leader(cluster: Cluster) -> None:
    reg = wait_until(lambda: cluster.leader.calls_of("node_register"), what="node_register")[0]
    # The first replica in the config is a follower: its not_leader names the leader.
    assert cluster.leader.follower_calls == ["node_register"]
    assert reg == {"name": NODE, "cpus": 2, "mem_mb": 1000, "address": f"unix:{cluster.sock}", "jobs": []}
    wait_until(lambda: cluster.leader.calls_of("heartbeat"), what="a heartbeat")


def test_a_second_agent_on_the_same_spool_refuses_to_start(cluster: Cluster) -> None:
    other = subprocess.run(
        [sys.executable, "-m", "spurd.main", "--config", str(cluster.config), "--name", NODE,
         "--spool", str(cluster.spool), "--socket", str(cluster.base / "b.sock")],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )
    assert other.returncode == 1
    assert "another spurd uses the spool" in other.stderr
    assert os.path.exists(cluster.sock)  # the running agent is untouched


def test_batch_job_exit_code_and_environment(cluster: Cluster) -> None:
    script = "#!/bin/bash\necho job=$SLURM_JOB_ID nodes=$SLURM_JOB_NODELIST host=$SLURMD_NODENAME\n" \
             "echo conf=$SPUR_CONF sock=$SPURD_SOCKET\necho path=$PATH\necho tpn=$SLURM_TASKS_PER_NODE\nexit 3\n"
    info = cluster.job(script)
    cluster.leader.start_job(info)
    report = cluster.report(f"{NODE}:{info['job_id']}:batch")
    assert (report["kind"], report["job_id"], report["node"]) == ("node", info["job_id"], NODE)
    assert (report["exit_code"], report["signal"], report["oom"]) == (3, 0, False)
    # It ended within LAUNCH_ACK_DELAY: its report stands for "launched" (one entry, not two).
    assert cluster.launched(info["job_id"]) == 0
    out = cluster.output(info["job_id"])
    assert f"job={info['job_id']} nodes={NODE} host={NODE}" in out
    assert f"conf={cluster.config} sock={cluster.sock}" in out
    assert f"path={os.path.dirname(sys.executable)}:/usr/bin:/bin" in out  # srun/sbatch first
    assert "tpn=1" in out


def test_script_without_shebang_runs_with_bash(cluster: Cluster) -> None:
    info = cluster.job("echo bash=$BASH_VERSION\nexit 0\n")
    cluster.leader.start_job(info)
    report = cluster.report(f"{NODE}:{info['job_id']}:batch")
    assert (report["exit_code"], report["signal"]) == (0, 0)
    assert "bash=" in cluster.output(info["job_id"]) and "bash=\n" not in cluster.output(info["job_id"])


def test_script_killed_by_a_signal(cluster: Cluster) -> None:
    # Slurm: a script that dies of SIGSEGV shows 0:11.
    info = cluster.job("#!/bin/bash\nulimit -c 0\nkill -SEGV $$\n")
    cluster.leader.start_job(info)
    report = cluster.report(f"{NODE}:{info['job_id']}:batch")
    assert (report["exit_code"], report["signal"]) == (0, 11)


def test_signal_action_to_the_batch_shell(cluster: Cluster) -> None:
    ready = cluster.work / "sig-ready"
    info = cluster.job(f"#!/bin/bash\ntrap 'exit 9' USR1\ntouch {ready}\nwhile true; do sleep 0.05; done\n")
    cluster.leader.start_job(info)
    wait_until(ready.exists, what="the script to be ready")
    cluster.leader.action({"action_id": 50, "job_id": info["job_id"], "step_id": -1, "kind": 4,
                           "signal": int(signal.SIGUSR1), "target": 1, "kill_wait": 2, "suspend_grace": 0.5})
    ack = wait_until(lambda: [a for a in cluster.leader.calls_of("ack") if a["action_id"] == 50], what="ack")[0]
    assert ack == {"action_id": 50, "node": NODE, "status": 0, "errno": 0}
    report = cluster.report(f"{NODE}:{info['job_id']}:batch")
    assert (report["exit_code"], report["signal"]) == (9, 0)


def test_kill_action_reports_before_ack_and_is_idempotent(cluster: Cluster) -> None:
    pids = cluster.work / "kill-pids"
    info = cluster.job(f"#!/bin/bash\necho $$ > {pids}.tmp\nsleep 300 &\necho $! >> {pids}.tmp\n"
                       f"mv {pids}.tmp {pids}\nwait\n")
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(pids.exists, what="the job's pids")
    shell, child = (int(x) for x in pids.read_text().split())
    assert pid_alive(shell) and pid_alive(child)
    kill = {"action_id": 101, "job_id": job_id, "step_id": -1, "kind": 1, "signal": 0, "target": 0,
            "kill_wait": 2, "suspend_grace": 0.5}
    cluster.leader.action(kill)
    ack = wait_until(lambda: [a for a in cluster.leader.calls_of("ack") if a["action_id"] == 101], what="ack")[0]
    assert ack == {"action_id": 101, "node": NODE, "status": 0, "errno": 0}
    rid = f"{NODE}:{job_id}:batch"
    # Slurm: a cancelled batch shell ends with SIGTERM (0:15); JobNodeComplete precedes the ACK.
    (report,) = cluster.leader.reports(rid)
    assert (report["exit_code"], report["signal"]) == (0, 15)
    assert cluster.leader.index_of("report", lambda p: p["report_id"] == rid) < \
        cluster.leader.index_of("ack", lambda p: p["action_id"] == 101)
    assert not pid_alive(shell) and not pid_alive(child)
    # The same action again: the same ACK, nothing done twice.
    cluster.leader.action(kill)
    wait_until(lambda: len([a for a in cluster.leader.calls_of("ack") if a["action_id"] == 101]) == 2,
               what="the repeated ack")
    assert [a for a in cluster.leader.calls_of("ack") if a["action_id"] == 101] == [ack, ack]
    assert len(cluster.leader.reports(rid)) == 1
    # A KILL of a job this node never ran is simply done.
    cluster.leader.action({**kill, "action_id": 102, "job_id": 9999})
    wait_until(lambda: [a for a in cluster.leader.calls_of("ack") if a["action_id"] == 102], what="ack 102")


def test_supervisor_killed_without_status_is_reported_as_sigkill(cluster: Cluster) -> None:
    pids = cluster.work / "dead-sup-pids"
    info = cluster.job(f"#!/bin/bash\nsleep 300 &\necho $$ $! > {pids}.tmp; mv {pids}.tmp {pids}\nwait\n")
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(pids.exists, what="the job's pids")
    shell, child = (int(x) for x in pids.read_text().split())
    rundir = cluster.spool / "jobs" / str(job_id) / "batch"
    os.kill(int((rundir / "supervisor.pid").read_text()), signal.SIGKILL)
    report = cluster.report(f"{NODE}:{job_id}:batch")
    assert (report["exit_code"], report["signal"]) == (0, 9)  # the job died with its supervisor
    wait_until(lambda: not pid_alive(shell), what="the shell to die (PDEATHSIG, or the agent's sweep of the step's cgroup)")
    if (rundir / "cgroup.json").exists():  # with cgroups nothing of the job survives
        wait_until(lambda: not pid_alive(child), what="the job's child to be killed")
    else:  # without them an orphan of a SIGKILLed supervisor escapes: not ours to test
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_a_running_job_is_acknowledged_as_launched(cluster: Cluster) -> None:
    """The batch host holds "launched" back for LAUNCH_ACK_DELAY only: a job still running
    then is acknowledged while it runs, so the leader stops sending its start."""
    flag = cluster.work / "ack-release"
    info = cluster.job(f"#!/bin/bash\nwhile [ ! -e {flag} ]; do sleep 0.05; done\n")
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(lambda: cluster.launched(job_id), what="launched while the job runs")
    assert not cluster.leader.reports(f"{NODE}:{job_id}:batch")
    flag.touch()
    assert cluster.report(f"{NODE}:{job_id}:batch")["exit_code"] == 0


def test_the_remains_of_an_interrupted_start_do_not_fail_the_next_one(cluster: Cluster) -> None:
    """A batch host makes a job's files durable only before "launched" (a short job's report
    does without them). After a power cut that lost its job.json, the directory holds a run
    that no record names (recovery leaves it alone); the start sent again runs the job
    afresh instead of failing on the old run directory."""
    info = cluster.job("#!/bin/bash\necho fresh\nexit 4\n")
    job_id = info["job_id"]
    stale = cluster.spool / "jobs" / str(job_id) / "batch"
    stale.mkdir(parents=True)
    (stale / "spec.json").write_text("{}")
    (stale / "status.json").write_text('{"wait_status": 256, "exit_code": 1}')
    cluster.leader.start_job(info)
    report = cluster.report(f"{NODE}:{job_id}:batch")
    assert (report["exit_code"], report["signal"]) == (4, 0), report
    assert cluster.output(job_id) == "fresh\n"


def test_agent_killed_and_restarted_loses_nothing(cluster: Cluster) -> None:
    runs = cluster.work / "restart-runs"
    info = cluster.job(f"#!/bin/bash\necho run >> {runs}\nsleep 2\nexit 7\n")
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(lambda: cluster.launched(job_id), what="launched")
    wait_until(runs.exists, what="the job to run")
    registrations = len(cluster.leader.calls_of("node_register"))
    cluster.kill_agent(signal.SIGKILL)
    cluster.start_agent()
    reg = wait_until(lambda: cluster.leader.calls_of("node_register")[registrations:], what="re-registration")[0]
    rid = f"{NODE}:{job_id}:batch"
    if not cluster.leader.reports(rid):  # still running when the agent came back
        assert job_id in reg["jobs"]
    # A re-sent start of a job the node knows is answered, not run again.
    cluster.leader.resend_start(info)
    wait_until(lambda: cluster.launched(job_id) >= 2, what="the second launched")
    report = cluster.report(rid)
    assert (report["exit_code"], report["signal"]) == (7, 0)
    # Exactly once: wait for the spool to be empty, then count.
    wait_until(lambda: not read_reports(str(cluster.spool / "reports" / LOG_NAME)), what="an empty spool")
    assert len(cluster.leader.reports(rid)) == 1
    assert runs.read_text() == "run\n"


def test_sigterm_stops_the_agent_but_not_its_jobs(cluster: Cluster) -> None:
    gate = cluster.work / "term-gate"
    info = cluster.job(f"#!/bin/bash\nwhile [ ! -e {gate} ]; do sleep 0.02; done\nexit 6\n")
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(lambda: cluster.launched(job_id), what="launched")
    assert cluster.proc is not None
    proc = cluster.proc
    cluster.kill_agent(signal.SIGTERM)
    assert proc.returncode == 0
    assert not os.path.exists(cluster.sock)
    pid = int((cluster.spool / "jobs" / str(job_id) / "batch" / "supervisor.pid").read_text())
    assert pid_alive(pid)  # the job is still running without its agent
    cluster.start_agent()
    wait_until(lambda: os.path.exists(cluster.sock), what="the agent socket")
    gate.touch()
    report = cluster.report(f"{NODE}:{job_id}:batch")
    assert (report["exit_code"], report["signal"]) == (6, 0)


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_suspend_and_resume_actions(cluster: Cluster) -> None:
    pidfile = cluster.work / "susp-pid"
    gate = cluster.work / "susp-gate"
    info = cluster.job(f"#!/bin/bash\necho $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}\n"
                       f"while [ ! -e {gate} ]; do sleep 0.02; done\nexit 0\n")
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(pidfile.exists, what="the job's pid")
    shell = int(pidfile.read_text())
    base = {"job_id": job_id, "step_id": -1, "signal": 0, "target": 0, "kill_wait": 2, "suspend_grace": 0.5}
    cluster.leader.action({**base, "action_id": 301, "kind": 2})
    wait_until(lambda: [a for a in cluster.leader.calls_of("ack") if a["action_id"] == 301], what="STOP ack")
    wait_until(lambda: _proc_state(shell) == "T", what="the job to stop")
    cluster.leader.action({**base, "action_id": 302, "kind": 3})
    wait_until(lambda: [a for a in cluster.leader.calls_of("ack") if a["action_id"] == 302], what="CONT ack")
    wait_until(lambda: _proc_state(shell) != "T", what="the job to continue")
    # A repeated STOP after the CONT is answered from the spool and does not stop the job again.
    cluster.leader.action({**base, "action_id": 301, "kind": 2})
    wait_until(lambda: len([a for a in cluster.leader.calls_of("ack") if a["action_id"] == 301]) == 2,
               what="the repeated STOP ack")
    gate.touch()
    report = cluster.report(f"{NODE}:{job_id}:batch")
    assert (report["exit_code"], report["signal"]) == (0, 0)


def test_reports_spooled_while_the_leader_is_down(cluster: Cluster) -> None:
    gate = cluster.work / "down-gate"
    info = cluster.job(f"#!/bin/bash\nwhile [ ! -e {gate} ]; do sleep 0.02; done\nexit 5\n")
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(lambda: cluster.launched(job_id), what="launched")
    cluster.leader.down()
    gate.touch()
    wait_until(lambda: read_reports(str(cluster.spool / "reports" / LOG_NAME)), what="the report in the spool")
    rid = f"{NODE}:{job_id}:batch"
    assert not cluster.leader.reports(rid)
    wait_until(lambda: len(cluster.leader.follower_calls) >= 3, what="retries through the follower")
    cluster.leader.up()
    report = cluster.report(rid)
    assert (report["exit_code"], report["signal"]) == (5, 0)
    wait_until(lambda: not read_reports(str(cluster.spool / "reports" / LOG_NAME)), what="an empty spool")
    assert len(cluster.leader.reports(rid)) == 1


def _launch(path: str, params: dict[str, Any]) -> socket.socket:
    from spurio import stepserver

    sock = stepserver.connect(f"unix:{path}", timeout=15)
    sock.sendall(stepserver.request(7, "launch_tasks", params))
    return sock


def _read_until_done(sock: socket.socket, timeout: float = 15.0) -> list[list[Any]]:
    """Every frame the step's supervisor sends, up to and including ``done``."""
    from spurio import stepserver

    reader = stepserver.FrameReader()
    sock.settimeout(timeout)
    out: list[list[Any]] = []
    while True:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before done: {out}"
        for msg in reader.feed(chunk):
            out.append(msg)
            if msg[0] == 2 and msg[1] == "done":
                return out


def test_srun_step_through_the_agent_socket(cluster: Cluster) -> None:
    """launch_tasks: the agent hands srun's connection to the step's supervisor, which
    answers, relays each task's output and exit, and ends with done; the agent reports the
    node's part (slurmstepd's rule: the highest status) to the controller."""
    info = cluster.job(None)  # an srun-created allocation: nothing runs until a step
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(lambda: cluster.launched(job_id), what="launched")
    params = {"job_id": job_id, "step_id": 0, "argv": ["/bin/bash", "-c", "echo hi $SLURM_PROCID; exit 4"],
              "env": {"PATH": "/usr/bin:/bin"}, "cwd": str(cluster.work), "tasks": [0, 1], "nodeid": 0,
              "io": {}}
    with _launch(cluster.sock, params) as sock:
        frames = _read_until_done(sock)
    assert frames[0][:3] == [1, 7, None] and frames[0][3]["tasks"] == [0, 1]
    outs = sorted(bytes(m[2][2]) for m in frames if m[0] == 2 and m[1] == "out")
    assert outs == [b"hi 0\n", b"hi 1\n"]
    exits = sorted(t for m in frames if m[0] == 2 and m[1] == "exit" for t in m[2][0])
    assert exits == [0, 1] and all(m[2][1] == 4 << 8 for m in frames if m[0] == 2 and m[1] == "exit")
    report = cluster.report(f"{NODE}:{job_id}:0")
    assert (report["kind"], report["step_id"], report["exit_code"], report["signal"]) == ("step", 0, 4, 0)
    assert report["usage"]["ntasks"] == 2


def test_step_io_survives_an_agent_restart(cluster: Cluster) -> None:
    """The agent is SIGKILLed while a step runs: srun's connection belongs to the step's
    supervisor, so the output and the end still arrive; the new agent reports the step."""
    info = cluster.job(None)
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(lambda: cluster.launched(job_id), what="launched")
    gate = cluster.work / "restart-gate"
    params = {"job_id": job_id, "step_id": 0, "cwd": str(cluster.work), "tasks": [0], "io": {},
              "argv": ["/bin/bash", "-c", f"echo before; while [ ! -e {gate} ]; do sleep 0.02; done; echo after"],
              "env": {"PATH": "/usr/bin:/bin"}}
    with _launch(cluster.sock, params) as sock:
        from spurio import stepserver

        reader = stepserver.FrameReader()
        frames: list[list[Any]] = []
        sock.settimeout(15)
        while not any(m[0] == 2 and m[1] == "out" for m in frames):
            frames.extend(reader.feed(sock.recv(65536)))
        cluster.kill_agent()
        cluster.start_agent()
        gate.touch()
        rest = _read_until_done(sock)
    outs = b"".join(bytes(m[2][2]) for m in frames + rest if m[0] == 2 and m[1] == "out")
    assert outs == b"before\nafter\n"
    report = cluster.report(f"{NODE}:{job_id}:0")
    assert (report["exit_code"], report["signal"]) == (0, 0)


def test_run_step_after_the_allocation_ended_is_refused(cluster: Cluster) -> None:
    from spurio import stepserver

    info = cluster.job(None)
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(lambda: cluster.launched(job_id), what="launched")
    cluster.leader.action({"action_id": 201, "job_id": job_id, "step_id": -1, "kind": 1, "signal": 0,
                           "target": 0, "kill_wait": 2, "suspend_grace": 0.5})
    wait_until(lambda: [a for a in cluster.leader.calls_of("ack") if a["action_id"] == 201], what="ack")
    params = {"job_id": job_id, "step_id": 0, "argv": ["true"], "env": {}, "cwd": "/", "tasks": [0]}
    with _launch(cluster.sock, params) as sock:
        sock.settimeout(15)
        reader = stepserver.FrameReader()
        reply: list[Any] = []
        while not reply:
            chunk = sock.recv(65536)
            assert chunk
            reply = reader.feed(chunk)
    assert reply[0][0:2] == [1, 7] and reply[0][2]["code"] == "already_done" and reply[0][3] is None


# ---------------------------------------------------------------------- malformed input


def _ask_raw(path: str, data: bytes, close_write: bool = True) -> list[Any] | None:
    """Send raw bytes to the agent's step socket; the reply frame, or None if it closed."""
    from spurio import stepserver

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(path)
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        reader = stepserver.FrameReader()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            got = reader.feed(chunk)
            if got:
                return got[0]


def test_malformed_step_requests_get_errors_and_the_agent_keeps_serving(cluster: Cluster) -> None:
    """Every malformed request to the step endpoint is answered with an error naming the
    field (``bad_request``, as the controller answers), or the connection is closed when not
    even a request id can be read; no traceback, and a well-formed launch works after."""
    import msgpack

    info = cluster.job(None)
    job_id = info["job_id"]
    cluster.leader.start_job(info)
    wait_until(lambda: cluster.launched(job_id), what="launched")

    def frame(obj: Any) -> bytes:
        body = msgpack.packb(obj, use_bin_type=True)
        return len(body).to_bytes(4, "big") + body

    good = {"job_id": job_id, "step_id": 0, "argv": ["/bin/sh", "-c", "echo ok"], "env": {"PATH": "/usr/bin:/bin"},
            "cwd": str(cluster.work), "tasks": [0], "io": {}}
    cases: list[tuple[bytes, str, str]] = [
        (frame([0, 3, "launch_tasks", {**good, "tasks": []}]), "bad_request", "launch_tasks: tasks: expected a non-empty"),
        (frame([0, 3, "launch_tasks", {**good, "argv": "echo"}]), "bad_request", "argv: expected a non-empty list"),
        (frame([0, 3, "launch_tasks", {**good, "job_id": 0}]), "bad_request", "job_id: expected an integer from 1"),
        (frame([0, 3, "launch_tasks", {**good, "io": {"stdout": {"mode": "pipe"}}}]), "bad_request",
         "io.stdout.mode: expected one of"),
        (frame([0, 3, "launch_tasks", {**good, "signal": 9}]), "bad_request", "signal: unknown field"),
        (frame([0, 3, "step_stat", {"job_id": job_id, "step_id": "0"}]), "bad_request",
         "step_stat: step_id: expected an integer"),
        (frame([0, 3, "attach_step", {"job_id": job_id}]), "bad_request", "attach_step: step_id: missing"),
        (frame([0, 3, "step_stat", [job_id, 0]]), "bad_request", "params must be a map"),
        (frame([0, 3, "explode", {}]), "unknown_method", "unknown method: 'explode'"),
        (frame([2, "launch_tasks", good]), "bad_request", "expected a request"),
        (frame({"job_id": job_id}), "bad_request", "message must be a non-empty array"),
        (b"\x00\x00\x00\x03\xc1\xc1\xc1", "bad_request", "malformed msgpack"),
        (b"\xff\xff\xff\xff", "frame_too_large", ""),
        (b"\x00\x00\x01\x00only part of a frame", "bad_request", "connection closed inside a frame"),
        (b"", "bad_request", "connection closed before a request"),
    ]
    for data, code, text in cases:
        reply = _ask_raw(cluster.sock, data)
        assert reply is not None and reply[0] == 1, (data[:40], reply)
        assert reply[2]["code"] == code and text in reply[2]["message"], (data[:40], reply)
        assert reply[3] is None
    # The agent is still there and serves a well-formed launch.
    with _launch(cluster.sock, good) as sock:
        frames = _read_until_done(sock)
    assert b"".join(bytes(m[2][2]) for m in frames if m[0] == 2 and m[1] == "out") == b"ok\n"
    assert "Traceback" not in (cluster.base / "spurd.log").read_text(errors="replace")


def test_malformed_notifications_are_logged_once_and_dropped(cluster: Cluster) -> None:
    """A controller notification that does not fit is logged once, naming the field, and
    dropped (the controller re-sends what it still wants); the agent keeps serving."""
    log = cluster.base / "spurd.log"
    bad = [
        ("start", {"job": {"job_id": "x"}, "node": NODE}, "'start' notification: job.job_id: expected an integer"),
        ("action", {"action_id": 77, "job_id": 1, "kind": 9}, "'action' notification: kind: expected one of 1, 2, 3, 4"),
        ("kill", {"job_id": -4}, "'kill' notification: job_id: expected an integer from 1"),
        ("kill", {"job_id": 4, "now": True}, "'kill' notification: now: unknown field"),
        ("explode", {}, "'explode' notification: method: expected one of start, action, kill"),
    ]
    for _ in range(2):  # the controller re-sends: the same error is logged once
        for method, params, _text in bad:
            cluster.leader._run(cluster.leader._notify(method, params))
    for _method, _params, text in bad:
        wait_until(lambda text=text: text in log.read_text(errors="replace"), what=f"the log line {text!r}")
    info = cluster.job("#!/bin/sh\nexit 2\n")
    cluster.leader.start_job(info)
    report = cluster.report(f"{NODE}:{info['job_id']}:batch")
    assert (report["exit_code"], report["signal"]) == (2, 0)
    text = log.read_text(errors="replace")
    for _method, _params, line in bad:
        assert text.count(line) == 1, line
    assert "Traceback" not in text
    assert not [a for a in cluster.leader.calls_of("ack") if a["action_id"] == 77]
