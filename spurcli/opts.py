"""The option surface of sbatch, srun and salloc: one table, Slurm 25.11's rules.

Source: src/common/slurm_opt.c (``common_options``: every option, its argument kind, which
command takes it, its set function), src/sbatch/opt.c, src/srun/opt.c, src/salloc/opt.c (the
input environment variables, ``_opt_verify``), src/common/proc_args.c (the value parsers).

Invariants:
- ``OPTIONS`` is the one table. Each ``Option`` names its long names (the first is
  canonical), its short letter, its argument kind (``NO_ARG``/``REQUIRED``/``OPTIONAL``),
  the commands that take it, a set function, the ``State`` fields that set function writes
  (what a reset clears), whether Spur acts on it (``effect``: "real", "recorded" or "cli")
  and one line of documentation. ``ENV_VARS`` lists each command's input environment
  variables in Slurm's processing order (a later variable overrides an earlier one).
- A set function validates its text exactly as Slurm's ``arg_set_*`` does and raises
  ``CliError`` with Slurm's message and exit status: 255 where Slurm's set function fails
  (``exit(-1)``), 1 where Slurm's ``parse_int`` or ``fatal`` exits. Non-fatal lines
  (``error()``, ``warning()``, ``info()``) go through ``State.say`` in the order Slurm prints them.
- Options are applied in Slurm's order by the callers (sbatch: command line first pass,
  ``#SBATCH`` lines, environment, command line; srun: environment, command line), so the
  last one wins; ``State.set_by`` remembers whether an option came from the environment,
  for Slurm's "the command line beats the environment" exclusions.
- Start-up cost: this module imports only ``os``/``sys`` at load time.
"""

from __future__ import annotations

import os
import sys

from spurcli.common import NO_ARG, OPTIONAL, REQUIRED, CliError, Exit, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any, NoReturn

SALLOC, SBATCH, SRUN = 1, 2, 4
ALL = SALLOC | SBATCH | SRUN
CMD_BITS = {"salloc": SALLOC, "sbatch": SBATCH, "srun": SRUN}

#: Slurm's exit status when an option's set function fails (``exit(-1)``).
EXIT_SET = 255
#: ``parse_int`` failures and ``fatal()``.
EXIT_FATAL = 1

INT_MAX = 2**31 - 1
NO_VAL16 = 0xFFFE
NICE_OFFSET = 0x80000000
#: srun's SRUN_MAX_THREADS (srun/opt.h): --threads above it gets a warning.
SRUN_MAX_THREADS = 60
#: Spur's MPI plugin types, as ``srun --mpi=list`` prints them.
MPI_TYPES = ("none", "pmi2")
#: slurm.conf's default CpuFreqGovernors (OnDemand, Performance, UserSpace).
ALLOWED_GOVERNORS = ("ondemand", "performance", "userspace")


# --------------------------------------------------------------------------- state


class State:
    """What the options set so far (Slurm's ``slurm_opt_t``), for one command.

    ``f`` holds Slurm's fields by name (absent = Slurm's unset/NO_VAL); ``set_by`` maps an
    option's canonical name to "cli" or "env" (an ``#SBATCH`` line counts as "cli", as in
    Slurm); ``raw`` keeps the last text each option was given (None for a flag)."""

    def __init__(self, cmd: str, *, environ: dict[str, str] | None = None, cwd: str = "/",
                 now: float = 0.0, uid: int = -1, buffered: bool = False,
                 help_text: str = "", usage_text: str = "") -> None:
        self.cmd = cmd
        self.prog = cmd
        self.environ = {} if environ is None else environ
        self.cwd = cwd
        self.now = now
        self.uid = os.getuid() if uid < 0 else uid
        self.help_text = help_text
        self.usage_text = usage_text
        self.f: dict[str, Any] = {}
        self.set_by: dict[str, str] = {}
        self.raw: dict[str, str | None] = {}
        self.buffer: list[str] | None = [] if buffered else None
        #: -Q lowers Slurm's log level below INFO: info() and warning() lines are not shown
        self.quiet_log = False

    # Slurm's log lines, in the order they are produced.
    def say(self, line: str) -> None:
        if self.buffer is not None:
            self.buffer.append(line)
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def error(self, msg: str) -> None:
        self.say(f"{self.prog}: error: {msg}")

    def warning(self, msg: str) -> None:
        if not self.quiet_log:
            self.say(f"{self.prog}: warning: {msg}")

    def info(self, msg: str) -> None:
        if not self.quiet_log:
            self.say(f"{self.prog}: {msg}")

    def flush(self) -> None:
        """Print what a buffered (first-pass) state held back."""
        lines, self.buffer = self.buffer or [], None
        for line in lines:
            self.say(line)

    def is_set(self, name: str) -> bool:
        return name in self.set_by

    def by_cli(self, name: str) -> bool:
        return self.set_by.get(name) == "cli"

    def by_env(self, name: str) -> bool:
        return self.set_by.get(name) == "env"

    def fatal(self, msg: str) -> NoReturn:
        raise CliError(f"{self.prog}: fatal: {msg}", EXIT_FATAL, raw=True)


def fail(msg: str, code: int = EXIT_SET) -> NoReturn:
    raise CliError(msg, code)


# --------------------------------------------------------------------------- C parsers


def strtol(text: str, base: int = 10) -> tuple[int, int]:
    """C ``strtol``: (value, index of the first unparsed character); (0, 0) when no digits
    (``endptr == nptr``). Leading whitespace and a sign are accepted; base 0 reads ``0x``."""
    i, n = 0, len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    sign = 1
    if i < n and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    if base in (0, 16) and text[i : i + 2].lower() == "0x" and i + 2 < n and text[i + 2] in _HEX:
        i += 2
        base = 16
    elif base == 0:
        base = 8 if text[i : i + 1] == "0" else 10
    digits = _HEX[:base] if base <= 16 else _HEX
    start = i
    while i < n and text[i].lower() in digits:
        i += 1
    if i == start:
        return 0, 0
    return sign * int(text[start:i], base), i


_HEX = "0123456789abcdef"


def parse_int(name: str, val: str | None, positive: bool) -> int:
    """Slurm's ``parse_int`` (proc_args.c): the whole text a decimal number (C ``strtol``),
    >= 0, > 0 when ``positive``; failures exit 1 with Slurm's message."""
    if val is None:
        fail(f'Invalid numeric value "(null)" for {name}.', EXIT_FATAL)
    value, end = strtol(val)
    if (end == 0 and val) or val[end:] or value < 0 or (positive and value <= 0):
        fail(f'Invalid numeric value "{val}" for {name}.', EXIT_FATAL)
    if value >= INT_MAX:
        fail(f"Numeric argument ({value}) too large for {name}.", EXIT_FATAL)
    return value


def parse_uint16(text: str) -> int | None:
    """Slurm's ``parse_uint16``: a whole decimal number in 0..65533, else None."""
    value, end = strtol(text)
    if (end == 0 and text) or text[end:] or value < 0 or value >= NO_VAL16:
        return None
    return value


def _nonzero_int(text: str) -> bool:
    value, end = strtol(text)
    return bool(end) and value != 0 and not text[end:]


# --------------------------------------------------------------------------- set functions
#
# Each takes (state, option, argument) and writes Slurm's fields into ``state.f``; the
# argument is None for a flag or an optional argument that was not given.


def _string(field: str) -> Callable[[State, Option, str | None], None]:
    def setter(st: State, opt: Option, arg: str | None) -> None:
        st.f[field] = arg if arg is not None else ""
    return setter


def _flag(field: str) -> Callable[[State, Option, str | None], None]:
    def setter(st: State, opt: Option, arg: str | None) -> None:
        st.f[field] = True
    return setter


def _int(field: str, what: str, positive: bool = True) -> Callable[[State, Option, str | None], None]:
    def setter(st: State, opt: Option, arg: str | None) -> None:
        st.f[field] = parse_int(what, arg, positive)
    return setter


def _mbytes(field: str, what: str) -> Callable[[State, Option, str | None], None]:
    def setter(st: State, opt: Option, arg: str | None) -> None:
        from spurcore.timefmt import str_to_mbytes

        value = str_to_mbytes(arg or "")
        if value is None:
            fail(f"Invalid {what} specification")
        st.f[field] = value
    return setter


def _help(st: State, opt: Option, arg: str | None) -> None:
    sys.stdout.write(st.help_text)
    sys.stdout.flush()
    raise Exit(0)


def _usage(st: State, opt: Option, arg: str | None) -> None:
    sys.stdout.write(st.usage_text)
    sys.stdout.flush()
    raise Exit(0)


def _version(st: State, opt: Option, arg: str | None) -> None:
    from spurcli.common import VERSION_LINE

    sys.stdout.write(VERSION_LINE + "\n")
    sys.stdout.flush()
    raise Exit(0)


def _autocomplete(st: State, opt: Option, arg: str | None) -> None:
    """slurm_opt.c ``suggest_completion``: the flags containing the query, one per line."""
    query = arg or ""
    if not query:
        raise Exit(0)
    query_short = query[0] == "-" or query[0].isalpha()
    query_long = len(query) > 1 or query[0].isalpha()
    out: list[str] = []
    for o in options_for(st.cmd):
        if o.name in ENV_ONLY:
            continue
        if o.short and query_short and query in f"-{o.short}":
            out.append(f"-{o.short}")
        for name in o.longs:
            flag = f"--{name}"
            if not query_long or query not in flag:
                continue
            if o.arg != NO_ARG:
                out.append(f"{flag}=")
            if o.arg == OPTIONAL:
                out.append(f"{flag} ")
            if o.arg == NO_ARG:
                out.append(flag)
    if out:
        sys.stdout.write("\n".join(out) + "\n\n")
    raise Exit(0)


def _set_accel_bind(st: State, opt: Option, arg: str | None) -> None:
    text = arg or ""
    if not any(c in text for c in "vgn"):
        fail("Invalid --accel-bind specification")
    st.f["accel_bind"] = text


def _acctg_freq_valid(tok: str) -> bool:
    """acct_gather_parse_freq for any of task (a bare number too), energy, network, filesystem."""
    low = tok.lower()
    if strtol(tok)[1]:
        return True
    for key in ("task=", "energy=", "filesystem=", "network="):
        k = low.find(key)
        if k >= 0 and strtol(tok[k + len(key):])[1]:
            return True
    return False


def _set_acctg_freq(st: State, opt: Option, arg: str | None) -> None:
    bad = [tok for tok in (arg or "").split(",") if tok and not _acctg_freq_valid(tok)]
    for tok in bad:
        st.error(f"Invalid --acctg-freq specification: {tok}")
    if bad:
        fail("")
    st.f["acctg_freq"] = arg


def _set_begin(st: State, opt: Option, arg: str | None) -> None:
    st.f["begin"] = _parse_when(st, arg or "", "--begin")


def _set_deadline(st: State, opt: Option, arg: str | None) -> None:
    st.f["deadline"] = _parse_when(st, arg or "", "--deadline")


def _parse_when(st: State, text: str, what: str) -> float:
    """Slurm's ``parse_time(arg, 0)``: 0 (an error) for anything it cannot read."""
    from spurcore.timefmt import parse_time

    try:
        when = parse_time(text, st.now)
    except ValueError:
        when = 0.0
    if not when:
        fail(f"Invalid {what} specification")
    return when


def _set_chdir(st: State, opt: Option, arg: str | None) -> None:
    text = arg or ""
    st.f["chdir"] = text if text.startswith("/") else os.path.normpath(os.path.join(st.cwd, text))


def _set_compress(st: State, opt: Option, arg: str | None) -> None:
    if arg is None or arg.lower() == "lz4":
        st.f["compress"] = "lz4"
    elif arg.lower() == "none":
        st.f["compress"] = "none"
    else:  # parse_compress_type: an error line, but the option is accepted (compression off)
        st.error(f"Compression type '{arg}' unknown, disabling compression support.")
        st.f["compress"] = "none"


def _set_core_spec(st: State, opt: Option, arg: str | None) -> None:
    st.f["core_spec"] = (parse_int("--core-spec", arg, False), False)


def _set_thread_spec(st: State, opt: Option, arg: str | None) -> None:
    st.f["core_spec"] = (parse_int("--thread-spec", arg, True), True)


def _set_cpus_per_task(st: State, opt: Option, arg: str | None) -> None:
    old = st.f.get("cpus_per_task", 0)
    new = parse_int("--cpus-per-task", arg, True)
    if st.f.get("cpus_set") and st.cmd == "srun" and old < new:
        st.info(f"Job step's --cpus-per-task value exceeds that of job ({new} > {old}). "
                "Job step may never run.")
    st.f["cpus_per_task"] = new
    st.f["cpus_set"] = True


def _cpu_freq_gov(text: str) -> str | None:
    low = text.lower()
    for prefix, gov in (("co", "conservative"), ("perf", "performance"), ("pow", "powersave"),
                        ("user", "userspace"), ("onde", "ondemand"), ("sche", "schedutil")):
        if low.startswith(prefix):
            return gov
    return None


_CPU_FREQ_SYNONYMS = (("him1", 4), ("highm1", 4), ("lo", 1), ("hi", 3), ("med", 2))


def _cpu_freq_value(st: State, text: str) -> int:
    """``_cpu_freq_check_freq``: a frequency in kHz or a synonym (low, medium, high,
    highm1; Slurm's values above 0x80000000); 0 is Slurm's "error"."""
    low = text.lower()
    for prefix, code in _CPU_FREQ_SYNONYMS:
        if low.startswith(prefix):
            return 0x80000000 + code
    value, end = strtol(text)
    if text[end:] if end else text:
        st.error(f'unrecognized --cpu-freq argument "{text}"')
        return 0
    return value & 0xFFFFFFFF


