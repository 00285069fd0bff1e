"""``sshare``: fair-share information of the association tree (Slurm's classic fair share).

    sshare [-a] [-A ACCOUNTS] [-u USERS] [-U] [-l] [-m] [-n|-h] [-o FORMAT] [-P|-p]

As Slurm 25.11's sshare (src/sshare/sshare.c, process.c, src/common/print_fields.c):
default columns ``Account,User,RawShares,NormShares,RawUsage,EffectvUsage,FairShare`` (``-l``
adds NormUsage, GrpTRESMins and TRESRunMins, ``-m`` the Partition); Account is printed as
the tree (one space per level, a user's row under its account's name); within an account
its users come before its sub-accounts, alphabetically (slurmdb ``_sort_children_list``).
Without ``-a`` (or ``-u``) the user rows are the caller's. Values Slurm has and Spur does
not keep (TRES minutes, LevelFS, association ids) print as unset: blank.
"""

from __future__ import annotations

import sys

from spurcli import common
from spurcli.common import NO_ARG, OPTIONAL, REQUIRED, CliError, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sshare"
OPTIONS = (
    Opt("autocomplete", "", "autocomplete", REQUIRED),
    Opt("accounts", "A", "accounts", REQUIRED),
    Opt("all", "a", "all", NO_ARG),
    Opt("helpformat", "e", "helpformat", NO_ARG),
    Opt("noheader_h", "h", (), NO_ARG),
    Opt("long", "l", "long", NO_ARG),
    Opt("partition", "m", "partition", NO_ARG),
    Opt("clusters", "M", ("cluster", "clusters"), REQUIRED),
    Opt("noheader", "n", "noheader", NO_ARG),
    Opt("format", "o", "format", REQUIRED),
    Opt("parsable", "p", "parsable", NO_ARG),
    Opt("parsable2", "P", "parsable2", NO_ARG),
    Opt("users", "u", "users", REQUIRED),
    Opt("users_only", "U", "Users", NO_ARG),
    Opt("verbose", "v", "verbose", NO_ARG),
    Opt("version", "V", "version"),
    Opt("help", "", ("help", "usage")),
    Opt("json", "", "json", OPTIONAL),
    Opt("yaml", "", "yaml", OPTIONAL),
)
USAGE_LINES = (
    'Usage:  sshare [OPTION]',
    '  Valid OPTIONs are:',
    '    -a or --all            list all users',
    '    -A or --accounts=      display specific accounts (comma separated list)',
    '    -e or --helpformat     Print a list of fields that can be specified',
    "                           with the '--format' option",
    '    --json[=data_parser]   Produce JSON output',
    '    -l or --long           include normalized usage in output',
    '    -m or --partition      print the partition part of the association',
    '    -M or --cluster=names  clusters to issue commands to.',
    '                           NOTE: SlurmDBD must be up.',
    '    -n or --noheader       omit header from output',
    '    -o or --format=        Comma separated list of fields (use',
    '                           "--helpformat" for a list of available fields).',
    "    -p or --parsable       '|' delimited output with a trailing '|'",
    "    -P or --parsable2      '|' delimited output without a trailing '|'",
    '    -u or --users=         display specific users (comma separated list)',
    '    -U or --Users          display only user information',
    '    -v or --verbose        display more information',
    '    -V or --version        display tool version number',
    '    --yaml[=data_parser]   Produce YAML output',
    '          --help           display this usage description',
    '          --usage          display this usage description',
    '',
)
#: sshare.c ``_usage``: each line padded to 75 columns, then a blank line.
USAGE = "".join(line.ljust(75) + "\n" for line in USAGE_LINES) + "\n"

#: process.c ``fields[]``: name, width (negative: left-justified), kind.
FIELDS: tuple[tuple[str, int, str], ...] = (
    ("Account", -20, "str"), ("Cluster", 10, "str"), ("EffectvUsage", 13, "double"),
    ("FairShare", 10, "double"), ("GrpTRESMins", 30, "str"), ("GrpTRESRaw", 30, "str"), ("ID", 6, "uint"),
    ("LevelFS", 10, "double"), ("NormShares", 11, "double"), ("NormUsage", 11, "double"),
    ("Partition", 12, "str"), ("RawShares", 10, "uint"), ("RawUsage", 11, "uint"),
    ("TRESRunMins", 30, "str"), ("User", 10, "str"),
)
DEFAULT = "A,User,RawShares,NormShares,RawUsage,Eff,Fairshare"
LONG = "A,User,RawShares,NormShares,RawUsage,NormUsage,Eff,Fairshare,GrpTRESMins,TRESRunMins"

# kept for callers of the earlier module: the default columns as (name, width, right)
COLUMNS = [(name, abs(width), width > 0) for name, width, _k in FIELDS
           if name in ("Account", "User", "RawShares", "NormShares", "RawUsage", "EffectvUsage", "FairShare")]


def parse_fields(text: str) -> list[tuple[str, int, str]]:
    """process.c: each comma-separated item is a case-insensitive prefix of a field name
    (the first in table order), ``%N`` sets its width. Raises CliError for the rest."""
    out = []
    for item in (p for p in text.split(",") if p):
        name, pct, width = item.partition("%")
        match = next((f for f in FIELDS if f[0].lower().startswith(name.lower())), None)
        if match is None:
            raise CliError(f'Invalid field requested: "{name}"')
        size = match[1]
        if pct and width.lstrip("-").isdigit() and int(width):
            size = int(width)
        out.append((match[0], size, match[2]))
    return out


def default_fields(*, long: bool, partition: bool) -> str:
    fields = LONG if long else DEFAULT
    return fields.replace("A,User,", "A,User,P,") if partition else fields


