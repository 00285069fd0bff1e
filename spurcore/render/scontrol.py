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

from spurcore.arrays import task_str
from spurcore.exitcodes import fmt_exit, scontrol_reason
from spurcore.render._common import (
    TimeStrings,
    accrue_time,
    base_state,
    eligible_time,
    field_key,
    job_times,
    job_tres,
    job_tres_per,
    last_sched_eval,
    make_time_str,
    null,
    print_mail_type,
    share_string,
    tres_string,
)
from spurcore.timefmt import fmt_duration_scontrol, fmt_mem, fmt_time_limit_scontrol

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

__all__ = [
    "show_job",
    "show_jobs",
    "show_job_rows",
    "show_node",
    "show_nodes",
    "show_step",
    "show_steps",
    "show_partition",
    "show_config",
    "merge_sched_config",
    "array_task_text",
    "SLURM_VERSION",
]

#: What ``Version=`` shows for a node (Slurm prints its full release string).
SLURM_VERSION = "25.11.0"


class _Clock:
    """The time formatting of one rendering: ``SLURM_TIME_FORMAT`` and the clock it is
    relative to."""

    __slots__ = ("fmt", "now")

    def __init__(self, fmt: str | None, now: float) -> None:
        self.fmt = fmt
        self.now = now

    def __call__(self, t: float | None) -> str:
        return make_time_str(t, self.fmt, self.now)


def array_task_text(info: dict[str, Any], bitstr_len: int | None = None) -> str | None:
    """``ArrayTaskId=`` of an array record: the pending tasks (``xlate_array_task_str``:
    ``4-99%10``, ``1-99:2``) on the array's pending record, the task on a task record; None
    for a job that is not part of an array."""
    if not info.get("array_job_id"):
        return None
    task = info.get("array_task_id")
    if task is not None:
        return str(task)
    ranges = [list(r) for r in info.get("array_pending") or ()]
    return task_str(ranges, int(info.get("array_max_tasks") or 0), 64 if bitstr_len is None else bitstr_len)


#: The fields of the controller's job records (``spurcore.views.job_info``) that ``show_job``
#: reads: ``scontrol show job`` asks for these alone. Not asked for: what those records do not
#: have (``max_nodes``, ``last_sched_eval``, ``accrue_time``, ``alloc_mem_mb``: a field asked
#: for arrives as None, and the mere presence of some of them changes the text) and
#: ``group``, which scontrol fills in itself.
JOB_FIELDS = (
    "job_id", "name", "user", "uid", "gid", "state", "base_state", "reason", "exit_code", "derived_ec",
    "priority", "hold", "submit_time", "eligible_time", "start_time", "sched_nodes", "end_time",
    "suspend_time", "run_time", "time_limit", "time_min", "deadline", "partition", "account", "qos", "nice",
    "nodes", "node_count", "num_cpus", "num_tasks", "cpus_per_task", "mem_mb", "mem_per_cpu",
    "mem_per_gpu", "dependency", "batch_flag", "batch_host", "restarts", "requeue", "failed_node", "command",
    "submit_line", "work_dir", "comment", "stdout", "stderr", "stdin", "alloc_node", "alloc_sid", "req_nodes",
    "exc_nodes", "constraint", "kill_on_invalid_dep", "mail_type", "mail_user",
    "array_job_id", "array_task_id", "array_pending", "array_max_tasks", "req_tres", "alloc_tres",
    "gres_detail", "gres", "gpus", "gpus_per_node", "gpus_per_task", "cpus_per_gpu",
)


