"""The agent's local socket for ``srun``: one ``run_step`` request per connection.

Wire (docs/protocol.md, "srun ↔ agent"): the client sends ONE message with
``socket.send_fds(sock, [frame], [stdin, stdout, stderr])`` where ``frame`` is the
length-prefixed msgpack request ``[0, msgid, "run_step", params]`` (params ``job_id``,
``step_id``, ``argv``, ``env``, ``cwd``, ``uid``, ``gid``).  The agent answers once, when
the step has ended, with ``[1, msgid, None, {"exit_code", "signal", "node"}]`` (or an
error ``[1, msgid, {"code", "message"}, None]``) and closes the connection.

Invariants:
- The caller's identity is the peer uid of the socket (SO_PEERCRED), never a field of
  the request.
- Received descriptors are close-on-exec in the agent and are closed by whoever received
  them once the step's supervisor holds its own copies; nothing here leaks them.
- Blocking socket calls only (run them in a thread from asyncio); every call has a timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spurcore.rpc import MAX_FRAME, REQUEST, RESPONSE, BadMessage, decode_body, encode_frame, parse_message

_HEADER = struct.Struct(">I")
_SUN_PATH_MAX = 107
MAX_REQUEST = 4 * 1024 * 1024  # a run_step request carries argv and env: generous, bounded


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
    fds: list[int] = field(default_factory=list)
    peer_pid: int | None = None
    peer_uid: int | None = None
    peer_gid: int | None = None

    def close_fds(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


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


def recv_request(sock: socket.socket, timeout: float = 10.0) -> StepRequest:
    """Read the one request of a connection together with its SCM_RIGHTS descriptors."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    fds: list[int] = []
    try:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 3, socket.MSG_CMSG_CLOEXEC)
        except TimeoutError:
            raise StepProtocolError("timeout", "no request within the timeout") from None
        if not data:
            raise StepProtocolError("bad_request", "connection closed before a request")
        buf = bytearray(data)
        while len(buf) < 4:
            chunk = sock.recv(4 - len(buf))
            if not chunk:
                raise StepProtocolError("bad_request", "connection closed inside a frame header")
            buf += chunk
        (length,) = _HEADER.unpack_from(buf)
        if length > MAX_REQUEST:
            raise StepProtocolError("frame_too_large", f"request of {length} bytes exceeds {MAX_REQUEST} bytes")
        while len(buf) < 4 + length:
            chunk = sock.recv(min(262144, 4 + length - len(buf)))
            if not chunk:
                raise StepProtocolError("bad_request", "connection closed inside a frame body")
            buf += chunk
        try:
            msg = parse_message(decode_body(bytes(buf[4:4 + length])))
        except BadMessage as e:
            raise StepProtocolError("bad_request", e.message, e.msgid) from None
        if msg[0] != REQUEST:
            raise StepProtocolError("bad_request", "expected a request")
        _, msgid, method, params = msg
        pid, uid, gid = peer_credentials(sock)
        request = StepRequest(msgid, method, params, list(fds), pid, uid, gid)
        fds = []
        return request
    except OSError as e:
        raise StepProtocolError("connection_failed", f"receive failed: {e}") from None
    finally:
        for fd in fds:  # only on failure: a returned request owns its descriptors
            with contextlib.suppress(OSError):
                os.close(fd)


def send_reply(sock: socket.socket, msgid: int, error: dict[str, str] | None, result: Any,
               timeout: float = 10.0) -> bool:
    """Send ``[1, msgid, error, result]``; False if the client is gone (srun may leave early)."""
    try:
        sock.setblocking(True)
        sock.settimeout(timeout)
        sock.sendall(encode_frame([RESPONSE, msgid, error, result], MAX_FRAME))
        return True
    except OSError:
        return False


def run_step_client(path: str, params: dict[str, Any], fds: Sequence[int] = (0, 1, 2),
                    timeout: float | None = None, msgid: int = 1) -> dict[str, Any]:
    """Client side (for tools and tests): send ``run_step`` with ``fds`` and wait for the reply.

    Raises :class:`spurcore.rpc.RpcError` on an error reply, ConnectionFailed if the
    agent closes the connection without answering."""
    from spurcore.rpc import ConnectionFailed, RpcError

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            _bind_long(sock, path, "connect")
            frame = encode_frame([REQUEST, msgid, "run_step", params])
            sent = socket.send_fds(sock, [frame], list(fds))
            if sent < len(frame):
                sock.sendall(frame[sent:])
        except OSError as e:
            raise ConnectionFailed(f"cannot reach the agent at {path}: {e}") from e
        buf = bytearray()
        while True:
            if len(buf) >= 4:
                (length,) = _HEADER.unpack_from(buf)
                if len(buf) >= 4 + length:
                    msg = parse_message(decode_body(bytes(buf[4:4 + length])))
                    if msg[0] != RESPONSE:
                        raise ConnectionFailed("unexpected message from the agent")
                    _, _rid, error, result = msg
                    if error is not None:
                        raise RpcError.from_wire(error)
                    return result
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionFailed("the agent closed the connection without a reply")
            buf += chunk
