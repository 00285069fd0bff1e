"""The representative subset (runs in `make test` as root): leader loss, a replica cut
off, a rejoining replica, an isolated leader. Each prints its figures; docs/reliability.md
says what each proves and lists the figures of the last run."""

from __future__ import annotations

import time

from tests.hosts.cluster import wait_for
from tests.hosts.history import Window


def _others(cluster, rid):
    return [c.name for c in cluster.controllers if c.rid != rid]


def test_leader_sigkill(hosts, scenario, seed):
    """SIGKILL of the leader under load: a new leader, nothing acknowledged is lost, no job
    runs twice, the restarted replica catches up to the same digest."""
    cluster = hosts()
    s = scenario(cluster)
    s.workload(duration=16, clients=2, rate=3, seed=seed)
    time.sleep(5)
    leader = cluster.leader()
    assert leader is not None
    fault = s.kill(f"ctl{leader}")
    new = cluster.wait_leader(10, exclude=(leader,))
    s.note(f"ctl{new} leads {time.monotonic() - fault:.2f} s after the kill")
    time.sleep(4)
    s.restart(f"ctl{leader}")
    violations, figs = s.verify(fault=fault)
    assert violations == []
    assert figs["ops"].get("submit:ok", 0) > 10


def test_tools_with_a_replica_cut_off(hosts, scenario):
    """With replica 1 cut off, sbatch and squeue find the leader without paying the dead
    replica's connect timeout on every call (issue 13: 10.1 s per sbatch before)."""
    cluster = hosts()
    s = scenario(cluster)
    s.isolate("ctl1")
    cluster.wait_leader(10, exclude=(1,))
    times = []
    for i in range(4):
        t = time.monotonic()
        r = cluster.tool("login", ["sbatch", "-J", f"cut{i}", "-o", "/dev/null", "--wrap", "true"], timeout=60)
        times.append(time.monotonic() - t)
        assert r.returncode == 0, r.stderr
        t = time.monotonic()
        r = cluster.tool("login", ["squeue", "-h"], timeout=60)
        times.append(time.monotonic() - t)
        assert r.returncode == 0, r.stderr
    s.note("tool latencies with ctl1 cut off: " + " ".join(f"{x:.2f}" for x in times))
    violations, _ = s.verify()
    assert violations == []
    assert max(times) < 2.5, times


def test_rejoining_replica_does_not_depose_the_leader(hosts, scenario, seed):
    """A follower that stops hearing the leader (one-way loss, then a full cut) and comes
    back must not raise the term or change the leader (PreVote; issue 13: terms 3 -> 14)."""
    cluster = hosts()
    s = scenario(cluster)
    s.workload(duration=18, clients=1, rate=3, seed=seed)
    time.sleep(2)  # past the start-up of the workload
    leader = cluster.wait_leader(10)
    term = cluster.ping(leader)["term"]
    follower = next(c for c in cluster.controllers if c.rid != leader)
    fault = s.one_way(f"ctl{leader}", follower.name)
    time.sleep(4)
    s.heal()
    time.sleep(2)
    s.isolate(follower.name)
    time.sleep(4)
    heal = s.heal()
    time.sleep(3)
    violations, figs = s.verify(fault=fault, heal=heal)
    assert violations == []
    changes = [(round(t - s.t0, 2), term_, rid) for t, term_, rid in s.monitor.leaders() if t >= fault]
    assert changes == [], changes
    assert figs["terms"][1] == term, figs["terms"]


def test_isolated_leader_steps_down(hosts, scenario, seed):
    """{leader, node2} | {the rest}: the old leader steps down within an election timeout
    (CheckQuorum), acknowledges no write from its side, and serves no stale read."""
    cluster = hosts()
    s = scenario(cluster)
    leader = cluster.wait_leader(10)
    s.workload("login", duration=18, clients=2, rate=3, seed=seed, name="major")
    s.workload("node2", duration=18, clients=2, rate=3, seed=seed + 100, mix="6,1,6", retry_for=2.0,
               name="minor")
    time.sleep(5)
    fault = s.partition([f"ctl{leader}", "node2"], [*_others(cluster, leader), "login", "node1"])
    new = cluster.wait_leader(10, exclude=(leader,))
    s.note(f"ctl{new} leads {time.monotonic() - fault:.2f} s after the split")
    wait_for(lambda: not (cluster.ping(leader) or {}).get("leader"), 10, "the old leader to step down")
    time.sleep(5)
    heal = s.heal()
    s.minority.append(Window(("minor-0", "minor-1"), fault, heal))
    down = s.monitor.step_down_after(leader, fault)
    s.note(f"old leader ctl{leader} stepped down {down if down is None else round(down, 2)} s after the split")
    violations, figs = s.verify(fault=fault, heal=heal)
    assert violations == []
    max_timeout = cluster.settings["raft_max_timeout"]
    assert down is not None and down < max_timeout + 0.5, (down, max_timeout)
