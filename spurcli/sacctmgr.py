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

#: sacctmgr/common.c ``_get_print_field``, in its order (the first match wins): the spellings
#: it accepts as (name, minimum prefix length), the header, the width and the value it shows
#: (``spurcli.sacctmgr._value``'s key; "" for a field Spur keeps no value for: blank).
FIELDS: tuple[tuple[tuple[tuple[str, int], ...], str, int, str], ...] = (
    ((("Account", 3), ("Acct", 4)), "Account", 10, "account"),
    ((("AdminLevel", 2),), "Admin", 9, "admin"),
    ((("Classification", 3),), "Class", 9, ""),
    ((("Clusters", 2),), "Cluster", 10, "cluster"),
    ((("Coordinators", 3),), "Coord Accounts", 20, ""),
    ((("Comment", 3),), "Comment", 20, ""),
    ((("DefaultAccount", 8),), "Def Acct", 10, "defaultaccount"),
    ((("DefaultQOS", 8),), "Def QOS", 9, "defaultqos"),
    ((("DefaultWCKey", 8),), "Def WCKey", 10, ""),
    ((("Description", 3),), "Descr", 20, "descr"),
    ((("Flags", 2),), "Flags", 20, ""),
    ((("GraceTime", 3),), "GraceTime", 10, "gracetime"),
    ((("GrpCPUs", 6),), "GrpCPUs", 8, "grpcpus"),
    ((("GrpCPUMins", 7),), "GrpCPUMins", 11, ""),
    ((("GrpCPURunMins", 7),), "GrpCPURunMins", 13, ""),
    ((("GrpTRES", 7),), "GrpTRES", 13, "grptres"),
    ((("GrpTRESMins", 7),), "GrpTRESMins", 13, ""),
    ((("GrpTRESRunMins", 7),), "GrpTRESRunMins", 13, ""),
    ((("GrpJobs", 4),), "GrpJobs", 7, "grpjobs"),
    ((("GrpJobsAccrue", 8),), "GrpJobsAccrue", 13, ""),
    ((("GrpMemory", 4),), "GrpMem", 7, "grpmem"),
    ((("GrpNodes", 4),), "GrpNodes", 8, "grpnodes"),
    ((("GrpSubmitJobs", 4),), "GrpSubmit", 9, "grpsubmit"),
    ((("GrpWall", 4),), "GrpWall", 11, ""),
    ((("ID", 2),), "ID", 6, ""),
    ((("Lineage", 1),), "Lineage", -20, "lineage"),
    ((("MaxCPUMinsPerJob", 7),), "MaxCPUMins", 11, ""),
    ((("MaxCPURunMinsPerUser", 7), ("MaxCPURunMinsPU", 7)), "MaxCPURunMinsPU", 15, ""),
    ((("MaxCPUsPerJob", 7),), "MaxCPUs", 8, "maxcpus"),
    ((("MaxCPUsPerUser", 11), ("MaxCPUsPU", 9)), "MaxCPUsPU", 9, ""),
    ((("MaxTRES", 7), ("MaxTRESPJ", 9), ("MaxTRESPerJob", 11)), "MaxTRES", 13, "maxtres"),
    ((("MaxTRESPerNode", 11), ("MaxTRESPN", 9)), "MaxTRESPerNode", 14, ""),
    ((("MaxTRESMinsPerJob", 8), ("MaxTRESMinsPJ", 13)), "MaxTRESMins", 13, ""),
    ((("MaxTRESRunMinsPerAccount", 18), ("MaxTRESRunMinsPerAcct", 18), ("MaxTRESRunMinsPA", 15)),
     "MaxTRESRunMinsPA", 16, ""),
    ((("MaxTRESRunMinsPerUser", 8), ("MaxTRESRunMinsPU", 8)), "MaxTRESRunMinsPU", 16, ""),
    ((("MaxTRESPerAccount", 11), ("MaxTRESPerAcct", 11), ("MaxTRESPA", 9)), "MaxTRESPA", 13, ""),
    ((("MaxTRESPerUser", 11), ("MaxTRESPU", 9)), "MaxTRESPU", 13, ""),
    ((("MaxJobs", 4),), "MaxJobs", 7, "maxjobs"),
    ((("MaxJobsAccrue", 4),), "MaxJobsAccrue", 13, ""),
    ((("MaxJobsPerAccount", 11), ("MaxJobsPerAcct", 11), ("MaxJobsPA", 9)), "MaxJobsPA", 9, ""),
    ((("MaxJobsPerUser", 11), ("MaxJobsPU", 9)), "MaxJobsPU", 9, "maxjobspu"),
    ((("MaxNodesPerJob", 4),), "MaxNodes", 8, "maxnodes"),
    ((("MaxNodesPerUser", 12), ("MaxNodesPU", 10)), "MaxNodesPU", 10, ""),
    ((("MinPrioThreshold", 4),), "MinPrioThres", 12, ""),
    ((("MaxSubmitJobs", 4),), "MaxSubmit", 9, "maxsubmit"),
    ((("MaxSubmitJobsPerAccount", 17), ("MaxSubmitJobsPerAcct", 17), ("MaxSubmitJobsPA", 15),
      ("MaxSubmitPA", 11)), "MaxSubmitPA", 11, ""),
    ((("MaxSubmitJobsPerUser", 10), ("MaxSubmitJobsPU", 10), ("MaxSubmitPU", 6)), "MaxSubmitPU", 11,
     "maxsubmitpu"),
    ((("MaxWallDurationPerJob", 4),), "MaxWall", 11, "maxwall"),
    ((("MinCPUsPerJob", 7),), "MinCPUs", 8, ""),
    ((("MinTRESPerJob", 7),), "MinTRES", 13, ""),
    ((("Name", 2),), "Name", 10, "name"),
    ((("Organization", 1),), "Org", 20, "org"),
    ((("ParentID", 7),), "ParentID", 8, ""),
    ((("ParentName", 7),), "ParentName", 10, "parentname"),
    ((("Partition", 4),), "Partition", 10, "partition"),
    ((("PreemptMode", 8),), "PreemptMode", 11, "preemptmode"),
    ((("Preempt", 7),), "Preempt", 10, ""),
    ((("PreemptExemptTime", 8),), "PreemptExemptTime", 19, ""),
    ((("Priority", 3),), "Priority", 10, "priority"),
    ((("QOSLevel", 3),), "QOS", 20, "qos"),
    ((("Share", 1), ("FairShare", 2)), "Share", 9, "share"),
    ((("UsageFactor", 6),), "UsageFactor", 11, "usagefactor"),
    ((("UsageThreshold", 6),), "UsageThres", 10, ""),
    ((("LimitFactor", 6),), "LimitFactor", 11, ""),
    ((("User", 1),), "User", 10, "user"),
    ((("WCKeys", 2),), "WCKeys", 20, ""),
)
#: The fields Spur's records have, as sacctmgr's defaults name them (the associations
#: listing used to take these names too: kept for parse_format's callers).
COLUMNS: dict[str, tuple[str, int]] = {key: (header, abs(width)) for _s, header, width, key in FIELDS if key}
DEFAULT_FORMATS = {
    "account": ["Acc", "Des", "O"],
    "account_assoc": ["Acc", "Des", "O", "Cl", "ParentN", "U", "Share", "Priority", "GrpJ", "GrpN", "GrpCPUs",
                      "GrpMEM", "GrpS", "GrpWall", "GrpCPUMins", "MaxJ", "MaxN", "MaxCPUs", "MaxS", "MaxW",
                      "MaxCPUMins", "QOS", "DefaultQOS"],
    "user": ["U", "DefaultA", "Ad"],
    "user_assoc": ["U", "DefaultA", "Ad", "Cl", "Acc", "Part", "Share", "Priority", "MaxJ", "MaxN", "MaxCPUs",
                   "MaxS", "MaxW", "MaxCPUMins", "QOS", "DefaultQOS"],
    "qos": ["Name", "Prio", "GraceT", "Preempt", "PreemptE", "PreemptM", "Flags%40", "UsageThres", "UsageFactor",
            "GrpTRES", "GrpTRESMins", "GrpTRESRunMins", "GrpJ", "GrpS", "GrpW", "MaxTRES", "MaxTRESPerN",
            "MaxTRESMins", "MaxW", "MaxTRESPerUser", "MaxJobsPerUser", "MaxSubmitJobsPerUser", "MaxTRESPerAcct",
            "MaxTRESRunMinsPerAcct%22", "MaxTRESRunMinsPerUser%22", "MaxJobsPerAcct", "MaxSubmitJobsPerAcct",
            "MinTRES"],
    "association": ["Cluster", "Account", "User", "Part", "Share", "Priority", "GrpJ", "GrpTRES", "GrpS", "GrpWall",
                    "GrpTRESMins", "MaxJ", "MaxTRES", "MaxTRESPerN", "MaxS", "MaxW", "MaxTRESMins", "QOS",
                    "DefaultQOS", "GrpTRESRunMins"],
}

