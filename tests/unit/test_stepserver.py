"""spurio.stepserver's transport choice and the agent's access rule for step requests
(docs/protocol.md, "srun, sattach, sstat ↔ agent"; operator guide, "TLS certificates")."""

from __future__ import annotations

import os
import socket

import pytest

from spurio import stepserver
from spurio.stepserver import agent_address, endpoints, split_host_port, step_access

USERS = {"alice": 1000, "bob": 1001, "root": 0}


def access(peer_uid, tls_peer=None, job_uid=1000, own_uid=0, node="node1"):
    return step_access(peer_uid, tls_peer, job_uid=job_uid, own_uid=own_uid, node=node, uid_of=USERS.get)


def test_address_lists_tls_then_unix_and_reads_back():
    assert agent_address("/run/spurd.sock") == "unix:/run/spurd.sock"
    both = agent_address("/var/spool/my node/spurd.sock", "10.0.0.5:6818")
    assert both == "tcp:10.0.0.5:6818 unix:/var/spool/my node/spurd.sock"
    assert endpoints(both) == ["tcp:10.0.0.5:6818", "unix:/var/spool/my node/spurd.sock"]
    assert endpoints("unix:/run/spurd.sock") == ["unix:/run/spurd.sock"]
    assert endpoints("  tcp:[fe80::1]:6818  ") == ["tcp:[fe80::1]:6818"]
    assert endpoints("") == []


def test_host_port():
    assert split_host_port("127.0.0.1:0") == ("127.0.0.1", 0)
    assert split_host_port("[::]:6818") == ("::", 6818)
    assert split_host_port(":6818") == ("", 6818)
    for bad in ("node1", "node1:http", "node1:70000"):
        with pytest.raises(ValueError):
            split_host_port(bad)


def test_unix_peers_root_the_owner_or_the_agent_itself():
    assert access(0) and access(1000) and access(4242, own_uid=4242)
    assert not access(1001)
    assert not access(None)


def test_tls_identity_is_believed_only_from_the_agents_own_relay():
    """A local user cannot claim a certificate identity: TLS_PEER counts only when the
    Unix peer is root or the agent's uid (the relay runs as the agent)."""
    admin = {"user": "root", "role": "admin"}
    assert access(0, admin, job_uid=1000)
    assert not access(1001, admin, job_uid=1000)  # bob's own uid decides, not the field
    assert access(1000, admin, job_uid=1000)  # alice is the owner anyway


@pytest.mark.parametrize(("peer", "allowed"), [
    ({"user": "alice", "role": "user"}, True),  # the job's owner
    ({"user": "bob", "role": "user"}, False),  # another user: Access/permission denied
    ({"user": "alice", "role": "viewer"}, False),  # viewers only read (controllers' rule)
    ({"user": "alice", "role": "nonsense"}, False),  # an unknown OU is a viewer
    ({"user": "nosuchuser", "role": "user"}, False),  # a CN this node cannot resolve
    ({"user": "ops", "role": "operator"}, True),
    ({"user": "root", "role": "admin"}, True),
    ({"user": "node1", "role": "node"}, True),  # the agent's own certificate
    ({"user": "node2", "role": "node"}, False),  # another node's
    ({"user": "", "role": "user"}, False),
])
def test_tls_identities_as_the_controllers_judge_them(peer, allowed):
    assert access(0, peer, job_uid=1000, own_uid=0) is allowed


def test_connect_prefers_the_unix_socket_that_exists_here(tmp_path):
    path = str(tmp_path / "spurd.sock")
    lsock = stepserver.listen(path)
    try:
        # the TLS endpoint is never tried: nothing listens there, and no CA is given
        sock = stepserver.connect(agent_address(path, "127.0.0.1:1"), timeout=2, tls=("", None, None))
        assert sock.family == socket.AF_UNIX
        sock.close()
    finally:
        lsock.close()


def test_connect_without_the_socket_goes_to_tls(tmp_path):
    """A login host: the node's socket path does not exist here, so TLS is used; without a
    certificate or a CA it says so."""
    missing = str(tmp_path / "elsewhere" / "spurd.sock")
    with pytest.raises(stepserver.AgentTlsError, match="set SPUR_CERT and SPUR_KEY"):
        stepserver.connect("tcp:127.0.0.1:1", timeout=2, tls=("ca.pem", None, None))
    with pytest.raises(stepserver.AgentTlsError, match=r"no \[tls\] ca"):
        stepserver.connect("tcp:127.0.0.1:1", timeout=2, tls=("", "c.pem", "k.pem"))
    # with a Unix endpoint too, its error stands, retryable (an agent restarting unlinks
    # its socket), with the reason TLS was not tried
    with pytest.raises(FileNotFoundError, match=r"No such file or directory \(and .*set SPUR_CERT"):
        stepserver.connect(agent_address(missing, "127.0.0.1:1"), timeout=2, tls=("ca.pem", None, None))
    with pytest.raises(FileNotFoundError):
        stepserver.connect(agent_address(missing), timeout=2)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from spurio.pki import generate_test_pki

    return generate_test_pki(tmp_path_factory.mktemp("pki"), [("alice", "user")])


def _tls_server(pki):
    """A TLS listener on 127.0.0.1 that completes one handshake (client certificate
    required); returns (port, thread)."""
    import ssl
    import threading

    from spurio.rpc import server_ssl_context

    ctx = server_ssl_context(pki["server_cert"], pki["server_key"], pki["ca_cert"])
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]

    def serve():
        conn, _ = lsock.accept()
        lsock.close()
        conn.settimeout(5)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return port, t


def test_a_refusing_socket_file_falls_back_to_tls(tmp_path, pki):
    """A socket file nobody listens on (stale, or another host's on a shared file system)."""
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    assert os.path.exists(path)
    with pytest.raises(ConnectionRefusedError):
        stepserver.connect(agent_address(path), timeout=2)
    port, t = _tls_server(pki)
    alice = pki["clients"]["alice"]
    sock = stepserver.connect(agent_address(path, f"127.0.0.1:{port}"), timeout=5,
                              tls=(pki["ca_cert"], alice["cert"], alice["key"]))
    assert type(sock).__name__ == "SSLSocket" and sock.getpeercert()
    sock.close()
    t.join(5)


def test_tls_checks_the_agents_name(tmp_path):
    """The agent's certificate must name the address srun dials, as for the controllers:
    one made for another host is refused."""
    import ssl

    from spurio.pki import generate_test_pki

    other = generate_test_pki(tmp_path, [("alice", "user")], server_names=("node9.example",),
                              server_ips=("10.9.9.9",))
    port, t = _tls_server(other)
    alice = other["clients"]["alice"]
    with pytest.raises(ssl.SSLCertVerificationError):
        stepserver.connect(f"tcp:127.0.0.1:{port}", timeout=5, tls=(other["ca_cert"], alice["cert"], alice["key"]))
    t.join(5)
