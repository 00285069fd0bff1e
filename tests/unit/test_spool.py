"""The agent's durable report spool and ACK store (DESIGN.md 1.5, 1.6): reports survive a
restart in write order until the controller answers them; a torn write is never sent."""

from __future__ import annotations

import os
from pathlib import Path

from spurd.spool import TMP_PREFIX, ActionStore, ReportSpool


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
    assert len(os.listdir(tmp_path)) == 1


def test_survives_reopen_in_order(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path)
    ids = [f"n1:{j}:batch" for j in (5, 3, 12, 1, 40)]
    for rid in ids:
        spool.put(report(rid))
    spool.delete(ids[1])
    again = ReportSpool(tmp_path)
    expected = [rid for rid in ids if rid != ids[1]]
    assert [r["report_id"] for r in again.list()] == expected
    assert again.ids() == expected
    # New reports go after the ones found on disk, even after deletions at the front.
    again.delete(ids[0])
    again.put(report("n1:99:0"))
    assert ReportSpool(tmp_path).ids() == [*expected[1:], "n1:99:0"]


def test_torn_tmp_files_are_ignored_and_removed(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path)
    spool.put(report("n1:1:batch"))
    torn = tmp_path / f"{TMP_PREFIX}000000000002.n1%3A2%3Abatch.json.1234"
    torn.write_bytes(b'{"report_id": "n1:2:ba')  # a crash in the middle of a write
    (tmp_path / "unrelated.txt").write_text("x")
    assert [r["report_id"] for r in spool.list()] == ["n1:1:batch"]
    reopened = ReportSpool(tmp_path)
    assert [r["report_id"] for r in reopened.list()] == ["n1:1:batch"]
    assert not torn.exists()


def test_damaged_final_file_is_set_aside(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path)
    spool.put(report("n1:1:batch"))
    spool.put(report("n1:2:batch"))
    (name,) = [n for n in os.listdir(tmp_path) if "n1%3A1" in n]
    (tmp_path / name).write_bytes(b"\x00garbage")
    reopened = ReportSpool(tmp_path)
    assert [r["report_id"] for r in reopened.list()] == ["n1:2:batch"]
    assert (tmp_path / (name + ".bad")).exists()
    assert [r["report_id"] for r in ReportSpool(tmp_path).list()] == ["n1:2:batch"]


def test_report_ids_with_odd_characters(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path)
    rid = "node/a b:7:batch:r2"
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
    """put(durable=False): the file is in place at once (an agent crash keeps it), and the
    spool names exactly what to fsync -- the report files, then the directory -- before the
    sender may send them."""
    from spurio.fs import fsync_paths

    spool = ReportSpool(tmp_path)
    assert spool.put(report("n1:1:batch", 3))  # durable: nothing to sync
    assert spool.unsynced() == ([], [])
    assert spool.put(report("n1:2:batch", 4), durable=False)
    assert spool.put(report("n1:3:batch", 5), durable=False)
    ids, paths = spool.unsynced()
    assert ids == ["n1:2:batch", "n1:3:batch"]
    assert paths[-1] == str(tmp_path) and len(paths) == 3 and all(os.path.exists(p) for p in paths)
    assert not spool.is_synced("n1:2:batch") and spool.is_synced("n1:1:batch")
    assert [r["report_id"] for r in ReportSpool(tmp_path).list()] == ["n1:1:batch", "n1:2:batch", "n1:3:batch"]
    fsync_paths(paths)
    spool.synced(ids[:1])
    assert spool.unsynced()[0] == ["n1:3:batch"]
    assert spool.delete("n1:3:batch")  # a deleted report leaves nothing to sync
    assert spool.unsynced() == ([], []) and spool.is_synced("n1:3:batch")


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
