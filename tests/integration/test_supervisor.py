"""spurd.supervisor with real processes (Slurm's slurmstepd: DESIGN.md section 5,
slurm-behaviour.md section 9).

Every case that depends on process tracking runs without cgroups and, where writable,
with the v1 (freezer + memory) and v2 hierarchies. Synchronisation is always a condition
polled under a deadline, never a bare sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spurd import cgroups, proccontrol, procs
from spurd.procs import read_status, send_control, start_supervisor
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc and prctl")

IS_ROOT = os.geteuid() == 0
CG_ROOT = f"spurtest-{os.getpid()}/node1"
_job_ids = itertools.count(1000)


def _mode_available(mode: str) -> bool:
    if mode == "none":
        return True
    try:
        hier = cgroups.detect(mode)
    except ValueError:
        return False
    if hier is None:
        return False
    cg = cgroups.JobCgroup(hier, cgroups.step_relpath(CG_ROOT, 0, "probe"))
    try:
        cg.create()
    except OSError:
        return False
    cg.remove()
    return True


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cgroups() -> Iterator[None]:
    yield
    top = CG_ROOT.split("/")[0]
    for mode in ("v1", "v2"):
        hier = cgroups.detect(mode)
        if hier is None:
            continue
        for base in {hier.track, hier.memory} - {None}:
            assert base is not None
            root = os.path.join(base, top)
            for dirpath, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)


@pytest.fixture(params=["none", "v1", "v2"])
def cgmode(request: pytest.FixtureRequest) -> str:
    if not _mode_available(request.param):
        pytest.skip(f"no writable cgroup {request.param} hierarchy")
    return str(request.param)


@contextlib.contextmanager
def hostile_parent_signals() -> Iterator[None]:
    """Start supervisors the way a careless agent might: SIGINT ignored, SIGUSR1 blocked."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGINT, old_int)


@dataclass
class Job:
    rundir: Path
    sup_pid: int

    def ctl(self, **msg: Any) -> dict[str, Any]:
        return send_control(self.rundir, msg)

    def status(self, timeout: float = 10.0) -> dict[str, Any]:
        return wait_for(lambda: read_status(self.rundir), timeout, f"{self.rundir}/status.json")

    def file(self, name: str) -> str:
        path = self.rundir / name
        return path.read_text() if path.exists() else ""

    def pid_from(self, name: str) -> int:
        return int(wait_for(lambda: self.file(name).strip(), what=name))

    def cgroup_dirs(self) -> dict[str, Any]:
        return json.loads(self.file("cgroup.json") or "{}")


@pytest.fixture
def launch(tmp_path: Path, cgmode: str) -> Iterator[Callable[..., Job]]:
    jobs: list[Job] = []

    def _launch(script: str | None = None, argv: list[str] | None = None, **overrides: Any) -> Job:
        rundir = tmp_path / f"run{len(jobs)}"
        rundir.mkdir()
        if script is not None:
            (rundir / "job.sh").write_text("#!/bin/bash\n" + script + "\n")
            argv = ["/bin/bash", str(rundir / "job.sh")]
        spec: dict[str, Any] = {
            "job_id": next(_job_ids),
            "step": "batch",
            "argv": argv,
            "cwd": str(rundir),
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(rundir), "FOO": "bar"},
            "uid": os.getuid(),
            "gid": os.getgid(),
            "stdin": "/dev/null",
            "stdout": str(rundir / "out"),
            "stderr": str(rundir / "err"),
            "kill_wait": 30.0,
            "suspend_grace": 0.2,
            "mem_limit_mb": 0,
            "cgroup_root": None if cgmode == "none" else CG_ROOT,
            "cgroup_mode": cgmode,
        }
        spec.update(overrides)
        (rundir / "spec.json").write_text(json.dumps(spec))
        with hostile_parent_signals():
            sup_pid = start_supervisor(rundir)
        job = Job(rundir, sup_pid)
        jobs.append(job)
        return job

    yield _launch
    for job in jobs:
        if read_status(job.rundir) is None:
            with contextlib.suppress(OSError):
                job.ctl(op="kill", kill_wait=0)
            with contextlib.suppress(AssertionError):
                job.status(timeout=5)
        if procs.alive(job.sup_pid) and read_status(job.rundir) is None:
            procs.kill_tree(job.sup_pid)
    for job in jobs:
        # Slurm removes the step cgroup when the step ends; so must we.
        for d in (job.cgroup_dirs().get("track"), job.cgroup_dirs().get("memory")):
            if d and read_status(job.rundir) is not None:
                wait_for(lambda d=d: not os.path.exists(d), timeout=3, what=f"removal of {d}")


def gone(pid: int) -> bool:
    return procs.proc_state(pid) is None


# ---------------------------------------------------------------------- exit status


@pytest.mark.parametrize("code", [0, 13, 200, 137])
def test_exit_code(launch: Callable[..., Job], code: int) -> None:
    """status.json carries the pair (WEXITSTATUS, 0) and the raw status."""
    job = launch(f"exit {code}")
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (code, 0)
    assert st["wait_status"] == code << 8
    assert st["oom"] is False
    # status.json written: nobody listens on the control socket any more (the socket file
    # stays with the rundir: spurd/supervisor.py says why)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(str(job.rundir / "ctl.sock"))


