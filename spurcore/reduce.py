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

import operator
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import attrs

from spurcore import arrays, depend, exitcodes, gres, policy, steps
from spurcore.model import (
    BATCH_STEP,
    Account,
    ActionRecord,
    Assoc,
    ClusterState,
    Job,
    JobState,
    Node,
    Partition,
    Qos,
    Step,
    User,
    assoc_key,
    default_partition,
    in_partition,
    partitions_of,
)
from spurcore.ops import (
    AccountingUpdated,
    ActionAcked,
    ActionKind,
    ActionRequested,
    ArrayTasksSplit,
    ClusterConfigured,
    HoldKind,
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
    Op,
    PartitionUpdated,
    SignalTarget,
    StepCreated,
)
from spurcore.resources import parse_constraint
from spurcore.scheduler import (
    DependencyError,
    array_running,
    could_ever_fit,
    features_valid,
    node_count,
    parse_dependency,
    pending_reason,
)
from spurcore.schema import NODE_NAME

SIGKILL, SIGCONT, SIGSTOP = 9, 18, 19
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
            for gname, indexes in job.gres_alloc.get(name, {}).items():
                node.gres_used[gname] = sorted(set(node.gres_used.get(gname, ())) | set(indexes))
    job.allocated = True


def _release(state: ClusterState, job: Job) -> None:
    if not job.allocated:
        return
    for name in job.nodes:
        node = state.nodes.get(name)
        if node is not None:
            node.alloc_cpus = max(0, node.alloc_cpus - job.cpus_per_node)
            node.alloc_mem = max(0, node.alloc_mem - job.mem_per_node)
            for gname, indexes in job.gres_alloc.get(name, {}).items():
                left = sorted(set(node.gres_used.get(gname, ())) - set(indexes))
                if left:
                    node.gres_used[gname] = left
                else:
                    node.gres_used.pop(gname, None)
    job.allocated = False


