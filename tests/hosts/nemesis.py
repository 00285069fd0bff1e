"""Faults, a monitor, and a scenario runner on top of ``HostCluster``.

Every fault is logged with its CLOCK_MONOTONIC time (the same clock the workload's history
uses), and every fault has its undo: ``heal`` undoes them all (links, paused daemons,
clock offsets, filled disks), so a scenario's checks always run on a healed cluster.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from tests.hosts import history
from tests.hosts.cluster import PY, HostCluster, wait_for

WORKLOAD = str(Path(__file__).with_name("workload.py"))
REPO = str(Path(__file__).resolve().parents[2])


class Monitor:
    """Polls every replica's ping from ``mon`` (never partitioned): roles and terms over time."""

    def __init__(self, cluster: HostCluster, period: float = 0.1) -> None:
        self.cluster = cluster
        self.period = period
        self.samples: list[tuple[float, int, dict[str, Any] | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for c in self.cluster.controllers:
                info = self.cluster.ping(c.rid, timeout=0.3)
                self.samples.append((time.monotonic(), c.rid, info))
            self._stop.wait(self.period)

    def leaders(self) -> list[tuple[float, int, int]]:
        """(time, term, replica) each time a new (term, leader) pair was first seen ready."""
        seen: set[tuple[int, int]] = set()
        out = []
        for t, rid, info in self.samples:
            if info and info.get("ready"):
                key = (int(info["term"]), rid)
                if key not in seen:
                    seen.add(key)
                    out.append((t, key[0], rid))
        return out

    def terms(self) -> tuple[int, int]:
        terms = [int(info["term"]) for _, _, info in self.samples if info]
        return (min(terms), max(terms)) if terms else (0, 0)

    def leader_at(self, t: float) -> int | None:
        best = None
        for ts, rid, info in self.samples:
            if ts > t:
                break
            if info and info.get("ready"):
                best = rid
        return best

    def step_down_after(self, rid: int, t: float) -> float | None:
        """Seconds from ``t`` until replica ``rid`` stopped reporting itself leader."""
        for ts, r, info in self.samples:
            if r == rid and ts >= t and info is not None and not info.get("leader"):
                return ts - t
        return None


class Scenario:
    """One run: cluster faults, workloads, a monitor, and the final checks."""

    def __init__(self, cluster: HostCluster, name: str, out_dir: Path) -> None:
        self.cluster = cluster
        self.name = name
        self.out = out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        for old in [*self.out.glob("history-*.jsonl"), self.out / "report.json"]:
            old.unlink(missing_ok=True)  # a kept directory from an earlier run
        self.events: list[tuple[float, str]] = []
        self.minority: list[history.Window] = []
        self.workloads: list[tuple[str, Any]] = []
        self.monitor = Monitor(cluster)
        self.t0 = time.monotonic()
        self._paused: set[str] = set()
        self._fillers: list[Path] = []
        self._clock: set[str] = set()
        self._flappers: list[tuple[threading.Thread, threading.Event]] = []

    def note(self, text: str) -> float:
        t = time.monotonic()
        self.events.append((t, text))
        print(f"  [{t - self.t0:7.2f}] {text}", flush=True)
        return t

    # --- workloads -----------------------------------------------------------------------

    def workload(self, host: str = "login", *, duration: float = 20.0, clients: int = 2, rate: float = 3.0,
                 seed: int = 1, mix: str = "6,1,3", retry_for: float = 10.0, timeout: float = 10.0,
                 sleep: tuple[float, float] = (1.0, 4.0), time_limit: str = "", name: str | None = None) -> str:
        name = name or f"{host}{len(self.workloads)}"
        out = self.out / f"history-{name}.jsonl"
        argv = [PY, WORKLOAD, "--out", str(out), "--name", name, "--duration", str(duration),
                "--clients", str(clients), "--rate", str(rate), "--seed", str(seed), "--mix", mix,
                "--retry-for", str(retry_for), "--timeout", str(timeout), "--sleep-min", str(sleep[0]),
                "--sleep-max", str(sleep[1]), "--time-limit", time_limit]
        proc = self.cluster.popen_tool(host, f"workload-{name}", argv)
        self.workloads.append((name, proc))
        self.note(f"workload {name} on {host}: {clients} clients x {rate}/s for {duration:.0f} s")
        return name

    def wait_workloads(self, timeout: float = 120.0) -> None:
        for name, proc in self.workloads:
            try:
                proc.wait(timeout)
            except Exception:
                proc.kill()
                self.note(f"workload {name} killed after {timeout:.0f} s")

    def ops(self) -> list[history.Op]:
        return history.load_history(sorted(self.out.glob("history-*.jsonl")))

    # --- faults --------------------------------------------------------------------------

    def host_of(self, rid: int) -> str:
        return f"ctl{rid}"

    def isolate(self, host: str) -> float:
        assert self.cluster.net is not None
        self.cluster.net.isolate(host)
        return self.note(f"isolate {host}")

    def partition(self, *groups: list[str]) -> float:
        assert self.cluster.net is not None
        self.cluster.net.partition(*groups)
        return self.note(f"partition {' | '.join(','.join(g) for g in groups)}")

    def one_way(self, src: str, dst: str) -> float:
        assert self.cluster.net is not None
        self.cluster.net.block(src, dst)
        return self.note(f"drop {src} -> {dst}")

    def flap(self, host: str, period: float) -> float:
        """Cut and restore ``host`` every ``period`` seconds until healed."""
        stop = threading.Event()

        def run() -> None:
            assert self.cluster.net is not None
            cut = False
            while not stop.wait(period):
                if cut:
                    self.cluster.net.heal()
                else:
                    self.cluster.net.isolate(host)
                cut = not cut

        thread = threading.Thread(target=run, name="flap", daemon=True)
        thread.start()
        self._flappers.append((thread, stop))
        return self.note(f"flap {host} every {period} s")

    def kill(self, host: str) -> float:
        self.cluster.kill(host)
        return self.note(f"SIGKILL {host}")

    def restart(self, host: str) -> float:
        self.cluster.restart(host)
        return self.note(f"start {host}")

    def pause(self, host: str) -> float:
        self.cluster.signal(host, signal.SIGSTOP)
        self._paused.add(host)
        return self.note(f"SIGSTOP {host}")

    def resume(self, host: str) -> float:
        self.cluster.signal(host, signal.SIGCONT)
        self._paused.discard(host)
        return self.note(f"SIGCONT {host}")

    def fill_disk(self, path: Path) -> float:
        """Fill the file system holding ``path`` (a small tmpfs) until ENOSPC."""
        filler = path / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        self._fillers.append(filler)
        st = os.statvfs(path)
        return self.note(f"disk full at {path} ({st.f_bavail * st.f_frsize} bytes left)")

    def clock_jump(self, host: str, seconds: float) -> float:
        self.cluster.set_clock_offset(host, seconds)
        self._clock.add(host)
        return self.note(f"wall clock of {host} {seconds:+.0f} s")

    def heal(self) -> float:
        for thread, stop in self._flappers:
            stop.set()
            thread.join(10)
        self._flappers.clear()
        assert self.cluster.net is not None
        self.cluster.net.heal()
        for host in list(self._paused):
            self.resume(host)
        for filler in self._fillers:
            filler.unlink(missing_ok=True)
        self._fillers.clear()
        for host in list(self._clock):
            self.cluster.set_clock_offset(host, 0)
        self._clock.clear()
        return self.note("heal")

    # --- verdict -------------------------------------------------------------------------

    def final_jobs(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The job table once nothing is COMPLETING any more (or after ``timeout``)."""
        import msgpack

        rows: list[dict[str, Any]] = []

        def settled() -> bool:
            nonlocal rows
            try:
                reply = self.cluster.client_call("jobs", {"columns": True, "fields": ["job_id", "name", "state"]},
                                                 retry_for=5.0)
            except Exception:
                return False
            rows = [dict(zip(reply["fields"], r, strict=True)) for c in reply["row_chunks"]
                    for r in msgpack.unpackb(c, raw=False)]
            return not any(r["state"] in ("COMPLETING", "CONFIGURING") for r in rows)

        try:
            wait_for(settled, timeout, "jobs to settle", interval=0.5)
        except TimeoutError:
            self.note("jobs still COMPLETING at the end")
        return rows

    def alive_tasks(self, tasks: list[history.Task]) -> set[int]:
        alive = set()
        for t in tasks:
            try:
                with open(f"/proc/{t.pid}/environ", "rb") as f:
                    if f"SLURM_JOB_ID={t.job}\0".encode() in f.read():
                        alive.add(t.pid)
            except OSError:
                pass
        return alive

    def verify(self, *, fault: float | None = None, heal: float | None = None,
               grace: float | None = None) -> tuple[list[str], dict[str, Any]]:
        """Heal, settle, check the history; print and save the figures."""
        if heal is None:
            heal = self.heal()
        self.wait_workloads()
        self.cluster.wait_leader(30)
        digests = self.cluster.wait_converged(30)
        jobs = self.final_jobs()
        tasks = history.load_tasks(self.cluster.task_dir)
        # A cancelled job's processes get SIGTERM, then SIGKILL after kill_wait.
        time.sleep(0)
        alive: set[int] = set()
        deadline = time.monotonic() + (grace if grace is not None else self.cluster.settings["kill_wait"] + 5)
        cancelled = {o.job for o in self.ops() if o.kind == "cancel" and o.outcome == "ok"}
        while True:
            alive = self.alive_tasks([t for t in tasks if t.job in cancelled])
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.monitor.stop()
        ops = self.ops()
        violations = history.check(ops, tasks, jobs, digests, minority=self.minority, alive=alive)
        figs = history.figures(ops, fault=fault, heal=heal, start=self.t0)
        lo, hi = self.monitor.terms()
        figs["terms"] = [lo, hi]
        figs["leaders"] = [(round(t - self.t0, 2), term, rid) for t, term, rid in self.monitor.leaders()]
        figs["tasks"] = len(tasks)
        figs["jobs"] = len(jobs)
        figs["violations"] = len(violations)
        report = {"scenario": self.name, "figures": figs, "violations": violations,
                  "events": [(round(t - self.t0, 3), e) for t, e in self.events]}
        (self.out / "report.json").write_text(json.dumps(report, indent=1, default=str))
        print(f"  figures {self.name}: {json.dumps(figs, default=str)}", flush=True)
        for v in violations[:20]:
            print(f"  VIOLATION: {v}", flush=True)
        return violations, figs

    def close(self) -> None:
        for thread, stop in self._flappers:
            stop.set()
            thread.join(5)
        self.monitor.stop()
        for _, proc in self.workloads:
            if proc.poll() is None:
                proc.kill()
