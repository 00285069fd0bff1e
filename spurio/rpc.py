"""The RPC transport: Spur's processes talk over it (the I/O edge; frames, errors and the
message codec are the pure ``spurcore.frames``).

Wire format (msgpack-RPC style), identical on Unix sockets and TLS/TCP:

* frame = 4-byte big-endian body length + msgpack body (at most ``max_frame`` bytes,
  :data:`MAX_FRAME` by default, configurable per connection);
* request ``[0, msgid, method, params]``, response ``[1, msgid, error, result]`` where
  ``error`` is ``None`` or ``{"code": str, "message": str}``, notification
  ``[2, method, params]`` (either direction).  ``params`` is always a map.

Message ids start at 1.  Id 0 is reserved for connection-level errors: a receiver that
cannot recover the msgid of a bad frame (oversized, not msgpack, not a request) answers
``[1, 0, {"code": ..., "message": ...}, None]`` and closes the connection.  A malformed
request whose msgid is recoverable gets a ``bad_request`` reply and the connection
survives.

Two sides:

* :class:`SyncClient`: blocking, for the short-lived command-line tools.  Importing this
  module does not import :mod:`asyncio`, :mod:`ssl` or ``cryptography``.
* :class:`RpcConnection` and ``serve_*`` / ``connect_*``: asyncio, for the controller
  and the agents.  Imports of asyncio/ssl happen inside the functions that need them.
"""

from __future__ import annotations

import _socket
import os
import time
from _collections import deque  # not collections: its namedtuple machinery costs start-up time
from _struct import calcsize, unpack  # not struct: struct.py costs a command 0.1-0.2 ms

from spurcore.frames import (  # noqa: F401 - the frame layer, re-exported for the transports' users
    _HEADER,
    MAX_FRAME,
    MAX_REPLY_FRAME,
    NOTIFICATION,
    REQUEST,
    RESPONSE,
    BadMessage,
    ConnectionFailed,
    FrameReader,
    FrameTooLarge,
    RpcError,
    RpcTimeout,
    decode_body,
    encode_frame,
    frame_length,
    parse_message,
)

# Command-line tools import this module on every run: ``typing``, ``socket`` (its enums),
# ``collections`` and msgpack (which imports datetime) cost more than the rest of a short
# command, so they are imported only for type checking, inside the asyncio side that needs
# them, or when a message needs them (``spurcore.wirecodec``).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import logging
    import socket
    import ssl
    from collections.abc import Awaitable, Callable, Mapping
    from typing import Any

    Handler = Callable[["RpcConnection", str, dict[str, Any]], Awaitable[Any]]
    NotificationCallback = Callable[["RpcConnection", str, dict[str, Any]], Any]
    ConnectCallback = Callable[["RpcConnection"], Any]

__all__ = [
    "MAX_FRAME",
    "REQUEST",
    "RESPONSE",
    "NOTIFICATION",
    "RpcError",
    "ConnectionFailed",
    "RpcTimeout",
    "FrameTooLarge",
    "BadMessage",
    "encode_frame",
    "decode_body",
    "parse_message",
    "read_frame",
    "SyncClient",
    "RpcConnection",
    "Dispatcher",
    "serve_unix",
    "serve_tcp",
    "connect_unix",
    "connect_tcp",
    "server_ssl_context",
    "client_ssl_context",
    "peer_identity_from_cert",
    "generate_test_pki",
]



def _log() -> logging.Logger:
    import logging

    return logging.getLogger("spur.rpc")


