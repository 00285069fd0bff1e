"""What every Slurm-named command shares: option parsing, finding and calling the
controller, Slurm's error lines, job-id and state-name parsing.

Invariants:
- Start-up time is part of the contract (users run these commands in loops): this module
  imports only ``os``/``sys`` at load time. ``spurcore.rpc`` (socket, msgpack) is imported
  when the first call is made; ``tomllib`` only for a ``spur.toml`` the fast reader below
  does not understand. ``attrs`` is never imported on the CLI path, so neither
  ``spurcore.config`` nor ``spurcore.client`` (which import it) are used here: ``Controller``
  and ``read_config`` mirror their behaviour (same replica order, same retry rules, same
  ``controller unavailable: no leader (N of M replicas reachable)`` text).
- Errors leave a command as exceptions (``CliError``, ``UsageError``, ``RpcError``);
  ``run`` turns them into Slurm's stderr lines and exit codes, so ``main()`` never
  calls ``sys.exit``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from spurcore.rpc import SyncClient

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


class ControllerUnavailable(Exception):
    def __init__(self, reachable: int, total: int) -> None:
        self.message = f"controller unavailable: no leader ({reachable} of {total} replicas reachable)"
        super().__init__(self.message)
        self.code = "controller_unavailable"


def error(prog: str, message: str) -> None:
    """Slurm's ``error()``: ``<prog>: error: <message>`` on stderr."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()


def info(prog: str, message: str) -> None:
    """Slurm's ``verbose()``/``info()``: ``<prog>: <message>`` on stderr."""
    sys.stderr.write(f"{prog}: {message}\n")
    sys.stderr.flush()


