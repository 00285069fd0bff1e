"""Job and node *info records*: the plain dicts that renderers, ``--json`` and the
accounting projection share (like Slurm's job_info_msg / slurmdb records).

Invariants:
- Pure: state and an explicit ``now`` in, dicts of str/int/float/None/list out.
- Raw wait statuses stay raw here (``exit_code``, ``derived_ec``); renderers format them.
- The same schema comes from the hot state (``job_info``) and from the SQLite history, so
  one renderer serves squeue, scontrol, sacct and time-travel queries.
"""

from __future__ import annotations

import os
from typing import Any

from spurcore.hostlist import compress
from spurcore.model import BATCH_STEP, ClusterState, Job, JobState, Step
from spurcore.ops import HoldKind
from spurcore.scheduler import dependency_status
from spurcore.steps import compress_counts
from spurcore.usage import combine

#: What ``%a`` becomes outside an array (Slurm: NO_VAL).
NO_VAL = 0xFFFFFFFE


def expand_pattern(pattern: str, job_id: int, name: str, user: str, node: str,
                   array_job_id: int = 0, array_task_id: int = -1) -> str:
    """Slurm's batch filename patterns (src/common/fd.c ``expand_stdio_filename``):
    ``%j %x %u %N %A %a %%``, with a zero-padding width (``%3a`` -> ``007``). Outside an
    array ``%A`` is the job id and ``%a`` is 4294967294, as in Slurm."""
    values = {
        "j": str(job_id), "x": name, "u": user, "N": node,
        "A": str(array_job_id or job_id),
        "a": str(array_task_id if array_job_id and array_task_id >= 0 else NO_VAL),
    }
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "%" and i + 1 < n:
            if pattern[i + 1] == "%":
                out.append("%")
                i += 2
                continue
            k = i + 1
            while k < n and pattern[k].isdigit():
                k += 1
            if k < n and pattern[k] in values:
                value = values[pattern[k]]
                width = int(pattern[i + 1 : k]) if k > i + 1 else 0
                if width and pattern[k] in "jAa" and value.isdigit():
                    value = value.zfill(min(width, 10))
                out.append(value)
                i = k + 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def output_paths(job: Job) -> tuple[str, str, str]:
    """(stdout, stderr, stdin) as absolute, expanded paths."""
    spec = job.spec
    node = job.batch_host
    out_pat = spec.stdout or ("slurm-%A_%a.out" if job.array_job_id else "slurm-%j.out")
    err_pat = spec.stderr or out_pat
    args = (job.job_id, spec.name, spec.user, node, job.array_job_id, job.array_task_id)
    out = expand_pattern(out_pat, *args)
    err = expand_pattern(err_pat, *args)
    stdin = expand_pattern(spec.stdin, *args) if spec.stdin else "/dev/null"
    return os.path.join(spec.cwd, out), os.path.join(spec.cwd, err), os.path.join(spec.cwd, stdin)


def run_time(job: Job, now: float) -> float:
    """RunTime: 0 while pending, frozen while suspended, end-or-now minus start otherwise."""
    if not job.start_time:
        return 0.0
    if job.state is JobState.SUSPENDED:
        return max(0.0, job.suspend_time - job.start_time - job.suspended_secs)
    end = job.end_time or now
    return max(0.0, end - job.start_time - job.suspended_secs)


def step_info(step: Step, job: Job) -> dict[str, Any]:
    """A step's record. For srun steps: the layout (``node_list``, ``tasks`` per node, the
    CPUs given on each node), the status each node reported, and the usage combined from
    the nodes' reports (``spurcore.usage``; empty until a node reports it)."""
    batch = step.step_id == BATCH_STEP
    if batch:  # the common case (one per batch job): no layout to describe
        tasks: list[list[int]] = [[0]]
        counts = [1]
        cpus = job.cpus_per_node
    else:
        tasks = [list(t) for t in step.task_ids]
        counts = [len(t) for t in tasks]
        cpus = sum(step.cpus) if step.cpus else step.ntasks * job.spec.cpus_per_task
    return {
        "job_id": job.job_id,
        "step_id": step.step_id,
        "name": step.name,
        "state": step.state,
        "exit_code": step.exit_status,
        "start_time": step.start_time,
        "end_time": step.end_time,
        "nodes": compress(step.nodes),
        "node_count": len(step.nodes),
        "ntasks": step.ntasks,
        "cpus": cpus,
        "argv": list(step.argv),
        "uid": step.uid,
        "node_list": list(step.nodes),
        "tasks": tasks,
        "tasks_per_node": (str(counts[0]) if len(counts) == 1 else compress_counts(counts)) if counts else "",
        "cpus_per_node": list(step.cpus),
        "cpus_per_task": step.cpus_per_task,
        "overlap": step.overlap,
        "distribution": step.distribution,
        "node_status": dict(step.node_status) if step.node_status else {},
        "usage": combine(step.usage.items()) if step.usage else {},
    }