def _error_message(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- sync client


class SyncClient:
    """Blocking RPC client for command-line tools (not thread-safe).

    ``timeout`` is the default for connecting and for each :meth:`call`.  Notifications that
    arrive while waiting for a reply are queued for :meth:`next_notification`.
    """

    def __init__(self, sock: socket.socket, timeout: float | None = 30.0, max_frame: int = MAX_FRAME) -> None:
        self._sock: socket.socket | None = sock
        self.timeout = timeout
        self.max_frame = max_frame  # requests this client sends
        self.max_reply_frame = max(max_frame, MAX_REPLY_FRAME)  # replies it accepts
        self._frames = FrameReader(self.max_reply_frame)
        self._bodies: deque[bytes] = deque()
        self._next_id = 1
        self._notifications: deque[tuple[str, dict[str, Any]]] = deque()

    @classmethod
    def unix(cls, path: str | os.PathLike[str], timeout: float | None = 30.0, *,
             max_frame: int = MAX_FRAME) -> SyncClient:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
        except OSError as e:
            sock.close()
            raise ConnectionFailed(f"cannot connect to {os.fspath(path)}: {_error_message(e)}") from e
        return cls(sock, timeout, max_frame)

    @classmethod
    def tcp(cls, host: str, port: int, timeout: float | None = 30.0, ssl_context: ssl.SSLContext | None = None,
            *, server_hostname: str | None = None, max_frame: int = MAX_FRAME) -> SyncClient:
        try:
            import socket

            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ConnectionFailed(f"cannot connect to {host}:{port}: {_error_message(e)}") from e
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
        except OSError as e:  # ssl.SSLError is an OSError
            sock.close()
            raise ConnectionFailed(f"TLS handshake with {host}:{port} failed: {_error_message(e)}") from e
        return cls(sock, timeout, max_frame)

    # -- public API

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Send a request and wait for its reply (``timeout`` None: the client's default)."""
        msgid = self._next_id
        self._next_id += 1
        frame = encode_frame([REQUEST, msgid, method, params if params is not None else {}], self.max_frame)
        deadline = self._deadline(self.timeout if timeout is None else timeout)
        self._send(frame, deadline)
        while True:
            msg = self._recv_message(deadline)
            if msg[0] == RESPONSE:
                _, rid, error, result = msg
                if rid == msgid:
                    if error is not None:
                        raise RpcError.from_wire(error)
                    return result
                if rid == 0 and error is not None:  # connection-level error; the peer closes
                    self.close()
                    raise RpcError.from_wire(error)
                # a late reply to an earlier call that timed out: drop it
            else:
                self._dispatch_other(msg)

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        frame = encode_frame([NOTIFICATION, method, params if params is not None else {}], self.max_frame)
        self._send(frame, self._deadline(self.timeout))

    def next_notification(self, timeout: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """Return the next ``(method, params)`` notification, or None after ``timeout`` seconds.

        ``timeout`` None waits indefinitely.
        """
        if self._notifications:
            return self._notifications.popleft()
        deadline = self._deadline(timeout)
        while True:
            try:
                msg = self._recv_message(deadline)
            except RpcTimeout:
                return None
            if msg[0] == RESPONSE:
                _, rid, error, _result = msg
                if rid == 0 and error is not None:
                    self.close()
                    raise RpcError.from_wire(error)
            else:
                self._dispatch_other(msg)
                if self._notifications:
                    return self._notifications.popleft()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    @property
    def closed(self) -> bool:
        return self._sock is None

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        return None if timeout is None else time.monotonic() + timeout

    def _require_sock(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionFailed("connection is closed")
        return self._sock

    def _set_timeout(self, sock: socket.socket, deadline: float | None) -> None:
        if deadline is None:
            sock.settimeout(None)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RpcTimeout()
        sock.settimeout(remaining)

    def _send(self, frame: bytes, deadline: float | None) -> None:
        sock = self._require_sock()
        self._set_timeout(sock, deadline)
        try:
            sock.sendall(frame)
        except TimeoutError:
            self.close()  # a partial frame may have gone out: the stream is unusable
            raise RpcTimeout("timed out while sending") from None
        except OSError as e:
            self.close()
            raise ConnectionFailed(f"send failed: {_error_message(e)}") from e

    def _recv_message(self, deadline: float | None) -> tuple[Any, ...]:
        while True:
            if self._bodies:
                try:
                    return parse_message(decode_body(self._bodies.popleft()))
                except BadMessage as e:
                    self.close()
                    raise RpcError("protocol_error", f"bad message from server: {e.message}") from None
            sock = self._require_sock()
            self._set_timeout(sock, deadline)
            try:
                chunk = sock.recv(262144)
            except TimeoutError:
                raise RpcTimeout() from None
            except OSError as e:
                self.close()
                raise ConnectionFailed(f"receive failed: {_error_message(e)}") from e
            if not chunk:
                self.close()
                raise ConnectionFailed("connection closed by peer")
            try:
                self._bodies.extend(self._frames.feed(chunk))
            except FrameTooLarge:
                self.close()
                raise

    def _dispatch_other(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == NOTIFICATION:
            self._notifications.append((msg[1], msg[2]))
        elif msg[0] == REQUEST:
            err = {"code": "unknown_method", "message": f"unknown method: {msg[2]} (client accepts no requests)"}
            frame = encode_frame([RESPONSE, msg[1], err, None])
            self._send(frame, self._deadline(self.timeout))


# --------------------------------------------------------------------------- asyncio side


async def read_frame(reader: asyncio.StreamReader, max_frame: int = MAX_FRAME) -> bytes | None:
    """Read one frame body; None on EOF at a frame boundary.

    Raises :class:`FrameTooLarge` (the body is left unread) or :class:`ConnectionFailed` on
    EOF inside a frame.
    """
    import asyncio

    try:
        header = await reader.readexactly(4)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise ConnectionFailed("connection closed inside a frame header") from None
    length = frame_length(header, max_frame)
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ConnectionFailed("connection closed inside a frame body") from None


def peer_identity_from_cert(cert: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(CN, OU) from a certificate dict as returned by ``SSLSocket.getpeercert()``."""
    cn: str | None = None
    ou: str | None = None
    if not cert:
        return cn, ou
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and cn is None:
                cn = value
            elif key == "organizationalUnitName" and ou is None:
                ou = value
    return cn, ou


def _peer_info(writer: asyncio.StreamWriter) -> dict[str, Any]:
    info: dict[str, Any] = {}
    sock = writer.get_extra_info("socket")
    family = getattr(sock, "family", None)
    if family == _socket.AF_UNIX:
        info["transport"] = "unix"
        info.update(pid=None, uid=None, gid=None)
        so_peercred = getattr(_socket, "SO_PEERCRED", None)
        if so_peercred is not None:
            try:
                raw = sock.getsockopt(_socket.SOL_SOCKET, so_peercred, calcsize("3i"))
                pid, uid, gid = unpack("3i", raw)
                info.update(pid=pid, uid=uid, gid=gid)
            except OSError:
                pass
        return info
    info["transport"] = "tcp"
    peername = writer.get_extra_info("peername")
    info["address"] = (peername[0], peername[1]) if peername else None
    if writer.get_extra_info("ssl_object") is not None:
        cert = writer.get_extra_info("peercert")
        cn, ou = peer_identity_from_cert(cert)
        info.update(tls=True, cn=cn, ou=ou)
    else:
        info.update(tls=False, cn=None, ou=None)
    return info


class RpcConnection:
    """One RPC connection (server or client role) over asyncio streams.

    * ``await call(method, params, timeout)``: concurrent calls are multiplexed by msgid.
    * ``notify(method, params)``: fire-and-forget (``await drain()`` for back-pressure).
    * ``handler(conn, method, params)``: coroutine answering incoming requests, each in its
      own task.  :class:`RpcError` becomes an error reply with its code; any other exception
      becomes ``internal`` (and is logged); the connection survives.
    * ``on_notification(conn, method, params)``: plain function or coroutine function.
    * ``peer``: ``{"transport": "unix", "pid", "uid", "gid"}`` or
      ``{"transport": "tcp", "address", "tls", "cn", "ou"}``.
    * ``data``: a free dict for the application (e.g. the agent's node name).

    Create it inside a running event loop and call :meth:`start` (the ``serve_*`` and
    ``connect_*`` functions do this).  Closing fails pending calls with ConnectionFailed
    and cancels running handler tasks.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 handler: Handler | None = None, on_notification: NotificationCallback | None = None, *,
                 max_frame: int = MAX_FRAME, peer: dict[str, Any] | None = None) -> None:
        import asyncio

        import msgpack  # noqa: F401  (a daemon's frames: msgpack's C codec, see spurcore.wirecodec)

        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.on_notification = on_notification
        self.max_frame = max_frame
        self.max_reply_frame = max_frame  # a server may allow larger replies (MAX_REPLY_FRAME)
        self.peer: dict[str, Any] = peer if peer is not None else _peer_info(writer)
        self.data: dict[str, Any] = {}
        self.close_reason: str | None = None
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed_event = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<RpcConnection {state} peer={self.peer!r}>"

    # -- lifecycle

    def start(self) -> None:
        """Start the reader task (idempotent)."""
        import asyncio

        if self._reader_task is None and not self.is_closed:
            self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    @property
    def is_closed(self) -> bool:
        return self._closed_event.is_set()

    async def closed(self) -> None:
        """Wait until the connection is closed (by either side)."""
        await self._closed_event.wait()

    def close(self, reason: str = "closed locally") -> None:
        import asyncio

        task = self._reader_task
        self._finalize(reason)
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()

    async def aclose(self) -> None:
        """Close and wait for the transport to be released."""
        self.close()
        try:
            await self.writer.wait_closed()
        except Exception:  # the peer may already be gone
            pass

    async def __aenter__(self) -> RpcConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- outgoing

    async def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Send a request and wait for its result; RpcError on an error reply."""
        import asyncio

        if self.is_closed:
            raise ConnectionFailed(f"connection is closed ({self.close_reason})")
        msgid = self._next_id
        self._next_id += 1
        frame = encode_frame([REQUEST, msgid, method, params if params is not None else {}], self.max_frame)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msgid] = fut
        try:
            async with asyncio.timeout(timeout):
                self.writer.write(frame)
                await self._drain()
                return await fut
        except TimeoutError:
            raise RpcTimeout(f"no reply to {method!r} within {timeout} s") from None
        finally:
            self._pending.pop(msgid, None)
            if fut.done() and not fut.cancelled():
                fut.exception()  # mark as retrieved when we left early (e.g. drain failed)

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send a notification (no reply).  ConnectionFailed if the connection is closed."""
        if self.is_closed or self.writer.is_closing():
            raise ConnectionFailed(f"connection is closed ({self.close_reason})")
        self.writer.write(encode_frame([NOTIFICATION, method, params if params is not None else {}],
                                       self.max_frame))

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""
        await self._drain()

    async def _drain(self) -> None:
        try:
            await self.writer.drain()
        except (OSError, RuntimeError) as e:
            raise ConnectionFailed(f"connection lost: {_error_message(e)}") from None

    def _write_reply(self, msgid: int, error: dict[str, str] | None, result: Any) -> bool:
        """Write a response frame; False if the connection is already closing."""
        if self.is_closed or self.writer.is_closing():
            return False
        try:
            frame = encode_frame([RESPONSE, msgid, error, result], self.max_reply_frame)
        except FrameTooLarge as e:
            frame = encode_frame([RESPONSE, msgid, e.to_wire(), None])
        except (TypeError, ValueError, OverflowError) as e:
            err = {"code": "internal", "message": f"result is not serializable: {_error_message(e)}"}
            frame = encode_frame([RESPONSE, msgid, err, None])
        self.writer.write(frame)
        return True

    # -- incoming

    async def _read_loop(self) -> None:
        import asyncio

        reason = "closed by peer"
        try:
            while True:
                try:
                    body = await read_frame(self.reader, self.max_frame)
                except FrameTooLarge as e:
                    _log().warning("rpc: %s from %r; closing", e.message, self.peer)
                    self._write_reply(0, e.to_wire(), None)
                    reason = e.message
                    break
                if body is None:
                    break
                if not self._process(body):
                    reason = "protocol error"
                    break
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        except (OSError, RpcError, asyncio.IncompleteReadError) as e:
            reason = _error_message(e)
        except Exception as e:
            _log().exception("rpc: reader failed on %r", self.peer)
            reason = _error_message(e)
        finally:
            self._finalize(reason)

    def _process(self, body: bytes) -> bool:
        """Handle one frame body; False if the connection must be closed."""
        try:
            kind, *rest = parse_message(decode_body(body))
        except BadMessage as e:
            if e.msgid is not None:
                self._write_reply(e.msgid, e.to_wire(), None)
                return True
            _log().warning("rpc: bad message from %r: %s; closing", self.peer, e.message)
            self._write_reply(0, e.to_wire(), None)
            return False
        if kind == REQUEST:
            msgid, method, params = rest
            self._spawn(self._handle_request(msgid, method, params))
        elif kind == RESPONSE:
            msgid, error, result = rest
            self._handle_response(msgid, error, result)
        else:
            method, params = rest
            self._handle_notification(method, params)
        return True

    def _spawn(self, coro: Any) -> None:
        import asyncio

        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_request(self, msgid: int, method: str, params: dict[str, Any]) -> None:
        import asyncio

        try:
            if self.handler is None:
                raise RpcError("unknown_method", f"unknown method: {method}")
            result = await self.handler(self, method, params)
        except asyncio.CancelledError:
            raise
        except RpcError as e:
            self._write_reply(msgid, e.to_wire(), None)
        except Exception as e:
            _log().exception("rpc: handler for %r failed (peer %r)", method, self.peer)
            self._write_reply(msgid, {"code": "internal", "message": _error_message(e)}, None)
        else:
            self._write_reply(msgid, None, result)
        try:
            await self.writer.drain()
        except (OSError, RuntimeError):
            pass

    def _handle_response(self, msgid: int, error: Any, result: Any) -> None:
        fut = self._pending.get(msgid)
        if fut is None:
            if msgid == 0 and error is not None:
                # connection-level error from the peer: it is about to close the connection
                exc = RpcError.from_wire(error)
                _log().warning("rpc: peer %r reported %s", self.peer, exc)
                for pending in list(self._pending.values()):
                    if not pending.done():
                        pending.set_exception(RpcError.from_wire(error))
            else:
                _log().debug("rpc: dropping reply to unknown msgid %r", msgid)
            return
        if fut.done():
            return
        if error is not None:
            fut.set_exception(RpcError.from_wire(error))
        else:
            fut.set_result(result)

    def _handle_notification(self, method: str, params: dict[str, Any]) -> None:
        import inspect

        cb = self.on_notification
        if cb is None:
            _log().debug("rpc: ignoring notification %r", method)
            return
        try:
            res = cb(self, method, params)
        except Exception:
            _log().exception("rpc: notification callback for %r failed", method)
            return
        if inspect.isawaitable(res):
            self._spawn(self._await_notification(method, res))

    async def _await_notification(self, method: str, awaitable: Awaitable[Any]) -> None:
        import asyncio

        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception:
            _log().exception("rpc: notification callback for %r failed", method)

    def _finalize(self, reason: str) -> None:
        import asyncio

        if self._closed_event.is_set():
            return
        self.close_reason = reason
        self._closed_event.set()
        try:
            self.writer.close()  # buffered data (e.g. a last error reply) is still flushed
        except Exception:
            pass
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionFailed(f"connection closed: {reason}"))
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()


class Dispatcher:
    """A request handler mapping method names to ``fn(conn, params)`` (coroutine or plain).

    Unknown methods raise ``RpcError("unknown_method", "unknown method: X")``.
    """

    def __init__(self, methods: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.methods: dict[str, Callable[..., Any]] = dict(methods or {})

    def add(self, name: str, fn: Callable[..., Any]) -> None:
        self.methods[name] = fn

    def method(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@dispatcher.method("ping")``."""

        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.methods[name] = fn
            return fn

        return deco

    async def __call__(self, conn: RpcConnection, method: str, params: dict[str, Any]) -> Any:
        import inspect

        fn = self.methods.get(method)
        if fn is None:
            raise RpcError("unknown_method", f"unknown method: {method}")
        result = fn(conn, params)
        if inspect.isawaitable(result):
            result = await result
        return result


def _connection_callback(handler: Handler | None, on_notification: NotificationCallback | None,
                         on_connect: ConnectCallback | None, max_frame: int) -> Any:
    # A plain function, not a coroutine: asyncio would wrap a coroutine in a task whose
    # cancellation at shutdown it reports as an error.  ``live`` keeps the connections
    # (and so their reader tasks) strongly referenced while they are open.
    live: set[RpcConnection] = set()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = RpcConnection(reader, writer, handler, on_notification, max_frame=max_frame)
        except Exception:
            _log().exception("rpc: cannot set up connection")
            writer.close()
            return
        live.add(conn)
        if on_connect is not None:
            try:
                on_connect(conn)
            except Exception:
                _log().exception("rpc: on_connect failed for %r", conn.peer)
        conn.start()
        task = conn._reader_task
        if task is not None:
            task.add_done_callback(lambda _t: live.discard(conn))
        else:
            live.discard(conn)

    return connected


async def serve_unix(path: str | os.PathLike[str], handler: Handler | None,
                     on_notification: NotificationCallback | None = None, *,
                     on_connect: ConnectCallback | None = None, max_frame: int = MAX_FRAME,
                     mode: int = 0o666) -> asyncio.Server:
    """Listen on a Unix socket.  A stale socket file is replaced; the socket is chmod'ed to
    ``mode`` (0o666: every local user may connect; authentication is the peer uid)."""
    import asyncio
    import stat

    path = os.fspath(path)
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(
        _connection_callback(handler, on_notification, on_connect, max_frame), path=path)
    os.chmod(path, mode)
    return server


async def serve_tcp(host: str, port: int, handler: Handler | None, ssl_context: ssl.SSLContext | None,
                    on_notification: NotificationCallback | None = None, *,
                    on_connect: ConnectCallback | None = None, max_frame: int = MAX_FRAME) -> asyncio.Server:
    """Listen on TCP; with ``ssl_context`` from :func:`server_ssl_context` clients must present a
    certificate signed by the CA.  Port 0 picks a free port (see ``server.sockets``)."""
    import asyncio

    return await asyncio.start_server(
        _connection_callback(handler, on_notification, on_connect, max_frame), host, port, ssl=ssl_context)


async def connect_unix(path: str | os.PathLike[str], handler: Handler | None = None,
                       on_notification: NotificationCallback | None = None, *,
                       max_frame: int = MAX_FRAME, timeout: float | None = 30.0) -> RpcConnection:
    import asyncio

    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(os.fspath(path))
    except (OSError, TimeoutError) as e:
        raise ConnectionFailed(f"cannot connect to {os.fspath(path)}: {_error_message(e)}") from e
    conn = RpcConnection(reader, writer, handler, on_notification, max_frame=max_frame)
    conn.start()
    return conn


async def connect_tcp(host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                      handler: Handler | None = None, on_notification: NotificationCallback | None = None, *,
                      server_hostname: str | None = None, max_frame: int = MAX_FRAME,
                      timeout: float | None = 30.0) -> RpcConnection:
    """Connect over TCP (TLS if ``ssl_context``).  With TLS 1.3 a server that rejects the
    client certificate is only noticed on the first read: the first call fails with
    ConnectionFailed."""
    import asyncio

    kwargs: dict[str, Any] = {}
    if ssl_context is not None:
        kwargs["ssl"] = ssl_context
        kwargs["server_hostname"] = server_hostname or host
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, **kwargs)
    except (OSError, TimeoutError) as e:
        raise ConnectionFailed(f"cannot connect to {host}:{port}: {_error_message(e)}") from e
    conn = RpcConnection(reader, writer, handler, on_notification, max_frame=max_frame)
    conn.start()
    return conn


# --------------------------------------------------------------------------- TLS


def server_ssl_context(cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str],
                       ca_file: str | os.PathLike[str]) -> ssl.SSLContext:
    """Server context that requires a client certificate signed by ``ca_file``."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.fspath(cert_file), os.fspath(key_file))
    ctx.load_verify_locations(cafile=os.fspath(ca_file))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ssl_context(cert_file: str | os.PathLike[str] | None, key_file: str | os.PathLike[str] | None,
                       ca_file: str | os.PathLike[str]) -> ssl.SSLContext:
    """Client context verifying the server against ``ca_file`` (host name checked) and
    presenting ``cert_file`` (None: no client certificate; the server will refuse it)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=os.fspath(ca_file))
    if cert_file is not None:
        ctx.load_cert_chain(os.fspath(cert_file), os.fspath(key_file) if key_file is not None else None)
    return ctx


def generate_test_pki(directory: str | os.PathLike[str], users: list[tuple[str, str]]) -> dict[str, Any]:
    """See :func:`spurio.pki.generate_test_pki` (imported lazily: needs ``cryptography``)."""
    from spurio.pki import generate_test_pki as _generate

    return _generate(directory, users)
