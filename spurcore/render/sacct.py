"""``sacct`` text: the field table, ``--format`` parsing, fixed-width and parsable output, and
``--json``.

Pure module: job info dicts (``spurcore.views.job_info`` or the history projection, same
schema) in, text out.

Sources (Slurm 25.11): src/sacct/sacct.c (field table), src/sacct/sacct.h (field lists),
src/sacct/options.c (``--format`` parsing), src/sacct/print.c (values per job/step row),
src/common/print_fields.c (column printers); reference/slurm-behaviour.md sections 1 and 5.

Rules kept here:
- Fixed width: header ``%*.*s `` (trailing space), a dashes line, values cut with the last
  visible character replaced by ``+`` (strings only; numbers and durations are never cut,
  dates are cut without a marker).  A NULL string prints blank.
- ``-p``: ``|``-joined with a trailing ``|``; ``-P``: no trailing delimiter; no dashes line,
  no truncation, NULL prints as the empty string.
- ``--format`` names match case-insensitively as *prefixes*, in Slurm's table order
  (``jobid`` -> JobID, ``state`` -> State); ``name%N`` sets the width (right-justified),
  ``name%-N`` left-justified.
- Job row then ``.batch``, ``.extern``, then numbered steps ascending; ``-X`` drops steps.
- State: the base state (the database never stores COMPLETING/STOPPED), with ``" by <uid>"``
  when CANCELLED and the requester is known.  Step rows show the step's state.
- ExitCode: the job row shows the status the database row was written with.  A job ended by
  the controller (CANCELLED, TIMEOUT) is written at that moment with 0, so it shows ``0:0``
  even though scontrol later shows the shell's ``0:15``.  Step rows show the step status.
- DerivedExitCode, Partition, User, UID, Group, GID, Timelimit, WorkDir, Reason: job rows
  only (steps get an empty cell).
- Job arrays (slurmdb_get_job_id_str): a task's rows are ``<array>_<task>``,
  ``<array>_<task>.batch``...; the record of tasks that never started is
  ``<array>_[<tasks>]`` (``xlate_array_task_str``: ``5-99%10``), one row per task with
  ``--array``.  JobIDRaw is the record's own job id.
- Dates follow ``SLURM_TIME_FORMAT``; a date that does not fit its column prints as ``#``
  characters (slurm_make_time_str into a buffer of the column's width).
"""

from __future__ import annotations

from spurcore.arrays import indexes, task_str
from spurcore.exitcodes import fmt_exit
from spurcore.render._common import (
    ENDED_RUN_STATES,
    base_state,
    make_time_str,
    step_id_text,
    step_sort_key,
    tres_string,
    tres_units,
)
from spurcore.timefmt import fmt_duration_scontrol, fmt_mem, fmt_time_limit_sacct
from spurcore.usage import fmt_cpu, fmt_size_unit

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    _Value = Any  # str | int | float | None (None = NULL / NO_VAL: a blank cell)
    _StepFn = Callable[[dict[str, Any], dict[str, Any], float], _Value]
    _JobFn = Callable[[dict[str, Any], float], _Value]

__all__ = [
    "FIELDS",
    "DEFAULT_FIELDS",
    "BRIEF_FIELDS",
    "BRIEF",
    "LONG",
    "LONG_FIELDS",
    "Field",
    "FormatError",
    "parse_format",
    "render",
    "rows",
    "to_json",
]

DEFAULT_FIELDS = "jobid,jobname,partition,account,alloccpus,state,exitcode"
BRIEF_FIELDS = "jobid,state,exitcode"
BRIEF = BRIEF_FIELDS
LONG_FIELDS = (
    "jobid,jobidraw,jobname,partition,maxvmsize,maxvmsizenode,maxvmsizetask,avevmsize,maxrss,"
    "maxrssnode,maxrsstask,averss,maxpages,maxpagesnode,maxpagestask,avepages,mincpu,mincpunode,"
    "mincputask,avecpu,ntasks,alloccpus,elapsed,state,exitcode,avecpufreq,reqcpufreqmin,"
    "reqcpufreqmax,reqcpufreqgov,reqmem,consumedenergy,maxdiskread,maxdiskreadnode,"
    "maxdiskreadtask,avediskread,maxdiskwrite,maxdiskwritenode,maxdiskwritetask,avediskwrite,"
    "reqtres,alloctres,tresusageinave,tresusageinmax,tresusageinmaxn,tresusageinmaxt,"
    "tresusageinmin,tresusageinminn,tresusageinmint,tresusageintot,tresusageoutmax,"
    "tresusageoutmaxn,tresusageoutmaxt,tresusageoutave,tresusageouttot"
)
LONG = LONG_FIELDS