def _charge_usage(state: ClusterState, job: Job, end: float) -> None:
    """Fair-share usage: CPU-seconds of the run just ended, charged to its account and user,
    with the half-life decay of everything charged before (PriorityDecayHalfLife). The
    usage every priority of the period sees is kept first (``usage_epoch``), so that
    priorities stay what they were for the rest of a PriorityCalcPeriod, as in Slurm."""
    if not job.start_time or not job.nodes:
        return
    seconds = max(0.0, end - job.start_time - job.suspended_secs)
    if job.state is JobState.SUSPENDED:
        seconds = max(0.0, job.suspend_time - job.start_time - job.suspended_secs)
    charge = seconds * job.cpus_per_node * len(job.nodes)
    if charge <= 0:
        return
    settings = state.settings
    period = max(1, int(settings.get("priority_calc_period", 300)))
    epoch = int(end // period)
    if epoch > state.usage_epoch_no:
        state.usage_epoch = {k: list(v) for k, v in state.usage.items()}
        state.usage_epoch_no = epoch
    half_life = float(settings.get("priority_decay_half_life", 7 * 86400))
    key = assoc_key(job.spec.account, job.spec.user).rsplit("|", 1)[0]
    value, at = state.usage.get(key, (0.0, end))
    if half_life > 0 and end > at:
        value *= 0.5 ** ((end - at) / half_life)
    state.usage[key] = [value + charge, max(at, end)]


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
    if job.state is JobState.PENDING:  # a requeued job is ready to be scheduled again
        job.nodes = ()
        state.pending[job.job_id] = None
        _make_runnable(state, job)


def _end_running(state: ClusterState, job: Job, new_state: JobState, at: float, uid: int) -> None:
    """A running or suspended job is ended by the controller: terminate it everywhere."""
    _charge_usage(state, job, at)
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


def _low_resources(node: Node, cpus: int, mem: int) -> str:
    """Slurm's DRAIN reason for a node that registers with less than configured ("")."""
    reasons = []
    if cpus < node.cpus:
        reasons.append("Low CPUs")
    if mem < node.mem_mb:
        reasons.append(f"Low RealMemory (reported:{mem} < 100.00% of configured:{node.mem_mb})")
    return ", ".join(reasons)


def _set_reason(node: Node, reason: str, at: float, uid: int) -> None:
    node.reason, node.reason_time, node.reason_uid = reason, at, uid


def _node_registered(state: ClusterState, op: NodeRegistered) -> Any:
    if type(op.name) is not str or not NODE_NAME.fullmatch(op.name):
        return _reject(state, Rejected("invalid_node", f"Invalid node name specified: {op.name!r}"))
    if type(op.cpus) is not int or type(op.mem_mb) is not int or op.cpus < 1 or op.mem_mb < 0:
        return _reject(state, Rejected("bad_request", f"Invalid node resources: cpus={op.cpus!r} mem={op.mem_mb!r}"))
    node = state.nodes.get(op.name)
    if node is None:
        if any(n.configured for n in state.nodes.values()):
            # A configuration that names nodes knows them all: an agent may only register as
            # one of them. (One that names none leaves agents to name themselves, as before.)
            return _reject(state, Rejected("invalid_node", f"Invalid node name specified: {op.name}"))
        state.nodes[op.name] = Node(op.name, op.cpus, op.mem_mb, op.address, registered_at=op.at,
                                    reported_cpus=op.cpus, reported_mem=op.mem_mb)
        return None
    if not node.configured:
        node.cpus, node.mem_mb = op.cpus, op.mem_mb
    node.address, node.reported_cpus, node.reported_mem = op.address, op.cpus, op.mem_mb
    node.up, node.registered, node.registered_at = True, True, op.at
    if not (node.drain or node.fail or node.admin_down):
        node.reason = ""  # "Not responding" ends with the registration
    low = _low_resources(node, op.cpus, op.mem_mb) if node.configured else ""
    if low and not node.drain:
        node.drain = True
        _set_reason(node, low, op.at, -1)
    elif not low and node.drain and node.reason_uid == -1 and node.reason.startswith("Low "):
        # The admin fixed the node (more memory, the right CPU count): Slurm clears its own
        # registration drain when the node comes back valid.
        node.drain = False
        _set_reason(node, "", op.at, -1)
    return None


def _fail_jobs_on(state: ClusterState, node: Node, at: float, dead: bool, fenced: bool = False,
                  job_requeue: bool = False, begin_time: float = 0.0) -> None:
    """The node failed (or an admin set it DOWN): its running jobs end NODE_FAIL
    (``_fail_on_node``). A dead node's agent cannot ACK a terminate, so nothing waits for it."""
    for job_id in sorted(node.jobs):
        job = state.jobs.get(job_id)
        if job is None:
            continue
        job.unlaunched.discard(node.name)
        if not job.unlaunched:
            state.unlaunched.pop(job_id, None)
        if job.state in (JobState.RUNNING, JobState.SUSPENDED):
            _fail_on_node(state, job, node.name, at, fenced, job_requeue, begin_time, dead)
        elif dead:
            job.undone.discard(node.name)
            _maybe_finish(state, job)


def _node_down(state: ClusterState, op: NodeDown) -> Any:
    node = state.nodes.get(op.name)
    if node is None:
        return _reject(state, Rejected("invalid_node", f"Invalid node name specified: {op.name}"))
    if not node.up:
        return None
    node.up, node.down_at = False, op.at
    if not (node.drain or node.fail or node.admin_down):
        _set_reason(node, op.reason, op.at, -1)
    _fail_jobs_on(state, node, op.at, dead=True, fenced=op.fenced, job_requeue=op.job_requeue,
                  begin_time=op.begin_time)
    return None


NODE_STATES = ("DOWN", "DRAIN", "FAIL", "RESUME", "UNDRAIN", "IDLE", "")
INVALID_TRANSITION = Rejected("invalid_state_transition", "Invalid node state transition")


def _node_transition_valid(node: Node, want: str) -> bool:
    """node_mgr.c ``_valid_node_state_change`` for the states Spur has: RESUME needs a
    node that is DOWN, DRAIN or FAIL; IDLE one that is DOWN or idle (no jobs)."""
    down = node.admin_down or (not node.up and node.registered)
    if want == "RESUME":
        return down or node.drain or node.fail
    if want == "IDLE":
        return down or not node.jobs
    return True


def _node_state_updated(state: ClusterState, op: NodeStateUpdated) -> Any:
    """scontrol update nodename=... state=... reason=...: Slurm's DOWN, DRAIN, FAIL, RESUME,
    UNDRAIN and IDLE (RESUME that also brings a DOWN node back, as update_node does); no
    state: only the reason changes. All nodes or none."""
    want = op.state.upper()
    if want not in NODE_STATES:
        return _reject(state, Rejected("invalid_state", "Invalid node state specified"))
    if want in ("DOWN", "DRAIN", "FAIL") and not op.reason:
        return _reject(state, Rejected("reason_required", "You must specify a reason when DOWNING or DRAINING a node"))
    if not want and not op.reason:
        return _reject(state, Rejected("no_changes", "No changes specified"))
    nodes = [state.nodes.get(name) for name in op.names]
    if not op.names or any(n is None for n in nodes):
        missing = next((name for name, n in zip(op.names, nodes, strict=True) if n is None), "")
        return _reject(state, Rejected("invalid_node", f"Invalid node name specified: {missing}"))
    if not all(_node_transition_valid(n, want) for n in nodes if n is not None):
        return _reject(state, INVALID_TRANSITION)
    for node in nodes:
        assert node is not None
        if want == "DRAIN":
            node.drain = True
            _set_reason(node, op.reason, op.at, op.uid)
        elif want == "FAIL":
            node.fail = True
            _set_reason(node, op.reason, op.at, op.uid)
        elif want == "DOWN":
            node.admin_down = True
            node.down_at = op.at
            _set_reason(node, op.reason, op.at, op.uid)
            _fail_jobs_on(state, node, op.at, dead=not node.up)
        elif want == "UNDRAIN":
            node.drain = False
            if not (node.fail or node.admin_down):
                _set_reason(node, "" if node.up else node.reason, op.at, op.uid)
        elif want in ("RESUME", "IDLE"):
            node.drain = node.fail = node.admin_down = False
            _set_reason(node, "" if node.up or not node.registered else "Not responding", op.at, op.uid)
        else:  # the reason alone
            _set_reason(node, op.reason, op.at, op.uid)
    return None


def _features_known(state: ClusterState, constraint: str) -> bool:
    """The constraint parses and every feature it names is some node's (Slurm refuses others
    at submission: "Invalid feature specification")."""
    if not features_valid(constraint):
        return False
    if not state.config_digest:
        return True
    known = {f for node in state.nodes.values() for f in node.features}
    return all(f in known for alt in parse_constraint(constraint) or () for f in alt)


_SPEC_SLOTS = tuple(f.name for f in attrs.fields(JobSpec))
_SPEC_INDEX = {name: i for i, name in enumerate(_SPEC_SLOTS)}
_spec_values = operator.attrgetter(*_SPEC_SLOTS)


def _respec(spec: JobSpec, changes: dict[str, Any]) -> JobSpec:
    """``attrs.evolve`` for JobSpec without its cost (a submission fills in defaults, and a
    replay applies 100,000s of them): the fields in order, into the generated __init__."""
    values = list(_spec_values(spec))
    for name, value in changes.items():
        values[_SPEC_INDEX[name]] = value
    return JobSpec(*values)


def _job_partition(state: ClusterState, spec_partition: str) -> tuple[list[str], Rejected | None]:
    names = policy.job_partitions(state, spec_partition)
    parts = partitions_of(state)
    if not names:
        default = default_partition(state)
        if not default:
            return [], Rejected("invalid_partition", policy.NO_DEFAULT_PARTITION)
        names = [default]
    for name in names:
        if name not in parts:
            return names, Rejected("invalid_partition", policy.INVALID_PARTITION)
    return names, None


def _fail_on_node(state: ClusterState, job: Job, node: str, at: float, fenced: bool, job_requeue: bool,
                  begin_time: float, dead: bool = True) -> None:
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
    if dead:  # a dead node's agent cannot ACK a terminate (an admin's DOWN leaves it alive)
        job.undone.discard(node)
    _end_running(state, job, JobState.NODE_FAIL, at, 0)
    wants = job.spec.requeue == 1 or (job.spec.requeue == -1 and job_requeue)
    if fenced and wants and job.spec.script is not None:
        _back_to_pending(state, job, at, begin_time, job.hold)


#: The JobSpec fields the reducer re-checks the type of (the boundary checks every field
#: and its range, ``spurcore.messages``): the names and numbers state is keyed and
#: compared by. A few type tests per submission, cheap enough for replay.
_SPEC_STRS = ("name", "user", "cwd", "partition", "account", "qos", "array", "dependency", "nodelist", "exclude")
_SPEC_INTS = ("uid", "gid", "nodes", "ntasks", "cpus_per_task", "mem_mb")


def _spec_problem(spec: Any) -> str | None:
    """The first JobSpec field whose type is wrong (a proposer that skipped the boundary)."""
    for name in _SPEC_STRS:
        if type(getattr(spec, name)) is not str:
            return name
    for name in _SPEC_INTS:
        if type(getattr(spec, name)) is not int:
            return name
    if spec.script is not None and type(spec.script) is not str:
        return "script"
    return None


def _job_submitted(state: ClusterState, op: JobSubmitted) -> Any:
    known = state.requests.get(op.request_id) if op.request_id else None
    if known is not None:
        return known[1]
    spec = op.spec
    bad = _spec_problem(spec)
    if bad is not None:
        return _reject(state, Rejected("bad_request", f"Invalid job specification: {bad}"))
    names, refusal = _job_partition(state, spec.partition)
    if refusal is not None:
        return _reject(state, refusal)
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
    # What the submitter left out comes from the cluster: GRES options sent only as text,
    # the default partition, the partition's DefaultTime, the user's default account/QOS.
    changes: dict[str, Any] = {}
    try:
        if spec.options:
            for field, value in gres.fields_from_options(spec.options).items():
                if not getattr(spec, field):
                    changes[field] = value
        if changes or spec.gres or spec.gpus or spec.gpus_per_node or spec.gpus_per_task:
            gres.job_request(_respec(spec, changes) if changes else spec, max(1, spec.nodes))
    except gres.GresError as exc:
        return _reject(state, Rejected("invalid_gres", str(exc)))
    if spec.constraint and not _features_known(state, spec.constraint):
        return _reject(state, Rejected("invalid_feature", "Invalid feature specification"))
    parts = partitions_of(state)
    if spec.time_limit is None:
        default_time = policy.effective_time_limit(parts[names[0]], None)
        if default_time is not None:
            changes["time_limit"] = default_time
    account, qos, refusal_text = policy.check_submit(
        state, spec.user, spec.uid, spec.gid, spec.account, spec.qos, names)
    if refusal_text is not None:
        code = {policy.INVALID_ACCOUNT: "invalid_account", policy.INVALID_QOS: "invalid_qos"}.get(refusal_text,
                                                                                                    "accounting_policy")
        return _reject(state, Rejected(code, refusal_text))
    if account != spec.account:
        changes["account"] = account
    if qos != spec.qos:
        changes["qos"] = qos
    if changes:
        spec = _respec(spec, changes)
    job_id = state.next_job_id
    job = Job(job_id, spec, op.at, eligible_time=max(op.at, spec.begin_time))
    if not spec.partition:
        job.partition = names[0]  # the default partition, as it is now
    refusal = None
    for name in names:
        part = parts[name]
        why = policy.partition_access(part, spec.account, spec.uid, spec.gid)
        if why is None and part.state in ("INACTIVE", "DRAIN"):
            why = policy.PARTITION_NOT_AVAIL
        if why is None and not could_ever_fit(state, job, part):
            why = "Requested node configuration is not available"
        if why is None:
            refusal = None
            break
        refusal = refusal or why
    if refusal is not None:
        code = {policy.INVALID_ACCOUNT: "invalid_account", policy.GROUP_NOT_PERMITTED: "access_denied",
                policy.PARTITION_NOT_AVAIL: "partition_not_avail"}.get(refusal, "node_config")
        return _reject(state, Rejected(code, refusal))
    state.next_job_id += 1
    if spec.hold:
        job.hold = HoldKind.USER
    fixed = spec.options.get(FIXED_PRIORITY) if spec.options else None
    if fixed is not None and str(fixed).isdigit() and 0 < int(fixed) < 2**32:
        job.priority_set = int(fixed)
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
        priority_set=record.priority_set,  # an operator's fixed priority holds for every task
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
    names = policy.job_partitions(state, job.partition_list) or [default_partition(state)]
    parts = partitions_of(state)
    partition = op.partition
    if not partition:  # a version-2 start: the first of the job's partitions holding the nodes
        partition = next((p for p in names if p in parts and in_partition(state, parts[p], op.nodes)), "")
    part = parts.get(partition)
    if part is None or partition not in names or not in_partition(state, part, op.nodes):
        return _reject(state, Rejected("bad_allocation", "Requested nodes not in this partition"))
    try:
        request = gres.job_request(job.spec, len(op.nodes))
    except gres.GresError:
        return _reject(state, Rejected("invalid_gres", gres.INVALID_GRES))
    alloc: dict[str, dict[str, list[int]]] = {}
    for name in op.nodes:
        node = state.nodes.get(name)
        if (
            node is None
            or not node.usable
            or node.cpus - node.alloc_cpus < op.cpus_per_node
            or node.mem_mb - node.alloc_mem < op.mem_per_node
        ):
            return _reject(state, Rejected("resources", f"Resources not available on {name}"))
        if request:
            devices = gres.allocate(node.gres, node.gres_used, request)
            if devices is None:
                return _reject(state, Rejected("resources", f"Resources not available on {name}"))
            alloc[name] = devices
    check_transition(job.state, Event.START)
    if op.array_task_id >= 0:
        job = _split_task(state, job, op.array_task_id)
    job.state = JobState.RUNNING
    job.reason, job.state_desc = "None", ""
    job.start_time = op.at
    job.nodes = op.nodes
    job.partition = partition
    job.gres_alloc = alloc
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
    _step_node_done(job, step, op.node, raw, op.oom, op.usage, op.at)
    return None


def _step_node_done(job: Job, step: Step, node: str, raw: int, oom: bool, usage: Any, at: float) -> None:
    """``node``'s part of ``step`` is over with ``raw``; the last part closes the step."""
    step.node_status[node] = raw
    if usage:
        step.usage[node] = dict(usage)
    if len(step.node_status) < len(step.nodes):
        return
    combined = 0
    for n in step.nodes:
        combined = exitcodes.derive(combined, step.node_status[n], False)
    oom = combined == exitcodes.SIG_OOM
    _end_step(job, step, combined, exitcodes.step_state(combined, oom), at)
    job.derived_ec = exitcodes.derive(job.derived_ec, combined, oom)


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
        if op.usage:
            batch.usage[op.node] = dict(op.usage)
    job.unlaunched.discard(op.node)
    if not job.unlaunched:
        state.unlaunched.pop(job.job_id, None)
    if job.state in (JobState.RUNNING, JobState.SUSPENDED):
        check_transition(job.state, Event.COMPLETE)
        _charge_usage(state, job, op.at)
        name, reason, desc = exitcodes.final_state(raw, op.oom)
        if job.state is JobState.SUSPENDED:
            job.suspended_secs += op.at - job.suspend_time
        job.state, job.reason, job.state_desc = _STATE_BY_NAME[name], reason, desc
        job.exit_status = raw
        job.end_time = op.at
        job.stopped = False
        if job.spec.script is not None and not _steps_waiting_for(job, op.node):
            # The batch host's supervisor reaped everything of the script. An srun step
            # there has a supervisor of its own: while one has not reported, the node is
            # terminated like the others, its report comes first (the agent ACKs a KILL
            # after the reports it caused) and the job stays COMPLETING meanwhile, as
            # Slurm keeps it. An srun-made allocation has no supervisor of its own either:
            # its node is terminated, so the agent learns that the allocation ended.
            job.undone.discard(op.node)
        job.completing = True
        if job.undone:  # other nodes of the job: terminate whatever still runs there
            _new_action(state, job, -1, ActionKind.KILL, set(job.undone), op.at, 0)
        _drop_launch_intents(state, job)
        _maybe_finish(state, job)
        return None
    if job.terminal:
        # Already ended by the controller (cancel, time limit, node failure): Slurm only
        # fills in the shell's status, typically 0:15. A step still running there ends
        # with the KILL sent to the node, whose ACK follows the step's report.
        if not job.exit_status:
            job.exit_status = raw
        if not _steps_waiting_for(job, op.node):
            job.undone.discard(op.node)
        _maybe_finish(state, job)
        return None
    return _reject(state, JOB_PENDING)


def _steps_waiting_for(job: Job, node: str) -> bool:
    """Whether an srun step of ``job`` still waits for ``node``'s part."""
    return any(step.state == "RUNNING" and step.step_id != BATCH_STEP and node in step.nodes
               and node not in step.node_status for step in job.steps.values())


def report_frees(state: ClusterState, job_id: int, node: str, fenced: bool = False) -> bool:
    """Whether ``JobNodeComplete`` for ``job_id`` from ``node``, applied to ``state`` now,
    releases the job's resources (``_job_node_complete`` then ``_maybe_finish``): the
    leader's projection, so that the next start can follow the end in the same entry.
    A wrong answer costs only time: the reducer re-checks every start's fit."""
    job = state.jobs.get(job_id)
    if job is None or not job.allocated or job.node_reported or node != job.batch_host:
        return False
    if not job.undone <= {node} or _steps_waiting_for(job, node):
        return False  # other nodes, or srun steps on this one, still run something
    if job.state in (JobState.RUNNING, JobState.SUSPENDED):
        return not fenced and job.spec.script is not None
    return job.terminal and job.completing


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
    if job is not None and record.kind == ActionKind.KILL and record.step_id < 0:
        # The agent ACKs a job's KILL only once its reports are committed: a step still
        # waiting for this node's part never started there (0:9, as a launch killed before
        # it arrived).
        for step in job.steps.values():
            if step.state == "RUNNING" and step.step_id != BATCH_STEP and op.node in step.nodes \
                    and op.node not in step.node_status:
                _step_node_done(job, step, op.node, exitcodes.raw_status(0, SIGKILL), False, None, op.at)
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
    "Priority": (None, True, True),  # admin: a fixed priority (0 holds the job, as in Slurm)
}

