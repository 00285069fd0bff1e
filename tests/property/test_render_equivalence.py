"""The query tools' fast renderers print exactly what the plain ones print (issue 14: the
``scontrol show job`` and ``squeue`` paths for long queues), on generated records.

``tests/property/render_reference.py`` is the ``scontrol show job`` renderer as it was before
it was made fast; squeue's fast paths are checked against its general engine."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spurcore.render import scontrol, squeue
from spurcore.render._common import make_time_str
from tests.property import render_reference
from tests.property.records import T0, job_record_lists, plain_record

#: SLURM_TIME_FORMAT values: unset, the named ones, strftime formats (one only seconds, one
#: with a day name), invalid ones (no %, too long), one that makes an empty string.
TIME_FORMATS = [None, "standard", "relative", "%H:%M", "%s", "%a %d %b %Y %T", "bogus", "%" + "x" * 40, "%p"]
NOWS = st.sampled_from([T0, T0 + 0.5, T0 + 86400 * 200, 0.0])


@pytest.fixture(autouse=True, params=["UTC", "Europe/Paris", "America/St_Johns"])
def tz(request: pytest.FixtureRequest) -> Iterator[None]:
    """Local time in a few zones (one with a half-hour offset and daylight saving)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


@settings(max_examples=150, deadline=None)
@given(records=job_record_lists(), detail=st.booleans(), oneliner=st.booleans(), now=NOWS,
       time_format=st.sampled_from(TIME_FORMATS), bitstr_len=st.sampled_from([None, 0, 8, 64]))
def test_show_jobs_prints_what_the_plain_renderer_prints(records: list[dict[str, Any]], detail: bool,
                                                         oneliner: bool, now: float, time_format: str | None,
                                                         bitstr_len: int | None) -> None:
    kw: dict[str, Any] = dict(detail=detail, oneliner=oneliner, now=now, time_format=time_format,
                              bitstr_len=bitstr_len)
    expected = outcome(lambda: "".join(render_reference.show_job(r, **kw) for r in records))
    assert outcome(lambda: scontrol.show_jobs(records, **kw)) == expected
    assert outcome(lambda: "".join(scontrol.show_job(r, **kw) for r in records)) == expected


def outcome(render: Callable[[], str]) -> tuple[str, Any]:
    """The text, or the exception's type: a record both fail on (an infinite time limit
    has no end time to print) must fail the same way."""
    try:
        return "text", render()
    except Exception as exc:
        return "error", type(exc)


def test_memory_field_follows_each_record_in_one_rendering() -> None:
    """Two records that differ only in ``--mem-per-cpu``, rendered together: the fast
    renderer once keyed its memory-field cache on (mem_per_gpu, mem_mb) alone and printed
    the first record's ``MinMemoryNode=`` for the second's ``MinMemoryCPU=500M``."""
    node, per_cpu = plain_record(mem_per_cpu=0), plain_record(mem_per_cpu=500)
    text = scontrol.show_jobs([node, per_cpu], now=T0)
    assert text == render_reference.show_job(node, now=T0) + render_reference.show_job(per_cpu, now=T0)
    assert "MinMemoryCPU=500M" in text


class PlainView(squeue.View):
    """A View that formats every time afresh (no per-second cache)."""

    def time(self, t: float | None) -> str:
        return make_time_str(t, self.time_format, self.now) if t else "N/A"


JOB_NAMES = [name for name, _header, _fn, _hidden in squeue._JOB_TABLE]
#: squeue layouts: the default and -l ones, every -o letter, and -O lists of any columns,
#: widths and justifications (cut, padded, natural).
squeue_layouts = st.sampled_from([("default", None, None), ("long", None, None), ("o", "%all", None),
                                  ("o", "x%.3i|%5P%2u%R tail", None)]) | st.lists(
    st.tuples(st.sampled_from(JOB_NAMES), st.sampled_from(["", ":.4", ":6", ":0", ":.12|"])), min_size=1,
    max_size=12).map(lambda cols: ("O", None, ",".join(name + size for name, size in cols)))


@settings(max_examples=80, deadline=None)
@given(records=job_record_lists(), layout=squeue_layouts, now=NOWS, time_format=st.sampled_from(TIME_FORMATS),
       bitstr_len=st.sampled_from([None, 0, 8]), array=st.booleans(), noconvert=st.booleans())
