"""Job references as Slurm's query and job-control tools read them: ``123``, ``123_4``,
``123_[1-3]``, ``123_4.0``, lists of them.

Each tool parses ids its own way (and this module keeps those differences, since they
decide which error text a user sees):

* squeue ``-j`` (opts.c ``_build_job_list``): ``strtol`` of the job id, then of a task after
  ``_``; anything after is ignored, a job id <= 0 is ``Invalid job id: <item>``. Spur also
  takes a bracketed task list there (``-j 12_[1-3]``).
* scontrol's job commands (update_job.c ``_is_job_id``/``_next_job_id``): digits, ``_``,
  ``+``, brackets, ``-`` and list separators only; ``[12-14]`` names several jobs,
  ``12_[1-3]`` several tasks.
* scancel (opt.c ``_xlate_job_step_ids``): ``job[_task|_[list]|_*][.step]``, comma lists.

What goes to the controller is always a single reference: ``"123"`` (a job, or every record
of the array 123) or ``"123_4"`` (one task); lists of tasks are expanded here.

Invariant: pure functions of their arguments; at load time imports only spurcore.records (the
named tuples), the rest when called.
"""

from __future__ import annotations

from spurcore.records import Record  # a namedtuple without collections' import cost

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


class JobSel(Record):
    """One squeue/sacct selection: a job id and an array task (None: the whole job or array)."""

    __slots__ = ()

    def __new__(cls, job_id: int, task_id: int | None) -> JobSel:
        return tuple.__new__(cls, (job_id, task_id))


class CancelId(Record):
    """One scancel request: ``job_id``, ``task`` (None, an int, or ``"*"`` for every task),
    ``step`` (None: the job; an int), ``text`` (this request's id: ``12``, ``12_3``, ``12_*``),
    ``given`` (the operand it came from, as scancel prints it: ``12_[1-3]``)."""

    __slots__ = ()

    def __new__(cls, job_id: int, task: int | str | None, step: int | None, text: str, given: str) -> CancelId:
        return tuple.__new__(cls, (job_id, task, step, text, given))


class StepSel(Record):
    """One step selection (``squeue -s``, ``sacct -j``): job id, task (None), step (None: the
    job; int or ``batch``/``extern``/``interactive``)."""

    __slots__ = ()

    def __new__(cls, job_id: int, task_id: int | None, step: int | str | None) -> StepSel:
        return tuple.__new__(cls, (job_id, task_id, step))


_NAMED_STEPS = ("batch", "extern", "interactive")


class RefError(ValueError):
    """A job id a tool refuses; the message is the tool's own text."""


def strtol(text: str, pos: int = 0) -> tuple[int, int]:
    """C ``strtol(text + pos, &end, 10)``: (value, end); no digits gives (0, pos)."""
    i = pos
    n = len(text)
    while i < n and text[i] in " \t\n":
        i += 1
    start = i
    if i < n and text[i] in "+-":
        i += 1
    digits = i
    while i < n and text[i].isdigit():
        i += 1
    if i == digits:
        return 0, pos
    return int(text[start:i]), i


def task_ids(spec: str) -> list[int]:
    """``1-3,7`` / ``[1-3]`` / ``0-9:2`` -> [1, 2, 3, 7] ... Raises RefError."""
    from spurcore.arrays import ArrayError, indexes, parse_task_list

    try:
        return list(indexes(parse_task_list(spec)))
    except ArrayError:
        raise RefError(spec) from None


def ref(job_id: int, task: int | None = None) -> str:
    """The controller's reference text: ``123`` or ``123_4``."""
    return str(job_id) if task is None else f"{job_id}_{task}"


# ---------------------------------------------------------------------------------- squeue