def _set_cpu_freq(st: State, opt: Option, arg: str | None) -> None:
    """``cpu_freq_verify_cmdline``: ``p1[-p2][:p3]``, p1/p2 frequencies (or p1 a governor),
    p3 a governor; the governor must be one of slurm.conf's default CpuFreqGovernors."""
    text = arg or ""
    colon = text.find(":")
    dash = text.find("-")
    p3 = text[colon + 1:] if colon >= 0 else None
    if dash >= 0:
        p1 = text[:dash]
        p2: str | None = text[dash + 1:colon] if colon > dash else text[dash + 1:]
    else:
        p1, p2 = (text[:colon] if colon >= 0 else text), None
    gov: str | None = None
    ok = False
    first_gov = _cpu_freq_gov(p1)
    while True:  # one pass; ``break`` is Slurm's ``goto clean``
        if first_gov is not None:
            if p3 is not None:
                st.error(f"governor cannot be specified twice {p1}{{-}}:{p3} in --cpu-freq")
                break
            gov = first_gov
            high = 0
        else:
            high = _cpu_freq_value(st, p1)
            if not high:
                break
        if p2 is not None:
            if p3 is None:
                st.error("You must explicitly choose a governor when defining a range. Please specify only "
                         "one value for the desired frequency (p1) or choose a specific governor (p3).")
                break
            second = _cpu_freq_value(st, p2)
            if not second:
                break
            if second < high:
                st.error(f"min cpu-frec ({p1}) must be < max cpu-freq ({p2})")
                break
        if p3 is not None:
            third = _cpu_freq_gov(p3)
            if third is None:
                st.error(f"illegal governor: {p3} on --cpu-freq")
                break
            if p2 is None and third != "userspace":
                st.error(f"gov on cpu-frec ({p3}) illegal without max")
                break
            if p2 is not None and third == "userspace":
                st.error(f"{p3} governor does not support a range. Please specify only one value for the "
                         "desired frequency (p1) or choose a different governor.")
                break
            gov = third
        if gov is None and p2 is None and p3 is None:
            gov = "userspace"  # one frequency: Slurm forces UserSpace
        ok = True
        break
    if gov is not None and gov not in ALLOWED_GOVERNORS:
        st.error(f"governor of {text} is not allowed in slurm.conf")
        ok = False
    if not ok:
        fail("Invalid --cpu-freq argument")
    st.f["cpu_freq"] = text


def _set_delay_boot(st: State, opt: Option, arg: str | None) -> None:
    from spurcore.timefmt import parse_time_limit

    try:
        parse_time_limit(arg or "")
    except ValueError:
        fail("Invalid --delay-boot specification")
    st.f["delay_boot"] = arg


def parse_distribution(text: str, environ: dict[str, str], say: Callable[[str], None]) -> tuple[str, int]:
    """``verify_dist_type``: (the normalized distribution, plane size or 0); raises
    ValueError where Slurm returns SLURM_ERROR (``say`` gets Slurm's own error lines)."""
    if text[:5].lower() == "plane":
        _, eq, size = text.partition("=")
        if not eq:
            size = environ.get("SLURM_DIST_PLANESIZE", "")
        value, end = strtol(size)
        if not size or not end or size[end:] or value <= 0 or value > INT_MAX:
            say("Invalid plane size or size not specified")
            raise ValueError(text)
        return "plane", value
    if not text or text[0] == ",":
        raise ValueError(text)
    base, _, flag = text.partition(",")
    levels = [t for t in base.split(":") if t]
    if not levels or len(levels) > 3:
        raise ValueError(text)
    parts: list[str] = []
    sock = ""
    for i, tok in enumerate(levels):
        if tok == "*":
            tok = ("block", "cyclic", sock)[i]
        if i == 1:
            sock = tok
        parts.append(tok)
    joined = ":".join(parts).lower()
    names = {"block", "cyclic", "fcyclic"}
    if joined in ("arbitrary", "hostfile"):
        dist = "arbitrary"
    elif joined in ("block", "cyclic") or (
            len(parts) > 1 and parts[0].lower() in ("block", "cyclic")
            and all(p.lower() in names for p in parts[1:])):
        dist = joined
    elif joined in ("pack", "nopack"):
        dist = joined  # "pack"/"nopack" alone: the default distribution with that flag
        if flag:
            raise ValueError(text)
        return dist, 0
    else:
        raise ValueError(text)
    if flag:
        if flag.lower() not in ("pack", "nopack"):
            raise ValueError(text)
        dist = f"{dist},{flag.lower()}"
    return dist, 0


def _set_distribution(st: State, opt: Option, arg: str | None) -> None:
    try:
        dist, plane = parse_distribution(arg or "", st.environ, st.error)
    except ValueError:
        fail("Invalid --distribution specification")
    st.f["distribution"] = dist
    st.f["plane_size"] = plane


def _stream(field: str) -> Callable[[State, Option, str | None], None]:
    def setter(st: State, opt: Option, arg: str | None) -> None:
        text = arg or ""
        st.f[field] = "/dev/null" if text.lower() == "none" else text
    return setter


_EXCLUSIVE = {"exclusive": "exclusive", "oversubscribe": "oversubscribe", "user": "user", "mcs": "mcs",
              "topo": "topo"}


def _set_exclusive(st: State, opt: Option, arg: str | None) -> None:
    shared = "exclusive" if arg is None else _EXCLUSIVE.get(arg.lower())
    if shared is None:
        fail("Invalid --exclusive specification")
    if shared == "exclusive" and st.cmd == "srun":
        st.f["step_exclusive"] = True
        st.f["exact"] = True
    st.f["shared"] = shared


def _set_oversubscribe(st: State, opt: Option, arg: str | None) -> None:
    if st.cmd == "srun":
        st.f["step_exclusive"] = False
    st.f["shared"] = "oversubscribe"


def _set_overlap(st: State, opt: Option, arg: str | None) -> None:
    st.f["overlap"] = True
    st.f["step_exclusive"] = False


def _set_external(st: State, opt: Option, arg: str | None) -> None:
    st.f["external"] = True


def _resource_range(text: str, what: str) -> int | None:
    """``get_resource_arg_range`` (fatal): a count, a min-max range or ``*``; the minimum,
    None for "any"."""
    if text in ("", "*"):
        return None

    def number(s: str) -> tuple[int, str]:
        value, end = strtol(s)
        rest = s[end:]
        if rest[:1] in ("k", "K"):
            value, rest = value * 1024, rest[1:]
        elif rest[:1] in ("m", "M"):
            value, rest = value * 1048576, rest[1:]
        return value, rest

    lo, rest = number(text)
    if (rest and rest[0] != "-") or lo < 0:
        fail(f'Invalid numeric value "{text}" for {what}.', EXIT_FATAL)
    if lo > INT_MAX:
        fail(f"Numeric argument ({lo}) too large for {what}.", EXIT_FATAL)
    if rest:
        hi, rest2 = number(rest[1:])
        if (rest2 and rest2[0] != "-") or hi <= 0:
            fail(f'Invalid numeric value "{text}" for {what}.', EXIT_FATAL)
        if hi > INT_MAX:
            fail(f"Numeric argument ({hi}) too large for {what}.", EXIT_FATAL)
    return lo


def _set_extra_node_info(st: State, opt: Option, arg: str | None) -> None:
    parts = (arg or "").split(":", 2)
    parts += [""] * (3 - len(parts))
    for field, text, what in zip(("sockets_per_node", "cores_per_socket", "threads_per_core"), parts,
                                 ("first arg of -B", "second arg of -B", "third arg of -B"), strict=True):
        value = _resource_range(text, what)
        if value is None:
            st.f.pop(field, None)
        else:
            st.f[field] = value
    st.f["extra_set"] = True


def _root_only(st: State, what: str) -> None:
    if st.uid != 0:
        fail(f"--{what} only permitted by root user")


#: Slurm's SLURM_AUTH_NOBODY: --uid/--gid may not name it.
AUTH_NOBODY = 99


def _set_gid(st: State, opt: Option, arg: str | None) -> None:
    import grp

    _root_only(st, "gid")
    text = arg or ""
    try:
        gid = int(text) if text.isdigit() else grp.getgrnam(text).gr_gid
    except KeyError:
        fail("Invalid --gid specification")
    if gid == AUTH_NOBODY:
        fail("Rejecting --gid as nobody specification")
    st.f["gid"] = gid


def _set_uid(st: State, opt: Option, arg: str | None) -> None:
    import pwd

    _root_only(st, "uid")
    text = arg or ""
    try:
        pw = pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
    except KeyError:
        fail("Invalid --uid specification")
    if pw.pw_uid == AUTH_NOBODY:
        fail("Rejecting --uid as nobody specification")
    st.f["uid"] = pw.pw_uid
    st.f["user"] = pw.pw_name


def _num_list_ok(text: str, hexa: bool) -> bool:
    for tok in text.split(","):
        if not tok:
            continue
        if hexa and tok.startswith("0x"):
            tok = tok[2:]
        digits = _HEX if hexa else "0123456789"
        if any(c.lower() not in digits and c != "*" for c in tok):
            return False
        head, star, mult = tok.partition("*")
        if star and not strtol(mult, 0)[1]:
            return False
    return True


def _gres_bind_ok(text: str) -> bool:
    """tres_bind.c ``_valid_gres_bind`` (including its offsets for the short ``map:``)."""
    if text[:8].lower() == "verbose,":
        text = text[8:]
    low = text.lower()
    if low.startswith("closest") or low.startswith("none"):
        return True
    if low.startswith("map_gpu:") or low.startswith("map:"):
        return _num_list_ok(text[8:], False)
    if low.startswith("mask_gpu:") or low.startswith("mask:"):
        return _num_list_ok(text[9:], True)
    for prefix in ("per_task:", "single:"):
        if low.startswith(prefix):
            return strtol(text[len(prefix):], 0)[0] >= 0
    return False


def _set_gpu_bind(st: State, opt: Option, arg: str | None) -> None:
    if not _gres_bind_ok(arg or ""):
        fail(f"Invalid --gpu-bind argument: {arg}")
    st.f["gpu_bind"] = arg


def _gpu_freq_ok(text: str) -> bool:
    def value_ok(v: str) -> bool:
        if v[:1].isdigit():
            n, end = strtol(v)
            return not v[end:] and n >= 0
        return v in ("low", "medium", "high", "highm1")

    if not text:
        return False
    for tok in text.split(","):
        if not tok:
            continue
        name, eq, val = tok.partition("=")
        if eq:
            if name != "memory" or not value_ok(val):
                return False
        elif not value_ok(tok) and tok != "verbose":
            return False
    return True


def _set_gpu_freq(st: State, opt: Option, arg: str | None) -> None:
    if not _gpu_freq_ok(arg or ""):
        fail(f"Invalid --gpu-freq argument: gpu:{arg}")
    st.f["gpu_freq"] = arg


def _set_gres(st: State, opt: Option, arg: str | None) -> None:
    if (arg or "").lower() in ("help", "list"):
        sys.stdout.write("Valid gres options are:\n")  # Spur configures no GRES plugins
        sys.stdout.flush()
        raise Exit(0)
    st.f["gres"] = arg


_GRES_FLAGS = ("allow-task-sharing", "disable-binding", "enforce-binding", "multiple-tasks-per-sharing",
               "one-task-per-sharing")


def _set_gres_flags(st: State, opt: Option, arg: str | None) -> None:
    flags: set[str] = set()
    for tok in (arg or "").split(","):
        if not tok:
            continue
        low = tok.lower()
        if low == "allow-task-sharing" and st.cmd != "srun":
            fail("--gres-flags=allow-task-sharing is only used with srun.")
        if low not in _GRES_FLAGS:
            fail(f"Invalid --gres-flags specification: {tok}")
        flags.add(low)
    if {"disable-binding", "enforce-binding"} <= flags:
        fail("Invalid --gres-flags combo: disable-binding and enforce-binding are mutually exclusive.")
    if {"one-task-per-sharing", "multiple-tasks-per-sharing"} <= flags:
        fail("Invalid --gres-flags combo: one-task-per-sharing and multiple-tasks-per-sharing are "
             "mutually exclusive.")
    if "one-task-per-sharing" in flags:
        fail("In order to use --gres-flags=one-task-per-sharing you must also have "
             "SelectTypeParameters=MULTIPLE_SHARING_GRES_PJ in your slurm.conf")
    st.f["gres_flags"] = arg


def _set_immediate(st: State, opt: Option, arg: str | None) -> None:
    st.f["immediate"] = 0 if arg is None else parse_int("immediate", arg, False)


def _set_jobid(st: State, opt: Option, arg: str | None) -> None:
    """``slurm_parse_step_str``: ``job[_task][.step]``; C ``atoi`` for the numbers."""
    text = arg or ""
    name, dot, step = text.partition(".")
    if dot and step not in ("batch", "extern", "interactive", "TBD") and not step[:1].isdigit():
        st.fatal(f"Bad step specified: {name}")
    job, under, task = name.partition("_")
    if under and not task[:1].isdigit():
        st.fatal(f"Bad job array element specified: {job}")
    value, _ = strtol(job)
    st.f["jobid"] = value
    if under:
        st.f["array_task_id"] = strtol(task)[0]
    else:
        st.f.pop("array_task_id", None)


def _set_kill_command(st: State, opt: Option, arg: str | None) -> None:
    from spurcore.signals import sig_name2num

    if arg is None:
        st.f["kill_command"] = 15
        return
    sig = sig_name2num(arg)
    if not sig:
        fail("Invalid --kill-command specification")
    st.f["kill_command"] = sig


def _set_kill_on_bad_exit(st: State, opt: Option, arg: str | None) -> None:
    st.f["kill_bad_exit"] = 1 if arg is None else parse_int("--kill-on-bad-exit", arg, False)


def _set_kill_on_invalid_dep(st: State, opt: Option, arg: str | None) -> None:
    text = (arg or "").lower()
    if text not in ("yes", "no"):
        fail("Invalid --kill-on-invalid-dep specification")
    st.f["kill_on_invalid_dep"] = 1 if text == "yes" else 0


#: parse_mail_type's names, in print_mail_type's order (how scontrol shows MailType).
MAIL_TYPES = ("ARRAY_TASKS", "INVALID_DEPEND", "BEGIN", "END", "FAIL", "REQUEUE", "STAGE_OUT",
              "TIME_LIMIT_50", "TIME_LIMIT_80", "TIME_LIMIT_90", "TIME_LIMIT")
_MAIL_ALL = ("INVALID_DEPEND", "BEGIN", "END", "FAIL", "REQUEUE", "STAGE_OUT")


