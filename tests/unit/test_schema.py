"""spurcore.schema: typed messages refuse what does not fit, naming the field."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spurcore.schema import (
    NODE_NAME,
    BadRequest,
    Bool,
    Float,
    Int,
    IntList,
    Nested,
    NestedList,
    OneOf,
    Optional,
    Str,
    StrMap,
    field,
    structure,
    unstructure,
)


@attrs.frozen
class Inner:
    name: str = field(Str(16, pattern=NODE_NAME, what="a node name"))
    cpus: int = field(Int(1, 4096), 1)


@attrs.frozen
class Outer:
    VERSION = 2
    UPCASTS = {1: lambda raw: {**{k: v for k, v in raw.items() if k != "old"}, "count": raw.get("old", 0)}}
    request_id: str = field(Str(64))
    count: int = field(Int(0, 10))
    ratio: float = field(Float(0, 1), 0.5)
    flag: bool = field(Bool(), False)
    kind: str = field(OneOf("a", "b"), "a")
    ids: tuple[int, ...] = field(IntList(3, 1, 99), ())
    env: dict[str, str] = field(StrMap(4, 8), factory=dict)
    node: Inner | None = field(Optional(Nested(Inner)), None)
    nodes: tuple[Inner, ...] = field(NestedList(Inner, 2), ())


def bad(raw, where, text=""):
    if isinstance(raw, dict):
        raw = {"v": 2, **raw}  # the current version unless the case says otherwise
    with pytest.raises(BadRequest) as err:
        structure(Outer, raw)
    assert err.value.where == where, str(err.value)
    assert text in str(err.value)
    return err.value


def test_round_trip_and_defaults():
    msg = structure(Outer, {"request_id": "r", "count": 3, "ids": [1, 2], "node": {"name": "n1"}, "v": 2})
    assert msg == Outer("r", 3, ids=(1, 2), node=Inner("n1"))
    assert structure(Outer, unstructure(msg)) == msg
    assert unstructure(msg)["v"] == 2


def test_every_rule_names_its_field():
    bad([], "params", "expected a map")
    bad({"count": 1}, "request_id", "missing")
    bad({"request_id": "r", "count": 11}, "count", "from 0 to 10")
    bad({"request_id": "r", "count": True}, "count")  # a bool is not an integer
    bad({"request_id": "r", "count": 1, "ratio": float("nan")}, "ratio")
    bad({"request_id": "r", "count": 1, "flag": 1}, "flag", "true or false")
    bad({"request_id": "r", "count": 1, "kind": "c"}, "kind", "one of 'a', 'b'")
    bad({"request_id": "r", "count": 1, "ids": [1, 2, 3, 4]}, "ids", "at most 3")
    bad({"request_id": "r", "count": 1, "ids": [1, 100]}, "ids[1]")
    bad({"request_id": "r\x00", "count": 1}, "request_id")
    bad({"request_id": "r", "count": 1, "env": {"A": "123456789"}}, "env['A']")
    bad({"request_id": "r", "count": 1, "node": {"name": "[True]"}}, "node.name", "a node name")
    bad({"request_id": "r", "count": 1, "node": {"name": "n", "extra": 1}}, "node.extra", "unknown field")
    bad({"request_id": "r", "count": 1, "nodes": [{"name": "a"}, {"cpus": 2}]}, "nodes[1].name", "missing")
    bad({"request_id": "r", "count": 1, "surprise": 1}, "surprise", "unknown field")
    bad({"request_id": "r", "count": 1, "v": 3}, "v", "version from 1 to 2")


def test_old_versions_are_upcast():
    assert structure(Outer, {"request_id": "r", "old": 4, "v": 1}).count == 4


wire_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8) | st.integers(), children,
                                                                        max_size=5),
    max_leaves=20,
)


@given(wire_values)
def test_structure_raises_only_bad_request(raw):
    try:
        structure(Outer, raw)
    except BadRequest:
        pass


@given(st.dictionaries(st.sampled_from(["request_id", "count", "ratio", "flag", "kind", "ids", "env", "node",
                                        "nodes", "v"]), wire_values, max_size=10))
def test_structure_of_near_miss_maps_raises_only_bad_request(raw):
    try:
        msg = structure(Outer, raw)
    except BadRequest:
        return
    assert structure(Outer, unstructure(msg)) == msg
