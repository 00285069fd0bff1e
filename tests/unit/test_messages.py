"""spurcore.messages: the controller's requests as typed messages (issue: typed boundaries)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spurcore.messages import JOB_SPEC, REQUESTS, NodeRegister, Submit, spec_fields
from spurcore.ops import JobSpec
from spurcore.schema import BadRequest, structure


def test_every_jobspec_field_has_a_wire_rule():
    assert set(JOB_SPEC) == {f.name for f in attrs.fields(JobSpec)}


@pytest.mark.parametrize(("raw", "where"), [
    ({"name": "[True]"}, "name"),
    ({"name": {"nodes": None}}, "name"),
    ({"name": "n1", "cpus": 0}, "cpus"),
    ({"name": "n1", "jobs": [0]}, "jobs[0]"),
    ({"name": "n1", "surprise": 1}, "surprise"),
])
def test_node_names_and_values_follow_slurms_rules(raw, where):
    with pytest.raises(BadRequest) as err:
        structure(NodeRegister, raw)
    assert err.value.where == where


def test_a_submit_names_the_bad_spec_field():
    with pytest.raises(BadRequest) as err:
        structure(Submit, {"spec": {"name": "x", "nodes": "2"}})
    assert str(err.value).startswith("spec.nodes: expected an integer")
    with pytest.raises(BadRequest, match="spec.script"):
        structure(Submit, {"spec": {"script": "#" * (4 * 1024 * 1024 + 1)}})
    msg = structure(Submit, {"request_id": "r", "spec": {"name": "x", "argv": ["a"], "hold": True}})
    assert spec_fields(msg.spec) == {"name": "x", "argv": ("a",), "hold": True}


wire = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=6),
    max_leaves=25,
)


@given(st.sampled_from(sorted(REQUESTS)), wire)
def test_any_input_is_a_request_or_a_bad_request(method, raw):
    try:
        structure(REQUESTS[method], raw)
    except BadRequest:
        pass


# What slips past the boundary (a proposer that skipped it) the reducer still refuses, the
# same way on every replica: the op is rejected and the state does not change.

@pytest.mark.parametrize("name", [True, "", "a b", "x" * 65, "-lead", None, 7])
def test_the_reducer_refuses_a_node_that_is_not_a_name(name):
    from spurcore.model import ClusterState
    from spurcore.ops import NodeRegistered
    from spurcore.reduce import Rejected, apply

    state = ClusterState()
    result = apply(state, NodeRegistered(name, 2, 100, "", 1.0))
    assert isinstance(result, Rejected) and result.code == "invalid_node"
    assert state.nodes == {} and state.rejected == 1  # counted, as every rejection


@pytest.mark.parametrize(("field", "value"), [("name", True), ("user", ["root"]), ("partition", None),
                                              ("uid", "0"), ("nodes", 1.5), ("script", b"#!/bin/sh")])
def test_the_reducer_refuses_a_spec_of_the_wrong_types(field, value):
    import attrs

    from spurcore.model import ClusterState
    from spurcore.ops import JobSpec, JobSubmitted
    from spurcore.reduce import Rejected, apply

    spec = attrs.evolve(JobSpec("j", "root", 0, 0, "#!/bin/sh\n", (), {}, "/tmp"), **{field: value})
    state = ClusterState()
    result = apply(state, JobSubmitted("r", spec, 1.0))
    assert isinstance(result, Rejected) and result.message == f"Invalid job specification: {field}"
    assert state.jobs == {} and state.next_job_id == 1