def parse_mail_type(text: str) -> str | None:
    """``parse_mail_type`` + ``print_mail_type``: the normalized list ("NONE" for none), or
    None when no item is known (unknown items next to a known one are ignored, as Slurm)."""
    found: set[str] = set()
    for tok in text.split(","):
        up = tok.upper()
        if not tok:
            continue
        if up == "NONE":
            return "NONE"
        if up == "ALL":
            found.update(_MAIL_ALL)
        elif up in MAIL_TYPES:
            found.add(up)
    if not found:
        return None
    return ",".join(t for t in MAIL_TYPES if t in found)


def _set_mail_type(st: State, opt: Option, arg: str | None) -> None:
    value = parse_mail_type(arg or "")
    if value is None:
        fail("Invalid --mail-type specification")
    st.f["mail_type"] = value


def _set_max_threads(st: State, opt: Option, arg: str | None) -> None:
    value = parse_int("--threads", arg, True)
    if value > SRUN_MAX_THREADS:
        st.error(f"Thread value --threads={value} exceeds recommended limit of {SRUN_MAX_THREADS}")
    st.f["max_threads"] = value


def _set_oom_kill_step(st: State, opt: Option, arg: str | None) -> None:
    if arg is None:
        st.f["oom_kill_step"] = 1
        return
    value = parse_uint16(arg)
    if value is None or value > 1:
        fail("Invalid --oom-kill-step specification")
    st.f["oom_kill_step"] = value


def _set_mem(st: State, opt: Option, arg: str | None) -> None:
    _mbytes("mem", "--mem")(st, opt, arg)
    if st.cmd == "srun":  # srun stomps on an inherited --mem-per-cpu (slurm_opt.c FIXME)
        st.f.pop("mem_per_cpu", None)


_MEM_BIND_HELP = """\
Memory bind options:
    --mem-bind=         Bind memory to locality domains (ldom)
        nosort          avoid sorting pages at startup
        sort            sort pages at startup
        q[uiet]         quietly bind before task runs (default)
        v[erbose]       verbosely report binding before task runs
        no[ne]          don't bind tasks to memory (default)
        rank            bind by task rank
        local           bind to memory local to processor
        map_mem:<list>  specify a memory binding for each task
                        where <list> is <cpuid1>,<cpuid2>,...<cpuidN>
        mask_mem:<list> specify a memory binding mask for each tasks
                        where <list> is <mask1>,<mask2>,...<maskN>
        help            show this help message
"""

_CPU_BIND_HELP = "CPU bind options not supported with current configuration\n"


def _isvalue(text: str) -> bool:
    """slurm_resource_info.c ``_isvalue``: does a map/mask value start here?"""
    if text[:1].isdigit():
        return True
    i = 0
    while i < len(text) and text[i].lower() in _HEX:
        i += 1
    return i == len(text) or text[i] == ","


def _bind_tokens(text: str) -> list[str]:
    """Split on the commas not followed by a map/mask value."""
    out: list[str] = []
    cur: list[str] = []
    for i, c in enumerate(text):
        if c == "," and not _isvalue(text[i + 1:]):
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return out


def _expand_mult_ok(st: State, items: str, kind: str) -> bool:
    """``_expand_mult``: digits (hex digits for a mask), optional ``*count``."""
    mask = kind.startswith("mask")
    produced = False
    for tok in items.split(","):
        if not tok:
            continue
        if mask and tok.startswith("0x"):
            tok = tok[2:]
        head, star, count = tok.partition("*")
        if star:
            bad = next((c for c in count if not c.isdigit()), None)
            if bad is not None:
                st.error(f"Failed to validate number: *{count}, the offending character is {bad}")
                return False
            if not count or int(count) <= 0:
                st.error(f"Invalid {kind} multiplier: {count}")
                return False
        digits = _HEX if mask else "0123456789"
        bad = next((c for c in head if c.lower() not in digits), None)
        if bad is not None:
            st.error(f"Failed to validate number: {head}, the offending character is {bad}")
            return False
        produced = True
    if not produced:
        st.error(f"Failed to expand list: '{items}'")
        return False
    return True


def _map_list(st: State, tok: str, kind: str, what: str) -> bool:
    rest = tok.replace("=", ":", 1).split(":", 1)
    items = rest[1].replace("=", ":").split(":", 1)[0] if len(rest) > 1 else ""
    if not items:
        st.error(f'missing list for "--{what}={kind}:<list>"')
        return False
    return _expand_mult_ok(st, items, kind)


def verify_mem_bind(st: State, text: str) -> bool:
    """``slurm_verify_mem_bind``: True if valid; prints the help for ``help`` (then False)."""
    for tok in _bind_tokens(text):
        low = tok.lower()
        if low == "help":
            sys.stdout.write(_MEM_BIND_HELP)
            return False
        if low in ("p", "prefer", "q", "quiet", "v", "verbose", "no", "none", "rank", "local"):
            continue
        if low.startswith("map_mem") or low.startswith("mapmem"):
            if not _map_list(st, tok, "map_mem", "mem-bind"):
                return False
        elif low.startswith("mask_mem") or low.startswith("maskmem"):
            if not _map_list(st, tok, "mask_mem", "mem-bind"):
                return False
        else:
            st.error(f'unrecognized --mem-bind argument "{tok}"')
            return False
    return True


def _set_mem_bind(st: State, opt: Option, arg: str | None) -> None:
    if not verify_mem_bind(st, arg or ""):
        fail("")
    st.f["mem_bind"] = arg


def verify_cpu_bind(st: State, text: str) -> bool:
    """``slurm_verify_cpu_bind`` on a cluster without task affinity (Spur has none)."""
    logged = False
    for tok in _bind_tokens(text):
        low = tok.lower()
        if low == "help":
            sys.stdout.write(_CPU_BIND_HELP)
            return False
        if not logged:
            st.info("cluster configuration lacks support for cpu binding")
            logged = True
        if low in ("q", "quiet", "v", "verbose", "one_thread", "no", "none", "rank_ldom", "socket", "sockets",
                   "core", "cores", "thread", "threads", "ldom", "ldoms"):
            continue
        if low == "rank":
            st.info("Ignoring --cpu-bind=rank. Rank binding is obsolete.")
            continue
        for kind, alias in (("map_cpu", "mapcpu"), ("mask_cpu", "maskcpu"), ("map_ldom", "mapldom"),
                            ("mask_ldom", "maskldom")):
            if low.startswith(kind) or low.startswith(alias):
                if not _map_list(st, tok, kind, "cpu-bind"):
                    st.fatal("Failed to parse --cpu-bind= values.")
                break
        else:
            st.error(f'unrecognized --cpu-bind argument "{tok}"')
            st.fatal("Failed to parse --cpu-bind= values.")
    return True


def _set_get_user_env(st: State, opt: Option, arg: str | None) -> None:
    """``--get-user-env[=[timeout][mode]]``: a number, then S (short) or L (long login)."""
    st.f["get_user_env"] = True
    if arg is not None:
        end = strtol(arg)[1]
        if end < len(arg) and arg[end] not in "sSlL":
            fail("Invalid --get-user-env specification")


def _set_nice(st: State, opt: Option, arg: str | None) -> None:
    value = 100 if arg is None else strtol(arg)[0]  # strtoll: no digits means 0
    if abs(value) > NICE_OFFSET - 3:
        fail(f"Invalid --nice value, out of range (+/- {NICE_OFFSET - 3})")
    st.f["nice"] = value


def _set_no_kill(st: State, opt: Option, arg: str | None) -> None:
    if arg is None or arg.lower() == "set":
        st.f["no_kill"] = True
    elif arg.lower() in ("off", "no"):
        st.f["no_kill"] = False
    else:
        fail("Invalid --no-kill specification")


def _set_no_requeue(st: State, opt: Option, arg: str | None) -> None:
    st.f["requeue"] = 0


def _set_requeue(st: State, opt: Option, arg: str | None) -> None:
    st.f["requeue"] = 1
    if (arg or "").lower() == "expedite":
        st.f["expedite"] = True


def _set_nodefile(st: State, opt: Option, arg: str | None) -> None:
    st.f.pop("nodelist", None)
    st.f["nodefile"] = arg or ""


def _set_nodelist(st: State, opt: Option, arg: str | None) -> None:
    st.f.pop("nodefile", None)
    st.f["nodelist"] = arg or ""


def _str_to_nodes(text: str) -> tuple[int, str]:
    value, end = strtol(text)
    if not end:
        return -1, text
    rest = text[end:]
    if rest[:1] in ("k", "K"):
        value, rest = value * 1024, rest[1:]
    if rest[:1] in ("m", "M"):
        value, rest = value * 1024 * 1024, rest[1:]
    if value < 0 or value > INT_MAX:
        return -1, rest
    return value, rest


MAX_JOB_SIZE_BITMAP = 16384


def verify_node_count(text: str) -> tuple[int, int]:
    """``verify_node_count``: (min, max) with max 0 for "no maximum". Raises CliError(255)."""
    if "," in text or ":" in text:
        import re

        for tok in (t for t in re.split(r"[,\-:]", text) if t):
            value, end = strtol(tok)
            if not end or tok[end:] or value >= MAX_JOB_SIZE_BITMAP:
                fail(f'"{tok}" is not a valid node count')
        sizes = _job_sizes(text)
        if sizes is None:
            fail(f'"{text}" is not a valid node count')
        lo, hi = (min(sizes), max(sizes)) if sizes else (-1, -1)
    elif "-" in text:
        lo_s, _, hi_s = text.partition("-")
        lo, rest = _str_to_nodes(lo_s)
        if rest.strip():
            fail(f'"{lo_s}" is not a valid node count')
        if lo < 0:
            lo = 1
        hi, rest = _str_to_nodes(hi_s)
        if rest.strip():
            fail(f'"{hi_s}" is not a valid node count')
    else:
        lo, rest = _str_to_nodes(text)
        if rest.strip() or lo < 0:
            fail(f'"{text}" is not a valid node count')
        hi = lo
    if hi != 0 and hi < lo:
        fail(f"Maximum node count {hi} is less than minimum node count {lo}")
    return lo, hi


def _job_sizes(text: str) -> list[int] | None:
    """``bitfmt2int`` of a job size list (``1,4-8`` or ``2-16:2``), None when malformed."""
    if ":" in text:
        first, end = strtol(text)
        if text[end:end + 1] != "-":
            return None
        last, end2 = strtol(text[end + 1:])
        end2 += end + 1
        if text[end2:end2 + 1] != ":":
            return None
        step, end3 = strtol(text[end2 + 1:])
        if text[end2 + 1 + end3:] or last < first or step <= 0:
            return None
        return list(range(first, last, step))  # bitfmt2int stops before ``last``
    out: list[int] = []
    for tok in text.split(","):
        if not tok:
            break
        lo_s, dash, hi_s = tok.rpartition("-") if "-" in tok else ("", "", tok)
        lo = int(lo_s or 0) if dash else int(hi_s or 0)
        hi = int(hi_s or 0)
        if lo > hi:
            return None
        out.extend(range(lo, hi + 1))
    return out


def _set_nodes(st: State, opt: Option, arg: str | None) -> None:
    lo, hi = verify_node_count(arg or "")
    st.f["min_nodes"] = lo
    st.f["max_nodes"] = hi
    st.f["nodes_set"] = True


def _set_ntasks(st: State, opt: Option, arg: str | None) -> None:
    st.f["ntasks"] = parse_int("--ntasks", arg, True)
    st.f["ntasks_set"] = True


def _set_open_mode(st: State, opt: Option, arg: str | None) -> None:
    first = (arg or "")[:1].lower()
    if first == "a":
        st.f["open_mode"] = "append"
    elif first == "t":
        st.f["open_mode"] = "truncate"
    else:
        fail("Invalid --open-mode specification")


def _set_priority(st: State, opt: Option, arg: str | None) -> None:
    text = arg or ""
    if text.lower() == "top":
        st.f["priority"] = 0xFFFFFFFE - 1
        return
    value = strtol(text)[0]
    if value < 0:
        fail("Priority must be >= 0")
    if value >= 0xFFFFFFFE:
        fail(f"Priority must be < {0xFFFFFFFE}")
    st.f["priority"] = value


def _set_profile(st: State, opt: Option, arg: str | None) -> None:
    low = (arg or "").lower()
    if not any(k in low for k in ("none", "all", "energy", "task", "lustre", "network")):
        fail(f"invalid --profile={arg} option")
    st.f["profile"] = arg


def _set_propagate(st: State, opt: Option, arg: str | None) -> None:
    st.f["propagate"] = "ALL" if arg is None else arg


def _set_pty(st: State, opt: Option, arg: str | None) -> None:
    st.f["pty"] = arg if arg is not None else ""


def _set_quiet(st: State, opt: Option, arg: str | None) -> None:
    st.f["quiet"] = st.f.get("quiet", 0) + 1


def _set_verbose(st: State, opt: Option, arg: str | None) -> None:
    """A flag on the command line (``-vvv`` counts); a number in SBATCH_DEBUG/SLURM_DEBUG,
    which the first command-line ``-v`` replaces."""
    if arg is None:
        if st.f.get("verbose_by_env"):
            st.f["verbose"] = 0
            st.f["verbose_by_env"] = False
        st.f["verbose_by_cli"] = True
        st.f["verbose"] = st.f.get("verbose", 0) + 1
    elif not st.f.get("verbose_by_cli"):
        st.f["verbose_by_env"] = True
        st.f["verbose"] = parse_int("--verbose", arg, False)


def _set_relative(st: State, opt: Option, arg: str | None) -> None:
    st.f["relative"] = parse_int("--relative", arg, False)


def _set_resv_ports(st: State, opt: Option, arg: str | None) -> None:
    st.f["resv_port_cnt"] = 0 if arg is None else parse_int("--resv-port", arg, False)


def _set_segment(st: State, opt: Option, arg: str | None) -> None:
    value = parse_uint16(arg or "")
    if value is None:
        fail("Invalid --segment specification")
    st.f["segment_size"] = value


def _set_send_libs(st: State, opt: Option, arg: str | None) -> None:
    low = None if arg is None else arg.lower()
    if low is None or low in ("yes", "y"):
        st.f["send_libs"] = True
    elif low in ("no", "n"):
        st.f["send_libs"] = False
    else:
        fail("Invalid --send-libs specification")


