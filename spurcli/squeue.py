"""``squeue``: the job queue (Slurm 25.11 behaviour; layout in ``spurcore.render.squeue``).

Every option of squeue(1) is accepted (src/squeue/opts.c), in command-line order, with the
environment variables it reads (``SQUEUE_*``, ``SLURM_TIME_FORMAT``, ``SLURM_BITSTR_LEN``,
``SLURM_CLUSTERS``, ``SLURM_JSON``). The controller's ``jobs`` method does the coarse
filtering (job references, users, states); ``spurcore.render.squeue.select_jobs`` then applies
squeue's own filter to every record, so flag states (a STOPPED job is RUNNING underneath, a
CANCELLED job may still be COMPLETING) and job arrays (``-j 12_3`` of a pending array shows
only that task) follow Slurm exactly.

``-j`` with exactly one id loads that job alone, as Slurm's ``slurm_load_job`` does: an
unknown id is the error ``slurm_load_jobs error: Invalid job id specified`` (exit 1), and
the state filter still applies afterwards (a finished job shows only the header).

Options Spur has no mechanism for (licenses, reservations, federation, hidden partitions)
are validated and accepted; see docs/query-tools.md.
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
    Opt("autocomplete", "", "autocomplete", REQUIRED),
    Opt("accounts", "A", "accounts", REQUIRED),
    Opt("accounts", "U", (), REQUIRED),  # backwards compatibility
    Opt("all", "a", "all"),
    Opt("array", "r", "array"),
    Opt("expand_patterns", "", "expand-patterns"),
    Opt("Format", "O", "Format", REQUIRED),
    Opt("format", "o", "format", REQUIRED),
    Opt("federation", "", "federation"),
    Opt("help", "", "help"),
    Opt("helpstate", "", "helpstate"),
    Opt("helpformat", "", "helpformat"),
    Opt("helpFormat", "", "helpFormat"),
    Opt("hide", "", "hide"),
    Opt("iterate", "i", "iterate", REQUIRED),
    Opt("jobs", "j", "jobs", OPTIONAL),
    Opt("local", "", "local"),
    Opt("long", "l", "long"),
    Opt("licenses", "L", "licenses", REQUIRED),
    Opt("clusters", "M", ("cluster", "clusters"), REQUIRED),
    Opt("me", "", "me"),
    Opt("name", "n", "name", REQUIRED),
    Opt("noconvert", "", "noconvert"),
    Opt("nodelist", "w", ("node", "nodes", "nodelist"), REQUIRED),
    Opt("noheader", "h", "noheader"),
    Opt("notme", "", "notme"),
    Opt("only_job_state", "", "only-job-state"),
    Opt("partitions", "p", "partitions", REQUIRED),
    Opt("priority", "P", "priority"),
    Opt("qos", "q", "qos", REQUIRED),
    Opt("reservation", "R", "reservation", REQUIRED),
    Opt("running_over", "", "running-over", REQUIRED),
    Opt("running_under", "", "running-under", REQUIRED),
    Opt("sibling", "", ("sib", "sibling")),
    Opt("sort", "S", "sort", REQUIRED),
    Opt("start", "", "start"),
    Opt("steps", "s", "steps", OPTIONAL),
    Opt("states", "t", "states", REQUIRED),
    Opt("usage", "", "usage"),
    Opt("user", "u", ("user", "users"), REQUIRED),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
    Opt("json", "", "json", OPTIONAL),
    Opt("yaml", "", "yaml", OPTIONAL),
)

USAGE = """\
Usage: squeue [-A account] [--clusters names] [-i seconds] [--job jobid]
              [-n name] [-o format] [--only-job-state] [-p partitions]
              [--qos qos] [--reservation reservation] [--sort fields] [--start]
              [--step step_id] [-t states] [-u user_name] [--usage]
              [-L licenses] [-w nodes] [--federation] [--local] [--sibling]
              [--expand-patterns] [--json=data_parser] [--yaml=data_parser]
              [--running-over=time] [--running-under=time] [-ahjlrsv]
