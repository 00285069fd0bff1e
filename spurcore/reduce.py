"""``apply(state, op)``: the one place where cluster state changes.

Invariants (DESIGN.md 1, 2):
- Deterministic: no clock, random, I/O or config reads. Times come from ``op.at``; job,
  step and action ids are allocated here from counters in the state, so every replica
  that applies the same log allocates the same ids.
- Never raises for a well-typed op: an op that is invalid in the current state returns a
  ``Rejected`` (counted in ``state.rejected``) and leaves the rest of the state unchanged.
  Duplicate reports (``JobNodeComplete``, ``JobStepComplete``, ``ActionAcked``,
  ``JobLaunched``) are no-ops that return ``None``.
- Job base states move only along ``TRANSITIONS``.
- Intents: ``ActionRequested`` (and cancels, time limits, node failures, which request a
  KILL on the job's nodes) create an ``ActionRecord`` whose pending nodes are cleared only
  by ``ActionAcked``. ``JobStart`` records a start intent per node, cleared only by
  ``JobLaunched``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import attrs

from spurcore import arrays, depend, exitcodes, steps
from spurcore.model import BATCH_STEP, ActionRecord, ClusterState, Job, JobState, Node, Step
from spurcore.ops import (
    ActionAcked,
    ActionKind,
    ActionRequested,
    ArrayTasksSplit,
    HoldKind,
    JobCancelled,
    JobDeadlineReached,
    JobHeld,
    JobLaunched,
    JobNodeComplete,
    JobReleased,
    JobRequeued,
    JobsPurged,
    JobStart,
    JobStepComplete,
    JobSubmitted,
    JobTimeLimitReached,
    JobUpdated,
    NodeDown,
    NodeRegistered,
    Op,
    SignalTarget,
    StepCreated,
)
from spurcore.scheduler import (
    DependencyError,
    array_running,
    could_ever_fit,
    node_count,
    parse_dependency,
    pending_reason,
)

SIGKILL, SIGCONT, SIGSTOP = 9, 18, 19
PARTITIONS = ("debug",)  # one partition, holding every node
#: Slurm's upper bound for MaxArraySize; the proposer checks the configured one.
MAX_ARRAY_SIZE = 4_000_001
_STATE_BY_NAME = {s.value: s for s in JobState}


@attrs.frozen(slots=True)
class Rejected:
    """A deterministic refusal; ``message`` is Slurm's wording where Slurm has one."""

    code: str
    message: str


INVALID_JOB = Rejected("invalid_job_id", "Invalid job id specified")
ALREADY_DONE = Rejected("already_done", "Job/step already completing or completed")
JOB_PENDING = Rejected("job_pending", "Job is pending execution")
NOT_SUSPENDED = Rejected("not_suspended", "Job is not suspended")
NO_UPDATE = Rejected("transition_state_no_update", "Job can not be altered now, try again later")
INVALID_ARRAY = Rejected("invalid_array", "Invalid job array specification")
NOT_PENDING = Rejected("not_pending", "Job is no longer pending execution")
ACCESS_DENIED = Rejected("access_denied", "Access/permission denied")


class Event(StrEnum):
    START = "start"
    CANCEL = "cancel"
    SUSPEND = "suspend"
    RESUME = "resume"
    TIMEOUT = "timeout"
    NODE_FAIL = "node_fail"
    COMPLETE = "complete"  # the batch script ended; target decided by its exit status
    REQUEUE = "requeue"
    DEADLINE = "deadline"


_BY_STATUS = None  # marker: the target state is decided by exitcodes.final_state

_S = JobState
TRANSITIONS: dict[JobState, dict[Event, JobState | None]] = {
    _S.PENDING: {Event.START: _S.RUNNING, Event.CANCEL: _S.CANCELLED, Event.DEADLINE: _S.DEADLINE},
    _S.RUNNING: {
        Event.SUSPEND: _S.SUSPENDED,
        Event.CANCEL: _S.CANCELLED,
        Event.TIMEOUT: _S.TIMEOUT,
        Event.NODE_FAIL: _S.NODE_FAIL,
        Event.COMPLETE: _BY_STATUS,
        Event.REQUEUE: _S.PENDING,
    },
    _S.SUSPENDED: {
        Event.RESUME: _S.RUNNING,
        Event.CANCEL: _S.CANCELLED,
        Event.NODE_FAIL: _S.NODE_FAIL,
        Event.COMPLETE: _BY_STATUS,
        Event.REQUEUE: _S.PENDING,
    },
    # Terminal states: the late batch status of a killed job only updates its ExitCode,
    # and a finished batch job may be requeued (scontrol requeue).
    _S.CANCELLED: {Event.REQUEUE: _S.PENDING},
    _S.TIMEOUT: {Event.REQUEUE: _S.PENDING},
    _S.NODE_FAIL: {Event.REQUEUE: _S.PENDING},
    _S.COMPLETED: {Event.REQUEUE: _S.PENDING},
    _S.FAILED: {Event.REQUEUE: _S.PENDING},
    _S.OUT_OF_MEMORY: {Event.REQUEUE: _S.PENDING},
    _S.DEADLINE: {Event.REQUEUE: _S.PENDING},
}