def parse_signal_opts(text: str) -> tuple[int, int, str] | None:
    """``get_signal_opts``: ``[{R|B}:]<sig_num>[@sig_time]`` -> (signal, seconds, flags) with
    flags "", "B", "R" or "RB"; None where Slurm fails. The default time is 60 seconds."""
    from spurcore.signals import sig_name2num

    flags = ""
    rest = text
    if rest[:1] in ("R", "r"):
        flags += "R"
        rest = rest[1:]
    if rest[:1] in ("B", "b"):
        flags = "RB" if flags else "B"
        rest = rest[1:]
    if rest[:1] in ("R", "r") and "R" not in flags:
        flags = "RB" if flags else "R"
        rest = rest[1:]
    if rest[:1] == ":":
        rest = rest[1:]
    name, at, when = rest.partition("@")
    sig = sig_name2num(name) & 0xFFFF  # Slurm casts to uint16_t
    if sig < 1:
        return None
    if not at:
        return sig, 60, flags
    secs, end = strtol(when)
    if secs < 0 or secs > 0xFFFF or when[end:]:
        return None
    return sig, secs, flags


def _set_signal(st: State, opt: Option, arg: str | None) -> None:
    parsed = parse_signal_opts(arg or "")
    if parsed is None:
        fail("Invalid --signal specification")
    st.f["signal"], st.f["signal_time"], st.f["signal_flags"] = parsed


_LOG_LEVELS = ("quiet", "fatal", "error", "info", "verbose", "debug", "debug2", "debug3", "debug4", "debug5")


def _set_slurmd_debug(st: State, opt: Option, arg: str | None) -> None:
    text = arg or ""
    if text[:1].isdigit():
        level = strtol(text)[0]
    else:
        level = _LOG_LEVELS.index(text.lower()) if text.lower() in _LOG_LEVELS else NO_VAL16
    if st.uid != 0 and level != 2:
        fail("Use of --slurmd-debug is allowed only for root and SlurmUser(root)")
    st.f["slurmd_debug"] = level


def _set_switches(st: State, opt: Option, arg: str | None) -> None:
    count, at, _when = (arg or "").partition("@")
    st.f["req_switch"] = parse_int("--switches", count, True)


def _set_switch_req(st: State, opt: Option, arg: str | None) -> None:
    st.f["req_switch"] = parse_int("--switches", arg, True)


def _set_time(field: str, what: str) -> Callable[[State, Option, str | None], None]:
    def setter(st: State, opt: Option, arg: str | None) -> None:
        from spurcore.timefmt import parse_time_limit

        try:
            # time_str2mins rounds up to whole minutes; 0 and UNLIMITED mean no limit (None)
            st.f[field] = parse_time_limit(arg or "", round_up_to_minutes=True)
        except ValueError:
            fail(f"Invalid {what} specification")
    return setter


def _set_tree_width(st: State, opt: Option, arg: str | None) -> None:
    text = arg or ""
    if text.lower() == "off":
        st.f["tree_width"] = 0xFFFD
        return
    value = parse_uint16(text)
    if value is None:
        fail(f"Invalid --treewidth value: {text}")
    st.f["tree_width"] = value


def _set_wait_srun(st: State, opt: Option, arg: str | None) -> None:
    st.f["max_wait"] = parse_int("--wait", arg, False)


def _set_wait_all_nodes(st: State, opt: Option, arg: str | None) -> None:
    value = parse_int("--wait-all-nodes", arg, False) & 0xFFFF
    if value > 1:
        fail("Invalid --wait-all-nodes specification")
    st.f["wait_all_nodes"] = value


def _set_x11(st: State, opt: Option, arg: str | None) -> None:
    st.f["x11"] = "all" if arg is None else arg


# --------------------------------------------------------------------------- the table


class Option:
    """One option of Slurm's ``common_options``.

    ``longs``: long names, canonical first (more are aliases with the same effect);
    ``effect``: "real" (Spur acts on it), "recorded" (validated and stored in the job's
    ``options``, shown by scontrol, no effect: ``doc`` says which Slurm mechanism Spur lacks)
    or "cli" (it changes what the command itself does); ``early``: sbatch reads it from the
    command line only (Slurm's ``sbatch_early_pass``), never from ``#SBATCH`` lines."""

    __slots__ = ("longs", "short", "arg", "cmds", "setter", "fields", "effect", "doc", "early")

    def __init__(self, longs: str | tuple[str, ...], short: str, arg: int, cmds: int,
                 setter: Callable[[State, Option, str | None], None], effect: str, doc: str, *,
                 fields: tuple[str, ...] = (), early: bool = False) -> None:
        self.longs = (longs,) if isinstance(longs, str) else longs
        self.short = short
        self.arg = arg
        self.cmds = cmds
        self.setter = setter
        self.fields = fields
        self.effect = effect
        self.doc = doc
        self.early = early

    @property
    def name(self) -> str:
        return self.longs[0]

    def reset(self, st: State) -> None:
        for field in self.fields:
            st.f.pop(field, None)


R, C, X = "real", "recorded", "cli"
O = Option  # noqa: E741 - the table reads better with a one-letter constructor