#: The JobSpec option in which the controller passes an operator's ``--priority`` (the job's
#: fixed priority from its submission on; spurctld.jobrpc strips it from what clients send).
FIXED_PRIORITY = "fixed_priority"
#: Fields whose change moves the job's priority (readers' priority caches recompute).
_PRIORITY_FIELDS = {"Nice", "Partition", "QOS", "Account", "Priority", "StartTime", "NumNodes", "NumTasks"}


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
    priority = None
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
        elif key in ("Nice", "Requeue", "NumNodes", "NumTasks", "ArrayTaskThrottle", "Priority"):
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
            if key == "Priority":
                if not 0 <= value < 2**32:
                    return _reject(state, Rejected("bad_request", "Invalid Priority value"))
                priority = value
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
        elif key == "Partition" and _job_partition(state, value)[1] is not None:
            return _reject(state, _job_partition(state, value)[1] or INVALID_JOB)
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
        if ("account" in fields or "qos" in fields) and policy.enforced(state, "associations"):
            names = policy.job_partitions(state, spec.partition or job.partition)
            _, _, refusal = policy.check_submit(state, spec.user, spec.uid, spec.gid, spec.account,
                                                spec.qos, names)
            if refusal in (policy.INVALID_ACCOUNT, policy.INVALID_QOS):
                return _reject(state, Rejected("invalid_account" if refusal == policy.INVALID_ACCOUNT
                                               else "invalid_qos", refusal))
        job.spec = spec
        if "partition" in fields:
            job.partition = ""  # pending: the new list (spec.partition) holds
        if "dependency" in fields:
            job.dep_resolved = {}
    if eligible is not None:
        job.eligible_time = eligible
    if priority is not None:
        job.priority_set = priority
        if priority == 0 and not job.hold:  # Slurm: priority 0 is an admin hold
            job.hold = HoldKind.ADMIN
            state.runnable.pop(job.job_id, None)
    if _PRIORITY_FIELDS & set(op.changes):
        state.prio_rev += 1
    if throttle is not None:
        record = state.jobs.get(job.array_job_id) or job
        record.array_throttle = throttle
        for member in state.array_members.get(job.array_job_id, ()):
            state.jobs[member].array_throttle = throttle
    return None