"""

HELP = """\
Usage: squeue [OPTIONS]
  -A, --account=account(s)        comma separated list of accounts
                                  to view, default is all accounts
  -a, --all                       display jobs in hidden partitions
      --federation                Report federated information if a member
                                  of one
  -h, --noheader                  no headers on output
      --hide                      do not display jobs in hidden partitions
  -i, --iterate=seconds           specify an iteration period
  -j, --job=job(s)                comma separated list of jobs IDs
                                  to view, default is all
      --json[=data_parser]        Produce JSON output
      --local                     Report information only about jobs on the
                                  local cluster. Overrides --federation.
  -l, --long                      long report
  -L, --licenses=(license names)  comma separated list of license names to view
  -M, --clusters=cluster_name     cluster to issue commands to.  Default is
                                  current cluster.  cluster with no name will
                                  reset to default. Implies --local.
  -n, --name=job_name(s)          comma separated list of job names to view
      --noconvert                 don't convert units from their original type
                                  (e.g. 2048M won't be converted to 2G).
  -o, --format=format             format specification
  -O, --Format=format             format specification
      --only-job-state            Only query job state
  -p, --partition=partition(s)    comma separated list of partitions
                                  to view, default is all partitions
  -q, --qos=qos(s)                comma separated list of qos's
                                  to view, default is all qos's
  -R, --reservation=name(s)       comma separated list of reservations to view
  -r, --array                     display one job array element per line
      --running-over=time         Display only jobs that have been running
                                  over the specified time.
      --running-under=time        Display only jobs that have been running
                                  under the specified time.
      --sibling                   Report information about all sibling jobs
                                  on a federated cluster. Implies --federation.
  -s, --step=step(s)              comma separated list of job steps
                                  to view, default is all
  -S, --sort=fields               comma separated list of fields to sort on
      --start                     print expected start times of pending jobs
  -t, --states=states             comma separated list of states to view,
                                  default is pending and running,
                                  '--states=all' reports all states
  -u, --user=user_name(s)         comma separated list of users to view
      --name=job_name(s)          comma separated list of job names to view
  -v, --verbose                   verbosity level
  -V, --version                   output version information and exit
  -w, --nodelist=hostlist         list of nodes to view, default is all nodes
      --yaml[=data_parser]        Produce YAML output

Help options:
  --help                          show this help message
  --helpformat                    print a list of fields that can be specified
                                  with '--format=' option
  --helpFormat                    print a list of fields that can be specified
                                  with '--Format=' option
  --helpstate                     print a list of states that can use specified
                                  with '--states=' option
  --usage                         display a brief summary of squeue options
"""

#: What the controller is asked for by default (the renderer refines it: DEFAULT_STATES).
DEFAULT_STATES = ["PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED"]

#: Options --only-job-state may be combined with (opts.c ``_check_only_state``).
_ONLY_STATE_OK = frozenset({
    "array", "expand_patterns", "format", "Format", "federation", "iterate", "jobs", "local", "clusters",
    "noconvert", "noheader", "only_job_state", "sibling", "sort", "states", "verbose", "json", "yaml",
})


class Query:
    """The parsed squeue request (opts.c's ``params``)."""

    def __init__(self) -> None:
        self.jobs: list[Any] | None = None  # JobSel list (None: all jobs)
        self.job_flag = False
        self.users: list[str] | None = None  # uids as text, names resolved
        self.states: list[str] | None = None  # long names, "ALL"; None: the default set
        self.names: list[str] | None = None
        self.partitions: list[str] | None = None
        self.accounts: list[str] | None = None
        self.qos: list[str] | None = None
        self.reservation: str | None = None
        self.licenses: list[str] | None = None
        self.nodes: list[str] | None = None
        self.steps = False
        self.step_filter: list[Any] | None = None
        self.fmt: str | None = None
        self.Fmt: str | None = None
        self.sort: str | None = None
        self.long = False
        self.noheader = False
        self.array = False
        self.start = False
        self.iterate = 0
        self.verbose = 0
        self.mime: str | None = None  # "json" / "yaml"
        self.data_parser: str | None = None
        self.expand_patterns = False
        self.noconvert = False
        self.notme = False
        self.only_state = False
        self.priority = False
        self.all = False
        self.clusters: list[str] | None = None
        self.running_over: int | None = None
        self.running_under: int | None = None
        self.used: set[str] = set()

    @property
    def job_ids(self) -> list[int]:
        out: list[int] = []
        for sel in self.jobs or ():
            if sel.job_id not in out:
                out.append(sel.job_id)
        return out

    @property
    def single_job(self) -> bool:
        return self.jobs is not None and len(self.jobs) == 1

    def params(self) -> dict[str, Any]:
        """The ``jobs`` call: server-side filters."""
        params: dict[str, Any] = {}
        if self.jobs is not None:
            from spurcli.jobrefs import refs_of

            params["job_refs"] = refs_of(self.jobs)
        if self.users is not None:
            params["users"] = list(self.users)
        # One job is loaded whatever its state (the state filter applies afterwards).
        if not self.single_job and self.states is not None and "ALL" not in self.states:
            params["states"] = list(self.states)
        elif not self.single_job and self.states is None:
            params["states"] = list(DEFAULT_STATES)
        if self.steps:
            params["with_steps"] = True
        if self.fmt is None and self.Fmt is None and not self.mime and not self.steps:
            # The default and -l layouts need only some fields (and what the query's
            # filters and sort read): a long queue then costs a third as much to move.
            params["fields"] = self.fields()
        return params

    def fields(self) -> list[str]:
        """The record fields the default (or -l) layout, this query's filters, its sort and
        job arrays read (see spurcore/render/squeue.py)."""
        from spurcore.render.squeue import sort_fields

        fields = list(DEFAULT_LAYOUT_FIELDS)
        if self.long:
            fields.append("time_limit")
        if self.accounts is not None:
            fields.append("account")
        if self.qos is not None:
            fields.append("qos")
        if self.priority:
            fields.append("priority_by_partition")  # -P: each partition's own priority
        fields += sorted(sort_fields(self.sort) - set(fields))
        return fields


#: Fields of the job records that squeue's default layout, its state, user, name, partition,
#: node and running-time filters, its default sort and job arrays read.
DEFAULT_LAYOUT_FIELDS = (
    "job_id", "partition", "name", "user", "uid", "state", "base_state", "run_time", "node_count", "nodes",
    "reason", "priority", "array_job_id", "array_task_id", "array_pending", "array_max_tasks",
)


def _state_list(text: str, prog: str = PROG) -> list[str]:
    """``_build_state_list``: ``all`` -> ["ALL"]; an unknown state is fatal."""
    from spurcli.jobrefs import JOB_STATE_NAMES, job_state_num

    if text.lower() == "all":
        return ["ALL"]
    out: list[str] = []
    for item in (t for t in text.split(",") if t):
        state = job_state_num(item)
        if state is None:
            common.error(prog, f"Invalid job state specified: {item}")
            raise CliError(f"Valid job states include: {','.join(JOB_STATE_NAMES)}\n")
        if state not in out:
            out.append(state)
    return out


def _user_list(text: str) -> list[str]:
    """``_build_user_list``: names and uids; an unknown name is reported and left out (squeue
    then shows no job of it), a numeric uid is kept even without a passwd entry."""
    import pwd

    out: list[str] = []
    for item in (t for t in text.split(",") if t):
        if item.isdigit():
            uid = item
        else:
            try:
                uid = str(pwd.getpwnam(item).pw_uid)
            except KeyError:
                common.error(PROG, f"Invalid user: {item}\n")
                continue
        if uid not in out:
            out.append(uid)
    return out


def _str_list(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def _running_time(text: str) -> int:
    from spurcli.jobrefs import fatal
    from spurcore.timefmt import parse_time_limit

    try:
        secs = parse_time_limit(text)
    except ValueError:
        secs = -1
    if secs is None:
        return 0xFFFFFFFF
    if secs <= 0:
        raise fatal(PROG, "Invalid time limit specification")
    return secs


def parse_args(args: list[str], environ: Any = None) -> Query:
    """squeue's command line and environment (opts.c ``parse_command_line``). Prints what
    squeue prints for ``--help``-like options and raises ``common.Exit``; raises CliError
    with squeue's message for a bad value. (spurcli.jobrefs is imported by the options that
    need it: a plain ``squeue`` does not.)"""
    env = os.environ if environ is None else environ
    pairs, operands = common.getopt(args, OPTIONS)
    q = Query()
    if env.get("SQUEUE_ALL") is not None:
        q.all = True
    if env.get("SQUEUE_ARRAY") is not None:
        q.array = True
    if env.get("SQUEUE_SORT"):
        q.sort = env["SQUEUE_SORT"]
    if env.get("SQUEUE_PRIORITY") is not None:
        q.priority = True
    override_format_env = False
    info_texts = {"help": HELP, "usage": USAGE, "helpstate": _help_state,
                  "helpformat": lambda: _help_format(q.steps, long=False),
                  "helpFormat": lambda: _help_format(q.steps, long=True)}
    for key, value in pairs:
        q.used.add(key)
        text = value or ""
        common.info_option(key, text, OPTIONS, info_texts)
        if key == "accounts":
            q.accounts = _str_list(text)
        elif key == "all":
            q.all = True
        elif key == "noheader":
            q.noheader = True
        elif key == "iterate":
            from spurcli import jobrefs

            secs = jobrefs.strtol(text)[0]
            if secs <= 0:
                raise CliError(f"--iterate={text}\n")
            q.iterate = secs
        elif key == "jobs":
            if value is not None:
                from spurcli import jobrefs

                try:
                    q.jobs = jobrefs.squeue_jobs(text)
                except jobrefs.RefError as exc:
                    raise CliError(str(exc)) from None
            q.job_flag = True
        elif key == "long":
            q.long = True
            override_format_env = True
        elif key == "licenses":
            q.licenses = _str_list(text)
        elif key == "clusters":
            q.clusters = _cluster_list(text, isenv=False)
        elif key == "name":
            q.names = _str_list(text)
        elif key == "Format":
            if q.fmt is not None:
                raise CliError("-O (--Format) is incompatible with -o (--format)")
            q.Fmt = text
            override_format_env = True
        elif key == "format":
            if q.Fmt is not None:
                raise CliError("-o (--format) is incompatible with -O (--Format)")
            q.fmt = text
            override_format_env = True
        elif key == "partitions":
            q.partitions = _str_list(text)
            q.all = True
        elif key == "priority":
            q.priority = True
        elif key == "qos":
            q.qos = _str_list(text)
        elif key == "reservation":
            q.reservation = text
        elif key == "array":
            q.array = True
        elif key == "steps":
            if value is not None:
                from spurcli import jobrefs

                try:
                    q.step_filter = jobrefs.squeue_steps(text)
                except jobrefs.RefError as exc:
                    raise CliError(str(exc)) from None
            q.steps = True
            override_format_env = True
        elif key == "sort":
            q.sort = text
        elif key == "states":
            q.states = _state_list(text)
        elif key == "user":
            q.users = _user_list(text)
        elif key == "verbose":
            q.verbose += 1
        elif key == "nodelist":
            q.nodes = _node_list(text)
        elif key == "expand_patterns":
            q.expand_patterns = True
        elif key == "hide":
            q.all = False
        elif key == "me":
            q.users = [str(os.geteuid())]
        elif key == "only_job_state":
            q.only_state = True
        elif key == "start":
            q.start = True
            override_format_env = True
        elif key == "noconvert":
            q.noconvert = True
        elif key == "notme":
            q.notme = True
        elif key in ("json", "yaml"):
            q.mime = key
            q.data_parser = value
        elif key == "running_over":
            q.running_over = _running_time(text)
        elif key == "running_under":
            q.running_under = _running_time(text)
        # federation, local, sibling: Spur is one cluster; accepted.

    if q.long and q.fmt is not None:
        from spurcli.jobrefs import fatal

        raise fatal(PROG, "Options -o(--format) and -l(--long) are mutually exclusive. Please remove one "
                    "and retry.")
    if q.only_state and not q.used <= _ONLY_STATE_OK:
        from spurcli.jobrefs import fatal

        raise fatal(PROG, "Option --only-job-state only works alone, with -j (--jobs) and/or -t (--states) "
                    "parameters, parameters for cluster/federation selection, and the printing options.")
    if not override_format_env:
        if env.get("SQUEUE_FORMAT") is not None:
            q.fmt = env["SQUEUE_FORMAT"]
        elif env.get("SQUEUE_FORMAT2") is not None:
            q.Fmt = env["SQUEUE_FORMAT2"]
    if operands:
        if q.job_flag:
            from spurcli import jobrefs

            try:
                q.jobs = jobrefs.squeue_jobs(operands[0])
            except jobrefs.RefError as exc:
                raise CliError(str(exc)) from None
            operands = operands[1:]
        elif q.steps:
            from spurcli import jobrefs

            try:
                q.step_filter = jobrefs.squeue_steps(operands[0])
            except jobrefs.RefError as exc:
                raise CliError(str(exc)) from None
            operands = operands[1:]
        if operands:
            common.error(PROG, f"Unrecognized option: {operands[0]}")
            sys.stdout.write(USAGE)
            raise CliError(code=1)
    if q.clusters is None and env.get("SLURM_CLUSTERS"):
        q.clusters = _cluster_list(env["SLURM_CLUSTERS"], isenv=True)
    if q.job_flag and q.steps:
        if q.jobs is not None:
            if q.verbose:
                common.info(PROG, "Printing job steps with job filter")
            q.job_flag = False
        else:
            raise CliError("Incompatible options --jobs and --steps")
    if q.accounts is None and env.get("SQUEUE_ACCOUNT"):
        q.accounts = _str_list(env["SQUEUE_ACCOUNT"])
    if q.names is None and env.get("SQUEUE_NAMES"):
        q.names = _str_list(env["SQUEUE_NAMES"])
    if q.licenses is None and env.get("SQUEUE_LICENSES"):
        q.licenses = _str_list(env["SQUEUE_LICENSES"])
    if q.partitions is None and env.get("SQUEUE_PARTITION"):
        q.partitions = _str_list(env["SQUEUE_PARTITION"])
        q.all = True
    if q.qos is None and env.get("SQUEUE_QOS"):
        q.qos = _str_list(env["SQUEUE_QOS"])
    if q.states is None and env.get("SQUEUE_STATES"):
        q.states = _state_list(env["SQUEUE_STATES"])
    if q.users is None and env.get("SQUEUE_USERS"):
        q.users = _user_list(env["SQUEUE_USERS"])
    if q.start and not q.steps:
        if q.fmt is None:
            from spurcore.render.squeue import START_FORMAT

            q.fmt = START_FORMAT
        if q.sort is None:
            q.sort = "S"
        if q.states is None:
            q.states = ["PENDING"]
    if q.running_over and q.running_under and q.running_over > q.running_under:
        from spurcli.jobrefs import fatal
        from spurcore.timefmt import fmt_duration_scontrol

        raise fatal(PROG, f"--running-over={fmt_duration_scontrol(q.running_over)} and "
                    f"--running-under={fmt_duration_scontrol(q.running_under)} will return 0 jobs.")
    return q


def _help_state() -> str:
    from spurcli.jobrefs import JOB_STATE_NAMES

    return "\n".join(JOB_STATE_NAMES) + "\n"


def _help_format(steps: bool, *, long: bool) -> str:
    """``--helpformat`` (``-o`` letters) or ``--helpFormat`` (``-O`` names), of steps with ``-s``."""
    from spurcore.render import squeue as render

    return render.help_long_format(steps=steps) if long else render.help_format(steps=steps)


def _cluster_list(text: str, *, isenv: bool) -> list[str]:
    from spurcli import jobrefs
    from spurcli.jobrefs import fatal

    try:
        return jobrefs.check_clusters(text, common.load_config().name, PROG, isenv=isenv)
    except jobrefs.RefError as exc:
        common.error(PROG, str(exc))
        raise fatal(PROG, "Could not get cluster information") from None


def _node_list(text: str) -> list[str]:
    from spurcore.hostlist import expand

    try:
        names = expand(text)
    except ValueError:
        raise CliError(f"'{text}' invalid entry for --nodelist") from None
    return ["localhost" if n.lower() == "localhost" else n for n in names]


def _check_nodes(q: Query, ctl: Any) -> None:
    """opts.c ``_filter_nodes``: every -w name must be a node (or ``localhost``, this host's
    short name: gethostname(2), which is uname's nodename; ``socket`` would cost 4 ms)."""
    if q.nodes is None:
        return
    known = {str(n.get("name")) for n in ctl.call("nodes", {}).get("nodes") or ()}
    out: list[str] = []
    for name in q.nodes:
        mapped = os.uname().nodename.split(".")[0] if name.lower() == "localhost" else name
        if mapped not in known:
            raise CliError(f"Invalid node name {name}")
        out.append(mapped)
    q.nodes = out


def job_filter(q: Query) -> Any:
    """The renderer's filter for this query."""
    from spurcore.render.squeue import JobFilter

    return JobFilter(
        jobs=q.jobs,
        states=None if q.states is None else list(q.states),
        users=q.users,
        names=q.names,
        partitions=q.partitions,
        accounts=q.accounts,
        qos=q.qos,
        reservations=None if q.reservation is None else [q.reservation],
        licenses=q.licenses,
        nodes=q.nodes,
        not_uid=os.getuid() if q.notme else None,
        running_over=q.running_over,
        running_under=q.running_under,
    )


def filter_jobs(q: Query, jobs: list[dict[str, Any]], now: float = 0.0) -> list[dict[str, Any]]:
    """The client-side half of the filters (squeue's ``_filter_job`` on every record)."""
    from spurcore.render import squeue as render

    return render.select_jobs(jobs, job_filter(q), now)


def _filter_steps(q: Query, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """print.c ``_filter_step``: -j jobs, -p, the -s step list, -w nodes, -u users."""
    from spurcore.hostlist import expand

    out = []
    for job in jobs:
        jid = int(job.get("job_id", 0))
        array_id = int(job.get("array_job_id") or 0)
        task = job.get("array_task_id") if array_id else None
        if q.jobs is not None and not any(
            (s.task_id is None and s.job_id in (jid, array_id)) or (s.task_id == task and s.job_id == array_id)
            for s in q.jobs
        ):
            continue
        if q.partitions is not None and str(job.get("partition") or "") not in q.partitions:
            continue
        if q.users is not None and str(job.get("uid")) not in q.users:
            continue
        steps = list(job.get("steps") or ())
        if q.step_filter is not None:
            steps = [
                s for s in steps
                if any(
                    sel.step == s.get("step_id")
                    and ((sel.task_id is None and sel.job_id in (jid, array_id))
                         or (sel.task_id == task and sel.job_id == array_id))
                    for sel in q.step_filter
                )
            ]
        if q.nodes is not None:
            wanted = set(q.nodes)
            steps = [s for s in steps if s.get("nodes") and wanted.intersection(expand(str(s["nodes"])))]
        if steps:
            out.append({**job, "steps": steps})
    return out


def _view(q: Query, now: float, env: Any) -> Any:
    from spurcore.render.squeue import View

    bitstr: int | None = None
    if q.array:
        bitstr = 0  # squeue -r: setenv("SLURM_BITSTR_LEN", "0")
    elif env.get("SLURM_BITSTR_LEN") is not None:
        from spurcli.jobrefs import strtol

        bitstr = strtol(env["SLURM_BITSTR_LEN"])[0]
    return View(
        now, time_format=env.get("SLURM_TIME_FORMAT"), bitstr_len=bitstr, array=q.array,
        expand_patterns=q.expand_patterns, noconvert=q.noconvert, cluster=common.load_config().name,
    )


def _load(q: Query, ctl: Any) -> tuple[list[dict[str, Any]], float]:
    from spurio.rpc import RpcError

    try:
        result = common.call_jobs(ctl, q.params())
    except RpcError as exc:
        if exc.code == "invalid_job_id":
            raise CliError("slurm_load_jobs error: Invalid job id specified", raw=True) from None
        raise CliError(f"slurm_load_jobs error: {exc.message or exc.code}", raw=True) from None
    jobs = list(result.get("jobs") or [])
    now = float(result.get("now") or 0.0)
    if q.single_job and q.jobs is not None:
        wanted = q.jobs[0].job_id
        if not any(wanted in (int(j.get("job_id", 0)), int(j.get("array_job_id") or 0)) for j in jobs):
            raise CliError("slurm_load_jobs error: Invalid job id specified", raw=True)
    for job in jobs:
        if "gid" in job and "group" not in job:
            job["group"] = common.group_name(int(job.get("gid", 0)))
    return jobs, now


def _once(q: Query, args: list[str], env: Any, ctl: Any) -> int:
    from spurcore.render import squeue as render

    jobs, now = _load(q, ctl)
    view = _view(q, now, env)
    from spurcore.render._common import time_format_error

    problem = time_format_error(view.time_format)
    if problem:
        common.error(PROG, problem)
    if q.mime:
        from spurcli.jobrefs import dump_document

        shown = filter_jobs(q, jobs, now) if not q.steps else _filter_steps(q, jobs)
        user = common.current_user()[0]
        from spurcore.render.data_parser import json_meta, to_json

        meta = json_meta([PROG, *args], cluster=view.cluster, user=user, group=common.group_name(os.getgid()))
        doc = to_json(shown, view=view, meta=meta)
        sys.stdout.write(dump_document(doc, q.mime, env))
        return 0
    if q.verbose:
        sys.stdout.write(f"last_update_time={int(now)} records={len(jobs)}\n")
    if q.steps:
        fmt_errors = _format_errors(render, q, steps=True)
        for message in fmt_errors:
            common.error(PROG, message)
        text = render.render_steps(_filter_steps(q, jobs), fmt=q.fmt, Fmt=q.Fmt, noheader=q.noheader,
                                   view=view, sort=q.sort)
        sys.stdout.write(text)
        return 0
    fmt, Fmt = q.fmt, q.Fmt
    if q.only_state and fmt is None and Fmt is None:
        fmt = render.ONLY_STATE_FORMAT
    fmt_errors = _format_errors(render, q, steps=False)
    for message in fmt_errors:
        common.error(PROG, message)
    shown = filter_jobs(q, jobs, now)
    if q.priority:
        shown = render.by_partition(shown, q.partitions)
    try:
        shown = render.sort_jobs(shown, q.sort, now)
    except render.SortError as exc:
        # sort.c runs after the header is printed
        if not q.noheader:
            sys.stdout.write(render.render_jobs([], fmt=fmt, Fmt=Fmt, long=q.long, view=view, date_line=False))
        raise CliError(str(exc)) from None
    text = render.render_jobs(shown, fmt=fmt, Fmt=Fmt, noheader=q.noheader, long=q.long, view=view,
                              date_line=False)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def _body(args: list[str]) -> int:
    import time

    env = os.environ
    q = parse_args(args, env)
    if q.verbose:
        _print_options(q)
    with common.connect() as ctl:
        _check_nodes(q, ctl)
        while True:
            # squeue.c: the date line with -i, -v or -l (not with -h)
            if not q.noheader and (q.iterate or q.verbose or q.long) and not q.mime:
                from spurcore.timefmt import ctime_line

                sys.stdout.write(ctime_line(time.time()) + "\n")
            if q.clusters and not q.noheader and not q.mime:
                sys.stdout.write(f"CLUSTER: {q.clusters[0]}\n")
            _once(q, args, env, ctl)
            if not q.iterate:
                return 0
            sys.stdout.write("\n")
            sys.stdout.flush()
            time.sleep(q.iterate)


def _print_options(q: Query) -> None:
    """opts.c ``_print_options`` (``-v``)."""

    def show(value: Any) -> str:
        return "(null)" if value is None else str(value)

    def flag(value: bool) -> str:
        return "true" if value else "false"

    lines = [
        "-----------------------------",
        f"all         = {flag(q.all)}",
        f"array       = {flag(q.array)}",
        "federation  = false",
        f"format      = {show(q.fmt)}",
        f"iterate     = {q.iterate}",
        f"job_flag    = {int(q.job_flag)}",
        f"jobs        = {show(None if q.jobs is None else ','.join(map(_sel_text, q.jobs)))}",
        f"licenses    = {show(None if q.licenses is None else ','.join(q.licenses))}",
        f"local       = {flag(bool(q.clusters))}",
        f"names       = {show(None if q.names is None else ','.join(q.names))}",
        f"nodes       = {'' if q.nodes is None else ','.join(q.nodes)}",
        f"only_job_state = {flag(q.only_state)}",
        f"partitions  = {show(None if q.partitions is None else ','.join(q.partitions))}",
        f"priority    = {flag(q.priority)}",
        f"reservation = {show(q.reservation)}",
        "sibling      = false",
        f"sort        = {show(q.sort)}",
        f"start_flag  = {int(q.start)}",
        f"states      = {show(None if q.states is None else ','.join(q.states))}",
        f"step_flag   = {int(q.steps)}",
        "steps       = (null)",
        f"users       = {show(None if q.users is None else ','.join(q.users))}",
        f"verbose     = {q.verbose}",
        "-----------------------------",
        "",
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def _sel_text(sel: Any) -> str:
    return str(sel.job_id) if sel.task_id is None else f"{sel.job_id}_{sel.task_id}"


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