# Slurm's table (sacct.c ``fields[]``, 25.11): width, name, printer kind, in this order (the
# order matters: --format names are matched as prefixes, first match wins).
_TABLE = (
    "10 Account str|15 AdminComment str|10 AllocCPUS uint|10 AllocNodes str|10 AllocTRES str|"
    "7 AssocID uint|10 AveCPU str|10 AveCPUFreq str|14 AveDiskRead str|14 AveDiskWrite str|"
    "10 AvePages size|10 AveRSS size|10 AveVMSize size|16 BlockID str|10 Cluster str|"
    "14 Comment str|19 Constraints str|14 ConsumedEnergy str|17 ConsumedEnergyRaw uint|"
    "19 Container str|10 CPUTime secs|10 CPUTimeRAW uint|-21 DBIndex uint|"
    "15 DerivedExitCode str|10 Elapsed secs|10 ElapsedRaw uint|19 Eligible date|19 End date|"
    "8 ExitCode str|14 Extra str|8 FailedNode str|19 Flags str|6 GID uint|9 Group str|"
    "-12 JobID str|-12 JobIDRaw str|10 JobName str|9 Layout str|10 Licenses str|"
    "12 MaxDiskRead str|15 MaxDiskReadNode str|15 MaxDiskReadTask uint|12 MaxDiskWrite str|"
    "16 MaxDiskWriteNode str|16 MaxDiskWriteTask uint|8 MaxPages size|12 MaxPagesNode str|"
    "14 MaxPagesTask uint|10 MaxRSS size|10 MaxRSSNode str|10 MaxRSSTask uint|10 MaxVMSize size|"
    "14 MaxVMSizeNode str|14 MaxVMSizeTask uint|12 McsLabel str|10 MinCPU str|"
    "10 MinCPUNode str|10 MinCPUTask uint|10 NCPUS uint|8 NNodes uint|15 NodeList str|"
    "8 NTasks uint|10 Partition str|10 Planned secs|10 PlannedCPU secs|13 PlannedCPURAW uint|"
    "10 Priority uint|10 QOS str|6 QOSRAW uint|10 QOSREQ str|22 Reason str|10 ReqCPUFreq str|"
    "13 ReqCPUFreqGov str|13 ReqCPUFreqMax str|13 ReqCPUFreqMin str|8 ReqCPUS uint|"
    "10 ReqMem str|8 ReqNodes str|10 ReqTRES str|20 Reservation str|8 ReservationId uint|"
    "20 ReqReservation str|8 Restarts uint|11 SegmentSize uint|14 SLUID str|19 Start date|"
    "10 State str|20 StdErr str|20 StdIn str|20 StdOut str|19 Submit date|20 SubmitLine str|"
    "10 Suspended secs|15 SystemComment str|10 SystemCPU str|10 Timelimit str|"
    "10 TimelimitRaw str|10 TotalCPU str|14 TRESUsageInAve str|14 TRESUsageInMax str|"
    "18 TRESUsageInMaxNode str|18 TRESUsageInMaxTask str|14 TRESUsageInMin str|"
    "18 TRESUsageInMinNode str|18 TRESUsageInMinTask str|14 TRESUsageInTot str|"
    "15 TRESUsageOutAve str|15 TRESUsageOutMax str|19 TRESUsageOutMaxNode str|"
    "19 TRESUsageOutMaxTask str|15 TRESUsageOutMin str|19 TRESUsageOutMinNode str|"
    "19 TRESUsageOutMinTask str|15 TRESUsageOutTot str|6 UID uint|9 User str|10 UserCPU str|"
    "10 WCKey str|10 WCKeyID uint|20 WorkDir str"
)