# --- the configuration, node states, partitions and accounting --------------------------------


def _int(v: Any, low: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"bad number {v!r}")
    return v


def _opt_int(v: Any) -> int | None:
    return None if v is None else _int(v)


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"bad text {v!r}")
    return v


def _texts(v: Any) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"bad list {v!r}")
    return tuple(_text(x) for x in v)


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"bad flag {v!r}")
    return v


def _gres_conf(v: Any) -> list[list[Any]]:
    out = []
    for item in v:
        name, gtype, count, files = item
        out.append([_text(name), _text(gtype), _int(count), list(_texts(files))])
    return out


def _partition_from(d: dict[str, Any], known: dict[str, Any]) -> Partition:
    nodes = _texts(d.get("nodes", ()))
    all_nodes = nodes == ("ALL",)
    if not all_nodes:
        unknown = [n for n in nodes if n not in known]
        if unknown:
            raise ValueError(f"partition {d.get('name')}: unknown nodes {', '.join(unknown)}")
    state = _text(d.get("state", "UP")).upper()
    if state not in ("UP", "DOWN", "DRAIN", "INACTIVE"):
        raise ValueError(f"bad partition state {state}")
    return Partition(
        _text(d["name"]), () if all_nodes else nodes, all_nodes, _flag(d.get("default", False)),
        _opt_int(d.get("max_time")), _opt_int(d.get("default_time")), _opt_int(d.get("max_nodes")),
        _int(d.get("min_nodes", 0)), state, _int(d.get("priority_tier", 1)), _int(d.get("priority_job_factor", 1)),
        _texts(d.get("allow_accounts", ())), _texts(d.get("deny_accounts", ())), _texts(d.get("allow_groups", ())),
        tuple(_int(x) for x in d.get("allow_uids", ())), tuple(_int(x) for x in d.get("allow_gids", ())),
        _text(d.get("oversubscribe", "NO")).upper(), _flag(d.get("hidden", False)),
        _flag(d.get("exclusive_user", False)),
    )