def squeue_jobs(text: str) -> list[JobSel]:
    """``squeue -j`` list (``_build_job_list``). Raises RefError("Invalid job id: <item>")."""
    out: list[JobSel] = []
    for item in (t for t in text.split(",") if t):
        job_id, end = strtol(item)
        if job_id <= 0:
            raise RefError(f"Invalid job id: {item}")
        if item[end : end + 2] == "_[":
            close = item.find("]", end)
            body = item[end + 1 : close + 1] if close > 0 else item[end + 1 :]
            try:
                out.extend(JobSel(job_id, t) for t in task_ids(body))
            except RefError:
                raise RefError(f"Invalid job id: {item}") from None
            continue
        task = None
        if item[end : end + 1] == "_":
            task, _end = strtol(item, end + 1)
        out.append(JobSel(job_id, task))
    return _unique(out)


def _step_of(text: str) -> int | str:
    low = text.lower()
    if low in _NAMED_STEPS:
        return low
    value, _end = strtol(text)
    return value


def squeue_steps(text: str) -> list[StepSel]:
    """``squeue -s`` list (``_build_step_list``): ``job[_task].step``; errors
    ``Invalid job_step id: <job>.??`` (no step) and ``Invalid job_step id: <job>.<step>``."""
    out: list[StepSel] = []
    for item in (t for t in text.split(",") if t):
        job_part, dot, step_part = item.partition(".")
        if not job_part:
            break
        job_id, end = strtol(job_part)
        task = None
        if job_part[end : end + 1] == "_":
            task, _e = strtol(job_part, end + 1)
        if not dot or not step_part:
            raise RefError(f"Invalid job_step id: {job_part}.??")
        step_text = step_part.split(".", 1)[0]
        step = _step_of(step_text)
        if job_id <= 0 or (isinstance(step, int) and step < 0):
            raise RefError(f"Invalid job_step id: {job_part}.{step_text}")
        out.append(StepSel(job_id, task, step))
    return out


def _unique(items: Iterable[JobSel]) -> list[JobSel]:
    seen: set[JobSel] = set()
    out: list[JobSel] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def refs_of(sels: Iterable[JobSel]) -> list[str]:
    """The ``jobs`` call's ``job_refs`` for squeue/sacct selections."""
    out: list[str] = []
    for sel in sels:
        text = ref(sel.job_id, sel.task_id)
        if text not in out:
            out.append(text)
    return out


# ---------------------------------------------------------------------------------- sacct


