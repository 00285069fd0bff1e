"""The batch script's environment, as slurmd and slurmstepd set it: Slurm's variables
(``SLURM_JOB_ID``, ``SLURM_TASKS_PER_NODE``, ...), a job array task's (``SLURM_ARRAY_*``),
the GPUs this node gave the job (gres/gpu: ``CUDA_VISIBLE_DEVICES`` & co), and the tools'
directory first on ``PATH``. Functions of the job's record (``spurcore.agentmsg.LaunchJob``)
that read nothing but the host's name, when the record has no submit host.
"""

from __future__ import annotations

import os
import socket
import sys

from spurcore import arrays
from spurcore.agentmsg import LaunchJob
from spurcore.hostlist import compress
from spurcore.steps import compress_counts


def tasks_per_node(ntasks: int, nnodes: int) -> str:
    """Slurm's SLURM_TASKS_PER_NODE: block distribution, compressed (``2(x3),1``)."""
    nnodes = max(1, nnodes)
    ntasks = max(ntasks, nnodes)
    base, extra = divmod(ntasks, nnodes)
    counts = [base + 1] * extra + [base] * (nnodes - extra)
    return compress_counts(counts)


def tools_dir(python: str = sys.executable) -> str:
    """Where sbatch/srun live: the directory of the agent's interpreter (the venv's bin)."""
    return os.path.dirname(python)


def with_tools_path(env: dict[str, str], python: str = sys.executable) -> dict[str, str]:
    bindir = tools_dir(python)
    path = env.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    if bindir and path.split(os.pathsep)[0] != bindir:
        path = os.pathsep.join([bindir, path])
    env["PATH"] = path
    return env


def batch_env(info: LaunchJob, node: str, *, cluster: str, config_path: str, agent_socket: str,
              python: str = sys.executable, devices_constrained: bool = False) -> dict[str, str]:
    """The batch script's environment: the job's exported env plus Slurm's variables."""
    env = dict(info.env)
    node_list = list(info.node_list) or [node]
    nnodes = len(node_list)
    job_id = str(info.job_id)
    ntasks = info.num_tasks or 1
    cpus = info.cpus_per_node or 1
    cpus_per_task = info.cpus_per_task or 1
    nodelist = info.nodes or compress(node_list)
    slurm = {
        "SLURM_JOB_ID": job_id,
        "SLURM_JOBID": job_id,
        "SLURM_JOB_NAME": info.name,
        "SLURM_JOB_NODELIST": nodelist,
        "SLURM_NODELIST": nodelist,
        "SLURM_NNODES": str(nnodes),
        "SLURM_JOB_NUM_NODES": str(nnodes),
        "SLURM_NTASKS": str(ntasks),
        "SLURM_NPROCS": str(ntasks),
        "SLURM_CPUS_ON_NODE": str(cpus),
        "SLURM_JOB_CPUS_PER_NODE": compress_counts([cpus] * nnodes),
        "SLURM_SUBMIT_DIR": info.work_dir or info.cwd,
        "SLURM_SUBMIT_HOST": info.alloc_node or socket.gethostname(),
        "SLURM_JOB_USER": info.user,
        "SLURM_JOB_UID": "" if info.uid is None else str(info.uid),
        "SLURM_JOB_GID": "" if info.gid is None else str(info.gid),
        "SLURM_JOB_PARTITION": info.partition,
        "SLURM_CLUSTER_NAME": cluster,
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURMD_NODENAME": node,
        "SLURM_TASKS_PER_NODE": tasks_per_node(ntasks, nnodes),
        "SLURM_GTIDS": "0",
        "ENVIRONMENT": "BATCH",
        "SPUR_CONF": config_path,
        "SPURD_SOCKET": agent_socket,
    }
    if cpus_per_task > 1:
        slurm["SLURM_CPUS_PER_TASK"] = str(cpus_per_task)
    if info.account:
        slurm["SLURM_JOB_ACCOUNT"] = info.account
    if info.mem_mb > 0:
        slurm["SLURM_MEM_PER_NODE"] = str(info.mem_mb)
    if info.restarts > 0:
        slurm["SLURM_RESTART_COUNT"] = str(info.restarts)  # set only for a requeued job
    slurm.update(array_env(info))
    slurm.update(gpu_env(info, node, constrained=devices_constrained))
    if info.open_mode in ("append", "truncate"):
        slurm["SLURM_OPEN_MODE"] = "a" if info.open_mode == "append" else "t"  # for srun inside
    for value, var in ((info.comment, "SLURM_JOB_COMMENT"), (info.qos, "SLURM_JOB_QOS"), (info.wckey, "SLURM_WCKEY")):
        if value:
            slurm[var] = value
    if info.ntasks_per_node > 0:
        slurm["SLURM_NTASKS_PER_NODE"] = str(info.ntasks_per_node)
    if info.mem_per_cpu > 0:
        slurm["SLURM_MEM_PER_CPU"] = str(info.mem_per_cpu)
    if info.start_time:
        slurm["SLURM_JOB_START_TIME"] = str(int(info.start_time))
        if info.time_limit is not None:
            slurm["SLURM_JOB_END_TIME"] = str(int(info.start_time + info.time_limit))
    env.update(slurm)
    return with_tools_path(env, python)


