"""``sacct``: accounting records (Slurm 25.11 behaviour; layout in ``spurcore.render.sacct``).

Reads the controller's ``history`` (jobs with their steps, from the accounting projection).
Every option of sacct(1) is accepted (src/sacct/options.c), with ``SACCT_FORMAT``,
``SACCT_FEDERATION``, ``SACCT_LOCAL``, ``SLURM_TIME_FORMAT``, ``SLURM_BITSTR_LEN`` and
``SLURM_JSON``; options Spur keeps no data for (reservations, associations, WCKey ids,
the job completion plugin) select nothing or fail as Slurm does without them (see
docs/query-tools.md).

Window (slurmdb_job_cond_def_start_end): ``-S``/``-E`` when given; with ``-s`` and no
``-j``, ``-S`` is now and ``-E`` is ``-S``; with ``-j`` from the Epoch; otherwise from midnight
today until now. Users: with ``-j`` or ``-N`` (and no ``-u``) every user's jobs; otherwise
the caller's own jobs unless ``-a``/``-u -1`` or the caller is root.
``-j`` takes ``J``, ``J.S``, ``J_T``, ``J_[1-3]`` (job arrays: ``J`` is every record of the
array); ``-j J.S`` keeps only that step of job J (its job row included).
A requeued job has one record per run; only the latest is shown unless ``-D``.
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import OPTIONAL, REQUIRED, CliError, Opt

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "sacct"

OPTIONS = (
    Opt("autocomplete", "", "autocomplete", REQUIRED),
    Opt("allusers", "a", "allusers"),
    Opt("accounts", "A", "accounts", REQUIRED),
    Opt("allocations", "X", "allocations"),
    Opt("allocations", "t", ()),  # deprecated -t
    Opt("array", "", "array"),
    Opt("brief", "b", "brief"),
    Opt("batch_script", "B", "batch-script"),
    Opt("completion", "c", "completion"),
    Opt("constraints", "C", "constraints", REQUIRED),
    Opt("delimiter", "", "delimiter", REQUIRED),
    Opt("duplicates", "D", "duplicates"),
    Opt("federation", "", "federation"),
    Opt("helpformat", "e", ("helpformat", "help-fields")),
    Opt("helpreason", "", "helpreason"),
    Opt("helpstate", "", "helpstate"),
    Opt("endtime", "E", "endtime", REQUIRED),
    Opt("env_vars", "", "env-vars"),
    Opt("expand_patterns", "", "expand-patterns"),
    Opt("file", "f", "file", REQUIRED),
    Opt("flags", "F", "flags", REQUIRED),
    Opt("group", "g", ("gid", "group"), REQUIRED),
    Opt("help", "h", "help"),
    Opt("local", "", "local"),
    Opt("name", "", "name", REQUIRED),
    Opt("nnodes", "i", "nnodes", REQUIRED),
    Opt("ncpus", "I", "ncpus", REQUIRED),
    Opt("jobs", "j", "jobs", REQUIRED),
    Opt("timelimit_min", "k", "timelimit-min", REQUIRED),
    Opt("timelimit_max", "K", "timelimit-max", REQUIRED),
    Opt("long", "l", "long"),
    Opt("allclusters", "L", "allclusters"),
    Opt("clusters", "M", ("cluster", "clusters"), REQUIRED),
    Opt("nodelist", "N", "nodelist", REQUIRED),
    Opt("noconvert", "", "noconvert"),
    Opt("units", "", "units", REQUIRED),
    Opt("noheader", "n", "noheader"),
    Opt("format", "o", ("fields", "format"), REQUIRED),
    Opt("parsable", "p", "parsable"),
    Opt("parsable2", "P", "parsable2"),
    Opt("qos", "q", "qos", REQUIRED),
    Opt("partition", "r", "partition", REQUIRED),
    Opt("reason", "R", "reason", REQUIRED),
    Opt("state", "s", "state", REQUIRED),
    Opt("starttime", "S", "starttime", REQUIRED),
    Opt("truncate", "T", "truncate"),
    Opt("user", "u", ("uid", "user"), REQUIRED),
    Opt("use_local_uid", "", "use-local-uid"),
    Opt("usage", "U", "usage"),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
    Opt("wckeys", "W", "wckeys", REQUIRED),
    Opt("whole_hetjob", "", "whole-hetjob", OPTIONAL),
    Opt("associations", "x", "associations", REQUIRED),
    Opt("json", "", "json", OPTIONAL),
    Opt("yaml", "", "yaml", OPTIONAL),
)

USAGE = "Usage: sacct [options]\n\tUse --help for help\n"

HELP = """\
sacct [<OPTION>]
     Valid <OPTION> values are:
     -a, --allusers:
                   Display jobs for all users. By default, only the
                   current user's jobs are displayed.  If ran by user root
                   this is the default.
     -A, --accounts:
                   Use this comma separated list of accounts to select jobs
                   to display.  By default, all accounts are selected.
     --array:
                   Expand job arrays. Display array tasks on separate lines
                   instead of consolidating them to a single line.
     -b, --brief:
                   Equivalent to '--format=jobstep,state,error'.
     -B, --batch-script:
                   Print batch script of job.
                   NOTE: AccountingStoreFlags=job_script is required for this
                   NOTE: Requesting specific job(s) with '-j' is required
                         for this.
     -c, --completion: Use job completion instead of accounting data.
         --delimiter:
                   ASCII characters used to separate the fields when
                   specifying the  -p  or  -P options. The default delimiter
                   is a '|'. This options is ignored if -p or -P options
                   are not specified.
     -D, --duplicates:
                   Allow multiple job records for the same job ID to be shown,
                   instead of just the most recent matching record.
     -e, --helpformat:
                   Print a list of fields that can be specified with the
                   '--format' option
     -E, --endtime:
                   Select jobs eligible before this time.  If states are
                   given with the -s option return jobs in this state before
                   this period.
         --env-vars:
                   Print the environment to launch the batch script of job.
                   NOTE: AccountingStoreFlags=job_env is required for this
                   NOTE: Requesting specific job(s) with '-j' is required
                         for this.
         --federation: Report jobs from federation if a member of a one.
     --expand-pattern: substitute wildcards in field name patterns
     -f, --file=file:
                   Read data from the specified file, rather than Slurm's
                   current accounting log file. (Only appliciable when
                   running the jobcomp/filetxt plugin.)
     -g, --gid, --group:
                   Use this comma separated list of gids or group names
                   to select jobs to display.  By default, all groups are
                   selected.
     -h, --help:   Print this description of use.
         --helpreason
                   Print a list of job reasons that can be specified with
                   the '--reason' option.
         --helpstate
                   Print a list of job states that can be specified with
                   the '--state' option.
     -i, --nnodes=N:
                   Return jobs which ran on this many nodes (N = min[-max])
     -I, --ncpus=N:
                   Return jobs which ran on this many cpus (N = min[-max])
     -j, --jobs:
                   Format is <job(.step)>. Display information about this
                   job or comma-separated list of jobs. The default is all
                   jobs. Adding .step will display the specific job step of
                   that job. (A step id of 'batch' will display the
                   information about the batch step.)
     --json[=data_parser]
                   Produce JSON output
     -k, --timelimit-min:
                   Only send data about jobs with this timelimit.
                   If used with timelimit_max this will be the minimum
                   timelimit of the range.  Default is no restriction.
     -K, --timelimit-max:
                   Ignored by itself, but if timelimit_min is set this will
                   be the maximum timelimit of the range.  Default is no
                   restriction.
         --local   Report information only about jobs on the local cluster.
                   Overrides --federation.
     -l, --long:
                   Equivalent to specifying
                   '--format=jobid,jobidraw,jobname,partition,maxvmsize,
                             maxvmsizenode,maxvmsizetask,avevmsize,maxrss,
                             maxrssnode,maxrsstask,averss,maxpages,
                             maxpagesnode,maxpagestask,avepages,mincpu,
                             mincpunode,mincputask,avecpu,ntasks,alloccpus,
                             elapsed,state,exitcode,avecpufreq,reqcpufreqmin,
                             reqcpufreqmax,reqcpufreqgov,reqmem,
                             consumedenergy,maxdiskread,maxdiskreadnode,
                             maxdiskreadtask,avediskread,maxdiskwrite,
                             maxdiskwritenode,maxdiskwritetask,avediskwrite,
                             reqtres,alloctres,
                             tresusageinave,tresusageinmax,tresusageinmaxn,
                             tresusageinmaxt,tresusageinmin,tresusageinminn,
                             tresusageinmint,tresusageintot,tresusageoutmax,
                             tresusageoutmaxn,tresusageoutmaxt,
                             tresusageoutave,tresusageouttot
     -L, --allclusters:
                   Display jobs ran on all clusters. By default, only jobs
                   ran on the cluster from where sacct is called are
                   displayed.
     -M, --clusters:
                   Only send data about these clusters. Use "all" for all
                   clusters.
     -n, --noheader:
                   No header will be added to the beginning of output.
                   The default is to print a header.
     --noconvert:
                   Don't convert units from their original type
                   (e.g. 2048M won't be converted to 2G).
     -N, --nodelist:
                   Display jobs that ran on any of these nodes,
                   can be one or more using a ranged string.
     --name:
                   Display jobs that have any of these name(s).
     -o, --format:
                   Comma separated list of fields. (use "--helpformat"
                   for a list of available fields).
     -p, --parsable: output will be '|' delimited with a '|' at the end
     -P, --parsable2: output will be '|' delimited without a '|' at the end
     -q, --qos:
                   Only send data about jobs using these qos.  Default is all.
     -r, --partition:
                   Comma separated list of partitions to select jobs and
                   job steps from. The default is all partitions.
     -R, --reason=<reason_list>:
\t\t   Comma separated list to filter jobs based on what reason the
\t\t   job wasn't scheduled outside resources/priority.
     -s, --state:
                   Select jobs based on their current state or the state
                   they were in during the time period given: running (r),
                   completed (cd), failed (f), timeout (to), resizing (rs),
                   deadline (dl) and node_fail (nf).
     -S, --starttime:
                   Select jobs eligible after this time.  Default is
                   00:00:00 of the current day, unless '-s' is set then
                   the default is 'now'.
     -T, --truncate:
                   Truncate time.  So if a job started before --starttime
                   the start time would be truncated to --starttime.
                   The same for end time and --endtime.
     -u, --uid, --user:
                   Use this comma separated list of uids or user names
                   to select jobs to display.  By default, the running
                   user's uid is used.
     --units=[KMGTP]:
                   Display values in specified unit type. Takes precedence
                   over --noconvert option.
     --usage:      Display brief usage message.
     -v, --verbose:
                   Primarily for debugging purposes, report the state of
                   various variables during processing.
     -V, --version: Print version.
     -W, --wckeys:
                   Only send data about these wckeys.  Default is all.
     --whole-hetjob[=yes|no]:
                   If set to 'yes' (or no argument), then information about
                   all the heterogeneous components will be retrieved. If
                   set to 'no' only the specific filtered components will
                   be retrieved. The default behavior without this option is
                   that all components are retrieved only if filtering the
                   leader component with --jobs.
     -x, --associations:
                   Only send data about these association id.  Default is all.
     -X, --allocations:
                   Only show statistics relevant to the job allocation
                   itself, not taking steps into consideration.
     --yaml[=data_parser]
                   Produce YAML output

     Note, valid start/end time formats are...
                   HH:MM[:SS] [AM|PM]
                   MMDD[YY] or MM/DD[/YY] or MM.DD[.YY]
                   MM/DD[/YY]-HH:MM[:SS]
                   YYYY-MM-DD[THH:MM[:SS]]
                   now[{+|-}count[seconds(default)|minutes|hours|days|weeks]]
"""

#: Job states sacct can select (options.c ``_supported_state``).
SUPPORTED_STATES = frozenset({
    "PENDING", "RUNNING", "SUSPENDED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
    "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "REQUEUED", "RESIZING", "REVOKED",
})

#: job_state_string order for --helpstate (JOB_PENDING .. JOB_OOM).
_HELP_STATES = ("PENDING", "RUNNING", "SUSPENDED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT",
                "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY")

#: Job state reasons Spur sets (job_state_reason_string), for -R and --helpreason.
REASONS = (
    "None", "Priority", "Dependency", "Resources", "PartitionNodeLimit", "PartitionTimeLimit",
    "PartitionDown", "PartitionInactive", "JobHeldAdmin", "JobHeldUser", "BeginTime", "TimeLimit",
    "NonZeroExitCode", "RaisedSignal", "DependencyNeverSatisfied", "NodeDown", "BadConstraints",
    "SystemFailure", "JobLaunchFailure", "JobArrayTaskLimit", "InvalidAccount", "InvalidQOS",
    "ReqNodeNotAvail", "OutOfMemory", "FrontEndDown", "DeadLine",
)


class Query:
    def __init__(self) -> None:
        self.jobs: list[Any] = []  # StepSel list
        self.start: float | None = None
        self.end: float | None = None
        self.users: list[str] = []  # uids as text (names resolved)
        self.all_users = False
        self.states: list[str] = []
        self.fields: str | None = None
        self.parsable = False
        self.parsable2 = False
        self.delimiter = "|"
        self.noheader = False
        self.allocations = False
        self.json = False
        self.mime: str | None = None
        self.duplicates = False
        self.array = False
        self.names: list[str] = []
        self.partitions: list[str] = []
        self.accounts: list[str] = []
        self.qos: list[str] = []
        self.groups: list[str] = []
        self.wckeys: list[str] = []
        self.constraints: list[str] = []
        self.reasons: list[str] = []
        self.associations: list[str] = []
        self.nodes: str | None = None
        self.nnodes: tuple[int, int] | None = None
        self.ncpus: tuple[int, int] | None = None
        self.timelimit_min: int | None = None
        self.timelimit_max: int | None = None
        self.truncate = False
        self.script = False
        self.env_vars = False
        self.verbose = 0
        self.noconvert = False
        self.units: str | None = None

    @property
    def job_ids(self) -> list[int]:
        out: list[int] = []
        for sel in self.jobs:
            if sel.job_id not in out:
                out.append(sel.job_id)
        return out


def _midnight(now: float) -> float:
    import time

    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def _fatal(message: str) -> Exception:
    from spurcli.jobrefs import fatal

    return fatal(PROG, message)


def _range(text: str, what: str, flag: str) -> tuple[int, int]:
    """``get_resource_arg_range``: ``N``, ``N-M``; error ``invalid <what> range -i '<text>'``."""
    low, dash, high = text.partition("-")
    try:
        lo = int(low)
        hi = int(high) if dash and high else (0x7FFFFFFF if dash else lo)
    except ValueError:
        raise CliError(f"invalid {what} range -i '{text}'") from None
    if lo < 0 or hi < lo:
        raise CliError(f"invalid {what} range -i '{text}'")
    return lo, hi


def _time_limit_mins(text: str) -> int:
    from spurcore.timefmt import parse_time_limit

    s = text.strip()
    if s.upper() in ("-1", "INFINITE", "UNLIMITED"):
        return 0xFFFFFFFF
    try:
        secs = parse_time_limit(s, round_up_to_minutes=True)
    except ValueError:
        secs = 0
    if not secs:
        raise _fatal("Invalid time limit specification")
    return secs // 60


def _ids(text: str, *, gid: bool) -> list[str]:
    """``slurm_addto_id_char_list``: names or numbers -> ids as text; unknown -> exit 1."""
    import grp
    import pwd

    out: list[str] = []
    for item in (t for t in text.split(",") if t):
        if item.isdigit():
            value = item
        else:
            try:
                value = str(grp.getgrnam(item).gr_gid if gid else pwd.getpwnam(item).pw_uid)
            except KeyError:
                common.error(PROG, f"Invalid {'group' if gid else 'user'} id: {item}")
                raise CliError(code=1) from None
        if value not in out:
            out.append(value)
    return out


def parse_args(args: list[str], *, now: float, environ: Any = None, uid: int | None = None) -> Query:
    from spurcli import jobrefs
    from spurcore.render import sacct as render
    from spurcore.timefmt import parse_sacct_time

    env = os.environ if environ is None else environ
    uid = os.getuid() if uid is None else uid
    pairs, operands = common.getopt(args, OPTIONS)
    q = Query()
    field_list = ""
    brief = long = False
    completion = False
    user_given = False
    info_texts = {"help": HELP, "usage": USAGE, "helpformat": _help_fields,
                  "helpstate": lambda: _columns(list(_HELP_STATES), 4),
                  "helpreason": lambda: _columns(list(REASONS), 2)}
    for key, value in pairs:
        text = value or ""
        common.info_option(key, text, OPTIONS, info_texts)
        if key == "allusers":
            q.all_users = True
        elif key == "accounts":
            q.accounts.extend(t for t in text.split(",") if t)
        elif key == "array":
            q.array = True
        elif key == "brief":
            brief = True
        elif key == "batch_script":
            q.script = True
            q.allocations = True
        elif key == "completion":
            completion = True
        elif key == "delimiter":
            q.delimiter = text
        elif key == "constraints":
            q.constraints.extend(t for t in text.split(",") if t)
        elif key == "clusters":
            if text.lower() not in ("all", "-1"):
                try:
                    jobrefs.check_clusters(text, common.load_config().name, PROG)
                except jobrefs.RefError as exc:
                    common.error(PROG, str(exc))
                    raise _fatal("Could not get cluster information") from None
        elif key == "duplicates":
            q.duplicates = True
        elif key in ("starttime", "endtime"):
            try:
                t = parse_sacct_time(text, now)
            except ValueError:
                sys.stderr.write(f"Invalid time specification (pos=0): {text}\n")
                raise CliError(code=1) from None
            if key == "starttime":
                q.start = t
            else:
                q.end = t
        elif key == "env_vars":
            q.env_vars = True
            q.allocations = True
        elif key == "file":
            if not os.path.isfile(text):
                sys.stderr.write(f"{text} is not a valid file\n")
                raise CliError(code=1)
            completion = True
        elif key == "flags":
            _check_flags(text)
        elif key == "group":
            q.groups.extend(_ids(text, gid=True))
        elif key == "nnodes":
            q.nnodes = _range(text, "node", "i")
        elif key == "ncpus":
            q.ncpus = _range(text, "cpu", "i")
        elif key == "jobs":
            try:
                q.jobs.extend(jobrefs.sacct_steps(text))
            except jobrefs.RefError as exc:
                raise _fatal(f"Bad job/step specified: {exc}") from None
        elif key == "timelimit_min":
            q.timelimit_min = _time_limit_mins(text)
        elif key == "timelimit_max":
            q.timelimit_max = _time_limit_mins(text)
        elif key == "long":
            long = True
        elif key == "nodelist":
            if q.nodes is not None:
                common.error(PROG, f"Already asked for nodes '{q.nodes}'")
            else:
                q.nodes = text
        elif key == "noconvert":
            q.noconvert = True
        elif key == "units":
            if not text or text[0].upper() not in "KMGTP":
                raise _fatal("Invalid unit type")
            q.units = text[0].upper()
        elif key == "noheader":
            q.noheader = True
        elif key == "name":
            q.names.extend(t for t in text.split(",") if t)
        elif key == "format":
            field_list += text + ","
        elif key == "parsable":
            q.parsable = True
        elif key == "parsable2":
            q.parsable2 = True
        elif key == "qos":
            q.qos.extend(t for t in text.split(",") if t)
        elif key == "partition":
            q.partitions.extend(t for t in text.split(",") if t)
        elif key == "reason":
            for item in (t for t in text.split(",") if t):
                match = next((r for r in REASONS if r.lower() == item.lower()), None)
                if match is None:
                    raise _fatal(f"unrecognized job reason value '{item}'")
                q.reasons.append(match)
        elif key == "state":
            for item in (t for t in text.split(",") if t):
                state = jobrefs.job_state_num(item)
                if state is None:
                    raise _fatal(f"unrecognized job state value '{item}'")
                if state not in SUPPORTED_STATES:
                    raise _fatal(f"job state {item} is not supported / accounted")
                if state not in q.states:
                    q.states.append(state)
        elif key == "truncate":
            q.truncate = True
        elif key == "user":
            if text == "-1":
                q.all_users = True
                continue
            q.all_users = False
            user_given = True
            q.users.extend(u for u in _ids(text, gid=False) if u not in q.users)
        elif key == "verbose":
            q.verbose += 1
        elif key == "wckeys":
            q.wckeys.extend(t for t in text.split(",") if t)
        elif key == "whole_hetjob":
            if value is not None and text.lower() not in ("yes", "y", "no", "n"):
                common.error(PROG, f'Invalid --whole-hetjob value "{text}". Valid values: [yes|no].')
                raise CliError(code=1)
        elif key == "associations":
            q.associations.extend(t for t in text.split(",") if t)
        elif key in ("json", "yaml"):
            q.json = key == "json"
            q.mime = key
        # allclusters, federation, local, use_local_uid, expand_patterns, allocations...
        elif key == "allocations":
            q.allocations = True
    if not q.jobs:
        reason = "job scripts" if q.script else "job environment" if q.env_vars else None
        if reason:
            raise _fatal(f"When requesting {reason} you must also request specific jobs with the '-j' option.")
    if q.script and q.env_vars:
        raise _fatal("Options --batch-script and --env-vars are mutually exclusive")
    if long and field_list:
        raise _fatal("Options -o(--format) and -l(--long) are mutually exclusive. Please remove one and retry.")
    # slurmdb_job_cond_def_start_end
    if q.states:
        if q.start is None and not q.jobs:
            q.start = now
        if q.start and q.end is None:
            q.end = q.start
    elif not q.jobs and q.start is None:
        q.start = _midnight(now)
    if q.start is None:
        q.start = 0.0
    if q.end is None:
        q.end = now
    if q.end and q.start > q.end:
        from spurcore.render._common import make_time_str

        fmt = env.get("SLURM_TIME_FORMAT")
        common.error(PROG, f"Start time ({make_time_str(q.start, fmt, now)}) requested is after end time "
                           f"({make_time_str(q.end, fmt, now)}).")
        raise CliError(code=1)
    if completion:
        sys.stderr.write("Slurm job completion is disabled\n")
        raise CliError(code=1)
    if not q.users and (q.jobs or q.nodes is not None):
        q.all_users = True
    if not user_given and uid == 0:
        q.all_users = True
    if q.all_users:
        q.users = []
    elif not q.users:
        q.users = [str(uid)]
    if brief:
        field_list += render.BRIEF_FIELDS + ","
    if long:
        field_list += render.LONG_FIELDS + ","
    if not field_list:
        field_list = (env.get("SACCT_FORMAT") or render.DEFAULT_FIELDS) + ","
    q.fields = field_list.rstrip(",")
    if operands:
        common.error(PROG, "Unknown arguments:")
        for op in operands:
            common.error(PROG, f" {op}")
        raise CliError(code=1)
    return q


def _check_flags(text: str) -> None:
    """``str_2_job_flags``: SchedSubmit, SchedMain, SchedBackfill, StartReceived."""
    known = {"schedsubmit", "schedmain", "schedbackfill", "startreceived"}
    for item in (t for t in text.split(",") if t):
        if item.lower() not in known:
            common.error(PROG, f"{item} is not a valid job flag")
            raise CliError(code=1)


def _columns(names: list[str], per: int) -> str:
    """options.c's help printers: ``%-19s`` cells, ``per`` a line."""
    out = []
    for i, name in enumerate(names):
        if i % per:
            out.append(" ")
        elif i:
            out.append("\n")
        out.append(f"{name:<19}")
    return "".join(out) + "\n"


def _help_fields() -> str:
    from spurcore.render.sacct import FIELDS

    return _columns([f.name for f in FIELDS], 4)


def _ran_on(job: dict[str, Any], wanted: set[str]) -> bool:
    from spurcore.hostlist import expand

    nodes = str(job.get("nodes") or "")
    return bool(nodes) and bool(wanted.intersection(expand(nodes)))


def select(q: Query, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The client-side filters (what slurmdbd's job_cond would select), in order."""
    out: list[dict[str, Any]] = []
    users = set(q.users)
    states = set(q.states)
    if not q.duplicates:  # only the latest run of a requeued job (records come oldest first)
        latest = {int(j.get("job_id", 0)): j for j in jobs}
        jobs = [j for j in jobs if latest[int(j.get("job_id", 0))] is j]
    node_set: set[str] | None = None
    if q.nodes is not None:
        from spurcore.hostlist import expand

        node_set = set(expand(q.nodes))
    for job in jobs:
        jid = int(job.get("job_id", 0))
        array_id = int(job.get("array_job_id") or 0)
        task = job.get("array_task_id") if array_id else None
        if q.jobs:
            sels = [s for s in q.jobs if _sel_matches(s, jid, array_id, task, job)]
            if not sels:
                continue
            if all(s.step is not None for s in sels):
                wanted = [s.step for s in sels]
                job = {**job, "steps": [s for s in job.get("steps") or () if s.get("step_id") in wanted]}
            job = _narrow_pending(job, sels)
        if users and str(job.get("uid")) not in users and str(job.get("user")) not in users:
            continue
        if states and not common.job_state_matches(job, states):
            continue
        if q.names and str(job.get("name") or "") not in q.names:
            continue
        if q.partitions and str(job.get("partition") or "") not in q.partitions:
            continue
        if q.accounts and str(job.get("account") or "").lower() not in {a.lower() for a in q.accounts}:
            continue
        if q.qos and str(job.get("qos") or "normal").lower() not in {x.lower() for x in q.qos}:
            continue
        if q.groups and str(job.get("gid")) not in q.groups:
            continue
        if q.wckeys and str(job.get("wckey") or "") not in q.wckeys:
            continue
        if q.constraints and str(job.get("constraint") or "") not in q.constraints:
            continue
        if q.reasons and str(job.get("reason") or "None") not in q.reasons:
            continue
        if q.associations:
            continue  # Spur keeps no associations: no job has one of these ids
        if node_set is not None and not _ran_on(job, node_set):
            continue
        if q.nnodes is not None and not q.nnodes[0] <= int(job.get("node_count") or 0) <= q.nnodes[1]:
            continue
        if q.ncpus is not None and not q.ncpus[0] <= int(job.get("num_cpus") or 0) <= q.ncpus[1]:
            continue
        limit = job.get("time_limit")
        limit_mins = 0xFFFFFFFF if limit is None else (int(limit) + 59) // 60
        if q.timelimit_min is not None:
            high = q.timelimit_max if q.timelimit_max is not None else q.timelimit_min
            if not q.timelimit_min <= limit_mins <= high:
                continue
        out.append(job)
    return out


def _sel_matches(sel: Any, jid: int, array_id: int, task: int | None, job: dict[str, Any]) -> bool:
    from spurcore.arrays import contains

    if sel.task_id is None:
        return sel.job_id in (jid, array_id)
    if array_id != sel.job_id:
        return False
    if task is not None:
        return int(task) == sel.task_id
    return contains([list(r) for r in job.get("array_pending") or ()], sel.task_id)


def _narrow_pending(job: dict[str, Any], sels: list[Any]) -> dict[str, Any]:
    """``-j A_T`` of tasks that never started: only those tasks of the pending record."""
    if not job.get("array_job_id") or job.get("array_task_id") is not None:
        return job
    if any(s.task_id is None for s in sels):
        return job
    tasks = sorted({s.task_id for s in sels})
    if len(tasks) == 1:
        return {**job, "array_task_id": tasks[0], "array_pending": []}
    from spurcore.arrays import compress

    return {**job, "array_pending": compress(tasks), "array_max_tasks": 0}


def _truncate(q: Query, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``-T``: start and end times clipped to the window."""
    out = []
    for job in jobs:
        job = dict(job)
        start = float(job.get("start_time") or 0)
        end = float(job.get("end_time") or 0)
        if start and q.start and start < q.start:
            job["start_time"] = q.start
        if end and q.end and end > q.end:
            job["end_time"] = q.end
        out.append(job)
    return out


def _print_scripts(q: Query, jobs: list[dict[str, Any]], bitstr_len: int | None) -> None:
    from spurcore.render.sacct import job_id_text

    for job in jobs:
        if not q.noheader:
            head = "Batch Script for" if q.script else "Environment used for"
            tail = "" if q.script else " (must be batch to display)"
            sys.stdout.write(f"{head} {job_id_text(job, bitstr_len)}{tail}\n" + "-" * 80 + "\n")
        key = "script" if q.script else "env"
        value = job.get(key)
        if isinstance(value, dict):
            value = "".join(f"{k}={v}\n" for k, v in value.items())
        sys.stdout.write(str(value) if value else "NONE\n")


def _body(args: list[str]) -> int:
    import time

    now = time.time()
    env = os.environ
    q = parse_args(args, now=now, environ=env)
    from spurcore.render import sacct as render

    try:
        fields = render.parse_format(q.fields or render.DEFAULT_FIELDS)
    except render.FormatError as exc:
        raise CliError(str(exc)) from None
    from spurcore.render._common import time_format_error
    from spurio.rpc import RpcError

    time_format = env.get("SLURM_TIME_FORMAT")
    problem = time_format_error(time_format)
    if problem:
        common.error(PROG, problem)
    bitstr_len = None
    if env.get("SLURM_BITSTR_LEN") is not None:
        from spurcli.jobrefs import strtol

        bitstr_len = strtol(env["SLURM_BITSTR_LEN"])[0]
    with common.connect() as ctl:
        try:
            result = ctl.call("history", {"job_ids": q.job_ids, "start": q.start, "end": q.end})
        except RpcError as exc:
            raise CliError(f"Problem talking to the database: {exc.message or exc.code}") from None
    jobs = select(q, list(result.get("jobs") or []))
    for job in jobs:
        if "group" not in job:
            job["group"] = common.group_name(int(job.get("gid", 0)))
    if q.truncate:
        jobs = _truncate(q, jobs)
    if q.mime:
        from spurcli.jobrefs import dump_document
        from spurcore.render.data_parser import json_meta

        meta = json_meta([PROG, *args], plugin="accounting_storage/spur", cluster=common.load_config().name,
                         user=common.current_user()[0], group=common.group_name(os.getgid()),
                         accounting_storage="spur")
        doc = render.to_json(jobs, now=now, bitstr_len=bitstr_len, meta=meta)
        sys.stdout.write(dump_document(doc, q.mime, env))
        return 0
    if q.script or q.env_vars:
        _print_scripts(q, jobs, bitstr_len)
        return 0
    sys.stdout.write(render.render(
        jobs, fields, parsable=q.parsable, parsable2=q.parsable2, noheader=q.noheader,
        allocations=q.allocations, delimiter=q.delimiter, now=now, time_format=time_format,
        bitstr_len=bitstr_len, array=q.array, units=q.units, noconvert=q.noconvert,
    ))
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
