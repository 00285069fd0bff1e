"""``squeue``: the job queue (Slurm 25.11 behaviour; layout in ``spurcore.render.squeue``).

The controller's ``jobs`` method does the coarse filtering (job ids, users, states);
the renderer's state rules are then applied again here so that the flag states (a STOPPED
job is RUNNING underneath, a CANCELLED job may still be COMPLETING) follow Slurm exactly.
Name and partition filters are applied here.

``-j`` with exactly one id loads that job alone, as Slurm's ``slurm_load_job`` does: an
unknown id is the error ``slurm_load_jobs error: Invalid job id specified`` (exit 1), and
the state filter still applies afterwards (a finished job shows only the header).
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import OPTIONAL, REQUIRED, CliError, Opt

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "squeue"

OPTIONS = (
    Opt("format", "o", "format", REQUIRED),
    Opt("Format", "O", "Format", REQUIRED),
    Opt("help", "", "help"),
    Opt("jobs", "j", "jobs", OPTIONAL),
    Opt("json", "", "json"),
    Opt("long", "l", "long"),
    Opt("me", "", "me"),
    Opt("name", "n", "name", REQUIRED),
    Opt("noheader", "h", "noheader"),
    Opt("partition", "p", ("partition", "partitions"), REQUIRED),
    Opt("states", "t", ("states", "state"), REQUIRED),
    Opt("steps", "s", "steps", OPTIONAL),
    Opt("usage", "", "usage"),
    Opt("user", "u", ("user", "users"), REQUIRED),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
    Opt("all", "a", "all"),
)

USAGE = """\
Usage: squeue [-A account] [--clusters names] [-i seconds] [--job jobid]
              [-n name] [-o format] [--only-job-state] [-p partitions]
              [--qos qos] [--reservation reservation] [--sort fields] [--start]
              [--step step_id] [-t states] [-u user_name] [--usage]
              [-L licenses] [-w nodes] [--federation] [--local] [--sibling]
              [--expand-patterns] [--json=data_parser] [--yaml=data_parser]
              [-ahjlrsv]
"""

HELP = """\
Usage: squeue [OPTIONS]
  -a, --all                       display jobs in hidden partitions
  -h, --noheader                  no headers on output
  -j, --jobs=job(s)               comma separated list of jobs IDs
                                  to view, default is all
      --json[=data_parser]        Produce JSON output
  -l, --long                      long report
      --me                        equivalent to --user=<my username>
  -n, --name=job_name(s)          comma separated list of job names to view
  -o, --format=format             format specification
  -O, --Format=format             format specification
  -p, --partition=partition(s)    comma separated list of partitions
                                  to view, default is all partitions
  -s, --steps                     comma separated list of job steps
                                  to view, default is all
  -t, --states=state(s)           comma separated list of states to view,
                                  default is pending and running,
                                  '--states=all' reports all states
  -u, --user=user_name(s)         comma separated list of users to view
  -v, --verbose                   verbosity level
  -V, --version                   output version information and exit

Help options:
  --help                          show this help message
  --usage                         display a brief summary of squeue options
