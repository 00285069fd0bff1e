"""The agent's durable spool: completion reports and action ACKs that must survive a crash.

Invariants:
- Reports live in one append-only file, ``reports/spool.log``: one line per change,
  ``<crc32 of the rest, 8 hex> {"put": report}`` or ``... {"del": report_id}``. A report is
  in the file before it is sent and durable (``fdatasync``) before it is sent (the sender
  syncs every waiting report at once, off its event loop: ``unsynced``/``synced``); it is
  deleted only after the controller has answered it (DESIGN.md 1.6: at-least-once
  delivery, exactly-once application by the controller). A deletion is not synced: lost
  in a power cut, it only costs a duplicate report, which the controller ignores.
- The file's order is the order reports were spooled, so they are sent in that order,
  also after a restart. ``put`` is idempotent by ``report_id``: a report already spooled
  is not written twice.
- Reading tolerates damage: a line whose checksum or JSON does not hold (a torn last line
  after a power cut, disk damage) is skipped, and logged unless it is the torn tail, never
  re-sent forever. The file is rewritten (tmp + fsync + rename + fsync dir) with only the
  reports still waiting when it is opened and whenever it outgrows ``COMPACT_BYTES``; an
  empty spool simply truncates it.
- A spool written by an earlier version (one ``<seq>.<quoted id>.json`` file per report)
  is taken over in its order when opened, then those files are removed.
- Action ACKs live in ``actions/<action_id>.json``, written durably once the action is
  done; a repeated action id is answered from that file (DESIGN.md 1.5).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import zlib
from typing import Any

from spurio.fs import write_atomic

log = logging.getLogger("spurd.spool")

TMP_PREFIX = ".tmp-"
LOG_NAME = "spool.log"
COMPACT_BYTES = 1 << 20  # rewrite the log with the waiting reports once it is this large
_LEGACY_RE = re.compile(r"^(\d{12})\.([^/]+)\.json$")


def write_durable(path: str, data: bytes, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``data`` (spurio.fs: tmp file, fsync, rename, fsync dir)."""
    write_atomic(path, data, mode=mode, tmp_prefix=TMP_PREFIX, tmp_suffix="")


