"""Fault scenarios. Unmarked ones belong to the subset `make test` runs as root; the
``chaos`` ones run with `make chaos` (SPUR_CHAOS=1, several seeds)."""

from __future__ import annotations

import time

import pytest

from tests.hosts.cluster import wait_for
from tests.hosts.history import Window


def test_paused_leader_serves_no_stale_read(hosts, scenario, seed):
    """SIGSTOP of the leader for 3 s: the others elect a leader and acknowledge writes; when
    the old leader resumes it must not answer a read from its stale state (read lease).
    Patient clients (10 s reply timeout) stay queued on the paused leader; impatient ones
    (1 s) move on and write meanwhile."""
    cluster = hosts()
    s = scenario(cluster)
    s.workload("login", duration=16, clients=2, rate=3, seed=seed, timeout=1.0, name="impatient")
    s.workload("login", duration=16, clients=4, rate=4, seed=seed + 50, mix="1,0,9", name="patient")
    time.sleep(4)
    leader = cluster.wait_leader(10)
    fault = s.pause(f"ctl{leader}")
    new = cluster.wait_leader(10, exclude=(leader,))
    s.note(f"ctl{new} leads {time.monotonic() - fault:.2f} s after SIGSTOP")
    time.sleep(3)
    s.resume(f"ctl{leader}")
    time.sleep(4)
    violations, figs = s.verify(fault=fault)
    assert violations == []


def test_full_disk_under_the_leader(hosts, scenario, seed):
    """ENOSPC under the leader's state directory (a 64 MiB tmpfs filled up): the replica
    stops taking part (fail-stop, `failed` in ping), another leads, writes go on, nothing
    acknowledged is lost; restarted after the space is freed, it catches up."""
    cluster = hosts(start=False)
    for c in cluster.controllers:
        cluster.mount_tmpfs(cluster.host_dir(c.name) / "state", "64m")
    cluster.up()
    s = scenario(cluster)
    s.workload(duration=20, clients=2, rate=3, seed=seed)
    time.sleep(4)
    leader = cluster.wait_leader(10)
    fault = s.fill_disk(cluster.host_dir(f"ctl{leader}") / "state")
    info = wait_for(lambda: (cluster.ping(leader) or {}).get("failed") or (cluster.daemon(f"ctl{leader}") is None),
                    20, "the full replica to stop")
    s.note(f"ctl{leader}: {info if info is not True else 'exited'}")
    new = cluster.wait_leader(15, exclude=(leader,))
    s.note(f"ctl{new} leads {time.monotonic() - fault:.2f} s after the disk filled")
    time.sleep(4)
    heal = s.heal()
    s.restart(f"ctl{leader}")
    violations, figs = s.verify(fault=fault, heal=heal)
    assert violations == []
    assert figs["ops"].get("submit:ok", 0) > 10


@pytest.mark.chaos
def test_no_quorum_anywhere(hosts, scenario, seed):
    """Every controller alone (the clients reach all of them): nothing is acknowledged
    while no majority exists; everything resumes after the heal."""
    cluster = hosts()
    s = scenario(cluster)
    s.workload(duration=20, clients=2, rate=3, seed=seed, retry_for=3.0)
    time.sleep(5)
    fault = s.partition(["ctl1"], ["ctl2"], ["ctl3"])
    time.sleep(6)
    heal = s.heal()
    s.minority.append(Window(("login0-0", "login0-1"), fault + 1.0, heal))
    violations, figs = s.verify(fault=fault, heal=heal)
    assert violations == []
    assert figs["longest_write_gap_during_fault_s"] >= 5.0


@pytest.mark.chaos
def test_flapping_leader_link(hosts, scenario, seed):
    """The leader's host is cut off and restored every 0.7 s for 8 s under load."""
    cluster = hosts()
    s = scenario(cluster)
    s.workload(duration=22, clients=2, rate=3, seed=seed)
    time.sleep(4)
    leader = cluster.wait_leader(10)
    fault = s.flap(f"ctl{leader}", 0.7)
    time.sleep(8)
    heal = s.heal()
    time.sleep(3)
    violations, figs = s.verify(fault=fault, heal=heal)
    assert violations == []


