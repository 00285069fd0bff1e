"""spurcore.wirecodec: the pure-Python msgpack subset gives msgpack's bytes and values, and
hands everything else to msgpack (so results and errors are always msgpack's)."""

from __future__ import annotations

import enum
import math
import struct
import subprocess
import sys

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from spurcore import wirecodec
from spurcore.wirecodec import LITE_MAX, lite_packb, lite_unpackb


def _reference_pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _reference_unpack(data: bytes) -> object:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


# every width of every integer format, both signs, at and around the boundaries
_EDGES = [0, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0xFFFFFFFF, 0x100000000, 0xFFFFFFFFFFFFFFFF]
_INTS = sorted({e + d for e in _EDGES for d in (-1, 0, 1)} | {-e + d for e in _EDGES for d in (-1, 0, 1)}
               | {-0x20, -0x21, -0x80, -0x81, -0x8000, -0x8001, -0x80000000, -0x80000001, -(2**63)})
_IN_RANGE = [i for i in _INTS if -(2**63) <= i <= 2**64 - 1]

scalars = (st.none() | st.booleans() | st.sampled_from(_IN_RANGE)
           | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats(allow_nan=False) | st.text() | st.binary()
           | st.text(min_size=30, max_size=300) | st.binary(min_size=250, max_size=300))
values = st.recursive(
    scalars,
    lambda children: (st.lists(children, max_size=20) | st.lists(children, max_size=20).map(tuple)
                      | st.dictionaries(st.text() | st.integers(-5, 300), children, max_size=20)),
    max_leaves=60,
)


@settings(max_examples=150, deadline=None)
@given(values)
def test_packs_the_same_bytes_as_msgpack(value: object) -> None:
    assert lite_packb(value) == _reference_pack(value)


@settings(max_examples=150, deadline=None)
@given(values)
def test_unpacks_the_same_values_as_msgpack(value: object) -> None:
    data = _reference_pack(value)
    done, obj = lite_unpackb(data)
    assert done
    assert obj == _reference_unpack(data)
    assert _reference_pack(obj) == data  # types too (bytes stay bytes, lists stay lists)


def test_every_integer_width_and_float_width() -> None:
    for i in _IN_RANGE:
        assert lite_packb(i) == _reference_pack(i), i
        assert lite_unpackb(_reference_pack(i)) == (True, i)
    single = b"\xca" + b"\x3f\xc0\x00\x00"  # float 32, 1.5: msgpack reads it, never writes it here
    assert lite_unpackb(single) == (True, 1.5) == (True, _reference_unpack(single))
    nan = lite_unpackb(_reference_pack(math.nan))
    assert nan[0] and math.isnan(nan[1])
    for special in (math.inf, -math.inf, -0.0, 5e-324, math.nan, -math.nan,
                    struct.unpack(">d", b"\x7f\xf8\x00\x00\x00\x00\x00\x01")[0]):  # a NaN payload kept
        assert lite_packb(special) == _reference_pack(special), special


def test_sizes_over_each_header_width() -> None:
    for n in (15, 16, 31, 32, 255, 256, 65535, 65536):
        for value in ("x" * n, b"x" * n, [0] * n, {i: 0 for i in range(n)}):
            data = _reference_pack(value)
            assert lite_packb(value) == data, (type(value), n)
            assert lite_unpackb(data) == (True, value), (type(value), n)


class Color(enum.IntEnum):
    RED = 1


def test_values_outside_the_subset_go_to_msgpack() -> None:
    for value in (2**64, -(2**63) - 1, "\udcff", Color.RED, bytearray(b"x"), memoryview(b"x"),
                  msgpack.ExtType(5, b"x"), {1, 2}, [[[]]] * 1 + [object()]):
        assert lite_packb(value) is None, value
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]
    assert lite_packb(deep) is None
    assert wirecodec.packb(deep) == _reference_pack(deep)  # msgpack packs it


def test_bodies_outside_the_subset_go_to_msgpack() -> None:
    good = _reference_pack({"a": [1, 2]})
    cases = [
        b"",  # nothing
        good[:-1],  # truncated
        good + b"\x00",  # trailing bytes (msgpack: ExtraData)
        b"\xc1",  # the unused code
        _reference_pack(msgpack.ExtType(3, b"abc")),  # ext
        b"\xd6\xff" + b"\x00\x00\x00\x01",  # timestamp ext
        b"\xa2\xff\xfe",  # invalid UTF-8 in a str
        b"\x81\x91\x01\x01",  # a list as a map key (unhashable)
        b"\xdd\xff\xff\xff\xff",  # an array longer than the body
    ]
    for data in cases:
        assert lite_unpackb(data) == (False, None), data


@settings(max_examples=200, deadline=None)
@given(values, st.data())
def test_damaged_bodies_decode_as_msgpack_does_or_go_to_it(value: object, data: st.DataObject) -> None:
    body = bytearray(_reference_pack(value))
    if body:
        for _ in range(data.draw(st.integers(1, 3))):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    body = bytes(body[: data.draw(st.integers(0, len(body)))])
    done, obj = lite_unpackb(body)
    if done:  # then msgpack must accept it and agree
        assert _reference_pack(obj) == _reference_pack(_reference_unpack(body))


_FRESH = """
import sys
from spurio import rpc
frame = rpc.encode_frame([0, 1, "jobs", {"states": ["PENDING"], "columns": True}])
assert rpc.decode_body(frame[4:]) == [0, 1, "jobs", {"states": ["PENDING"], "columns": True}]
print("msgpack" in sys.modules)
rpc.decode_body(rpc.encode_frame([b"x" * %d])[4:])
print("msgpack" in sys.modules)
"""


def test_small_messages_leave_msgpack_unimported_big_ones_import_it() -> None:
    out = subprocess.run([sys.executable, "-c", _FRESH % (LITE_MAX + 1)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True"]
