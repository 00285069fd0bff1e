"""Typed, validated messages: a small structuring layer on attrs (no I/O).

Every message between processes is a frozen attrs class whose fields carry a *kind* in
their metadata (``Str``, ``Int``, ``Float``, ``Bool``, ``StrList``, ``IntList``, ``StrMap``,
``OneOf``, ``Nested``, ``Optional``...). ``structure(cls, raw)`` turns a msgpack map into an
instance or raises ``BadRequest`` naming the field and what was expected; ``unstructure``
turns an instance back into a plain map.

Invariants:
- ``structure`` raises nothing but ``BadRequest``, whatever ``raw`` is (fuzzed in tests).
- Unknown fields are refused (a typo must not be ignored silently), missing required ones
  are refused, wrong types and out-of-range values are refused; every message names the
  field by its dotted path (``spec.nodes``, ``requests[3].job_id``).
- Strings never contain NUL and have an upper bound (Slurm's ``_test_job_desc_fields``
  bounds where it has one); lists and maps are bounded too. Nothing unbounded reaches a
  handler or the replicated log.
- Versioning: a class has ``VERSION``; a map may carry ``"v"`` (default 1). A newer version
  than the code knows is refused; older ones go through the class's ``UPCASTS`` (version ->
  function on the raw map), the only place that knows old shapes.

Why not cattrs: its errors are exception groups that do not name the field in the words a
client should read, it needs extra work for ranges and name rules anyway, and importing it
costs start-up time in every process that speaks the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

__all__ = [
    "BadRequest", "Kind", "Str", "Int", "Float", "Bool", "StrList", "IntList", "StrMap", "AnyMap",
    "OneOf", "Nested", "NestedList", "Optional", "Either", "field", "structure", "unstructure",
    "NAME", "NODE_NAME", "MAX_PATH", "MAX_TEXT", "U32", "I64",
]

U32 = 2**32 - 1
I64 = 2**63 - 1
MAX_TEXT = 1024  # Slurm's bound for names, comments, accounts, qos, partitions ...
MAX_PATH = 4096  # PATH_MAX: output/input paths, working directories
#: Slurm node names: hostname characters; no brackets, commas or spaces (those are hostlist syntax).
NODE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
#: Names of partitions, accounts, QOS, users: printable, no separators Slurm splits on.
NAME = re.compile(r"^[^\s,:=\x00-\x1f]{1,1024}$")


class BadRequest(ValueError):
    """A message that does not fit its schema; ``str()`` names the field and the rule."""

    code = "bad_request"

    def __init__(self, where: str, expected: str) -> None:
        super().__init__(f"{where}: {expected}")
        self.where = where
        self.expected = expected

    @property
    def message(self) -> str:
        return str(self)


class Kind:
    """How one field's wire value is checked and converted."""

    expected = "a value"

    def check(self, where: str, value: Any) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def fail(self, where: str, expected: str | None = None) -> BadRequest:
        return BadRequest(where, f"expected {expected or self.expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Str(Kind):
    def __init__(self, max_len: int = MAX_TEXT, *, pattern: re.Pattern[str] | None = None,
                 what: str = "", allow_empty: bool = True) -> None:
        self.max_len, self.pattern, self.allow_empty = max_len, pattern, allow_empty
        self.expected = what or f"a string of at most {max_len} characters"

    def check(self, where: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) > self.max_len or "\x00" in value:
            raise self.fail(where)
        if not value and not self.allow_empty:
            raise self.fail(where, f"a non-empty {self.expected.removeprefix('a ')}")
        if self.pattern is not None and value and not self.pattern.match(value):
            raise self.fail(where)
        return value


class Int(Kind):
    def __init__(self, lo: int = -I64, hi: int = I64) -> None:
        self.lo, self.hi = lo, hi
        self.expected = f"an integer from {lo} to {hi}"

    def check(self, where: str, value: Any) -> int:
        if not _is_int(value) or not self.lo <= value <= self.hi:
            raise self.fail(where)
        return value


class Float(Kind):
    def __init__(self, lo: float = -1e18, hi: float = 1e18) -> None:
        self.lo, self.hi = lo, hi
        self.expected = f"a number from {lo:g} to {hi:g}"

    def check(self, where: str, value: Any) -> float:
        if not (_is_int(value) or isinstance(value, float)) or not self.lo <= value <= self.hi:
            raise self.fail(where)  # NaN fails the range test too
        return float(value)


class Bool(Kind):
    expected = "true or false"

    def check(self, where: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where)
        return value


class OneOf(Kind):
    def __init__(self, *values: Any) -> None:
        self.values = values
        self.expected = "one of " + ", ".join(repr(v) for v in values)

    def check(self, where: str, value: Any) -> Any:
        if value not in self.values or isinstance(value, bool) != any(isinstance(v, bool) for v in self.values):
            raise self.fail(where)
        return value


class _List(Kind):
    def __init__(self, item: Kind, max_items: int) -> None:
        self.item, self.max_items = item, max_items
        self.expected = f"a list of at most {max_items} items"

    def check(self, where: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)) or len(value) > self.max_items:
            raise self.fail(where)
        return tuple(self.item.check(f"{where}[{i}]", v) for i, v in enumerate(value))

    def dump(self, value: Any) -> Any:
        return [self.item.dump(v) for v in value]


def StrList(max_items: int = 100_000, max_len: int = MAX_TEXT, pattern: re.Pattern[str] | None = None) -> Kind:
    return _List(Str(max_len, pattern=pattern), max_items)


def IntList(max_items: int = 100_000, lo: int = -I64, hi: int = I64) -> Kind:
    return _List(Int(lo, hi), max_items)