@pytest.mark.parametrize(
    "name",
    ["INT", "TERM", "SEGV", "KILL", "HUP", "PIPE", "USR1"],
)
def test_raised_signal(launch: Callable[..., Job], name: str) -> None:
    """(0, sig) for a shell that signals itself. INT/HUP/PIPE are ignored by the supervisor
    and its launcher, USR1 is blocked in the launcher: a job that inherited those would
    survive its own kill (bash cannot reset signals ignored at entry), so this pins the
    reset of dispositions and mask before exec."""
    sig = signal.Signals[f"SIG{name}"]
    job = launch(f"ulimit -c 0; kill -{name} $$; exit 0")
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (0, int(sig)), job.file("err")
    assert st["wait_status"] & 0x7F == int(sig)


# ---------------------------------------------------------------------- leftovers


DAEMON = """( setsid bash -c 'trap "" TERM HUP; echo $$ > gc.pid; exec sleep 1000' & )"""


def test_kill_reaps_setsid_grandchild(launch: Callable[..., Job], cgmode: str) -> None:
    """A double-forked, setsid'd grandchild ignoring SIGTERM is adopted by the subreaper
    and SIGKILLed when the main process ends (no orphan survives the step)."""
    job = launch(f"{DAEMON}\nsleep 1000 &\necho $! > child.pid\nwait")
    gc, child = job.pid_from("gc.pid"), job.pid_from("child.pid")
    assert procs.alive(gc) and procs.alive(child)
    wait_for(lambda: procs.proc_ppid(gc) == job.sup_pid, what="grandchild reparented to the supervisor")
    assert procs.proc_pgid(gc) != procs.proc_pgid(child)  # escaped the job's process group
    track = job.cgroup_dirs().get("track")
    if cgmode != "none":
        assert track is not None
        members = {int(p) for p in Path(track, "cgroup.procs").read_text().split()}
        assert {gc, child} <= members
    t0 = time.monotonic()
    assert job.ctl(op="kill", kill_wait=20) == {"ok": True}
    st = job.status()
    assert time.monotonic() - t0 < 5  # main died on SIGTERM: leftovers are not waited for
    assert (st["exit_code"], st["signal"]) == (0, signal.SIGTERM)
    assert gone(gc) and gone(child)
    if track:
        assert not os.path.exists(track)


def test_exit_kills_daemonized_grandchild(launch: Callable[..., Job]) -> None:
    """Slurm ends the batch step with the script: a daemon it left is killed."""
    job = launch(f"{DAEMON}\nwhile [ ! -s gc.pid ]; do sleep 0.01; done\nexit 0")
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (0, 0)
    gc = int(job.file("gc.pid"))
    assert gone(gc)


def test_kill_wait_then_sigkill(launch: Callable[..., Job]) -> None:
    """Slurm's terminate: SIGCONT, SIGTERM, KillWait, SIGKILL. A TERM-trapping script is
    SIGKILLed once KillWait (1 s) has passed."""
    job = launch("trap 'echo got TERM' TERM\necho $$ > main.pid\nwhile :; do sleep 0.1; done")
    job.pid_from("main.pid")
    t0 = time.monotonic()
    assert job.ctl(op="kill", kill_wait=1) == {"ok": True}
    assert job.ctl(op="status")["killing"] is True  # the control loop still answers
    st = job.status()
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed <= 3.0
    assert (st["exit_code"], st["signal"]) == (0, signal.SIGKILL)
    assert "got TERM" in job.file("out")


def test_supervisor_sigterm_terminates_job(launch: Callable[..., Job]) -> None:
    """SIGTERM to the supervisor runs the terminate sequence (the job dies with it)."""
    job = launch("echo $$ > main.pid\nsleep 1000")
    main = job.pid_from("main.pid")
    os.kill(job.sup_pid, signal.SIGTERM)
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (0, signal.SIGTERM)
    assert gone(main)


# ---------------------------------------------------------------------- suspend


SUSPENDABLE = "sleep 1000 &\necho $! > bg.pid\necho $$ > main.pid\nwhile :; do sleep 0.05; done"


def _states(job: Job) -> dict[int, str | None]:
    return {p: procs.proc_state(p) for p in job.ctl(op="status")["pids"]}


def test_suspend_resume(launch: Callable[..., Job]) -> None:
    """scontrol suspend: SIGTSTP, grace, SIGSTOP; every process ends in state T (no freezer).
    resume: SIGCONT, nothing stays stopped."""
    job = launch(SUSPENDABLE)
    main, bg = job.pid_from("main.pid"), job.pid_from("bg.pid")
    assert job.ctl(op="suspend") == {"ok": True}
    states = wait_for(
        lambda: (s := _states(job)) and all(v == "T" for v in s.values()) and s, what="all processes in T"
    )
    assert {main, bg} <= set(states)
    assert job.ctl(op="status")["suspended"] is True
    assert job.ctl(op="resume") == {"ok": True}
    wait_for(lambda: all(v != "T" for v in _states(job).values()), what="no process in T")
    assert job.ctl(op="kill", kill_wait=5) == {"ok": True}
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (0, signal.SIGTERM)
    assert gone(main) and gone(bg)


