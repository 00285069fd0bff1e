"""``sacctmgr``: accounts, users (their associations) and QOS, as Slurm's sacctmgr.

    sacctmgr [-i] [-n] [-P|-p] [-s] add|create|modify|update|delete|remove|show|list ENTITY ...
      add account NAME[,NAME] [Description=..] [Organization=..] [Parent=..] [Fairshare=N] [limits]
      add user NAME Account=A[,B] [DefaultAccount=A] [AdminLevel=..] [Partition=P] [limits]
      add qos NAME [Priority=N] [limits]
      modify account|user|qos [where] NAME [Account=A] set Key=Value ...
      delete account|user|qos [where] NAME [Account=A]
      show account|user|qos|association [where Name=..] [format=Col,Col%W] [-s]
    limits: MaxJobs MaxSubmitJobs GrpJobs GrpSubmitJobs GrpTRES=cpu=N,... MaxTRES(PerJob)=.. MaxWall=T

Changes are replicated ops (``AccountingUpdated``); only admins may make them. Without
``-i`` the tool asks before committing, as sacctmgr does. The rendering functions are pure
(records in, text out) so tests can call them without a cluster.
"""

from __future__ import annotations

import sys

from spurcli import common
from spurcli.common import NO_ARG, CliError, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sacctmgr"

OPTIONS = (
    Opt("immediate", "i", "immediate", NO_ARG),
    Opt("noheader", "n", "noheader", NO_ARG),
    Opt("parsable", "p", "parsable", NO_ARG),
    Opt("parsable2", "P", "parsable2", NO_ARG),
    Opt("withassoc", "s", "associations", NO_ARG),
    Opt("quiet", "Q", "quiet", NO_ARG),
    Opt("help", "h", "help"),
    Opt("usage", "", "usage"),
    Opt("verbose", "v", "verbose", NO_ARG),
    Opt("version", "V", "version"),
)

USAGE = "Usage: sacctmgr [-i] [-n] [-P] [-p] [-s] [-Q] COMMAND ENTITY [SPECS]\n"
HELP = USAGE + __doc__.split("\n\n")[1] + "\n"

_ACTIONS = {"add": "add", "create": "add", "modify": "modify", "update": "modify", "delete": "delete",
            "remove": "delete", "show": "show", "list": "show"}

# column name -> (header, width, value of a record)
COLUMNS: dict[str, tuple[str, int]] = {
    "account": ("Account", 10), "descr": ("Descr", 20), "description": ("Descr", 20), "org": ("Org", 20),
    "organization": ("Org", 20), "user": ("User", 10), "defaultaccount": ("Def Acct", 10),
    "admin": ("Admin", 9), "adminlevel": ("Admin", 9), "cluster": ("Cluster", 10), "partition": ("Partition", 10),
    "share": ("Share", 9), "fairshare": ("Share", 9), "priority": ("Priority", 10), "qos": ("QOS", 20),
    "defaultqos": ("Def QOS", 9), "parentname": ("Par Name", 10), "grpjobs": ("GrpJobs", 7),
    "grpsubmit": ("GrpSubmit", 9), "grpsubmitjobs": ("GrpSubmit", 9), "grptres": ("GrpTRES", 13),
    "maxjobs": ("MaxJobs", 7), "maxsubmit": ("MaxSubmit", 9), "maxsubmitjobs": ("MaxSubmit", 9),
    "maxtres": ("MaxTRES", 13), "maxtresperjob": ("MaxTRES", 13), "maxwall": ("MaxWall", 11), "name": ("Name", 10),
    "maxjobspu": ("MaxJobsPU", 9), "maxsubmitpu": ("MaxSubmitPU", 11),
}
DEFAULT_FORMATS = {
    "account": ["Account", "Descr", "Org"],
    "account_assoc": ["Account", "Descr", "Org", "Cluster", "ParentName", "User", "Share", "GrpJobs", "GrpTRES",
                      "GrpSubmit", "MaxJobs", "MaxTRES", "MaxSubmit", "MaxWall", "QOS", "DefaultQOS"],
    "user": ["User", "DefaultAccount", "Admin"],
    "user_assoc": ["User", "DefaultAccount", "Admin", "Cluster", "Account", "Partition", "Share", "MaxJobs",
                   "MaxSubmit", "MaxTRES", "MaxWall", "QOS", "DefaultQOS"],
    "qos": ["Name", "Priority", "GrpTRES", "GrpJobs", "GrpSubmit", "MaxTRES", "MaxWall", "MaxJobsPU",
            "MaxSubmitPU"],
    "association": ["Cluster", "Account", "User", "Partition", "Share", "Priority", "GrpJobs", "GrpTRES",
                    "GrpSubmit", "MaxJobs", "MaxTRES", "MaxSubmit", "MaxWall", "QOS", "DefaultQOS"],
}


