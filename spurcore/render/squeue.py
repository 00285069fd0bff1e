"""``squeue`` text: the ``-o`` percent-format engine, the ``-O`` field engine, job arrays,
the default order, the filters (steps, ``-S`` and ``--json``/``--yaml``: see Start-up).

Pure module: job info dicts (``spurcore.views.job_info``) and an explicit ``now`` in, text out.

Sources (Slurm 25.11): src/squeue/opts.c (``parse_format``, ``_parse_token``,
``_parse_long_token``, ``fmt_data_job``/``fmt_data_step``), src/squeue/print.c (``_print_str``,
the ``_print_job_*`` functions, ``_filter_job``, ``_combine_pending_array_tasks``),
src/squeue/sort.c, src/squeue/squeue.c, src/common/slurm_protocol_defs.c
(``xlate_array_task_str``), src/plugins/data_parser/v0.0.44/parsers.c (``JOB_INFO``).

Column rules (``_print_str``):
- ``%.N`` right-justifies in N columns, ``%N`` left-justifies and pads; values and headers
  longer than N are cut to their first N characters, without a marker.  A few columns are
  never cut when right-justified (node lists, ``NODELIST(REASON)`` header, durations).
- No width prints the value at its own length.  Text before the first ``%`` is a prefix and
  text after a field letter a suffix, both printed verbatim (header line included).
- ``-O name[:[.]size[suffix]]``: no size means width 20, left-justified, no separator.

Job arrays (a record of the array's pending tasks has ``array_task_id`` None and its indexes
in ``array_pending``; every started task is a record with its own ``array_task_id``):
- the pending record shows ``<array>_[<tasks>]``, the tasks as ``xlate_array_task_str`` gives
  them (``1-99:2``, ``4-99%10``, cut at ``SLURM_BITSTR_LEN`` with ``...``); a task record
  shows ``<array>_<task>``;
- pending task records that were split off (held, updated) are folded back into the pending
  record's line unless ``-r`` (their reason joined to its reason, ``Priority,JobHeldUser``);
- ``-r`` prints one line per pending task.

Start-up: every ``squeue`` loads this module, so at load time it imports only what every
table needs. Steps (``-s``), a ``-S`` other than the default and the help texts are in
``spurcore.render.squeue_extra``, ``--json`` in ``spurcore.render.data_parser``: both load on
first use, and their names are still importable from here. Array task lists, exit codes,
signal names and host lists are imported by the functions that use them (never once per row
of a plain job).
"""

from __future__ import annotations

from spurcore.records import Record
from spurcore.render._common import FLAG_STATES, TimeStrings, base_state, field_key, print_str, share_string
from spurcore.states import STATE_CODES
from spurcore.timefmt import ctime_line, fmt_duration_squeue, fmt_mem

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    _Value = tuple[str | None, bool]
    _JobFn = Callable[[dict[str, Any], "View"], _Value]
    _StepFn = Callable[[dict[str, Any], dict[str, Any], "View"], _Value]
    _Headers = dict[str, tuple[str, bool]]  # key -> (header text, force left-justified)

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_FORMAT_LONG",
    "LONG_FORMAT",
    "LONG_FORMAT_LONG",
    "START_FORMAT",
    "STEPS_FORMAT",
    "DEFAULT_STATES",
    "View",
    "FormatItem",
    "ParsedFormat",
    "JobFilter",
    "parse_format",
    "parse_long_format",
    "render_jobs",
    "display_records",
    "default_sort",
    "by_partition",
    "sort_jobs",
    "sort_fields",
    "job_shown",
    "filter_jobs",
    "select_jobs",
    "parse_states",
]

DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
LONG_FORMAT = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R"
STEPS_FORMAT = "%.15i %.8j %.9P %.8u %.9M %N"
#: ``--start``'s layout (opts.c), sorted by ``S`` and showing only pending jobs by default.
START_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.19S %.6D %20Y %R"
#: ``--only-job-state``'s layout when no format is given (squeue.c).
ONLY_STATE_FORMAT = "%.18i %.2t"
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
_FORMAT_STRING_SIZE = 32  # print.h: %i of a pending array is cut to 31 characters
_YEAR = 365 * 86400


class View:
    """What rendering needs besides the records (all given by the caller: the module reads
    no clock and no environment).

    ``now``: the controller's clock; ``time_format``: ``SLURM_TIME_FORMAT``;
    ``bitstr_len``: ``SLURM_BITSTR_LEN`` as an int, None when unset (``-r`` sets it to 0);
    ``array``: ``-r``; ``expand_patterns``: ``--expand-patterns``; ``noconvert``:
    ``--noconvert``; ``cluster``: this cluster's name (``%Cluster``).
    """

    __slots__ = ("now", "time_format", "bitstr_len", "array", "expand_patterns", "noconvert", "cluster", "_times")

    def __init__(self, now: float = 0.0, *, time_format: str | None = None, bitstr_len: int | None = None,
                 array: bool = False, expand_patterns: bool = False, noconvert: bool = False,
                 cluster: str = "") -> None:
        self.now = now
        self.time_format = time_format
        self.bitstr_len = bitstr_len
        self.array = array
        self.expand_patterns = expand_patterns
        self.noconvert = noconvert
        self.cluster = cluster
        self._times: TimeStrings | None = None

    def time(self, t: float | None) -> str:
        """squeue's ``_print_time``: ``N/A`` for an unset time. Each second is formatted once
        per View (``TimeStrings``): a View's clock and format do not change once it prints."""
        if not t:
            return "N/A"
        times = self._times
        if times is None:
            times = self._times = TimeStrings(self.time_format, self.now)
        return times(t)


# ---------------------------------------------------------------------------------------------
# format parsing


class FormatItem(Record):
    """One printed item: a field (``key``: str), or verbatim text (``key`` None: prefix or
    invalid token); ``width`` (0: natural), ``right`` (justify), ``suffix`` (verbatim)."""

    __slots__ = ()

    def __new__(cls, key: str | None, width: int = 0, right: bool = False, suffix: str = "") -> FormatItem:
        return tuple.__new__(cls, (key, width, right, suffix))


class ParsedFormat(Record):
    """``items`` (list of FormatItem) and ``errors`` (squeue's "Invalid ... specification" lines)."""

    __slots__ = ()

    def __new__(cls, items: list[FormatItem], errors: list[str]) -> ParsedFormat:
        return tuple.__new__(cls, (items, errors))


