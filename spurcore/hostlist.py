"""Slurm host lists: ``node[1-3,5]`` <-> ``["node1", "node2", "node3", "node5"]``.

Pure module modelled on Slurm's ``src/common/hostlist.c`` (one-dimensional clusters):

* ``expand`` is ``hostlist_create`` + iteration (``scontrol show hostnames``): the order of the
  input is kept and duplicates are not removed.
* ``compress`` is ``hostlist_uniq`` + ``hostlist_ranged_string`` as used for ``NodeList=``:
  duplicates removed, sorted, consecutive numbers collapsed into ranges.

Rules of ``compress`` (matching hostlist.c):

* Only the trailing run of digits of a name is a number (``rack1n07`` -> prefix ``rack1n``,
  suffix ``07``).  Names without trailing digits are kept as they are, never bracketed.
* Prefixes are ordered with ``strnatcmp`` (``r2n`` before ``r10n``); at equal prefix a name
  without a number comes first (``hostrange_prefix_cmp``).
* Within one prefix the hosts are ordered by suffix length, then value.  That is the order
  ``hostrange_cmp`` produces: widths that are "equivalent" (``_width_equiv``: one width can be
  applied to both numbers without changing either's zero padding) sort by value, others by
  width.
* Two hosts join one range when their numbers are consecutive and the range's width (the
  length of its first suffix) prints the new number exactly as written: ``n9,n10`` ->
  ``n[9-10]``, ``n098,n099,n100`` -> ``n[098-100]``, but ``n9,n010`` stay two ranges.
* Every range with the same prefix goes into the same bracket, whatever its width
  (``hostrange_within_range`` only compares prefixes): ``n1,n01`` -> ``n[1,01]``.  A prefix with
  one single host is written without brackets (``node1``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # annotations only: collections.abc imports collections (command start-up)
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["expand", "compress", "strnatcmp", "MAX_RANGE"]

#: hostlist.c MAX_RANGE: a larger bracket range is treated as an error.
MAX_RANGE = 64 * 1024

_SEPARATORS = "\t, \n"


# ---------------------------------------------------------------------------------------------
# expand


def _split_tokens(text: str) -> list[str]:
    """Split on separators outside brackets (hostlist.c ``_next_tok``)."""
    tokens: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            if depth == 0:
                raise ValueError(f"Invalid hostlist: {text}")
            depth -= 1
        if depth == 0 and ch in _SEPARATORS:
            if cur:
                tokens.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if depth != 0:
        raise ValueError(f"Invalid hostlist: {text}")
    if cur:
        tokens.append("".join(cur))
    return tokens


def _parse_ranges(body: str, whole: str) -> list[str]:
    """``1-3,07`` -> ["1", "2", "3", "07"]; each range is printed with the width of its low end."""
    out: list[str] = []
    for part in body.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"Invalid hostlist: {whole}")
        lo_s, sep, hi_s = part.partition("-")
        if not (lo_s.isascii() and lo_s.isdigit()):
            raise ValueError(f"Invalid hostlist: {whole}")
        if not sep:
            out.append(lo_s)
            continue
        if not (hi_s.isascii() and hi_s.isdigit()):
            raise ValueError(f"Invalid hostlist: {whole}")
        lo, hi = int(lo_s), int(hi_s)
        if hi < lo or hi - lo >= MAX_RANGE:
            raise ValueError(f"Invalid hostlist: {whole}")
        width = len(lo_s)
        out.extend(f"{n:0{width}d}" for n in range(lo, hi + 1))
    return out


def _expand_token(token: str, whole: str) -> list[str]:
    """Expand every bracket group of one token (``r[1-2]n[1-2]`` is a cross product)."""
    open_at = token.find("[")
    if open_at < 0:
        if "]" in token:
            raise ValueError(f"Invalid hostlist: {whole}")
        return [token]
    close_at = token.find("]", open_at)
    if close_at < 0:
        raise ValueError(f"Invalid hostlist: {whole}")
    prefix = token[:open_at]
    numbers = _parse_ranges(token[open_at + 1 : close_at], whole)
    rests = _expand_token(token[close_at + 1 :], whole) if close_at + 1 < len(token) else [""]
    return [f"{prefix}{num}{rest}" for num in numbers for rest in rests]


def expand(hostlist: str) -> list[str]:
    """``"node[1-3],other"`` -> ``["node1", "node2", "node3", "other"]``.

    Input order and duplicates are kept.  Tokens are separated by commas or whitespace outside
    brackets.  ``""`` -> ``[]``.  Malformed brackets raise ``ValueError("Invalid hostlist: ...")``.
    """
    out: list[str] = []
    for token in _split_tokens(hostlist):
        out.extend(_expand_token(token, hostlist))
    return out


# ---------------------------------------------------------------------------------------------
# compress


def _compare_right(a: str, i: int, b: str, j: int) -> int:
    bias = 0
    while True:
        ca = a[i] if i < len(a) else ""
        cb = b[j] if j < len(b) else ""
        da, db = ca.isdigit(), cb.isdigit()
        if not da and not db:
            return bias
        if not da:
            return -1
        if not db:
            return 1
        if ca < cb and not bias:
            bias = -1
        elif ca > cb and not bias:
            bias = 1
        i += 1
        j += 1


def _compare_left(a: str, i: int, b: str, j: int) -> int:
    while True:
        ca = a[i] if i < len(a) else ""
        cb = b[j] if j < len(b) else ""
        da, db = ca.isdigit(), cb.isdigit()
        if not da and not db:
            return 0
        if not da:
            return -1
        if not db:
            return 1
        if ca < cb:
            return -1
        if ca > cb:
            return 1
        i += 1
        j += 1


def strnatcmp(a: str, b: str) -> int:
    """Martin Pool's ``strnatcmp`` (Slurm src/common/strnatcmp.c): -1, 0 or 1."""
    i = j = 0
    while True:
        while i < len(a) and a[i].isspace():
            i += 1
        while j < len(b) and b[j].isspace():
            j += 1
        ca = a[i] if i < len(a) else ""
        cb = b[j] if j < len(b) else ""
        if ca.isdigit() and cb.isdigit():
            if ca == "0" or cb == "0":
                result = _compare_left(a, i, b, j)
            else:
                result = _compare_right(a, i, b, j)
            if result:
                return result
        if not ca and not cb:
            return 0
        if ca < cb:
            return -1
        if ca > cb:
            return 1
        i += 1
        j += 1