def tree_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (depth first, each with its ``depth``) with every account's children in
    slurmdb's order: users first, then sub-accounts, each alphabetically."""
    def subtree(start: int) -> tuple[list[list[dict[str, Any]]], int]:
        depth = rows[start]["depth"]
        kids: list[list[dict[str, Any]]] = []
        i = start + 1
        while i < len(rows) and rows[i]["depth"] > depth:
            block, i = _block(i)
            kids.append(block)
        return kids, i

    def _block(i: int) -> tuple[list[dict[str, Any]], int]:
        kids, end = subtree(i)
        kids.sort(key=lambda b: (not b[0]["user"], b[0]["user"] or b[0]["account"]))
        return [rows[i]] + [r for b in kids for r in b], end

    out: list[dict[str, Any]] = []
    i = 0
    while i < len(rows):
        block, i = _block(i)
        out.extend(block)
    return out


def _values(row: dict[str, Any]) -> dict[str, Any]:
    """A row's values by field name (None: unset, printed blank)."""
    root = row["account"] == "root" and not row["user"]
    spaces = " " * int(row.get("depth") or 0)
    return {
        "Account": spaces + row["account"],
        "Cluster": row.get("cluster"),
        "EffectvUsage": row.get("effective_usage"),
        "FairShare": row.get("fairshare") if row["user"] else None,
        "GrpTRESMins": None, "GrpTRESRaw": None, "ID": None, "LevelFS": None,
        "NormShares": row.get("norm_shares"),
        "NormUsage": row.get("norm_usage"),
        "Partition": row.get("partition") or None,
        "RawShares": None if root else row.get("raw_shares"),
        "RawUsage": int(row.get("raw_usage") or 0),
        "TRESRunMins": None,
        "User": row["user"] or None,
    }


def _cell(value: Any, width: int, kind: str, parsable: str) -> str:
    """print_fields.c's printers for one value (the separator not included)."""
    if value is None:
        return "" if parsable else " " * abs(width)
    if kind == "double":
        text = f"{float(value):f}"
    elif kind == "uint":
        text = str(int(value))
    else:
        text = str(value)
    if parsable:
        return text
    size = abs(width)
    if kind == "str" and len(text) > size:
        text = text[: size - 1] + "+"
    return text.ljust(size) if width < 0 else text.rjust(size)


def render(rows: list[dict[str, Any]], *, noheader: bool = False, parsable: str = "",
           fields: str = DEFAULT, cluster: str = "") -> str:
    """sshare's table (``parsable``: "p" ``a|b|``, "P" ``a|b``)."""
    cols = parse_fields(fields)
    lines = []

    def join(cells: list[str]) -> str:
        if parsable == "P":
            return "|".join(cells)
        if parsable:
            return "".join(c + "|" for c in cells)
        return "".join(c + " " for c in cells)

    if not noheader:
        if parsable:
            lines.append(join([name for name, _w, _k in cols]))
        else:
            lines.append(join([(name[: abs(w)].ljust(abs(w)) if w < 0 else name[: abs(w)].rjust(abs(w)))
                               for name, w, _k in cols]))
            lines.append(join(["-" * abs(w) for _n, w, _k in cols]))
    for row in rows:
        values = _values({"cluster": cluster, **row})
        lines.append(join([_cell(values[name], w, kind, parsable) for name, w, kind in cols]))
    return "".join(line + "\n" for line in lines)


def select(rows: list[dict[str, Any]], *, all_users: bool, users: list[str], accounts: list[str],
           me: str, users_only: bool = False) -> list[dict[str, Any]]:
    """Slurm's request filters: the named accounts (and root), the named users or, without
    -a, the caller's user rows; -U only user rows."""
    out = []
    for row in rows:
        if row["user"]:
            if users and row["user"] not in users:
                continue
            if not users and not all_users and row["user"] != me:
                continue
        elif users_only:
            continue
        if accounts and row["account"] not in accounts and not (row["account"] == "root" and not row["user"]):
            continue
        out.append(row)
    return out


def help_format() -> str:
    """``-e``: the field names, four a line, each left-justified in 17."""
    out = []
    for i, (name, _w, _k) in enumerate(FIELDS):
        if i % 4:
            out.append(" ")
        elif i:
            out.append("\n")
        out.append(f"{name:<17}")
    return "".join(out) + "\n"


def _body(args: list[str]) -> int:
    pairs, operands = common.getopt(args, OPTIONS)
    opts = common.last(pairs)
    for key, value in pairs:
        common.info_option(key, value, OPTIONS, {"help": USAGE, "helpformat": help_format})
    if operands:
        raise CliError(f"Unknown argument: {operands[0]}")
    fields = ",".join(str(v) for k, v in pairs if k == "format") or default_fields(
        long="long" in opts, partition="partition" in opts)
    parse_fields(fields)  # an unknown field is refused before asking the controller
    all_users = "all" in opts
    users: list[str] = []
    if opts.get("users") == "-1":
        all_users = True
    elif opts.get("users"):
        users = common.split_list(str(opts["users"]))
    if all_users:
        users = []
    data = common.connect().call("sshare", {})
    me = common.current_user()[0]
    rows = select(tree_order(list(data["rows"])), all_users=all_users or me == "root", users=users,
                  accounts=common.split_list(str(opts["accounts"])) if opts.get("accounts") else [], me=me,
                  users_only="users_only" in opts)
    parsable = "P" if "parsable2" in opts else ("p" if "parsable" in opts else "")
    sys.stdout.write(render(rows, noheader="noheader" in opts or "noheader_h" in opts, parsable=parsable,
                            fields=fields, cluster=str(data.get("cluster") or "")))
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
