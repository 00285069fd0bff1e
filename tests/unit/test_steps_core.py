"""Step layouts, fit and per-node completion in the pure core (spurcore.steps, the reducer).

Each case cites the Slurm 25.11 behaviour it pins: srun(1) for the distributions and for
--exact/--overlap, slurm_step_layout.c for the layouts, stepmgr.c for the step status.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spurcore import exitcodes
from spurcore.model import ClusterState
from spurcore.ops import (
    JobSpec,
    JobStart,
    JobStepComplete,
    JobSubmitted,
    NodeDown,
    NodeRegistered,
    StepCreated,
)
from spurcore.reduce import Rejected, apply
from spurcore.snapshot import decode_state, encode_state
from spurcore.steps import (
    NODES_BUSY,
    StepLayout,
    StepRefusal,
    StepRequest,
    compress_counts,
    layout_tasks,
    node_distribution,
    plan,
    ranges,
)
from spurcore.usage import combine, fmt_cpu, fmt_size
from spurcore.views import job_info

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


# --- layouts (srun(1) -m examples, slurm_step_layout.c) ---------------------------------


def test_block_man_page_example():
    """srun(1): three nodes of two CPUs, four tasks, block: 1 and 2 on the first node,
    3 on the second, 4 on the third."""
    assert layout_tasks("block", [2, 2, 2], 4) == [[0, 1], [2], [3]]


def test_cyclic_man_page_example():
    """srun(1): same allocation, cyclic: tasks one and four on the first node."""
    assert layout_tasks("cyclic", [2, 2, 2], 4) == [[0, 3], [1], [2]]


def test_plane_distributes_blocks_of_plane_size():
    """dist_plane.html: plane=2 over two nodes: 0,1 | 2,3 | 4,5 | 6,7 round robin."""
    assert layout_tasks("plane", [4, 4], 8, 2) == [[0, 1, 4, 5], [2, 3, 6, 7]]


def test_block_over_subscribes_evenly_past_capacity():
    assert layout_tasks("block", [2, 2], 6) == [[0, 1, 2], [3, 4, 5]]
    assert layout_tasks("cyclic", [1, 1], 4) == [[0, 2], [1, 3]]


def test_arbitrary_follows_the_node_list_task_by_task():
    """srun(1) -m arbitrary: task i runs on the i-th host of -w; nodes sorted unique."""
    got = plan(["n1", "n2"], 4, {}, StepRequest(ntasks=3, distribution="arbitrary", nodelist=("n2", "n1", "n2")))
    assert got == StepLayout(("n1", "n2"), ((1,), (0, 2)), (4, 4))


def test_node_distribution_takes_the_node_level_part():
    assert node_distribution("cyclic:block,Pack") == "cyclic"
    assert node_distribution("*") == node_distribution(None) == "block"
    assert node_distribution("plane=4") == "plane"


def test_compressed_counts_and_ranges():
    """SLURM_TASKS_PER_NODE 2(x2),1 and srun's task lists 0-3 / 0,2,5-6."""
    assert compress_counts([2, 2, 1]) == "2(x2),1"
    assert ranges([0, 1, 2, 3]) == "0-3"
    assert ranges([6, 0, 2, 5]) == "0,2,5-6"


# --- node pick and CPUs held --------------------------------------------------------------


def test_n_tasks_on_n_nodes_block():
    got = plan(["n1", "n2"], 2, {}, StepRequest(ntasks=4, min_nodes=2))
    assert got == StepLayout(("n1", "n2"), ((0, 1), (2, 3)), (2, 2))


def test_without_n_as_few_nodes_as_the_tasks_need():
    assert plan(["n1", "n2"], 4, {}, StepRequest(ntasks=3)).nodes == ("n1",)
    assert plan(["n1", "n2"], 2, {}, StepRequest(ntasks=3)).nodes == ("n1", "n2")


def test_default_step_holds_every_free_cpu_exact_only_its_own():
    """srun(1) --exact: by default all resources on each node of the step are used."""
    assert plan(["n1"], 4, {}, StepRequest(ntasks=1)).cpus == (4,)
    assert plan(["n1"], 4, {}, StepRequest(ntasks=1, exact=True)).cpus == (1,)
    assert plan(["n1"], 4, {}, StepRequest(ntasks=1, cpus_per_task=2, exact=True)).cpus == (2,)


def test_a_second_default_step_is_busy_an_exact_or_overlap_one_is_not():
    """srun(1) --exact NOTE: parallel steps are blocked until resources are available,
    unless --overlap."""
    held = {"n1": 4}
    assert plan(["n1"], 4, held, StepRequest(ntasks=1)) == NODES_BUSY
    assert plan(["n1"], 4, {"n1": 1}, StepRequest(ntasks=1, exact=True)).cpus == (1,)
    overlap = plan(["n1"], 4, held, StepRequest(ntasks=2, overlap=True))
    assert isinstance(overlap, StepLayout) and overlap.overlap


