"""One contract, two process controls: real supervisors (``spurd.proccontrol``) and the
pure, clocked fake (``tests/contract/fakeproc.py``) must end runs alike.

The contract (Slurm's semantics, docs/architecture.md section 6):
- a script's status is the pair (exit code, signal): ``exit 3`` is 3:0 (FAILED), a shell
  that kills itself with SIGKILL 0:9 (FAILED, RaisedSignal), success 0:0 (COMPLETED);
- scancel: SIGCONT+SIGTERM, and SIGKILL after KillWait for a process that ignores SIGTERM
  (never before KillWait, and soon after it); a process that dies of SIGTERM ends at once;
  a trap for SIGTERM decides the status; the job is CANCELLED either way;
- a time limit is the same sequence, with slurmstepd's notice, and ends TIMEOUT;
- a suspended job that is cancelled gets SIGKILL at once (no KillWait);
- a second kill with a shorter KillWait brings the SIGKILL closer;
- ``scancel -s USR1`` reaches the script (a trap decides the status);
- fencing: a run reads its agent's lease file; once the lease has run out (not renewed for
  the fence timeout) the run is killed, ``fence_grace`` from SIGTERM to SIGKILL, and its
  status says ``fenced``; a renewed lease, or none at all, lets it run.

Times are asserted with bounds that hold for both: the fake's clock is exact, the real
one's has scheduling noise.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Protocol

import pytest

from spurcore.agentmsg import RunStatus, SupervisorSpec
from spurcore.exitcodes import final_state
from spurd import procs
from spurd.proccontrol import ProcessControl, SupervisorProcesses
from spurd.supervisor import LEASE_CHECK
from tests.contract.fakeproc import FakeProcesses

_job_ids = itertools.count(5000)
SLACK = 2.0  # how much later than planned a real supervisor may end a run
EPS = 1e-6  # the fake clock's float sums


class Fencing(ProcessControl, Protocol):
    """Process control and the agent's side of fencing: the lease file its supervisors read
    (``spurd.session``'s ``_renew_lease``)."""

    def write_lease(self, path: str, seconds: float) -> None: ...

    def remove_lease(self, path: str) -> None: ...


class RealProcesses(SupervisorProcesses):
    """Real supervisors, with the lease file written as the agent writes it."""

    def write_lease(self, path: str, seconds: float) -> None:
        procs.write_lease(path, seconds)

    def remove_lease(self, path: str) -> None:
        os.unlink(path)


@pytest.fixture(params=["real", "fake"])
def pc(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "fake":
        yield FakeProcesses()
        return
    real = RealProcesses(str(tmp_path))
    yield real
    for rundir, _spec in real.runs.values():  # nothing a failed case started outlives it
        pid = procs.read_supervisor_pid(rundir)
        if pid and procs.read_status(rundir) is None and procs.is_supervisor_of(pid, rundir):
            procs.kill_tree(pid)


def spec(tmp_path: Path, script: str, kill_wait: float = 30.0, **fields: Any) -> SupervisorSpec:
    job_id = next(_job_ids)
    return SupervisorSpec(job_id=job_id, argv=("/bin/bash", "-c", script), cwd=str(tmp_path),
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                          stdout=str(tmp_path / f"{job_id}.out"), stderr=str(tmp_path / f"{job_id}.err"),
                          kill_wait=kill_wait, suspend_grace=0.2, **fields)


def slurm_state(status: RunStatus, killed_for: str = "") -> str:
    """The job's state: decided by the controller when it ended the job (cancel, time
    limit), else by the status (``spurcore.exitcodes.final_state``)."""
    if killed_for:
        return {"cancel": "CANCELLED", "time_limit": "TIMEOUT"}[killed_for]
    return final_state(status.wait_status, status.oom)[0]


def run_to_end(pc: ProcessControl, run: str, timeout: float = 20.0) -> RunStatus:
    status = pc.wait(run, timeout)
    assert status is not None, f"{run} did not end within {timeout}s"
    return status


def running(pc: ProcessControl, run: str, seconds: float = 0.3) -> None:
    """Let the run start and get into its sleep (and check that it is still running)."""
    assert pc.wait(run, seconds) is None


@pytest.mark.parametrize("script, code, sig, state", [
    ("exit 3", 3, 0, "FAILED"),
    ("true", 0, 0, "COMPLETED"),
    ("kill -9 $$", 0, 9, "FAILED"),
    ("kill -USR1 $$", 0, 10, "FAILED"),
])
def test_exit_statuses(pc: ProcessControl, tmp_path: Path, script: str, code: int, sig: int, state: str) -> None:
    status = run_to_end(pc, pc.start(spec(tmp_path, script)))
    assert (status.exit_code, status.signal) == (code, sig)
    assert slurm_state(status) == state


def test_a_script_runs_its_time(pc: ProcessControl, tmp_path: Path) -> None:
    t0 = pc.now()
    status = run_to_end(pc, pc.start(spec(tmp_path, "sleep 0.5; exit 4")))
    assert 0.5 - EPS <= pc.now() - t0 < 0.5 + SLACK
    assert (status.exit_code, status.signal, slurm_state(status)) == (4, 0, "FAILED")


def test_scancel_ends_a_process_at_once_with_sigterm(pc: ProcessControl, tmp_path: Path) -> None:
    run = pc.start(spec(tmp_path, "sleep 60", kill_wait=30))
    running(pc, run)
    t0 = pc.now()
    pc.kill(run, why="cancel")
    status = run_to_end(pc, run)
    assert pc.now() - t0 < SLACK  # it died of SIGTERM: KillWait is not waited for
    assert (status.exit_code, status.signal) == (0, 15)
    assert slurm_state(status, "cancel") == "CANCELLED"


def test_scancel_of_a_process_ignoring_sigterm_ends_after_killwait_with_sigkill(pc: ProcessControl,
                                                                                 tmp_path: Path) -> None:
    run = pc.start(spec(tmp_path, "trap '' TERM; sleep 60", kill_wait=1.0))
    running(pc, run)
    t0 = pc.now()
    pc.kill(run, why="cancel")
    assert pc.wait(run, 0.8) is None  # SIGTERM is ignored and KillWait not over
    status = run_to_end(pc, run)
    assert 1.0 - EPS <= pc.now() - t0 < 1.0 + SLACK
    assert (status.exit_code, status.signal) == (0, 9)
    assert slurm_state(status, "cancel") == "CANCELLED"


def test_a_sigterm_trap_decides_the_status(pc: ProcessControl, tmp_path: Path) -> None:
    run = pc.start(spec(tmp_path, "trap 'exit 9' TERM; sleep 60; :"))
    running(pc, run)
    pc.kill(run, kill_wait=30, why="cancel")
    status = run_to_end(pc, run, timeout=SLACK + 1)
    assert (status.exit_code, status.signal) == (9, 0)


def test_time_limit(pc: ProcessControl, tmp_path: Path) -> None:
    """Slurm: the notice in the job's stderr, then the terminate sequence; TIMEOUT."""
    notice = "*** JOB 7 ON n1 CANCELLED AT 2026-01-01T10:00:00 DUE TO TIME LIMIT ***"
    run = pc.start(spec(tmp_path, "sleep 60", kill_wait=5))
    running(pc, run)
    pc.kill(run, why="time_limit", notice=notice)
    status = run_to_end(pc, run)
    assert (status.exit_code, status.signal) == (0, 15)
    assert slurm_state(status, "time_limit") == "TIMEOUT"
    assert pc.notices(run) == [notice]
    pc.kill(run, why="time_limit", notice=notice)  # a repeat after the end: nothing more
    assert pc.notices(run) == [notice]


def test_a_suspended_job_is_killed_at_once(pc: ProcessControl, tmp_path: Path) -> None:
    run = pc.start(spec(tmp_path, "trap '' TERM; sleep 60", kill_wait=30))
    running(pc, run)
    assert pc.suspend(run) == {"ok": True}
    assert pc.wait(run, 0.5) is None  # suspended (SIGTSTP, grace, SIGSTOP): still there
    t0 = pc.now()
    pc.kill(run, why="cancel")
    status = run_to_end(pc, run)
    assert pc.now() - t0 < SLACK  # no KillWait for a suspended job
    assert (status.exit_code, status.signal) == (0, 9)


def test_suspend_and_resume_keep_the_job(pc: ProcessControl, tmp_path: Path) -> None:
    run = pc.start(spec(tmp_path, "sleep 0.6; exit 5"))
    assert pc.suspend(run) == {"ok": True}
    assert pc.wait(run, 1.5) is None  # stopped: its clock stopped too
    assert pc.resume(run) == {"ok": True}
    status = run_to_end(pc, run)
    assert (status.exit_code, status.signal) == (5, 0)


def test_a_second_kill_brings_sigkill_closer(pc: ProcessControl, tmp_path: Path) -> None:
    run = pc.start(spec(tmp_path, "trap '' TERM; sleep 60"))
    running(pc, run)
    t0 = pc.now()
    pc.kill(run, kill_wait=60, why="cancel")
    assert pc.wait(run, 0.3) is None
    pc.kill(run, kill_wait=0.5, why="cancel")  # srun forcing termination, say
    status = run_to_end(pc, run)
    assert 0.8 - EPS <= pc.now() - t0 < 0.8 + SLACK
    assert (status.exit_code, status.signal) == (0, 9)


def test_scancel_signal_reaches_the_script(pc: ProcessControl, tmp_path: Path) -> None:
    """``scancel -s USR1 --full``: the shell and its children; the shell's trap decides."""
    run = pc.start(spec(tmp_path, "trap 'exit 7' USR1; sleep 60; :"))
    running(pc, run)
    assert pc.signal(run, 10, "full") == {"ok": True}
    status = run_to_end(pc, run, timeout=SLACK + 1)
    assert (status.exit_code, status.signal, slurm_state(status)) == (7, 0, "FAILED")
    assert pc.signal(run, 10)["ok"] is False  # nothing left to signal


def test_scancel_batch_signal_reaches_only_the_shell(pc: ProcessControl, tmp_path: Path) -> None:
    """``scancel -s USR1 --batch``: the batch shell alone; bash runs its trap once its
    foreground command (the sleep, which got nothing) has ended."""
    t0 = pc.now()
    run = pc.start(spec(tmp_path, "trap 'exit 7' USR1; sleep 1; exit 3"))
    running(pc, run)
    assert pc.signal(run, 10, "batch") == {"ok": True}
    status = run_to_end(pc, run)
    assert 1.0 - EPS <= pc.now() - t0 < 1.0 + SLACK
    assert (status.exit_code, status.signal) == (7, 0)


def test_a_run_whose_lease_runs_out_is_fenced(pc: Fencing, tmp_path: Path) -> None:
    """The agent lost the quorum (or died): no renewal, and the supervisor ends its job
    at its first lease check after the lease's end, before the controllers may run it
    elsewhere. SIGTERM ends this one at once."""
    lease = str(tmp_path / "lease")
    run = pc.start(spec(tmp_path, "sleep 60", lease_file=lease, fence_grace=30))
    t0 = pc.now()
    pc.write_lease(lease, 1.0)
    assert pc.wait(run, 0.7) is None  # the lease holds
    status = run_to_end(pc, run)
    assert 1.0 - EPS <= pc.now() - t0 < 1.0 + LEASE_CHECK + SLACK
    assert (status.exit_code, status.signal, status.fenced) == (0, 15, True)


def test_a_renewed_lease_holds_and_fencing_ends_with_sigkill_after_the_grace(pc: Fencing, tmp_path: Path) -> None:
    lease = str(tmp_path / "lease")
    run = pc.start(spec(tmp_path, "trap '' TERM; sleep 60", lease_file=lease, fence_grace=0.5))
    pc.write_lease(lease, 1.0)
    running(pc, run, 0.6)
    pc.write_lease(lease, 1.0)  # a heartbeat answered by a quorum leader
    renewed = pc.now()
    assert pc.wait(run, 1.2) is None  # past the first lease's end, within the renewed one's grace
    status = run_to_end(pc, run)
    assert 1.5 - EPS <= pc.now() - renewed < 1.5 + LEASE_CHECK + SLACK
    assert (status.exit_code, status.signal, status.fenced) == (0, 9, True)


def test_without_a_lease_file_nothing_is_fenced(pc: Fencing, tmp_path: Path) -> None:
    """Fencing off: the agent unlinks the lease file, and supervisors never fence."""
    lease = str(tmp_path / "lease")
    run = pc.start(spec(tmp_path, "sleep 1; exit 4", lease_file=lease, fence_grace=0))
    pc.write_lease(lease, 0.2)
    pc.remove_lease(lease)
    status = run_to_end(pc, run)
    assert (status.exit_code, status.signal, status.fenced) == (4, 0, False)


def test_the_fake_refuses_what_it_cannot_model() -> None:
    """A case the fake cannot run must fail loudly, never pass by accident."""
    fake = FakeProcesses()
    for script in ("cat /etc/passwd", "trap 'echo hi' TERM", "kill -BOGUS $$"):
        with pytest.raises(ValueError):
            fake.start(SupervisorSpec(job_id=1, argv=("/bin/bash", "-c", script)))
    with pytest.raises(ValueError):
        fake.start(SupervisorSpec(job_id=1, argv=("/bin/sh", "script")))


def test_the_fake_follows_a_simulation_clock() -> None:
    """``advance_to`` drives every run to a clock (as tests/sim would drive it): a kill of
    a process that ignores SIGTERM ends KillWait later with SIGKILL, a plain one at once."""
    fake = FakeProcesses(clock=0.0)
    stubborn = fake.start(SupervisorSpec(job_id=1, argv=("/bin/bash", "-c", "trap '' TERM; sleep 60"), kill_wait=2))
    plain = fake.start(SupervisorSpec(job_id=2, argv=("/bin/bash", "-c", "sleep 60"), kill_wait=2))
    short = fake.start(SupervisorSpec(job_id=3, argv=("/bin/bash", "-c", "sleep 1; exit 2")))
    instant = fake.start(SupervisorSpec(job_id=4, argv=("/bin/bash", "-c", "exit 1")))
    fake.advance_to(0.5)
    assert fake.status(instant).ended_at == 0.0  # when it ended, even at the clock's zero
    fake.kill(stubborn, why="cancel")
    fake.kill(plain, why="cancel")
    assert fake.status(plain) is not None and fake.status(plain).signal == 15
    fake.advance_to(2.4)
    assert fake.status(short).exit_code == 2 and fake.status(stubborn) is None
    fake.advance_to(2.5)
    assert fake.status(stubborn).signal == 9 and fake.status(stubborn).ended_at == 2.5
    assert fake.now() == 2.5