def _settings_from(d: dict[str, Any]) -> dict[str, Any]:
    from spurcore.slurmconf import SETTINGS

    out = dict(SETTINGS)
    for key, value in d.items():
        if key not in SETTINGS:
            raise ValueError(f"unknown setting {key}")
        default = SETTINGS[key]
        if isinstance(default, bool):
            out[key] = _flag(value)
        elif isinstance(default, int):
            out[key] = _int(value)
        elif isinstance(default, list):
            out[key] = sorted(_texts(value))
        else:
            out[key] = _text(value)
    return out


def _cluster_configured(state: ClusterState, op: ClusterConfigured) -> Any:
    """Nodes, partitions and settings from the configuration. A node new to it takes its
    configured State=; a registered node is re-checked against its new configuration (DRAIN
    ``Low ...``); a node the configuration no longer names leaves (or, while it still runs
    jobs, stays DRAIN until a later configuration finds it idle)."""
    try:
        confs = []
        for d in op.nodes:
            confs.append((_text(d["name"]), _int(d["cpus"], 1), _int(d["real_memory"], 1), _gres_conf(d.get("gres", [])),
                          _texts(d.get("features", ())), _int(d.get("weight", 1)),
                          _text(d.get("state", "UNKNOWN")).upper(), _text(d.get("reason", ""))))
        names = [c[0] for c in confs]
        if len(set(names)) != len(names):
            raise ValueError("a node is named twice")
        parts = [_partition_from(d, dict.fromkeys(names)) for d in op.partitions]
        if len({p.name for p in parts}) != len(parts) or sum(p.default for p in parts) > 1:
            raise ValueError("partitions named twice, or two defaults")
        settings = _settings_from(op.settings)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return _reject(state, Rejected("bad_config", f"Invalid configuration: {exc}"))
    nodes: dict[str, Node] = {}
    for name, cpus, mem, node_gres, features, weight, conf_state, reason in confs:
        node = state.nodes.get(name)
        fresh = node is None or not node.configured
        if node is None:
            node = Node(name, cpus, mem, "", up=False, registered=False)
        node.configured, node.cpus, node.mem_mb = True, cpus, mem
        node.features, node.weight, node.gres = features, weight, node_gres
        if fresh and conf_state in ("DOWN", "DRAIN", "FAIL", "FUTURE"):
            node.drain = conf_state == "DRAIN"
            node.fail = conf_state == "FAIL"
            node.admin_down = conf_state in ("DOWN", "FUTURE")
            _set_reason(node, reason or f"State={conf_state} in the configuration", op.at, -1)
        if node.registered:
            low = _low_resources(node, node.reported_cpus, node.reported_mem)
            if low and not node.drain:
                node.drain = True
                _set_reason(node, low, op.at, -1)
            elif not low and node.drain and node.reason_uid == -1 and node.reason.startswith("Low "):
                node.drain = False
                _set_reason(node, "", op.at, -1)
        nodes[name] = node
    for name, node in state.nodes.items():
        if name in nodes:
            continue
        if not confs:
            nodes[name] = node  # a configuration without nodes: agents name themselves
        elif node.jobs:
            node.drain, node.configured = True, False
            _set_reason(node, "Node removed from the configuration", op.at, -1)
            nodes[name] = node
    state.nodes = nodes
    state.partitions = {p.name: p for p in parts}
    state.settings = settings
    state.config_digest = op.digest
    state.prio_rev += 1
    return None


