"""Snapshots written by earlier versions still load (upcast in spurcore.snapshot only).

If this fails because the snapshot layout changed on purpose, bump SNAPSHOT_VERSION, upcast
the old layout in ``decode_state``, and ADD a golden file; never replace an existing one.
"""

from __future__ import annotations

from pathlib import Path

from spurcore.model import JobState
from spurcore.snapshot import decode_state, encode_state

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def test_version_1_snapshot_loads_with_array_fields_defaulted():
    # Written by the code before job arrays: node1, job 1 RUNNING, job 2 PENDING (afterok:1).
    state = decode_state((GOLDEN / "snapshot-v1.bin").read_bytes())
    assert sorted(state.jobs) == [1, 2]
    running, waiting = state.jobs[1], state.jobs[2]
    assert running.state is JobState.RUNNING and running.nodes == ("node1",)
    assert waiting.spec.dependency == "afterok:1" and list(state.pending) == [2]
    for job in (running, waiting):
        assert (job.array_job_id, job.array_task_id, job.array_pending, job.array_throttle) == (0, -1, [], 0)
        assert job.spec.array == "" and job.spec.requeue == -1 and job.spec.options == {}
    assert state.array_members == {} and state.array_purged == {}
    # and it round-trips in the current version
    assert decode_state(encode_state(state)) == state
