"""``sprio``: the factors of each pending job's priority (Slurm's priority/multifactor).

    sprio [-j jid[s]] [-u user_name[s]] [-o format] [-p partitions] [-S sort] [-hlnvVw]

As Slurm 25.11's sprio (src/sprio/sprio.c, opts.c, print.c, sort.c): the default layout is
``%.15i %9r`` (``%.8u`` with ``-u``) ``%.10Y %.10S`` plus a column for each factor whose
weight is not 0; ``-n`` shows the normalized factors (``%.7f``, ``%16.14f`` for the
priority), ``-l`` every factor, ``-w`` the weights instead of the jobs, ``-o`` a format of
its own (``SPRIO_FORMAT`` unless ``-o``/``-l``). Every column is cut to its width. One row
per job and partition it may run in, sorted by job id (``-S``: sort.c's letters).

Rendering is pure (``render``): the ``sprio`` answer in, text out.
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import NO_ARG, OPTIONAL, REQUIRED, CliError, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sprio"
OPTIONS = (
    Opt("autocomplete", "", "autocomplete", REQUIRED),
    Opt("clusters", "M", ("cluster", "clusters"), REQUIRED),
    Opt("federation", "", "federation", NO_ARG),
    Opt("noheader", "h", "noheader", NO_ARG),
    Opt("help", "", "help"),
    Opt("helpformat", "", "helpformat"),
    Opt("jobs", "j", "jobs", OPTIONAL),
    Opt("long", "l", "long", NO_ARG),
    Opt("local", "", "local", NO_ARG),
    Opt("norm", "n", "norm", NO_ARG),
    Opt("format", "o", "format", REQUIRED),
    Opt("partition", "p", "partition", REQUIRED),
    Opt("sibling", "", "sibling", NO_ARG),
    Opt("sort", "S", "sort", REQUIRED),
    Opt("users", "u", "user", REQUIRED),
    Opt("usage", "", "usage"),
    Opt("verbose", "v", "verbose", NO_ARG),
    Opt("version", "V", "version"),
    Opt("weights", "w", "weights", NO_ARG),
)
USAGE = ("Usage: sprio [-j jid[s]] [-u user_name[s]] [-o format] [-p partitions]\n"
         "   [--federation] [--local] [--sibling] [--usage] [-hlnvVw]\n")
HELP = """\
Usage: sprio [OPTIONS]
      --federation                display jobs in federation if a member of one
  -h, --noheader                  no headers on output
  -j, --jobs                      comma separated list of jobs
                                  to view, default is all
      --local                     display jobs on local cluster only
  -l, --long                      long report
  -M, --cluster=cluster_name      cluster to issue commands to.  Default is
                                  current cluster.  cluster with no name will
                                  reset to default.
                                  NOTE: SlurmDBD must be up.
  -n, --norm                      display normalized values
  -o, --format=format             format specification
      --sibling                   display job records separately for each federation cluster
  -p, --partition=partition_name  comma separated list of partitions
  -u, --user=user_name            comma separated list of users to view
  -v, --verbose                   verbosity level
  -V, --version                   output version information and exit
  -w, --weights                   show the weights for each priority factor

Help options:
  --help                          show this help message
  --helpformat                    print a list of fields that can be specified
                                  with '--format=' option
  --usage                         display a brief summary of sprio options