class _Host:
    """A host name split into its prefix and trailing number (a plain class: importing
    dataclasses costs more than this whole module on the controller's start-up path)."""

    __slots__ = ("prefix", "suffix")

    def __init__(self, prefix: str, suffix: str) -> None:
        self.prefix = prefix
        self.suffix = suffix  # "" for a name without a trailing number

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Host) and (self.prefix, self.suffix) == (other.prefix, other.suffix)

    def __hash__(self) -> int:
        return hash((self.prefix, self.suffix))

    @property
    def num(self) -> int:
        return int(self.suffix)


def _split_host(name: str) -> _Host:
    end = len(name)
    while end > 0 and name[end - 1].isascii() and name[end - 1].isdigit():
        end -= 1
    return _Host(name[:end], name[end:])


class _NatKey:
    """Sort key wrapping ``strnatcmp``, with plain string order as a tie-break."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: _NatKey) -> bool:
        c = strnatcmp(self.text, other.text)
        return c < 0 if c else self.text < other.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NatKey) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


def _host_key(h: _Host) -> tuple[_NatKey, int, int, int]:
    if not h.suffix:
        return (_NatKey(h.prefix), 0, 0, 0)
    return (_NatKey(h.prefix), 1, len(h.suffix), h.num)


def _ranges_for_prefix(hosts: list[_Host]) -> list[tuple[str, str]]:
    """Collapse sorted hosts of one prefix into (lo_suffix, hi_suffix) ranges."""
    ranges: list[tuple[str, str]] = []
    lo_s = hi_s = ""
    for h in hosts:
        if lo_s:
            width = len(lo_s)
            if h.num == int(hi_s) + 1 and f"{h.num:0{width}d}" == h.suffix:
                hi_s = h.suffix
                continue
            ranges.append((lo_s, hi_s))
        lo_s = hi_s = h.suffix
    if lo_s:
        ranges.append((lo_s, hi_s))
    return ranges


def compress(hosts: Iterable[str]) -> str:
    """``["node3", "node1", "node2", "node5"]`` -> ``"node[1-3,5]"`` (Slurm's NodeList form).

    Empty names are ignored; an empty input gives ``""``.
    """
    unique = {name for name in hosts if name}
    parsed = sorted((_split_host(name) for name in unique), key=_host_key)

    parts: list[str] = []
    i = 0
    while i < len(parsed):
        h = parsed[i]
        if not h.suffix:
            parts.append(h.prefix)
            i += 1
            continue
        j = i
        while j < len(parsed) and parsed[j].suffix and parsed[j].prefix == h.prefix:
            j += 1
        ranges = _ranges_for_prefix(parsed[i:j])
        body = ",".join(lo if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)
        if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
            parts.append(f"{h.prefix}{body}")
        else:
            parts.append(f"{h.prefix}[{body}]")
        i = j
    return ",".join(parts)
