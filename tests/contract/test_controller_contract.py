"""The fake controllers of the tools' unit tests and the real controller pass the same tests.

The tools' unit tests run against two fakes (``tests/unit/test_cli_main.py``'s, for sbatch,
scancel and friends; ``tests/unit/query_fake.py``'s, for the query tools). A fake implements
a subset of the methods; what it implements must behave as the real controller does, or the
tools' tests prove nothing: the same refusals (unknown method, a malformed request naming
the field, an unknown job), records of the same shape, job references resolved alike.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spurctld.local import LocalCluster, write_config
from spurio import rpc
from tests.contract.controller_contract import real_job_record, real_node_record
from tests.unit import query_fake
from tests.unit import test_cli_main as cli_fake

SPEC = {"name": "contract", "script": "#!/bin/sh\ntrue\n", "cwd": "/tmp"}


class Impl:
    """One controller under test: ``call`` and how to make a pending job or array."""

    def __init__(self, name: str, call: Callable[[str, dict[str, Any]], Any], methods: set[str] | None,
                 pending_job: Callable[[], int], pending_array: Callable[[str], int] | None) -> None:
        self.name, self.call, self.methods = name, call, methods
        self.pending_job, self.pending_array = pending_job, pending_array

    def needs(self, *methods: str) -> None:
        missing = [m for m in methods if self.methods is not None and m not in self.methods]
        if missing:
            pytest.skip(f"the {self.name} controller does not implement {', '.join(missing)}")

    def error(self, method: str, params: dict[str, Any]) -> rpc.RpcError:
        with pytest.raises(rpc.RpcError) as err:
            self.call(method, params)
        return err.value


def _client_call(path: str) -> Callable[[str, dict[str, Any]], Any]:
    def call(method: str, params: dict[str, Any]) -> Any:
        with rpc.SyncClient.unix(path, timeout=30) as c:
            return c.call(method, params)

    return call


@pytest.fixture(scope="module", params=["real", "cli-fake", "query-fake"])
def impl(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Impl]:
    if request.param == "real":
        d = tmp_path_factory.mktemp("contract")
        write_config(d, replicas=1, nodes=0)  # no node: every job stays pending
        cluster = LocalCluster(d)
        cluster.up()
        call = _client_call(cluster.config.replicas[0].socket)

        def submit(array: str = "") -> int:
            spec = dict(SPEC, array=array) if array else SPEC
            return int(call("submit", {"spec": spec})["job_id"])

        try:
            yield Impl("real", call, None, submit, submit)
        finally:
            cluster.down()
        return
    d = tempfile.mkdtemp(prefix="spurk", dir="/tmp")  # Unix socket paths are short
    path = os.path.join(d, "ctld.sock")
    if request.param == "cli-fake":
        fake = cli_fake.FakeController(path)
        fake.start()
        call = _client_call(path)
        impl = Impl("cli-fake", call, set(fake.handlers),
                    lambda: int(call("submit", {"spec": SPEC})["job_id"]), None)
    else:
        qfake = query_fake.FakeController(path)
        qfake.start()
        fake = qfake
        next_id = [500]

        def add_job() -> int:
            next_id[0] += 1
            qfake.jobs.append(query_fake.job(next_id[0], "PENDING"))
            return next_id[0]

        def add_array(expr: str) -> int:
            lo, hi = (int(x) for x in expr.split("-"))
            next_id[0] += 1
            qfake.jobs.extend(query_fake.array(next_id[0], [[lo, hi, 1]], array_spec=expr))
            return next_id[0]

        impl = Impl("query-fake", _client_call(path), set(qfake.handlers), add_job, add_array)
    try:
        yield impl
    finally:
        fake.stop()


def _reference_job() -> dict[str, Any]:
    return real_job_record()


def _reference_node() -> dict[str, Any]:
    return real_node_record()


def test_an_unknown_method_is_unknown(impl: Impl) -> None:
    err = impl.error("no_such_method", {})
    assert err.code == "unknown_method" and "no_such_method" in err.message


@pytest.mark.parametrize(("method", "params", "field"), [
    ("jobs", {"job_ids": ["x"]}, "job_ids[0]"),
    ("jobs", {"no_such_field": 1}, "no_such_field"),
    ("signal", {"job_id": 0}, "job_id"),
    ("signal", {"job_id": 5, "signal": 99}, "signal"),
    ("submit", {"spec": {"name": 7}}, "spec.name"),
    ("hold", {"job_id": "5"}, "job_id"),
    ("signal_many", {"requests": [{"job_id": -1}]}, "requests[0].job_id"),
])
def test_a_malformed_request_is_refused_naming_the_field(impl: Impl, method: str, params: dict[str, Any],
                                                         field: str) -> None:
    impl.needs(method)
    err = impl.error(method, params)
    assert err.code == "bad_request"
    assert err.message.startswith(f"{method}: {field}:"), err.message


def test_job_records_have_the_real_shape(impl: Impl) -> None:
    impl.needs("jobs")
    job_id = impl.pending_job()
    [record] = impl.call("jobs", {"job_ids": [job_id]})["jobs"]
    reference = _reference_job()
    assert sorted(set(reference) - set(record)) == [], "fields the real record has and this one lacks"
    assert sorted(set(record) - set(reference)) == [], "fields the real record does not have"
    assert record["job_id"] == job_id and record["state"] == "PENDING"


def test_node_records_have_the_real_shape(impl: Impl) -> None:
    impl.needs("nodes")
    nodes = impl.call("nodes", {})["nodes"]
    if impl.name == "real":
        nodes = [_reference_node()]  # this cluster has no node; the record is views.node_info's
    reference = _reference_node()
    for node in nodes:
        assert sorted(set(reference) - set(node)) == [], "fields the real record has and this one lacks"
        assert sorted(set(node) - set(reference)) == [], "fields the real record does not have"


@pytest.mark.parametrize("method", ["signal", "hold", "release", "requeue"])
def test_an_unknown_job_is_invalid(impl: Impl, method: str) -> None:
    impl.needs(method)
    err = impl.error(method, {"job_id": 4_000_000})
    assert (err.code, err.message) == ("invalid_job_id", "Invalid job id specified")


def test_signal_many_answers_each_request(impl: Impl) -> None:
    impl.needs("signal_many")
    job_id = impl.pending_job()
    results = impl.call("signal_many", {"requests": [{"job_id": job_id, "kind": 1},
                                                     {"job_id": 4_000_000, "kind": 1}]})["results"]
    assert len(results) == 2
    assert "error" not in results[0] and isinstance(results[0].get("action_id"), int)
    assert results[1]["error"]["code"] == "invalid_job_id"


def test_array_references_resolve_alike(impl: Impl) -> None:
    impl.needs("jobs")
    if impl.pending_array is None:
        pytest.skip(f"the {impl.name} controller keeps no arrays")
    array_id = impl.pending_array("1-3")
    [pending] = impl.call("jobs", {"job_refs": [f"{array_id}_2"]})["jobs"]
    assert pending["job_id"] == array_id and pending["array_job_id"] == array_id
    assert [list(r)[:2] for r in pending["array_pending"]] == [[1, 3]]
    assert [j["job_id"] for j in impl.call("jobs", {"job_refs": [str(array_id)]})["jobs"]] == [array_id]
    err = impl.error("jobs", {"job_refs": [f"{array_id}_9"]})
    assert (err.code, err.message) == ("invalid_job_id", "Invalid job id specified")