def _tres_text(tres: dict[str, int] | None) -> str:
    if not tres:
        return ""
    return ",".join(f"{k}={v}" for k, v in sorted(tres.items()))


def _wall(secs: int | None) -> str:
    if secs is None:
        return ""
    from spurcore.timefmt import fmt_duration_scontrol

    return fmt_duration_scontrol(secs)


def _value(col: str, rec: dict[str, Any], cluster: str) -> str:
    limits = rec.get("limits") or {}
    if col in ("grpjobs", "maxjobs", "grpsubmit", "grpsubmitjobs", "maxsubmit", "maxsubmitjobs", "maxjobspu",
               "maxsubmitpu"):
        key = {"grpjobs": "GrpJobs", "maxjobs": "MaxJobs", "grpsubmit": "GrpSubmitJobs",
               "grpsubmitjobs": "GrpSubmitJobs", "maxsubmit": "MaxSubmitJobs", "maxsubmitjobs": "MaxSubmitJobs",
               "maxjobspu": "MaxJobs", "maxsubmitpu": "MaxSubmitJobs"}[col]
        v = limits.get(key)
        return "" if v is None else str(v)
    if col == "grptres":
        return _tres_text(limits.get("GrpTRES"))
    if col in ("maxtres", "maxtresperjob"):
        return _tres_text(limits.get("MaxTRESPerJob"))
    if col == "maxwall":
        return _wall(limits.get("MaxWall"))
    if col == "cluster":
        return cluster
    if col in ("descr", "description"):
        return str(rec.get("description", ""))
    if col in ("org", "organization"):
        return str(rec.get("organization", ""))
    if col == "defaultaccount":
        return str(rec.get("default_account", ""))
    if col in ("admin", "adminlevel"):
        return str(rec.get("admin_level", ""))
    if col in ("share", "fairshare"):
        return str(rec.get("shares", "")) if "shares" in rec else ""
    if col == "qos":
        q = rec.get("qos")
        return ",".join(q) if isinstance(q, list) else str(q or "")
    if col == "defaultqos":
        return str(rec.get("default_qos", ""))
    if col == "parentname":
        return str(rec.get("parent", ""))
    if col == "priority":
        p = rec.get("priority")
        return "" if p in (None, 0) and "shares" in rec else str(p if p is not None else "")
    if col == "name":
        return str(rec.get("name", ""))
    return str(rec.get(col, ""))


def parse_format(text: str) -> list[tuple[str, str, int]]:
    """``Account,User%20`` -> [(column key, header, width)]; a width of 0 means as given."""
    out = []
    for item in [p.strip() for p in text.split(",") if p.strip()]:
        name, _, width = item.partition("%")
        key = name.lower().replace("_", "")
        if key not in COLUMNS:
            raise CliError(f"Invalid field requested: \"{name}\"", raw=False)
        header, default_width = COLUMNS[key]
        try:
            w = int(width) if width else default_width
        except ValueError:
            raise CliError(f"Invalid field width: \"{item}\"") from None
        out.append((key, header, w))
    return out


def render_table(records: list[dict[str, Any]], columns: list[tuple[str, str, int]], cluster: str, *,
                 noheader: bool = False, parsable: str = "") -> str:
    """sacctmgr's table: right-justified fixed-width columns with a dashed rule, or with
    -P ``a|b`` (-p ``a|b|``); values longer than the width are cut to width-1 and a ``+``."""
    lines = []
    if parsable:
        end = "|" if parsable == "p" else ""
        if not noheader:
            lines.append("|".join(h for _, h, _ in columns) + end)
        for rec in records:
            lines.append("|".join(_value(k, rec, cluster) for k, _, _ in columns) + end)
        return "".join(line + "\n" for line in lines)

    def cell(text: str, width: int) -> str:
        if len(text) > width:
            text = text[: width - 1] + "+"
        return text.rjust(width)

    if not noheader:
        lines.append(" ".join(cell(h, w) for _, h, w in columns) + " ")
        lines.append(" ".join("-" * w for _, _, w in columns) + " ")
    for rec in records:
        lines.append(" ".join(cell(_value(k, rec, cluster), w) for k, _, w in columns) + " ")
    return "".join(line + "\n" for line in lines)


