"""spurio.rpc over real sockets (Unix sockets in tmp_path, TLS on loopback); no mocks."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from spurio import rpc
from spurio.rpc import (
    ConnectionFailed,
    Dispatcher,
    RpcConnection,
    RpcError,
    SyncClient,
    client_ssl_context,
    connect_tcp,
    connect_unix,
    encode_frame,
    generate_test_pki,
    peer_identity_from_cert,
    serve_tcp,
    serve_unix,
    server_ssl_context,
)

pytestmark = pytest.mark.timeout(30)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def make_dispatcher() -> Dispatcher:
    d = Dispatcher()

    @d.method("echo")
    async def echo(conn: RpcConnection, params: dict[str, Any]) -> Any:
        return params

    @d.method("whoami")
    def whoami(conn: RpcConnection, params: dict[str, Any]) -> Any:  # plain functions work too
        return dict(conn.peer)

    @d.method("sleep_echo")
    async def sleep_echo(conn: RpcConnection, params: dict[str, Any]) -> Any:
        await asyncio.sleep(params["delay"])
        return {"i": params["i"]}

    @d.method("deny")
    async def deny(conn: RpcConnection, params: dict[str, Any]) -> Any:
        raise RpcError("permission_denied", "not allowed")

    @d.method("boom")
    async def boom(conn: RpcConnection, params: dict[str, Any]) -> Any:
        raise ValueError("kaputt")

    @d.method("push")
    async def push(conn: RpcConnection, params: dict[str, Any]) -> Any:
        conn.notify("pushed", {"n": params.get("n", 0)})
        return "ok"

    @d.method("big")
    async def big(conn: RpcConnection, params: dict[str, Any]) -> Any:
        return "x" * params["n"]

    @d.method("unserializable")
    async def unserializable(conn: RpcConnection, params: dict[str, Any]) -> Any:
        return object()

    return d


def sock_path(tmp_path: Path) -> str:
    # AF_UNIX paths are limited to ~108 bytes; tmp_path can be long.
    p = tmp_path / "s.sock"
    if len(str(p)) < 100:
        return str(p)
    import tempfile

    return os.path.join(tempfile.mkdtemp(prefix="spur"), "s.sock")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return generate_test_pki(tmp_path_factory.mktemp("pki"),
                             [("alice", "admin"), ("bob", "viewer"), ("carol", "operator")])


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return generate_test_pki(tmp_path_factory.mktemp("other_pki"), [("mallory", "admin")])


def server_ctx(pki: dict[str, Any]) -> Any:
    return server_ssl_context(pki["server_cert"], pki["server_key"], pki["ca_cert"])


def client_ctx(pki: dict[str, Any], user: str | None, ca: str | None = None) -> Any:
    if user is None:
        return client_ssl_context(None, None, ca or pki["ca_cert"])
    c = pki["clients"][user]
    return client_ssl_context(c["cert"], c["key"], ca or pki["ca_cert"])


def port_of(server: asyncio.Server) -> int:
    return server.sockets[0].getsockname()[1]


# --------------------------------------------------------------------------- basics


def test_import_is_light() -> None:
    code = ("import sys, spurio.rpc; "
            "print(sorted(m for m in ('asyncio', 'ssl', 'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_peer_identity_from_cert() -> None:
    cert = {"subject": ((("organizationName", "Spur test"),), (("organizationalUnitName", "operator"),),
                        (("commonName", "carol"),))}
    assert peer_identity_from_cert(cert) == ("carol", "operator")
    assert peer_identity_from_cert(None) == (None, None)
    assert peer_identity_from_cert({}) == (None, None)


def test_unix_round_trip(tmp_path: Path) -> None:
    path = sock_path(tmp_path)

    async def main() -> None:
        server = await serve_unix(path, make_dispatcher())
        assert os.stat(path).st_mode & 0o777 == 0o666
        async with server:
            conn = await connect_unix(path)
            params = {"a": 1, "b": [1, 2, "x"], "c": b"\x00bin", "d": {"nested": None}, 5: "intkey"}
            assert await conn.call("echo", params, timeout=5) == params
            peer = await conn.call("whoami", {}, timeout=5)
            assert peer["transport"] == "unix"
            assert peer["uid"] == os.getuid()
            assert peer["gid"] == os.getgid()
            assert peer["pid"] == os.getpid()
            assert conn.peer["uid"] == os.getuid()  # the client sees the server's credentials
            await conn.aclose()
            assert conn.is_closed
            with pytest.raises(ConnectionFailed):
                await conn.call("echo", {})

    run(main())


def test_serve_unix_replaces_stale_socket(tmp_path: Path) -> None:
    path = sock_path(tmp_path)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # leaves the socket file behind, as a crashed daemon would

    async def main() -> None:
        async with await serve_unix(path, make_dispatcher()):
            conn = await connect_unix(path)
            assert await conn.call("echo", {"x": 1}) == {"x": 1}
            await conn.aclose()

    run(main())


def test_errors_and_unknown_method(tmp_path: Path) -> None:
    path = sock_path(tmp_path)

    async def main() -> None:
        async with await serve_unix(path, make_dispatcher()):
            conn = await connect_unix(path)
            with pytest.raises(RpcError) as ei:
                await conn.call("nope", {}, timeout=5)
            assert (ei.value.code, ei.value.message) == ("unknown_method", "unknown method: nope")
            with pytest.raises(RpcError) as ei:
                await conn.call("deny", {}, timeout=5)
            assert (ei.value.code, ei.value.message) == ("permission_denied", "not allowed")
            with pytest.raises(RpcError) as ei:
                await conn.call("boom", {}, timeout=5)
            assert ei.value.code == "internal" and "kaputt" in ei.value.message
            with pytest.raises(RpcError) as ei:
                await conn.call("unserializable", {}, timeout=5)
            assert ei.value.code == "internal"
            with pytest.raises(rpc.RpcTimeout):
                await conn.call("sleep_echo", {"delay": 1, "i": 0}, timeout=0.05)
            # the connection survived all of that (and the late reply is dropped)
            assert await conn.call("echo", {"ok": True}, timeout=5) == {"ok": True}
            assert not conn.is_closed
            await conn.aclose()

    run(main())


def test_concurrent_calls_multiplexed(tmp_path: Path) -> None:
    path = sock_path(tmp_path)

    async def main() -> None:
        async with await serve_unix(path, make_dispatcher()):
            conn = await connect_unix(path)
            rnd = random.Random(7)
            delays = [rnd.uniform(0, 0.05) for _ in range(100)]
            results = await asyncio.gather(*(
                conn.call("sleep_echo", {"i": i, "delay": d}, timeout=10) for i, d in enumerate(delays)))
            assert results == [{"i": i} for i in range(100)]
            await conn.aclose()

    run(main())


def test_notifications_both_ways(tmp_path: Path) -> None:
    path = sock_path(tmp_path)

    async def main() -> None:
        to_server: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        to_client: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        server_conns: list[RpcConnection] = []

        async def server_note(conn: RpcConnection, method: str, params: dict[str, Any]) -> None:
            await to_server.put((method, params))

        def client_note(conn: RpcConnection, method: str, params: dict[str, Any]) -> None:
            to_client.put_nowait((method, params))

        async with await serve_unix(path, make_dispatcher(), server_note, on_connect=server_conns.append):
            conn = await connect_unix(path, on_notification=client_note)
            conn.notify("hello", {"from": "client"})
            assert await asyncio.wait_for(to_server.get(), 5) == ("hello", {"from": "client"})
            # server pushes on its own initiative ...
            assert len(server_conns) == 1
            server_conns[0].notify("start_job", {"job_id": 42})
            assert await asyncio.wait_for(to_client.get(), 5) == ("start_job", {"job_id": 42})
            # ... and from inside a handler, before the reply
            assert await conn.call("push", {"n": 3}, timeout=5) == "ok"
            assert await asyncio.wait_for(to_client.get(), 5) == ("pushed", {"n": 3})
            await conn.aclose()
            await asyncio.wait_for(server_conns[0].closed(), 5)
            with pytest.raises(ConnectionFailed):
                server_conns[0].notify("late", {})

    run(main())


def test_server_calls_client(tmp_path: Path) -> None:
    """The server can also call a method on a connected client (agent role)."""
    path = sock_path(tmp_path)

    async def main() -> None:
        server_conns: list[RpcConnection] = []
        agent = Dispatcher({"kill": lambda conn, params: {"acked": params["action_id"]}})
        async with await serve_unix(path, make_dispatcher(), on_connect=server_conns.append):
            conn = await connect_unix(path, agent)
            await conn.call("echo", {}, timeout=5)
            assert await server_conns[0].call("kill", {"action_id": 9}, timeout=5) == {"acked": 9}
            await conn.aclose()

    run(main())


# --------------------------------------------------------------------------- malformed input


async def raw_exchange(path: str, data: bytes, silence: float = 0.5) -> list[Any]:
    """Send raw bytes, collect the replies until EOF or `silence` seconds without data."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(data)
    await writer.drain()
    replies: list[Any] = []
    try:
        while True:
            body = await asyncio.wait_for(rpc.read_frame(reader), silence)
            if body is None:
                replies.append("EOF")
                break
            replies.append(msgpack.unpackb(body, raw=False, strict_map_key=False))
    except (TimeoutError, ConnectionError):
        replies.append("OPEN" if not reader.at_eof() else "EOF")
    writer.close()
    return replies


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="garbage-http"),
        pytest.param(struct.pack(">I", 4) + b"\xc1\xc1\xc1\xc1", id="garbage-in-frame"),
        pytest.param(encode_frame({"not": "a list"}), id="non-list"),
        pytest.param(encode_frame([]), id="empty-list"),
        pytest.param(encode_frame([1, "x"]), id="bad-response"),
        pytest.param(encode_frame([2, 7, {}]), id="notification-method-not-str"),
        pytest.param(struct.pack(">I", rpc.MAX_FRAME + 1), id="oversized-header"),
        pytest.param(struct.pack(">I", 0), id="empty-body"),
        pytest.param(struct.pack(">I", 10) + b"\x93\x00", id="truncated-then-eof"),
    ],
)
def test_malformed_unrecoverable(tmp_path: Path, data: bytes) -> None:
    path = sock_path(tmp_path)

    async def main() -> None:
        async with await serve_unix(path, make_dispatcher()):
            if data.startswith(b"\x00\x00\x00\x0a"):  # truncated frame: half-close after sending
                reader, writer = await asyncio.open_unix_connection(path)
                writer.write(data)
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 5) == b""
                writer.close()
            else:
                replies = await raw_exchange(path, data)
                assert replies[-1] == "EOF", replies  # the connection was closed ...
                for r in replies[:-1]:  # ... after at most a clear error with msgid 0
                    assert r[0] == 1 and r[1] == 0 and r[3] is None
                    assert r[2]["code"] in ("bad_request", "frame_too_large") and r[2]["message"]
                assert len(replies) == 2
            # the server still answers a fresh client
            conn = await connect_unix(path)
            assert await conn.call("echo", {"still": "alive"}, timeout=5) == {"still": "alive"}
            await conn.aclose()

    run(main())


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ([0, 7, "echo"], "4 elements"),
        ([0, 8, 5, {}], "method must be a string"),
        ([0, 9, "echo", [1, 2]], "params must be a map"),
        ([0, 10, "echo", {}, "extra"], "4 elements"),
        ([5, 11, "echo", {}], "unknown message type 5"),
    ],
)
def test_malformed_recoverable(tmp_path: Path, message: list[Any], text: str) -> None:
    path = sock_path(tmp_path)

    async def main() -> None:
        async with await serve_unix(path, make_dispatcher()):
            good = encode_frame([0, 99, "echo", {"after": 1}])
            replies = await raw_exchange(path, encode_frame(message) + good, silence=0.2)
            assert replies[0][:2] == [1, message[1]]
            assert replies[0][2]["code"] == "bad_request" and text in replies[0][2]["message"]
            # the same connection still works
            assert replies[1] == [1, 99, None, {"after": 1}]
            assert replies[2] == "OPEN"

    run(main())


