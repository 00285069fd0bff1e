"""An srun step's streams and clients: each task's stdout/stderr relayed to srun (and to
sattach clients), srun's input to the tasks, the launch answer, exit and end frames.

Invariants:
- Frames are ``spurio.stepserver``'s; what a client sends is validated
  (``spurcore.agentmsg.CLIENT_FRAMES``) and a frame that does not fit is logged (once per
  client) and ignored.
- Output is line-buffered unless ``--unbuffered`` (slurmstepd sends whole lines; a partial
  line of ``LINE_FLUSH`` bytes is sent anyway); a task's output is sent before its exit.
- Flow control: task output stops being read while a client lags ``MAX_CLIENT_BUFFER``
  bytes, and input beyond ``MAX_STDIN_BUFFER`` per task is dropped for that task.
- A client that goes away never stops the tasks: their output is then discarded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spurcore import agentmsg, killplan
from spurcore.agentmsg import KillStep, PmiFenceDone, SignalTasks, StdinData, Winch
from spurcore.killplan import Cause
from spurcore.schema import BadRequest

if TYPE_CHECKING:
    from spurd.tasks import Task


@dataclass(eq=False)
class Stream:
    """A task's stdout (1) or stderr (2) read end, relayed to the clients."""

    fd: int
    task: int
    kind: int
    partial: bytearray = field(default_factory=bytearray)


@dataclass(eq=False)
class Client:
    """A connection from srun (``primary``: gets exits, fences and the launch answer) or
    from sattach. Frames are ``spurio.stepserver`` notifications."""

    sock: socket.socket
    primary: bool
    out: bytearray = field(default_factory=bytearray)
    reader: Any = None
    closing: bool = False
    refused: bool = False  # a malformed frame from it was logged


MAX_CLIENT_BUFFER = 4 << 20  # stop reading task output while a client lags this much
MAX_STDIN_BUFFER = 1 << 20  # per task: input beyond this is dropped for that task
LINE_FLUSH = 64 << 10  # a partial line this long is sent anyway