def _strtok(text: str, delim: str) -> list[str]:
    """C ``strtok``: split on ``delim`` and drop empty tokens."""
    return [t for t in text.split(delim) if t]


def parse_format(fmt: str, *, steps: bool = False) -> ParsedFormat:
    """``squeue -o`` (``parse_format``): ``"jid=%i uid=%U"`` -> prefix, fields and suffixes.

    An unknown letter is kept as verbatim text ``%<token>`` and reported in ``errors``.
    """
    if steps:
        from spurcore.render.squeue_extra import _STEP_LETTERS as table
    else:
        table = _JOB_LETTERS
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
    if steps:
        from spurcore.render.squeue_extra import _STEP_NAMES as table
    else:
        table = _JOB_NAMES
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
# job arrays


def _is_array(info: dict[str, Any]) -> bool:
    return bool(info.get("array_job_id"))


def _pending_tasks(info: dict[str, Any]) -> list[list[int]]:
    """The pending task ranges of a pending array record ([] for any other record)."""
    if not _is_array(info) or info.get("array_task_id") is not None:
        return []
    return [list(r) for r in info.get("array_pending") or ()]


def _array_id(info: dict[str, Any]) -> int:
    """The array's id for an array record, the job id otherwise (sort.c ``_sort_job_by_id``)."""
    return int(info.get("array_job_id") or 0) or int(info["job_id"])


def _with_task_str(info: dict[str, Any], view: View) -> dict[str, Any]:
    """``info`` with ``_task_str``: what the API's unpack sets as ``array_task_str``."""
    ranges = _pending_tasks(info)
    if not ranges:
        return info
    from spurcore.arrays import task_str  # array records only (start-up: see the module docstring)

    bitstr = 64 if view.bitstr_len is None else view.bitstr_len
    text = task_str(ranges, int(info.get("array_max_tasks") or 0), bitstr)
    return {**info, "_task_str": text, "_task_ranges": ranges}


def _merge_reason(record: dict[str, Any], task: dict[str, Any]) -> None:
    """print.c ``_merge_job_reason``: a folded task's reason joins the record's reason."""
    mine, theirs = str(record.get("reason") or "None"), str(task.get("reason") or "None")
    if mine == theirs:
        return
    desc = record.get("_reason_desc") or mine
    if theirs in desc:
        return
    record["_reason_desc"] = f"{desc},{theirs}"


def _combine_pending(records: list[dict[str, Any]], view: View) -> list[dict[str, Any]]:
    """``_combine_pending_array_tasks``: pending task records of an array with a pending
    record (same name, same partition) are shown on its line, its task string re-made with
    ``bit_fmt`` (no step form, no throttle, no ``...``)."""
    owners = {
        int(r["array_job_id"]): r for r in records if "_task_ranges" in r and base_state(r) == "PENDING"
    }
    if not owners:
        return records
    from spurcore.arrays import fmt_bitmap, normalize

    out: list[dict[str, Any]] = []
    folded: dict[int, list[int]] = {}
    for r in records:
        owner = owners.get(int(r.get("array_job_id") or 0))
        if (
            owner is not None
            and r is not owner
            and r.get("array_task_id") is not None
            and base_state(r) == "PENDING"
            and (r.get("name") or "") == (owner.get("name") or "")
            and (r.get("partition") or "") == (owner.get("partition") or "")
        ):
            _merge_reason(owner, r)
            folded.setdefault(int(owner["array_job_id"]), []).append(int(r["array_task_id"]))
            continue
        out.append(r)
    for array_id, tasks in folded.items():
        owner = owners[array_id]
        ranges = normalize(owner["_task_ranges"] + [[t, t, 1] for t in tasks])
        owner["_task_ranges"] = ranges
        bitstr = 64 if view.bitstr_len is None else view.bitstr_len
        owner["_task_str"] = fmt_bitmap(ranges, 0 if bitstr == 0 else (bitstr if bitstr > 0 else 64))
    return out


def display_records(infos: Iterable[dict[str, Any]], view: View) -> list[dict[str, Any]]:
    """The records squeue prints, in order: each pending array record gets its task string
    (``_task_str``); without ``-r`` split-off pending tasks are folded back into it, with
    ``-r`` it becomes one record per pending task. Records are new dicts where changed."""
    # only a pending array record changes (the test is _pending_tasks', inline: every row)
    records = [_with_task_str(i, view) if i.get("array_job_id") and i.get("array_task_id") is None else i
               for i in infos]
    if view.array:
        from spurcore.arrays import indexes

        out: list[dict[str, Any]] = []
        for r in records:
            ranges = r.get("_task_ranges")
            if not ranges:
                out.append(r)
                continue
            base = {k: v for k, v in r.items() if k not in ("_task_str", "_task_ranges")}
            for task in indexes(ranges):
                out.append({**base, "array_task_id": task, "_expanded": True})
        return out
    return _combine_pending(records, view)


# ---------------------------------------------------------------------------------------------
# job fields

# A column value: (text or None for a C NULL, cut to the width when right-justified?)


def _s(value: Any) -> str | None:
    """A C string field: None or "" is NULL."""
    if value is None or value == "":
        return None
    return str(value)


def _secs(secs: float) -> str:
    """print.c ``_print_secs`` (``INVALID`` when negative or above a year)."""
    return fmt_duration_squeue(secs)


def job_time_used(info: dict[str, Any]) -> int:
    """print.c ``job_time_used``: 0 while pending, frozen while suspended."""
    return int(info.get("run_time") or 0)


def _time_limit(info: dict[str, Any], _v: View) -> _Value:
    limit = info.get("time_limit")
    if limit is None:
        return "UNLIMITED", True
    return _secs(limit), False


def _time_left(info: dict[str, Any], _v: View) -> _Value:
    limit = info.get("time_limit")
    if limit is None:
        return "UNLIMITED", True
    return _secs(int(limit) - job_time_used(info)), False


def _start_time(info: dict[str, Any], v: View) -> _Value:
    from spurcore.render._common import job_times

    return v.time(job_times(info, v.now)[0]), True