class InvalidTransition(Exception):
    def __init__(self, state: JobState, event: Event) -> None:
        super().__init__(f"{event.value} is not allowed in state {state.value}")
        self.state = state
        self.event = event


def check_transition(state: JobState, event: Event) -> JobState | None:
    """The target of ``event`` from ``state``; raises InvalidTransition (changing nothing)."""
    targets = TRANSITIONS[state]
    if event not in targets:
        raise InvalidTransition(state, event)
    return targets[event]


# --- helpers -------------------------------------------------------------------------------


def _reject(state: ClusterState, rejection: Rejected) -> Rejected:
    state.rejected += 1
    return rejection


def _new_action(
    state: ClusterState, job: Job, step_id: int, kind: ActionKind, nodes: set[str], op_at: float,
    uid: int, signal: int = 0, target: SignalTarget = SignalTarget.STEPS,
) -> int:
    action_id = state.next_action_id
    state.next_action_id += 1
    if nodes:
        state.actions[action_id] = ActionRecord(
            action_id, job.job_id, step_id, int(kind), signal, int(target), uid, op_at, set(nodes)
        )
    return action_id


def _acquire(state: ClusterState, job: Job) -> None:
    for name in job.nodes:
        node = state.nodes.get(name)
        if node is not None:
            node.alloc_cpus += job.cpus_per_node
            node.alloc_mem += job.mem_per_node
            node.jobs.add(job.job_id)
    job.allocated = True


def _release(state: ClusterState, job: Job) -> None:
    if not job.allocated:
        return
    for name in job.nodes:
        node = state.nodes.get(name)
        if node is not None:
            node.alloc_cpus = max(0, node.alloc_cpus - job.cpus_per_node)
            node.alloc_mem = max(0, node.alloc_mem - job.mem_per_node)
    job.allocated = False


def _drop_launch_intents(state: ClusterState, job: Job) -> None:
    job.unlaunched.clear()
    state.unlaunched.pop(job.job_id, None)


def _make_runnable(state: ClusterState, job: Job) -> None:
    """A pending, unheld job joins the scheduler's queue (kept in job id order: FIFO)."""
    if job.hold or job.job_id in state.runnable:
        return
    last = next(reversed(state.runnable), 0)
    state.runnable[job.job_id] = None
    if job.job_id < last:  # a release or a requeue: restore submit order
        state.runnable = dict.fromkeys(sorted(state.runnable))


def _maybe_finish(state: ClusterState, job: Job) -> None:
    """Leave COMPLETING once no node still runs anything of the job."""
    if not job.completing or job.undone:
        return
    job.completing = False
    _release(state, job)
    for name in job.nodes:
        node = state.nodes.get(name)
        if node is not None:
            node.jobs.discard(job.job_id)
    if job.terminal:
        # Slurm closes a finished job's steps: one whose node never reported (its agent had
        # not started it when the kill came, or was away) ends with the job.
        for step in job.steps.values():
            if step.state == "RUNNING":
                _end_step(job, step, None, "CANCELLED", job.end_time)
    if job.state is JobState.PENDING:  # a requeued job is ready to be scheduled again
        job.nodes = ()
        state.pending[job.job_id] = None
        _make_runnable(state, job)


def _end_running(state: ClusterState, job: Job, new_state: JobState, at: float, uid: int) -> None:
    """A running or suspended job is ended by the controller: terminate it everywhere."""
    if job.state is JobState.SUSPENDED:
        job.end_time = job.suspend_time or at
        job.suspended_secs += at - job.suspend_time
    else:
        job.end_time = at
    job.state = new_state
    job.stopped = False
    job.completing = True
    _drop_launch_intents(state, job)
    live = {n for n in job.undone if state.nodes.get(n) is not None and state.nodes[n].up}
    job.undone = live
    _new_action(state, job, -1, ActionKind.KILL, set(job.nodes), at, uid)
    _maybe_finish(state, job)


def _close_step(step: Step, raw: int | None, state_name: str, at: float) -> None:
    step.state = state_name
    step.exit_status = raw
    step.end_time = at


# --- handlers ------------------------------------------------------------------------------


def _node_registered(state: ClusterState, op: NodeRegistered) -> Any:
    node = state.nodes.get(op.name)
    if node is None:
        state.nodes[op.name] = Node(op.name, op.cpus, op.mem_mb, op.address, registered_at=op.at)
        return None
    node.cpus, node.mem_mb, node.address = op.cpus, op.mem_mb, op.address
    node.up, node.reason, node.registered_at = True, "", op.at
    return None


def _node_down(state: ClusterState, op: NodeDown) -> Any:
    node = state.nodes.get(op.name)
    if node is None:
        return _reject(state, Rejected("invalid_node", f"Invalid node name specified: {op.name}"))
    if not node.up:
        return None
    node.up, node.reason, node.down_at = False, op.reason, op.at
    for job_id in sorted(node.jobs):
        job = state.jobs.get(job_id)
        if job is None:
            continue
        job.unlaunched.discard(op.name)
        if not job.unlaunched:
            state.unlaunched.pop(job_id, None)
        if job.state in (JobState.RUNNING, JobState.SUSPENDED):
            _fail_on_node(state, job, op.name, op.at, op.fenced, op.job_requeue, op.begin_time)
        else:
            job.undone.discard(op.name)
            _maybe_finish(state, job)
    return None


