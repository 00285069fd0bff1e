"""spurio.client without namespaces (no root needed): the leader cache, the
staggered concurrent connects, and "no call pays a dead replica's timeout twice".

A "dead" replica here is a TLS port that accepts TCP but never answers the handshake:
on loopback that is what a replica cut off after the TCP handshake, or a hung one,
looks like to a client."""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

import msgpack
import pytest

from spurio import client as rpc_client
from spurio.client import Client, connect_first, read_cache, write_cache
from spurio.config import load
from spurio.pki import generate_test_pki


class FakeReplica:
    """A TLS RPC server that answers ``ping`` (as leader or not) and ``echo``; or, with
    ``hang=True``, accepts connections and never says a word."""

    def __init__(self, pki: dict, *, leader: bool = True, hang: bool = False) -> None:
        self.leader, self.hang = leader, hang
        self.leader_endpoint = ""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki["server_cert"], pki["server_key"])
        self.held: list[socket.socket] = []
        self.calls: list[str] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.hang:
                self.held.append(conn)
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
            buf = b""
            while True:
                while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                n = struct.unpack(">I", buf[:4])[0]
                _, msgid, method, params = msgpack.unpackb(buf[4:4 + n], raw=False)
                buf = buf[4 + n:]
                self.calls.append(method)
                result = {"leader": self.leader, "leader_endpoint": self.leader_endpoint} if method == "ping" else params
                body = msgpack.packb([1, msgid, None, result], use_bin_type=True)
                conn.sendall(struct.pack(">I", len(body)) + body)
        except OSError:
            return

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture
def pki(tmp_path):
    return generate_test_pki(tmp_path / "pki", [("root", "admin")])


def _config(tmp_path, pki, ports):
    lines = ["[cluster]", f'state_dir = "{tmp_path}/state"', "", "[tls]", f'ca = "{pki["ca_cert"]}"']
    for i, port in enumerate(ports, 1):
        lines += ["", "[[replica]]", f"id = {i}", f'raft = "127.0.0.1:{port + 10000}"', f'rpc = "127.0.0.1:{port}"']
    path = tmp_path / "spur.toml"
    path.write_text("\n".join(lines) + "\n")
    return load(str(path))


def test_cache_round_trip_and_tolerance(tmp_path):
    path = str(tmp_path / "leader")
    write_cache(path, "tcp:10.0.0.11:6817", {"tcp:10.0.0.12:6817": time.time() + 60, "tcp:x:1": time.time() - 1})
    leader, suspects = read_cache(path)
    assert leader == "tcp:10.0.0.11:6817"
    assert list(suspects) == ["tcp:10.0.0.12:6817"]  # the expired one is gone
    (tmp_path / "leader").write_bytes(b"garbage\x00\xff\nsuspect a notanumber\nleader\n")
    assert read_cache(path) == ("", {})
    assert read_cache(str(tmp_path / "missing")) == ("", {})
    write_cache(path, "tcp:10.0.0.11:6817", {}, 1234.5)
    assert rpc_client._parse_cache(path) == ("tcp:10.0.0.11:6817", 1234.5, {})
    (tmp_path / "leader").write_text("leader tcp:10.0.0.11:6817 soon\n")  # a bad time: no hint at all
    assert rpc_client._parse_cache(path) == ("", 0.0, {})
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_recently_confirmed_leader_is_not_pinged_again(tmp_path, pki, monkeypatch):
    """Within LEADER_TRUST of a ``ping`` that confirmed it, a command goes straight to the
    cached leader; after it, or with the hint on a replica that is not the leader, it asks."""
    monkeypatch.setenv("SPUR_LEADER_CACHE", str(tmp_path / "cache"))
    follower, leader = FakeReplica(pki, leader=False), FakeReplica(pki)
    try:
        config = _config(tmp_path, pki, [follower.port, leader.port])
        follower.leader_endpoint = f"tcp:{config.replicas[1].rpc}"

        def command(n: int) -> None:
            with Client(config, retry_for=5) as client:
                assert client.call("echo", {"n": n}) == {"n": n}

        command(1)  # asks the follower, which names the leader: moves there
        assert follower.calls == ["ping"] and leader.calls == ["echo"]
        command(2)
        assert leader.calls == ["echo", "echo"]  # no ping: confirmed just now
        monkeypatch.setattr(rpc_client, "LEADER_TRUST", 0.0)
        command(3)
        assert leader.calls[2:] == ["ping", "echo"]  # the confirmation is too old: asked again
        monkeypatch.setattr(rpc_client, "LEADER_TRUST", 10.0)
        write_cache(str(tmp_path / "cache"), f"tcp:{config.replicas[0].rpc}", {}, time.time())
        command(4)  # a wrong hint is still taken at its word: the follower serves (forwards)
        assert follower.calls == ["ping", "echo"]
    finally:
        follower.close()
        leader.close()