class StrMap(Kind):
    """A map of strings to strings (an environment, recorded options)."""

    def __init__(self, max_items: int = 10_000, max_len: int = 128 * 1024) -> None:
        self.max_items, self.max_len = max_items, max_len
        self.expected = f"a map of at most {max_items} strings to strings"

    def check(self, where: str, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise self.fail(where)
        for k, v in value.items():
            if not isinstance(k, str) or not k or len(k) > MAX_TEXT or "\x00" in k:
                raise BadRequest(where, "expected non-empty string keys without NUL")
            if not isinstance(v, str) or len(v) > self.max_len or "\x00" in v:
                raise BadRequest(f"{where}[{k!r}]", f"expected a string of at most {self.max_len} characters")
        return dict(value)


class AnyMap(Kind):
    """A map of names to plain values (ints, floats, strings, None, bools): e.g. the fields
    of ``scontrol update``, checked further by the reducer."""

    def __init__(self, max_items: int = 64) -> None:
        self.max_items = max_items
        self.expected = f"a map of at most {max_items} names to numbers, strings or null"

    def check(self, where: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise self.fail(where)
        for k, v in value.items():
            if not isinstance(k, str) or not k or len(k) > 64 or "\x00" in k:
                raise BadRequest(where, "expected names of at most 64 characters as keys")
            if isinstance(v, str):
                Str(MAX_TEXT * 128).check(f"{where}.{k}", v)
            elif isinstance(v, float):
                Float().check(f"{where}.{k}", v)
            elif _is_int(v):
                Int().check(f"{where}.{k}", v)
            elif v is not None and not isinstance(v, bool):
                raise BadRequest(f"{where}.{k}", "expected a number, a string, true/false or null")
        return dict(value)


class Nested(Kind):
    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.expected = f"a map ({cls.__name__})"

    def check(self, where: str, value: Any) -> Any:
        return structure(self.cls, value, where)

    def dump(self, value: Any) -> Any:
        return unstructure(value)


def NestedList(cls: type, max_items: int = 100_000) -> Kind:
    return _List(Nested(cls), max_items)


class Either(Kind):
    """The first of ``kinds`` that accepts the value (``"batch"`` or a step number)."""

    def __init__(self, *kinds: Kind) -> None:
        self.kinds = kinds
        self.expected = " or ".join(k.expected for k in kinds)

    def check(self, where: str, value: Any) -> Any:
        for kind in self.kinds:
            try:
                return kind.check(where, value)
            except BadRequest:
                continue
        raise self.fail(where)


class Optional(Kind):
    """``None`` or the inner kind."""

    def __init__(self, inner: Kind) -> None:
        self.inner = inner
        self.expected = f"null or {inner.expected}"

    def check(self, where: str, value: Any) -> Any:
        return None if value is None else self.inner.check(where, value)

    def dump(self, value: Any) -> Any:
        return None if value is None else self.inner.dump(value)


_NO_DEFAULT = object()


def field(kind: Kind, default: Any = _NO_DEFAULT, *, factory: Callable[[], Any] | None = None) -> Any:
    """An attrs field with its wire kind; no default means the field is required."""
    meta = {"kind": kind}
    if factory is not None:
        return attrs.field(factory=factory, metadata=meta)
    if default is _NO_DEFAULT:
        return attrs.field(metadata=meta)
    return attrs.field(default=default, metadata=meta)


_PLAN: dict[type, tuple[tuple[str, Kind, bool, str], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, Kind, bool, str], ...]:
    """(wire name, kind, required, init argument name) per field, cached per class."""
    plan = _PLAN.get(cls)
    if plan is None:
        out = []
        for f in attrs.fields(cls):
            kind = f.metadata.get("kind")
            if kind is None:
                raise TypeError(f"{cls.__name__}.{f.name} has no wire kind")
            out.append((f.name, kind, f.default is attrs.NOTHING, f.alias or f.name))
        plan = _PLAN[cls] = tuple(out)
    return plan


def structure(cls: type, raw: Any, where: str = "") -> Any:
    """``raw`` (a decoded msgpack map) as an instance of ``cls``, or BadRequest."""
    label = where or "params"
    if raw is None and not where:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequest(label, f"expected a map ({cls.__name__})")
    version = raw.get("v", 1)
    current = getattr(cls, "VERSION", 1)
    if not _is_int(version) or not 1 <= version <= current:
        raise BadRequest(f"{where + '.' if where else ''}v", f"expected a version from 1 to {current}")
    if version < current:
        upcasts = getattr(cls, "UPCASTS", {})
        raw = dict(raw)
        while version < current:
            raw = upcasts[version](raw)
            version += 1
    prefix = f"{where}." if where else ""
    plan = _plan(cls)
    names = {name for name, _, _, _ in plan}
    for key in raw:
        if key not in names and key != "v":
            shown = key if isinstance(key, str) and len(key) <= 64 else repr(key)[:64]
            raise BadRequest(f"{prefix}{shown}", f"unknown field (fields of {cls.__name__}: {', '.join(sorted(names))})")
    values = {}
    for name, kind, required, arg in plan:
        if name in raw:
            values[arg] = kind.check(prefix + name, raw[name])
        elif required:
            raise BadRequest(prefix + name, f"missing (expected {kind.expected})")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # a class-level validator (attrs) refused
        raise BadRequest(label, str(exc)) from None


def unstructure(obj: Any) -> dict[str, Any]:
    """An instance as the plain map ``structure`` takes back."""
    out: dict[str, Any] = {}
    for name, kind, _, _ in _plan(type(obj)):
        out[name] = kind.dump(getattr(obj, name))
    version = getattr(type(obj), "VERSION", 1)
    if version != 1:
        out["v"] = version
    return out
