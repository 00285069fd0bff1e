"""Durable files: the one atomic write every Spur process uses.

``write_atomic(path, data)`` writes a temporary file beside ``path``, fsyncs it, renames
it over ``path`` and fsyncs the directory: after it returns, ``path`` holds ``data`` whole
across a crash or power loss, and never a half-written mix. ``durable=False`` skips both
fsyncs (for files whose meaning does not survive a reboot, such as a fencing lease).

Used by the controller (snapshots), the agent (job records, the report spool, ACKs) and
the supervisors (statuses). A crash between the write and the rename leaves a temporary
file ``<tmp_prefix><name>.<pid><tmp_suffix>``; readers skip such names (the spool's and
the snapshot directory's recovery remove them).
"""

from __future__ import annotations

import os

__all__ = ["fsync_dir", "fsync_paths", "write_atomic"]


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a directory's entries (a rename, a new or removed file) durable."""
    fd = os.open(os.fspath(directory) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_paths(paths: list[str]) -> None:
    """Make files and directories written with ``durable=False`` durable now (one fsync
    each, in order: a file before the directory that names it). A path listed twice (a job
    directory named by its parent and holding the run directory) is synced once, at its
    last place: every change is made before the call, so the last fsync covers them all."""
    last = {path: i for i, path in enumerate(paths)}
    for i, path in enumerate(paths):
        if last[path] != i:
            continue
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes | list[bytes], *, durable: bool = True,
                 mode: int = 0o644, tmp_prefix: str = "", tmp_suffix: str = ".tmp") -> None:
    """Replace ``path`` with ``data`` (bytes, or pieces written in order) atomically. The
    temporary file is ``<tmp_prefix><name>.<pid><tmp_suffix>`` in the same directory."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f"{tmp_prefix}{name}.{os.getpid()}{tmp_suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        for piece in data if isinstance(data, list) else (data,):
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(directory)
