"""The agent's step endpoints for srun, sattach and sstat, and the step I/O wire.

Transports (docs/architecture.md, section 13): every agent listens on a Unix socket, and,
when configured, on a TLS address served by per-connection relays (``spurd.steprelay``).
A node's ``address`` lists its endpoints (:func:`endpoints`); :func:`connect` is the one
place a client picks one: the Unix socket when it exists on this host, else TLS with the
user's certificate (``SPUR_CERT``/``SPUR_KEY``, as for the controllers).

Wire (docs/protocol.md, "srun ↔ agent ↔ step"): frames are ``spurio.rpc``'s (4-byte
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
  the request, except for the ``TLS_PEER`` field that the agent's own TLS relay adds: it
  is believed only from a peer running as root or as the agent itself (:func:`step_access`).
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
import sys
from dataclasses import dataclass
from typing import Any

from spurcore import frames
from spurcore.frames import (
    MAX_FRAME,
    NOTIFICATION,
    REQUEST,
    RESPONSE,
    BadMessage,
    decode_body,
    encode_frame,
    parse_message,
)

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
    """Incremental step-connection decoder: ``feed(bytes)`` -> the complete messages so far
    (the frames themselves are ``spurcore.frames``; a step message is a non-empty array)."""

    def __init__(self, limit: int = MAX_STEP_FRAME) -> None:
        self._frames = frames.FrameReader(limit)

    def feed(self, data: bytes) -> list[list[Any]]:
        out: list[list[Any]] = []
        try:
            bodies = self._frames.feed(data)
        except frames.FrameTooLarge as e:
            raise ValueError(e.message) from None
        for body in bodies:
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


#: The request field in which the agent's TLS relay passes on its client's certificate
#: identity, ``{"user": CN, "role": OU}``.
TLS_PEER = "tls_peer"

#: Roles a TLS certificate may carry (its OU); anything else counts as ``viewer``, as on
#: the controllers.
TLS_ROLES = ("admin", "operator", "user", "viewer", "node")

#: ``(ca, cert, key)``: what a client needs to reach an agent over TLS.
TlsFiles = tuple[str, str | None, str | None]


class AgentTlsError(OSError):
    """The TLS endpoint cannot be tried from here (no CA configured, no certificate)."""


def endpoints(address: str) -> list[str]:
    """The endpoints in a node's ``address``: ``tcp:HOST:PORT`` (TLS) and ``unix:PATH``
    (``spurcore.endpoints.split``: the one rule)."""
    from spurcore.endpoints import split

    return split(address)


def agent_address(socket_path: str, tls_endpoint: str = "") -> str:
    """What an agent registers as its ``address`` (:func:`endpoints` reads it back)."""
    unix = f"unix:{socket_path}"
    return f"tcp:{tls_endpoint} {unix}" if tls_endpoint else unix


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def connect(address: str, timeout: float | None = 10.0, *, tls: TlsFiles | None = None) -> socket.socket:
    """A connection to a node's agent, through the endpoint that suits this host: its Unix
    socket when the path exists here (the same host), else its TLS endpoint, with ``tls``
    (default: the configuration's CA and ``SPUR_CERT``/``SPUR_KEY``). A Unix socket that
    exists but refuses (a stale file, another host's socket on a shared file system)
    falls back to TLS. Raises OSError; ENOENT/ECONNREFUSED mean "may come back" (an agent
    restarting), anything else is final."""
    eps = endpoints(address)
    unix = next((e[5:] for e in eps if e.startswith("unix:") and e[5:]), "")
    tcp = next((e[4:] for e in eps if e.startswith("tcp:") and e[4:]), "")
    if not unix and not tcp:
        raise OSError(f"unsupported agent endpoint {address or '(none)'}")
    unix_error: OSError | None = None
    if unix and (not tcp or os.path.exists(unix)):
        try:
            return _connect_unix(unix, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if not tcp:
                raise
            unix_error = exc
    try:
        files = _tls_files_for(tcp, tls)
    except AgentTlsError as exc:
        if not unix:
            raise
        # Only the Unix socket can work from here: keep its error, which a caller retries
        # (an agent restarting unlinks its socket), and say why TLS was not tried.
        import errno

        code = unix_error.errno if unix_error is not None and unix_error.errno else errno.ENOENT
        kind = FileNotFoundError if code == errno.ENOENT else ConnectionRefusedError
        raise kind(code, f"{os.strerror(code)} (and {exc})") from None
    return _connect_tls(tcp, timeout, files)


def _connect_unix(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        _bind_long(sock, path, "connect")
    except OSError:
        sock.close()
        raise
    return sock


def client_tls_files() -> TlsFiles:
    """The CA of the configuration (``SPUR_CONF``, ./spur.toml, /etc/spur) and the user's
    ``SPUR_CERT``/``SPUR_KEY``, as the other tools use them."""
    from spurio import config as spurconfig

    path = spurconfig.find_config_path()
    ca = spurconfig.load(path).tls_ca if path else ""
    return ca, os.environ.get("SPUR_CERT") or None, os.environ.get("SPUR_KEY") or None


def _tls_files_for(where: str, tls: TlsFiles | None) -> TlsFiles:
    ca, cert, key = tls if tls is not None else client_tls_files()
    if not ca:
        raise AgentTlsError(f"the agent's TLS endpoint {where} needs a CA: no [tls] ca in the configuration")
    if not cert:
        raise AgentTlsError(f"the agent's TLS endpoint {where} needs a certificate: set SPUR_CERT and SPUR_KEY")
    return ca, cert, key


def _connect_tls(where: str, timeout: float | None, tls: TlsFiles) -> socket.socket:
    from spurio.rpc import client_ssl_context

    ca, cert, key = tls
    try:
        host, port = split_host_port(where)
    except ValueError as exc:
        raise OSError(f"bad agent endpoint tcp:{where}: {exc}") from None
    ctx = client_ssl_context(cert, key, ca)
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ctx.wrap_socket(sock, server_hostname=host)  # the handshake, within ``timeout``
    except OSError:
        sock.close()
        raise


def step_access(peer_uid: int | None, tls_peer: Any, *, job_uid: int, own_uid: int, node: str,
                uid_of: Any) -> bool:
    """Whether a step request may touch a job's step (launch, attach, stat), as the agent
    decides it. On the Unix socket: root, the job's owner or the agent's own uid. Through
    the agent's TLS relay (a ``TLS_PEER`` identity from a root or agent-uid peer), as the
    controllers decide for TLS: OU ``admin``/``operator``, the job's owner (CN resolved by
    ``uid_of``, None when unknown; OU ``user``), or the agent's own certificate (OU
    ``node``, CN this node); viewers and other nodes are refused."""
    if isinstance(tls_peer, dict) and peer_uid in (0, own_uid):
        user, role = str(tls_peer.get("user") or ""), str(tls_peer.get("role") or "")
        if role not in TLS_ROLES:
            role = "viewer"
        if role in ("admin", "operator"):
            return True
        if role == "node":
            return user == node
        if role != "user" or not user:
            return False
        uid = uid_of(user)
        return uid is not None and uid == job_uid
    return peer_uid is not None and peer_uid in (0, job_uid, own_uid)


# --- non-blocking I/O on a plain or a TLS connection -------------------------------------


def _would_block(exc: OSError) -> bool:
    if isinstance(exc, (BlockingIOError, InterruptedError)):
        return True
    ssl = sys.modules.get("ssl")  # loaded whenever a TLS connection exists
    return ssl is not None and isinstance(exc, (ssl.SSLWantReadError, ssl.SSLWantWriteError))


def recv_some(sock: socket.socket, limit: int = 262144) -> bytes | None:
    """What a readable connection holds now: b"" at EOF, None when nothing is complete
    yet (a non-blocking socket; for TLS, part of a record). On TLS it also takes what is
    already decrypted, which select() cannot see."""
    try:
        data = sock.recv(limit)
    except OSError as exc:
        if _would_block(exc):
            return None
        raise
    pending = getattr(sock, "pending", None)
    while data and pending is not None and (left := min(pending(), limit - len(data))) > 0:
        data += sock.recv(left)  # already decrypted: never blocks
    return data


def send_some(sock: socket.socket, data: bytes | bytearray | memoryview) -> int:
    """Send what the connection takes now (0 when it would block). For TLS, a retry after
    0 must offer at least the same bytes again, as OpenSSL wants: callers resend from
    their queue's head."""
    try:
        return sock.send(data)
    except OSError as exc:
        if _would_block(exc):
            return 0
        raise


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
        try:
            length = frames.frame_length(_recv_exactly(sock, 4), MAX_REQUEST)
        except frames.FrameTooLarge as e:
            raise StepProtocolError("frame_too_large", e.message) from None
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

    Raises :class:`spurio.rpc.RpcError` on an error reply, OSError if unreachable."""
    from spurio.rpc import RpcError

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
