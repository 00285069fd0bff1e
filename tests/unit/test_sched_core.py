"""The scheduler in the pure core: configuration, partitions, node states, placement,
priority, backfill, GRES and accounting limits, each rule as Slurm 25.11 states it.

Every scenario builds a state from slurm.conf text (``spurcore.slurmconf``) through the
reducer, as a replica does, and runs leader passes (``schedule`` then ``apply``).
"""

from __future__ import annotations

import attrs
import pytest

from spurcore.model import ClusterState, JobState
from spurcore.ops import (
    AccountingUpdated,
    ActionAcked,
    ClusterConfigured,
    JobNodeComplete,
    JobSpec,
    JobStart,
    JobSubmitted,
    JobUpdated,
    NodeDown,
    NodeRegistered,
    NodeStateUpdated,
    PartitionUpdated,
)
from spurcore.reduce import INVALID_TRANSITION, Rejected, apply
from spurcore.scheduler import plan, schedule
from spurcore.slurmconf import parse
from spurcore.snapshot import decode_state, encode_state
from spurcore.views import job_info, launch_info, node_info, partition_info

SPEC = JobSpec("j", "alice", 1000, 100, "#!/bin/sh\ntrue\n", (), {}, "/home/alice")
T0 = 1_000_000.0

BASIC = """
NodeName=n[1-2] CPUs=4 RealMemory=4000
NodeName=g1 CPUs=8 RealMemory=8000 Gres=gpu:2 Features=gpu,fast
PartitionName=batch Nodes=n[1-2] Default=YES MaxTime=60 DefaultTime=10
PartitionName=gpu Nodes=g1 MaxTime=INFINITE
"""


def configured(text: str = BASIC, *, register: bool = True, at: float = T0 - 100, **settings) -> ClusterState:
    conf = parse([("slurm.conf", text)])
    state = ClusterState()
    merged = dict(conf.settings, **settings)
    assert apply(state, ClusterConfigured(conf.digest, tuple(conf.nodes), tuple(conf.partitions), merged, at)) is None
    if register:
        for node in conf.nodes:
            assert apply(state, NodeRegistered(node["name"], node["cpus"], node["real_memory"], "", at)) is None
    return state


def submit(state: ClusterState, at: float = T0, **fields) -> int:
    result = apply(state, JobSubmitted("", attrs.evolve(SPEC, **fields), at))
    assert isinstance(result, int), result
    return result


def refused(state: ClusterState, **fields) -> Rejected:
    result = apply(state, JobSubmitted("", attrs.evolve(SPEC, **fields), T0))
    assert isinstance(result, Rejected), result
    return result


def run_pass(state: ClusterState, now: float = T0) -> list[int]:
    started = []
    for start in schedule(state, now):
        result = apply(state, start)
        assert not isinstance(result, Rejected), result
        started.append(result if start.array_task_id >= 0 else start.job_id)
    return started


def reasons(state: ClusterState, now: float = T0) -> dict[int, str]:
    return plan(state, now).reasons


def finish(state: ClusterState, job_id: int, at: float) -> None:
    """The batch script ends; the other nodes ACK their terminate (the job leaves COMPLETING)."""
    job = state.jobs[job_id]
    assert apply(state, JobNodeComplete(job_id, job.batch_host, 0, 0, False, at)) is None
    for action in list(state.actions.values()):
        if action.job_id == job_id:
            for node in sorted(action.pending):
                apply(state, ActionAcked(action.action_id, node, 0, 0, at))
    assert not job.completing


# --- configuration and registration --------------------------------------------------------


def test_configured_nodes_are_unknown_until_their_agent_registers():
    state = configured(register=False)
    assert [node_info(state, n)["state"] for n in ("n1", "n2", "g1")] == ["UNKNOWN"] * 3
    assert apply(state, NodeRegistered("n1", 4, 4000, "unix:/a", T0)) is None
    info = node_info(state, "n1")
    assert (info["state"], info["partitions"], info["configured"]) == ("IDLE", ["batch"], True)


def test_an_agent_may_register_only_as_a_configured_node():
    state = configured()
    for name in ("[True]", "{'nodes': None}", "n3"):
        result = apply(state, NodeRegistered(name, 4, 4000, "", T0))
        assert isinstance(result, Rejected) and result.message.startswith("Invalid node name specified")
    assert sorted(state.nodes) == ["g1", "n1", "n2"]