def show_records(data: dict[str, Any], entity: str, names: list[str], where: dict[str, str],
                 withassoc: bool) -> tuple[list[dict[str, Any]], str]:
    """(records, default format name) for ``show ENTITY``."""
    assocs = data["associations"]
    if entity == "account":
        accounts = [a for a in data["accounts"] if not names or a["name"] in names]
        if not withassoc:
            return [dict(a, account=a["name"]) for a in accounts], "account"
        out = []
        for a in accounts:
            for s in assocs:
                if s["account"] == a["name"]:
                    out.append(dict(s, description=a["description"], organization=a["organization"]))
        return out, "account_assoc"
    if entity == "user":
        users = [u for u in data["users"] if not names or u["name"] in names]
        if not withassoc:
            return [dict(u, user=u["name"]) for u in users], "user"
        out = []
        for u in users:
            for s in assocs:
                if s["user"] == u["name"] and ("account" not in where or s["account"] == where["account"]):
                    out.append(dict(s, default_account=u["default_account"], admin_level=u["admin_level"]))
        return out, "user_assoc"
    if entity == "qos":
        return [q for q in data["qos"] if not names or q["name"] in names], "qos"
    out = [s for s in assocs
           if (not names or s["account"] in names or s["user"] in names)
           and ("account" not in where or s["account"] == where["account"])
           and ("user" not in where or s["user"] == where["user"])]
    return out, "association"


def _split_args(words: list[str]) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]], str]:
    """Names, where pairs, set pairs and format= of sacctmgr's free-form arguments."""
    names: list[str] = []
    where: list[tuple[str, str]] = []
    sets: list[tuple[str, str]] = []
    fmt = ""
    mode = "where"
    for word in words:
        low = word.lower()
        if low == "where":
            mode = "where"
            continue
        if low == "set":
            mode = "set"
            continue
        key, eq, value = word.partition("=")
        if not eq:
            names.extend(p for p in word.split(",") if p)
            continue
        if key.lower() == "format":
            fmt = value
            continue
        if key.lower() in ("name", "names") and mode == "where":
            names.extend(p for p in value.split(",") if p)
            continue
        (sets if mode == "set" else where).append((key, value))
    return names, where, sets, fmt


def _confirm() -> bool:
    sys.stdout.write("Would you like to commit changes? (You have 30 seconds to decide)\n(N/y): ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _body(args: list[str]) -> int:
    pairs, operands = common.getopt(args, OPTIONS)
    common.handle_common(PROG, pairs, HELP, USAGE)
    opts = common.last(pairs)
    if len(operands) < 2:
        raise CliError("No command given" if not operands else "Unknown entity", raw=False)
    action = _ACTIONS.get(operands[0].lower())
    if action is None:
        raise CliError(f"Invalid command: {operands[0]}")
    from spurcore import acctmgr

    entity = acctmgr.ENTITIES.get(operands[1].lower())
    if entity is None:
        raise CliError(f"Unknown entity: {operands[1]}")
    names, where, sets, fmt = _split_args(operands[2:])
    ctl = common.connect()
    if action == "show":
        data = ctl.call("accounting_show", {})
        where_map = {k.lower(): v for k, v in where}
        records, default = show_records(data, entity, names, where_map, "withassoc" in opts)
        columns = parse_format(fmt) if fmt else parse_format(",".join(DEFAULT_FORMATS[default]))
        parsable = "P" if "parsable2" in opts else ("p" if "parsable" in opts else "")
        sys.stdout.write(render_table(records, columns, str(data.get("cluster", "")), noheader="noheader" in opts,
                                      parsable=parsable))
        return 0
    if entity == "association":
        raise CliError("Associations are changed through their user or account")
    if action == "add":
        sets, where = where + sets, []
    try:
        req = acctmgr.request(action, entity, names, where, sets)
    except acctmgr.AcctError as exc:
        raise CliError(str(exc).strip()) from None
    quiet = "quiet" in opts
    if not quiet:
        verb = {"add": "Adding", "modify": "Modifying", "delete": "Deleting"}[action]
        sys.stdout.write(f" {verb} {entity}(s)...\n" + "".join(f"  {n}\n" for n in req["names"]))
        for key, value in sets:
            sys.stdout.write(f"  {key:<15} = {value}\n")
    if "immediate" not in opts and not _confirm():
        sys.stdout.write(" Changes Discarded\n")
        return 0
    from spurio.rpc import RpcError

    try:
        ctl.call("accounting_update", {"request_id": common.new_request_id(), "action": action, "entity": entity,
                                       "names": names, "where": dict(where), "fields": dict(sets)})
    except RpcError as exc:
        if exc.code in ("nothing_added", "nothing_modified", "nothing_deleted"):
            sys.stdout.write(f" {exc.message}\n")
            return 1
        raise CliError(exc.message or exc.code) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