def test_busy_node_is_skipped_for_a_free_one():
    got = plan(["n1", "n2"], 4, {"n1": 4}, StepRequest(ntasks=2))
    assert got.nodes == ("n2",)


@pytest.mark.parametrize(("req", "code"), [
    (StepRequest(ntasks=9), "too_many_cpus"),
    (StepRequest(ntasks=2, min_nodes=3), "node_config"),
    (StepRequest(ntasks=1, nodelist=("n9",)), "node_config"),
    (StepRequest(ntasks=2, distribution="arbitrary", nodelist=("n1",)), "bad_task_count"),
    (StepRequest(ntasks=1, min_nodes=2), "bad_task_count"),
])
def test_steps_that_can_never_fit_are_refused_not_busy(req, code):
    got = plan(["n1", "n2"], 4, {}, req)
    assert isinstance(got, StepRefusal) and got.code == code and not got.busy


def test_exclude_and_relative():
    assert plan(["n1", "n2", "n3"], 1, {}, StepRequest(ntasks=1, exclude=("n1",))).nodes == ("n2",)
    assert plan(["n1", "n2", "n3"], 1, {}, StepRequest(ntasks=2, relative=1)).nodes == ("n2", "n3")


def test_ntasks_per_node_caps_each_node():
    got = plan(["n1", "n2"], 8, {}, StepRequest(ntasks=4, min_nodes=2, ntasks_per_node=2))
    assert got.tasks == ((0, 1), (2, 3))


def test_overcommit_runs_more_tasks_than_cpus():
    """srun(1) -O/--overcommit: more tasks than CPUs; they spread over the nodes asked for
    as the distribution lays them out, holding the CPUs there, never more than are free."""
    assert plan(["n1"], 1, {}, StepRequest(ntasks=4)).code == "too_many_cpus"
    got = plan(["n1"], 1, {}, StepRequest(ntasks=4, overcommit=True))
    assert got == StepLayout(("n1",), ((0, 1, 2, 3),), (1,))
    got = plan(["n1", "n2"], 2, {}, StepRequest(ntasks=6, min_nodes=2, overcommit=True, exact=True))
    assert got.tasks == ((0, 1, 2), (3, 4, 5)) and got.cpus == (2, 2)
    assert plan(["n1", "n2"], 2, {"n1": 2}, StepRequest(ntasks=5, overcommit=True)).nodes == ("n2",)
    assert plan(["n1"], 2, {"n1": 2}, StepRequest(ntasks=5, overcommit=True)) == NODES_BUSY  # no free CPU


def test_job_overcommit_and_mincpus_shape_the_allocation():
    """sbatch -O: -c CPUs per node, as if one task ran there (not with --exclusive);
    --mincpus: at least that many CPUs per node."""
    from spurcore.ops import JobSpec
    from spurcore.resources import job_need

    def need(**kw) -> int:
        return job_need(JobSpec(name="j", user="u", uid=0, gid=0, script=None, argv=("true",), env={}, cwd="/",
                                **kw)).cpus

    assert need(ntasks=8, options={"overcommit": ""}) == 1
    assert need(ntasks=8, cpus_per_task=2, options={"overcommit": ""}) == 2
    assert need(ntasks=8, exclusive=True, options={"overcommit": ""}) == 8
    assert need(ntasks=1, options={"mincpus": "3"}) == 3
    assert need(ntasks=4, options={"mincpus": "3"}) == 4
    assert need(ntasks=8) == 8


# --- the reducer ------------------------------------------------------------------------------


def _running(nodes=("n1", "n2"), cpus=4, ntasks=4) -> ClusterState:
    st = ClusterState()
    for n in nodes:
        apply(st, NodeRegistered(n, cpus, 1000, f"unix:/{n}", 1.0))
    spec = JobSpec("j", "u", 1000, 100, "#!/bin/sh\n", (), {}, "/", nodes=len(nodes), ntasks=ntasks)
    assert apply(st, JobSubmitted("r", spec, 2.0)) == 1
    assert apply(st, JobStart(1, tuple(nodes), cpus, 0, 3.0)) is None
    return st


def _created(layout: StepLayout, rid: str = "s", at: float = 4.0) -> StepCreated:
    counts = layout.task_counts
    ids = tuple(t for ts in layout.tasks for t in ts)
    return StepCreated(rid, 1, "a.out", ("a.out",), layout.ntasks, "", 1000, at, layout.nodes, counts, ids,
                       layout.cpus, layout.overlap, 1, "block")


