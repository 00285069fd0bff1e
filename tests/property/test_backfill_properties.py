"""Backfill against a naive reference simulator (issue: scheduler, backfill).

The reference is conservative backfill written the slow, obvious way: a calendar of
(node, CPUs, [start, end)) intervals holding the running jobs; jobs are taken in priority
order (here job id order: every weight is 0); a job starts now if some nodes have its CPUs
free during all of [now, now + time limit), else it is reserved at the earliest time when
enough nodes do (checked by summing the calendar at every interval boundary). Nodes are taken
in configuration order.

Properties, on random clusters, running jobs and queues:
- ``plan`` starts exactly the jobs the reference starts, on the same nodes, and reserves the
  same start times for the others;
- backfill never delays the reserved start of a higher-priority job: removing every job
  after J from the queue leaves J's reserved start unchanged;
- a startable top job never waits;
- every start the plan makes is accepted by the reducer.
"""

from __future__ import annotations

import math

import attrs
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spurcore.codec import decode_batch, encode_batch
from spurcore.model import ClusterState
from spurcore.ops import (
    AccountingUpdated,
    ClusterConfigured,
    JobSpec,
    JobStart,
    JobSubmitted,
    NodeRegistered,
    NodeStateUpdated,
    PartitionUpdated,
)
from spurcore.reduce import Rejected, apply
from spurcore.scheduler import plan
from spurcore.slurmconf import SETTINGS
from spurcore.snapshot import decode_state, digest, encode_state
from tests.property.strategies import ops as job_ops

SPEC = JobSpec("j", "alice", 1000, 100, "#!/bin/sh\ntrue\n", (), {}, "/tmp")
NOW = 10_000.0
INF = math.inf

nodes_st = st.lists(st.integers(1, 4), min_size=1, max_size=4)
running_st = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(1, 30)), max_size=5)
pending_st = st.lists(
    st.tuples(st.integers(1, 2), st.integers(1, 4), st.one_of(st.integers(1, 40), st.none())),
    min_size=1, max_size=7,
)


def build(node_cpus: list[int], running: list[tuple[int, int, int]],
          pending: list[tuple[int, int, int | None]]) -> tuple[ClusterState, list[int]]:
    names = [f"n{i}" for i in range(len(node_cpus))]
    node_recs = tuple({"name": n, "cpus": c, "real_memory": 1000, "gres": [], "features": [], "weight": 1,
                       "state": "UNKNOWN", "reason": ""} for n, c in zip(names, node_cpus, strict=True))
    part = {"name": "p", "nodes": ["ALL"], "default": True}
    settings_ = dict(SETTINGS, bf_resolution=1, bf_window=10**7, bf_max_job_test=10**6)
    state = ClusterState()
    assert apply(state, ClusterConfigured("t", node_recs, (part,), settings_, 0.0)) is None
    for n, c in zip(names, node_cpus, strict=True):
        apply(state, NodeRegistered(n, c, 1000, "", 0.0))
    for node_ix, cpus, left in running:
        name = names[node_ix % len(names)]
        node = state.nodes[name]
        if node.cpus - node.alloc_cpus < cpus:
            continue
        job_id = apply(state, JobSubmitted("", attrs.evolve(SPEC, ntasks=cpus, time_limit=100), 1.0))
        # started so that it ends ``left`` seconds from now
        assert apply(state, JobStart(job_id, (name,), cpus, 0, NOW - 100 + left, -1, "p")) is None
    queue = []
    origin.clear()
    for index, (nodes, cpus, limit) in enumerate(pending):
        if nodes > len(names):
            nodes = len(names)
        spec = attrs.evolve(SPEC, nodes=nodes, ntasks=nodes * cpus, time_limit=limit)
        job_id = apply(state, JobSubmitted("", spec, 2.0))
        if isinstance(job_id, int):
            queue.append(job_id)
            origin[job_id] = index
    return state, queue


origin: dict[int, int] = {}  # job id -> its index in ``pending`` (some submissions are refused)


def reference(state: ClusterState, queue: list[int]) -> tuple[dict[int, tuple[str, ...]], dict[int, float]]:
    """(started job -> nodes, reserved job -> start) by naive conservative backfill."""
    names = list(state.nodes)
    cap = {n: state.nodes[n].cpus for n in names}
    calendar: list[tuple[str, int, float, float]] = []
    for job in state.jobs.values():
        if job.allocated:
            end = job.start_time + job.spec.time_limit if job.spec.time_limit is not None else INF
            for n in job.nodes:
                calendar.append((n, job.cpus_per_node, NOW, end))

    def used(node: str, t: float) -> int:
        return sum(c for n, c, s, e in calendar if n == node and s <= t < e)

    def free_during(node: str, t: float, d: float, cpus: int) -> bool:
        points = [t] + [s for n, _, s, _ in calendar if n == node and t < s < t + d]
        return all(cap[node] - used(node, p) >= cpus for p in points)

    started: dict[int, tuple[str, ...]] = {}
    reserved: dict[int, float] = {}
    for job_id in queue:
        job = state.jobs[job_id]
        k = job.spec.nodes
        cpus = job.spec.ntasks // job.spec.nodes
        d = float(job.spec.time_limit) if job.spec.time_limit is not None else INF
        times = sorted({NOW} | {e for *_, e in calendar if NOW < e < INF})
        for t in times:
            ok = [n for n in names if free_during(n, t, d, cpus)]
            if len(ok) >= k:
                chosen = tuple(ok[:k])
                for n in chosen:
                    calendar.append((n, cpus, t, t + d))
                if t == NOW:
                    started[job_id] = chosen
                else:
                    reserved[job_id] = t
                break
    return started, reserved


