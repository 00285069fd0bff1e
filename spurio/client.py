"""A blocking client for the controller (an I/O edge module of spurcore, beside rpc.py),
for command-line tools and embedding.

Any replica accepts any request (followers forward to the leader), but the leader answers
with one hop less, and a replica that is down or cut off must not cost every command its
connect timeout (issue 13: 10.1 s per sbatch with replica 1 cut off). So:

- **Order.** The leader remembered by the last command (a small per-user cache file) goes
  first, then the others in configuration order, and replicas that recently failed to
  answer go last.
- **Concurrent, staggered connects without threads.** The first candidate's TCP connect
  and TLS handshake start at once; if it has not finished within ``STAGGER`` seconds the
  next one starts too, and so on; the first to finish wins and the others are dropped.
  Every attempt is bounded by ``CONNECT_TIMEOUT``. Non-blocking sockets and ``select``:
  importing this module loads neither threading, asyncio nor ssl.
- **Leader discovery.** With several replicas, a fresh connection first asks ``ping``; if
  that replica is not the leader but names one, the client moves there. The leader is
  written to the cache with the time it was confirmed; for ``LEADER_TRUST`` seconds after
  that, commands go to it without the ``ping`` round trip (a stale hint costs a forwarded
  call, and a ``no_leader`` answer drops it).
- **Suspects.** A replica that timed out or refused is remembered (in the process and in
  the cache, for ``SUSPECT_FOR`` seconds) and tried last: no command pays a dead replica's
  timeout twice.
- **Dead peers during a call.** TCP keepalive (1 s idle, 1 s interval, 2 probes) and
  TCP_USER_TIMEOUT (3 s) end a call to a replica that became unreachable after ~3 s
  instead of the whole call timeout; a slow but reachable replica is not affected.

``no_leader`` answers and unreachable replicas are retried for ``retry_for`` seconds, after
which ``ControllerUnavailable`` says how many replicas answered:
``controller unavailable: no leader (N of M replicas reachable)``.

Writes carry a ``request_id`` that stays the same across retries, so a retried submit
after a leader crash returns the first job's id instead of creating a second job.

The cache (``$SPUR_LEADER_CACHE``, else ``$XDG_RUNTIME_DIR/spur/`` or ``/tmp/spur-<uid>/``,
one file per set of replicas) is only a hint: it can reorder the configured replicas,
never add one. It is written atomically (temporary file + rename), read tolerantly, and
the directory must be ours and not a symlink. ``SPUR_LEADER_CACHE=none`` disables it.
"""

from __future__ import annotations

import _socket
import errno
import os
import time

from spurio.config import Config, ReplicaConfig
from spurio.rpc import ConnectionFailed, RpcError, RpcTimeout, SyncClient

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from typing import Any

RETRYABLE = {"no_leader", "not_ready", "leader_changed", "timeout", "unknown_outcome"}
CONNECT_TIMEOUT = 2.0  # one attempt: TCP connect + TLS handshake
STAGGER = 0.2  # start the next candidate if the current one has not connected by then
SUSPECT_FOR = 300.0  # seconds a replica that failed stays at the end of the order
LEADER_TRUST = 10.0  # seconds a leader confirmed by ``ping`` is taken at its word (no ping)
KEEPALIVE = (1, 1, 2)  # TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT: an idle peer is dead after ~3 s
USER_TIMEOUT_MS = 3000  # TCP_USER_TIMEOUT: a request unacknowledged this long ends the connection


class ControllerUnavailable(Exception):
    """Not an RpcError on purpose: commands that prefix controller errors with their own
    words (``slurm_load_jobs error: ...``) let this one through unchanged."""

    code = "controller_unavailable"

    def __init__(self, reachable: int, total: int) -> None:
        self.message = f"controller unavailable: no leader ({reachable} of {total} replicas reachable)"
        super().__init__(self.message)


def new_request_id() -> str:
    """A unique id for one write; its retries reuse it (128 random bits, like a uuid4)."""
    return os.urandom(16).hex()