#: The TRES order of sacctmgr's listings (the TRES table's ids: cpu, mem, energy, node,
#: billing, fs/disk, vmem, pages; GRES and the rest after them, by name).
_TRES_ORDER = ("cpu", "mem", "energy", "node", "billing", "fs/disk", "vmem", "pages")


def _tres_text(tres: dict[str, int] | None) -> str:
    """``slurmdb_make_tres_string_from_simple``: ``cpu=8,mem=2G,node=1,gres/gpu=2``."""
    if not tres:
        return ""
    from spurcore.timefmt import fmt_mem

    def order(key: str) -> tuple[int, str]:
        return (_TRES_ORDER.index(key), "") if key in _TRES_ORDER else (len(_TRES_ORDER), key)

    parts = []
    for key in sorted(tres, key=order):
        value = tres[key]
        if value is None:
            continue
        parts.append(f"{key}={fmt_mem(int(value)) if key == 'mem' else int(value)}")
    return ",".join(parts)


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
        if col in ("maxjobspu", "maxsubmitpu") and "shares" in rec:
            return ""  # per-user QOS limits: an association has none
        v = limits.get(key)
        return "" if v is None else str(v)
    if col in ("grpcpus", "grpmem", "grpnodes"):
        v = (limits.get("GrpTRES") or {}).get({"grpcpus": "cpu", "grpmem": "mem", "grpnodes": "node"}[col])
        return "" if v is None else str(v)
    if col in ("maxcpus", "maxnodes"):
        v = (limits.get("MaxTRESPerJob") or {}).get({"maxcpus": "cpu", "maxnodes": "node"}[col])
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
        return str(rec.get("parent", "")) if not rec.get("user") else ""
    if col == "lineage":
        return str(rec.get("lineage", ""))
    if col == "priority":
        p = rec.get("priority")
        return "" if p in (None, 0) and "shares" in rec else str(p if p is not None else "")
    if col == "gracetime":
        return "00:00:00" if "shares" not in rec and "priority" in rec else ""
    if col == "preemptmode":
        return "cluster" if "shares" not in rec and "priority" in rec else ""
    if col == "usagefactor":
        return "1.000000" if "shares" not in rec and "priority" in rec else ""
    if col == "name":
        return str(rec.get("name", ""))
    return str(rec.get(col, ""))


