"""srun --multi-prog: a program per task, from an MPMD configuration file (srun(1),
MULTIPLE PROGRAM CONFIGURATION).

Each line is ``<ranks> <program> [arguments]``. ``<ranks>`` is a comma list of task ranks and
``lo-hi`` ranges, or ``*`` for every task no earlier line named (it must come last). In the
arguments, ``%t`` is the task's rank and ``%o`` its offset within the line's ranks; single
quotes keep what they enclose; a backslash takes the next character as it is, and at the end
of a line continues the line. A line whose first non-blank character is ``#`` is a comment.

As in Slurm, srun checks the file (``verify``: every task of the step has exactly one line;
without ``-n`` the step gets as many tasks as the highest rank named, plus one) and sends its
text with the step; on each node a task's argv comes from that text (``task_argv``, as
slurmstepd's ``multi_prog_get_argv``), followed by whatever came after the file's name on
srun's command line.

Pure: the caller reads the file and reports the errors (``MultiProgError.messages``, each a
line srun or slurmstepd prints as ``error:``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

#: srun refuses a larger file (``_load_multi``).
MAX_SIZE = 60_000
#: A line as long as this, its newline included, is refused (srun reads lines of BUF_SIZE).
LINE_MAX = 4095
#: slurmstepd stops adding arguments at this many (its MAX_ARGC, less the terminating NULL).
MAX_ARGS = 127
#: Ranks past this are refused outright instead of growing the step (Spur's task limit).
MAX_RANK = 10_000_000


class MultiProgError(ValueError):
    """The file is not usable; ``messages`` are Slurm's error lines, in order."""

    def __init__(self, *messages: str) -> None:
        super().__init__(messages[-1])
        self.messages = messages