def test_kill_suspended_is_immediate_sigkill(launch: Callable[..., Job]) -> None:
    """Slurm: a suspended step that is cancelled is SIGKILLed at once (no SIGTERM grace)."""
    job = launch("trap 'echo got TERM' TERM\n" + SUSPENDABLE)
    job.pid_from("main.pid")
    job.ctl(op="suspend")
    wait_for(lambda: all(v == "T" for v in _states(job).values()), what="all processes in T")
    t0 = time.monotonic()
    job.ctl(op="kill", kill_wait=30)
    st = job.status()
    assert time.monotonic() - t0 < 5
    assert (st["exit_code"], st["signal"]) == (0, signal.SIGKILL)
    assert "got TERM" not in job.file("out")


# ---------------------------------------------------------------------- agent death


def test_job_survives_agent_sigkill(launch: Callable[..., Job], tmp_path: Path, cgmode: str) -> None:
    """DESIGN 5: a restart of spurd neither kills the job nor loses its exit status."""
    rundir = tmp_path / "agent-run"
    rundir.mkdir()
    spec = {
        "job_id": next(_job_ids),
        "step": 0,
        "argv": ["/bin/bash", "-c", "echo $$ > main.pid; while [ ! -e go ]; do sleep 0.05; done; exit 7"],
        "cwd": str(rundir),
        "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        "stdout": str(rundir / "out"),
        "kill_wait": 5,
        "cgroup_root": None if cgmode == "none" else CG_ROOT,
        "cgroup_mode": cgmode,
    }
    (rundir / "spec.json").write_text(json.dumps(spec))
    agent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom spurd.procs import start_supervisor\n"
            "print(start_supervisor(sys.argv[1]), flush=True)\ntime.sleep(1000)",
            str(rundir),
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert agent.stdout is not None
        sup_pid = int(agent.stdout.readline())
    finally:
        agent.kill()
        agent.wait()
    job = Job(rundir, sup_pid)
    try:
        main = job.pid_from("main.pid")
        st = job.ctl(op="status")
        assert st["running"] is True and st["main_pid"] == main
        assert procs.alive(sup_pid) and procs.alive(main)
        assert read_status(rundir) is None
        (rundir / "go").touch()
        status = job.status()
        assert (status["exit_code"], status["signal"]) == (7, 0)
    finally:
        if read_status(rundir) is None:
            procs.kill_tree(sup_pid)


# ---------------------------------------------------------------------- I/O, cwd, env, user


def test_stdio_cwd_env(launch: Callable[..., Job], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "in.txt").write_text("from-stdin\n")
    job = launch(
        argv=["/bin/bash", "-c", 'pwd; echo "FOO=$FOO"; cat; echo to-err >&2'],
        cwd=str(work),
        stdin=str(tmp_path / "in.txt"),
    )
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (0, 0)
    assert job.file("out").splitlines() == [str(work), "FOO=bar", "from-stdin"]
    assert job.file("err") == "to-err\n"


def test_stdout_stderr_same_file_appends(launch: Callable[..., Job], tmp_path: Path) -> None:
    out = tmp_path / "joined.log"
    out.write_text("before\n")
    job = launch(argv=["/bin/sh", "-c", "echo one; echo two >&2"], stdout=str(out), stderr=str(out))
    job.status()
    assert out.read_text() == "before\none\ntwo\n"


def test_job_starts_with_only_stdin_stdout_stderr(launch: Callable[..., Job]) -> None:
    job = launch(argv=["/bin/sh", "-c", "ls /proc/$$/fd"])
    assert (job.status()["exit_code"], job.file("out").split()) == (0, ["0", "1", "2"])


PROBE = """ls /proc/$$/fd > fds.txt
echo "sid $(ps -o sid= -p $$ | tr -d ' ') pid $$"
echo "umask $(umask)"
echo "cwd $(pwd)"
echo "freezer $(grep -E '^[0-9]+:freezer:' /proc/$$/cgroup | cut -d: -f3)"
"""