def test_fewer_resources_than_configured_drain_the_node_with_slurms_reasons():
    """Slurm node_mgr.c: "Low CPUs", "Low RealMemory (reported:R < 100.00% of configured:C)"."""
    state = configured(register=False)
    apply(state, NodeRegistered("n1", 2, 4000, "", T0))
    apply(state, NodeRegistered("n2", 4, 1000, "", T0))
    apply(state, NodeRegistered("g1", 16, 16000, "", T0))  # more than configured: fine
    assert (node_info(state, "n1")["state"], state.nodes["n1"].reason) == ("DRAINED", "Low CPUs")
    assert state.nodes["n2"].reason == "Low RealMemory (reported:1000 < 100.00% of configured:4000)"
    assert node_info(state, "g1")["state"] == "IDLE" and state.nodes["g1"].cpus == 8  # scheduled as configured
    job = submit(state, ntasks=1)
    assert run_pass(state) == [] and reasons(state)[job] == "Resources"
    # fixed and registered again: the controller's own drain goes away
    apply(state, NodeRegistered("n1", 4, 4000, "", T0 + 1))
    assert node_info(state, "n1")["state"] == "IDLE"


def test_reconfigure_retires_idle_nodes_and_keeps_busy_ones_drained():
    state = configured()
    job = submit(state, nodelist="n2")
    assert run_pass(state) == [job]
    smaller = parse([("slurm.conf", "NodeName=n1 CPUs=4 RealMemory=4000\nPartitionName=batch Nodes=n1 Default=YES")])
    op = ClusterConfigured(smaller.digest, tuple(smaller.nodes), tuple(smaller.partitions), smaller.settings, T0)
    assert apply(state, op) is None
    assert sorted(state.nodes) == ["n1", "n2"] and state.nodes["n2"].drain
    assert state.nodes["n2"].reason == "Node removed from the configuration"
    assert list(state.partitions) == ["batch"] and state.config_digest == smaller.digest


# --- partitions ----------------------------------------------------------------------------


def test_unknown_partition_is_refused_with_slurms_message():
    state = configured()
    assert refused(state, partition="nope").message == "Invalid partition name specified"
    assert refused(state, partition="batch,nope").message == "Invalid partition name specified"


def test_default_partition_and_default_time():
    state = configured()
    job = submit(state)
    assert (state.jobs[job].partition_list, state.jobs[job].spec.time_limit) == ("batch", 600)
    assert job_info(state.jobs[job], state, T0)["partition"] == "batch"
    apply(state, PartitionUpdated("gpu", {"default": True}, 0, T0))  # the job keeps its partition
    assert state.jobs[job].partition_list == "batch" and run_pass(state) == [job]
    gpu_job = submit(state, partition="gpu")
    assert state.jobs[gpu_job].spec.time_limit is None  # MaxTime=INFINITE, no DefaultTime


def test_a_job_runs_in_the_first_of_its_partitions_that_can_start_it():
    state = configured()
    blocker = submit(state, ntasks=8, nodes=2, time_limit=600)
    assert run_pass(state) == [blocker]
    job = submit(state, partition="batch,gpu", time_limit=600)
    assert run_pass(state) == [job]
    assert state.jobs[job].partition == "gpu" and job_info(state.jobs[job], state, T0)["partition"] == "gpu"


@pytest.mark.parametrize(
    ("change", "fields", "reason"),
    [
        ({"state": "DOWN"}, {}, "PartitionDown"),
        ({"state": "INACTIVE"}, {}, "PartitionInactive"),
        ({"max_time": 300}, {"time_limit": 600}, "PartitionTimeLimit"),
        ({"max_nodes": 1}, {"nodes": 2, "ntasks": 2}, "PartitionNodeLimit"),
        ({"min_nodes": 2}, {}, "PartitionNodeLimit"),
    ],
)
def test_partition_limits_give_slurms_pending_reasons(change, fields, reason):
    state = configured()
    job = submit(state, **fields)
    assert apply(state, PartitionUpdated("batch", change, 0, T0)) is None
    assert run_pass(state) == [] and reasons(state)[job] == reason


def test_a_drained_partition_refuses_submissions_but_runs_its_queue():
    state = configured()
    queued = submit(state)
    apply(state, PartitionUpdated("batch", {"state": "DRAIN"}, 0, T0))
    assert refused(state).message == "Required partition not available (inactive or drain)"
    assert run_pass(state) == [queued]


