"""spurcore.signals: glibc strsignal text and Slurm's signal name parsing."""

from __future__ import annotations

import pytest

from spurcore.signals import (
    SIGNAL_NAMES,
    parse_signal,
    sig_fullname,
    sig_name,
    strsignal,
)

# (signal, strsignal text, what pins it)
STRSIGNAL_CASES = [
    (1, "Hangup", "ref 2.3: RaisedSignal:1(Hangup)"),
    (2, "Interrupt", "ref 2.3 glibc names"),
    (3, "Quit", "ref 2.3 glibc names"),
    (4, "Illegal instruction", "ref 2.3 glibc names"),
    (5, "Trace/breakpoint trap", "ref 2.3 glibc names"),
    (6, "Aborted", "ref 2.3: RaisedSignal:6(Aborted)"),
    (7, "Bus error", "ref 2.3 glibc names"),
    (8, "Floating point exception", "ref 2.3 glibc names"),
    (9, "Killed", "ref 2.3 / test1.55: RaisedSignal:9(Killed)"),
    (10, "User defined signal 1", "ref 2.3: RaisedSignal:10(User_defined_signal_1)"),
    (11, "Segmentation fault", "ref 2.3: squeue (RaisedSignal:11(Segmentation fault))"),
    (12, "User defined signal 2", "ref 2.3 glibc names"),
    (13, "Broken pipe", "ref 2.3 glibc names"),
    (14, "Alarm clock", "ref 2.3 glibc names"),
    (15, "Terminated", "ref 2.3: RaisedSignal:15(Terminated); ref 9 DUE to SIGNAL Terminated"),
    (16, "Stack fault", "glibc sys_siglist"),
    (17, "Child exited", "glibc sys_siglist"),
    (18, "Continued", "glibc sys_siglist"),
    (19, "Stopped (signal)", "glibc sys_siglist"),
    (20, "Stopped", "glibc sys_siglist"),
    (21, "Stopped (tty input)", "glibc sys_siglist"),
    (22, "Stopped (tty output)", "glibc sys_siglist"),
    (23, "Urgent I/O condition", "glibc sys_siglist"),
    (24, "CPU time limit exceeded", "ref 2.3 glibc names"),
    (25, "File size limit exceeded", "ref 2.3 glibc names"),
    (26, "Virtual timer expired", "glibc sys_siglist"),
    (27, "Profiling timer expired", "glibc sys_siglist"),
    (28, "Window changed", "glibc sys_siglist"),
    (29, "I/O possible", "glibc sys_siglist"),
    (30, "Power failure", "glibc sys_siglist"),
    (31, "Bad system call", "glibc sys_siglist"),
    (34, "Real-time signal 0", "glibc: SIGRTMIN is 34, numbered from 0"),
    (40, "Real-time signal 6", "glibc: N = sig - SIGRTMIN"),
    (64, "Real-time signal 30", "glibc: SIGRTMAX"),
    (32, "Unknown signal 32", "glibc: reserved NPTL signal has no text"),
    (0, "Unknown signal 0", "glibc: out of range"),
    (65, "Unknown signal 65", "glibc: out of range"),
]


@pytest.mark.parametrize(("sig", "text", "why"), STRSIGNAL_CASES)
def test_strsignal(sig: int, text: str, why: str) -> None:
    assert strsignal(sig) == text, why


# (number, short name, what pins it): Linux x86_64 numbering as slurmstepd sends it
NAME_CASES = [
    (1, "HUP", "kill -l"),
    (2, "INT", "kill -l"),
    (6, "ABRT", "kill -l"),
    (9, "KILL", "ref 6: scancel default SIGKILL"),
    (10, "USR1", "ref 6: --signal=USR1 == 10"),
    (11, "SEGV", "kill -l"),
    (12, "USR2", "kill -l"),
    (15, "TERM", "ref 9: SIGTERM on cancel"),
    (17, "CHLD", "x86_64"),
    (18, "CONT", "ref 9: SIGCONT on resume/terminate"),
    (19, "STOP", "ref 2.1: scancel --signal=STOP"),
    (20, "TSTP", "ref 6: suspend sends SIGTSTP"),
    (29, "IO", "kill -l"),
    (31, "SYS", "kill -l"),
    (34, "RTMIN", "glibc SIGRTMIN"),
    (35, "RTMIN+1", "RTMIN+n naming"),
    (64, "RTMIN+30", "RTMIN+n naming up to 64"),
]


@pytest.mark.parametrize(("sig", "name", "why"), NAME_CASES)
def test_signal_names(sig: int, name: str, why: str) -> None:
    assert SIGNAL_NAMES[sig] == name, why
    assert sig_name(sig) == name, why
    assert sig_fullname(sig) == "SIG" + name, why


def test_signal_table_shape() -> None:
    # 1..31 classic signals, 32/33 reserved by glibc, 34..64 real-time
    assert sorted(SIGNAL_NAMES) == list(range(1, 32)) + list(range(34, 65))


def test_sig_name_unknown_number() -> None:
    # Slurm sig_num2name falls back to the decimal number
    assert sig_name(99) == "99"
    assert sig_fullname(33) == "33"


# (text, number, what pins it): ref 6 "USR1, SIGUSR1 and 10 are all accepted, case-insensitive"
PARSE_CASES = [
    ("USR1", 10, "ref 6: bare name"),
    ("SIGUSR1", 10, "ref 6: SIG prefix"),
    ("usr1", 10, "ref 6: case-insensitive"),
    ("sigUsr1", 10, "ref 6: case-insensitive prefix"),
    ("10", 10, "ref 6: number"),
    ("9", 9, "number"),
    ("KILL", 9, "test_107_3 --signal=SIGKILL"),
    ("SIGTERM", 15, "test_107_3 --signal=SIGTERM"),
    ("STOP", 19, "ref 2.1 scancel --signal=STOP"),
    ("CONT", 18, "ref 9 scancel -s CONT"),
    (" HUP ", 1, "sig_name2num skips surrounding whitespace"),
    ("64", 64, "highest real-time number"),
    ("RTMIN", 34, "real-time name"),
    ("SIGRTMIN+2", 36, "real-time offset"),
    ("RTMAX", 64, "RTMAX alias"),
    ("RTMAX-1", 63, "RTMAX-n alias"),
    ("IOT", 6, "alias of ABRT"),
    ("CLD", 17, "alias of CHLD"),
    ("POLL", 29, "alias of IO"),
]


@pytest.mark.parametrize(("text", "sig", "why"), PARSE_CASES)
def test_parse_signal(text: str, sig: int, why: str) -> None:
    assert parse_signal(text) == sig, why


@pytest.mark.parametrize(
    "text",
    ["", "FOO", "SIG", "0", "65", "-9", "10x", "USR1X", "RTMIN+31", "RTMAX-31", "1.5", "٣"],
)
def test_parse_signal_rejects(text: str) -> None:
    # scancel: sig_name2num returns 0 -> error, exit 1
    with pytest.raises(ValueError, match="^Unknown signal: "):
        parse_signal(text)


def test_parse_signal_message_quotes_input() -> None:
    with pytest.raises(ValueError) as info:
        parse_signal("BOGUS")
    assert str(info.value) == "Unknown signal: BOGUS"


def test_names_round_trip() -> None:
    for sig, name in SIGNAL_NAMES.items():
        assert parse_signal(name) == sig
        assert parse_signal("SIG" + name.lower()) == sig
        assert parse_signal(str(sig)) == sig
