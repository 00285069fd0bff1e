"""spurcore.records: a Record is the value collections.namedtuple would make, without its
import (the modules on the commands' start-up path use it; docs/performance.md)."""

from __future__ import annotations

import copy
import pickle
from collections import namedtuple

import pytest

from spurcore.records import Record


class Item(Record):
    __slots__ = ()

    def __new__(cls, key: str | None, width: int = 0, right: bool = False, suffix: str = "") -> Item:
        return tuple.__new__(cls, (key, width, right, suffix))


Reference = namedtuple("Item", "key width right suffix", defaults=(0, False, ""))


@pytest.mark.parametrize(("args", "kwargs"), [
    (("k",), {}),
    (("k", 5), {"suffix": "|"}),
    ((None,), {"right": True}),
    ((), {"key": "x", "width": -3, "right": False, "suffix": ""}),
])
def test_same_value_as_namedtuple(args: tuple, kwargs: dict) -> None:
    mine, ref = Item(*args, **kwargs), Reference(*args, **kwargs)
    assert mine == ref and tuple(mine) == tuple(ref) and hash(mine) == hash(ref)
    assert repr(mine) == repr(ref)
    assert (mine.key, mine.width, mine.right, mine.suffix) == (ref.key, ref.width, ref.right, ref.suffix)
    assert mine._fields == ref._fields == ("key", "width", "right", "suffix")
    assert mine._asdict() == ref._asdict()
    assert mine._replace(width=9, suffix="s") == ref._replace(width=9, suffix="s")
    assert type(mine._replace(width=9)) is Item
    assert Item._make(list(ref)) == mine and type(Item._make(ref)) is Item
    key, width, right, suffix = mine
    assert (key, width, right, suffix) == tuple(ref)


def test_copies_and_pickles_as_itself() -> None:
    item = Item("k", 3)
    for other in (copy.copy(item), copy.deepcopy(item), pickle.loads(pickle.dumps(item))):
        assert other == item and type(other) is Item


def test_immutable_and_without_instance_dict() -> None:
    item = Item("k")
    with pytest.raises(AttributeError):
        item.key = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        item.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(item, "__dict__")


def test_errors_are_namedtuples() -> None:
    for make in (Item, Reference):
        with pytest.raises(TypeError, match=r"Item.__new__\(\) missing 1 required positional argument: 'key'"):
            make()
        with pytest.raises(ValueError, match=r"Got unexpected field names: \['nope'\]"):
            make("k")._replace(nope=1)
        with pytest.raises(TypeError, match="Expected 4 arguments, got 2"):
            make._make(("k", 1))


def test_a_record_declares_slots_and_new() -> None:
    with pytest.raises(TypeError):
        class NoSlots(Record):  # an instance __dict__ would make it a mutable tuple
            def __new__(cls, a: int) -> NoSlots:
                return tuple.__new__(cls, (a,))
    with pytest.raises(TypeError):
        class NoNew(Record):  # no fields to name
            __slots__ = ()
