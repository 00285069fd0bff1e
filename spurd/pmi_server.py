"""PMI for an srun step (``--mpi=pmi2``): each task's end of its ``PMI_FD`` socketpair, fed to
``spurcore.pmi.PmiNode`` (the wire protocol, sans I/O), which answers everything local;
a barrier's new key-value pairs go to srun (``pmi_fence``) and come back merged
(``pmi_fence_done``, ``spurd.stdio``); ``PMI_Abort`` is passed on (``pmi_abort``).
"""

from __future__ import annotations

import contextlib


class PmiServer:
    """The PMI server (a part of :class:`spurd.supervisor.Supervisor`)."""

    def _on_pmi(self, fileobj: object) -> None:
        sock = fileobj
        task = next((t for t in self.tasks if t.pmi_sock is sock), None)
        if task is None or self.pmi is None:
            return
        try:
            data = task.pmi_sock.recv(65536) if task.pmi_sock is not None else b""
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(sock)
            if task.pmi_sock is not None:
                task.pmi_sock.close()
            task.pmi_sock = None
            return
        replies, fence = self.pmi.feed(task.gid, data)
        for rank, reply in replies:
            self._pmi_send(rank, reply)
        if fence is not None:
            self._send_all(("pmi_fence", fence), primary_only=True)
        if self.pmi.aborted is not None and self.pmi_abort is None:
            self.pmi_abort = self.pmi.aborted
            rank, code, message = self.pmi_abort
            self.log(f"task {rank} called PMI abort ({code}): {message}")
            self._send_all(("pmi_abort", [rank, code, message]), primary_only=True)

    def _pmi_send(self, rank: int, data: bytes) -> None:
        task = next((t for t in self.tasks if t.gid == rank), None)
        if task is None or task.pmi_sock is None:
            return
        with contextlib.suppress(OSError):
            task.pmi_sock.setblocking(True)
            task.pmi_sock.settimeout(5.0)
            task.pmi_sock.sendall(data)
            task.pmi_sock.setblocking(False)
