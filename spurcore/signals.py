"""Signal numbers, names and descriptions as Slurm's tools print them (Linux x86_64).

Pure module: no I/O, no OS signal handling.  It only maps numbers to text and back.

* ``SIGNAL_NAMES`` maps numbers to the short names ``kill -l`` and Slurm's ``sig_num2name``
  use (no ``SIG`` prefix).
* ``strsignal`` gives glibc's ``strsignal()`` text, which Slurm puts into
  ``RaisedSignal:<n>(<text>)`` and srun into ``task N: <text>`` lines.
* ``parse_signal`` is Slurm's ``sig_name2num`` as scancel ``-s/--signal`` uses it: names with or
  without ``SIG``, any case, or a number.
"""

from __future__ import annotations

__all__ = [
    "SIGNAL_NAMES",
    "SIGRTMIN",
    "SIGRTMAX",
    "strsignal",
    "parse_signal",
    "sig_name",
    "sig_fullname",
    "SLURM_SIGNAL_NAMES",
    "sig_name2num",
]

#: glibc reserves real-time signals 32 and 33 for NPTL, so the user-visible SIGRTMIN is 34.
SIGRTMIN = 34
SIGRTMAX = 64

_CLASSIC_NAMES: dict[int, str] = {
    1: "HUP",
    2: "INT",
    3: "QUIT",
    4: "ILL",
    5: "TRAP",
    6: "ABRT",
    7: "BUS",
    8: "FPE",
    9: "KILL",
    10: "USR1",
    11: "SEGV",
    12: "USR2",
    13: "PIPE",
    14: "ALRM",
    15: "TERM",
    16: "STKFLT",
    17: "CHLD",
    18: "CONT",
    19: "STOP",
    20: "TSTP",
    21: "TTIN",
    22: "TTOU",
    23: "URG",
    24: "XCPU",
    25: "XFSZ",
    26: "VTALRM",
    27: "PROF",
    28: "WINCH",
    29: "IO",
    30: "PWR",
    31: "SYS",
}


def _build_names() -> dict[int, str]:
    names = dict(_CLASSIC_NAMES)
    for sig in range(SIGRTMIN, SIGRTMAX + 1):
        off = sig - SIGRTMIN
        names[sig] = "RTMIN" if off == 0 else f"RTMIN+{off}"
    return names


#: Signal number -> short name ("USR1", "RTMIN+3").  Numbers 32 and 33 have no name.
SIGNAL_NAMES: dict[int, str] = _build_names()

# glibc's sys_siglist (string/siglist.h); strsignal() returns these verbatim.
_DESCRIPTIONS: dict[int, str] = {
    1: "Hangup",
    2: "Interrupt",
    3: "Quit",
    4: "Illegal instruction",
    5: "Trace/breakpoint trap",
    6: "Aborted",
    7: "Bus error",
    8: "Floating point exception",
    9: "Killed",
    10: "User defined signal 1",
    11: "Segmentation fault",
    12: "User defined signal 2",
    13: "Broken pipe",
    14: "Alarm clock",
    15: "Terminated",
    16: "Stack fault",
    17: "Child exited",
    18: "Continued",
    19: "Stopped (signal)",
    20: "Stopped",
    21: "Stopped (tty input)",
    22: "Stopped (tty output)",
    23: "Urgent I/O condition",
    24: "CPU time limit exceeded",
    25: "File size limit exceeded",
    26: "Virtual timer expired",
    27: "Profiling timer expired",
    28: "Window changed",
    29: "I/O possible",
    30: "Power failure",
    31: "Bad system call",
}

# Extra spellings accepted on input only (kill(1)/bash accept them too).
_ALIASES: dict[str, int] = {
    "IOT": 6,
    "CLD": 17,
    "POLL": 29,
    "RTMAX": SIGRTMAX,
}