def _fail_on_node(state: ClusterState, job: Job, node: str, at: float, fenced: bool, job_requeue: bool,
                  begin_time: float) -> None:
    """``job`` ends NODE_FAIL because ``node`` failed (or fenced it: lost the controllers'
    quorum); its other nodes are told to terminate it. Slurm's JobRequeue: a batch job runs
    again unless it was submitted --no-requeue, but only when ``fenced`` (the proposer knows
    the failed node's jobs stop themselves before it can be declared failed)."""
    check_transition(job.state, Event.NODE_FAIL)
    job.reason, job.state_desc, job.failed_node = "NodeDown", "", node
    job.exit_status = 1  # Slurm sets exit_code=1 raw: shown 0:1
    for step in job.steps.values():
        if step.state == "RUNNING" and node in step.nodes:
            _end_step(job, step, None, "NODE_FAIL", at)
    job.undone.discard(node)
    _end_running(state, job, JobState.NODE_FAIL, at, 0)
    wants = job.spec.requeue == 1 or (job.spec.requeue == -1 and job_requeue)
    if fenced and wants and job.spec.script is not None:
        _back_to_pending(state, job, at, begin_time, job.hold)


def _job_submitted(state: ClusterState, op: JobSubmitted) -> Any:
    known = state.requests.get(op.request_id) if op.request_id else None
    if known is not None:
        return known[1]
    spec = op.spec
    if spec.partition not in PARTITIONS:
        return _reject(state, Rejected("invalid_partition", "Invalid partition name specified"))
    if spec.nodes < 1 or spec.ntasks < 1 or spec.cpus_per_task < 1 or spec.ntasks < spec.nodes:
        return _reject(state, Rejected("bad_request", "Invalid node count or task count specification"))
    if spec.dependency:
        try:
            _, items = parse_dependency(spec.dependency)
        except DependencyError:
            return _reject(state, Rejected("dependency", "Job dependency problem"))
        if any(item.job_id >= state.next_job_id for item in items):
            return _reject(state, Rejected("dependency", "Job dependency problem"))
    ranges: list[list[int]] = []
    throttle = 0
    if spec.array:
        if spec.script is None:
            return _reject(state, INVALID_ARRAY)
        try:
            ranges, throttle = arrays.parse_array(spec.array, MAX_ARRAY_SIZE)
        except arrays.ArrayError:
            return _reject(state, INVALID_ARRAY)
    job_id = state.next_job_id
    job = Job(job_id, spec, op.at, eligible_time=max(op.at, spec.begin_time))
    if not could_ever_fit(state, job):
        return _reject(
            state, Rejected("node_config", "Requested node configuration is not available")
        )
    state.next_job_id += 1
    if spec.hold:
        job.hold = HoldKind.USER
    if spec.array:
        job.array_job_id, job.array_throttle = job_id, throttle
        if arrays.count(ranges) == 1:
            job.array_task_id = ranges[0][0]  # a one-task array is that task (as Slurm)
        else:
            job.array_pending = ranges
        state.array_members[job_id] = {job_id: None}
    state.jobs[job_id] = job
    state.pending[job_id] = None
    if not job.hold:
        state.runnable[job_id] = None  # the newest id: order kept
    if op.request_id:
        state.requests[op.request_id] = (job_id, job_id)
    return job_id


def _split_task(state: ClusterState, record: Job, task: int) -> Job:
    """Task ``task`` (pending in ``record``) becomes a job of its own; the last one turns
    the record itself into that task (Slurm's job_array_split)."""
    rest = arrays.remove(record.array_pending, task)
    if not rest:
        record.array_pending = []
        record.array_task_id = task
        return record
    record.array_pending = rest
    job_id = state.next_job_id
    state.next_job_id += 1
    job = Job(
        job_id, record.spec, record.submit_time, eligible_time=record.eligible_time, hold=record.hold,
        dep_resolved=dict(record.dep_resolved), array_job_id=record.array_job_id, array_task_id=task,
    )
    state.jobs[job_id] = job
    state.array_members.setdefault(record.array_job_id, {})[job_id] = None
    return job


def _array_record(state: ClusterState, array_job_id: int) -> Job | None:
    """The record of an array's pending tasks (None once every task stands alone)."""
    job = state.jobs.get(array_job_id)
    if job is None or job.array_job_id != array_job_id or job.array_task_id >= 0:
        return None
    return job


