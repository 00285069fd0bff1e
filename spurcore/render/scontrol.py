"""``scontrol show job`` / ``scontrol show node`` text (Slurm 25.11 layout).

Pure module: info dicts (``spurcore.views``) and an explicit ``now`` in, text out.

Sources: src/scontrol/info_job.c ``_sprint_job_info`` and src/api/node_info.c
``slurm_sprint_node_table`` at tag slurm-25-11-7-1 (reference/slurm-behaviour.md section 3).

Rules kept here:
- Every line after the first starts with ``"\\n   "``; fields on a line are joined by one
  space; a job record is right-trimmed and ends with ``"\\n\\n"`` (``"\\n"`` with ``-o``).
- 25.11 prints ``OverSubscribe=OK Contiguous=0 ...`` (``Exclusive=`` only exists from 26.x).
- ``DerivedExitCode=`` only with ``detail``; ``FailedNode=`` only when set; ``BatchHost=``
  whenever the job has one (Slurm picks a batch host for every allocation, batch or not);
  ``StdErr/StdIn/StdOut`` only for batch jobs.
- A node record is *not* trimmed: Slurm leaves the trailing spaces of ``CoresPerSocket=1 ``,
  ``OS=Linux `` and ``Partitions=debug `` in place.
"""

from __future__ import annotations

from spurcore.exitcodes import fmt_exit, scontrol_reason
from spurcore.render._common import base_state, null, tres_string
from spurcore.timefmt import fmt_duration_scontrol, fmt_mem, fmt_time_limit_scontrol, fmt_timestamp

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["show_job", "show_jobs", "show_node", "show_nodes", "SLURM_VERSION"]

#: What ``Version=`` shows for a node (Slurm prints its full release string).
SLURM_VERSION = "25.11.0"


def _ts(t: float | None) -> str:
    return fmt_timestamp(t)


def _accrue_time(info: dict[str, Any], now: float) -> float:
    """AccrueTime: when the job started to accrue age priority (0 prints ``Unknown``).

    A held job, a job waiting on a dependency or a begin time in the future does not accrue.
    """
    if "accrue_time" in info:
        return float(info["accrue_time"] or 0)
    eligible = _eligible_time(info)
    if not eligible or (info.get("state") == "PENDING" and eligible > now):
        return 0.0
    return eligible


def _eligible_time(info: dict[str, Any]) -> float:
    """EligibleTime (Slurm's begin_time) stays unset (``Unknown``) while a job is held or waits
    on a dependency (job_mgr.c ``job_independent``)."""
    if info.get("hold") and not info.get("nodes"):
        return 0.0
    if info.get("state") == "PENDING" and str(info.get("reason") or "").startswith("Dependency"):
        return 0.0
    return float(info.get("eligible_time") or 0)


def _last_sched_eval(info: dict[str, Any]) -> float:
    if info.get("last_sched_eval"):
        return float(info["last_sched_eval"])
    start = float(info.get("start_time") or 0)
    if start and info.get("nodes"):
        return start
    return float(info.get("submit_time") or 0)