@settings(max_examples=300, deadline=None)
@given(node_cpus=nodes_st, running=running_st, pending=pending_st)
def test_backfill_matches_the_naive_reference(node_cpus, running, pending):
    state, queue = build(node_cpus, running, pending)
    p = plan(state, NOW)
    started = {s.job_id: s.nodes for s in p.starts}
    ref_started, ref_reserved = reference(state, queue)
    assert started == ref_started
    assert {j: t for j, (t, _) in p.planned.items()} == ref_reserved
    # every start is accepted by the reducer, in order
    for start in p.starts:
        assert not isinstance(apply(state, start), Rejected)


@settings(max_examples=200, deadline=None)
@given(node_cpus=nodes_st, running=running_st, pending=pending_st)
def test_lower_priority_jobs_never_delay_a_reservation(node_cpus, running, pending):
    state, queue = build(node_cpus, running, pending)
    full = plan(state, NOW).planned
    index = dict(origin)
    for job_id in queue:
        if job_id not in full:
            continue
        alone, _ = build(node_cpus, running, pending[: index[job_id] + 1])  # the same jobs, nothing after J
        assert plan(alone, NOW).planned.get(job_id, (None,))[0] == full[job_id][0]


@settings(max_examples=200, deadline=None)
@given(node_cpus=nodes_st, running=running_st, pending=pending_st)
def test_a_startable_top_job_never_waits(node_cpus, running, pending):
    state, queue = build(node_cpus, running, pending)
    assume(queue)
    top = state.jobs[queue[0]]
    cpus = top.spec.ntasks // top.spec.nodes
    free = [n for n in state.nodes.values() if n.cpus - n.alloc_cpus >= cpus]
    starts = [s.job_id for s in plan(state, NOW).starts]
    assert (queue[0] in starts) == (len(free) >= top.spec.nodes)


# --- the configuration and accounting ops mixed with everything else -----------------------

_NODE_REC = st.fixed_dictionaries({
    "name": st.sampled_from(["n1", "n2", "n3"]), "cpus": st.integers(1, 4),
    "real_memory": st.sampled_from([1000, 4000]),
    "gres": st.sampled_from([[], [["gpu", "", 2, []]], [["gpu", "a100", 1, ["/dev/nvidia0"]]]]),
    "features": st.sampled_from([[], ["ib"]]), "weight": st.integers(0, 3),
    "state": st.sampled_from(["UNKNOWN", "DRAIN", "DOWN"]), "reason": st.just(""),
})
_PART_REC = st.fixed_dictionaries({
    "name": st.sampled_from(["debug", "p2"]), "nodes": st.sampled_from([["ALL"], ["n1"], ["n1", "n2"]]),
    "default": st.booleans(), "max_time": st.sampled_from([None, 60, 3600]),
    "state": st.sampled_from(["UP", "UP", "DOWN", "DRAIN"]),
})
config_ops = st.one_of(
    st.builds(ClusterConfigured, st.sampled_from(["a", "b"]), st.lists(_NODE_REC, max_size=3).map(tuple),
              st.lists(_PART_REC, max_size=2).map(tuple),
              st.fixed_dictionaries({}, optional={
                  "scheduler_type": st.sampled_from(["sched/backfill", "sched/builtin"]),
                  "priority_weight_age": st.integers(0, 1000),
                  "enforce": st.sampled_from([[], ["associations"], ["associations", "limits", "qos"]])}),
              st.floats(0, 1e6)),
    st.builds(NodeStateUpdated, st.lists(st.sampled_from(["n1", "n2", "zz"]), max_size=2).map(tuple),
              st.sampled_from(["DRAIN", "RESUME", "DOWN", "FAIL", "UNDRAIN", "bogus"]),
              st.sampled_from(["", "why"]), st.just(0), st.floats(0, 1e6)),
    st.builds(PartitionUpdated, st.sampled_from(["debug", "p2", "x"]),
              st.dictionaries(st.sampled_from(["state", "max_time", "nodes", "default", "bogus"]),
                              st.sampled_from(["DOWN", "UP", 60, None, ["n1"], True, "x"]), max_size=2),
              st.just(0), st.floats(0, 1e6)),
    st.builds(AccountingUpdated, st.sampled_from(["add", "modify", "delete"]),
              st.sampled_from(["account", "user", "qos"]), st.sampled_from([("phys",), ("alice",), ("normal",)]),
              st.sampled_from([{}, {"account": "phys"}]),
              st.sampled_from([{}, {"Account": ["phys"]}, {"MaxJobs": 1}, {"GrpTRES": {"cpu": 2}},
                               {"Parent": "root"}, {"MaxWall": "x"}]),
              st.just(0), st.floats(0, 1e6)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(config_ops, job_ops, job_ops), max_size=50), st.integers(0, 50))
def test_configuration_ops_never_raise_and_replay_deterministically(op_seq, cut):
    state = ClusterState()
    for op in op_seq:
        apply(state, op)
        plan(state, 1e6)  # the scheduler never raises on what the reducer accepted
    replayed = ClusterState()
    for op in decode_batch(encode_batch(op_seq)):
        apply(replayed, op)
    assert digest(replayed) == digest(state)
    # snapshot at any point + the tail = the whole replay
    head = ClusterState()
    for op in op_seq[:cut]:
        apply(head, op)
    restored = decode_state(encode_state(head))
    for op in op_seq[cut:]:
        apply(restored, op)
    assert digest(restored) == digest(state)
