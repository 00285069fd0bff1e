"""The cluster configuration in Slurm's words: nodes, partitions and scheduling settings.

Two sources give the same result:

* ``slurm.conf`` syntax (an admin's existing file): ``Key=Value`` pairs, ``#`` comments,
  hostlist expressions (``node[01-16]``), ``NodeName=DEFAULT`` / ``PartitionName=DEFAULT``
  records that later lines inherit, ``Include`` of further files, and ``gres.conf`` lines
  (``Name=gpu Type=a100 File=/dev/nvidia[0-1]``) for device files;
* spur.toml tables with the same keys: ``[[node]]``, ``[[partition]]``, ``[scheduling]``, and
  ``[[gres]]`` for gres.conf lines.

Invariants:
- ``parse`` is pure: the text of each file comes in (through ``read``, a function the caller
  gives: the edge module ``spurio.config`` reads files), canonical records come out.
- Keys are matched without regard to case, as Slurm does. Every line or key Spur does not
  use is listed once in ``ClusterConf.unused`` (with its file and line) and never silently
  dropped; a value Spur cannot read is a ``ConfError`` naming the file and line.
- The records are plain maps (``NODE_KEYS``, ``PARTITION_KEYS``, ``SETTINGS``) in canonical
  units: seconds, MB, names expanded. They travel in a ``ClusterConfigured`` op, so every
  replica and every replay applies the same configuration; ``digest`` names them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from spurcore.hostlist import expand
from spurcore.timefmt import parse_time_limit


class ConfError(ValueError):
    pass


#: Scheduling settings and their defaults (Slurm 25.11's where Slurm has one).
SETTINGS: dict[str, Any] = {
    "scheduler_type": "sched/backfill",  # SchedulerType: sched/backfill or sched/builtin (FIFO)
    "bf_window": 86400,  # SchedulerParameters=bf_window (minutes there, seconds here)
    "bf_resolution": 60,
    "bf_max_job_test": 500,
    "bf_continue": False,
    "bf_interval": 30,
    "priority_type": "priority/multifactor",  # or priority/basic (FIFO)
    "priority_weight_age": 0,
    "priority_weight_assoc": 0,
    "priority_weight_fairshare": 0,
    "priority_weight_job_size": 0,
    "priority_weight_partition": 0,
    "priority_weight_qos": 0,
    "priority_max_age": 7 * 86400,
    "priority_decay_half_life": 7 * 86400,
    "priority_calc_period": 300,
    "priority_favor_small": False,
    "enforce": [],  # AccountingStorageEnforce: associations, limits, qos, safe
}

#: slurm.conf key (lower case) -> setting, and how its value is read.
_SETTING_KEYS: dict[str, tuple[str, str]] = {
    "schedulertype": ("scheduler_type", "str"),
    "prioritytype": ("priority_type", "str"),
    "priorityweightage": ("priority_weight_age", "int"),
    "priorityweightassoc": ("priority_weight_assoc", "int"),
    "priorityweightfairshare": ("priority_weight_fairshare", "int"),
    "priorityweightjobsize": ("priority_weight_job_size", "int"),
    "priorityweightpartition": ("priority_weight_partition", "int"),
    "priorityweightqos": ("priority_weight_qos", "int"),
    "prioritymaxage": ("priority_max_age", "time"),
    "prioritydecayhalflife": ("priority_decay_half_life", "time"),
    "prioritycalcperiod": ("priority_calc_period", "minutes"),
    "priorityfavorsmall": ("priority_favor_small", "bool"),
    "accountingstorageenforce": ("enforce", "enforce"),
    "schedulerparameters": ("", "schedparams"),
}

_SCHED_PARAMS: dict[str, tuple[str, str]] = {
    "bf_window": ("bf_window", "minutes"),
    "bf_resolution": ("bf_resolution", "int"),
    "bf_max_job_test": ("bf_max_job_test", "int"),
    "bf_continue": ("bf_continue", "flag"),
    "bf_interval": ("bf_interval", "int"),
}

NODE_KEYS = ("name", "cpus", "real_memory", "gres", "features", "weight", "state", "reason")
PARTITION_KEYS = (
    "name", "nodes", "default", "max_time", "default_time", "max_nodes", "min_nodes", "state",
    "priority_tier", "priority_job_factor", "allow_accounts", "deny_accounts", "allow_groups",
    "oversubscribe", "hidden", "exclusive_user",
)
#: Node states a configuration may give (Slurm's State= on a NodeName line).
NODE_STATES = ("UNKNOWN", "IDLE", "DOWN", "DRAIN", "FAIL", "FUTURE", "CLOUD")
PARTITION_STATES = ("UP", "DOWN", "DRAIN", "INACTIVE")

_NODE_DEFAULT: dict[str, Any] = {
    "cpus": 0, "real_memory": 1, "gres": [], "features": [], "weight": 1, "state": "UNKNOWN", "reason": "",
}
_PART_DEFAULT: dict[str, Any] = {
    "nodes": [], "default": False, "max_time": None, "default_time": None, "max_nodes": None, "min_nodes": 0,
    "state": "UP", "priority_tier": 1, "priority_job_factor": 1, "allow_accounts": [], "deny_accounts": [],
    "allow_groups": [], "oversubscribe": "NO", "hidden": False, "exclusive_user": False,
}
# Keys of NodeName lines: lower-case key -> (canonical key, kind). Sockets & co only give CPUs.
_NODE_LINE_KEYS: dict[str, tuple[str, str]] = {
    "cpus": ("cpus", "int"), "procs": ("cpus", "int"), "realmemory": ("real_memory", "int"),
    "gres": ("gres", "gres"), "features": ("features", "list"), "feature": ("features", "list"),
    "weight": ("weight", "int"), "state": ("state", "nodestate"), "reason": ("reason", "str"),
    "sockets": ("_sockets", "int"), "corespersocket": ("_cores", "int"), "threadspercore": ("_threads", "int"),
    "boards": ("_boards", "int"), "socketsperboard": ("_sockets", "int"),
}
_PART_LINE_KEYS: dict[str, tuple[str, str]] = {
    "nodes": ("nodes", "nodes"), "default": ("default", "bool"), "maxtime": ("max_time", "time"),
    "defaulttime": ("default_time", "time"), "maxnodes": ("max_nodes", "count"),
    "minnodes": ("min_nodes", "int"), "state": ("state", "partstate"),
    "prioritytier": ("priority_tier", "int"), "priorityjobfactor": ("priority_job_factor", "int"),
    "priority": ("_priority", "int"),  # Slurm's old name: sets both tier and factor
    "allowaccounts": ("allow_accounts", "list"), "denyaccounts": ("deny_accounts", "list"),
    "allowgroups": ("allow_groups", "list"), "oversubscribe": ("oversubscribe", "oversubscribe"),
    "shared": ("oversubscribe", "oversubscribe"), "hidden": ("hidden", "bool"),
    "exclusiveuser": ("exclusive_user", "bool"),
}


class ClusterConf:
    """Canonical nodes, partitions and settings, plus what the sources held that Spur does
    not use (``unused``: "file:line: Key=Value" strings, each once)."""

    def __init__(self, nodes: list[dict[str, Any]], partitions: list[dict[str, Any]],
                 settings: dict[str, Any], unused: list[str]) -> None:
        self.nodes = nodes
        self.partitions = partitions
        self.settings = settings
        self.unused = unused

    @property
    def digest(self) -> str:
        """A stable name of the configuration (what ``ClusterConfigured.digest`` carries)."""
        body = json.dumps([self.nodes, self.partitions, self.settings], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()[:32]

    def node_names(self) -> list[str]:
        return [n["name"] for n in self.nodes]

    def node(self, name: str) -> dict[str, Any] | None:
        for n in self.nodes:
            if n["name"] == name:
                return n
        return None


# --- values --------------------------------------------------------------------------------


def _bool(value: str) -> bool:
    v = value.strip().upper()
    if v in ("YES", "Y", "TRUE", "1", "ON"):
        return True
    if v in ("NO", "N", "FALSE", "0", "OFF"):
        return False
    raise ValueError(f"expected YES or NO, not {value!r}")


def _time(value: str) -> int | None:
    v = value.strip()
    if v.upper() in ("INFINITE", "UNLIMITED"):
        return None
    return parse_time_limit(v)


def _count(value: str) -> int | None:
    v = value.strip()
    if v.upper() in ("INFINITE", "UNLIMITED"):
        return None
    n = int(v)
    if n < 0:
        raise ValueError(f"negative count {value!r}")
    return n


def _int(value: str) -> int:
    return int(value.strip())


def parse_gres(text: str) -> list[list[Any]]:
    """``gpu:2`` / ``gpu:a100:2,nic:1`` -> ``[[name, type, count, files], ...]`` (a node's
    configured GRES; files come later from gres.conf or the defaults)."""
    out: list[list[Any]] = []
    for item in [p.strip() for p in text.split(",") if p.strip()]:
        if item.lower() in ("(null)", "none"):
            continue
        parts = item.split(":")
        if len(parts) == 1:
            name, gtype, count = parts[0], "", 1
        elif len(parts) == 2:
            name, gtype, count = parts[0], "", _gres_count(parts[1])
        elif len(parts) == 3:
            name, gtype, count = parts[0], parts[1], _gres_count(parts[2])
        else:
            raise ValueError(f"bad Gres {item!r}")
        if not re.fullmatch(r"[A-Za-z][\w.-]*", name) or (gtype and not re.fullmatch(r"[\w.-]+", gtype)):
            raise ValueError(f"bad Gres {item!r}")
        out.append([name, gtype, count, []])
    return out


def _gres_count(text: str) -> int:
    t = text.strip()
    mult = 1
    if t and t[-1] in "kKmMgG":
        mult = {"k": 1024, "m": 1024**2, "g": 1024**3}[t[-1].lower()]
        t = t[:-1]
    n = int(t) * mult
    if n < 0:
        raise ValueError(f"negative GRES count {text!r}")
    return n


def _names_list(value: str) -> list[str]:
    v = value.strip()
    if not v or v.upper() == "ALL":
        return []
    return [p.strip() for p in v.split(",") if p.strip()]


def _convert(kind: str, value: str) -> Any:
    if kind == "int":
        return _int(value)
    if kind == "count":
        return _count(value)
    if kind == "time":
        return _time(value)
    if kind == "minutes":
        return _int(value) * 60
    if kind == "bool":
        return _bool(value)
    if kind == "str":
        return value
    if kind == "list":
        return _names_list(value)
    if kind == "gres":
        return parse_gres(value)
    if kind == "nodestate":
        state = value.strip().upper()
        if state not in NODE_STATES:
            raise ValueError(f"node State must be one of {', '.join(NODE_STATES)}")
        return state
    if kind == "partstate":
        state = value.strip().upper()
        if state not in PARTITION_STATES:
            raise ValueError(f"partition State must be one of {', '.join(PARTITION_STATES)}")
        return state
    if kind == "oversubscribe":
        head = value.strip().upper().split(":")[0]
        if head not in ("NO", "YES", "EXCLUSIVE", "FORCE"):
            raise ValueError("OverSubscribe must be NO, YES, EXCLUSIVE or FORCE")
        return head
    if kind == "nodes":
        v = value.strip()
        if v.upper() == "ALL":
            return ["ALL"]
        return expand(v) if v else []
    if kind == "enforce":
        out = []
        for item in _names_list(value.lower()):
            if item in ("none", "0"):
                continue
            if item not in ("associations", "limits", "qos", "safe", "wckeys", "nojobs", "nosteps"):
                raise ValueError(f"unknown AccountingStorageEnforce option {item!r}")
            out.append(item)
        # Slurm: limits, qos and safe imply associations; safe implies limits.
        if "safe" in out and "limits" not in out:
            out.append("limits")
        if any(o in out for o in ("limits", "qos", "safe", "wckeys")) and "associations" not in out:
            out.append("associations")
        return sorted(set(out))
    raise AssertionError(kind)


# --- slurm.conf lines ----------------------------------------------------------------------

_PAIR = re.compile(r'\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*("([^"]*)"|\S*)')


def _pairs(line: str) -> list[tuple[str, str]]:
    """``Key=Value Key2="a b"`` -> [(key, value), ...]; raises ConfError on anything else."""
    out = []
    pos = 0
    while pos < len(line):
        if line[pos:].strip() == "":
            break
        m = _PAIR.match(line, pos)
        if not m:
            raise ConfError(f"cannot parse {line[pos:].strip()!r}")
        out.append((m.group(1), m.group(3) if m.group(3) is not None else m.group(2)))
        pos = m.end()
    return out


def _strip_comment(line: str) -> str:
    out, quoted = [], False
    for c in line:
        if c == '"':
            quoted = not quoted
        if c == "#" and not quoted:
            break
        out.append(c)
    return "".join(out).strip()


class _Builder:
    """Collects records from any number of sources, in order."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.partitions: dict[str, dict[str, Any]] = {}
        self.settings: dict[str, Any] = dict(SETTINGS)
        self.settings["enforce"] = []
        self.node_default: dict[str, Any] = dict(_NODE_DEFAULT)
        self.part_default: dict[str, Any] = dict(_PART_DEFAULT)
        self.unused: list[str] = []
        self.gres_files: list[tuple[list[str] | None, str, str, list[str]]] = []  # gres.conf lines

    def note_unused(self, where: str, text: str) -> None:
        entry = f"{where}: {text}"
        if entry not in self.unused:
            self.unused.append(entry)

    # one record
    def node_line(self, pairs: list[tuple[str, str]], where: str) -> None:
        names_text = pairs[0][1]
        rec: dict[str, Any] = {}
        for key, value in pairs[1:]:
            rule = _NODE_LINE_KEYS.get(key.lower())
            if rule is None:
                self.note_unused(where, f"NodeName {key}={value}")
                continue
            try:
                rec[rule[0]] = _convert(rule[1], value)
            except ValueError as exc:
                raise ConfError(f"{where}: NodeName {key}={value}: {exc}") from None
        if names_text.upper() == "DEFAULT":
            self.node_default.update(rec)
            return
        try:
            names = expand(names_text)
        except ValueError as exc:
            raise ConfError(f"{where}: NodeName={names_text}: {exc}") from None
        merged = dict(self.node_default)
        merged.update(rec)
        topology = any(k in rec for k in ("_boards", "_sockets", "_cores", "_threads"))
        if not merged.get("cpus") or ("cpus" not in rec and topology):  # the line's topology wins
            merged["cpus"] = (merged.get("_boards", 1) * merged.get("_sockets", 1) * merged.get("_cores", 1)
                              * merged.get("_threads", 1))
        for name in names:
            if name in self.nodes:
                raise ConfError(f"{where}: duplicated NodeName {name}")
            node = {k: merged.get(k, _NODE_DEFAULT.get(k)) for k in NODE_KEYS if k != "name"}
            node["gres"] = [list(g[:3]) + [[]] for g in node["gres"]]
            node["features"] = list(node["features"])
            if node["cpus"] < 1 or node["real_memory"] < 1:
                raise ConfError(f"{where}: NodeName {name}: CPUs and RealMemory must be positive")
            self.nodes[name] = {"name": name, **node}

    def partition_line(self, pairs: list[tuple[str, str]], where: str) -> None:
        name = pairs[0][1]
        rec: dict[str, Any] = {}
        for key, value in pairs[1:]:
            rule = _PART_LINE_KEYS.get(key.lower())
            if rule is None:
                self.note_unused(where, f"PartitionName {key}={value}")
                continue
            try:
                rec[rule[0]] = _convert(rule[1], value)
            except ValueError as exc:
                raise ConfError(f"{where}: PartitionName {key}={value}: {exc}") from None
        if "_priority" in rec:
            prio = rec.pop("_priority")
            rec.setdefault("priority_tier", prio)
            rec.setdefault("priority_job_factor", prio)
        if name.upper() == "DEFAULT":
            self.part_default.update(rec)
            return
        if not re.fullmatch(r"[\w.-]+", name):
            raise ConfError(f"{where}: invalid PartitionName {name!r}")
        if name in self.partitions:
            raise ConfError(f"{where}: duplicated PartitionName {name}")
        merged = dict(self.part_default)
        merged.update(rec)
        self.partitions[name] = {"name": name, **{k: merged[k] for k in PARTITION_KEYS if k != "name"}}

    def setting(self, key: str, value: str, where: str) -> bool:
        rule = _SETTING_KEYS.get(key.lower())
        if rule is None:
            return False
        setting, kind = rule
        try:
            if kind == "schedparams":
                self.sched_params(value, where)
            else:
                self.settings[setting] = _convert(kind, value)
        except ValueError as exc:
            raise ConfError(f"{where}: {key}={value}: {exc}") from None
        return True

    def sched_params(self, value: str, where: str) -> None:
        for item in [p.strip() for p in value.split(",") if p.strip()]:
            name, eq, arg = item.partition("=")
            rule = _SCHED_PARAMS.get(name.lower())
            if rule is None:
                self.note_unused(where, f"SchedulerParameters {item}")
                continue
            if rule[1] == "flag":
                self.settings[rule[0]] = True
            else:
                if not eq:
                    raise ValueError(f"{name} needs a value")
                self.settings[rule[0]] = _convert(rule[1], arg)

    def gres_line(self, pairs: list[tuple[str, str]], where: str) -> None:
        nodes: list[str] | None = None
        name = gtype = ""
        files: list[str] = []
        for key, value in pairs:
            k = key.lower()
            if k == "nodename":
                nodes = expand(value)
            elif k == "name":
                name = value
            elif k == "type":
                gtype = value
            elif k == "file":
                files = expand(value)
            else:
                self.note_unused(where, f"gres.conf {key}={value}")
        if not name:
            self.note_unused(where, "gres.conf line without Name=")
            return
        self.gres_files.append((nodes, name, gtype, files))

    # the result
    def build(self) -> ClusterConf:
        nodes = list(self.nodes.values())
        all_names = [n["name"] for n in nodes]
        known = set(all_names)
        for nodes_sel, name, gtype, all_files in self.gres_files:
            for node in nodes:
                if nodes_sel is not None and node["name"] not in nodes_sel:
                    continue
                files = list(all_files)  # each node named has these device files
                for g in node["gres"]:
                    if g[0] == name and (g[1] == gtype or not gtype) and not g[3]:
                        g[3], files = files[: g[2]], files[g[2]:]
        for node in nodes:
            for g in node["gres"]:
                if g[0] == "gpu" and not g[3]:
                    first = sum(x[2] for x in node["gres"][: node["gres"].index(g)] if x[0] == "gpu")
                    g[3] = [f"/dev/nvidia{i}" for i in range(first, first + g[2])]
        partitions = list(self.partitions.values())
        if not partitions:
            # Slurm needs a partition to run anything: the implicit one holds every node.
            partitions = [{"name": "debug", **_PART_DEFAULT, "nodes": ["ALL"], "default": True}]
        for part in partitions:
            unknown = [n for n in part["nodes"] if n != "ALL" and n not in known]
            if unknown:
                raise ConfError(f"PartitionName={part['name']}: Nodes names unknown nodes: {', '.join(unknown)}")
        defaults = [p["name"] for p in partitions if p["default"]]
        if len(defaults) > 1:
            raise ConfError(f"more than one Default=YES partition: {', '.join(defaults)}")
        settings = dict(self.settings)
        if settings["scheduler_type"] not in ("sched/backfill", "sched/builtin"):
            raise ConfError(f"SchedulerType={settings['scheduler_type']}: only sched/backfill and sched/builtin")
        if settings["priority_type"] not in ("priority/multifactor", "priority/basic"):
            raise ConfError(f"PriorityType={settings['priority_type']}: only priority/multifactor and priority/basic")
        return ClusterConf(nodes, partitions, settings, list(self.unused))


