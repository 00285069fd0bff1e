"""Job and node *info records*: the plain dicts that renderers, ``--json`` and the
accounting projection share (like Slurm's job_info_msg / slurmdb records).

Invariants:
- Pure: state and an explicit ``now`` in, dicts of str/int/float/None/list out.
- Raw wait statuses stay raw here (``exit_code``, ``derived_ec``); renderers format them.
- The same schema comes from the hot state (``job_info``) and from the SQLite history, so
  one renderer serves squeue, scontrol, sacct and time-travel queries.
"""

from __future__ import annotations

import posixpath
from typing import Any

from spurcore import gres
from spurcore.hostlist import compress
from spurcore.model import BATCH_STEP, ClusterState, Job, JobState, Step, partition_nodes, partitions_of
from spurcore.ops import HoldKind
from spurcore.priority import partition_priorities, queued_priority
from spurcore.scheduler import dependency_status, planned_start
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
    return posixpath.join(spec.cwd, out), posixpath.join(spec.cwd, err), posixpath.join(spec.cwd, stdin)


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


#: The fields of a job's record that change without an op on the job (``refresh_info``).
DYNAMIC_FIELDS = frozenset({"reason", "priority", "priority_by_partition", "start_time", "sched_nodes",
                            "run_time", "dependency"})

_PENDING = JobState.PENDING
_HELD_ADMIN = int(HoldKind.ADMIN)
_HELD_USER = int(HoldKind.USER)


def refresh_info(info: dict[str, Any], job: Job, state: ClusterState, now: float, reason: str | None) -> None:
    """Update the fields of ``info`` that change without an op on ``job`` (``DYNAMIC_FIELDS``):
    the run time (the clock), a pending job's reason, priority and expected start (the
    queue) and the dependency text (other jobs).

    Runs for every record of every ``squeue``: module-level names only, no import here."""
    if job.state is _PENDING and not job.completing:
        hold = job.hold
        if hold == _HELD_ADMIN:
            info["reason"] = "JobHeldAdmin"
        else:
            info["reason"] = reason or ("JobHeldUser" if hold == _HELD_USER else "None")
        info["priority"] = 0 if hold else queued_priority(state, job, now)
        if not hold and "," in job.partition_list:
            info["priority_by_partition"] = partition_priorities(state, job, now)
        planned = planned_start(state, job.job_id, now)
        if planned:
            info["start_time"] = planned[0]
            info["sched_nodes"] = compress(planned[1])
        else:
            info["start_time"] = 0.0
            info["sched_nodes"] = ""
    info["run_time"] = run_time(job, now)
    if job.spec.dependency:
        info["dependency"] = dependency_status(state, job, now)[1]


def job_info(job: Job, state: ClusterState, now: float, reason: str | None = None) -> dict[str, Any]:
    """The record of one job. ``reason`` is the derived reason for a pending job."""
    info = _static_info(job)
    if job.state is not JobState.PENDING and job.start_time:
        from spurcore.priority import job_priority

        info["priority"] = job_priority(state, job, job.start_time)  # what it had when it started
    info.update(_tres_info(job, state))
    refresh_info(info, job, state, now, reason)
    return info


def _tres(cpus: int, mem: int, nodes: int, gpus: int) -> str:
    """Slurm's TRES string: ``cpu=4,mem=2000M,node=1,billing=4,gres/gpu=2``."""
    parts = [f"cpu={cpus}"]
    if mem:
        parts.append(f"mem={mem}M")
    parts += [f"node={nodes}", f"billing={cpus}"]
    if gpus:
        parts.append(f"gres/gpu={gpus}")
    return ",".join(parts)


def _tres_info(job: Job, state: ClusterState) -> dict[str, Any]:
    """ReqTRES/AllocTRES, TresPerNode and the devices of each node (scontrol show job -d)."""
    from spurcore.resources import job_need

    spec = job.spec
    need = job_need(spec)
    out: dict[str, Any] = {
        "req_tres": _tres(need.cpus * need.nodes, need.mem * need.nodes, need.nodes, need.gpus * need.nodes),
        "alloc_tres": "",
        "tres_per_node": ",".join(f"gres/{n}:{t}:{c}" if t else f"gres/{n}:{c}" for n, t, c in need.gres),
        "gres": spec.gres, "gpus": spec.gpus, "gpus_per_node": spec.gpus_per_node,
        "gpus_per_task": spec.gpus_per_task, "cpus_per_gpu": spec.cpus_per_gpu, "mem_per_gpu": spec.mem_per_gpu,
        "gres_detail": [],
        "job_gpus": "",
    }
    if job.nodes:
        gpus = sum(len(job.gres_alloc.get(n, {}).get("gpu", ())) for n in job.nodes)
        out["alloc_tres"] = _tres(job.cpus_per_node * len(job.nodes), job.mem_per_node * len(job.nodes),
                                  len(job.nodes), gpus)
        detail = []
        for name in job.nodes:
            node = state.nodes.get(name)
            alloc = job.gres_alloc.get(name, {})
            detail.append(gres.fmt_used(node.gres, alloc) if node is not None and alloc else "")
        out["gres_detail"] = detail
        first = job.gres_alloc.get(job.batch_host, {}).get("gpu", [])
        out["job_gpus"] = ",".join(str(i) for i in first)
    return out


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
        "priority": 0 if job.hold else 1,  # see refresh_info (pending) and job_info (started)
        "priority_by_partition": {},  # a pending multi-partition job's: partition -> priority
        "hold": job.hold,
        "submit_time": job.submit_time,
        "eligible_time": job.eligible_time,
        "start_time": job.start_time,  # a pending job's: its expected start (squeue --start), 0: unknown
        "sched_nodes": "",  # a pending job's expected nodes (squeue --start's SchedNodes)
        "end_time": end_time,
        "suspend_time": job.suspend_time,
        "run_time": 0.0,
        "time_limit": time_limit,
        # pending: the partitions it may run in ("a,b"); started: the one it runs in
        "partition": job.partition_list if job.state is JobState.PENDING else (job.partition or spec.partition),
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
        "oversubscribe": "oversubscribe" in spec.options,  # -s: a plain field for the renderers' caches
    }


