"""msgpack as the RPC frames use it, without importing msgpack for a short command's small messages.

``packb(obj)`` is ``msgpack.packb(obj, use_bin_type=True)`` and ``unpackb(data)`` is
``msgpack.unpackb(data, raw=False, strict_map_key=False)``: same bytes, same objects, same
exceptions. Why: importing msgpack costs a command-line tool about 4 ms of CPU, as much as
the rest of ``squeue`` (its C extension imports ``datetime`` and ``collections``), while a
command's request and the reply to it are a few hundred bytes.

Invariants:
- Once msgpack is imported (every daemon, or a command that met a big reply), it does all
  the work: the pure-Python path never runs in a process that has it.
- The pure-Python path is a subset. It packs only the exact built-in types (None, bool, int
  in 64 bits, float, str, bytes, list, tuple, dict) and unpacks only well-formed bodies of at
  most :data:`LITE_MAX` bytes without ext types and without trailing bytes. Anything else,
  including every error, is handed to msgpack itself, so the results and the exceptions are
  always msgpack's (tests/unit/test_wirecodec.py compares both on generated values).
"""

from __future__ import annotations

import sys
from _struct import pack as _spack
from _struct import unpack_from as _sunpack

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from typing import Any

#: Bodies up to this size are decoded in pure Python while msgpack is not loaded. Measured on
#: a squeue reply's rows: 7 MB/s against msgpack's 100 MB/s, so 16 KiB costs about 2 ms, less
#: than importing msgpack (3-4 ms); a 10-job squeue reply is about 4 KB.
LITE_MAX = 16 * 1024


