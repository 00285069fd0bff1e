"""Random frames and requests against a live 3-replica cluster (issue 12's first bullet).

From root (who may do everything, including speak for agents) and from an unprivileged user
(uid 65534, through a child process that dropped to it), hypothesis sends:

* raw byte strings and length-prefixed frames of random msgpack;
* requests for every method with random values, and valid requests with one field replaced,
  dropped or added.

Every reply is a result or an error with a code that is not ``internal``; a malformed frame
gets a connection-level error or a closed connection; after each case the leader still
answers. At the end: no traceback in any replica's log, every replica alive, every node in
the replicated state a valid node name, every job's name a string, and the replicas' digests
equal (what was accepted was accepted identically everywhere).

No agent runs, so nothing a random request submits is ever executed.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spurcore.messages import REQUESTS
from spurcore.schema import NODE_NAME, structure
from spurctld.local import LocalCluster, write_config
from spurio import rpc
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another uid")

REPO = Path(__file__).resolve().parents[2]
SPEC = {"name": "f", "user": "root", "uid": 0, "gid": 0, "script": "#!/bin/sh\ntrue\n", "argv": [],
        "env": {}, "cwd": "/tmp"}

#: One valid request per method (test_examples_are_valid checks them): the starting point
#: of the one-field mutations.
EXAMPLES: dict[str, dict[str, Any]] = {
    "ping": {}, "config": {}, "digest": {}, "reconfigure": {}, "nodes": {}, "partitions": {},
    "accounting_show": {}, "sshare": {}, "sched_config": {},
    "submit": {"request_id": "x1", "spec": SPEC},
    "signal": {"request_id": "x2", "job_id": 1, "kind": 1, "signal": 9},
    "signal_many": {"requests": [{"request_id": "x3", "job_ref": "1_[1-3]", "kind": 1}]},
    "hold": {"request_id": "x4", "job_id": 1},
    "release": {"request_id": "x5", "job_id": 1},
    "requeue": {"request_id": "x6", "job_id": 1, "hold": True},
    "update_job": {"request_id": "x7", "job_id": 1, "changes": {"name": "g"}},
    "jobs": {"job_ids": [1], "states": ["PENDING"]},
    "history": {"job_ids": [1], "start": 0.0},
    "job_at": {"job_id": 1},
    "job_complete": {"request_id": "x8", "job_id": 1, "exit_code": 0},
    "step_create": {"request_id": "x9", "job_id": 1, "ntasks": 1, "nodelist": ["fz1"]},
    "node_register": {"name": "fz1", "cpus": 2, "mem_mb": 1024, "jobs": [1]},
    "heartbeat": {"name": "fz1"},
    "report": {"report_id": "r1", "job_id": 1, "node": "fz1", "exit_code": 1},
    "launched": {"node": "fz1", "job_id": 1},
    "ack": {"node": "fz1", "action_id": 1},
    "update_node": {"request_id": "x10", "names": "fz1", "state": "DRAIN", "reason": "r"},
    "update_partition": {"request_id": "x11", "name": "debug", "changes": {"MaxTime": "10"}},
    "accounting_update": {"request_id": "x12", "action": "add", "entity": "account", "names": ["a"]},
    "sprio": {"job_ids": [1]},
}

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=True)
           | st.text(max_size=24) | st.binary(max_size=24)
           | st.sampled_from(["", "root", "fz1", "a" * 2000, "../x", "n[1-3]", "-1", "DRAIN"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12) | st.integers(-5, 5), inner, max_size=4),
                      max_leaves=12)
methods = st.sampled_from(sorted(REQUESTS)) | st.text(max_size=16)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any]:
    method = draw(st.sampled_from(sorted(EXAMPLES)))
    params = dict(EXAMPLES[method])
    how = draw(st.sampled_from(["replace", "drop", "add", "nested"]))
    if how == "replace" and params:
        params[draw(st.sampled_from(sorted(params)))] = draw(values)
    elif how == "drop" and params:
        params.pop(draw(st.sampled_from(sorted(params))))
    elif how == "nested" and "spec" in params:
        spec = dict(params["spec"])
        spec[draw(st.sampled_from(sorted(spec)) | st.text(max_size=8))] = draw(values)
        params["spec"] = spec
    else:
        params[draw(st.text(max_size=12))] = draw(values)
    return method, params


requests = st.one_of(mutated(), st.tuples(methods, st.dictionaries(st.text(max_size=12), values, max_size=5)),
                     st.tuples(methods, values))

raw_frames = st.one_of(
    st.binary(max_size=64),
    values.map(lambda v: msgpack.packb(v, use_bin_type=True)).map(lambda b: struct.pack(">I", len(b)) + b),
    st.tuples(st.integers(0, 3), st.integers(-3, 2**33), values, values).map(
        lambda t: _frame(list(t))),
    st.integers(2**20, 2**32 - 1).map(lambda n: struct.pack(">I", n) + b"\x90"),
)


def _frame(message: Any) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


# The unprivileged client: a child that dropped to uid/gid 65534 and forwards each
# (method, params) frame it reads on stdin to the leader, answering [code, message] (code None
# on success). It reconnects after a connection-level error.
NOBODY = r"""
import os, struct, sys
import msgpack
from spurio import rpc
os.setgroups([]); os.setgid(65534); os.setuid(65534)
sock = sys.argv[1]
c = None
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = inp.read(4)
    if len(head) < 4:
        break
    method, params = msgpack.unpackb(inp.read(struct.unpack(">I", head)[0]), raw=False, strict_map_key=False)
    try:
        if c is None:
            c = rpc.SyncClient.unix(sock, timeout=10)
        c.call(method, params)
        answer = [None, ""]
    except rpc.RpcError as e:
        answer = [e.code, e.message]
    except (rpc.ConnectionFailed, OSError) as e:
        answer = ["connection", str(e)]
        c = None
    body = msgpack.packb(answer, use_bin_type=True)
    out.write(struct.pack(">I", len(body)) + body)
    out.flush()
