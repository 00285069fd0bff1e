"""Named tuples without ``collections``, for the modules on the commands' start-up path.

``collections.namedtuple`` costs a command 1.5-2 ms of CPU (docs/performance.md, "Command
start-up"): importing ``collections`` (and ``operator``, ``keyword``, ``reprlib``), then
compiling each class's ``__new__``. A :class:`Record` is the same kind of value, written as
a class:

    class JobSel(Record):
        __slots__ = ()

        def __new__(cls, job_id: int, task_id: int | None) -> JobSel:
            return tuple.__new__(cls, (job_id, task_id))

Invariants:
- A record is a tuple: equality (with any tuple of the same values, as a namedtuple's),
  hashing, ordering, unpacking, indexing and pickling are tuple's.
- Its fields are the parameters of its ``__new__``, in order (defaults are ``__new__``'s);
  ``__new__`` passes them, in that order, to ``tuple.__new__``. Each field is read through
  the C descriptor namedtuple itself uses (``_tuplegetter``): reads cost what a
  namedtuple's cost.
- ``repr``, ``_fields``, ``_replace``, ``_asdict`` and ``_make`` are namedtuple's.
- Imports only built-in modules.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Self

try:
    from _collections import _tuplegetter
except ImportError:  # not CPython: a property does the same, a little slower

    def _tuplegetter(index: int, doc: str) -> Any:
        return property(lambda self: self[index], doc=doc)


class Record(tuple):
    """The base of a named tuple class (see the module's docstring)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "__slots__" not in cls.__dict__ or "__new__" not in cls.__dict__:
            raise TypeError(f"{cls.__name__}: a Record declares __slots__ = () and its fields' __new__")
        code = cls.__new__.__code__
        cls._fields = code.co_varnames[1 : code.co_argcount]
        for index, name in enumerate(cls._fields):
            setattr(cls, name, _tuplegetter(index, f"Alias for field number {index}"))

    def __repr__(self) -> str:
        return type(self).__name__ + "(" + ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self, strict=True)) + ")"

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    @classmethod
    def _make(cls, iterable: Iterable[Any]) -> Self:
        values = tuple.__new__(cls, iterable)
        if len(values) != len(cls._fields):
            raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(values)}")
        return values

    def _replace(self, **changes: Any) -> Self:
        values = self._make(changes.pop(name, value) for name, value in zip(self._fields, self, strict=True))
        if changes:
            raise ValueError(f"Got unexpected field names: {list(changes)!r}")
        return values

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))
