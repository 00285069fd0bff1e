"""The agent's local socket for srun, sattach and sstat, and the step I/O wire.

Wire (docs/protocol.md, "srun ↔ agent ↔ step"): frames are ``spurcore.rpc``'s (4-byte
length + msgpack), except that notification params may be any value (lists keep the
output frames small). A client sends ONE request ``[0, msgid, method, params]``:

- ``launch_tasks``: the agent starts this node's part of a step under a new supervisor and
  hands it the connection itself. From then on the connection is between srun and that
  supervisor: the supervisor answers the request (``[1, msgid, None, {"node", "tasks",
  "pids"}]``) once the tasks are forked, then sends notifications ``[2, method, params]``:
  ``out`` ``[task, 1|2, bytes]``, ``exit`` ``[[task ids], raw wait status]``, ``pmi_fence``
  ``{key: value}``, ``pmi_abort`` ``[rank, code, message]`` and finally ``done``
  ``{"status", "oom", "node"}``; srun sends ``in`` ``[task or -1, bytes]`` (empty = EOF),
  ``signal`` ``N``, ``pmi_fence_done`` ``{key: value}`` and ``winch`` ``[rows, cols]``.
  The agent can restart at any time: it is no longer on this path.
- ``attach_step`` (sattach): the same hand-over to the running step's supervisor, which
  answers and then sends ``out`` and ``done`` (and takes ``in``).
- ``step_stat`` (sstat): answered by the agent with this node's current usage.

Invariants:
- The caller's identity is the peer uid of the socket (SO_PEERCRED), never a field of
  the request.
- The agent reads exactly the request frame and nothing after it: whatever srun sends
  next belongs to the supervisor.
- Blocking socket calls only (run them in a thread from asyncio); every call has a timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from dataclasses import dataclass
from typing import Any

from spurcore.rpc import (
    MAX_FRAME,
    NOTIFICATION,
    REQUEST,
    RESPONSE,
    BadMessage,
    decode_body,
    encode_frame,
    parse_message,
)

_HEADER = struct.Struct(">I")
_SUN_PATH_MAX = 107
MAX_REQUEST = 4 * 1024 * 1024  # a launch carries argv and env: generous, bounded
MAX_STEP_FRAME = 16 * 1024 * 1024


class StepProtocolError(Exception):
    """The client did not send a well-formed request; ``msgid`` when it was recoverable."""

    def __init__(self, code: str, message: str, msgid: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.msgid = msgid


@dataclass
class StepRequest:
    msgid: int
    method: str
    params: dict[str, Any]
    peer_pid: int | None = None
    peer_uid: int | None = None
    peer_gid: int | None = None


# --- frames -------------------------------------------------------------------------------


def notification(method: str, params: Any) -> bytes:
    return encode_frame([NOTIFICATION, method, params], MAX_STEP_FRAME)


def response(msgid: int, error: dict[str, str] | None, result: Any) -> bytes:
    return encode_frame([RESPONSE, msgid, error, result], MAX_STEP_FRAME)


def request(msgid: int, method: str, params: Any) -> bytes:
    return encode_frame([REQUEST, msgid, method, params], MAX_REQUEST)


class FrameReader:
    """Incremental frame decoder: ``feed(bytes)`` -> the complete messages so far."""

    def __init__(self, limit: int = MAX_STEP_FRAME) -> None:
        self.buf = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[list[Any]]:
        self.buf += data
        out: list[list[Any]] = []
        while len(self.buf) >= 4:
            (length,) = _HEADER.unpack_from(self.buf)
            if length > self.limit:
                raise ValueError(f"frame of {length} bytes exceeds {self.limit}")
            if len(self.buf) < 4 + length:
                break
            body = bytes(self.buf[4:4 + length])
            del self.buf[:4 + length]
            try:
                msg = decode_body(body)
            except BadMessage as e:
                raise ValueError(e.message) from None
            if not isinstance(msg, list) or not msg:
                raise ValueError("a frame must hold a non-empty array")
            out.append(msg)
        return out


# --- sockets ------------------------------------------------------------------------------


def peer_credentials(sock: socket.socket) -> tuple[int | None, int | None, int | None]:
    """(pid, uid, gid) of the peer of a connected Unix socket (None where unknown)."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None, None, None
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _bind_long(sock: socket.socket, path: str, op: str) -> None:
    """bind/connect to ``path`` even when it is longer than sun_path (via /proc/self/fd)."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        getattr(sock, op)(path)
        return
    directory, name = os.path.split(path)
    dfd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        getattr(sock, op)(f"/proc/self/fd/{dfd}/{name}")
    finally:
        os.close(dfd)


def listen(path: str, mode: int = 0o666, backlog: int = 128) -> socket.socket:
    """A non-blocking listening Unix socket at ``path`` (a stale socket file is replaced).

    Mode 0o666: every local user may connect; authorisation is the peer uid."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        _bind_long(sock, path, "bind")
        os.chmod(path, mode)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def connect(endpoint: str, timeout: float | None = 10.0) -> socket.socket:
    """A connection to an agent's endpoint (``unix:/path``). The transport is chosen here
    only: a TLS endpoint for remote hosts plugs in beside the Unix one."""
    kind, _, where = endpoint.partition(":")
    if kind != "unix" or not where:
        raise OSError(f"unsupported agent endpoint {endpoint or '(none)'}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        _bind_long(sock, where, "connect")
    except OSError:
        sock.close()
        raise
    return sock


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise StepProtocolError("bad_request", "connection closed inside a frame")
        buf += chunk
    return bytes(buf)


def recv_request(sock: socket.socket, timeout: float = 10.0) -> StepRequest:
    """Read the one request of a connection, and not a byte more."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    try:
        try:
            header = sock.recv(4, socket.MSG_PEEK)
        except TimeoutError:
            raise StepProtocolError("timeout", "no request within the timeout") from None
        if not header:
            raise StepProtocolError("bad_request", "connection closed before a request")
        (length,) = _HEADER.unpack(_recv_exactly(sock, 4))
        if length > MAX_REQUEST:
            raise StepProtocolError("frame_too_large", f"request of {length} bytes exceeds {MAX_REQUEST} bytes")
        body = _recv_exactly(sock, length)
        try:
            msg = parse_message(decode_body(body))
        except BadMessage as e:
            raise StepProtocolError("bad_request", e.message, e.msgid) from None
        if msg[0] != REQUEST:
            raise StepProtocolError("bad_request", "expected a request")
        _, msgid, method, params = msg
        pid, uid, gid = peer_credentials(sock)
        return StepRequest(msgid, method, params if isinstance(params, dict) else {}, pid, uid, gid)
    except TimeoutError:
        raise StepProtocolError("timeout", "the request was not complete within the timeout") from None
    except OSError as e:
        raise StepProtocolError("connection_failed", f"receive failed: {e}") from None


def send_reply(sock: socket.socket, msgid: int, error: dict[str, str] | None, result: Any,
               timeout: float = 10.0) -> bool:
    """Send ``[1, msgid, error, result]``; False if the client is gone."""
    try:
        sock.setblocking(True)
        sock.settimeout(timeout)
        sock.sendall(encode_frame([RESPONSE, msgid, error, result], MAX_FRAME))
        return True
    except OSError:
        return False


def call(endpoint: str, method: str, params: dict[str, Any], timeout: float = 30.0) -> Any:
    """One request and its answer on a fresh connection (sstat's ``step_stat``).

    Raises :class:`spurcore.rpc.RpcError` on an error reply, OSError if unreachable."""
    from spurcore.rpc import RpcError

    with contextlib.closing(connect(endpoint, timeout)) as sock:
        sock.sendall(request(1, method, params))
        reader = FrameReader()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the agent closed the connection without a reply")
            for msg in reader.feed(chunk):
                if msg[0] == RESPONSE:
                    _, _id, error, result = msg
                    if error is not None:
                        raise RpcError.from_wire(error)
                    return result