def node_partitions(state: ClusterState) -> dict[str, list[str]]:
    """node -> the partitions holding it, in configuration order (memoized per state until
    its partitions or nodes change: sinfo asks for every node)."""
    from spurcore.priority import PerState

    global _NODE_PARTS
    if _NODE_PARTS is None:
        _NODE_PARTS = PerState()
    parts = partitions_of(state)
    key = (id(state.partitions), id(state.nodes), len(state.nodes), tuple(id(p) for p in parts.values()))
    cached = _NODE_PARTS.get(state)
    if cached is not None and cached[0] == key:
        return cached[1]
    out: dict[str, list[str]] = {}
    for part in parts.values():
        for name in partition_nodes(state, part):
            out.setdefault(name, []).append(part.name)
    _NODE_PARTS[state] = (key, out)
    return out


_NODE_PARTS: Any = None


def node_info(state: ClusterState, name: str, partitions: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A node's record. ``partitions`` (from ``node_partitions``) saves recomputing the
    membership for every node of a listing."""
    node = state.nodes[name]
    parts = (partitions if partitions is not None else node_partitions(state)).get(name, [])
    used_gpus = len(node.gres_used.get("gpu", ()))
    return {
        "name": node.name,
        "state": node.display_state,
        "state_flags": list(node.state_flags),
        "not_responding": not node.up and node.registered and not node.admin_down,
        "cpus": node.cpus,
        "alloc_cpus": node.alloc_cpus,
        "mem_mb": node.mem_mb,
        "alloc_mem": node.alloc_mem,
        "address": node.address,
        "reason": node.reason,
        "reason_time": node.reason_time,
        "reason_uid": node.reason_uid,
        "reason_user": "root" if node.reason_uid == 0 else "",  # others: the reader maps reason_uid
        "registered_at": node.registered_at,
        "down_at": node.down_at,
        "jobs": sorted(node.jobs),
        "partition": parts[0] if parts else "",
        "partitions": parts,
        "features": list(node.features),
        "active_features": list(node.features),
        "weight": node.weight,
        "gres": gres.fmt_node_gres(node.gres),
        "gres_used": gres.fmt_used(node.gres, node.gres_used),
        "gpus": sum(int(g[2]) for g in node.gres if g[0] == "gpu"),
        "alloc_gpus": used_gpus,
        "configured": node.configured,
        "registered": node.registered,
        "reported_cpus": node.reported_cpus,
        "reported_mem": node.reported_mem,
        "cfg_tres": _tres(node.cpus, node.mem_mb, 1, sum(int(g[2]) for g in node.gres if g[0] == "gpu")),
        "alloc_tres": _tres(node.alloc_cpus, node.alloc_mem, 1, used_gpus) if node.alloc_cpus else "",
    }


def partition_info(state: ClusterState) -> list[dict[str, Any]]:
    """Every partition's record (scontrol show partition, sinfo), in configuration order."""
    out = []
    for part in partitions_of(state).values():
        names = partition_nodes(state, part)
        nodes = [state.nodes[n] for n in names if n in state.nodes]
        out.append({
            "name": part.name,
            "nodes": compress(list(names)) if names else "",
            "node_list": list(names),
            "all_nodes": part.all_nodes,
            "default": part.default,
            "max_time": part.max_time,
            "default_time": part.default_time,
            "max_nodes": part.max_nodes,
            "min_nodes": part.min_nodes,
            "state": part.state,
            "priority_tier": part.priority_tier,
            "priority_job_factor": part.priority_job_factor,
            "allow_accounts": list(part.allow_accounts),
            "deny_accounts": list(part.deny_accounts),
            "allow_groups": list(part.allow_groups),
            "oversubscribe": part.oversubscribe,
            "hidden": part.hidden,
            "exclusive_user": part.exclusive_user,
            "total_cpus": sum(n.cpus for n in nodes),
            "total_nodes": len(nodes),
            "tres": _tres(sum(n.cpus for n in nodes), sum(n.mem_mb for n in nodes), len(nodes),
                          sum(int(g[2]) for n in nodes for g in n.gres if g[0] == "gpu")),
        })
    return out


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
            # GRES each node was given: indexes (CUDA_VISIBLE_DEVICES & co) and device files
            "gres_alloc": {n: {g: list(ix) for g, ix in a.items()} for n, a in job.gres_alloc.items()},
            "gres_files": {
                n: {g: gres.device_files(state.nodes[n].gres, g, ix) for g, ix in a.items()}
                for n, a in job.gres_alloc.items() if n in state.nodes
            },
            # every device file of those nodes: the agent denies the ones not given (cgroups)
            "gres_node_files": {
                n: {g: gres.device_files(state.nodes[n].gres, g, list(range(len(t))))
                    for g, t in gres.device_types(state.nodes[n].gres).items()}
                for n in job.gres_alloc if n in state.nodes
            },
        }
    )
    return info
