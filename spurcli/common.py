"""What every Slurm-named command shares: option parsing, finding and calling the
controller, Slurm's error lines, job-id and state-name parsing.

Invariants:
- Start-up time is part of the contract (users run these commands in loops): this module
  imports only ``os``/``sys`` at load time. ``spurio.config`` and ``spurio.client``
  (socket, msgpack) are imported when the first call is made; neither imports attrs,
  and ``tomllib`` is loaded only for a ``spur.toml`` outside the flat subset.
- Errors leave a command as exceptions (``CliError``, ``UsageError``, ``RpcError``);
  ``run`` turns them into Slurm's stderr lines and exit codes, so ``main()`` never
  calls ``sys.exit``.
"""

from __future__ import annotations

import os
import sys

from spurcore.states import STATE_CODES  # a plain table: cheap to import
from spurcore.states import TERMINAL_STATES as _TERMINAL_STATES

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from spurio.client import Client as Controller
    from spurio.config import Config

VERSION_LINE = "slurm 25.11.0"

# --------------------------------------------------------------------------- errors


class CliError(Exception):
    """An error ``run`` prints as ``<prog>: error: <message>`` (or verbatim when
    ``raw``) before returning ``code``."""

    def __init__(self, message: str = "", code: int = 1, *, raw: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.raw = raw


class UsageError(Exception):
    """A getopt-style complaint; printed as glibc does, then Slurm's ``Try ... --help`` line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Exit(Exception):
    """Leave with ``code`` without printing anything (``--help``, ``--version``)."""

    def __init__(self, code: int = 0) -> None:
        super().__init__(code)
        self.code = code


def error(prog: str, message: str) -> None:
    """Slurm's ``error()``: ``<prog>: error: <message>`` on stderr."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()


def info(prog: str, message: str) -> None:
    """Slurm's ``verbose()``/``info()``: ``<prog>: <message>`` on stderr."""
    sys.stderr.write(f"{prog}: {message}\n")
    sys.stderr.flush()


def run(prog: str, body: Callable[[list[str]], int], argv: Sequence[str] | None, *,
        usage_code: int = 1) -> int:
    """Run a command body and map every way out to Slurm's messages and exit codes.

    ``usage_code`` is the exit status after a getopt complaint: 1 for most commands, 255
    for sbatch/srun/salloc (slurm_opt.c's unknown-option handler exits with -1)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return body(args)
    except Exit as exc:
        return exc.code
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc.message}\nTry \"{prog} --help\" for more information\n")
        return usage_code
    except CliError as exc:
        if exc.message:
            if exc.raw:
                sys.stderr.write(exc.message + "\n")
            else:
                error(prog, exc.message)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (``squeue | head``): leave quietly, as a C tool would on EPIPE.
        try:
            sys.stdout = open(os.devnull, "w")  # the interpreter would report the flush error
        except OSError:
            pass
        return 1
    except Exception as exc:
        from spurio.client import ControllerUnavailable
        from spurio.rpc import RpcError

        if isinstance(exc, (RpcError, ControllerUnavailable)):
            error(prog, exc.message or exc.code)
            return 1
        raise


# --------------------------------------------------------------------------- options

NO_ARG, REQUIRED, OPTIONAL = 0, 1, 2


class Opt:
    """One option: ``key`` names it in the parse result; ``short`` is one letter or "";
    ``longs`` are the long names (aliases allowed); ``arg`` is NO_ARG/REQUIRED/OPTIONAL."""

    __slots__ = ("key", "short", "longs", "arg")

    def __init__(self, key: str, short: str, longs: str | tuple[str, ...], arg: int = NO_ARG) -> None:
        self.key = key
        self.short = short
        self.longs = (longs,) if isinstance(longs, str) else longs
        self.arg = arg


def getopt(argv: Sequence[str], opts: Iterable[Opt], *, permute: bool = True
           ) -> tuple[list[tuple[str, str | None]], list[str]]:
    """GNU ``getopt_long`` as Slurm's tools use it.

    Returns the options in command-line order as ``(key, value)`` pairs (value None for
    flags) and the operands. Long options may be abbreviated to any unambiguous prefix;
    ``--opt=value`` and ``--opt value`` (required arguments), ``-xVALUE``, ``-x VALUE`` and
    clustered flags (``-vvh``) work; ``--`` ends the options. With ``permute=False``
    (sbatch, srun: a leading ``+`` in the optstring) the first operand ends the options and
    it and everything after it are returned as operands.
    """
    shorts: dict[str, Opt] = {}
    longs: dict[str, Opt] = {}
    for opt in opts:
        if opt.short:
            shorts[opt.short] = opt
        for name in opt.longs:
            longs[name] = opt
    out: list[tuple[str, str | None]] = []
    operands: list[str] = []
    i = 0
    n = len(argv)
    while i < n:
        arg = argv[i]
        i += 1
        if arg == "--":
            operands.extend(argv[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            opt = longs.get(name)
            if opt is None:
                matches = [(k, o) for k, o in longs.items() if k.startswith(name)]
                distinct = {id(o) for _, o in matches}
                if not matches:
                    raise UsageError(f"unrecognized option '--{name}'")
                if len(distinct) > 1:
                    # glibc lists the first match and every match that is a different option
                    # (an alias of the first, same val, is not a possibility of its own)
                    first = matches[0][1]
                    names = [matches[0][0]] + [k for k, o in matches[1:] if o is not first]
                    possible = " ".join(f"'--{k}'" for k in names)
                    raise UsageError(f"option '--{name}' is ambiguous; possibilities: {possible}")
                long_name, opt = matches[0]
            else:
                long_name = name
            if opt.arg == NO_ARG:
                if eq:
                    raise UsageError(f"option '--{long_name}' doesn't allow an argument")
                out.append((opt.key, None))
            elif opt.arg == OPTIONAL:
                out.append((opt.key, value if eq else None))
            elif eq:
                out.append((opt.key, value))
            elif i < n:
                out.append((opt.key, argv[i]))
                i += 1
            else:
                raise UsageError(f"option '--{long_name}' requires an argument")
            continue
        if arg.startswith("-") and arg != "-":
            k = 1
            while k < len(arg):
                letter = arg[k]
                k += 1
                opt = shorts.get(letter)
                if opt is None:
                    raise UsageError(f"invalid option -- '{letter}'")
                if opt.arg == NO_ARG:
                    out.append((opt.key, None))
                    continue
                rest = arg[k:]
                if rest:
                    out.append((opt.key, rest))
                elif opt.arg == OPTIONAL:
                    out.append((opt.key, None))
                elif i < n:
                    out.append((opt.key, argv[i]))
                    i += 1
                else:
                    raise UsageError(f"option requires an argument -- '{letter}'")
                break
            continue
        if not permute:
            operands.append(arg)
            operands.extend(argv[i:])
            break
        operands.append(arg)
    return out, operands


def last(pairs: Iterable[tuple[str, str | None]]) -> dict[str, str | None]:
    """The options as a dict where a repeated option's last value wins."""
    return dict(pairs)


def count(pairs: Iterable[tuple[str, str | None]], key: str) -> int:
    return sum(1 for k, _ in pairs if k == key)


def info_option(key: str, value: str | None, options: Any, texts: dict[str, Any]) -> None:
    """The options that print something and leave with 0, handled where the tool's option
    loop meets them (Slurm's tools act on them in getopt order): ``--autocomplete`` (the
    option names ``value`` starts), ``-V/--version``, and each key of ``texts`` (``help``,
    ``usage``, ``helpformat``, ...) with its text or a function making it. Returns when
    ``key`` is none of them."""
    if key == "autocomplete":
        from spurcli.jobrefs import suggest_completion

        sys.stdout.write(suggest_completion(options, value or ""))
        raise Exit(0)
    if key == "version":
        sys.stdout.write(VERSION_LINE + "\n")
        raise Exit(0)
    text = texts.get(key)
    if text is not None:
        sys.stdout.write(text if isinstance(text, str) else text())
        raise Exit(0)


def handle_common(prog: str, pairs: list[tuple[str, str | None]], help_text: str, usage_text: str) -> None:
    """``--help``, ``--usage`` and ``-V/--version`` anywhere on the line, before any other
    option is acted on: print and leave with 0 (``info_option`` for each)."""
    texts = {"help": help_text, "usage": usage_text}
    for key, value in pairs:
        info_option(key, value, (), texts)


COMMON_OPTS = (
    Opt("help", "", "help"),
    Opt("usage", "", "usage"),
    Opt("version", "V", "version"),
)


def parse_int(text: str, what: str, *, positive: bool = True) -> int:
    """Slurm's ``parse_int``: ``Invalid numeric value "x" for --ntasks.``"""
    s = text.strip()
    try:
        value = int(s, 10)
    except ValueError:
        raise CliError(f'Invalid numeric value "{text}" for {what}.') from None
    if value < 0 or (positive and value == 0):
        raise CliError(f'Invalid numeric value "{text}" for {what}.')
    return value


# --------------------------------------------------------------------------- config


_loaded: tuple[tuple[str, int, int], Config] | None = None


def load_config() -> Config:
    """spur.toml from SPUR_CONF / ./spur.toml / /etc/spur/spur.toml (``spurio.config``).
    A command asks more than once (to connect, for the cluster's name); the file is parsed
    again only when its path, size or modification time changed."""
    global _loaded
    from spurio.config import ConfigError, find_config_path, load

    path = find_config_path()
    if path is None:
        raise CliError("no spur.toml found (set SPUR_CONF)")
    try:
        st = os.stat(path)
        key: tuple[str, int, int] | None = (path, st.st_size, st.st_mtime_ns)
    except OSError:
        key = None  # load() says why it cannot be read
    if key is not None and _loaded is not None and _loaded[0] == key:
        return _loaded[1]
    try:
        config = load(path)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    _loaded = None if key is None else (key, config)
    return config


# --------------------------------------------------------------------------- controller


def new_request_id() -> str:
    from spurio.client import new_request_id as new

    return new()


#: How long a command keeps retrying an unreachable or leaderless cluster (seconds);
#: ``SPUR_CLIENT_RETRY`` overrides it.
RETRY_FOR = 10.0


def connect(*, retry_for: float | None = None) -> Controller:
    """The controller client for this command (``spurio.client.Client``)."""
    from spurio.client import Client

    if retry_for is None:
        try:
            retry_for = float(os.environ.get("SPUR_CLIENT_RETRY", RETRY_FOR))
        except ValueError:
            retry_for = RETRY_FOR
    return Client(load_config(), retry_for=retry_for)


def rpc_error_code(exc: BaseException) -> str | None:
    """The error code of an RpcError (None for anything else), without importing rpc."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else None


# --------------------------------------------------------------------------- identities


def current_user() -> tuple[str, int, int]:
    """(name, uid, gid) of the caller; an unknown uid is named by its number."""
    import pwd

    uid = os.getuid()
    try:
        pw = pwd.getpwuid(uid)
        return pw.pw_name, uid, os.getgid()
    except KeyError:
        return str(uid), uid, os.getgid()


def user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    """The group's name (its number when it has none), looked up once per gid and command:
    ``scontrol show job`` names the group of every record, and an NSS lookup costs 10 us."""
    name = _GROUP_NAMES.get(gid)
    if name is None:
        import grp

        try:
            name = grp.getgrgid(gid).gr_name
        except (KeyError, OverflowError):
            name = str(gid)
        _GROUP_NAMES[gid] = name
    return name


_GROUP_NAMES: dict[int, str] = {}


def resolve_user(text: str) -> str:
    """A ``-u`` entry (name or uid) as the user name the controller filters on.

    Slurm: ``Invalid user: <text>`` for an unknown name; a numeric uid is accepted even
    without a passwd entry (filtered by number)."""
    import pwd

    s = text.strip()
    if s.isdigit():
        try:
            return pwd.getpwuid(int(s)).pw_name
        except KeyError:
            return s
    try:
        pwd.getpwnam(s)
    except KeyError:
        raise CliError(f"Invalid user: {s}") from None
    return s


def split_list(text: str) -> list[str]:
    """Slurm's comma-separated option lists (empty items dropped)."""
    return [p.strip() for p in text.split(",") if p.strip()]


# --------------------------------------------------------------------------- job ids

#: Step names that are not numbers (``J.batch``, ``J.extern``, ``J.interactive``).
NAMED_STEPS = ("batch", "extern", "interactive")


def parse_job_step(text: str) -> tuple[int, int | str | None]:
    """``job_id[.step]`` -> (job_id, step): step None for the whole job, an int for a
    numbered step, or ``"batch"``/``"extern"``/``"interactive"``.

    Raises ValueError for anything else, including array syntax (``12_3``) and 0.
    """
    s = text.strip()
    job_part, dot, step_part = s.partition(".")
    if not (job_part.isascii() and job_part.isdigit()):
        raise ValueError(text)
    job_id = int(job_part)
    if job_id <= 0 or job_id >= 0xFFFFFFF0:
        raise ValueError(text)
    if not dot:
        return job_id, None
    if step_part.isascii() and step_part.isdigit():
        return job_id, int(step_part)
    if step_part.lower() in NAMED_STEPS:
        return job_id, step_part.lower()
    raise ValueError(text)


def format_job_step(job_id: int, step: int | str | None) -> str:
    return str(job_id) if step is None else f"{job_id}.{step}"


# --------------------------------------------------------------------------- job states

#: Slurm's job state names and their compact codes (job_state_string[_compact]).
JOB_STATES = STATE_CODES
_BY_COMPACT = {v: k for k, v in JOB_STATES.items()}

TERMINAL_STATES = _TERMINAL_STATES


def parse_state(text: str) -> str:
    """A state name, long or short, any case (Slurm's ``job_state_num``) -> the long name.

    Also accepts ``CA``'s American spelling ``CANCELED``. Raises ValueError otherwise."""
    s = text.strip().upper()
    if s in JOB_STATES:
        return s
    if s in _BY_COMPACT:
        return _BY_COMPACT[s]
    if s == "CANCELED":
        return "CANCELLED"
    raise ValueError(text)


def parse_state_list(text: str) -> list[str] | None:
    """``-t`` lists: long names in order; None for ``all``. ValueError names the bad entry."""
    names: list[str] = []
    for item in split_list(text):
        if item.lower() == "all":
            return None
        state = parse_state(item)
        if state not in names:
            names.append(state)
    return names


def job_state_matches(info: dict[str, Any], states: Iterable[str]) -> bool:
    """Does a job record match any of the long state names (display or base state)?"""
    wanted = set(states)
    return str(info.get("state") or "") in wanted or str(info.get("base_state") or "") in wanted


def is_finished(info: dict[str, Any]) -> bool:
    """Slurm's IS_JOB_FINISHED and not COMPLETING: the job is over for good."""
    base = str(info.get("base_state") or info.get("state") or "")
    return base in TERMINAL_STATES and str(info.get("state") or "") != "COMPLETING"


def call_jobs(ctl: Controller, params: dict[str, Any]) -> dict[str, Any]:
    """The ``jobs`` method, asked for its columnar answer (field names once, a list per job:
    much quicker to decode for a long queue), turned back into one map per job (``jobs``)."""
    return _jobs_answer(ctl, params, records=True)


def call_job_rows(ctl: Controller, params: dict[str, Any]) -> dict[str, Any]:
    """The ``jobs`` method's columnar answer as ``fields`` and ``rows`` (a sequence of the
    fields' values per job), for a renderer that reads rows (``scontrol show job``); an
    answer of maps (a controller that sends no columns) keeps its ``jobs``."""
    return _jobs_answer(ctl, params, records=False)


def _jobs_answer(ctl: Controller, params: dict[str, Any], *, records: bool) -> dict[str, Any]:
    """The records are the command's working set until it exits: the cyclic garbage collector
    is kept out of their decoding and then stops visiting them (``gc.freeze``). Without that,
    decoding 20,000 full records ran a collection every 700 new containers, each walking
    everything decoded so far: 200 ms of a 50 ms decode."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        result = ctl.call("jobs", {**params, "columns": True})
        if "row_chunks" in result:
            fields = result["fields"]
            width = len(fields)
            rows_of = _row_decoder(bool(params.get("fields")))
            rows: list[Any] = []
            for chunk in result.pop("row_chunks"):
                part = rows_of(chunk)
                if set(map(len, part)) - {width}:
                    raise ValueError(f"a row of the jobs answer has not the {width} fields named")
                rows += part
            if records:
                from itertools import repeat

                result["jobs"] = list(map(dict, map(zip, repeat(fields), rows)))
            else:
                result["rows"] = rows
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    return result


def _row_decoder(asked_fields: bool) -> Callable[[bytes], Any]:
    """How rows are decoded: msgpack itself only when a long answer loaded it (the reply
    was decoded with it), and then, for the fields a text renderer asked for, as tuples
    (nested lists too: those renderers read any sequence), cheaper to make than lists."""
    if asked_fields and "msgpack" in sys.modules:
        from functools import partial

        import msgpack

        return partial(msgpack.unpackb, raw=False, strict_map_key=False, use_list=False)
    from spurcore.wirecodec import unpackb

    return unpackb


def get_job(ctl: Controller, job_id: int) -> dict[str, Any] | None:
    """One job's record from ``jobs`` (None when the controller no longer knows it)."""
    from spurio.rpc import RpcError

    try:
        result = call_jobs(ctl, {"job_ids": [job_id]})
    except RpcError as exc:
        if exc.code == "invalid_job_id":
            return None
        raise
    for job in result.get("jobs") or []:
        if int(job.get("job_id", -1)) == job_id:
            return job
    return None