@pytest.mark.chaos
def test_flapping_follower_link_keeps_the_leader(hosts, scenario, seed):
    """A follower's link flaps for 8 s: with PreVote the leader and the term stay put."""
    cluster = hosts()
    s = scenario(cluster)
    s.workload(duration=20, clients=2, rate=3, seed=seed)
    time.sleep(3)
    leader = cluster.wait_leader(10)
    term = cluster.ping(leader)["term"]
    follower = next(c.name for c in cluster.controllers if c.rid != leader)
    fault = s.flap(follower, 0.6)
    time.sleep(8)
    heal = s.heal()
    time.sleep(3)
    violations, figs = s.verify(fault=fault, heal=heal)
    assert violations == []
    assert [x for x in s.monitor.leaders() if x[0] >= fault] == []
    assert figs["terms"][1] == term


@pytest.mark.chaos
def test_one_way_loss_from_a_follower(hosts, scenario, seed):
    """The leader stops hearing one follower (follower -> leader dropped) for 6 s: the
    leader keeps its majority through the other follower; nothing changes for clients."""
    cluster = hosts()
    s = scenario(cluster)
    s.workload(duration=16, clients=2, rate=3, seed=seed)
    time.sleep(3)
    leader = cluster.wait_leader(10)
    follower = next(c.name for c in cluster.controllers if c.rid != leader)
    fault = s.one_way(follower, f"ctl{leader}")
    time.sleep(6)
    heal = s.heal()
    violations, figs = s.verify(fault=fault, heal=heal)
    assert violations == []
    assert [x for x in s.monitor.leaders() if x[0] >= fault] == []


@pytest.mark.chaos
def test_agent_sigkill_and_restart(hosts, scenario, seed):
    """SIGKILL of a node's agent under load, restarted 3 s later: running jobs survive
    under their supervisors, are re-adopted, and none runs twice."""
    cluster = hosts()
    s = scenario(cluster)
    s.workload(duration=16, clients=2, rate=3, seed=seed)
    time.sleep(5)
    fault = s.kill("node1")
    time.sleep(3)
    s.restart("node1")
    violations, figs = s.verify(fault=fault)
    assert violations == []


@pytest.mark.chaos
def test_replica_sigkill_loop(hosts, scenario, seed):
    """Every 3 s SIGKILL the current leader and restart the previous victim, 4 times."""
    cluster = hosts()
    s = scenario(cluster)
    s.workload(duration=22, clients=2, rate=3, seed=seed)
    time.sleep(3)
    fault = None
    victim = None
    for _ in range(4):
        leader = cluster.wait_leader(15)
        t = s.kill(f"ctl{leader}")
        fault = fault or t
        if victim is not None:
            s.restart(f"ctl{victim}")
        victim = leader
        time.sleep(3)
    s.restart(f"ctl{victim}")
    violations, figs = s.verify(fault=fault)
    assert violations == []


@pytest.mark.chaos
def test_five_replicas_majority_split(hosts, scenario, seed):
    """Five replicas, {leader, one follower, node2} | {three followers, the rest}: the
    three elect a leader, the old one steps down, its side acknowledges nothing."""
    cluster = hosts(replicas=5)
    s = scenario(cluster)
    leader = cluster.wait_leader(10)
    others = [c.name for c in cluster.controllers if c.rid != leader]
    s.workload("login", duration=18, clients=2, rate=3, seed=seed, name="major")
    s.workload("node2", duration=18, clients=2, rate=3, seed=seed + 100, retry_for=2.0, name="minor")
    time.sleep(4)
    fault = s.partition([f"ctl{leader}", others[0], "node2"], [*others[1:], "login", "node1"])
    cluster.wait_leader(10, exclude=(leader,))
    time.sleep(6)
    heal = s.heal()
    s.minority.append(Window(("minor-0", "minor-1"), fault, heal))
    violations, figs = s.verify(fault=fault, heal=heal)
    assert violations == []
    down = s.monitor.step_down_after(leader, fault)
    assert down is not None and down < cluster.settings["raft_max_timeout"] + 0.5


@pytest.mark.chaos
def test_wall_clock_jump_on_the_leader(hosts, scenario, seed):
    """The leader's wall clock jumps 90 s back for 6 s (simulated, see clockshift.py):
    elections use monotonic clocks, so nothing changes hands; the history holds."""
    cluster = hosts(clock_hosts=("ctl1", "ctl2", "ctl3"))
    s = scenario(cluster)
    s.workload(duration=16, clients=2, rate=3, seed=seed)
    time.sleep(4)
    leader = cluster.wait_leader(10)
    fault = s.clock_jump(f"ctl{leader}", -90)
    time.sleep(6)
    heal = s.heal()
    violations, figs = s.verify(fault=fault, heal=heal)
    assert violations == []
    assert [x for x in s.monitor.leaders() if x[0] >= fault] == []