def _end_time(info: dict[str, Any], v: View) -> _Value:
    from spurcore.render._common import job_times

    end = job_times(info, v.now)[1] if base_state(info) == "PENDING" else float(info.get("end_time") or 0)
    running = base_state(info) in _RUNNING_LIKE and info.get("state") != "COMPLETING"
    if info.get("time_limit") is None and (end > v.now or (not end and running)):
        return "NONE", True
    return v.time(end), True


def _reason(info: dict[str, Any]) -> str:
    return str(info.get("_reason_desc") or info.get("reason") or "None")


def _reason_list(info: dict[str, Any], _v: View) -> _Value:
    if info.get("state") != "COMPLETING" and base_state(info) in _REASON_STATES:
        return f"({_reason(info)})", True
    return _s(info.get("nodes")), False


def _exit(key: str) -> _JobFn:
    """A job's status is 0 until one is recorded (slurmctld never sends NO_VAL for a job), so
    None prints ``0:0`` like scontrol's ExitCode."""

    def fn(info: dict[str, Any], _v: View) -> _Value:
        return _fmt_exit(info.get(key) or 0), True

    return fn


def _fmt_exit(raw: int) -> str:
    """``spurcore.exitcodes.fmt_exit``, imported when the first exit code is printed (most
    tables show none, and the module loads the signal table), which then takes this name:
    the next rows call it directly, without an import statement per row."""
    global _fmt_exit
    from spurcore.exitcodes import fmt_exit

    _fmt_exit = fmt_exit
    return fmt_exit(raw)


def _priority(info: dict[str, Any], _v: View) -> _Value:
    return f"{int(info.get('priority') or 0) / 0xFFFFFFFF:16.14f}", True


def _compact(info: dict[str, Any]) -> str:
    state = str(info.get("state") or "")
    return _ALL_STATE_CODES.get(state, state)


def _plain(key: str) -> _JobFn:
    return lambda info, _v: (_s(info.get(key)), True)


def _num(key: str, default: int = 0) -> _JobFn:
    return lambda info, _v: (str(int(info.get(key) or default)), True)


def _const(text: str | None) -> _JobFn:
    """A field Spur has no data for: what Slurm prints when it is unset."""
    fn: _JobFn = lambda _info, _v: (text, True)  # noqa: E731 - registered below
    _CONSTANT_COLUMNS.add(fn)
    return fn


_CONSTANT_COLUMNS: set[_JobFn] = set()  # the functions _const made: printed once per rendering


def _ts(key: str) -> _JobFn:
    return lambda info, v: (v.time(info.get(key)), True)


def _mem(mb: int, v: View) -> str:
    """``convert_num_unit(mb, UNIT_MEGA, ...)`` (``--noconvert``: no unit change)."""
    if v.noconvert:
        return "0" if not mb else f"{int(mb)}M"
    return fmt_mem(mb)


def _job_id(info: dict[str, Any], v: View) -> _Value:
    """``%i`` (JobArrayId): ``A_[tasks]`` for a pending array record, ``A_T`` for a task."""
    task_str = info.get("_task_str")
    if task_str is not None:
        text = f"{info['array_job_id']}_[{task_str}]"
        if v.bitstr_len is not None:
            return text, False  # print.c: uncut when SLURM_BITSTR_LEN is set
        return text[: _FORMAT_STRING_SIZE - 1], True
    array_id = info.get("array_job_id")
    if array_id and info.get("array_task_id") is not None:  # _is_array, inline: every row
        return f"{array_id}_{info['array_task_id']}", True
    return str(info["job_id"]), True


def _array_job_id(info: dict[str, Any], _v: View) -> _Value:
    return str(_array_id(info)), True


def _array_task_id(info: dict[str, Any], _v: View) -> _Value:
    if info.get("_task_str") is not None:
        return str(info["_task_str"]), True
    if _is_array(info) and info.get("array_task_id") is not None:
        return str(info["array_task_id"]), True
    return "N/A", True


def _batch_host(info: dict[str, Any], _v: View) -> _Value:
    host = info.get("batch_host") if info.get("batch_flag") else info.get("alloc_node")
    return (host or "n/a"), True


def _over_subscribe(info: dict[str, Any], _v: View) -> _Value:
    """``job_share_string``: exclusive NO, --exclusive=user USER, mcs MCS, topo TOPO,
    --oversubscribe YES, otherwise OK."""
    return share_string(info), True


def _pending_time(info: dict[str, Any], v: View) -> _Value:
    start = float(info.get("start_time") or 0)
    submit = float(info.get("submit_time") or 0)
    if start and start < v.now:
        return str(int(start - submit)), True
    return str(int(v.now - submit)), True


def _nice(info: dict[str, Any], _v: View) -> _Value:
    return str(int(info.get("nice") or 0)), True


def _requeue(info: dict[str, Any], _v: View) -> _Value:
    value = info.get("requeue")
    return str(1 if value is None or int(value) < 0 else int(value)), True


def _ntasks_per_node(info: dict[str, Any], _v: View) -> _Value:
    n = int(info.get("ntasks_per_node") or 0)
    return (str(n) if n else "N/A"), True


def _min_memory(info: dict[str, Any], v: View) -> _Value:
    mb = int(info.get("mem_per_cpu") or 0) or int(info.get("mem_mb") or 0)
    return _mem(mb, v), True


def _min_time(info: dict[str, Any], _v: View) -> _Value:
    return _secs(int(info.get("time_min") or 0)), True


def _stdio(key: str) -> _JobFn:
    """StdOut/StdErr/StdIn: the info record holds the expanded path already, which is also
    what ``--expand-patterns`` prints."""
    return lambda info, _v: (_s(info.get(key)), True)


def _accrue(info: dict[str, Any], v: View) -> _Value:
    from spurcore.render._common import accrue_time

    return v.time(accrue_time(info, v.now)), True


def _eligible(info: dict[str, Any], v: View) -> _Value:
    from spurcore.render._common import eligible_time

    return v.time(eligible_time(info)), True


def _last_sched(info: dict[str, Any], v: View) -> _Value:
    from spurcore.render._common import last_sched_eval

    return v.time(last_sched_eval(info)), True


def _tres_alloc(info: dict[str, Any], _v: View) -> _Value:
    from spurcore.render._common import job_tres

    alloc, req = job_tres(info)
    return (alloc or req or "N/A"), True


