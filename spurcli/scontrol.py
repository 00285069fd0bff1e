"""``scontrol``: show and control jobs, steps, nodes, partitions and the configuration
(Slurm 25.11 behaviour: src/scontrol/scontrol.c, info_job.c, update_job.c).

Keywords are matched as Slurm does (a case-insensitive prefix of a minimum length), so
``scontrol sho j 5`` works. Commands:

* ``show job|step|node|partition|config|hostnames|hostlist|hostlistsorted|...`` (layouts in
  ``spurcore.render.scontrol``); ``show job 12`` shows every record of array 12, ``show job
  12_3`` only that task (``Job 12_3 not found`` when the array has no such task).
* ``update job`` (``JobId=`` or ``JobName=`` plus fields), ``hold``, ``uhold``/``holdu``,
  ``release``, ``suspend``, ``resume``, ``requeue``, ``requeuehold``: ids as ``12``,
  ``12_3``, ``12_[1-3]``, ``[12-14]``, lists; each task goes to the controller as one
  reference (``job_ref``); errors are ``<message> for job <id>``, exit status 1.
* ``ping``, ``completing``, ``version``, ``help``, ``exit``/``quit`` and the session
  keywords ``all``, ``details``, ``hide``, ``oneliner``, ``quiet``, ``verbose``.
* Spur extension: ``show job ID --at TIME`` shows the job as it was at TIME (any ``sacct
  -S`` time format), from the controller's history.

Commands for mechanisms Spur does not have (reservations, node reboots, debug levels, the
local slurmd, ...) are parsed as Slurm parses them and then fail with Slurm's
``Requested operation is presently disabled``; see docs/query-tools.md.
Without a command, commands are read from stdin, one per line, as Slurm's interactive mode.
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import OPTIONAL, REQUIRED, CliError, Opt

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "scontrol"

OPTIONS = (
    Opt("autocomplete", "", "autocomplete", REQUIRED),
    Opt("all", "a", "all"),
    Opt("clusters", "M", ("cluster", "clusters"), REQUIRED),
    Opt("details", "d", "details"),
    Opt("federation", "", "federation"),
    Opt("future", "F", "future"),
    Opt("help", "h", ("help", "usage")),
    Opt("hide", "", "hide"),
    Opt("json", "", "json", OPTIONAL),
    Opt("local", "", "local"),
    Opt("oneliner", "o", "oneliner"),
    Opt("quiet", "Q", "quiet"),
    Opt("sibling", "", "sibling"),
    Opt("uid", "u", "uid", REQUIRED),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
    Opt("yaml", "", "yaml", OPTIONAL),
)

USAGE = "Usage: scontrol [-a] [-d] [-h] [-M cluster] [-o] [-Q] [-u uid] [-v] [-V] [<COMMAND>]\n"

#: ESLURM_DISABLED: what Spur answers for the commands of mechanisms it does not have.
DISABLED = "Requested operation is presently disabled"
INVALID_JOB = "Invalid job id specified"
NICE_OFFSET = 0x80000000


def _kw(word: str, keyword: str, minlen: int) -> bool:
    """Slurm's ``!xstrncasecmp(word, keyword, MAX(strlen(word), minlen))``: a case-insensitive
    prefix of ``keyword`` at least ``minlen`` letters long (or all of it)."""
    w = word.lower()
    return len(w) >= min(minlen, len(keyword)) and keyword.lower().startswith(w)


def _prefix(word: str, keyword: str, n: int) -> bool:
    """``!xstrncasecmp(word, keyword, n)`` with a fixed ``n``."""
    return word.lower()[:n] == keyword.lower()[:n] and (len(word) >= n or len(word) == len(keyword))


class Session:
    """Per-invocation flags and the exit status (Slurm's globals: ``exit_code``,
    ``quiet_flag`` 1 quiet / -1 verbose, ``one_liner``, ``detail_flag``, ``all_flag``)."""

    def __init__(self, details: bool = False, oneliner: bool = False, quiet: bool = False) -> None:
        self.details = details
        self.oneliner = oneliner
        self.quiet = 1 if quiet else 0
        self.all = False
        self.future = False
        self.mime: str | None = None
        self.data_parser: str | None = None
        self.uid: int | None = None
        self.exit_code = 0
        self.exit = False
        self.env: Any = os.environ
        self._ctl: common.Controller | None = None

    @property
    def ctl(self) -> common.Controller:
        if self._ctl is None:
            self._ctl = common.connect()
        return self._ctl

    def close(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None

    @property
    def time_format(self) -> str | None:
        return self.env.get("SLURM_TIME_FORMAT")

    @property
    def bitstr_len(self) -> int | None:
        value = self.env.get("SLURM_BITSTR_LEN")
        if value is None:
            return None
        from spurcli.jobrefs import strtol

        return strtol(value)[0]

    def fail(self, message: str) -> None:
        """An error line on stderr (not with ``-Q``) and exit status 1."""
        self.exit_code = 1
        if self.quiet != 1:
            sys.stderr.write(message + "\n")

    def error(self, message: str) -> None:
        """Slurm's ``error()``: ``scontrol: error: <message>`` (always printed)."""
        self.exit_code = 1
        common.error(PROG, message)


# --------------------------------------------------------------------------- show