def strsignal(n: int) -> str:
    """glibc ``strsignal(n)``: ``"Segmentation fault"``, ``"Real-time signal 3"`` for 37,
    ``"Unknown signal 99"`` otherwise."""
    desc = _DESCRIPTIONS.get(n)
    if desc is not None:
        return desc
    if SIGRTMIN <= n <= SIGRTMAX:
        return f"Real-time signal {n - SIGRTMIN}"
    return f"Unknown signal {n}"


def sig_name(n: int) -> str:
    """Short name without ``SIG`` (``10`` -> ``"USR1"``), like Slurm's ``sig_num2name``;
    an unnamed number is returned as its decimal string."""
    return SIGNAL_NAMES.get(n, str(n))


def sig_fullname(n: int) -> str:
    """Name with the ``SIG`` prefix (``10`` -> ``"SIGUSR1"``); an unnamed number as decimal."""
    name = SIGNAL_NAMES.get(n)
    return f"SIG{name}" if name is not None else str(n)


def _lookup_name(name: str) -> int | None:
    upper = name.upper()
    if upper.startswith("SIG"):
        upper = upper[3:]
    for num, known in SIGNAL_NAMES.items():
        if known == upper:
            return num
    if upper in _ALIASES:
        return _ALIASES[upper]
    for base, sign, origin in (("RTMIN", "+", SIGRTMIN), ("RTMAX", "-", SIGRTMAX)):
        prefix = base + sign
        if upper.startswith(prefix) and upper[len(prefix) :].isdigit():
            off = int(upper[len(prefix) :])
            num = origin + off if sign == "+" else origin - off
            if SIGRTMIN <= num <= SIGRTMAX:
                return num
    return None


def parse_signal(text: str) -> int:
    """Slurm's ``sig_name2num`` for ``scancel -s``: ``"USR1"``, ``"SIGUSR1"``, ``"usr1"``, ``"10"``.

    Surrounding whitespace is ignored.  Numbers must be 1..64.  Anything else raises
    ``ValueError("Unknown signal: <text>")``.
    """
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit():
        num = int(stripped)
        if 1 <= num <= SIGRTMAX:
            return num
        raise ValueError(f"Unknown signal: {text}")
    if stripped:
        num_from_name = _lookup_name(stripped)
        if num_from_name is not None:
            return num_from_name
    raise ValueError(f"Unknown signal: {text}")


#: The names Slurm's own ``sig_name2num`` (src/common/proc_args.c) knows: sbatch/srun
#: ``--signal``, salloc ``--kill-command``. Fewer than ``kill -l``: ``--signal=WINCH`` is
#: refused by Slurm, so it is refused here too.
SLURM_SIGNAL_NAMES: tuple[tuple[str, int], ...] = (
    ("HUP", 1), ("INT", 2), ("QUIT", 3), ("ABRT", 6), ("KILL", 9), ("ALRM", 14), ("TERM", 15),
    ("CHLD", 17), ("USR1", 10), ("USR2", 12), ("PIPE", 13), ("URG", 23), ("CONT", 18),
    ("STOP", 19), ("TSTP", 20), ("TTIN", 21), ("TTOU", 22), ("XCPU", 24),
)


def _c_strtol(text: str) -> tuple[int, int]:
    """C ``strtol(text, &end, 10)``: (value, index of ``end``); index 0 when there are no digits."""
    i = 0
    n = len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    sign = 1
    if i < n and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    start = i
    while i < n and "0" <= text[i] <= "9":
        i += 1
    if i == start:
        return 0, 0
    return sign * int(text[start:i]), i


def sig_name2num(text: str) -> int:
    """Slurm's ``sig_name2num`` (proc_args.c): a number (trailing whitespace allowed, any
    value, even 0 or negative), or one of ``SLURM_SIGNAL_NAMES`` with or without ``SIG``, any
    case, surrounded by whitespace. Returns 0 for anything else (Slurm's "not found")."""
    value, end = _c_strtol(text)
    if end:
        return value if not text[end:].strip() else 0
    name = text.lstrip()
    if name[:3].upper() == "SIG":
        name = name[3:]
    for known, num in SLURM_SIGNAL_NAMES:
        if name[: len(known)].upper() == known and not name[len(known):].strip():
            return num
    return 0