#: Every option of sbatch, srun and salloc, in slurm_opt.c's ``common_options`` order (the
#: order glibc lists an ambiguous abbreviation's possibilities in).
OPTIONS: tuple[Option, ...] = (
    O("accel-bind", "", REQUIRED, SRUN, _set_accel_bind, C,
      "GPU/NIC binding of tasks: Spur has no accelerator binding", fields=("accel_bind",)),
    O("account", "A", REQUIRED, ALL, _string("account"), R,
      "account the job is charged to (shown by squeue, scontrol and sacct)", fields=("account",)),
    O("acctg-freq", "", REQUIRED, ALL, _set_acctg_freq, C,
      "accounting sampling intervals: Spur gathers no per-task usage samples", fields=("acctg_freq",)),
    O("array", "a", REQUIRED, SBATCH, _string("array"), R,
      "(controller) job array: the indexes are checked against MaxArraySize and each index runs "
      "as a task; default output slurm-%A_%a.out", fields=("array",)),
    O("autocomplete", "", REQUIRED, ALL, _autocomplete, X,
      "print the options matching the text (shell completion) and exit"),
    O("batch", "", REQUIRED, SBATCH, _string("batch"), C,
      "node features the batch host must have: Spur has no node features"),
    O("bcast", "", OPTIONAL, SRUN, _string("bcast"), C,
      "copy the executable to the nodes first: Spur has no sbcast", fields=("bcast",)),
    O("bcast-exclude", "", REQUIRED, SRUN, _string("bcast_exclude"), C,
      "library paths --send-libs skips: Spur has no sbcast", fields=("bcast_exclude",)),
    O("begin", "b", REQUIRED, ALL, _set_begin, R,
      "(controller) the job is not eligible before this time (Slurm's parse_time formats)", fields=("begin",)),
    O("bell", "", NO_ARG, SALLOC, _flag("bell"), X,
      "ring the terminal bell when the allocation is granted (stdout a terminal)", fields=("bell",)),
    O("bb", "", REQUIRED, ALL, _string("burst_buffer"), C,
      "burst buffer specification: Spur has no burst buffers", fields=("burst_buffer",)),
    O("bbf", "", REQUIRED, ALL, _string("burst_buffer_file"), C,
      "burst buffer specification file: Spur has no burst buffers", fields=("burst_buffer_file",)),
    O("cluster-constraint", "", REQUIRED, ALL, _string("c_constraint"), C,
      "federation cluster features: Spur has no federation"),
    O("chdir", "D", REQUIRED, ALL, _set_chdir, R,
      "working directory of the job (relative paths from where the command runs)", fields=("chdir",)),
    O("cluster", "", REQUIRED, ALL, _string("clusters"), C,
      "same as --clusters: Spur is one cluster", fields=("clusters",)),
    O("clusters", "M", REQUIRED, ALL, _string("clusters"), C,
      "clusters to submit to: Spur is one cluster (no slurmdbd multi-cluster)", fields=("clusters",)),
    O("comment", "", REQUIRED, ALL, _string("comment"), R,
      "free text stored with the job (scontrol and sacct Comment)", fields=("comment",)),
    O("compress", "", OPTIONAL, SRUN, _set_compress, C,
      "compression for --bcast: Spur has no sbcast", fields=("compress",)),
    O("consolidate-segments", "", NO_ARG, ALL, _flag("consolidate_segments"), C,
      "pack topology segments: Spur has no topology plugin"),
    O("container", "", REQUIRED, ALL, _string("container"), C,
      "OCI bundle to run in: Spur has no container runtime support"),
    O("container-id", "", REQUIRED, ALL, _string("container_id"), C,
      "OCI container id: Spur has no container runtime support"),
    O("context", "", REQUIRED, ALL, _string("context"), C,
      "SELinux context: Spur sets no security context"),
    O("contiguous", "", NO_ARG, ALL, _flag("contiguous"), C,
      "contiguous node names: Spur's scheduler has no topology"),
    O("constraint", "C", REQUIRED, ALL, _string("constraint"), R,
      "required node features (&, OR, [..]): the scheduler uses only nodes whose Features match (controller)",
      fields=("constraint",)),
    O("core-spec", "S", REQUIRED, ALL, _set_core_spec, C,
      "cores reserved for the system: Spur has no core specialization", fields=("core_spec",)),
    O("cores-per-socket", "", REQUIRED, ALL, _int("cores_per_socket", "--cores-per-socket"), C,
      "node shape requirement: Spur nodes report CPUs only", fields=("cores_per_socket",)),
    O(("cpu-bind", "cpu_bind"), "", REQUIRED, SRUN, _string("cpu_bind"), C,
      "CPU binding of tasks: Spur has no task affinity plugin", fields=("cpu_bind",)),
    O("cpu-freq", "", REQUIRED, ALL, _set_cpu_freq, C,
      "CPU frequency/governor: Spur does not manage CPU frequency", fields=("cpu_freq",)),
    O("cpus-per-gpu", "", REQUIRED, ALL, _int("cpus_per_gpu", "--cpus-per-gpu"), R,
      "(controller) CPUs allocated per GPU", fields=("cpus_per_gpu",)),
    O("cpus-per-task", "c", REQUIRED, ALL, _set_cpus_per_task, R,
      "CPUs allocated to each task", fields=("cpus_per_task", "cpus_set")),
    O("deadline", "", REQUIRED, ALL, _set_deadline, R,
      "(controller) the job must be able to end by this time, else it ends as DEADLINE", fields=("deadline",)),
    O("debugger-test", "", NO_ARG, SRUN, _flag("debugger_test"), C,
      "parallel debugger test mode: Spur has no debugger support"),
    O("delay-boot", "", REQUIRED, ALL, _set_delay_boot, C,
      "wait before rebooting nodes for features: Spur never reboots nodes", fields=("delay_boot",)),
    O("dependency", "d", REQUIRED, ALL, _string("dependency"), R,
      "start only after other jobs (afterok:ID ...), evaluated by the controller",
      fields=("dependency",)),
    O("disable-status", "X", NO_ARG, SRUN, _flag("disable_status"), R,
      "srun: a single Ctrl-C is forwarded to the tasks instead of printing their states", fields=("disable_status",)),
    O("distribution", "m", REQUIRED, ALL, _set_distribution, R,
      "task layout (block, cyclic, plane=N, arbitrary): srun lays a step's tasks out so; the "
      "socket/core levels are not acted on", fields=("distribution", "plane_size")),
    O("epilog", "", REQUIRED, SRUN, _string("epilog"), R,
      "program srun runs after the step ends (SLURM_SCRIPT_CONTEXT=epilog_srun)"),
    O("error", "e", REQUIRED, SBATCH | SRUN, _stream("efname"), R,
      "standard error file pattern (%j %x %u %N %A %a %%); none = /dev/null", fields=("efname",)),
    O("exact", "", NO_ARG, SRUN, _flag("exact"), R,
      "srun: the step holds only the CPUs it asks for (implied by -c), not all of its nodes' CPUs", fields=("exact",)),
    O("exclude", "x", REQUIRED, ALL, _string("exclude"), R,
      "(controller) hosts the job must not use (a hostlist, or a file when it contains /)", fields=("exclude",)),
    O("exclusive", "", OPTIONAL, ALL, _set_exclusive, R,
      "(controller) whole nodes for the job (=user, =mcs, =topo stored as given)",
      fields=("shared", "step_exclusive", "exact")),
    O("export", "", REQUIRED, SBATCH | SRUN, _string("export"), R,
      "environment passed to the job: ALL, NONE, NIL or a VAR[=value] list", fields=("export",)),
    O("export-file", "", REQUIRED, SBATCH, _string("export_file"), R,
      "read the job's environment from a file or descriptor (NUL separated VAR=value)",
      fields=("export_file",)),
    O("external", "", NO_ARG, SBATCH, _set_external, X,
      "an external job without a script: refused by Spur (no external job tracking)",
      fields=("external",)),
    O("external-launcher", "", OPTIONAL, SRUN, _flag("external_launcher"), C,
      "step for an MPI launcher's own daemons: Spur runs every step the same way"),
    O("extra", "", REQUIRED, ALL, _string("extra"), C,
      "node extra-field constraint: Spur nodes have no Extra field"),
    O("extra-node-info", "B", REQUIRED, ALL, _set_extra_node_info, C,
      "sockets:cores:threads per node: Spur nodes report CPUs only",
      fields=("sockets_per_node", "cores_per_socket", "threads_per_core", "extra_set")),
    O("get-user-env", "", OPTIONAL, SBATCH, _set_get_user_env, C,
      "load the user's login environment ([timeout][S or L]): Spur exports the submit environment only"),
    O("gid", "", REQUIRED, SBATCH, _set_gid, R,
      "root only: run the job with this group", fields=("gid",)),
    O("gpu-bind", "", REQUIRED, ALL, _set_gpu_bind, C,
      "GPU binding: Spur does not bind tasks to GPUs", fields=("gpu_bind",)),
    O("gpu-freq", "", REQUIRED, ALL, _set_gpu_freq, C,
      "GPU frequency: Spur does not manage GPU clocks", fields=("gpu_freq",)),
    O("gpus", "G", REQUIRED, ALL, _string("gpus"), R,
      "(controller) GPUs for the whole job ([type:]count), spread over its nodes", fields=("gpus",)),
    O("gpus-per-node", "", REQUIRED, ALL, _string("gpus_per_node"), R,
      "(controller) GPUs on each node ([type:]count); CUDA_VISIBLE_DEVICES set in the job", fields=("gpus_per_node",)),
    O("gpus-per-socket", "", REQUIRED, ALL, _string("gpus_per_socket"), C,
      "GPUs per socket: Spur nodes report CPUs only, no sockets", fields=("gpus_per_socket",)),
    O("gpus-per-task", "", REQUIRED, ALL, _string("gpus_per_task"), R,
      "(controller) GPUs per task ([type:]count)", fields=("gpus_per_task",)),
    O("gres", "", REQUIRED, ALL, _set_gres, R,
      "(controller) generic resources per node (name[:type]:count; GPUs are scheduled and confined)", fields=("gres",)),
    O("gres-flags", "", REQUIRED, ALL, _set_gres_flags, C,
      "GRES binding flags: Spur does not tie GRES to CPUs", fields=("gres_flags",)),
    O("help", "h", NO_ARG, ALL, _help, X, "print the help and exit", early=True),
    O(("het-group", "pack-group"), "", REQUIRED, SRUN, _string("het_group"), C,
      "heterogeneous job component: Spur has no heterogeneous jobs", fields=("het_group",)),
    O("hint", "", REQUIRED, ALL, _string("hint"), C,
      "task placement hints: Spur has no task affinity", fields=("hint",)),
    O("hold", "H", NO_ARG, ALL, _flag("hold"), R,
      "submit the job held (scontrol release starts it)", fields=("hold",)),
    O("ignore-pbs", "", NO_ARG, SBATCH, _flag("ignore_pbs"), X,
      "ignore #PBS/#BSUB lines (Spur never reads them)"),
    O("immediate", "I", OPTIONAL, SALLOC | SRUN, _set_immediate, R,
      "give up if the job has not started within N seconds (bare -I: 1): the request is revoked "
      "(Requested nodes are busy, exit 1)", fields=("immediate",)),
    O("input", "i", REQUIRED, SBATCH | SRUN, _stream("ifname"), R,
      "standard input file pattern; none = /dev/null", fields=("ifname",)),
    O("interactive", "", NO_ARG, SRUN, _flag("interactive"), C,
      "the salloc interactive step: Spur has no interactive step"),
    O("jobid", "", REQUIRED, SRUN, _set_jobid, R,
      "srun: run the step in this existing allocation (from outside it too)", fields=("jobid", "array_task_id")),
    O("job-name", "J", REQUIRED, ALL, _string("job_name"), R, "job name", fields=("job_name",)),
    O("kill-command", "K", OPTIONAL, SALLOC, _set_kill_command, R,
      "the signal salloc sends its command when the allocation is revoked (scancel, time "
      "limit; bare -K: SIGTERM)", fields=("kill_command",)),
    O("kill-on-bad-exit", "K", OPTIONAL, SRUN, _set_kill_on_bad_exit, R,
      "srun: end the step when any task exits non-zero", fields=("kill_bad_exit",)),
    O("kill-on-invalid-dep", "", REQUIRED, SBATCH, _set_kill_on_invalid_dep, R,
      "(controller) yes: cancel the job when its dependency can never be met", fields=("kill_on_invalid_dep",)),
    O("label", "l", NO_ARG, SRUN, _flag("label"), R,
      "srun: prefix each output line with its task number", fields=("label",)),
    O("licenses", "L", REQUIRED, ALL, _string("licenses"), C,
      "licenses the job needs: Spur has no license counting"),
    O("mail-type", "", REQUIRED, ALL, _set_mail_type, C,
      "events to mail about (checked against Slurm's list): Spur sends no mail",
      fields=("mail_type",)),
    O("mail-user", "", REQUIRED, ALL, _string("mail_user"), C,
      "who gets the mail: Spur sends no mail", fields=("mail_user",)),
    O("threads", "T", REQUIRED, SRUN, _set_max_threads, C,
      "srun's launch fan-out threads: Spur's srun talks to one agent", fields=("max_threads",)),
    O("mcs-label", "", REQUIRED, ALL, _string("mcs_label"), C,
      "MCS label: Spur has no MCS plugin"),
    O("mem", "", REQUIRED, ALL, _set_mem, R,
      "memory per node (K, M, G, T suffixes; MB default)", fields=("mem",)),
    O("mem-bind", "", REQUIRED, ALL, _set_mem_bind, C,
      "NUMA memory binding: Spur has no task affinity", fields=("mem_bind",)),
    O("mem-per-cpu", "", REQUIRED, ALL, _mbytes("mem_per_cpu", "--mem-per-cpu"), R,
      "(controller) memory per allocated CPU (excludes --mem and --mem-per-gpu)", fields=("mem_per_cpu",)),
    O("mem-per-gpu", "", REQUIRED, ALL, _mbytes("mem_per_gpu", "--mem-per-gpu"), R,
      "(controller) memory per allocated GPU", fields=("mem_per_gpu",)),
    O("mincpus", "", REQUIRED, ALL, _int("pn_min_cpus", "--mincpus"), R,
      "minimum CPUs per node: the job gets at least that many on each (controller)", fields=("pn_min_cpus",)),
    O("mpi", "", REQUIRED, SRUN, _string("mpi_type"), R,
      "srun step option: MPI plugin type, none or pmi2 (list prints them); pmi2 (the default) serves PMI-1/PMI-2 to MPICH", fields=("mpi_type",)),
    O("msg-timeout", "", REQUIRED, SRUN, _int("msg_timeout", "--msg-timeout"), C,
      "srun's message timeout: Spur's RPC timeouts are its own", fields=("msg_timeout",)),
    O("multi-prog", "", NO_ARG, SRUN, _flag("multi_prog"), R,
      "a program per task from an MPMD file (ranks, program, arguments with %t and %o; without -n, "
      "the file's ranks make the tasks): spurcore/multiprog.py",
      fields=("multi_prog",)),
    O("network", "", REQUIRED, ALL, _string("network"), C,
      "interconnect options: Spur has no switch plugin"),
    O("nice", "", OPTIONAL, ALL, _set_nice, R,
      "priority adjustment (bare --nice: 100): subtracted from the job's priority, as "
      "priority/multifactor does (shown as Nice)", fields=("nice",)),
    O("no-allocate", "Z", NO_ARG, SRUN, _flag("no_alloc"), C,
      "srun on nodes without an allocation (root): Spur always allocates", fields=("no_alloc",)),
    O("no-bell", "", NO_ARG, SALLOC, _flag("no_bell"), X,
      "never ring the terminal bell (by default it rings after a wait of over 10 s)"),
    O("no-kill", "k", OPTIONAL, ALL, _set_no_kill, C,
      "keep the job when a node fails: Spur ends a job whose node fails", fields=("no_kill",)),
    O("no-shell", "", NO_ARG, SALLOC, _flag("no_shell"), R,
      "salloc exits once the allocation is granted, running no command; the job keeps it until "
      "scancel or its time limit"),
    O("no-requeue", "", NO_ARG, SBATCH, _set_no_requeue, R,
      "(controller) the job may not be requeued", fields=("requeue", "expedite")),
    O("nodefile", "F", REQUIRED, ALL, _set_nodefile, R,
      "(controller) like --nodelist, the hosts read from a file", fields=("nodefile", "nodelist")),
    O("nodelist", "w", REQUIRED, ALL, _set_nodelist, R,
      "(controller) hosts the job must include (a hostlist, or a file when it contains /); "
      "without -N the node count is the number of hosts",
      fields=("nodelist", "nodefile")),
    O("nodes", "N", REQUIRED, ALL, _set_nodes, R,
      "node count (min[-max] or a size list; Spur allocates the minimum)",
      fields=("min_nodes", "max_nodes", "nodes_set")),
    O("ntasks", "n", REQUIRED, ALL, _set_ntasks, R, "number of tasks", fields=("ntasks", "ntasks_set")),
    O("ntasks-per-core", "", REQUIRED, ALL, _int("ntasks_per_core", "--ntasks-per-core"), C,
      "tasks per core: Spur nodes report CPUs only", fields=("ntasks_per_core",)),
    O("ntasks-per-gpu", "", REQUIRED, ALL, _int("ntasks_per_gpu", "--ntasks-per-gpu"), C,
      "tasks per GPU: Spur lays tasks out by CPUs, not GPUs", fields=("ntasks_per_gpu",)),
    O(("ntasks-per-node", "tasks-per-node"), "", REQUIRED, ALL, _int("ntasks_per_node", "--ntasks-per-node"), R,
      "tasks per node: with -N the task count, with -n the node count (layout: controller)",
      fields=("ntasks_per_node",)),
    O("ntasks-per-socket", "", REQUIRED, ALL, _int("ntasks_per_socket", "--ntasks-per-socket"), C,
      "tasks per socket: Spur nodes report CPUs only", fields=("ntasks_per_socket",)),
    O("ntasks-per-tres", "", REQUIRED, ALL, _int("ntasks_per_tres", "--ntasks-per-tres"), C,
      "tasks per GPU (older name): Spur lays tasks out by CPUs, not GPUs", fields=("ntasks_per_tres",)),
    O("oom-kill-step", "", OPTIONAL, ALL, _set_oom_kill_step, C,
      "end the step at the first OOM kill: Spur records OUT_OF_MEMORY but kills nothing more",
      fields=("oom_kill_step",)),
    O("open-mode", "", REQUIRED, SBATCH | SRUN, _set_open_mode, R,
      "output files: append or truncate", fields=("open_mode",)),
    O("output", "o", REQUIRED, SBATCH | SRUN, _stream("ofname"), R,
      "standard output file pattern (%j %x %u %N %A %a %%); none = /dev/null", fields=("ofname",)),
    O("overcommit", "O", NO_ARG, ALL, _flag("overcommit"), R,
      "more tasks than CPUs: a job gets -c CPUs per node as if one task ran there (not with "
      "--exclusive), SLURM_OVERCOMMIT=1; a step runs its tasks on the CPUs it gets", fields=("overcommit",)),
    O("overlap", "", OPTIONAL, SRUN, _set_overlap, R,
      "srun: the step may share CPUs with other steps (it holds none)", fields=("overlap", "step_exclusive")),
    O("oversubscribe", "s", NO_ARG, ALL, _set_oversubscribe, C,
      "share nodes with other jobs: stored; Spur's scheduler packs by free CPUs",
      fields=("shared", "step_exclusive")),
    O("parsable", "", NO_ARG, SBATCH, _flag("parsable"), X, "print only the job id"),
    O("partition", "p", REQUIRED, ALL, _string("partition"), R,
      "partition (a comma list is passed to the controller)", fields=("partition",)),
    O("prefer", "", REQUIRED, ALL, _string("prefer"), C,
      "preferred node features: Spur nodes have no features"),
    O("preserve-env", "E", NO_ARG, SRUN, _flag("preserve_env"), R,
      "the tasks keep srun's SLURM_NTASKS, SLURM_NPROCS, SLURM_NNODES and SLURM_NODELIST (the job's) "
      "instead of the step's counts", fields=("preserve_env",)),
    O("priority", "", REQUIRED, ALL, _set_priority, R,
      "(controller) an operator's value (TOP: the highest) is the job's fixed priority, its array "
      "tasks' too; 0 holds the job (JobHeldUser); other users' non-zero values are ignored, as in Slurm",
      fields=("priority",)),
    O("profile", "", REQUIRED, ALL, _set_profile, C,
      "HDF5 profiling: Spur gathers no profiles", fields=("profile",)),
    O("prolog", "", REQUIRED, SRUN, _string("prolog"), R,
      "program srun runs once the step exists, before its launch (the step's command as its "
      "arguments, SLURM_SCRIPT_CONTEXT=prolog_srun); if it fails the step is aborted"),
    O("propagate", "", OPTIONAL, SBATCH | SRUN, _set_propagate, C,
      "resource limits copied to the job: Spur's agents apply their own limits",
      fields=("propagate",)),
    O("pty", "", OPTIONAL, SRUN, _set_pty, R,
      "srun: task 0 runs on a pseudo-terminal (an interactive shell)", fields=("pty",)),
    O("qos", "q", REQUIRED, ALL, _string("qos"), R,
      "quality of service: with accounts set up (sacctmgr), it must be one the association may "
      "use; its limits and priority factor apply (controller)", fields=("qos",)),
    O("quiet", "Q", NO_ARG, ALL, _set_quiet, X, "print no informational messages", early=True,
      fields=("quiet",)),
    O("quit-on-interrupt", "", NO_ARG, SRUN, _flag("quit_on_interrupt"), R,
      "srun: the first Ctrl-C ends the step (default: it prints the tasks' states)", fields=("quit_on_interrupt",)),
    O("reboot", "", NO_ARG, ALL, _flag("reboot"), C, "reboot the nodes first: Spur never reboots nodes"),
    O("relative", "r", REQUIRED, SRUN, _set_relative, R,
      "srun: start the step at node N of the allocation", fields=("relative",)),
    O("requeue", "", OPTIONAL, SBATCH, _set_requeue, R,
      "(controller) the job may be requeued (=expedite stored)", fields=("requeue", "expedite")),
    O("resources", "", REQUIRED, ALL, _string("resources"), C,
      "resources (licenses) the job needs: Spur has no license counting"),
    O("reservation", "", REQUIRED, ALL, _string("reservation"), C,
      "run in a reservation: Spur has no reservations"),
    O("resv-ports", "", OPTIONAL, ALL, _set_resv_ports, C,
      "reserve network ports: Spur reserves none", fields=("resv_port_cnt",)),
    O("segment", "", REQUIRED, ALL, _set_segment, C,
      "topology segment size: Spur has no topology plugin", fields=("segment_size",)),
    O("send-libs", "", OPTIONAL, SRUN, _set_send_libs, C,
      "broadcast the executable's libraries: Spur has no sbcast", fields=("send_libs",)),
    O("signal", "", REQUIRED, ALL, _set_signal, R,
      "(controller) signal the job this long before its time limit ([R or B:]sig[@secs], default 60 s)",
      fields=("signal", "signal_time", "signal_flags")),
    O("slurmd-debug", "", REQUIRED, SRUN, _set_slurmd_debug, C,
      "slurmstepd log level (root): Spur's agent logs on its own", fields=("slurmd_debug",)),
    O("sockets-per-node", "", REQUIRED, ALL, _int("sockets_per_node", "--sockets-per-node"), C,
      "node shape requirement: Spur nodes report CPUs only", fields=("sockets_per_node",)),
    O("spread-job", "", NO_ARG, ALL, _flag("spread_job"), C,
      "spread over as many nodes as possible: stored; Spur allocates -N nodes"),
    O("spread-segments", "", NO_ARG, ALL, _flag("spread_segments"), C,
      "spread over topology segments: Spur has no topology plugin"),
    O("stepmgr", "", NO_ARG, ALL, _flag("stepmgr"), C,
      "step management in slurmstepd: Spur's controller manages steps", fields=("stepmgr",)),
    O("switch-req", "", REQUIRED, ALL, _set_switch_req, C,
      "(environment only) switch count: Spur has no topology plugin", fields=("req_switch",)),
    O("switch-wait", "", REQUIRED, ALL, _string("wait4switch"), C,
      "(environment only) switch wait: Spur has no topology plugin", fields=("wait4switch",)),
    O("switches", "", REQUIRED, ALL, _set_switches, C,
      "max leaf switches[@wait]: Spur has no topology plugin", fields=("req_switch",)),
    O("task-epilog", "", REQUIRED, SRUN, _string("task_epilog"), C,
      "program run after each task: not run by Spur's agent yet"),
    O("task-prolog", "", REQUIRED, SRUN, _string("task_prolog"), R,
      "program run as the user before each task's exec, with its environment: printed lines "
      "export NAME=value, unset NAME and print TEXT act as in Slurm"),
    O("test-only", "", NO_ARG, SBATCH | SRUN, _flag("test_only"), X,
      "ask the controller when and where the job would start; submit nothing",
      fields=("test_only",)),
    O("thread-spec", "", REQUIRED, ALL, _set_thread_spec, C,
      "threads reserved for the system: Spur has no core specialization", fields=("core_spec",)),
    O("threads-per-core", "", REQUIRED, ALL, _int("threads_per_core", "--threads-per-core"), C,
      "node shape requirement: Spur nodes report CPUs only", fields=("threads_per_core",)),
    O("time", "t", REQUIRED, ALL, _set_time("time_limit", "--time"), R,
      "time limit (minutes, M:S, H:M:S, D-H[:M[:S]]; 0 or UNLIMITED: none)", fields=("time_limit",)),
    O("time-min", "", REQUIRED, ALL, _set_time("time_min", "--time-min"), C,
      "minimum time limit: the --deadline check uses it; backfill plans with the time limit "
      "(shown as TimeMin)", fields=("time_min",)),
    O("tmp", "", REQUIRED, ALL, _mbytes("tmp", "--tmp"), C,
      "temporary disk per node: Spur nodes report no disk", fields=("tmp",)),
    O("treewidth", "", REQUIRED, SRUN, _set_tree_width, C,
      "srun's message fan-out: Spur's srun talks to one agent", fields=("tree_width",)),
    O("tres-bind", "", REQUIRED, ALL, _string("tres_bind"), C,
      "TRES binding: Spur has no GRES binding", fields=("tres_bind",)),
    O("tres-per-task", "", REQUIRED, ALL, _string("tres_per_task"), C,
      "TRES per task (cpu=N sets --cpus-per-task, as in Slurm)", fields=("tres_per_task",)),
    O("uid", "", REQUIRED, SBATCH, _set_uid, R, "root only: run the job as this user",
      fields=("uid", "user")),
    O("unbuffered", "u", NO_ARG, SRUN, _flag("unbuffered"), R,
      "srun: output is relayed as it comes, not line by line", fields=("unbuffered",)),
    O("use-min-nodes", "", NO_ARG, ALL, _flag("use_min_nodes"), C,
      "prefer the smaller node count of a range: Spur always allocates the minimum"),
    O("verbose", "v", NO_ARG, ALL, _set_verbose, X, "more messages (repeatable)", early=True,
      fields=("verbose", "verbose_by_env", "verbose_by_cli")),
    O("version", "V", NO_ARG, ALL, _version, X, "print the version and exit", early=True),
    O("usage", "", NO_ARG, ALL, _usage, X, "print the short usage and exit", early=True),
    O("wait", "W", NO_ARG, SBATCH, _flag("wait"), X,
      "sbatch: wait for the job to end and exit with its exit code", fields=("wait",)),
    O("wait-all-nodes", "", REQUIRED, SALLOC | SBATCH, _set_wait_all_nodes, C,
      "wait for every node to boot: Spur nodes are always up when allocated",
      fields=("wait_all_nodes",)),
    O("wait", "W", REQUIRED, SRUN, _set_wait_srun, R,
      "srun: end the step N s after the first task exits", fields=("max_wait",)),
    O("wait-for-children", "", NO_ARG, SRUN, _flag("wait_for_children"), C,
      "wait for the tasks' children too: Spur waits for the task's process group"),
    O("wckey", "", REQUIRED, ALL, _string("wckey"), C,
      "workload characterization key: stored and shown; Spur has no WCKey accounting",
      fields=("wckey",)),
    O("whole", "", NO_ARG, SRUN, _flag("whole"), R,
      "the step gets every CPU the job has on its nodes, even with -c (which implies --exact)",
      fields=("whole",)),
    O("wrap", "", REQUIRED, SBATCH, _string("wrap"), X,
      "the job is this shell command (a /bin/sh script is written)", early=True, fields=("wrap",)),
    O("x11", "", OPTIONAL, SALLOC | SRUN, _set_x11, C, "X11 forwarding: Spur forwards no X11",
      fields=("x11",)),
)