def _job_start(state: ClusterState, op: JobStart) -> Any:
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if job.state is not JobState.PENDING or job.completing or job.hold:
        return _reject(state, NOT_PENDING)
    if op.array_task_id >= 0:
        if job.array_task_id >= 0 or not arrays.contains(job.array_pending, op.array_task_id):
            return _reject(state, NOT_PENDING)
        if job.array_throttle and array_running(state, job.array_job_id) >= job.array_throttle:
            return _reject(state, Rejected("array_task_limit", "Job array task limit reached"))
    elif job.array_pending and job.array_task_id < 0:
        return _reject(state, Rejected("bad_allocation", "A job array starts task by task"))
    nodes = set(op.nodes)
    if len(op.nodes) != node_count(job.spec) or len(nodes) != len(op.nodes):
        return _reject(state, Rejected("bad_allocation", "Requested node configuration is not available"))
    for name in op.nodes:
        node = state.nodes.get(name)
        if (
            node is None
            or not node.up
            or node.cpus - node.alloc_cpus < op.cpus_per_node
            or node.mem_mb - node.alloc_mem < op.mem_per_node
        ):
            return _reject(state, Rejected("resources", f"Resources not available on {name}"))
    check_transition(job.state, Event.START)
    if op.array_task_id >= 0:
        job = _split_task(state, job, op.array_task_id)
    job.state = JobState.RUNNING
    job.reason, job.state_desc = "None", ""
    job.start_time = op.at
    job.nodes = op.nodes
    job.cpus_per_node, job.mem_per_node = op.cpus_per_node, op.mem_per_node
    job.unlaunched = nodes
    job.undone = set(nodes)
    job.node_reported = False
    job.exit_status = None
    _acquire(state, job)
    state.pending.pop(job.job_id, None)
    state.runnable.pop(job.job_id, None)
    state.unlaunched[job.job_id] = None
    if job.spec.script is not None:
        job.steps[BATCH_STEP] = Step(
            job.job_id, BATCH_STEP, "batch", (), 1, (op.nodes[0],), "RUNNING", op.at, uid=job.spec.uid
        )
    return job.job_id if op.array_task_id >= 0 else None  # an array task: its new job id


def _job_launched(state: ClusterState, op: JobLaunched) -> Any:
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if op.node not in job.unlaunched:
        return None  # duplicate ACK, or the intent was dropped by a cancel
    job.unlaunched.discard(op.node)
    if not job.unlaunched:
        state.unlaunched.pop(job.job_id, None)
    return None


def _step_created(state: ClusterState, op: StepCreated) -> Any:
    known = state.requests.get(op.request_id) if op.request_id else None
    if known is not None:
        return known[1]
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if job.state is JobState.PENDING:
        return _reject(state, JOB_PENDING)
    if job.state is not JobState.RUNNING or job.completing:
        return _reject(state, ALREADY_DONE)
    if op.nodes:
        layout = _op_layout(op)
        if layout is None:
            return _reject(state, Rejected(steps.BAD_TASK_COUNT.code, steps.BAD_TASK_COUNT.message))
        refusal = steps.check(job.nodes, job.cpus_per_node, job.step_cpus, layout)
        if refusal is not None:
            return _reject(state, Rejected(refusal.code, refusal.message))
    else:  # version 1: every task on one node, nothing held
        node = op.node or job.batch_host
        if node not in job.nodes:
            return _reject(state, Rejected("bad_node", f"Node {node} is not part of job {job.job_id}"))
        layout = steps.StepLayout((node,), (tuple(range(op.ntasks)),), (0,), True)
    step_id = job.next_step_id
    job.next_step_id += 1
    job.steps[step_id] = Step(
        job.job_id, step_id, op.name, op.argv, layout.ntasks, layout.nodes, "RUNNING", op.at, uid=op.uid,
        tasks=layout.tasks if op.nodes else (), cpus=layout.cpus if op.nodes else (), overlap=layout.overlap,
        cpus_per_task=op.cpus_per_task, distribution=op.distribution,
    )
    if not layout.overlap:
        for node, cpus in zip(layout.nodes, layout.cpus, strict=True):
            job.step_cpus[node] = job.step_cpus.get(node, 0) + cpus
    if op.request_id:
        state.requests[op.request_id] = (job.job_id, step_id)
    return step_id


def _op_layout(op: StepCreated) -> steps.StepLayout | None:
    """The layout a version-2 StepCreated carries (None if its lists do not add up)."""
    if len(op.task_counts) != len(op.nodes) or sum(op.task_counts) != len(op.task_ids) or op.ntasks != len(op.task_ids):
        return None
    tasks, i = [], 0
    for count in op.task_counts:
        tasks.append(tuple(op.task_ids[i:i + count]))
        i += count
    return steps.StepLayout(op.nodes, tuple(tasks), op.cpus, op.overlap)


def _end_step(job: Job, step: Step, raw: int | None, state_name: str, at: float) -> None:
    """Close a running step and give back the CPUs it held."""
    _close_step(step, raw, state_name, at)
    if step.overlap or not step.cpus:  # a batch or pre-layout step held nothing
        return
    for node, cpus in zip(step.nodes, step.cpus, strict=True):
        left = job.step_cpus.get(node, 0) - cpus
        if left > 0:
            job.step_cpus[node] = left
        else:
            job.step_cpus.pop(node, None)