def run(prog: str, body: Callable[[list[str]], int], argv: Sequence[str] | None) -> int:
    """Run a command body and map every way out to Slurm's messages and exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return body(args)
    except Exit as exc:
        return exc.code
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {exc.message}\nTry \"{prog} --help\" for more information\n")
        return 1
    except CliError as exc:
        if exc.message:
            if exc.raw:
                sys.stderr.write(exc.message + "\n")
            else:
                error(prog, exc.message)
        return exc.code
    except ControllerUnavailable as exc:
        error(prog, exc.message)
        return 1
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
        from spurcore.rpc import RpcError

        if isinstance(exc, RpcError):
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
                    possible = " ".join(f"'--{k}'" for k, _ in matches)
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


def handle_common(prog: str, pairs: list[tuple[str, str | None]], help_text: str, usage_text: str) -> None:
    """``--help``, ``--usage`` and ``-V/--version``: print and leave with 0."""
    for key, _ in pairs:
        if key == "help":
            sys.stdout.write(help_text)
            raise Exit(0)
        if key == "usage":
            sys.stdout.write(usage_text)
            raise Exit(0)
        if key == "version":
            sys.stdout.write(VERSION_LINE + "\n")
            raise Exit(0)


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


class Replica:
    __slots__ = ("id", "socket", "rpc")

    def __init__(self, rid: int, socket: str, rpc: str) -> None:
        self.id = rid
        self.socket = socket
        self.rpc = rpc


class ClientConfig:
    """The part of ``spur.toml`` a client needs (see ``spurcore.config`` for the format)."""

    __slots__ = ("path", "replicas", "tls_ca", "kill_wait")

    def __init__(self, path: str, replicas: list[Replica], tls_ca: str = "", kill_wait: float = 30.0) -> None:
        self.path = path
        self.replicas = replicas
        self.tls_ca = tls_ca
        self.kill_wait = kill_wait


def find_config_path(env: dict[str, str] | os._Environ[str] | None = None, cwd: str | None = None) -> str | None:
    """``SPUR_CONF``, else ``./spur.toml``, else ``/etc/spur/spur.toml``
    (``spurcore.config.find_config_path``)."""
    env = os.environ if env is None else env
    if env.get("SPUR_CONF"):
        return env["SPUR_CONF"]
    local = os.path.join(cwd or os.getcwd(), "spur.toml")
    if os.path.exists(local):
        return local
    if os.path.exists("/etc/spur/spur.toml"):
        return "/etc/spur/spur.toml"
    return None


class _NotSimple(Exception):
    pass


def _simple_value(text: str) -> Any:
    s = text.strip()
    if not s:
        raise _NotSimple
    if s[0] == '"':
        end = s.find('"', 1)
        if end < 0 or "\\" in s[: end + 1]:
            raise _NotSimple
        tail = s[end + 1 :].strip()
        if tail and not tail.startswith("#"):
            raise _NotSimple
        return s[1:end]
    if s[0] == "'":
        end = s.find("'", 1)
        if end < 0:
            raise _NotSimple
        tail = s[end + 1 :].strip()
        if tail and not tail.startswith("#"):
            raise _NotSimple
        return s[1:end]
    if "#" in s:
        s = s[: s.index("#")].strip()
    if s[0] == "[":
        if not s.endswith("]"):
            raise _NotSimple
        inner = s[1:-1].strip()
        if not inner:
            return []
        return [_simple_value(p) for p in inner.split(",") if p.strip()]
    if s in ("true", "false"):
        return s == "true"
    try:
        return int(s.replace("_", ""), 10)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        raise _NotSimple from None


def _read_simple_toml(text: str) -> dict[str, Any]:
    """The subset of TOML ``spur.toml`` files use: ``[table]``, ``[[array]]``, and
    ``key = "string" | 'string' | number | bool | [flat list]`` with comments. Anything
    else raises ``_NotSimple`` and the caller uses ``tomllib`` (exact, but slower to import)."""
    root: dict[str, Any] = {}
    table = root
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            end = line.find("]]")
            if end < 0 or line[end + 2 :].strip()[:1] not in ("", "#"):
                raise _NotSimple
            name = line[2:end].strip()
            if not name or "." in name or '"' in name:
                raise _NotSimple
            arr = root.setdefault(name, [])
            if not isinstance(arr, list):
                raise _NotSimple
            table = {}
            arr.append(table)
            continue
        if line.startswith("["):
            end = line.find("]")
            if end < 0 or line[end + 1 :].strip()[:1] not in ("", "#"):
                raise _NotSimple
            name = line[1:end].strip()
            if not name or "." in name or '"' in name or name in root:
                raise _NotSimple
            table = {}
            root[name] = table
            continue
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not key or not all(c.isalnum() or c in "_-" for c in key) or key in table:
            raise _NotSimple
        table[key] = _simple_value(value)
    return root


def read_config(path: str) -> ClientConfig:
    """Read the replicas (and the few client settings) from ``spur.toml``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = _read_simple_toml(data.decode("utf-8"))
    except (_NotSimple, UnicodeDecodeError):
        import tomllib

        try:
            raw = tomllib.loads(data.decode("utf-8", "replace"))
        except tomllib.TOMLDecodeError as exc:
            raise CliError(f"{path}: {exc}") from None
    base = os.path.dirname(os.path.abspath(path))

    def resolve(value: Any) -> str:
        value = str(value or "")
        if not value:
            return ""
        return value if os.path.isabs(value) else os.path.join(base, value)

    replicas = []
    for r in raw.get("replica", []) or []:
        try:
            replicas.append(Replica(int(r["id"]), resolve(r.get("socket", "")), str(r.get("rpc", ""))))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CliError(f"{path}: bad [[replica]] entry {r!r}") from None
    if not replicas:
        raise CliError(f"{path}: no [[replica]] entries")
    tls = raw.get("tls", {}) or {}
    cluster = raw.get("cluster", {}) or {}
    try:
        kill_wait = float(cluster.get("kill_wait", 30))
    except (TypeError, ValueError):
        kill_wait = 30.0
    return ClientConfig(path, replicas, resolve(tls.get("ca", "")), kill_wait)


def load_config() -> ClientConfig:
    path = find_config_path()
    if path is None:
        raise CliError("no spur.toml found (set SPUR_CONF)")
    return read_config(path)


# --------------------------------------------------------------------------- controller

#: Error codes after which the call is tried again (``spurcore.client.RETRYABLE``).
RETRYABLE = frozenset({"no_leader", "not_ready", "leader_changed", "timeout", "unknown_outcome"})


def new_request_id() -> str:
    """A unique id for a write; a retry of the same write reuses it (uuid4-sized hex)."""
    return os.urandom(16).hex()