def _job_lines(info: dict[str, Any], detail: bool, now: float) -> list[str]:
    lines: list[str] = []
    state = str(info.get("state") or "")
    pending = state == "PENDING"
    nodes = str(info.get("nodes") or "")
    node_count = int(info.get("node_count") or 0)
    num_cpus = int(info.get("num_cpus") or 0)
    mem_mb = int(info.get("mem_mb") or 0)
    batch_flag = int(info.get("batch_flag") or 0)
    restarts = int(info.get("restarts") or 0)

    lines.append(f"JobId={info['job_id']} JobName={info.get('name', '')}")

    uid, gid = info.get("uid", 0), info.get("gid", 0)
    group = info.get("group") or str(gid)
    lines.append(f"UserId={info.get('user') or uid}({uid}) GroupId={group}({gid}) MCS_label=N/A")

    lines.append(
        f"Priority={info.get('priority', 0)} Nice=0 Account={null(info.get('account'))} "
        f"QOS={info.get('qos') or 'normal'}"
    )

    reason = scontrol_reason(str(info.get("reason") or "None"))
    line = f"JobState={state} Reason={reason} "
    if info.get("failed_node"):
        line += f"FailedNode={info['failed_node']} "
    line += f"Dependency={null(info.get('dependency'))}"
    lines.append(line)

    exit_code = info.get("exit_code")
    # slurmctld counts a requeue in batch_flag as well as in restart_cnt.
    shown_batch_flag = batch_flag + restarts if batch_flag else 0
    lines.append(
        f"Requeue=1 Restarts={restarts} BatchFlag={shown_batch_flag} Reboot=0 "
        f"ExitCode={fmt_exit(exit_code) if exit_code is not None else '0:0'}"
    )
    if detail:
        derived = info.get("derived_ec")
        lines.append(f"DerivedExitCode={fmt_exit(derived) if derived is not None else '0:0'}")

    lines.append(
        f"RunTime={fmt_duration_scontrol(info.get('run_time') or 0)} "
        f"TimeLimit={fmt_time_limit_scontrol(info.get('time_limit'))} TimeMin=N/A"
    )
    lines.append(f"SubmitTime={_ts(info.get('submit_time'))} EligibleTime={_ts(_eligible_time(info))}")
    lines.append(f"AccrueTime={_ts(_accrue_time(info, now))}")
    end = float(info.get("end_time") or 0)
    if info.get("time_limit") is None and end > now:
        end_text = "Unknown"
    else:
        end_text = _ts(end)
    lines.append(f"StartTime={_ts(info.get('start_time'))} EndTime={end_text} Deadline=N/A")

    suspend = float(info.get("suspend_time") or 0)
    pre_sus = int(info.get("run_time") or 0) if base_state(info) == "SUSPENDED" else 0
    lines.append(
        f"SuspendTime={_ts(suspend) if suspend else 'None'} SecsPreSuspend={pre_sus} "
        f"LastSchedEval={_ts(_last_sched_eval(info))} Scheduler=Main"
    )
    lines.append(
        f"Partition={info.get('partition') or 'debug'} "
        f"AllocNode:Sid={null(info.get('alloc_node'))}:{info.get('alloc_sid', 0)}"
    )
    lines.append("ReqNodeList=(null) ExcNodeList=(null)")
    lines.append(f"NodeList={null(nodes)}")
    if info.get("batch_host"):
        lines.append(f"BatchHost={info['batch_host']}")

    max_nodes = int(info.get("max_nodes") or 0) if pending else 0
    min_nodes = node_count
    if max_nodes and max_nodes < min_nodes:
        min_nodes = max_nodes
    num_nodes = f"{min_nodes}-{max_nodes}" if max_nodes else str(min_nodes)
    lines.append(
        f"NumNodes={num_nodes} NumCPUs={num_cpus} NumTasks={info.get('num_tasks', 1)} "
        f"CPUs/Task={info.get('cpus_per_task', 1)} ReqB:S:C:T=0:0:*:*"
    )
    req_nodes = node_count
    lines.append(f"ReqTRES={tres_string(num_cpus, mem_mb * req_nodes, req_nodes, fmt_mem)}")
    if nodes:
        alloc_mem = int(info.get("alloc_mem_mb", mem_mb) or 0)
        alloc = tres_string(num_cpus, alloc_mem * node_count, node_count, fmt_mem)
    else:
        alloc = ""
    lines.append(f"AllocTRES={null(alloc)}")
    lines.append("Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*")
    lines.append(
        f"MinCPUsNode={info.get('cpus_per_task', 1)} MinMemoryNode={fmt_mem(mem_mb)} MinTmpDiskNode=0"
    )
    lines.append("Features=(null) DelayBoot=00:00:00")
    lines.append("OverSubscribe=OK Contiguous=0 Licenses=(null) LicensesAlloc=(null) Network=(null)")
    lines.append(f"Command={null(info.get('command'))}")
    lines.append(f"SubmitLine={null(info.get('submit_line'))}")
    lines.append(f"WorkDir={null(info.get('work_dir'))}")
    if info.get("comment"):
        lines.append(f"Comment={info['comment']}")
    if batch_flag:
        lines.append(f"StdErr={null(info.get('stderr'))}")
        lines.append(f"StdIn={null(info.get('stdin'))}")
        lines.append(f"StdOut={null(info.get('stdout'))}")
    return lines