def _job_step_complete(state: ClusterState, op: JobStepComplete) -> Any:
    """One node's part of a step ended. The step ends when all of its nodes have reported:
    its status combines theirs as slurmctld's step_partial_comp does (the highest raw
    status, OOM winning), and DerivedExitCode follows."""
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    step = job.steps.get(op.step_id)
    if step is None:
        return _reject(state, Rejected("invalid_step", f"Job step {op.job_id}.{op.step_id} not found"))
    if step.state != "RUNNING" or op.node in step.node_status:
        return None  # duplicate report
    if op.node not in step.nodes:
        return _reject(state, Rejected("bad_node", f"Node {op.node} is not part of step {op.job_id}.{op.step_id}"))
    raw = exitcodes.SIG_OOM if op.oom else exitcodes.raw_status(op.exit_code, op.signal)
    step.node_status[op.node] = raw
    if op.usage:
        step.usage[op.node] = dict(op.usage)
    if len(step.node_status) < len(step.nodes):
        return None
    combined = 0
    for node in step.nodes:
        combined = exitcodes.derive(combined, step.node_status[node], False)
    oom = combined == exitcodes.SIG_OOM
    _end_step(job, step, combined, exitcodes.step_state(combined, oom), op.at)
    job.derived_ec = exitcodes.derive(job.derived_ec, combined, oom)
    return None


def _job_node_complete(state: ClusterState, op: JobNodeComplete) -> Any:
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if op.node != job.batch_host:
        return _reject(state, Rejected("bad_node", f"Node {op.node} is not the batch host of job {job.job_id}"))
    if job.node_reported:
        return None  # duplicate report
    if op.fenced and job.state in (JobState.RUNNING, JobState.SUSPENDED):
        # The node fenced the job (it lost the quorum for the fence timeout) and came back
        # before it was declared failed: to the job, its node failed all the same.
        _fail_on_node(state, job, op.node, op.at, True, op.job_requeue, op.begin_time)
        return None
    job.node_reported = True
    raw = exitcodes.SIG_OOM if op.oom else exitcodes.raw_status(op.exit_code, op.signal)
    batch = job.steps.get(BATCH_STEP)
    if batch is not None and batch.state == "RUNNING":
        _close_step(batch, raw, exitcodes.step_state(raw, op.oom), op.at)
    job.unlaunched.discard(op.node)
    if not job.unlaunched:
        state.unlaunched.pop(job.job_id, None)
    if job.state in (JobState.RUNNING, JobState.SUSPENDED):
        check_transition(job.state, Event.COMPLETE)
        name, reason, desc = exitcodes.final_state(raw, op.oom)
        if job.state is JobState.SUSPENDED:
            job.suspended_secs += op.at - job.suspend_time
        job.state, job.reason, job.state_desc = _STATE_BY_NAME[name], reason, desc
        job.exit_status = raw
        job.end_time = op.at
        job.stopped = False
        if job.spec.script is not None:
            # The batch host's supervisor reaped everything there. An srun-made allocation
            # has no supervisor of its own: its node is terminated like the others, so the
            # agent learns that the allocation ended.
            job.undone.discard(op.node)
        job.completing = True
        if job.undone:  # other nodes of the job: terminate whatever still runs there
            _new_action(state, job, -1, ActionKind.KILL, set(job.undone), op.at, 0)
        _drop_launch_intents(state, job)
        _maybe_finish(state, job)
        return None
    if job.terminal:
        # Already ended by the controller (cancel, time limit, node failure): Slurm only
        # fills in the shell's status, typically 0:15.
        if not job.exit_status:
            job.exit_status = raw
        job.undone.discard(op.node)
        _maybe_finish(state, job)
        return None
    return _reject(state, JOB_PENDING)


def _cancel_pending(state: ClusterState, job: Job, uid: int, at: float) -> None:
    check_transition(job.state, Event.CANCEL)
    job.reason = pending_reason(state, job.job_id, at)
    job.state = JobState.CANCELLED
    job.start_time = job.end_time = at
    job.exit_status = 0
    job.requid = uid
    state.pending.pop(job.job_id, None)
    state.runnable.pop(job.job_id, None)


def _cancel(state: ClusterState, job: Job, uid: int, at: float) -> Any:
    if job.state is JobState.PENDING and not job.completing:
        _cancel_pending(state, job, uid, at)
        return 0
    if job.state in (JobState.RUNNING, JobState.SUSPENDED):
        check_transition(job.state, Event.CANCEL)
        job.requid = uid
        _end_running(state, job, JobState.CANCELLED, at, uid)
        return state.next_action_id - 1
    return _reject(state, ALREADY_DONE)


