"""What agents must still be told, derived from state alone (DESIGN.md 1.4).

Invariants:
- A start intent exists from ``JobStart`` until that node's ``JobLaunched``; an action
  intent from ``ActionRequested`` (or a cancel, time limit or node failure) until that
  node's ``ActionAcked``. Nothing else clears them: no timers, no resend lists.
- After a restart or a leader change these functions give the leader its whole to-do list.
"""

from __future__ import annotations

import attrs

from spurcore.model import ActionRecord, ClusterState, Job


@attrs.frozen(slots=True)
class StartIntent:
    node: str
    job: Job


@attrs.frozen(slots=True)
class ActionIntent:
    node: str
    action: ActionRecord


def pending_starts(state: ClusterState) -> list[StartIntent]:
    out: list[StartIntent] = []
    for job_id in state.unlaunched:
        job = state.jobs[job_id]
        for node in sorted(job.unlaunched):
            out.append(StartIntent(node, job))
    return out


def pending_actions(state: ClusterState) -> list[ActionIntent]:
    out: list[ActionIntent] = []
    for record in state.actions.values():
        for node in sorted(record.pending):
            out.append(ActionIntent(node, record))
    return out