def _partition_updated(state: ClusterState, op: PartitionUpdated) -> Any:
    """scontrol update partition: the changes apply together or not at all."""
    from spurcore.slurmconf import PARTITION_KEYS

    part = state.partitions.get(op.name)
    if part is None:
        return _reject(state, Rejected("invalid_partition", policy.INVALID_PARTITION))
    unknown = set(op.changes) - set(PARTITION_KEYS) - {"allow_uids", "allow_gids"} | ({"name"} & set(op.changes))
    if unknown:
        return _reject(state, Rejected("bad_request", f"Update of {sorted(unknown)[0]} is not supported"))
    current = {f.name: getattr(part, f.name) for f in attrs.fields(Partition)}
    current["nodes"] = ["ALL"] if part.all_nodes else list(part.nodes)
    current.update(op.changes)
    try:
        new = _partition_from(current, state.nodes)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return _reject(state, Rejected("bad_request", f"Invalid partition update: {exc}"))
    if new.default:
        for other in state.partitions.values():
            other.default = False
    state.partitions[op.name] = new
    state.prio_rev += 1
    return None


_ASSOC_FIELDS = ("Parent", "Fairshare", "Priority", "QOS", "DefaultQOS")
_ACCOUNT_FIELDS = ("Description", "Organization", *_ASSOC_FIELDS, *policy.LIMIT_KEYS)
_USER_FIELDS = ("Account", "DefaultAccount", "AdminLevel", "Partition", "Fairshare", "Priority", "QOS",
                "DefaultQOS", *policy.LIMIT_KEYS)
_QOS_FIELDS = ("Description", "Priority", *policy.LIMIT_KEYS)
_ADMIN_LEVELS = ("None", "Operator", "Administrator")
NOTHING_ADDED = Rejected("nothing_added", "Nothing new added.")
NOTHING_MODIFIED = Rejected("nothing_modified", "Nothing modified")
NOTHING_DELETED = Rejected("nothing_deleted", "Nothing deleted")
JOBS_ACTIVE = Rejected("jobs_active", "Job(s) active, cancel job(s) before remove")


def _limit_value(key: str, value: Any) -> Any:
    """A parsed limit: int >= 0 (None clears it); TRES limits are maps of such ints."""
    if key in policy.TRES_LIMITS:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a TRES map")
        return {_text(k): _opt_int(v) for k, v in value.items()}
    return _opt_int(value)


