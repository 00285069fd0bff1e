"""``sacct``: accounting records (Slurm 25.11 behaviour; layout in ``spurcore.render.sacct``).

Reads the controller's ``history`` (jobs with their steps, from the accounting projection).

Window (src/sacct/options.c): ``-S``/``-E`` when given; otherwise with ``-j`` from the
Epoch, else from midnight today until now. Users: with ``-j`` (and no ``-u``) every
user's jobs, as Slurm does for an explicit job list; otherwise the caller's own jobs unless
``-a``/``--allusers`` or the caller is root. ``SACCT_FORMAT`` replaces the default fields.
``-j J.S`` keeps only that step of job J (its job row included, as Slurm prints it).
A requeued job has one record per run; only the latest is shown unless ``-D``.
With ``-s`` and no ``-S`` the window starts now (Slurm: jobs in that state now).
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import REQUIRED, CliError, Opt

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "sacct"

OPTIONS = (
    Opt("allusers", "a", ("allusers", "all-users")),
    Opt("allocations", "X", "allocations"),
    Opt("brief", "b", "brief"),
    Opt("delimiter", "", "delimiter", REQUIRED),
    Opt("duplicates", "D", "duplicates"),
    Opt("endtime", "E", "endtime", REQUIRED),
    Opt("format", "o", "format", REQUIRED),
    Opt("help", "h", "help"),
    Opt("jobs", "j", "jobs", REQUIRED),
    Opt("json", "", "json"),
    Opt("long", "l", "long"),
    Opt("noheader", "n", "noheader"),
    Opt("parsable", "p", "parsable"),
    Opt("parsable2", "P", "parsable2"),
    Opt("starttime", "S", "starttime", REQUIRED),
    Opt("state", "s", "state", REQUIRED),
    Opt("usage", "", "usage"),
    Opt("user", "u", ("user", "uid"), REQUIRED),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
)

USAGE = """\
Usage: sacct [-a] [-b] [-D] [-E endtime] [-j jobid[.step],...] [-l] [-n]
             [-o format] [-p] [-P] [--delimiter=chars] [-s state,...]
             [-S starttime] [-u user,...] [-X] [--json] [-V]
"""

HELP = """\
sacct [<OPTION>]
    Valid <OPTION> values are:
     -a, --allusers:
                   Display jobs for all users. By default, only the
                   current user's jobs are displayed.  If ran by user root
                   this is the default.
     -b, --brief:
                   Equivalent to '--format=jobid,state,exitcode'. This option
                   has no effect if --dump is specified.
     --delimiter:
                   ASCII characters used to separate the fields when
                   specifying the  -p  or  -P options. The default delimiter
                   is a '|'. This options is ignored if -p or -P options
                   are not specified.
     -D, --duplicates:
                   If Slurm job ids are reset, some job numbers will
                   probably appear more than once refering to different jobs.
                   Without this option only the most recent jobs will be
                   displayed.
     -E, --endtime:
                   Select jobs eligible before this time.  If states are
                   given with the -s option then return jobs in this state
                   before this period.
     -h, --help:   Print this description of use.
     -j, --jobs:
                   Format is <job(.step)>. Display information about this
                   job or comma-separated list of jobs. The default is all
                   jobs. Adding .step will display the specific job step of
                   that job. (A step id of 'batch' will display the
                   information about the batch step.)
     --json:
                   Produce JSON output
     -l, --long:
                   Equivalent to specifying
                   '--format=jobid,jobidraw,jobname,partition,maxvmsize,
                             maxvmsizenode,maxvmsizetask,avevmsize,maxrss,
                             maxrssnode,maxrsstask,averss,maxpages,
                             maxpagesnode,maxpagestask,avepages,mincpu,
                             mincpunode,mincputask,avecpu,ntasks,alloccpus,
                             elapsed,state,exitcode,avecpufreq,reqcpufreq,
                             reqmem,consumedenergy,maxdiskread,maxdiskreadnode,
                             maxdiskreadtask,avediskread,maxdiskwrite,
                             maxdiskwritenode,maxdiskwritetask,avediskwrite,
                             reqtres,alloctres,tresusageinave,tresusageinmax,
                             tresusageinmaxn,tresusageinmaxt,tresusageinmin,
                             tresusageinminn,tresusageinmint,tresusageintot,
                             tresusageoutmax,tresusageoutmaxn,
                             tresusageoutmaxt,tresusageoutave,
                             tresusageouttot
     -n, --noheader:
                   No header will be added to the beginning of output.
                   The default is to print a header.
     -o, --format:
                   Comma separated list of fields. (use "--helpformat"
                   for a list of available fields).
     -p, --parsable: output will be '|' delimited with a '|' at the end
     -P, --parsable2: output will be '|' delimited without a '|' at the end
     -s, --state:
                   Select jobs based on their current state or the state
                   they were in during the time period given: running (r),
                   completed (cd), failed (f), timeout (to), resizing (rs),
                   deadline (dl) and node_fail (nf).
     -S, --starttime:
                   Select jobs eligible after this time.  Default is
                   00:00:00 of the current day, unless the '-s' is set then
                   the default is 'now'.
     -u, --uid, --user:
                   Use this comma separated list of uids or user names
                   to select jobs to display.  By default, the running
                   user's uid is used.
     --usage:      Display brief usage message.
     -V, --version: Print version.
     -X, --allocations:
                   Only show statistics relevant to the job allocation
                   itself, not taking steps into consideration.
