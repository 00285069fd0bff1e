"""``squeue`` text: the ``-o`` percent-format engine, the ``-O`` field engine, sorting, the
state filter and ``--json``.

Pure module: job info dicts (``spurcore.views.job_info``) and an explicit ``now`` in, text out.

Sources (Slurm 25.11): src/squeue/opts.c (``parse_format``, ``_parse_token``,
``_parse_long_token``, ``fmt_data_job``/``fmt_data_step``), src/squeue/print.c (``_print_str``
and the ``_print_job_*`` functions), src/squeue/sort.c, src/squeue/squeue.c.

Column rules (``_print_str``):
- ``%.N`` right-justifies in N columns, ``%N`` left-justifies and pads; values and headers
  longer than N are cut to their first N characters, without a marker.  A few columns are
  never cut when right-justified (node lists, ``NODELIST(REASON)`` header, durations).
- No width prints the value at its own length.  Text before the first ``%`` is a prefix and
  text after a field letter a suffix, both printed verbatim (header line included).
- ``-O name[:[.]size[suffix]]``: no size means width 20, left-justified, no separator.
"""

from __future__ import annotations

from collections import namedtuple

from spurcore.exitcodes import fmt_exit
from spurcore.render._common import FLAG_STATES, base_state, print_str, step_id_text
from spurcore.signals import sig_fullname
from spurcore.states import STATE_CODES
from spurcore.timefmt import ctime_line, fmt_duration_squeue, fmt_timestamp_squeue

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    _Value = tuple[str | None, bool]
    _JobFn = Callable[[dict[str, Any], float], _Value]
    _StepFn = Callable[[dict[str, Any], dict[str, Any], float], _Value]
    _Headers = dict[str, tuple[str, bool]]  # key -> (header text, force left-justified)

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_FORMAT_LONG",
    "LONG_FORMAT",
    "LONG_FORMAT_LONG",
    "STEPS_FORMAT",
    "DEFAULT_STATES",
    "FormatItem",
    "ParsedFormat",
    "parse_format",
    "parse_long_format",
    "render_jobs",
    "render_steps",
    "default_sort",
    "sort_steps",
    "job_shown",
    "filter_jobs",
    "parse_states",
    "to_json",
]

DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
LONG_FORMAT = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R"
STEPS_FORMAT = "%.15i %.8j %.9P %.8u %.9M %N"
#: The ``-O`` lists squeue itself builds for the two default layouts (same output).
DEFAULT_FORMAT_LONG = (
    "jobarrayid:.18 ,partition:.9 ,name:.8 ,username:.8 ,statecompact:.2 ,timeused:.10 ,"
    "numnodes:.6 ,reasonlist:0"
)
LONG_FORMAT_LONG = (
    "jobarrayid:.18 ,partition:.9 ,name:.8 ,username:.8 ,state:.8 ,timeused:.10 ,"
    "timelimit:.9 ,numnodes:.6 ,reasonlist:0"
)

#: squeue's default state filter: PENDING, RUNNING, SUSPENDED (and STAGE_OUT) base states,
#: and any job with the COMPLETING flag.  A STOPPED job is RUNNING underneath, so it shows.
DEFAULT_STATES = frozenset({"PENDING", "RUNNING", "SUSPENDED", "STAGE_OUT", "COMPLETING"})

_ALL_STATE_CODES = STATE_CODES
_RUNNING_LIKE = frozenset({"RUNNING", "SUSPENDED"})
_REASON_STATES = frozenset({"PENDING", "TIMEOUT", "OUT_OF_MEMORY", "DEADLINE", "FAILED"})


# ---------------------------------------------------------------------------------------------
# format parsing


#: One printed item: a field (``key``: str), or verbatim text (``key`` None: prefix or
#: invalid token); ``width`` (0: natural), ``right`` (justify), ``suffix`` (verbatim).
FormatItem = namedtuple("FormatItem", "key width right suffix", defaults=(0, False, ""))

#: ``items`` (list of FormatItem) and ``errors`` (squeue's "Invalid ... specification" lines).
ParsedFormat = namedtuple("ParsedFormat", "items errors")


