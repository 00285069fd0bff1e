"""``sshare``: fair-share information of the association tree (Slurm's classic fair share).

    sshare [-a] [-A ACCOUNTS] [-u USERS] [-l] [-n] [-P|-p]

Columns: Account, User, RawShares, NormShares, RawUsage (decayed CPU-seconds), EffectvUsage,
FairShare. Without ``-a`` (or ``-u``) user rows are those of the caller, as in Slurm.
"""

from __future__ import annotations

import sys

from spurcli import common
from spurcli.common import NO_ARG, REQUIRED, CliError, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sshare"
OPTIONS = (
    Opt("all", "a", "all", NO_ARG),
    Opt("accounts", "A", "accounts", REQUIRED),
    Opt("users", "u", "users", REQUIRED),
    Opt("long", "l", "long", NO_ARG),
    Opt("noheader", "n", "noheader", NO_ARG),
    Opt("parsable", "p", "parsable", NO_ARG),
    Opt("parsable2", "P", "parsable2", NO_ARG),
    Opt("help", "h", "help"),
    Opt("usage", "", "usage"),
    Opt("version", "V", "version"),
)
USAGE = "Usage: sshare [-A accounts] [-u users] [-a] [-l] [-n] [-p] [-P] [-h] [-V]\n"
HELP = USAGE + __doc__.split("\n\n")[1] + "\n"

COLUMNS = [("Account", 20, False), ("User", 10, True), ("RawShares", 10, True), ("NormShares", 11, True),
           ("RawUsage", 11, True), ("EffectvUsage", 13, True), ("FairShare", 10, True)]


def _cells(row: dict[str, Any]) -> list[str]:
    account = " " * max(0, row["depth"] - (1 if row["user"] else 0)) + row["account"]
    if row["account"] == "root" and not row["user"]:
        return [account, "", "", f"{row['norm_shares']:.6f}", f"{row['raw_usage']:.0f}",
                f"{row['effective_usage']:.6f}", ""]
    return [account, row["user"], str(row["raw_shares"]), f"{row['norm_shares']:.6f}", f"{row['raw_usage']:.0f}",
            f"{row['effective_usage']:.6f}", f"{row['fairshare']:.6f}" if row["user"] else ""]


def render(rows: list[dict[str, Any]], *, noheader: bool = False, parsable: str = "") -> str:
    lines = []
    if parsable:
        end = "|" if parsable == "p" else ""
        if not noheader:
            lines.append("|".join(c for c, _, _ in COLUMNS) + end)
        for row in rows:
            lines.append("|".join(c.strip() for c in _cells(row)) + end)
        return "".join(line + "\n" for line in lines)
    if not noheader:
        lines.append(" ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in COLUMNS) + " ")
        lines.append(" ".join("-" * w for _, w, _ in COLUMNS) + " ")
    for row in rows:
        cells = _cells(row)
        lines.append(" ".join(v[:w].rjust(w) if r else v[:w].ljust(w) for v, (_, w, r) in zip(cells, COLUMNS,
                                                                                                strict=True)) + " ")
    return "".join(line + "\n" for line in lines)


def select(rows: list[dict[str, Any]], *, all_users: bool, users: list[str], accounts: list[str],
           me: str) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if row["user"]:
            if users and row["user"] not in users:
                continue
            if not users and not all_users and row["user"] != me:
                continue
        if accounts and row["account"] not in accounts and not (row["account"] == "root" and not row["user"]):
            continue
        out.append(row)
    return out


def _body(args: list[str]) -> int:
    pairs, operands = common.getopt(args, OPTIONS)
    common.handle_common(PROG, pairs, HELP, USAGE)
    if operands:
        raise CliError(f"Unknown argument: {operands[0]}")
    opts = common.last(pairs)
    data = common.connect().call("sshare", {})
    me = common.current_user()[0]
    rows = select(data["rows"], all_users="all" in opts or me == "root",
                  users=common.split_list(str(opts["users"])) if opts.get("users") else [],
                  accounts=common.split_list(str(opts["accounts"])) if opts.get("accounts") else [], me=me)
    parsable = "P" if "parsable2" in opts else ("p" if "parsable" in opts else "")
    sys.stdout.write(render(rows, noheader="noheader" in opts, parsable=parsable))
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
