"""What the query tools show of the scheduler: node states and settings, partitions, GPUs,
priorities, expected starts (Slurm 25.11's layouts; sources at tag slurm-25-11-7-1).

The records are recorded from a pure-core cluster built as a replica builds it (slurm.conf
text through ``ClusterConfigured``, agents registering, a scheduler pass, an admin draining
a node), then rendered; golden files in tests/golden/render hold the texts
(``SPUR_UPDATE_GOLDEN=1`` rewrites them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import pytest
import query_fake

from spurcli import scontrol as scontrol_cli
from spurcli import sinfo as sinfo_cli
from spurcore.model import ClusterState
from spurcore.ops import ClusterConfigured, JobSpec, JobSubmitted, NodeDown, NodeRegistered, NodeStateUpdated
from spurcore.reduce import Rejected, apply
from spurcore.render import nodestate, sinfo, squeue
from spurcore.render import scontrol as show
from spurcore.scheduler import pending_reasons, schedule
from spurcore.slurmconf import parse
from spurcore.views import job_info, node_info, partition_info

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "render"
T0 = 1746100800.0  # 2025-05-01T12:00:00Z

pytestmark = pytest.mark.usefixtures("utc")

CONF = """
NodeName=n[1-3] CPUs=4 RealMemory=4000 Features=avx,ib Weight=10
NodeName=g1 CPUs=8 RealMemory=8192 Gres=gpu:a100:2 Features=gpu Weight=100
PartitionName=batch Nodes=n[1-3] Default=YES MaxTime=60 DefaultTime=10 MaxNodes=2
PartitionName=gpu Nodes=g1 MaxTime=INFINITE PriorityTier=5 OverSubscribe=EXCLUSIVE AllowAccounts=ml
PartitionName=secret Nodes=n1 Hidden=YES AllowGroups=wheel State=DOWN
"""
SPEC = JobSpec("job.sh", "alice", 1000, 1000, "#!/bin/sh\n", ("job.sh",), {}, "/home/alice",
               command="/home/alice/job.sh", submit_line="sbatch job.sh", alloc_node="login1", alloc_sid=7)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SPUR_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def ok(state: ClusterState, op: Any) -> Any:
    result = apply(state, op)
    assert not isinstance(result, Rejected), result
    return result


def recorded() -> tuple[ClusterState, dict[str, int]]:
    """The cluster: n1 running a 4-CPU job, a 2-node job waiting for it (Resources, with a
    reservation), g1 running a 1-GPU job, n2 drained by uid 1000, n3 not responding."""
    conf = parse([("slurm.conf", CONF)])
    state = ClusterState()
    ok(state, ClusterConfigured(conf.digest, tuple(conf.nodes), tuple(conf.partitions), dict(conf.settings),
                                T0 - 200))
    for i, node in enumerate(conf.nodes):
        address = f"tcp:10.0.0.{i + 1}:6818 unix:/run/spur/{node['name']}.sock"
        ok(state, NodeRegistered(node["name"], node["cpus"], node["real_memory"], address, T0 - 100))
    jobs = {
        "full": ok(state, JobSubmitted("a", attrs.evolve(SPEC, nodelist="n1", ntasks=4, time_limit=600), T0)),
        "wide": ok(state, JobSubmitted("b", attrs.evolve(SPEC, nodes=2, ntasks=8, time_limit=600), T0 + 1)),
        "gpu": ok(state, JobSubmitted("c", attrs.evolve(
            SPEC, partition="gpu", account="ml", gres="gpu:1", cpus_per_gpu=2, mem_per_gpu=1024, time_limit=300),
            T0 + 2)),
    }
    ok(state, NodeDown("n3", "Not responding", T0 + 3))
    for start in schedule(state, T0 + 10):
        ok(state, start)
    ok(state, NodeStateUpdated(("n2",), "DRAIN", "bad fan", 1000, T0 + 20))
    return state, jobs


NOW = T0 + 60


def nodes(state: ClusterState) -> list[dict[str, Any]]:
    return [node_info(state, n) for n in state.nodes]


def jobs_info(state: ClusterState, ids: list[int]) -> list[dict[str, Any]]:
    """The records as the controller answers ``jobs``: with the pending jobs' reasons."""
    reasons = pending_reasons(state, NOW)
    return [job_info(state.jobs[j], state, NOW, reasons.get(j)) for j in ids]


