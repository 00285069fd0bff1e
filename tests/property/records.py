"""Hypothesis strategies for job *records* (``spurcore.views.job_info`` dicts) as the query
tools receive them: every field with the type the controller sends, values drawn from the
cases the renderers tell apart (unset and special times, arrays, GRES, flags, odd text),
and a few records that lack fields (older histories) or carry the ones scontrol adds."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

T0 = 1746100800.0  # 2025-05-01T12:00:00Z

STATES = ("PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED", "COMPLETED", "CANCELLED", "FAILED",
          "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "DEADLINE", "PREEMPTED", "BOOT_FAIL", "REQUEUED")
BASE_FOR_FLAG = {"COMPLETING": ("RUNNING", "COMPLETED", "CANCELLED", "FAILED"), "STOPPED": ("RUNNING",)}

#: epoch values: unset, the special ones, fractions, the same second twice, near now, far
times = st.sampled_from([0, 0.0, 0.25, 1.0, 0xFFFFFFFF, float(0xFFFFFFFF), 4294967295.5, T0, T0 + 0.4,
                         T0 + 0.9, T0 - 86400 * 1.5, T0 + 86400 * 3, T0 - 400 * 86400, T0 + 59.5, -5.5]) | \
    st.floats(min_value=T0 - 3e7, max_value=T0 + 3e7, allow_nan=False)
durations = st.sampled_from([0, 0.0, 1, 59, 60, 3599, 3600, 86399, 86400, 90061, 365 * 86400, 365 * 86400 + 1,
                             -1, 2.5]) | st.integers(0, 10**7)
limits = st.none() | st.sampled_from([float("inf"), 60, 3600, 86400 * 2 + 5]) | st.integers(0, 10**7)
words = st.sampled_from(["", "debug", "gpu,debug", "alice", "root", "job.sh", "a b\tc", "x" * 40, "(null)",
                         "n[1-3]", "node01", "é", " trailing ", "%s{}"])
reasons = st.sampled_from(["None", "", "Priority", "Resources", "JobHeldUser", "JobHeldAdmin",
                           "Dependency", "DependencyNeverSatisfied", "BeginTime", "RaisedSignal:11(Segmentation fault)",
                           "NonZeroExitCode", "PartitionTimeLimit", "a\nb"])
tres = st.sampled_from(["", "cpu=1,node=1,billing=1", "cpu=4,mem=2000M,node=1,billing=4",
                        "cpu=8,mem=4096M,node=2,billing=8,gres/gpu=2", "cpu=2,mem=1.5G,node=1"])
exit_codes = st.none() | st.sampled_from([0, 256, 3 << 8, 9, 11, 15, 0x7F, 253, 255 << 8])
gres_fields = st.fixed_dictionaries({
    "gres": st.sampled_from(["", "gpu:1", "gpu:a100:2,mps:100", "none", "gres/gpu:1"]),
    "gpus": st.sampled_from(["", "2", "a100:2"]),
    "gpus_per_node": st.sampled_from(["", "1", "v100:1,a100:2"]),
    "gpus_per_task": st.sampled_from(["", "1", "a100:1"]),
    "cpus_per_gpu": st.sampled_from([0, 4]),
    "mem_per_gpu": st.sampled_from([0, 2048]),
})


@st.composite
def job_records(draw: Any) -> dict[str, Any]:
    """One job record; fields drawn independently (renderers must not assume coherence)."""
    state = draw(st.sampled_from(STATES))
    base = draw(st.sampled_from(BASE_FOR_FLAG.get(state, (state,))))
    array_job_id = draw(st.sampled_from([0, 0, 0, 7, 100]))
    array_task_id = draw(st.none() | st.integers(0, 20)) if array_job_id else None
    pending_ranges = draw(st.sampled_from([[], [[1, 5, 1]], [[0, 99, 2]], [[3, 3, 1], [7, 40, 1]],
                                           [[0, 10**4, 1]]]))
    nodes = draw(st.sampled_from(["", "", "node01", "node[01-02]", "n1,n3"]))
    info: dict[str, Any] = {
        "job_id": draw(st.integers(1, 10**6)),
        "name": draw(words),
        "user": draw(st.sampled_from(["alice", "root", ""])),
        "uid": draw(st.sampled_from([0, 1000, 4242])),
        "gid": draw(st.sampled_from([0, 1000, 4242])),
        "state": state,
        "base_state": base,
        "reason": draw(reasons),
        "exit_code": draw(exit_codes),
        "derived_ec": draw(exit_codes),
        "priority": draw(st.sampled_from([0, 1, 4294901760, 12345])),
        "priority_by_partition": draw(st.sampled_from([{}, {}, {"gpu": 5, "debug": 9}])),
        "hold": draw(st.sampled_from([0, 1, 2])),
        "submit_time": draw(times),
        "eligible_time": draw(times),
        "start_time": draw(times),
        "sched_nodes": draw(st.sampled_from(["", "node01", "node[01-02]"])),
        "end_time": draw(times),
        "suspend_time": draw(times),
        "run_time": draw(durations),
        "time_limit": draw(limits),
        "partition": draw(words),
        "account": draw(words),
        "nodes": nodes,
        "node_count": draw(st.integers(0, 3)),
        "num_cpus": draw(st.integers(0, 64)),
        "num_tasks": draw(st.integers(1, 8)),
        "cpus_per_task": draw(st.integers(1, 4)),
        "mem_mb": draw(st.sampled_from([0, 100, 2048, 10**6])),
        "dependency": draw(st.sampled_from(["(null)", "afterok:1(unfulfilled)", ""])),
        "batch_flag": draw(st.sampled_from([0, 1])),
        "batch_host": draw(st.sampled_from(["", "node01"])),
        "restarts": draw(st.sampled_from([0, 1, 3])),
        "requid": -1,
        "failed_node": draw(st.sampled_from(["", "node02"])),
        "command": draw(st.sampled_from(["(null)", "/home/alice/job.sh", ""])),
        "submit_line": draw(words),
        "work_dir": draw(st.sampled_from(["/tmp", "/home/alice", ""])),
        "stdout": draw(st.sampled_from(["", "/tmp/slurm-1.out"])),
        "stderr": draw(st.sampled_from(["", "/tmp/slurm-1.err"])),
        "stdin": draw(st.sampled_from(["", "/dev/null"])),
        "alloc_node": draw(st.sampled_from(["", "login1"])),
        "alloc_sid": draw(st.sampled_from([0, 4242])),
        "steps": [],
        "array_job_id": array_job_id,
        "array_task_id": array_task_id,
        "array_pending": pending_ranges if array_job_id and array_task_id is None else [],
        "array_max_tasks": draw(st.sampled_from([0, 0, 2, 10])),
        "array_spec": "",
        "ntasks_per_node": draw(st.sampled_from([0, 2])),
        "mem_per_cpu": draw(st.sampled_from([0, 0, 500])),
        "exclusive": draw(st.sampled_from(["", "exclusive", "user", "mcs"])),
        "req_nodes": draw(st.sampled_from(["", "node01"])),
        "exc_nodes": draw(st.sampled_from(["", "node02"])),
        "deadline": draw(times),
        "requeue": draw(st.sampled_from([-1, 0, 1])),
        "kill_on_invalid_dep": draw(st.sampled_from([-1, 0, 1])),
        "comment": draw(words),
        "wckey": draw(st.sampled_from(["", "wk"])),
        "nice": draw(st.sampled_from([0, 10, -5])),
        "qos": draw(st.sampled_from(["", "normal", "high"])),
        "constraint": draw(st.sampled_from(["", "a100&ib"])),
        "time_min": draw(st.none() | st.sampled_from([0, 30, 61, 3600])),
        "mail_type": draw(st.sampled_from(["", "NONE", "BEGIN,END", "ALL", "bogus"])),
        "mail_user": draw(st.sampled_from(["", "bob@x"])),
        "options": draw(st.sampled_from([{}, {"oversubscribe": True}])),
        "oversubscribe": draw(st.booleans()),
        "req_tres": draw(tres),
        "alloc_tres": draw(tres),
        "tres_per_node": "",
        "gres_detail": draw(st.sampled_from([[], ["gpu:a100:1(IDX:0)"], ["gpu:2(IDX:0-1)", "gpu:0(IDX:N/A)"]])),
        "job_gpus": "",
    }
    info.update(draw(gres_fields))
    extra = draw(st.sampled_from(["none", "none", "group", "accrue", "max_nodes", "history"]))
    if extra == "group":
        info["group"] = draw(st.sampled_from(["alice", "", "wheel"]))
    elif extra == "accrue":
        info["accrue_time"] = draw(times)
        info["last_sched_eval"] = draw(times)
    elif extra == "max_nodes":
        info["max_nodes"] = draw(st.integers(0, 4))
    elif extra == "history":  # a record of an older history: no TRES strings, counts only
        for key in ("req_tres", "alloc_tres", "priority_by_partition", "sched_nodes"):
            info.pop(key, None)
        if draw(st.booleans()):
            info["alloc_mem_mb"] = draw(st.sampled_from([0, 512]))
    return info


def plain_record(**fields: Any) -> dict[str, Any]:
    """A pending batch job's record with every field ``job_records`` draws (``fields`` set
    over them): for the tests that need one fixed record."""
    info: dict[str, Any] = {
        "job_id": 1, "name": "job.sh", "user": "alice", "uid": 1000, "gid": 1000, "state": "PENDING",
        "base_state": "PENDING", "reason": "Priority", "exit_code": None, "derived_ec": None, "priority": 12345,
        "priority_by_partition": {}, "hold": 0, "submit_time": T0, "eligible_time": T0, "start_time": 0,
        "sched_nodes": "", "end_time": 0, "suspend_time": 0, "run_time": 0, "time_limit": 3600,
        "partition": "debug", "account": "", "nodes": "", "node_count": 1, "num_cpus": 1, "num_tasks": 1,
        "cpus_per_task": 1, "mem_mb": 100, "dependency": "(null)", "batch_flag": 1, "batch_host": "",
        "restarts": 0, "requid": -1, "failed_node": "", "command": "/home/alice/job.sh",
        "submit_line": "sbatch job.sh", "work_dir": "/home/alice", "stdout": "/tmp/slurm-1.out",
        "stderr": "/tmp/slurm-1.out", "stdin": "/dev/null", "alloc_node": "login1", "alloc_sid": 4242,
        "steps": [], "array_job_id": 0, "array_task_id": None, "array_pending": [], "array_max_tasks": 0,
        "array_spec": "", "ntasks_per_node": 0, "mem_per_cpu": 0, "exclusive": "", "req_nodes": "",
        "exc_nodes": "", "deadline": 0, "requeue": -1, "kill_on_invalid_dep": -1, "comment": "", "wckey": "",
        "nice": 0, "qos": "", "constraint": "", "time_min": None, "mail_type": "", "mail_user": "",
        "options": {}, "oversubscribe": False, "req_tres": "cpu=1,node=1,billing=1", "alloc_tres": "", "tres_per_node": "",
        "gres_detail": [], "job_gpus": "", "gres": "", "gpus": "", "gpus_per_node": "", "gpus_per_task": "",
        "cpus_per_gpu": 0, "mem_per_gpu": 0,
    }
    info.update(fields)
    return info


def job_record_lists(max_size: int = 6) -> Any:
    """Several records rendered together (renderers keep per-rendering caches: a record
    must print the same whatever came before it), sometimes sharing values."""
    return st.lists(job_records(), min_size=1, max_size=max_size).flatmap(
        lambda recs: st.lists(st.sampled_from(recs), min_size=len(recs), max_size=2 * len(recs)))