def _action_requested(state: ClusterState, op: ActionRequested) -> Any:
    known = state.requests.get(op.request_id) if op.request_id else None
    if known is not None:
        return known[1]
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    kind = ActionKind(op.kind)
    result: Any
    if op.step_id >= 0:
        step = job.steps.get(op.step_id)
        if step is None:
            return _reject(state, Rejected("invalid_step", f"Job step {op.job_id}.{op.step_id} not found"))
        if step.state != "RUNNING" or job.terminal:
            return _reject(state, ALREADY_DONE)
        if kind not in (ActionKind.KILL, ActionKind.SIGNAL):
            return _reject(state, NO_UPDATE)
        result = _new_action(
            state, job, op.step_id, kind, set(step.nodes), op.at, op.uid, op.signal, SignalTarget(op.target)
        )
    elif kind is ActionKind.KILL or (
        kind is ActionKind.SIGNAL and op.signal == SIGKILL and op.target == SignalTarget.STEPS
    ):
        result = _cancel(state, job, op.uid, op.at)
    elif job.terminal or job.completing:
        return _reject(state, ALREADY_DONE)
    elif job.state is JobState.PENDING:
        return _reject(state, JOB_PENDING if kind is not ActionKind.SIGNAL else NO_UPDATE)
    elif kind is ActionKind.SIGNAL:
        if job.state is JobState.SUSPENDED:
            return _reject(state, NO_UPDATE)
        if op.signal == SIGSTOP:
            job.stopped = True
        elif op.signal == SIGCONT:
            job.stopped = False
        result = _new_action(
            state, job, -1, kind, set(job.nodes), op.at, op.uid, op.signal, SignalTarget(op.target)
        )
    elif kind is ActionKind.STOP:
        if job.state is not JobState.RUNNING:
            return _reject(state, Rejected("already_suspended", "Job already suspended"))
        check_transition(job.state, Event.SUSPEND)
        job.state = JobState.SUSPENDED
        job.suspend_time = op.at
        _release(state, job)
        result = _new_action(state, job, -1, kind, set(job.nodes), op.at, op.uid)
    else:  # CONT
        if job.state is not JobState.SUSPENDED:
            return _reject(state, NOT_SUSPENDED)
        check_transition(job.state, Event.RESUME)
        job.state = JobState.RUNNING
        job.suspended_secs += op.at - job.suspend_time
        job.suspend_time = 0.0
        _acquire(state, job)
        result = _new_action(state, job, -1, kind, set(job.nodes), op.at, op.uid)
    if op.request_id and not isinstance(result, Rejected):
        state.requests[op.request_id] = (job.job_id, result)
    return result


def _action_acked(state: ClusterState, op: ActionAcked) -> Any:
    record = state.actions.get(op.action_id)
    if record is None:
        if 0 < op.action_id < state.next_action_id:
            return None  # every node already ACKed: a duplicate
        return _reject(state, Rejected("invalid_action", f"Unknown action id {op.action_id}"))
    if op.node not in record.pending:
        return None
    record.pending.discard(op.node)
    record.acks[op.node] = (op.status, op.errno)
    if not record.pending:
        del state.actions[op.action_id]
    job = state.jobs.get(record.job_id)
    if job is not None and record.kind == ActionKind.KILL and record.step_id < 0 and job.completing:
        # The agent ACKs a terminate only once nothing of the job runs on that node.
        job.undone.discard(op.node)
        _maybe_finish(state, job)
    return None


def _job_cancelled(state: ClusterState, op: JobCancelled) -> Any:
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    return _cancel(state, job, op.uid, op.at)


def _job_time_limit(state: ClusterState, op: JobTimeLimitReached) -> Any:
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if job.state is not JobState.RUNNING or job.completing:
        return _reject(state, ALREADY_DONE)
    check_transition(job.state, Event.TIMEOUT)
    job.reason, job.state_desc = "TimeLimit", ""
    _end_running(state, job, JobState.TIMEOUT, op.at, 0)
    return None


def _job_deadline(state: ClusterState, op: JobDeadlineReached) -> Any:
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if job.state is not JobState.PENDING or job.completing:
        return _reject(state, NOT_PENDING)
    check_transition(job.state, Event.DEADLINE)
    job.state, job.reason, job.state_desc = JobState.DEADLINE, "DeadLine", ""
    job.start_time = job.end_time = op.at
    job.exit_status = 0
    state.pending.pop(job.job_id, None)
    state.runnable.pop(job.job_id, None)
    return None


def _job_held(state: ClusterState, op: JobHeld) -> Any:
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if job.terminal:
        return _reject(state, ALREADY_DONE)
    job.hold = HoldKind.ADMIN if op.admin else HoldKind.USER
    state.runnable.pop(job.job_id, None)
    return None


def _job_released(state: ClusterState, op: JobReleased) -> Any:
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if job.terminal:
        return _reject(state, ALREADY_DONE)
    job.hold = HoldKind.NONE
    if job.job_id in state.pending:
        _make_runnable(state, job)
    return None


def _jobs_purged(state: ClusterState, op: JobsPurged) -> Any:
    leaving = {
        j for j in op.job_ids if (job := state.jobs.get(j)) is not None and job.terminal and not job.completing
    }
    if leaving:
        depend.remember(state, leaving, op.at)
    purged = 0
    for job_id in op.job_ids:
        job = state.jobs.get(job_id)
        if job is None or not job.terminal or job.completing:
            continue
        del state.jobs[job_id]
        purged += 1
        if job.array_job_id:
            _forget_array_member(state, job)
    if purged:
        gone = set(op.job_ids)
        for key in [k for k, v in state.requests.items() if v[0] in gone and v[0] not in state.jobs]:
            del state.requests[key]
    return purged


def _forget_array_member(state: ClusterState, job: Job) -> None:
    """A purged task's outcome stays countable (``afterok`` on the whole array) until the
    array's last record is gone."""
    array_id = job.array_job_id
    members = state.array_members.get(array_id)
    if members is not None:
        members.pop(job.job_id, None)
    if members:
        outcome = state.array_purged.setdefault(array_id, [0, 0])
        ok = job.state is JobState.COMPLETED and not job.array_pending
        outcome[0 if ok else 1] += 1
    else:
        state.array_members.pop(array_id, None)
        state.array_purged.pop(array_id, None)