class _JobText:
    """One rendering of job records (``show_job``/``show_jobs``): the layout of info_job.c
    ``_sprint_job_info``, one record per call.

    The hot path of ``scontrol show job`` with a long queue (about 70 fields of each of
    20,000 records). A record is printed in parts: the parts that name the job (its id and
    name, its times) for every record, the others (``SHARED``: user, state, limits, nodes,
    TRES, files, ...) once per distinct value of the fields they read, kept for the
    rendering; every time once per second (``TimeStrings``). Invariant: the text of a record
    depends on that record, ``now``, the time format, ``bitstr_len`` and the two flags alone,
    never on the records rendered before it (tests/property/test_render_equivalence.py
    checks it against the plain renderer, tests/property/test_render_deps.py the fields of
    each shared part)."""

    __slots__ = ("detail", "oneliner", "now", "bitstr_len", "sep", "end", "time", "_key", "_texts")

    def __init__(self, *, detail: bool, oneliner: bool, now: float, time_format: str | None,
                 bitstr_len: int | None) -> None:
        self.detail = detail
        self.oneliner = oneliner
        self.now = now
        self.bitstr_len = bitstr_len
        self.sep = " " if oneliner else "\n   "
        self.end = "\n" if oneliner else "\n\n"
        self.time = TimeStrings(time_format, now)
        # optional: the fields not all of scontrol's records have (it asks for JOB_FIELDS, adds the group)
        deps = tuple(dict.fromkeys(field for deps, _part in self.SHARED for field in deps))
        self._key = field_key(deps, frozenset(deps) - _USUAL_FIELDS)
        self._texts: dict[Any, tuple[str, ...]] = {}

    def __call__(self, info: dict[str, Any]) -> str:
        return "".join(self.parts(info))

    def parts(self, info: dict[str, Any]) -> tuple[str, ...]:
        """The record's text in pieces, in order."""
        ids, nodes, files = self.shared(info)
        if self.detail and info.get("nodes"):
            detail = "".join(self.sep + line for line in _detail_lines(info, str(info["nodes"]), self.oneliner))
            return self.head(info), ids, self.times(info), nodes, detail, files
        return self.head(info), ids, self.times(info), nodes, files

    def shared(self, info: dict[str, Any]) -> tuple[str, ...]:
        """The texts of the ``SHARED`` parts, the last one right-trimmed and ended (it is not
        blank: trimming it trims the record), once per distinct value of every field they
        read (a field a record lacks is not the same as one that is None)."""
        key = self._key(info)
        try:
            found = self._texts.get(key)
        except TypeError:  # an unhashable value (a malformed record): printed as it is
            return self._shared(info)
        if found is None:
            found = self._texts[key] = self._shared(info)
        return found

    def _shared(self, info: dict[str, Any]) -> tuple[str, ...]:
        *texts, last = [part(self, info) for _deps, part in self.SHARED]
        return *texts, last.rstrip() + self.end

    def row_parts(self, fields: Sequence[str], rows: Iterable[Sequence[Any]],
                  group_of: Callable[[int], str] | None) -> list[str]:
        """The pieces of the records given as ``rows`` of ``fields`` (see ``show_job_rows``):
        what ``parts`` gives for each record, without making a map of every record's fields.
        The shared parts are keyed on the row's values of their fields (those ``fields``
        has; the others are absent from every record, and the group is the gid's); the
        parts printed for every record read a map of ``PER_RECORD`` fields only."""
        index = {f: i for i, f in enumerate(fields)}
        deps = dict.fromkeys(field for deps, _part in self.SHARED for field in deps)
        key_of = _values_at([index[f] for f in deps if f in index])
        own = [f for f in self.PER_RECORD if f in index]
        take = _values_at([index[f] for f in own])
        nodes_at = index.get("nodes")
        texts: dict[Any, tuple[str, ...]] = {}

        def record(row: Sequence[Any]) -> dict[str, Any]:
            info = dict(zip(fields, row, strict=True))
            if group_of is not None and "group" not in info:
                info["group"] = group_of(int(info.get("gid", 0)))
            return info

        out: list[str] = []
        for row in rows:
            key = key_of(row)
            try:
                shared = texts.get(key)
            except TypeError:  # an unhashable value (a malformed record): printed as it is
                shared = self._shared(record(row))
            else:
                if shared is None:
                    shared = texts[key] = self._shared(record(row))
            ids, nodes, files = shared
            info = dict(zip(own, take(row), strict=True))
            out += (self.head(info), ids, self.times(info), nodes)
            if self.detail and nodes_at is not None and row[nodes_at]:
                out.append("".join(self.sep + line for line in _detail_lines(record(row), str(row[nodes_at]),
                                                                               self.oneliner)))
            out.append(files)
        return out

    # --- the parts printed for every record (PER_RECORD: every field they read)

    PER_RECORD = ("job_id", "name", "array_job_id", "array_task_id", "array_pending", "array_max_tasks",
                  "submit_time", "eligible_time", "hold", "nodes", "state", "reason", "accrue_time", "start_time",
                  "end_time", "base_state", "time_limit", "deadline", "suspend_time", "run_time", "last_sched_eval")

    def head(self, info: dict[str, Any]) -> str:
        """``JobId=`` (with the array's ids) and ``JobName=``."""
        if info.get("array_job_id"):
            head = (f"JobId={info['job_id']} ArrayJobId={info['array_job_id']} "
                    f"ArrayTaskId={array_task_text(info, self.bitstr_len)} ")
            if info.get("array_max_tasks"):
                head += f"ArrayTaskThrottle={int(info['array_max_tasks'])} "
            return f"{head}JobName={info.get('name', '')}"
        return f"JobId={info['job_id']} JobName={info.get('name', '')}"

    def times(self, info: dict[str, Any]) -> str:
        """The submit, eligible, accrue, start, end, deadline, suspend and last evaluation
        times."""
        sep, ts, now = self.sep, self.time, self.now
        start, end = job_times(info, now)
        end_text = "Unknown" if info.get("time_limit") is None and end > now else ts(end)
        deadline = info.get("deadline")
        suspend = float(info.get("suspend_time") or 0)
        pre_sus = int(info.get("run_time") or 0) if base_state(info) == "SUSPENDED" else 0
        return (
            f"{sep}SubmitTime={ts(info.get('submit_time'))} EligibleTime={ts(eligible_time(info))}"
            f"{sep}AccrueTime={ts(accrue_time(info, now))}"
            f"{sep}StartTime={ts(start)} EndTime={end_text} Deadline={ts(deadline) if deadline else 'N/A'}"
            f"{sep}SuspendTime={ts(suspend) if suspend else 'None'} SecsPreSuspend={pre_sus} "
            f"LastSchedEval={ts(last_sched_eval(info))} Scheduler=Main"
        )

    # --- the parts many records share (SHARED: each with every field it reads)

    def ids(self, info: dict[str, Any]) -> str:
        """User and group, priority, state and reason, requeue and exit codes, run time and
        limits."""
        get, sep = info.get, self.sep
        uid, gid = get("uid", 0), get("gid", 0)
        requeue = get("requeue")
        requeue = 1 if requeue is None or int(requeue) < 0 else int(requeue)
        batch_flag = int(get("batch_flag") or 0)
        restarts = int(get("restarts") or 0)
        exit_code, derived = get("exit_code"), get("derived_ec")
        return (
            f"{sep}UserId={get('user') or uid}({uid}) GroupId={get('group') or str(gid)}({gid}) MCS_label=N/A"
            f"{sep}Priority={get('priority', 0)} Nice={int(get('nice') or 0)} "
            f"Account={null(get('account'))} QOS={get('qos') or 'normal'}"
            f"{sep}JobState={get('state') or ''} Reason={scontrol_reason(str(get('reason') or 'None'))} "
            + (f"FailedNode={info['failed_node']} " if get("failed_node") else "")
            + f"Dependency={null(get('dependency'))}"
            # slurmctld counts a requeue in batch_flag as well as in restart_cnt.
            f"{sep}Requeue={requeue} Restarts={restarts} BatchFlag={batch_flag + restarts if batch_flag else 0} "
            f"Reboot=0 ExitCode={fmt_exit(exit_code) if exit_code is not None else '0:0'}"
            + (f"{sep}DerivedExitCode={fmt_exit(derived) if derived is not None else '0:0'}" if self.detail else "")
            + f"{sep}RunTime={fmt_duration_scontrol(get('run_time') or 0)} "
            f"TimeLimit={fmt_time_limit_scontrol(get('time_limit'))} TimeMin={_time_min(info)}"
        )

    def nodes(self, info: dict[str, Any]) -> str:
        """Partition, allocating node, node lists, counts and TRES."""
        get, sep = info.get, self.sep
        max_nodes = int(get("max_nodes") or 0) if str(get("state") or "") == "PENDING" else 0
        min_nodes = int(get("node_count") or 0)
        if max_nodes and max_nodes < min_nodes:
            min_nodes = max_nodes
        alloc, req = job_tres(info)
        return (
            f"{sep}Partition={get('partition') or 'debug'} "
            f"AllocNode:Sid={null(get('alloc_node'))}:{get('alloc_sid', 0)}"
            f"{sep}ReqNodeList={null(get('req_nodes'))} ExcNodeList={null(get('exc_nodes'))}"
            f"{sep}NodeList={null(str(get('nodes') or ''))}"
            + (f" SchedNodeList={info['sched_nodes']}" if get("sched_nodes") else "")  # a pending job's expected nodes
            + (f"{sep}BatchHost={info['batch_host']}" if get("batch_host") else "")
            + f"{sep}NumNodes={f'{min_nodes}-{max_nodes}' if max_nodes else min_nodes} "
            f"NumCPUs={int(get('num_cpus') or 0)} NumTasks={get('num_tasks', 1)} "
            f"CPUs/Task={get('cpus_per_task', 1)} ReqB:S:C:T=0:0:*:*"
            f"{sep}ReqTRES={req}{sep}AllocTRES={null(alloc)}"
            f"{sep}Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*"
        )

    def files(self, info: dict[str, Any]) -> str:
        """Memory, features, command and files, TRES per task/node, mail: the rest."""
        get, sep = info.get, self.sep
        text = (
            f"{sep}MinCPUsNode={get('cpus_per_task', 1)} {_min_memory(info)} MinTmpDiskNode=0"
            f"{sep}Features={null(get('constraint'))} DelayBoot=00:00:00"
            f"{sep}OverSubscribe={share_string(info)} Contiguous=0 Licenses=(null) LicensesAlloc=(null) Network=(null)"
            f"{sep}Command={null(get('command'))}{sep}SubmitLine={null(get('submit_line'))}"
            f"{sep}WorkDir={null(get('work_dir'))}"
        )
        if get("comment"):
            text += f"{sep}Comment={info['comment']}"
        if int(get("batch_flag") or 0):
            text += f"{sep}StdErr={null(get('stderr'))}{sep}StdIn={null(get('stdin'))}{sep}StdOut={null(get('stdout'))}"
        kill_inv = get("kill_on_invalid_dep")
        if kill_inv in (0, 1):
            text += f"{sep}KillOnInvalidDependent={'Yes' if kill_inv else 'No'}"
        per = job_tres_per(info)
        for key, name in (("cpus_per_tres", "CpusPerTres"), ("mem_per_tres", "MemPerTres"),
                          ("tres_per_job", "TresPerJob"), ("tres_per_node", "TresPerNode"),
                          ("tres_per_task", "TresPerTask")):
            if per[key]:
                text += f"{sep}{name}={per[key]}"
        if get("mail_type"):
            mail_type = print_mail_type(str(info["mail_type"]))
            if mail_type not in ("NONE", ""):
                text += f"{sep}MailUser={get('mail_user') or get('user')} MailType={mail_type}"
        return text

    #: The shared parts, in the order a record prints them, each with every field it reads.
    SHARED: tuple[tuple[tuple[str, ...], Callable[[_JobText, dict[str, Any]], str]], ...] = (
        (("user", "uid", "group", "gid", "priority", "nice", "account", "qos", "state", "reason", "failed_node",
          "dependency", "requeue", "restarts", "batch_flag", "exit_code", "derived_ec", "run_time", "time_limit",
          "time_min"), ids),
        (("partition", "alloc_node", "alloc_sid", "req_nodes", "exc_nodes", "nodes", "sched_nodes", "batch_host",
          "state", "max_nodes", "node_count", "num_cpus", "num_tasks", "cpus_per_task", "req_tres", "alloc_tres",
          "mem_mb", "mem_per_cpu", "alloc_mem_mb"), nodes),
        (("cpus_per_task", "mem_per_gpu", "mem_per_cpu", "mem_mb", "constraint", "command", "submit_line",
          "work_dir", "comment", "batch_flag", "stderr", "stdin", "stdout", "kill_on_invalid_dep", "gpus",
          "gpus_per_node", "gres", "gpus_per_task", "cpus_per_gpu", "mail_type", "mail_user", "user",
          "exclusive", "oversubscribe"), files),
    )