def test_allow_accounts_and_allow_groups():
    state = configured(BASIC.replace("MaxTime=INFINITE", "MaxTime=INFINITE AllowAccounts=phys"))
    msg = refused(state, partition="gpu", account="chem").message
    assert msg == "Invalid account or account/partition combination specified"
    submit(state, partition="gpu", account="phys")
    apply(state, PartitionUpdated("batch", {"allow_groups": ["staff"], "allow_uids": [1001], "allow_gids": []}, 0, T0))
    assert refused(state).message == "User's group not permitted to use this partition"
    submit(state, uid=1001, user="bob")


# --- node states ---------------------------------------------------------------------------


def test_resume_and_idle_transitions_as_node_mgr():
    state = configured()
    job = submit(state, nodelist="n1", time_limit=600)
    assert run_pass(state) == [job]
    # RESUME needs DOWN, DRAIN or FAIL; IDLE needs DOWN or no jobs; all nodes or none
    assert apply(state, NodeStateUpdated(("n2",), "RESUME", "", 0, T0)) == INVALID_TRANSITION
    assert apply(state, NodeStateUpdated(("n1",), "IDLE", "", 0, T0)) == INVALID_TRANSITION
    assert apply(state, NodeStateUpdated(("n2", "n1"), "DRAIN", "x", 0, T0)) is None
    assert apply(state, NodeStateUpdated(("n2", "n1"), "IDLE", "", 0, T0)) == INVALID_TRANSITION
    assert state.nodes["n2"].drain and state.nodes["n1"].drain
    assert apply(state, NodeStateUpdated(("n2",), "IDLE", "", 0, T0)) is None
    assert node_info(state, "n2")["state"] == "IDLE" and state.nodes["n2"].reason == ""
    # no state: the reason alone, the state unchanged
    assert apply(state, NodeStateUpdated(("n2",), "", "", 0, T0)).code == "no_changes"
    assert apply(state, NodeStateUpdated(("n2",), "", "cable", 7, T0 + 1)) is None
    assert node_info(state, "n2")["state"] == "IDLE"
    assert (state.nodes["n2"].reason, state.nodes["n2"].reason_uid) == ("cable", 7)


def test_drain_resume_down_and_fail():
    state = configured()
    job = submit(state, nodelist="n1", time_limit=600)
    assert run_pass(state) == [job]
    assert apply(state, NodeStateUpdated(("n1",), "DRAIN", "", 0, T0)).code == "reason_required"
    assert apply(state, NodeStateUpdated(("n1", "n2"), "DRAIN", "disk swap", 0, T0)) is None
    assert [node_info(state, n)["state"] for n in ("n1", "n2")] == ["DRAINING", "DRAINED"]
    other = submit(state)
    assert run_pass(state) == [] and reasons(state)[other] == "Resources"
    finish(state, job, T0 + 5)
    assert node_info(state, "n1")["state"] == "DRAINED" and state.nodes["n1"].reason == "disk swap"
    assert apply(state, NodeStateUpdated(("n1", "n2"), "RESUME", "", 0, T0 + 6)) is None
    assert node_info(state, "n1")["state"] == "IDLE" and state.nodes["n1"].reason == ""
    assert run_pass(state, T0 + 6) == [other]
    apply(state, NodeStateUpdated(("n2",), "FAIL", "bad dimm", 0, T0 + 7))
    assert node_info(state, "n2")["state"] == "FAIL"
    # DOWN ends what runs there (NODE_FAIL), as Slurm does
    running_on = state.jobs[other].nodes[0]
    assert apply(state, NodeStateUpdated((running_on,), "DOWN", "maintenance", 0, T0 + 8)) is None
    assert state.jobs[other].state is JobState.NODE_FAIL and node_info(state, running_on)["state"] == "DOWN"
    assert apply(state, NodeStateUpdated(("zz9",), "DRAIN", "x", 0, T0)).code == "invalid_node"


def test_a_drained_node_that_stops_responding_keeps_its_reason():
    state = configured()
    apply(state, NodeStateUpdated(("n1",), "DRAIN", "bios update", 0, T0))
    apply(state, NodeDown("n1", "Not responding", T0 + 1))
    info = node_info(state, "n1")
    assert (info["state"], info["reason"], info["not_responding"]) == ("DOWN", "bios update", True)
    apply(state, NodeRegistered("n1", 4, 4000, "", T0 + 2))
    assert (node_info(state, "n1")["state"], state.nodes["n1"].reason) == ("DRAINED", "bios update")


