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