@pytest.mark.parametrize("how", ["auto", "fork"])
def test_spawned_and_forked_tasks_start_alike(launch: Callable[..., Job], cgmode: str, how: str,
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A batch task is spawned (posix_spawn) where a v1 cgroup holds the step and the job
    keeps the supervisor's credentials, forked otherwise or with SPUR_TASK_SPAWN=fork; the
    job cannot tell: fds 0-2 only, no signal ignored or blocked (the launcher ignored SIGINT
    and blocked SIGUSR1), a session of its own, the spec's umask and working directory, the
    step's cgroup. The supervisor itself is back in its own cgroup after the spawn."""
    monkeypatch.setenv("SPUR_TASK_SPAWN", how)
    work = tmp_path / "work"
    work.mkdir()
    job = launch(PROBE + "sleep 30", cwd=str(work), umask=0o027)
    out = wait_for(lambda: "freezer" in job.file("out") and job.file("out"), what="the probe's output")
    lines = dict(line.split(None, 1) for line in out.splitlines())
    spawned = how == "auto" and cgmode == "v1"
    assert ("started (spawned)" in job.file("supervisor.log")) is spawned, job.file("supervisor.log")
    assert (work / "fds.txt").read_text().split() == ["0", "1", "2", "255"]  # 255: bash's copy of the script
    signals = launch(argv=["/bin/grep", "-E", "^(SigIgn|SigBlk)", "/proc/self/status"])
    assert signals.status()["exit_code"] == 0
    blocked, ignored = (int(v, 16) for v in signals.file("out").split()[1::2])
    # Except glibc's two internal signals (32 and 33, below SIGRTMIN: no program can use
    # them through glibc, and Python cannot set them): posix_spawn leaves them ignored, as
    # for any program it starts, and a fork leaves them as the supervisor had them.
    glibc_internal = (1 << 31) | (1 << 32)
    assert blocked == 0 and ignored & ~glibc_internal == 0
    sid, _, pid = lines["sid"].split()
    assert sid == pid
    assert lines["umask"].strip() == "0027"
    assert lines["cwd"].strip() == str(work)
    step_dir = job.cgroup_dirs().get("track")
    if cgmode == "v1":
        assert step_dir and step_dir.endswith(lines["freezer"].strip()) and "job_" in lines["freezer"]
        sup = [ln for ln in Path(f"/proc/{job.sup_pid}/cgroup").read_text().splitlines() if ":freezer:" in ln]
        assert sup and "job_" not in sup[0]  # the supervisor stepped back out
    job.ctl(op="kill", kill_wait=0)
    assert job.status()["signal"] in (int(signal.SIGTERM), int(signal.SIGKILL))


def test_a_spawn_that_cannot_start_falls_back_to_the_fork(launch: Callable[..., Job], cgmode: str,
                                                          tmp_path: Path) -> None:
    """Nothing of the job runs when its spawn fails (a stdio file, the working directory,
    exec): the fork then reports it exactly as before, Slurm's line in the job's stderr."""
    cases = [
        (dict(argv=["/nonexistent/prog"]), "execve(): /nonexistent/prog: No such file or directory", 127, "err"),
        (dict(argv=["/bin/true"], cwd="/nonexistent/dir"), "couldn't chdir to `/nonexistent/dir'", 1, "err"),
        # no stderr yet when stdin cannot be opened: the supervisor's log has the line
        (dict(argv=["/bin/true"], stdin=str(tmp_path / "missing")), "Could not open stdin file", 1,
         "supervisor.log"),
    ]
    for overrides, message, code, where in cases:
        job = launch(**overrides)
        st = job.status()
        assert (st["exit_code"], st["signal"]) == (code, 0)
        assert message in job.file(where)
        assert "started (forked)" in job.file("supervisor.log")


def _end_heard(pid: int, end: int | None) -> None:
    """A zygote's answer named a supervisor, and the step's end pipe reads end-of-file
    (its status.json is written) within 10 s; the pipe is closed."""
    assert pid and end is not None
    try:
        ready, _, _ = select.select([end], [], [], 10.0)
        assert ready and os.read(end, 1) == b""
    finally:
        os.close(end)


def test_zygote_supervisors_serve_steps_one_after_another(tmp_path: Path, cgmode: str) -> None:
    """Through the zygote, a supervisor that finished a step serves a later one instead of
    a new fork, and each step still starts as in a fresh process; the end pipe of each step
    reads end-of-file only once its status.json is there; idle, a supervisor holds no
    rundir (its working directory is /)."""
    zygote = procs.Zygote()
    pids = []
    try:
        for i in range(6):
            rundir = tmp_path / f"z{i}"
            rundir.mkdir()
            spec = {"job_id": next(_job_ids), "step": "batch", "argv": ["/bin/sh", "-c", "ls /proc/$$/fd"],
                    "cwd": str(rundir), "env": {"PATH": "/usr/bin:/bin"}, "stdout": str(rundir / "out"),
                    "stderr": str(rundir / "err"), "cgroup_root": None if cgmode == "none" else CG_ROOT,
                    "cgroup_mode": cgmode}
            (rundir / "spec.json").write_text(json.dumps(spec))
            pid, end = zygote.start(str(rundir), None, 10.0)
            _end_heard(pid, end)
            st = read_status(rundir)
            assert st is not None and (st["exit_code"], st["signal"]) == (0, 0)
            assert (rundir / "out").read_text().split() == ["0", "1", "2"]
            pids.append(pid)
            wait_for(lambda p=pid: procs.proc_state(p) is None or os.readlink(f"/proc/{p}/cwd") == "/",
                     what="the supervisor to be idle")
    finally:
        zygote.close()
    assert len(set(pids)) < len(pids), pids  # some step was served by an earlier step's process


@pytest.mark.parametrize("listening", [True, False], ids=["agent-listening", "agent-gone"])
def test_status_is_fsynced_only_when_no_agent_listens_on_the_end_pipe(tmp_path: Path, listening: bool) -> None:
    """A zygote's supervisor whose agent holds the end pipe leaves status.json's
    durability to the agent's spool (it is in place, renamed, not fsynced), leaves the
    rundir and closes the pipe; with the pipe's reader gone it fsyncs the file and rundir."""
    code = """
import json, os, select, sys
synced = []
real_fsync = os.fsync
def spy(fd):
    synced.append(os.readlink(f"/proc/self/fd/{fd}"))
    real_fsync(fd)
os.fsync = spy
from spurd.supervisor import supervise
rundir, listening = sys.argv[1], sys.argv[2] == "1"
r, w = os.pipe()
if not listening:
    os.close(r)
code = supervise(rundir, -1, w)
eof = None
if listening:
    ready, _, _ = select.select([r], [], [], 10.0)
    eof = bool(ready) and os.read(r, 1) == b""
print(json.dumps({"code": code, "synced": synced, "eof": eof, "cwd": os.getcwd()}))
"""
    rundir = tmp_path / "run"
    rundir.mkdir()
    spec = {"job_id": next(_job_ids), "step": "batch", "argv": ["/bin/sh", "-c", "exit 3"], "cwd": str(rundir),
            "env": {"PATH": "/usr/bin:/bin"}, "stdout": "/dev/null", "stderr": "/dev/null", "cgroup_root": None}
    (rundir / "spec.json").write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, "-c", code, str(rundir), "1" if listening else "0"], capture_output=True,
                         text=True, check=True, cwd=str(Path(__file__).resolve().parents[2])).stdout
    result = json.loads(out.splitlines()[-1])
    st = read_status(rundir)
    assert result["code"] == 0 and st is not None and st["exit_code"] == 3
    status_synced = [p for p in result["synced"] if "status.json" in os.path.basename(p)]
    if listening:
        assert result["eof"] and result["cwd"] == "/"
        assert not status_synced and str(rundir) not in result["synced"], result["synced"]
    else:
        assert status_synced and str(rundir) in result["synced"], result["synced"]