def _tres_per(key: str) -> _JobFn:
    """TRES_PER_NODE and friends (print.c ``_print_job_tres_per_*``): the string sbatch
    built from the job's GRES options, ``N/A`` when unset."""

    def fn(info: dict[str, Any], _v: View) -> _Value:
        from spurcore.render._common import job_tres_per

        return (job_tres_per(info)[key] or "N/A"), True

    return fn


def _sched_nodes(info: dict[str, Any], _v: View) -> _Value:
    """SCHEDNODES: the nodes the backfill scheduler expects a pending job to start on
    (``(null)`` when none), printed uncut."""
    return (_s(info.get("sched_nodes")) or None), False


def _group_name(info: dict[str, Any], _v: View) -> _Value:
    return str(info.get("group") or info.get("gid", 0)), True


def _user_name(info: dict[str, Any], _v: View) -> _Value:
    return (_s(info.get("user")) or str(info.get("uid", 0))), True


def _nodes(key: str) -> _JobFn:
    return lambda info, _v: (_s(info.get(key)), False)


# key -> (header, value function, hidden).  Keys are the -O names (Slurm's spelling), in
# fmt_data_job order; ``hidden`` fields are left out of --helpFormat.
_JOB_TABLE: tuple[tuple[str, str, _JobFn, bool], ...] = (
    ("Account", "ACCOUNT", _plain("account"), False),
    ("AccrueTime", "ACCRUE_TIME", _accrue, False),
    ("admin_comment", "ADMIN_COMMENT", _const(None), False),
    ("AllocNodes", "ALLOC_NODES", _plain("alloc_node"), False),
    ("AllocSID", "ALLOC_SID", _num("alloc_sid"), False),
    ("ArrayJobId", "ARRAY_JOB_ID", _array_job_id, False),
    ("ArrayTaskId", "ARRAY_TASK_ID", _array_task_id, False),
    ("AssocId", "ASSOC_ID", _const("0"), False),
    ("BatchFlag", "BATCH_FLAG", _num("batch_flag"), False),
    ("BatchHost", "EXEC_HOST", _batch_host, False),
    ("BoardsPerNode", "BOARDS_PER_NODE", _const("N/A"), False),
    ("BurstBuffer", "BURST_BUFFER", _const(None), False),
    ("BurstBufferState", "BURST_BUFFER_STATE", _const(None), False),
    ("Cluster", "CLUSTER", lambda i, v: (_s(i.get("cluster")) or _s(v.cluster), True), False),
    ("ClusterFeature", "CLUSTER_FEATURES", _const(None), False),
    ("Command", "COMMAND", _plain("command"), False),
    ("Comment", "COMMENT", _plain("comment"), False),
    ("Container", "CONTAINER", _const(None), False),
    ("ContainerId", "CONTAINERID", _const(None), False),
    ("Contiguous", "CONTIGUOUS", _const("0"), False),
    ("Cores", "CORES_PER_SOCKET", _const("*"), False),
    ("CoreSpec", "CORE_SPEC", _const("N/A"), False),
    ("CPUsPerTask", "CPUS_PER_TASK", _num("cpus_per_task", 1), False),
    ("cpus-per-task", "CPUS_PER_TASK", _num("cpus_per_task", 1), False),
    ("cpus-per-tres", "CPUS_PER_TRES", _tres_per("cpus_per_tres"), False),
    ("CronJob", "CRON_JOB", _const("No"), False),
    ("Deadline", "DEADLINE", _ts("deadline"), False),
    ("DelayBoot", "DELAY_BOOT", _const("0:00"), False),
    ("Dependency", "DEPENDENCY", _plain("dependency"), False),
    ("DerivedEC", "DERIVED_EC", _exit("derived_ec"), False),
    ("EligibleTime", "ELIGIBLE_TIME", _eligible, False),
    ("EndTime", "END_TIME", _end_time, False),
    ("ExcNodes", "EXC_NODES", _nodes("exc_nodes"), False),
    ("exit_code", "EXIT_CODE", _exit("exit_code"), False),
    ("Feature", "FEATURES", _plain("constraint"), False),
    ("Gres", "TRES_PER_NODE", _tres_per("tres_per_node"), True),
    ("GroupId", "GROUP", lambda i, _v: (str(i.get("gid", 0)), True), False),
    ("GroupName", "GROUP", _group_name, False),
    ("HetJobId", "HET_JOB_ID", _const("N/A"), False),
    ("HetJobIdSet", "HET_JOB_ID_SET", _const("N/A"), False),
    ("HetJobOffset", "HET_JOB_OFFSET", _const("N/A"), False),
    ("JobArrayId", "JOBID", _job_id, False),
    ("JobId", "JOBID", lambda i, _v: (str(i["job_id"]), True), False),
    ("LastSchedEval", "LAST_SCHED_EVAL", _last_sched, False),
    ("Licenses", "LICENSES", _const(None), False),
    ("LicensesAlloc", "LICENSES_ALLOC", _const(None), False),
    ("MaxCPUs", "MAX_CPUS", _num("num_cpus"), False),
    ("MaxNodes", "MAX_NODES", _num("node_count"), False),
    ("mem-per-tres", "MEM_PER_TRES", _tres_per("mem_per_tres"), False),
    ("MCSLabel", "MCSLABEL", _const(None), False),
    ("MinCPUs", "MIN_CPUS", _num("cpus_per_task", 1), False),
    ("MinMemory", "MIN_MEMORY", _min_memory, False),
    ("MinTime", "TIME_MIN", _min_time, False),
    ("MinTmpDisk", "MIN_TMP_DISK", _const("0"), False),
    ("Name", "NAME", _plain("name"), False),
    ("Network", "NETWORK", _const(None), False),
    ("Nice", "NICE", _nice, False),
    ("NodeList", "NODELIST", _nodes("nodes"), False),
    ("NTPerCore", "NTASKS_PER_CORE", _const("N/A"), False),
    ("NTPerNode", "NTASKS_PER_NODE", _ntasks_per_node, False),
    ("NTPerSocket", "NTASKS_PER_SOCKET", _const("N/A"), False),
    ("NTPerBoard", "NTASKS_PER_BOARD", _const("N/A"), False),
    ("NumCPUs", "CPUS", _num("num_cpus"), False),
    ("NumNodes", "NODES", _num("node_count"), False),
    ("NumTasks", "TASKS", _num("num_tasks", 1), False),
    ("Origin", "ORIGIN", _const("NA"), False),
    ("OriginRaw", "ORIGIN_RAW", _const("NA"), False),
    ("OverSubscribe", "OVER_SUBSCRIBE", _over_subscribe, False),
    ("PackJobId", "HET_JOB_ID", _const("N/A"), True),
    ("PackJobIdSet", "HET_JOB_ID_SET", _const("N/A"), True),
    ("PackJobOffset", "HET_JOB_OFFSET", _const("N/A"), True),
    ("Partition", "PARTITION", _plain("partition"), False),
    ("PendingTime", "PENDING_TIME", _pending_time, False),
    ("PreemptTime", "PREEMPT_TIME", _const("N/A"), False),
    ("Prefer", "PREFER", _const(None), False),
    ("Priority", "PRIORITY", _priority, False),
    ("PriorityLong", "PRIORITY", _num("priority"), False),
    ("Profile", "PROFILE", _const("NotSet"), False),
    ("QOS", "QOS", lambda i, _v: (i.get("qos") or "normal", True), False),
    ("Reason", "REASON", lambda i, _v: (_reason(i), True), False),
    ("ReasonList", "NODELIST(REASON)", _reason_list, False),
    ("Reboot", "REBOOT", _const("0"), False),
    ("ReqNodes", "REQ_NODES", _nodes("req_nodes"), False),
    ("ReqSwitch", "REQ_SWITCH", _const("0"), False),
    ("Requeue", "REQUEUE", _requeue, False),
    ("Reservation", "RESERVATION", _const(None), False),
    ("ResizeTime", "RESIZE_TIME", lambda _i, _v: ("N/A", False), False),
    ("RestartCnt", "RESTART_COUNT", _num("restarts"), False),
    ("SchedNodes", "SCHEDNODES", _sched_nodes, False),
    ("SCT", "S:C:T", _const("*:*:*"), False),
    ("SegmentSize", "SEGMENT_SIZE", _const("N/A"), False),
    ("SiblingsActive", "ACTIVE_SIBLINGS", _const("NA"), False),
    ("SiblingsActiveRaw", "ACTIVE_SIBLINGS_RAW", _const("NA"), False),
    ("SiblingsViable", "VIABLE_SIBLINGS", _const("NA"), False),
    ("SiblingsViableRaw", "VIALBLE_SIBLINGS_RAW", _const("NA"), False),  # sic (print.c)
    ("Shared", "OVER_SUBSCRIBE", _over_subscribe, True),
    ("SLUID", "SLUID", _const("s0000000000000"), False),
    ("Sockets", "SOCKETS_PER_NODE", _const("*"), False),
    ("SPerBoard", "SOCKETS_PER_BOARD", _const("0"), False),
    ("StartTime", "START_TIME", _start_time, False),
    ("State", "STATE", lambda i, _v: (str(i.get("state") or ""), True), False),
    ("StateCompact", "ST", lambda i, _v: (_compact(i), True), False),
    ("StdErr", "STDERR", _stdio("stderr"), False),
    ("StdIn", "STDIN", _stdio("stdin"), False),
    ("StdOut", "STDOUT", _stdio("stdout"), False),
    ("SubmitTime", "SUBMIT_TIME", _ts("submit_time"), False),
    ("system_comment", "SYSTEM_COMMENT", _const(None), False),
    ("Threads", "THREADS_PER_CORE", _const("*"), False),
    ("TimeLeft", "TIME_LEFT", _time_left, False),
    ("TimeLimit", "TIME_LIMIT", _time_limit, False),
    ("TimeUsed", "TIME", lambda i, _v: (_secs(job_time_used(i)), False), False),
    ("Tres", "TRES_ALLOC", _tres_alloc, True),
    ("tres-alloc", "TRES_ALLOC", _tres_alloc, False),
    ("tres-bind", "TRES_BIND", _const("N/A"), False),
    ("tres-freq", "TRES_FREQ", _const("N/A"), False),
    ("tres-per-job", "TRES_PER_JOB", _tres_per("tres_per_job"), False),
    ("tres-per-node", "TRES_PER_NODE", _tres_per("tres_per_node"), True),
    ("tres-per-socket", "TRES_PER_SOCKET", _const("N/A"), False),
    ("tres-per-task", "TRES_PER_TASK", _tres_per("tres_per_task"), False),
    ("UserId", "UID", lambda i, _v: (str(i.get("uid", 0)), True), False),
    ("UserName", "USER", _user_name, False),
    ("Wait4Switch", "WAIT4SWITCH", _const("0:00"), False),
    ("WCKey", "WCKEY", _plain("wckey"), False),
    ("WorkDir", "WORK_DIR", _plain("work_dir"), False),
)
_JOB_FIELDS: dict[str, tuple[str, _JobFn]] = {k: (h, fn) for k, h, fn, _hidden in _JOB_TABLE}