def test_per_connection_max_frame(tmp_path: Path) -> None:
    path = sock_path(tmp_path)

    async def main() -> None:
        async with await serve_unix(path, make_dispatcher(), max_frame=1024):
            conn = await connect_unix(path)
            assert await conn.call("echo", {"x": "a" * 100}, timeout=5) == {"x": "a" * 100}
            with pytest.raises(RpcError) as ei:
                await conn.call("echo", {"x": "a" * 4000}, timeout=5)
            assert ei.value.code == "frame_too_large"
            await asyncio.wait_for(conn.closed(), 5)
            # a client refuses to send more than its own maximum, without touching the wire
            small = await connect_unix(path, max_frame=64)
            with pytest.raises(rpc.FrameTooLarge):
                await small.call("echo", {"x": "a" * 100})
            assert await small.call("echo", {"x": 1}, timeout=5) == {"x": 1}
            await small.aclose()
            # a reply larger than the server's maximum becomes an error reply
            fresh = await connect_unix(path)
            with pytest.raises(RpcError) as ei:
                await fresh.call("big", {"n": 5000}, timeout=5)
            assert ei.value.code == "frame_too_large"
            assert await fresh.call("big", {"n": 10}, timeout=5) == "x" * 10  # still connected
            await fresh.aclose()

    run(main())


