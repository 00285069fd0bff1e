"""The fast renderers' caches are keyed on the right fields (issue 14): a column or a part
of a record that a rendering prints once per distinct value of some fields must read no
other field. Checked per column on generated records: a record given another's values of
those fields prints that column as the other does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spurcore.render import scontrol, squeue
from tests.property.records import job_records, plain_record
from tests.property.test_render_equivalence import NOWS, TIME_FORMATS, PlainView, outcome


@st.composite
def display_records(draw: Any) -> dict[str, Any]:
    """A record as squeue's columns see it: sometimes with the fields ``display_records``
    adds (a pending array's task string, a folded task's reason) and a cluster name."""
    info = draw(job_records())
    if draw(st.booleans()):
        info["_task_str"] = draw(st.sampled_from(["1-5", "0-99:2%10", ""]))
    if draw(st.booleans()):
        info["_reason_desc"] = draw(st.sampled_from(["Priority,JobHeldUser", "None"]))
    if draw(st.booleans()):
        info["cluster"] = draw(st.sampled_from(["", "other"]))
    return info


#: Every field a record may have (the optional ones too).
ALL_FIELDS = sorted(set(plain_record()) | {
    "_task_str", "_reason_desc", "cluster", "group", "accrue_time", "last_sched_eval", "max_nodes",
    "alloc_mem_mb", "req_tres", "alloc_tres", "priority_by_partition", "sched_nodes"})
#: Which other fields the second record changes: all of them, or a few (the first record's
#: context kept, so that a field read only on some branch shows its effect there).
changes = st.none() | st.sets(st.sampled_from(ALL_FIELDS), min_size=1, max_size=3)


def other_record(a: dict[str, Any], b: dict[str, Any], deps: tuple[str, ...], changed: set[str] | None
                 ) -> dict[str, Any]:
    """``a``'s values of ``deps`` (present or absent as in ``a``), and of every other field
    ``b``'s (``changed`` None) or ``a``'s except ``changed``, which are ``b``'s."""
    base = b if changed is None else {k: v for k, v in a.items() if k not in changed} | {
        k: b[k] for k in changed if k in b}
    return {k: v for k, v in base.items() if k not in deps} | {k: a[k] for k in deps if k in a}


@pytest.mark.parametrize("name", sorted(squeue._COLUMN_DEPS))
@settings(max_examples=30, deadline=None)
@given(a=display_records(), b=display_records(), changed=changes, now=NOWS,
       time_format=st.sampled_from(TIME_FORMATS), bitstr_len=st.sampled_from([None, 0, 8]),
       noconvert=st.booleans())
def test_a_shared_column_reads_only_its_fields(name: str, a: dict[str, Any], b: dict[str, Any],
                                               changed: set[str] | None, now: float, time_format: str | None,
                                               bitstr_len: int | None, noconvert: bool) -> None:
    """``squeue._COLUMN_DEPS`` is complete: a record given ``a``'s values of a column's
    fields prints that column as ``a`` does, whatever else differs."""
    b = other_record(a, b, squeue._COLUMN_DEPS[name], changed)
    view = PlainView(now, time_format=time_format, bitstr_len=bitstr_len, noconvert=noconvert, cluster="spur")
    column = squeue._JOB_FIELDS[name][1]
    assert outcome(lambda: column(b, view)) == outcome(lambda: column(a, view))


@pytest.mark.parametrize("index", range(len(scontrol._JobText.SHARED)))
@settings(max_examples=150, deadline=None)
@given(a=job_records(), b=job_records(), changed=changes, detail=st.booleans(), oneliner=st.booleans(), now=NOWS,
       time_format=st.sampled_from(TIME_FORMATS), bitstr_len=st.sampled_from([None, 0, 8]))
def test_a_shared_part_of_a_job_record_reads_only_its_fields(index: int, a: dict[str, Any], b: dict[str, Any],
                                                             changed: set[str] | None, detail: bool,
                                                             oneliner: bool, now: float, time_format: str | None,
                                                             bitstr_len: int | None) -> None:
    """``scontrol._JobText.SHARED`` lists every field each shared part of a record reads."""
    deps, part = scontrol._JobText.SHARED[index]
    b = other_record(a, b, deps, changed)
    text = scontrol._JobText(detail=detail, oneliner=oneliner, now=now, time_format=time_format,
                             bitstr_len=bitstr_len)
    assert outcome(lambda: part(text, b)) == outcome(lambda: part(text, a))


@pytest.mark.parametrize("letter", sorted(squeue._SORT_FIELDS))
@settings(max_examples=25, deadline=None)
@given(a=display_records(), b=display_records(), changed=changes, now=NOWS)
def test_a_sort_key_reads_only_its_fields(letter: str, a: dict[str, Any], b: dict[str, Any],
                                          changed: set[str] | None, now: float) -> None:
    """``squeue._SORT_FIELDS`` lists every field each ``-S`` letter's key reads."""
    b = other_record(a, b, squeue._SORT_FIELDS[letter], changed)
    key = squeue._SORT_LETTERS[letter]
    assert key is not None
    assert outcome(lambda: key(b, now)) == outcome(lambda: key(a, now))


@pytest.mark.parametrize("part", ["head", "times"])
@settings(max_examples=150, deadline=None)
@given(a=job_records(), b=job_records(), changed=changes, now=NOWS, time_format=st.sampled_from(TIME_FORMATS),
       bitstr_len=st.sampled_from([None, 0, 8]))
def test_the_parts_of_each_job_record_read_only_their_fields(part: str, a: dict[str, Any], b: dict[str, Any],
                                                             changed: set[str] | None, now: float,
                                                             time_format: str | None, bitstr_len: int | None) -> None:
    """``scontrol._JobText.PER_RECORD`` lists every field the parts printed for every
    record read (``show_job_rows`` gives them a map of those fields alone)."""
    b = other_record(a, b, scontrol._JobText.PER_RECORD, changed)
    text = scontrol._JobText(detail=False, oneliner=False, now=now, time_format=time_format, bitstr_len=bitstr_len)
    method = getattr(text, part)
    assert outcome(lambda: method(b)) == outcome(lambda: method(a))