def _with_group(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with its group's name, set in place: the records are this command's own (a
    copy of each of 20,000 records cost ``show job`` 30 ms)."""
    if "group" not in info:
        info["group"] = common.group_name(int(info.get("gid", 0)))
    return info


def _dump(s: Session, doc: dict[str, Any]) -> None:
    from spurcli.jobrefs import dump_document

    sys.stdout.write(dump_document(doc, s.mime or "json", s.env))


def _meta(args: list[str]) -> dict[str, Any]:
    from spurcore.render.data_parser import json_meta

    return json_meta([PROG, *args], cluster=common.load_config().name, user=common.current_user()[0],
                     group=common.group_name(os.getgid()))


def _parse_show_job_id(text: str) -> tuple[int, int | None] | None:
    """scontrol_print_job's id check: digits, ``_`` and ``+`` only; ``12_3`` is task 3."""
    from spurcli.jobrefs import strtol

    if any(not (c.isdigit() or c in "_+") for c in text):
        return None
    job_id, end = strtol(text)
    task = None
    if text[end : end + 1] == "_":
        task, end = strtol(text, end + 1)
    return job_id, task


def show_job(s: Session, val: str | None, at_text: str | None = None, args: list[str] | None = None) -> None:
    from spurcore.render import scontrol as render
    from spurio.rpc import RpcError

    job_id: int | None = None
    task: int | None = None
    if val is not None:
        parsed = _parse_show_job_id(val)
        if parsed is None:
            s.exit_code = 1
            if s.quiet != 1:
                sys.stderr.write(f"scontrol_print_job error: {INVALID_JOB}\n")
            return
        job_id, task = parsed
    if at_text is not None:
        _show_job_at(s, job_id, at_text)
        return
    params: dict[str, Any] = {"with_steps": True}
    if not s.mime:  # the text needs only what the renderer reads: a long queue costs a third less
        params["fields"] = list(render.JOB_FIELDS)
    if job_id is not None:
        params["job_refs"] = [str(job_id)]
    every_text = job_id is None and not s.mime  # every job's text: printed from the rows
    try:
        result = common.call_job_rows(s.ctl, params) if every_text else common.call_jobs(s.ctl, params)
    except RpcError as exc:
        message = exc.message or exc.code
        if s.mime:
            from spurcore.render.data_parser import to_json  # --json/--yaml only
            from spurcore.render.squeue import View

            _dump(s, {**to_json([], view=View(0.0), meta=_meta(args or [])), "errors": [
                {"description": message, "source": "slurm_load_job", "error": message, "error_number": 2017}]})
        s.fail(f"slurm_load_jobs error: {message}")
        return
    now = float(result.get("now") or 0.0)
    if "rows" in result:
        _show_job_rows(s, result["fields"], result["rows"], now)
        return
    jobs = [_with_group(j) for j in result.get("jobs") or []]
    if job_id is not None:
        jobs = [j for j in jobs if job_id in (int(j.get("job_id", 0)), int(j.get("array_job_id") or 0))]
        if not jobs:
            s.fail(f"slurm_load_jobs error: {INVALID_JOB}")
            return
    if s.mime:
        from spurcore.render.data_parser import to_json
        from spurcore.render.squeue import View

        view = View(now, time_format=s.time_format, bitstr_len=s.bitstr_len, cluster=common.load_config().name)
        _dump(s, to_json(jobs, view=view, meta=_meta(args or [])))
        return
    if s.quiet == -1:
        sys.stdout.write(f"last_update_time={render.make_time_str(now, s.time_format, now)}, "
                         f"records={len(jobs)}\n")
    shown: list[dict[str, Any]] = []
    for job in sorted(jobs, key=_show_order):
        if task is not None and job_id is not None:
            if job.get("array_task_id") is not None and int(job.get("array_job_id") or 0) == job_id:
                if int(job["array_task_id"]) != task:
                    continue
            elif job.get("array_job_id") and job.get("array_task_id") is None:
                from spurcore.arrays import contains

                if not contains([list(r) for r in job.get("array_pending") or ()], task):
                    continue
                job = {**job, "array_task_id": task}
            elif task != 0xFFFFFFFE:
                continue
        shown.append(job)
    if not shown:
        if job_id is not None:
            s.exit_code = 1
            if s.quiet != 1:
                what = f"{job_id}_{task}" if task is not None else str(job_id)
                sys.stdout.write(f"Job {what} not found\n")
        elif s.quiet != 1:
            sys.stdout.write("No jobs in the system\n")
        return
    sys.stdout.write(render.show_jobs(shown, detail=s.details, oneliner=s.oneliner, now=now,
                                      time_format=s.time_format, bitstr_len=s.bitstr_len))


def _show_job_rows(s: Session, fields: list[str], rows: list[Any], now: float) -> None:
    """``show job`` of every job from the columnar answer's rows: what the records' path
    prints (the same order and lines), without a map per record."""
    from spurcore.render import scontrol as render

    if s.quiet == -1:
        sys.stdout.write(f"last_update_time={render.make_time_str(now, s.time_format, now)}, "
                         f"records={len(rows)}\n")
    if not rows:
        if s.quiet != 1:
            sys.stdout.write("No jobs in the system\n")
        return
    at = fields.index("job_id")
    rows = sorted(rows, key=lambda row: int(row[at]))  # _show_order
    sys.stdout.write(render.show_job_rows(fields, rows, group_of=common.group_name, detail=s.details,
                                          oneliner=s.oneliner, now=now, time_format=s.time_format,
                                          bitstr_len=s.bitstr_len))


def _show_order(job: dict[str, Any]) -> int:
    """Records in job id order (slurmctld's job list order), so an array's pending record,
    which keeps the array's id, comes first."""
    return int(job.get("job_id", 0))


def _show_job_at(s: Session, job_id: int | None, at_text: str) -> None:
    import time

    from spurcore.render import scontrol as render
    from spurcore.timefmt import parse_time
    from spurio.rpc import RpcError

    if job_id is None:
        s.fail(f"{PROG}: error: show job --at needs a job id")
        return
    try:
        at = parse_time(at_text, time.time(), past=True)
    except ValueError as exc:
        s.fail(f"{PROG}: error: {exc}")
        return
    try:
        result = s.ctl.call("job_at", {"job_id": job_id, "at": at})
    except RpcError as exc:
        s.fail(f"slurm_load_jobs error: {exc.message or exc.code}")
        return
    job = result.get("job")
    if not job:
        s.fail(f"slurm_load_jobs error: {INVALID_JOB}")
        return
    sys.stdout.write(render.show_job(_with_group(job), detail=s.details, oneliner=s.oneliner, now=at,
                                     time_format=s.time_format, bitstr_len=s.bitstr_len))


def _load_nodes(s: Session, what: str = "slurm_load_node error") -> tuple[list[dict[str, Any]], float] | None:
    from spurio.rpc import RpcError

    try:
        result = s.ctl.call("nodes", {})
    except RpcError as exc:
        s.fail(f"{what}: {exc.message or exc.code}")
        return None
    return list(result.get("nodes") or []), float(result.get("now") or 0.0)


def show_node(s: Session, val: str | None, args: list[str]) -> None:
    from spurcli.sinfo import resolve_reason_users
    from spurcore.render import scontrol as render

    loaded = _load_nodes(s)
    if loaded is None:
        return
    nodes, now = loaded
    resolve_reason_users(nodes)
    if s.mime:
        _dump(s, {"nodes": [_node_json(n) for n in nodes], "last_update": _num(now), "meta": _meta(args),
                  "errors": [], "warnings": []})
        return
    if val:
        from spurcore.hostlist import expand

        try:
            wanted = expand(val)
        except ValueError:
            wanted = [val]
        by_name = {str(n.get("name")): n for n in nodes}
        for name in wanted:  # scontrol_print_node_list: each name in turn (printf: stdout)
            if name in by_name:
                sys.stdout.write(render.show_node(by_name[name], oneliner=s.oneliner, time_format=s.time_format,
                                                  now=now, detail=s.details))
            else:
                s.exit_code = 1
                if s.quiet != 1:
                    sys.stdout.write(f"Node {name} not found\n")
        return
    if not nodes:
        sys.stdout.write("No nodes in the system\n")
        return
    sys.stdout.write(render.show_nodes(nodes, oneliner=s.oneliner, time_format=s.time_format, now=now,
                                       detail=s.details))


def _num(value: Any) -> dict[str, Any]:
    return {"set": True, "infinite": False, "number": int(value or 0)}


def _node_json(node: dict[str, Any]) -> dict[str, Any]:
    """A node as data_parser's NODE (the fields Spur knows)."""
    from spurcore.endpoints import node_addr
    from spurcore.render._common import tres_units
    from spurcore.render.nodestate import state_bits

    base, flags = state_bits(node)
    name = str(node.get("name"))
    gres = str(node.get("gres") or "")
    return {
        "name": name,
        "hostname": name,
        "address": node_addr(str(node.get("address") or ""), name),
        "state": [base, *flags],
        "cpus": int(node.get("cpus") or 0),
        "alloc_cpus": int(node.get("alloc_cpus") or 0),
        "alloc_idle_cpus": int(node.get("cpus") or 0) - int(node.get("alloc_cpus") or 0),
        "real_memory": int(node.get("mem_mb") or 0),
        "alloc_memory": int(node.get("alloc_mem") or 0),
        "free_mem": {"set": False, "infinite": False, "number": 0},
        "sockets": int(node.get("cpus") or 1),
        "cores": 1,
        "threads": 1,
        "boards": 1,
        "partitions": list(node.get("partitions") if "partitions" in node else [node.get("partition") or "debug"]),
        "reason": str(node.get("reason") or ""),
        "reason_changed_at": _num(node.get("reason_time") or node.get("down_at") or 0),
        "reason_set_by_user": str(node.get("reason_user") or "") if node.get("reason") else "",
        "slurmd_start_time": _num(node.get("registered_at") or 0),
        "version": "25.11.0",
        "operating_system": "Linux",
        "architecture": "x86_64",
        "features": [str(f) for f in node.get("features") or ()],
        "active_features": [str(f) for f in node.get("active_features", node.get("features")) or ()],
        "gres": "" if gres == "(null)" else gres,
        "gres_used": "" if str(node.get("gres_used") or "(null)") == "(null)" else str(node["gres_used"]),
        "weight": int(node.get("weight") or 1),
        "tres": tres_units(str(node.get("cfg_tres") or ""), drop=("node",)) or
        f"cpu={int(node.get('cpus') or 0)},mem={int(node.get('mem_mb') or 0)}M,billing={int(node.get('cpus') or 0)}",
        "tres_used": tres_units(str(node.get("alloc_tres") or ""), drop=("node", "billing")),
    }


def _load_partitions(s: Session) -> list[dict[str, Any]] | None:
    """The partitions scontrol may show (hidden ones and those of other groups only with
    ``-a``/``all``, as slurmctld filters them without SHOW_ALL)."""
    from spurcli import sinfo
    from spurcore.render.sinfo import visible_partitions

    loaded = _load_nodes(s, "slurm_load_partitions error")
    if loaded is None:
        return None
    parts = sinfo.load_partitions(s.ctl, loaded[0])
    if parts is None:
        s.fail("slurm_load_partitions error: Unable to contact slurm controller (connect failure)")
        return None
    return visible_partitions(parts, show_all=s.all, uid=sinfo.caller_uid(), groups=sinfo.caller_groups())


def show_partition(s: Session, val: str | None, args: list[str]) -> None:
    """``scontrol_print_part``: every partition, or the one named (``Partition X not
    found``, exit 1), or ``No partitions in the system``."""
    import time

    from spurcore.render import scontrol as render

    parts = _load_partitions(s)
    if parts is None:
        return
    if val:
        parts = [p for p in parts if p["name"] == val][:1]
    if s.mime:
        _dump(s, {"partitions": [_partition_json(p) for p in parts], "last_update": _num(time.time()),
                  "meta": _meta(args), "errors": [], "warnings": []})
        return
    if not parts:
        if val:
            s.exit_code = 1
            if s.quiet != 1:
                sys.stdout.write(f"Partition {val} not found\n")
        elif s.quiet != 1:
            sys.stdout.write("No partitions in the system\n")
        return
    sys.stdout.write("".join(render.show_partition(p, oneliner=s.oneliner) for p in parts))


def _partition_json(part: dict[str, Any]) -> dict[str, Any]:
    """A partition as data_parser's PARTITION_INFO (the fields Spur has)."""
    from spurcore.render._common import oversubscribe_text, tres_units

    def minutes(secs: Any, *, unset_infinite: bool) -> dict[str, Any]:
        if secs is None:
            return {"set": False, "infinite": unset_infinite, "number": 0}
        return {"set": True, "infinite": False, "number": int(secs) // 60}

    max_nodes = part.get("max_nodes")
    flags = [f for f, on in (("DEFAULT", part.get("default")), ("HIDDEN", part.get("hidden")),
                              ("EXCLUSIVE_USER", part.get("exclusive_user"))) if on]
    return {
        "name": part["name"],
        "nodes": {"total": int(part.get("total_nodes") or 0), "configured": str(part.get("nodes") or ""),
                  "allowed_allocation": ""},
        "accounts": {"allowed": ",".join(part.get("allow_accounts") or ()),
                     "deny": ",".join(part.get("deny_accounts") or ())},
        "groups": {"allowed": ",".join(part.get("allow_groups") or ())},
        "cpus": {"total": int(part.get("total_cpus") or 0)},
        "partition": {"state": [str(part.get("state") or "UP")]},
        "flags": flags,
        "maximums": {"time": minutes(part.get("max_time"), unset_infinite=True),
                     "nodes": {"set": max_nodes is not None, "infinite": max_nodes is None,
                               "number": int(max_nodes or 0)},
                     "oversubscribe": {"jobs": 4 if oversubscribe_text(part.get("oversubscribe")) != "NO" else 1,
                                       "flags": [] if str(part.get("oversubscribe") or "NO") in ("NO", "EXCLUSIVE")
                                       else [str(part.get("oversubscribe")).split(":")[0]]}},
        "minimums": {"nodes": int(part.get("min_nodes") or 0)},
        "defaults": {"time": minutes(part.get("default_time"), unset_infinite=False)},
        "priority": {"job_factor": int(part.get("priority_job_factor") or 1),
                     "tier": int(part.get("priority_tier") or 1)},
        "tres": {"configured": tres_units(str(part.get("tres") or "")), "billing_weights": ""},
    }


def show_steps(s: Session, val: str | None, args: list[str]) -> None:
    from spurcore.render import scontrol as render
    from spurio.rpc import RpcError

    job_id: int | None = None
    task: int | None = None
    step: Any = None
    if val:
        from spurcli.jobrefs import RefError, sacct_steps

        try:
            (sel,) = sacct_steps(val)
        except (RefError, ValueError):
            s.fail(f"Invalid job step id: {val}")
            return
        job_id, task, step = sel
    params: dict[str, Any] = {"with_steps": True, "states": ["RUNNING", "SUSPENDED", "COMPLETING", "STOPPED"]}
    if job_id is not None:
        params = {"with_steps": True, "job_refs": [str(job_id) if task is None else f"{job_id}_{task}"]}
    try:
        result = common.call_jobs(s.ctl, params)
    except RpcError as exc:
        if exc.code == "invalid_job_id" and job_id is not None:
            s.fail(f"{PROG}: error: scontrol_print_step: slurm_get_job_steps({val}) failed: {exc.message}")
        else:
            s.fail(f"slurm_get_job_steps error: {exc.message or exc.code}")
        return
    now = float(result.get("now") or 0.0)
    pairs = []
    for job in result.get("jobs") or []:
        array_id = int(job.get("array_job_id") or 0)
        jtask = job.get("array_task_id") if array_id else None
        if job_id is not None:
            if task is None and job_id not in (int(job["job_id"]), array_id):
                continue
            if task is not None and (array_id != job_id or jtask != task):
                continue
        for st in job.get("steps") or ():
            if st.get("state") != "RUNNING":
                continue
            if step is not None and st.get("step_id") != step:
                continue
            pairs.append((st, job))
    if s.mime:
        _dump(s, {"steps": [{"id": f"{j['job_id']}.{st.get('step_id')}", "name": st.get("name") or "",
                             "state": [st.get("state") or ""]} for st, j in pairs],
                  "last_updated": _num(now), "meta": _meta(args), "errors": [], "warnings": []})
        return
    if not pairs:
        s.exit_code = 1 if val else s.exit_code
        if s.quiet != 1:
            if val and job_id is not None:
                step_text = "*" if step is None else str(step)
                what = f"{job_id}.{step_text}" if task is None else f"{job_id}_{task}.{step_text}"
                sys.stdout.write(f"Job step {what} not found\n")
            else:
                sys.stdout.write("No job steps in the system\n")
        return
    sys.stdout.write(render.show_steps(pairs, oneliner=s.oneliner, now=now, time_format=s.time_format))


def show_config(s: Session, args: list[str]) -> None:
    from spurcore.render import scontrol as render
    from spurio.rpc import RpcError

    try:
        result = s.ctl.call("config", {})
    except RpcError as exc:
        s.fail(f"slurm_load_ctl_conf error:{exc.message or exc.code}")
        return
    now = float(result.get("now") or 0.0)
    config = dict(result.get("config") or {})
    try:
        sched = s.ctl.call("sched_config", {})
    except RpcError as exc:
        if exc.code != "unknown_method":  # a controller without scheduling settings: none to add
            s.fail(f"slurm_load_ctl_conf error:{exc.message or exc.code}")
            return
    else:
        config = render.merge_sched_config(config, dict(sched.get("config") or {}))
    if not now:  # a controller that sends no clock: the time of asking
        import time

        now = time.time()
    last = float(result.get("last_update") or now)
    sys.stdout.write(render.show_config(config, last_update=last, time_format=s.time_format, now=now))
    ping(s, [])


def ping(s: Session, args: list[str]) -> None:
    """``Slurmctld(primary) at <host> is UP`` per replica (each is asked directly)."""
    import copy

    from spurio.client import Client

    config = common.load_config()
    results = []
    any_up = False
    for i, replica in enumerate(config.replicas):
        one = copy.copy(config)
        one.replicas = [replica]
        up = False
        try:
            with Client(one, timeout=2.0, retry_for=0.0) as client:
                client.call("ping", {})
                up = True
        except Exception:  # any failure (unreachable, no leader, refused) is DOWN
            up = False
        any_up = any_up or up
        mode = "primary" if i == 0 else "backup" if (i == 1 and len(config.replicas) == 2) else f"backup{i}"
        host = (replica.rpc.rpartition(":")[0] if replica.rpc else "") or replica.socket or str(replica.id)
        results.append((mode, host, up))
    if s.mime:
        _dump(s, {"pings": [{"hostname": h, "pinged": "UP" if up else "DOWN", "responding": up,
                             "latency": 0, "mode": m, "primary": m == "primary"} for m, h, up in results],
                  "meta": _meta(args), "errors": [], "warnings": []})
        return
    for mode, host, up in results:
        sys.stdout.write(f"Slurmctld({mode}) at {host} is {'UP' if up else 'DOWN'}\n")
    if not any_up:
        s.exit_code = 1
    if any(not up for _m, _h, up in results) and os.getuid() == 0:
        sys.stdout.write("*****************************************\n"
                         "** RESTORE SLURMCTLD DAEMON TO SERVICE **\n"
                         "*****************************************\n")


def _read_hostlist_arg(s: Session, value: str) -> str | None:
    """``scontrol_encode_hostlist``'s input: a list, or ``-``/a path of a file of names."""
    path = "/dev/stdin" if value == "-" else value
    if not path.startswith("/"):
        return value
    try:
        with open(path) as f:
            data = f.read(1024 * 1024 + 1)
    except OSError:
        s.fail(f"Can not open {path}")
        return None
    if len(data) > 1024 * 1024:
        s.fail(f"File {path} is too large")
        return None
    text = data.replace("\n", ",")
    while ",," in text:
        text = text.replace(",,", ",")
    return text


def show_hosts(s: Session, tag: str, val: str | None) -> None:
    from spurcore.hostlist import expand
    from spurcore.render.scontrol import hostlist_ranged

    if tag == "hostnames":
        value = val if val is not None else s.env.get("SLURM_NODELIST")
        if not value:
            s.error("host list is empty")
            return
        try:
            names = expand(value)
        except ValueError:
            s.fail(f"Invalid hostlist: {value}")
            return
        sys.stdout.write("".join(n + "\n" for n in names))
        return
    if val is None:
        s.fail("invalid encode argument")
        sys.stdout.write(_usage_text())
        return
    text = _read_hostlist_arg(s, val)
    if text is None:
        return
    try:
        names = expand(text)
    except ValueError:
        s.fail(f"Invalid hostlist: {text}")
        return
    sys.stdout.write(hostlist_ranged(names, sort=tag == "hostlistsorted") + "\n")


def show(s: Session, words: list[str], args: list[str]) -> None:
    """``_show_it``."""
    at_text = None
    rest = []
    i = 0
    while i < len(words):  # Spur's --at extension, taken out before Slurm's argument count
        w = words[i]
        if w == "--at" and i + 1 < len(words):
            at_text = words[i + 1]
            i += 2
            continue
        if w.startswith("--at="):
            at_text = w[5:]
        else:
            rest.append(w)
        i += 1
    words = rest
    argv = ["show", *words]
    if len(argv) < 2:
        s.fail("too few arguments for keyword:show")
        return
    allow_opt = any(_kw(argv[1], k, n) for k, n in (("assoc_mgr", 2), ("bbstat", 2), ("dwstat", 2),
                                                     ("topology", 4)))
    if len(argv) > 3 and not allow_opt:
        s.fail("too many arguments for keyword:show")
        return
    tag = argv[1]
    val: str | None
    if "=" in tag:
        tag, _eq, val = tag.partition("=")
    elif len(argv) == 3:
        val = argv[2]
    else:
        val = None
    if _kw(tag, "aliases", 1):
        sys.stdout.write(f"{val or ''}\n" if val else "")
    elif _kw(tag, "bbstat", 2) or _kw(tag, "dwstat", 2):
        s.fail(f"slurm_load_burst_buffer_stat error:{DISABLED}")
    elif _kw(tag, "burstbuffer", 2):
        pass  # no burst buffers: nothing to show
    elif _kw(tag, "assoc_mgr", 2) or _kw(tag, "cache", 2):
        s.fail(f"slurm_load_assoc_mgr_info error:{DISABLED}")
    elif _kw(tag, "config", 1):
        show_config(s, args)
    elif _kw(tag, "daemons", 1):
        if val:
            s.fail("too many arguments for keyword:show")
        else:
            sys.stdout.write("Daemons: slurmctld\n" if _runs_controller() else "Daemons: \n")
    elif _kw(tag, "federations", 1):
        pass  # not part of a federation: slurm_print_federation prints nothing
    elif _kw(tag, "hostnames", 5):
        show_hosts(s, "hostnames", val)
    elif _kw(tag, "hostlist", 5):
        show_hosts(s, "hostlist", val)
    elif _kw(tag, "hostlistsorted", 9):
        show_hosts(s, "hostlistsorted", val)
    elif _kw(tag, "jobs", 1) or _kw(tag, "jobid", 1):
        show_job(s, val, at_text, args)
    elif _kw(tag, "licenses", 2):
        sys.stdout.write("No licenses configured\n" if not val else f"License {val} not found\n")
        if val:
            s.exit_code = 1
    elif _kw(tag, "nodes", 1):
        show_node(s, val, args)
    elif _kw(tag, "partitions", 2) or _kw(tag, "partitionname", 2):
        show_partition(s, val, args)
    elif _kw(tag, "reservations", 1) or _kw(tag, "reservationname", 1):
        if val:
            s.fail(f"Reservation {val} not found")
        else:
            sys.stdout.write("No reservations in the system\n")
    elif _kw(tag, "resources", 4):
        s.fail(f"slurm_load_resources error:{DISABLED}")
    elif _kw(tag, "slurmd", 2):
        s.fail(f"slurm_load_slurmd_status:{DISABLED}")
    elif _kw(tag, "steps", 2):
        show_steps(s, val, args)
    elif _kw(tag, "topoconf", 5) or _kw(tag, "topology", 1):
        sys.stdout.write("")  # no topology plugin: nothing to show
    else:
        s.fail(f"invalid entity:{tag} for keyword:show")


def _runs_controller() -> bool:
    """Is a replica of this cluster reachable on this host (its Unix socket exists)?"""
    try:
        return any(r.socket and os.path.exists(r.socket) for r in common.load_config().replicas)
    except CliError:
        return False


# --------------------------------------------------------------------------- job control

#: command -> (method, extra params)
CONTROL: dict[str, tuple[str, dict[str, Any]]] = {
    "suspend": ("signal", {"step_id": -1, "kind": 2, "signal": 0, "target": 0}),
    "resume": ("signal", {"step_id": -1, "kind": 3, "signal": 0, "target": 0}),
    "hold": ("hold", {}),
    "uhold": ("hold", {"user_hold": True}),
    "release": ("release", {}),
    "requeue": ("requeue", {"hold": False}),
    "requeuehold": ("requeue", {"hold": True}),
}


def _strip_prefix(item: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if item.lower().startswith(prefix):
            return item[len(prefix):]
    return item


def _send(s: Session, method: str, job_str: str, extra: dict[str, Any]) -> None:
    """One Slurm job id string (``12``, ``12_1-3``): one call per task, errors as
    ``<message> for job <id>``."""
    from spurcli.jobrefs import RefError, expand_job_str
    from spurio.rpc import RpcError

    try:
        refs = expand_job_str(job_str)
    except RefError:
        s.fail(f"{INVALID_JOB} for job {job_str}")
        return
    for ref in refs:
        params: dict[str, Any] = {"request_id": common.new_request_id(), "job_ref": ref, **extra}
        if ref.isdigit():
            params["job_id"] = int(ref)  # controllers that predate job_ref
        try:
            s.ctl.call(method, params)
        except RpcError as exc:
            s.fail(f"{exc.message or exc.code} for job {ref}")


def job_control(s: Session, command: str, words: list[str]) -> None:
    """hold/uhold/release (``scontrol_hold``), suspend/resume (``scontrol_suspend``),
    requeue/requeuehold (``scontrol_requeue[_hold]``), each argument one job id list."""
    from spurcli.jobrefs import scontrol_job_ids

    method, extra = CONTROL[command]
    if not words:
        s.fail(f"too few arguments for keyword:{command}")
        return
    if command.startswith("requeue"):
        start = 0
        for w in words:  # parse_requeue_flags: Incomplete, State=SpecialExit
            low = w.lower()
            if (low and "incomplete".startswith(low)) or (
                low.startswith("state=") and (low[6:].startswith("specialexit") or low[6:].startswith("se"))
            ):
                start += 1
                continue
            break
        words = words[start:]
    for word in words:
        job_str = _strip_prefix(word, ("jobid=", "job="))
        if command in ("hold", "uhold", "release") and job_str.lower().startswith(("name=", "jobname=")):
            _hold_by_name(s, method, extra, job_str.split("=", 1)[1])
            continue
        if not job_str:
            s.exit_code = 1
            continue
        ids = scontrol_job_ids(job_str)
        if ids is None:
            s.fail(f"{INVALID_JOB} for job {job_str}")
            continue
        for job_id_str in ids:
            _send(s, method, job_id_str, extra)


def _hold_by_name(s: Session, method: str, extra: dict[str, Any], name: str) -> None:
    """``hold Name=x``: every job of that name (pending ones, or array tasks)."""
    from spurio.rpc import RpcError

    try:
        jobs = common.call_jobs(s.ctl, {}).get("jobs") or []
    except RpcError as exc:
        if s.quiet == -1:
            s.fail(f"slurm_load_job error: {exc.message or exc.code}")
        s.exit_code = 1
        return
    for job in jobs:
        if str(job.get("name") or "") != name:
            continue
        if job.get("array_job_id") and job.get("array_task_id") is None:
            from spurcore.arrays import fmt_ranges

            job_str = f"{job['array_job_id']}_{fmt_ranges([list(r) for r in job.get('array_pending') or ()])}"
        elif job.get("array_job_id"):
            job_str = f"{job['array_job_id']}_{job['array_task_id']}"
        else:
            job_str = str(job["job_id"])
        _send(s, method, job_str, extra)


# --------------------------------------------------------------------------- update job


def _time_str2mins(text: str) -> int | None:
    """``time_str2mins``: minutes (seconds rounded up), -1 for UNLIMITED/INFINITE; None when
    invalid (Slurm's NO_VAL)."""
    from spurcore.timefmt import parse_time_limit

    s = text.strip()
    if s.upper() in ("-1", "INFINITE", "UNLIMITED"):
        return -1
    try:
        secs = parse_time_limit(s, round_up_to_minutes=True)
    except ValueError:
        return None
    return 0 if secs is None else secs // 60


def _parse_uint(text: str, bits: int) -> int | None:
    """``parse_uint16/32/64``: digits only, within range (what Slurm calls invalid: None)."""
    t = text.strip()
    if not t or not t.isdigit():
        return None
    value = int(t)
    if value >= (1 << bits) - 2:
        return None
    return value


#: update_job.c's tags: (Slurm name, minimum prefix length, kind). ``kind`` says how the
#: value is checked and sent: str, time (TimeLimit/TimeMin), int16/int32/int64 (parse_uint*),
#: and special cases handled inline.
_UPDATE_TAGS: tuple[tuple[str, int, str], ...] = (
    ("JobId", 3, "jobid"),
    ("AdminComment", 6, "str"),
    ("SiteFactor", 5, "sitefactor"),
    ("ArrayTaskThrottle", 10, "throttle"),
    ("Comment", 3, "str"),
    ("Clusters", 8, "str"),
    ("ClusterFeatures", 8, "str"),
    ("DelayBoot", 5, "delayboot"),
    ("Extra", 3, "str"),
    ("TimeLimit", 5, "timelimit"),
    ("TimeMin", 5, "timemin"),
    ("Priority", 2, "int32"),
    ("Nice", 2, "nice"),
    ("CPUsPerTask", 9, "int16"),
    ("CpusPerTres", 9, "str"),
    ("NumCPUs", 6, "numcpus"),
    ("NumTasks", 8, "int32"),
    ("ReqProcs", 8, "int32:NumTasks"),
    ("Requeue", 4, "int16"),
    ("ReqNodes", 8, "nodes:NumNodes"),
    ("NumNodes", 8, "nodes"),
    ("ReqSockets", 4, "int16"),
    ("ReqCores", 4, "int16"),
    ("TasksPerNode", 2, "int16"),
    ("ReqThreads", 4, "int16"),
    ("MinCPUsNode", 4, "int16"),
    ("MinMemoryNode", 10, "int64"),
    ("MinMemoryCPU", 10, "int64"),
    ("MinTmpDiskNode", 5, "int32"),
    ("Partition", 2, "str"),
    ("QOS", 2, "str"),
    ("ReservationName", 3, "str"),
    ("Name", 2, "str"),
    ("JobName", 4, "str:Name"),
    ("WCKey", 1, "str"),
    ("StdErr", 6, "str"),
    ("StdIn", 5, "str"),
    ("StdOut", 6, "str"),
    ("Switches", 5, "str"),
    ("wait-for-switch", 5, "int32"),
    ("OverSubscribe", 2, "yesno16"),
    ("Shared", 2, "yesno16:OverSubscribe"),
    ("Contiguous", 3, "yesno16"),
    ("CoreSpec", 4, "spec"),
    ("MemPerTres", 5, "str"),
    ("ThreadSpec", 4, "spec"),
    ("TresBind", 5, "str"),
    ("TresFreq", 5, "str"),
    ("TresPerJob", 8, "str"),
    ("TresPerNode", 8, "str"),
    ("TresPerSocket", 8, "str"),
    ("TresPerTask", 8, "str"),
    ("ExcNodeList", 3, "str"),
    ("NodeList", 8, "str:ReqNodeList"),
    ("ReqNodeList", 8, "str"),
    ("Features", 1, "str"),
    ("Prefer", 3, "str"),
    ("Gres", 2, "str:TresPerNode"),
    ("Account", 1, "str"),
    ("BurstBuffer", 1, "str"),
    ("Dependency", 1, "str"),
    ("Licenses", 1, "str"),
    ("EligibleTime", 2, "begin:StartTime"),
    ("StartTime", 2, "begin"),
    ("EndTime", 2, "time"),
    ("Reboot", 3, "yesno16"),
    ("UserID", 3, "userid"),
    ("Deadline", 3, "deadline"),
    ("WorkDir", 2, "str"),
    ("MailType", 5, "mailtype"),
    ("MailUser", 5, "str"),
    ("MCSLabel", 4, "str"),
)


class _Abort(Exception):
    """Stop the update (the message has been printed)."""


def update_job(s: Session, words: list[str]) -> None:
    """``scontrol_update_job``: parse every ``Tag=value`` (Slurm's prefix rules and value
    checks), then send the changes to each job of ``JobId=`` (or of ``JobName=`` alone)."""
    import time

    from spurcore.timefmt import parse_time

    changes: dict[str, Any] = {}
    job_id_str: str | None = None
    name: str | None = None
    job_uid: int | None = None
    update_size = False
    i = 0
    try:
        while i < len(words):
            arg = words[i]
            add: str | None = None
            if "=" in arg:
                tag, _eq, val = arg.partition("=")
                if tag and tag[-1] in "+-":
                    add, tag = tag[-1], tag[:-1]
            elif _kw(arg, "Nice", 2):
                changes["Nice"] = 100
                i += 1
                continue
            elif _kw(arg, "ResetAccrueTime", 3):
                changes["ResetAccrueTime"] = True
                i += 1
                continue
            elif i + 1 < len(words):
                tag, val = arg, words[i + 1]
                i += 1
            else:
                s.fail(f"Invalid input: {arg}\nRequest aborted")
                return
            i += 1
            match = next((t for t in _UPDATE_TAGS if _kw(tag, t[0], t[1])), None)
            if match is None:
                s.fail(f"Update of this parameter is not supported: {arg}\nRequest aborted")
                return
            slurm_name, _n, kind = match
            kind, _colon, alias = kind.partition(":")
            key = alias or slurm_name
            if kind == "jobid":
                job_id_str = val
                continue
            if kind == "timelimit":
                if val[:1] in "+-":
                    if add:
                        _fatal_update(s, "Invalid syntax, variations of +=- are not accepted.")
                    add, val = val[0], val[1:]
                mins = _time_str2mins(val)
                if mins is None:
                    _fatal_update(s, "Invalid TimeLimit value")
                if add:
                    if job_id_str is None:
                        _fatal_update(s, "JobId must precede TimeLimit increment or decrement")
                    current = _current_time_limit(s, job_id_str)
                    if current is None:
                        raise _Abort
                    if current < 0:
                        _fatal_update(s, "Cannot increment/decrement TimeLimit when set to UNLIMITED.")
                    if add == "+":
                        mins = current + mins
                    elif mins > current:
                        _fatal_update(s, f"TimeLimit decrement larger than current time limit ({mins} > {current})")
                    else:
                        mins = current - mins
                    add = None
                changes[key] = None if mins < 0 else mins * 60
            elif kind == "timemin":
                mins = _time_str2mins(val)
                if mins is None or mins < -1:
                    _fatal_update(s, "Invalid TimeMin value")
                changes[key] = None if mins < 0 else mins * 60
            elif kind == "str":
                if slurm_name == "AdminComment" and add:
                    _fatal_update(s, "Invalid syntax, AdminComment can not be added/subtracted from.")
                if key == "Name":
                    name = val
                changes[key] = val
            elif kind in ("int16", "int32", "int64"):
                value = _parse_uint(val, int(kind[3:]))
                if value is None:
                    _fatal_update(s, f"Invalid {slurm_name} value: {val}")
                if slurm_name == "MinMemoryCPU":
                    key = "MinMemoryCPU"
                changes[key] = value
            elif kind == "nice":
                from spurcli.jobrefs import strtol

                value = strtol(val)[0]
                if abs(value) > NICE_OFFSET - 3:
                    _fatal_update(s, f"Nice value out of range (+/- {NICE_OFFSET - 3}). Value ignored")
                changes[key] = value
            elif kind == "sitefactor":
                from spurcli.jobrefs import strtol

                value = strtol(val)[0]
                if abs(value) > NICE_OFFSET - 3:
                    _fatal_update(s, f"SiteFactor value out of range (+/- {NICE_OFFSET - 3}). Value ignored")
                changes[key] = value
            elif kind == "throttle":
                from spurcli.jobrefs import strtol

                value = strtol(val)[0]
                if value < 0:
                    _fatal_update(s, "Invalid ArrayTaskThrottle value")
                changes[key] = value
            elif kind == "delayboot":
                from spurcore.timefmt import parse_time_limit

                try:
                    changes[key] = parse_time_limit(val) or 0
                except ValueError:
                    _fatal_update(s, "Invalid DelayBoot value")
            elif kind == "numcpus":
                low, _dash, high = val.partition("-")
                if not low.isdigit() or int(low) <= 0 or (high and (not high.isdigit() or int(high) < int(low))):
                    _fatal_update(s, f"Invalid NumCPUs value: {val}")
                changes[key] = val
            elif kind == "nodes":
                update_size = True
                changes[key] = val
            elif kind == "yesno16":
                low = val.lower()
                if low and "yes".startswith(low):
                    changes[key] = 1
                elif low and "no".startswith(low):
                    changes[key] = 0
                else:
                    value = _parse_uint(val, 16)
                    if value is None:
                        what = {"Reboot": "reboot"}.get(slurm_name, key)
                        _fatal_update(s, f"Invalid {what} value: {val}")
                    changes[key] = value
            elif kind == "spec":
                if val in ("-1", "*"):
                    changes[slurm_name] = None
                else:
                    value = _parse_uint(val, 16)
                    if value is None:
                        _fatal_update(s, f"Invalid {slurm_name} value: {val}")
                    changes[slurm_name] = value
            elif kind in ("begin", "deadline", "time"):
                try:
                    when = parse_time(val, time.time())
                except ValueError:
                    pos = 0
                    sys.stderr.write(f"Invalid time specification (pos={pos}): {val}\n")
                    when = 0.0
                if kind == "begin" and when:
                    changes[key] = max(when, time.time())
                elif kind == "deadline" and when:
                    changes[key] = when
                elif kind == "time":
                    changes[key] = when
            elif kind == "userid":
                import pwd

                try:
                    job_uid = int(val) if val.isdigit() else pwd.getpwnam(val).pw_uid
                except KeyError:
                    s.fail(f"Invalid UserID: {val}\nRequest aborted")
                    return
                continue
            elif kind == "mailtype":
                from spurcore.render._common import parse_mail_type

                if parse_mail_type(val) is None:
                    s.fail(f"Invalid MailType: {val}")
                    return
                changes[key] = val
            if add:
                _fatal_update(s, f"Option {tag} does not accept [+|-]= syntax")
    except _Abort:
        s.exit_code = 1
        return
    if not changes:
        s.fail("No changes specified")
        return
    if job_id_str is None and name is not None:
        job_id_str = _job_name2id(s, name, job_uid)
        if job_id_str is None:
            s.exit_code = 1
            return
        changes.pop("Name", None)
        if not changes:
            s.fail("No changes specified")
            return
    if job_id_str is None:
        s.error("No job ID specified")
        return
    if update_size and not _is_single_job(s, job_id_str):
        s.exit_code = 1
        return
    from spurcli.jobrefs import scontrol_job_ids

    ids = scontrol_job_ids(job_id_str)
    if ids is None:
        s.fail(f"{INVALID_JOB} for job {job_id_str}")
        return
    for job_str in ids:
        _send_update(s, job_str, changes)


def _send_update(s: Session, job_str: str, changes: dict[str, Any]) -> None:
    from spurcli.jobrefs import RefError, expand_job_str
    from spurio.rpc import RpcError

    try:
        refs = expand_job_str(job_str)
    except RefError:
        s.fail(f"{INVALID_JOB} for job {job_str}")
        return
    for ref in refs:
        params: dict[str, Any] = {"request_id": common.new_request_id(), "job_ref": ref, "changes": changes}
        try:
            s.ctl.call("update_job", params)
        except RpcError as exc:
            s.fail(f"{exc.message or exc.code} for job {ref}")


def _fatal_update(s: Session, message: str) -> None:
    s.error(message)
    raise _Abort


def _current_time_limit(s: Session, job_str: str) -> int | None:
    """``_get_job_time``: the job's limit in minutes (-1 UNLIMITED); None after an error."""
    from spurcli.jobrefs import strtol
    from spurio.rpc import RpcError

    job_id, end = strtol(job_str)
    task = None
    if job_str[end : end + 1] == "_":
        task, end = strtol(job_str, end + 1)
    if end != len(job_str):
        s.error(f"Invalid job ID {job_str}")
        return None
    try:
        jobs = common.call_jobs(s.ctl, {"job_refs": [str(job_id)]}).get("jobs") or []
    except RpcError as exc:
        s.error(f"Could not load state information for job {job_str}: {exc.message or exc.code}")
        return None
    jobs = [j for j in jobs if job_id in (int(j.get("job_id", 0)), int(j.get("array_job_id") or 0))]
    if not jobs:
        s.error(f"Job ID {job_str} not found")
        return None
    if len(jobs) > 1 and task is None:
        s.error("TimeLimit increment/decrement not supported for job arrays")
        return None
    pick = jobs[0]
    if task is not None:
        from spurcore.arrays import contains

        for job in jobs:
            if job.get("array_task_id") == task or (
                job.get("array_task_id") is None and contains([list(r) for r in job.get("array_pending") or ()], task)
            ):
                pick = job
                break
    limit = pick.get("time_limit")
    return -1 if limit is None else (int(limit) + 59) // 60


def _is_single_job(s: Session, job_str: str) -> bool:
    from spurcli.jobrefs import strtol
    from spurio.rpc import RpcError

    job_id, end = strtol(job_str)
    task = None
    if job_str[end : end + 1] == "_":
        task, end = strtol(job_str, end + 1)
    if end != len(job_str):
        s.error(f"Invalid job ID {job_str}")
        return False
    try:
        jobs = common.call_jobs(s.ctl, {"job_refs": [str(job_id)]}).get("jobs") or []
    except RpcError as exc:
        s.error(f"Could not load state information for job {job_str}: {exc.message or exc.code}")
        return False
    if not jobs:
        s.error(f"Job ID {job_str} not found")
        return False
    if len(jobs) > 1 and task is None:
        s.error("Job resizing not supported for job arrays")
        return False
    return True


def _job_name2id(s: Session, name: str, uid: int | None) -> str | None:
    from spurio.rpc import RpcError

    try:
        jobs = common.call_jobs(s.ctl, {}).get("jobs") or []
    except RpcError as exc:
        s.error(f"Could not load state information: {exc.message or exc.code}")
        return None
    if not jobs:
        s.error(f"JobName {name} not found")
        return None
    ids = []
    for job in jobs:
        if uid is not None and int(job.get("uid", -1)) != uid:
            continue
        if str(job.get("name") or "") != name:
            continue
        if job.get("array_job_id") and job.get("array_task_id") is not None:
            ids.append(f"{job['array_job_id']}_{job['array_task_id']}")
        else:
            ids.append(str(job["job_id"]))
    if not ids:
        if uid is None:
            s.error(f"No jobs with name '{name}'")
        else:
            s.error(f"No jobs with user ID {uid} and name '{name}'")
        return None
    return ",".join(ids)


def update(s: Session, words: list[str]) -> None:
    """``_update_it``: find the entity, then update it (jobs only; the rest is disabled)."""
    entity = None
    for word in words:
        tag = word.split("=", 1)[0].rstrip("+-")
        for name, minlen, what in (("NodeName", 3, "node"), ("PartitionName", 3, "part"), ("JobId", 3, "job"),
                                   ("JobNAME", 3, "job"), ("StepId", 4, "step"), ("ReservationName", 3, "res"),
                                   ("SlurmctldDebug", 2, "debug"), ("SuspendExcNodes", 11, "susp"),
                                   ("SuspendExcParts", 11, "susp"), ("SuspendExcStates", 11, "susp")):
            if _kw(tag, name, minlen):
                entity = entity or what
                if what == "job":
                    entity = "job"
    if entity == "job":
        update_job(s, words)
    elif entity == "node":
        update_node(s, words)
    elif entity == "part":
        update_partition(s, words)
    elif entity is None:
        s.fail('No valid entity in update command\nInput line must include "NodeName", '
               '"PartitionName", "Reservation", "JobId", or "SlurmctldDebug"')
    else:
        s.fail(f"slurm_update error: {DISABLED}")


# --------------------------------------------------------------------------- update node / partition

#: update_node.c's tags in its test order: (name, minimum prefix, what Spur's controller does
#: with it: "names", "state", "reason", or "" for the settings Spur nodes do not have).
_NODE_TAGS: tuple[tuple[str, int, str], ...] = (
    ("NodeAddr", 5, ""), ("NodeHostName", 5, ""), ("NodeName", 1, "names"), ("ActiveFeatures", 3, ""),
    ("CertToken", 1, ""), ("CpuBind", 7, ""), ("Extra", 1, ""), ("Features", 1, ""),
    ("AvailableFeatures", 3, ""), ("Gres", 1, ""), ("InstanceId", 9, ""), ("InstanceType", 9, ""),
    ("Weight", 1, "weight"), ("Comment", 2, ""), ("Reason", 1, "reason"), ("ResumeAfter", 1, "resume_after"),
    ("State", 1, "state"), ("Topology", 4, ""),
)
#: State values update_node.c names first (``MAX(val_len, n)`` prefixes), then the base states
#: of node_state_string(0..NODE_STATE_END).
_NODE_STATE_WORDS = (("NoResp", 3, "NORESP"), ("CANCEL_REBOOT", 3, "CANCEL_REBOOT"), ("DRAIN", 3, "DRAIN"),
                     ("FAIL", 3, "FAIL"), ("FUTURE", 3, "FUTURE"), ("RESUME", 3, "RESUME"),
                     ("POWER_DOWN_ASAP", 12, "POWER_DOWN_ASAP"), ("POWER_DOWN_FORCE", 12, "POWER_DOWN_FORCE"),
                     ("POWER_DOWN", 7, "POWER_DOWN"), ("POWER_UP", 7, "POWER_UP"), ("UNDRAIN", 3, "UNDRAIN"))
_BASE_STATES = ("UNKNOWN", "DOWN", "IDLE", "ALLOCATED", "ERROR", "MIXED", "FUTURE")


def _node_state_word(val: str) -> str | None:
    for word, minlen, canonical in _NODE_STATE_WORDS:
        if _kw(val, word, minlen):
            return canonical
    for word in _BASE_STATES:
        if _kw(val, word, 3):
            return word
    return None


def update_node(s: Session, words: list[str]) -> None:
    """``scontrol_update_node``: ``NodeName=LIST State=DOWN|DRAIN|FAIL|RESUME|UNDRAIN
    Reason=TEXT`` -> the ``update_node`` request ``{names, state, reason}``. Tags are read
    with Slurm's prefix rules and messages; the node settings Spur does not have (features,
    GRES, weight, addresses, ...) and a change without a state are refused as disabled."""
    names: str | None = None
    state: str | None = None
    reason: str | None = None
    resume_after = False
    unsupported = False
    count = 0
    for arg in words:
        tag, eq, val = arg.partition("=")
        if not eq:
            s.error(f"Invalid input: {arg}  Request aborted")
            return
        match = next((t for t in _NODE_TAGS if _kw(tag, t[0], t[1])), None)
        if match is None:
            s.fail(f"Update of this parameter is not supported: {arg}\nRequest aborted")
            return
        what = match[2]
        if what == "names":
            names = val
            continue
        count += 1
        if what == "weight":
            if _parse_uint(val, 32) is None:
                s.error(f"Invalid value {arg} for Weight")
                return
            unsupported = True
        elif what == "resume_after":
            if val != "-1" and _parse_uint(val, 32) is None:
                s.error(f"Invalid value {arg} for ResumeAfter")
                return
            resume_after = unsupported = True
        elif what == "reason":
            text = val[1:] if val.startswith('"') else val
            reason = text[:-1] if text.endswith('"') else text
        elif what == "state":
            state = _node_state_word(val)
            if state is None:
                s.fail(f"Invalid input: {arg}\nRequest aborted\nValid states are: NoResp DRAIN FAIL FUTURE "
                       "RESUME POWER_DOWN POWER_UP UNDRAIN\nNot all states are valid given a node's prior state")
                return
        else:
            unsupported = True
    if state in ("DOWN", "DRAIN", "FAIL") and not reason:
        s.fail("You must specify a reason when DOWNING or DRAINING a node. Request denied")
        return
    if resume_after and state not in ("DOWN", "DRAIN"):
        s.fail("You can only specify a resume time when DOWNING or DRAINING a node. Request denied")
        return
    if count == 0:
        s.fail("No changes specified")
        return
    if unsupported:
        s.fail(f"slurm_update error: {DISABLED}")
        return
    if not names:
        s.fail("slurm_update error: Invalid node name specified")
        return
    # no State=: only the reason changes (update_node sets a given reason first)
    _call_update(s, "update_node", {"names": names, "state": state or "", "reason": reason or ""})


def _call_update(s: Session, method: str, params: dict[str, Any]) -> None:
    """An update request; a refusal is ``slurm_update error: <message>`` (slurm_perror)."""
    from spurio.rpc import RpcError

    try:
        s.ctl.call(method, {"request_id": common.new_request_id(), **params})
    except RpcError as exc:
        s.fail(f"slurm_update error: {exc.message or exc.code}")


class _PartError(Exception):
    """A value scontrol_parse_part_options refuses: its error() lines."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.lines = lines


def _yes_no(arg: str, val: str, what: str) -> str:
    if val and _kw(val, "NO", 1):
        return "NO"
    if val and _kw(val, "YES", 1):
        return "YES"
    raise _PartError(f"Invalid input: {arg}", f"Acceptable {what} values are YES and NO")


def _node_count(val: str) -> int | None:
    """``get_resource_arg_range``/``verify_node_count``'s minimum: ``N``, ``N-M``, ``Nk``."""
    low = val.partition("-")[0].strip().lower()
    mult = 1
    if low[-1:] in ("k", "m"):
        mult = 1024 if low[-1] == "k" else 1024 * 1024
        low = low[:-1]
    if not low.isdigit():
        return None
    return int(low) * mult


def _part_value(arg: str, key: str, val: str) -> str:
    """The text sent for one partition key, checked and normalized as update_part.c reads it."""
    low = val.lower()
    if key in ("MaxTime", "DefaultTime"):
        mins = _time_str2mins(val)
        if mins is None or mins < -1:
            raise _PartError(f"Invalid input {arg}")
        return "UNLIMITED" if mins < 0 else str(mins)
    if key == "MaxNodes":
        if low in ("unlimited", "infinite"):
            return "UNLIMITED"
        count = _node_count(val)
        if count is None:
            raise _PartError(f"Invalid node count specification: {val}")
        return str(count)
    if key == "MinNodes":
        count = _node_count(val)
        if count is None:
            raise _PartError(f"Invalid node count specification: {val}")
        return str(count)
    if key in ("MaxCPUsPerNode", "MaxCPUsPerSocket", "OverTimeLimit"):
        if low in ("unlimited", "infinite"):
            return "UNLIMITED"
        if _parse_uint(val, 16 if key == "OverTimeLimit" else 32) is None:
            raise _PartError(f"Invalid {key} value: {val}")
        return val
    if key in ("Default", "DisableRootJobs", "ExclusiveUser", "ExclusiveTopo", "Hidden", "LLN", "RootOnly",
               "ReqResv", "PowerDownOnIdle"):
        return _yes_no(arg, val, key)
    if key == "OverSubscribe":
        head, colon, count = val.partition(":")
        for word in ("NO", "EXCLUSIVE", "YES", "FORCE"):
            if head and _kw(head, word, 1):
                if word in ("YES", "FORCE"):
                    return f"{word}:{count}" if colon and count.isdigit() else f"{word}:4"
                return word
        raise _PartError(f"Invalid input: {arg}",
                         "Acceptable OverSubscribe values are NO, EXCLUSIVE, YES:#, and FORCE:#")
    if key in ("Priority", "PriorityJobFactor", "PriorityTier"):
        if _parse_uint(val, 16) is None:
            raise _PartError(f"Invalid {key} value: {val}")
        return val
    if key == "State":
        for word in ("INACTIVE", "DOWN", "UP", "DRAIN"):
            if val and _kw(val, word, 1):
                return word
        raise _PartError(f"Invalid input: {arg}", "Acceptable State values are UP, DOWN, DRAIN and INACTIVE")
    if key in ("GraceTime",):
        if _parse_uint(val, 32) is None:
            raise _PartError(f"Invalid GraceTime value: {val}")
        return val
    if key in ("DefMemPerCPU", "DefMemPerNode", "MaxMemPerCPU", "MaxMemPerNode"):
        if _parse_uint(val, 64) is None:
            raise _PartError(f"Invalid {key} value: {val}")
        return val
    return val


#: update_part.c's tags in its test order (name, minimum prefix length).
_PART_TAGS: tuple[tuple[str, int], ...] = (
    ("PartitionName", 2), ("MaxTime", 4), ("CpuBind", 7), ("DefaultTime", 8), ("MaxCPUsPerNode", 4),
    ("MaxCPUsPerSocket", 4), ("MaxNodes", 4), ("MinNodes", 2), ("Default", 7), ("DisableRootJobs", 1),
    ("ExclusiveUser", 1), ("ExclusiveTopo", 1), ("Hidden", 1), ("LLN", 1), ("RootOnly", 3), ("ReqResv", 3),
    ("OverSubscribe", 5), ("Shared", 2), ("OverTimeLimit", 5), ("PowerDownOnIdle", 1), ("PreemptMode", 3),
    ("Priority", 3), ("PriorityJobFactor", 3), ("PriorityTier", 3), ("State", 2), ("Nodes", 1),
    ("AllowGroups", 6), ("AllowAccounts", 6), ("AllowQos", 6), ("DenyAccounts", 5), ("DenyQos", 5),
    ("AllocNodes", 6), ("Alternate", 3), ("GraceTime", 5), ("DefMemPerCPU", 10), ("DefMemPerNode", 10),
    ("MaxMemPerCPU", 10), ("MaxMemPerNode", 10), ("QoS", 3), ("JobDefaults", 4), ("Topology", 4),
    ("TresBillingWeights", 1),
)


def update_partition(s: Session, words: list[str]) -> None:
    """``scontrol_update_part``: ``PartitionName=P Key=Value ...`` -> the
    ``update_partition`` request ``{name, changes}`` with Slurm's keys and the values as
    text, checked and normalized as update_part.c reads them (times in minutes, YES/NO,
    ``Nodes+=``/``Nodes-=`` applied to the partition's current nodes). The controller
    answers for keys of mechanisms Spur does not have."""
    name: str | None = None
    changes: dict[str, str] = {}
    plus_minus: dict[str, str] = {}
    try:
        for arg in words:
            tag, eq, val = arg.partition("=")
            if not eq:
                raise _PartError(f"Invalid input: {arg}  Request aborted")
            sign = ""
            if tag[-1:] in "+-" and tag:
                sign, tag = tag[-1], tag[:-1]
            match = next((t for t in _PART_TAGS if _kw(tag, t[0], t[1])), None)
            if match is None:
                raise _PartError(f"Update of this parameter is not supported: {arg}\n", "Request aborted")
            key = "OverSubscribe" if match[0] == "Shared" else match[0]
            if key == "PartitionName":
                name = val
                continue
            if key == "Nodes" and sign:
                plus_minus["Nodes"] = sign
            if key == "PreemptMode" and val.upper().startswith("GANG"):
                raise _PartError("PreemptMode=GANG is a cluster-wide option and cannot be set at partition level")
            changes[key] = _part_value(arg, key, val)
    except _PartError as exc:
        for line in exc.lines:
            s.error(line)
        return
    if name is None:
        s.error("PartitionName must be given.")
        return
    if not changes:
        s.error("No changes specified")
        return
    if plus_minus:
        nodes = _nodes_plus_minus(s, name, plus_minus["Nodes"], changes["Nodes"])
        if nodes is None:
            return
        changes["Nodes"] = nodes
    _call_update(s, "update_partition", {"name": name, "changes": changes})


def _nodes_plus_minus(s: Session, name: str, sign: str, text: str) -> str | None:
    """``Nodes+=`` / ``Nodes-=``: the partition's node list with ``text`` added or removed."""
    from spurcore.hostlist import compress, expand

    parts = _load_partitions(s)
    if parts is None:
        return None
    part = next((p for p in parts if p["name"] == name), None)
    if part is None:
        s.fail("slurm_update error: Invalid partition name specified")
        return None
    try:
        current = list(part.get("node_list") or expand(str(part.get("nodes") or "")))
        given = expand(text)
    except ValueError:
        s.fail(f"slurm_update error: Invalid node name specified: {text}")
        return None
    if sign == "+":
        new = current + [n for n in given if n not in current]
    else:
        new = [n for n in current if n not in given]
    return compress(new) if new else ""


def reconfigure(s: Session) -> None:
    """``scontrol reconfigure``: the controller re-reads its configuration and applies it.
    With ``-v``, the lines of it Spur does not use are listed."""
    from spurio.rpc import RpcError

    try:
        answer = s.ctl.call("reconfigure", {"request_id": common.new_request_id()})
    except RpcError as exc:
        s.fail(f"slurm_reconfigure error:{exc.message or exc.code}")  # _printf_error: no space
        return
    if s.quiet == -1:
        for line in answer.get("unused") or ():
            sys.stderr.write(f"{PROG}: configuration: not used by Spur: {line}\n")


# --------------------------------------------------------------------------- other commands


def completing(s: Session) -> None:
    """``completing``: ``JobId=N EndTime=T CompletingTime=D Nodes(COMPLETING)=... ``."""
    from spurcore.hostlist import compress, expand
    from spurcore.render._common import make_time_str
    from spurcore.timefmt import fmt_duration_scontrol
    from spurio.rpc import RpcError

    try:
        result = common.call_jobs(s.ctl, {})
    except RpcError as exc:
        s.fail(f"slurm_load_jobs error: {exc.message or exc.code}")
        return
    loaded = _load_nodes(s)
    if loaded is None:
        return
    down = {str(n["name"]) for n in loaded[0] if str(n.get("state")) == "DOWN"}
    now = float(result.get("now") or 0.0)
    for job in result.get("jobs") or []:
        if job.get("state") != "COMPLETING":
            continue
        nodes = expand(str(job.get("nodes") or "")) if job.get("nodes") else []
        comp = [n for n in nodes if n not in down]
        gone = [n for n in nodes if n in down]
        end = float(job.get("end_time") or 0)
        line = (f"JobId={job['job_id']} EndTime={make_time_str(end, s.time_format, now)} "
                f"CompletingTime={fmt_duration_scontrol(max(0, now - end))} ")
        if comp:
            line += f"Nodes(COMPLETING)={compress(comp)} "
        if gone:
            line += f"Nodes(DOWN)={compress(gone)} "
        sys.stdout.write(line + "\n")


def wait_job(s: Session, word: str) -> None:
    """``wait_job <id>``: Spur's nodes need no boot, so a running job is ready at once; a
    pending one is waited for; one that ended is Slurm's ``Job allocation has been revoked``."""
    import time

    from spurio.rpc import RpcError

    job_str = _strip_prefix(word, ("jobid=", "job="))
    if not job_str.isdigit():
        s.fail(f"{INVALID_JOB} for job {job_str}")
        return
    while True:
        try:
            jobs = common.call_jobs(s.ctl, {"job_refs": [job_str]}).get("jobs") or []
        except RpcError as exc:
            s.error(f"slurm_job_node_ready error: {exc.message or exc.code}")
            return
        job = next((j for j in jobs if str(j.get("job_id")) == job_str), None)
        if job is None:
            s.error(f"slurm_job_node_ready error: {INVALID_JOB}")
            return
        state = str(job.get("base_state") or job.get("state"))
        if state in ("RUNNING", "SUSPENDED"):
            return
        if state != "PENDING":
            s.error("Job allocation has been revoked")
            return
        time.sleep(1.0)


#: Slurm error numbers scontrol's ``errnumstr`` knows best (slurm_errno.c); others fall
#: back to the C library's strerror, as slurm_strerror does.
_SLURM_ERRORS = {
    0: "No error", 2017: "Invalid job id specified", 2002: "Access/permission denied",
    2020: "Job/step already completing or completed", 2021: "Job is pending execution",
    2022: "Requested operation is presently disabled", 2050: "Invalid job array specification",
    1000: "Unexpected message received", 1007: "Zero Bytes were transmitted or received",
    2016: "Job can not be altered now, try again later", 2014: "Invalid partition name specified",
    2018: "Duplicate job id", 2038: "Invalid user id", 2046: "Invalid qos specification",
}


def errnumstr(s: Session, words: list[str], tag: str) -> None:
    if len(words) != 1:
        s.fail(f"one arguments required for keyword:{tag}")
        return
    from spurcli.jobrefs import strtol

    value, end = strtol(words[0])
    if end != len(words[0]) or not words[0]:
        s.fail(f"numeric arguments required for keyword:{tag}")
        return
    text = _SLURM_ERRORS.get(value)
    if text is None:
        text = os.strerror(value) if 0 < value < 1000 else "Unknown error"
    sys.stdout.write(text + "\n")


def _usage_text() -> str:
    return USAGE_TEXT + "\n"


def _version(s: Session) -> None:
    sys.stdout.write(common.VERSION_LINE + "\n")
    if s.quiet == -1:
        sys.stdout.write("slurm_api_version: 44, 25.11.0\n")


def _disabled(s: Session, what: str) -> None:
    """A command of a mechanism Spur does not have: ``_printf_error``'s ``<what>:<strerror>``."""
    s.fail(f"{what}:{DISABLED}")


# --------------------------------------------------------------------------- dispatch


def execute(s: Session, words: list[str], args: list[str] | None = None) -> bool:
    """``_process_command``: run one command; False when it was ``exit``/``quit``."""
    args = args if args is not None else words
    if not words:
        s.exit_code = 1
        if s.quiet == -1:
            sys.stderr.write("no input\n")
        return True
    tag, rest = words[0], words[1:]
    argc = len(words)
    if _kw(tag, "all", 2):
        s.all = True
    elif _kw(tag, "cancel_reboot", 3):
        if argc > 2:
            s.fail(f"too many arguments for keyword:{tag}")
        elif argc < 2:
            s.fail(f"missing argument for keyword:{tag}")
        else:
            _disabled(s, "scontrol_cancel_reboot error")
    elif _kw(tag, "completing", 2):
        if argc > 1:
            s.fail(f"too many arguments for keyword:{tag}")
        else:
            completing(s)
    elif _kw(tag, "cluster", 2):
        if rest:
            from spurcli.jobrefs import RefError, check_clusters

            try:
                check_clusters(rest[0], common.load_config().name, PROG)
            except RefError as exc:
                common.error(PROG, str(exc))
                raise CliError(f"{PROG}: fatal: Could not get cluster information", raw=True) from None
    elif _kw(tag, "create", 2):
        if argc < 2:
            s.fail(f"too few arguments for {tag} keyword")
        else:
            _disabled(s, "Error creating the reservation" if any(
                w.lower().startswith("res") for w in rest) else "Error creating the partition")
    elif _kw(tag, "details", 1):
        if argc > 1:
            s.fail(f"too many arguments for keyword:{tag}")
        else:
            s.details = True
    elif _kw(tag, "errnumstr", 2) or _kw(tag, "errnostr", 2):
        errnumstr(s, rest, tag)
    elif _kw(tag, "exit", 2):
        if argc > 1:
            s.fail(f"too many arguments for keyword:{tag}")
        s.exit = True
        return False
    elif _kw(tag, "getaddrs", 8):
        if argc != 2:
            s.fail(f"one argument required for keyword:{tag}")
        else:
            _getaddrs(s, rest[0])
    elif _kw(tag, "gethost", 7):
        if argc != 3:
            s.fail(f"two arguments required for keyword:{tag}")
        else:
            _disabled(s, "scontrol_gethost error")
    elif _kw(tag, "hash_file", 15) or _kw(tag, "hash", 9):
        if argc > 3:
            s.fail(f"too many arguments for keyword:{tag}")
        elif argc < 2:
            s.fail(f"missing argument for keyword:{tag}")
        else:
            _disabled(s, "hash_g_compute error")
    elif _kw(tag, "help", 2):
        if argc > 1:
            s.fail(f"too many arguments for keyword:{tag}")
        sys.stdout.write(_usage_text())
    elif _kw(tag, "hide", 2):
        s.all = False
        s.details = False
    elif _kw(tag, "oneliner", 1):
        if argc > 1:
            s.fail(f"too many arguments for keyword:{tag}")
        s.oneliner = True
    elif _kw(tag, "pidinfo", 3):
        if argc > 2:
            s.fail(f"too many arguments for keyword:{tag}")
        elif argc < 2:
            s.fail(f"missing argument for keyword:{tag}")
        else:
            _disabled(s, "slurm_pid2jobid error")
    elif _kw(tag, "ping", 3):
        if argc > 1:
            s.fail(f"too many arguments for keyword:{tag}")
        else:
            ping(s, args)
    elif _kw(tag, "power", 2):
        _disabled(s, "slurm_update error")
    elif tag.lower().startswith("\\q") or _kw(tag, "quiet", 4):
        if argc > 1:
            s.fail(f"too many arguments for keyword:{tag}")
        s.quiet = 1
    elif _kw(tag, "quit", 4):
        if argc > 1:
            s.fail(f"too many arguments for keyword:{tag}")
        s.exit = True
        return False
    elif _kw(tag, "reboot_nodes", 3):
        _disabled(s, "scontrol_reboot_nodes error")
    elif _kw(tag, "reconfigure", 3):
        if argc > 2:
            s.fail(f"too many arguments for keyword:{tag}")
        reconfigure(s)
    elif _kw(tag, "requeue", 3):
        if argc < 2:
            s.fail(f"too few arguments for keyword:{tag}")
        else:
            job_control(s, "requeue", rest)
    elif _prefix(tag, "requeuehold", 11):
        if argc < 2:
            s.fail(f"too few arguments for keyword:{tag}")
        else:
            job_control(s, "requeuehold", rest)
    elif _prefix(tag, "hold", 4) or _prefix(tag, "holdu", 5) or _prefix(tag, "uhold", 5) or _kw(tag, "release", 3):
        if argc < 2:
            s.fail(f"too few arguments for keyword:{tag}")
        else:
            low = tag.lower()
            command = "uhold" if low.startswith(("holdu", "uhold")) else "hold" if low.startswith("hold") \
                else "release"
            job_control(s, command, rest)
    elif _kw(tag, "suspend", 2) or _kw(tag, "resume", 3):
        if argc < 2:
            s.fail(f"too few arguments for keyword:{tag}")
        else:
            job_control(s, "suspend" if _kw(tag, "suspend", 2) else "resume", rest)
    elif _kw(tag, "top", 3):
        if argc < 2:
            s.fail(f"too few arguments for keyword:{tag}")
        elif argc > 2:
            s.fail(f"too many arguments for keyword:{tag}")
        else:
            s.fail(f"{DISABLED} for job {_strip_prefix(rest[0], ('jobid=', 'job='))}")
    elif _kw(tag, "token", 3):
        _disabled(s, "could not get token")
    elif _kw(tag, "wait_job", 2):
        if argc > 2:
            s.fail(f"too many arguments for keyword:{tag}")
        elif argc < 2:
            s.fail(f"too few arguments for keyword:{tag}")
        else:
            wait_job(s, rest[0])
    elif _kw(tag, "setdebugflags", 9):
        _disabled(s, "slurm_set_debugflags error")
    elif _kw(tag, "fsdampeningfactor", 3) or _kw(tag, "fairsharedampeningfactor", 3):
        if argc > 2:
            s.fail(f"too many arguments for keyword:{tag}")
        elif argc < 2:
            s.fail(f"too few arguments for keyword:{tag}")
        elif not rest[0].isdigit() or int(rest[0]) == 0:
            s.fail(f"invalid dampening factor: {rest[0]}")
        else:
            _disabled(s, "slurm_set_fs_dampeningfactor error")
    elif _kw(tag, "setdebug", 2):
        _disabled(s, "slurm_set_debug_level error")
    elif _kw(tag, "schedloglevel", 3):
        if argc > 2:
            s.fail(f"too many arguments for keyword:{tag}")
        elif argc < 2:
            s.fail(f"too few arguments for keyword:{tag}")
        elif rest[0].lower() not in ("disable", "enable") and rest[0] not in ("0", "1"):
            s.fail(f"invalid schedlog level: {rest[0]}")
        else:
            _disabled(s, "slurm_set_schedlog_level error")
    elif _kw(tag, "show", 3):
        show(s, rest, args)
    elif _kw(tag, "write", 5):
        if argc < 2:
            s.fail(f"too few arguments for keyword:{tag}")
        elif _kw(rest[0], "batch_script", 5):
            if argc > 4:
                s.fail(f"too many arguments for keyword:{tag}")
            else:
                _disabled(s, "slurm_job_batch_script error")
        elif _kw(rest[0], "config", 6):
            if argc > 3:
                s.fail(f"too many arguments for keyword:{tag}")
            else:
                _disabled(s, "slurm_load_ctl_conf error")
        else:
            s.fail(f"invalid write argument:{rest[0]}")
    elif _kw(tag, "takeover", 8):
        if argc > 2:
            s.fail(f"{tag}: too many arguments")
        else:
            _disabled(s, "slurm_takeover error")
    elif _kw(tag, "shutdown", 8):
        if argc == 2 and rest[0] not in ("slurmctld", "controller"):
            s.fail(f"invalid shutdown argument:{rest[0]}")
        elif argc > 2:
            s.fail(f"too many arguments for keyword:{tag}")
        else:
            _disabled(s, "slurm_shutdown error")
    elif _kw(tag, "update", 1):
        if argc < 2:
            s.fail(f"too few arguments for {tag} keyword")
        else:
            update(s, rest)
    elif _kw(tag, "delete", 1):
        if argc < 2:
            s.fail(f"too few arguments for {tag} keyword")
        else:
            _disabled(s, "slurm_delete error")
    elif _kw(tag, "verbose", 4):
        if argc > 1:
            s.fail(f"too many arguments for {tag} keyword")
        s.quiet = -1
    elif _kw(tag, "version", 4):
        if argc > 1:
            s.fail(f"too many arguments for {tag} keyword")
        _version(s)
    elif _kw(tag, "listpids", 1) or _kw(tag, "listjobs", 1) or _kw(tag, "liststeps", 1):
        if argc > (3 if _kw(tag, "listpids", 1) else 2):
            s.fail(f"too many arguments for keyword:{tag}")
        else:
            s.error(f"slurm_load_slurmd_status error: {DISABLED}")
    elif _kw(tag, "getent", 6):
        _disabled(s, "getent error")
    elif _kw(tag, "notify", 1):
        if argc < 3:
            s.fail(f"too few arguments for keyword:{tag}")
        else:
            s.exit_code = 1
            sys.stderr.write(f"job notify failure: {DISABLED}\n")
    elif _kw(tag, "callerid", 3):
        if argc < 5:
            s.fail(f"too few arguments for keyword:{tag}")
        elif argc > 6:
            s.fail(f"too many arguments for keyword:{tag}")
        else:
            s.exit_code = 1
            sys.stderr.write(f"callerid failure: {DISABLED}\n")
    else:
        s.fail(f"invalid keyword: {tag}")
    return True


def _getaddrs(s: Session, names: str) -> None:
    import socket

    from spurcore.hostlist import expand

    try:
        hosts = expand(names)
    except ValueError:
        s.fail(f"Invalid hostlist: {names}")
        return
    for host in hosts:
        try:
            addr = socket.getaddrinfo(host, None)[0][4][0]
        except OSError:
            s.fail(f"{host}: can't resolve")
            continue
        sys.stdout.write(f"{host}: {addr}\n")


def _split_line(line: str) -> list[str]:
    """``_get_command``: whitespace-separated words, quotes keep spaces (and stay in)."""
    words: list[str] = []
    cur = ""
    dq = sq = False
    started = False
    for ch in line:
        if ch == '"' and not sq:
            dq = not dq
            cur += ch
            started = True
            continue
        if ch == "'" and not dq:
            sq = not sq
            cur += ch
            started = True
            continue
        if ch.isspace() and not (dq or sq):
            if started:
                words.append(cur)
                cur = ""
                started = False
            continue
        cur += ch
        started = True
    if started:
        words.append(cur)
    return words


def _take_at(args: list[str]) -> tuple[list[str], list[str]]:
    """``args`` without ``--at TIME`` / ``--at=TIME``, and those words."""
    rest: list[str] = []
    at: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--at" and i + 1 < len(args):
            at += args[i : i + 2]
            i += 2
            continue
        (at if args[i].startswith("--at=") else rest).append(args[i])
        i += 1
    return rest, at


def _body(args: list[str]) -> int:
    from spurcli.jobrefs import RefError, check_clusters, fatal, suggest_completion

    # Options anywhere, as GNU getopt_long permutes them (``scontrol show job -o``), except
    # after ``setdebugflags`` (its ``-flag`` words are not options), and without Spur's
    # ``--at TIME`` extension, which show() reads from the words.
    args, at_words = _take_at(args)
    stop = next((i for i, a in enumerate(args) if a[:8].lower() == "setdebug"), len(args))
    pairs, words = common.getopt(args[:stop], OPTIONS, permute=True)
    words = [*words, *args[stop:], *at_words]
    s = Session()
    env = os.environ
    s.env = env
    if env.get("SCONTROL_ALL") is not None:
        s.all = True
    if env.get("SCONTROL_FUTURE") is not None:
        s.future = True
    clusters = env.get("SLURM_CLUSTERS")
    for key, value in pairs:
        if key == "autocomplete":
            sys.stdout.write(suggest_completion(OPTIONS, value or ""))
            return 0
        if key == "all":
            s.all = True
        elif key == "details":
            s.details = True
        elif key == "future":
            s.future = True
        elif key == "help":
            sys.stdout.write(_usage_text())
            return s.exit_code
        elif key == "hide":
            s.all = False
            s.details = False
        elif key == "clusters":
            clusters = value
        elif key == "oneliner":
            s.oneliner = True
        elif key == "quiet":
            s.quiet = 1
        elif key == "uid":
            import pwd

            text = value or ""
            try:
                s.uid = int(text) if text.isdigit() else pwd.getpwnam(text).pw_uid
            except KeyError:
                common.error(PROG, f'--uid="{text}" invalid')
                return s.exit_code
        elif key == "verbose":
            s.quiet = -1
        elif key == "version":
            _version(s)
            return s.exit_code
        elif key in ("json", "yaml"):
            s.mime = key
            s.data_parser = value
            s.details = True
    if clusters:
        try:
            check_clusters(clusters, common.load_config().name, PROG, isenv="clusters" not in dict(pairs))
        except RefError as exc:
            common.error(PROG, str(exc))
            raise fatal(PROG, "Could not get cluster information") from None
    try:
        if words:
            execute(s, words, args)
        else:
            interactive = sys.stdin.isatty()
            last: list[str] = []
            while True:
                if interactive:
                    sys.stdout.write(f"{PROG}: ")
                    sys.stdout.flush()
                line = sys.stdin.readline()
                if not line:
                    if interactive:
                        sys.stdout.write("\n")
                    break
                cmd = _split_line(line)
                if cmd == ["!!"]:
                    cmd = last
                last = cmd
                if not execute(s, cmd, cmd):
                    break
    finally:
        s.close()
    if s.exit_code:
        raise CliError(code=s.exit_code)
    return 0


#: scontrol's usage.txt (``scontrol help``, ``-h``), printed with a newline after it.
USAGE_TEXT = """\
scontrol [<OPTION>] [<COMMAND>]
    Valid <OPTION> values are:
     -a, --all      Equivalent to "all" command
     -d, --details  Equivalent to "details" command
     --federation   Report federated job information if a member of a  one
     -F, --future   Report information about nodes in "FUTURE" state.
     -h, --help     Equivalent to "help" command
     --hide         Equivalent to "hide" command
     --json[=data_parser] Produce JSON output
     --local        Report information only about jobs on the local cluster.
\t            Overrides --federation.
     -M, --cluster  Equivalent to "cluster" command. Implies --local.
                    NOTE: SlurmDBD must be up.
     -o, --oneliner Equivalent to "oneliner" command
     -Q, --quiet    Equivalent to "quiet" command
     --sibling      Report information about all sibling jobs on a
\t            federated cluster. Implies --federation option.
     -u,--uid       Update job as user "uid" instead of the invoking user.
     -v, --verbose  Equivalent to "verbose" command
     -V, --version  Equivalent to "version" command
     --yaml[=data_parser] Produce YAML output

  <keyword> may be omitted from the execute line and scontrol will execute
  in interactive mode. It will process commands as entered until explicitly
  terminated.

    Valid <COMMAND> values are:
     abort                    shutdown slurm controller immediately
\t\t\t      generating a core file.
     all                      display information about all partitions,
\t\t\t      including hidden partitions.
     cancel_reboot <nodelist> Cancel pending reboot on nodes.
     cluster                  cluster to issue commands to.  Default is
\t\t\t      current cluster.  cluster with no name will
\t\t\t      reset to default.
                              NOTE: SlurmDBD must be up.
     completing               display jobs in completing state along with
\t\t\t      their completing or down nodes
     create <SPECIFICATIONS>  create a new partition or reservation
     details                  evokes additional details from the "show"
\t\t\t      command
     delete <SPECIFICATIONS>  delete the specified partition or reservation
     errnumstr <ERRNO>        Given a Slurm error number, return a
                              descriptive string.
     exit                     terminate scontrol
     fsdampeningfactor <factor> Set the FairShareDampeningFactor in slurmctld
     help                     print this description of use.
     hold <job_list>          prevent specified job from starting. <job_list>
\t\t\t      is either a space separate list of job IDs or
\t\t\t      job names
     holdu <job_list>         place user hold on specified job (see hold)
     hide                     do not display information about hidden
\t\t\t      partitions
     listjobs\t\t      List jobs on node where scontrol is run.
     listpids <job_id<.step>> List pids associated with the given jobid, or
\t\t\t      all jobs if no id is given (This will only
\t\t\t      display the processes on the node which the
\t\t\t      scontrol is ran on, and only for those
\t\t\t      processes spawned by Slurm and their
\t\t\t      descendants)
     liststeps\t\t      List steps on node where scontrol is run.
     notify <job_id> msg      send message to specified job
     oneliner                 report output one record per line.
     pidinfo <pid>            return slurm job information for given pid.
     ping                     print status of slurmctld daemons.
     power down [ASAP|FORCE] <nodelist> [Reason=<reason>]
           up <nodelist>
                              Control power state(s) for provided nodelist.
                              For power down optionally provide ASAP or
                              FORCE and optionally set node Reason field.
     quiet                    print no messages other than error messages.
     quit                     terminate this command.
     reboot [ASAP] [nextstate=] [reason=] <ALL|nodelist>
\t\t\t      reboot the nodes when they become idle.
     reconfigure              re-read configuration files.
     release <job_list>       permit specified job to start (see hold)
     requeue <job_id>         re-queue a batch job
     requeuehold <job_id>     re-queue and hold a batch
     resume <jobid_list>      resume previously suspended job (see suspend)
     setdebug <level>         set slurmctld debug level
     setdebugflags [+|-]<flag>  add or remove slurmctld DebugFlags
     schedloglevel <level>    set scheduler log level
     show <ENTITY> [<ID>]     display state of identified entity, default
\t\t\t      is all records.
     shutdown <OPTS>          shutdown slurm daemons
\t\t\t      (the primary controller will be stopped)
     suspend <job_list>       susend specified job (see resume)
     top <job_list>           Put specified job first in queue for user
     token [lifespan=] [username=] fetch an auth token
     takeover                 ask slurm backup controller to take over
     uhold <jobid_list>       place user hold on specified job (see hold)
     update <SPECIFICATIONS>  update job, node, partition, reservation, or
\t\t\t      step
     verbose                  enable detailed logging.
     version                  display tool version number.
     wait_job <job_id>        wait until the nodes allocated to the job
\t\t\t      are booted and usable
     write batch_script <job_id> <optional filename>
                              Write the batch script for a given job to a
                              local file. Default is slurm-<job_id>.sh if
                              the (optional) filename is not given.
     write config <optional filename>
                              Write the current configuration to a file
                              with the naming convention of
                              slurm.conf.<datetime> in the same directory
                              as the original slurm.conf.
                              If a filename is given that file location
                              with a .<datetime> suffix is created.
     !!                       Repeat the last command entered.

  <ENTITY> may be "aliases", "assoc_mgr", "bbstat", "burstBuffer", "config",
       "daemons", "dwstat", "federation", "hostlist", "hostlistsorted",
       "hostnames", "job", "licenses", "node", "partition", "reservation",
       "slurmd", "step", "topoconf", or "topology"

  <ID> may be a configuration parameter name, job id, node name, partition
       name, reservation name, job step id, license name or hostlist or
       pathname to a list of host names.

  <HOSTLIST> may either be a comma separated list of host names or the
       absolute pathname of a file (with leading '/' containing host names
       either separated by commas or new-lines

  <LEVEL> may be an integer value like SlurmctldDebug in the slurm.conf
       file or the name of the most detailed errors to report (e.g. "info",
       "verbose", "debug", "debug2", etc.).

  <SLEVEL> may be an integer value like SlurmSchedLogLevel in the
       slurm.conf file or "enable" or "disable".

  <OPTS> may be "slurmctld" to shutdown just the slurmctld daemon,
       otherwise all slurm daemons are shutdown

  Node names may be specified using simple range expressions,
  (e.g. "lx[10-20]" corresponds to lx10, lx11, lx12, ...)
  The job step id is the job id followed by a period and the step id.
  Steps can be filtered by providing containerid=<id>.

  <SPECIFICATIONS> are specified in the same format as the configuration
  file. You may wish to use the "show" keyword then use its output as
  input for the update keyword, editing as needed.

  All commands and options are case-insensitive, although node names and
  partition names tests are case-sensitive (node names "LX" and "lx"
  are distinct).
"""


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
