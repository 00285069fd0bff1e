"""``sprio``: the factors of each pending job's priority (Slurm's priority/multifactor).

    sprio [-l] [-n] [-w] [-h] [-j JOBS] [-u USERS] [-p PARTITIONS] [-o FORMAT]

As Slurm's sprio, the default format shows only the factors whose weight is not 0; ``-w``
prints the weights instead of jobs; ``-n`` the normalized factors (0..1) instead of the
weighted ones. Rendering is pure (``render``) so tests need no cluster.
"""

from __future__ import annotations

import sys

from spurcli import common
from spurcli.common import NO_ARG, REQUIRED, CliError, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sprio"
OPTIONS = (
    Opt("long", "l", "long", NO_ARG),
    Opt("norm", "n", "norm", NO_ARG),
    Opt("weights", "w", "weights", NO_ARG),
    Opt("noheader", "h", "noheader", NO_ARG),
    Opt("jobs", "j", "jobs", REQUIRED),
    Opt("users", "u", "user", REQUIRED),
    Opt("partition", "p", "partition", REQUIRED),
    Opt("format", "o", "format", REQUIRED),
    Opt("help", "", "help"),
    Opt("usage", "", "usage"),
    Opt("version", "V", "version"),
)
USAGE = "Usage: sprio [-j jid[s]] [-u user_name[s]] [-o format] [-p partitions] [--usage] [-hlnvVw]\n"
HELP = USAGE + __doc__.split("\n\n")[1] + "\n"

DEFAULT_FORMAT = "%.15i %9r %.10Y %.10S %.10A %.10B %.10F %.10J %.10P %.10Q %.6N %20T"
LONG_FORMAT = "%.15i %9r %.8u %.8o %.10Y %.10S %.10A %.10B %.10F %.10J %.10P %.10Q %.6N %.20T"
# letter -> (header, record key, weight key or None)
FIELDS = {
    "i": ("JOBID", "job_id", None), "r": ("PARTITION", "partition", None), "u": ("USER", "user", None),
    "o": ("ACCOUNT", "account", None), "Y": ("PRIORITY", "priority", None), "S": ("SITE", "site", "site"),
    "A": ("AGE", "age", "age"), "B": ("ASSOC", "assoc", "assoc"), "F": ("FAIRSHARE", "fairshare", "fairshare"),
    "J": ("JOBSIZE", "job_size", "job_size"), "P": ("PARTITION", "partition_prio", "partition"),
    "Q": ("QOS", "qos", "qos"), "N": ("NICE", "nice", None), "T": ("TRES", "tres", None),
}


def parse_format(fmt: str) -> list[tuple[str, int, bool]]:
    """``%.15i %9r`` -> [(letter, width, right)] ('.' right-justifies, as squeue)."""
    out = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            i += 1
            continue
        j = i + 1
        right = False
        if j < len(fmt) and fmt[j] == ".":
            right = True
            j += 1
        k = j
        while k < len(fmt) and fmt[k].isdigit():
            k += 1
        if k >= len(fmt) or fmt[k] not in FIELDS:
            raise CliError(f"Invalid format specification: {fmt[i:k + 1]}")
        out.append((fmt[k], int(fmt[j:k]) if k > j else 0, right))
        i = k + 1
    return out


def _cell(value: Any, width: int, right: bool) -> str:
    text = f"{value:.7f}" if isinstance(value, float) and value != int(value) else (
        str(int(value)) if isinstance(value, float) else str(value))
    if width and len(text) > width:
        text = text[:width]
    return text.rjust(width) if right else text.ljust(width)


def render(data: dict[str, Any], fmt: str | None = None, *, long: bool = False, norm: bool = False,
           weights: bool = False, noheader: bool = False) -> str:
    """sprio's table from the ``sprio`` RPC answer."""
    w = data.get("weights") or {}
    fields = parse_format(fmt or (LONG_FORMAT if long else DEFAULT_FORMAT))
    if fmt is None:
        # Slurm's default: factors with weight 0 are not shown; SITE and TRES only when used.
        fields = [f for f in fields if FIELDS[f[0]][2] is None or w.get(FIELDS[f[0]][2])]
        if not any(j.get("tres") for j in data.get("jobs") or []):
            fields = [f for f in fields if f[0] != "T"]
    lines = []
    if not noheader:
        lines.append(" ".join(_cell(FIELDS[c][0], width, right) for c, width, right in fields).rstrip())
    if weights:
        cells = []
        for c, width, right in fields:
            key = FIELDS[c][2]
            cells.append(_cell("Weights" if c == "i" else (w.get(key, "") if key else ""), width, right))
        lines.append(" ".join(cells).rstrip())
        return "".join(line + "\n" for line in lines)
    for job in sorted(data.get("jobs") or [], key=lambda j: (j["job_id"], j["partition"])):
        cells = []
        for c, width, right in fields:
            key, weight_key = FIELDS[c][1], FIELDS[c][2]
            if key == "partition_prio":
                value = job.get("partition_weighted", 0)
            else:
                value = job.get(key, "")
            if norm and weight_key and w.get(weight_key):
                value = float(value) / float(w[weight_key])
            cells.append(_cell(value, width, right))
        lines.append(" ".join(cells).rstrip())
    return "".join(line + "\n" for line in lines)


def _body(args: list[str]) -> int:
    pairs, operands = common.getopt(args, OPTIONS)
    common.handle_common(PROG, pairs, HELP, USAGE)
    if operands:
        raise CliError(f"Unknown argument: {operands[0]}")
    opts = common.last(pairs)
    params: dict[str, Any] = {}
    if opts.get("jobs"):
        params["job_ids"] = [common.parse_int(j, "--jobs") for j in common.split_list(str(opts["jobs"]))]
    if opts.get("users"):
        params["users"] = common.split_list(str(opts["users"]))
    data = common.connect().call("sprio", params)
    if opts.get("partition"):
        wanted = set(common.split_list(str(opts["partition"])))
        data["jobs"] = [j for j in data["jobs"] if j["partition"] in wanted]
    if data.get("priority_type") == "priority/basic":
        common.error(PROG, "You are not running a supported priority plugin\n(priority/basic).\n"
                           "Only 'priority/multifactor' is supported.")
        return 1
    sys.stdout.write(render(data, str(opts["format"]) if opts.get("format") else None, long="long" in opts,
                            norm="norm" in opts, weights="weights" in opts, noheader="noheader" in opts))
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
