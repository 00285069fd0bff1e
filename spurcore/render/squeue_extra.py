"""What only some ``squeue`` runs need: job steps (``-s``), a ``-S`` other than the default,
and ``--helpformat``/``--helpFormat``. Split from :mod:`spurcore.render.squeue`, which every
``squeue`` loads, so that a plain ``squeue`` does not unmarshal and run this code (about a
third of that module's bytecode); ``spurcore.render.squeue`` still offers every name here.

Pure module, as :mod:`spurcore.render.squeue` (same sources: src/squeue/opts.c, print.c and
sort.c of Slurm 25.11).
"""

from __future__ import annotations

from spurcore.render._common import base_state, step_id_text
from spurcore.render.squeue import (
    _JOB_LETTERS,
    _JOB_TABLE,
    STEPS_FORMAT,
    View,
    _array_id,
    _compact,
    _is_array,
    _render_items,
    _s,
    _secs,
    _sort_terms,
    job_time_used,
    parse_format,
    parse_long_format,
)
from spurcore.timefmt import ctime_line

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from spurcore.render.squeue import _Headers, _StepFn, _Value

# ---------------------------------------------------------------------------------------------
# --helpformat, --helpFormat


def help_format(*, steps: bool = False) -> str:
    """``--helpformat``: the format letters in table order, eight per line (``%%%-5c``)."""
    if steps:
        keys = [row[0] for row in _STEP_TABLE]
        letter_of = {v: k for k, v in _STEP_LETTERS.items() if v != "tres-per-node"}
    else:
        keys = [k for k, _h, _f, hidden in _JOB_TABLE if not hidden]
        letter_of = {v: k for k, v in _JOB_LETTERS.items()}
    return _columns([f"%{letter_of[k]:<5}" for k in keys if k in letter_of], 8)


def help_long_format(*, steps: bool = False) -> str:
    """``--helpFormat``: the ``-O`` names, four per line (``%-20s``)."""
    if steps:
        names = [row[0] for row in _STEP_TABLE]
    else:
        names = [k for k, _h, _f, hidden in _JOB_TABLE if not hidden]
    return _columns([f"{n:<20}" for n in names], 4)


def _columns(cells: list[str], per_line: int) -> str:
    """opts.c's help printers: a newline after every ``per_line`` cells (``cnt & per_line``)."""
    out = []
    for i, cell in enumerate(cells):
        if i and i % per_line == 0:
            out.append("\n")
        out.append(cell)
    return "".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# steps (squeue -s)


def _step_time(step: dict[str, Any], now: float) -> int:
    start = float(step.get("start_time") or 0)
    if not start:
        return 0
    end = float(step.get("end_time") or 0) or now
    return max(0, int(end) - int(start))


def _step_job_text(job: dict[str, Any]) -> str:
    if _is_array(job) and job.get("array_task_id") is not None:
        return f"{job['array_job_id']}_{job['array_task_id']}"
    return str(job["job_id"])


def _step_array_job(s: dict[str, Any], j: dict[str, Any], _v: View) -> _Value:
    return str(_array_id(j)), True


def _step_array_task(s: dict[str, Any], j: dict[str, Any], _v: View) -> _Value:
    task = j.get("array_task_id") if _is_array(j) else None
    return (str(task) if task is not None else "N/A"), True


