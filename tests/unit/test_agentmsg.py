"""spurcore.agentmsg: the agent's boundaries refuse what does not fit, naming the field.

Each boundary's table (controller notifications, step endpoint requests, the client's
frames to a supervisor, control ops, spec.json, status.json) is checked for every kind of
bad input: a wrong type, a missing field, an unknown field, an out-of-range value (job ids
1..2^32-2, signals 0..64, task ids and counts, sizes, lengths) and an unknown method.
"""

from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spurcore import agentmsg
from spurcore.agentmsg import (
    CLIENT_FRAMES,
    CONTROL_OPS,
    NOTIFICATIONS,
    STEP_REQUESTS,
    CtlAttach,
    CtlKill,
    CtlSignal,
    CtlStatus,
    JobAction,
    KillJob,
    KillStep,
    LaunchTasks,
    PmiFenceDone,
    Registered,
    RunStatus,
    SignalTasks,
    StartJob,
    StdinData,
    StepIo,
    SupervisorSpec,
    Winch,
    client_frame,
    control_op,
    control_request,
    launch_job,
    notification,
    step_request,
)
from spurcore.leader import LeaderConfig, action_message, deliveries
from spurcore.model import ClusterState
from spurcore.ops import ActionKind, ActionRequested, JobSpec, JobSubmitted, NodeRegistered, SignalTarget
from spurcore.reduce import apply
from spurcore.scheduler import plan
from spurcore.schema import BadRequest, structure, unstructure

U32 = 2**32 - 1


def refused(fn, *args, where: str, text: str = "") -> BadRequest:
    with pytest.raises(BadRequest) as err:
        fn(*args)
    assert err.value.where == where, str(err.value)
    assert text in str(err.value), str(err.value)
    return err.value


# --- controller -> agent ---------------------------------------------------------------------

ACTION = {"action_id": 5, "job_id": 7, "step_id": -1, "kind": 1, "signal": 0, "target": 0, "kill_wait": 2,
          "suspend_grace": 0.5, "node": "n1", "why": "cancel", "at": 1700000000.5}


def test_a_real_start_and_action_from_the_leader_fit():
    """What spurcore.leader sends (launch_info: the job's display record plus its launch
    fields) is accepted as it is: the agent's schema and the controller's record agree."""
    state = ClusterState()
    apply(state, NodeRegistered("n1", 4, 1000, "unix:/run/spurd.sock", 0.0))
    spec = JobSpec("j", "alice", 1000, 100, "#!/bin/sh\nexit 3\n", ("a1",), {"HOME": "/home/alice"}, "/tmp",
                   time_limit=60, array="", comment="c", open_mode="append")
    apply(state, JobSubmitted("r1", spec, 1.0))
    (start,) = plan(state, 2.0).starts
    apply(state, start)
    cfg = LeaderConfig(node_timeout=30, min_job_age=300, kill_wait=5, suspend_grace=1)
    (msg,) = deliveries(state, 2.5, cfg)
    got = notification(msg.method, msg.params)
    assert isinstance(got, StartJob) and got.node == "n1"
    job = got.job
    assert (job.job_id, job.script, job.argv, job.env, job.cwd, job.uid, job.gid) == (
        1, "#!/bin/sh\nexit 3\n", ("a1",), {"HOME": "/home/alice"}, "/tmp", 1000, 100)
    assert (job.node_list, job.time_limit, job.comment, job.open_mode, job.batch_host) == (
        ("n1",), 60, "c", "append", "n1")
    apply(state, ActionRequested("r2", 1, -1, ActionKind.KILL, 0, SignalTarget.STEPS, 1000, 3.0))
    record = next(iter(state.actions.values()))
    action = notification("action", action_message(state, record, "n1", cfg).params)
    assert isinstance(action, JobAction)
    assert (action.job_id, action.kind, action.kill_wait, action.why) == (1, 1, 5.0, "cancel")


def test_the_job_record_keeps_what_the_agent_reads_and_ignores_display_fields():
    rec = launch_job({"job_id": 3, "state": "RUNNING", "steps": [{"x": 1}], "gres_alloc": {"n1": {"gpu": [0, 1]}}})
    assert rec.job_id == 3 and rec.gres_alloc == {"n1": {"gpu": (0, 1)}}
    # What the agent keeps in job.json reads back the same.
    assert launch_job(json.loads(json.dumps(unstructure(rec)))) == rec


