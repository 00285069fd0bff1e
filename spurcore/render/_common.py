"""Helpers shared by the renderers: Slurm's column printer and small value rules.

Pure module (no clock, no I/O). See src/squeue/print.c and src/sinfo/print.c ``_print_str``.
"""

from __future__ import annotations

from spurcore.states import ENDED_RUN_STATES, TERMINAL_STATES  # noqa: F401 - re-exported for the renderers

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Callable, Container
    from typing import Any

NULL = "(null)"

#: Job state flags that are displayed instead of the base state.
FLAG_STATES = frozenset({"COMPLETING", "STOPPED"})


def print_str(value: str | None, width: int, right: bool, cut: bool) -> str:
    """Slurm's ``_print_str(str, width, right, cut_output)``.

    * ``right`` and ``width > 0``: ``printf("%<width>s")``; cut to ``width`` only when ``cut``.
    * left and ``width > 0``: ``printf("%.<width>s")`` (always cut), then padded to ``width``.
    * ``width == 0``: the value at its natural length.

    ``None`` is a C NULL string: glibc prints ``(null)``, or nothing when a precision below 6
    is given (left-justified with a width under 6).
    """
    if value is None:
        value = "" if (not right and 0 < width < 6) else NULL
    if width < 0:  # "%s " (only reachable with an explicit negative -O size)
        return value + " "
    if width == 0:
        return value
    if right:
        text = value.rjust(width)
        if cut:
            text = text[:width]
    else:
        text = value[:width]
    if len(text) < width:
        text += " " * (width - len(text))
    return text


def null(text: str | None) -> str:
    """A string field as scontrol prints it: NULL (or empty) -> ``(null)``."""
    return text if text else NULL


def base_state(info: dict[str, Any]) -> str:
    """The base state of a job record (``base_state``, falling back to ``state``)."""
    return str(info.get("base_state") or info.get("state") or "")


def step_sort_key(step_id: int | str | None) -> tuple[int, int]:
    """Order of step rows: batch, extern, interactive, then numbered steps ascending."""
    if step_id == "batch":
        return (0, 0)
    if step_id == "extern":
        return (1, 0)
    if step_id == "interactive":
        return (2, 0)
    if isinstance(step_id, int):
        return (3, step_id)
    return (4, 0)


def step_id_text(step_id: int | str | None) -> str:
    """``log_build_step_id_str`` for the step part: ``batch``, ``0``, ``TBD`` (pending)."""
    if step_id is None:
        return "TBD"
    return str(step_id)


def tres_units(text: str | None, drop: tuple[str, ...] = ()) -> str:
    """A record's TRES string (``cpu=4,mem=2048M,node=1,billing=4,gres/gpu=2``) as Slurm
    prints it (``TRES_STR_CONVERT_UNITS``: ``mem=2G``), without the ``drop`` types (a node's
    AllocTRES has no node= or billing=)."""
    if not text:
        return ""
    from spurcore.timefmt import fmt_mem

    out = []
    for item in text.split(","):
        key, eq, value = item.partition("=")
        if key in drop or not eq:
            continue
        if key == "mem" and value.endswith("M") and value[:-1].isdigit():
            value = fmt_mem(int(value[:-1]))
        out.append(f"{key}={value}")
    return ",".join(out)


def tres_string(cpus: int, mem_mb: int, nodes: int, fmt_mem: Any) -> str:
    """``cpu=N,mem=M,node=n,billing=N``; zero counts are left out, as Slurm does."""
    parts = []
    if cpus:
        parts.append(f"cpu={cpus}")
    if mem_mb:
        parts.append(f"mem={fmt_mem(mem_mb)}")
    if nodes:
        parts.append(f"node={nodes}")
    if cpus:
        parts.append(f"billing={cpus}")
    return ",".join(parts)


# ---------------------------------------------------------------------------------------------
# timestamps (slurm_make_time_str)

#: strftime's buffer in most callers of slurm_make_time_str (``char time_str[256]``).
TIME_STR_SIZE = 256
_FMT_BUF = 32  # parse_time.c's fmt_buf: longer SLURM_TIME_FORMAT values are refused


