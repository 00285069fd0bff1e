"""The agent's TLS relays (spurd.steprelay) in front of a stand-in agent socket.

What the agent relies on (docs/architecture.md, section 13): the request reaches the agent's
Unix socket with the certificate's identity and nothing the client claimed; nothing reaches
it from a client without a valid certificate; bytes pass unchanged both ways, in volume;
and a relay outlives its zygote (the agent restarts, the step's I/O goes on)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from spurd.steprelay import Spawner
from spurio import stepserver
from spurio.pki import generate_test_pki


class FakeAgent:
    """The agent's Unix socket: records each connection's request, answers it, then echoes
    every byte back until the client closes."""

    def __init__(self, path: str) -> None:
        self.lsock = stepserver.listen(path)
        self.lsock.setblocking(True)
        self.requests: list[stepserver.StepRequest] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                req = stepserver.recv_request(conn)
            except stepserver.StepProtocolError:
                return
            self.requests.append(req)
            conn.settimeout(30)
            conn.sendall(stepserver.response(req.msgid, None, {"node": "fake"}))
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                return


class Endpoint:
    """The agent's TLS accept loop: every TCP connection goes to the relay zygote."""

    def __init__(self, spawner: Spawner) -> None:
        self.spawner = spawner
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            with conn:
                self.spawner.spawn(conn)


@pytest.fixture
def relay(tmp_path):
    pki = generate_test_pki(tmp_path / "pki", [("alice", "user"), ("root", "admin")])
    agent = FakeAgent(str(tmp_path / "agent.sock"))
    spawner = Spawner(pki["server_cert"], pki["server_key"], pki["ca_cert"], str(tmp_path / "agent.sock"))
    spawner.start()
    endpoint = Endpoint(spawner)
    yield pki, agent, spawner, endpoint
    endpoint.lsock.close()
    spawner.close()
    agent.lsock.close()


def _tls(pki, user):
    c = pki["clients"][user]
    return (pki["ca_cert"], c["cert"], c["key"])


def _reply(sock: socket.socket) -> list:
    reader = stepserver.FrameReader()
    while True:
        data = sock.recv(65536)
        assert data, "the relay closed the connection without the agent's answer"
        msgs = reader.feed(data)
        if msgs:
            return msgs[0]


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_the_agent_gets_the_certificates_identity_not_the_clients_claim(relay):
    pki, agent, _, endpoint = relay
    sock = stepserver.connect(f"tcp:127.0.0.1:{endpoint.port}", timeout=10, tls=_tls(pki, "alice"))
    with sock:
        forged = {"job_id": 7, "step_id": 0, stepserver.TLS_PEER: {"user": "root", "role": "admin"}}
        sock.sendall(stepserver.request(3, "attach_step", forged))
        assert _reply(sock) == [1, 3, None, {"node": "fake"}]
    req = agent.requests[0]
    assert req.method == "attach_step" and req.params["job_id"] == 7
    assert req.params[stepserver.TLS_PEER] == {"user": "alice", "role": "user"}
    assert req.peer_uid == os.getuid()  # the relay runs as the agent: only then is the field believed


def test_no_certificate_or_a_foreign_one_reaches_nothing(relay, tmp_path):
    pki, agent, _, endpoint = relay
    foreign = generate_test_pki(tmp_path / "other", [("alice", "user")])
    attempts = [(pki["ca_cert"], None, None), (pki["ca_cert"], foreign["clients"]["alice"]["cert"],
                                                foreign["clients"]["alice"]["key"])]
    for ca, cert, key in attempts:
        import ssl

        from spurio.rpc import client_ssl_context

        raw = socket.create_connection(("127.0.0.1", endpoint.port), timeout=10)
        with client_ssl_context(cert, key, ca).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            try:
                sock.sendall(stepserver.request(1, "step_stat", {"job_id": 1, "step_id": 0}))
                data = sock.recv(65536)  # TLS 1.3: the refusal comes as an alert on the first read
            except (ssl.SSLError, ConnectionError):
                data = b""
            assert data == b""
    # a good client afterwards is the first (and only) request the agent ever saw
    with stepserver.connect(f"tcp:127.0.0.1:{endpoint.port}", timeout=10, tls=_tls(pki, "alice")) as sock:
        sock.sendall(stepserver.request(1, "step_stat", {"job_id": 1, "step_id": 0}))
        assert _reply(sock)[2] is None
    assert [r.params[stepserver.TLS_PEER]["user"] for r in agent.requests] == ["alice"]


def test_bytes_pass_unchanged_both_ways_in_volume(relay):
    """16 MiB through the relay while the client reads the echo: backpressure on both
    sides (the relay's buffers are 4 MiB) and no byte lost, reordered or added. The client
    is srun's kind of loop: one thread, non-blocking, stepserver.recv_some/send_some (an
    SSL object must not be read and written from two threads)."""
    import selectors

    pki, _, _, endpoint = relay
    payload = os.urandom(16 << 20)
    head = stepserver.response(1, None, {"node": "fake"})
    with stepserver.connect(f"tcp:127.0.0.1:{endpoint.port}", timeout=30, tls=_tls(pki, "alice")) as sock:
        sock.sendall(stepserver.request(1, "launch_tasks", {"job_id": 1, "step_id": 0}))
        sock.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        sent, received = 0, bytearray()
        deadline = time.monotonic() + 60
        while len(received) < len(head) + len(payload):
            assert time.monotonic() < deadline, f"stuck after {len(received)} bytes received, {sent} sent"
            sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if sent < len(payload) else 0))
            ready = sel.select(1.0) if not sock.pending() else [(None, selectors.EVENT_READ)]
            for _, mask in ready:
                if mask & selectors.EVENT_WRITE and sent < len(payload):
                    sent += stepserver.send_some(sock, payload[sent:sent + 262144])
                if mask & selectors.EVENT_READ:
                    data = stepserver.recv_some(sock)
                    assert data != b"", f"EOF after {len(received)} bytes"
                    received += data or b""
        sel.close()
    assert bytes(received[:len(head)]) == head
    assert bytes(received[len(head):]) == payload


def test_a_relay_outlives_its_zygote(relay):
    """The agent stops (its zygote exits with it): a connection already relayed goes on."""
    pki, _, spawner, endpoint = relay
    with stepserver.connect(f"tcp:127.0.0.1:{endpoint.port}", timeout=10, tls=_tls(pki, "alice")) as sock:
        sock.sendall(stepserver.request(1, "launch_tasks", {"job_id": 1, "step_id": 0}))
        _reply(sock)
        zygote = spawner._proc
        spawner.close()
        assert zygote.poll() is not None
        sock.sendall(b"still there")
        got = b""
        while len(got) < len(b"still there"):
            got += sock.recv(100)
        assert got == b"still there"