def test_node_states_as_slurm_names_them() -> None:
    """node_state_string_complete / node_state_string / _compact: base state and flags."""
    state, _ = recorded()
    by_name = {n["name"]: n for n in nodes(state)}
    seen = {name: (nodestate.state_complete(n), nodestate.state_long(n), nodestate.state_compact(n))
            for name, n in by_name.items()}
    assert seen == {
        "n1": ("ALLOCATED", "ALLOCATED", "ALLOC"),
        "n2": ("IDLE+DRAIN", "DRAINED", "DRAIN"),
        "n3": ("DOWN+NOT_RESPONDING", "DOWN*", "DOWN*"),
        "g1": ("ALLOCATED", "ALLOCATED", "ALLOC"),  # OverSubscribe=EXCLUSIVE: the job has all 8 CPUs
    }
    # a drained node with jobs left is DRAINING (base MIXED), a failing one FAILING
    assert nodestate.state_long({"state": "DRAINING", "cpus": 4, "alloc_cpus": 2}) == "DRAINING"
    assert nodestate.state_complete({"state": "DRAINING", "cpus": 4, "alloc_cpus": 4}) == "ALLOCATED+DRAIN"
    assert nodestate.state_compact({"state": "FAILING", "cpus": 4, "alloc_cpus": 1}) == "FAILG"
    assert nodestate.state_compact({"state": "FAIL"}) == "FAIL"
    # a drained node that stops responding: DRAINED* (the DRAIN flag wins over DOWN)
    gone = {"state": "DOWN", "state_flags": ["DRAIN", "NOT_RESPONDING"], "not_responding": True}
    assert (nodestate.state_complete(gone), nodestate.state_long(gone)) == ("DOWN+DRAIN+NOT_RESPONDING",
                                                                             "DRAINED*")
    assert nodestate.state_compact({"state": "UNKNOWN", "not_responding": True}) == "UNK*"


def test_scontrol_show_node_with_the_scheduler_fields() -> None:
    """slurm_sprint_node_table: AvailableFeatures/ActiveFeatures, Gres, GresUsed (-d only),
    NodeAddr (the host of the tcp endpoint), State with flags, Weight, CfgTRES with GPUs,
    AllocTRES without billing, Reason=... [user@time] (uid 1000 as the reader resolved it,
    SlurmUser for the controller)."""
    state, _ = recorded()
    records = nodes(state)
    for n in records:
        if n["name"] == "n2":
            n["reason_user"] = "alice"  # what scontrol's reader maps uid 1000 to
    text = show.show_nodes(records, detail=True, now=NOW)
    check_golden("sched_scontrol_show_node.txt", text)
    g1 = show.show_node(next(n for n in records if n["name"] == "g1"), now=NOW)
    assert "GresUsed=" not in g1 and "\n   Gres=gpu:a100:2\n" in g1
    assert "GresUsed=gpu:a100:1(IDX:0)\n" in text
    assert "\n   NodeAddr=10.0.0.4 NodeHostName=g1 " in text
    assert "Reason=bad fan [alice@2025-05-01T12:00:20]" in text
    assert "Reason=Not responding [slurm@2025-05-01T12:00:03]" in text