def _strtok(text: str, delim: str) -> list[str]:
    """C ``strtok``: split on ``delim`` and drop empty tokens."""
    return [t for t in text.split(delim) if t]


def parse_format(fmt: str, *, steps: bool = False) -> ParsedFormat:
    """``squeue -o`` (``parse_format``): ``"jid=%i uid=%U"`` -> prefix, fields and suffixes.

    An unknown letter is kept as verbatim text ``%<token>`` and reported in ``errors``.
    """
    table = _STEP_LETTERS if steps else _JOB_LETTERS
    kind = "job step" if steps else "job"
    out = ParsedFormat([], [])
    pos = fmt.find("%")
    if pos != 0:
        prefix = fmt if pos < 0 else fmt[:pos]
        out.items.append(FormatItem(None, suffix=prefix))
        if pos < 0:
            return out
        fmt = fmt[pos:]
    format_all = fmt.lower() == "%all"
    if format_all:
        letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [
            chr(c) for c in range(ord("A"), ord("Z") + 1)
        ]
        fmt = "|".join("%" + c for c in letters)
    for token in _strtok(fmt, "%"):
        i = 0
        right = token.startswith(".")
        if right:
            i += 1
        digits = ""
        while i < len(token) and token[i].isdigit():
            digits += token[i]
            i += 1
        width = int(digits) if digits else 0
        letter = token[i] if i < len(token) else ""
        suffix = token[i + 1 :]
        key = table.get(letter) if letter else None
        if key is not None:
            out.items.append(FormatItem(key, width, right, suffix))
        elif not format_all:
            out.items.append(FormatItem(None, width, right, "%" + token))
            out.errors.append(f"Invalid {kind} format specification: {letter}")
    return out


def parse_long_format(fmt: str, *, steps: bool = False) -> ParsedFormat:
    """``squeue -O`` (``parse_long_format``): ``name[:[.]size[suffix]]`` items, comma-separated."""
    table = _STEP_NAMES if steps else _JOB_NAMES
    kind = "job step" if steps else "job"
    out = ParsedFormat([], [])
    for token in _strtok(fmt, ","):
        name, colon, spec = token.partition(":")
        suffix = ""
        if colon:
            right = spec.startswith(".")
            if right:
                spec = spec[1:]
            # strtol: an optional sign and digits; no digits means 0 and nothing consumed
            j = 1 if spec[:1] in ("+", "-") else 0
            k = j
            while k < len(spec) and spec[k].isdigit():
                k += 1
            width = int(spec[:k]) if k > j else 0
            suffix = spec[k:] if k > j else spec
        else:
            right, width = False, 20
        key = table.get(name.lower())
        if key is None:
            out.items.append(FormatItem(None, width, right, suffix))
            out.errors.append(f"Invalid {kind} format specification: {name}")
        else:
            out.items.append(FormatItem(key, width, right, suffix))
    return out


# ---------------------------------------------------------------------------------------------
# job fields

# A column value: (text or None for a C NULL, cut to the width when right-justified?)


def _s(value: Any) -> str | None:
    """A C string field: None or "" is NULL."""
    if value is None or value == "":
        return None
    return str(value)


def _time_used(info: dict[str, Any]) -> int:
    return int(info.get("run_time") or 0)


def _time_limit(info: dict[str, Any], _now: float) -> _Value:
    limit = info.get("time_limit")
    if limit is None:
        return "UNLIMITED", True
    return fmt_duration_squeue(limit), False


def _time_left(info: dict[str, Any], _now: float) -> _Value:
    limit = info.get("time_limit")
    if limit is None:
        return "UNLIMITED", True
    return fmt_duration_squeue(int(limit) - _time_used(info)), False


def _end_time(info: dict[str, Any], now: float) -> _Value:
    end = float(info.get("end_time") or 0)
    running = base_state(info) in _RUNNING_LIKE and info.get("state") != "COMPLETING"
    if info.get("time_limit") is None and (end > now or (not end and running)):
        return "NONE", True
    return fmt_timestamp_squeue(end), True