# --- placement -----------------------------------------------------------------------------


def test_weight_orders_placement_and_features_constrain_it():
    text = """
NodeName=a1 CPUs=2 RealMemory=1000 Weight=50 Features=ib
NodeName=a2 CPUs=2 RealMemory=1000 Weight=10
NodeName=a3 CPUs=2 RealMemory=1000 Weight=10 Features=ib,big
PartitionName=p Nodes=ALL Default=YES
"""
    state = configured(text)
    first = submit(state, time_limit=60)
    second = submit(state, time_limit=60, constraint="ib")
    third = submit(state, time_limit=60, constraint="big&ib|big")
    assert run_pass(state) == [first, second, third]
    assert [state.jobs[j].nodes for j in (first, second, third)] == [("a2",), ("a3",), ("a3",)]
    assert refused(state, constraint="a*2").message == "Invalid feature specification"
    assert refused(state, constraint="gpu").message == "Invalid feature specification"
    never = submit(state, constraint="big", time_limit=60)
    smaller = parse([("slurm.conf", text.replace(",big", ""))])
    apply(state, ClusterConfigured(smaller.digest, tuple(smaller.nodes), tuple(smaller.partitions),
                                   smaller.settings, T0))
    assert run_pass(state) == [] and reasons(state)[never] == "BadConstraints"


def test_required_excluded_and_exclusive_nodes():
    state = configured()
    on_n2 = submit(state, nodelist="n2", time_limit=60)
    not_n1 = submit(state, exclude="n1", time_limit=60)
    assert run_pass(state) == [on_n2, not_n1]
    assert state.jobs[not_n1].nodes == ("n2",)
    whole = submit(state, exclusive="exclusive", time_limit=60)
    assert run_pass(state) == [whole] and state.jobs[whole].nodes == ("n1",)
    assert state.jobs[whole].cpus_per_node == 4
    apply(state, NodeStateUpdated(("n1",), "DRAIN", "x", 0, T0))
    pinned = submit(state, nodelist="n1", time_limit=60)
    assert reasons(state)[pinned].startswith("ReqNodeNotAvail, UnavailableNodes:n1")


# --- priority ------------------------------------------------------------------------------


def test_all_weights_zero_is_fifo_by_job_id():
    state = configured()
    ids = [submit(state, ntasks=4, time_limit=600, nice=n) for n in (0, 100, 0)]
    assert run_pass(state) == ids[:2]
    assert {job_info(state.jobs[j], state, T0)["priority"] for j in ids} == {1}


def test_multifactor_orders_by_age_job_size_partition_and_nice():
    text = BASIC + "PartitionName=high Nodes=n[1-2] PriorityJobFactor=10 MaxTime=60\n"
    state = configured(text, priority_weight_age=1000, priority_weight_partition=10000,
                       priority_weight_job_size=100)
    apply(state, JobSubmitted("", attrs.evolve(SPEC, ntasks=8, nodes=2, time_limit=600), T0))  # fills both
    assert len(run_pass(state)) == 1
    old = submit(state, at=T0 - 7 * 86400, time_limit=600)  # age 1.0
    young = submit(state, time_limit=600)
    favoured = submit(state, partition="high", time_limit=600)
    niced = submit(state, partition="high", time_limit=600, nice=5000)
    prios = {j: job_info(state.jobs[j], state, T0 + 1)["priority"] for j in (old, young, favoured, niced)}
    # partition factor 10000 * (1/10 or 10/10), age up to 1000, size tiny, nice subtracted
    assert prios[favoured] > prios[niced] > prios[old] > prios[young]
    assert prios[favoured] - prios[niced] == 5000


def test_partition_priority_tier_comes_before_priority():
    text = BASIC + "PartitionName=urgent Nodes=n[1-2] PriorityTier=5 MaxTime=60\n"
    state = configured(text, priority_weight_age=1000)
    busy = submit(state, ntasks=8, nodes=2, time_limit=600)
    assert run_pass(state) == [busy]
    old = submit(state, at=T0 - 86400 * 7, time_limit=60, ntasks=4)
    tier = submit(state, partition="urgent", time_limit=60, ntasks=4)
    finish(state, busy, T0 + 10)
    assert run_pass(state, T0 + 10) == [tier, old]