class Stdio:
    """Streams and clients (a part of :class:`spurd.supervisor.Supervisor`)."""

    def _add_client(self, sock: socket.socket, primary: bool) -> Client:
        from spurio.stepserver import FrameReader

        sock.setblocking(False)
        client = Client(sock, primary, reader=FrameReader())
        self.clients.append(client)
        self.sel.register(sock, selectors.EVENT_READ, self._on_client)
        return client

    def _answer_launch(self) -> None:
        from spurio.stepserver import response

        reply = {"node": self.spec.node_name, "nodeid": self.spec.nodeid, "tasks": list(self.spec.tasks),
                 "pids": [t.pid for t in self.tasks]}
        for c in self.clients:
            if c.primary:
                self._queue(c, response(self.spec.launch_msgid, None, reply))

    def _queue(self, client: Client, data: bytes) -> None:
        if client.closing:
            return
        was_empty = not client.out
        client.out += data
        if was_empty:
            self._try_send(client)
        if len(client.out) > MAX_CLIENT_BUFFER and not self.paused:
            self._pause_streams(True)

    def _send_all(self, msg: tuple[str, Any], primary_only: bool = False) -> None:
        if not self.clients:
            return
        from spurio.stepserver import notification

        data = notification(*msg)
        for c in list(self.clients):
            if c.primary or not primary_only:
                self._queue(c, data)

    def _try_send(self, client: Client) -> None:
        while client.out:
            try:
                n = client.sock.send(client.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop_client(client)
                return
            del client.out[:n]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(client.sock, events, self._on_client)
        if self.paused and all(len(c.out) < MAX_CLIENT_BUFFER // 4 for c in self.clients):
            self._pause_streams(False)

    def _flush_clients(self, timeout: float = 5.0) -> None:
        """Block (bounded) until every client has its queued frames (the end of a step)."""
        deadline = time.monotonic() + timeout
        for c in list(self.clients):
            with contextlib.suppress(OSError):
                c.sock.setblocking(True)
                while c.out and time.monotonic() < deadline:
                    c.sock.settimeout(max(0.01, deadline - time.monotonic()))
                    n = c.sock.send(c.out)
                    del c.out[:n]

    def _drop_client(self, client: Client) -> None:
        client.closing = True
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(client.sock)
        with contextlib.suppress(OSError):
            client.sock.close()
        if client in self.clients:
            self.clients.remove(client)
        if client.primary and not self.all_done:
            self.log("srun's connection closed: the tasks keep running, their output is discarded")
        if self.paused and all(len(c.out) < MAX_CLIENT_BUFFER // 4 for c in self.clients):
            self._pause_streams(False)

    def _pause_streams(self, pause: bool) -> None:
        self.paused = pause
        for fd in self.streams:
            with contextlib.suppress(KeyError, ValueError):
                if pause:
                    self.sel.unregister(fd)
                else:
                    self.sel.register(fd, selectors.EVENT_READ, self._on_stream)

    def _on_client(self, fileobj: object) -> None:
        sock = fileobj
        client = next((c for c in self.clients if c.sock is sock), None)
        if client is None:
            return
        if client.out:
            self._try_send(client)
            if client.closing:
                return
        try:
            data = client.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop_client(client)
            return
        try:
            messages = client.reader.feed(data)
        except ValueError as e:
            self.log(f"bad frame from a client: {e}")
            self._drop_client(client)
            return
        for msg in messages:
            self._client_message(client, msg)

    def _client_message(self, client: Client, msg: list[Any]) -> None:
        """A client's notification (``spurcore.agentmsg.CLIENT_FRAMES``), validated; one that
        does not fit is logged (once per client) and ignored: the step runs on."""
        if msg[0] != 2 or len(msg) != 3:
            return  # requests and responses are not ours to answer on a step connection
        try:
            frame = agentmsg.client_frame(msg[1], msg[2])
        except BadRequest as e:
            if not client.refused:
                client.refused = True
                self.log(f"ignoring a malformed frame from a client: {e}")
            return
        if isinstance(frame, StdinData):
            self._stdin(frame.task, frame.data)
        elif isinstance(frame, SignalTasks):
            if 0 < frame.signal < signal.NSIG and not self.all_done:
                self._apply(killplan.deliver(frame.signal, "full", killing=self.killing, suspended=self.suspended))
        elif isinstance(frame, KillStep):
            self._kill(Cause.SRUN, self.spec.kill_wait if frame.kill_wait is None else frame.kill_wait)
        elif isinstance(frame, PmiFenceDone):
            if self.pmi is not None:
                for rank, reply in self.pmi.fence_done(frame.kvs):
                    self._pmi_send(rank, reply)
        elif isinstance(frame, Winch):
            self._winch(frame)

    def _tasks_ended(self, ended: list[Task]) -> None:
        """slurmstepd's exit messages: the tasks that ended together, one message per status."""
        if self.pmi is not None and self.pmi.aborted is not None and self.pmi_abort is None:
            self.pmi_abort = self.pmi.aborted
        for stream in [s for s in self.streams.values() if s.task in {t.gid for t in ended}]:
            self._drain_available(stream)  # its output before its exit, as srun prints them
        by_status: dict[int, list[int]] = {}
        for t in ended:
            if t.status is not None:
                by_status.setdefault(t.status, []).append(t.gid)
            if t.stdin_fd >= 0:
                self._close_stdin(t)
        for status, gids in by_status.items():
            self._send_all(("exit", [gids, status]), primary_only=True)

    def _stdin(self, task_id: int, data: bytes) -> None:
        targets = [t for t in self.tasks if t.stdin_fd >= 0 and (task_id < 0 or t.gid == task_id)]
        for t in targets:
            if not data:
                t.stdin_eof = True
            elif len(t.stdin_buf) < MAX_STDIN_BUFFER:
                t.stdin_buf += data
            self._write_stdin(t)

    def _write_stdin(self, t: Task) -> None:
        while t.stdin_buf and t.stdin_fd >= 0:
            try:
                n = os.write(t.stdin_fd, t.stdin_buf)
            except BlockingIOError:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.register(t.stdin_fd, selectors.EVENT_WRITE, lambda _f, t=t: self._stdin_ready(t))
                return
            except OSError:  # EPIPE: the task closed its stdin
                self._close_stdin(t)
                return
            del t.stdin_buf[:n]
        if t.stdin_eof and t.stdin_fd >= 0 and not (self.spec.io is not None and self.spec.io.pty):
            self._close_stdin(t)

    def _stdin_ready(self, t: Task) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(t.stdin_fd)
        self._write_stdin(t)

    def _close_stdin(self, t: Task) -> None:
        if t.stdin_fd < 0:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(t.stdin_fd)
        with contextlib.suppress(OSError):
            os.close(t.stdin_fd)
        t.stdin_fd = -1
        t.stdin_buf.clear()

    def _winch(self, size: Winch) -> None:
        import struct
        import termios

        t = self.tasks[0]
        if t.stdin_fd >= 0:
            rows, cols = size.rows, size.cols
            with contextlib.suppress(OSError):
                fcntl.ioctl(t.stdin_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            with contextlib.suppress(OSError):
                os.killpg(t.pid, signal.SIGWINCH)

    def _on_stream(self, fileobj: object) -> None:
        assert isinstance(fileobj, int)
        stream = self.streams.get(fileobj)
        if stream is None:
            return
        try:
            data = os.read(stream.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: a pty whose slave side is closed
            data = b""
        self._stream_data(stream, data)

    def _stream_data(self, stream: Stream, data: bytes) -> None:
        """Line-buffered unless --unbuffered (slurmstepd sends whole lines); EOF flushes."""
        unbuffered = self.spec.io is not None and self.spec.io.unbuffered
        if not data:
            if stream.partial:
                self._send_all(("out", [stream.task, stream.kind, bytes(stream.partial)]))
                stream.partial.clear()
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(stream.fd)
            os.close(stream.fd)
            del self.streams[stream.fd]
            return
        if unbuffered:
            self._send_all(("out", [stream.task, stream.kind, data]))
            return
        stream.partial += data
        end = stream.partial.rfind(b"\n")
        if end >= 0:
            self._send_all(("out", [stream.task, stream.kind, bytes(stream.partial[:end + 1])]))
            del stream.partial[:end + 1]
        elif len(stream.partial) >= LINE_FLUSH:
            self._send_all(("out", [stream.task, stream.kind, bytes(stream.partial)]))
            stream.partial.clear()

    def _drain_available(self, stream: Stream) -> None:
        for _ in range(64):  # bounded: a grandchild may keep writing
            if stream.fd not in self.streams:
                return
            try:
                data = os.read(stream.fd, 65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            self._stream_data(stream, data)
            if not data:
                return

    def _drain_streams(self) -> None:
        """Every writer is gone: read what is left in the pipes, then EOF."""
        for stream in list(self.streams.values()):
            while stream.fd in self.streams:
                try:
                    data = os.read(stream.fd, 65536)
                except BlockingIOError:
                    data = b""
                except OSError:
                    data = b""
                self._stream_data(stream, data)