def _reason(info: dict[str, Any]) -> str:
    return str(info.get("reason") or "None")


def _reason_list(info: dict[str, Any], _now: float) -> _Value:
    if info.get("state") != "COMPLETING" and base_state(info) in _REASON_STATES:
        return f"({_reason(info)})", True
    return _s(info.get("nodes")), False


def _exit(key: str) -> _JobFn:
    """A job's status is 0 until one is recorded (slurmctld never sends NO_VAL for a job), so
    None prints ``0:0`` like scontrol's ExitCode."""

    def fn(info: dict[str, Any], _now: float) -> _Value:
        return fmt_exit(info.get(key) or 0), True

    return fn


def _priority(info: dict[str, Any], _now: float) -> _Value:
    return f"{int(info.get('priority') or 0) / 0xFFFFFFFF:16.14f}", True


def _compact(info: dict[str, Any]) -> str:
    state = str(info.get("state") or "")
    return _ALL_STATE_CODES.get(state, state)


def _plain(key: str) -> _JobFn:
    return lambda info, _now: (_s(info.get(key)), True)


def _num(key: str, default: int = 0) -> _JobFn:
    return lambda info, _now: (str(int(info.get(key) or default)), True)


def _ts(key: str) -> _JobFn:
    return lambda info, _now: (fmt_timestamp_squeue(info.get(key)), True)


# key -> (header, value function).  Keys are the -O names (canonical spelling).
_JOB_FIELDS: dict[str, tuple[str, _JobFn]] = {
    "Account": ("ACCOUNT", _plain("account")),
    "AllocNodes": ("ALLOC_NODES", _plain("alloc_node")),
    "AllocSID": ("ALLOC_SID", _num("alloc_sid")),
    "ArrayJobId": ("ARRAY_JOB_ID", lambda i, _n: (str(i["job_id"]), True)),
    "ArrayTaskId": ("ARRAY_TASK_ID", lambda i, _n: ("N/A", True)),
    "BatchFlag": ("BATCH_FLAG", _num("batch_flag")),
    "BatchHost": ("EXEC_HOST", lambda i, _n: (i.get("batch_host") or i.get("alloc_node") or "n/a", True)),
    "Command": ("COMMAND", _plain("command")),
    "Comment": ("COMMENT", _plain("comment")),
    "CPUsPerTask": ("CPUS_PER_TASK", _num("cpus_per_task", 1)),
    "Dependency": ("DEPENDENCY", _plain("dependency")),
    "DerivedEC": ("DERIVED_EC", _exit("derived_ec")),
    "EligibleTime": ("ELIGIBLE_TIME", _ts("eligible_time")),
    "EndTime": ("END_TIME", _end_time),
    "exit_code": ("EXIT_CODE", _exit("exit_code")),
    "GroupId": ("GROUP", lambda i, _n: (str(i.get("gid", 0)), True)),
    "GroupName": ("GROUP", lambda i, _n: (str(i.get("group") or i.get("gid", 0)), True)),
    "JobArrayId": ("JOBID", lambda i, _n: (str(i["job_id"]), True)),
    "JobId": ("JOBID", lambda i, _n: (str(i["job_id"]), True)),
    "MinCPUs": ("MIN_CPUS", _num("cpus_per_task", 1)),
    "Name": ("NAME", _plain("name")),
    "Nice": ("NICE", lambda i, _n: ("0", True)),
    "NodeList": ("NODELIST", lambda i, _n: (_s(i.get("nodes")), False)),
    "NumCPUs": ("CPUS", _num("num_cpus")),
    "NumNodes": ("NODES", _num("node_count")),
    "NumTasks": ("TASKS", _num("num_tasks", 1)),
    "Partition": ("PARTITION", _plain("partition")),
    "Priority": ("PRIORITY", _priority),
    "PriorityLong": ("PRIORITY", _num("priority")),
    "QOS": ("QOS", lambda i, _n: (i.get("qos") or "normal", True)),
    "Reason": ("REASON", lambda i, _n: (_reason(i), True)),
    "ReasonList": ("NODELIST(REASON)", _reason_list),
    "Reboot": ("REBOOT", lambda i, _n: ("0", True)),
    "Requeue": ("REQUEUE", lambda i, _n: ("1", True)),
    "RestartCnt": ("RESTART_COUNT", _num("restarts")),
    "StartTime": ("START_TIME", _ts("start_time")),
    "State": ("STATE", lambda i, _n: (str(i.get("state") or ""), True)),
    "StateCompact": ("ST", lambda i, _n: (_compact(i), True)),
    "StdErr": ("STDERR", _plain("stderr")),
    "StdIn": ("STDIN", _plain("stdin")),
    "StdOut": ("STDOUT", _plain("stdout")),
    "SubmitTime": ("SUBMIT_TIME", _ts("submit_time")),
    "TimeLeft": ("TIME_LEFT", _time_left),
    "TimeLimit": ("TIME_LIMIT", _time_limit),
    "TimeUsed": ("TIME", lambda i, _n: (fmt_duration_squeue(_time_used(i)), False)),
    "UserId": ("UID", lambda i, _n: (str(i.get("uid", 0)), True)),
    "UserName": ("USER", lambda i, _n: (_s(i.get("user")) or str(i.get("uid", 0)), True)),
    "WorkDir": ("WORK_DIR", _plain("work_dir")),
}