def parse_format(text: str) -> list[tuple[str, str, int]]:
    """``format=Account,User%20`` (common.c ``_get_print_field``): each item is matched
    against Slurm's field names in order (a case-insensitive prefix no shorter than the
    name's minimum); ``%N`` sets the width. -> [(value key, header, width)]; a field Spur
    keeps no value for has key "" and prints blank."""
    out = []
    for item in [p.strip() for p in text.split(",") if p.strip()]:
        name, pct, width = item.partition("%")
        low = name.lower()
        # !xstrncasecmp(spelling, name, MAX(len(name), minlen))
        match = next((f for f in FIELDS if any(
            len(low) >= min(minlen, len(spelling)) and spelling.lower().startswith(low)
            for spelling, minlen in f[0])), None)
        if match is None:
            raise CliError(f"Unknown field '{name}'", raw=True)  # fprintf, then exit(1)
        _s, header, size, key = match
        if pct:
            try:
                size = int(width)
            except ValueError:
                raise CliError(f"Invalid field width: \"{item}\"") from None
        out.append((key, header, size))
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
            lines.append("|".join(_value(k, rec, cluster) if k else "" for k, _, _ in columns) + end)
        return "".join(line + "\n" for line in lines)

    def cell(text: str, width: int) -> str:
        size = abs(width)
        if len(text) > size:
            text = text[: size - 1] + "+"
        return text.ljust(size) if width < 0 else text.rjust(size)

    if not noheader:
        lines.append(" ".join((h[: abs(w)].ljust(abs(w)) if w < 0 else h[: abs(w)].rjust(abs(w)))
                              for _, h, w in columns) + " ")
        lines.append(" ".join("-" * abs(w) for _, _, w in columns) + " ")
    for rec in records:
        lines.append(" ".join(cell(_value(k, rec, cluster) if k else "", w) for k, _, w in columns) + " ")
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
