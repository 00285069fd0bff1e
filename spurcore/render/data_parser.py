"""``--json``/``--yaml`` documents as Slurm's data_parser v0.0.44 writes them: the ``meta``
object and PROCESS_EXIT_CODE every tool's document has, and squeue's JOB_INFO (``to_json``).

Split from spurcore.render.squeue, which every ``squeue`` loads: this code runs only for
--json/--yaml, so only they load it. spurcore.render.squeue still answers for ``to_json``,
``json_meta``, ``exit_code_json`` and ``job_state_list``.

Pure module: job info dicts (``spurcore.views.job_info``) and an explicit ``now`` in, plain
dicts out (``json.dumps`` them). Source: src/plugins/data_parser/v0.0.44/parsers.c.
"""

from __future__ import annotations

from spurcore.arrays import task_str
from spurcore.exitcodes import decode_wait_status
from spurcore.render._common import (
    FLAG_STATES,
    accrue_time,
    base_state,
    eligible_time,
    gres_detail_used,
    job_tres,
    job_tres_per,
    last_sched_eval,
    share_string,
)
from spurcore.render.squeue import View, _pending_tasks, _reason, job_time_used
from spurcore.signals import sig_fullname

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["to_json", "json_meta", "exit_code_json", "job_state_list"]

def _num_obj(value: float | int | None, *, infinite: bool = False) -> dict[str, Any]:
    """``*_NO_VAL`` numbers: ``{"set", "infinite", "number"}``."""
    if infinite:
        return {"set": False, "infinite": True, "number": 0}
    if value is None:
        return {"set": False, "infinite": False, "number": 0}
    return {"set": True, "infinite": False, "number": int(value)}


def exit_code_json(raw: int | None) -> dict[str, Any]:
    """data_parser's PROCESS_EXIT_CODE object for a raw wait status."""
    if raw is None:
        return {
            "status": ["PENDING"],
            "return_code": _num_obj(None),
            "signal": {"id": _num_obj(None), "name": ""},
        }
    code, sig = decode_wait_status(raw)
    if sig:
        status = ["SIGNALED"] + (["CORE_DUMPED"] if raw & 0x80 else [])
        return {
            "status": status,
            "return_code": _num_obj(None),
            "signal": {"id": _num_obj(sig), "name": sig_fullname(sig)},
        }
    return {
        "status": ["SUCCESS" if code == 0 else "ERROR"],
        "return_code": _num_obj(code),
        "signal": {"id": _num_obj(None), "name": ""},
    }


def json_meta(command: Iterable[str], plugin: str = "openapi/slurmctld", *, cluster: str = "spur",
              user: str = "", group: str = "", plugin_name: str = "",
              accounting_storage: str = "") -> dict[str, Any]:
    """The ``meta`` object of a data_parser document (v0.0.44)."""
    return {
        "plugin": {
            "type": plugin,
            "name": plugin_name,
            "data_parser": "data_parser/v0.0.44",
            "accounting_storage": accounting_storage,
        },
        "client": {"source": "", "user": user, "group": group},
        "command": list(command),
        "slurm": {
            "version": {"major": "25", "micro": "0", "minor": "11"},
            "release": "25.11.0",
            "cluster": cluster,
        },
    }


def job_state_list(info: dict[str, Any]) -> list[str]:
    """``job_state_string_complete`` as a list: ``["CANCELLED", "COMPLETING"]``."""
    base = base_state(info)
    shown = str(info.get("state") or "")
    return [base, shown] if shown in FLAG_STATES and shown != base else [base]


_MAIL_FLAGS = ("BEGIN", "END", "FAIL", "REQUEUE", "TIME=100%", "TIME=90%", "TIME=80%", "TIME=50%",
               "STAGE_OUT", "ARRAY_TASKS", "INVALID_DEPENDENCY")


def _mail_list(text: str) -> list[str]:
    """JOB_MAIL_FLAGS: ``--mail-type`` words as data_parser names them."""
    out: list[str] = []
    for word in str(text or "").upper().split(","):
        word = word.strip()
        if not word or word == "NONE":
            continue
        names = {"ALL": ["BEGIN", "END", "FAIL", "REQUEUE", "STAGE_OUT"], "TIME_LIMIT": ["TIME=100%"],
                 "TIME_LIMIT_90": ["TIME=90%"], "TIME_LIMIT_80": ["TIME=80%"], "TIME_LIMIT_50": ["TIME=50%"]}
        for name in names.get(word, [word]):
            if name not in out:
                out.append(name)
    return out


def _str(value: Any) -> str:
    return "" if value in (None, "(null)") else str(value)