def _set_limits(limits: dict[str, Any], fields: dict[str, Any]) -> None:
    for key in policy.LIMIT_KEYS:
        if key not in fields:
            continue
        value = fields[key]
        if value is None:
            limits.pop(key, None)
        elif key in policy.TRES_LIMITS:
            tres = dict(limits.get(key) or {})
            for k, v in value.items():
                if v is None:
                    tres.pop(k, None)
                else:
                    tres[k] = v
            if tres:
                limits[key] = tres
            else:
                limits.pop(key, None)
        else:
            limits[key] = value


def _check_fields(fields: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in allowed:
            raise ValueError(f"Unknown option: {key}")
        if key in policy.LIMIT_KEYS:
            out[key] = _limit_value(key, value)
        elif key in ("Fairshare", "Priority"):
            out[key] = _int(value) if key == "Priority" else _int(value, 0)
        elif key in ("QOS", "Account"):
            out[key] = _texts(value)
        elif key == "AdminLevel":
            if value not in _ADMIN_LEVELS:
                raise ValueError(f"AdminLevel must be one of {', '.join(_ADMIN_LEVELS)}")
            out[key] = value
        else:
            out[key] = _text(value)
    return out


def _apply_assoc_fields(assoc: Assoc, fields: dict[str, Any]) -> None:
    if "Fairshare" in fields:
        assoc.shares = fields["Fairshare"]
    if "Priority" in fields:
        assoc.priority = fields["Priority"]
    if "QOS" in fields:
        assoc.qos = fields["QOS"]
    if "DefaultQOS" in fields:
        assoc.default_qos = fields["DefaultQOS"]
    _set_limits(assoc.limits, fields)


def _jobs_of(state: ClusterState, accounts: set[str] | None = None, user: str | None = None,
             qos: str | None = None) -> bool:
    for job in state.jobs.values():
        if job.terminal and not job.completing:
            continue
        spec = job.spec
        if (accounts is None or spec.account in accounts) and (user is None or spec.user == user) and (
                qos is None or spec.qos == qos):
            return True
    return False


def _accounting_updated(state: ClusterState, op: AccountingUpdated) -> Any:
    """sacctmgr add/modify/delete of accounts, users (with their associations) and QOS. ->
    the number of records added, modified or deleted."""
    entity, action = op.entity, op.action
    allowed = {"account": _ACCOUNT_FIELDS, "user": _USER_FIELDS, "qos": _QOS_FIELDS}.get(entity)
    if allowed is None or action not in ("add", "modify", "delete"):
        return _reject(state, Rejected("bad_request", f"Unknown sacctmgr request {action} {entity}"))
    try:
        fields = _check_fields(op.fields, allowed)
        names = _texts(op.names)
        where = {k: _text(v) for k, v in op.where.items()}
        if set(where) - {"account", "partition"}:
            raise ValueError(f"Unknown condition: {sorted(set(where) - {'account', 'partition'})[0]}")
    except (TypeError, ValueError) as exc:
        return _reject(state, Rejected("bad_request", str(exc)))
    if not names:
        return _reject(state, Rejected("bad_request", "No names given"))
    handler = {"account": _acct_account, "user": _acct_user, "qos": _acct_qos}[entity]
    result = handler(state, action, names, where, fields)
    if isinstance(result, Rejected):
        return _reject(state, result)
    if "normal" not in state.qos:
        state.qos = {"normal": Qos("normal", "Normal QOS default"), **state.qos}
    state.prio_rev += 1
    return result


def _descendants(state: ClusterState, account: str) -> set[str]:
    out = {account}
    changed = True
    while changed:
        changed = False
        for a in state.assocs.values():
            if not a.user and a.parent in out and a.account not in out:
                out.add(a.account)
                changed = True
    return out


def _acct_account(state: ClusterState, action: str, names: tuple[str, ...], where: dict[str, str],
                  fields: dict[str, Any]) -> Any:
    if action == "add":
        parent = fields.get("Parent", policy.ROOT)
        if parent != policy.ROOT and assoc_key(parent) not in state.assocs:
            return Rejected("invalid_parent", "Invalid parent account specified")
        new = [n for n in names if n not in state.accounts and n != policy.ROOT]
        if not new:
            return NOTHING_ADDED
        if assoc_key(policy.ROOT) not in state.assocs:
            state.accounts[policy.ROOT] = Account(policy.ROOT, "default root account", "root")
            state.assocs[assoc_key(policy.ROOT)] = Assoc(policy.ROOT)
        for name in new:
            state.accounts[name] = Account(name, fields.get("Description", name), fields.get("Organization", name))
            assoc = Assoc(name, parent=parent)
            _apply_assoc_fields(assoc, fields)
            state.assocs[assoc.key] = assoc
        return len(new)
    targets = [n for n in names if n in state.accounts]
    if not targets:
        return NOTHING_MODIFIED if action == "modify" else NOTHING_DELETED
    if action == "modify":
        if "Parent" in fields:
            parent = fields["Parent"]
            if parent != policy.ROOT and assoc_key(parent) not in state.assocs:
                return Rejected("invalid_parent", "Invalid parent account specified")
            if any(parent in _descendants(state, t) for t in targets):
                return Rejected("invalid_parent", "Invalid parent account specified")
        for name in targets:
            account = state.accounts[name]
            account.description = fields.get("Description", account.description)
            account.organization = fields.get("Organization", account.organization)
            assoc = state.assocs[assoc_key(name)]
            if "Parent" in fields and name != policy.ROOT:
                assoc.parent = fields["Parent"]
            _apply_assoc_fields(assoc, fields)
        return len(targets)
    if policy.ROOT in targets:
        return Rejected("bad_request", "The root account cannot be removed")
    doomed: set[str] = set()
    for name in targets:
        doomed |= _descendants(state, name)
    if _jobs_of(state, accounts=doomed):
        return JOBS_ACTIVE
    for key in [k for k, a in state.assocs.items() if a.account in doomed]:
        del state.assocs[key]
    for name in doomed:
        state.accounts.pop(name, None)
    for user in state.users.values():
        if user.default_account in doomed:
            user.default_account = next((a.account for a in state.assocs.values() if a.user == user.name), "")
    return len(targets)


def _acct_user(state: ClusterState, action: str, names: tuple[str, ...], where: dict[str, str],
               fields: dict[str, Any]) -> Any:
    partition = fields.get("Partition", where.get("partition", ""))
    if action == "add":
        accounts = list(fields.get("Account", ())) or ([fields["DefaultAccount"]] if "DefaultAccount" in fields else [])
        if not accounts:
            return Rejected("bad_request", "Need an account to add a user (Account=)")
        for acct in accounts:
            if assoc_key(acct) not in state.assocs:
                return Rejected("invalid_account", f"There is no account named {acct}")
        if partition and partition not in partitions_of(state):
            return Rejected("invalid_partition", policy.INVALID_PARTITION)
        added = 0
        for name in names:
            user = state.users.get(name)
            if user is None:
                user = state.users[name] = User(name, fields.get("DefaultAccount", accounts[0]),
                                                fields.get("AdminLevel", "None"), fields.get("DefaultQOS", ""))
                added += 1
            for acct in accounts:
                key = assoc_key(acct, name, partition)
                if key in state.assocs:
                    continue
                assoc = Assoc(acct, name, partition, parent=acct)
                _apply_assoc_fields(assoc, fields)
                state.assocs[key] = assoc
                added += 1
            if not user.default_account:
                user.default_account = accounts[0]
        return added if added else NOTHING_ADDED
    targets = [n for n in names if n in state.users]
    if not targets:
        return NOTHING_MODIFIED if action == "modify" else NOTHING_DELETED

    def matching(user: str) -> list[str]:
        return [k for k, a in state.assocs.items() if a.user == user
                and ("account" not in where or a.account == where["account"])
                and ("partition" not in where or a.partition == where["partition"])]

    if action == "modify":
        count = 0
        for name in targets:
            user = state.users[name]
            if "DefaultAccount" in fields:
                if not any(a.user == name and a.account == fields["DefaultAccount"] for a in state.assocs.values()):
                    return Rejected("invalid_account", policy.INVALID_ACCOUNT)
        for name in targets:
            user = state.users[name]
            if "DefaultAccount" in fields:
                user.default_account = fields["DefaultAccount"]
            if "AdminLevel" in fields:
                user.admin_level = fields["AdminLevel"]
            if "DefaultQOS" in fields and "account" not in where:
                user.default_qos = fields["DefaultQOS"]
            count += 1
            assoc_fields = {k: v for k, v in fields.items() if k not in ("DefaultAccount", "AdminLevel", "Account")}
            for key in matching(name):
                _apply_assoc_fields(state.assocs[key], assoc_fields)
        return count
    count = 0
    for name in targets:
        keys = matching(name)
        accounts = {state.assocs[k].account for k in keys}
        if _jobs_of(state, accounts=accounts, user=name):
            return JOBS_ACTIVE
    for name in targets:
        for key in matching(name):
            del state.assocs[key]
            count += 1
        left = [a for a in state.assocs.values() if a.user == name]
        if not left:
            del state.users[name]
            count += 1
        elif state.users[name].default_account not in {a.account for a in left}:
            state.users[name].default_account = left[0].account
    return count if count else NOTHING_DELETED


def _acct_qos(state: ClusterState, action: str, names: tuple[str, ...], where: dict[str, str],
              fields: dict[str, Any]) -> Any:
    if action == "add":
        new = [n for n in names if n not in state.qos]
        if not new:
            return NOTHING_ADDED
        for name in new:
            q = Qos(name, fields.get("Description", name), fields.get("Priority", 0))
            _set_limits(q.limits, fields)
            state.qos[name] = q
        return len(new)
    targets = [n for n in names if n in state.qos or n == policy.NORMAL_QOS]
    if not targets:
        return NOTHING_MODIFIED if action == "modify" else NOTHING_DELETED
    if action == "modify":
        for name in targets:
            q = state.qos.setdefault(name, Qos(name, "Normal QOS default"))
            q.description = fields.get("Description", q.description)
            q.priority = fields.get("Priority", q.priority)
            _set_limits(q.limits, fields)
        return len(targets)
    for name in targets:
        if _jobs_of(state, qos=name):
            return JOBS_ACTIVE
    for name in targets:
        state.qos.pop(name, None)
        for assoc in state.assocs.values():
            if name in assoc.qos:
                assoc.qos = tuple(q for q in assoc.qos if q != name)
    return len(targets)


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
    ClusterConfigured: _cluster_configured,
    NodeStateUpdated: _node_state_updated,
    PartitionUpdated: _partition_updated,
    AccountingUpdated: _accounting_updated,
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
    if isinstance(op, NodeStateUpdated):
        return tuple(j for name in op.names if (n := state.nodes.get(name)) is not None for j in n.jobs)
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