_STEP_TABLE: tuple[tuple[str, str, _StepFn], ...] = (
    ("ArrayJobId", "ARRAY_JOB_ID", _step_array_job),
    ("ArrayTaskId", "ARRAY_TASK_ID", _step_array_task),
    ("Cluster", "CLUSTER", lambda s, j, v: (_s(v.cluster), True)),
    ("Container", "CONTAINER", lambda s, j, _v: (None, True)),
    ("ContainerId", "CONTAINERID", lambda s, j, _v: (None, True)),
    ("CPUFreq", "CPU_FREQ", lambda s, j, _v: ("Unknown-Unknown:Unknown", True)),
    ("cpus-per-tres", "CPUS_PER_TRES", lambda s, j, _v: (None, True)),
    ("JobId", "JOB_ID", lambda s, j, _v: (str(j["job_id"]), True)),
    ("mem-per-tres", "MEM_PER_TRES", lambda s, j, _v: (None, True)),
    ("Network", "NETWORK", lambda s, j, _v: (None, True)),
    ("Nodes", "NODELIST", lambda s, j, _v: (_s(s.get("nodes")), False)),
    ("NumCPUs", "NUM_CPUS", lambda s, j, _v: (str(int(s.get("cpus") or 0)), True)),
    ("NumTasks", "TASKS", lambda s, j, _v: (str(int(s.get("ntasks") or 0)), True)),
    ("Partition", "PARTITION", lambda s, j, _v: (_s(j.get("partition")), True)),
    ("ResvPorts", "RESERVED_PORTS", lambda s, j, _v: (None, True)),
    ("StartTime", "START_TIME", lambda s, j, v: (v.time(s.get("start_time")), True)),
    ("StdErr", "STDERR", lambda s, j, _v: (_s(j.get("stderr")) or "", True)),
    ("StdIn", "STDIN", lambda s, j, _v: (_s(j.get("stdin")) or "", True)),
    ("StdOut", "STDOUT", lambda s, j, _v: (_s(j.get("stdout")) or "", True)),
    (
        "StepId",
        "STEPID",
        lambda s, j, _v: (f"{_step_job_text(j)}.{step_id_text(s.get('step_id'))}", True),
    ),
    ("StepName", "NAME", lambda s, j, _v: (_s(s.get("name")), True)),
    ("StepState", "STATE", lambda s, j, _v: (str(s.get("state") or ""), True)),
    ("TimeLimit", "TIME_LIMIT", lambda s, j, _v: ("UNLIMITED", True)),
    ("TimeUsed", "TIME", lambda s, j, v: (_secs(_step_time(s, v.now)), False)),
    ("tres-bind", "TRES_BIND", lambda s, j, _v: (None, True)),
    ("tres-freq", "TRES_FREQ", lambda s, j, _v: (None, True)),
    ("tres-per-job", "TRES_PER_STEP", lambda s, j, _v: (None, True)),
    ("tres-per-node", "TRES_PER_JOB", lambda s, j, _v: (None, True)),
    ("tres-per-socket", "TRES_PER_SOCKET", lambda s, j, _v: (None, True)),
    ("tres-per-step", "TRES_PER_STEP", lambda s, j, _v: (None, True)),
    ("tres-per-task", "TRES_PER_TASK", lambda s, j, _v: (None, True)),
    ("UserId", "UID", lambda s, j, _v: (str(s.get("uid", j.get("uid", 0))), True)),
    ("UserName", "USER", lambda s, j, _v: (_s(j.get("user")) or str(j.get("uid", 0)), True)),
)
_STEP_FIELDS: dict[str, tuple[str, _StepFn]] = {k: (h, fn) for k, h, fn in _STEP_TABLE}
_STEP_LETTERS: dict[str, str] = {
    "A": "NumTasks",
    "b": "tres-per-node",
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
    pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]], spec: str | None = None, now: float = 0.0
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """squeue's step order (sort.c ``sort_step_list``), default ``P,i``: partition, job id,
    then step id as Slurm numbers them (numbered steps, then interactive, batch, extern:
    0xfffffffa..0xfffffffc). Other keys: ``N l S M u U``."""
    special = {"interactive": 0xFFFFFFFA, "batch": 0xFFFFFFFB, "extern": 0xFFFFFFFC}

    def step_num(step: dict[str, Any]) -> int:
        sid = step.get("step_id")
        return sid if isinstance(sid, int) else special.get(str(sid), 0xFFFFFFFD)

    keys: dict[str, Callable[[tuple[dict[str, Any], dict[str, Any]]], Any]] = {
        "P": lambda p: str(p[1].get("partition") or ""),
        "i": lambda p: (int(p[1]["job_id"]), step_num(p[0])),
        "N": lambda p: _node_key(p[0].get("nodes")),
        "l": lambda p: 0xFFFFFFFF,
        "S": lambda p: float(p[0].get("start_time") or 0),
        "M": lambda p: now - float(p[0].get("start_time") or 0),
        "u": lambda p: str(p[1].get("user") or ""),
        "U": lambda p: int(p[0].get("uid", p[1].get("uid", 0)) or 0),
    }
    out = list(pairs)
    for letter, reverse in reversed(_sort_terms(spec or "P,i", steps=True)):
        fn = keys.get(letter)
        if fn is not None:
            out.sort(key=fn, reverse=reverse)
    return out


def render_steps(
    infos: Iterable[dict[str, Any]],
    fmt: str | None = None,
    Fmt: str | None = None,  # squeue's -O
    noheader: bool = False,
    now: float = 0.0,
    *,
    view: View | None = None,
    sort: str | None = None,
    date_line: bool = False,
) -> str:
    """``squeue -s``: one row per running step of ``infos`` (batch steps included), sorted
    ``P,i`` (or ``sort``).  Default layout ``%.15i %.8j %.9P %.8u %.9M %N``."""
    if view is None:
        view = View(now)
    if Fmt and not fmt:
        items = parse_long_format(Fmt, steps=True).items
    else:
        items = parse_format(fmt or STEPS_FORMAT, steps=True).items
    pairs = [
        (step, job) for job in infos for step in job.get("steps") or () if step.get("state") == "RUNNING"
    ]
    out: list[str] = []
    if not noheader:
        if date_line:
            out.append(ctime_line(view.now) + "\n")
        out.append(_render_items(items, None, _STEP_HEADERS))
    for step, job in sort_steps(pairs, sort, view.now):

        def value(key: str, step: dict[str, Any] = step, job: dict[str, Any] = job) -> _Value:
            return _STEP_FIELDS[key][1](step, job, view)

        out.append(_render_items(items, value, _STEP_HEADERS))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# sorting (-S)