# Header quirks: node-list headers are printed uncut (cut_output=false) and the step
# START_TIME header is always left-justified (print.c).
_UNCUT_HEADERS = frozenset({"NodeList", "ReasonList", "Nodes", "SchedNodes"})

#: fmt_data_job letters (``%b`` Gres and ``%h`` Shared/OverSubscribe are hidden but valid).
_JOB_LETTERS: dict[str, str] = {
    "a": "Account",
    "A": "JobId",
    "b": "Gres",
    "B": "BatchHost",
    "c": "MinCPUs",
    "C": "NumCPUs",
    "d": "MinTmpDisk",
    "D": "NumNodes",
    "e": "EndTime",
    "E": "Dependency",
    "f": "Feature",
    "F": "ArrayJobId",
    "g": "GroupName",
    "G": "GroupId",
    "h": "OverSubscribe",
    "H": "Sockets",
    "i": "JobArrayId",
    "I": "Cores",
    "j": "Name",
    "J": "Threads",
    "k": "Comment",
    "K": "ArrayTaskId",
    "l": "TimeLimit",
    "L": "TimeLeft",
    "m": "MinMemory",
    "M": "TimeUsed",
    "n": "ReqNodes",
    "N": "NodeList",
    "o": "Command",
    "O": "Contiguous",
    "p": "Priority",
    "P": "Partition",
    "q": "QOS",
    "Q": "PriorityLong",
    "r": "Reason",
    "R": "ReasonList",
    "s": "SLUID",
    "S": "StartTime",
    "t": "StateCompact",
    "T": "State",
    "u": "UserName",
    "U": "UserId",
    "v": "Reservation",
    "V": "SubmitTime",
    "w": "WCKey",
    "W": "Licenses",
    "x": "ExcNodes",
    "X": "CoreSpec",
    "y": "Nice",
    "Y": "SchedNodes",
    "z": "SCT",
    "Z": "WorkDir",
}
_JOB_NAMES: dict[str, str] = {name.lower(): name for name in _JOB_FIELDS}