def packb(obj: Any) -> bytes:
    """``msgpack.packb(obj, use_bin_type=True)``."""
    if "msgpack" not in sys.modules:
        body = lite_packb(obj)
        if body is not None:
            return body
    import msgpack

    return msgpack.packb(obj, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """``msgpack.unpackb(data, raw=False, strict_map_key=False)``."""
    if "msgpack" not in sys.modules and type(data) is bytes and len(data) <= LITE_MAX:
        done, obj = lite_unpackb(data)
        if done:
            return obj
    import msgpack

    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def lite_packb(obj: Any) -> bytes | None:
    """The pure-Python packer: msgpack's bytes, or None for a value outside the subset."""
    out: list[bytes] = []
    try:
        _pack(obj, out.append, 0)
    except _NotLite:
        return None
    return b"".join(out)


def lite_unpackb(data: bytes) -> tuple[bool, Any]:
    """The pure-Python unpacker: ``(True, value)`` with msgpack's value, or ``(False, None)``
    when msgpack must decide (malformed, ext types, trailing bytes, too deep)."""
    try:
        obj, end = _unpack(data, 0, 0)
    except Exception:  # any malformation: msgpack raises its own error for it
        return False, None
    return (True, obj) if end == len(data) else (False, None)


class _NotLite(Exception):
    """The value is outside the pure-Python subset: msgpack packs it (or raises its error)."""


_MAX_DEPTH = 256  # deeper values go to msgpack (far below the interpreter's recursion limit)


def _pack(obj: Any, write: Any, depth: int) -> None:
    t = type(obj)
    if obj is None:
        write(b"\xc0")
    elif t is bool:
        write(b"\xc3" if obj else b"\xc2")
    elif t is int:
        if 0 <= obj < 0x80:
            write(_spack("B", obj))
        elif -0x20 <= obj < 0:
            write(_spack("b", obj))
        elif 0 < obj <= 0xFF:
            write(_spack(">BB", 0xCC, obj))
        elif 0 < obj <= 0xFFFF:
            write(_spack(">BH", 0xCD, obj))
        elif 0 < obj <= 0xFFFFFFFF:
            write(_spack(">BI", 0xCE, obj))
        elif 0 < obj <= 0xFFFFFFFFFFFFFFFF:
            write(_spack(">BQ", 0xCF, obj))
        elif -0x80 <= obj < 0:
            write(_spack(">Bb", 0xD0, obj))
        elif -0x8000 <= obj < 0:
            write(_spack(">Bh", 0xD1, obj))
        elif -0x80000000 <= obj < 0:
            write(_spack(">Bi", 0xD2, obj))
        elif -0x8000000000000000 <= obj < 0:
            write(_spack(">Bq", 0xD3, obj))
        else:
            raise _NotLite
    elif t is str:
        try:
            b = obj.encode("utf-8")
        except UnicodeEncodeError:
            raise _NotLite from None
        n = len(b)
        if n < 32:
            write(_spack("B", 0xA0 | n))
        elif n <= 0xFF:
            write(_spack(">BB", 0xD9, n))
        elif n <= 0xFFFF:
            write(_spack(">BH", 0xDA, n))
        elif n <= 0xFFFFFFFF:
            write(_spack(">BI", 0xDB, n))
        else:
            raise _NotLite
        write(b)
    elif t is float:
        write(_spack(">Bd", 0xCB, obj))
    elif t is dict:
        if depth >= _MAX_DEPTH:
            raise _NotLite
        _header(len(obj), 0x80, 0xDE, write)
        for key, value in obj.items():
            _pack(key, write, depth + 1)
            _pack(value, write, depth + 1)
    elif t is list or t is tuple:
        if depth >= _MAX_DEPTH:
            raise _NotLite
        _header(len(obj), 0x90, 0xDC, write)
        for item in obj:
            _pack(item, write, depth + 1)
    elif t is bytes:
        n = len(obj)
        if n <= 0xFF:
            write(_spack(">BB", 0xC4, n))
        elif n <= 0xFFFF:
            write(_spack(">BH", 0xC5, n))
        elif n <= 0xFFFFFFFF:
            write(_spack(">BI", 0xC6, n))
        else:
            raise _NotLite
        write(obj)
    else:  # subclasses (IntEnum, ...), bytearray, memoryview, ExtType, Timestamp, the unpackable
        raise _NotLite


def _header(n: int, fix: int, code16: int, write: Any) -> None:
    """An array (fix 0x90, 0xdc/0xdd) or map (fix 0x80, 0xde/0xdf) header."""
    if n < 16:
        write(_spack("B", fix | n))
    elif n <= 0xFFFF:
        write(_spack(">BH", code16, n))
    elif n <= 0xFFFFFFFF:
        write(_spack(">BI", code16 + 1, n))
    else:
        raise _NotLite


#: Fixed-size scalars after a one-byte code: code -> struct format (ext codes are absent).
_SCALARS = {
    0xCA: ">f", 0xCB: ">d",
    0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
    0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
}
_SIZES = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
#: Length-prefixed codes: code -> (length format, length size, kind).
_STR, _BIN, _ARRAY, _MAP = 0, 1, 2, 3
_SIZED = {
    0xD9: (">B", 1, _STR), 0xDA: (">H", 2, _STR), 0xDB: (">I", 4, _STR),
    0xC4: (">B", 1, _BIN), 0xC5: (">H", 2, _BIN), 0xC6: (">I", 4, _BIN),
    0xDC: (">H", 2, _ARRAY), 0xDD: (">I", 4, _ARRAY),
    0xDE: (">H", 2, _MAP), 0xDF: (">I", 4, _MAP),
}


def _unpack(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    """The value at ``pos`` and the position after it. Raises (anything) for what msgpack must
    decide: truncation, ext types, the unused code 0xc1, too deep a nesting."""
    c = data[pos]
    pos += 1
    if c <= 0x7F:
        return c, pos
    if c >= 0xE0:
        return c - 0x100, pos
    if 0xA0 <= c <= 0xBF:
        end = pos + (c & 0x1F)
        if end > len(data):
            raise ValueError("truncated")
        return data[pos:end].decode("utf-8"), end
    if 0x90 <= c <= 0x9F:
        kind, n = _ARRAY, c & 0x0F
    elif 0x80 <= c <= 0x8F:
        kind, n = _MAP, c & 0x0F
    elif c == 0xC0:
        return None, pos
    elif c == 0xC2:
        return False, pos
    elif c == 0xC3:
        return True, pos
    elif c in _SCALARS:
        return _sunpack(_SCALARS[c], data, pos)[0], pos + _SIZES[c]
    else:
        fmt, size, kind = _SIZED[c]  # KeyError: ext or 0xc1
        n = _sunpack(fmt, data, pos)[0]
        pos += size
        if kind == _STR or kind == _BIN:
            end = pos + n
            if end > len(data):
                raise ValueError("truncated")
            return (data[pos:end].decode("utf-8") if kind == _STR else data[pos:end]), end
    if depth >= _MAX_DEPTH:
        raise ValueError("too deep")
    if kind == _ARRAY:
        items = []
        append = items.append
        for _ in range(n):
            item, pos = _unpack(data, pos, depth + 1)
            append(item)
        return items, pos
    mapping = {}
    for _ in range(n):
        key, pos = _unpack(data, pos, depth + 1)
        mapping[key], pos = _unpack(data, pos, depth + 1)
    return mapping, pos