@pytest.mark.parametrize("raw, where, text", [
    ({"node": "n1"}, "job", "missing"),
    ({"job": [], "node": "n1"}, "job", "map"),
    ({"job": {"job_id": 1}}, "node", "missing"),
    ({"job": {"job_id": 1}, "node": "n[1-2]"}, "node", "node name"),
    ({"job": {"job_id": 0}, "node": "n1"}, "job.job_id", "1 to 4294967294"),
    ({"job": {"job_id": U32}, "node": "n1"}, "job.job_id", "1 to 4294967294"),
    ({"job": {"job_id": "7"}, "node": "n1"}, "job.job_id", "integer"),
    ({"job": {"job_id": True}, "node": "n1"}, "job.job_id", "integer"),
    ({"job": {"job_id": 1, "env": {"A": 1}}, "node": "n1"}, "job.env['A']", "string"),
    ({"job": {"job_id": 1, "script": "x\x00"}, "node": "n1"}, "job.script", "string"),
    ({"job": {"job_id": 1, "script": "#" * (4 * 1024 * 1024 + 1)}, "node": "n1"}, "job.script", "string"),
    ({"job": {"job_id": 1, "node_list": ["n1", "a b"]}, "node": "n1"}, "job.node_list[1]", "string"),
    ({"job": {"job_id": 1, "gres_alloc": {"n1": {"gpu": [-1]}}}, "node": "n1"}, "job.gres_alloc.n1.gpu[0]",
     "integer"),
    ({"job": {"job_id": 1, "gres_alloc": {"n1": [0]}}, "node": "n1"}, "job.gres_alloc.n1", "map"),
    ({"job": {"job_id": 1, "open_mode": "w"}, "node": "n1"}, "job.open_mode", "one of"),
    ({"job": {"job_id": 1}, "node": "n1", "extra": 1}, "extra", "unknown field"),
])
def test_bad_starts(raw, where, text):
    refused(notification, "start", raw, where=where, text=text)


@pytest.mark.parametrize("change, where, text", [
    ({"action_id": 0}, "action_id", "integer from 1"),
    ({"job_id": -1}, "job_id", "integer from 1"),
    ({"kind": 5}, "kind", "one of 1, 2, 3, 4"),
    ({"kind": True}, "kind", "one of"),
    ({"signal": 65}, "signal", "0 to 64"),
    ({"signal": -1}, "signal", "0 to 64"),
    ({"target": 3}, "target", "one of 0, 1, 2"),
    ({"kill_wait": -1}, "kill_wait", "a number from 0 to 1e+09"),
    ({"kill_wait": float("nan")}, "kill_wait", "number"),
    ({"step_id": -2}, "step_id", "-1 to"),
    ({"why": "x" * 65}, "why", "string"),
    ({"bogus": 1}, "bogus", "unknown field"),
])
def test_bad_actions(change, where, text):
    refused(notification, "action", {**ACTION, **change}, where=where, text=text)


def test_actions_and_kills_and_missing_fields():
    assert notification("action", ACTION) == JobAction(**{**ACTION, "kill_wait": 2.0})
    refused(notification, "action", {k: v for k, v in ACTION.items() if k != "kind"}, where="kind", text="missing")
    assert notification("kill", {"job_id": 3}) == KillJob(job_id=3)
    refused(notification, "kill", {}, where="job_id", text="missing")
    refused(notification, "kill", None, where="job_id", text="missing")
    refused(notification, "kill", [3], where="params", text="map")


def test_unknown_notification():
    err = refused(notification, "explode", {}, where="method", text="start, action, kill")
    assert "'explode'" in str(err)
    refused(notification, 42, {}, where="method")