"""

LONG_FORMAT = "%.15i %9r %.8u %.8o %.10Y %.10S %.10A %.10B %.10F %.10J %.10P %.10n %.10Q %.11N %.20T"
LONG_NORM_FORMAT = "%.15i %9r %.8u %.8o %10y %10a %10b %10f %10j %10p %10n %10q %20t"

#: letter -> (header, what it shows): ("factor", weight key, record key, normalized?),
#: ("text", record key), or the special kinds.
FIELDS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "a": ("AGE", ("factor", "age", "age", True)),
    "A": ("AGE", ("factor", "age", "age", False)),
    "b": ("ASSOC", ("factor", "assoc", "assoc", True)),
    "B": ("ASSOC", ("factor", "assoc", "assoc", False)),
    "c": ("CLUSTER", ("cluster",)),
    "f": ("FAIRSHARE", ("factor", "fairshare", "fairshare", True)),
    "F": ("FAIRSHARE", ("factor", "fairshare", "fairshare", False)),
    "i": ("JOBID", ("jobid",)),
    "j": ("JOBSIZE", ("factor", "job_size", "job_size", True)),
    "J": ("JOBSIZE", ("factor", "job_size", "job_size", False)),
    "n": ("QOSNAME", ("text", "qos_name")),
    "N": ("NICE", ("nice",)),
    "o": ("ACCOUNT", ("text", "account")),
    "p": ("PARTITION", ("factor", "partition", "partition_weighted", True)),
    "P": ("PARTITION", ("factor", "partition", "partition_weighted", False)),
    "r": ("PARTITION", ("text", "partition")),
    "S": ("SITE", ("site",)),
    "q": ("QOS", ("factor", "qos", "qos", True)),
    "Q": ("QOS", ("factor", "qos", "qos", False)),
    "u": ("USER", ("text", "user")),
    "y": ("PRIORITY", ("priority", True)),
    "Y": ("PRIORITY", ("priority", False)),
    "t": ("TRES", ("tres",)),
    "T": ("TRES", ("tres",)),
}


class FormatError(ValueError):
    """``Invalid job format specification: <letter>`` (printed; the rest is kept)."""


def default_format(weights: dict[str, Any], *, norm: bool, long: bool, users: bool) -> str:
    """sprio.c's layouts: the long ones, or ``%.15i %9r`` (``%.8u`` when -u was given),
    the priority and site, then the factors whose weight is set."""
    if long:
        return LONG_NORM_FORMAT if norm else LONG_FORMAT
    fmt = "%.15i %9r"
    if users:
        fmt += " %.8u"
    fmt += " %10y" if norm else " %.10Y %.10S"
    for key, letter in (("age", "a"), ("assoc", "b"), ("fairshare", "f"), ("job_size", "j"),
                        ("partition", "p"), ("qos", "q")):
        if weights.get(key):
            fmt += f" %10{letter}" if norm else f" %.10{letter.upper()}"
    if weights.get("tres"):
        fmt += " %20t" if norm else " %.20T"
    return fmt


def parse_format(fmt: str) -> tuple[list[tuple[str | None, int, bool, str]], list[str]]:
    """opts.c ``parse_format``: ``[(letter or None for a prefix, width, right, suffix)]``
    and the error lines of unknown letters (which are left out)."""
    items: list[tuple[str | None, int, bool, str]] = []
    errors: list[str] = []
    pos = fmt.find("%")
    if pos != 0:
        items.append((None, 0, False, fmt if pos < 0 else fmt[:pos]))
        if pos < 0:
            return items, errors
        fmt = fmt[pos:]
    for token in (t for t in fmt.split("%") if t):
        i = 0
        right = token.startswith(".")
        if right:
            i = 1
        j = i
        while j < len(token) and token[j].isdigit():
            j += 1
        width = int(token[i:j]) if j > i else 0
        letter = token[j : j + 1]
        suffix = token[j + 1 :]
        if letter in FIELDS:
            items.append((letter, width, right, suffix))
        else:
            errors.append(f"Invalid job format specification: {letter}")
    return items, errors


def _cut(text: str, width: int, right: bool) -> str:
    """sprio's ``_print_str`` with cut_output: ``%<w>s``/``%.<w>s`` cut to ``w``, padded."""
    if width:
        text = text.rjust(width)[:width] if right else text[:width]
    return text.ljust(width)


def _value(letter: str, job: dict[str, Any] | None, weights: dict[str, Any], cluster: str) -> str:
    header, (kind, *rest) = FIELDS[letter]
    if job is None:  # the -w row
        if kind == "jobid":
            return "Weights"
        if kind == "factor":
            return f"{float(weights.get(rest[0]) or 0):.0f}"
        if kind == "site":
            return "1"
        if kind == "tres":
            return str(weights.get("tres") or "")
        return ""
    if kind == "jobid":
        return str(job["job_id"])
    if kind == "cluster":
        return cluster
    if kind == "text":
        value = job.get(rest[0])
        if rest[0] == "qos_name" and not value:
            value = "normal"
        return str(value or "")
    if kind == "nice":
        return f"{float(job.get('nice') or 0):.0f}"
    if kind == "site":
        return f"{float(job.get('site') or 0):.0f}"
    if kind == "priority":
        prio = float(job.get("priority") or 0)
        return f"{prio / 0xFFFFFFFF:16.14f}" if rest[0] else f"{int(prio)}"
    if kind == "tres":
        return str(job.get("tres") or "")
    weight_key, key, normalized = rest
    value = float(job.get(key) or 0)
    if normalized:
        weight = float(weights.get(weight_key) or 0)
        return f"{value / weight if weight else 0.0:.7f}"
    return f"{value:.0f}"


_SORT_KEYS = {
    "c": lambda j: "", "i": lambda j: int(j["job_id"]), "N": lambda j: float(j.get("nice") or 0),
    "n": lambda j: str(j.get("qos_name") or "normal"), "o": lambda j: str(j.get("account") or ""),
    "r": lambda j: str(j.get("partition") or ""), "u": lambda j: str(j.get("user") or ""),
    "A": lambda j: float(j.get("age") or 0), "F": lambda j: float(j.get("fairshare") or 0),
    "J": lambda j: float(j.get("job_size") or 0), "P": lambda j: float(j.get("partition_weighted") or 0),
    "Q": lambda j: float(j.get("qos") or 0), "T": lambda j: str(j.get("tres") or ""),
    "Y": lambda j: float(j.get("priority") or 0),
}