# Header quirks: node-list headers are printed uncut (cut_output=false) and the step
# START_TIME header is always left-justified (print.c).
_UNCUT_HEADERS = frozenset({"NodeList", "ReasonList", "Nodes"})

_JOB_LETTERS: dict[str, str] = {
    "a": "Account",
    "A": "JobId",
    "B": "BatchHost",
    "C": "NumCPUs",
    "c": "MinCPUs",
    "D": "NumNodes",
    "e": "EndTime",
    "E": "Dependency",
    "F": "ArrayJobId",
    "g": "GroupName",
    "G": "GroupId",
    "i": "JobArrayId",
    "j": "Name",
    "k": "Comment",
    "K": "ArrayTaskId",
    "l": "TimeLimit",
    "L": "TimeLeft",
    "M": "TimeUsed",
    "N": "NodeList",
    "o": "Command",
    "p": "Priority",
    "P": "Partition",
    "q": "QOS",
    "Q": "PriorityLong",
    "r": "Reason",
    "R": "ReasonList",
    "S": "StartTime",
    "t": "StateCompact",
    "T": "State",
    "u": "UserName",
    "U": "UserId",
    "V": "SubmitTime",
    "y": "Nice",
    "Z": "WorkDir",
}
_JOB_NAMES: dict[str, str] = {name.lower(): name for name in _JOB_FIELDS}
_JOB_NAMES["cpus-per-task"] = "CPUsPerTask"


def _render_items(items: list[FormatItem], value: Callable[[str], _Value] | None, headers: _Headers) -> str:
    """One line: the header line when ``value`` is None, else a row."""
    parts: list[str] = []
    for item in items:
        if item.key is not None:
            if value is None:
                header, left = headers[item.key]
                right = item.right and not left
                parts.append(print_str(header, item.width, right, item.key not in _UNCUT_HEADERS))
            else:
                text, cut = value(item.key)
                parts.append(print_str(text, item.width, item.right, cut))
        parts.append(item.suffix)
    return "".join(parts) + "\n"


_JOB_HEADERS: _Headers = {k: (v[0], False) for k, v in _JOB_FIELDS.items()}