class Field:
    """``name``: Slurm's spelling, also the header; ``width``: negative means left-justified;
    ``kind``: str | uint | date | secs | size (bytes, converted as ``--units``/``--noconvert``
    say). Equal when the three are.

    A slots class, not a named tuple: rendering reads ``name`` and ``kind`` for every cell, and
    slot reads cost about half a tuple field's (sacct of 20,000 jobs renders 2-5% faster)."""

    __slots__ = ("name", "width", "kind")

    def __init__(self, name: str, width: int, kind: str) -> None:
        self.name = name
        self.width = width
        self.kind = kind

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, width={self.width!r}, kind={self.kind!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not Field:
            return NotImplemented
        return (self.name, self.width, self.kind) == (other.name, other.width, other.kind)

    def __hash__(self) -> int:
        return hash((self.name, self.width, self.kind))


FIELDS: tuple[Field, ...] = tuple(
    Field(parts[1], int(parts[0]), parts[2]) for parts in (e.split() for e in _TABLE.split("|"))
)


class FormatError(ValueError):
    """An unknown ``--format`` name; the message is sacct's (``Invalid field requested: "x"``)."""


def parse_format(text: str) -> list[tuple[Field, int, bool]]:
    """``--format`` text -> ``[(field, width, left_justified), ...]``.

    ``name`` (any case, any unambiguous-or-not prefix: the first table entry wins), ``name%N``
    (right-justified, width N) and ``name%-N`` (left-justified).  ``all`` (or a prefix of it)
    selects every field.  Whitespace around names is ignored.
    """
    out: list[tuple[Field, int, bool]] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        newlen: int | None = None
        if "%" in item:
            item, _, num = item.partition("%")
            newlen = _atoi(num)
        low = item.lower()
        if "all".startswith(low):
            chosen: list[Field] = list(FIELDS)
        else:
            match = next((f for f in FIELDS if f.name.lower().startswith(low)), None)
            if match is None:
                raise FormatError(f'Invalid field requested: "{item}"')
            chosen = [match]
        for f in chosen:
            width = f.width if newlen is None else newlen
            out.append((f, abs(width), width < 0))
    return out


def _atoi(text: str) -> int:
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    digits = ""
    for ch in text.lstrip("+-"):
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


# ---------------------------------------------------------------------------------------------
# values



def _job_ran(job: dict[str, Any]) -> bool:
    """The job got an allocation (so the database has its AllocTRES)."""
    return bool(job.get("nodes"))


def _job_cpus(job: dict[str, Any]) -> int:
    return int(job.get("num_cpus") or 0) if _job_ran(job) else 0


def _job_end(job: dict[str, Any]) -> float:
    return float(job.get("end_time") or 0) if base_state(job) in ENDED_RUN_STATES else 0.0


def _job_elapsed(job: dict[str, Any]) -> int:
    return int(job.get("run_time") or 0)


def _step_elapsed(step: dict[str, Any], now: float) -> int:
    start = float(step.get("start_time") or 0)
    if not start:
        return 0
    end = float(step.get("end_time") or 0) or now
    return max(0, int(end) - int(start))


def _job_state(job: dict[str, Any]) -> str:
    state = base_state(job)
    requid = job.get("requid")
    if state == "CANCELLED" and requid is not None and int(requid) >= 0:
        return f"CANCELLED by {int(requid)}"
    return state


def _job_exit(job: dict[str, Any]) -> str:
    if base_state(job) in ("CANCELLED", "TIMEOUT"):
        return "0:0"
    raw = job.get("exit_code")
    return fmt_exit(raw) if raw is not None else "0:0"


def _job_reason(job: dict[str, Any]) -> str:
    """sacct ``Reason`` is the last *pending* reason (``state_reason_prev_db``): ``None`` for a
    job that started without waiting, the pending reason for one that never ran."""
    if "reason_prev" in job:
        return str(job["reason_prev"] or "None")
    if _job_ran(job):
        return "None"
    return str(job.get("reason") or "None")


def _s(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _job_req_cpus(job: dict[str, Any]) -> int:
    return int(job.get("num_cpus") or 0)


def _planned(job: dict[str, Any], now: float) -> int:
    """Planned: the time from eligibility to the start (or to now while pending)."""
    eligible = float(job.get("eligible_time") or 0)
    if not eligible:
        return 0
    start = float(job.get("start_time") or 0) or (now if base_state(job) == "PENDING" else 0)
    return max(0, int(start - eligible)) if start else 0



_JOB: dict[str, _JobFn] = {
    "Account": lambda j, n: _s(j.get("account")),
    "AllocCPUS": lambda j, n: _job_cpus(j),
    "NCPUS": lambda j, n: _job_cpus(j),
    "AllocNodes": lambda j, n: str(int(j.get("node_count") or 0) if _job_ran(j) else 0),
    "AllocTRES": lambda j, n: _s(
        ""
        if not _job_ran(j)
        else tres_units(str(j["alloc_tres"])) if j.get("alloc_tres")  # the controller's, GRES included
        else tres_string(
            _job_cpus(j),
            int(j.get("mem_mb") or 0) * int(j.get("node_count") or 0),
            int(j.get("node_count") or 0),
            fmt_mem,
        )
    ),
    "AdminComment": lambda j, n: None,
    "AssocID": lambda j, n: 0,
    "Cluster": lambda j, n: _s(j.get("cluster")),
    "Comment": lambda j, n: _s(j.get("comment")),
    "Constraints": lambda j, n: _s(j.get("constraint")),
    "DBIndex": lambda j, n: None,
    "Extra": lambda j, n: None,
    "Flags": lambda j, n: "SchedMain" if _job_ran(j) else None,
    "Layout": lambda j, n: None,
    "Planned": lambda j, n: _planned(j, n),
    "PlannedCPU": lambda j, n: _planned(j, n) * _job_req_cpus(j),
    "PlannedCPURAW": lambda j, n: _planned(j, n) * _job_req_cpus(j),
    "QOSREQ": lambda j, n: _s(j.get("qos")),
    "Reservation": lambda j, n: None,
    "ReservationId": lambda j, n: None,
    "ReqReservation": lambda j, n: None,
    "SegmentSize": lambda j, n: 0,
    "SystemComment": lambda j, n: None,
    "WCKey": lambda j, n: _s(j.get("wckey")),
    "WCKeyID": lambda j, n: 0,
    "CPUTime": lambda j, n: _job_elapsed(j) * _job_cpus(j),
    "CPUTimeRAW": lambda j, n: _job_elapsed(j) * _job_cpus(j),
    "DerivedExitCode": lambda j, n: fmt_exit(j.get("derived_ec") or 0),
    "Elapsed": lambda j, n: _job_elapsed(j),
    "ElapsedRaw": lambda j, n: _job_elapsed(j),
    "Eligible": lambda j, n: j.get("eligible_time") or 0,
    "End": lambda j, n: _job_end(j),
    "ExitCode": lambda j, n: _job_exit(j),
    "FailedNode": lambda j, n: _s(j.get("failed_node")),
    "GID": lambda j, n: j.get("gid"),
    "Group": lambda j, n: _s(j.get("group")) or _s(j.get("gid")),
    "JobID": lambda j, n: str(j["job_id"]),
    "JobIDRaw": lambda j, n: str(j["job_id"]),
    "JobName": lambda j, n: _s(j.get("name")),
    "NNodes": lambda j, n: int(j.get("node_count") or 0),
    "NodeList": lambda j, n: _s(j.get("nodes")) or "None assigned",
    "Partition": lambda j, n: _s(j.get("partition")),
    "Priority": lambda j, n: int(j.get("priority") or 0),
    "QOS": lambda j, n: _s(j.get("qos")) or "normal",
    "QOSRAW": lambda j, n: 1,
    "Reason": lambda j, n: _job_reason(j),
    "ReqCPUS": lambda j, n: int(j.get("num_cpus") or 0),
    "ReqMem": lambda j, n: fmt_mem(int(j.get("mem_mb") or 0) * int(j.get("node_count") or 0)),
    "ReqNodes": lambda j, n: str(int(j.get("node_count") or 0)),
    "ReqTRES": lambda j, n: _s(
        tres_units(str(j["req_tres"])) if j.get("req_tres")
        else tres_string(
            int(j.get("num_cpus") or 0),
            int(j.get("mem_mb") or 0) * int(j.get("node_count") or 0),
            int(j.get("node_count") or 0),
            fmt_mem,
        )
    ),
    "Restarts": lambda j, n: int(j.get("restarts") or 0),
    "Start": lambda j, n: j.get("start_time") or 0,
    "State": lambda j, n: _job_state(j),
    "StdErr": lambda j, n: _s(j.get("stderr")),
    "StdIn": lambda j, n: _s(j.get("stdin")),
    "StdOut": lambda j, n: _s(j.get("stdout")),
    "Submit": lambda j, n: j.get("submit_time") or 0,
    "SubmitLine": lambda j, n: _s(j.get("submit_line")),
    "Suspended": lambda j, n: 0,
    "Timelimit": lambda j, n: fmt_time_limit_sacct(j.get("time_limit")),
    "TimelimitRaw": lambda j, n: (
        "UNLIMITED" if j.get("time_limit") is None else str(int(j["time_limit"]) // 60)
    ),
    "UID": lambda j, n: j.get("uid"),
    "User": lambda j, n: _s(j.get("user")) or _s(j.get("uid")),
    "WorkDir": lambda j, n: _s(j.get("work_dir")),
    "SystemCPU": lambda j, n: _job_cpu(j, "sys_cpu"),
    "TotalCPU": lambda j, n: _job_cpu(j, "total_cpu"),
    "UserCPU": lambda j, n: _job_cpu(j, "user_cpu"),
}


def _step_jobid(s: dict[str, Any], j: dict[str, Any], _now: float = 0.0) -> str:
    return f"{j['job_id']}.{step_id_text(s.get('step_id'))}"


def _step_state(s: dict[str, Any]) -> str:
    """A step's state; ``CANCELLED by <uid>`` only when the step itself records who cancelled
    it (``scancel J.S``; print.c uses the step's own requid)."""
    state = str(s.get("state") or "")
    requid = s.get("requid")
    if state == "CANCELLED" and requid is not None and int(requid) >= 0:
        return f"CANCELLED by {int(requid)}"
    return state


def _step_tres(s: dict[str, Any]) -> str:
    cpus = int(s.get("cpus") or 0)
    nodes = int(s.get("node_count") or 0)
    return tres_string(cpus, 0, nodes, fmt_mem).replace(f",billing={cpus}", "")


def _usage(s: dict[str, Any]) -> dict[str, Any]:
    """What the step's nodes measured (``spurcore.usage``'s record; empty: never measured)."""
    return s.get("usage") or {}


def _cpu_of(rec: dict[str, Any], key: str) -> str | None:
    value = rec.get(key)
    return None if value is None else fmt_cpu(value, subsec=False)


def _steps_cpu(j: dict[str, Any], key: str) -> float:
    """A job's CPU seconds of one kind: its steps' sum (slurmdbd adds up the steps, the batch
    step included; 0 when nothing was measured)."""
    return sum(float(_usage(st).get(key) or 0.0) for st in j.get("steps") or ())


def _job_cpu(j: dict[str, Any], key: str) -> str:
    """UserCPU/SystemCPU/TotalCPU of a job row."""
    return fmt_cpu(_steps_cpu(j, key))


_STEP: dict[str, _StepFn] = {
    "Account": lambda s, j, n: _s(j.get("account")),
    "AllocCPUS": lambda s, j, n: int(s.get("cpus") or 0),
    "NCPUS": lambda s, j, n: int(s.get("cpus") or 0),
    "AllocNodes": lambda s, j, n: str(int(s.get("node_count") or 0)),
    "AllocTRES": lambda s, j, n: _s(_step_tres(s)),
    "CPUTime": lambda s, j, n: _step_elapsed(s, n) * int(s.get("cpus") or 0),
    "CPUTimeRAW": lambda s, j, n: _step_elapsed(s, n) * int(s.get("cpus") or 0),
    "DerivedExitCode": lambda s, j, n: "",
    "Elapsed": lambda s, j, n: _step_elapsed(s, n),
    "ElapsedRaw": lambda s, j, n: _step_elapsed(s, n),
    "Eligible": lambda s, j, n: s.get("start_time") or 0,
    "End": lambda s, j, n: s.get("end_time") or 0,
    "ExitCode": lambda s, j, n: fmt_exit(s["exit_code"]) if s.get("exit_code") is not None else "0:0",
    "JobID": _step_jobid,
    "JobIDRaw": _step_jobid,
    "JobName": lambda s, j, n: _s(s.get("name")),
    "NNodes": lambda s, j, n: int(s.get("node_count") or 0),
    "NodeList": lambda s, j, n: _s(s.get("nodes")),
    "NTasks": lambda s, j, n: int(s.get("ntasks") or 0),
    "ReqCPUS": lambda s, j, n: int(s.get("cpus") or 0),
    "ReqMem": lambda s, j, n: "",
    "ReqNodes": lambda s, j, n: str(int(s.get("node_count") or 0)),
    "Start": lambda s, j, n: s.get("start_time") or 0,
    "State": lambda s, j, n: _step_state(s),
    "Submit": lambda s, j, n: s.get("start_time") or 0,
    "Suspended": lambda s, j, n: 0,
    "Timelimit": lambda s, j, n: None,
    "TimelimitRaw": lambda s, j, n: None,
    # jobacct_gather's measurements (print.c: blank unless the step has stats; the CPU times
    # print 00:00:00 then); the job row has the summed CPU times only
    "AveCPU": lambda s, j, n: _cpu_of(_usage(s), "ave_cpu"),
    "AvePages": lambda s, j, n: _usage(s).get("ave_pages"),
    "AveRSS": lambda s, j, n: _usage(s).get("ave_rss"),
    "AveVMSize": lambda s, j, n: _usage(s).get("ave_vmsize"),
    "MaxPages": lambda s, j, n: _usage(s).get("max_pages"),
    "MaxPagesNode": lambda s, j, n: _s(_usage(s).get("max_pages_node")),
    "MaxPagesTask": lambda s, j, n: _usage(s).get("max_pages_task"),
    "MaxRSS": lambda s, j, n: _usage(s).get("max_rss"),
    "MaxRSSNode": lambda s, j, n: _s(_usage(s).get("max_rss_node")),
    "MaxRSSTask": lambda s, j, n: _usage(s).get("max_rss_task"),
    "MaxVMSize": lambda s, j, n: _usage(s).get("max_vmsize"),
    "MaxVMSizeNode": lambda s, j, n: _s(_usage(s).get("max_vmsize_node")),
    "MaxVMSizeTask": lambda s, j, n: _usage(s).get("max_vmsize_task"),
    "MinCPU": lambda s, j, n: _cpu_of(_usage(s), "min_cpu"),
    "MinCPUNode": lambda s, j, n: _s(_usage(s).get("min_cpu_node")),
    "MinCPUTask": lambda s, j, n: _usage(s).get("min_cpu_task"),
    "SystemCPU": lambda s, j, n: fmt_cpu(_usage(s).get("sys_cpu") or 0.0),
    "TotalCPU": lambda s, j, n: fmt_cpu(_usage(s).get("total_cpu") or 0.0),
    "UserCPU": lambda s, j, n: fmt_cpu(_usage(s).get("user_cpu") or 0.0),
}


# ---------------------------------------------------------------------------------------------
# printing


def _cell(f: Field, width: int, left: bool, value: _Value, parsable: bool,
          time_format: str | None = None, now: float = 0.0, units: str | None = None,
          noconvert: bool = False) -> str:
    """One value as print_fields.c prints it (without the delimiter / trailing space)."""
    kind = f.kind
    if kind == "size":
        value = None if value is None else fmt_size_unit(value, units, noconvert)
    if kind == "date":
        text = make_time_str(value or 0, time_format, now, 256 if parsable else width + 1)
        if parsable:
            return text
        text = text[:width]
        return text.ljust(width) if left else text.rjust(width)
    if kind in ("uint", "secs"):
        if value is None:
            return "" if parsable else " " * width
        text = fmt_duration_scontrol(int(value)) if kind == "secs" else str(int(value))
        if parsable:
            return text
        return text.ljust(width) if left else text.rjust(width)
    # str
    if value is None:
        return "" if parsable else " " * width
    text = str(value)
    if parsable:
        return text
    if len(text) > width:
        text = text[: width - 1] + "+" if width > 0 else ""
    return text.ljust(width) if left else text.rjust(width)


def expand_arrays(jobs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``--array``: the record of never-started tasks as one record per task."""
    out: list[dict[str, Any]] = []
    for job in jobs:
        ranges = [list(r) for r in job.get("array_pending") or ()]
        if job.get("array_job_id") and job.get("array_task_id") is None and ranges:
            out.extend({**job, "array_task_id": t, "array_pending": []} for t in indexes(ranges))
        else:
            out.append(job)
    return out


def rows(
    jobs: Iterable[dict[str, Any]], *, allocations: bool = False
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """The rows sacct prints: ``(job, None)`` for a job row, ``(job, step)`` for step rows."""
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for job in jobs:
        out.append((job, None))
        if allocations:
            continue
        for step in sorted(job.get("steps") or (), key=lambda s: step_sort_key(s.get("step_id"))):
            out.append((job, step))
    return out


def job_id_text(job: dict[str, Any], bitstr_len: int | None = None) -> str:
    """sacct's JobID of a job record (``slurmdb_get_job_id_str``)."""
    array_id = int(job.get("array_job_id") or 0)
    if array_id:
        task = job.get("array_task_id")
        if task is None:
            ranges = [list(r) for r in job.get("array_pending") or ()]
            if ranges:
                text = task_str(ranges, int(job.get("array_max_tasks") or 0), 64 if bitstr_len is None else bitstr_len)
                return f"{array_id}_[{text}]"
        else:
            return f"{array_id}_{task}"
    return str(job["job_id"])


def _value(f: Field, job: dict[str, Any], step: dict[str, Any] | None, now: float,
           bitstr_len: int | None = None) -> _Value:
    if f.name == "JobID":
        text = job_id_text(job, bitstr_len)
        return text if step is None else f"{text}.{step_id_text(step.get('step_id'))}"
    if step is None:
        fn = _JOB.get(f.name)
        return fn(job, now) if fn is not None else None
    sfn = _STEP.get(f.name)
    return sfn(step, job, now) if sfn is not None else None


def render(
    jobs: Iterable[dict[str, Any]],
    fields: list[tuple[Field, int, bool]] | str | None = None,
    *,
    parsable: bool = False,
    parsable2: bool = False,
    noheader: bool = False,
    allocations: bool = False,
    delimiter: str = "|",
    now: float = 0.0,
    time_format: str | None = None,
    bitstr_len: int | None = None,
    array: bool = False,
    units: str | None = None,
    noconvert: bool = False,
) -> str:
    """The sacct table.  ``fields`` is a ``parse_format`` result or format text (default
    ``DEFAULT_FIELDS``); ``parsable`` is ``-p``, ``parsable2`` is ``-P``, ``noheader`` is
    ``-n``, ``allocations`` is ``-X``, ``array`` is ``--array``; ``now`` is used for the
    elapsed time of running steps; ``time_format`` is ``SLURM_TIME_FORMAT`` and
    ``bitstr_len`` ``SLURM_BITSTR_LEN`` (None: unset); ``units`` (K..P) and ``noconvert``
    are ``--units`` and ``--noconvert`` for the memory fields.
    """
    if array:
        jobs = expand_arrays(jobs)
    if fields is None:
        fields = DEFAULT_FIELDS
    if isinstance(fields, str):
        fields = parse_format(fields)
    pars = parsable or parsable2
    out: list[str] = []

    def line(cells: list[str]) -> str:
        if pars:
            return delimiter.join(cells) + (delimiter if not parsable2 else "") + "\n"
        return "".join(c + " " for c in cells) + "\n"

    if not noheader:
        heads = []
        for f, width, left in fields:
            if pars:
                heads.append(f.name)
            else:
                name = f.name[:width]
                heads.append(name.ljust(width) if left else name.rjust(width))
        out.append(line(heads))
        if not pars:
            out.append(line(["-" * width for _f, width, _l in fields]))
    for job, step in rows(jobs, allocations=allocations):
        out.append(line([
            _cell(f, w, left, _value(f, job, step, now, bitstr_len), pars, time_format, now, units, noconvert)
            for f, w, left in fields
        ]))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# --json


def _limit_json(limit: int | None) -> dict[str, Any]:
    if limit is None:
        return {"set": False, "infinite": True, "number": 0}
    return {"set": True, "infinite": False, "number": int(limit) // 60}


def _no_val(value: int | None) -> dict[str, Any]:
    if value is None:
        return {"set": False, "infinite": False, "number": 0}
    return {"set": True, "infinite": False, "number": int(value)}


def _tres_list(cpus: int, mem_mb: int, nodes: int, billing: bool = True) -> list[dict[str, Any]]:
    """TRES_STR: the TRES of a record as data_parser lists them (ids of the built-in TRES)."""
    out: list[dict[str, Any]] = []
    if cpus:
        out.append({"type": "cpu", "name": "", "id": 1, "count": cpus})
    if mem_mb:
        out.append({"type": "mem", "name": "", "id": 2, "count": mem_mb})
    if nodes:
        out.append({"type": "node", "name": "", "id": 4, "count": nodes})
    if cpus and billing:
        out.append({"type": "billing", "name": "", "id": 5, "count": cpus})
    return out


def _cpu_time(seconds: float = 0.0) -> dict[str, Any]:
    total_us = int(round(float(seconds) * 1_000_000))
    return {"seconds": total_us // 1_000_000, "microseconds": total_us % 1_000_000}


_CPU_JSON = (("user", "user_cpu"), ("system", "sys_cpu"), ("total", "total_cpu"))


def _cpu_times(seconds: Callable[[str], float]) -> dict[str, dict[str, Any]]:
    """``time.user/system/total``; ``seconds`` gives a usage key's CPU seconds."""
    return {key: _cpu_time(seconds(field)) for key, field in _CPU_JSON}


def _step_json(step: dict[str, Any], job: dict[str, Any], now: float) -> dict[str, Any]:
    from spurcore.render.data_parser import exit_code_json  # --json only

    raw = step.get("exit_code")
    requid = step.get("requid")
    cpus = int(step.get("cpus") or 0)
    nodes = int(step.get("node_count") or 0)
    return {
        "time": {
            "elapsed": _step_elapsed(step, now),
            "end": _no_val(int(step.get("end_time") or 0)),
            "start": _no_val(int(step.get("start_time") or 0)),
            "suspended": 0,
            "limit": _no_val(None),
            **_cpu_times(lambda key: float(_usage(step).get(key) or 0.0)),
        },
        "exit_code": exit_code_json(raw if raw is not None else 0),
        "nodes": {"count": nodes, "range": step.get("nodes") or "", "list": []},
        "tasks": {"count": int(step.get("ntasks") or 0)},
        "pid": "",
        "CPU": {"requested_frequency": {"min": _no_val(None), "max": _no_val(None)}, "governor": []},
        "kill_request_user": str(requid) if requid is not None and int(requid) >= 0 else "",
        "state": [str(step.get("state") or "")],
        "statistics": {"CPU": {"actual_frequency": 0}, "energy": {"consumed": _no_val(None)}},
        "step": {"id": _step_jobid(step, job), "name": step.get("name") or "", "stderr": "", "stdin": "",
                 "stdout": ""},
        "task": {"distribution": "" if step.get("step_id") in ("batch", "extern") else "block"},
        "tres": {
            "requested": {"max": [], "min": [], "average": [], "total": []},
            "consumed": {"max": [], "min": [], "average": [], "total": []},
            "allocated": _tres_list(cpus, 0, nodes, billing=False),
        },
    }


def _job_json(job: dict[str, Any], now: float, bitstr_len: int | None = None) -> dict[str, Any]:
    from spurcore.render.data_parser import exit_code_json

    requid = job.get("requid")
    exit_text = _job_exit(job)
    code, sig = (int(x) for x in exit_text.split(":"))
    raw = sig if sig else code << 8
    array_id = int(job.get("array_job_id") or 0)
    task = job.get("array_task_id") if array_id else None
    pending = [list(r) for r in job.get("array_pending") or ()] if array_id and task is None else []
    throttle = int(job.get("array_max_tasks") or 0)
    cpus = _job_cpus(job)
    nodes = int(job.get("node_count") or 0)
    mem_total = int(job.get("mem_mb") or 0) * nodes
    mem_per_cpu = int(job.get("mem_per_cpu") or 0)
    return {
        "account": job.get("account") or "",
        "comment": {"administrator": "", "job": job.get("comment") or "", "system": ""},
        "allocation_nodes": nodes if _job_ran(job) else 0,
        "array": {
            "job_id": array_id,
            "limits": {"max": {"running": {"tasks": throttle}}},
            "task_id": _no_val(task),
            "task": task_str(pending, throttle, 64 if bitstr_len is None else bitstr_len) if pending else "",
        },
        "block": "",
        "cluster": job.get("cluster") or "",
        "constraints": job.get("constraint") or "",
        "container": "",
        "derived_exit_code": exit_code_json(job.get("derived_ec") or 0),
        "time": {
            "elapsed": _job_elapsed(job),
            "eligible": int(job.get("eligible_time") or 0),
            "end": int(_job_end(job)),
            "planned": _no_val(_planned(job, now)),
            "start": int(job.get("start_time") or 0),
            "submission": int(job.get("submit_time") or 0),
            "suspended": 0,
            "limit": _limit_json(job.get("time_limit")),
            **_cpu_times(lambda key: _steps_cpu(job, key)),
        },
        "exit_code": exit_code_json(raw),
        "extra": "",
        "failed_node": job.get("failed_node") or "",
        "flags": ["SCHEDULED_BY_MAIN"] if _job_ran(job) else [],
        "group": str(job.get("group") or job.get("gid", "")),
        "het": {"job_id": 0, "job_offset": _no_val(None)},
        "job_id": job["job_id"],
        "name": job.get("name") or "",
        "licenses": "",
        "mcs": {"label": ""},
        "nodes": job.get("nodes") or "None assigned",
        "partition": job.get("partition") or "",
        "hold": not int(job.get("priority") or 0),
        "priority": _no_val(int(job.get("priority") or 0)),
        "qos": job.get("qos") or "normal",
        "qosreq": job.get("qos") or "",
        "required": {
            "CPUs": int(job.get("num_cpus") or 0),
            "memory_per_cpu": _no_val(mem_per_cpu if mem_per_cpu else None),
            "memory_per_node": _no_val(None if mem_per_cpu else int(job.get("mem_mb") or 0)),
        },
        "kill_request_user": str(requid) if requid is not None and int(requid) >= 0 else "",
        "restart_cnt": int(job.get("restarts") or 0),
        "reservation": {"id": 0, "name": "", "requested": ""},
        "script": "",
        "segment_size": 0,
        "stdin": job.get("stdin") or "",
        "stdout": job.get("stdout") or "",
        "stderr": job.get("stderr") or "",
        "state": {"current": [base_state(job)], "reason": _job_reason(job)},
        "steps": [_step_json(s, job, now) for _j, s in rows([job]) if s is not None],
        "submit_line": job.get("submit_line") or "",
        "tres": {
            "allocated": _tres_list(cpus, mem_total, nodes) if _job_ran(job) else [],
            "requested": _tres_list(int(job.get("num_cpus") or 0), mem_total, nodes),
        },
        "used_gres": "",
        "user": job.get("user") or "",
        "wckey": {"wckey": job.get("wckey") or "", "flags": []},
        "working_directory": job.get("work_dir") or "",
    }


def to_json(
    jobs: Iterable[dict[str, Any]], *, now: float = 0.0, command: Iterable[str] = ("sacct", "--json"),
    bitstr_len: int | None = None, meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``sacct --json`` as a plain dict (``jobs`` in data_parser v0.0.44's JOB shape,
    ``meta``, ``errors``, ``warnings``)."""
    from spurcore.render.data_parser import json_meta

    return {
        "jobs": [_job_json(j, now, bitstr_len) for j in jobs],
        "meta": meta if meta is not None else json_meta(command, plugin="accounting_storage/spur"),
        "errors": [],
        "warnings": [],
    }