def time_format_error(time_format: str | None) -> str | None:
    """The error Slurm logs for an unusable ``SLURM_TIME_FORMAT`` (None when it is usable):
    ``invalid SLURM_TIME_FORMAT = '<fmt>'``; the standard format is used instead."""
    if not time_format or time_format in ("standard", "relative"):
        return None
    if "%" not in time_format or len(time_format) >= _FMT_BUF:
        return f"invalid SLURM_TIME_FORMAT = '{time_format}'"
    return None


def _relative_fmt(when: Any, now: float) -> str:
    """parse_time.c ``_relative_date_fmt``: the format by distance in days from ``now``."""
    from spurcore.timefmt import local_tm

    today = local_tm(now)
    distance = (1000 * when.tm_year + when.tm_yday - 1) - (1000 * today.tm_year + today.tm_yday - 1)
    if distance == -1:
        return "Ystday %H:%M"
    if distance == 0:
        return "%H:%M:%S"
    if distance == 1:
        return "Tomorr %H:%M"
    if distance < -365 or distance > 365:
        return "%-d %b %Y"
    if distance < -1 or distance > 6:
        return "%-d %b %H:%M"
    return "%a %H:%M"


def make_time_str(t: float | None, time_format: str | None = None, now: float = 0.0,
                  size: int = TIME_STR_SIZE) -> str:
    """``slurm_make_time_str``: ``Unknown`` for an unset time, else the local time in
    ``SLURM_TIME_FORMAT`` (``None``/``standard``: ``%FT%T``; ``relative``: ``12:26:38``,
    ``Ystday 20:13``, ``Sat 02:17``, ``18 Jun 13:14``, ``19 Jan 2003``; otherwise a strftime
    format with a ``%``, under 32 characters). ``now`` anchors ``relative``. A result that
    does not fit ``size`` bytes prints as ``#`` characters, as Slurm does."""
    from spurcore.timefmt import local_tm, strftime

    if not t or t == 0xFFFFFFFF:
        return "Unknown"
    when = local_tm(t)
    fmt = "%Y-%m-%dT%H:%M:%S"
    if time_format and time_format != "standard":
        if time_format == "relative":
            fmt = _relative_fmt(when, now)
        elif time_format_error(time_format) is None:
            fmt = time_format
    text = strftime(fmt, when)
    if len(text.encode()) >= size or (not text and fmt):
        return "#" * (size - 1)
    return text


_ABSENT = object()  # a key's value for a field a record does not have (not the same as None)