def by_partition(infos: Iterable[dict[str, Any]], partitions: Sequence[str] | None = None
                 ) -> list[dict[str, Any]]:
    """``-P``/``--priority`` (print.c ``_create_priority_list``): a pending job submitted to
    several partitions is listed once per partition (``partitions``: only those of ``-p``),
    each with its priority there when the record has ``priority_by_partition`` (partition
    -> priority), else the job's."""
    out = []
    for info in infos:
        names = [p for p in str(info.get("partition") or "").split(",") if p]
        if len(names) <= 1 or base_state(info) != "PENDING":
            out.append(info)
            continue
        prios = info.get("priority_by_partition") or {}
        for name in names:
            if partitions is not None and name not in partitions:
                continue
            out.append({**info, "partition": name, "priority": prios.get(name, info.get("priority"))})
    return out


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
    *,
    view: View | None = None,
    date_line: bool | None = None,
) -> str:
    """The squeue job table for ``infos`` (already filtered and sorted; see ``select_jobs``
    and ``sort_jobs``).  ``fmt`` is ``-o``, ``Fmt`` is ``-O``; with neither the default (or,
    with ``long``, the ``-l``) layout is used.  The ctime date line comes first when
    ``date_line`` (default: with ``-l``) unless ``noheader``.  Invalid format letters are
    printed verbatim (see ``parse_format`` for the error texts).  Job arrays are laid out by
    ``display_records`` with ``view`` (``-r``, ``SLURM_BITSTR_LEN``, ``SLURM_TIME_FORMAT``).
    """
    if view is None:
        view = View(now)
    if fmt:
        items = parse_format(fmt).items
    elif Fmt:
        items = parse_long_format(Fmt).items
    else:
        items = parse_long_format(LONG_FORMAT_LONG if long else DEFAULT_FORMAT_LONG).items
    out: list[str] = []
    if not noheader:
        if long if date_line is None else date_line:
            out.append(ctime_line(view.now) + "\n")
        out.append(_render_items(items, None, _JOB_HEADERS))
    out.extend(map(_row_printer(items, view), display_records(infos, view)))
    return "".join(out)


#: The record fields that each column's text is a function of (with the View), for the
#: columns that many records of a long queue share (the same partition, user, state, ...).
#: Invariant: the column's function reads no other field, and a field's values have one
#: type (the controller's), so two records with equal values of these fields, present or
#: absent alike, print the column alike. Columns not listed (the job id, per-job times, the
#: ones reading nested values) are computed for every row.
_COLUMN_DEPS: dict[str, tuple[str, ...]] = {
    "Account": ("account",),
    "AllocNodes": ("alloc_node",),
    "AllocSID": ("alloc_sid",),
    "ArrayTaskId": ("_task_str", "array_job_id", "array_task_id"),
    "BatchFlag": ("batch_flag",),
    "BatchHost": ("batch_flag", "batch_host", "alloc_node"),
    "Cluster": ("cluster",),
    "Command": ("command",),
    "Comment": ("comment",),
    "CPUsPerTask": ("cpus_per_task",),
    "cpus-per-task": ("cpus_per_task",),
    "Deadline": ("deadline",),
    "Dependency": ("dependency",),
    "DerivedEC": ("derived_ec",),
    "EligibleTime": ("hold", "nodes", "state", "reason", "eligible_time"),
    "ExcNodes": ("exc_nodes",),
    "exit_code": ("exit_code",),
    "Feature": ("constraint",),
    "GroupId": ("gid",),
    "GroupName": ("group", "gid"),
    "MaxCPUs": ("num_cpus",),
    "MaxNodes": ("node_count",),
    "MinCPUs": ("cpus_per_task",),
    "MinMemory": ("mem_per_cpu", "mem_mb"),
    "MinTime": ("time_min",),
    "Name": ("name",),
    "Nice": ("nice",),
    "NodeList": ("nodes",),
    "NTPerNode": ("ntasks_per_node",),
    "NumCPUs": ("num_cpus",),
    "NumNodes": ("node_count",),
    "NumTasks": ("num_tasks",),
    "Partition": ("partition",),
    "Priority": ("priority",),
    "PriorityLong": ("priority",),
    "QOS": ("qos",),
    "Reason": ("_reason_desc", "reason"),
    "ReasonList": ("state", "base_state", "_reason_desc", "reason", "nodes"),
    "ReqNodes": ("req_nodes",),
    "Requeue": ("requeue",),
    "RestartCnt": ("restarts",),
    "SchedNodes": ("sched_nodes",),
    "State": ("state",),
    "StateCompact": ("state",),
    "StdErr": ("stderr",),
    "StdIn": ("stdin",),
    "StdOut": ("stdout",),
    "SubmitTime": ("submit_time",),
    "TimeLeft": ("time_limit", "run_time"),
    "TimeLimit": ("time_limit",),
    "TimeUsed": ("run_time",),
    "UserId": ("uid",),
    "UserName": ("user", "uid"),
    "WCKey": ("wckey",),
    "WorkDir": ("work_dir",),
}
#: Fields only some records of one answer have: set by ``display_records``, by the command
#: (``group``), or not one of Spur's (``cluster``).
_DERIVED_FIELDS = frozenset({"_task_str", "_reason_desc", "group", "cluster"})


