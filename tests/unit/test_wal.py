"""Unit tests for spurctld.wal: the application WAL and snapshot files (real files, no mocks)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from spurctld.wal import (
    SNAPSHOT_MAGIC,
    WAL_MAGIC,
    SnapshotCorrupt,
    Wal,
    WalError,
    load_latest_snapshot,
    read_snapshot_file,
    write_snapshot,
    write_snapshot_file,
)

REC_HDR = 16  # u32 length + u32 crc + u64 index
SNAP_HDR = 28  # magic + u64 index + u32 crc + u64 length


def payload(i: int) -> bytes:
    return f"op-{i}-".encode() * (1 + i % 5)


def seg_files(directory: Path, sub: str = "segments") -> list[Path]:
    return sorted((directory / sub).glob("wal-*.seg"))


def fill(directory: Path, indices: list[int], segment_bytes: int = 64 * 1024 * 1024) -> None:
    with Wal(directory, segment_bytes=segment_bytes) as wal:
        for i in indices:
            assert wal.append(i, payload(i))
        assert wal.sync() == indices[-1]


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def wal_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "spurctld.wal" and r.levelno >= logging.WARNING]


# ---------------------------------------------------------------------- basic log


def test_empty_wal(tmp_path: Path) -> None:
    with Wal(tmp_path) as wal:
        assert (wal.first_index, wal.last_index, wal.durable_index) == (0, 0, 0)
        assert list(wal.iter_records()) == []
        assert wal.sync() == 0
    with Wal(tmp_path) as wal:
        assert wal.last_index == 0
    assert seg_files(tmp_path) == []


def test_append_sync_reopen_round_trip(tmp_path: Path) -> None:
    indices = [1, 2, 3, 7, 8, 20, *range(21, 120)]  # gaps are allowed (not every raft entry is an op)
    with Wal(tmp_path) as wal:
        for i in indices:
            assert wal.append(i, payload(i))
        assert wal.append(500, b"")  # empty payload
        assert wal.last_index == 500
        assert wal.durable_index == 0  # buffered, not yet durable
        assert wal.sync() == 500
        assert wal.durable_index == 500
        assert wal.sync() == 500  # nothing dirty: cheap no-op
        expected = [(i, payload(i)) for i in indices] + [(500, b"")]
        assert list(wal.iter_records()) == expected
    with Wal(tmp_path) as wal:
        assert (wal.first_index, wal.last_index, wal.durable_index) == (1, 500, 500)
        assert list(wal.iter_records()) == expected
        assert list(wal.iter_records(8)) == [r for r in expected if r[0] >= 8]
        assert list(wal.iter_records(501)) == []
        assert wal.append(501, b"more")
    with Wal(tmp_path) as wal:
        assert list(wal.iter_records(500)) == [(500, b""), (501, b"more")]
    (seg,) = seg_files(tmp_path)
    assert seg.name == "wal-00000000000000000001.seg"
    assert seg.read_bytes()[:8] == WAL_MAGIC


def test_iter_records_sees_unsynced_appends(tmp_path: Path) -> None:
    with Wal(tmp_path) as wal:
        wal.append(1, b"a")
        wal.append(2, b"b")
        assert list(wal.iter_records()) == [(1, b"a"), (2, b"b")]


def test_close_syncs(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    wal.append(1, b"x")
    wal.close()
    wal.close()  # idempotent
    with pytest.raises(WalError, match="closed"):
        wal.append(2, b"y")
    with Wal(tmp_path) as wal2:
        assert wal2.last_index == 1


def test_skip_already_written_indices(tmp_path: Path) -> None:
    with Wal(tmp_path) as wal:
        for i in range(1, 11):
            assert wal.append(i, payload(i))
        assert wal.append(5, b"replayed") is False
        assert wal.append(10, b"replayed") is False
        assert wal.append(0, b"zero") is False
        assert wal.append(11, payload(11)) is True
        assert wal.last_index == 11
    with Wal(tmp_path) as wal:
        # pysyncobj re-applies entries after a restart: already written ones are skipped.
        assert [wal.append(i, b"again") for i in range(1, 12)] == [False] * 11
        assert wal.append(12, payload(12))
        assert list(wal.iter_records()) == [(i, payload(i)) for i in range(1, 13)]


def test_second_instance_on_same_directory_is_refused(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    with pytest.raises(WalError, match="already open"):
        Wal(tmp_path)
    wal.close()
    Wal(tmp_path).close()


def test_concurrent_append_and_sync(tmp_path: Path) -> None:
    n = 3000
    wal = Wal(tmp_path, segment_bytes=4096)
    done = threading.Event()
    seen: list[int] = []

    def syncer() -> None:
        while not done.is_set():
            seen.append(wal.sync())

    t = threading.Thread(target=syncer)
    t.start()
    try:
        for i in range(1, n + 1):
            wal.append(i, payload(i))
    finally:
        done.set()
        t.join()
    assert seen == sorted(seen)  # durable index never goes backwards
    assert all(d <= n for d in seen)
    assert wal.sync() == n
    wal.close()
    with Wal(tmp_path, segment_bytes=4096) as wal:
        assert [i for i, _ in wal.iter_records()] == list(range(1, n + 1))


# ---------------------------------------------------------------------- segments


def test_rollover_to_several_segments(tmp_path: Path) -> None:
    # Each record is 16 + 7..35 bytes; 100-byte segments hold a few records each.
    fill(tmp_path, list(range(1, 61)), segment_bytes=100)
    segs = seg_files(tmp_path)
    assert len(segs) > 10
    for seg in segs:
        data = seg.read_bytes()
        assert data[:8] == WAL_MAGIC
        assert len(data) <= 100
        first = int.from_bytes(data[8 + 8 : 8 + 16], "big")
        assert seg.name == f"wal-{first:020d}.seg"  # named after its first record
    with Wal(tmp_path, segment_bytes=100) as wal:
        assert (wal.first_index, wal.last_index) == (1, 60)
        assert list(wal.iter_records()) == [(i, payload(i)) for i in range(1, 61)]
        assert [i for i, _ in wal.iter_records(33)] == list(range(33, 61))
        for i in range(61, 70):
            wal.append(i, payload(i))
    with Wal(tmp_path, segment_bytes=100) as wal:
        assert [i for i, _ in wal.iter_records()] == list(range(1, 70))


def test_oversized_record_gets_its_own_segment(tmp_path: Path) -> None:
    with Wal(tmp_path, segment_bytes=64) as wal:
        wal.append(1, b"x" * 200)
        wal.append(2, b"y")
        wal.append(3, b"z" * 300)
    assert len(seg_files(tmp_path)) == 3
    with Wal(tmp_path, segment_bytes=64) as wal:
        assert list(wal.iter_records()) == [(1, b"x" * 200), (2, b"y"), (3, b"z" * 300)]


def test_archive_before_moves_sealed_segments(tmp_path: Path) -> None:
    # 40-byte segments: exactly one record per segment.
    fill(tmp_path, list(range(1, 11)), segment_bytes=40)
    assert len(seg_files(tmp_path)) == 10
    with Wal(tmp_path, segment_bytes=40) as wal:
        assert wal.archive_before(6) == 5
        assert wal.archive_before(6) == 0
        assert [p.name for p in seg_files(tmp_path, "archive")] == [f"wal-{i:020d}.seg" for i in range(1, 6)]
        assert [p.name for p in seg_files(tmp_path)] == [f"wal-{i:020d}.seg" for i in range(6, 11)]
        assert wal.first_index == 1
        assert list(wal.iter_records()) == [(i, payload(i)) for i in range(1, 11)]
        assert [i for i, _ in wal.iter_records(4)] == list(range(4, 11))
        # Never the newest segment: it holds last_index.
        assert wal.archive_before(10**9) == 4
        assert [p.name for p in seg_files(tmp_path)] == [f"wal-{10:020d}.seg"]
        wal.append(11, payload(11))
        wal.append(12, payload(12))
        assert wal.archive_before(12) == 2  # segments 10 and 11 are sealed now; 12 is the newest
    with Wal(tmp_path, segment_bytes=40) as wal:
        assert (wal.first_index, wal.last_index) == (1, 12)
        assert list(wal.iter_records()) == [(i, payload(i)) for i in range(1, 13)]
        assert wal.append(12, b"dup") is False


def test_archive_keeps_segment_with_records_at_or_after_index(tmp_path: Path) -> None:
    fill(tmp_path, list(range(1, 31)), segment_bytes=150)
    with Wal(tmp_path, segment_bytes=150) as wal:
        wal.archive_before(17)
        for seg in seg_files(tmp_path, "archive"):
            last = max(i for i, _ in _records_of(seg))
            assert last < 17
        assert min(i for seg in seg_files(tmp_path) for i, _ in _records_of(seg)) <= 17
        assert [i for i, _ in wal.iter_records()] == list(range(1, 31))


def _records_of(seg: Path) -> list[tuple[int, bytes]]:
    data = seg.read_bytes()
    off, out = 8, []
    while off < len(data):
        length = int.from_bytes(data[off : off + 4], "big")
        index = int.from_bytes(data[off + 8 : off + 16], "big")
        out.append((index, data[off + 16 : off + 16 + length]))
        off += 16 + length
    return out


# ---------------------------------------------------------------------- torn tails and corruption


def test_truncation_at_every_offset_inside_last_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(tmp_path, [1, 2, 3, 4, 5])
    (seg,) = seg_files(tmp_path)
    original = seg.read_bytes()
    last_start = len(original) - (REC_HDR + len(payload(5)))
    expected = [(i, payload(i)) for i in range(1, 5)]
    for cut in range(last_start + 1, len(original)):
        seg.write_bytes(original[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="spurctld.wal"):
            with Wal(tmp_path) as wal:
                assert wal.last_index == 4
                assert list(wal.iter_records()) == expected
        (warning,) = wal_warnings(caplog)
        assert warning.levelno == logging.WARNING
        msg = warning.getMessage()
        assert (
            seg.name in msg and f"offset {last_start}" in msg and f"dropping {cut - last_start} bytes" in msg
        )
        assert seg.stat().st_size == last_start
    # A cut exactly at a record boundary is a clean log: no warning.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spurctld.wal"):
        with Wal(tmp_path) as wal:
            assert wal.append(5, payload(5))
    assert wal_warnings(caplog) == []
    assert seg.read_bytes() == original


def test_torn_only_record_of_newest_segment_removes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(tmp_path, [1, 2, 3], segment_bytes=40)  # one record per segment
    newest = seg_files(tmp_path)[-1]
    for cut in (0, 3, 8, 12, 30):
        newest.write_bytes(newest.read_bytes()[:cut] if newest.exists() else b"")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="spurctld.wal"):
            with Wal(tmp_path, segment_bytes=40) as wal:
                assert wal.last_index == 2
                assert [i for i, _ in wal.iter_records()] == [1, 2]
        assert not newest.exists()
        assert newest.name in wal_warnings(caplog)[0].getMessage()
        fill(tmp_path, [3], segment_bytes=40)  # rewrite it for the next round


def test_flipped_byte_in_last_record_is_cut(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fill(tmp_path, [1, 2, 3])
    (seg,) = seg_files(tmp_path)
    original = seg.read_bytes()
    last_start = len(original) - (REC_HDR + len(payload(3)))
    # A payload byte, an index byte and a CRC byte of the last record.
    for offset in (len(original) - 2, last_start + 10, last_start + 5):
        seg.write_bytes(original)
        flip_byte(seg, offset)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="spurctld.wal"):
            with Wal(tmp_path) as wal:
                assert list(wal.iter_records()) == [(1, payload(1)), (2, payload(2))]
        (warning,) = wal_warnings(caplog)
        assert "CRC mismatch" in warning.getMessage() and seg.name in warning.getMessage()
        assert seg.stat().st_size == last_start
    # The dropped bytes are kept for forensics, not destroyed.
    kept = sorted((tmp_path / "corrupt").glob(f"{seg.name}.{last_start}*.tail"))
    assert len(kept) == 3  # one copy per cut, none overwritten
    assert any(k.read_bytes()[REC_HDR:] == payload(3) for k in kept)


def test_bad_record_followed_by_good_ones_in_last_segment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(tmp_path, [1, 2, 3, 4])
    (seg,) = seg_files(tmp_path)
    rec2 = 8 + REC_HDR + len(payload(1))
    flip_byte(seg, rec2 + REC_HDR)  # first payload byte of record 2
    with caplog.at_level(logging.WARNING, logger="spurctld.wal"):
        with Wal(tmp_path) as wal:
            assert list(wal.iter_records()) == [(1, payload(1))]
    (record,) = wal_warnings(caplog)
    assert record.levelno == logging.ERROR  # more likely bit rot than a torn write: shout
    assert "2 well-formed records followed" in record.getMessage()


def test_corruption_in_sealed_segment_raises(tmp_path: Path) -> None:
    fill(tmp_path, list(range(1, 31)), segment_bytes=100)
    segs = seg_files(tmp_path)
    middle = segs[len(segs) // 2]
    original = middle.read_bytes()
    flip_byte(middle, len(original) - 1)
    with pytest.raises(WalError, match=rf"{middle.name}.*offset \d+"):
        Wal(tmp_path, segment_bytes=100)
    middle.write_bytes(original[:-3])  # a torn sealed segment is damage too
    with pytest.raises(WalError, match=middle.name):
        Wal(tmp_path, segment_bytes=100)
    middle.write_bytes(original)
    with Wal(tmp_path, segment_bytes=100) as wal:  # nothing was cut by the failed opens
        assert [i for i, _ in wal.iter_records()] == list(range(1, 31))


def test_bad_magic_raises(tmp_path: Path) -> None:
    fill(tmp_path, [1, 2])
    (seg,) = seg_files(tmp_path)
    flip_byte(seg, 0)
    with pytest.raises(WalError, match="bad magic"):
        Wal(tmp_path)


def test_corrupt_archived_segment_raises_on_read(tmp_path: Path) -> None:
    fill(tmp_path, list(range(1, 6)), segment_bytes=40)
    with Wal(tmp_path, segment_bytes=40) as wal:
        wal.archive_before(4)
    archived = seg_files(tmp_path, "archive")[1]
    flip_byte(archived, len(archived.read_bytes()) - 1)
    with Wal(tmp_path, segment_bytes=40) as wal:
        with pytest.raises(WalError, match=archived.name):
            list(wal.iter_records())
        assert [i for i, _ in wal.iter_records(3)] == [3, 4, 5]  # skipped by file name


def test_a_tail_read_checks_every_record_it_returns(tmp_path: Path) -> None:
    # One archived segment with records 1-5: a restart reading from 4 frames 1-3 without
    # computing their CRCs (a snapshot covers them), but never returns an unchecked record.
    fill(tmp_path, list(range(1, 6)), segment_bytes=200)
    with Wal(tmp_path, segment_bytes=40) as wal:
        wal.append(6, payload(6))
        wal.archive_before(6)
    archived = seg_files(tmp_path, "archive")[0]
    flip_byte(archived, len(WAL_MAGIC) + 2 * REC_HDR + len(payload(1)) + len(payload(2)) - 1)  # record 2's payload
    with Wal(tmp_path) as wal:
        assert [i for i, _ in wal.iter_records(4)] == [4, 5, 6]
        with pytest.raises(WalError, match="CRC"):
            list(wal.iter_records(2))


# ---------------------------------------------------------------------- snapshots


def test_snapshot_round_trip(tmp_path: Path) -> None:
    assert load_latest_snapshot(tmp_path) is None
    path = write_snapshot(tmp_path, 42, b"state-bytes")
    assert path == tmp_path / "snapshots" / f"snap-{42:020d}.snap"
    assert path.read_bytes()[:8] == SNAPSHOT_MAGIC
    assert load_latest_snapshot(tmp_path) == (42, b"state-bytes")
    write_snapshot(tmp_path, 50, b"")
    assert load_latest_snapshot(tmp_path) == (50, b"")
    assert read_snapshot_file(path) == (42, b"state-bytes")
    assert [p.name for p in (tmp_path / "snapshots").iterdir() if not p.name.startswith("snap-")] == []


def test_snapshot_file_fixed_name(tmp_path: Path) -> None:
    path = tmp_path / "fulldump.bin"
    write_snapshot_file(path, 7, b"one")
    assert read_snapshot_file(path) == (7, b"one")
    write_snapshot_file(path, 9, b"two" * 1000)  # atomic overwrite
    assert read_snapshot_file(path) == (9, b"two" * 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fulldump.bin"]  # no temp file left behind


def test_snapshot_keeps_newest_three(tmp_path: Path) -> None:
    for index in (10, 20, 30, 40, 50):
        write_snapshot(tmp_path, index, f"s{index}".encode())
    names = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert names == [f"snap-{i:020d}.snap" for i in (30, 40, 50)]
    assert load_latest_snapshot(tmp_path) == (50, b"s50")


def test_leftover_snapshot_temp_file_is_ignored_and_cleaned(tmp_path: Path) -> None:
    write_snapshot(tmp_path, 1, b"a")
    junk = tmp_path / "snapshots" / ".snap-crashed.tmp"
    junk.write_bytes(b"partial")
    assert load_latest_snapshot(tmp_path) == (1, b"a")
    write_snapshot(tmp_path, 2, b"b")
    assert not junk.exists()


@pytest.mark.parametrize(
    "damage",
    [
        "flip_payload",
        "flip_magic",
        "flip_crc",
        "flip_length",
        "truncate_payload",
        "truncate_header",
        "append",
    ],
)
def test_corrupt_newest_snapshot_raises(tmp_path: Path, damage: str) -> None:
    write_snapshot(tmp_path, 1, b"older, intact")
    path = write_snapshot(tmp_path, 2, b"newest snapshot payload")
    data = path.read_bytes()
    if damage == "flip_payload":
        flip_byte(path, len(data) - 3)
    elif damage == "flip_magic":
        flip_byte(path, 2)
    elif damage == "flip_crc":
        flip_byte(path, 17)
    elif damage == "flip_length":
        flip_byte(path, SNAP_HDR - 1)
    elif damage == "truncate_payload":
        path.write_bytes(data[:-1])
    elif damage == "truncate_header":
        path.write_bytes(data[: SNAP_HDR - 5])
    else:
        path.write_bytes(data + b"\0")
    with pytest.raises(SnapshotCorrupt, match=path.name):
        load_latest_snapshot(tmp_path)  # never a silent fall back to snapshot 1
    with pytest.raises(SnapshotCorrupt):
        read_snapshot_file(path)
    assert issubclass(SnapshotCorrupt, WalError)


def test_snapshot_truncated_at_every_offset(tmp_path: Path) -> None:
    path = tmp_path / "dump.snap"
    write_snapshot_file(path, 3, b"0123456789")
    data = path.read_bytes()
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(SnapshotCorrupt):
            read_snapshot_file(path)


def test_snapshot_index_must_match_file_name(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 5, b"x")
    write_snapshot_file(path, 6, b"x")  # header now says 6
    with pytest.raises(SnapshotCorrupt, match="file name"):
        load_latest_snapshot(tmp_path)