def test_multi_node_step_ends_when_every_node_reported():
    """stepmgr.c _step_partial_comp: the step completes once all its nodes reported; its
    status is the highest raw status; DerivedExitCode follows."""
    st = _running()
    layout = plan(["n1", "n2"], 4, {}, StepRequest(ntasks=4, min_nodes=2))
    assert apply(st, _created(layout)) == 0
    job = st.jobs[1]
    assert job.step_cpus == {"n1": 4, "n2": 4}
    assert apply(st, JobStepComplete(1, 0, "n1", 0, 0, False, 5.0)) is None
    assert job.steps[0].state == "RUNNING" and job.derived_ec == 0
    assert apply(st, JobStepComplete(1, 0, "n1", 0, 0, False, 5.0)) is None  # duplicate
    assert apply(st, JobStepComplete(1, 0, "n2", 3, 0, False, 6.0, {"ntasks": 2, "max_rss": 10})) is None
    step = job.steps[0]
    assert (step.state, step.exit_status, step.end_time) == ("FAILED", exitcodes.raw_status(3, 0), 6.0)
    assert job.derived_ec == exitcodes.raw_status(3, 0)
    assert job.step_cpus == {}
    info = job_info(job, st, 7.0)["steps"][1]
    assert (info["nodes"], info["tasks"], info["tasks_per_node"], info["cpus"]) == ("n[1-2]", [[0, 1], [2, 3]],
                                                                                 "2(x2)", 8)
    assert info["usage"]["max_rss"] == 10 and info["usage"]["max_rss_node"] == "n2"


def test_a_step_reported_after_the_batch_script_still_counts():
    """The batch script ends before the srun step on its host has reported (its supervisor
    still writing the status): the job stays COMPLETING, the node is terminated like any
    other, the step's report sets DerivedExitCode, and the KILL's ACK (sent after the
    reports it caused) ends the job. The leader does not count on the batch report to
    free the node meanwhile."""
    from spurcore.model import JobState
    from spurcore.ops import ActionAcked, ActionKind, JobNodeComplete
    from spurcore.reduce import report_frees

    st = _running(nodes=("n1",), cpus=4, ntasks=1)
    assert apply(st, _created(plan(["n1"], 4, {}, StepRequest(ntasks=1)))) == 0
    job = st.jobs[1]
    assert not report_frees(st, 1, "n1")
    assert apply(st, JobNodeComplete(1, "n1", 0, 0, False, 5.0)) is None
    assert job.state is JobState.COMPLETED and job.completing and job.undone == {"n1"}
    (action_id, record), = st.actions.items()
    assert record.kind == ActionKind.KILL and record.pending == {"n1"}
    assert apply(st, JobStepComplete(1, 0, "n1", 0, 11, False, 5.1)) is None
    assert job.derived_ec == exitcodes.raw_status(0, 11) and job.steps[0].state == "CANCELLED"
    assert job.completing
    assert apply(st, ActionAcked(action_id, "n1", 0, 0, 5.2)) is None
    assert not job.completing and not job.undone and st.nodes["n1"].alloc_cpus == 0


def test_without_a_step_waiting_the_batch_report_frees_the_node_at_once():
    from spurcore.ops import JobNodeComplete
    from spurcore.reduce import report_frees

    st = _running(nodes=("n1",), cpus=4, ntasks=1)
    assert apply(st, _created(plan(["n1"], 4, {}, StepRequest(ntasks=1)))) == 0
    assert apply(st, JobStepComplete(1, 0, "n1", 0, 0, False, 4.5)) is None
    assert report_frees(st, 1, "n1")
    assert apply(st, JobNodeComplete(1, "n1", 0, 0, False, 5.0)) is None
    job = st.jobs[1]
    assert not job.completing and not job.undone and not st.actions


def test_a_signalled_node_outranks_a_small_exit_code():
    st = _running()
    assert apply(st, _created(plan(["n1", "n2"], 4, {}, StepRequest(ntasks=2, min_nodes=2)))) == 0
    apply(st, JobStepComplete(1, 0, "n2", 0, 9, False, 5.0))
    apply(st, JobStepComplete(1, 0, "n1", 1, 0, False, 6.0))
    step = st.jobs[1].steps[0]
    assert step.exit_status == exitcodes.raw_status(1, 0) and step.state == "FAILED"


def test_oom_on_one_node_makes_the_step_out_of_memory():
    st = _running()
    apply(st, _created(plan(["n1", "n2"], 4, {}, StepRequest(ntasks=2, min_nodes=2))))
    apply(st, JobStepComplete(1, 0, "n1", 0, 9, True, 5.0))
    apply(st, JobStepComplete(1, 0, "n2", 0, 0, False, 6.0))
    assert st.jobs[1].steps[0].state == "OUT_OF_MEMORY" and st.jobs[1].derived_ec == exitcodes.SIG_OOM