_USUAL_FIELDS = frozenset(JOB_FIELDS) | {"group"}
def _detail_lines(info: dict[str, Any], nodes: str, oneliner: bool) -> list[str]:
    """``-d`` of a job holding nodes: ``JOB_GRES=`` and one ``Nodes=... CPU_IDs=... Mem=...
    GRES=...`` line per run of nodes with the same allocation (info_job.c). Spur allocates
    CPU counts, not CPU ids: ``CPU_IDs=N/A``. ``Mem`` is the memory per node of AllocTRES."""
    from spurcore.hostlist import expand
    from spurcore.render._common import gres_detail_total, gres_detail_used

    details = [str(d or "") for d in info.get("gres_detail") or ()]
    lines = [f"JOB_GRES={null(gres_detail_total(details))}"]
    names = expand(nodes)
    mem_total = 0
    for item in str(info.get("alloc_tres") or "").split(","):
        key, _eq, value = item.partition("=")
        if key == "mem" and value.endswith("M") and value[:-1].isdigit():
            mem_total = int(value[:-1])
    mem = mem_total // len(names) if names else 0
    indent = "" if oneliner else "  "
    runs: list[tuple[list[str], str]] = []
    for i, name in enumerate(names):
        gres = gres_detail_used(details[i]) if i < len(details) else ""
        if runs and runs[-1][1] == gres:
            runs[-1][0].append(name)
        else:
            runs.append(([name], gres))
    for run_nodes, gres in runs:
        lines.append(f"{indent}Nodes={hostlist_ranged(run_nodes)} CPU_IDs=N/A Mem={mem} GRES={gres}")
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
    return _JobText(detail=detail, oneliner=oneliner, now=now, time_format=time_format, bitstr_len=bitstr_len)(info)