def _lines(text: str) -> list[str]:
    """The file's lines as srun's ``fgets`` loop sees them (each with its newline)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _statements(lines: list[str], too_long: str = "") -> Iterator[tuple[int, str]]:
    """The lines that hold a statement, with their index and leading blanks stripped: not a
    comment, not blank, not the continuation of a line that ended with a backslash.
    ``too_long``: the message (``{}``: the line's number) for a line of LINE_MAX or more."""
    previous_continued = False
    for i, line in enumerate(lines):
        if too_long and len(line) >= LINE_MAX:
            raise MultiProgError(too_long.format(i + 1))
        skip, previous_continued = previous_continued, line.rstrip("\n").endswith("\\")
        body = line.lstrip(" \t\n\v\f\r")
        if not skip and body and not body.startswith("#"):
            yield i, body


def verify(text: str, name: str, ntasks: int, ntasks_set: bool) -> tuple[int, bool]:
    """srun's ``verify_multi_name``: the step's task count (grown when ``-n`` was not given)
    and whether it is now fixed (a ``*`` line fixes it), or MultiProgError with Slurm's
    messages."""
    if ntasks <= 0:
        raise MultiProgError(f"Invalid task count {ntasks}")
    state = _Ranks(ntasks, ntasks_set)
    for i, body in _statements(_lines(text), f"Line {{}} of configuration file {name} too long"):
        number = i + 1
        words = [w for w in body.replace("\t", " ").replace("\n", " ").split(" ") if w]  # strtok " \t\n"
        if len(words) < 2:
            raise MultiProgError(f"Line {number} of configuration file {name} invalid")
        problem = state.claim(words[0])
        if problem:
            raise MultiProgError(problem, f"Line {number} of configuration file {name} invalid")
    for rank in range(state.ntasks):
        if rank not in state.seen:
            raise MultiProgError(f"Configuration file {name} invalid, no record for task id {rank}")
    return state.ntasks, state.ntasks_set


def _atoi(text: str) -> int:
    """C's atoi: an optional sign and the digits that follow (0 when there are none)."""
    sign, i = 1, 0
    if text[:1] in "+-" and text:
        sign, i = (-1 if text[0] == "-" else 1), 1
    j = i
    while j < len(text) and text[j].isdigit() and text[j].isascii():
        j += 1
    return sign * int(text[i:j]) if j > i else 0


def _digits(text: str) -> int:
    """How many ASCII digits ``text`` starts with."""
    i = 0
    while i < len(text) and "0" <= text[i] <= "9":
        i += 1
    return i


class _Ranks:
    """The ranks srun's ``_validate_ranks`` has seen, and the step's task count."""

    def __init__(self, ntasks: int, ntasks_set: bool) -> None:
        self.ntasks, self.ntasks_set = ntasks, ntasks_set
        self.grown = self.star = False
        self.seen: set[int] = set()

    def claim(self, ranks: str) -> str:
        """Mark the ranks of one line; an error message or ''."""
        if ranks == "*":
            self.ntasks_set = self.star = True
            return self._mark(0, self.ntasks - 1, duplicates_ok=True)
        for part in (p for p in ranks.split(",") if p):  # strtok: empty items vanish
            if self.star:
                return "Task range specification with asterisk must be last"
            n = _digits(part)
            if n == len(part):
                low = high = _atoi(part)
            elif part[n] == "-":
                upper = part[n + 1:]
                if _digits(upper) != len(upper):
                    return "Invalid task range specification"
                low, high = _atoi(part), _atoi(upper)
            else:
                return f"Invalid task range specification ({part})"
            problem = self._mark(low, high, duplicates_ok=False)
            if problem:
                return problem
        return ""

    def _mark(self, low: int, high: int, duplicates_ok: bool) -> str:
        if low > high:
            return f"Invalid task range, {low}-{high}"
        if low < 0:
            return f"Invalid task id, {low} < 0"
        if high >= self.ntasks:
            if (self.ntasks_set and not self.grown) or high >= MAX_RANK:
                return f"Invalid task id, {high} >= ntasks"
            self.ntasks, self.ntasks_set, self.grown = high + 1, True, True
        for rank in range(low, high + 1):
            if rank in self.seen:
                if duplicates_ok:
                    continue
                return f"Duplicate record for task {rank}"
            self.seen.add(rank)
        return ""


def _offset(rank: int, spec: str) -> int | None:
    """slurmstepd's ``_in_range``: the rank's offset within the line's ranks, or None."""
    if spec == "*":
        return rank
    passed = 0
    for part in (p for p in spec.split(",") if p):
        n = _digits(part)
        if n == len(part):
            if rank == _atoi(part):
                return passed
            passed += 1
        elif part[n] == "-" and _digits(part[n + 1:]) == len(part) - n - 1:
            low, high = _atoi(part), _atoi(part[n + 1:])
            if low <= rank <= high:
                return passed + rank - low
            passed += 1 + high - low
    return None


def task_argv(text: str, rank: int, extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The argv of task ``rank`` (slurmstepd's ``multi_prog_get_argv``), followed by
    ``extra``; MultiProgError when no line names the task or a quote is not closed."""
    if rank < 0:
        raise MultiProgError(f"Invalid task rank {rank}")
    lines = [line for line in text.split("\n") if line]  # strtok: empty lines vanish
    for i, body in _statements(lines):
        cut = next((k for k, c in enumerate(body) if c in " \t\v\f\r"), None)
        if cut is None:
            raise MultiProgError(f"Invalid MPMD configuration line {i + 1}")
        offset = _offset(rank, body[:cut])
        if offset is None:
            continue
        argv = _words(body[cut:], rank, offset, lines, i + 1)
        for word in extra:
            if len(argv) >= MAX_ARGS:
                break
            argv.append(word)
        return argv
    raise MultiProgError(f"Program for task rank {rank} not specified.")


def _words(rest: str, rank: int, offset: int, lines: list[str], following: int) -> list[str]:
    """The arguments of one line: whitespace separates words; ``%t``/``%o`` substitute (any
    other ``%x`` is dropped); ``\\x`` is ``x``; ``'...'`` is literal; a backslash at the end
    of the line continues the word on the next line."""
    words: list[str] = []
    word: list[str] | None = None
    s, k = rest, 0
    while True:
        if k >= len(s):
            break
        c = s[k]
        if c in " \t\n\v\f\r":
            if word is not None:
                words.append("".join(word))
                word = None
            k += 1
            continue
        if word is None:
            if len(words) >= MAX_ARGS:
                break
            word = []
        if c == "%":
            code = s[k + 1:k + 2]
            if code == "t":
                word.append(str(rank))
            elif code == "o":
                word.append(str(offset))
            k += 2
        elif c == "\\":
            if k + 1 < len(s):
                word.append(s[k + 1])
                k += 2
            elif following < len(lines):
                s, k = lines[following], 0
                following += 1
            else:
                k += 1
        elif c == "'":
            close = s.find("'", k + 1)
            while close < 0 and s.endswith("\\") and following < len(lines):
                word.append(s[k + 1:-1])
                s, k = "'" + lines[following], 0
                following += 1
                close = s.find("'", 1)
            if close < 0:
                raise MultiProgError(f"Program arguments specification format invalid: {''.join(word)}.")
            word.append(s[k + 1:close])
            k = close + 1
        else:
            word.append(c)
            k += 1
    if word is not None:
        words.append("".join(word))
    return words