def test_squeue_rows_print_what_the_general_engine_prints(records: list[dict[str, Any]],
                                                           layout: tuple[str, str | None, str | None],
                                                           now: float, time_format: str | None,
                                                           bitstr_len: int | None, array: bool,
                                                           noconvert: bool) -> None:
    """``render_jobs`` prints a column shared by many rows once per distinct value
    (``_COLUMN_DEPS``) and each time once per second: every row must still be what
    ``_render_items`` prints for that record alone, with a View that caches nothing."""
    kind, fmt, Fmt = layout
    kw: dict[str, Any] = dict(time_format=time_format, bitstr_len=bitstr_len, array=array, noconvert=noconvert,
                              cluster="spur")
    text = outcome(lambda: squeue.render_jobs(records, fmt=fmt, Fmt=Fmt, long=kind == "long",
                                              view=squeue.View(now, **kw), date_line=False))
    if fmt:
        items = squeue.parse_format(fmt).items
    else:
        items = squeue.parse_long_format(Fmt or (squeue.LONG_FORMAT_LONG if kind == "long"
                                                 else squeue.DEFAULT_FORMAT_LONG)).items

    def reference() -> str:
        out = [squeue._render_items(items, None, squeue._JOB_HEADERS)]
        for info in squeue.display_records(records, squeue.View(now, **kw)):
            view = PlainView(now, **kw)
            out.append(squeue._render_items(items, lambda key, i=info, v=view: squeue._JOB_FIELDS[key][1](i, v),
                                            squeue._JOB_HEADERS))
        return "".join(out)

    assert text == outcome(reference)



@settings(max_examples=100, deadline=None)
@given(records=job_record_lists(max_size=10), keys=st.lists(st.tuples(
    st.sampled_from(["debug", "gpu"]), st.sampled_from(["PENDING", "RUNNING"]), st.sampled_from([0, 5])),
    min_size=20, max_size=20), now=NOWS)
def test_the_default_order_is_the_order_of_its_sort_passes(records: list[dict[str, Any]],
                                                           keys: list[tuple[str, str, int]], now: float) -> None:
    """squeue's default order in one sort (``_default_order``) is sort.c's ``P,t,-p`` passes,
    ties (same partition, state and priority: ``keys``) in job id and array task order."""
    records = [{**r, "partition": p, "state": s, "base_state": s, "priority": prio}
               for r, (p, s, prio) in zip(records, keys, strict=False)]
    expected = outcome(lambda: squeue._sort_passes(records, squeue.parse_sort("P,t,-p"), now))
    assert outcome(lambda: squeue.sort_jobs(records, None, now)) == expected
    assert outcome(lambda: squeue.sort_jobs(records, "P,t,-p", now)) == expected


@settings(max_examples=150, deadline=None)
@given(records=job_record_lists(), detail=st.booleans(), oneliner=st.booleans(), now=NOWS,
       time_format=st.sampled_from(TIME_FORMATS), bitstr_len=st.sampled_from([None, 0, 8, 64]),
       fields=st.sampled_from([scontrol.JOB_FIELDS, scontrol.JOB_FIELDS[:40], ("job_id", "gid", "name")]))
def test_job_rows_print_what_their_records_print(records: list[dict[str, Any]], detail: bool, oneliner: bool,
                                                 now: float, time_format: str | None, bitstr_len: int | None,
                                                 fields: tuple[str, ...]) -> None:
    """``show_job_rows`` of a columnar answer (a row per record, None for a field it lacks)
    prints what ``show_jobs`` prints of the records made of those rows, with their group."""
    rows = [tuple(r.get(f) for f in fields) for r in records]
    kw: dict[str, Any] = dict(detail=detail, oneliner=oneliner, now=now, time_format=time_format,
                              bitstr_len=bitstr_len)

    def group_of(gid: int) -> str:
        return f"g{gid}"

    def with_group(row: tuple[Any, ...]) -> dict[str, Any]:
        info = dict(zip(fields, row, strict=True))
        info["group"] = group_of(int(info.get("gid", 0)))
        return info

    expected = outcome(lambda: "".join(render_reference.show_job(with_group(row), **kw) for row in rows))
    assert outcome(lambda: scontrol.show_job_rows(fields, rows, group_of=group_of, **kw)) == expected