def test_scontrol_show_partition() -> None:
    """slurm_sprint_partition_info from the partitions records: Default, DefaultTime,
    MaxTime, MaxNodes, AllowGroups/AllowAccounts, Hidden, PriorityTier, OverSubscribe,
    State, TRES with GPUs."""
    state, _ = recorded()
    text = "".join(show.show_partition(p) for p in partition_info(state))
    check_golden("sched_scontrol_show_partition.txt", text)
    assert "\n   AllocNodes=ALL Default=YES QoS=N/A\n   DefaultTime=00:10:00 " in text
    assert "MaxNodes=2 MaxTime=01:00:00 MinNodes=0 " in text
    assert "AllowGroups=ALL AllowAccounts=ml AllowQos=ALL" in text
    assert "OverSubscribe=EXCLUSIVE\n" in text and "Hidden=YES\n" in text and "State=DOWN " in text


def test_scontrol_show_job_gres_tres_and_expected_start() -> None:
    """info_job.c: ReqTRES/AllocTRES with gres/gpu, -d JOB_GRES and the per-node GRES line,
    CpusPerTres/MemPerTres/TresPerNode; a pending job's SchedNodeList and expected
    StartTime; Priority and Partition as in the record."""
    state, jobs = recorded()
    gpu, wide = jobs_info(state, [jobs["gpu"], jobs["wide"]])
    for info in (gpu, wide):
        info["group"] = "alice"
    text = show.show_jobs([gpu, wide], detail=True, now=NOW)
    check_golden("sched_scontrol_show_job.txt", text)
    assert "\n   ReqTRES=cpu=2,mem=1G,node=1,billing=2,gres/gpu=1\n" in text
    assert "\n   JOB_GRES=gpu:a100:1\n     Nodes=g1 CPU_IDs=N/A Mem=1024 GRES=gpu:a100:1(IDX:0)\n" in text
    assert "\n   CpusPerTres=gres/gpu:2\n   MemPerTres=gres/gpu:1024\n   TresPerNode=gres/gpu:1\n" in text
    assert "\n   NodeList=(null) SchedNodeList=n[1-2]\n" in text
    assert "Partition=gpu " in text and "Partition=batch " in text


def test_squeue_start_priority_partition_and_tres() -> None:
    """squeue --start (``%.18i %.9P %.8j %.8u %.2t %.19S %.6D %20Y %R``): the expected start
    and SchedNodes of a pending job; ``%Q`` the priority; ``%b`` TRES_PER_NODE."""
    state, jobs = recorded()
    infos = jobs_info(state, sorted(jobs.values()))
    pending = [i for i in infos if i["state"] == "PENDING"]
    view = squeue.View(NOW)
    text = squeue.render_jobs(pending, fmt=squeue.START_FORMAT, view=view)
    check_golden("sched_squeue_start.txt", text)
    assert text.splitlines()[1].split()[5:8] == ["2025-05-01T12:10:10", "2", "n[1-2]"]
    text = squeue.render_jobs(infos, fmt="%i %P %Q %b %t %R", noheader=True, view=view)
    assert text == ("1 batch 1 N/A R n1\n"
                    "2 batch 1 N/A PD (Resources)\n"
                    "3 gpu 1 gres/gpu:1 R g1\n")
    text = squeue.render_jobs(infos[2:], Fmt="cpus-per-tres,mem-per-tres,tres-per-job:5,SchedNodes:6",
                              noheader=True, view=view)
    assert text == "gres/gpu:2          gres/gpu:1024       N/A  (null)\n"


def test_sacct_tres_of_a_gpu_job() -> None:
    """sacct ReqTRES/AllocTRES: the history record's (GRES included, memory in units)."""
    from spurcore.render import sacct

    state, jobs = recorded()
    (gpu,) = jobs_info(state, [jobs["gpu"]])
    text = sacct.render([gpu], "JobID,Partition,ReqTRES%45,AllocTRES%45", parsable2=True, noheader=True,
                        allocations=True, now=NOW)
    assert text == "3|gpu|cpu=2,mem=1G,node=1,billing=2,gres/gpu=1|cpu=8,mem=1G,node=1,billing=8,gres/gpu=1\n"