def _job_requeued(state: ClusterState, op: JobRequeued) -> Any:
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if job.spec.script is None:
        return _reject(state, Rejected("batch_only", "Only batch jobs are accepted or processed"))
    if job.spec.requeue == 0:
        return _reject(state, Rejected("disabled", "Requested operation is presently disabled"))
    if job.state is JobState.PENDING or job.completing:
        return _reject(state, Rejected("not_running", "Job is pending execution"))
    check_transition(job.state, Event.REQUEUE)
    was_running = job.state in (JobState.RUNNING, JobState.SUSPENDED)
    if was_running:
        _end_running(state, job, JobState.CANCELLED, op.at, op.uid)
    _back_to_pending(state, job, op.at, op.begin_time, HoldKind.USER if op.hold else job.hold)
    return None


def _back_to_pending(state: ClusterState, job: Job, at: float, begin_time: float, hold: int) -> None:
    """A requeued job (ended on its nodes already) waits again as a new run: restarts + 1,
    eligible from ``begin_time`` (Slurm: now + cred_expire + 1, reason BeginTime)."""
    job.state = JobState.PENDING
    job.restarts += 1
    job.submit_time = at
    job.eligible_time = max(at, begin_time)
    job.reason, job.state_desc, job.failed_node = "BeginTime", "", ""
    job.requid = -1
    job.exit_status = None
    job.derived_ec = 0
    job.start_time = job.end_time = 0.0
    job.suspended_secs = 0.0
    job.steps = {}
    job.step_cpus = {}
    job.next_step_id = 0
    job.hold = hold
    if job.completing:
        return  # back in the queue once every node has ACKed the terminate
    job.nodes = ()
    state.pending[job.job_id] = None
    _make_runnable(state, job)


def _array_tasks_split(state: ClusterState, op: ArrayTasksSplit) -> Any:
    """-> {task: job id} for every task named (split now, or already standing alone)."""
    members = state.array_members.get(op.array_job_id)
    if not members:
        return _reject(state, INVALID_JOB)
    record = _array_record(state, op.array_job_id)
    if record is not None and (record.state is not JobState.PENDING or record.completing):
        record = None  # a cancelled array record keeps its never-started tasks
    known = {state.jobs[j].array_task_id: j for j in members if state.jobs[j].array_task_id >= 0}
    out: dict[int, int] = {}
    for task in op.task_ids:
        if task in known:
            out[task] = known[task]
        elif record is not None and arrays.contains(record.array_pending, task):
            job = _split_task(state, record, task)
            out[task] = known[task] = job.job_id
            if job is not record:
                state.pending[job.job_id] = None
                if not job.hold:
                    _make_runnable(state, job)
        else:
            return _reject(state, INVALID_JOB) if not out else out
    return out