def endpoint_of(replica: ReplicaConfig) -> str:
    """How this client reaches ``replica``: its Unix socket if that exists here, else TLS."""
    if replica.socket and (os.path.exists(replica.socket) or not replica.rpc):
        return f"unix:{replica.socket}"
    return f"tcp:{replica.rpc}"


# --------------------------------------------------------------------------- leader cache


def _cache_dir() -> str | None:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(runtime, "spur") if runtime and os.path.isdir(runtime) else f"/tmp/spur-{os.getuid()}"
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(base)
    except OSError:
        return None
    # Never follow a directory someone else made for us (/tmp is shared).
    if st.st_uid != os.getuid() or (st.st_mode & 0o170000) != 0o040000 or st.st_mode & 0o022:
        return None
    return base


def cache_path(config: Config) -> str | None:
    """The cache file for this set of replicas (None: caching is off or impossible)."""
    explicit = os.environ.get("SPUR_LEADER_CACHE")
    if explicit is not None:
        return None if explicit in ("", "none", "off") else explicit
    key = "\n".join(f"{r.id} {r.raft} {r.rpc} {r.socket}" for r in config.replicas).encode()
    d = _cache_dir()
    return None if d is None else os.path.join(d, f"leader-{_fnv1a(key):08x}")


def _fnv1a(data: bytes) -> int:
    """32-bit FNV-1a: a stable name for the cache file (zlib.crc32 would load an extension
    module, ~0.3 ms, on every command's start)."""
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def read_cache(path: str | None) -> tuple[str, dict[str, float]]:
    """(leader endpoint or "", {suspect endpoint: until}) from the cache file; never raises."""
    leader, _confirmed, suspects = _parse_cache(path)
    return leader, suspects


def _parse_cache(path: str | None) -> tuple[str, float, dict[str, float]]:
    """(leader endpoint or "", when a ``ping`` last confirmed it (0: unknown), suspects)."""
    leader, confirmed, suspects = "", 0.0, {}
    if path is None:
        return leader, confirmed, suspects
    try:
        with open(path) as f:
            text = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return leader, confirmed, suspects
    now = time.time()
    for line in text.splitlines():
        parts = line.split()
        try:
            if len(parts) in (2, 3) and parts[0] == "leader":
                confirmed = float(parts[2]) if len(parts) == 3 else 0.0
                leader = parts[1]
            elif len(parts) == 3 and parts[0] == "suspect" and float(parts[2]) > now:
                suspects[parts[1]] = float(parts[2])
        except ValueError:
            continue
    return leader, confirmed, suspects


def write_cache(path: str | None, leader: str, suspects: dict[str, float], confirmed: float = 0.0) -> None:
    """Atomic replace: concurrent commands never see half a file (last writer wins)."""
    if path is None:
        return
    now = time.time()
    lines = [f"leader {leader} {confirmed:.3f}"] if leader else []
    lines += [f"suspect {e} {until:.0f}" for e, until in suspects.items() if until > now]
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


# --------------------------------------------------------------------------- connecting