class SortError(ValueError):
    """``Invalid sort specification: <c>`` (squeue exits 1)."""


def parse_sort(spec: str) -> list[tuple[str, bool]]:
    """Validate a job ``-S`` list: the letters sort.c knows (``b`` only logs a notice).
    Raises SortError with squeue's message for any other letter."""
    terms = _sort_terms(spec)
    for letter, _rev in terms:
        if letter != "cluster" and letter not in _SORT_LETTERS:
            raise SortError(f"Invalid sort specification: {letter}")
    return terms


def _node_key(nodes: Any) -> tuple[Any, ...]:
    """hostlist_cmp_first: the first host of the sorted list, natural order."""
    from spurcore.hostlist import expand

    text = str(nodes or "")
    if not text:
        return ()
    first = sorted(expand(text), key=_nat)[0]
    return _nat(first)


def _nat(name: str) -> tuple[Any, ...]:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name) if p != "")


def _time_left_key(info: dict[str, Any]) -> int:
    limit = info.get("time_limit")
    if limit is None:
        return 0xFFFFFFFF
    return int(limit) - job_time_used(info)


def _start_key(info: dict[str, Any], now: float) -> float:
    start = float(info.get("start_time") or 0)
    if base_state(info) == "PENDING" and start < now:
        return now
    return start


#: sort letter -> key function (info, now); letters sort.c accepts but ignores map to None.
_SORT_LETTERS: dict[str, Callable[[dict[str, Any], float], Any] | None] = {
    "B": lambda i, _n: str(i.get("batch_host") or ""),
    "b": None,
    "c": None,
    "C": lambda i, _n: int(i.get("num_cpus") or 0),
    "d": lambda i, _n: 0,
    "D": lambda i, _n: int(i.get("node_count") or 0),
    "e": lambda i, _n: float(i.get("end_time") or 0),
    "f": None,
    "g": lambda i, _n: str(i.get("group") or i.get("gid", 0)),
    "G": lambda i, _n: int(i.get("gid") or 0),
    "h": None,
    "H": lambda i, _n: 0,
    "i": lambda i, _n: (_array_id(i), 0xFFFFFFFE if i.get("array_task_id") is None
                        else int(i["array_task_id"])),
    "I": lambda i, _n: 0,
    "j": lambda i, _n: str(i.get("name") or ""),
    "J": lambda i, _n: 0,
    "l": lambda i, _n: 0xFFFFFFFF if i.get("time_limit") is None else int(i["time_limit"]),
    "L": lambda i, _n: _time_left_key(i),
    "m": lambda i, _n: int(i.get("mem_per_cpu") or 0) or int(i.get("mem_mb") or 0),
    "M": lambda i, _n: job_time_used(i),
    "n": None,
    "N": lambda i, _n: _node_key(i.get("nodes")),
    "O": None,
    "p": lambda i, _n: int(i.get("priority") or 0),
    "P": lambda i, _n: str(i.get("partition") or ""),
    "Q": lambda i, _n: int(i.get("priority") or 0),
    "S": lambda i, n: _start_key(i, n),
    "t": lambda i, _n: _compact(i),
    "T": lambda i, _n: str(i.get("state") or ""),
    "u": lambda i, _n: str(i.get("user") or i.get("uid", 0)),
    "U": lambda i, _n: int(i.get("uid") or 0),
    "v": lambda i, _n: "",
    "V": lambda i, _n: float(i.get("submit_time") or 0),
    "z": lambda i, _n: 0,
}


def _tie_key(info: dict[str, Any]) -> tuple[int, int]:
    task = info.get("array_task_id")
    return (_array_id(info), 0xFFFFFFFE if task is None else int(task))




def _sort_passes(infos: Iterable[dict[str, Any]], terms: list[tuple[str, bool]], now: float
                 ) -> list[dict[str, Any]]:
    """The stable sorts of ``terms`` (``parse_sort``), last first, after the tie order."""
    out = sorted(infos, key=_tie_key)
    for letter, reverse in reversed(terms):
        if letter == "cluster":
            continue
        fn = _SORT_LETTERS.get(letter)
        if fn is None:
            continue
        if letter == "S":
            started = [i for i in out if i.get("start_time")]
            unset = [i for i in out if not i.get("start_time")]
            started.sort(key=lambda i, fn=fn: fn(i, now), reverse=reverse)
            out = started + unset
            continue
        out.sort(key=lambda i, fn=fn: fn(i, now), reverse=reverse)
    return out
