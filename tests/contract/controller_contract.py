"""What a fake controller shares with the real one: requests are refused by the same
schemas (``spurcore.messages``) before any handler runs, with the same error."""

from __future__ import annotations

from typing import Any

from spurcore import messages
from spurcore.schema import BadRequest
from spurio.rpc import RpcError


def validate_request(method: str, params: Any) -> Any:
    """The typed request, or the ``bad_request`` RpcError the real controller answers."""
    try:
        return messages.parse_request(method, params)
    except BadRequest as exc:
        raise RpcError("bad_request", str(exc)) from None


def real_job_record(job_id: int = 1, now: float = 1.0e9) -> dict[str, Any]:
    """A pending job's record as the real controller builds it (``spurcore.views.job_info``):
    the base every fake's job record starts from, so that it has the real fields."""
    from spurcore.model import ClusterState
    from spurcore.ops import JobSpec, JobSubmitted
    from spurcore.reduce import apply
    from spurcore.views import job_info

    state = ClusterState()
    state.next_job_id = job_id
    got = apply(state, JobSubmitted("r", JobSpec("job.sh", "root", 0, 0, "#!/bin/sh\ntrue\n", (), {}, "/tmp"),
                                    now - 100))
    return job_info(state.jobs[got], state, now)


def real_node_record(name: str = "n1", cpus: int = 4, mem_mb: int = 8000) -> dict[str, Any]:
    """A node's record as the real controller builds it (``spurcore.views.node_info``)."""
    from spurcore.model import ClusterState
    from spurcore.ops import NodeRegistered
    from spurcore.reduce import apply
    from spurcore.views import node_info

    state = ClusterState()
    apply(state, NodeRegistered(name, cpus, mem_mb, "unix:/x", 1.0e9))
    return node_info(state, name)