def test_registration_and_heartbeat_answers():
    reply = structure(Registered, {"heartbeat_interval": 0.5, "kill_wait": 2, "suspend_grace": 0.5,
                                   "fence_timeout": 30, "fence_grace": 5})
    assert (reply.heartbeat_interval, reply.kill_wait, reply.fence_timeout) == (0.5, 2.0, 30.0)
    assert structure(Registered, {}) == Registered()
    refused(structure, Registered, {"heartbeat_interval": 0}, where="heartbeat_interval", text="0.01")
    refused(structure, Registered, {"fence_timeout": "30"}, where="fence_timeout", text="number")
    refused(structure, Registered, {"kill_wait": -2}, where="kill_wait")
    refused(structure, agentmsg.HeartbeatReply, {"quorum": 1}, where="quorum", text="true or false")


# --- the step endpoint -----------------------------------------------------------------------

LAUNCH = {"job_id": 4, "step_id": 0, "argv": ["hostname"], "env": {"PATH": "/bin"}, "cwd": "/tmp", "tasks": [0, 1],
          "nodeid": 0, "cpus_on_node": 2, "io": {"stdout": {"mode": "relay"}, "stderr": {"mode": "relay"},
                                                 "stdin": {"mode": "task", "task": 1}, "unbuffered": False,
                                                 "pty": False},
          "pmi": {"jobid": "4.0", "size": 2, "mapping": "(vector,(0,1,2))"}, "open_mode": "truncate",
          "usage_interval": None}


def test_a_launch_as_srun_sends_it():
    msg = step_request("launch_tasks", LAUNCH)
    assert isinstance(msg, LaunchTasks)
    assert (msg.argv, msg.tasks, msg.io.route("stdin").task, msg.io.route("stdout").mode) == (
        ("hostname",), (0, 1), 1, "relay")
    assert msg.pmi is not None and msg.pmi.size == 2
    assert StepIo().route("stdin").mode == "all" and StepIo().route("stderr").mode == "relay"
    assert step_request("launch_tasks", {"job_id": 4, "step_id": 0, "argv": ["x"], "tasks": [0]}).io == StepIo()


@pytest.mark.parametrize("change, where, text", [
    ({"argv": []}, "argv", "non-empty"),
    ({"argv": "hostname"}, "argv", "list"),
    ({"argv": ["a", 1]}, "argv[1]", "string"),
    ({"tasks": []}, "tasks", "non-empty"),
    ({"tasks": [-1]}, "tasks[0]", "0 to"),
    ({"tasks": [10_000_000]}, "tasks[0]", "0 to 9999999"),
    ({"job_id": 0}, "job_id", "1 to 4294967294"),
    ({"step_id": -1}, "step_id", "0 to"),
    ({"step_id": 2**31}, "step_id", "0 to"),
    ({"cwd": "/" * 4097}, "cwd", "4096"),
    ({"env": {"": "x"}}, "env", "non-empty string keys"),
    ({"env": []}, "env", "map"),
    ({"io": {"stdout": {"mode": "pipe"}}}, "io.stdout.mode", "one of"),
    ({"io": {"stdin": {"mode": "task", "task": "1"}}}, "io.stdin.task", "integer"),
    ({"io": {"winsize": [24, 80, 1]}}, "io.winsize", "list of at most 2"),
    ({"io": {"pty": "yes"}}, "io.pty", "true or false"),
    ({"pmi": {"jobid": "4.0", "size": 0}}, "pmi.size", "1 to"),
    ({"pmi": {"jobid": "4.0"}}, "pmi.size", "missing"),
    ({"open_mode": "a"}, "open_mode", "one of"),
    ({"usage_interval": -5}, "usage_interval", "number from 0"),
    ({"tls_peer": "admin"}, "tls_peer", "map"),
    ({"nodeid": 100_001}, "nodeid", "0 to 100000"),
    ({"extra": 1}, "extra", "unknown field"),
])
def test_bad_launches(change, where, text):
    refused(step_request, "launch_tasks", {**LAUNCH, **change}, where=where, text=text)


def test_attach_and_stat_requests():
    for method in ("attach_step", "step_stat"):
        msg = step_request(method, {"job_id": 4, "step_id": 2, "tls_peer": {"user": "alice", "role": "user"}})
        assert (msg.job_id, msg.step_id, msg.tls_peer.user) == (4, 2, "alice")
        refused(step_request, method, {"job_id": 4}, where="step_id", text="missing")
        refused(step_request, method, {"job_id": 4, "step_id": "2"}, where="step_id", text="integer")
        refused(step_request, method, {"job_id": 4, "step_id": 2, "argv": []}, where="argv", text="unknown")
    assert set(STEP_REQUESTS) == {"launch_tasks", "attach_step", "step_stat"}


