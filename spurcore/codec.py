"""msgpack codec for ops: ``[type, version, field1, field2, ...]``.

Invariants:
- Fields are written positionally in the attrs field order of the op class. Nested
  ``JobSpec`` values are written the same way, as a nested array.
- Decoding an unknown type, or a version newer than this code knows, raises
  ``CodecError`` naming both; nothing is guessed.
- Older versions are upcast here and only here (``_UPCASTERS``), so the reducer only ever
  sees the current shape of every op.
- A batch (one replicated log entry) is a msgpack array of encoded ops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import attrs
import msgpack

from spurcore.ops import ALL_OPS, JobSpec, JobSubmitted, Op


class CodecError(ValueError):
    """A record that this code cannot decode; the message names type and version."""


_BY_TYPE: dict[int, type] = {}
for _cls in ALL_OPS:
    if _cls.TYPE in _BY_TYPE:  # pragma: no cover - guarded at import time
        raise RuntimeError(f"op type number {_cls.TYPE} used twice")
    _BY_TYPE[_cls.TYPE] = _cls

_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in attrs.fields(cls)) for cls in (*ALL_OPS, JobSpec)
}
_SPEC_FIELDS = _FIELDS[JobSpec]
# Positions of tuple-typed fields: msgpack gives lists back, the frozen ops keep tuples.
_TUPLE_FIELDS: dict[type, tuple[int, ...]] = {
    cls: tuple(i for i, f in enumerate(attrs.fields(cls)) if str(f.type).startswith("tuple"))
    for cls in ALL_OPS
}

_spec_getter = attrgetter(*_SPEC_FIELDS)
_ARGV = _SPEC_FIELDS.index("argv")
_ENV = _SPEC_FIELDS.index("env")
_OPTIONS = _SPEC_FIELDS.index("options")

#: JobSpec as JobSubmitted version 1 wrote it: the fields up to ``alloc_sid``; version 2
#: appended the option surface up to ``options``, version 3 the GRES fields. Each later
#: field has a default (written here as msgpack gives it back).
SPEC_V1_FIELDS = _SPEC_FIELDS.index("alloc_sid") + 1
SPEC_V2_FIELDS = _SPEC_FIELDS.index("options") + 1


def _defaults(first: int, end: int) -> tuple[Any, ...]:
    return tuple(
        (f.default.factory() if isinstance(f.default, attrs.Factory) else f.default)  # type: ignore[union-attr]
        for f in attrs.fields(JobSpec)[first:end]
    )


_SPEC_PADDING = {
    SPEC_V1_FIELDS: _defaults(SPEC_V1_FIELDS, SPEC_V2_FIELDS),
    SPEC_V2_FIELDS: _defaults(SPEC_V2_FIELDS, len(_SPEC_FIELDS)),
}


def _pad_spec(spec: Any, length: int) -> Any:
    if isinstance(spec, list) and len(spec) == length:
        return [*spec, *(dict(d) if isinstance(d, dict) else d for d in _SPEC_PADDING[length])]
    return spec


def upcast_spec_v1(spec: Any) -> Any:
    """A version-1 JobSpec field list, padded with the version-2 defaults."""
    return _pad_spec(spec, SPEC_V1_FIELDS)


def upcast_spec_v2(spec: Any) -> Any:
    """A version-2 JobSpec field list, padded with the version-3 (GRES) defaults."""
    return _pad_spec(spec, SPEC_V2_FIELDS)


def upcast_spec(spec: Any) -> Any:
    """A JobSpec field list of any earlier version in the current shape."""
    return upcast_spec_v2(upcast_spec_v1(spec))


def _job_submitted_v1(values: list[Any]) -> list[Any]:
    if len(values) == 3:
        values[1] = upcast_spec_v1(values[1])
    return values


def _job_submitted_v2(values: list[Any]) -> list[Any]:
    if len(values) == 3:
        values[1] = upcast_spec_v2(values[1])
    return values


def _job_start_v1(values: list[Any]) -> list[Any]:
    return [*values, -1]  # array_task_id: not an array task


def _job_start_v2(values: list[Any]) -> list[Any]:
    return [*values, ""]  # partition: the first of the job's that holds the nodes


#: Slurm's default requeue delay (cred_expire 120 s + 1), what version-1 requeues meant.
REQUEUE_DELAY_V1 = 121


def _job_requeued_v1(values: list[Any]) -> list[Any]:
    at = values[3] if len(values) == 4 and isinstance(values[3], (int, float)) else 0.0
    return [*values, at + REQUEUE_DELAY_V1]


def _step_created_v1(values: list[Any]) -> list[Any]:
    # No layout: the reducer places every task on ``node`` (or the batch host), holding nothing.
    return [*values, [], [], [], [], False, 1, ""]


def _job_step_complete_v1(values: list[Any]) -> list[Any]:
    return [*values, {}]  # no usage was measured


# (type, from_version) -> function taking the field list of that version and returning the
# field list of the next version.
def _node_down_v1(values: list[Any]) -> list[Any]:
    return [*values, False, False, 0.0]  # fenced, job_requeue, begin_time: no fencing then


_UPCASTERS: dict[tuple[int, int], Callable[[list[Any]], list[Any]]] = {
    (2, 1): _node_down_v1,
    (8, 1): _node_down_v1,  # JobNodeComplete version 1: not fenced (the same three defaults)
    (8, 2): _job_step_complete_v1,  # JobNodeComplete version 2: no usage measured
    (3, 1): _job_submitted_v1,
    (3, 2): _job_submitted_v2,
    (4, 1): _job_start_v1,
    (4, 2): _job_start_v2,
    (6, 1): _step_created_v1,
    (7, 1): _job_step_complete_v1,
    (16, 1): _job_requeued_v1,
}


def _plain(value: Any) -> Any:
    # msgpack writes tuples as arrays, so only the nested JobSpec needs converting.
    if isinstance(value, JobSpec):
        return _spec_getter(value)
    return value


def op_to_list(op: Op) -> list[Any]:
    cls = type(op)
    return [cls.TYPE, cls.VERSION, *(_plain(getattr(op, f)) for f in _FIELDS[cls])]


def encode_op(op: Op) -> bytes:
    return msgpack.packb(op_to_list(op), use_bin_type=True)


def _spec_from(value: Any) -> JobSpec:
    if not isinstance(value, list) or len(value) != len(_SPEC_FIELDS):
        raise CodecError(f"malformed JobSpec: expected {len(_SPEC_FIELDS)} fields")
    value[_ARGV] = tuple(value[_ARGV])
    if not isinstance(value[_ENV], dict):
        raise CodecError("malformed JobSpec: env is not a map")
    if not isinstance(value[_OPTIONS], dict):
        raise CodecError("malformed JobSpec: options is not a map")
    return JobSpec(*value)


# type -> (class, current version, field count, tuple-field positions, has a JobSpec)
_DECODERS: dict[int, tuple[type, int, int, tuple[int, ...], bool]] = {
    cls.TYPE: (cls, cls.VERSION, len(_FIELDS[cls]), _TUPLE_FIELDS[cls], cls is JobSubmitted) for cls in ALL_OPS
}


def op_from_list(record: Any) -> Op:
    if type(record) is not list:
        if not isinstance(record, tuple):
            raise CodecError("malformed op record: expected [type, version, ...]")
        record = list(record)
    if len(record) < 2:
        raise CodecError("malformed op record: expected [type, version, ...]")
    type_no, version = record[0], record[1]
    decoder = _DECODERS.get(type_no)
    if decoder is None:
        raise CodecError(f"unknown op type {type_no!r} (version {version!r})")
    cls, current, nfields, tuple_fields, has_spec = decoder
    values = record[2:]
    if version != current:
        if not isinstance(version, int) or version > current:
            raise CodecError(
                f"op {cls.__name__} (type {type_no}) has version {version}, newer than the "
                f"supported version {current}"
            )
        while version < current:
            upcast = _UPCASTERS.get((type_no, version))
            if upcast is None:
                raise CodecError(f"no upcaster for op {cls.__name__} (type {type_no}) version {version}")
            values = upcast(values)
            version += 1
    if len(values) != nfields:
        raise CodecError(
            f"op {cls.__name__} (type {type_no}) version {version}: expected {nfields} "
            f"fields, got {len(values)}"
        )
    try:
        for i in tuple_fields:
            values[i] = tuple(values[i])
        if has_spec:
            values[1] = _spec_from(values[1])
        return cls(*values)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"op {cls.__name__} (type {type_no}): {exc}") from exc


def decode_op(data: bytes) -> Op:
    try:
        record = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise CodecError(f"undecodable op bytes: {exc}") from exc
    return op_from_list(record)


def encode_batch(ops: Iterable[Op]) -> bytes:
    return msgpack.packb([op_to_list(op) for op in ops], use_bin_type=True)


def decode_batch(data: bytes) -> list[Op]:
    try:
        records = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:
        raise CodecError(f"undecodable batch bytes: {exc}") from exc
    if not isinstance(records, list):
        raise CodecError("malformed batch: expected an array of ops")
    return [op_from_list(r) for r in records]