# --------------------------------------------------------------------------- TLS


def test_tls_round_trip_with_identity(pki: dict[str, Any]) -> None:
    async def main() -> None:
        async with await serve_tcp("127.0.0.1", 0, make_dispatcher(), server_ctx(pki)) as server:
            port = port_of(server)
            for user, role in (("alice", "admin"), ("bob", "viewer")):
                conn = await connect_tcp("127.0.0.1", port, client_ctx(pki, user))
                peer = await conn.call("whoami", {}, timeout=5)
                assert peer["transport"] == "tcp" and peer["tls"] is True
                assert (peer["cn"], peer["ou"]) == (user, role)
                assert await conn.call("echo", {"n": 1}, timeout=5) == {"n": 1}
                assert conn.peer["cn"] == "localhost"  # the client sees the server certificate
                await conn.aclose()
            # host name verification by DNS name as well
            conn = await connect_tcp("127.0.0.1", port, client_ctx(pki, "carol"), server_hostname="localhost")
            assert (await conn.call("whoami", {}, timeout=5))["ou"] == "operator"
            await conn.aclose()

    run(main())


async def expect_refused(port: int, ctx: Any) -> None:
    with pytest.raises(ConnectionFailed):
        # TLS 1.3: the client's handshake may complete before the server rejects the
        # certificate; the refusal then surfaces on the first call.
        conn = await connect_tcp("127.0.0.1", port, ctx, timeout=5)
        try:
            await conn.call("whoami", {}, timeout=5)
        finally:
            await conn.aclose()