def render_jobs(
    infos: Iterable[dict[str, Any]],
    fmt: str | None = None,
    Fmt: str | None = None,  # squeue's -O
    noheader: bool = False,
    long: bool = False,
    now: float = 0.0,
) -> str:
    """The squeue job table for ``infos`` (already filtered and sorted; see ``filter_jobs`` and
    ``default_sort``).  ``fmt`` is ``-o``, ``Fmt`` is ``-O``; with neither the default (or, with
    ``long``, the ``-l``) layout is used.  ``-l`` prints the ctime date line first unless
    ``noheader``.  Invalid format letters are printed verbatim (see ``parse_format`` for the
    error texts).
    """
    if fmt:
        items = parse_format(fmt).items
    elif Fmt:
        items = parse_long_format(Fmt).items
    else:
        items = parse_long_format(LONG_FORMAT_LONG if long else DEFAULT_FORMAT_LONG).items
    out: list[str] = []
    if not noheader:
        if long:
            out.append(ctime_line(now) + "\n")
        out.append(_render_items(items, None, _JOB_HEADERS))
    # Rows are the hot path (squeue of 20,000 jobs): resolve each item's field function
    # once, then per row only call it and pad (same rules as _render_items).
    compiled = [(_JOB_FIELDS[i.key][1] if i.key is not None else None, i.width, i.right, i.suffix) for i in items]
    for info in infos:
        parts: list[str] = []
        for fn, width, right, suffix in compiled:
            if fn is not None:
                text, cut = fn(info, now)
                parts.append(print_str(text, width, right, cut))
            parts.append(suffix)
        parts.append("\n")
        out.append("".join(parts))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# steps (squeue -s)



def _step_time(step: dict[str, Any], now: float) -> int:
    start = float(step.get("start_time") or 0)
    if not start:
        return 0
    end = float(step.get("end_time") or 0) or now
    return max(0, int(end) - int(start))


_STEP_FIELDS: dict[str, tuple[str, _StepFn]] = {
    "JobId": ("JOB_ID", lambda s, j, _n: (str(j["job_id"]), True)),
    "Nodes": ("NODELIST", lambda s, j, _n: (_s(s.get("nodes")), False)),
    "NumCPUs": ("NUM_CPUS", lambda s, j, _n: (str(int(s.get("cpus") or 0)), True)),
    "NumTasks": ("TASKS", lambda s, j, _n: (str(int(s.get("ntasks") or 0)), True)),
    "Partition": ("PARTITION", lambda s, j, _n: (_s(j.get("partition")), True)),
    "StartTime": ("START_TIME", lambda s, j, _n: (fmt_timestamp_squeue(s.get("start_time")), True)),
    "StepId": (
        "STEPID",
        lambda s, j, _n: (f"{j['job_id']}.{step_id_text(s.get('step_id'))}", True),
    ),
    "StepName": ("NAME", lambda s, j, _n: (_s(s.get("name")), True)),
    "StepState": ("STATE", lambda s, j, _n: (str(s.get("state") or ""), True)),
    "TimeLimit": ("TIME_LIMIT", lambda s, j, _n: ("UNLIMITED", True)),
    "TimeUsed": ("TIME", lambda s, j, n: (fmt_duration_squeue(_step_time(s, n)), False)),
    "UserId": ("UID", lambda s, j, _n: (str(s.get("uid", j.get("uid", 0))), True)),
    "UserName": ("USER", lambda s, j, _n: (_s(j.get("user")) or str(j.get("uid", 0)), True)),
}
_STEP_LETTERS: dict[str, str] = {
    "A": "NumTasks",
    "i": "StepId",
    "j": "StepName",
    "l": "TimeLimit",
    "M": "TimeUsed",
    "N": "Nodes",
    "P": "Partition",
    "S": "StartTime",
    "U": "UserId",
    "u": "UserName",
}
_STEP_NAMES: dict[str, str] = {name.lower(): name for name in _STEP_FIELDS}
_STEP_HEADERS: _Headers = {k: (v[0], k == "StartTime") for k, v in _STEP_FIELDS.items()}


def sort_steps(
    pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]],
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """squeue's step order ``P,i``: partition, job id, then step id as Slurm numbers them
    (numbered steps, then interactive, batch, extern: 0xfffffffa..0xfffffffc)."""
    special = {"interactive": 0xFFFFFFFA, "batch": 0xFFFFFFFB, "extern": 0xFFFFFFFC}

    def key(pair: tuple[dict[str, Any], dict[str, Any]]) -> tuple[str, int, int]:
        step, job = pair
        sid = step.get("step_id")
        num = sid if isinstance(sid, int) else special.get(str(sid), 0xFFFFFFFD)
        return (str(job.get("partition") or ""), int(job["job_id"]), num)

    return sorted(pairs, key=key)