def test_squeue_priority_lists_a_job_once_per_partition() -> None:
    """-P (print.c _create_priority_list): one line per partition of a pending job."""
    job = {"job_id": 7, "state": "PENDING", "base_state": "PENDING", "partition": "batch,gpu", "priority": 42,
           "priority_by_partition": {"gpu": 50}}
    running = {"job_id": 8, "state": "RUNNING", "base_state": "RUNNING", "partition": "gpu", "priority": 9}
    out = squeue.by_partition([job, running])
    assert [(i["job_id"], i["partition"], i["priority"]) for i in out] == [(7, "batch", 42), (7, "gpu", 50),
                                                                        (8, "gpu", 9)]
    assert [i["partition"] for i in squeue.by_partition([job], ["gpu"])] == ["gpu"]


def test_sinfo_partitions_states_and_reasons() -> None:
    """sinfo from the partitions records: ``*`` on the default partition, AVAIL from the
    partition's state, TIMELIMIT from MaxTime, a row per partition and state (drain,
    down*), hidden partitions only with -a; -R lists the reasons with their users."""
    state, _ = recorded()
    records = nodes(state)
    parts = partition_info(state)
    for p in parts:
        p["default"] = p["name"] == "batch"
    shown = sinfo.visible_partitions(parts, show_all=False, uid=1000, groups=["alice"])
    assert [p["name"] for p in shown] == ["batch", "gpu"]
    assert [p["name"] for p in sinfo.visible_partitions(parts, show_all=True, uid=1000, groups=[])] == [
        "batch", "gpu", "secret"]
    assert [p["name"] for p in sinfo.visible_partitions(parts, show_all=False, uid=1000, groups=["wheel"])] == [
        "batch", "gpu"]  # Hidden=YES stays hidden whatever the groups
    text = sinfo.render_partitions(records, part_records=shown)
    check_golden("sched_sinfo.txt", text)
    assert text == (
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\n"
        "batch*       up    1:00:00      1  down* n3\n"  # -t sorts by the state word: flags count
        "batch*       up    1:00:00      1  drain n2\n"
        "batch*       up    1:00:00      1  alloc n1\n"
        "gpu          up   infinite      1  alloc g1\n"
    )
    every = sinfo.render_partitions(records, part_records=parts)
    assert every.endswith("secret     down   infinite      1  alloc n1\n")
    sels, and_mode = sinfo.parse_states("down,fail,drain")
    reasons = [n for n in records if sinfo.node_matches_states(n, sels, and_mode)]
    for n in reasons:
        if n["name"] == "n2":
            n["reason_user"] = "alice"
    text = sinfo.render_format(reasons, long_fmt=sinfo.REASONS_FORMAT, reasons=True, part_records=shown, now=NOW)
    assert text == (
        "REASON               USER      TIMESTAMP           NODELIST\n"
        "Not responding       slurm     2025-05-01T12:00:03 n3\n"  # sorted as sinfo does: #P,-t
        "bad fan              alice     2025-05-01T12:00:20 n2\n"
    )
    long = sinfo.render_format(reasons, long_fmt=sinfo.REASONS_LONG_FORMAT, reasons=True, part_records=shown,
                               now=NOW)
    assert long.splitlines()[2] == "bad fan              alice(1000)  2025-05-01T12:00:20 drain  n2"