#: Options that exist only as environment variables (no command-line name).
ENV_ONLY = frozenset({"switch-req", "switch-wait"})

#: Input environment variables in Slurm's processing order (sbatch/opt.c, srun/opt.c,
#: salloc/opt.c ``env_vars``): (variable, option). A later one overrides an earlier one.
ENV_VARS: dict[str, tuple[tuple[str, str], ...]] = {
    "sbatch": (
        ("SBATCH_IGNORE_PBS", "ignore-pbs"), ("SBATCH_DEBUG", "verbose"),
        ("SBATCH_ACCOUNT", "account"), ("SBATCH_ARRAY_INX", "array"), ("SBATCH_ACCTG_FREQ", "acctg-freq"),
        ("SBATCH_BATCH", "batch"), ("SBATCH_BURST_BUFFER", "bb"),
        ("SBATCH_CLUSTER_CONSTRAINT", "cluster-constraint"), ("SBATCH_CLUSTERS", "clusters"),
        ("SLURM_CLUSTERS", "clusters"), ("SBATCH_CONSOLIDATE_SEGMENTS", "consolidate-segments"),
        ("SBATCH_CONTAINER", "container"), ("SBATCH_CONTAINER_ID", "container-id"),
        ("SBATCH_CONSTRAINT", "constraint"), ("SBATCH_CORE_SPEC", "core-spec"),
        ("SBATCH_CPU_FREQ_REQ", "cpu-freq"), ("SBATCH_CPUS_PER_GPU", "cpus-per-gpu"),
        ("SBATCH_DELAY_BOOT", "delay-boot"), ("SBATCH_DISTRIBUTION", "distribution"),
        ("SBATCH_EXCLUSIVE", "exclusive"), ("SBATCH_EXPORT", "export"), ("SBATCH_GET_USER_ENV", "get-user-env"),
        ("SBATCH_GRES", "gres"), ("SBATCH_GRES_FLAGS", "gres-flags"), ("SBATCH_GPUS", "gpus"),
        ("SBATCH_GPU_BIND", "gpu-bind"), ("SBATCH_GPU_FREQ", "gpu-freq"),
        ("SBATCH_GPUS_PER_NODE", "gpus-per-node"), ("SBATCH_GPUS_PER_SOCKET", "gpus-per-socket"),
        ("SBATCH_GPUS_PER_TASK", "gpus-per-task"), ("SLURM_HINT", "hint"), ("SBATCH_HINT", "hint"),
        ("SBATCH_JOB_NAME", "job-name"), ("SBATCH_MEM_BIND", "mem-bind"), ("SBATCH_MEM_PER_CPU", "mem-per-cpu"),
        ("SBATCH_MEM_PER_GPU", "mem-per-gpu"), ("SBATCH_MEM_PER_NODE", "mem"), ("SBATCH_NETWORK", "network"),
        ("SBATCH_NO_KILL", "no-kill"), ("SBATCH_NO_REQUEUE", "no-requeue"), ("SBATCH_OPEN_MODE", "open-mode"),
        ("SBATCH_OVERCOMMIT", "overcommit"), ("SBATCH_PARTITION", "partition"), ("SBATCH_PROFILE", "profile"),
        ("SBATCH_QOS", "qos"), ("SBATCH_REQ_SWITCH", "switch-req"), ("SBATCH_REQUEUE", "requeue"),
        ("SBATCH_RESERVATION", "reservation"), ("SBATCH_SEGMENT_SIZE", "segment"), ("SBATCH_SIGNAL", "signal"),
        ("SBATCH_SPREAD_JOB", "spread-job"), ("SBATCH_SPREAD_SEGMENTS", "spread-segments"),
        ("SBATCH_THREAD_SPEC", "thread-spec"), ("SBATCH_THREADS_PER_CORE", "threads-per-core"),
        ("SBATCH_TIMELIMIT", "time"), ("SBATCH_TRES_BIND", "tres-bind"), ("SBATCH_TRES_PER_TASK", "tres-per-task"),
        ("SBATCH_USE_MIN_NODES", "use-min-nodes"), ("SBATCH_WAIT", "wait"),
        ("SBATCH_WAIT_ALL_NODES", "wait-all-nodes"), ("SBATCH_WAIT4SWITCH", "switch-wait"),
        ("SBATCH_WCKEY", "wckey"), ("SBATCH_ERROR", "error"), ("SBATCH_INPUT", "input"),
        ("SBATCH_OUTPUT", "output"),
    ),
    "srun": (
        ("SLURM_ACCOUNT", "account"), ("SLURM_ACCTG_FREQ", "acctg-freq"), ("SLURM_BCAST", "bcast"),
        ("SLURM_BCAST_EXCLUDE", "bcast-exclude"), ("SLURM_BURST_BUFFER", "bb"), ("SLURM_CLUSTERS", "clusters"),
        ("SLURM_CLUSTER_CONSTRAINT", "cluster-constraint"), ("SLURM_COMPRESS", "compress"),
        ("SLURM_CONSOLIDATE_SEGMENTS", "consolidate-segments"), ("SLURM_CONSTRAINT", "constraint"),
        ("SLURM_CORE_SPEC", "core-spec"), ("SLURM_CPUS_PER_TASK", "cpus-per-task"),
        ("SLURM_CPU_BIND", "cpu-bind"), ("SLURM_CPU_FREQ_REQ", "cpu-freq"),
        ("SLURM_CPUS_PER_GPU", "cpus-per-gpu"), ("SLURM_DELAY_BOOT", "delay-boot"),
        ("SLURM_DEPENDENCY", "dependency"), ("SLURM_DISABLE_STATUS", "disable-status"),
        ("SLURM_DISTRIBUTION", "distribution"), ("SLURM_EPILOG", "epilog"), ("SLURM_EXACT", "exact"),
        ("SLURM_EXCLUSIVE", "exclusive"), ("SLURM_EXPORT_ENV", "export"), ("SRUN_EXPORT_ENV", "export"),
        ("SLURM_EXTERNAL_LAUNCHER", "external-launcher"), ("SLURM_GPUS", "gpus"), ("SLURM_GPU_BIND", "gpu-bind"),
        ("SLURM_GPU_FREQ", "gpu-freq"), ("SLURM_GPUS_PER_NODE", "gpus-per-node"),
        ("SLURM_GPUS_PER_SOCKET", "gpus-per-socket"), ("SLURM_GPUS_PER_TASK", "gpus-per-task"),
        ("SLURM_GRES", "gres"), ("SLURM_GRES_FLAGS", "gres-flags"), ("SLURM_HINT", "hint"),
        ("SLURM_JOB_ID", "jobid"), ("SLURM_JOB_NAME", "job-name"), ("SLURM_JOB_NUM_NODES", "nodes"),
        ("SLURM_KILL_BAD_EXIT", "kill-on-bad-exit"), ("SLURM_LABELIO", "label"), ("SLURM_MEM_BIND", "mem-bind"),
        ("SLURM_MEM_PER_CPU", "mem-per-cpu"), ("SLURM_MEM_PER_GPU", "mem-per-gpu"), ("SLURM_MEM_PER_NODE", "mem"),
        ("SLURM_MPI_TYPE", "mpi"), ("SLURM_NCORES_PER_SOCKET", "cores-per-socket"), ("SLURM_NETWORK", "network"),
        ("SLURM_NO_KILL", "no-kill"), ("SLURM_NPROCS", "ntasks"), ("SLURM_NTASKS", "ntasks"),
        ("SLURM_NSOCKETS_PER_NODE", "sockets-per-node"), ("SLURM_NTASKS_PER_CORE", "ntasks-per-core"),
        ("SLURM_NTASKS_PER_NODE", "ntasks-per-node"), ("SLURM_NTASKS_PER_GPU", "ntasks-per-gpu"),
        ("SLURM_NTASKS_PER_TRES", "ntasks-per-tres"), ("SLURM_OOM_KILL_STEP", "oom-kill-step"),
        ("SLURM_OPEN_MODE", "open-mode"), ("SLURM_OVERCOMMIT", "overcommit"), ("SLURM_OVERLAP", "overlap"),
        ("SLURM_PARTITION", "partition"), ("SLURM_PROFILE", "profile"), ("SLURM_PROLOG", "prolog"),
        ("SLURM_QOS", "qos"), ("SLURM_REMOTE_CWD", "chdir"), ("SLURM_REQ_SWITCH", "switch-req"),
        ("SLURM_RESERVATION", "reservation"), ("SLURM_RESV_PORTS", "resv-ports"),
        ("SLURM_SEND_LIBS", "send-libs"), ("SLURM_SIGNAL", "signal"), ("SLURM_SPREAD_JOB", "spread-job"),
        ("SLURM_SPREAD_SEGMENTS", "spread-segments"), ("SLURM_SRUN_MULTI", "multi-prog"),
        ("SLURM_STDERRMODE", "error"), ("SLURM_STDINMODE", "input"), ("SLURM_STDOUTMODE", "output"),
        ("SLURM_TASK_EPILOG", "task-epilog"), ("SLURM_TASK_PROLOG", "task-prolog"),
        ("SLURM_THREAD_SPEC", "thread-spec"), ("SLURM_THREADS", "threads"),
        ("SLURM_THREADS_PER_CORE", "threads-per-core"), ("SLURM_TIMELIMIT", "time"),
        ("SLURM_TRES_BIND", "tres-bind"), ("SLURM_TRES_PER_TASK", "tres-per-task"),
        ("SLURM_UNBUFFEREDIO", "unbuffered"), ("SLURM_USE_MIN_NODES", "use-min-nodes"), ("SLURM_WAIT", "wait"),
        ("SLURM_WAIT4SWITCH", "switch-wait"), ("SLURM_WCKEY", "wckey"), ("SLURM_WORKING_DIR", "chdir"),
        ("SLURMD_DEBUG", "slurmd-debug"), ("SRUN_CONTAINER", "container"), ("SRUN_CONTAINER_ID", "container-id"),
        ("SLURM_DEBUG", "verbose"), ("SRUN_ERROR", "error"), ("SRUN_INPUT", "input"), ("SRUN_OUTPUT", "output"),
        ("SRUN_SEGMENT_SIZE", "segment"),
    ),
    "salloc": (
        ("SALLOC_ACCOUNT", "account"), ("SALLOC_ACCTG_FREQ", "acctg-freq"), ("SALLOC_BELL", "bell"),
        ("SALLOC_BURST_BUFFER", "bb"), ("SALLOC_CLUSTER_CONSTRAINT", "cluster-constraint"),
        ("SALLOC_CLUSTERS", "clusters"), ("SLURM_CLUSTERS", "clusters"),
        ("SALLOC_CONSOLIDATE_SEGMENTS", "consolidate-segments"), ("SALLOC_CONTAINER", "container"),
        ("SALLOC_CONTAINER_ID", "container-id"), ("SALLOC_CONSTRAINT", "constraint"),
        ("SALLOC_CORE_SPEC", "core-spec"), ("SALLOC_CPU_FREQ_REQ", "cpu-freq"),
        ("SALLOC_CPUS_PER_GPU", "cpus-per-gpu"), ("SALLOC_DEBUG", "verbose"), ("SALLOC_DELAY_BOOT", "delay-boot"),
        ("SALLOC_EXCLUSIVE", "exclusive"), ("SALLOC_GPUS", "gpus"), ("SALLOC_GPU_BIND", "gpu-bind"),
        ("SALLOC_GPU_FREQ", "gpu-freq"), ("SALLOC_GPUS_PER_NODE", "gpus-per-node"),
        ("SALLOC_GPUS_PER_SOCKET", "gpus-per-socket"), ("SALLOC_GPUS_PER_TASK", "gpus-per-task"),
        ("SALLOC_GRES", "gres"), ("SALLOC_GRES_FLAGS", "gres-flags"), ("SALLOC_IMMEDIATE", "immediate"),
        ("SALLOC_HINT", "hint"), ("SLURM_HINT", "hint"), ("SALLOC_KILL_CMD", "kill-command"),
        ("SALLOC_MEM_BIND", "mem-bind"), ("SALLOC_MEM_PER_CPU", "mem-per-cpu"),
        ("SALLOC_MEM_PER_GPU", "mem-per-gpu"), ("SALLOC_MEM_PER_NODE", "mem"), ("SALLOC_NETWORK", "network"),
        ("SALLOC_NO_BELL", "no-bell"), ("SALLOC_NO_KILL", "no-kill"), ("SALLOC_OVERCOMMIT", "overcommit"),
        ("SALLOC_PARTITION", "partition"), ("SALLOC_PROFILE", "profile"), ("SALLOC_QOS", "qos"),
        ("SALLOC_REQ_SWITCH", "switch-req"), ("SALLOC_RESERVATION", "reservation"),
        ("SALLOC_SEGMENT_SIZE", "segment"), ("SALLOC_SIGNAL", "signal"), ("SALLOC_SPREAD_JOB", "spread-job"),
        ("SALLOC_SPREAD_SEGMENTS", "spread-segments"), ("SALLOC_THREAD_SPEC", "thread-spec"),
        ("SALLOC_THREADS_PER_CORE", "threads-per-core"), ("SALLOC_TIMELIMIT", "time"),
        ("SALLOC_TRES_BIND", "tres-bind"), ("SALLOC_TRES_PER_TASK", "tres-per-task"),
        ("SALLOC_USE_MIN_NODES", "use-min-nodes"), ("SALLOC_WAIT_ALL_NODES", "wait-all-nodes"),
        ("SALLOC_WAIT4SWITCH", "switch-wait"), ("SALLOC_WCKEY", "wckey"),
    ),
}