def sort_jobs(jobs: list[dict[str, Any]], spec: str | None) -> list[dict[str, Any]]:
    """sort.c: keys from the last to the first (``-`` descends); default ``i``. An unknown
    letter raises CliError ``Invalid sort specification: <c>``."""
    out = list(jobs)
    spec = spec or "i"
    for i in range(len(spec) - 1, -1, -1):
        c = spec[i]
        if c in ",-+":
            continue
        fn = _SORT_KEYS.get(c.upper() if c in "afjpqty" else c)
        if fn is None:
            raise CliError(f"Invalid sort specification: {c}")
        out.sort(key=fn, reverse=i > 0 and spec[i - 1] == "-")
    return out


def render(data: dict[str, Any], fmt: str | None = None, *, long: bool = False, norm: bool = False,
           weights: bool = False, noheader: bool = False, users: bool = False, sort: str | None = None,
           cluster: str = "") -> str:
    """sprio's table from the ``sprio`` answer (``jobs``: one record per job and partition;
    ``weights``)."""
    w = dict(data.get("weights") or {})
    items, _errors = parse_format(fmt or default_format(w, norm=norm, long=long, users=users))

    def line(job: dict[str, Any] | None, header: bool = False) -> str:
        parts = []
        for letter, width, right, suffix in items:
            if letter is not None:
                text = FIELDS[letter][0] if header else _value(letter, job, w, cluster)
                parts.append(_cut(text, width, right))
            parts.append(suffix)
        return "".join(parts) + "\n"

    out = [] if noheader else [line(None, header=True)]
    if weights:
        out.append(line(None))
        return "".join(out)
    for job in sort_jobs(list(data.get("jobs") or []), sort):
        out.append(line(job))
    return "".join(out)


def help_format() -> str:
    """``--helpformat`` (opts.c ``_help_format``): ``%<letter>`` left-justified in five,
    eight a line, in fmt_data's order."""
    out = []
    for i, letter in enumerate(FIELDS):
        if i and i % 8 == 0:
            out.append("\n")
        out.append(f"%{letter:<5}")
    return "".join(out) + "\n"


def _body(args: list[str]) -> int:
    pairs, operands = common.getopt(args, OPTIONS)
    env = os.environ
    opts = common.last(pairs)
    for key, value in pairs:
        common.info_option(key, value, OPTIONS, {"help": HELP, "usage": USAGE, "helpformat": help_format})
    if "long" in opts and "format" in opts:
        from spurcli.jobrefs import fatal

        raise fatal(PROG, "Options -o(--format) and -l(--long) are mutually exclusive. Please remove one and retry.")
    fmt = opts.get("format")
    if fmt is None and "long" not in opts and env.get("SPRIO_FORMAT"):
        fmt = env["SPRIO_FORMAT"]
    jobs_text = opts.get("jobs")
    if "jobs" in opts and not jobs_text and operands:
        jobs_text = operands.pop(0)
    if operands:
        common.error(PROG, f"Unrecognized option: {operands[0]}")
        sys.stdout.write(USAGE)
        return 1
    params: dict[str, Any] = {}
    if jobs_text:
        params["job_ids"] = [common.parse_int(j, "--jobs") for j in common.split_list(str(jobs_text))]
    users = common.split_list(str(opts["users"])) if opts.get("users") else []
    if users:
        params["users"] = users
    from spurio.rpc import RpcError

    try:
        data = common.connect().call("sprio", params)
    except RpcError as exc:
        raise CliError(f"Couldn't get priority factors from controller: {exc.message or exc.code}",
                       raw=True) from None
    if data.get("priority_type") == "priority/basic":
        sys.stderr.write("You are not running a supported priority plugin\n(priority/basic).\n"
                         "Only 'priority/multifactor' is supported.\n")
        return 1
    rows = list(data.get("jobs") or [])
    if opts.get("partition"):
        wanted = set(common.split_list(str(opts["partition"])))
        rows = [j for j in rows if j["partition"] in wanted]
    if users:
        rows = [j for j in rows if j.get("user") in users]
    if jobs_text and not rows:
        sys.stdout.write("Unable to find jobs matching user/id(s) specified\n")
        return 0
    shown_fmt = str(fmt) if fmt else default_format(dict(data.get("weights") or {}), norm="norm" in opts,
                                                     long="long" in opts, users=bool(users))
    for message in parse_format(shown_fmt)[1]:
        common.error(PROG, message)
    sys.stdout.write(render({**data, "jobs": rows}, shown_fmt, weights="weights" in opts,
                            noheader="noheader" in opts, sort=str(opts["sort"]) if opts.get("sort") else None,
                            cluster=common.load_config().name if "c" in shown_fmt else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