def test_sinfo_fields_of_the_scheduler() -> None:
    """%f/%b features, %G gres, GresUsed, %w weight, %o NodeAddr, %s JOB_SIZE, %g GROUPS,
    %h OVERSUBSCRIBE, %p/%I the partition's priorities, %L DEFAULTTIME; a partition with
    no node left after -t is still a row (``0 n/a``)."""
    state, _ = recorded()
    records = nodes(state)
    parts = partition_info(state)[:2]
    text = sinfo.render_format(records, "%P|%f|%b|%G|%w|%o|%s|%g|%h|%p|%I|%L|%t", noheader=True,
                               part_records=parts, sort="#P,N")
    assert text.splitlines() == [
        "batch*|avx,ib|avx,ib|(null)|10|10.0.0.1|1-2|all|NO|1|1|10:00|alloc",
        "batch*|avx,ib|avx,ib|(null)|10|10.0.0.2|1-2|all|NO|1|1|10:00|drain",
        "batch*|avx,ib|avx,ib|(null)|10|10.0.0.3|1-2|all|NO|1|1|10:00|down*",
        "gpu|gpu|gpu|gpu:a100:2|100|10.0.0.4|1-infinite|all|EXCLUSIVE|5|1|n/a|alloc",
    ]
    used = sinfo.render_format(records, long_fmt="nodelist:4,gresused:25", noheader=True, part_records=parts[1:])
    assert used == "g1  gpu:a100:1(IDX:0)        \n"
    idle_only = [n for n in records if sinfo.node_matches_states(n, *sinfo.parse_states("idle"))]
    text = sinfo.render_partitions(idle_only, part_records=parts, noheader=True)
    assert text == ("batch*       up    1:00:00      1  drain n2\n"
                    "gpu          up   infinite      0    n/a \n")


# ---------------------------------------------------------------------------------------------
# the commands against the fake controller of query_fake.py

ctld = query_fake.ctld  # the fake controller fixture


