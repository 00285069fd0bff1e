"""One contract, two logs: the simulation's in-memory log (tests/sim) and the real
pysyncobj-backed replicas (spurctld) must behave alike for everything Spur relies on
(eventsourcing's "every backend passes the same contract tests").

The contract, over the client's view of a 3-replica log:
- an op proposed through the leader is answered with the reducer's result once committed,
  and every replica ends up with the same state (equal digests);
- a retried op (same request id) is answered with the first result, never applied twice;
- after the leader is lost, a new one is elected and every acknowledged op is still there;
- a replica that was down catches up to the same digest when it comes back.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from spurio.client import Client
from spurio.rpc import RpcError
from tests.integration.conftest import wait_for
from tests.sim.sim import Sim

SCRIPT = "#!/bin/sh\ntrue\n"


class SimHarness:
    """The contract's verbs over the simulation (sim time advances while waiting)."""

    def __init__(self, tmp_path: Any) -> None:
        self.sim = Sim(seed=1, replicas=3, nodes=0)
        self.sim.run_until(1.0)

    def submit(self, name: str) -> int:
        op = self.sim.submit(name, "true")
        return self._wait(op)

    def submit_again(self, name: str) -> int:
        """The same request id as ``submit(name)``: a client retry."""
        op = self.sim.submit(name, "true")
        return self._wait(op)

    def _wait(self, op: Any) -> Any:
        end = self.sim.now + 30
        while op.outcome == "pending" and self.sim.now < end:
            self.sim.step()
        assert op.outcome == "ok", op
        return op.result

    def jobs(self) -> list[int]:
        assert self.sim.log.leader is not None
        return sorted(self.sim.log.leader.state.jobs)

    def kill_leader(self) -> int:
        leader = self.sim.log.leader
        assert leader is not None
        self.sim.crash_replica("leader")
        return leader.rid

    def restart(self, rid: int) -> None:
        self.sim.restart_replica(str(rid))

    def digests_agree(self) -> bool:
        end = self.sim.now + 30
        while self.sim.now < end:
            self.sim.step()
            live = [r for r in self.sim.replicas if r.alive]
            ldr = self.sim.log.leader
            if ldr is not None and all(r.applied == len(ldr.log) for r in live):
                from spurcore.snapshot import digest

                return len({digest(r.state) for r in live}) == 1
        return False

    def close(self) -> None:
        pass


class RealHarness:
    """The same verbs over three real spurctld replicas on loopback."""

    def __init__(self, make_cluster: Any, tmp_path: Any) -> None:
        self.cluster = make_cluster(replicas=3, nodes=0)
        self.client = Client(self.cluster.config, retry_for=30)
        self.tmp = str(tmp_path)

    def _spec(self, name: str) -> dict[str, Any]:
        return {"name": name, "script": SCRIPT, "cwd": self.tmp}

    def submit(self, name: str) -> int:
        return self.client.call("submit", {"request_id": f"sub-{name}", "spec": self._spec(name)})["job_id"]

    submit_again = submit

    def jobs(self) -> list[int]:
        return sorted(j["job_id"] for j in self.client.call("jobs", {})["jobs"])

    def kill_leader(self) -> int:
        rid = self.cluster.wait_leader()
        self.cluster.kill(f"ctld-{rid}", signal.SIGKILL)
        self.client.close()
        return rid

    def restart(self, rid: int) -> None:
        self.cluster.start_replica(rid)

    def digests_agree(self) -> bool:
        def agree() -> bool:
            try:
                digests = self.cluster.digests()
            except RpcError:
                return False
            return len(digests) == 3 and len({d for d, _ in digests.values()}) == 1

        try:
            wait_for(agree, 30, "the replicas' digests to agree")
        except AssertionError:
            return False
        return True

    def close(self) -> None:
        self.client.close()


@pytest.fixture(params=["in-memory", "pysyncobj"])
def log(request: Any, make_cluster: Any, tmp_path: Any) -> Any:
    harness = SimHarness(tmp_path) if request.param == "in-memory" else RealHarness(make_cluster, tmp_path)
    yield harness
    harness.close()


def test_committed_ops_are_answered_and_replicated(log):
    ids = [log.submit(f"a{i}") for i in range(5)]
    assert ids == [1, 2, 3, 4, 5]  # the reducer allocates ids in log order
    assert log.jobs() == ids
    assert log.digests_agree()


def test_a_retried_op_is_answered_with_its_first_result(log):
    first = log.submit("once")
    assert log.submit_again("once") == first
    assert log.jobs() == [first]


def test_acknowledged_ops_survive_the_loss_of_the_leader(log):
    before = [log.submit(f"b{i}") for i in range(3)]
    dead = log.kill_leader()
    t0 = time.monotonic()
    after = log.submit("c")  # answered by a new leader
    assert time.monotonic() - t0 < 30
    assert log.jobs() == [*before, after]
    log.restart(dead)
    assert log.digests_agree()  # the old leader caught up