def test_admin_priority_and_nice_updates():
    state = configured()
    busy = submit(state, ntasks=8, nodes=2, time_limit=600)
    run_pass(state)
    a, b = submit(state, ntasks=4, time_limit=60), submit(state, ntasks=4, time_limit=60)
    user_raise = apply(state, JobUpdated(b, 1000, False, {"Priority": 100}, T0))
    assert isinstance(user_raise, Rejected) and user_raise.message == "Access/permission denied"
    assert apply(state, JobUpdated(b, 0, True, {"Priority": 100}, T0)) is None
    assert job_info(state.jobs[b], state, T0)["priority"] == 100
    finish(state, busy, T0 + 1)
    assert run_pass(state, T0 + 1)[0] == b
    assert isinstance(apply(state, JobUpdated(a, 1000, False, {"Nice": -5}, T0)), Rejected)


def test_fair_share_favours_the_user_with_less_recorded_usage():
    state = configured(priority_weight_fairshare=10000, priority_calc_period=60)
    for user, uid, secs in (("heavy", 2000, 3600), ("light", 2001, 60)):
        job = submit(state, user=user, uid=uid, ntasks=4, nodelist="n1", time_limit=3600)
        assert run_pass(state) == [job]
        finish(state, job, T0 + secs)
    now = T0 + 7200  # a later priority period: the charges count
    blocker = submit(state, ntasks=8, nodes=2, time_limit=600, at=now)
    assert run_pass(state, now) == [blocker]
    heavy = submit(state, user="heavy", uid=2000, time_limit=60, at=now)
    light = submit(state, user="light", uid=2001, time_limit=60, at=now)
    prios = {j: job_info(state.jobs[j], state, now)["priority"] for j in (heavy, light)}
    assert prios[light] > prios[heavy]
    finish(state, blocker, now + 1)
    assert run_pass(state, now + 1)[0] == light


# --- backfill ------------------------------------------------------------------------------


def test_backfill_starts_a_job_that_ends_before_the_reservation_and_only_that():
    """Slurm sched/backfill: the blocked wide job gets a reservation at the end of the running
    job's time limit; a lower-priority job starts only if it delays no reservation."""
    state = configured()
    running = submit(state, ntasks=4, nodelist="n1", time_limit=3600)
    assert run_pass(state) == [running]
    wide = submit(state, ntasks=8, nodes=2, time_limit=1800)
    short = submit(state, ntasks=4, time_limit=600)  # ends before the wide job's start: backfills
    long = submit(state, ntasks=4, time_limit=2 * 3600)  # MaxTime=60: PartitionTimeLimit (not here)
    apply(state, PartitionUpdated("batch", {"max_time": None}, 0, T0))
    p = plan(state, T0)
    assert [s.job_id for s in p.starts] == [short]
    assert (p.reasons[wide], p.reasons[long]) == ("Resources", "Priority")
    start, nodes = p.planned[wide]
    assert start == T0 + 3600 and nodes == ("n1", "n2")
    info = job_info(state.jobs[wide], state, T0, p.reasons[wide])
    assert (info["start_time"], info["sched_nodes"]) == (T0 + 3600, "n[1-2]")


def test_builtin_scheduler_is_strict_fifo_per_partition():
    state = configured(scheduler_type="sched/builtin")
    running = submit(state, ntasks=4, nodelist="n1", time_limit=3600)
    run_pass(state)
    wide = submit(state, ntasks=8, nodes=2, time_limit=1800)
    short = submit(state, ntasks=4, time_limit=600)
    gpu = submit(state, partition="gpu")  # another partition is not blocked
    assert run_pass(state) == [gpu]
    assert (reasons(state)[wide], reasons(state)[short]) == ("Resources", "Priority")
    assert running in state.jobs


def test_jobs_without_time_limit_never_backfill_in_front_of_a_reservation():
    state = configured(BASIC.replace("MaxTime=60 DefaultTime=10", "MaxTime=INFINITE"))
    running = submit(state, ntasks=4, nodelist="n1", time_limit=3600)
    run_pass(state)
    wide = submit(state, ntasks=8, nodes=2, time_limit=1800)
    forever = submit(state, ntasks=4)  # no limit: would delay the wide job forever
    assert run_pass(state) == []
    assert reasons(state)[forever] == "Priority" and reasons(state)[wide] == "Resources"
    assert running in state.jobs


