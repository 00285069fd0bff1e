"""The agent's TLS endpoint for srun, sattach and sstat: one relay process per connection.

Why a relay (docs/architecture.md, section 13): a step's supervisor owns srun's
connection, so that an agent restart never touches a running step's I/O. A TLS session
cannot be passed to another process the way a socket can, so the TLS end of each client
connection lives in a small process of its own, which survives agent restarts as the
supervisors do. It speaks TLS to the client and plain step frames to the agent's Unix
socket, where the request is served exactly as a local one, with the client certificate's
identity attached (``stepserver.TLS_PEER``). For ``launch_tasks`` and ``attach_step`` the
agent then hands that Unix connection to the step's supervisor, as for a local srun:

    srun ══TLS══ relay ── Unix ── supervisor        (the agent is out of the path)

The agent accepts the TCP connections and passes each one to a zygote
(``python -m spurd.steprelay --zygote FD ...``, started once by the agent, with the TLS
context already loaded), which forks the relay.

Invariants:
- Nothing reaches the agent before the client is authenticated: the relay completes the
  TLS handshake (a client certificate signed by the CA is required) and reads exactly one
  request frame (at most ``stepserver.MAX_REQUEST`` bytes), both within
  ``HANDSHAKE_TIMEOUT``; otherwise it closes the connection.
- The identity passed on is the certificate's ``{"user": CN, "role": OU}`` in the request's
  ``TLS_PEER`` field; a ``TLS_PEER`` field sent by the client is overwritten. The agent
  believes it only from a peer running as root or as itself (``stepserver.step_access``).
- After the request, bytes are copied both ways unchanged until one side closes; then what
  is queued for the other side is flushed (bounded by ``FLUSH_TIMEOUT``) and both close.
- The zygote is single-threaded (forking is safe), gives every relay its own session (the
  agent's signals and restarts do not reach it), reaps them, and refuses connections beyond
  ``MAX_RELAYS`` live relays. It exits when the agent's end of its socket closes; relays
  keep running.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

from spurd.procs import ZygoteProcess

HANDSHAKE_TIMEOUT = 10.0  # TLS handshake plus the request frame
AGENT_TIMEOUT = 10.0  # how long a relay keeps trying the agent's socket (a restart)
FLUSH_TIMEOUT = 5.0
MAX_RELAYS = 1024
REAP_INTERVAL = 5.0  # the zygote reaps ended relays at least this often
BUFFER_LIMIT = 4 << 20  # stop reading one side while this much waits for the other
CHUNK = 262144
# A client host that vanished (a login node's power cut) leaves a half-open connection;
# keepalive ends its relay, and the supervisor sees srun gone, within ~2 minutes.
KEEPALIVE = (60, 10, 6)  # idle, interval, probes


def log(message: str) -> None:
    try:
        sys.stderr.write(f"spurd-relay[{os.getpid()}]: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # the agent's log may be gone: relays outlive it


# ---------------------------------------------------------------------------- the relay


def _recv_exactly(sock: Any, n: int, deadline: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed inside the request")
        buf += chunk
    return bytes(buf)


def read_request(tls: Any, deadline: float) -> tuple[int, str, dict[str, Any]]:
    """The client's one request ``(msgid, method, params)``, and not a byte more."""
    from spurio.rpc import REQUEST, decode_body, parse_message
    from spurio.stepserver import MAX_REQUEST

    length = int.from_bytes(_recv_exactly(tls, 4, deadline), "big")
    if length > MAX_REQUEST:
        raise ValueError(f"request of {length} bytes exceeds {MAX_REQUEST} bytes")
    msg = parse_message(decode_body(_recv_exactly(tls, length, deadline)))
    if msg[0] != REQUEST:
        raise ValueError("expected a request")
    _, msgid, method, params = msg
    return msgid, method, params if isinstance(params, dict) else {}


def _connect_agent(path: str) -> socket.socket:
    from spurio.stepserver import connect

    deadline = time.monotonic() + AGENT_TIMEOUT
    delay = 0.05
    while True:
        try:
            return connect(f"unix:{path}", timeout=10.0)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def serve(conn: socket.socket, ctx: Any, agent_socket: str) -> None:
    """One client connection, from the handshake to the end of the step's I/O."""
    from spurio.rpc import RpcError, peer_identity_from_cert
    from spurio.stepserver import TLS_PEER, request, response

    deadline = time.monotonic() + HANDSHAKE_TIMEOUT
    conn.settimeout(HANDSHAKE_TIMEOUT)
    _keepalive(conn)
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
        user, role = peer_identity_from_cert(tls.getpeercert())
        msgid, method, params = read_request(tls, deadline)
    except (OSError, ValueError, RpcError) as exc:
        # a port scan, a client without a valid certificate, a slow or broken client
        log(f"refused a client: {exc}")
        conn.close()
        return
    params[TLS_PEER] = {"user": user or "", "role": role or ""}
    try:
        agent = _connect_agent(agent_socket)
    except OSError as exc:
        log(f"cannot reach the agent at {agent_socket}: {exc}")
        try:
            tls.settimeout(FLUSH_TIMEOUT)
            tls.sendall(response(msgid, {"code": "connection_failed",
                                         "message": "Communication connection failure"}, None))
        except OSError:
            pass
        tls.close()
        return
    try:
        agent.settimeout(10.0)
        agent.sendall(request(msgid, method, params))
    except OSError as exc:
        log(f"cannot send to the agent: {exc}")
        agent.close()
        tls.close()
        return
    try:
        copy(tls, agent)
    finally:
        agent.close()
        tls.close()