def sacct_steps(text: str) -> list[StepSel]:
    """``sacct -j`` list (``slurm_addto_step_list``): ``job[_task|_[list]][.step]``, comma
    separated (commas inside brackets stay in the task list). Raises RefError with the item
    (sacct's message is ``Invalid job id: <item>``)."""
    out: list[StepSel] = []
    for item in _split_top(text, ","):
        item = item.strip()
        if not item:
            continue
        body, dot, step_text = item.partition(".")
        job_id, end = strtol(body)
        if job_id <= 0 or end == 0:
            raise RefError(item)
        rest = body[end:]
        step: int | str | None = None
        if dot:
            low = step_text.lower()
            if low in _NAMED_STEPS:
                step = low
            elif step_text.isdigit():
                step = int(step_text)
            else:
                raise RefError(item)
        if not rest:
            out.append(StepSel(job_id, None, step))
        elif rest.startswith("_"):
            spec = rest[1:]
            try:
                tasks = task_ids(spec) if not spec.isdigit() else [int(spec)]
            except RefError:
                raise RefError(item) from None
            out.extend(StepSel(job_id, t, step) for t in tasks)
        elif rest.startswith("+"):
            out.append(StepSel(job_id, None, step))  # a het job component: Spur has none
        else:
            raise RefError(item)
    return out


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets."""
    out: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    out.append(cur)
    return out


# ---------------------------------------------------------------------------------- scontrol


def scontrol_job_ids(text: str) -> list[str] | None:
    """scontrol's job id expression (``_is_job_id`` + ``_next_job_id``) -> id strings in
    Slurm's form (``123``, ``123_1-3``, ``124_7``), or None when it is not a job id list
    (the caller then prints ``Invalid job id specified for job <text>``)."""
    if not text:
        return None
    have_plus = have_under = False
    depth = 0
    chars = list(text)
    for i, c in enumerate(chars):
        if c == "+":
            if have_plus:
                return None
            have_plus = True
        elif c == "_":
            if have_under:
                return None
            have_under = True
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == "-":
            if depth == 0 and not have_under:
                return None
        elif c in ", ":
            if depth == 0:
                chars[i] = "^"
                have_plus = have_under = False
        elif not c.isdigit():
            return None
    if depth != 0:
        return None
    out: list[str] = []
    for token in "".join(chars).split("^"):
        if not token:
            continue
        under = token.find("_")
        spec = None
        if under >= 0:
            spec = token[under + 1 :]
            if spec.startswith("["):
                spec = spec[1:].split("]", 1)[0]
        bracket = token.find("[")
        if bracket >= 0 and (under < 0 or bracket < under):
            from spurcore.hostlist import expand

            head = token if under < 0 else token[:under]
            try:
                jobs = expand(head)
            except ValueError:
                return None
        else:
            jobs = [token if under < 0 else token[:under]]
        for job in jobs:
            out.append(job if spec is None else f"{job}_{spec}")
    return out


def expand_job_str(job_str: str) -> list[str]:
    """One of ``scontrol_job_ids``' strings as single controller references:
    ``123_1-3`` -> ``123_1``, ``123_2``, ``123_3``; ``123_*`` and ``123`` -> ``123``.
    Raises RefError when the task list is not one."""
    job, under, spec = job_str.partition("_")
    if not under or spec in ("*", ""):
        return [job]
    if spec.isdigit():
        return [f"{job}_{int(spec)}"]
    return [f"{job}_{t}" for t in task_ids(spec)]


# ---------------------------------------------------------------------------------- shared


def suggest_completion(options: Iterable[Any], query: str) -> str:
    """``--autocomplete=<query>`` (slurm_opt.c ``suggest_completion``): every short flag and
    long option containing ``query``, one a line, ``=`` after those taking an argument and
    a space after those with an optional one."""
    if not query:
        return ""
    query_short = query[0] == "-" or query[0].isalpha()
    query_long = len(query) > 1 or query[0].isalpha()
    lines: list[str] = []
    for opt in options:
        for name in opt.longs:
            if opt.short and opt.short.isalpha() and query_short and query in f"-{opt.short}":
                lines.append(f"-{opt.short}")
            flag = f"--{name}"
            if not query_long or query not in flag:
                continue
            if opt.arg:
                lines.append(f"{flag}=")
            if opt.arg == 2:
                lines.append(f"{flag} ")
            if not opt.arg:
                lines.append(flag)
    return "\n".join(lines) + "\n\n" if lines else ""


def check_clusters(names: str, local: str, prog: str, *, isenv: bool = False) -> list[str]:
    """``-M``/``SLURM_CLUSTERS``: Spur is one cluster, reachable by its own name (or
    ``all``). Anything else is Slurm's database error, then ``Could not get cluster
    information`` (the caller's fatal). Returns the cluster names to print."""
    out: list[str] = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        if name.lower() == "all" or name == local:
            if local not in out:
                out.append(local)
            continue
        raise RefError(
            f"'{names}' can't be reached now, or it is an invalid entry for "
            f"{'SLURM_CLUSTERS' if isenv else '--cluster'}.  "
            "Use 'sacctmgr list clusters' to see available clusters."
        )
    return out


def dump_document(doc: Any, mime: str, environ: Any) -> str:
    """A data_parser document as ``--json`` (``SLURM_JSON=compact``: no whitespace; else
    pretty, two-space indents) or ``--yaml`` text, newline-terminated."""
    if mime == "yaml":
        from spurcore.render._common import to_yaml

        return to_yaml(doc)
    import json

    if str(environ.get("SLURM_JSON") or "").lower() == "compact":
        return json.dumps(doc, separators=(",", ":")) + "\n"
    return json.dumps(doc, indent=2) + "\n"


#: Every job state name Slurm's tools accept, in job_state_num's order (lower-cased, as
#: squeue and sacct list them after an unknown state).
JOB_STATE_NAMES = (
    "pending", "running", "suspended", "completed", "cancelled", "failed", "timeout", "node_fail",
    "preempted", "boot_fail", "deadline", "out_of_memory", "completing", "configuring", "expediting",
    "resizing", "resv_del_hold", "requeued", "requeue_fed", "requeue_hold", "revoked", "signaling",
    "special_exit", "stage_out", "stopped",
)
_STATE_COMPACT = {
    "pending": "pd", "running": "r", "suspended": "s", "completed": "cd", "cancelled": "ca",
    "failed": "f", "timeout": "to", "node_fail": "nf", "preempted": "pr", "boot_fail": "bf",
    "deadline": "dl", "out_of_memory": "oom", "completing": "cg", "configuring": "cf",
    "expediting": "ex", "resizing": "rs", "resv_del_hold": "rd", "requeued": "rq",
    "requeue_fed": "rf", "requeue_hold": "rh", "revoked": "rv", "signaling": "si",
    "special_exit": "se", "stage_out": "so", "stopped": "st",
}


def job_state_num(text: str) -> str | None:
    """``job_state_num``: a state's long or compact name, any case -> the upper-case long
    name; None when unknown."""
    low = text.strip().lower()
    for name in JOB_STATE_NAMES:
        if low in (name, _STATE_COMPACT[name]):
            return name.upper()
    return None


# ---------------------------------------------------------------------------------- scancel


def scancel_ids(args: Iterable[str]) -> list[CancelId]:
    """scancel's operands (``_xlate_job_step_ids``). Raises RefError("Invalid job id <arg>")."""
    out: list[CancelId] = []
    todo = list(args)
    i = 0
    while i < len(todo):
        arg = todo[i]
        i += 1
        job_id, end = strtol(arg)
        if job_id <= 0:
            raise RefError(f"Invalid job id {arg}")
        rest = arg[end:]
        if rest.startswith("_["):
            close = rest.find("]")
            if close < 0 or close != len(rest) - 1:
                raise RefError(f"Invalid job id {arg}")
            try:
                tasks = task_ids(rest[1:])
            except RefError:
                raise RefError(f"Invalid job id {arg}") from None
            out.extend(CancelId(job_id, t, None, ref(job_id, t), arg) for t in tasks)
            continue
        task: int | str | None = None
        pos = 0
        if rest.startswith("_*"):
            task = "*"
            pos = 2
        elif rest.startswith("_"):
            value, stop = strtol(rest, 1)
            if value < 0:
                raise RefError(f"Invalid job id {arg}")
            task = value
            pos = stop
        elif rest.startswith("+"):
            value, stop = strtol(rest, 1)
            if value < 0:
                raise RefError(f"Invalid job id {arg}")
            pos = stop
        step = None
        if rest[pos : pos + 1] == ".":
            value, stop = strtol(rest, pos + 1)
            if value < 0 or stop == pos + 1:
                raise RefError(f"Invalid job id {arg}")
            step = value
            pos = stop
        text = str(job_id) if task is None else f"{job_id}_{task}"
        tail = rest[pos:]
        out.append(CancelId(job_id, task, step, text, arg[: len(arg) - len(tail)]))
        if tail.startswith(","):
            todo.insert(i, tail[1:])
        elif tail:
            raise RefError(f"Invalid job id {arg}")
    return out


def fatal(prog: str, message: str) -> Exception:
    """Slurm's ``fatal()``: ``<prog>: fatal: <message>`` on stderr, exit status 1 (raise the
    returned CliError)."""
    from spurcli.common import CliError

    return CliError(f"{prog}: fatal: {message}", raw=True)