# --- GRES ----------------------------------------------------------------------------------


def test_gpus_are_allocated_by_index_and_given_to_the_agent():
    state = configured()
    one = submit(state, partition="gpu", gpus="1", time_limit=60)
    two = submit(state, partition="gpu", gres="gpu:1", cpus_per_gpu=2, time_limit=60)
    more = submit(state, partition="gpu", gpus_per_node="1", time_limit=60)
    assert run_pass(state) == [one, two]
    assert [state.jobs[j].gres_alloc for j in (one, two)] == [{"g1": {"gpu": [0]}}, {"g1": {"gpu": [1]}}]
    assert state.jobs[two].cpus_per_node == 2
    assert reasons(state)[more] == "Resources"
    info = job_info(state.jobs[two], state, T0)
    assert info["alloc_tres"] == "cpu=2,node=1,billing=2,gres/gpu=1" and info["tres_per_node"] == "gres/gpu:1"
    assert launch_info(state.jobs[two], state, T0)["gres_alloc"] == {"g1": {"gpu": [1]}}
    node = node_info(state, "g1")
    assert (node["gres"], node["gres_used"], node["alloc_gpus"]) == ("gpu:2", "gpu:2(IDX:0-1)", 2)
    finish(state, one, T0 + 1)
    assert run_pass(state, T0 + 1) == [more] and state.jobs[more].gres_alloc == {"g1": {"gpu": [0]}}


def test_typed_gres_and_refusals():
    text = "NodeName=t1 CPUs=8 RealMemory=8000 Gres=gpu:a100:1,gpu:v100:2\nPartitionName=p Nodes=ALL Default=YES"
    state = configured(text)
    v = submit(state, gres="gpu:v100:2", time_limit=60)
    a = submit(state, gpus="a100:1", time_limit=60)
    assert run_pass(state) == [v, a]
    assert (state.jobs[v].gres_alloc, state.jobs[a].gres_alloc) == ({"t1": {"gpu": [1, 2]}}, {"t1": {"gpu": [0]}})
    assert refused(state, gres="gpu:h100:1").message == "Requested node configuration is not available"
    assert refused(state, gres="gpu:x:y:z").message == "Invalid generic resource (gres) specification"
    assert refused(state, gpus="4").message == "Requested node configuration is not available"
    lifted = submit(state, options={"gpus-per-node": "1", "mem-per-gpu": "1G"}, time_limit=60)
    assert (state.jobs[lifted].spec.gpus_per_node, state.jobs[lifted].spec.mem_per_gpu) == ("1", 1024)


# --- accounting ----------------------------------------------------------------------------


def acct(state: ClusterState, action: str, entity: str, names: tuple[str, ...], fields=None, where=None):
    return apply(state, AccountingUpdated(action, entity, names, where or {}, fields or {}, 0, T0))


def with_accounts(**settings) -> ClusterState:
    state = configured(enforce=["associations", "limits", "qos"], **settings)
    assert acct(state, "add", "account", ("phys", "chem")) == 2
    assert acct(state, "add", "user", ("alice",), {"Account": ["phys", "chem"], "DefaultAccount": "phys"}) == 3
    assert acct(state, "add", "qos", ("high",), {"Priority": 100}) == 1
    return state


def test_accounts_users_and_qos_are_replicated_records():
    state = with_accounts()
    assert sorted(state.accounts) == ["chem", "phys", "root"] and state.users["alice"].default_account == "phys"
    assert acct(state, "add", "account", ("phys",)).message == "Nothing new added."
    assert acct(state, "add", "account", ("x",), {"Parent": "nope"}).message == "Invalid parent account specified"
    assert acct(state, "modify", "user", ("alice",), {"MaxJobs": 2}, {"account": "chem"}) == 1
    assert state.assocs["chem|alice|"].limits == {"MaxJobs": 2} and state.assocs["phys|alice|"].limits == {}
    restored = decode_state(encode_state(state))
    assert restored == state