def write_replace(path: str, data: bytes, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``data``, without the fsyncs: the agent's own
    records whose loss in a power cut costs nothing (the job's processes die with the host)
    or which it makes durable later, off its event loop (``spurio.fs.fsync_paths``)."""
    write_atomic(path, data, mode=mode, tmp_prefix=TMP_PREFIX, tmp_suffix="", durable=False)


def _remove_torn(directory: str) -> None:
    for name in os.listdir(directory):
        if name.startswith(TMP_PREFIX):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))


def _line(change: dict[str, Any]) -> bytes:
    body = json.dumps(change, sort_keys=True, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _parse(line: bytes) -> dict[str, Any] | None:
    """One change of the log, or None if the line is damaged."""
    crc, sep, body = line.partition(b" ")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        change = json.loads(body)
    except ValueError:
        return None
    if not isinstance(change, dict):
        return None
    put, rid = change.get("put"), change.get("del")
    if (isinstance(put, dict) and "report_id" in put) or isinstance(rid, str):
        return change
    return None


def read_reports(path: str) -> dict[str, dict[str, Any]]:
    """The reports waiting in the log at ``path`` (report id -> report, in spool order),
    skipping damaged lines. Read-only: tests and tools look into a live agent's spool."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    reports: dict[str, dict[str, Any]] = {}
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line:
            continue
        change = _parse(line)
        if change is None:
            if i < len(lines) - 1:  # the last piece without its newline is a torn write
                log.error("spool: damaged record %d in %s: skipped", i + 1, path)
            continue
        if "put" in change:
            reports.setdefault(str(change["put"]["report_id"]), change["put"])
        else:
            reports.pop(change["del"], None)
    return reports


class ReportSpool:
    """Completion reports waiting for the controller's answer, in spool order."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, LOG_NAME)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        _remove_torn(self.directory)
        self._reports = read_reports(self.path)
        legacy = self._legacy()
        for report_id, report in legacy:
            self._reports.setdefault(report_id, report)
        self._unsynced: set[str] = set()  # put(durable=False), not synced yet
        self._fd = -1
        self._rewrite()
        for name in (n for n in os.listdir(self.directory) if _LEGACY_RE.match(n)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.directory, name))

    def _legacy(self) -> list[tuple[str, dict[str, Any]]]:
        """Reports of the one-file-per-report layout, oldest first (damaged ones skipped)."""
        found = []
        for name in os.listdir(self.directory):
            m = _LEGACY_RE.match(name)
            if m is None:
                continue
            try:
                with open(os.path.join(self.directory, name), "rb") as f:
                    report = json.loads(f.read())
                if not isinstance(report, dict) or "report_id" not in report:
                    raise ValueError("not a report")
            except (OSError, ValueError) as e:
                log.error("spool: damaged report file %s (%s): skipped", name, e)
                continue
            found.append((int(m.group(1)), str(report["report_id"]), report))
        return [(rid, report) for _, rid, report in sorted(found, key=lambda t: t[0])]

    def _rewrite(self) -> None:
        """Replace the log by the waiting reports alone, durably, and append from there."""
        write_durable(self.path, b"".join(_line({"put": r}) for r in self._reports.values()))
        self._reopen()
        self._unsynced.clear()

    def _reopen(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def _append(self, change: dict[str, Any]) -> None:
        data = _line(change)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __contains__(self, report_id: object) -> bool:
        return report_id in self._reports

    def __len__(self) -> int:
        return len(self._reports)

    def ids(self) -> list[str]:
        """The report ids still in the spool, oldest first."""
        return list(self._reports)

    def put(self, report: dict[str, Any], durable: bool = True) -> bool:
        """Spool ``report`` (a dict with a ``report_id``); False if it is already there.
        ``durable=False``: it is in the file (an agent crash keeps it) but not synced until
        ``unsynced``'s descriptor is and ``synced`` is told; the agent does that off its
        event loop, for every waiting report at once, before it sends any of them."""
        report_id = str(report["report_id"])
        if report_id in self._reports:
            return False
        self._append({"put": report})
        self._reports[report_id] = report
        if durable:
            os.fdatasync(self._fd)
        else:
            self._unsynced.add(report_id)
        return True

    def is_synced(self, report_id: str) -> bool:
        return report_id not in self._unsynced

    def unsynced(self) -> tuple[list[str], int | None]:
        """The reports not durable yet, and a descriptor of the log (the caller
        ``fdatasync``s and closes it) that makes them so; ``([], None)`` if there are none."""
        ids = [rid for rid in self._reports if rid in self._unsynced]
        return (ids, os.dup(self._fd)) if ids else ([], None)

    def synced(self, report_ids: list[str]) -> None:
        self._unsynced.difference_update(report_ids)

    def list(self) -> list[dict[str, Any]]:
        """Every spooled report, oldest first."""
        return list(self._reports.values())

    def get(self, report_id: str) -> dict[str, Any] | None:
        return self._reports.get(report_id)

    def delete(self, report_id: str) -> bool:
        """Forget a report the controller has answered; False if it was not spooled."""
        if self._reports.pop(report_id, None) is None:
            return False
        self._unsynced.discard(report_id)
        if not self._reports:
            os.ftruncate(self._fd, 0)  # nothing waits: whatever a crash keeps is consistent
        else:
            self._append({"del": report_id})
            if not self._unsynced and os.fstat(self._fd).st_size > COMPACT_BYTES:
                self._rewrite()
        return True


class ActionStore:
    """The ACK of every action already carried out, by action id."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        _remove_torn(self.directory)

    def _path(self, action_id: int) -> str:
        return os.path.join(self.directory, f"{int(action_id)}.json")

    def get(self, action_id: int) -> dict[str, Any] | None:
        try:
            with open(self._path(action_id), "rb") as f:
                ack = json.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.error("spool: damaged ACK file for action %s (%s): ignored", action_id, e)
            return None
        return ack if isinstance(ack, dict) else None

    def put(self, action_id: int, ack: dict[str, Any]) -> None:
        write_durable(self._path(action_id), json.dumps(ack, sort_keys=True).encode())

    def prune(self, max_age: float, now: float | None = None) -> int:
        """Drop ACKs older than ``max_age`` seconds (the controller re-sends an action only
        until its ACK is committed, so old ones are never asked for again)."""
        now = time.time() if now is None else now
        removed = 0
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            try:
                if now - os.stat(path).st_mtime > max_age:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