"""


class Query:
    def __init__(self) -> None:
        self.jobs: list[tuple[int, int | str | None]] = []
        self.start: float | None = None
        self.end: float | None = None
        self.users: list[str] = []
        self.all_users = False
        self.states: list[str] = []
        self.fields: str | None = None
        self.parsable = False
        self.parsable2 = False
        self.delimiter = "|"
        self.noheader = False
        self.allocations = False
        self.json = False
        self.duplicates = False

    @property
    def job_ids(self) -> list[int]:
        out: list[int] = []
        for job_id, _step in self.jobs:
            if job_id not in out:
                out.append(job_id)
        return out


def _midnight(now: float) -> float:
    import time

    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def parse_args(args: list[str], *, now: float, environ: dict[str, str] | None = None,
               uid: int | None = None) -> Query:
    from spurcore.render import sacct as render
    from spurcore.timefmt import parse_sacct_time

    env = os.environ if environ is None else environ
    uid = os.getuid() if uid is None else uid
    pairs, operands = common.getopt(args, OPTIONS)
    common.handle_common(PROG, pairs, HELP, USAGE)
    if operands:
        raise CliError(f"Unknown arguments: {' '.join(operands)}")
    q = Query()
    fields: str | None = None
    brief = long = False
    for key, value in pairs:
        value = value or ""
        if key == "jobs":
            for item in common.split_list(value):
                try:
                    q.jobs.append(common.parse_job_step(item))
                except ValueError:
                    raise CliError(f"Invalid job id: {item}") from None
        elif key in ("starttime", "endtime"):
            try:
                t = parse_sacct_time(value, now)
            except ValueError as exc:
                raise CliError(str(exc)) from None
            if key == "starttime":
                q.start = t
            else:
                q.end = t
        elif key == "user":
            for u in common.split_list(value):
                name = common.resolve_user(u)
                if name not in q.users:
                    q.users.append(name)
        elif key == "allusers":
            q.all_users = True
        elif key == "state":
            for item in common.split_list(value):
                try:
                    q.states.append(common.parse_state(item))
                except ValueError:
                    raise CliError(f"Invalid state: {item}") from None
        elif key == "format":
            fields = value if fields is None else f"{fields},{value}"
        elif key == "brief":
            brief = True
        elif key == "long":
            long = True
        elif key == "parsable":
            q.parsable = True
        elif key == "parsable2":
            q.parsable2 = True
        elif key == "delimiter":
            q.delimiter = value
        elif key == "noheader":
            q.noheader = True
        elif key == "allocations":
            q.allocations = True
        elif key == "json":
            q.json = True
        elif key == "duplicates":
            q.duplicates = True
    if fields is None:
        if brief:
            fields = render.BRIEF_FIELDS
        elif long:
            fields = render.LONG_FIELDS
        else:
            fields = env.get("SACCT_FORMAT") or render.DEFAULT_FIELDS
    q.fields = fields
    if q.start is None:
        # Slurm: from the Epoch with -j; "now" with -s (jobs in that state now); else midnight.
        q.start = 0.0 if q.jobs else now if q.states else _midnight(now)
    if q.end is None:
        q.end = now
    if not q.users and not q.jobs and not q.all_users and uid != 0:
        q.users = [common.user_name(uid)]
    return q


def select(q: Query, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The client-side filters: users, states, and ``J.S`` step selections."""
    out: list[dict[str, Any]] = []
    wanted_steps: dict[int, list[int | str]] = {}
    whole: set[int] = set()
    for job_id, step in q.jobs:
        if step is None:
            whole.add(job_id)
        else:
            wanted_steps.setdefault(job_id, []).append(step)
    users = set(q.users)
    states = set(q.states)
    if not q.duplicates:  # only the latest run of a requeued job (records come oldest first)
        latest = {int(j.get("job_id", 0)): j for j in jobs}
        jobs = [j for j in jobs if latest[int(j.get("job_id", 0))] is j]
    for job in jobs:
        jid = int(job.get("job_id", 0))
        if q.jobs and jid not in whole and jid not in wanted_steps:
            continue
        if users and str(job.get("user")) not in users and str(job.get("uid")) not in users:
            continue
        if states and not common.job_state_matches(job, states):
            continue
        if jid not in whole and jid in wanted_steps:
            steps = [s for s in job.get("steps") or () if s.get("step_id") in wanted_steps[jid]]
            job = {**job, "steps": steps}
        out.append(job)
    return out


def _body(args: list[str]) -> int:
    import time

    now = time.time()
    q = parse_args(args, now=now)
    from spurcore.render import sacct as render

    try:
        fields = render.parse_format(q.fields or render.DEFAULT_FIELDS)
    except render.FormatError as exc:
        raise CliError(str(exc)) from None
    from spurcore.rpc import RpcError

    with common.connect() as ctl:
        try:
            result = ctl.call("history", {"job_ids": q.job_ids, "start": q.start, "end": q.end})
        except RpcError as exc:
            raise CliError(f"Problem talking to the database: {exc.message or exc.code}") from None
    jobs = select(q, list(result.get("jobs") or []))
    for job in jobs:
        if "group" not in job:
            job["group"] = common.group_name(int(job.get("gid", 0)))
    if q.json:
        import json

        sys.stdout.write(json.dumps(render.to_json(jobs, now=now, command=[PROG, *args]), indent=2) + "\n")
        return 0
    sys.stdout.write(render.render(
        jobs, fields, parsable=q.parsable, parsable2=q.parsable2, noheader=q.noheader,
        allocations=q.allocations, delimiter=q.delimiter, now=now,
    ))
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