def test_cache_directory_must_be_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SPUR_LEADER_CACHE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert rpc_client._cache_dir() == str(tmp_path / "spur")
    os.chmod(tmp_path / "spur", 0o777)  # someone could swap files in it
    assert rpc_client._cache_dir() is None
    os.rmdir(tmp_path / "spur")
    os.symlink(tmp_path / "elsewhere", tmp_path / "spur")
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    assert rpc_client._cache_dir() is None


def test_connect_first_does_not_wait_for_a_hung_replica(tmp_path, pki):
    hung, live = FakeReplica(pki, hang=True), FakeReplica(pki)
    try:
        config = _config(tmp_path, pki, [hung.port, live.port])
        ctx = ssl.create_default_context(cafile=pki["ca_cert"])
        candidates = [(r, f"tcp:{r.rpc}") for r in config.replicas]
        t = time.monotonic()
        replica, sock, failures = connect_first(candidates, ctx, timeout=5.0)
        took = time.monotonic() - t
        sock.close()
        assert replica is config.replicas[1]
        assert rpc_client.STAGGER <= took < rpc_client.STAGGER + 1.0, took
        assert failures[f"tcp:{config.replicas[0].rpc}"].startswith("abandoned")
    finally:
        hung.close()
        live.close()


def test_no_call_pays_a_dead_replica_twice(tmp_path, pki, monkeypatch):
    """Two clients in a row (two commands): the first pays the stagger once and notes the
    hung replica in the cache; the second goes straight to the live one."""
    monkeypatch.setenv("SPUR_LEADER_CACHE", str(tmp_path / "cache"))
    hung, live = FakeReplica(pki, hang=True), FakeReplica(pki)
    try:
        config = _config(tmp_path, pki, [hung.port, live.port])
        times = []
        for i in range(3):
            t = time.monotonic()
            with Client(config, retry_for=5) as client:
                assert client.call("echo", {"n": i}) == {"n": i}
            times.append(time.monotonic() - t)
        assert times[0] >= rpc_client.STAGGER
        assert max(times[1:]) < rpc_client.STAGGER, times
        leader, suspects = read_cache(str(tmp_path / "cache"))
        assert leader == f"tcp:{config.replicas[1].rpc}"
        assert f"tcp:{config.replicas[0].rpc}" in suspects
    finally:
        hung.close()
        live.close()


def test_client_moves_to_the_leader_a_follower_names(tmp_path, pki, monkeypatch):
    """A fresh connection asks ping; a follower that names the leader sends the client there."""
    monkeypatch.setenv("SPUR_LEADER_CACHE", "none")
    follower, leader = FakeReplica(pki, leader=False), FakeReplica(pki)
    try:
        config = _config(tmp_path, pki, [follower.port, leader.port])
        follower.leader_endpoint = f"tcp:{config.replicas[1].rpc}"
        with Client(config) as client:
            assert client.call("echo", {"x": 1}) == {"x": 1}
        assert follower.calls == ["ping"]
        assert leader.calls == ["echo"]  # named by the follower: no second ping
    finally:
        follower.close()
        leader.close()


def test_importing_the_client_loads_no_threads_or_ssl():
    code = ("import sys, spurio.client;"
            "print(','.join(m for m in ('threading', 'asyncio', 'ssl', 'socket') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