# --- client -> supervisor frames -------------------------------------------------------------


def test_client_frames():
    assert client_frame("in", [-1, b"hi\n"]) == StdinData(-1, b"hi\n")
    assert client_frame("in", [3, b""]) == StdinData(3, b"")
    assert client_frame("signal", 2) == SignalTasks(2)
    assert client_frame("kill", None) == KillStep(None)
    assert client_frame("kill", 5) == KillStep(5.0)
    assert client_frame("pmi_fence_done", {"k": "v"}) == PmiFenceDone({"k": "v"})
    assert client_frame("winch", [50, 132]) == Winch(50, 132)
    refused(client_frame, "in", [0], where="in", text="[task or -1, bytes]")
    refused(client_frame, "in", [0, "text"], where="in[1]", text="bytes")
    refused(client_frame, "in", ["0", b""], where="in[0]", text="integer")
    refused(client_frame, "in", [-2, b""], where="in[0]")
    refused(client_frame, "signal", 65, where="signal", text="0 to 64")
    refused(client_frame, "signal", "TERM", where="signal", text="integer")
    refused(client_frame, "kill", -1, where="kill")
    refused(client_frame, "pmi_fence_done", {"k": 1}, where="pmi_fence_done['k']", text="string")
    refused(client_frame, "pmi_fence_done", [1], where="pmi_fence_done", text="map")
    refused(client_frame, "winch", [1, 2, 3], where="winch", text="[rows, cols]")
    refused(client_frame, "winch", [1, 70000], where="winch[1]", text="0 to 65535")
    refused(client_frame, "exit", [], where="method", text="in, signal, kill")
    refused(client_frame, None, [], where="method")
    assert set(CLIENT_FRAMES) == {"in", "signal", "kill", "pmi_fence_done", "winch"}


# --- control ops -----------------------------------------------------------------------------


def test_control_ops_round_trip():
    for op in (CtlAttach(msgid=9), CtlSignal(sig=10, target="batch"), CtlKill(kill_wait=2.0, notice="x"),
               CtlKill(), CtlStatus()):
        assert control_op(json.loads(json.dumps(control_request(op)))) == op
    assert set(CONTROL_OPS) == {"attach", "signal", "kill", "suspend", "resume", "status", "stat"}


@pytest.mark.parametrize("raw, where, text", [
    ([], "request", "JSON object"),
    ({}, "op", "one of attach"),
    ({"op": "bogus"}, "op", "'bogus'"),
    ({"op": 3}, "op", "one of"),
    ({"op": "signal"}, "sig", "missing"),
    ({"op": "signal", "sig": 99999}, "sig", "0 to 64"),
    ({"op": "signal", "sig": 10, "target": "all"}, "target", "one of"),
    ({"op": "signal", "sig": 10.0}, "sig", "integer"),
    ({"op": "kill", "kill_wait": "5"}, "kill_wait", "number"),
    ({"op": "kill", "kill_wait": -1}, "kill_wait", "number from 0"),
    ({"op": "kill", "notice": "x" * 1025}, "notice", "1024"),
    ({"op": "attach", "msgid": -1}, "msgid", "0 to"),
    ({"op": "status", "verbose": True}, "verbose", "unknown field"),
])
def test_bad_control_ops(raw, where, text):
    refused(control_op, raw, where=where, text=text)


# --- spec.json and status.json ---------------------------------------------------------------

SPEC = {"job_id": 12, "step": "batch", "argv": ["/bin/bash", "script"], "cwd": "/tmp", "env": {"A": "b"},
        "uid": 1000, "gid": 100, "stdout": "/tmp/out", "stderr": None, "stdin": "/dev/null", "open_mode": "truncate",
        "kill_wait": 30, "suspend_grace": 2, "mem_limit_mb": 0, "cgroup_root": "spurd_n1", "v": 2}