def _row_printer(items: list[FormatItem], view: View) -> Callable[[dict[str, Any]], str]:
    """The function printing one row of ``items`` (the rules of ``_render_items``), for the
    rows of one rendering: the hot path of squeue with a long queue.

    Consecutive items whose columns are listed in ``_COLUMN_DEPS`` (constant columns and
    verbatim text too) form a run printed once per distinct value of the fields they read,
    and kept for the rendering; the other columns are printed for every row. The text of a
    row depends on that record and ``view`` alone, never on the rows before it
    (tests/property/test_render_equivalence.py checks it against ``_render_items``)."""
    runs: list[tuple[tuple[str, ...] | None, list[tuple[Any, int, bool, str]]]] = []
    for item in items:
        fn = _JOB_FIELDS[item.key][1] if item.key is not None else None
        deps = () if fn is None or fn in _CONSTANT_COLUMNS else _COLUMN_DEPS.get(str(item.key))
        cell = (fn, item.width, item.right, item.suffix)
        if deps is not None and runs and runs[-1][0] is not None:
            prev = runs[-1][0]
            runs[-1] = (prev + tuple(d for d in deps if d not in prev), [*runs[-1][1], cell])
        else:
            runs.append((deps, [cell]))

    def cells(info: dict[str, Any], run: list[tuple[Any, int, bool, str]]) -> str:
        parts: list[str] = []
        for fn, width, right, suffix in run:
            if fn is not None:
                text, cut = fn(info, view)
                parts.append(print_str(text, width, right, cut))
            parts.append(suffix)
        return "".join(parts)

    def shared(deps: tuple[str, ...], run: list[tuple[Any, int, bool, str]]) -> Callable[[dict[str, Any]], str]:
        texts: dict[Any, str] = {}
        key_of = field_key(deps, _DERIVED_FIELDS)

        def text(info: dict[str, Any]) -> str:
            key = key_of(info)
            try:
                found = texts.get(key)
            except TypeError:  # an unhashable value (a malformed record): printed as it is
                return cells(info, run)
            if found is None:
                found = texts[key] = cells(info, run)
            return found

        return text

    def own(run: list[tuple[Any, int, bool, str]]) -> Callable[[dict[str, Any]], str]:
        if len(run) == 1 and run[0][0] is not None:  # one column alone (the job id)
            fn, width, right, suffix = run[0]

            def cell(info: dict[str, Any]) -> str:
                text, cut = fn(info, view)
                return print_str(text, width, right, cut) + suffix

            return cell
        return lambda info: cells(info, run)

    if (len(runs) == 2 and runs[0][0] is None and len(runs[0][1]) == 1 and runs[0][1][0][0] is not None
            and runs[1][0] is not None):
        # the usual layouts: the job id, then columns many rows share
        (fn, width, right, suffix), = runs[0][1]
        deps, run = runs[1]
        assert deps is not None
        rest = shared(deps, run)

        def row(info: dict[str, Any]) -> str:
            text, cut = fn(info, view)
            return f"{print_str(text, width, right, cut)}{suffix}{rest(info)}\n"

        return row
    printers = [own(run) if deps is None else shared(deps, run) for deps, run in runs]
    return lambda info: "".join([p(info) for p in printers]) + "\n"


# ---------------------------------------------------------------------------------------------
# sorting


def _sort_terms(spec: str, *, steps: bool = False) -> list[tuple[str, bool]]:
    """sort.c's walk of ``-S``: letters (``-`` before one reverses it), ``cluster`` as a word;
    ``,`` and ``+`` are separators.  Returns ``(letter, reverse)`` in the given order."""
    terms: list[tuple[str, bool]] = []
    i = 0
    while i < len(spec):
        c = spec[i]
        if c in ",+-":
            i += 1
            continue
        reverse = i > 0 and spec[i - 1] == "-"
        if spec[i : i + 7].lower() == "cluster":
            terms.append(("cluster", reverse))
            i += 7
            continue
        terms.append((c, reverse))
        i += 1
    return terms


#: The record fields each sort letter's key reads (``sort_fields``: what a query that asks
#: the controller for some fields only must ask for to sort; see ``_COLUMN_DEPS``).
_SORT_FIELDS: dict[str, tuple[str, ...]] = {
    "B": ("batch_host",),
    "C": ("num_cpus",),
    "D": ("node_count",),
    "e": ("end_time",),
    "g": ("group", "gid"),
    "G": ("gid",),
    "i": ("array_job_id", "job_id", "array_task_id"),
    "j": ("name",),
    "l": ("time_limit",),
    "L": ("time_limit", "run_time"),
    "m": ("mem_per_cpu", "mem_mb"),
    "M": ("run_time",),
    "N": ("nodes",),
    "p": ("priority",),
    "P": ("partition",),
    "Q": ("priority",),
    "S": ("start_time", "base_state", "state"),
    "t": ("state",),
    "T": ("state",),
    "u": ("user", "uid"),
    "U": ("uid",),
    "V": ("submit_time",),
}
_TIE_FIELDS = ("array_job_id", "job_id", "array_task_id")


def sort_fields(spec: str | None) -> set[str]:
    """The record fields ``sort_jobs`` reads for ``spec`` (default ``P,t,-p``); letters it
    does not know read nothing (``parse_sort`` rejects them)."""
    fields = set(_TIE_FIELDS)
    for letter, _reverse in _sort_terms(spec or "P,t,-p"):
        fields.update(_SORT_FIELDS.get(letter, ()))
    return fields


def sort_jobs(infos: Iterable[dict[str, Any]], spec: str | None = None, now: float = 0.0) -> list[dict[str, Any]]:
    """squeue's job order: ``-S`` (default ``P,t,-p``) applied from its last key to its first
    with stable sorts, as sort.c does; ties keep job id order (Slurm leaves them to qsort).
    ``S`` puts jobs without a start time last whatever its sign, as sort.c's comparator
    does. The default order, every plain squeue's, is one sort on one key per job
    (``_default_order``: the same order, tests/property/test_render_equivalence.py)."""
    if spec is None or spec == "P,t,-p":
        return sorted(infos, key=_default_order)
    from spurcore.render.squeue_extra import _sort_passes, parse_sort

    return _sort_passes(infos, parse_sort(spec), now)


def _default_order(info: dict[str, Any]) -> tuple[str, str, int, int, int]:
    """``P,t,-p`` then ``_tie_key`` as one key: what the letters' keys give, the priority
    negated (a stable sort in reverse keeps ties in order, as ascending on the negation does)."""
    state = str(info.get("state") or "")
    task = info.get("array_task_id")
    return (str(info.get("partition") or ""), _ALL_STATE_CODES.get(state, state), -int(info.get("priority") or 0),
            int(info.get("array_job_id") or 0) or int(info["job_id"]), 0xFFFFFFFE if task is None else int(task))


