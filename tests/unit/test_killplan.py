"""spurcore.killplan: the supervisor's kill, suspend and signal sequences as a table.

Slurm (slurmd req.c ``_rpc_terminate_job``/``_rpc_timelimit``, slurmstepd req.c): the
notice first, SIGCONT (tasks may be stopped), SIGTERM, KillWait, then SIGKILL; a suspended
step gets SIGKILL at once; tasks running when the kill is ordered are "killed by command".
"""

from __future__ import annotations

import pytest

from spurcore import killplan
from spurcore.killplan import (
    KILL_REPEAT,
    SIGCONT,
    SIGKILL,
    SIGSTOP,
    SIGTERM,
    SIGTSTP,
    Cause,
    Every,
    Freeze,
    MarkKilled,
    Notice,
    Send,
    Sequence,
    Situation,
    Thaw,
    To,
    Wait,
)

HARD = (Send(SIGKILL, To.JOB),)
HARD_CG = (Freeze(), Send(SIGKILL, To.CGROUP), Send(SIGKILL, To.JOB), Thaw())
NOTICE = "*** JOB 7 ON n1 CANCELLED AT 2026-01-01T10:00:00 DUE TO TIME LIMIT ***"

#: (situation, the steps of the plan). Read it as the module docstring's table.
TABLE = [
    ("scancel: SIGCONT, SIGTERM, KillWait, SIGKILL every second",
     Situation(cause=Cause.CANCEL, kill_wait=30),
     (MarkKilled(), Send(SIGCONT), Send(SIGTERM), Wait(30, "KillWait"), Every(KILL_REPEAT, HARD))),
    ("time limit: the notice first, then the same",
     Situation(cause=Cause.TIME_LIMIT, kill_wait=30, notice=NOTICE),
     (Notice(NOTICE), MarkKilled(), Send(SIGCONT), Send(SIGTERM), Wait(30, "KillWait"), Every(KILL_REPEAT, HARD))),
    ("an srun step's notice goes to srun",
     Situation(cause=Cause.TIME_LIMIT, kill_wait=30, notice=NOTICE, relay=True),
     (Notice(NOTICE, True), MarkKilled(), Send(SIGCONT), Send(SIGTERM), Wait(30, "KillWait"),
      Every(KILL_REPEAT, HARD))),
    ("with a cgroup: SIGKILL frozen, so nothing forks in between",
     Situation(cause=Cause.CANCEL, kill_wait=2, cgroup=True),
     (MarkKilled(), Send(SIGCONT), Send(SIGTERM), Wait(2, "KillWait"), Every(KILL_REPEAT, HARD_CG))),
    ("a requeued job's previous run: no grace",
     Situation(cause=Cause.REQUEUE, kill_wait=0),
     (MarkKilled(), Send(SIGCONT), Send(SIGTERM), Wait(0, "KillWait"), Every(KILL_REPEAT, HARD))),
    ("fencing: the fence grace",
     Situation(cause=Cause.FENCE, kill_wait=5),
     (MarkKilled(), Send(SIGCONT), Send(SIGTERM), Wait(5, "KillWait"), Every(KILL_REPEAT, HARD))),
    ("suspended: SIGKILL at once, SIGCONT so it lands, again every second",
     Situation(cause=Cause.CANCEL, kill_wait=30, stopped=True, suspended=True, notice=NOTICE),
     (Notice(NOTICE), MarkKilled(), *HARD, Send(SIGCONT), Wait(KILL_REPEAT), Every(KILL_REPEAT, HARD))),
    ("suspended, with a cgroup",
     Situation(cause=Cause.CANCEL, kill_wait=30, stopped=True, cgroup=True),
     (MarkKilled(), *HARD_CG, Send(SIGCONT), Wait(KILL_REPEAT), Every(KILL_REPEAT, HARD_CG))),
    ("a second kill with a shorter KillWait: the SIGKILL comes sooner, no second notice",
     Situation(cause=Cause.SRUN, kill_wait=2, killing_left=25.0, notice=NOTICE),
     (MarkKilled(), Wait(2, "KillWait"), Every(KILL_REPEAT, HARD))),
    ("a second kill with a longer KillWait: the running kill's SIGKILL stays",
     Situation(cause=Cause.CANCEL, kill_wait=30, killing_left=0.5),
     (MarkKilled(), Wait(0.5, "KillWait"), Every(KILL_REPEAT, HARD))),
    ("a kill of a stopped step already being killed: SIGKILL again at once",
     Situation(cause=Cause.CANCEL, kill_wait=30, killing_left=0.5, stopped=True, notice=NOTICE),
     (MarkKilled(), *HARD, Send(SIGCONT), Wait(KILL_REPEAT), Every(KILL_REPEAT, HARD))),
    ("every task has exited: nothing (the sweep ends what is left)",
     Situation(cause=Cause.CANCEL, kill_wait=30, ended=True, notice=NOTICE),
     ()),
]