def show_job(info: dict[str, Any], *, detail: bool = False, oneliner: bool = False, now: float) -> str:
    """One ``scontrol [-d] [-o] show job`` record, including its terminating newline(s)."""
    lines = _job_lines(info, detail, now)
    text = (" " if oneliner else "\n   ").join(lines).rstrip()
    return text + ("\n" if oneliner else "\n\n")


def show_jobs(
    infos: Iterable[dict[str, Any]], *, detail: bool = False, oneliner: bool = False, now: float
) -> str:
    """Records for several jobs, concatenated (Slurm prints them in the order given)."""
    return "".join(show_job(i, detail=detail, oneliner=oneliner, now=now) for i in infos)


def _node_addr(address: str, name: str) -> str:
    """NodeAddr: the host part of an agent address (``host:port`` -> ``host``)."""
    if not address:
        return name
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit() and host and ":" not in host:
        return host
    return address


def show_node(node: dict[str, Any], *, oneliner: bool = False) -> str:
    """One ``scontrol show node`` record (25.11 layout), with its terminating newline(s)."""
    end = " " if oneliner else "\n   "
    name = str(node["name"])
    cpus = int(node.get("cpus") or 0)
    cores = int(node.get("cores_per_socket") or 1)
    threads = int(node.get("threads_per_core") or 1)
    # slurm.conf with only CPUs=N: CoresPerSocket=1, ThreadsPerCore=1, Sockets=N.
    sockets = int(node.get("sockets") or max(1, cpus // (cores * threads)))
    mem = int(node.get("mem_mb") or 0)
    alloc_cpus = int(node.get("alloc_cpus") or 0)
    alloc_mem = int(node.get("alloc_mem") or 0)
    partitions = node.get("partitions") or [node.get("partition") or "debug"]
    registered = float(node.get("registered_at") or 0)
    last_busy = float(node.get("last_busy") or registered)

    out = f"NodeName={name} Arch={node.get('arch') or 'x86_64'} CoresPerSocket={cores} " + end
    out += f"CPUAlloc={alloc_cpus} CPUEfctv={cpus} CPUTot={cpus} CPULoad=0.00" + end
    out += "AvailableFeatures=(null)" + end
    out += "ActiveFeatures=(null)" + end
    out += "Gres=(null)" + end
    addr = _node_addr(str(node.get("address") or ""), name)
    out += f"NodeAddr={addr} NodeHostName={name} Version={node.get('version') or SLURM_VERSION}" + end
    out += f"OS={node.get('os') or 'Linux'} " + end
    out += f"RealMemory={mem} AllocMem={alloc_mem} FreeMem=N/A Sockets={sockets} Boards=1" + end
    out += (
        f"State={node.get('state') or 'UNKNOWN'} ThreadsPerCore={threads} TmpDisk=0 Weight=1 "
        "Owner=N/A MCS_label=N/A" + end
    )
    out += f"Partitions={','.join(partitions)} " + end
    slurmd_start = _ts(registered) if registered else "None"
    out += f"BootTime=None SlurmdStartTime={slurmd_start}" + end
    out += f"LastBusyTime={_ts(last_busy)} ResumeAfterTime=None" + end
    out += f"CfgTRES={tres_string(cpus, mem, 0, fmt_mem)}" + end
    alloc_tres = (
        f"cpu={alloc_cpus}" + (f",mem={fmt_mem(alloc_mem)}" if alloc_mem else "") if alloc_cpus else ""
    )
    out += f"AllocTRES={alloc_tres}" + end
    out += "CurrentWatts=0 AveWatts=0"
    reason = str(node.get("reason") or "")
    if reason:
        for i, tok in enumerate(t for t in reason.split("\n") if t):
            if i == 0:
                out += end + "Reason=" + tok
                down_at = float(node.get("reason_time") or node.get("down_at") or 0)
                if down_at:
                    out += f" [{node.get('reason_user') or 'root'}@{_ts(down_at)}]"
            else:
                out += end + "       " + tok
    return out + ("\n" if oneliner else "\n\n")


def show_nodes(nodes: Iterable[dict[str, Any]], *, oneliner: bool = False) -> str:
    return "".join(show_node(n, oneliner=oneliner) for n in nodes)