def show_jobs(
    infos: Iterable[dict[str, Any]], *, detail: bool = False, oneliner: bool = False, now: float,
    time_format: str | None = None, bitstr_len: int | None = None,
) -> str:
    """Records for several jobs, concatenated (Slurm prints them in the order given)."""
    text = _JobText(detail=detail, oneliner=oneliner, now=now, time_format=time_format, bitstr_len=bitstr_len)
    out: list[str] = []
    for info in infos:
        out.extend(text.parts(info))
    return "".join(out)


def _values_at(positions: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """The function giving a row's values at ``positions``, as a tuple (one C call)."""
    from _operator import itemgetter  # operator.py itself costs a command 0.3 ms

    if len(positions) > 1:
        return itemgetter(*positions)
    return lambda row: tuple(row[i] for i in positions)


def show_job_rows(fields: Sequence[str], rows: Iterable[Sequence[Any]], *, group_of: Callable[[int], str] | None = None,
                  detail: bool = False, oneliner: bool = False, now: float, time_format: str | None = None,
                  bitstr_len: int | None = None) -> str:
    """``show_jobs`` of the records given as ``rows`` of ``fields``, the controller's
    columnar ``jobs`` answer (every record has every field), each with the ``group`` that
    ``group_of(gid)`` names when given: the same text as ``show_jobs`` of those records,
    without a map of each record's 70 fields (making them was a third of ``scontrol show
    job`` of 20,000 jobs). tests/property/test_render_equivalence.py compares the two."""
    text = _JobText(detail=detail, oneliner=oneliner, now=now, time_format=time_format, bitstr_len=bitstr_len)
    return "".join(text.row_parts(fields, rows, group_of))


def reason_user(node: dict[str, Any]) -> str:
    """Who set a node's reason, as ``Reason=... [user@time]`` and sinfo ``%u`` name them:
    the record's ``reason_user`` when the reader resolved the uid, else ``slurm`` for the
    controller itself (``reason_uid`` -1, Slurm's SlurmUser), ``root`` for uid 0, the
    number otherwise."""
    if node.get("reason_user"):
        return str(node["reason_user"])
    uid = node.get("reason_uid", -1)
    uid = -1 if uid is None else int(uid)
    return "slurm" if uid < 0 else "root" if uid == 0 else str(uid)


def show_node(node: dict[str, Any], *, oneliner: bool = False, time_format: str | None = None,
              now: float = 0.0, detail: bool = False) -> str:
    """One ``scontrol [-d] show node`` record (node_info.c ``slurm_sprint_node_table``), with
    its terminating newline(s). ``GresUsed=`` only with ``detail`` (slurmctld gathers it
    only for SHOW_DETAIL)."""
    from spurcore.endpoints import node_addr
    from spurcore.render._common import tres_units
    from spurcore.render.nodestate import state_complete

    _ts = _Clock(time_format, now)
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
    if "partitions" in node:
        partitions = [str(p) for p in node.get("partitions") or ()]
    else:  # a record without the membership list: the one partition it names
        partitions = [str(node.get("partition") or "debug")]
    registered = float(node.get("registered_at") or 0)
    last_busy = float(node.get("last_busy") or registered)
    features = ",".join(str(f) for f in node.get("features") or ())
    active = node.get("active_features")
    active_text = ",".join(str(f) for f in active) if active is not None else features

    out = f"NodeName={name} Arch={node.get('arch') or 'x86_64'} CoresPerSocket={cores} " + end
    out += f"CPUAlloc={alloc_cpus} CPUEfctv={cpus} CPUTot={cpus} CPULoad=0.00" + end
    out += f"AvailableFeatures={null(features)}" + end
    out += f"ActiveFeatures={null(active_text)}" + end
    out += f"Gres={null(node.get('gres'))}" + end
    gres_used = str(node.get("gres_used") or "")
    if detail and gres_used and gres_used != "(null)":
        out += f"GresUsed={gres_used}" + end
    addr = node_addr(str(node.get("address") or ""), name)
    out += f"NodeAddr={addr} NodeHostName={name} Version={node.get('version') or SLURM_VERSION}" + end
    out += f"OS={node.get('os') or 'Linux'} " + end
    out += f"RealMemory={mem} AllocMem={alloc_mem} FreeMem=N/A Sockets={sockets} Boards=1" + end
    out += (
        f"State={state_complete(node)} ThreadsPerCore={threads} TmpDisk=0 Weight={int(node.get('weight') or 1)} "
        "Owner=N/A MCS_label=N/A" + end
    )
    if partitions:
        out += f"Partitions={','.join(partitions)} " + end
    slurmd_start = _ts(registered) if registered else "None"
    out += f"BootTime=None SlurmdStartTime={slurmd_start}" + end
    out += f"LastBusyTime={_ts(last_busy)} ResumeAfterTime=None" + end
    if node.get("cfg_tres"):
        out += f"CfgTRES={tres_units(str(node['cfg_tres']), drop=('node',))}" + end
    else:
        out += f"CfgTRES={tres_string(cpus, mem, 0, fmt_mem)}" + end
    if "alloc_tres" in node:
        alloc_tres = tres_units(str(node.get("alloc_tres") or ""), drop=("node", "billing"))
    else:
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
                when = float(node.get("reason_time") or node.get("down_at") or 0)
                if when:
                    out += f" [{reason_user(node)}@{_ts(when)}]"
            else:
                out += end + "       " + tok
    return out + ("\n" if oneliner else "\n\n")


def show_nodes(nodes: Iterable[dict[str, Any]], *, oneliner: bool = False, time_format: str | None = None,
               now: float = 0.0, detail: bool = False) -> str:
    return "".join(show_node(n, oneliner=oneliner, time_format=time_format, now=now, detail=detail)
                   for n in nodes)


# ---------------------------------------------------------------------------------------------
# show step (info_job.c _sprint_step_info)


def _step_id_text(step: dict[str, Any], job: dict[str, Any]) -> str:
    sid = step.get("step_id")
    sid_text = "TBD" if sid is None else str(sid)
    if job.get("array_job_id") and job.get("array_task_id") is not None:
        return f"{job['array_job_id']}_{job['array_task_id']}.{sid_text}"
    return f"{job['job_id']}.{sid_text}"


def show_step(step: dict[str, Any], job: dict[str, Any], *, oneliner: bool = False, now: float = 0.0,
              time_format: str | None = None) -> str:
    """One ``scontrol show step`` record (``StepId=12.0 UserId=...``), ``job`` its job's record."""
    end = " " if oneliner else "\n   "
    ts = _Clock(time_format, now)
    cpus = int(step.get("cpus") or 0)
    nodes = int(step.get("node_count") or 0)
    tres = ",".join(p for p in (f"cpu={cpus}" if cpus else "", "mem=0", f"node={nodes}" if nodes else "") if p)
    dist = "" if step.get("step_id") in ("batch", "extern", "interactive") else " Dist=Block"
    out = (
        f"StepId={_step_id_text(step, job)} UserId={step.get('uid', job.get('uid', 0))} "
        f"StartTime={ts(step.get('start_time'))} TimeLimit=UNLIMITED"
    )
    out += end + f"State={step.get('state') or 'RUNNING'} Partition={null(job.get('partition'))} " \
                 f"NodeList={null(step.get('nodes'))}"
    out += end + f"Nodes={nodes} CPUs={cpus} Tasks={int(step.get('ntasks') or 0)} " \
                 f"Name={null(step.get('name'))} Network=(null)"
    out += end + f"TRES={tres}"
    out += end + "ResvPorts=(null)"
    out += end + "CPUFreqReq=Default" + dist
    out += end + f"SrunHost:Pid={null(job.get('alloc_node'))}:0"
    return out + ("\n" if oneliner else "\n\n")


def show_steps(pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]], *, oneliner: bool = False,
               now: float = 0.0, time_format: str | None = None) -> str:
    return "".join(show_step(s, j, oneliner=oneliner, now=now, time_format=time_format) for s, j in pairs)


