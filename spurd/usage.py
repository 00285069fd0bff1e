"""Usage sampling (Slurm's jobacct_gather): each running task's process tree from /proc every
``usage_interval`` seconds and on every ``sstat``; at the end, exact CPU times and peak RSS
from ``wait4`` (and the cgroup's memory peak for a node with a single task). The record is
``spurcore.usage``'s.
"""

from __future__ import annotations

import os
from typing import Any

from spurd import procs


def _proc_usage(pid: int) -> tuple[int, int, int, float, float] | None:
    """(rss bytes, vm bytes, major faults, user s, system s) of one process from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    try:
        majflt = int(fields[9])
        utime, stime = int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK
        vsize, rss_pages = int(fields[20]), int(fields[21])
    except (IndexError, ValueError):
        return None
    return rss_pages * _PAGE, vsize, majflt, utime, stime


_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class Usage:
    """Usage sampling (a part of :class:`spurd.supervisor.Supervisor`)."""

    def _sample(self) -> None:
        """One poll of every running task's process tree (/proc): RSS, VM size, major
        faults and CPU time; peaks and running averages per task."""
        tree: dict[int, set[int]] | None = None
        for t in self.tasks:
            if t.status is not None or not t.pid:
                continue
            if tree is None:
                tree = {}
            pids = {t.pid} | procs.descendants(t.pid)
            rss = vm = pages = 0
            user = system = 0.0
            for pid in pids:
                stat = _proc_usage(pid)
                if stat is None:
                    continue
                rss += stat[0]
                vm += stat[1]
                pages += stat[2]
                user += stat[3]
                system += stat[4]
            t.peak_rss, t.peak_vm, t.peak_pages = max(t.peak_rss, rss), max(t.peak_vm, vm), max(t.peak_pages, pages)
            t.sum_rss += rss
            t.sum_vm += vm
            t.sum_pages += pages
            t.samples += 1
            t.cpu = (max(t.cpu[0], user), max(t.cpu[1], system))

    def _usage(self, final: bool = False) -> dict[str, Any]:
        """This node's usage record (``spurcore.usage``): exact CPU times and peaks from
        wait4 for ended tasks, the samples for running ones; the cgroup's memory peak
        stands for a node with a single task."""
        if not final:
            self._sample()
        rec: dict[str, Any] = {"ntasks": len(self.tasks)}
        user = system = 0.0
        peaks: dict[str, tuple[int, int]] = {}
        sums = {"rss": 0.0, "vmsize": 0.0, "pages": 0.0}
        min_cpu: tuple[float, int] | None = None
        cg_peak = self.cgroup.memory_peak() if self.cgroup is not None and len(self.tasks) == 1 else None
        sampled = any(t.samples for t in self.tasks)
        for t in self.tasks:
            u, s = t.cpu
            rss, vm, pages = t.peak_rss, t.peak_vm, t.peak_pages
            if t.rusage is not None:
                u, s = max(u, t.rusage.ru_utime), max(s, t.rusage.ru_stime)
                rss = max(rss, int(t.rusage.ru_maxrss) * 1024)
                pages = max(pages, int(t.rusage.ru_majflt))
            if cg_peak:
                rss = max(rss, cg_peak)
            user += u
            system += s
            n = max(t.samples, 1)
            sums["rss"] += t.sum_rss / n if t.samples else rss
            sums["vmsize"] += t.sum_vm / n if t.samples else vm
            sums["pages"] += t.sum_pages / n if t.samples else pages
            for key, value in (("max_rss", rss), ("max_vmsize", vm), ("max_pages", pages)):
                if key == "max_vmsize" and not sampled:
                    continue  # wait4 has no VM size: unknown unless /proc was sampled
                if key not in peaks or value > peaks[key][0]:
                    peaks[key] = (value, t.gid)
            if min_cpu is None or u + s < min_cpu[0]:
                min_cpu = (u + s, t.gid)
        rec["user_cpu"], rec["sys_cpu"] = round(user, 6), round(system, 6)
        for key, (value, gid) in peaks.items():
            rec[key], rec[f"{key}_task"] = int(value), gid
        for key, value in sums.items():
            if key != "vmsize" or sampled:
                rec[f"ave_{key}_sum"] = float(value)
        if min_cpu is not None:
            rec["min_cpu"], rec["min_cpu_task"] = round(min_cpu[0], 6), min_cpu[1]
        return rec