def test_busy_step_is_rejected_and_fits_after_the_first_ends():
    st = _running(nodes=("n1",))
    assert apply(st, _created(plan(["n1"], 4, {}, StepRequest(ntasks=1)), "a")) == 0
    again = apply(st, _created(plan(["n1"], 4, {}, StepRequest(ntasks=1)), "b"))
    assert isinstance(again, Rejected) and again.code == "nodes_busy"
    apply(st, JobStepComplete(1, 0, "n1", 0, 0, False, 5.0))
    assert apply(st, _created(plan(["n1"], 4, {}, StepRequest(ntasks=1)), "b")) == 1


def test_report_from_a_node_outside_the_step_is_rejected():
    st = _running()
    apply(st, _created(plan(["n1", "n2"], 4, {}, StepRequest(ntasks=1))))
    got = apply(st, JobStepComplete(1, 0, "n2", 0, 0, False, 5.0))
    assert isinstance(got, Rejected) and got.code == "bad_node"


def test_node_failure_ends_the_step_node_fail_and_frees_its_cpus():
    st = _running()
    apply(st, _created(plan(["n1", "n2"], 4, {}, StepRequest(ntasks=2, min_nodes=2))))
    apply(st, NodeDown("n2", "Not responding", 5.0))
    assert st.jobs[1].steps[0].state == "NODE_FAIL" and st.jobs[1].step_cpus == {}


def test_version_1_step_runs_every_task_on_the_batch_host_holding_nothing():
    st = _running()
    assert apply(st, StepCreated("s", 1, "x", ("x",), 3, "", 1000, 4.0)) == 0
    step = st.jobs[1].steps[0]
    assert step.nodes == ("n1",) and step.task_ids == ((0, 1, 2),) and st.jobs[1].step_cpus == {}
    apply(st, JobStepComplete(1, 0, "n1", 2, 0, False, 5.0))
    assert step.state == "FAILED"


def test_snapshot_round_trip_and_version_2_upcast():
    st = _running()
    apply(st, _created(plan(["n1", "n2"], 4, {}, StepRequest(ntasks=4, min_nodes=2))))
    apply(st, JobStepComplete(1, 0, "n1", 0, 0, False, 5.0, {"ntasks": 2, "user_cpu": 1.5}))
    assert decode_state(encode_state(st)) == st
    # Written by the code before step layouts: job 1 on node1 with steps 0 (3:0) and 1 (running).
    old = decode_state((GOLDEN / "snapshot-v2.bin").read_bytes())
    job = old.jobs[1]
    assert job.step_cpus == {} and job.steps[1].task_ids == ((0, 1),) and job.steps[1].cpus == ()
    assert job.steps[0].state == "FAILED" and job.steps[0].node_status == {}
    apply(old, JobStepComplete(1, 1, "node1", 0, 0, False, 9.0))
    assert job.steps[1].state == "COMPLETED"
    assert decode_state(encode_state(old)) == old


# --- usage --------------------------------------------------------------------------------


def test_usage_combines_nodes_like_jobacctinfo_aggregate():
    got = combine([
        ("n1", {"ntasks": 2, "user_cpu": 1.0, "sys_cpu": 0.5, "max_rss": 100, "max_rss_task": 1,
                "ave_rss_sum": 150, "min_cpu": 0.7, "min_cpu_task": 0}),
        ("n2", {"ntasks": 2, "user_cpu": 2.0, "sys_cpu": 0.5, "max_rss": 300, "max_rss_task": 3,
                "ave_rss_sum": 250, "min_cpu": 0.2, "min_cpu_task": 2}),
    ])
    assert (got["max_rss"], got["max_rss_node"], got["max_rss_task"]) == (300, "n2", 3)
    assert got["ave_rss"] == 100 and got["total_cpu"] == 4.0 and got["ave_cpu"] == 1.0
    assert (got["min_cpu"], got["min_cpu_node"], got["min_cpu_task"]) == (0.2, "n2", 2)
    assert combine([]) == {}


def test_usage_formats_as_sacct_prints_them():
    """sacct: convert_num_unit(EXACT) for memory, _elapsed_time for CPU times."""
    assert fmt_size(210309120) == "205380K"
    assert fmt_size(2 * 1024 ** 3) == "2G"
    assert fmt_size(0) == "0"
    assert fmt_cpu(1.234) == "00:01.234"
    assert fmt_cpu(1.234, subsec=False) == "00:00:01"
    assert fmt_cpu(3725) == "01:02:05"
    assert fmt_cpu(90000) == "1-01:00:00"