# ---------------------------------------------------------------------------------------------
# show partition (api/partition_info.c slurm_sprint_partition_info)


def partitions_from_nodes(nodes: Iterable[dict[str, Any]], default: str = "debug") -> list[dict[str, Any]]:
    """Partition records (name, nodes, total_cpus, total_nodes, total_mem, default, state)
    from node records, in first-seen order. Spur has one partition per node list entry."""
    from spurcore.hostlist import compress

    parts: dict[str, dict[str, Any]] = {}
    for node in nodes:
        for name in node.get("partitions") or [node.get("partition") or default]:
            part = parts.setdefault(str(name), {
                "name": str(name), "node_names": [], "total_cpus": 0, "total_mem": 0,
                "default": str(name) == default, "state": "UP", "max_time": None,
            })
            part["node_names"].append(str(node["name"]))
            part["total_cpus"] += int(node.get("cpus") or 0)
            part["total_mem"] += int(node.get("mem_mb") or 0)
    out = []
    for part in parts.values():
        names = part.pop("node_names")
        part["nodes"] = compress(names)
        part["total_nodes"] = len(names)
        out.append(part)
    return out


def show_partition(part: dict[str, Any], *, oneliner: bool = False) -> str:
    """One ``scontrol show partition`` record (partition_info.c
    ``slurm_sprint_partition_info``; not trimmed, ``\\n\\n`` after it) from a record of the
    ``partitions`` answer (``spurcore.views.partition_info``)."""
    from spurcore.render._common import oversubscribe_text, tres_units

    end = " " if oneliner else "\n   "
    max_time = part.get("max_time")
    default_time = part.get("default_time")
    max_nodes = part.get("max_nodes")
    cpus = int(part.get("total_cpus") or 0)
    groups = ",".join(str(g) for g in part.get("allow_groups") or ())
    allow = ",".join(str(a) for a in part.get("allow_accounts") or ())
    deny = ",".join(str(a) for a in part.get("deny_accounts") or ())
    accounts = f"AllowAccounts={allow or 'ALL'}" if allow or not deny else f"DenyAccounts={deny}"
    yes_no = {True: "YES", False: "NO"}
    out = f"PartitionName={part['name']}" + end
    out += f"AllowGroups={groups or 'ALL'} {accounts} AllowQos=ALL" + end
    out += f"AllocNodes=ALL Default={yes_no[bool(part.get('default'))]} QoS=N/A" + end
    out += (
        f"DefaultTime={'NONE' if default_time is None else fmt_duration_scontrol(int(default_time))} "
        f"DisableRootJobs=NO ExclusiveUser={yes_no[bool(part.get('exclusive_user'))]} ExclusiveTopo=NO "
        f"GraceTime=0 Hidden={yes_no[bool(part.get('hidden'))]}" + end
    )
    out += (
        f"MaxNodes={'UNLIMITED' if max_nodes is None else int(max_nodes)} "
        f"MaxTime={'UNLIMITED' if max_time is None else fmt_duration_scontrol(int(max_time))} "
        f"MinNodes={int(part.get('min_nodes') or 0)} LLN=NO MaxCPUsPerNode=UNLIMITED "
        "MaxCPUsPerSocket=UNLIMITED" + end
    )
    nodes = "ALL" if part.get("all_nodes") else part.get("nodes")
    out += f"Nodes={null(nodes)}" + end
    out += (
        f"PriorityJobFactor={int(part.get('priority_job_factor') or 1)} "
        f"PriorityTier={int(part.get('priority_tier') or 1)} RootOnly=NO ReqResv=NO "
        f"OverSubscribe={oversubscribe_text(part.get('oversubscribe'))}" + end
    )
    out += "OverTimeLimit=NONE PreemptMode=OFF" + end
    out += (
        f"State={part.get('state') or 'UP'} TotalCPUs={cpus} TotalNodes={int(part.get('total_nodes') or 0)} "
        "SelectTypeParameters=NONE" + end
    )
    out += "JobDefaults=(null)" + end
    out += "DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED" + end
    if part.get("tres"):
        out += f"TRES={tres_units(str(part['tres']))}"
    else:
        out += f"TRES={tres_string(cpus, int(part.get('total_mem') or 0), int(part.get('total_nodes') or 0), fmt_mem)}"
    return out + ("\n" if oneliner else "\n\n")