def test_spec_round_trip_and_the_version_1_upcast():
    spec = structure(SupervisorSpec, SPEC)
    assert spec.label == "JOB 12" and spec.batch and spec.tasks == (0,)
    assert structure(SupervisorSpec, json.loads(json.dumps(unstructure(spec)))) == spec
    step = attrs.evolve(spec, step=3, io=StepIo(pty=True, winsize=(24, 80)), tasks=(4, 7))
    assert step.label == "STEP 12.3"
    assert structure(SupervisorSpec, json.loads(json.dumps(unstructure(step)))) == step
    # Version 1 (no "v") carried inherit_stdio, which nothing read: upcast, not refused.
    old = {k: v for k, v in SPEC.items() if k != "v"} | {"inherit_stdio": False}
    assert structure(SupervisorSpec, old) == spec
    refused(structure, SupervisorSpec, {**SPEC, "v": 3}, where="v", text="1 to 2")
    refused(structure, SupervisorSpec, {**SPEC, "inherit_stdio": False}, where="inherit_stdio", text="unknown")


@pytest.mark.parametrize("change, where, text", [
    ({"argv": []}, "argv", "non-empty"),
    ({"step": "extern"}, "step", "one of 'batch' or an integer"),
    ({"step": -1}, "step", "one of 'batch' or an integer"),
    ({"kill_wait": -1}, "kill_wait", "number from 0"),
    ({"usage_interval": 0.01}, "usage_interval", "0.1"),
    ({"cgroup_mode": "v3"}, "cgroup_mode", "one of"),
    ({"umask": 0o1000}, "umask", "0 to 511"),
    ({"uid": U32}, "uid", "0 to"),
    ({"tasks": [0, -3]}, "tasks[1]", "0 to"),
    ({"node_name": "n 1"}, "node_name", "string"),
    ({"job_id": "12"}, "job_id", "integer"),
])
def test_bad_specs(change, where, text):
    refused(structure, SupervisorSpec, {**SPEC, **change}, where=where, text=text)
    without = {k: v for k, v in SPEC.items() if k != "job_id"}
    refused(structure, SupervisorSpec, without, where="job_id", text="missing")


def test_run_status():
    raw = {"wait_status": 3 << 8, "exit_code": 3, "signal": 0, "oom": False, "ended_at": 1.5, "started_at": 1.0,
           "main_pid": 99, "killed": False, "tasks": {"0": 768, "1": None}, "fenced": False,
           "usage": {"ntasks": 2, "user_cpu": 0.5}, "unkillable": [], "error": "", "synthetic": False}
    status = structure(RunStatus, raw)
    assert status.tasks == {"0": 768, "1": None}
    assert structure(RunStatus, unstructure(status)) == status
    refused(structure, RunStatus, {**raw, "tasks": {"x": 1}}, where="tasks", text="task ids")
    refused(structure, RunStatus, {**raw, "exit_code": 256}, where="exit_code", text="0 to 255")
    refused(structure, RunStatus, {**raw, "usage": {"k": [1]}}, where="usage.k")
    refused(structure, RunStatus, {"exit_code": 1}, where="wait_status", text="missing")


# --- anything at all -------------------------------------------------------------------------

wire = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.binary(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=6),
    max_leaves=25,
)
ALL = [("notification", m) for m in NOTIFICATIONS] + [("step", m) for m in STEP_REQUESTS] + \
      [("frame", m) for m in CLIENT_FRAMES] + [("ctl", None), ("spec", None), ("status", None)]


@given(st.sampled_from(ALL), wire)
def test_any_input_is_a_message_or_a_bad_request(boundary, raw):
    where, method = boundary
    try:
        if where == "notification":
            notification(method, raw)
        elif where == "step":
            step_request(method, raw)
        elif where == "frame":
            client_frame(method, raw)
        elif where == "ctl":
            control_op(raw)
        elif where == "spec":
            structure(SupervisorSpec, raw)
        else:
            structure(RunStatus, raw)
    except BadRequest:
        pass


@given(wire)
def test_any_fields_of_a_launch_are_a_launch_or_a_bad_request(value):
    for key in ("argv", "tasks", "io", "pmi", "env", "tls_peer"):
        try:
            step_request("launch_tasks", {**LAUNCH, key: value})
        except BadRequest as e:
            assert e.where.startswith(key), e