def _job_json(info: dict[str, Any], v: View) -> dict[str, Any]:
    limit = info.get("time_limit")
    array_id = int(info.get("array_job_id") or 0)
    task = info.get("array_task_id") if array_id else None
    pending = _pending_tasks(info)
    throttle = int(info.get("array_max_tasks") or 0)
    tres_alloc, tres_req = job_tres(info)
    mem_per_cpu = int(info.get("mem_per_cpu") or 0)
    mem_node = int(info.get("mem_mb") or 0)
    time_min = info.get("time_min")
    state = base_state(info)
    flags: list[str] = []
    if info.get("kill_on_invalid_dep") == 1:
        flags.append("KILL_INVALID_DEPENDENCY")
    elif info.get("kill_on_invalid_dep") == 0:
        flags.append("NO_KILL_INVALID_DEPENDENCY")
    requeue = info.get("requeue")
    share = share_string(info)
    per = job_tres_per(info)
    return {
        "account": _str(info.get("account")),
        "accrue_time": _num_obj(accrue_time(info, v.now)),
        "admin_comment": "",
        "allocating_node": _str(info.get("alloc_node")),
        "array_job_id": _num_obj(array_id),
        "array_task_id": _num_obj(task),
        "array_max_tasks": _num_obj(throttle),
        "array_task_string": task_str(pending, throttle, 64 if v.bitstr_len is None else v.bitstr_len)
        if pending else "",
        "association_id": 0,
        "batch_features": "",
        "batch_flag": bool(info.get("batch_flag")),
        "batch_host": _str(info.get("batch_host")),
        "flags": flags,
        "burst_buffer": "",
        "burst_buffer_state": "",
        "cluster": v.cluster,
        "cluster_features": "",
        "command": _str(info.get("command")),
        "comment": _str(info.get("comment")),
        "container": "",
        "container_id": "",
        "contiguous": False,
        "core_spec": 0,
        "thread_spec": 0,
        "cores_per_socket": _num_obj(None),
        "billable_tres": {"set": True, "infinite": False, "number": float(info.get("num_cpus") or 0)},
        "cpus_per_task": _num_obj(info.get("cpus_per_task") or 1),
        "cpu_frequency_minimum": _num_obj(None),
        "cpu_frequency_maximum": _num_obj(None),
        "cpu_frequency_governor": _num_obj(None),
        "cpus_per_tres": per["cpus_per_tres"] or "",
        "cron": "",
        "deadline": _num_obj(info.get("deadline") or 0),
        "delay_boot": _num_obj(0),
        "dependency": _str(info.get("dependency")),
        "derived_exit_code": exit_code_json(info.get("derived_ec")),
        "eligible_time": _num_obj(eligible_time(info)),
        "end_time": _num_obj(info.get("end_time") or 0),
        "excluded_nodes": _str(info.get("exc_nodes")),
        "exit_code": exit_code_json(info.get("exit_code")),
        "extra": "",
        "failed_node": _str(info.get("failed_node")),
        "features": _str(info.get("constraint")),
        "federation_origin": "",
        "federation_siblings_active": "",
        "federation_siblings_viable": "",
        "gres_detail": [gres_detail_used(str(d or "")) for d in info.get("gres_detail") or ()],
        "group_id": int(info.get("gid", 0) or 0),
        "group_name": str(info.get("group") or info.get("gid", 0)),
        "het_job_id": _num_obj(0),
        "het_job_id_set": "",
        "het_job_offset": _num_obj(0),
        "job_id": int(info["job_id"]),
        "job_resources": _job_resources(info),
        "job_size_str": [],
        "job_state": job_state_list(info),
        "last_sched_evaluation": _num_obj(last_sched_eval(info)),
        "licenses": "",
        "licenses_allocated": "",
        "mail_type": _mail_list(info.get("mail_type") or ""),
        "mail_user": _str(info.get("mail_user")) or _str(info.get("user")),
        "max_cpus": _num_obj(0),
        "max_nodes": _num_obj(0),
        "mcs_label": "",
        "memory_per_tres": per["mem_per_tres"] or "",
        "name": _str(info.get("name")),
        "network": "",
        "nodes": _str(info.get("nodes")),
        "nice": int(info.get("nice") or 0),
        "tasks_per_core": _num_obj(None),
        "tasks_per_tres": _num_obj(None),
        "tasks_per_node": _num_obj(info.get("ntasks_per_node") or None),
        "tasks_per_socket": _num_obj(None),
        "tasks_per_board": _num_obj(None),
        "cpus": _num_obj(info.get("num_cpus") or 0),
        "node_count": _num_obj(info.get("node_count") or 0),
        "tasks": _num_obj(info.get("num_tasks") or 1),
        "partition": _str(info.get("partition")),
        "prefer": "",
        "memory_per_cpu": _num_obj(mem_per_cpu if mem_per_cpu else None),
        "memory_per_node": _num_obj(None if mem_per_cpu else mem_node),
        "minimum_cpus_per_node": _num_obj(info.get("cpus_per_task") or 1),
        "minimum_tmp_disk_per_node": _num_obj(0),
        "preempt_time": _num_obj(0),
        "preemptable_time": _num_obj(0),
        "pre_sus_time": _num_obj(job_time_used(info) if state == "SUSPENDED" else 0),
        "hold": not int(info.get("priority") or 0),
        "priority": _num_obj(info.get("priority") or 0),
        "priority_by_partition": [],
        "profile": ["NOT_SET"],
        "qos": _str(info.get("qos")) or "normal",
        "reboot": False,
        "required_nodes": _str(info.get("req_nodes")),
        "required_switches": 0,
        "requeue": bool(1 if requeue is None or int(requeue) < 0 else int(requeue)),
        "resize_time": _num_obj(0),
        "restart_cnt": int(info.get("restarts") or 0),
        "resv_name": "",
        "scheduled_nodes": _str(info.get("sched_nodes")),
        "segment_size": 0,
        "selinux_context": "",
        "shared": [] if share == "OK" else [{"NO": "none", "YES": "oversubscribe", "USER": "user",
                                              "MCS": "mcs", "TOPO": "topo"}[share]],
        "step_id": {"sluid": "", "job_id": _num_obj(info["job_id"]), "step_het_component": _num_obj(None),
                    "step_id": "TBD"},
        "sockets_per_board": 0,
        "sockets_per_node": _num_obj(None),
        "start_time": _num_obj(info.get("start_time") or 0),
        "state_description": _str(info.get("_reason_desc")),
        "state_reason": _reason(info),
        "standard_input": _str(info.get("stdin")),
        "standard_output": _str(info.get("stdout")),
        "standard_error": _str(info.get("stderr")),
        "stdin_expanded": _str(info.get("stdin")),
        "stdout_expanded": _str(info.get("stdout")),
        "stderr_expanded": _str(info.get("stderr")),
        "submit_time": _num_obj(info.get("submit_time") or 0),
        "submit_line": _str(info.get("submit_line")),
        "suspend_time": _num_obj(info.get("suspend_time") or 0),
        "system_comment": "",
        "time_limit": _num_obj(None if limit is None else int(limit) // 60, infinite=limit is None),
        "time_minimum": _num_obj(int(time_min) // 60 if time_min else 0),
        "threads_per_core": _num_obj(None),
        "tres_bind": "",
        "tres_freq": "",
        "tres_per_job": per["tres_per_job"] or "",
        "tres_per_node": per["tres_per_node"] or "",
        "tres_per_socket": "",
        "tres_per_task": per["tres_per_task"] or "",
        "tres_req_str": tres_req,
        "tres_alloc_str": tres_alloc,
        "user_id": int(info.get("uid", 0) or 0),
        "user_name": _str(info.get("user")) or str(info.get("uid", 0)),
        "maximum_switch_wait_time": 0,
        "wckey": _str(info.get("wckey")),
        "current_working_directory": _str(info.get("work_dir")),
    }


def _job_resources(info: dict[str, Any]) -> dict[str, Any]:
    """JOB_RES_PTR for a job that holds nodes ({} otherwise)."""
    from spurcore.hostlist import expand

    nodes = str(info.get("nodes") or "")
    if not nodes:
        return {}
    names = expand(nodes)
    cpus = int(info.get("num_cpus") or 0)
    per_node = cpus // len(names) if names else 0
    mem = int(info.get("mem_mb") or 0)
    return {
        "select_type": ["CPU"],
        "nodes": {
            "count": len(names),
            "select_type": ["AVAILABLE"],
            "list": nodes,
            "whole": str(info.get("exclusive") or "") == "exclusive",
            "allocation": [
                {
                    "index": i,
                    "name": name,
                    "cpus": {"count": per_node, "used": 0},
                    "memory": {"used": 0, "allocated": mem},
                    "sockets": [],
                }
                for i, name in enumerate(names)
            ],
        },
        "cpus": cpus,
        "threads_per_core": _num_obj(1),
    }


def to_json(
    infos: Iterable[dict[str, Any]], *, now: float = 0.0, command: Iterable[str] = ("squeue", "--json"),
    view: View | None = None, meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``squeue --json`` as a plain dict (``json.dumps`` it): ``jobs`` (one object per job
    record, as the controller keeps them: a pending array record is one object with its
    ``array_task_string``), ``last_backfill``, ``last_update``, ``meta``, ``errors``,
    ``warnings``."""
    if view is None:
        view = View(now)
    return {
        "jobs": [_job_json(i, view) for i in infos],
        "last_backfill": _num_obj(0),
        "last_update": _num_obj(view.now),
        "meta": meta if meta is not None else json_meta(command, cluster=view.cluster or "spur"),
        "errors": [],
        "warnings": [],
    }
