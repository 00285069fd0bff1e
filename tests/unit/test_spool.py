"""The agent's durable report spool and ACK store (DESIGN.md 1.5, 1.6): reports survive a
restart in write order until the controller answers them; a torn or damaged record is
never sent."""

from __future__ import annotations

import os
from pathlib import Path

from spurd.spool import LOG_NAME, TMP_PREFIX, ActionStore, ReportSpool, read_reports


def report(rid: str, code: int = 0) -> dict:
    return {"report_id": rid, "kind": "node", "job_id": 1, "exit_code": code, "signal": 0, "oom": False, "at": 1.5}


def test_put_list_delete(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path / "reports")
    assert spool.list() == []
    assert spool.put(report("n1:1:batch", 3))
    assert spool.put(report("n1:2:0", 4))
    assert "n1:1:batch" in spool and len(spool) == 2
    assert [r["report_id"] for r in spool.list()] == ["n1:1:batch", "n1:2:0"]
    assert spool.get("n1:1:batch") == report("n1:1:batch", 3)
    assert spool.delete("n1:1:batch")
    assert not spool.delete("n1:1:batch")
    assert [r["report_id"] for r in spool.list()] == ["n1:2:0"]


def test_put_is_idempotent_by_report_id(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path)
    assert spool.put(report("n1:1:batch", 3))
    assert not spool.put(report("n1:1:batch", 99))  # the first report stays the report
    assert spool.list() == [report("n1:1:batch", 3)]
    assert os.listdir(tmp_path) == [LOG_NAME]
    assert list(read_reports(str(tmp_path / LOG_NAME)).values()) == [report("n1:1:batch", 3)]


def test_survives_reopen_in_order(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path)
    ids = [f"n1:{j}:batch" for j in (5, 3, 12, 1, 40)]
    for rid in ids:
        spool.put(report(rid))
    spool.delete(ids[1])
    spool.close()
    again = ReportSpool(tmp_path)
    expected = [rid for rid in ids if rid != ids[1]]
    assert [r["report_id"] for r in again.list()] == expected
    assert again.ids() == expected
    # New reports go after the ones found on disk, even after deletions at the front.
    again.delete(ids[0])
    again.put(report("n1:99:0"))
    assert ReportSpool(tmp_path).ids() == [*expected[1:], "n1:99:0"]


def test_the_log_is_compacted_when_opened_emptied_and_grown(tmp_path: Path, monkeypatch) -> None:
    from spurd import spool as spool_mod

    spool = ReportSpool(tmp_path)
    log_path = tmp_path / LOG_NAME
    spool.put(report("n1:1:batch"))
    spool.put(report("n1:2:batch"))
    spool.delete("n1:1:batch")
    assert log_path.read_bytes().count(b"\n") == 3  # two puts and a deletion
    assert ReportSpool(tmp_path).ids() == ["n1:2:batch"]
    assert log_path.read_bytes().count(b"\n") == 1  # opened: only what waits is left
    spool = ReportSpool(tmp_path)
    spool.delete("n1:2:batch")
    assert log_path.stat().st_size == 0  # nothing waits: truncated
    spool.put(report("n1:3:batch"))
    assert ReportSpool(tmp_path).ids() == ["n1:3:batch"]
    monkeypatch.setattr(spool_mod, "COMPACT_BYTES", 2000)
    spool = ReportSpool(tmp_path)
    for j in range(4, 40):
        spool.put(report(f"n1:{j}:batch"))
        spool.delete(f"n1:{j}:batch")
        assert log_path.stat().st_size < 2000 + 400
    assert spool.ids() == ["n1:3:batch"] and ReportSpool(tmp_path).ids() == ["n1:3:batch"]


