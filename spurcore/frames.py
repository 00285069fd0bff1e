"""RPC frames, sans I/O: the wire format of every connection between Spur's processes.

Wire format (msgpack-RPC style), identical on Unix sockets and TLS/TCP:

* frame = 4-byte big-endian body length + msgpack body (at most ``max_frame`` bytes,
  :data:`MAX_FRAME` by default, configurable per connection);
* request ``[0, msgid, method, params]``, response ``[1, msgid, error, result]`` where
  ``error`` is ``None`` or ``{"code": str, "message": str}``, notification
  ``[2, method, params]`` (either direction).  ``params`` is always a map.

Invariants:
- Pure: bytes in, messages out (``FrameReader.feed``), messages in, bytes out
  (``encode_frame``). The transports (``spurio.rpc`` for RPC, ``spurio.stepserver`` for
  srun's step connections) read and write sockets and use this one parser.
- A frame longer than its limit, a body that is not one msgpack object, or a message of
  the wrong shape raises ``FrameTooLarge``/``BadMessage`` (with the msgid when it could be
  recovered, so the receiver can answer ``bad_request`` and keep the connection).
"""

from __future__ import annotations

from _struct import Struct  # not struct: struct.py costs a command 0.1-0.2 ms

from spurcore.wirecodec import packb, unpackb

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_FRAME = 16 * 1024 * 1024
#: Replies may be much larger than requests (squeue of 100,000 jobs is ~60 MB): a server
#: writes, and a client reads, reply frames up to this size. Requests stay at MAX_FRAME.
MAX_REPLY_FRAME = 1024 * 1024 * 1024

REQUEST = 0
RESPONSE = 1
NOTIFICATION = 2

_HEADER = Struct(">I")


# --------------------------------------------------------------------------- errors


class RpcError(Exception):
    """An error reply (``code``, ``message``), raised by calls and by handlers."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_wire(cls, error: Any) -> RpcError:
        """Build the exception for an ``error`` field received on the wire."""
        if isinstance(error, dict):
            code = error.get("code", "error")
            message = error.get("message", "")
            code = code if isinstance(code, str) else str(code)
            message = message if isinstance(message, str) else str(message)
        else:
            code, message = "error", str(error)
        if code == "connection_failed":
            return ConnectionFailed(message)
        if code == "frame_too_large":
            return FrameTooLarge(message=message)
        return cls(code, message)


class ConnectionFailed(RpcError):
    """The connection could not be made, broke, or was closed (also EOF)."""

    def __init__(self, message: str = "connection failed") -> None:
        super().__init__("connection_failed", message)


class RpcTimeout(RpcError):
    """No reply within the timeout (the connection itself is still usable)."""

    def __init__(self, message: str = "timed out") -> None:
        super().__init__("timeout", message)


class FrameTooLarge(RpcError):
    def __init__(self, length: int | None = None, max_frame: int | None = None, message: str = "") -> None:
        if not message:
            message = f"frame of {length} bytes exceeds the maximum of {max_frame} bytes"
        super().__init__("frame_too_large", message)
        self.length = length
        self.max_frame = max_frame


class BadMessage(RpcError):
    """A frame that is not a valid message; ``msgid`` is set when it could be recovered."""

    def __init__(self, message: str, msgid: int | None = None) -> None:
        super().__init__("bad_request", message)
        self.msgid = msgid


# --------------------------------------------------------------------------- codec


def encode_frame(obj: Any, max_frame: int | None = None) -> bytes:
    """Length-prefixed msgpack frame of ``obj``; FrameTooLarge if the body exceeds ``max_frame``."""
    body = packb(obj)
    if max_frame is not None and len(body) > max_frame:
        raise FrameTooLarge(len(body), max_frame)
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Any:
    """Decode one frame body; BadMessage if it is not exactly one msgpack object."""
    try:
        return unpackb(body)
    except Exception as e:  # msgpack raises many types (ExtraData, FormatError, ValueError, ...)
        raise BadMessage(f"malformed msgpack body: {type(e).__name__}: {e}") from None


def _is_int(x: Any) -> bool:
    return type(x) is int


def parse_message(msg: Any) -> tuple[Any, ...]:
    """Validate a decoded message.

    Returns ``(REQUEST, msgid, method, params)``, ``(RESPONSE, msgid, error, result)`` or
    ``(NOTIFICATION, method, params)``.  Raises :class:`BadMessage` (with ``msgid`` when it
    can be recovered, so that the receiver can answer instead of closing).
    """
    if not isinstance(msg, list) or not msg:
        raise BadMessage(f"message must be a non-empty array, got {type(msg).__name__}")
    tag = msg[0]
    msgid = msg[1] if len(msg) > 1 and _is_int(msg[1]) else None
    if not _is_int(tag):
        raise BadMessage(f"message type must be an integer, got {tag!r}", msgid)
    if tag == REQUEST:
        if msgid is None:
            raise BadMessage("request without an integer msgid")
        if len(msg) != 4:
            raise BadMessage(f"request must have 4 elements, got {len(msg)}", msgid)
        method, params = msg[2], msg[3]
        if not isinstance(method, str):
            raise BadMessage(f"method must be a string, got {type(method).__name__}", msgid)
        if not isinstance(params, dict):
            raise BadMessage(f"params must be a map, got {type(params).__name__}", msgid)
        return (REQUEST, msgid, method, params)
    if tag == RESPONSE:
        # Never answer a response: a bad one is a connection-level error.
        if len(msg) != 4 or msgid is None:
            raise BadMessage("malformed response (expected [1, msgid, error, result])")
        error = msg[2]
        if error is not None and not isinstance(error, dict | str):
            raise BadMessage(f"response error must be a map or nil, got {type(error).__name__}")
        return (RESPONSE, msgid, error, msg[3])
    if tag == NOTIFICATION:
        if len(msg) != 3:
            raise BadMessage(f"notification must have 3 elements, got {len(msg)}")
        method, params = msg[1], msg[2]
        if not isinstance(method, str):
            raise BadMessage(f"notification method must be a string, got {type(method).__name__}")
        if not isinstance(params, dict):
            raise BadMessage(f"notification params must be a map, got {type(params).__name__}")
        return (NOTIFICATION, method, params)
    raise BadMessage(f"unknown message type {tag}", msgid)


def frame_length(header: bytes, max_frame: int) -> int:
    """The body length a 4-byte frame header announces; FrameTooLarge past ``max_frame``."""
    (length,) = _HEADER.unpack(header)
    if length > max_frame:
        raise FrameTooLarge(length, max_frame)
    return length


class FrameReader:
    """Feed bytes as they arrive; take whole frame bodies out (``max_frame``: the largest
    body accepted; a longer one raises FrameTooLarge before its body is buffered)."""

    __slots__ = ("max_frame", "_buf")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every complete frame body now available, in order."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 4:
            length = frame_length(bytes(self._buf[:4]), self.max_frame)
            if len(self._buf) < 4 + length:
                break
            out.append(bytes(self._buf[4 : 4 + length]))
            del self._buf[: 4 + length]
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered that do not make a whole frame yet."""
        return len(self._buf)