@pytest.mark.parametrize("what, situation, steps", TABLE, ids=[row[0] for row in TABLE])
def test_kill_plan_table(what, situation, steps):
    plan = killplan.kill(situation)
    assert plan.steps == steps, what
    assert plan.replace is bool(steps)  # a kill replaces whatever ran (a suspend's grace)
    assert plan.killing is (bool(steps) or situation.killing_left is not None)
    assert plan.suspended is (situation.suspended if situation.ended else False)


@pytest.mark.parametrize("cause", list(Cause))
def test_every_cause_has_the_same_sequence(cause):
    """Slurm: cancel, time limit, node failure and requeue differ only in the notice."""
    base = killplan.kill(Situation(cause=Cause.CANCEL, kill_wait=7, cgroup=True))
    assert killplan.kill(Situation(cause=cause, kill_wait=7, cgroup=True)) == base


def test_a_kill_sequence_in_time():
    """KillWait 30: SIGCONT+SIGTERM now, SIGKILL at 30 s, then every second; stopped when
    the tasks have exited."""
    seq = Sequence(killplan.kill(Situation(cause=Cause.CANCEL, kill_wait=30)).steps)
    assert seq.advance(100.0) == [MarkKilled(), Send(SIGCONT), Send(SIGTERM)]
    assert seq.deadline() == 130.0
    assert seq.advance(129.9) == [] and seq.expired == []
    assert seq.advance(130.0) == list(HARD) and seq.expired == ["KillWait"]
    assert seq.deadline() == 131.0
    assert seq.advance(130.5) == []
    assert seq.advance(131.2) == list(HARD) and seq.deadline() == pytest.approx(132.2)
    seq.stop()
    assert not seq.running and seq.deadline() is None and seq.advance(500.0) == []


def test_suspend_resume_and_signals():
    plan = killplan.suspend(grace=2, suspended=False, killing=False)
    assert plan.steps == (Send(SIGTSTP), Wait(2, "suspend grace"), Send(SIGSTOP))
    assert (plan.replace, plan.suspended, plan.killing) == (True, True, False)
    seq = Sequence(plan.steps)
    assert seq.advance(0.0) == [Send(SIGTSTP)]
    assert seq.advance(1.0) == [] and seq.advance(2.0) == [Send(SIGSTOP)] and not seq.running
    assert killplan.suspend(grace=2, suspended=True, killing=False).steps == ()  # already suspended
    resume = killplan.resume(killing=False)
    assert (resume.steps, resume.replace, resume.suspended) == ((Send(SIGCONT),), True, False)  # ends a grace
    assert killplan.resume(killing=True).replace is False  # never ends a kill
    assert killplan.deliver(10, "batch", killing=False, suspended=False).steps == (Send(10, To.BATCH),)
    for target in ("full", "steps"):
        plan = killplan.deliver(10, target, killing=True, suspended=False)
        assert (plan.steps, plan.replace, plan.killing) == ((Send(10, To.JOB),), False, True)
    assert killplan.sweep(True) == HARD_CG and killplan.sweep(False) == HARD


def test_kill_notices():
    at = "2026-01-01T10:00:00"
    assert killplan.kill_notice(Cause.TIME_LIMIT, "JOB 7", "n1", at) == NOTICE
    assert killplan.kill_notice(Cause.CANCEL, "STEP 7.0", "n1", at) == \
        "*** STEP 7.0 ON n1 CANCELLED AT 2026-01-01T10:00:00 DUE to SIGNAL Terminated ***"
    assert "NODE FAILURE" in killplan.kill_notice(Cause.NODE_FAIL, "JOB 7", "n1", at)
    assert killplan.kill_notice(Cause.REQUEUE, "JOB 7", "n1", at).endswith("DUE TO JOB REQUEUE ***")
    for cause in (Cause.SRUN, Cause.TERMINATED, Cause.FENCE):
        assert killplan.kill_notice(cause, "JOB 7", "n1", at) == ""
    assert Cause.of("time_limit") is Cause.TIME_LIMIT and Cause.of("") is Cause.CANCEL
