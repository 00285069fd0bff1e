"""Job array index sets: Slurm's ``--array`` expressions, kept as ranges.

Invariants:
- A set of task indexes is a list of ``[first, last, step]`` ranges, sorted, disjoint
  (``last`` of one range < ``first`` of the next) and exact (``last`` is reached from
  ``first`` by whole steps). A pending 100,000-task array is one short range, not 100,000
  numbers: that keeps its hot-state record and its log entry small.
- Pure functions of their arguments; ranges given are never mutated (new lists come back).

Source: Slurm 25.11 src/common/slurm_protocol_defs.c ``slurm_parse_array_tok`` (the
expression), src/slurmctld/job_mgr.c ``_valid_array_inx`` (MaxArraySize, the ``%`` limit),
src/common/bitstring.c ``bit_fmt`` (how squeue prints the pending tasks).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

Ranges = list  # list[list[int]]: [[first, last, step], ...]

#: Slurm's MaxArraySize default: indexes 0..1000.
DEFAULT_MAX_ARRAY_SIZE = 1001


class ArrayError(ValueError):
    """An expression Slurm refuses (``Invalid job array specification``)."""


def _strtol(text: str, pos: int) -> tuple[int | None, int]:
    """C ``strtol`` base 10 at ``pos``: (value or None when no digits, end position)."""
    n = len(text)
    i = pos
    while i < n and text[i] in " \t":
        i += 1
    start = i
    if i < n and text[i] in "+-":
        i += 1
    digits = i
    while i < n and text[i].isdigit():
        i += 1
    if i == digits:
        return None, pos
    return int(text[start:i]), i


def _parse_token(tok: str, max_size: int) -> list[int]:
    """One comma-separated token (``slurm_parse_array_tok``) as [first, last, step]."""
    if tok.startswith("["):
        tok = tok[1:]
    first, end = _strtol(tok, 0)
    if first is None:
        first = 0  # strtol of no digits is 0, as in C; the rest of the token must then be empty
    if end < len(tok) and tok[end] == "]":
        end += 1
    if first < 0:
        raise ArrayError(tok)
    step = 1
    rest = tok[end:]
    if rest.startswith("-"):
        last, end = _strtol(tok, end + 1)
        if last is None:
            last = 0
        if end < len(tok) and tok[end] == "]":
            end += 1
        rest = tok[end:]
        if rest.startswith(":"):
            step_v, end = _strtol(tok, end + 1)
            step = 0 if step_v is None else step_v
            if end < len(tok) and tok[end] == "]":
                end += 1
            rest = tok[end:]
            if rest and not rest.startswith("%"):
                raise ArrayError(tok)
            if step <= 0 or step >= max_size:
                raise ArrayError(tok)
        elif rest and not rest.startswith("%"):
            raise ArrayError(tok)
        if last < first:
            raise ArrayError(tok)
    elif rest and not rest.startswith("%"):
        raise ArrayError(tok)
    else:
        last = first
    if last >= max_size:
        raise ArrayError(tok)
    last = first + (last - first) // step * step
    return [first, last, step]


def parse_array(text: str, max_size: int = DEFAULT_MAX_ARRAY_SIZE) -> tuple[Ranges, int]:
    """``--array`` text -> (normalized ranges, throttle; 0 = no ``%`` limit).

    ``0-99:2%10``, ``1,3,5-7``, ``[1-3]``. Raises ArrayError for what Slurm refuses:
    negative or reversed ranges, steps <= 0, an index >= MaxArraySize, trailing junk,
    an empty set, or MaxArraySize 0 (arrays disabled).
    """
    if max_size <= 0:
        raise ArrayError("job arrays are disabled (MaxArraySize=0)")
    throttle = 0
    if "%" in text:
        value, end = _strtol(text, text.index("%") + 1)
        throttle = max(0, value or 0)  # Slurm: atoi() of what follows the first %
    ranges: Ranges = []
    for tok in text.split(","):
        if tok:
            ranges.append(_parse_token(tok, max_size))
    if not ranges:
        raise ArrayError(text)
    return normalize(ranges), throttle


def normalize(ranges: Iterable[list[int]]) -> Ranges:
    """Sorted, disjoint, exact ranges for any list of ranges (overlaps merged)."""
    items = sorted(([a, b, s] for a, b, s in ranges if a <= b), key=lambda r: (r[0], r[1]))
    disjoint = all(items[i][1] < items[i + 1][0] for i in range(len(items) - 1))
    if disjoint:
        return [[a, a + (b - a) // s * s, s] if s > 0 else [a, a, 1] for a, b, s in items]
    return compress(sorted({i for a, b, s in items for i in range(a, b + 1, s)}))


def compress(indexes: Iterable[int]) -> Ranges:
    """Sorted, distinct indexes -> ranges: runs of one step (three or more indexes, or two
    consecutive ones) become a range, anything else single indexes."""
    seq = list(indexes)
    out: Ranges = []
    i, n = 0, len(seq)
    while i < n:
        j = i + 1
        if j < n:
            d = seq[j] - seq[i]
            while j + 1 < n and seq[j + 1] - seq[j] == d:
                j += 1
            if j - i >= 2 or d == 1:
                out.append([seq[i], seq[j], d])
                i = j + 1
                continue
        out.append([seq[i], seq[i], 1])
        i += 1
    return out


def count(ranges: Ranges) -> int:
    return sum((b - a) // s + 1 for a, b, s in ranges)


def indexes(ranges: Ranges) -> Iterator[int]:
    for a, b, s in ranges:
        yield from range(a, b + 1, s)


def first_index(ranges: Ranges) -> int:
    return ranges[0][0] if ranges else -1


def last_index(ranges: Ranges) -> int:
    return ranges[-1][1] if ranges else -1


def contains(ranges: Ranges, index: int) -> bool:
    for a, b, s in ranges:
        if a <= index <= b:
            return (index - a) % s == 0
    return False


def remove(ranges: Ranges, index: int) -> Ranges:
    """The ranges without ``index`` (unchanged copy when it is not there)."""
    out: Ranges = []
    for a, b, s in ranges:
        if a <= index <= b and (index - a) % s == 0:
            if a < index:
                out.append([a, index - s, s])
            if index < b:
                out.append([index + s, b, s])
        else:
            out.append([a, b, s])
    return out


def step_of(ranges: Ranges) -> int:
    """SLURM_ARRAY_TASK_STEP: the step when the indexes are one arithmetic run, else 1."""
    if len(ranges) == 1:
        return ranges[0][2] if ranges[0][0] != ranges[0][1] else 1
    return 1


def fmt_ranges(ranges: Ranges) -> str:
    """Slurm's job-array text with steps (``0-98:2,101``), as sbatch takes it back."""
    parts = []
    for a, b, s in ranges:
        if a == b:
            parts.append(str(a))
        elif s == 1:
            parts.append(f"{a}-{b}")
        else:
            parts.append(f"{a}-{b}:{s}")
    return ",".join(parts)