def gpu_env(info: LaunchJob, node: str, *, constrained: bool = False) -> dict[str, str]:
    """The GPU variables of Slurm's gres/gpu plugin (src/plugins/gres/common/gres_common.c)
    for the GPUs this node gave the job: SLURM_JOB_GPUS lists their indexes on the node;
    CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES and GPU_DEVICE_ORDINAL
    the same, or 0..N-1 when a device cgroup hides the others (``constrained``); plus the
    request options (SLURM_GPUS, SLURM_GPUS_PER_NODE, ...)."""
    out: dict[str, str] = {}
    for value, var in ((info.gpus, "SLURM_GPUS"), (info.gpus_per_node, "SLURM_GPUS_PER_NODE"),
                       (info.gpus_per_task, "SLURM_GPUS_PER_TASK"), (info.cpus_per_gpu, "SLURM_CPUS_PER_GPU"),
                       (info.mem_per_gpu, "SLURM_MEM_PER_GPU")):
        if value:
            out[var] = str(value)
    gpus = sorted(info.gres_alloc.get(node, {}).get("gpu", ()))
    if not gpus:
        return out
    global_list = ",".join(str(i) for i in gpus)
    local_list = ",".join(str(i) for i in range(len(gpus))) if constrained else global_list
    out["SLURM_JOB_GPUS"] = global_list
    out["SLURM_GPUS_ON_NODE"] = str(len(gpus))
    for var in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL"):
        out[var] = local_list
    return out


def array_env(info: LaunchJob) -> dict[str, str]:
    """A job array task's variables (Slurm's job_array.shtml): the array's job id, this
    task's index, and the count, lowest, highest index and step of the whole array."""
    if not info.array_job_id or info.array_task_id is None:
        return {}
    try:
        ranges, _ = arrays.parse_array(info.array_spec or str(info.array_task_id), 2**31)
    except ValueError:  # the controller parsed it at submission: only a foreign record fails
        ranges, _ = arrays.parse_array(str(info.array_task_id), 2**31)
    return {
        "SLURM_ARRAY_JOB_ID": str(info.array_job_id),
        "SLURM_ARRAY_TASK_ID": str(info.array_task_id),
        "SLURM_ARRAY_TASK_COUNT": str(arrays.count(ranges)),
        "SLURM_ARRAY_TASK_MIN": str(arrays.first_index(ranges)),
        "SLURM_ARRAY_TASK_MAX": str(arrays.last_index(ranges)),
        "SLURM_ARRAY_TASK_STEP": str(arrays.step_of(ranges)),
    }


def script_argv(script_path: str, script: str, argv: list[str]) -> list[str]:
    """Run a script with a shebang directly (its interpreter), anything else with bash."""
    if script.startswith("#!"):
        return [script_path, *argv]
    return ["/bin/bash", script_path, *argv]