class Controller:
    """A blocking client for the replicas, as ``spurcore.client.Client``: replicas are
    tried in order (the last one that answered first); ``no_leader`` answers and
    unreachable replicas are retried for ``retry_for`` seconds, then
    ``ControllerUnavailable`` says how many replicas answered."""

    def __init__(self, config: ClientConfig, *, timeout: float = 10.0, retry_for: float = 10.0) -> None:
        self.config = config
        self.timeout = timeout
        self.retry_for = retry_for
        self._conn: SyncClient | None = None
        self._conn_replica: Replica | None = None

    def _connect(self, replica: Replica) -> SyncClient:
        from spurcore.rpc import ConnectionFailed, SyncClient

        if replica.socket and os.path.exists(replica.socket):
            return SyncClient.unix(replica.socket, timeout=self.timeout)
        if replica.rpc:
            from spurcore.rpc import client_ssl_context

            host, _, port = replica.rpc.rpartition(":")
            cert = os.environ.get("SPUR_CERT") or None
            key = os.environ.get("SPUR_KEY") or None
            ctx = client_ssl_context(cert, key, self.config.tls_ca) if self.config.tls_ca else None
            return SyncClient.tcp(host, int(port), timeout=self.timeout, ssl_context=ctx)
        raise ConnectionFailed(f"replica {replica.id}: socket {replica.socket} does not exist")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        import time

        from spurcore.rpc import ConnectionFailed, RpcError, RpcTimeout

        params = params or {}
        deadline = time.monotonic() + self.retry_for
        delay = 0.02
        while True:
            reachable = 0
            replicas = list(self.config.replicas)
            if self._conn_replica is not None:
                replicas.remove(self._conn_replica)
                replicas.insert(0, self._conn_replica)
            for replica in replicas:
                try:
                    if self._conn is None or self._conn_replica is not replica:
                        self.close()
                        self._conn = self._connect(replica)
                        self._conn_replica = replica
                    reachable += 1
                    return self._conn.call(method, params, timeout=timeout or self.timeout)
                except RpcTimeout:
                    self.close()
                    reachable -= 1
                    continue
                except ConnectionFailed:
                    self.close()
                    continue
                except RpcError as exc:
                    if exc.code in RETRYABLE:
                        continue
                    raise
            if time.monotonic() >= deadline:
                raise ControllerUnavailable(max(0, reachable), len(self.config.replicas))
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


#: How long a command keeps retrying an unreachable or leaderless cluster (seconds).
RETRY_FOR = 10.0


def connect(*, retry_for: float | None = None) -> Controller:
    """The controller client for this command (config from SPUR_CONF / ./spur.toml / /etc)."""
    return Controller(load_config(), retry_for=RETRY_FOR if retry_for is None else retry_for)


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
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return str(gid)


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
JOB_STATES: dict[str, str] = {
    "PENDING": "PD",
    "RUNNING": "R",
    "SUSPENDED": "S",
    "COMPLETED": "CD",
    "CANCELLED": "CA",
    "FAILED": "F",
    "TIMEOUT": "TO",
    "NODE_FAIL": "NF",
    "PREEMPTED": "PR",
    "BOOT_FAIL": "BF",
    "DEADLINE": "DL",
    "OUT_OF_MEMORY": "OOM",
    "COMPLETING": "CG",
    "CONFIGURING": "CF",
    "RESIZING": "RS",
    "REQUEUED": "RQ",
    "REQUEUE_FED": "RF",
    "REQUEUE_HOLD": "RH",
    "SPECIAL_EXIT": "SE",
    "STOPPED": "ST",
    "SIGNALING": "SI",
    "STAGE_OUT": "SO",
    "REVOKED": "RV",
    "RESV_DEL_HOLD": "RD",
}
_BY_COMPACT = {v: k for k, v in JOB_STATES.items()}

TERMINAL_STATES = frozenset(
    {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
     "OUT_OF_MEMORY"}
)


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


def get_job(ctl: Controller, job_id: int) -> dict[str, Any] | None:
    """One job's record from ``jobs`` (None when the controller no longer knows it)."""
    from spurcore.rpc import RpcError

    try:
        result = ctl.call("jobs", {"job_ids": [job_id]})
    except RpcError as exc:
        if exc.code == "invalid_job_id":
            return None
        raise
    for job in result.get("jobs") or []:
        if int(job.get("job_id", -1)) == job_id:
            return job
    return None
