"""Golden encoded bytes of every op: a format change cannot slip in unnoticed.

If this fails because you changed an op on purpose, bump its VERSION, add an upcaster in
spurcore/codec.py, and ADD a new golden line; never edit an existing one.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import msgpack
import pytest

from spurcore.codec import CodecError, decode_op, encode_op
from spurcore.ops import (
    ALL_OPS,
    AccountingUpdated,
    ActionAcked,
    ActionRequested,
    ArrayTasksSplit,
    ClusterConfigured,
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
    NodeStateUpdated,
    PartitionUpdated,
    StepCreated,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "ops.json"

SPEC = JobSpec(
    "job.sh", "alice", 1000, 100, "#!/bin/bash\nexit 3\n", ("a1",), {"HOME": "/home/alice"}, "/home/alice",
    nodes=1, ntasks=2, cpus_per_task=1, mem_mb=100, time_limit=3600, stdout="out-%j", stderr="",
    stdin="/dev/null", hold=False, dependency="afterok:1", partition="debug", account="acct",
    command="/home/alice/job.sh", submit_line="sbatch job.sh", alloc_node="login1", alloc_sid=4242,
)

EXAMPLES = {
    "NodeRegistered": NodeRegistered("node1", 2, 4096, "unix:/run/spurd.sock", 1700000000.5),
    "NodeDown": NodeDown("node1", "Not responding", 1700000001.0, True, True, 1700000122.0),
    "JobSubmitted": JobSubmitted("req-1", SPEC, 1700000002.0),
    "JobStart": JobStart(1, ("node1", "node2"), 2, 100, 1700000003.0),
    "JobLaunched": JobLaunched(1, "node1", 1700000004.0),
    "StepCreated": StepCreated("req-2", 1, "prog", ("prog", "x"), 1, "node1", 1000, 1700000005.0),
    "JobStepComplete": JobStepComplete(1, 0, "node1", 7, 0, False, 1700000006.0),
    "JobNodeComplete": JobNodeComplete(
        1, "node1", 0, 15, False, 1700000007.0, True, True, 1700000128.0,
        {"ntasks": 1, "user_cpu": 0.75, "sys_cpu": 0.25, "max_rss": 83886080, "max_rss_task": 0},
    ),
    "ActionRequested": ActionRequested("req-3", 1, -1, 4, 10, 1, 1000, 1700000008.0),
    "ActionAcked": ActionAcked(1, "node1", 0, 0, 1700000009.0),
    "JobCancelled": JobCancelled(2, 1000, 1700000010.0),
    "JobTimeLimitReached": JobTimeLimitReached(1, 1700000011.0),
    "JobHeld": JobHeld(2, 0, True, 1700000012.0),
    "JobReleased": JobReleased(2, 0, 1700000013.0),
    "JobsPurged": JobsPurged((1, 2), 1700000014.0),
    "JobRequeued": JobRequeued(1, 0, False, 1700000015.0, 1700000136.0),
    "ArrayTasksSplit": ArrayTasksSplit(7, (3, 4), 1700000016.0),
    "JobUpdated": JobUpdated(7, 1000, False, {"TimeLimit": 600, "Comment": "x"}, 1700000017.0),
    "JobDeadlineReached": JobDeadlineReached(7, 1700000018.0),
}

SPEC_V2 = attrs.evolve(
    SPEC, array="0-99:2%10", ntasks_per_node=2, mem_per_cpu=512, exclusive="user", nodelist="node[1-2]",
    exclude="node3", begin_time=1700000100.0, deadline=1700009000.0, open_mode="append", signal=10,
    signal_time=60, signal_flags="B", requeue=1, kill_on_invalid_dep=0, comment="c", wckey="w", nice=5,
    qos="normal", constraint="fast", time_min=600, mail_type="END", mail_user="a@b",
    options={"licenses": "foo:2", "contiguous": ""},
)
SPEC_V3 = attrs.evolve(
    SPEC_V2, gres="gpu:a100:1,nic:1", gpus="2", gpus_per_node="a100:2", gpus_per_task="1", cpus_per_gpu=4,
    mem_per_gpu=8192,
)
EXAMPLES["JobSubmitted"] = JobSubmitted("req-1", SPEC_V3, 1700000002.0)
EXAMPLES["JobStart"] = JobStart(1, ("node1", "node2"), 2, 100, 1700000003.0, 5, "gpu")
EXAMPLES["ClusterConfigured"] = ClusterConfigured(
    "84f7d608c8c8d0aee9d4496f93fec981",
    ({"name": "g1", "cpus": 8, "real_memory": 8000, "gres": [["gpu", "a100", 2, ["/dev/nvidia0", "/dev/nvidia1"]]],
      "features": ["fast"], "weight": 1, "state": "UNKNOWN", "reason": ""},),
    ({"name": "gpu", "nodes": ["g1"], "default": True, "max_time": 3600, "default_time": None, "max_nodes": None,
      "min_nodes": 0, "state": "UP", "priority_tier": 2, "priority_job_factor": 1, "allow_accounts": ["phys"],
      "deny_accounts": [], "allow_groups": [], "oversubscribe": "NO", "hidden": False, "exclusive_user": False},),
    {"scheduler_type": "sched/backfill", "bf_window": 3600, "priority_weight_age": 1000, "enforce": ["associations"]},
    1700000019.0,
)
EXAMPLES["NodeStateUpdated"] = NodeStateUpdated(("node1", "node2"), "DRAIN", "bad disk", 0, 1700000020.0)
EXAMPLES["PartitionUpdated"] = PartitionUpdated("gpu", {"state": "DOWN", "max_time": 600}, 0, 1700000021.0)
EXAMPLES["AccountingUpdated"] = AccountingUpdated(
    "add", "user", ("alice",), {}, {"Account": ["physics"], "MaxJobs": 4, "GrpTRES": {"cpu": 8}}, 0, 1700000022.0,
)
EXAMPLES["StepCreated"] = StepCreated(
    "req-2", 1, "prog", ("prog", "x"), 3, "", 1000, 1700000005.0, ("node1", "node2"), (2, 1), (0, 2, 1),
    (4, 4), False, 1, "cyclic",
)
EXAMPLES["JobStepComplete"] = JobStepComplete(
    1, 0, "node1", 7, 0, False, 1700000006.0,
    {"ntasks": 2, "user_cpu": 1.25, "sys_cpu": 0.5, "max_rss": 209715200, "max_rss_task": 1},
)

#: Records of earlier versions, as they were written: they decode (upcast) to these ops.
OLD_VERSIONS = {
    "JobSubmitted@1": JobSubmitted("req-1", SPEC, 1700000002.0),
    "JobSubmitted@2": JobSubmitted("req-1", SPEC_V2, 1700000002.0),
    "JobStart@1": JobStart(1, ("node1", "node2"), 2, 100, 1700000003.0),
    "JobStart@2": JobStart(1, ("node1", "node2"), 2, 100, 1700000003.0, 5),
    "JobRequeued@1": JobRequeued(1, 0, False, 1700000015.0, 1700000015.0 + 121),
    "NodeDown@1": NodeDown("node1", "Not responding", 1700000001.0),
    "JobNodeComplete@1": JobNodeComplete(1, "node1", 0, 15, False, 1700000007.0),
    "JobNodeComplete@2": JobNodeComplete(1, "node1", 0, 15, False, 1700000007.0, True, True, 1700000128.0),
    "StepCreated@1": StepCreated("req-2", 1, "prog", ("prog", "x"), 1, "node1", 1000, 1700000005.0),
    "JobStepComplete@1": JobStepComplete(1, 0, "node1", 7, 0, False, 1700000006.0),
}


def test_every_op_has_a_golden_example():
    assert set(EXAMPLES) == {cls.__name__ for cls in ALL_OPS}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_encoding_matches_golden_bytes(name):
    golden = json.loads(GOLDEN.read_text())
    op = EXAMPLES[name]
    assert encode_op(op).hex() == golden[name], f"wire format of {name} changed"
    assert decode_op(bytes.fromhex(golden[name])) == op


@pytest.mark.parametrize("name", sorted(OLD_VERSIONS))
def test_old_versions_decode_upcast(name):
    golden = json.loads(GOLDEN.read_text())
    assert decode_op(bytes.fromhex(golden[name])) == OLD_VERSIONS[name]


def test_unknown_type_and_newer_version_are_refused_by_name():
    with pytest.raises(CodecError, match="unknown op type 999 .version 1."):
        decode_op(msgpack.packb([999, 1]))
    with pytest.raises(CodecError, match="JobCancelled .type 11. has version 7, newer than the supported version 1"):
        decode_op(msgpack.packb([11, 7, 1, 0, 1.0]))
    with pytest.raises(CodecError):
        decode_op(b"\xc1garbage")
    with pytest.raises(CodecError, match="expected 3 fields"):
        decode_op(msgpack.packb([11, 1, 1]))