def default_sort(infos: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """squeue's default order ``P,t,-p``: partition name, compact state (as strings, so CG
    before PD before R), priority descending; ties by job id."""
    return sort_jobs(infos)


# ---------------------------------------------------------------------------------------------
# filtering


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
        elif name == "CANCELED":
            out.add("CANCELLED")
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


class JobSel(Record):
    """One ``-j`` entry: the job id and the array task (None: the job or every record of the
    array with that id)."""

    __slots__ = ()

    def __new__(cls, job_id: int, task_id: int | None) -> JobSel:
        return tuple.__new__(cls, (job_id, task_id))


class JobFilter:
    """squeue's filters (print.c ``_filter_job`` and ``_filter_job_part``), all optional:
    ``jobs`` (JobSel list), ``states`` (long names; None: the default set; ``ALL``: every
    state), ``users`` (names or uids as text), ``names``, ``partitions``, ``accounts``,
    ``qos``, ``reservations``, ``licenses``, ``nodes`` (host names), ``not_uid`` (``--notme``),
    ``running_over``/``running_under`` (seconds)."""

    __slots__ = ("jobs", "states", "users", "names", "partitions", "accounts", "qos", "reservations",
                 "licenses", "nodes", "not_uid", "running_over", "running_under")

    def __init__(self, **kw: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, kw.pop(name, None))
        if kw:
            raise TypeError(f"unknown filters: {sorted(kw)}")


def _job_matches_ids(info: dict[str, Any], jobs: Sequence[JobSel]) -> tuple[bool, list[int] | None]:
    """(kept, the pending tasks asked for when only some of a pending array record are)."""
    job_id = int(info["job_id"])
    array_id = int(info.get("array_job_id") or 0)
    task = info.get("array_task_id") if array_id else None
    pending = _pending_tasks(info)
    for sel in jobs:
        if sel.task_id is None and sel.job_id in (array_id, job_id):
            return True, None
        if sel.task_id is not None and array_id == sel.job_id and task == sel.task_id:
            return True, None
        if sel.task_id is not None and array_id == sel.job_id and pending:
            from spurcore.arrays import contains  # a pending array record: rare, and no start-up cost

            if contains(pending, sel.task_id):
                wanted = [s.task_id for s in jobs if s.job_id == array_id and s.task_id is not None]
                return True, [t for t in wanted if contains(pending, t)]
    return False, None


def _only_tasks(info: dict[str, Any], tasks: list[int]) -> dict[str, Any]:
    """The pending record narrowed to ``tasks`` (``-j A_T``): one task shows as ``A_T``."""
    from spurcore.arrays import normalize

    tasks = sorted(set(tasks))
    if len(tasks) == 1:
        return {**info, "array_task_id": tasks[0], "array_pending": []}
    ranges = [[t, t, 1] for t in tasks]
    return {**info, "array_pending": normalize(ranges), "array_max_tasks": 0, "_partial": True}


def select_jobs(infos: Iterable[dict[str, Any]], flt: JobFilter, now: float = 0.0) -> list[dict[str, Any]]:
    """The records ``flt`` keeps, in order (print.c ``_filter_job``); a pending array record
    asked for by some of its tasks (``-j 12_3``) is narrowed to them. (The filters' sets are
    made once, not per record: this runs over every record of a long queue.)"""
    node_set = set(flt.nodes) if flt.nodes is not None else None
    if node_set is not None:
        from spurcore.hostlist import expand  # only for -w: not on every squeue's path
    accounts = None if flt.accounts is None else {a.lower() for a in flt.accounts}
    qos = None if flt.qos is None else {q.lower() for q in flt.qos}
    all_states = flt.states is not None and "ALL" in flt.states
    states = None if flt.states is None else frozenset(flt.states)
    users = None if flt.users is None else set(flt.users)
    names = None if flt.names is None else {n.lower() for n in flt.names}
    partitions = None if flt.partitions is None else set(flt.partitions)
    out: list[dict[str, Any]] = []
    for info in infos:
        if not info.get("job_id"):
            continue
        partial: list[int] | None = None
        if flt.jobs is not None:
            kept, partial = _job_matches_ids(info, flt.jobs)
            if not kept:
                continue
        if flt.licenses is not None:
            continue  # Spur jobs hold no licenses
        if accounts is not None and str(info.get("account") or "").lower() not in accounts:
            continue
        if qos is not None and str(info.get("qos") or "normal").lower() not in qos:
            continue
        if not all_states and not job_shown(info, states):
            continue
        if node_set is not None:
            nodes = str(info.get("nodes") or "")
            if not nodes or not node_set.intersection(expand(nodes)):
                continue
        if flt.not_uid is not None and int(info.get("uid", -1)) == int(flt.not_uid):
            continue
        if users is not None and str(info.get("uid")) not in users and str(info.get("user")) not in users:
            continue
        if flt.reservations is not None:
            continue  # no Spur job runs in a reservation
        if names is not None and str(info.get("name") or "").lower() not in names:
            continue
        if partitions is not None and not set(str(info.get("partition") or "").split(",")) & partitions:
            continue
        if flt.running_over is not None and (
            base_state(info) != "RUNNING" or job_time_used(info) < flt.running_over
        ):
            continue
        if flt.running_under is not None and (
            base_state(info) != "RUNNING" or job_time_used(info) >= flt.running_under
        ):
            continue
        if partial:
            info = _only_tasks(info, partial)
        out.append(info)
    return out


# ---------------------------------------------------------------------------------------------
# What only some runs need, loaded on first use: --json/--yaml (spurcore.render.data_parser),
# -s, -S and --helpformat (spurcore.render.squeue_extra). Both stay importable from here.

_DATA_PARSER_NAMES = frozenset({"to_json", "json_meta", "exit_code_json", "job_state_list"})
_EXTRA_NAMES = frozenset({
    "help_format", "help_long_format", "render_steps", "sort_steps", "SortError", "parse_sort",
    "_sort_passes", "_SORT_LETTERS", "_STEP_FIELDS", "_STEP_LETTERS", "_STEP_NAMES", "_STEP_TABLE",
})


def __getattr__(name: str) -> Any:
    """The names of this module's two on-demand parts (see above)."""
    if name in _DATA_PARSER_NAMES:
        from spurcore.render import data_parser

        return getattr(data_parser, name)
    if name in _EXTRA_NAMES:
        from spurcore.render import squeue_extra

        return getattr(squeue_extra, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
