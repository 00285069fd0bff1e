"""Hypothesis strategies: ops with small id spaces, so that generated sequences hit real
transitions (starts, completions, cancels, ACKs) and not only rejections."""

from __future__ import annotations

from hypothesis import strategies as st

from spurcore.ops import (
    ActionAcked,
    ActionRequested,
    ArrayTasksSplit,
    JobCancelled,
    JobDeadlineReached,
    JobHeld,
    JobLaunched,
    JobNodeComplete,
    JobReleased,
    JobRequeued,
    JobSpec,
    JobsPurged,
    JobStart,
    JobStepComplete,
    JobSubmitted,
    JobTimeLimitReached,
    JobUpdated,
    NodeDown,
    NodeRegistered,
    StepCreated,
)

NODES = ("n1", "n2", "n3")
job_ids = st.integers(min_value=1, max_value=8)
nodes = st.sampled_from(NODES)
times = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
small = st.integers(min_value=0, max_value=3)
texts = st.text(max_size=8)

specs = st.builds(
    JobSpec,
    name=texts,
    user=st.sampled_from(["alice", "bob"]),
    uid=st.sampled_from([1000, 1001]),
    gid=st.just(100),
    script=st.one_of(st.none(), st.just("#!/bin/sh\nexit 0\n")),
    argv=st.tuples(texts),
    env=st.dictionaries(st.sampled_from(["A", "B"]), texts, max_size=2),
    cwd=st.just("/tmp"),
    nodes=st.integers(1, 2),
    ntasks=st.integers(1, 3),
    cpus_per_task=st.integers(1, 2),
    mem_mb=st.sampled_from([0, 100]),
    time_limit=st.one_of(st.none(), st.integers(1, 100)),
    hold=st.booleans(),
    dependency=st.sampled_from(["", "afterok:1", "afterany:2", "afternotok:1", "afterok:1?afterany:2",
                                "aftercorr:1", "singleton", "afterok:1_2", "after:2+1"]),
    array=st.sampled_from(["", "", "0-3", "1,3%1", "0-5:2%2", "7", "0-3%9"]),
    exclusive=st.sampled_from(["", "", "exclusive", "user"]),
)

exit_codes = st.integers(min_value=0, max_value=255)
signals = st.sampled_from([0, 0, 0, 2, 9, 11, 15])

ops = st.one_of(
    st.builds(NodeRegistered, nodes, st.integers(1, 4), st.sampled_from([1000, 4000]), texts, times),
    st.builds(NodeDown, nodes, texts, times, st.booleans(), st.booleans(), times),
    st.builds(JobSubmitted, st.sampled_from(["", "r1", "r2", "r3"]), specs, times),
    st.builds(JobStart, job_ids, st.one_of(st.tuples(nodes), st.tuples(nodes, nodes)), st.integers(1, 3),
              st.sampled_from([0, 100]), times, st.sampled_from([-1, -1, 0, 1, 2, 3, 4])),
    st.builds(JobLaunched, job_ids, nodes, times),
    st.builds(StepCreated, st.sampled_from(["", "s1", "s2"]), job_ids, texts, st.tuples(texts), st.integers(1, 2),
              st.sampled_from(["", "n1"]), st.just(1000), times),
    st.builds(JobStepComplete, job_ids, small, nodes, exit_codes, signals, st.booleans(), times),
    st.builds(JobNodeComplete, job_ids, nodes, exit_codes, signals, st.booleans(), times, st.booleans(),
              st.booleans(), times),
    st.builds(ActionRequested, st.sampled_from(["", "a1"]), job_ids, st.sampled_from([-1, -1, 0, 1]),
              st.integers(1, 4), st.sampled_from([0, 9, 10, 15, 18, 19]), st.integers(0, 2), st.just(0), times),
    st.builds(ActionAcked, st.integers(1, 10), nodes, st.just(0), st.just(0), times),
    st.builds(JobCancelled, job_ids, st.just(0), times),
    st.builds(JobTimeLimitReached, job_ids, times),
    st.builds(JobHeld, job_ids, st.just(0), st.booleans(), times),
    st.builds(JobReleased, job_ids, st.just(0), times),
    st.builds(JobsPurged, st.lists(job_ids, max_size=3).map(tuple), times),
    st.builds(JobRequeued, job_ids, st.just(0), st.booleans(), times, times),
    st.builds(JobDeadlineReached, job_ids, times),
    st.builds(ArrayTasksSplit, job_ids, st.lists(st.integers(0, 5), max_size=3).map(tuple), times),
    st.builds(JobUpdated, job_ids, st.sampled_from([0, 1000]), st.booleans(),
              st.dictionaries(st.sampled_from(["TimeLimit", "Comment", "ArrayTaskThrottle", "Nice", "Dependency"]),
                              st.one_of(st.integers(-2, 100), st.none(), texts), max_size=2), times),
)

op_lists = st.lists(ops, max_size=60)
