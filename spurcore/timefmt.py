"""Time, duration and memory formats of Slurm's tools.

Pure module: callers pass every timestamp (and "now") explicitly.  Timestamps are epoch seconds
(int or float, fractions are dropped as C's ``time_t`` does) and are shown in the process's
local time zone (``datetime.fromtimestamp``).  Durations and time limits are whole **seconds**;
an unlimited time limit is ``None``.  Memory sizes are whole megabytes (MiB, as Slurm's "MB").

Sources: src/common/parse_time.c (``slurm_make_time_str``, ``secs2time_str``, ``time_str2secs``,
``parse_time``), src/squeue/print.c (``_print_secs``, ``_print_time``), src/sacct/print.c
(``_elapsed_time``), src/common/slurm_protocol_api.c (``convert_num_unit2``),
src/common/proc_args.c (``str_to_mbytes``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

# ``datetime`` (1-1.5 ms of a command's start-up) is imported by the functions that use it:
# squeue, sacct, sinfo and ``sbatch --time`` load this module for durations and limits only.

__all__ = [
    "fmt_timestamp",
    "fmt_timestamp_squeue",
    "fmt_duration_scontrol",
    "fmt_duration_squeue",
    "fmt_elapsed_sacct",
    "fmt_time_limit_scontrol",
    "fmt_time_limit_squeue",
    "fmt_time_limit_sacct",
    "parse_time_limit",
    "parse_time",
    "parse_sacct_time",
    "fmt_mem",
    "parse_mem",
    "str_to_mbytes",
    "ctime_line",
]

_DAY = 86400
_YEAR = 365 * _DAY

# ---------------------------------------------------------------------------------------------
# timestamps


def _is_unset(t: float | None) -> bool:
    return t is None or t == 0


def fmt_timestamp(t: float | None) -> str:
    """scontrol/sacct timestamp: ``2025-05-01T12:00:00`` in local time; ``Unknown`` for 0/None."""
    if _is_unset(t):
        return "Unknown"
    assert t is not None
    from datetime import datetime

    return datetime.fromtimestamp(int(t)).strftime("%Y-%m-%dT%H:%M:%S")


def fmt_timestamp_squeue(t: float | None) -> str:
    """squeue ``%S``/``%V``/``%e``: the scontrol format, but ``N/A`` for 0/None."""
    if _is_unset(t):
        return "N/A"
    return fmt_timestamp(t)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def local_tm(t: float) -> Any:
    """``localtime(t)``: the broken-down local time of an epoch value, for display.

    The one place the core meets the process's time zone (what Slurm's tools print in too);
    it converts a time it is given and never reads the clock."""
    import time

    return time.localtime(int(t))


def strftime(fmt: str, tm: Any) -> str:
    import time

    return time.strftime(fmt, tm)


def ctime_line(now: float) -> str:
    """C ``ctime()`` without the newline, as squeue -l's first line: ``Thu Jan  1 00:00:00 1970``.

    Day and month names are the C locale's (no locale lookup); the day of month is space-padded.
    The fields are ``localtime``'s, as ctime's (``time``, not ``datetime``: squeue -l and
    sinfo -l need nothing else from it).
    """
    d = local_tm(now)
    return (
        f"{_DAYS[d.tm_wday]} {_MONTHS[d.tm_mon - 1]} {d.tm_mday:2d} "
        f"{d.tm_hour:02d}:{d.tm_min:02d}:{d.tm_sec:02d} {d.tm_year}"
    )


# ---------------------------------------------------------------------------------------------
# durations


def _split(secs: int) -> tuple[int, int, int, int]:
    return secs // _DAY, (secs // 3600) % 24, (secs // 60) % 60, secs % 60


def fmt_duration_scontrol(secs: float) -> str:
    """``secs2time_str``: ``[D-]HH:MM:SS`` (RunTime, TimeLimit): 65 -> ``00:01:05``,
    90061 -> ``1-01:01:01``; negative -> ``INVALID``."""
    s = int(secs)
    if s < 0:
        return "INVALID"
    days, hours, minutes, seconds = _split(s)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def fmt_duration_squeue(secs: float) -> str:
    """squeue ``_print_secs`` (``%M %l %L``): ``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``.

    0 -> ``0:00``; negative or more than 365 days -> ``INVALID``.
    """
    s = int(secs)
    if s < 0 or s > _YEAR:
        return "INVALID"
    days, hours, minutes, seconds = _split(s)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def fmt_elapsed_sacct(secs: float) -> str:
    """sacct ``Elapsed`` (``_elapsed_time`` without sub-seconds): ``HH:MM:SS`` / ``D-HH:MM:SS``
    (5 -> ``00:00:05``); negative -> ``INVALID``."""
    s = int(secs)
    if s < 0:
        return "INVALID"
    days, hours, minutes, seconds = _split(s)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


_INFINITIES = (float("inf"), float("-inf"))  # math.isinf without math (a shared library to load)


def _is_unlimited(secs: float | None) -> bool:
    return secs is None or (isinstance(secs, float) and secs in _INFINITIES)


def fmt_time_limit_scontrol(secs: float | None) -> str:
    """scontrol ``TimeLimit=``: ``UNLIMITED`` for None/inf, else ``[D-]HH:MM:SS``."""
    if _is_unlimited(secs):
        return "UNLIMITED"
    assert secs is not None
    return fmt_duration_scontrol(secs)


def fmt_time_limit_squeue(secs: float | None) -> str:
    """squeue ``%l``/``%L``: ``UNLIMITED`` for None/inf, else the squeue duration format."""
    if _is_unlimited(secs):
        return "UNLIMITED"
    assert secs is not None
    return fmt_duration_squeue(secs)


def fmt_time_limit_sacct(secs: float | None) -> str:
    """sacct ``Timelimit`` (``print_fields_time_from_mins``): ``UNLIMITED`` or ``[D-]HH:MM:SS``."""
    return fmt_time_limit_scontrol(secs)


# ---------------------------------------------------------------------------------------------
# time limit input (sbatch/srun -t, scontrol update TimeLimit=)

_TIME_LIMIT_ERROR = "Invalid time limit specification"


def parse_time_limit(text: str, *, round_up_to_minutes: bool = False) -> int | None:
    """Slurm ``time_str2secs``: returns seconds, or ``None`` for no limit.

    Formats: ``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours``,
    ``days-hours:minutes``, ``days-hours:minutes:seconds``.  ``UNLIMITED``, ``INFINITE`` and
    ``-1`` (any case) mean no limit, and so does a total of 0 (sbatch: "A time limit of zero
    requests that no time limit be imposed").

    Slurm itself stores minutes (``time_str2mins`` rounds seconds up); pass
    ``round_up_to_minutes=True`` to get that (``1:30`` -> 120).  Raises
    ``ValueError("Invalid time limit specification")`` on anything else.
    """
    s = text.strip()
    if s.upper() in ("-1", "INFINITE", "UNLIMITED"):
        return None
    if not s or not _valid_timespec(s):
        raise ValueError(_TIME_LIMIT_ERROR)
    days_s, dash, rest = s.partition("-")
    if not dash:
        days_s, rest = "", s
    fields = rest.split(":")
    if any(not f for f in fields) or (dash and not days_s):
        raise ValueError(_TIME_LIMIT_ERROR)
    nums = [int(f) for f in fields]
    if dash:
        days = int(days_s)
        hours = nums[0]
        minutes = nums[1] if len(nums) > 1 else 0
        seconds = nums[2] if len(nums) > 2 else 0
    else:
        days = 0
        if len(nums) == 1:
            hours, minutes, seconds = 0, nums[0], 0
        elif len(nums) == 2:
            hours, minutes, seconds = 0, nums[0], nums[1]
        else:
            hours, minutes, seconds = nums
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if round_up_to_minutes:
        total = (total + 59) // 60 * 60
    return total or None


def _valid_timespec(s: str) -> bool:
    """parse_time.c ``_is_valid_timespec``: digits, at most one ``-`` (before any ``:``),
    at most two ``:``."""
    digit_runs = dashes = colons = 0
    in_digits = False
    for ch in s:
        if "0" <= ch <= "9":
            if not in_digits:
                digit_runs += 1
                in_digits = True
        elif ch == "-":
            in_digits = False
            dashes += 1
            if colons:
                return False
        elif ch == ":":
            in_digits = False
            colons += 1
        else:
            return False
    if not digit_runs or dashes > 1 or colons > 2:
        return False
    needed = colons + 1 + (1 if dashes else 0)
    return digit_runs >= needed


# ---------------------------------------------------------------------------------------------
# absolute time input (parse_time: sacct -S/-E, sbatch --begin)

_UNITS: tuple[tuple[str, int], ...] = (
    ("seconds", 1),
    ("second", 1),
    ("minutes", 60),
    ("minute", 60),
    ("hours", 3600),
    ("hour", 3600),
    ("days", _DAY),
    ("day", _DAY),
    ("weeks", 7 * _DAY),
    ("week", 7 * _DAY),
)

_NAMED_TIMES: tuple[tuple[str, int], ...] = (
    ("midnight", 0),
    ("noon", 12),
    ("elevenses", 11),
    ("fika", 15),
    ("teatime", 16),
)


def _bad_time(text: str) -> ValueError:
    return ValueError(f"Invalid time specification: {text}")


def _digit(s: str, i: int) -> bool:
    return i < len(s) and "0" <= s[i] <= "9"


def _get_delta(s: str, i: int, text: str) -> tuple[int, int]:
    """After ``now+``/``now-`` at ``s[i]``: returns (seconds, index after the delta)."""
    cnt = 0
    digits = 0
    i += 1
    while i < len(s) and s[i] != "\n":
        if s[i].isspace():
            i += 1
            continue
        low = s[i:].lower()
        for name, mult in _UNITS:
            if low.startswith(name):
                cnt *= mult
                i += len(name)
                if not digits:
                    raise _bad_time(text)
                return cnt, i
        if _digit(s, i):
            cnt = cnt * 10 + int(s[i])
            digits += 1
            i += 1
            continue
        raise _bad_time(text)
    if not digits:
        raise _bad_time(text)
    return cnt, i


def _get_time(s: str, i: int, text: str) -> tuple[int, int, int, int]:
    """``HH:MM[:SS] [AM|PM]`` at ``s[i]``: returns (hour, minute, second, next index)."""
    if not _digit(s, i):
        raise _bad_time(text)
    hr = int(s[i])
    i += 1
    if i < len(s) and s[i] != ":":
        if not _digit(s, i):
            raise _bad_time(text)
        hr = hr * 10 + int(s[i])
        i += 1
    if hr > 23 or i >= len(s) or s[i] != ":":
        raise _bad_time(text)
    i += 1
    if not (_digit(s, i) and _digit(s, i + 1)):
        raise _bad_time(text)
    minute = int(s[i : i + 2])
    i += 2
    if minute > 59:
        raise _bad_time(text)
    sec = 0
    if i < len(s) and s[i] == ":":
        i += 1
        if not (_digit(s, i) and _digit(s, i + 1)):
            raise _bad_time(text)
        sec = int(s[i : i + 2])
        i += 2
        if sec > 59:
            raise _bad_time(text)
    j = i
    while j < len(s) and s[j].isspace():
        j += 1
    tail = s[j : j + 2].lower()
    if tail == "pm":
        hr += 12
        if hr > 23:
            if hr != 24:
                raise _bad_time(text)
            hr = 12
        i = j + 2
    elif tail == "am":
        if hr > 11:
            if hr != 12:
                raise _bad_time(text)
            hr = 0
        i = j + 2
    return hr, minute, sec, i


def _get_date(s: str, i: int, text: str) -> tuple[int, int, int | None, int]:
    """``YYYY-MM-DD`` or ``MMDD[YY]`` / ``MM/DD[/YY]`` / ``MM.DD[.YY]`` at ``s[i]``.

    Returns (month 1-12, day, year or None, next index)."""
    if len(s) >= i + 8 and s[i + 4] == "-" and s[i + 7] == "-":
        if not all(_digit(s, k) for k in range(i, i + 4)):
            raise _bad_time(text)
        year = int(s[i : i + 4])
        i += 5
        if not _digit(s, i):
            raise _bad_time(text)
        mon = int(s[i])
        i += 1
        if _digit(s, i):
            mon = mon * 10 + int(s[i])
            i += 1
        if not 1 <= mon <= 12:
            raise _bad_time(text)
        i += 1
        if not _digit(s, i):
            raise _bad_time(text)
        day = int(s[i])
        i += 1
        if _digit(s, i):
            day = day * 10 + int(s[i])
            i += 1
        if not 1 <= day <= 31:
            raise _bad_time(text)
        return mon, day, year, i

    if not _digit(s, i):
        raise _bad_time(text)
    mon = int(s[i])
    i += 1
    if _digit(s, i):
        mon = mon * 10 + int(s[i])
        i += 1
    if not 1 <= mon <= 12:
        raise _bad_time(text)
    if i < len(s) and s[i] in "./":
        i += 1
    if not _digit(s, i):
        raise _bad_time(text)
    day = int(s[i])
    i += 1
    if _digit(s, i):
        day = day * 10 + int(s[i])
        i += 1
    if not 1 <= day <= 31:
        raise _bad_time(text)
    if i < len(s) and s[i] in "./":
        i += 1
    year: int | None = None
    if _digit(s, i):
        if not _digit(s, i + 1):
            raise _bad_time(text)
        yy = int(s[i : i + 2])
        i += 2
        # parse_time.c stores tm_year = yy + 100, i.e. 20YY; "00" counts as "no year".
        year = 2000 + yy if yy else None
    return mon, day, year, i


def _mktime(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    """``mktime`` in local time, normalising an out-of-range day (Feb 31 -> Mar 3)."""
    from datetime import datetime, timedelta

    base = datetime(year, month, 1, hour, minute, second)
    return (base + timedelta(days=day - 1)).timestamp()


def parse_time(text: str, now: float, *, past: bool = False) -> float:
    """Slurm ``parse_time``: an absolute time string -> epoch seconds (local time zone).

    Accepts ``today``, ``tomorrow``, ``midnight``, ``noon``, ``elevenses``, ``fika``,
    ``teatime``, ``HH:MM[:SS] [AM|PM]``, ``MMDD[YY]``, ``MM/DD[/YY]``, ``MM.DD[.YY]``,
    ``MM/DD[/YY]-HH:MM[:SS]``, ``YYYY-MM-DD[THH:MM[:SS]]``,
    ``now[{+|-}count[seconds|minutes|hours|days|weeks]]`` (default unit seconds) and
    ``uts<epoch>``.  ``past`` selects how a time without a date or a date without a year is
    completed (sacct passes ``past``: today / this year unless the month is later than now's).
    Raises ``ValueError("Invalid time specification: ...")``.
    """
    s = text
    if s[:3].lower() == "uts":
        digits = s[3:]
        if not (digits.isascii() and digits.isdigit()) or int(digits) < 1000000:
            raise _bad_time(text)
        return float(int(digits))
    from datetime import datetime

    time_now = int(now)
    now_tm = datetime.fromtimestamp(time_now)
    hour = minute = -1
    second = 0
    month = mday = -1
    year: int | None = None

    def set_date(d: datetime) -> None:
        nonlocal month, mday, year
        month, mday, year = d.month, d.day, d.year

    i = 0
    n = len(s)
    while i < n and s[i] != "\n":
        ch = s[i]
        if ch in " \t-T":
            i += 1
            continue
        low = s[i:].lower()
        if low.startswith("today"):
            set_date(now_tm)
            i += 5
            continue
        if low.startswith("tomorrow"):
            set_date(datetime.fromtimestamp(time_now + _DAY))
            i += 8
            continue
        named = next(((name, h) for name, h in _NAMED_TIMES if low.startswith(name)), None)
        if named is not None:
            hour, minute, second = named[1], 0, 0
            i += len(named[0])
            continue
        if low.startswith("now"):
            delta = 0
            k = i + 3
            while True:
                c = s[k] if k < n else "\0"
                if c in "+-":
                    delta, k = _get_delta(s, k, text)
                    if c == "-":
                        delta = -delta
                    break
                if c in " \t":
                    k += 1
                    continue
                if c in "\0\n":
                    break
                raise _bad_time(text)
            later = datetime.fromtimestamp(time_now + delta)
            set_date(later)
            hour, minute, second = later.hour, later.minute, later.second
            i = k
            continue
        if not _digit(s, i):
            raise _bad_time(text)
        if (i + 1 < n and s[i + 1] == ":") or (i + 2 < n and s[i + 2] == ":"):
            hour, minute, second, i = _get_time(s, i, text)
            continue
        month, mday, year, i = _get_date(s, i, text)

    if hour == -1 and month == -1:
        raise _bad_time(text)
    if hour == -1:
        hour, minute = 0, 0
    elif month == -1:
        if past or hour > now_tm.hour or (hour == now_tm.hour and minute > now_tm.minute):
            set_date(now_tm)
        else:
            set_date(datetime.fromtimestamp(time_now + _DAY))
    if year is None:
        if past:
            year = now_tm.year - 1 if month > now_tm.month else now_tm.year
        elif (month, mday, hour, minute) > (now_tm.month, now_tm.day, now_tm.hour, now_tm.minute):
            year = now_tm.year
        else:
            year = now_tm.year + 1
    try:
        return _mktime(year, month, mday, hour, minute, second)
    except (ValueError, OverflowError, OSError) as exc:
        raise _bad_time(text) from exc


def parse_sacct_time(text: str, now: float) -> float:
    """sacct ``-S/--starttime`` and ``-E/--endtime``: ``parse_time(text, now, past=True)``.

    ``2025-05-01``, ``2025-05-01T12:30``, ``0501``, ``050125``, ``12:30``, ``now``,
    ``now-1hours``, ``now-30minutes``, ``now-2days``, ``today``, ``midnight``, ``noon``,
    ``uts1700000000``.
    """
    return parse_time(text, now, past=True)


# ---------------------------------------------------------------------------------------------
# memory

_UNIT_LETTERS = "\0KMGTP?"
_UNIT_MEGA = 2


def fmt_mem(mb: float) -> str:
    """``convert_num_unit(mb, UNIT_MEGA, CONVERT_NUM_UNIT_EXACT)`` as scontrol prints memory.

    0 -> ``0``, 1000 -> ``1000M``, 2048 -> ``2G``, 1536 -> ``1.50G``, 1048576 -> ``1T``.
    The value moves to the next unit while it is >= 1024 and a multiple of 512 (so halves are
    allowed); a fraction is printed with two decimals.
    """
    num = float(mb)
    if int(num) == 0:
        return "0"
    unit = _UNIT_MEGA
    while num >= 1024 and int(num) % 512 == 0:
        num /= 1024
        unit += 1
    letter = _UNIT_LETTERS[unit] if unit < len(_UNIT_LETTERS) - 1 else "?"
    whole = int(num)
    if float(whole) == num:
        return f"{whole}{letter}"
    return f"{num:.2f}{letter}"


_MEM_FACTORS = {"": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_mem(text: str) -> int:
    """``str_to_mbytes`` for sbatch ``--mem``/``--mem-per-cpu``: megabytes.

    ``100`` and ``100M`` -> 100, ``2G`` -> 2048, ``1T`` -> 1048576, ``512K`` -> 1 (kilobytes are
    rounded up).  A unit may be followed by ``B`` (``2GB``); units are case-insensitive.
    Raises ``ValueError("Invalid memory specification: ...")``.
    """
    s = text.strip()
    k = 0
    while k < len(s) and s[k].isascii() and s[k].isdigit():
        k += 1
    digits, unit = s[:k], s[k:].upper()
    if unit.endswith("B") and len(unit) == 2:
        unit = unit[0]
    if not digits or (unit not in _MEM_FACTORS and unit != "K"):
        raise ValueError(f"Invalid memory specification: {text}")
    value = int(digits)
    if unit == "K":
        return (value + 1023) // 1024
    return value * _MEM_FACTORS[unit]


def str_to_mbytes(text: str) -> int | None:
    """Slurm's ``str_to_mbytes`` (src/common/proc_args.c) exactly, as the ``--mem``,
    ``--mem-per-cpu``, ``--mem-per-gpu`` and ``--tmp`` options use it: C ``strtoll`` (leading
    whitespace and a sign allowed), then nothing (MB), or one of ``K M G T`` (any case)
    optionally followed by ``B``/``b`` and nothing else. Kilobytes round up to whole MB.
    Returns None where Slurm returns NO_VAL64 (no digits, negative, any other suffix)."""
    i = 0
    n = len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    negative = False
    if i < n and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    start = i
    while i < n and "0" <= text[i] <= "9":
        i += 1
    if i == start:
        return None
    value = int(text[start:i])
    if negative and value:
        return None
    rest = text[i:]
    if not rest:
        return value
    if len(rest) > 2 or (len(rest) == 2 and rest[1] not in "Bb"):
        return None
    unit = rest[0].upper()
    if unit == "K":
        return (value + 1023) // 1024
    if unit == "M":
        return value
    if unit == "G":
        return value * 1024
    if unit == "T":
        return value * 1024 * 1024
    return None
