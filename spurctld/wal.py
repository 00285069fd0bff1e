"""The application write-ahead log: Spur's durable system of record.

pysyncobj replicates ops but never fsyncs, has no checksums and deletes history on
compaction (DESIGN.md section 3a). This module keeps our own log of applied ops plus
checksummed, atomically written snapshots.

Layout under the ``Wal``'s ``directory`` (a replica uses ``ctld-N/wal``)::

    segments/wal-<first_index:020d>.seg   newest segments (about SEGMENT_BYTES each); the last is the active one
    archive/wal-<first_index:020d>.seg    older sealed segments, moved here, never deleted
    corrupt/<segment>.<offset>.tail       bytes cut from a torn tail, kept for forensics
    LOCK                                  flock held by the one open ``Wal``

and under the directory given to ``write_snapshot`` (a replica uses ``ctld-N``)::

    snapshots/snap-<index:020d>.snap      the newest three snapshots (derived data)

Segment file: the 8-byte magic ``SPURWAL1``, then records::

    u32 payload length | u32 CRC32(index bytes + payload) | u64 raft index | payload
    (all integers big-endian)

Invariants:

1. Raft indices strictly increase across the whole log (archive, then segments). Gaps are
   allowed (not every raft entry is an op). ``append`` of an index <= ``last_index`` is a
   no-op returning False: pysyncobj re-applies entries after a snapshot install or restart.
2. A segment's file name is the index of its first record, and a segment file is only
   created when its first record is appended, so it is never empty for long.
3. Every segment except the newest is sealed: immutable, fdatasynced, and its directory
   entry fsynced, all *before* the next segment file is created. So only the tail of the
   newest segment can be torn by a crash. Damage anywhere else is real corruption and
   opening raises ``WalError``; nothing is guessed or skipped.
4. ``durable_index`` only covers records whose bytes were fdatasynced and whose segment's
   directory entry was fsynced. Clients may be acknowledged only up to ``durable_index``.
5. On open, a torn or corrupt tail of the newest segment is cut at the last good record
   (with a warning naming file, offset and bytes dropped); the dropped bytes are first
   copied to ``corrupt/``. Apart from that cut, and the removal of a newest segment file
   that holds no complete record, the WAL never truncates or deletes anything.
6. ``archive_before`` moves sealed segments, never the newest one, so ``last_index``
   is always recoverable from ``segments/``; ``iter_records`` reads archive then segments,
   so the full history since ``first_index`` stays readable.
7. Snapshots are derived data: written atomically (temp file, fsync, rename, fsync dir),
   checksummed; a corrupt newest snapshot raises ``SnapshotCorrupt``. There is no silent
   fallback to an older one and no partially read payload is ever returned.
8. One ``Wal`` instance per directory at a time (an exclusive ``flock`` on ``LOCK``).
   After a failed write or fsync the instance refuses further use (no retrying an fsync
   whose failure may have dropped dirty pages); reopen to recover from the files.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spurio.fs import fsync_dir, write_atomic

__all__ = [
    "WAL_MAGIC",
    "SNAPSHOT_MAGIC",
    "KEEP_SNAPSHOTS",
    "WalError",
    "SnapshotCorrupt",
    "Wal",
    "write_snapshot",
    "load_latest_snapshot",
    "read_snapshot_file",
    "write_snapshot_file",
]

log = logging.getLogger(__name__)

WAL_MAGIC = b"SPURWAL1"
SNAPSHOT_MAGIC = b"SPURSNP1"
KEEP_SNAPSHOTS = 3

_REC_HDR = struct.Struct(">IIQ")  # payload length, crc32(index bytes + payload), raft index
_INDEX = struct.Struct(">Q")
_SNAP_HDR = struct.Struct(">8sQIQ")  # magic, index, crc32(payload), payload length
_MAX_PAYLOAD = 0xFFFFFFFF
_MAX_INDEX = 0xFFFFFFFFFFFFFFFF
_WRITE_BUFFER = 256 * 1024
# Every open reads and checks the whole newest segment (and iter_records re-reads it to
# find a restart's tail), so its size bounds that part of a restart: 8 MiB is about 25,000
# submissions, 20-30 ms. Older segments are archived after each snapshot.
SEGMENT_BYTES = 8 * 1024 * 1024

_SEG_RE = re.compile(r"^wal-(\d{20})\.seg$")
_SNAP_RE = re.compile(r"^snap-(\d{20})\.snap$")
_SNAP_TMP_PREFIX = ".snap-"
_SNAP_TMP_SUFFIX = ".tmp"

# Serialises write_snapshot() calls in this process (pruning must not race a writer).
_SNAPSHOT_LOCK = threading.Lock()


class WalError(Exception):
    """The WAL cannot be read or written safely."""


class SnapshotCorrupt(WalError):
    """A snapshot file failed its magic, length or CRC check."""


class _Corrupt(Exception):
    """Internal: a record failed to parse at ``offset``."""

    def __init__(self, offset: int, reason: str, declared_end: int | None = None) -> None:
        super().__init__(f"offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason
        self.declared_end = declared_end  # where the record claims to end, if its header is whole


@dataclass
class _Segment:
    path: Path
    first_index: int
    last_index: int
    size: int


def _segment_name(first_index: int) -> str:
    return f"wal-{first_index:020d}.seg"


def _snapshot_name(index: int) -> str:
    return f"snap-{index:020d}.snap"


def _list_segments(path: Path) -> list[tuple[int, Path]]:
    out = []
    for entry in path.iterdir():
        m = _SEG_RE.match(entry.name)
        if m and entry.is_file():
            out.append((int(m.group(1)), entry))
    out.sort()
    return out


def _frames(buf: bytes, start: int = len(WAL_MAGIC), check_from: int = 0) -> Iterator[tuple[int, int, int]]:
    """Yield (offset, end, index) for each well-formed record in ``buf`` from ``start``.

    Raises _Corrupt at the first record that is short or fails its CRC. Records whose index
    is below ``check_from`` are framed but their CRC is not computed (a reader skipping them
    uses none of their bytes; a damaged header still shows, as a frame running past the end
    or as a CRC mismatch of the next record read).
    """
    mv = memoryview(buf)
    n = len(buf)
    off = start
    hdr = _REC_HDR.size
    unpack = _REC_HDR.unpack_from
    crc32 = zlib.crc32
    while off < n:
        if n - off < hdr:
            raise _Corrupt(off, f"torn record header ({n - off} of {hdr} bytes)")
        length, crc, index = unpack(buf, off)
        end = off + hdr + length
        if end > n:
            raise _Corrupt(off, f"record length {length} runs {end - n} bytes past end of file")
        if index >= check_from and crc32(mv[off + 8 : end]) != crc:
            raise _Corrupt(off, "CRC mismatch", declared_end=end)
        yield off, end, index
        off = end


def _count_followers(buf: bytes, start: int) -> int:
    """How many well-formed records follow contiguously from ``start`` (for diagnostics)."""
    count = 0
    try:
        for _ in _frames(buf, start):
            count += 1
    except _Corrupt:
        pass
    return count


class Wal:
    """Append-only, checksummed, segmented log of applied ops keyed by raft index.

    ``append`` and ``sync`` may be called from different threads.
    """

    def __init__(self, directory: str | Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        if segment_bytes < len(WAL_MAGIC) + _REC_HDR.size:
            raise ValueError(f"segment_bytes too small: {segment_bytes}")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._seg_dir = self.directory / "segments"
        self._arch_dir = self.directory / "archive"
        self._lock = threading.Lock()  # guards all state below
        self._sync_lock = threading.Lock()  # serialises sync() callers; taken before _lock
        self._segments: list[_Segment] = []  # in segments/, oldest first
        self._archive: list[tuple[int, str]] = []  # (first_index, file name), oldest first
        self._active: BinaryIO | None = None  # BufferedWriter of the newest segment, if open
        self._last_index = 0
        self._durable_index = 0
        self._dir_dirty = False
        self._failed: str | None = None
        self._closed = False
        self._lock_fd: int | None = None

        for d in (self.directory, self._seg_dir, self._arch_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._acquire_dir_lock()
        try:
            self._open()
        except BaseException:
            self._release_dir_lock()
            raise

    # ------------------------------------------------------------------ open / recovery

    def _acquire_dir_lock(self) -> None:
        fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WalError(f"{self.directory}: WAL is already open (LOCK held by another instance)") from None
        self._lock_fd = fd

    def _release_dir_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _open(self) -> None:
        self._archive = [(first, p.name) for first, p in _list_segments(self._arch_dir)]
        hot = _list_segments(self._seg_dir)
        prev = 0
        if self._archive and hot and hot[0][0] <= self._archive[-1][0]:
            raise WalError(
                f"{hot[0][1]}: starts at index {hot[0][0]}, not after the "
                f"newest archived segment {self._archive[-1][1]}"
            )
        for i, (first, path) in enumerate(hot):
            seg = self._scan_segment(path, first, prev, is_last=i == len(hot) - 1)
            if seg is not None:
                self._segments.append(seg)
                prev = seg.last_index
        if not self._segments and self._archive:
            # Only reachable if segments/ was emptied by hand: recover last_index from the archive.
            first, name = self._archive[-1]
            buf = (self._arch_dir / name).read_bytes()
            try:
                for _off, _end, index in self._check_frames(buf, self._arch_dir / name, 0):
                    prev = index
            except _Corrupt as e:
                raise WalError(f"{self._arch_dir / name}: corrupt record at {e}") from None
        self._last_index = prev
        if self._segments:
            last = self._segments[-1]
            if last.size < self.segment_bytes:
                f = open(last.path, "ab", buffering=_WRITE_BUFFER)
                self._active = f
                os.fdatasync(f.fileno())
            else:
                with open(last.path, "rb") as f:
                    os.fdatasync(f.fileno())
        fsync_dir(self._seg_dir)
        self._durable_index = self._last_index

    def _check_frames(self, buf: bytes, path: Path, prev: int) -> Iterator[tuple[int, int, int]]:
        """_frames() plus the ordering invariant (a CRC-valid record out of order is a bug, not a tear)."""
        for off, end, index in _frames(buf):
            if index <= prev:
                raise WalError(f"{path}: record at offset {off} has index {index}, not after {prev}")
            prev = index
            yield off, end, index

    def _scan_segment(self, path: Path, first: int, prev: int, is_last: bool) -> _Segment | None:
        buf = path.read_bytes()
        if len(buf) < len(WAL_MAGIC):
            if is_last:
                self._cut_tail(path, buf, 0, "torn segment header")
                return None
            raise WalError(f"{path}: torn segment header ({len(buf)} bytes) in a sealed segment")
        if buf[: len(WAL_MAGIC)] != WAL_MAGIC:
            raise WalError(f"{path}: bad magic {buf[: len(WAL_MAGIC)]!r}, not a Spur WAL segment")
        count = 0
        seg_first = 0
        last = prev
        good_end = len(WAL_MAGIC)
        try:
            for _off, end, index in self._check_frames(buf, path, prev):
                if count == 0:
                    seg_first = index
                    if index != first:
                        raise WalError(f"{path}: first record has index {index}, file name says {first}")
                count += 1
                last = index
                good_end = end
        except _Corrupt as e:
            if not is_last:
                raise WalError(
                    f"{path}: corrupt record at offset {e.offset} ({e.reason}) in a sealed segment; "
                    "refusing to open (restore the file or move it aside by hand)"
                ) from None
            followers = 0
            if e.declared_end is not None:
                followers = _count_followers(buf, e.declared_end)
            self._cut_tail(path, buf, good_end, e.reason, followers)
            if count == 0:
                return None
            return _Segment(path, seg_first, last, good_end)
        if count == 0:
            if is_last:
                self._cut_tail(path, buf, len(WAL_MAGIC), "segment holds no record")
                return None
            raise WalError(f"{path}: sealed segment holds no record")
        return _Segment(path, seg_first, last, good_end)

    def _cut_tail(self, path: Path, buf: bytes, good_end: int, reason: str, followers: int = 0) -> None:
        """Cut the newest segment at ``good_end`` (remove it if no record is left), keeping the dropped bytes."""
        removing = good_end <= len(WAL_MAGIC)
        dropped = len(buf) - good_end if not removing else len(buf)
        kept = None
        keep_from = max(good_end, len(WAL_MAGIC))
        if len(buf) > keep_from:
            keep_dir = self.directory / "corrupt"
            keep_dir.mkdir(exist_ok=True)
            kept = keep_dir / f"{path.name}.{keep_from}.tail"
            n = 0
            while kept.exists():  # never overwrite an earlier copy
                n += 1
                kept = keep_dir / f"{path.name}.{keep_from}.{n}.tail"
            with open(kept, "xb") as f:
                f.write(buf[keep_from:])
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(keep_dir)
        action = "removing the file" if removing else f"truncating to {good_end} bytes"
        msg = f"WAL segment {path}: {reason} at offset {good_end}; dropping {dropped} bytes, {action}"
        if kept is not None:
            msg += f" (dropped bytes saved to {kept})"
        if followers:
            # A CRC-valid record follows the bad one: more likely bit rot than a torn write.
            log.error("%s; %d well-formed records followed the bad one and were dropped too", msg, followers)
        else:
            log.warning("%s", msg)
        if removing:
            path.unlink()
        else:
            os.truncate(path, good_end)
            fd = os.open(path, os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(self._seg_dir)

    # ------------------------------------------------------------------ properties

    @property
    def last_index(self) -> int:
        """Index of the newest record written (buffered or durable); 0 if the log is empty."""
        return self._last_index

    @property
    def durable_index(self) -> int:
        """Every record with index <= this is on stable storage."""
        return self._durable_index

    @property
    def first_index(self) -> int:
        """Index of the oldest record still readable via iter_records (archive included); 0 if empty."""
        with self._lock:
            if self._archive:
                return self._archive[0][0]
            if self._segments:
                return self._segments[0].first_index
            return 0

    # ------------------------------------------------------------------ writing

    def _check_usable(self) -> None:
        if self._closed:
            raise WalError(f"{self.directory}: WAL is closed")
        if self._failed is not None:
            raise WalError(f"{self.directory}: WAL unusable after an earlier I/O error: {self._failed}")

    def _fail(self, what: str, exc: BaseException) -> WalError:
        self._failed = f"{what}: {exc}"
        return WalError(f"{self.directory}: {what} failed: {exc}")

    def append(self, index: int, payload: bytes) -> bool:
        """Buffer one record. Returns False (and writes nothing) if ``index`` <= last_index."""
        length = len(payload)
        if length > _MAX_PAYLOAD:
            raise ValueError(f"payload of {length} bytes exceeds the 4 GiB record limit")
        if index > _MAX_INDEX:
            raise ValueError(f"index {index} out of range")
        with self._lock:
            self._check_usable()
            if index <= self._last_index:
                return False
            header = _REC_HDR.pack(length, zlib.crc32(payload, zlib.crc32(_INDEX.pack(index))), index)
            record_size = _REC_HDR.size + length
            try:
                active = self._active
                if active is not None and self._segments[-1].size + record_size > self.segment_bytes:
                    self._seal_active()
                    active = None
                if active is None:
                    active = self._new_segment(index)
                active.write(header)
                active.write(payload)
            except OSError as e:
                raise self._fail("append", e) from e
            seg = self._segments[-1]
            seg.size += record_size
            seg.last_index = index
            self._last_index = index
            return True

    def _seal_active(self) -> None:
        """Make the active segment (and its directory entry) durable before any newer segment exists."""
        active = self._active
        assert active is not None
        active.flush()
        os.fdatasync(active.fileno())
        active.close()
        self._active = None
        if self._dir_dirty:
            fsync_dir(self._seg_dir)
            self._dir_dirty = False
        sealed_last = self._segments[-1].last_index
        if sealed_last > self._durable_index:
            self._durable_index = sealed_last

    def _new_segment(self, first_index: int) -> BinaryIO:
        path = self._seg_dir / _segment_name(first_index)
        f = open(path, "xb", buffering=_WRITE_BUFFER)
        try:
            f.write(WAL_MAGIC)
        except BaseException:
            f.close()
            raise
        self._active = f
        self._dir_dirty = True
        self._segments.append(_Segment(path, first_index, first_index, len(WAL_MAGIC)))
        return f

    def sync(self) -> int:
        """Make every appended record durable; returns durable_index. Cheap when nothing is dirty."""
        with self._sync_lock:
            with self._lock:
                self._check_usable()
                if self._durable_index == self._last_index and not self._dir_dirty:
                    return self._durable_index
                target = self._last_index
                fd = None
                try:
                    if self._active is not None:
                        self._active.flush()
                        # A duplicate so a concurrent rollover may close the original safely.
                        fd = os.dup(self._active.fileno())
                except OSError as e:
                    raise self._fail("flush", e) from e
                dir_dirty = self._dir_dirty
                self._dir_dirty = False
            # fdatasync outside _lock so appends continue meanwhile (group commit).
            try:
                if fd is not None:
                    os.fdatasync(fd)
                if dir_dirty:
                    fsync_dir(self._seg_dir)
            except OSError as e:
                with self._lock:
                    raise self._fail("fdatasync", e) from e
            finally:
                if fd is not None:
                    os.close(fd)
            with self._lock:
                if target > self._durable_index:
                    self._durable_index = target
                return self._durable_index

    # ------------------------------------------------------------------ reading

    def iter_records(self, from_index: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield (index, payload) for every record with index >= from_index, oldest first.

        Reads archive/ then segments/. Records appended after the call starts may or may not
        be included. Raises WalError on a corrupt record.
        """
        with self._lock:
            self._check_usable()
            if self._active is not None:
                try:
                    self._active.flush()
                except OSError as e:
                    raise self._fail("flush", e) from e
            plan: list[tuple[int, str, int | None]] = [(first, name, None) for first, name in self._archive]
            plan += [(s.first_index, s.path.name, s.size) for s in self._segments]
        for i, (_first, name, size) in enumerate(plan):
            if i + 1 < len(plan) and plan[i + 1][0] <= from_index:
                continue  # every record of this segment is before from_index
            buf, path = self._read_segment(name, size)
            if buf[: len(WAL_MAGIC)] != WAL_MAGIC:
                raise WalError(f"{path}: bad magic {buf[: len(WAL_MAGIC)]!r}")
            try:
                for off, end, index in _frames(buf, check_from=from_index):
                    if index >= from_index:
                        yield index, buf[off + _REC_HDR.size : end]
            except _Corrupt as e:
                raise WalError(f"{path}: corrupt record at {e}") from None

    def _read_segment(self, name: str, size: int | None) -> tuple[bytes, Path]:
        # A segment listed under segments/ may have been archived since the plan was made.
        for d in (self._seg_dir, self._arch_dir):
            path = d / name
            try:
                with open(path, "rb") as f:
                    return (f.read(size) if size is not None else f.read()), path
            except FileNotFoundError:
                continue
        raise WalError(f"WAL segment {name} vanished from {self._seg_dir} and {self._arch_dir}")

    # ------------------------------------------------------------------ archiving / closing

    def archive_before(self, index: int) -> int:
        """Move sealed segments whose records are all < index into archive/; returns how many moved."""
        moved = 0
        with self._lock:
            self._check_usable()
            # Never the newest segment: it is (or will be) active and holds last_index.
            while len(self._segments) > 1 and self._segments[0].last_index < index:
                seg = self._segments[0]
                dest = self._arch_dir / seg.path.name
                if dest.exists():
                    raise WalError(f"{dest} already exists; refusing to overwrite archived history")
                os.rename(seg.path, dest)
                self._segments.pop(0)
                self._archive.append((seg.first_index, dest.name))
                moved += 1
            if moved:
                fsync_dir(self._arch_dir)
                fsync_dir(self._seg_dir)
        return moved

    def close(self) -> None:
        """Sync (if healthy) and close. Idempotent."""
        if self._closed:
            return
        try:
            if self._failed is None:
                self.sync()
        finally:
            with self._lock:
                if self._active is not None:
                    with contextlib.suppress(OSError):
                        self._active.close()
                    self._active = None
                self._closed = True
                self._release_dir_lock()

    def __enter__(self) -> Wal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Wal({str(self.directory)!r}, first={self.first_index}, last={self._last_index}, "
            f"durable={self._durable_index}, segments={len(self._segments)}, archived={len(self._archive)})"
        )