# ---------------------------------------------------------------------------------------------
# show config (api/config_info.c slurm_print_ctl_conf)

#: slurm_ctl_conf_2_key_pairs' order (25.11); other keys follow, sorted.
CONFIG_ORDER = (
    "AccountingStorageBackupHost AccountingStorageEnforce AccountingStorageHost "
    "AccountingStorageExternalHost AccountingStorageParameters AccountingStoragePort "
    "AccountingStorageTRES AccountingStorageType AccountingStoreFlags AcctGatherEnergyType "
    "AcctGatherFilesystemType AcctGatherInterconnectType AcctGatherNodeFreq AcctGatherProfileType "
    "AllowSpecResourcesUsage AuthAltTypes AuthAltParameters AuthInfo AuthType BatchStartTimeout "
    "BcastExclude BcastParameters BOOT_TIME BurstBufferType CertgenParameters CertgenType "
    "CertmgrParameters CertmgrType CliFilterParameters CliFilterPlugins ClusterName "
    "CommunicationParameters CompleteWait CpuFreqDef CpuFreqGovernors CredType DataParserParameters "
    "DebugFlags DefMemPerNode DefMemPerCPU DependencyParameters DisableRootJobs EioTimeout "
    "EnforcePartLimits EpilogMsgTime FairShareDampeningFactor FederationParameters FirstJobId GresTypes "
    "GpuFreqDef GroupUpdateForce GroupUpdateTime HASH_VAL HashPlugin HealthCheckInterval "
    "HealthCheckNodeState HealthCheckProgram HttpParserType InactiveLimit InteractiveStepOptions "
    "JobAcctGatherFrequency JobAcctGatherType JobAcctGatherParams JobCompHost JobCompLoc JobCompParams "
    "JobCompPass JobCompPort JobCompType JobCompUser JobDefaults JobFileAppend JobRequeue "
    "JobSubmitPlugins KillOnBadExit KillWait LaunchParameters Licenses LogTimeFormat MailDomain MailProg "
    "MaxArraySize MaxBatchRequeue MaxDBDMsgs MaxJobCount MaxJobId MaxMemPerNode MaxMemPerCPU "
    "MaxNodeCount MaxStepCount MaxTasksPerNode MCSPlugin MCSParameters MessageTimeout MetricsType "
    "MinJobAge MpiDefault MpiParams MULTIPLE_SLURMD NamespaceType NEXT_JOB_ID NodeFeaturesPlugins "
    "OverTimeLimit PluginDir PlugStackConfig PreemptMode PreemptParameters PreemptType PreemptExemptTime "
    "PrEpParameters PrEpPlugins PriorityParameters PrioritySiteFactorParameters "
    "PrioritySiteFactorPlugin PriorityDecayHalfLife PriorityCalcPeriod PriorityFavorSmall "
    "PriorityFlags PriorityMaxAge PriorityType PriorityUsageResetPeriod PriorityWeightAge PriorityWeightAssoc "
    "PriorityWeightFairShare PriorityWeightJobSize PriorityWeightPartition PriorityWeightQOS "
    "PriorityWeightTRES PrivateData ProctrackType PrologEpilogTimeout EpilogTimeout PrologTimeout "
    "PrologFlags PropagatePrioProcess PropagateResourceLimits PropagateResourceLimitsExcept "
    "RebootProgram ReconfigFlags RequeueExit RequeueExitHold ResumeFailProgram ResumeProgram ResumeRate "
    "ResumeTimeout ResvEpilog ResvOverRun ResvProlog ReturnToService SchedulerParameters "
    "SchedulerTimeSlice SchedulerType ScronParameters SelectType SelectTypeParameters SlurmUser "
    "SlurmctldAddr SlurmctldDebug SlurmctldLogFile SlurmctldPort SlurmctldSyslogDebug "
    "SlurmctldPrimaryOffProg SlurmctldPrimaryOnProg SlurmctldTimeout SlurmctldParameters SlurmdDebug "
    "SlurmdLogFile SlurmdParameters SlurmdPidFile SlurmdPort SlurmdSpoolDir SlurmdSyslogDebug "
    "SlurmdTimeout SlurmdUser SlurmSchedLogFile SlurmSchedLogLevel SlurmctldPidFile SLURM_CONF "
    "SLURM_VERSION SrunEpilog SrunPortRange SrunProlog StateSaveLocation SuspendExcNodes SuspendExcParts "
    "SuspendExcStates SuspendProgram SuspendRate SuspendTime SuspendTimeout SwitchParameters SwitchType "
    "TaskEpilog TaskPlugin TaskPluginParam TaskProlog TCPTimeout TLSParameters TLSType TmpFS "
    "TopologyParam TopologyPlugin TrackWCKey TreeWidth UsePam UnkillableStepProgram "
    "UnkillableStepTimeout UrlParserType VSizeFactor WaitTime X11Parameters"
).split()