"""

#: What the controller is asked for by default (the renderer refines it: DEFAULT_STATES).
DEFAULT_STATES = ["PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED"]


class Query:
    """The parsed squeue request."""

    def __init__(self) -> None:
        self.job_ids: list[int] = []
        self.users: list[str] = []
        self.states: list[str] | None = None  # long names; None: all states
        self.default_states = True
        self.names: list[str] = []
        self.partitions: list[str] = []
        self.steps = False
        self.step_filter: list[tuple[int, int | str | None]] = []
        self.fmt: str | None = None
        self.Fmt: str | None = None
        self.long = False
        self.noheader = False
        self.json = False

    @property
    def single_job(self) -> bool:
        return len(self.job_ids) == 1

    def params(self) -> dict[str, Any]:
        """The ``jobs`` call: server-side filters."""
        params: dict[str, Any] = {}
        if self.job_ids:
            params["job_ids"] = list(self.job_ids)
        if self.users:
            params["users"] = list(self.users)
        # One job is loaded whatever its state (the state filter applies afterwards).
        if not self.single_job and self.states is not None:
            params["states"] = list(self.states)
        if self.steps:
            params["with_steps"] = True
        if self.fmt is None and self.Fmt is None and not self.json and not self.steps:
            # The default and -l layouts need only these fields (plus what filtering and
            # the default sort read): a long queue then costs a third as much to move.
            params["fields"] = list(DEFAULT_LAYOUT_FIELDS)
        return params


#: Fields of the job records that squeue's default and -l layouts, its state filter and its
#: default sort read (see spurcore/render/squeue.py).
DEFAULT_LAYOUT_FIELDS = (
    "job_id", "partition", "name", "user", "uid", "state", "base_state", "run_time", "time_limit",
    "node_count", "nodes", "reason", "priority", "submit_time", "start_time",
)


def _job_list(text: str) -> list[int]:
    ids: list[int] = []
    for item in common.split_list(text):
        try:
            job_id, step = common.parse_job_step(item)
        except ValueError:
            raise CliError(f"Invalid job id: {item}") from None
        if step is not None:
            raise CliError(f"Invalid job id: {item}")
        if job_id not in ids:
            ids.append(job_id)
    return ids


def parse_args(args: list[str], environ: dict[str, str] | None = None) -> Query:
    env = os.environ if environ is None else environ
    pairs, operands = common.getopt(args, OPTIONS)
    common.handle_common(PROG, pairs, HELP, USAGE)
    q = Query()
    job_flag = False
    for key, value in pairs:
        if key == "jobs":
            job_flag = True
            if value is not None:
                q.job_ids.extend(j for j in _job_list(value) if j not in q.job_ids)
        elif key == "user":
            for u in common.split_list(value or ""):
                name = common.resolve_user(u)
                if name not in q.users:
                    q.users.append(name)
        elif key == "me":
            name = common.current_user()[0]
            if name not in q.users:
                q.users.append(name)
        elif key == "states":
            try:
                q.states = common.parse_state_list(value or "")
            except ValueError as exc:
                raise CliError(f"Invalid job state specified: {exc}") from None
            q.default_states = False
        elif key == "steps":
            q.steps = True
            for item in common.split_list(value or ""):
                try:
                    q.step_filter.append(common.parse_job_step(item))
                except ValueError:
                    raise CliError(f"Invalid job step id: {item}") from None
        elif key == "name":
            q.names.extend(common.split_list(value or ""))
        elif key == "partition":
            q.partitions.extend(common.split_list(value or ""))
        elif key == "format":
            q.fmt = value
        elif key == "Format":
            q.Fmt = value
        elif key == "long":
            q.long = True
        elif key == "noheader":
            q.noheader = True
        elif key == "json":
            q.json = True
    if operands:
        if job_flag:
            q.job_ids.extend(j for j in _job_list(operands[0]) if j not in q.job_ids)
            operands = operands[1:]
        if operands:
            raise CliError(f"Unrecognized option: {operands[0]}\n{USAGE.rstrip()}")
    if q.default_states:
        q.states = list(DEFAULT_STATES)
    if q.fmt is None and q.Fmt is None:
        q.fmt = env.get("SQUEUE_FORMAT") or None
        if q.fmt is None:
            q.Fmt = env.get("SQUEUE_FORMAT2") or None
    return q


def filter_jobs(q: Query, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The client-side half of the filters (states as the renderer defines them, names,
    partitions; users again for controllers that ignore the filter)."""
    from spurcore.render import squeue as render

    if q.default_states:
        wanted = None
    elif q.states is None:
        wanted = frozenset(common.JOB_STATES)
    else:
        wanted = frozenset(q.states)
    out = render.filter_jobs(jobs, wanted)
    if q.job_ids:
        ids = set(q.job_ids)
        out = [j for j in out if int(j.get("job_id", 0)) in ids]
    if q.users:
        users = set(q.users)
        out = [j for j in out if str(j.get("user")) in users or str(j.get("uid")) in users]
    if q.names:
        names = set(q.names)
        out = [j for j in out if str(j.get("name") or "") in names]
    if q.partitions:
        parts = set(q.partitions)
        out = [j for j in out if str(j.get("partition") or "") in parts]
    return out


def _filter_steps(q: Query, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not q.step_filter:
        return jobs
    out = []
    for job in jobs:
        jid = int(job.get("job_id", 0))
        wanted = [s for j, s in q.step_filter if j == jid]
        if not wanted:
            continue
        if None in wanted:
            out.append(job)
            continue
        steps = [s for s in job.get("steps") or () if s.get("step_id") in wanted]
        out.append({**job, "steps": steps})
    return out


def _body(args: list[str]) -> int:
    q = parse_args(args)
    from spurcore.rpc import RpcError

    with common.connect() as ctl:
        try:
            result = common.call_jobs(ctl, q.params())
        except RpcError as exc:
            if exc.code == "invalid_job_id":
                raise CliError("slurm_load_jobs error: Invalid job id specified", raw=True) from None
            raise CliError(f"slurm_load_jobs error: {exc.message or exc.code}", raw=True) from None
    jobs = list(result.get("jobs") or [])
    now = float(result.get("now") or 0.0)
    if q.single_job and not any(int(j.get("job_id", 0)) == q.job_ids[0] for j in jobs):
        raise CliError("slurm_load_jobs error: Invalid job id specified", raw=True)

    from spurcore.render import squeue as render

    jobs = render.default_sort(filter_jobs(q, jobs))
    if q.json:
        import json

        for job in jobs:
            job.setdefault("group", common.group_name(int(job.get("gid", 0))))
        sys.stdout.write(json.dumps(render.to_json(jobs, now=now, command=[PROG, *args]), indent=2) + "\n")
        return 0
    if q.steps:
        fmt_errors = _format_errors(render, q, steps=True)
        text = render.render_steps(_filter_steps(q, jobs), fmt=q.fmt, Fmt=q.Fmt, noheader=q.noheader, now=now)
    else:
        fmt_errors = _format_errors(render, q, steps=False)
        text = render.render_jobs(jobs, fmt=q.fmt, Fmt=q.Fmt, noheader=q.noheader, long=q.long, now=now)
    for message in fmt_errors:
        common.error(PROG, message)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def _format_errors(render: Any, q: Query, *, steps: bool) -> list[str]:
    if q.fmt:
        return list(render.parse_format(q.fmt, steps=steps).errors)
    if q.Fmt:
        return list(render.parse_long_format(q.Fmt, steps=steps).errors)
    return []


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