def run(main: Any, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def fake_cluster(ctld: query_fake.FakeController, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded cluster in the fake controller, seen by uid 1000 in no group (root
    would see hidden partitions)."""
    monkeypatch.setattr(sinfo_cli, "caller_uid", lambda: 1000)
    monkeypatch.setattr(sinfo_cli, "caller_groups", lambda: [])
    state, _ = recorded()
    ctld.nodes = nodes(state)
    ctld.partitions = partition_info(state)
    ctld.default_partition = "batch"


def test_scontrol_update_node_sends_the_update_node_request(ctld, capsys) -> None:
    """update_node.c: NodeName/State/Reason with Slurm's prefixes and quotes; states named
    by a prefix of 3 or more letters; the refusals Slurm prints before asking."""
    scontrol = scontrol_cli.main
    assert run(scontrol, capsys, "update", "nodename=n[1-2]", "state=dra", 'reason="bad fan"') == (0, "", "")
    assert ctld.params("update_node")[-1]["names"] == "n[1-2]"
    assert {k: ctld.params("update_node")[-1][k] for k in ("state", "reason")} == {"state": "DRAIN",
                                                                                    "reason": "bad fan"}
    assert run(scontrol, capsys, "update", "NodeName=n1", "State=RESUME")[0] == 0
    assert ctld.params("update_node")[-1]["state"] == "RESUME"
    assert run(scontrol, capsys, "update", "node=n1", "st=undrain")[0] == 0
    assert ctld.params("update_node")[-1]["state"] == "UNDRAIN"
    assert run(scontrol, capsys, "update", "NodeName=n1", "State=down", "Reason=x")[0] == 0
    assert ctld.params("update_node")[-1]["state"] == "DOWN"
    sent = len(ctld.params("update_node"))
    assert run(scontrol, capsys, "update", "NodeName=n1", "State=drain") == (
        1, "", "You must specify a reason when DOWNING or DRAINING a node. Request denied\n")
    assert run(scontrol, capsys, "update", "NodeName=n1", "State=sleepy") == (
        1, "", "Invalid input: State=sleepy\nRequest aborted\nValid states are: NoResp DRAIN FAIL FUTURE RESUME "
               "POWER_DOWN POWER_UP UNDRAIN\nNot all states are valid given a node's prior state\n")
    assert run(scontrol, capsys, "update", "NodeName=n1", "Bogus=1") == (
        1, "", "Update of this parameter is not supported: Bogus=1\nRequest aborted\n")
    assert run(scontrol, capsys, "update", "NodeName=n1", "Weight=x") == (
        1, "", "scontrol: error: Invalid value Weight=x for Weight\n")
    assert run(scontrol, capsys, "update", "NodeName=n1", "Features=a") == (
        1, "", "slurm_update error: Requested operation is presently disabled\n")
    assert len(ctld.params("update_node")) == sent
    ctld.refused["update_node"] = ("invalid_state", "Invalid node state specified")
    assert run(scontrol, capsys, "update", "NodeName=n1", "State=FUTURE") == (
        1, "", "slurm_update error: Invalid node state specified\n")
    ctld.refused["update_node"] = ("access_denied", "Access/permission denied")
    assert run(scontrol, capsys, "update", "NodeName=n1", "State=RESUME") == (
        1, "", "slurm_update error: Access/permission denied\n")


def test_scontrol_update_partition_sends_slurm_keys_as_text(ctld, capsys, monkeypatch) -> None:
    """update_part.c: keys by prefix, values checked and normalized (minutes, YES/NO,
    OverSubscribe counts); Nodes+= applied to the partition's nodes; refusals."""
    fake_cluster(ctld, monkeypatch)
    scontrol = scontrol_cli.main
    assert run(scontrol, capsys, "update", "PartitionName=batch", "MaxTime=2:00:00", "state=dr", "Default=y",
               "MaxNodes=4", "Shared=YES", "PriorityTier=3", "AllowGroups=wheel")[0] == 0
    params = ctld.params("update_partition")[-1]
    assert params["name"] == "batch"
    assert params["changes"] == {"MaxTime": "120", "State": "DRAIN", "Default": "YES", "MaxNodes": "4",
                                 "OverSubscribe": "YES:4", "PriorityTier": "3", "AllowGroups": "wheel"}
    assert run(scontrol, capsys, "update", "PartitionName=batch", "MaxTime=UNLIMITED", "Nodes+=g1")[0] == 0
    assert ctld.params("update_partition")[-1]["changes"] == {"MaxTime": "UNLIMITED", "Nodes": "g1,n[1-3]"}
    assert run(scontrol, capsys, "update", "PartitionName=batch", "Nodes-=n2")[0] == 0
    assert ctld.params("update_partition")[-1]["changes"] == {"Nodes": "n[1,3]"}
    sent = len(ctld.params("update_partition"))
    assert run(scontrol, capsys, "update", "PartitionName=batch", "State=sleepy") == (
        1, "", "scontrol: error: Invalid input: State=sleepy\n"
               "scontrol: error: Acceptable State values are UP, DOWN, DRAIN and INACTIVE\n")
    assert run(scontrol, capsys, "update", "PartitionName=batch", "MaxTime=soon") == (
        1, "", "scontrol: error: Invalid input MaxTime=soon\n")
    assert run(scontrol, capsys, "update", "PartitionName=batch") == (1, "", "scontrol: error: No changes specified\n")
    assert run(scontrol, capsys, "update", "PartitionName=batch", "Hidden=maybe") == (
        1, "", "scontrol: error: Invalid input: Hidden=maybe\nscontrol: error: Acceptable Hidden values are YES and NO\n")
    assert len(ctld.params("update_partition")) == sent
    ctld.refused["update_partition"] = ("invalid_partition", "Invalid partition name specified")
    assert run(scontrol, capsys, "update", "PartitionName=nope", "State=UP") == (
        1, "", "slurm_update error: Invalid partition name specified\n")


def test_scontrol_show_partition_node_and_config(ctld, capsys, monkeypatch) -> None:
    """show partition from the partitions RPC (hidden ones with -a), show node -d with
    GresUsed, show config with the scheduling settings in config_info.c's forms."""
    fake_cluster(ctld, monkeypatch)
    scontrol = scontrol_cli.main
    rc, out, _ = run(scontrol, capsys, "show", "partition")
    assert rc == 0 and [line.split("=")[1] for line in out.splitlines() if line.startswith("PartitionName=")] == [
        "batch", "gpu"]
    assert run(scontrol, capsys, "show", "partition", "secret") == (1, "Partition secret not found\n", "")
    rc, out, _ = run(scontrol, capsys, "-a", "show", "partition", "secret")
    assert rc == 0 and "Hidden=YES" in out
    rc, out, _ = run(scontrol, capsys, "-d", "show", "node", "g1")
    assert "\n   GresUsed=gpu:a100:1(IDX:0)\n" in out and "State=ALLOCATED " in out
    rc, out, _ = run(scontrol, capsys, "show", "node", "n2")
    assert "Reason=bad fan [" in out  # uid 1000: its name on this host, or the number
    ctld.sched_config = {"SchedulerType": "sched/backfill", "SchedulerParameters": "bf_window=1440",
                         "PriorityType": "priority/multifactor", "PriorityWeightFairshare": 10,
                         "PriorityMaxAge": 604800, "PriorityCalcPeriod": 300, "PriorityFavorSmall": "No",
                         "PriorityDecayHalfLife": 604800, "AccountingStorageEnforce": "associations"}
    ctld.config["SchedulerParameters"] = "kill_invalid_depend"
    rc, out, _ = run(scontrol, capsys, "show", "config")
    lines = out.splitlines()
    assert "AccountingStorageEnforce = associations" in lines
    assert "PriorityCalcPeriod      = 00:05:00" in lines
    assert "PriorityMaxAge          = 7-00:00:00" in lines
    assert "PriorityWeightFairShare = 10" in lines
    assert "SchedulerParameters     = bf_window=1440,kill_invalid_depend" in lines
    assert lines.index("PriorityCalcPeriod      = 00:05:00") < lines.index("PriorityMaxAge          = 7-00:00:00")


def test_sinfo_against_the_partitions_rpc(ctld, capsys, monkeypatch) -> None:
    """sinfo asks for the partitions: the default's ``*``, hidden ones with -a or -p, -R."""
    fake_cluster(ctld, monkeypatch)
    main = sinfo_cli.main
    rc, out, _ = run(main, capsys)
    assert out == (GOLDEN / "sched_sinfo.txt").read_text()
    rc, out, _ = run(main, capsys, "-a", "-h", "-o", "%R %a")
    assert out == "batch up\ngpu up\nsecret down\n"  # no node field: a partition's nodes share its row
    rc, out, _ = run(main, capsys, "-h", "-p", "secret", "-o", "%P %t %N")
    assert out == "secret alloc n1\n"
    rc, out, _ = run(main, capsys, "-R", "-h", "-o", "%E|%u|%N")
    assert out.splitlines()[0] == "Not responding|slurm|n3"
    assert out.splitlines()[1].startswith("bad fan|") and out.splitlines()[1].endswith("|n2")


def test_batch_options_send_typed_gres_fields_and_no_partition_by_default(tmp_path) -> None:
    """sbatch's GRES options become JobSpec's typed fields; without -p no partition is sent
    (the controller applies the default partition)."""
    from spurcli import sbatch

    spec = sbatch.build_submission(["--gpus=a100:2", "--gpus-per-node=1", "--gpus-per-task=1", "--cpus-per-gpu=4",
                                    "--mem-per-gpu=2G", "--gres=gpu:1", "--wrap=true"], environ={},
                                   cwd=str(tmp_path)).spec
    assert {k: spec[k] for k in ("gpus", "gpus_per_node", "gpus_per_task", "cpus_per_gpu", "mem_per_gpu",
                                 "gres")} == {"gpus": "a100:2", "gpus_per_node": "1", "gpus_per_task": "1",
                                              "cpus_per_gpu": 4, "mem_per_gpu": 2048, "gres": "gpu:1"}
    assert "partition" not in spec and not set(spec.get("options") or {}) & {"gpus", "gres", "mem-per-gpu"}
    spec = sbatch.build_submission(["--gres=none", "-p", "gpu", "--wrap=true"], environ={}, cwd=str(tmp_path)).spec
    assert "gres" not in spec and spec["partition"] == "gpu"