def field_key(fields: tuple[str, ...], optional: Container[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The function giving a record's values of ``fields`` as one hashable key, for the
    renderers' caches of text shared by many records: ``_ABSENT`` for a field the record
    lacks (not the same as None), the ``optional`` fields (which some records have and
    others not) last. The fields every record of an answer has are taken in one C call;
    a record without one of them gets the same key, made field by field."""
    from _operator import itemgetter  # operator.py itself costs a command 0.3 ms

    usual = tuple(f for f in fields if f not in optional)
    rare = tuple(f for f in fields if f in optional)
    ordered = usual + rare
    absent = (_ABSENT,) * len(ordered)

    def slow(info: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(map(info.get, ordered, absent))

    if len(usual) < 2:
        return slow
    take = itemgetter(*usual)
    if len(rare) == 1:
        (only,) = rare

        def key(info: dict[str, Any]) -> tuple[Any, ...]:
            try:
                return take(info) + (info.get(only, _ABSENT),)
            except KeyError:
                return slow(info)
    else:
        rare_absent = (_ABSENT,) * len(rare)

        def key(info: dict[str, Any]) -> tuple[Any, ...]:
            try:
                return take(info) + tuple(map(info.get, rare, rare_absent))
            except KeyError:
                return slow(info)

    return key


class TimeStrings:
    """``make_time_str`` for one rendering (one ``SLURM_TIME_FORMAT``, one ``now``), each
    whole second formatted once: a long queue's records share a few seconds' worth of
    timestamps, and strftime per field was most of the cost of printing them.

    Sound because a time prints as its whole second does (``local_tm`` drops the fraction),
    except for the special values: a second of 0 or 0xFFFFFFFF is formatted every time
    (0.5 is a date, 0 is ``Unknown``)."""

    __slots__ = ("time_format", "now", "_texts")

    def __init__(self, time_format: str | None, now: float) -> None:
        self.time_format = time_format
        self.now = now
        self._texts: dict[int, str] = {}

    def __call__(self, t: float | None) -> str:
        if not t:
            return "Unknown"
        second = int(t)
        text = self._texts.get(second)
        if text is None:
            text = make_time_str(t, self.time_format, self.now)
            if second != 0 and second != 0xFFFFFFFF:
                self._texts[second] = text
        return text


# ---------------------------------------------------------------------------------------------
# YAML (--yaml): what Slurm's serializer/yaml writes for a data_t tree

_YAML_PLAIN_BAD = set(":#{}[],&*!|>'\"%@`")


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    plain = (
        text
        and text.strip() == text
        and not any(c in _YAML_PLAIN_BAD for c in text)
        and text[0] not in "-?"
        and text.lower() not in ("null", "true", "false", "yes", "no", "on", "off", "~")
        and not _looks_numeric(text)
        and text.isprintable()
    )
    if plain:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _yaml_lines(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict) and item:
                out.append(f"{pad}{_yaml_scalar(key)}:")
                _yaml_lines(item, indent + 1, out)
            elif isinstance(item, list) and item:
                out.append(f"{pad}{_yaml_scalar(key)}:")
                _yaml_lines(item, indent, out)  # libyaml writes sequences indentless
            else:
                out.append(f"{pad}{_yaml_scalar(key)}: {_yaml_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub: list[str] = []
                _yaml_lines(item, indent + 1, sub)
                first = sub[0][len(pad) + 2 :]
                out.append(f"{pad}- {first}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_yaml_inline(item)}")
    else:
        out.append(pad + _yaml_scalar(value))


def _yaml_inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _yaml_scalar(value)


def to_yaml(doc: Any) -> str:
    """A JSON-shaped document as block-style YAML (``---`` first, as libyaml writes it)."""
    out = ["---"]
    _yaml_lines(doc, 0, out)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# job times and TRES that scontrol, squeue and --json show alike


def eligible_time(info: dict[str, Any]) -> float:
    """EligibleTime (Slurm's begin_time) stays unset (``Unknown``) while a job is held or waits
    on a dependency (job_mgr.c ``job_independent``)."""
    if info.get("hold") and not info.get("nodes"):
        return 0.0
    if info.get("state") == "PENDING" and str(info.get("reason") or "").startswith("Dependency"):
        return 0.0
    return float(info.get("eligible_time") or 0)


def job_times(info: dict[str, Any], now: float) -> tuple[float, float]:
    """(StartTime, EndTime) as slurmctld sends them (job_mgr.c ``pack_job``): a started job's
    own; a pending job's expected start (the backfill scheduler's, never in the past) or
    else its begin time when that is still to come, each with an end at start + time
    limit; 0 for unknown."""
    start = float(info.get("start_time") or 0)
    end = float(info.get("end_time") or 0)
    if base_state(info) != "PENDING":
        return start, end
    begin = float(info.get("eligible_time") or 0)
    if start:
        start = max(start, now)
    elif begin > now:
        start = begin
    else:
        return 0.0, end
    limit = info.get("time_limit")
    if limit is not None:
        end = max(end, start + float(limit))
    return start, end


def accrue_time(info: dict[str, Any], now: float) -> float:
    """AccrueTime: when the job started to accrue age priority (0: unset).

    A held job, a job waiting on a dependency or a begin time in the future does not accrue.
    """
    if "accrue_time" in info:
        return float(info["accrue_time"] or 0)
    eligible = eligible_time(info)
    if not eligible or (info.get("state") == "PENDING" and eligible > now):
        return 0.0
    return eligible


def last_sched_eval(info: dict[str, Any]) -> float:
    """LastSchedEval: the start for a job that got nodes, else its submission."""
    if info.get("last_sched_eval"):
        return float(info["last_sched_eval"])
    start = float(info.get("start_time") or 0)
    if start and info.get("nodes"):
        return start
    return float(info.get("submit_time") or 0)


def job_tres(info: dict[str, Any]) -> tuple[str, str]:
    """(AllocTRES, ReqTRES) of a job record (``""`` AllocTRES while it holds no nodes): the
    controller's ``alloc_tres``/``req_tres`` (GRES included) when the record has them, else
    made from the CPU, memory and node counts (records of older histories)."""
    if info.get("req_tres"):
        return tres_units(info.get("alloc_tres")), tres_units(info.get("req_tres"))
    from spurcore.timefmt import fmt_mem

    num_cpus = int(info.get("num_cpus") or 0)
    nodes = int(info.get("node_count") or 0)
    mem_mb = int(info.get("mem_mb") or 0)
    if not mem_mb and info.get("mem_per_cpu"):
        mem_mb = int(info["mem_per_cpu"]) * max(1, num_cpus // max(1, nodes))
    req = tres_string(num_cpus, mem_mb * nodes, nodes, fmt_mem)
    alloc = ""
    if info.get("nodes"):
        alloc_mem = int(info.get("alloc_mem_mb", mem_mb) or 0)
        alloc = tres_string(num_cpus, alloc_mem * nodes, nodes, fmt_mem)
    return alloc, req


def oversubscribe_text(text: str | None) -> str:
    """A partition's OverSubscribe as scontrol and sinfo print it (``max_share``): NO,
    EXCLUSIVE, ``YES:4``/``FORCE:4`` (4: Slurm's job count when none is configured)."""
    value = str(text or "NO").upper()
    head, _colon, count = value.partition(":")
    if head in ("YES", "FORCE"):
        return f"{head}:{count or 4}"
    return head


def _xfmt_tres(prefix: str, text: str) -> list[str]:
    """proc_args.c ``xfmt_tres``: ``prefix:item`` for each comma-separated item."""
    return [f"{prefix}:{item}" for item in text.split(",") if item]


def job_tres_per(info: dict[str, Any]) -> dict[str, str | None]:
    """The job's ``cpus_per_tres``, ``mem_per_tres``, ``tres_per_job``, ``tres_per_node`` and
    ``tres_per_task`` strings, as sbatch builds them from its options (slurm_opt.c
    ``slurm_opt_create_job_desc``), from the record's GRES fields (None: unset):

    * ``--gpus=[type:]N`` -> TresPerJob ``gres/gpu:[type:]N``;
    * ``--gpus-per-node`` -> TresPerNode ``gres/gpu:...``, then ``--gres`` with ``gres/``
      prepended to each item (``gres_prepend_tres_type``);
    * ``--gpus-per-task=[type:]N`` -> TresPerTask ``gres/gpu[:type]=N``, after ``cpu=N`` for
      ``-c`` (shown when cpus_per_task > 1: a record does not say whether ``-c 1`` was given);
    * ``--cpus-per-gpu``/``--mem-per-gpu`` -> ``gres/gpu:N`` (memory in MB)."""
    gpus = str(info.get("gpus") or "")
    per_node = _xfmt_tres("gres/gpu", str(info.get("gpus_per_node") or ""))
    gres = str(info.get("gres") or "")
    if gres and gres.lower() != "none":
        per_node += [item if item.startswith("gres/") else f"gres/{item}" for item in gres.split(",") if item]
    per_task = []
    for item in (i for i in str(info.get("gpus_per_task") or "").split(",") if i):
        gtype, _colon, count = item.rpartition(":")
        per_task.append(f"gres/gpu:{gtype}={count}" if gtype else f"gres/gpu={count}")
    cpus_per_task = int(info.get("cpus_per_task") or 1)
    if cpus_per_task > 1:
        per_task.insert(0, f"cpu={cpus_per_task}")
    cpus_per_gpu = int(info.get("cpus_per_gpu") or 0)
    mem_per_gpu = int(info.get("mem_per_gpu") or 0)
    return {
        "cpus_per_tres": f"gres/gpu:{cpus_per_gpu}" if cpus_per_gpu else None,
        "mem_per_tres": f"gres/gpu:{mem_per_gpu}" if mem_per_gpu else None,
        "tres_per_job": ",".join(_xfmt_tres("gres/gpu", gpus)) or None,
        "tres_per_node": ",".join(per_node) or None,
        "tres_per_task": ",".join(per_task) or None,
    }


def gres_detail_total(details: list[str]) -> str | None:
    """``JOB_GRES=`` (gres_stepmgr_job_build_details' total): ``gpu:2,gpu:a100:1`` summed over
    the per-node ``gpu:1(IDX:0)`` strings; None when the job holds no GRES."""
    totals: dict[str, int] = {}
    for detail in details:
        for item in _detail_items(detail):
            head, _colon, rest = item.partition("(")
            name, _c, count = head.rpartition(":")
            if name and count.isdigit() and int(count) > 0:
                totals[name] = totals.get(name, 0) + int(count)
    return ",".join(f"{k}:{v}" for k, v in totals.items()) or None


def _detail_items(detail: str) -> list[str]:
    """``gpu:a100:1(IDX:0,2),gpu:v100:0(IDX:N/A)`` -> its items (commas inside brackets kept)."""
    out, depth, cur = [], 0, ""
    for ch in detail:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return out


def gres_detail_used(detail: str) -> str:
    """A node's entry of a job's ``GRES=`` (-d): only the GRES the job holds there (the
    record lists every device type of the node, ``gpu:v100:0(IDX:N/A)`` for the unused)."""
    if detail in ("", "(null)"):
        return ""
    return ",".join(i for i in _detail_items(detail) if ":0(IDX:N/A)" not in i)


# ---------------------------------------------------------------------------------------------
# --mail-type (proc_args.c parse_mail_type / print_mail_type)

_MAIL_BITS = {
    "ARRAY_TASKS": 0x100, "INVALID_DEPEND": 0x200, "BEGIN": 0x1, "END": 0x2, "FAIL": 0x4,
    "REQUEUE": 0x8, "STAGE_OUT": 0x80, "TIME_LIMIT_50": 0x40, "TIME_LIMIT_80": 0x20,
    "TIME_LIMIT_90": 0x10, "TIME_LIMIT": 0x400,
}
_MAIL_ALL = 0x200 | 0x1 | 0x2 | 0x4 | 0x8 | 0x80
#: print_mail_type's order
_MAIL_ORDER = ("ARRAY_TASKS", "INVALID_DEPEND", "BEGIN", "END", "FAIL", "REQUEUE", "STAGE_OUT",
               "TIME_LIMIT_50", "TIME_LIMIT_80", "TIME_LIMIT_90", "TIME_LIMIT")


def parse_mail_type(text: str) -> int | None:
    """``parse_mail_type``: the bits of a ``--mail-type``/``MailType=`` list; ``NONE`` is 0;
    None when no word is known (Slurm's INFINITE16: ``Invalid MailType``)."""
    bits = 0
    none = False
    for tok in (t for t in text.split(",") if t):
        word = tok.upper()
        if word == "NONE":
            bits, none = 0, True
            break
        if word == "ALL":
            bits |= _MAIL_ALL
        else:
            bits |= _MAIL_BITS.get(word, 0)
    if not bits and not none:
        return None
    return bits


def print_mail_type(text: str) -> str:
    """``print_mail_type`` of a ``--mail-type`` list as given: ``BEGIN,END,FAIL``..."""
    bits = parse_mail_type(text)
    if not bits:
        return "NONE"
    return ",".join(name for name in _MAIL_ORDER if bits & _MAIL_BITS[name])


def share_string(info: dict[str, Any]) -> str:
    """Slurm's ``job_share_string`` (squeue %h, OverSubscribe= of scontrol show job)."""
    exclusive = str(info.get("exclusive") or "")
    table = {"exclusive": "NO", "user": "USER", "mcs": "MCS", "topo": "TOPO"}
    if exclusive in table:
        return table[exclusive]
    if info.get("oversubscribe"):
        return "YES"
    return "OK"
