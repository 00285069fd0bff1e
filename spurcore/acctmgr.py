"""sacctmgr's words: entities, option names and their values, parsed for ``AccountingUpdated``.

Invariants:
- Pure: text in (``key=value`` as the command line gives it), typed fields out, or
  ``AcctError`` with sacctmgr's wording. The tool parses once to catch mistakes early; the
  controller parses again what it receives (the reducer re-checks the types).
- Option names are matched without regard to case, with sacctmgr's abbreviations and
  aliases (``MaxTRES`` = ``MaxTRESPerJob``, ``QosLevel`` = ``QOS``, ``Fairshare``/``Shares``).
- ``-1`` clears a limit (None), as in sacctmgr.
"""

from __future__ import annotations

from typing import Any

from spurcore.timefmt import parse_mem, parse_time_limit

ENTITIES = {"account": "account", "accounts": "account", "user": "user", "users": "user", "qos": "qos",
            "association": "association", "associations": "association", "assoc": "association"}

#: lower-case option -> canonical field name
_NAMES = {
    "description": "Description", "organization": "Organization", "parent": "Parent",
    "fairshare": "Fairshare", "shares": "Fairshare", "priority": "Priority",
    "qos": "QOS", "qoslevel": "QOS", "defaultqos": "DefaultQOS",
    "account": "Account", "accounts": "Account", "defaultaccount": "DefaultAccount",
    "adminlevel": "AdminLevel", "partition": "Partition",
    "maxjobs": "MaxJobs", "maxjobsperuser": "MaxJobs", "maxjobspu": "MaxJobs",
    "maxsubmitjobs": "MaxSubmitJobs", "maxsubmit": "MaxSubmitJobs", "maxsubmitjobsperuser": "MaxSubmitJobs",
    "maxsubmitpu": "MaxSubmitJobs",
    "grpjobs": "GrpJobs", "grpsubmitjobs": "GrpSubmitJobs", "grpsubmit": "GrpSubmitJobs",
    "grptres": "GrpTRES", "maxtresperjob": "MaxTRESPerJob", "maxtres": "MaxTRESPerJob", "maxtrespj": "MaxTRESPerJob",
    "maxwall": "MaxWall", "maxwalldurationperjob": "MaxWall",
    "name": "Name", "names": "Name", "user": "User", "users": "User", "cluster": "Cluster", "clusters": "Cluster",
}
_ADMIN = {"none": "None", "operator": "Operator", "admin": "Administrator", "administrator": "Administrator"}
INT_FIELDS = ("MaxJobs", "MaxSubmitJobs", "GrpJobs", "GrpSubmitJobs", "Fairshare", "Priority")


class AcctError(ValueError):
    pass


def canonical(key: str) -> str:
    name = _NAMES.get(key.strip().lower())
    if name is None:
        raise AcctError(f" Unknown option: {key}")
    return name


def parse_tres(text: str) -> dict[str, int | None]:
    """``cpu=8,mem=10G,node=2,gres/gpu=4`` -> {cpu: 8, mem: 10240, node: 2, gres/gpu: 4}
    (-1 clears one: None)."""
    out: dict[str, int | None] = {}
    for item in [p.strip() for p in text.split(",") if p.strip()]:
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if not eq or not name:
            raise AcctError(f" Bad TRES specification: {item}")
        if name == "gpu":
            name = "gres/gpu"
        if name not in ("cpu", "mem", "node", "billing") and not name.startswith("gres/"):
            raise AcctError(f" Invalid TRES: {name}")
        value = value.strip()
        if value == "-1":
            out[name] = None
            continue
        try:
            out[name] = parse_mem(value) if name == "mem" else int(value)
        except ValueError:
            raise AcctError(f" Bad TRES value: {item}") from None
        if (out[name] or 0) < 0:
            raise AcctError(f" Bad TRES value: {item}")
    return out


def parse_value(field: str, value: str) -> Any:
    v = value.strip()
    if field in INT_FIELDS:
        if v == "-1" and field not in ("Fairshare", "Priority"):
            return None
        if field == "Fairshare" and v.lower() == "parent":
            raise AcctError(" Fairshare=parent is not supported")
        try:
            n = int(v)
        except ValueError:
            raise AcctError(f" Bad value for {field}: {value}") from None
        if n < 0:
            raise AcctError(f" Bad value for {field}: {value}")
        return n
    if field == "MaxWall":
        if v == "-1":
            return None
        try:
            return parse_time_limit(v)
        except ValueError:
            raise AcctError(f" Bad value for MaxWall: {value}") from None
    if field in ("GrpTRES", "MaxTRESPerJob"):
        return None if v == "-1" else parse_tres(v)
    if field in ("QOS", "Account", "Name", "User", "Cluster"):
        return [p.strip() for p in v.split(",") if p.strip()]
    if field == "AdminLevel":
        level = _ADMIN.get(v.lower())
        if level is None:
            raise AcctError(f" Bad AdminLevel: {value}")
        return level
    return v


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {canonical(k): parse_value(canonical(k), v) for k, v in pairs}


def request(action: str, entity: str, names: list[str], where: list[tuple[str, str]],
            sets: list[tuple[str, str]]) -> dict[str, Any]:
    """The ``accounting_update`` parameters for ``sacctmgr ACTION ENTITY NAMES [where ...]
    [set ...]`` (for add, the options are the ``sets``). Raises AcctError."""
    kind = ENTITIES.get(entity.lower())
    if kind is None or kind == "association":
        raise AcctError(f" Unknown entity: {entity}")
    cond = parse_pairs(where)
    fields = parse_pairs(sets)
    for key in ("Name", "User"):
        names = names + list(cond.pop(key, []))
    cond.pop("Cluster", None)
    fields.pop("Cluster", None)
    where_out: dict[str, str] = {}
    if kind == "user" and action != "add" and "Account" in cond:
        accounts = cond.pop("Account")
        if len(accounts) != 1:
            raise AcctError(" Give one account in the where clause")
        where_out["account"] = accounts[0]
    if "Partition" in cond:
        where_out["partition"] = cond.pop("Partition")
    if cond:
        raise AcctError(f" Unknown condition: {sorted(cond)[0]}")
    if not names:
        raise AcctError(" No names given")
    return {"action": action, "entity": kind, "names": names, "where": where_out, "fields": fields}
