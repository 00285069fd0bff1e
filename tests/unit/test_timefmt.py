"""spurcore.timefmt: Slurm's time, duration, time-limit and memory formats."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from spurcore.timefmt import (
    ctime_line,
    fmt_duration_scontrol,
    fmt_duration_squeue,
    fmt_elapsed_sacct,
    fmt_mem,
    fmt_time_limit_sacct,
    fmt_time_limit_scontrol,
    fmt_time_limit_squeue,
    fmt_timestamp,
    fmt_timestamp_squeue,
    parse_mem,
    parse_sacct_time,
    parse_time,
    parse_time_limit,
)


def _set_tz(monkeypatch: pytest.MonkeyPatch, tz: str) -> None:
    monkeypatch.setenv("TZ", tz)
    time.tzset()


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _set_tz(monkeypatch, "UTC")
    yield
    monkeypatch.undo()
    time.tzset()


def _epoch(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


# 2025-05-01T12:00:00Z, a Thursday
NOW = _epoch(2025, 5, 1, 12, 0, 0)

# ---------------------------------------------------------------------------------------------
# timestamps

TIMESTAMP_CASES = [
    (None, "Unknown", "N/A", "ref 3: time 0 prints Unknown (squeue: N/A, ref 4.2)"),
    (0, "Unknown", "N/A", "ref 3 / 4.2: 0"),
    (0.0, "Unknown", "N/A", "float zero"),
    (1, "1970-01-01T00:00:01", "1970-01-01T00:00:01", "ref 3: %Y-%m-%dT%H:%M:%S"),
    (NOW, "2025-05-01T12:00:00", "2025-05-01T12:00:00", "ref 3 example SubmitTime"),
    (NOW + 0.9, "2025-05-01T12:00:00", "2025-05-01T12:00:00", "fractions dropped like time_t"),
]


@pytest.mark.parametrize(("t", "scontrol", "squeue", "why"), TIMESTAMP_CASES)
def test_fmt_timestamp(t: float | None, scontrol: str, squeue: str, why: str) -> None:
    assert fmt_timestamp(t) == scontrol, why
    assert fmt_timestamp_squeue(t) == squeue, why


def test_fmt_timestamp_uses_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # ref 3: "Times use %Y-%m-%dT%H:%M:%S in local time"
    _set_tz(monkeypatch, "EST+5")
    assert fmt_timestamp(NOW) == "2025-05-01T07:00:00"
    assert ctime_line(NOW) == "Thu May  1 07:00:00 2025"


CTIME_CASES = [
    (0, "Thu Jan  1 00:00:00 1970", "C ctime(): day of month space-padded"),
    (NOW, "Thu May  1 12:00:00 2025", "ref 4.1: squeue -l date line"),
    (_epoch(2024, 12, 25, 9, 5, 7), "Wed Dec 25 09:05:07 2024", "two-digit day"),
]


@pytest.mark.parametrize(("t", "text", "why"), CTIME_CASES)
def test_ctime_line(t: int, text: str, why: str) -> None:
    assert ctime_line(t) == text, why


# ---------------------------------------------------------------------------------------------
# durations

SCONTROL_DURATION_CASES = [
    (0, "00:00:00", "ref 3: RunTime=00:00:00 while pending"),
    (5, "00:00:05", "ref 3 example RunTime=00:00:05"),
    (65, "00:01:05", "brief: 65 -> 00:01:05"),
    (3600, "01:00:00", "ref 3 example TimeLimit=01:00:00"),
    (86399, "23:59:59", "last value without days"),
    (86400, "1-00:00:00", "secs2time_str: %ld-%2.2ld:%2.2ld:%2.2ld"),
    (90061, "1-01:01:01", "brief: 90061 -> 1-01:01:01"),
    (400 * 86400, "400-00:00:00", "no upper bound in scontrol"),
    (65.9, "00:01:05", "fractions dropped"),
    (-1, "INVALID", "secs2time_str: negative -> INVALID"),
]


@pytest.mark.parametrize(("secs", "text", "why"), SCONTROL_DURATION_CASES)
def test_fmt_duration_scontrol(secs: float, text: str, why: str) -> None:
    assert fmt_duration_scontrol(secs) == text, why


SQUEUE_DURATION_CASES = [
    (0, "0:00", "ref 4.2: 0 -> 0:00"),
    (5, "0:05", "M:SS"),
    (62, "1:02", "brief: 62 -> 1:02"),
    (3599, "59:59", "M:SS up to an hour"),
    (3600, "1:00:00", "H:MM:SS"),
    (3723, "1:02:03", "ref 4.1 example TIME 1:02:03"),
    (90061, "1-01:01:01", "D-HH:MM:SS"),
    (365 * 86400, "365-00:00:00", "_print_secs: exactly a year is still valid"),
    (365 * 86400 + 1, "INVALID", "ref 4.2: more than a year -> INVALID"),
    (-1, "INVALID", "ref 4.2: negative -> INVALID"),
]


@pytest.mark.parametrize(("secs", "text", "why"), SQUEUE_DURATION_CASES)
def test_fmt_duration_squeue(secs: int, text: str, why: str) -> None:
    assert fmt_duration_squeue(secs) == text, why


SACCT_ELAPSED_CASES = [
    (0, "00:00:00", "_elapsed_time: 00:MM:SS"),
    (5, "00:00:05", "ref 5: Elapsed HH:MM:SS"),
    (3723, "01:02:03", "%2.2ld:%2.2ld:%2.2ld"),
    (90061, "1-01:01:01", "ref 5: D-HH:MM:SS"),
    (-3, "INVALID", "negative"),
]


@pytest.mark.parametrize(("secs", "text", "why"), SACCT_ELAPSED_CASES)
def test_fmt_elapsed_sacct(secs: int, text: str, why: str) -> None:
    assert fmt_elapsed_sacct(secs) == text, why


TIME_LIMIT_CASES = [
    # secs, scontrol, squeue, sacct, why
    (None, "UNLIMITED", "UNLIMITED", "UNLIMITED", "ref 3 / 4.2: infinite limit"),
    (float("inf"), "UNLIMITED", "UNLIMITED", "UNLIMITED", "infinite float"),
    (3600, "01:00:00", "1:00:00", "01:00:00", "ref 3 example TimeLimit=01:00:00"),
    (60, "00:01:00", "1:00", "00:01:00", "one minute"),
    (2 * 86400, "2-00:00:00", "2-00:00:00", "2-00:00:00", "days"),
    (400 * 86400, "400-00:00:00", "INVALID", "400-00:00:00", "squeue _print_secs caps at a year"),
]


@pytest.mark.parametrize(("secs", "scontrol", "squeue", "sacct", "why"), TIME_LIMIT_CASES)
def test_fmt_time_limit(secs: float | None, scontrol: str, squeue: str, sacct: str, why: str) -> None:
    assert fmt_time_limit_scontrol(secs) == scontrol, why
    assert fmt_time_limit_squeue(secs) == squeue, why
    assert fmt_time_limit_sacct(secs) == sacct, why


# ---------------------------------------------------------------------------------------------
# time limit parsing (sbatch -t)

PARSE_LIMIT_CASES = [
    ("10", 600, "sbatch -t minutes"),
    ("90", 5400, "minutes above 60 are fine"),
    ("1:30", 90, "minutes:seconds"),
    ("0:30", 30, "seconds only, not zero"),
    ("1:02:03", 3723, "hours:minutes:seconds"),
    ("2-0", 2 * 86400, "days-hours"),
    ("1-2", 93600, "days-hours"),
    ("1-2:30", 95400, "days-hours:minutes"),
    ("1-2:30:15", 95415, "days-hours:minutes:seconds"),
    ("UNLIMITED", None, "time_str2secs: UNLIMITED"),
    ("unlimited", None, "case-insensitive"),
    ("INFINITE", None, "time_str2secs: INFINITE"),
    ("-1", None, "time_str2secs: -1"),
    ("0", None, "sbatch man: a time limit of zero means no limit"),
    ("0:0:0", None, "total of zero"),
    (" 5 ", 300, "surrounding blanks ignored"),
]


@pytest.mark.parametrize(("text", "secs", "why"), PARSE_LIMIT_CASES)
def test_parse_time_limit(text: str, secs: int | None, why: str) -> None:
    assert parse_time_limit(text) == secs, why


@pytest.mark.parametrize(
    ("text", "secs", "why"),
    [
        ("1:30", 120, "time_str2mins rounds seconds up to a minute"),
        ("0:01", 60, "one second -> one minute"),
        ("10", 600, "whole minutes unchanged"),
        ("0", None, "zero still unlimited"),
    ],
)
def test_parse_time_limit_minutes(text: str, secs: int | None, why: str) -> None:
    assert parse_time_limit(text, round_up_to_minutes=True) == secs, why


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1:2:3:4", "1-2-3", "1:2-3", "-5", "1-", "1::2", ":5", "1h", "1.5", "1-2:3:4:5"],
)
def test_parse_time_limit_rejects(text: str) -> None:
    # _is_valid_timespec / time_str2secs return NO_VAL -> "Invalid time limit specification"
    with pytest.raises(ValueError, match="^Invalid time limit specification$"):
        parse_time_limit(text)


# ---------------------------------------------------------------------------------------------
# absolute times (sacct -S/-E: parse_time(..., past=1))

SACCT_TIME_CASES = [
    ("2025-05-01", _epoch(2025, 5, 1), "YYYY-MM-DD: date without time is midnight"),
    ("2025-04-30T08:15", _epoch(2025, 4, 30, 8, 15), "YYYY-MM-DDTHH:MM"),
    ("2025-04-30T08:15:42", _epoch(2025, 4, 30, 8, 15, 42), "YYYY-MM-DDTHH:MM:SS"),
    ("0430", _epoch(2025, 4, 30), "MMDD: this year"),
    ("0601", _epoch(2024, 6, 1), "MMDD with past: a later month means last year"),
    ("043024", _epoch(2024, 4, 30), "MMDDYY"),
    ("04/30", _epoch(2025, 4, 30), "MM/DD"),
    ("04.30.24", _epoch(2024, 4, 30), "MM.DD.YY"),
    ("04/30/24-10:00", _epoch(2024, 4, 30, 10), "MM/DD/YY-HH:MM"),
    ("08:30", _epoch(2025, 5, 1, 8, 30), "HH:MM is today"),
    ("23:30", _epoch(2025, 5, 1, 23, 30), "HH:MM with past stays today even if later"),
    ("8:30:15", _epoch(2025, 5, 1, 8, 30, 15), "H:MM:SS"),
    ("3:30pm", _epoch(2025, 5, 1, 15, 30), "PM suffix"),
    ("12:00 am", _epoch(2025, 5, 1, 0, 0), "12 AM is midnight"),
    ("now", NOW, "now"),
    ("now-1hours", NOW - 3600, "now-count units"),
    ("now-1hour", NOW - 3600, "singular unit"),
    ("now-30minutes", NOW - 1800, "minutes"),
    ("now-2days", NOW - 2 * 86400, "days"),
    ("now-1week", NOW - 7 * 86400, "weeks"),
    ("now-90", NOW - 90, "default unit is seconds"),
    ("now+10minutes", NOW + 600, "future offset"),
    ("NOW-1HOURS", NOW - 3600, "case-insensitive"),
    ("today", _epoch(2025, 5, 1), "today is midnight"),
    ("midnight", _epoch(2025, 5, 1), "midnight"),
    ("noon", _epoch(2025, 5, 1, 12), "noon"),
    ("teatime", _epoch(2025, 5, 1, 16), "teatime (4 PM)"),
    ("tomorrow", _epoch(2025, 5, 2), "tomorrow"),
    ("uts1700000000", 1700000000, "uts<epoch>"),
    ("2025-02-31", _epoch(2025, 3, 3), "mktime normalises day overflow"),
]


@pytest.mark.parametrize(("text", "epoch", "why"), SACCT_TIME_CASES)
def test_parse_sacct_time(text: str, epoch: int, why: str) -> None:
    assert parse_sacct_time(text, NOW) == epoch, why


def test_parse_sacct_time_is_local(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_tz(monkeypatch, "EST+5")
    assert parse_sacct_time("2025-05-01", NOW) == _epoch(2025, 5, 1, 5)
    assert parse_sacct_time("today", NOW) == _epoch(2025, 5, 1, 5)


def test_parse_time_future_mode() -> None:
    # without `past` (sbatch --begin) a time already gone today means tomorrow
    assert parse_time("08:30", NOW) == _epoch(2025, 5, 2, 8, 30)
    assert parse_time("13:00", NOW) == _epoch(2025, 5, 1, 13)
    assert parse_time("0430", NOW) == _epoch(2026, 4, 30)
    assert parse_time("0601", NOW) == _epoch(2025, 6, 1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "24:00",
        "12:60",
        "1300",
        "2025-13-01",
        "now-",
        "now-1fortnight",
        "nowx",
        "uts12",
        "uts",
        "12:3",
        "T",
    ],
)
def test_parse_sacct_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="Invalid time specification"):
        parse_sacct_time(text, NOW)


# ---------------------------------------------------------------------------------------------
# memory

FMT_MEM_CASES = [
    (0, "0", "ref 3: convert_num_unit 0 -> 0"),
    (1000, "1000M", "ref 3: 1000 -> 1000M"),
    (2048, "2G", "ref 3: 2048 -> 2G"),
    (1536, "1.50G", "ref 3: 1536 -> 1.50G"),
    (1024, "1G", "exact multiple"),
    (1025, "1025M", "EXACT: not a multiple of 512 -> stays in MB"),
    (2560, "2.50G", "half values allowed"),
    (512, "512M", "below 1024 never converted"),
    (1048576, "1T", "two steps"),
    (1536 * 1024, "1.50T", "1.5 TB"),
    (1024**3, "1P", "petabytes"),
    (1024**4, "1?", "beyond PETA -> UNIT_UNKNOWN '?'"),
]


@pytest.mark.parametrize(("mb", "text", "why"), FMT_MEM_CASES)
def test_fmt_mem(mb: int, text: str, why: str) -> None:
    assert fmt_mem(mb) == text, why


PARSE_MEM_CASES = [
    ("100", 100, "str_to_mbytes: MB default"),
    ("100M", 100, "M suffix"),
    ("100m", 100, "lower case"),
    ("2G", 2048, "G suffix"),
    ("2g", 2048, "lower case"),
    ("1T", 1048576, "T suffix"),
    ("512K", 1, "K rounded up to 1 MB"),
    ("1025K", 2, "K rounded up"),
    ("1024K", 1, "exact K"),
    ("0", 0, "--mem=0 (all memory)"),
    ("2GB", 2048, "trailing B tolerated"),
]


@pytest.mark.parametrize(("text", "mb", "why"), PARSE_MEM_CASES)
def test_parse_mem(text: str, mb: int, why: str) -> None:
    assert parse_mem(text) == mb, why


@pytest.mark.parametrize("text", ["", "G", "-1", "1.5G", "10X", "abc", "2GiB", "1P"])
def test_parse_mem_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="Invalid memory specification"):
        parse_mem(text)


def test_mem_round_trip() -> None:
    # every whole-unit size prints in its largest exact unit and parses back
    for mb, text in [(100, "100M"), (2048, "2G"), (3 * 1048576, "3T")]:
        assert fmt_mem(mb) == text
        assert parse_mem(text) == mb
