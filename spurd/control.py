"""The supervisor's control socket (``ctl.sock`` in the rundir): the agent's requests.

One JSON object per line with ``op``, one JSON line back (docs/protocol.md, "Agent ↔
supervisor"). Each request is validated (``spurcore.agentmsg.CONTROL_OPS``) before its
handler runs; one that does not fit is answered ``{"ok": false, "errno": EINVAL, "error":
...}`` naming the field, and descriptors that came with anything but ``attach`` are
closed. The socket is bound relative to the rundir (sun_path is short) with mode 0600.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import signal
import socket
from collections.abc import Callable
from typing import Any

from spurcore import agentmsg, killplan
from spurcore.agentmsg import CtlAttach, CtlKill, CtlResume, CtlSignal, CtlStat, CtlStatus, CtlSuspend
from spurcore.killplan import Cause
from spurcore.schema import BadRequest
from spurd import procs


class ControlSocket:
    """The control socket (a part of :class:`spurd.supervisor.Supervisor`)."""

    def _listen(self) -> socket.socket:
        # Bound relative to the cwd (the rundir): sun_path is only 108 bytes long.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(procs.CTL_SOCK)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            sock.bind(procs.CTL_SOCK)
        finally:
            os.umask(old)
        sock.listen(16)
        sock.setblocking(False)
        return sock

    def _on_accept(self, fileobj: object) -> None:
        assert self.lsock is not None
        try:
            conn, _ = self.lsock.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.settimeout(2.0)  # for sendall; recv only runs when readable
        self.conns[conn] = bytearray()
        self.sel.register(conn, selectors.EVENT_READ, self._on_conn)

    def _close(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn)
        self.conns.pop(conn, None)
        conn.close()

    def _on_conn(self, fileobj: object) -> None:
        conn = fileobj
        assert isinstance(conn, socket.socket)
        fds: list[int] = []
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 1)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            for fd in fds:
                os.close(fd)
            self._close(conn)
            return
        buf = self.conns[conn]
        buf += data
        if len(buf) > 1 << 20:
            self._close(conn)
            return
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            reply = self._dispatch(line, fds)
            fds = []
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                self._close(conn)
                return
        for fd in fds:
            os.close(fd)

    def _dispatch(self, line: bytes, fds: list[int] | None = None) -> dict[str, Any]:
        """One control request (``spurcore.agentmsg.CONTROL_OPS``), validated before its
        handler runs; a bad one is answered EINVAL naming the field. Descriptors that came
        with it are closed unless ``attach`` took them."""
        fds = list(fds or [])
        try:
            try:
                op = agentmsg.control_op(json.loads(line))
            except BadRequest as e:
                return {"ok": False, "errno": errno.EINVAL, "error": f"bad request: {e}"}
            except ValueError as e:
                return {"ok": False, "errno": errno.EINVAL, "error": f"bad request: expected a JSON object ({e})"}
            if isinstance(op, CtlAttach):
                taken, fds = fds, []
                return self._op_attach(op, taken)
            handler: Callable[[Any], dict[str, Any]] = {
                CtlSignal: self._op_signal,
                CtlKill: self._op_kill,
                CtlSuspend: self._op_suspend,
                CtlResume: self._op_resume,
                CtlStatus: self._op_status,
                CtlStat: self._op_stat,
            }[type(op)]
            try:
                return handler(op)
            except Exception as e:  # the supervisor must outlive anything a handler meets
                self.log(f"control op {op.OP} failed: {e!r}")
                return {"ok": False, "errno": getattr(e, "errno", None) or errno.EIO, "error": str(e)}
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _op_attach(self, msg: CtlAttach, fds: list[int]) -> dict[str, Any]:
        """sattach: the agent hands over the client's connection (SCM_RIGHTS)."""
        if len(fds) != 1 or not self.relay:
            for fd in fds:
                os.close(fd)
            return {"ok": False, "errno": errno.EINVAL}
        from spurio.stepserver import response

        client = self._add_client(socket.socket(fileno=fds[0]), primary=False)
        self._queue(client, response(msg.msgid, None, {
            "node": self.spec.node_name, "nodeid": self.spec.nodeid, "tasks": list(self.spec.tasks)}))
        return {"ok": True}

    def _op_signal(self, msg: CtlSignal) -> dict[str, Any]:
        sig, target = msg.sig, msg.target
        if sig >= signal.NSIG:
            return {"ok": False, "errno": errno.EINVAL}
        if self.all_done:
            return {"ok": False, "errno": errno.ESRCH}
        # "steps" is fanned out by the agent to each step's supervisor: here it is "full".
        try:
            sent = self._apply(killplan.deliver(sig, target, killing=self.killing, suspended=self.suspended))
        except OSError as e:
            return {"ok": False, "errno": e.errno}
        return {"ok": True} if sent else {"ok": False, "errno": errno.ESRCH}

    def _op_kill(self, msg: CtlKill) -> dict[str, Any]:
        self._kill(Cause.of(msg.why), self.spec.kill_wait if msg.kill_wait is None else msg.kill_wait,
                   msg.notice or "")
        return {"ok": True}

    def _op_suspend(self, msg: CtlSuspend) -> dict[str, Any]:
        if self.all_done:
            return {"ok": False, "errno": errno.ESRCH}
        if self.killing:
            return {"ok": False, "errno": errno.EBUSY}
        self._apply(killplan.suspend(grace=self.spec.suspend_grace, suspended=self.suspended, killing=False))
        return {"ok": True}

    def _op_resume(self, msg: CtlResume) -> dict[str, Any]:
        if self.all_done:
            return {"ok": False, "errno": errno.ESRCH}
        self._apply(killplan.resume(killing=self.killing))
        return {"ok": True}

    def _op_status(self, msg: CtlStatus) -> dict[str, Any]:
        return {
            "ok": True,
            "running": not self.all_done,
            "main_pid": self.main_pid,
            "task_pids": {str(t.gid): t.pid for t in self.tasks if t.status is None},
            "pids": sorted(self._job_pids()),
            "suspended": self.suspended,
            "killing": self.killing,
            "cgroup": self.cgroup.describe() if self.cgroup is not None else None,
        }

    def _op_stat(self, msg: CtlStat) -> dict[str, Any]:
        """sstat: a fresh sample of this node's tasks (slurmstepd polls on request too)."""
        return {"ok": True, "node": self.spec.node_name, "usage": self._usage(),
                "pids": sorted(self._job_pids())}