# --------------------------------------------------------------------------- lookups

_BY_CMD: dict[str, tuple[Option, ...]] = {}
_GETOPT: dict[str, tuple[Opt, ...]] = {}
_BY_NAME: dict[str, dict[str, Option]] = {}


def options_for(cmd: str) -> tuple[Option, ...]:
    """The options ``cmd`` takes, in table order (environment-only ones included)."""
    found = _BY_CMD.get(cmd)
    if found is None:
        bit = CMD_BITS[cmd]
        found = _BY_CMD[cmd] = tuple(o for o in OPTIONS if o.cmds & bit)
    return found


def option(cmd: str, name: str) -> Option:
    """The option of ``cmd`` whose canonical name is ``name``."""
    table = _BY_NAME.get(cmd)
    if table is None:
        table = _BY_NAME[cmd] = {o.name: o for o in options_for(cmd)}
    return table[name]


def getopt_table(cmd: str) -> tuple[Opt, ...]:
    """The getopt view of ``cmd``'s options: key = canonical name."""
    found = _GETOPT.get(cmd)
    if found is None:
        found = _GETOPT[cmd] = tuple(Opt(o.name, o.short, o.longs, o.arg) for o in options_for(cmd)
                                     if o.name not in ENV_ONLY)
    return found


def env_vars_of(cmd: str, name: str) -> list[str]:
    """The input environment variables of ``cmd`` that set option ``name``."""
    return [var for var, opt in ENV_VARS.get(cmd, ()) if opt == name]


# --------------------------------------------------------------------------- applying


def apply(st: State, name: str, arg: str | None, *, env: bool) -> None:
    """Slurm's ``slurm_process_option``: run the set function, remember who set it.

    From the environment a flag is set by "", "yes" or a non-zero number and reset by
    anything else; an empty optional argument means "no argument"."""
    opt = option(st.cmd, name)
    value = arg
    if arg is not None and env:
        if opt.arg == NO_ARG:
            if not (arg == "" or arg.lower() == "yes" or _nonzero_int(arg)):
                opt.reset(st)
                st.set_by.pop(opt.name, None)
                st.raw.pop(opt.name, None)
                return
        elif opt.arg == OPTIONAL and arg == "":
            value = None
    opt.setter(st, opt, value)
    st.set_by[opt.name] = "env" if env else "cli"
    st.raw[opt.name] = value if opt.arg != NO_ARG else None


def apply_pairs(st: State, pairs: Iterable[tuple[str, str | None]], *, env: bool = False,
                skip_early: bool = False) -> None:
    for name, arg in pairs:
        if skip_early and option(st.cmd, name).early:
            continue
        apply(st, name, arg, env=env)


def apply_env(st: State, environ: dict[str, str]) -> None:
    """The command's input environment variables, in Slurm's order."""
    for var, name in ENV_VARS[st.cmd]:
        if var in environ:
            apply(st, name, environ[var], env=True)