#: slurm.conf keys that are read here for another purpose, or that spur.toml says instead:
#: listed as unused with the reason.
_ELSEWHERE = {
    "clustername": "spur.toml [cluster] name",
    "slurmctldhost": "spur.toml [[replica]]",
    "controlmachine": "spur.toml [[replica]]",
    "statesavelocation": "spur.toml [cluster] state_dir",
    "killwait": "spur.toml [cluster] kill_wait",
    "minjobage": "spur.toml [cluster] min_job_age",
    "slurmdtimeout": "spur.toml [cluster] node_timeout",
    "maxarraysize": "spur.toml [cluster] max_array_size",
    "jobrequeue": "spur.toml [cluster] job_requeue",
    "grestypes": "",  # Spur takes every GRES name a node has
}


def parse(sources: list[tuple[str, str]], read: Callable[[str, str], list[tuple[str, str]]] | None = None,
          tables: dict[str, Any] | None = None) -> ClusterConf:
    """Canonical records from Slurm-syntax sources and spur.toml tables.

    ``sources``: (name, text) of slurm.conf-style files, in order; ``read(including_file,
    pattern)`` returns the (name, text) of the files an ``Include`` names (None: Include is
    an error). ``tables``: spur.toml's ``node`` and ``partition`` arrays of tables and its
    ``scheduling`` table (Slurm's keys), applied after the files. ``gres.conf`` lines may
    appear in any source (a line whose first key is ``Name=``, or ``NodeName=... Name=``).
    """
    b = _Builder()

    def read_source(name: str, text: str, depth: int) -> None:
        for lineno, raw in enumerate(text.splitlines(), start=1):
            where = f"{name}:{lineno}"
            line = _strip_comment(raw)
            if not line:
                continue
            head = line.split(None, 1)[0]
            if head.lower() == "include":
                if read is None or depth > 10:
                    raise ConfError(f"{where}: Include is not allowed here")
                target = line.split(None, 1)[1].strip() if " " in line else ""
                for inc_name, inc_text in read(name, target):  # in place, as Slurm reads it
                    read_source(inc_name, inc_text, depth + 1)
                continue
            try:
                pairs = _pairs(line)
            except ConfError as exc:
                raise ConfError(f"{where}: {exc}") from None
            if not pairs:
                continue
            first = pairs[0][0].lower()
            keys = {k.lower() for k, _ in pairs}
            if first == "nodename" and "name" in keys:
                b.gres_line(pairs, where)
            elif first == "nodename":
                b.node_line(pairs, where)
            elif first == "partitionname":
                b.partition_line(pairs, where)
            elif first == "name":
                b.gres_line(pairs, where)
            else:
                for key, value in pairs:
                    if not b.setting(key, value, where):
                        why = _ELSEWHERE.get(key.lower())
                        b.note_unused(where, f"{key}={value}" + (f" (Spur: {why})" if why else ""))

    for name, text in sources:
        read_source(name, text, 0)
    for kind, label in (("node", "NodeName"), ("partition", "PartitionName")):
        for i, table in enumerate((tables or {}).get(kind) or []):
            where = f"spur.toml [[{kind}]] #{i + 1}"
            if not isinstance(table, dict):
                raise ConfError(f"{where}: not a table")
            items = [(str(k), _toml_text(v)) for k, v in table.items()]
            first = [p for p in items if p[0].lower() == label.lower()]
            if not first:
                raise ConfError(f"{where}: no {label}")
            rest = [p for p in items if p[0].lower() != label.lower()]
            (b.node_line if kind == "node" else b.partition_line)(first + rest, where)
    for i, table in enumerate((tables or {}).get("gres") or []):  # gres.conf lines as [[gres]] tables
        if not isinstance(table, dict):
            raise ConfError(f"spur.toml [[gres]] #{i + 1}: not a table")
        b.gres_line([(str(k), _toml_text(v)) for k, v in table.items()], f"spur.toml [[gres]] #{i + 1}")
    for key, value in ((tables or {}).get("scheduling") or {}).items():
        where = "spur.toml [scheduling]"
        if not b.setting(str(key), _toml_text(value), where):
            raise ConfError(f"{where}: unknown setting {key}")
    return b.build()


