"""The agent's durable spool: completion reports and action ACKs that must survive a crash.

Invariants:
- A report is on disk (tmp + fsync + rename + directory fsync) before it is sent, and it
  is deleted only after the controller has answered it (DESIGN.md 1.6: at-least-once
  delivery, exactly-once application by the controller).
- One file per report, named ``<seq>.<quoted report_id>.json``: ``seq`` grows with every
  put, so listing the directory gives the reports in the order they were written, also
  after a restart.
- ``put`` is idempotent by ``report_id``: a report already spooled is not written twice.
- A file whose name does not follow the pattern (a torn ``.tmp-*`` file of a crashed
  write) is never listed; torn files are removed when the spool is opened. A final file
  that does not parse (disk damage) is renamed ``*.bad`` and skipped, not re-sent forever.
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
import urllib.parse
from typing import Any

from spurio.fs import write_atomic

log = logging.getLogger("spurd.spool")

TMP_PREFIX = ".tmp-"
_REPORT_RE = re.compile(r"^(\d{12})\.([^/]+)\.json$")


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


class ReportSpool:
    """Completion reports waiting for the controller's answer, in write order."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        _remove_torn(self.directory)
        self._files: dict[str, str] = {}  # report_id -> file name
        self._unsynced: dict[str, str] = {}  # put(durable=False), not fsynced yet
        self._next_seq = 1
        for seq, report_id, name in self._scan():
            self._files[report_id] = name
            self._next_seq = max(self._next_seq, seq + 1)

    def _scan(self) -> list[tuple[int, str, str]]:
        out: list[tuple[int, str, str]] = []
        for name in os.listdir(self.directory):
            m = _REPORT_RE.match(name)
            if m is None:
                continue
            out.append((int(m.group(1)), urllib.parse.unquote(m.group(2)), name))
        out.sort()
        return out

    def __contains__(self, report_id: object) -> bool:
        return report_id in self._files

    def __len__(self) -> int:
        return len(self._files)

    def ids(self) -> list[str]:
        """The report ids still in the spool, oldest first."""
        return [rid for rid, _ in sorted(self._files.items(), key=lambda kv: kv[1])]

    def put(self, report: dict[str, Any], durable: bool = True) -> bool:
        """Spool ``report`` (a dict with a ``report_id``); False if it is already there.
        ``durable=False``: the file is in place (it survives the agent's crash) but not
        fsynced until ``unsynced``'s paths are and ``synced`` is told; the agent does that
        off its event loop, for every waiting report at once, before it sends any of them."""
        report_id = str(report["report_id"])
        if report_id in self._files:
            return False
        name = f"{self._next_seq:012d}.{urllib.parse.quote(report_id, safe='')}.json"
        self._next_seq += 1
        data = json.dumps(report, sort_keys=True).encode()
        if durable:
            write_durable(os.path.join(self.directory, name), data)
        else:
            write_replace(os.path.join(self.directory, name), data)
            self._unsynced[report_id] = name
        self._files[report_id] = name
        return True

    def is_synced(self, report_id: str) -> bool:
        return report_id not in self._unsynced

    def unsynced(self) -> tuple[list[str], list[str]]:
        """The reports not durable yet, and what to fsync (``spurio.fs.fsync_paths``: their
        files, then the spool directory) to make them so."""
        ids = list(self._unsynced)
        paths = [os.path.join(self.directory, self._unsynced[r]) for r in ids]
        return ids, [*paths, self.directory] if ids else []

    def synced(self, report_ids: list[str]) -> None:
        for report_id in report_ids:
            self._unsynced.pop(report_id, None)

    def list(self) -> list[dict[str, Any]]:
        """Every spooled report, oldest first (damaged files are set aside as ``*.bad``)."""
        out: list[dict[str, Any]] = []
        for report_id, name in sorted(self._files.items(), key=lambda kv: kv[1]):
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as f:
                    report = json.loads(f.read())
                if not isinstance(report, dict):
                    raise ValueError("not an object")
            except FileNotFoundError:
                self._files.pop(report_id, None)
                continue
            except (OSError, ValueError) as e:
                log.error("spool: damaged report file %s (%s): set aside", path, e)
                with contextlib.suppress(OSError):
                    os.rename(path, path + ".bad")
                self._files.pop(report_id, None)
                continue
            out.append(report)
        return out

    def get(self, report_id: str) -> dict[str, Any] | None:
        name = self._files.get(report_id)
        if name is None:
            return None
        try:
            with open(os.path.join(self.directory, name), "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return None

    def delete(self, report_id: str) -> bool:
        """Forget a report the controller has answered; False if it was not spooled."""
        name = self._files.pop(report_id, None)
        self._unsynced.pop(report_id, None)
        if name is None:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, name))
        # No fsync needed: a deletion lost in a crash only causes a duplicate report,
        # which the controller ignores.
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
