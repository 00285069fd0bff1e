"""spurctld.reads.PackedRows: a chunk of packed rows is the bytes msgpack makes of the list
of rows, however the rows were kept (issue 14: the controller packs each job's row once)."""

from __future__ import annotations

from typing import Any

import msgpack

from spurctld.reads import PackedRows


def record(job_id: int, **kw: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"job_id": job_id, "name": f"job{job_id}", "state": "PENDING", "reason": "Priority",
                            "priority": 10, "run_time": 0.0, "array_pending": [[1, 3, 1]]}
    info.update(kw)
    return info


def plain(infos: list[dict[str, Any]], fields: tuple[str, ...]) -> bytes:
    return msgpack.packb([[info.get(f) for f in fields] for info in infos], use_bin_type=True)


FIELDS = ("job_id", "name", "reason", "priority", "array_pending", "run_time")


def test_a_chunk_is_the_packed_list_of_rows() -> None:
    infos = [record(i) for i in range(1, 40)]
    rows = PackedRows(FIELDS)
    assert rows.chunk(infos) == plain(infos, FIELDS)
    assert rows.chunk(infos) == plain(infos, FIELDS)  # from the kept rows
    assert rows.chunk([]) == plain([], FIELDS)
    one = PackedRows(("name",))
    assert one.chunk(infos) == plain(infos, ("name",))


def test_a_row_follows_its_dynamic_fields_and_a_replaced_record() -> None:
    infos = [record(1), record(2)]
    rows = PackedRows(FIELDS)
    rows.chunk(infos)
    infos[0]["reason"] = "Resources"  # what refresh_info does between reads
    infos[1] = record(2, name="renamed")  # an op on the job: a new record
    assert rows.chunk(infos) == plain(infos, FIELDS)


def test_a_field_a_record_lacks_is_none() -> None:
    infos = [record(1), {"job_id": 2, "name": "old"}]
    rows = PackedRows((*FIELDS, "group"))
    assert rows.chunk(infos) == plain(infos, (*FIELDS, "group"))
    assert rows.chunk(infos) == plain(infos, (*FIELDS, "group"))


def test_a_dropped_row_is_packed_again() -> None:
    info = record(1)
    rows = PackedRows(FIELDS)
    rows.chunk([info])
    info["name"] = "changed in place"  # only an op changes a static field, and it drops the row
    rows.drop(1)
    assert rows.chunk([info]) == plain([info], FIELDS)
    info["name"] = "again"
    rows.clear()
    assert rows.chunk([info]) == plain([info], FIELDS)