def parse_argv(cmd: str, argv: Sequence[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """getopt_long with ``cmd``'s table and a leading ``+`` (stop at the first operand)."""
    from spurcli.common import getopt

    return getopt(argv, getopt_table(cmd), permute=False)


# --------------------------------------------------------------------------- checks


def _hostfile_line(line: str) -> str:
    """A hostfile line without its comment (``#``; ``\\#`` is a literal ``#``)."""
    out: list[str] = []
    for c in line:
        if c == "#":
            if out and out[-1] == "\\":
                out[-1] = "#"
                continue
            break
        out.append(c)
    return "".join(out).strip()


def read_hostfile(st: State, path: str, count: int | None = None) -> str | None:
    """``slurm_read_hostfile``: the hosts of a file (comma or line separated, ``host*N``
    repeats, ``#`` comments) as a hostlist; at most ``count`` hosts and at least that many.
    None (after Slurm's error line) when the file is unusable."""
    from spurcore.hostlist import compress, expand

    full = path if path.startswith("/") else os.path.join(st.cwd, path)
    try:
        with open(full, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        st.error(f"slurm_allocate_resources error opening file {path}, {exc.strerror}")
        return None
    hosts: list[str] = []
    for lineno, line in enumerate(lines, 1):
        text = _hostfile_line(line)
        if not text:
            continue
        if not text[0].isalnum():
            st.error(f"Invalid hostfile {path} contents on line {lineno}")
            return None
        for name in text.split(","):
            host, star, times = name.strip().partition("*")
            repeat = strtol(times)[0] if star else 0
            try:
                names = expand(host)
            except ValueError:
                names = [host]
            hosts.extend(names * repeat if repeat > 0 else names)
        if count is not None and len(hosts) >= count:
            hosts = hosts[:count]
            break
    if not hosts:
        st.error("Hostlist is empty!")
        return None
    if count is not None and len(hosts) < count:
        st.error("Too few NodeNames in Slurm Hostfile")
        return None
    return ",".join(hosts) if st.f.get("distribution") == "arbitrary" else compress(hosts)


def _node_list_count(st: State) -> int | None:
    if st.f.get("ntasks_set"):
        return st.f["ntasks"]
    if st.f.get("nodes_set"):
        return st.f.get("max_nodes") or st.f.get("min_nodes") or None
    return None


def valid_node_list(st: State, field: str) -> bool:
    """``verify_node_list``: a value with a ``/`` is a file of host names."""
    text = st.f[field]
    if "/" not in text:
        return True
    count = _node_list_count(st) if st.f.get("distribution") == "arbitrary" else None
    hosts = read_hostfile(st, text, count)
    if hosts is None:
        return False
    st.f[field] = hosts
    return True


def unique_hosts(st: State, text: str) -> int:
    from spurcore.hostlist import expand

    try:
        return len(set(expand(text)))
    except ValueError:
        st.fatal("Invalid node list specified")


_TRES_NOT_PER_TASK = ("mem", "energy", "node", "billing", "fs", "vmem", "pages", "bb")


def validate_common(st: State) -> None:
    """``validate_options_salloc_sbatch_srun`` (slurm_opt.c), in its order."""
    # _validate_ntasks_per_gpu
    gpu, tres = st.by_cli("ntasks-per-gpu"), st.by_cli("ntasks-per-tres")
    gpu_env, tres_env = st.by_env("ntasks-per-gpu"), st.by_env("ntasks-per-tres")
    if gpu or tres or gpu_env or tres_env:
        if gpu and tres and st.f["ntasks_per_gpu"] != st.f["ntasks_per_tres"]:
            st.fatal(f"Inconsistent values set to --ntasks-per-gpu={st.f['ntasks_per_gpu']} and "
                     f"--ntasks-per-tres={st.f['ntasks_per_tres']} ")
        elif gpu and tres_env:
            reset_option(st, "ntasks-per-tres")
        elif tres and gpu_env:
            reset_option(st, "ntasks-per-gpu")
        elif gpu_env and tres_env and st.f["ntasks_per_gpu"] != st.f["ntasks_per_tres"]:
            st.fatal("Inconsistent values set by environment variables "
                     f"SLURM_NTASKS_PER_GPU={st.f['ntasks_per_gpu']} and "
                     f"SLURM_NTASKS_PER_TRES={st.f['ntasks_per_tres']} ")
        for name, env_name in (("tres-per-task", None), ("gpus-per-task", "SLURM_GPUS_PER_TASK"),
                               ("gpus-per-socket", "SLURM_GPUS_PER_SOCKET"),
                               ("ntasks-per-node", "SLURM_NTASKS_PER_NODE")):
            if st.by_cli(name):
                st.fatal(f"--{name} is mutually exclusive with --ntasks-per-gpu and SLURM_NTASKS_PER_GPU")
            if st.by_env(name):
                if env_name is None:
                    if "gres/gpu" in (st.f.get("tres_per_task") or ""):
                        st.fatal("SLURM_TRES_PER_TASK is mutually exclusive with --ntasks-per-gpu and "
                                 "SLURM_NTASKS_PER_GPU")
                else:
                    st.fatal(f"{env_name} is mutually exclusive with --ntasks-per-gpu and SLURM_NTASKS_PER_GPU")
    # _validate_spec_cores_options
    if st.is_set("thread-spec") or st.is_set("core-spec"):
        if st.by_cli("core-spec") and st.by_cli("thread-spec"):
            st.fatal("-S/--core-spec and --thred-spec options are mutually exclusive")
        if st.by_env("core-spec") and st.by_env("thread-spec"):
            st.fatal("Both --core-spec and --thread-spec set using environment variables. Those options are "
                     "mutually exclusive.")
        thread = st.f.get("core_spec", (0, False))[1]
        st.error(f"Ignoring {'--thread-spec' if thread else '-S'} since it's not allowed by configuration "
                 "(AllowSpecResourcesUsage = No)")
    # _validate_threads_per_core_option
    if st.is_set("threads-per-core") and st.f.get("verbose") and not st.is_set("cpu-bind"):
        st.info("Setting --cpu-bind=threads as a default of --threads-per-core use")
    # _validate_memory_options
    mems = ("mem", "mem-per-cpu", "mem-per-gpu")
    by_cli = [m for m in mems if st.by_cli(m)]
    if len(by_cli) > 1:
        st.fatal("--mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive.")
    elif by_cli:
        for m in mems:
            if m != by_cli[0]:
                reset_option(st, m)
    elif sum(st.by_env(m) for m in mems) > 1:
        st.fatal("SLURM_MEM_PER_CPU, SLURM_MEM_PER_GPU, and SLURM_MEM_PER_NODE are mutually exclusive.")
    # _validate_share_options
    if st.by_cli("exclusive") and st.by_cli("oversubscribe"):
        st.fatal("--exclusive and --oversubscribe options are mutually exclusive")
    # _validate_tres_per_task
    tpt = st.f.get("tres_per_task")
    if tpt:
        low = tpt.lower()
        for bad in _TRES_NOT_PER_TASK:
            if low.startswith(bad) or f",{bad}" in low:
                st.fatal(f"Invalid TRES for --tres-per-task: {bad}")
        _tres_per_task_cpus(st, tpt)
    # _validate_cpus_per_tres
    cpu_in_tpt = "cpu" in (tpt or "").lower()
    cpt_cli = st.by_cli("cpus-per-task") or (cpu_in_tpt and st.by_cli("tres-per-task"))
    cpt_env = st.by_env("cpus-per-task") or (cpu_in_tpt and st.by_env("tres-per-task"))
    if (cpt_cli and st.by_cli("cpus-per-gpu")) or (cpt_env and st.by_env("cpus-per-gpu")):
        st.fatal("--cpus-per-task, --tres-per-task=cpu:#, and --cpus-per-gpu are mutually exclusive")
    if cpt_cli and st.by_env("cpus-per-gpu"):
        reset_option(st, "cpus-per-gpu")
    elif st.by_cli("cpus-per-gpu") and cpt_env:
        reset_option(st, "cpus-per-task")
    # _validate_nodelist
    if st.f.get("nodefile"):
        hosts = read_hostfile(st, st.f["nodefile"])
        if hosts is None:
            fail("Invalid --nodefile node file")
        st.f["nodelist"] = hosts
    if not st.f.get("nodelist"):
        hostfile = st.environ.get("SLURM_HOSTFILE")
        if hostfile:
            st.f["nodelist"] = hostfile if "/" in hostfile else "./" + hostfile
            st.f["distribution"] = "arbitrary"
            if not valid_node_list(st, "nodelist"):
                fail("Failure getting NodeNames from hostfile")
    elif not valid_node_list(st, "nodelist"):
        raise CliError("", EXIT_FATAL)
    # _validate_arbitrary
    if st.f.get("distribution") == "arbitrary" and st.f.get("nodes_set") and not st.by_env("nodes"):
        fail("--nodes is incompatible with --distribution=arbitrary", EXIT_FATAL)


def _tres_per_task_cpus(st: State, tpt: str) -> None:
    """``--tres-per-task=cpu=N`` and ``--cpus-per-task`` are one value (slurm_opt.c)."""
    for item in tpt.split(","):
        key, sep, count = item.replace(":", "=").partition("=")
        if key.lower() != "cpu" or not sep:
            continue
        if st.by_cli("cpus-per-task") and st.by_cli("tres-per-task"):
            st.fatal("You can not have --tres-per-task=cpu= and --cpus-per-task please use one or the other")
        if st.by_cli("cpus-per-task"):
            return  # the option wins over SLURM_TRES_PER_TASK
        value = strtol(count)[0]
        if value <= 0:
            st.fatal(f"Invalid --tres-per-task=cpu={value}")
        st.f["cpus_per_task"] = value
        st.f["cpus_set"] = True


def reset_option(st: State, name: str) -> None:
    opt = option(st.cmd, name)
    opt.reset(st)
    st.set_by.pop(name, None)
    st.raw.pop(name, None)


_HINT_HELP = """\
Application hint options:
    --hint=             Bind tasks according to application hints
        compute_bound   use all cores in each socket
        memory_bound    use only one core in each socket
        [no]multithread [don't] use extra threads with in-core multi-threading
        help            show this help message
"""

_HINT_EXCLUSIVE = ("ntasks-per-core", "cores-per-socket", "sockets-per-node", "threads-per-core",
                   "extra-node-info")


def verify_hint(st: State) -> None:
    """``validate_hint_option`` + ``verify_hint``: --hint yields to the explicit shape options;
    otherwise every item must be known (``help`` prints the list and exits 1)."""
    if not st.f.get("hint"):
        return
    shape_cli = any(st.by_cli(n) for n in _HINT_EXCLUSIVE)
    if st.by_cli("hint") and shape_cli:
        if st.f.get("verbose"):
            st.info("Following options are mutually exclusive with --hint: --ntasks-per-core, "
                    "--cores-per-socket, --threads-per-core, --sockets-per-node, -B and --cpu-bind (other "
                    "than --cpu-bind=verbose). Ignoring --hint.")
        reset_option(st, "hint")
        return
    if not st.by_cli("hint") and shape_cli:
        reset_option(st, "hint")
        return
    if st.by_cli("hint"):
        for name in _HINT_EXCLUSIVE:
            reset_option(st, name)
    text = st.f.get("hint") or ""
    items: list[str] = []
    cur: list[str] = []
    for i, c in enumerate(text):
        if c == "," and not text[i + 1:i + 2].isdigit():
            items.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    items.append("".join(cur))
    for tok in items:
        low = tok.lower()
        if low == "help":
            sys.stdout.write(_HINT_HELP)
            sys.stdout.flush()
            raise CliError("", EXIT_FATAL)
        if low not in ("compute_bound", "memory_bound", "multithread", "nomultithread"):
            st.error(f'unrecognized --hint argument "{tok}", see --hint=help')
            raise CliError("", EXIT_FATAL)


def check_mpi(st: State) -> None:
    """srun's ``mpi_g_client_init``: the type must be one of ``MPI_TYPES`` (``openmpi`` is
    none); ``list`` prints them and exits 0."""
    mpi = st.f.get("mpi_type")
    if mpi is None:
        return
    if mpi == "list":
        sys.stdout.write("MPI plugin types are...\n" + "".join(f"\t{t}\n" for t in MPI_TYPES))
        sys.stdout.flush()
        raise Exit(0)
    if mpi in ("openmpi", "none"):
        st.f["mpi_type"] = "none"
        return
    if mpi not in MPI_TYPES:
        st.error(f"MPI: Cannot create context for mpi/{mpi}")
        st.error("MPI: Unable to load any plugin")
        st.error(f"Invalid MPI type '{mpi}', --mpi=list for acceptable types")
        raise CliError("", EXIT_FATAL)


# --------------------------------------------------------------------------- to a job spec

#: Options the spec maps to JobSpec fields (or that only change the command itself): the
#: rest of the options a job was given go to ``spec["options"]``.
_NOT_RECORDED = frozenset({
    "account", "array", "begin", "chdir", "comment", "constraint", "cpus-per-task", "deadline", "dependency",
    "error", "exclude", "exclusive", "export", "export-file", "hold", "input", "job-name", "kill-on-invalid-dep",
    "mail-type", "mail-user", "mem", "mem-per-cpu", "nice", "no-requeue", "nodefile", "nodelist", "nodes",
    "ntasks", "ntasks-per-node", "open-mode", "output", "oversubscribe", "partition", "qos", "requeue",
    "signal", "time", "time-min", "wckey", "gid", "uid",
    # GRES: typed JobSpec fields (gres, gpus, gpus_per_node, gpus_per_task, cpus_per_gpu, mem_per_gpu)
    "gres", "gpus", "gpus-per-node", "gpus-per-task", "cpus-per-gpu", "mem-per-gpu",
    # what the command does, not what the job is
    "autocomplete", "help", "usage", "version", "verbose", "quiet", "parsable", "wait", "wrap", "test-only",
    "ignore-pbs", "external",
})

#: srun options that describe the step, not the allocation (kept out of the job's options).
STEP_ONLY = frozenset({
    "accel-bind", "bcast", "bcast-exclude", "compress", "cpu-bind", "debugger-test", "disable-status",
    "epilog", "exact", "external-launcher", "het-group", "interactive", "jobid", "kill-on-bad-exit", "label",
    "mpi", "msg-timeout", "multi-prog", "no-allocate", "overlap", "preserve-env", "prolog", "pty",
    "quit-on-interrupt", "relative", "send-libs", "slurmd-debug", "task-epilog", "task-prolog", "threads",
    "treewidth", "unbuffered", "wait", "wait-for-children", "whole",
})


def job_spec(st: State) -> dict[str, Any]:
    """The JobSpec fields the options give (only the ones that were set)."""
    f = st.f
    spec: dict[str, Any] = {}
    if "job_name" in f:
        spec["name"] = f["job_name"]
    if f.get("nodes_set"):
        spec["nodes"] = f["min_nodes"]
    elif f.get("ntasks_set") and f.get("ntasks_per_node"):
        spec["nodes"] = -(-f["ntasks"] // f["ntasks_per_node"])
    if f.get("ntasks_set"):
        spec["ntasks"] = f["ntasks"]
    elif f.get("ntasks_per_node"):
        spec["ntasks"] = max(spec.get("nodes", 1), 1) * f["ntasks_per_node"]
    elif "ntasks" in f:  # set by the per-node/per-socket defaults of _opt_verify
        spec["ntasks"] = f["ntasks"]
    elif "nodes" in spec:  # a node range: Spur allocates the minimum, one task per node
        spec["ntasks"] = max(spec["nodes"], 1)
    if f.get("cpus_set"):
        spec["cpus_per_task"] = f["cpus_per_task"]
    if "mem" in f:
        spec["mem_mb"] = f["mem"]
    if "mem_per_cpu" in f:
        spec["mem_per_cpu"] = f["mem_per_cpu"]
    if "time_limit" in f:
        spec["time_limit"] = f["time_limit"]
    if "time_min" in f:
        spec["time_min"] = f["time_min"]
    if "chdir" in f:
        spec["cwd"] = f["chdir"]
    for field, key in (("partition", "partition"), ("account", "account"), ("dependency", "dependency"),
                       ("array", "array"), ("exclude", "exclude"), ("nodelist", "nodelist"),
                       ("open_mode", "open_mode"), ("comment", "comment"), ("wckey", "wckey"), ("qos", "qos"),
                       ("constraint", "constraint"), ("mail_type", "mail_type"), ("mail_user", "mail_user")):
        if field in f:
            spec[key] = f[field]
    if "ntasks_per_node" in f:
        spec["ntasks_per_node"] = f["ntasks_per_node"]
    # GRES as JobSpec's typed fields (text "[type:]count" lists; cpus_per_gpu an int,
    # mem_per_gpu MB). slurm_opt.c: --gres=none means no GRES and is not sent.
    gres = f.get("gres")
    if gres and str(gres).lower() != "none":
        spec["gres"] = str(gres)
    for field in ("gpus", "gpus_per_node", "gpus_per_task"):
        if f.get(field):
            spec[field] = str(f[field])
    if f.get("cpus_per_gpu"):
        spec["cpus_per_gpu"] = int(f["cpus_per_gpu"])
    if f.get("mem_per_gpu"):
        spec["mem_per_gpu"] = int(f["mem_per_gpu"])
    shared = f.get("shared")
    if shared in ("exclusive", "user", "mcs", "topo"):
        spec["exclusive"] = shared
    if "begin" in f:
        spec["begin_time"] = float(f["begin"])
    if "deadline" in f:
        spec["deadline"] = float(f["deadline"])
    if "signal" in f:
        spec["signal"] = f["signal"]
        spec["signal_time"] = f["signal_time"]
        spec["signal_flags"] = f["signal_flags"]
    if "requeue" in f:
        spec["requeue"] = f["requeue"]
    if "kill_on_invalid_dep" in f:
        spec["kill_on_invalid_dep"] = f["kill_on_invalid_dep"]
    if "nice" in f:
        spec["nice"] = f["nice"]
    if f.get("hold"):
        spec["hold"] = True
    if "ofname" in f:
        spec["stdout"] = f["ofname"]
    if "efname" in f:
        spec["stderr"] = f["efname"]
    if "ifname" in f:
        spec["stdin"] = f["ifname"]
    if "uid" in f:
        spec["uid"] = f["uid"]
        spec["user"] = f["user"]
    if "gid" in f:
        spec["gid"] = f["gid"]
    options: dict[str, str] = {}
    for name in st.set_by:
        if name in _NOT_RECORDED or (st.cmd == "srun" and name in STEP_ONLY):
            continue
        raw = st.raw.get(name)
        options[name] = "" if raw is None else raw
    if shared == "oversubscribe":
        options["oversubscribe"] = ""
    if f.get("expedite"):
        options["requeue"] = "expedite"
    if options:
        spec["options"] = options
    return spec


# --------------------------------------------------------------------------- documentation


def _cmds_text(cmds: int) -> str:
    return " ".join(c for c, bit in (("sbatch", SBATCH), ("srun", SRUN), ("salloc", SALLOC)) if cmds & bit)


def render_doc() -> str:
    """docs/options.md: one line per option, generated from ``OPTIONS`` and ``ENV_VARS``."""
    arg_text = {NO_ARG: "", REQUIRED: "=value", OPTIONAL: "[=value]"}
    lines = [
        "# sbatch, srun and salloc options",
        "",
        "Generated from `spurcli/opts.py` (`python -c 'from spurcli import opts; "
        "print(opts.render_doc(), end=\"\")' > docs/options.md`); a unit test keeps the two equal.",
        "",
        "Every option of Slurm 25.11's sbatch, srun and salloc is accepted with Slurm's argument",
        "rules, works as an `#SBATCH` directive, and a malformed value gets Slurm's message and",
        "exit status (255 for a bad value, 1 for a bad number or a conflict).",
        "",
        "* **real**: Spur acts on it; \"(controller)\" marks the ones whose JobSpec field the",
        "  controller acts on (the CLI validates and sends them).",
        "* **recorded**: validated as Slurm does, stored with the job (`scontrol show job` shows it),",
        "  no effect: the reason says which Slurm mechanism Spur does not have.",
        "* **cli**: changes what the command itself does.",
        "",
        "salloc takes the same table (its allocation options, as sbatch).",
        "",
        "| option | commands | environment | effect | what it does in Spur |",
        "|---|---|---|---|---|",
    ]
    for o in OPTIONS:
        if o.name in ENV_ONLY:
            names = "(environment only)"
        else:
            longs = ", ".join(f"`--{n}{arg_text[o.arg]}`" for n in o.longs)
            names = f"`-{o.short}`, {longs}" if o.short else longs
        envs = [var for cmd in ("sbatch", "srun", "salloc") for var in env_vars_of(cmd, o.name)
                if o.cmds & CMD_BITS[cmd]]
        env_text = ", ".join(f"`{v}`" for v in dict.fromkeys(envs)) or ""
        lines.append(f"| {names} | {_cmds_text(o.cmds)} | {env_text} | {o.effect} | {o.doc} |")
    return "\n".join(lines) + "\n"