def test_tls_client_without_certificate_refused(pki: dict[str, Any]) -> None:
    async def main() -> None:
        async with await serve_tcp("127.0.0.1", 0, make_dispatcher(), server_ctx(pki)) as server:
            port = port_of(server)
            await expect_refused(port, client_ctx(pki, None))
            conn = await connect_tcp("127.0.0.1", port, client_ctx(pki, "alice"))
            assert (await conn.call("whoami", {}, timeout=5))["cn"] == "alice"
            await conn.aclose()

    run(main())


def test_tls_client_from_other_ca_refused(pki: dict[str, Any], other_pki: dict[str, Any]) -> None:
    async def main() -> None:
        async with await serve_tcp("127.0.0.1", 0, make_dispatcher(), server_ctx(pki)) as server:
            port = port_of(server)
            # trusts the right CA for the server, but presents a certificate from another CA
            m = other_pki["clients"]["mallory"]
            await expect_refused(port, client_ssl_context(m["cert"], m["key"], pki["ca_cert"]))
            # a client that does not trust the server's CA refuses the server
            await expect_refused(port, client_ctx(other_pki, "mallory"))
            conn = await connect_tcp("127.0.0.1", port, client_ctx(pki, "bob"))
            assert (await conn.call("whoami", {}, timeout=5))["ou"] == "viewer"
            await conn.aclose()

    run(main())