"""


class Fuzz:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.leader = cluster.wait_leader()
        self.socket = cluster.config.replica(self.leader).socket
        # root talks to every replica: a follower forwards what it does not answer itself
        self.sockets = [r.socket for r in cluster.config.replicas]
        self.roots = [rpc.SyncClient.unix(path, timeout=10) for path in self.sockets]
        self.nobody = subprocess.Popen([sys.executable, "-c", NOBODY, self.socket], cwd=REPO,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.cases = 0

    def close(self) -> None:
        for c in self.roots:
            c.close()
        assert self.nobody.stdin is not None
        self.nobody.stdin.close()
        self.nobody.wait(timeout=10)

    def as_root(self, method: Any, params: Any, replica: int = 0) -> tuple[str | None, str]:
        try:
            self.roots[replica].call(method, params)
            return None, ""
        except rpc.RpcError as e:
            return e.code, e.message
        except (rpc.ConnectionFailed, OSError) as e:  # a connection-level error closes it
            self.roots[replica] = rpc.SyncClient.unix(self.sockets[replica], timeout=10)
            return "connection", str(e)

    def as_nobody(self, method: Any, params: Any) -> tuple[str | None, str]:
        assert self.nobody.stdin is not None and self.nobody.stdout is not None
        body = msgpack.packb([method, params], use_bin_type=True)
        self.nobody.stdin.write(struct.pack(">I", len(body)) + body)
        self.nobody.stdin.flush()
        head = self.nobody.stdout.read(4)
        assert len(head) == 4, "the unprivileged client died"
        code, message = msgpack.unpackb(self.nobody.stdout.read(struct.unpack(">I", head)[0]), raw=False)
        return code, message

    def raw(self, data: bytes) -> bytes:
        """Send ``data`` on a fresh connection and end it (the server sees EOF); what came
        back before the server closed its side."""
        got = b""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(self.socket)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(65536):
                got += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us mid-frame: fine
        finally:
            s.close()
        return got

    def still_serving(self) -> None:
        with rpc.SyncClient.unix(self.socket, timeout=10) as c:
            assert c.call("ping", {})["leader"]


@pytest.fixture(scope="module")
def fuzz() -> Iterator[Fuzz]:
    # pytest's temp root is private to root; the unprivileged client must reach the socket.
    d = Path(tempfile.mkdtemp(prefix="spur-fuzz-", dir="/tmp"))
    d.chmod(0o755)
    write_config(d, replicas=3, nodes=0)
    (d / "run").chmod(0o755)
    cluster = LocalCluster(d)
    f = None
    try:
        cluster.up()
        f = Fuzz(cluster)
        yield f
    finally:
        if f is not None:
            f.close()
        cluster.down()
        shutil.rmtree(d, ignore_errors=True)


def _check_answer(code: str | None, message: str) -> None:
    if code is None:
        return
    assert code != "internal", message
    assert isinstance(code, str) and code and isinstance(message, str) and message


FUZZ = settings(max_examples=int(os.environ.get("SPUR_FUZZ_EXAMPLES", "250")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


@FUZZ
@given(request=requests, replica=st.integers(0, 2))
def test_random_requests_from_root(fuzz: Fuzz, request: tuple[Any, Any], replica: int) -> None:
    _check_answer(*fuzz.as_root(*request, replica=replica))
    fuzz.cases += 1


@FUZZ
@given(request=requests)
def test_random_requests_from_an_unprivileged_user(fuzz: Fuzz, request: tuple[Any, Any]) -> None:
    code, message = fuzz.as_nobody(*request)
    _check_answer(code, message)
    if request[0] in PRIVILEGED:
        assert code is not None, f"user 65534 may not call {request[0]}"
    fuzz.cases += 1


#: What only root (or SlurmUser) may do: speak for an agent, change the configuration.
PRIVILEGED = ("node_register", "heartbeat", "report", "launched", "ack", "reconfigure", "update_node",
              "update_partition", "accounting_update")


def test_a_user_may_not_speak_for_agents_or_change_the_configuration(fuzz: Fuzz) -> None:
    for method in PRIVILEGED:
        assert fuzz.as_nobody(method, EXAMPLES[method]) == ("access_denied", "Access/permission denied"), method


@FUZZ
@given(data=raw_frames)
def test_random_frames(fuzz: Fuzz, data: bytes) -> None:
    got = fuzz.raw(data)
    # Whatever came back is well-formed responses; a connection-level error is never internal.
    for body in rpc.FrameReader().feed(got):
        msg = msgpack.unpackb(body, raw=False)
        assert msg[0] == rpc.RESPONSE
        if msg[2] is not None:
            _check_answer(msg[2]["code"], msg[2]["message"])
    fuzz.still_serving()
    fuzz.cases += 1


def test_examples_are_valid() -> None:
    assert set(EXAMPLES) == set(REQUESTS)
    for method, params in EXAMPLES.items():
        structure(REQUESTS[method], params, method)


def test_after_the_fuzz_the_cluster_is_whole(fuzz: Fuzz) -> None:
    assert fuzz.cases > 0, "run with the fuzz cases before this test"
    fuzz.still_serving()
    cluster = fuzz.cluster
    with rpc.SyncClient.unix(fuzz.socket, timeout=30) as c:
        nodes = c.call("nodes", {})["nodes"]
        jobs = c.call("jobs", {})["jobs"]
    for node in nodes:
        assert isinstance(node["name"], str) and NODE_NAME.fullmatch(node["name"]), node["name"]
    for job in jobs:
        assert isinstance(job["name"], str) and isinstance(job["user"], str), job
    for rid in (r.id for r in cluster.config.replicas):
        assert cluster.ping(rid, timeout=5) is not None, f"replica {rid} stopped serving"
    wait_for(lambda: len({d for d, _ in cluster.digests().values()}) == 1, 30, "replicas to agree")
    for log in cluster.log_dir.glob("ctld-*.log"):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, f"{log.name}:\n{text[text.index('Traceback') - 2000:][:6000]}"
