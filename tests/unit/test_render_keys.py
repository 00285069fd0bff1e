"""spurcore.render._common.field_key and TimeStrings: the keys and time texts the fast
renderers cache by (issue 14)."""

from __future__ import annotations

import pytest

from spurcore.render._common import TimeStrings, field_key, make_time_str

FIELDS = ("a", "b", "_opt", "c")


def test_a_key_is_the_values_whichever_way_it_is_made() -> None:
    key = field_key(FIELDS, {"_opt"})
    full = {"a": 1, "b": "x", "c": None, "_opt": 2, "other": 5}
    assert key(full) == (1, "x", None, 2)  # the optional field last
    assert key({**full, "other": 6}) == key(full)
    lacking = {"a": 1, "b": "x", "_opt": 2}  # no "c": made field by field
    assert key(lacking) != key(full) and key(lacking)[:2] == (1, "x")
    assert key({"a": 1, "b": "x", "c": None}) != key({"a": 1, "b": "x", "c": None, "_opt": None})
    several = field_key(("a", "_x", "b", "_y"), {"_x", "_y"})
    assert several({"a": 1, "b": 2, "_y": 3}) == several({"_y": 3, "b": 2, "a": 1, "z": 0})
    assert several({"a": 1, "b": 2, "_y": 3}) != several({"a": 1, "b": 2, "_x": 3})
    one = field_key(("a",), ())
    assert one({"a": 1}) == (1,) and one({}) != one({"a": None})


@pytest.mark.usefixtures("utc")
def test_time_strings_are_make_time_str_once_per_second() -> None:
    times = TimeStrings("relative", 1746100800.0)
    for t in (1746100800.0, 1746100800.7, 1746000000.2, 0, 0.0, None, 0.5, 0xFFFFFFFF, 4294967295.5, -5.5):
        assert times(t) == make_time_str(t, "relative", 1746100800.0), t
    assert times(1746100800.7) is times(1746100800.2)  # formatted once