def test_enforced_associations_check_and_fill_the_account():
    state = with_accounts()
    job = submit(state)
    assert (state.jobs[job].spec.account, state.jobs[job].spec.qos) == ("phys", "normal")
    msg = "Invalid account or account/partition combination specified"
    assert refused(state, account="bio").message == msg
    assert refused(state, user="mallory", uid=3000).message == msg
    assert refused(state, qos="high").message == "Invalid qos specification"
    acct(state, "modify", "account", ("phys",), {"QOS": ["normal", "high"]})
    submit(state, qos="high")


def test_association_and_qos_limits_hold_jobs_with_slurms_reasons():
    state = with_accounts()
    acct(state, "modify", "user", ("alice",), {"MaxJobs": 1, "MaxSubmitJobs": 3}, {"account": "phys"})
    first, second = submit(state, time_limit=60), submit(state, time_limit=60)
    assert run_pass(state) == [first] and reasons(state)[second] == "AssocMaxJobsLimit"
    submit(state, time_limit=60)
    assert refused(state).message.startswith("Job violates accounting/QOS policy")
    chem = submit(state, account="chem", ntasks=4, time_limit=60)
    acct(state, "modify", "account", ("chem",), {"GrpTRES": {"cpu": 2}})
    assert reasons(state)[chem] == "AssocGrpCpuLimit"
    acct(state, "modify", "account", ("chem",), {"GrpTRES": {"cpu": None}, "MaxWall": 30})
    assert reasons(state)[chem] == "AssocMaxWallDurationPerJobLimit"
    acct(state, "modify", "account", ("chem",), {"MaxWall": None, "MaxTRESPerJob": {"cpu": 2}})
    assert reasons(state)[chem] == "AssocMaxCpuPerJobLimit"
    acct(state, "modify", "account", ("chem",), {"MaxTRESPerJob": {"cpu": None}, "QOS": ["normal", "high"]})
    acct(state, "modify", "qos", ("high",), {"MaxJobs": 0})
    assert apply(state, JobUpdated(chem, 0, True, {"QOS": "high"}, T0)) is None
    assert reasons(state)[chem] == "QOSMaxJobsPerUserLimit"
    assert acct(state, "delete", "account", ("phys",)).message == "Job(s) active, cancel job(s) before remove"


def test_the_state_with_everything_round_trips_through_a_snapshot():
    state = with_accounts(priority_weight_age=1000)
    j = submit(state, partition="gpu", gpus="2", time_limit=60)
    run_pass(state)
    finish(state, j, T0 + 100)
    apply(state, NodeStateUpdated(("n1",), "DRAIN", "x", 0, T0))
    restored = decode_state(encode_state(state))
    assert restored == state and restored.usage and restored.partitions["batch"].default_time == 600
    assert partition_info(restored) == partition_info(state)


def test_config_op_rejects_malformed_records_deterministically():
    state = ClusterState()
    bad = ClusterConfigured("x", ({"name": "n1", "cpus": "four", "real_memory": 1},), (), {}, T0)
    assert apply(state, bad).code == "bad_config" and state.rejected == 1 and not state.nodes
    bad = ClusterConfigured("x", (), ({"name": "p", "nodes": ["nx"]},), {}, T0)
    assert apply(state, bad).code == "bad_config"
    assert apply(state, ClusterConfigured("x", (), (), {"bogus": 1}, T0)).code == "bad_config"


def test_a_start_in_a_partition_the_job_did_not_ask_for_is_rejected():
    state = configured()
    job = submit(state, time_limit=60)
    assert apply(state, JobStart(job, ("g1",), 1, 0, T0, -1, "gpu")).message == "Requested nodes not in this partition"
    assert apply(state, JobStart(job, ("n1",), 1, 0, T0, -1, "")) is None  # version 2: inferred
    assert state.jobs[job].partition == "batch"


def test_a_configuration_without_nodes_lets_agents_name_themselves():
    """An older spur.toml names no node: agents register as before (a valid name, the
    resources they report) and stay across reconfigurations."""
    conf = parse([("slurm.conf", "PriorityWeightAge=10\n")])
    state = ClusterState()
    op = ClusterConfigured(conf.digest, (), tuple(conf.partitions), conf.settings, T0)
    assert apply(state, op) is None
    assert apply(state, NodeRegistered("anyname", 3, 1000, "", T0)) is None
    assert apply(state, op) is None and state.nodes["anyname"].cpus == 3
    job = submit(state, ntasks=3)
    assert run_pass(state) == [job] and state.jobs[job].partition == "debug"