def refresh_info(info: dict[str, Any], job: Job, state: ClusterState, now: float, reason: str | None) -> None:
    """Update the fields of ``info`` that change without an op on ``job``: the run time
    (the clock), a pending job's reason (the queue) and the dependency text (other jobs)."""
    if job.state is JobState.PENDING and not job.completing:
        if job.hold == HoldKind.ADMIN:
            info["reason"] = "JobHeldAdmin"
        else:
            info["reason"] = reason or ("JobHeldUser" if job.hold == HoldKind.USER else "None")
    info["run_time"] = run_time(job, now)
    if job.spec.dependency:
        info["dependency"] = dependency_status(state, job, now)[1]


def job_info(job: Job, state: ClusterState, now: float, reason: str | None = None) -> dict[str, Any]:
    """The record of one job. ``reason`` is the derived reason for a pending job."""
    info = _static_info(job)
    refresh_info(info, job, state, now, reason)
    return info


def _static_info(job: Job) -> dict[str, Any]:
    """Everything of a job's record that only an op on that job can change."""
    spec = job.spec
    stdout, stderr, stdin = output_paths(job)
    time_limit = spec.time_limit
    end_time = job.end_time
    if not end_time and job.start_time and time_limit is not None and job.state is JobState.RUNNING:
        end_time = job.start_time + job.suspended_secs + time_limit  # the expected end
    return {
        "job_id": job.job_id,
        "name": spec.name,
        "user": spec.user,
        "uid": spec.uid,
        "gid": spec.gid,
        "state": job.display_state,
        "base_state": job.state.value,
        "reason": job.state_desc or job.reason,
        "exit_code": job.exit_status,
        "derived_ec": job.derived_ec,
        "priority": 0 if job.hold else 1,
        "hold": job.hold,
        "submit_time": job.submit_time,
        "eligible_time": job.eligible_time,
        "start_time": job.start_time,
        "end_time": end_time,
        "suspend_time": job.suspend_time,
        "run_time": 0.0,
        "time_limit": time_limit,
        "partition": spec.partition,
        "account": spec.account,
        "nodes": compress(job.nodes),
        "node_count": len(job.nodes) if job.nodes else spec.nodes,
        "num_cpus": job.ncpus,
        "num_tasks": spec.ntasks,
        "cpus_per_task": spec.cpus_per_task,
        "mem_mb": spec.mem_mb,
        "dependency": "(null)",
        "batch_flag": 1 if spec.script is not None else 0,
        "batch_host": job.batch_host,
        "restarts": job.restarts,
        "requid": job.requid,
        "failed_node": job.failed_node,
        "command": spec.command or "(null)",
        "submit_line": spec.submit_line,
        "work_dir": spec.cwd,
        "stdout": stdout if spec.script is not None else "",
        "stderr": stderr if spec.script is not None else "",
        "stdin": stdin if spec.script is not None else "",
        "alloc_node": spec.alloc_node,
        "alloc_sid": spec.alloc_sid,
        "steps": [step_info(s, job) for s in job.steps.values()],
        # job arrays: the array's id (0: none), this record's task (None on the record of
        # the pending tasks, whose indexes are ``array_pending`` ranges), the %N throttle
        "array_job_id": job.array_job_id,
        "array_task_id": job.array_task_id if job.array_job_id and job.array_task_id >= 0 else None,
        "array_pending": [list(r) for r in job.array_pending],
        "array_max_tasks": job.array_throttle,
        "array_spec": spec.array,
        # the rest of the submitter's options (JobSpec version 2)
        "ntasks_per_node": spec.ntasks_per_node,
        "mem_per_cpu": spec.mem_per_cpu,
        "exclusive": spec.exclusive,
        "req_nodes": spec.nodelist,
        "exc_nodes": spec.exclude,
        "deadline": spec.deadline,
        "open_mode": spec.open_mode,
        "signal": spec.signal,
        "signal_time": spec.signal_time,
        "signal_flags": spec.signal_flags,
        "requeue": spec.requeue,
        "kill_on_invalid_dep": spec.kill_on_invalid_dep,
        "comment": spec.comment,
        "wckey": spec.wckey,
        "nice": spec.nice,
        "qos": spec.qos,
        "constraint": spec.constraint,
        "time_min": spec.time_min,
        "mail_type": spec.mail_type,
        "mail_user": spec.mail_user,
        "options": dict(spec.options),
    }


def node_info(state: ClusterState, name: str) -> dict[str, Any]:
    node = state.nodes[name]
    return {
        "name": node.name,
        "state": node.display_state,
        "cpus": node.cpus,
        "alloc_cpus": node.alloc_cpus,
        "mem_mb": node.mem_mb,
        "alloc_mem": node.alloc_mem,
        "address": node.address,
        "reason": node.reason,
        "registered_at": node.registered_at,
        "down_at": node.down_at,
        "jobs": sorted(node.jobs),
        "partition": "debug",
    }


def launch_info(job: Job, state: ClusterState, now: float) -> dict[str, Any]:
    """What an agent needs to start ``job``: its info record plus script, env and identity."""
    info = job_info(job, state, now)
    spec = job.spec
    info.update(
        {
            "script": spec.script,
            "argv": list(spec.argv),
            "env": dict(spec.env),
            "cwd": spec.cwd,
            "uid": spec.uid,
            "gid": spec.gid,
            "node_list": list(job.nodes),
            "cpus_per_node": job.cpus_per_node,
            "mem_per_node": job.mem_per_node,
        }
    )
    return info
