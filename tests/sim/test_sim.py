"""The deterministic simulation (tests/sim/sim.py): scenario files against golden output,
and many seeded random fault schedules against the invariants.

``SPUR_UPDATE_GOLDEN=1`` rewrites the golden files; ``SPUR_SIM_SEEDS=N`` sets how many random
schedules run (default 200; ``make chaos`` runs more).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from spurcore.ops import ActionKind, SignalTarget
from tests.sim.scenario import run_scenario
from tests.sim.sim import JobState, Sim

HERE = Path(__file__).parent
SCENARIOS = sorted((HERE / "scenarios").glob("*.scn"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_matches_golden(path: Path) -> None:
    text = run_scenario(path)
    golden = path.with_suffix(".golden")
    if os.environ.get("SPUR_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file for {path.name}: run with SPUR_UPDATE_GOLDEN=1"
    assert text == golden.read_text()
    assert run_scenario(path) == text  # the same seed, the same run


def random_schedule(seed: int) -> Sim:
    """Submissions and cancels at random times under random faults: replica crashes and
    restarts, partitions ({leader} vs the rest, a split majority), agent crashes, message
    loss and duplication. Some jobs ignore SIGTERM (their kills wait KillWait), some are
    suspended and resumed or signalled. Runs it, heals everything, and checks the invariants."""
    rng = random.Random(seed * 7919)
    more = random.Random(seed * 104729)  # the job-control part, drawn apart from the schedule above
    sim = Sim(seed, replicas=rng.choice([3, 3, 5]), nodes=rng.choice([1, 2, 3]), cpus=rng.choice([1, 2]))
    horizon = rng.uniform(5, 20)
    events: list[tuple[float, str, str]] = []
    for i in range(rng.randint(1, 12)):
        t = rng.uniform(0.2, horizon)
        events.append((t, "submit", f"j{i}"))
        if rng.random() < 0.3:
            events.append((t + rng.uniform(0, 5), "cancel", f"j{i}"))
        if more.random() < 0.2:
            stop = t + more.uniform(0, 4)
            events.append((stop, "suspend", f"j{i}"))
            events.append((stop + more.uniform(0, 4), "resume", f"j{i}"))
        if more.random() < 0.1:
            events.append((t + more.uniform(0, 4), "signal", f"j{i}"))
    for _ in range(rng.randint(0, 6)):
        events.append((rng.uniform(0.5, horizon), rng.choice(
            ["crash_replica", "restart_replica", "partition_leader", "partition_split", "heal", "crash_agent",
             "restart_agent", "lossy", "calm"]), ""))
    events.sort(key=lambda e: e[0])
    for t, kind, name in events:
        sim.run_until(t)
        if kind == "submit":
            script = f"sleep {rng.choice([0, 0.5, 1, 3, 8])}; exit {rng.choice([0, 0, 0, 1, 2])}"
            sim.submit(name, more.choice(["", "", "", "trap '' TERM; ", "trap 'exit 7' USR1; "]) + script)
        elif kind == "cancel":
            sim.cancel(name)
        elif kind == "suspend":
            sim.suspend(name)
        elif kind == "resume" and _stop_carried_out(sim, name):
            sim.resume(name)  # else the job stays suspended until _resume_suspended
        elif kind == "signal":
            sim.signal(name, 10, more.choice([SignalTarget.BATCH, SignalTarget.FULL]))
        elif kind == "crash_replica" and sim.log.leader is not None:
            sim.crash_replica(rng.choice(["leader", str(rng.randint(1, len(sim.replicas)))]))
        elif kind == "restart_replica":
            for r in sim.replicas:
                if not r.alive:
                    r.restart()
                    break
        elif kind == "partition_leader" and sim.log.leader is not None:
            sim.partition([["leader"], [str(r.rid) for r in sim.replicas if r is not sim.log.leader]])
        elif kind == "partition_split":
            ids = [str(r.rid) for r in sim.replicas]
            cut = rng.randint(1, len(ids) - 1)
            agents = list(sim.agents)
            sim.partition([ids[:cut] + agents[: len(agents) // 2], ids[cut:] + agents[len(agents) // 2 :]])
        elif kind == "heal":
            sim.heal()
        elif kind == "crash_agent":
            sim.agents[rng.choice(list(sim.agents))].crash()
        elif kind == "restart_agent":
            for a in sim.agents.values():
                if not a.alive:
                    a.restart()
        elif kind == "lossy":
            sim.net.drop, sim.net.dup = rng.uniform(0, 0.3), rng.uniform(0, 0.3)
        elif kind == "calm":
            sim.net.drop = sim.net.dup = 0.0
    sim.run_until(horizon + 1)
    if any(op.kind == "suspend" for op in sim.history):
        _resume_suspended(sim)
    sim.quiesce()
    sim.check()
    return sim


def _stop_carried_out(sim: Sim, name: str) -> bool:
    """The job's suspend has been answered, and its nodes have ACKed the STOP: a resume now
    cannot reach a node before the suspend does. (spurd gets a leader's notifications in
    their order, on one connection; the sim's network may reorder them, so that a CONT
    carried out before its STOP would leave the job stopped while the controller has it
    RUNNING.)"""
    ldr = sim.log.leader
    job_id = sim.names.get(name)
    if ldr is None or ldr.applied < ldr.commit or job_id is None:
        return False  # (a new leader may not have applied the suspend yet)
    if any(op.kind == "suspend" and op.name == name and op.outcome == "pending" for op in sim.history):
        return False
    return not any(a.job_id == job_id and a.kind == ActionKind.STOP for a in ldr.state.actions.values())


def _resume_suspended(sim: Sim) -> None:
    """Jobs left suspended (their resume came before the suspend was carried out, or was
    refused): an operator resumes them once the cluster is whole, every call has been
    answered and every STOP carried out, so that they can end."""
    sim.heal()
    for r in sim.replicas:
        if not r.alive:
            r.restart()
    for a in sim.agents.values():
        if not a.alive:
            a.restart()
    deadline = sim.now + 60

    def settled() -> bool:
        ldr = sim.log.leader
        return ldr is not None and ldr.applied == ldr.commit and not any(op.outcome == "pending" for op in sim.history) \
            and not any(a.kind == ActionKind.STOP for a in ldr.state.actions.values())

    while not settled():
        assert sim.now < deadline, f"seed {sim.seed}: not settled 60 s after healing"
        sim.step()
    for job in sim.log.leader.state.jobs.values():
        if job.state is JobState.SUSPENDED:
            sim.resume(job.spec.name)


def test_random_fault_schedules() -> None:
    seeds = int(os.environ.get("SPUR_SIM_SEEDS", "200"))
    t0 = time.monotonic()
    totals = {"elections": 0, "messages": 0, "dropped": 0, "duplicated": 0, "jobs": 0, "sim_seconds": 0.0,
              "fenced": 0, "requeued": 0}
    for seed in range(seeds):
        figures = random_schedule(seed).figures()
        for key in totals:
            totals[key] += figures[key]
    print(f"\n{seeds} random fault schedules in {time.monotonic() - t0:.1f} s: {totals}")


def test_same_seed_same_history() -> None:
    a, b = random_schedule(17), random_schedule(17)
    assert a.figures() == b.figures()
    assert [r.log[i].blob for r in a.replicas for i in range(len(r.log))] == \
           [r.log[i].blob for r in b.replicas for i in range(len(r.log))]


# --- the checker has teeth: deliberately broken parts are caught ----------------------------


def _lossy_run(seed: int = 2) -> Sim:
    sim = Sim(seed, replicas=3, nodes=2, cpus=2)
    sim.net.drop = 0.3
    for i in range(6):
        sim.submit(f"j{i}", "sleep 2; exit 0")
    sim.run_until(1.0)
    sim.crash_replica("leader")
    sim.run_until(6.0)
    sim.quiesce()
    return sim


def test_checker_catches_an_agent_that_starts_a_job_twice(monkeypatch):
    from tests.sim import sim as simmod

    original = simmod.SimAgent.receive

    def forgetful(self, method, params):
        if method == "start":  # forgets what it already runs: every resent start runs again
            key = (params["job"]["job_id"], int(params["job"].get("restarts") or 0))
            self.runs.pop(key, None)
        return original(self, method, params)

    monkeypatch.setattr(simmod.SimAgent, "receive", forgetful)
    with pytest.raises(AssertionError, match="started .* times|runs on"):
        for seed in range(20):
            _lossy_run(seed).check()


def test_checker_catches_a_reducer_that_ignores_request_ids(monkeypatch):
    from spurcore import reduce

    original = reduce._job_submitted

    def no_dedupe(state, op):
        state.requests.pop(op.request_id, None)  # a retried submit is a new job
        return original(state, op)

    monkeypatch.setitem(reduce._HANDLERS, reduce.JobSubmitted, no_dedupe)
    with pytest.raises(AssertionError, match="exists 2 times"):
        for seed in range(40):
            _lossy_run(seed).check()


def _partitioned_node_run(seed: int) -> Sim:
    """A job's node is cut off from everything past node_timeout: NODE_FAIL, requeue."""
    sim = Sim(seed, replicas=3, nodes=2, cpus=1)
    sim.submit("long", "sleep 30; exit 0")
    sim.run_until(2.0)
    node = next(a.node for a in sim.agents.values() if a.live())
    sim.partition([[str(r.rid) for r in sim.replicas] + [n for n in sim.agents if n != node], [node]])
    sim.run_until(20.0)
    sim.heal()
    sim.quiesce()
    return sim


def test_a_cut_off_node_fences_its_job_before_it_is_requeued():
    sim = _partitioned_node_run(4)
    sim.check()
    figures = sim.figures()
    assert figures["fenced"] == 1 and figures["requeued"] == 1, figures


def test_checker_catches_requeue_without_fencing(monkeypatch):
    """Requeue on NODE_FAIL without fencing runs the job twice at once: caught."""
    from tests.sim import sim as simmod

    original = simmod.Sim.__init__

    def unfenced(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.fence_timeout = 0.0  # the agents never fence, but the controller believes they do

    monkeypatch.setattr(simmod.Sim, "__init__", unfenced)
    with pytest.raises(AssertionError, match="runs on"):
        _partitioned_node_run(4).check()