# ---------------------------------------------------------------------- snapshots


def write_snapshot_file(path: str | Path, index: int, payload: bytes) -> None:
    """Atomically write a snapshot to ``path``: temp file in the same directory, fsync, rename, fsync dir."""
    path = Path(path)
    header = _SNAP_HDR.pack(SNAPSHOT_MAGIC, index, zlib.crc32(payload), len(payload))
    write_atomic(path, [header, payload], mode=0o600, tmp_prefix=_SNAP_TMP_PREFIX, tmp_suffix=_SNAP_TMP_SUFFIX)


def read_snapshot_file(path: str | Path) -> tuple[int, bytes]:
    """Read and verify a snapshot file; raises SnapshotCorrupt on any mismatch."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < _SNAP_HDR.size:
        raise SnapshotCorrupt(f"snapshot {path}: truncated header ({len(data)} of {_SNAP_HDR.size} bytes)")
    magic, index, crc, length = _SNAP_HDR.unpack_from(data)
    if magic != SNAPSHOT_MAGIC:
        raise SnapshotCorrupt(f"snapshot {path}: bad magic {magic!r}")
    actual = len(data) - _SNAP_HDR.size
    if actual != length:
        raise SnapshotCorrupt(f"snapshot {path}: header says {length} payload bytes, file holds {actual}")
    payload = data[_SNAP_HDR.size :]
    if zlib.crc32(payload) != crc:
        raise SnapshotCorrupt(f"snapshot {path}: CRC mismatch")
    return index, payload


def _list_snapshots(snap_dir: Path) -> list[tuple[int, Path]]:
    out = []
    for entry in snap_dir.iterdir():
        m = _SNAP_RE.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry))
    out.sort()
    return out


def write_snapshot(directory: str | Path, index: int, payload: bytes) -> Path:
    """Write ``directory/snapshots/snap-<index>.snap`` atomically and keep only the newest three."""
    snap_dir = Path(directory) / "snapshots"
    snap_dir.mkdir(parents=True, exist_ok=True)
    path = snap_dir / _snapshot_name(index)
    with _SNAPSHOT_LOCK:
        # Temp files left by a crash mid-write are garbage.
        for entry in snap_dir.iterdir():
            if entry.name.startswith(_SNAP_TMP_PREFIX) and entry.name.endswith(_SNAP_TMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
        write_snapshot_file(path, index, payload)
        snaps = _list_snapshots(snap_dir)
        stale = [p for i, p in snaps[:-KEEP_SNAPSHOTS] if i != index]
        for p in stale:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        if stale:
            fsync_dir(snap_dir)
    return path


def load_latest_snapshot(directory: str | Path) -> tuple[int, bytes] | None:
    """The newest snapshot as (index, payload), or None if there is none.

    Raises SnapshotCorrupt if the newest one is damaged (no fallback to an older one).
    """
    snap_dir = Path(directory) / "snapshots"
    if not snap_dir.is_dir():
        return None
    snaps = _list_snapshots(snap_dir)
    if not snaps:
        return None
    name_index, path = snaps[-1]
    index, payload = read_snapshot_file(path)
    if index != name_index:
        raise SnapshotCorrupt(f"snapshot {path}: header index {index} does not match the file name")
    return index, payload
