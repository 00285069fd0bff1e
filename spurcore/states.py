"""Slurm's job state names and compact codes (job_state_string / _compact).

Light on purpose (no attrs, no enums): the command-line tools and the renderers import it
on every run. The reducer's own ``JobState`` (spurcore.model) uses the same names.
"""

from __future__ import annotations

#: Every state or flag name a Slurm tool may print, with its compact code.
STATE_CODES: dict[str, str] = {
    "PENDING": "PD",
    "RUNNING": "R",
    "SUSPENDED": "S",
    "COMPLETED": "CD",
    "CANCELLED": "CA",
    "FAILED": "F",
    "TIMEOUT": "TO",
    "NODE_FAIL": "NF",
    "PREEMPTED": "PR",
    "BOOT_FAIL": "BF",
    "DEADLINE": "DL",
    "OUT_OF_MEMORY": "OOM",
    "COMPLETING": "CG",
    "STAGE_OUT": "SO",
    "CONFIGURING": "CF",
    "RESIZING": "RS",
    "REQUEUED": "RQ",
    "REQUEUE_FED": "RF",
    "REQUEUE_HOLD": "RH",
    "SPECIAL_EXIT": "SE",
    "STOPPED": "ST",
    "REVOKED": "RV",
    "RESV_DEL_HOLD": "RD",
    "SIGNALING": "SI",
}

#: compact code -> name
STATE_NAMES: dict[str, str] = {code: name for name, code in STATE_CODES.items()}

#: Slurm's finished base states (IS_JOB_FINISHED): the one list of them. spurcore.model's
#: TERMINAL, the renderers and the tools all take it from here.
TERMINAL_STATES = frozenset(
    {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
     "DEADLINE"}
)
#: Rows that ended without the job ending: a run that was requeued (sacct -D).
ENDED_RUN_STATES = TERMINAL_STATES | {"REQUEUED"}