def _parse_nonneg(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


#: scontrol update job fields: name -> (JobSpec field or None, pending jobs only, admin only)
UPDATABLE: dict[str, tuple[str | None, bool, bool]] = {
    "TimeLimit": ("time_limit", False, False),
    "TimeMin": ("time_min", True, False),
    "JobName": ("name", False, False),
    "Comment": ("comment", False, False),
    "WCKey": ("wckey", False, False),
    "Account": ("account", True, False),
    "QOS": ("qos", True, False),
    "Dependency": ("dependency", True, False),
    "Partition": ("partition", True, False),
    "Nice": ("nice", True, False),
    "StartTime": (None, True, False),
    "Deadline": ("deadline", False, False),
    "Requeue": ("requeue", False, False),
    "MailUser": ("mail_user", False, False),
    "MailType": ("mail_type", False, False),
    "Features": ("constraint", True, False),
    "NumNodes": ("nodes", True, False),
    "NumTasks": ("ntasks", True, False),
    "ArrayTaskThrottle": (None, False, False),
}


def _job_updated(state: ClusterState, op: JobUpdated) -> Any:
    """All of ``op.changes`` or nothing, with Slurm's refusals (src/slurmctld/job_mgr.c
    ``update_job``): pending-only fields on a started job, a user raising its own time
    limit or lowering its nice value, an unknown partition or a dependency that does not
    parse."""
    job = state.jobs.get(op.job_id)
    if job is None:
        return _reject(state, INVALID_JOB)
    if job.terminal and not (set(op.changes) <= {"Comment", "WCKey", "JobName"}):
        return _reject(state, Rejected("job_finished", "Job has already finished"))
    pending = job.state is JobState.PENDING and not job.completing
    fields: dict[str, Any] = {}
    eligible = None
    throttle = None
    for key, value in op.changes.items():
        rule = UPDATABLE.get(key)
        if rule is None:
            return _reject(state, Rejected("bad_request", f"Update of {key} is not supported"))
        field, pending_only, admin_only = rule
        if pending_only and not pending:
            return _reject(state, NOT_PENDING)
        if admin_only and not op.admin:
            return _reject(state, ACCESS_DENIED)
        if key in ("TimeLimit", "TimeMin"):
            if value is not None and _parse_nonneg(value) is None:
                return _reject(state, Rejected("bad_request", "Invalid time limit specification"))
            if key == "TimeLimit" and not op.admin:
                old = job.spec.time_limit
                if old is not None and (value is None or value > old):
                    return _reject(state, ACCESS_DENIED)
        elif key in ("Nice", "Requeue", "NumNodes", "NumTasks", "ArrayTaskThrottle"):
            if not isinstance(value, int) or isinstance(value, bool):
                return _reject(state, Rejected("bad_request", f"Invalid {key} value"))
            if key == "Nice" and (value < 0 and not op.admin or abs(value) > 2147483645):
                return _reject(state, ACCESS_DENIED if value < 0 else Rejected("bad_request", "Invalid nice value"))
            if key == "Requeue" and value not in (0, 1):
                return _reject(state, Rejected("bad_request", "Invalid Requeue value"))
            if key in ("NumNodes", "NumTasks") and value < 1:
                return _reject(state, Rejected("bad_request", "Invalid node count or task count specification"))
            if key == "ArrayTaskThrottle":
                if not job.array_job_id or value < 0:
                    return _reject(state, Rejected("bad_request", "Invalid ArrayTaskThrottle value"))
                throttle = value
                continue
        elif key in ("StartTime", "Deadline"):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                return _reject(state, Rejected("bad_request", f"Invalid {key} value"))
            if key == "StartTime":
                eligible = float(value)
                continue
            value = float(value)
        elif not isinstance(value, str):
            return _reject(state, Rejected("bad_request", f"Invalid {key} value"))
        elif key == "Partition" and value not in PARTITIONS:
            return _reject(state, Rejected("invalid_partition", "Invalid partition name specified"))
        elif key == "Dependency" and value:
            try:
                _, items = parse_dependency(value)
            except DependencyError:
                return _reject(state, Rejected("dependency", "Job dependency problem"))
            if any(item.job_id >= state.next_job_id or item.job_id == job.job_id for item in items):
                return _reject(state, Rejected("dependency", "Job dependency problem"))
        assert field is not None
        fields[field] = value
    if fields:
        spec = attrs.evolve(job.spec, **fields)
        if spec.ntasks < spec.nodes:
            return _reject(state, Rejected("bad_request", "Invalid node count or task count specification"))
        job.spec = spec
        if "dependency" in fields:
            job.dep_resolved = {}
    if eligible is not None:
        job.eligible_time = eligible
    if throttle is not None:
        record = state.jobs.get(job.array_job_id) or job
        record.array_throttle = throttle
        for member in state.array_members.get(job.array_job_id, ()):
            state.jobs[member].array_throttle = throttle
    return None


_HANDLERS: dict[type, Callable[[ClusterState, Any], Any]] = {
    NodeRegistered: _node_registered,
    NodeDown: _node_down,
    JobSubmitted: _job_submitted,
    JobStart: _job_start,
    JobLaunched: _job_launched,
    StepCreated: _step_created,
    JobStepComplete: _job_step_complete,
    JobNodeComplete: _job_node_complete,
    ActionRequested: _action_requested,
    ActionAcked: _action_acked,
    JobCancelled: _job_cancelled,
    JobTimeLimitReached: _job_time_limit,
    JobHeld: _job_held,
    JobReleased: _job_released,
    JobsPurged: _jobs_purged,
    JobRequeued: _job_requeued,
    ArrayTasksSplit: _array_tasks_split,
    JobUpdated: _job_updated,
    JobDeadlineReached: _job_deadline,
}


def jobs_touched_by(state: ClusterState, op: Op) -> tuple[int, ...]:
    """Ids of the jobs whose records ``op`` may change; call it *before* applying ``op``.

    Readers that cache per-job views (the service's info cache, the accounting projection)
    invalidate exactly these. Derived fields (pending reasons, dependency text, run time)
    are not covered: they are recomputed by the readers.
    """
    if isinstance(op, JobSubmitted):
        return (state.next_job_id,)
    if isinstance(op, NodeDown):
        node = state.nodes.get(op.name)
        return tuple(node.jobs) if node is not None else ()
    if isinstance(op, ActionAcked):
        record = state.actions.get(op.action_id)
        return (record.job_id,) if record is not None else ()
    if isinstance(op, JobsPurged):
        return op.job_ids
    if isinstance(op, JobStart) and op.array_task_id >= 0:
        return (op.job_id, state.next_job_id)
    if isinstance(op, ArrayTasksSplit):
        return (op.array_job_id, *range(state.next_job_id, state.next_job_id + len(op.task_ids)))
    if isinstance(op, JobUpdated) and "ArrayTaskThrottle" in op.changes:
        job = state.jobs.get(op.job_id)
        if job is not None and job.array_job_id:
            return tuple(state.array_members.get(job.array_job_id, ()))
    job_id = getattr(op, "job_id", None)
    return (job_id,) if job_id is not None else ()


def apply(state: ClusterState, op: Op) -> Any:
    """Fold ``op`` into ``state``; returns the op's result or a ``Rejected``."""
    handler = _HANDLERS.get(type(op))
    if handler is None:
        return _reject(state, Rejected("unknown_op", f"unknown op {type(op).__name__}"))
    try:
        return handler(state, op)
    except InvalidTransition as exc:
        # Handlers check transitions before mutating, so nothing has changed.
        return _reject(state, Rejected("invalid_transition", str(exc)))