def test_the_agents_loop_starts_steps_through_the_zygote_without_a_thread(tmp_path: Path) -> None:
    """``Zygote.start_async`` (the agent's way): the same answer as ``start`` -- a pid and
    the step's end pipe -- read on the event loop; concurrent starts are answered each with
    its own step; a zygote that does not answer in time is dropped, not waited for."""
    import asyncio
    import threading

    zygote = procs.Zygote()

    def spec_for(rundir: Path) -> None:
        rundir.mkdir()
        spec = {"job_id": next(_job_ids), "step": "batch", "argv": ["/bin/sh", "-c", f"echo {rundir.name}"],
                "cwd": str(rundir), "env": {"PATH": "/usr/bin:/bin"}, "stdout": str(rundir / "out"),
                "stderr": "/dev/null", "cgroup_root": None}
        (rundir / "spec.json").write_text(json.dumps(spec))

    async def run_all() -> list[tuple[int, int | None]]:
        loop_thread = threading.get_ident()
        seen: list[int] = []
        real = procs.socket.recv_fds

        def spy(*args: Any, **kwargs: Any) -> Any:
            seen.append(threading.get_ident())
            return real(*args, **kwargs)

        procs.socket.recv_fds = spy
        try:
            dirs = [tmp_path / f"a{i}" for i in range(4)]
            for d in dirs:
                spec_for(d)
            results = await asyncio.gather(*(zygote.start_async(str(d), None, 10.0) for d in dirs))
        finally:
            procs.socket.recv_fds = real
        assert seen and set(seen) == {loop_thread}
        return results

    try:
        results = asyncio.run(run_all())
        for i, (pid, end) in enumerate(results):
            _end_heard(pid, end)
            assert (tmp_path / f"a{i}" / "out").read_text() == f"a{i}\n"
            st = read_status(tmp_path / f"a{i}")
            assert st is not None and st["exit_code"] == 0
        spec_for(tmp_path / "other")
        gone = procs.Zygote(python="/bin/false")  # exits at once: its socket reads end-of-file
        assert asyncio.run(gone.start_async(str(tmp_path / "other"), None, 10.0)) == (0, None)
        gone.close()
        mute = tmp_path / "mute-python"
        mute.write_text("#!/bin/sh\nexec sleep 30\n")  # keeps the socket, never answers
        mute.chmod(0o755)
        stuck = procs.Zygote(python=str(mute))
        started = time.monotonic()
        assert asyncio.run(stuck.start_async(str(tmp_path / "other"), None, 0.5)) == (0, None)
        assert time.monotonic() - started < 8.0  # the timeout, then the zygote is let go
        assert stuck._sock is None
    finally:
        zygote.close()