def test_connect_failures(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(ConnectionFailed):
            await connect_unix(tmp_path / "missing.sock")
    run(main())
    with pytest.raises(ConnectionFailed):
        SyncClient.unix(tmp_path / "missing.sock", timeout=2)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectionFailed):
        SyncClient.tcp("127.0.0.1", port, timeout=2)


# --------------------------------------------------------------------------- SyncClient


def test_sync_client_unix(tmp_path: Path) -> None:
    path = sock_path(tmp_path)

    def client_side() -> None:
        with SyncClient.unix(path, timeout=5) as c:
            assert c.call("echo", {"a": [1, 2], "b": b"raw"}) == {"a": [1, 2], "b": b"raw"}
            assert c.call("whoami", {})["uid"] == os.getuid()
            with pytest.raises(RpcError) as ei:
                c.call("nope", {})
            assert ei.value.code == "unknown_method" and ei.value.message == "unknown method: nope"
            with pytest.raises(RpcError) as ei:
                c.call("boom", {})
            assert ei.value.code == "internal"
            # notifications received while waiting for a reply are queued
            assert c.call("push", {"n": 1}) == "ok"
            assert c.call("push", {"n": 2}) == "ok"
            assert c.next_notification(1) == ("pushed", {"n": 1})
            assert c.next_notification(1) == ("pushed", {"n": 2})
            assert c.next_notification(0.05) is None
            # a timed-out call leaves the connection usable; its late reply is dropped
            with pytest.raises(rpc.RpcTimeout):
                c.call("sleep_echo", {"delay": 0.3, "i": 1}, timeout=0.05)
            assert c.call("sleep_echo", {"delay": 0, "i": 2}) == {"i": 2}
            c.notify("hello", {"sync": True})
        assert c.closed

    async def main() -> None:
        notes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

        def on_note(conn: RpcConnection, method: str, params: dict[str, Any]) -> None:
            notes.put_nowait((method, params))

        async with await serve_unix(path, make_dispatcher(), on_note):
            await asyncio.to_thread(client_side)
            assert await asyncio.wait_for(notes.get(), 5) == ("hello", {"sync": True})

    run(main())


def test_sync_client_tls_and_server_push(pki: dict[str, Any]) -> None:
    server_conns: list[RpcConnection] = []

    def client_side(port: int) -> None:
        with SyncClient.tcp("127.0.0.1", port, timeout=5, ssl_context=client_ctx(pki, "carol")) as c:
            peer = c.call("whoami", {})
            assert (peer["cn"], peer["ou"]) == ("carol", "operator")
            assert c.next_notification(5) == ("start_job", {"job_id": 1})

    def refused(port: int) -> None:
        with pytest.raises(ConnectionFailed):
            with SyncClient.tcp("127.0.0.1", port, timeout=5, ssl_context=client_ctx(pki, None)) as c:
                c.call("whoami", {})

    async def main() -> None:
        async def push_soon() -> None:
            while not server_conns:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            server_conns[0].notify("start_job", {"job_id": 1})

        async with await serve_tcp("127.0.0.1", 0, make_dispatcher(), server_ctx(pki),
                                   on_connect=server_conns.append) as server:
            port = port_of(server)
            pusher = asyncio.create_task(push_soon())
            await asyncio.to_thread(client_side, port)
            await pusher
            await asyncio.to_thread(refused, port)

    run(main())


def test_sync_client_frame_limits(tmp_path: Path) -> None:
    path = sock_path(tmp_path)

    def client_side() -> None:
        with SyncClient.unix(path, timeout=5, max_frame=64) as c:
            with pytest.raises(rpc.FrameTooLarge):
                c.call("echo", {"x": "a" * 100})
            assert c.call("echo", {"x": 1}) == {"x": 1}
        with SyncClient.unix(path, timeout=5) as c:
            with pytest.raises(RpcError) as ei:
                c.call("echo", {"x": "a" * 2000})  # larger than the server's maximum
            assert ei.value.code == "frame_too_large"
            assert c.closed
            with pytest.raises(ConnectionFailed):
                c.call("echo", {})

    async def main() -> None:
        async with await serve_unix(path, make_dispatcher(), max_frame=1024):
            await asyncio.to_thread(client_side)

    run(main())