def _runs(ranges: Ranges) -> Iterator[tuple[int, int]]:
    """Maximal runs of consecutive indexes, in order."""
    cur: list[int] | None = None
    for a, b, s in ranges:
        pieces = ((a, b),) if s == 1 else ((i, i) for i in range(a, b + 1, s))
        for lo, hi in pieces:
            if cur is not None and lo == cur[1] + 1:
                cur[1] = hi
                continue
            if cur is not None:
                yield cur[0], cur[1]
            cur = [lo, hi]
    if cur is not None:
        yield cur[0], cur[1]


def fmt_bitmap(ranges: Ranges, limit: int = 64) -> str:
    """Slurm's ``bit_fmt(str, limit, bitmap)``: runs of consecutive indexes as ``a-b``,
    others one by one, comma-separated; cut at ``limit - 1`` characters as snprintf does.
    ``limit`` <= 0: no cut (``bit_fmt_full``)."""
    out: list[str] = []
    size = 0
    for lo, hi in _runs(ranges):
        piece = ("," if out else "") + (f"{lo}-{hi}" if hi != lo else str(lo))
        out.append(piece)
        size += len(piece)
        if limit > 0 and size >= limit - 1:
            return "".join(out)[: limit - 1]
    return "".join(out)


def task_str(ranges: Ranges, throttle: int = 0, bitstr_len: int = 64) -> str:
    """The ``array_task_str`` a Slurm client shows for a record of pending tasks
    (``xlate_array_task_str``): one arithmetic run of more than five indexes spanning more
    than ten, whose second index is not set, as ``first-last:step``; otherwise ``bit_fmt``
    cut to ``bitstr_len - 1`` characters with its last three turned into ``...`` when the
    text is longer than ``bitstr_len - 3`` (``bitstr_len`` 0: the whole text, as with
    ``SLURM_BITSTR_LEN=0``); then ``%<throttle>`` when the array has one.

    ``bitstr_len`` is the value of ``SLURM_BITSTR_LEN`` as the client read it: negative
    means the default 64, larger values are capped at 4096.
    """
    text = _step_form(ranges)
    if text is None:
        if bitstr_len < 0:
            bitstr_len = 64
        bitstr_len = min(bitstr_len, 4096)
        if bitstr_len > 0:
            text = fmt_bitmap(ranges, bitstr_len)
            if len(text) > bitstr_len - 3:
                # out_buf[len-2-i] = '.' for i in 0..2 on a zeroed buffer of bitstr_len bytes
                buf = list(text.ljust(bitstr_len - 1, "\0"))
                for i in range(3):
                    buf[bitstr_len - 2 - i] = "."
                text = "".join(buf).split("\0", 1)[0]
        else:
            text = fmt_bitmap(ranges, 0)
    if throttle:
        text += f"%{throttle}"
    return text


def _step_form(ranges: Ranges) -> str | None:
    """``first-last:step`` when xlate_array_task_str's step test holds, else None."""
    if not ranges:
        return None
    first, last = ranges[0][0], ranges[-1][1]
    if last - first <= 10 or count(ranges) <= 5 or contains(ranges, first + 1):
        return None
    step = 0
    prev = first
    for i in indexes(ranges):
        if i == first:
            continue
        if step == 0:
            step = i - prev
        elif i - prev != step:
            return None
        prev = i
    return f"{first}-{last}:{step}"


def parse_task_list(text: str, max_size: int = 4_000_001) -> Ranges:
    """A task id list as Slurm's tools take it after ``<job>_`` (``1-3,7``, ``[1-3]``,
    ``0-99:2``; a trailing ``%N`` is ignored) -> normalized ranges. Raises ArrayError."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    if "%" in body:
        body = body.split("%", 1)[0]
    return parse_array(body, max_size)[0]