def test_torn_and_damaged_records_are_skipped(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path)
    for j in (1, 2, 3):
        spool.put(report(f"n1:{j}:batch"))
    spool.close()
    log_path = tmp_path / LOG_NAME
    lines = log_path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"exit_code":0', b'"exit_code":9')  # the checksum no longer holds
    log_path.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[2][: len(lines[2]) // 2])  # + a torn write
    (tmp_path / f"{TMP_PREFIX}{LOG_NAME}.1234").write_bytes(b"half")  # a crash during a rewrite
    (tmp_path / "unrelated.txt").write_text("x")
    reopened = ReportSpool(tmp_path)
    assert reopened.ids() == ["n1:1:batch", "n1:3:batch"]
    assert not (tmp_path / f"{TMP_PREFIX}{LOG_NAME}.1234").exists()
    reopened.put(report("n1:4:batch"))  # appended after the torn tail was dropped
    assert ReportSpool(tmp_path).ids() == ["n1:1:batch", "n1:3:batch", "n1:4:batch"]


def test_a_spool_of_one_file_per_report_is_taken_over_in_order(tmp_path: Path) -> None:
    """The layout of earlier versions: ``<seq>.<quoted id>.json``, ordered by seq."""
    import json
    import urllib.parse

    for seq, j in ((2, 7), (1, 9), (3, 4)):
        rid = f"n1:{j}:batch"
        name = f"{seq:012d}.{urllib.parse.quote(rid, safe='')}.json"
        (tmp_path / name).write_text(json.dumps(report(rid)))
    (tmp_path / f"{4:012d}.n1%3A5%3Abatch.json").write_bytes(b"\x00garbage")
    spool = ReportSpool(tmp_path)
    assert spool.ids() == ["n1:9:batch", "n1:7:batch", "n1:4:batch"]
    assert os.listdir(tmp_path) == [LOG_NAME]
    assert ReportSpool(tmp_path).ids() == ["n1:9:batch", "n1:7:batch", "n1:4:batch"]


def test_report_ids_with_odd_characters(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path)
    rid = "node/a b:7:batch:r2\n\"x\""
    spool.put(report(rid))
    assert ReportSpool(tmp_path).ids() == [rid]


def test_action_store(tmp_path: Path) -> None:
    store = ActionStore(tmp_path / "actions")
    assert store.get(7) is None
    ack = {"action_id": 7, "node": "n1", "status": 0, "errno": 0}
    store.put(7, ack)
    assert ActionStore(tmp_path / "actions").get(7) == ack
    assert store.prune(max_age=3600) == 0
    assert store.prune(max_age=10, now=os.stat(tmp_path / "actions" / "7.json").st_mtime + 11) == 1
    assert store.get(7) is None


def test_reports_spooled_without_fsync_are_listed_unsynced_until_synced(tmp_path: Path) -> None:
    """put(durable=False): the report is in the log at once (an agent crash keeps it), and
    the spool hands out a descriptor to fdatasync before the sender may send them."""
    spool = ReportSpool(tmp_path)
    assert spool.put(report("n1:1:batch", 3))  # durable: nothing to sync
    assert spool.unsynced() == ([], None)
    assert spool.put(report("n1:2:batch", 4), durable=False)
    assert spool.put(report("n1:3:batch", 5), durable=False)
    ids, fd = spool.unsynced()
    assert ids == ["n1:2:batch", "n1:3:batch"] and fd is not None
    assert os.readlink(f"/proc/self/fd/{fd}") == str(tmp_path / LOG_NAME)
    assert not spool.is_synced("n1:2:batch") and spool.is_synced("n1:1:batch")
    assert ReportSpool(tmp_path).ids() == ["n1:1:batch", "n1:2:batch", "n1:3:batch"]
    os.fdatasync(fd)
    os.close(fd)
    spool.synced(ids[:1])
    assert spool.unsynced()[0] == ["n1:3:batch"]
    assert spool.delete("n1:3:batch")  # a deleted report leaves nothing to sync
    assert spool.unsynced() == ([], None) and spool.is_synced("n1:3:batch")


def test_fsync_paths_syncs_a_path_listed_twice_once_at_its_last_place(tmp_path: Path, monkeypatch) -> None:
    """The agent's launch lists the job directory twice (for job.json, then for the run
    directory made in it): one fsync, after everything it names, in the given order."""
    from spurio import fs

    job = tmp_path / "7"
    run = job / "batch"
    run.mkdir(parents=True)
    (job / "job.json").write_text("{}")
    (run / "spec.json").write_text("{}")
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(fs.os, "fsync", spy)
    paths = [str(job / "job.json"), str(job), str(tmp_path), str(run / "spec.json"), str(run), str(job)]
    fs.fsync_paths(paths)
    assert synced == [str(job / "job.json"), str(tmp_path), str(run / "spec.json"), str(run), str(job)]