def render_steps(
    infos: Iterable[dict[str, Any]],
    fmt: str | None = None,
    Fmt: str | None = None,  # squeue's -O
    noheader: bool = False,
    now: float = 0.0,
) -> str:
    """``squeue -s``: one row per running step of ``infos`` (batch steps included), sorted
    ``P,i``.  Default layout ``%.15i %.8j %.9P %.8u %.9M %N``."""
    if Fmt and not fmt:
        items = parse_long_format(Fmt, steps=True).items
    else:
        items = parse_format(fmt or STEPS_FORMAT, steps=True).items
    pairs = [
        (step, job) for job in infos for step in job.get("steps") or () if step.get("state") == "RUNNING"
    ]
    out: list[str] = []
    if not noheader:
        out.append(_render_items(items, None, _STEP_HEADERS))
    for step, job in sort_steps(pairs):

        def value(key: str, step: dict[str, Any] = step, job: dict[str, Any] = job) -> _Value:
            return _STEP_FIELDS[key][1](step, job, now)

        out.append(_render_items(items, value, _STEP_HEADERS))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# sorting and filtering


def default_sort(infos: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """squeue's default order ``P,t,-p``: partition name, compact state (as strings, so CG
    before PD before R), priority descending; ties by job id."""

    def key(info: dict[str, Any]) -> tuple[str, str, int, int]:
        return (
            str(info.get("partition") or ""),
            _compact(info),
            -int(info.get("priority") or 0),
            int(info["job_id"]),
        )

    return sorted(infos, key=key)


def parse_states(text: str) -> frozenset[str]:
    """``squeue -t`` list: long or short names, any case, comma-separated; ``all`` gives every
    state.  Returns long names.  Raises ``ValueError("Invalid job state specified: X")``."""
    short = {v: k for k, v in _ALL_STATE_CODES.items()}
    out: set[str] = set()
    for tok in text.split(","):
        name = tok.strip().upper()
        if not name:
            continue
        if name == "ALL":
            return frozenset(_ALL_STATE_CODES)
        if name in _ALL_STATE_CODES:
            out.add(name)
        elif name in short:
            out.add(short[name])
        else:
            raise ValueError(f"Invalid job state specified: {tok.strip()}")
    return frozenset(out)


def job_shown(info: dict[str, Any], states: frozenset[str] | None = None) -> bool:
    """Does squeue's state filter keep ``info``?

    ``states`` None is the default filter (``DEFAULT_STATES``).  A requested flag state
    (COMPLETING, STOPPED) matches jobs showing that flag; a base state matches only jobs in
    that state without a flag (Slurm compares the whole state word), so ``-t R`` leaves out a
    STOPPED job and ``-t CA`` a CANCELLED job that is still COMPLETING.
    """
    shown = str(info.get("state") or "")
    base = base_state(info)
    if states is None:
        return base in DEFAULT_STATES or shown == "COMPLETING"
    if shown in FLAG_STATES:
        return shown in states
    return base in states


def filter_jobs(
    infos: Iterable[dict[str, Any]], states: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    return [i for i in infos if job_shown(i, states)]


# ---------------------------------------------------------------------------------------------
# --json


def _num_obj(value: float | int | None, *, infinite: bool = False) -> dict[str, Any]:
    if infinite:
        return {"set": False, "infinite": True, "number": 0}
    if value is None:
        return {"set": False, "infinite": False, "number": 0}
    return {"set": True, "infinite": False, "number": int(value)}


def exit_code_json(raw: int | None) -> dict[str, Any]:
    """data_parser's PROCESS_EXIT_CODE object for a raw wait status."""
    if raw is None:
        return {
            "status": ["PENDING"],
            "return_code": _num_obj(None),
            "signal": {"id": _num_obj(None), "name": ""},
        }
    sig = raw & 0x7F
    if sig and sig != 0x7F:
        status = ["SIGNALED"] + (["CORE_DUMPED"] if raw & 0x80 else [])
        return {
            "status": status,
            "return_code": _num_obj(None),
            "signal": {"id": _num_obj(sig), "name": sig_fullname(sig)},
        }
    code = (raw >> 8) & 0xFF
    return {
        "status": ["SUCCESS" if code == 0 else "ERROR"],
        "return_code": _num_obj(code),
        "signal": {"id": _num_obj(None), "name": ""},
    }


def json_meta(command: Iterable[str], plugin: str = "openapi/slurmctld") -> dict[str, Any]:
    return {
        "plugin": {
            "type": plugin,
            "name": "",
            "data_parser": "data_parser/v0.0.44",
            "accounting_storage": "",
        },
        "client": {"source": "", "user": "", "group": ""},
        "command": list(command),
        "slurm": {
            "version": {"major": "25", "micro": "0", "minor": "11"},
            "release": "25.11.0",
            "cluster": "spur",
        },
    }


def job_state_list(info: dict[str, Any]) -> list[str]:
    """``job_state_string_complete`` as a list: ``["CANCELLED", "COMPLETING"]``."""
    base = base_state(info)
    shown = str(info.get("state") or "")
    return [base, shown] if shown in FLAG_STATES and shown != base else [base]


def _job_json(info: dict[str, Any]) -> dict[str, Any]:
    limit = info.get("time_limit")
    return {
        "account": info.get("account") or "",
        "batch_flag": bool(info.get("batch_flag")),
        "batch_host": info.get("batch_host") or "",
        "command": info.get("command") or "",
        "cpus": _num_obj(info.get("num_cpus") or 0),
        "cpus_per_task": _num_obj(info.get("cpus_per_task") or 1),
        "current_working_directory": info.get("work_dir") or "",
        "dependency": "" if info.get("dependency") in (None, "(null)") else info["dependency"],
        "derived_exit_code": exit_code_json(info.get("derived_ec")),
        "eligible_time": _num_obj(info.get("eligible_time") or 0),
        "end_time": _num_obj(info.get("end_time") or 0),
        "exit_code": exit_code_json(info.get("exit_code")),
        "failed_node": info.get("failed_node") or "",
        "group_id": info.get("gid", 0),
        "group_name": info.get("group") or str(info.get("gid", 0)),
        "job_id": info["job_id"],
        "job_state": job_state_list(info),
        "name": info.get("name") or "",
        "node_count": _num_obj(info.get("node_count") or 0),
        "nodes": info.get("nodes") or "",
        "partition": info.get("partition") or "",
        "priority": _num_obj(info.get("priority") or 0),
        "qos": info.get("qos") or "normal",
        "requeue": True,
        "restart_cnt": info.get("restarts") or 0,
        "standard_error": info.get("stderr") or "",
        "standard_input": info.get("stdin") or "",
        "standard_output": info.get("stdout") or "",
        "start_time": _num_obj(info.get("start_time") or 0),
        "state_description": "",
        "state_reason": str(info.get("reason") or "None"),
        "submit_line": info.get("submit_line") or "",
        "submit_time": _num_obj(info.get("submit_time") or 0),
        "tasks": _num_obj(info.get("num_tasks") or 1),
        "time_limit": _num_obj(None if limit is None else int(limit) // 60, infinite=limit is None),
        "user_id": info.get("uid", 0),
        "user_name": info.get("user") or "",
    }


def to_json(
    infos: Iterable[dict[str, Any]], *, now: float = 0.0, command: Iterable[str] = ("squeue", "--json")
) -> dict[str, Any]:
    """``squeue --json`` as a plain dict (``json.dumps`` it): ``meta``, ``jobs``, ``errors``..."""
    return {
        "jobs": [_job_json(i) for i in infos],
        "last_backfill": _num_obj(0),
        "last_update": _num_obj(now),
        "meta": json_meta(command),
        "errors": [],
        "warnings": [],
    }
