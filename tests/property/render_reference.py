"""The ``scontrol show job`` renderer as it was before it was made fast (spurcore/render/
scontrol.py before issue 14's query work): the oracle the fast renderer is compared with on
generated records (tests/property/test_render_equivalence.py). Not used by any tool."""

from __future__ import annotations

from typing import Any

from spurcore.exitcodes import fmt_exit, scontrol_reason
from spurcore.render._common import (
    accrue_time,
    base_state,
    eligible_time,
    job_times,
    job_tres,
    job_tres_per,
    last_sched_eval,
    make_time_str,
    null,
    print_mail_type,
)
from spurcore.render.scontrol import _detail_lines, array_task_text
from spurcore.timefmt import fmt_duration_scontrol, fmt_mem, fmt_time_limit_scontrol


class _Clock:
    __slots__ = ("fmt", "now")

    def __init__(self, fmt: str | None, now: float) -> None:
        self.fmt = fmt
        self.now = now

    def __call__(self, t: float | None) -> str:
        return make_time_str(t, self.fmt, self.now)


def _job_lines(info: dict[str, Any], detail: bool, now: float, ts: _Clock, bitstr_len: int | None,
               oneliner: bool = False) -> list[str]:
    lines: list[str] = []
    state = str(info.get("state") or "")
    pending = state == "PENDING"
    nodes = str(info.get("nodes") or "")
    node_count = int(info.get("node_count") or 0)
    num_cpus = int(info.get("num_cpus") or 0)
    batch_flag = int(info.get("batch_flag") or 0)
    restarts = int(info.get("restarts") or 0)

    head = f"JobId={info['job_id']} "
    task_text = array_task_text(info, bitstr_len)
    if task_text is not None:
        head += f"ArrayJobId={info['array_job_id']} ArrayTaskId={task_text} "
        if info.get("array_max_tasks"):
            head += f"ArrayTaskThrottle={int(info['array_max_tasks'])} "
    lines.append(f"{head}JobName={info.get('name', '')}")

    uid, gid = info.get("uid", 0), info.get("gid", 0)
    group = info.get("group") or str(gid)
    lines.append(f"UserId={info.get('user') or uid}({uid}) GroupId={group}({gid}) MCS_label=N/A")

    lines.append(
        f"Priority={info.get('priority', 0)} Nice={int(info.get('nice') or 0)} "
        f"Account={null(info.get('account'))} QOS={info.get('qos') or 'normal'}"
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
    requeue = info.get("requeue")
    requeue = 1 if requeue is None or int(requeue) < 0 else int(requeue)
    lines.append(
        f"Requeue={requeue} Restarts={restarts} BatchFlag={shown_batch_flag} Reboot=0 "
        f"ExitCode={fmt_exit(exit_code) if exit_code is not None else '0:0'}"
    )
    if detail:
        derived = info.get("derived_ec")
        lines.append(f"DerivedExitCode={fmt_exit(derived) if derived is not None else '0:0'}")

    lines.append(
        f"RunTime={fmt_duration_scontrol(info.get('run_time') or 0)} "
        f"TimeLimit={fmt_time_limit_scontrol(info.get('time_limit'))} TimeMin={_time_min(info)}"
    )
    lines.append(f"SubmitTime={ts(info.get('submit_time'))} EligibleTime={ts(eligible_time(info))}")
    lines.append(f"AccrueTime={ts(accrue_time(info, now))}")
    start, end = job_times(info, now)
    if info.get("time_limit") is None and end > now:
        end_text = "Unknown"
    else:
        end_text = ts(end)
    deadline = info.get("deadline")
    lines.append(
        f"StartTime={ts(start)} EndTime={end_text} "
        f"Deadline={ts(deadline) if deadline else 'N/A'}"
    )

    suspend = float(info.get("suspend_time") or 0)
    pre_sus = int(info.get("run_time") or 0) if base_state(info) == "SUSPENDED" else 0
    lines.append(
        f"SuspendTime={ts(suspend) if suspend else 'None'} SecsPreSuspend={pre_sus} "
        f"LastSchedEval={ts(last_sched_eval(info))} Scheduler=Main"
    )
    lines.append(
        f"Partition={info.get('partition') or 'debug'} "
        f"AllocNode:Sid={null(info.get('alloc_node'))}:{info.get('alloc_sid', 0)}"
    )
    lines.append(f"ReqNodeList={null(info.get('req_nodes'))} ExcNodeList={null(info.get('exc_nodes'))}")
    line = f"NodeList={null(nodes)}"
    if info.get("sched_nodes"):
        line += f" SchedNodeList={info['sched_nodes']}"  # a pending job's expected nodes
    lines.append(line)
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
    alloc, req = job_tres(info)
    lines.append(f"ReqTRES={req}")
    lines.append(f"AllocTRES={null(alloc)}")
    lines.append("Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*")
    if detail and nodes:
        lines.extend(_detail_lines(info, nodes, oneliner))
    lines.append(
        f"MinCPUsNode={info.get('cpus_per_task', 1)} {_min_memory(info)} MinTmpDiskNode=0"
    )
    lines.append(f"Features={null(info.get('constraint'))} DelayBoot=00:00:00")
    share = {"exclusive": "NO", "user": "USER", "mcs": "MCS", "topo": "TOPO"}.get(
        str(info.get("exclusive") or ""), "YES" if info.get("oversubscribe") else "OK")  # job_share_string
    lines.append(f"OverSubscribe={share} Contiguous=0 Licenses=(null) LicensesAlloc=(null) Network=(null)")
    lines.append(f"Command={null(info.get('command'))}")
    lines.append(f"SubmitLine={null(info.get('submit_line'))}")
    lines.append(f"WorkDir={null(info.get('work_dir'))}")
    if info.get("comment"):
        lines.append(f"Comment={info['comment']}")
    if batch_flag:
        lines.append(f"StdErr={null(info.get('stderr'))}")
        lines.append(f"StdIn={null(info.get('stdin'))}")
        lines.append(f"StdOut={null(info.get('stdout'))}")
    kill_inv = info.get("kill_on_invalid_dep")
    if kill_inv in (0, 1):
        lines.append(f"KillOnInvalidDependent={'Yes' if kill_inv else 'No'}")
    per = job_tres_per(info)
    for key, name in (("cpus_per_tres", "CpusPerTres"), ("mem_per_tres", "MemPerTres"),
                      ("tres_per_job", "TresPerJob"), ("tres_per_node", "TresPerNode"),
                      ("tres_per_task", "TresPerTask")):
        if per[key]:
            lines.append(f"{name}={per[key]}")
    if info.get("mail_type"):
        mail_type = print_mail_type(str(info["mail_type"]))
        if mail_type not in ("NONE", ""):
            lines.append(f"MailUser={info.get('mail_user') or info.get('user')} MailType={mail_type}")
    return lines


def _time_min(info: dict[str, Any]) -> str:
    """TimeMin: ``N/A`` when unset, else minutes as ``mins2time_str`` prints them."""
    secs = info.get("time_min")
    if not secs:
        return "N/A"
    return fmt_time_limit_scontrol((int(secs) + 59) // 60 * 60)


def _min_memory(info: dict[str, Any]) -> str:
    """``MinMemoryTRES=`` for ``--mem-per-gpu``, ``MinMemoryCPU=`` for ``--mem-per-cpu``,
    else ``MinMemoryNode=``."""
    if info.get("mem_per_gpu"):
        return f"MinMemoryTRES={fmt_mem(int(info.get('mem_mb') or 0))}"
    if info.get("mem_per_cpu"):
        return f"MinMemoryCPU={fmt_mem(int(info['mem_per_cpu']))}"
    return f"MinMemoryNode={fmt_mem(int(info.get('mem_mb') or 0))}"


def show_job(info: dict[str, Any], *, detail: bool = False, oneliner: bool = False, now: float,
             time_format: str | None = None, bitstr_len: int | None = None) -> str:
    """One ``scontrol [-d] [-o] show job`` record, including its terminating newline(s).
    ``time_format`` is ``SLURM_TIME_FORMAT``, ``bitstr_len`` ``SLURM_BITSTR_LEN`` (None:
    unset)."""
    lines = _job_lines(info, detail, now, _Clock(time_format, now), bitstr_len, oneliner)
    text = (" " if oneliner else "\n   ").join(lines).rstrip()
    return text + ("\n" if oneliner else "\n\n")