def _keepalive(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle, interval, probes = KEEPALIVE
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, probes)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class _Side:
    """One end of the relay: its socket, whether it may still be read (not at EOF), and
    what waits to be written to it."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.open = True
        self.out = bytearray()
        self.peer: _Side = self
        self.events = 0  # what it is registered for in the selector


def copy(tls: Any, plain: socket.socket) -> None:
    """Copy bytes between the client (TLS) and the agent or supervisor (plain) until one
    side ends; then flush what the other side still has to get, and return."""
    import selectors

    from spurio.stepserver import recv_some, send_some

    tls.setblocking(False)
    plain.setblocking(False)
    a, b = _Side(tls), _Side(plain)
    a.peer, b.peer = b, a
    sel = selectors.DefaultSelector()

    def pump_in(side: _Side) -> None:
        try:
            data = recv_some(side.sock, CHUNK)
        except OSError:
            data = b""
        if data is None:
            return
        if not data:
            side.open = False
        else:
            side.peer.out += data

    def pump_out(side: _Side) -> None:
        while side.out:
            try:
                n = send_some(side.sock, side.out[:CHUNK])  # from the head: TLS retries want it
            except OSError:
                side.out.clear()  # that side is gone: nothing more can reach it
                side.open = False
                return
            if n == 0:
                return
            del side.out[:n]

    def register(side: _Side, events: int) -> None:
        if events == side.events:
            return
        if not events:
            sel.unregister(side.sock)
        elif not side.events:
            sel.register(side.sock, events, side)
        else:
            sel.modify(side.sock, events, side)
        side.events = events

    while a.open and b.open:
        # TLS may hold decrypted bytes that select() cannot see: take them first.
        while a.open and tls.pending() and len(b.out) < BUFFER_LIMIT:
            pump_in(a)
        for side in (a, b):
            reading = selectors.EVENT_READ if side.open and len(side.peer.out) < BUFFER_LIMIT else 0
            register(side, reading | (selectors.EVENT_WRITE if side.out else 0))
        if not (a.open and b.open):
            break
        for key, mask in sel.select():
            side = key.data
            if mask & selectors.EVENT_WRITE:
                pump_out(side)
            if mask & selectors.EVENT_READ and side.open:
                pump_in(side)
    # One side ended: the other still gets what was queued for it (a step's last output,
    # srun's last input), within a bound.
    deadline = time.monotonic() + FLUSH_TIMEOUT
    for side in (a, b):
        pump_out(side)
        while side.out and time.monotonic() < deadline:
            register(side, selectors.EVENT_WRITE)
            sel.select(max(0.0, deadline - time.monotonic()))
            pump_out(side)
    sel.close()


# ---------------------------------------------------------------------------- the zygote


def zygote(fd: int, cert: str, key: str, ca: str, agent_socket: str) -> int:
    """Serve the agent: each message on ``fd`` carries one accepted TCP connection; fork
    a relay for it. Returns when the agent closes its end."""
    import selectors  # noqa: F401 - loaded once here, not in every relay
    import signal

    from spurio import stepserver  # noqa: F401 - the same
    from spurio.rpc import server_ssl_context

    ctx = server_ssl_context(cert, key, ca)
    chan = socket.socket(fileno=fd)
    live: set[int] = set()
    chan.settimeout(REAP_INTERVAL)
    while True:
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(chan, 16, 4)
        except (InterruptedError, TimeoutError):
            _reap(live)
            continue
        except OSError:
            return 0
        _reap(live)
        if not fds:
            if not _msg:
                return 0  # the agent is gone
            continue
        for conn_fd in fds:
            if len(live) >= MAX_RELAYS:
                log(f"{len(live)} relays already: connection refused")
                os.close(conn_fd)
                continue
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    chan.close()
                    os.setsid()
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.signal(signal.SIGHUP, signal.SIG_IGN)
                    serve(socket.socket(fileno=conn_fd), ctx, agent_socket)
                except BaseException as exc:  # noqa: BLE001 - a relay never returns into the zygote
                    log(f"relay failed: {type(exc).__name__}: {exc}")
                    code = 1
                finally:
                    os._exit(code)
            live.add(pid)
            os.close(conn_fd)


def _reap(live: set[int]) -> None:
    for pid in list(live):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            live.discard(pid)


class Spawner(ZygoteProcess):
    """The agent's side of the zygote: ``spawn(conn)`` hands over one accepted TCP
    connection (the caller closes its copy). Thread-safe; a dead zygote is restarted."""

    def __init__(self, cert: str, key: str, ca: str, agent_socket: str, python: str = sys.executable) -> None:
        super().__init__("spurd.steprelay", ["--cert", cert, "--key", key, "--ca", ca, "--socket", agent_socket],
                         python)

    def start(self) -> None:
        """Start the zygote now (the first TLS client then pays a fork, not an interpreter)."""
        with self._lock:
            self._ensure()

    def spawn(self, conn: socket.socket) -> bool:
        with self._lock:
            for _ in range(2):  # once more with a fresh zygote if the old one died
                try:
                    sock = self._ensure()
                    sock.settimeout(5.0)
                    socket.send_fds(sock, [b"c"], [conn.fileno()])
                    return True
                except OSError:
                    self.close()
            return False


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="spurd.steprelay")
    p.add_argument("--zygote", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--socket", required=True)
    args = p.parse_args(argv)
    return zygote(args.zygote, args.cert, args.key, args.ca, args.socket)


if __name__ == "__main__":
    sys.exit(main())