def _toml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def local_tables(nodes: int, cpus: int, mem_mb: int = 4096, gpus: int = 0,
                 partitions: list[tuple[str, list[str]]] | None = None) -> dict[str, Any]:
    """spur.toml tables for a one-machine cluster (``spur local``): ``node1..nodeN``, each
    with ``gpus`` fake GPUs, in the given partitions (default: one ``debug`` with all)."""
    names = [f"node{i + 1}" for i in range(nodes)]
    node_tables = []
    for name in names:
        table: dict[str, Any] = {"NodeName": name, "CPUs": cpus, "RealMemory": mem_mb}
        if gpus:
            table["Gres"] = f"gpu:{gpus}"
        node_tables.append(table)
    part_tables = []
    for i, (pname, pnodes) in enumerate(partitions or [("debug", names)]):
        part_tables.append({"PartitionName": pname, "Nodes": ",".join(pnodes) or "ALL",
                            "Default": "YES" if i == 0 else "NO", "MaxTime": "INFINITE", "State": "UP"})
    return {"node": node_tables, "partition": part_tables}


def partition_changes(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``scontrol update partition`` pairs (Slurm's keys, as text) -> canonical changes for
    ``PartitionUpdated``. Raises ConfError naming the key."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        rule = _PART_LINE_KEYS.get(key.lower())
        if rule is None or rule[0].startswith("_") and rule[0] != "_priority":
            raise ConfError(f"Update of {key} is not supported")
        try:
            converted = _convert(rule[1], value)
        except ValueError as exc:
            raise ConfError(f"Invalid {key}={value}: {exc}") from None
        if rule[0] == "_priority":
            out["priority_tier"] = out["priority_job_factor"] = converted
        else:
            out[rule[0]] = converted
    return out