class _Attempt:
    """One non-blocking TCP connect (+ TLS handshake) to one replica."""

    def __init__(self, replica: ReplicaConfig, endpoint: str, ssl_context: Any, started: float) -> None:
        self.replica = replica
        self.endpoint = endpoint
        self.started = started
        self.ssl_context = ssl_context
        self.sock: Any = None
        self.handshaking = False
        self.error = ""
        host, _, port = endpoint[4:].rpartition(":")
        self.host = host.strip("[]")
        try:
            infos = _socket.getaddrinfo(self.host, int(port), 0, _socket.SOCK_STREAM)
            family, kind, proto, _, addr = infos[0]
            if ssl_context is not None:
                import socket  # ssl needs socket.socket objects (and imports socket anyway)

                self.sock = socket.socket(family, kind, proto)
            else:
                self.sock = _socket.socket(family, kind, proto)
            self.sock.setblocking(False)
            code = self.sock.connect_ex(addr)
        except (OSError, ValueError) as exc:
            self.fail(f"cannot connect to {self.host}:{port}: {exc}")
            return
        if code not in (0, errno.EINPROGRESS):
            self.fail(f"cannot connect to {self.host}:{port}: {os.strerror(code)}")

    def fail(self, error: str) -> None:
        self.error = error
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    @property
    def done(self) -> bool:
        return self.sock is None

    def wants_write(self) -> bool:
        return not self.handshaking or self._want_write

    def step(self) -> bool:
        """Advance after ``select`` said the socket is ready; True once connected (+TLS)."""
        if not self.handshaking:
            code = self.sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
            if code != 0:
                self.fail(f"cannot connect to {self.endpoint[4:]}: {os.strerror(code)}")
                return False
            self.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
            idle, interval, count = KEEPALIVE
            for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count),
                                ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS)):
                if hasattr(_socket, name):
                    self.sock.setsockopt(_socket.IPPROTO_TCP, getattr(_socket, name), value)
            if self.ssl_context is None:
                return True
            try:
                self.sock = self.ssl_context.wrap_socket(self.sock, server_hostname=self.host,
                                                         do_handshake_on_connect=False)
            except OSError as exc:
                self.fail(f"TLS setup with {self.endpoint[4:]} failed: {exc}")
                return False
            self.handshaking = True
        import ssl

        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want_write = False
            return False
        except ssl.SSLWantWriteError:
            self._want_write = True
            return False
        except OSError as exc:  # ssl.SSLError is an OSError
            self.fail(f"TLS handshake with {self.endpoint[4:]} failed: {exc}")
            return False
        return True

    _want_write = False


def connect_first(candidates: list[tuple[ReplicaConfig, str]], ssl_context: Any, *, timeout: float,
                  stagger: float = STAGGER, now: Any = time.monotonic
                  ) -> tuple[ReplicaConfig | None, Any, dict[str, str]]:
    """Connect to the first of ``candidates`` (replica, "tcp:host:port") that answers,
    starting the next one whenever the previous ones have been pending ``stagger`` seconds
    or have failed. Returns (replica, connected blocking socket, {endpoint: error} of the
    attempts that failed or were still pending at ``timeout``)."""
    failures: dict[str, str] = {}
    waiting = list(candidates)
    attempts: list[_Attempt] = []
    start = now()
    next_start = start
    while True:
        t = now()
        if waiting and (t >= next_start or not attempts):
            replica, endpoint = waiting.pop(0)
            attempt = _Attempt(replica, endpoint, ssl_context, t)
            if attempt.done:
                failures[endpoint] = attempt.error
            else:
                attempts.append(attempt)
            next_start = t + stagger
            continue
        for a in [a for a in attempts if t - a.started > timeout]:
            a.fail(f"no answer from {a.endpoint[4:]} within {timeout:.1f} s")
            failures[a.endpoint] = a.error
            attempts.remove(a)
        if not attempts and not waiting:
            return None, None, failures
        if not attempts:
            continue
        wait = min(a.started + timeout for a in attempts) - t
        if waiting:
            wait = min(wait, next_start - t)
        readers = [a.sock for a in attempts if a.handshaking and not a.wants_write()]
        writers = [a.sock for a in attempts if a.wants_write()]
        import select  # only here: a Unix-socket connection (the usual one) never waits in select

        try:
            r, w, _ = select.select(readers, writers, [], max(0.0, wait))
        except (OSError, ValueError):
            r, w = readers, writers
        ready = set(map(id, r)) | set(map(id, w))
        for a in list(attempts):
            if id(a.sock) not in ready:
                continue
            if a.step():
                for other in attempts:
                    if other is not a:
                        other.close()
                        failures.setdefault(other.endpoint, "abandoned: another replica answered first")
                sock = a.sock
                sock.setblocking(True)
                return a.replica, sock, failures
            if a.done:
                failures[a.endpoint] = a.error
                attempts.remove(a)
                next_start = now()  # a failure starts the next candidate at once