def test_the_agents_fallback_start_skips_the_zygote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the agent's zygote failed a step (``start_through_zygote`` returned no pid), its
    fallback starts the launcher directly (``zygote=False``), not the zygote a second time."""

    class Refusing(procs.Zygote):
        def start(self, rundir: str, client: int | None, timeout: float) -> tuple[int, int | None]:
            raise AssertionError("the zygote was asked again")

    monkeypatch.setattr(procs, "_zygote", Refusing())
    rundir = tmp_path / "fallback"
    rundir.mkdir()
    spec = {"job_id": next(_job_ids), "step": "batch", "argv": ["/bin/sh", "-c", "exit 4"], "cwd": str(rundir),
            "env": {"PATH": "/usr/bin:/bin"}, "stdout": "/dev/null", "stderr": "/dev/null", "cgroup_root": None}
    (rundir / "spec.json").write_text(json.dumps(spec))
    pid, end = proccontrol.start(str(rundir), zygote=False)
    assert pid and end is None  # the launcher: a pid from supervisor.pid, no end pipe
    st = wait_for(lambda: read_status(rundir), 10.0, "status.json")
    assert st["exit_code"] == 4


def test_a_supervisor_serves_again_only_when_nothing_of_the_step_is_left() -> None:
    """``_reusable``: no child and no descriptor but 0-2 and the zygote's link."""
    code = """
import os, sys
from spurd.supervisor import LINK_FD, _reusable
os.dup2(0, LINK_FD)
os.closerange(3, LINK_FD)
os.closerange(LINK_FD + 1, 1024)
clean = _reusable()
fd = os.open(os.devnull, os.O_RDONLY)
leaked = _reusable()
os.close(fd)
pid = os.fork()
if pid == 0:
    os._exit(0)
child = _reusable()
os.waitpid(pid, 0)
print(clean, leaked, child, _reusable())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[2])).stdout
    assert out.split() == ["True", "False", "False", "True"]


def test_close_fds_keeps_only_what_it_is_told() -> None:
    """``spurd.tasks.close_fds`` (between fork and exec, and in the zygote's supervisors) closes inheritable descriptors
    below, between and above the kept ones."""
    from spurd.tasks import close_fds

    r, w = os.pipe()
    extra = [os.open(os.devnull, os.O_RDONLY) for _ in range(4)]  # inheritable: no O_CLOEXEC
    os.set_inheritable(extra[0], True)
    keep_high = os.dup2(extra[1], 200)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            close_fds({0, 1, 2, w, keep_high})
            os.write(w, " ".join(sorted(os.listdir("/proc/self/fd"), key=int)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    left = os.read(r, 4096).decode().split()
    os.waitpid(pid, 0)
    for fd in [r, keep_high, *extra]:
        os.close(fd)
    # listdir's own descriptor shows too; nothing else but the kept ones
    assert {0, 1, 2, w, keep_high} <= {int(x) for x in left} and len(left) == 6, left


@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch users")
def test_runs_as_job_user(launch: Callable[..., Job]) -> None:
    nobody = pwd.getpwnam("nobody")
    shared = Path(tempfile.mkdtemp(prefix="spur-nobody-", dir="/tmp"))
    try:
        shared.chmod(0o777)
        job = launch(
            argv=["/bin/sh", "-c", "id -u; id -g; pwd"],
            uid=nobody.pw_uid,
            gid=nobody.pw_gid,
            cwd=str(shared),
            stdout=str(shared / "out"),
            stderr=str(shared / "out"),
        )
        st = job.status()
        out = (shared / "out").read_text().splitlines()
        assert (st["exit_code"], st["signal"]) == (0, 0), out
        assert out == [str(nobody.pw_uid), str(nobody.pw_gid), str(shared)]
        assert (shared / "out").stat().st_uid == nobody.pw_uid  # opened as the user
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_exec_failure_and_path_lookup(launch: Callable[..., Job]) -> None:
    job = launch(argv=["/nonexistent/prog", "x"])
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (127, 0)
    assert "execve(): /nonexistent/prog: No such file or directory" in job.file("err")
    job = launch(argv=["false"])  # found through the job's PATH
    assert (job.status()["exit_code"], job.status()["signal"]) == (1, 0)


def test_chdir_failure(launch: Callable[..., Job]) -> None:
    job = launch(argv=["/bin/true"], cwd="/nonexistent/dir")
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (1, 0)
    assert "couldn't chdir to `/nonexistent/dir': No such file or directory" in job.file("err")


def test_bad_spec_reports_failure(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text(json.dumps({"job_id": 1}))
    start_supervisor(tmp_path)
    st = wait_for(lambda: read_status(tmp_path), what="status.json")
    assert (st["exit_code"], st["signal"]) == (1, 0) and "argv" in st["error"]


def test_relayed_step_tasks_output_and_statuses(tmp_path: Path) -> None:
    """An srun step's part on a node: one process group per task, each with its rank's
    variables; output and exits relayed over the connection handed to the supervisor; the
    node's status is slurmstepd's (the highest exit code); stdin reaches every task."""
    from spurio.stepserver import FrameReader, notification

    spec = {
        "job_id": next(_job_ids),
        "step": 0,
        "argv": ["/bin/sh", "-c", "read x; echo $x $SLURM_PROCID $SLURM_LOCALID $SLURM_TASK_PID; "
                 "echo oops >&2; exit $SLURM_PROCID"],
        "cwd": str(tmp_path),
        "env": {"PATH": "/usr/bin:/bin"},
        "tasks": [4, 7],
        "task_env": True,
        "io": {},
        "launch_msgid": 3,
        "cgroup_root": None,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    ours, theirs = socket.socketpair()
    try:
        start_supervisor(tmp_path, client=theirs.fileno())
    finally:
        theirs.close()
    ours.sendall(notification("in", [-1, b"hello\n"]) + notification("in", [-1, b""]))
    reader, frames = FrameReader(), []
    ours.settimeout(10)
    while not any(m[0] == 2 and m[1] == "done" for m in frames):
        chunk = ours.recv(65536)
        assert chunk
        frames.extend(reader.feed(chunk))
    ours.close()
    answer = frames[0]
    assert answer[:3] == [1, 3, None] and answer[3]["tasks"] == [4, 7]
    pids = dict(zip([4, 7], answer[3]["pids"], strict=True))
    out = {m[2][0]: bytes(m[2][2]) for m in frames if m[1] == "out" and m[2][1] == 1}
    assert out == {4: f"hello 4 0 {pids[4]}\n".encode(), 7: f"hello 7 1 {pids[7]}\n".encode()}
    assert sorted(bytes(m[2][2]) for m in frames if m[1] == "out" and m[2][1] == 2) == [b"oops\n"] * 2
    assert sorted((m[2][0], m[2][1]) for m in frames if m[1] == "exit") == [([4], 4 << 8), ([7], 7 << 8)]
    assert frames[-1][2]["status"] == 7 << 8
    st = wait_for(lambda: read_status(tmp_path), what="status.json")
    assert (st["exit_code"], st["signal"], st["tasks"]) == (7, 0, {"4": 4 << 8, "7": 7 << 8})
    assert st["usage"]["ntasks"] == 2 and st["usage"]["user_cpu"] >= 0


def test_long_rundir_path(tmp_path: Path) -> None:
    """ctl.sock works where rundir/ctl.sock is longer than sun_path (108 bytes)."""
    rundir = tmp_path / ("d" * 60) / ("e" * 60)
    rundir.mkdir(parents=True)
    spec = {
        "job_id": next(_job_ids),
        "argv": ["/bin/sh", "-c", "sleep 1000"],
        "cwd": str(rundir),
        "env": {"PATH": "/usr/bin:/bin"},
        "stdout": str(rundir / "out"),
        "kill_wait": 5,
    }
    (rundir / "spec.json").write_text(json.dumps(spec))
    start_supervisor(rundir)
    job = Job(rundir, procs.read_supervisor_pid(rundir) or 0)
    assert job.ctl(op="status")["running"] is True
    assert job.ctl(op="bogus")["ok"] is False
    # The agent's way (on its event loop, no thread) reaches it the same way.
    assert asyncio.run(procs.send_control_async(rundir, {"op": "status"}))["running"] is True
    assert job.ctl(op="kill") == {"ok": True}
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (0, signal.SIGTERM)


def test_control_from_an_event_loop_answers_and_fails_as_the_blocking_call(launch: Callable[..., Job],
                                                                           tmp_path: Path) -> None:
    """``send_control_async`` (the agent's control calls): the supervisor's answer, and the
    errors the callers tell apart: nobody listening (no socket file, or a stale one) and
    no answer in time."""
    job = launch("echo $$ > main.pid\nexec sleep 1000")
    job.pid_from("main.pid")
    assert asyncio.run(procs.send_control_async(job.rundir, {"op": "status"}))["running"] is True
    assert asyncio.run(procs.send_control_async(job.rundir, {"op": "bogus"}))["ok"] is False
    with pytest.raises(FileNotFoundError):
        asyncio.run(procs.send_control_async(tmp_path, {"op": "status"}))

    def ctl_socket(name: str) -> tuple[Path, socket.socket]:
        rundir = tmp_path / name
        rundir.mkdir()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(rundir / "ctl.sock"))
        return rundir, sock

    stale, sock = ctl_socket("stale")
    sock.close()  # bound, never listening: a supervisor that is gone
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(procs.send_control_async(stale, {"op": "status"}))
    mute, listener = ctl_socket("mute")
    listener.listen(1)  # accepts (in the backlog), never answers
    try:
        with pytest.raises(TimeoutError):
            asyncio.run(procs.send_control_async(mute, {"op": "status"}, timeout=0.3))
    finally:
        listener.close()
    assert asyncio.run(procs.send_control_async(job.rundir, {"op": "kill", "kill_wait": 0})) == {"ok": True}
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (0, signal.SIGTERM)  # sleep dies of the SIGTERM


# ---------------------------------------------------------------------- signal targets


def test_signal_batch_vs_full(launch: Callable[..., Job]) -> None:
    """scancel --batch reaches only the batch shell; --full the whole process group."""
    job = launch(
        "trap 'echo usr1 >> main.log' USR1\nsleep 1000 &\necho $! > bg.pid\necho $$ > main.pid\n"
        "while :; do sleep 0.05; done"
    )
    job.pid_from("main.pid")
    bg = job.pid_from("bg.pid")
    assert job.ctl(op="signal", sig=int(signal.SIGUSR1), target="batch") == {"ok": True}
    wait_for(lambda: job.file("main.log") == "usr1\n", what="trap in the batch shell")
    assert procs.alive(bg)
    assert job.ctl(op="signal", sig=int(signal.SIGUSR1), target="full") == {"ok": True}
    wait_for(lambda: not procs.alive(bg), what="background child killed by USR1")
    wait_for(lambda: job.file("main.log") == "usr1\nusr1\n", what="second trap")
    assert job.ctl(op="signal", sig=99999, target="full")["ok"] is False
    job.ctl(op="kill", kill_wait=5)
    job.status()


# ---------------------------------------------------------------------- OOM


def test_oom_detected(launch: Callable[..., Job], cgmode: str) -> None:
    """A cgroup OOM kill is reported as oom=true (Slurm: OUT_OF_MEMORY)."""
    if cgmode == "none":
        pytest.skip("OOM detection needs a memory cgroup")
    hier = cgroups.detect(cgmode)
    if hier is None or hier.memory is None:
        pytest.skip("no memory controller")
    job = launch(argv=[sys.executable, "-c", "x = b'a' * (512 << 20)"], mem_limit_mb=64)
    st = job.status(timeout=20)
    assert st["oom"] is True
    assert (st["exit_code"], st["signal"]) == (0, signal.SIGKILL)


# ---------------------------------------------------------------------- cgroup switch


def test_cgroup_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """$SPUR_CGROUP=none turns cgroups off; a spec's cgroup_mode wins over the env."""
    monkeypatch.setenv(cgroups.CGROUP_ENV, "none")
    assert cgroups.detect() is None
    monkeypatch.setenv(cgroups.CGROUP_ENV, "bogus")
    with pytest.raises(ValueError):
        cgroups.detect()
    assert cgroups.detect("none") is None
    hier = cgroups.detect("v1", base="root")
    if hier is not None:
        assert hier.track_version == 1 and "freezer" in hier.track


def test_cgroup_failure_falls_back(launch: Callable[..., Job], cgmode: str) -> None:
    """A cgroup that cannot be created (bad cgroup_root) means a job without cgroups."""
    if cgmode == "none":
        pytest.skip("cgroup variant only")
    job = launch("exit 3", cgroup_root="../escape")
    st = job.status()
    assert (st["exit_code"], st["signal"]) == (3, 0)
    assert job.cgroup_dirs() == {}
    assert "running without" in job.file("supervisor.log")


# ---------------------------------------------------------------------- malformed input


def _ctl_raw(rundir: Path, data: bytes, fds: list[int] | None = None) -> bytes:
    """Raw bytes to a supervisor's control socket; what it answers (b"" if it closed)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(rundir / "ctl.sock"))
        try:
            if fds:
                socket.send_fds(sock, [data], fds)
            else:
                sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return b""  # it closed the connection while we were still sending
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


def test_malformed_control_ops_get_an_error_and_the_supervisor_serves_on(launch: Callable[..., Job]) -> None:
    """Each control request that does not fit (spurcore.agentmsg.CONTROL_OPS) is answered
    EINVAL naming the field; descriptors sent with a non-attach op are closed, not leaked;
    then status and kill work as ever."""
    import errno

    job = launch("echo $$ > main.pid\nsleep 1000")
    main = job.pid_from("main.pid")
    fds_before = len(os.listdir(f"/proc/{job.sup_pid}/fd"))
    cases = [
        (b"not json\n", "expected a JSON object"),
        (b"[1, 2]\n", "request: expected a JSON object with an op"),
        (b'{"op": "bogus"}\n', "op: expected one of attach"),
        (b'{"sig": 9}\n', "op: expected one of"),
        (b'{"op": "signal", "sig": "KILL"}\n', "sig: expected an integer from 0 to 64"),
        (b'{"op": "signal", "sig": 9, "target": "everyone"}\n', "target: expected one of"),
        (b'{"op": "kill", "kill_wait": -5}\n', "kill_wait: expected a number from 0"),
        (b'{"op": "kill", "notice": 7}\n', "notice: expected a string"),
        (b'{"op": "status", "all": true}\n', "all: unknown field"),
        (b"\xff\xfe\xfd\n", "expected a JSON object"),
    ]
    for data, text in cases:
        reply = json.loads(_ctl_raw(job.rundir, data))
        assert reply["ok"] is False and reply["errno"] == errno.EINVAL and text in reply["error"], (data, reply)
    r, w = os.pipe()
    try:
        reply = json.loads(_ctl_raw(job.rundir, b'{"op": "status"}\n', [r]))  # an fd it did not ask for
        assert reply["ok"] is True
        reply = json.loads(_ctl_raw(job.rundir, b'{"op": "bogus"}\n', [w]))
        assert reply["ok"] is False
    finally:
        os.close(r)
        os.close(w)
    assert _ctl_raw(job.rundir, b"x" * (2 << 20)) == b""  # no line within 1 MiB: closed
    wait_for(lambda: len(os.listdir(f"/proc/{job.sup_pid}/fd")) == fds_before, what="no descriptor leaked")
    st = job.ctl(op="status")
    assert st["running"] is True and st["main_pid"] == main
    assert job.ctl(op="kill", kill_wait=5) == {"ok": True}
    assert (job.status()["exit_code"], job.status()["signal"]) == (0, signal.SIGTERM)
    assert "Traceback" not in job.file("supervisor.log")


def test_malformed_client_frames_are_ignored_and_the_step_runs_on(tmp_path: Path) -> None:
    """srun's frames to a step's supervisor (spurcore.agentmsg.CLIENT_FRAMES) that do not
    fit are logged and ignored: the tasks run on, and later good input still arrives."""
    from spurio.stepserver import FrameReader, notification, request

    spec = {"job_id": next(_job_ids), "step": 0, "argv": ["/bin/sh", "-c", "read x; echo got $x"],
            "cwd": str(tmp_path), "env": {"PATH": "/usr/bin:/bin"}, "tasks": [0], "task_env": True, "io": {},
            "launch_msgid": 1, "cgroup_root": None}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    ours, theirs = socket.socketpair()
    try:
        start_supervisor(tmp_path, client=theirs.fileno())
    finally:
        theirs.close()
    bad = [notification("in", [0]), notification("in", ["0", b"x\n"]), notification("in", [0, "text\n"]),
           notification("signal", "TERM"), notification("signal", 99), notification("kill", "now"),
           notification("winch", [1]), notification("pmi_fence_done", [1, 2]), notification("explode", {}),
           request(5, "launch_tasks", {})]
    ours.sendall(b"".join(bad) + notification("in", [-1, b"hello\n"]) + notification("in", [-1, b""]))
    reader, frames = FrameReader(), []
    ours.settimeout(10)
    while not any(m[0] == 2 and m[1] == "done" for m in frames):
        chunk = ours.recv(65536)
        assert chunk
        frames.extend(reader.feed(chunk))
    ours.close()
    assert b"".join(bytes(m[2][2]) for m in frames if m[1] == "out") == b"got hello\n"
    st = wait_for(lambda: read_status(tmp_path), what="status.json")
    assert (st["exit_code"], st["signal"]) == (0, 0)
    log = (tmp_path / "supervisor.log").read_text()
    assert log.count("ignoring a malformed frame from a client: in: expected [task or -1, bytes]") == 1
    assert "Traceback" not in log