#: The unit config_info.c prints after a number.
_CONFIG_UNITS = {
    "AcctGatherNodeFreq": " sec", "BatchStartTimeout": " sec", "CompleteWait": " sec",
    "EpilogMsgTime": " usec", "GroupUpdateTime": " sec", "HealthCheckInterval": " sec",
    "InactiveLimit": " sec", "KillWait": " sec", "MessageTimeout": " sec", "MinJobAge": " sec",
    "OverTimeLimit": " min", "ResumeRate": " nodes/min", "ResumeTimeout": " sec", "ResvOverRun": " min",
    "SchedulerTimeSlice": " sec", "SlurmctldTimeout": " sec", "SlurmdTimeout": " sec",
    "SuspendRate": " nodes/min", "TCPTimeout": " sec", "UnkillableStepTimeout": " sec",
    "VSizeFactor": " percent", "WaitTime": " sec",
}


def _config_value(key: str, value: Any) -> str:
    if value is None or value == "":
        return "(null)"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value}{_CONFIG_UNITS.get(key, '')}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def merge_sched_config(config: dict[str, Any], sched: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the ``sched_config`` answer's settings, as config_info.c prints them:
    PriorityDecayHalfLife, PriorityCalcPeriod and PriorityMaxAge as ``secs2time_str``,
    PriorityFavorSmall Yes/No, PriorityWeightFairShare spelled so, only PriorityType under
    priority/basic, and both sets of SchedulerParameters."""
    out = dict(config)
    settings = dict(sched)
    basic = settings.get("PriorityType") == "priority/basic"
    for key, value in settings.items():
        if key == "SchedulerParameters":
            own = [p for p in str(config.get("SchedulerParameters") or "").split(",") if p and p != "(null)"]
            value = ",".join([p for p in str(value or "").split(",") if p] + own) or None
        elif key in ("PriorityDecayHalfLife", "PriorityCalcPeriod", "PriorityMaxAge"):
            value = fmt_duration_scontrol(int(value or 0))
        elif key == "PriorityFavorSmall":
            value = "Yes" if value in (True, "Yes", "YES", 1) else "No"
        elif key == "PriorityWeightFairshare":
            key = "PriorityWeightFairShare"
        if basic and key.startswith("Priority") and key != "PriorityType":
            continue
        out[key] = value
    return out


def show_config(config: dict[str, Any], *, last_update: float, time_format: str | None = None,
                now: float = 0.0) -> str:
    """``scontrol show config`` (without the ping lines): ``Configuration data as of <time>``
    and ``%-23s = %s`` lines in Slurm's key order, then the blank line scontrol prints."""
    ts = _Clock(time_format, now)
    order = {key: i for i, key in enumerate(CONFIG_ORDER)}
    keys = sorted(config, key=lambda k: (order.get(k, len(order)), k))
    out = [f"Configuration data as of {ts(last_update)}\n"]
    out.extend(f"{key:<23} = {_config_value(key, config[key])}\n" for key in keys)
    out.append("\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# show hostnames / hostlist / hostlistsorted


def hostlist_ranged(hosts: Iterable[str], *, sort: bool = False) -> str:
    """``hostlist_ranged_string`` of hosts as given (``show hostlist``: ``n3,n1,n2`` ->
    ``n[3,1-2]``): a host joins the previous range when it has the same prefix, the next
    number and the same zero padding; runs of ranges with one prefix share a bracket.
    ``sort`` (``show hostlistsorted``): sorted and merged first (``n[1-3]``)."""
    import re

    from spurcore.hostlist import compress

    names = list(hosts)
    if sort:
        return compress(names)
    groups: list[tuple[str, list[list[int]]]] = []  # (prefix, [[lo, hi, width], ...])
    for name in names:
        m = re.match(r"^(.*?)(\d+)$", name)
        if not m:
            groups.append((name, []))
            continue
        prefix, digits = m.group(1), m.group(2)
        num, width = int(digits), len(digits)
        if groups and groups[-1][0] == prefix and groups[-1][1]:
            last = groups[-1][1][-1]
            if num == last[1] + 1 and str(num).zfill(last[2]) == digits:
                last[1] = num
            else:
                groups[-1][1].append([num, num, width])
            continue
        groups.append((prefix, [[num, num, width]]))
    parts: list[str] = []
    for prefix, ranges in groups:
        if not ranges:
            parts.append(prefix)
            continue
        texts = [
            str(lo).zfill(w) if lo == hi else f"{str(lo).zfill(w)}-{str(hi).zfill(w)}" for lo, hi, w in ranges
        ]
        if len(texts) == 1 and ranges[0][0] == ranges[0][1]:
            parts.append(prefix + texts[0])
        else:
            parts.append(f"{prefix}[{','.join(texts)}]")
    return ",".join(parts)