def open_replica(config: Config, replica: ReplicaConfig, *, timeout: float = CONNECT_TIMEOUT,
                 cert: str | None = None, key: str | None = None) -> SyncClient:
    """A connection to one replica itself (no redirect, no retry), for diagnostics."""
    e = endpoint_of(replica)
    if e.startswith("unix:"):
        return SyncClient.unix(e[5:], timeout=timeout)
    ctx = None
    if config.tls_ca:
        from spurio.rpc import client_ssl_context

        cert = cert if cert is not None else (os.environ.get("SPUR_CERT") or None)
        key = key if key is not None else (os.environ.get("SPUR_KEY") or None)
        ctx = client_ssl_context(cert, key, config.tls_ca)
    found, sock, failures = connect_first([(replica, e)], ctx, timeout=timeout)
    if found is None:
        raise ConnectionFailed(failures.get(e, f"cannot connect to {e[4:]}"))
    return SyncClient(sock, timeout)


class Client:
    def __init__(self, config: Config, *, timeout: float = 10.0, retry_for: float = 10.0,
                 cert: str | None = None, key: str | None = None) -> None:
        self.config = config
        self.timeout = timeout
        self.retry_for = retry_for
        self.cert = cert if cert is not None else (os.environ.get("SPUR_CERT") or None)
        self.key = key if key is not None else (os.environ.get("SPUR_KEY") or None)
        self._conn: SyncClient | None = None
        self._conn_replica: ReplicaConfig | None = None
        self._ssl: Any = None
        self._cache = cache_path(config)
        self._leader, self._confirmed, self._suspects = _parse_cache(self._cache)
        self._cache_dirty = False

    # --- order ---------------------------------------------------------------------------

    def _order(self) -> list[ReplicaConfig]:
        """Connected replica first, then the remembered leader, then the others in
        configuration order; suspects (failed recently) last."""
        now = time.time()
        replicas = list(self.config.replicas)

        def rank(r: ReplicaConfig) -> tuple[int, int]:
            e = endpoint_of(r)
            if r is self._conn_replica:
                return (0, 0)
            if e in self._suspects and self._suspects[e] > now:
                return (3, replicas.index(r))
            return (1 if e == self._leader else 2, replicas.index(r))

        return sorted(replicas, key=rank)

    def _suspect(self, replica: ReplicaConfig) -> None:
        self._suspects[endpoint_of(replica)] = time.time() + SUSPECT_FOR
        if self._leader == endpoint_of(replica):
            self._leader = ""
        self._cache_dirty = True

    def _trusted(self, replica: ReplicaConfig, leader: bool) -> None:
        e = endpoint_of(replica)
        if self._suspects.pop(e, None) is not None:
            self._cache_dirty = True
        if leader:
            self._leader, self._confirmed = e, time.time()
            self._cache_dirty = True

    def _leader_known(self, replica: ReplicaConfig) -> bool:
        """``replica`` is the leader a ``ping`` confirmed less than LEADER_TRUST seconds ago
        (this command or an earlier one, through the cache): no need to ask again. Stale, it
        costs a forwarded call at worst (a follower forwards writes and reads); a follower
        without a leader answers no_leader, which drops the hint."""
        return endpoint_of(replica) == self._leader and 0.0 <= time.time() - self._confirmed < LEADER_TRUST

    def _save_cache(self) -> None:
        if self._cache_dirty:
            write_cache(self._cache, self._leader, self._suspects, self._confirmed)
            self._cache_dirty = False

    # --- connections -----------------------------------------------------------------------

    def _ssl_context(self) -> Any:
        if self._ssl is None and self.config.tls_ca:
            from spurio.rpc import client_ssl_context

            self._ssl = client_ssl_context(self.cert, self.key, self.config.tls_ca)
        return self._ssl

    def _open(self, candidates: list[ReplicaConfig], deadline: float) -> tuple[ReplicaConfig | None, int]:
        """Connect to the first candidate that answers; returns (replica, attempts that
        failed). Unix sockets are local: they connect (or fail) at once, so they are tried
        in order; TCP candidates race with a stagger."""
        failed = 0
        tcp: list[tuple[ReplicaConfig, str]] = []
        for r in candidates:
            e = endpoint_of(r)
            if e.startswith("unix:"):
                if tcp:
                    break  # keep the order: race the TCP ones before this socket
                try:
                    self._conn = SyncClient.unix(e[5:], timeout=self.timeout)
                    self._conn_replica = r
                    return r, failed
                except ConnectionFailed:
                    failed += 1
                    continue
            elif r.rpc:
                tcp.append((r, e))
        if not tcp:
            return None, failed
        timeout = max(0.05, min(CONNECT_TIMEOUT, deadline - time.monotonic()))
        try:
            ctx = self._ssl_context()
        except OSError as exc:  # unreadable certificate or CA: no replica can be reached
            raise ConnectionFailed(f"TLS setup failed: {exc}") from exc
        replica, sock, failures = connect_first(tcp, ctx, timeout=timeout)
        by_endpoint = {e: r for r, e in tcp}
        for e, why in failures.items():
            if not why.startswith("abandoned"):
                failed += 1
            self._suspect(by_endpoint[e])
        if replica is None:
            return None, failed
        self._conn = SyncClient(sock, self.timeout)
        self._conn_replica = replica
        return replica, failed

    def _find_leader(self, replica: ReplicaConfig, deadline: float) -> None:
        """On a fresh connection: ask ``ping``; follow the leader it names (one hop)."""
        assert self._conn is not None
        try:
            info = self._conn.call("ping", {}, timeout=min(self.timeout, CONNECT_TIMEOUT))
        except RpcError:
            return
        if not isinstance(info, dict):
            return
        if info.get("leader"):
            self._trusted(replica, True)
            return
        self._trusted(replica, False)
        named = str(info.get("leader_endpoint") or "")
        target = next((r for r in self.config.replicas
                       if r is not replica and named in (f"tcp:{r.rpc}", f"unix:{r.socket}")), None)
        if target is None:
            return
        keep, keep_replica = self._conn, self._conn_replica
        self._conn, self._conn_replica = None, None
        found, _ = self._open([target], deadline)
        if found is None:
            self._conn, self._conn_replica = keep, keep_replica  # the follower forwards for us
            return
        keep.close()
        self._trusted(target, True)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._save_cache()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._conn_replica = None

    # --- calls -----------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Call ``method`` on the cluster, retrying other replicas and leaderless moments."""
        params = params or {}
        deadline = time.monotonic() + self.retry_for
        delay = 0.02
        try:
            while True:
                reachable = 0
                pending = self._order()
                while pending:
                    if self._conn is not None and self._conn_replica in pending:
                        replica = self._conn_replica
                    else:
                        self._drop()
                        replica, _ = self._open(pending, deadline)
                        if replica is None:
                            break
                        # alone, there is nobody to move to
                        if len(self.config.replicas) > 1 and not self._leader_known(replica):
                            self._find_leader(replica, deadline)
                        replica = self._conn_replica
                        if replica not in pending:  # moved to a leader tried earlier in this pass
                            pending.append(replica)
                    pending.remove(replica)
                    reachable += 1
                    assert self._conn is not None
                    try:
                        return self._conn.call(method, params, timeout=timeout or self.timeout)
                    except (RpcTimeout, ConnectionFailed):
                        self._suspect(replica)
                        self._drop()
                        reachable -= 1
                        continue
                    except RpcError as exc:
                        if exc.code in RETRYABLE:
                            if self._leader == endpoint_of(replica):
                                self._leader = ""
                                self._cache_dirty = True
                            continue
                        raise
                if time.monotonic() >= deadline:
                    raise ControllerUnavailable(max(0, reachable), len(self.config.replicas))
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        finally:
            self._save_cache()
