"""Workloads that measure a cluster through Slurm's command names, for Spur and for Slurm alike.

Each workload takes a :class:`Cluster`: the environment its commands need (``SPUR_CONF`` or
``SLURM_CONF``), the directory of ``sbatch``/``squeue``/``scancel``/``scontrol``/``sacct``, a way
to find a job's processes, and optional hooks (a fast state query, bulk submission, controller
restart, leader kill). Workloads return :class:`Metric` lists; :func:`render_table` prints
several clusters' results side by side with ratios.

    3 cli_latency      sbatch/squeue wall time vs a bare interpreter; sbatch/s from 4 shell loops
    4 start_latency    submit -> RUNNING visible, and -> the script's first command ran
    5 throughput       N trivial jobs (--wrap true): jobs/s from first submit to last completion
    6 kill_latency     scancel -> every process of a `sleep 1000` job gone, and -> CANCELLED visible
    7 scale            squeue / scontrol show job -o and controller restart -> first answer with an
                       empty queue and 1,000 / 10,000 / 20,000 / 100,000 held jobs; SIGKILL restart
    8 failover         leader SIGKILLed -> next commit (clusters with a kill_leader hook)
    9 array_throughput a 10,000-task array of `true` (sbatch --array): tasks/s

``benchmarks/slurm/bench.py`` runs them on Debian's Slurm and on a ``spur local`` cluster;
:func:`spur_local` starts such a cluster and returns its :class:`Cluster`.
"""

from __future__ import annotations

import contextlib
import math
import os
import pwd
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTIVE_STATES = "PD,R,CG,S"
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE")


class WorkloadError(RuntimeError):
    """A workload failed; ``metrics`` holds what it measured before that."""

    def __init__(self, message: str, metrics: list[Metric] | None = None) -> None:
        super().__init__(message)
        self.metrics = metrics or []


# --- statistics --------------------------------------------------------------------------------


def quantile(samples: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 1]."""
    if not samples:
        return math.nan
    s = sorted(samples)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Metric:
    """One measured quantity: all samples kept, summarised when printed."""

    key: str
    label: str
    unit: str  # "s", "jobs/s", "x"
    samples: list[float]
    higher_is_better: bool = False
    percentiles: bool = False  # print p50/p99 instead of the median
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        scale = max(abs(x) for x in self.samples)
        if len(self.samples) == 1:
            return fmt_value(self.samples[0], self.unit, scale)
        spread = (f"[{fmt_value(min(self.samples), self.unit, scale, False)}–"
                  f"{fmt_value(max(self.samples), self.unit, scale)}]")
        if self.percentiles:
            return (f"p50 {fmt_value(quantile(self.samples, 0.5), self.unit, scale)} "
                    f"p99 {fmt_value(quantile(self.samples, 0.99), self.unit, scale)} {spread} n={len(self.samples)}")
        return f"{fmt_value(self.median, self.unit, scale)} {spread} n={len(self.samples)}"


def fmt_value(v: float, unit: str, scale: float | None = None, with_unit: bool = True) -> str:
    """Three significant digits; seconds are shown in ms when ``scale`` (default: v) is below 1 s."""
    if math.isnan(v):
        return "n/a"
    if unit == "s":
        ms = abs(v if scale is None else scale) < 1.0
        text, u = (f"{v * 1000:.3g}", "ms") if ms else (f"{v:.3g}", "s")
        return f"{text} {u}" if with_unit else text
    if unit == "x":
        return f"{v:.3g}x" if with_unit else f"{v:.3g}"
    text = f"{v:.4g}"
    return f"{text} {unit}" if with_unit else text


def ratio_metric(key: str, label: str, num: Metric | None, den: Metric | None, note: str = "") -> Metric:
    if num is None or den is None or not num.samples or not den.samples or den.median == 0:
        return Metric(key, label, "x", [], note=note)
    return Metric(key, label, "x", [num.median / den.median], note=note)


# --- the cluster handle ------------------------------------------------------------------------


def env_job_pids(job_id: int) -> list[int]:
    """Pids of every process whose environment has SLURM_JOB_ID=<job_id>: the batch shell, its
    children and the steps' tasks, under Slurm (slurmstepd itself has no such variable) and
    under Spur (the supervisor has none either). Needs root to read other users' environ."""
    needle = f"\0SLURM_JOB_ID={job_id}\0".encode()
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = b"\0" + f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except (OSError, IndexError):
            continue
        if needle in env:
            pids.append(int(entry))
    return pids


@dataclass
class Cluster:
    """What a workload needs to know about a cluster.

    ``env``: the environment for the cluster's commands. ``bindir``: where its ``sbatch`` etc.
    are. ``find_pids(job_id)``: the job's live processes. The optional hooks make a
    measurement finer or possible: ``job_state(job_id)`` (the displayed state, None when
    unknown; default: ``squeue -h -t all -j ID -o %T``), ``active_jobs()`` (ids of PD/R/CG/S
    jobs; default: squeue), ``submit_held(n)`` (submit n held jobs, fast; default: 4 parallel
    ``sbatch -H`` loops), ``stop_controller()``/``start_controller()`` (``crash_controller()``:
    stop it with SIGKILL) and ``kill_leader()``
    (SIGKILL the leader; returns a function that restarts it) with ``commit()`` (one held
    submit that returns the job id once committed), ``daemon_pids()`` (the controllers' and
    agents' pids: their CPU time is counted per submission).
    """

    name: str
    env: dict[str, str]
    bindir: str
    workdir: Path
    find_pids: Callable[[int], list[int]] = env_job_pids
    job_state: Callable[[int], str | None] | None = None
    active_jobs: Callable[[], list[int]] | None = None
    submit_held: Callable[[int], None] | None = None
    submit_held_method: str = "4 parallel `sbatch -H --wrap true` loops"
    stop_controller: Callable[[], None] | None = None
    start_controller: Callable[[], None] | None = None
    crash_controller: Callable[[], None] | None = None  # SIGKILL: nothing saved at the stop
    kill_leader: Callable[[], Callable[[], None]] | None = None
    commit: Callable[[], int] | None = None
    state_query: str = "squeue -h -t all -j ID -o %T"
    python: str = sys.executable
    daemon_pids: Callable[[], list[int]] | None = None  # controllers and agents, for CPU accounting
    extra: dict[str, Any] = field(default_factory=dict)

    def cmd(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def run(self, name: str, *args: str, check: bool = True, timeout: float = 120,
            stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.cmd(name), *args], env=self.env, cwd=self.workdir, text=True,
                              stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)
        if check and proc.returncode != 0:
            raise WorkloadError(f"{self.name}: {name} {' '.join(args)} exited {proc.returncode}: "
                                f"{proc.stderr.strip()}")
        return proc

    def sbatch(self, *args: str) -> int:
        out = self.run("sbatch", "--parsable", *args).stdout.strip()
        return int(out.split(";")[0])

    def state(self, job_id: int) -> str | None:
        if self.job_state is not None:
            return self.job_state(job_id)
        proc = self.run("squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T", check=False, timeout=30)
        out = proc.stdout.strip()
        return out.splitlines()[0] if proc.returncode == 0 and out else None

    def active(self) -> list[int]:
        if self.active_jobs is not None:
            return self.active_jobs()
        out = self.run("squeue", "-h", "-t", ACTIVE_STATES, "-o", "%i", timeout=120).stdout
        return [int(x.split("_")[0]) for x in out.split()]

    def cancel_all(self, timeout: float = 120) -> None:
        user = pwd.getpwuid(os.getuid()).pw_name
        self.run("scancel", "-u", user, check=False, timeout=timeout)

    def wait_idle(self, timeout: float) -> float:
        """Wait until no job is pending/running/completing; returns when that was seen."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.active():
                return time.monotonic()
            if time.monotonic() > deadline:
                raise WorkloadError(f"{self.name}: jobs still active after {timeout:.0f} s")
            time.sleep(0.1)


def wait_until(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WorkloadError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def time_argv(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise WorkloadError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-300:]}")
    return samples


def parallel_sbatch(cluster: Cluster, loops: int, per_loop: int, *args: str, timeout: float = 600) -> float:
    """``loops`` shell loops of ``per_loop`` sbatch calls each, at once; returns the elapsed seconds."""
    quoted = " ".join(_shquote(a) for a in args)
    script = (f'for i in $(seq {per_loop}); do "$SBATCH" {quoted} >/dev/null '
              f'|| {{ echo "sbatch failed" >&2; exit 1; }}; done')
    env = dict(cluster.env, SBATCH=cluster.cmd("sbatch"))
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["bash", "-c", script], env=env, cwd=cluster.workdir, stderr=subprocess.PIPE)
             for _ in range(loops)]
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            errors.append("timeout")
        if p.returncode:
            errors.append(err.decode().strip()[-300:])
    elapsed = time.perf_counter() - t0
    if errors:
        raise WorkloadError(f"{cluster.name}: parallel sbatch failed: {errors[0]}")
    return elapsed


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process and of its children it has waited for."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _shquote(s: str) -> str:
    import shlex

    return shlex.quote(s)


# --- 3. CLI ------------------------------------------------------------------------------------

#: The start-up baseline: the same interpreter with no site (-S) and no environment or user
#: directories (-I), doing nothing. A command's ratio to it is what its own work costs.
BASELINE_ARGS = ("-I", "-S", "-c", "pass")


class Sample:
    """One run of a command: wall time, and CPU time (user + system) of the process and its
    children. CPU time hardly moves with other load on a shared machine; wall time does."""

    __slots__ = ("wall", "cpu", "stdout")

    def __init__(self, wall: float, cpu: float, stdout: str) -> None:
        self.wall, self.cpu, self.stdout = wall, cpu, stdout


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _run_once(argv: Sequence[str], env: dict[str, str], cwd: Path) -> Sample:
    """Run ``argv`` to its end. Its CPU time is the growth of RUSAGE_CHILDREN, so nothing else
    of this process's children may end meanwhile (the workloads start none in the loop)."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise WorkloadError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-300:]}")
    return Sample(wall, _children_cpu() - cpu0, proc.stdout.decode())


@dataclass
class CliCase:
    """One command timed beside the baseline. ``argv()`` builds the command line of a run
    (after any untimed preparation, say submitting the job that scancel cancels); ``after``
    gets the command's stdout and settles the cluster, untimed."""

    key: str
    label: str
    argv: Callable[[], list[str]]
    after: Callable[[str], None] | None = None


def interleaved(cases: Sequence[CliCase], baseline: Sequence[str], env: dict[str, str], cwd: Path,
                runs: int) -> dict[str, tuple[list[Sample], list[Sample]]]:
    """Each case's runs and those of ``baseline`` run right beside them, in one loop: a round
    runs every case once, each next to one baseline run; even rounds run the baseline first,
    odd rounds the command first, and the cases' order is reversed too, so neither side of a
    pair profits from running second. Returns ``{key: (command samples, baseline samples)}``."""
    out: dict[str, tuple[list[Sample], list[Sample]]] = {c.key: ([], []) for c in cases}
    for i in range(runs):
        for case in (cases if i % 2 == 0 else list(reversed(cases))):
            argv = case.argv()
            if i % 2 == 0:
                out[case.key][1].append(_run_once(baseline, env, cwd))
                sample = _run_once(argv, env, cwd)
            else:
                sample = _run_once(argv, env, cwd)
                out[case.key][1].append(_run_once(baseline, env, cwd))
            out[case.key][0].append(sample)
            if case.after is not None:
                case.after(sample.stdout)
    return out


def cli_latency(cluster: Cluster, runs: int = 20, loops: int = 4, per_loop: int = 50, small_queue: int = 10,
                idle_timeout: float = 300) -> list[Metric]:
    """Wall times (and CPU times) of the commands users run in loops, each beside
    ``python -I -S -c pass`` (the same interpreter) run in the same loop (:func:`interleaved`):

    * an idle queue: ``squeue``; ``python -c pass`` (site on, no command) and ``/bin/true`` as
      references;
    * ``small_queue`` held jobs queued: ``squeue``; ``sbatch -o /dev/null --wrap true`` (each
      job is waited for, untimed, so that it does not run under the next sample);
      ``scancel <id>`` of a held job submitted just before (untimed).

    Then sbatch submissions/s from ``loops`` parallel shell loops of ``per_loop`` each: held
    jobs (``-H``: the submission path alone), then jobs that run meanwhile (the 2 CPUs are
    shared with their starts and ends). The jobs are cancelled afterwards, not waited for.
    """
    cluster.wait_idle(idle_timeout)
    env, cwd = cluster.env, cluster.workdir
    base = [cluster.python, *BASELINE_ARGS]
    base_label = f"`{os.path.basename(cluster.python)} {' '.join(BASELINE_ARGS[:2])} -c pass`"
    metrics: list[Metric] = []

    def add(samples: dict[str, tuple[list[Sample], list[Sample]]], cases: Sequence[CliCase]) -> None:
        for c in cases:
            cmd, b = samples[c.key]
            wall = Metric(c.key, c.label, "s", [s.wall for s in cmd])
            wall_base = Metric(c.key + ".base", f"{base_label} beside {c.label}", "s", [s.wall for s in b],
                               note="the baseline run in the same loop")
            short = c.label.split(" wall")[0]
            metrics.extend([
                wall, wall_base, ratio_metric(c.key + ".ratio", f"{short} / {base_label}", wall, wall_base),
                Metric(c.key + ".cpu", f"{short} CPU time (user+sys)", "s", [s.cpu for s in cmd]),
                Metric(c.key + ".cpu.base", f"{base_label} CPU time beside {short}", "s", [s.cpu for s in b]),
            ])

    idle = [
        CliCase("cli.python", f"`{os.path.basename(cluster.python)} -c pass` (site, no command)",
                lambda: [cluster.python, "-c", "pass"]),
        CliCase("cli.true", "`/bin/true`", lambda: ["/bin/true"]),
        CliCase("cli.squeue", "`squeue` wall time (idle queue)", lambda: [cluster.cmd("squeue")]),
    ]
    add(interleaved(idle, base, env, cwd, runs), idle)

    held: list[int] = []
    try:
        held += [cluster.sbatch("-H", "-o", "/dev/null", "--wrap", "true") for _ in range(small_queue)]

        def settle(stdout: str) -> None:
            job_id = int(stdout.strip().split(";")[0])
            wait_until(lambda: cluster.state(job_id) in (*FINAL_STATES, None), idle_timeout,
                       f"job {job_id} to end", interval=0.005)

        def scancel_argv() -> list[str]:
            held.append(cluster.sbatch("-H", "-o", "/dev/null", "--wrap", "true"))
            return [cluster.cmd("scancel"), str(held[-1])]

        busy = [
            CliCase("cli.squeue_small", f"`squeue` wall time ({small_queue} pending jobs)",
                    lambda: [cluster.cmd("squeue")]),
            CliCase("cli.sbatch", "`sbatch --wrap true` wall time",
                    lambda: [cluster.cmd("sbatch"), "--parsable", "-o", "/dev/null", "--wrap", "true"], settle),
            CliCase("cli.scancel", "`scancel <id>` wall time (a pending job)", scancel_argv),
        ]
        add(interleaved(busy, base, env, cwd, runs), busy)
    finally:
        if held:
            cluster.run("scancel", *map(str, held), check=False)
    n = loops * per_loop
    for key, tag, label, extra in (
            ("cli.sbatch_rate_held", "held", "held jobs: the submission path alone", ("-H",)),
            ("cli.sbatch_rate", "running", "the jobs run meanwhile", ())):
        try:
            cluster.wait_idle(idle_timeout)
            daemons = cluster.daemon_pids() if cluster.daemon_pids is not None else []
            before = _children_cpu(), sum(process_cpu(pid) for pid in daemons)
            elapsed = parallel_sbatch(cluster, loops, per_loop, *extra, "-o", "/dev/null", "--wrap", "true")
            used = _children_cpu() - before[0], sum(process_cpu(pid) for pid in daemons) - before[1]
        finally:
            cluster.cancel_all()
        metrics.append(Metric(key, f"sbatch submissions/s, {loops} parallel shell loops, {label}", "jobs/s",
                              [n / elapsed], higher_is_better=True,
                              note=f"{loops}x{per_loop} `sbatch {' '.join(extra)} -o /dev/null --wrap true`"))
        if daemons:
            # CPU time barely depends on what else runs on a shared machine: what this many
            # CPUs could sustain if they were ours alone, beside what the loops achieved
            per_job = (used[0] + used[1]) / n
            metrics += [
                Metric(key + ".cpu.loops", f"sbatch loops ({tag}): CPU per submission in the loops (bash + sbatch)",
                       "s", [used[0] / n]),
                Metric(key + ".cpu.daemons", f"sbatch loops ({tag}): CPU per submission in the cluster's daemons",
                       "s", [used[1] / n]),
                Metric(key + ".cpu_bound", f"sbatch loops ({tag}): submissions/s {os.cpu_count()} idle CPUs allow",
                       "jobs/s", [(os.cpu_count() or 1) / per_job], higher_is_better=True),
            ]
    cluster.wait_idle(idle_timeout)
    return metrics


# --- 4. submit -> RUNNING ----------------------------------------------------------------------


def _poll_in_thread(cond: Callable[[], bool], timeout: float, interval: float = 0.001,
                    first: Callable[[float], None] | None = None) -> tuple[threading.Thread, list[float]]:
    """Poll ``cond`` in a thread; the list receives the monotonic time it first held.
    ``first(deadline)``: a blocking wait the thread does before it starts polling."""
    seen: list[float] = []

    def loop() -> None:
        deadline = time.monotonic() + timeout
        if first is not None:
            first(deadline)
        while time.monotonic() < deadline:
            if cond():
                seen.append(time.monotonic())
                return
            time.sleep(interval)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t, seen


def _watch_exits(pids: list[int], then: Callable[[], bool], timeout: float
                 ) -> tuple[threading.Thread, list[float]]:
    """:func:`_poll_in_thread` of ``then``, once every process of ``pids`` has exited (a
    pidfd of each, polled without spending CPU; ``then`` then normally holds at once).
    Scanning /proc every 1 ms instead kept one of this machine's two CPUs busy during the
    very kill it timed."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except ProcessLookupError:
            pass

    def exits(deadline: float) -> None:
        import select

        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        try:
            left = len(fds)
            while left and time.monotonic() < deadline:
                for fd, _ in poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                    poller.unregister(fd)
                    left -= 1
        finally:
            for fd in fds:
                os.close(fd)

    return _poll_in_thread(then, timeout, first=exits)


def _stop_job(cluster: Cluster, job_id: int, timeout: float = 60) -> None:
    cluster.run("scancel", str(job_id), check=False)
    wait_until(lambda: cluster.state(job_id) in (*FINAL_STATES, None), timeout, f"job {job_id} to end",
               interval=0.02)
    wait_until(lambda: not cluster.find_pids(job_id), timeout, f"job {job_id}'s processes to go",
               interval=0.01)


def start_latency(cluster: Cluster, runs: int = 10, timeout: float = 60) -> list[Metric]:
    """On an idle cluster: from the sbatch call to RUNNING in the state query, and to the
    script's first command (it creates a marker file; polled every 1 ms)."""
    cluster.wait_idle(timeout)
    running, started = [], []
    for i in range(runs):
        marker = cluster.workdir / f"started-{uuid.uuid4().hex}"
        t0 = time.monotonic()
        thread, seen = _poll_in_thread(marker.exists, timeout)
        job_id = cluster.sbatch("-o", "/dev/null", "--wrap", f"touch {marker}; exec sleep 1000")
        wait_until(lambda j=job_id: cluster.state(j) == "RUNNING", timeout, f"job {job_id} RUNNING",
                   interval=0.002)
        running.append(time.monotonic() - t0)
        thread.join()
        if not seen:
            raise WorkloadError(f"{cluster.name}: job {job_id} never ran its script")
        started.append(seen[0] - t0)
        _stop_job(cluster, job_id)
        marker.unlink(missing_ok=True)
        if i + 1 < runs:
            cluster.wait_idle(timeout)
    q = cluster.state_query
    return [
        Metric("latency.running", "submit -> RUNNING visible", "s", running, percentiles=True,
               note=f"from the sbatch call; state polled with {q}"),
        Metric("latency.started", "submit -> script's first command ran", "s", started, percentiles=True,
               note="marker file created by the script, polled every 1 ms"),
    ]


# --- 5. throughput -----------------------------------------------------------------------------


def throughput(cluster: Cluster, jobs: int = 500, loops: int = 4, budget: float = 300) -> list[Metric]:
    """``jobs`` trivial jobs submitted by ``loops`` parallel sbatch loops; jobs/s from the first
    submission to the last completion (active jobs counted every 50 ms). If they are not all
    done within ``budget`` seconds, the rate is the jobs done so far over the time to the last
    completion seen, and the rest are cancelled."""
    cluster.wait_idle(120)
    per_loop = math.ceil(jobs / loops)
    total = per_loop * loops
    t0 = time.monotonic()
    try:
        submit_s = parallel_sbatch(cluster, loops, per_loop, "-o", "/dev/null", "--wrap", "true",
                                   timeout=budget)
        done, t_last = 0, t0
        while True:
            active = len(cluster.active())
            now = time.monotonic()
            if total - active > done:
                done, t_last = total - active, now
            if active == 0 or now - t0 > budget:
                break
            time.sleep(0.05)
    finally:
        cluster.cancel_all()
    cluster.wait_idle(120)
    complete = done == total
    elapsed = t_last - t0
    note = f"{loops} parallel sbatch loops"
    if not complete:
        note += f"; budget {budget:.0f} s reached with {done} of {total} done: rate over those"
    return [
        Metric("throughput.rate", f"{total} x `sbatch --wrap true`: jobs/s, first submit -> last done",
               "jobs/s", [done / elapsed] if elapsed > 0 else [], higher_is_better=True, note=note),
        Metric("throughput.done", f"jobs done (of {total})", "jobs", [float(done)], higher_is_better=True),
        Metric("throughput.total", "first submit -> last completion", "s", [elapsed]),
        Metric("throughput.submit", f"{total} jobs: submission phase", "s", [submit_s]),
    ]


# --- 6. kill -----------------------------------------------------------------------------------


def kill_latency(cluster: Cluster, runs: int = 20, timeout: float = 60) -> list[Metric]:
    """scancel of a running `sleep 1000` job: from the scancel call until every process of the
    job is gone (each one's exit seen on a pidfd, then no other found by find_pids) and until
    CANCELLED is visible."""
    cluster.wait_idle(timeout)
    gone, cancelled, cli = [], [], []
    for _ in range(runs):
        job_id = cluster.sbatch("-o", "/dev/null", "--wrap", "sleep 1000")
        wait_until(lambda j=job_id: cluster.state(j) == "RUNNING", timeout, f"job {job_id} RUNNING", 0.01)

        def has_sleep(j: int = job_id) -> bool:
            for pid in cluster.find_pids(j):
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                        return True
                except OSError:
                    pass
            return False

        wait_until(has_sleep, timeout, f"job {job_id}'s sleep process", 0.005)
        pids = cluster.find_pids(job_id)
        t0 = time.monotonic()
        thread, seen = _watch_exits(pids, lambda j=job_id: not cluster.find_pids(j), timeout)
        cluster.run("scancel", str(job_id))
        cli.append(time.monotonic() - t0)
        wait_until(lambda j=job_id: cluster.state(j) == "CANCELLED", timeout, f"job {job_id} CANCELLED", 0.002)
        cancelled.append(time.monotonic() - t0)
        thread.join()
        if not seen:
            raise WorkloadError(f"{cluster.name}: processes of job {job_id} still there after {timeout} s")
        gone.append(seen[0] - t0)
        cluster.wait_idle(timeout)
    return [
        Metric("kill.gone", "scancel -> all job processes gone", "s", gone, percentiles=True,
               note="from the scancel call: each process's exit seen on a pidfd, then /proc scanned "
                    "for any other process of the job"),
        Metric("kill.cancelled", "scancel -> CANCELLED visible", "s", cancelled, percentiles=True,
               note=f"state polled with {cluster.state_query}"),
        Metric("kill.scancel", "`scancel` wall time", "s", cli),
    ]


# --- 7. scale ----------------------------------------------------------------------------------


def _restarts(cluster: Cluster, probe: int, runs: int, stop: Callable[[], None]) -> list[float]:
    """``runs`` times: ``stop()`` the controller, start it, and time the first answer of the
    state query about ``probe`` (a held job) from the start."""
    assert cluster.start_controller is not None
    samples = []
    for _ in range(runs):
        stop()
        t0 = time.monotonic()
        cluster.start_controller()
        wait_until(lambda: cluster.state(probe) == "PENDING", 300, "the controller's first answer", 0.01)
        samples.append(time.monotonic() - t0)
    return samples


def _records(cluster: Cluster) -> int:
    """Job records the controller still keeps, finished ones included (`squeue -t all`; a
    pending array's tasks are one line)."""
    proc = cluster.run("squeue", "-h", "-t", "all", "-o", "%i", check=False, timeout=120)
    return len(proc.stdout.split()) if proc.returncode == 0 else -1


def _wait_purged(cluster: Cluster, timeout: float, left: int = 50) -> int:
    """Wait (up to ``timeout``) until the earlier workloads' finished jobs have been purged
    (MinJobAge, 300 s on both), so that every scale row compares the same queue: `scontrol`
    shows finished jobs, and after the array workload Spur keeps its 10,000 finished tasks
    while Slurm, which finished about a hundred, keeps few. Returns the records left."""
    deadline = time.monotonic() + timeout
    while True:
        n = _records(cluster)
        if 0 <= n <= left or time.monotonic() >= deadline:
            return n
        time.sleep(5)


def scale(cluster: Cluster, sizes: Sequence[int] = (1000, 10000, 20000, 100000), runs: int = 3,
          restart_runs: int = 3, timeout: float = 1800, cancel_timeout: float = 600,
          purge_timeout: float = 420) -> list[Metric]:
    """How the costs grow with the queue. First on an empty queue (a held probe job only: the
    baselines), then with held jobs queued up to each size: `squeue` and `scontrol show job -o`
    (output to /dev/null) ``runs`` times, and the controller restarted ``restart_runs`` times
    (stopped cleanly, SIGTERM, then started: the clock runs from the start to the first answer
    about the probe). At the largest size the controller is also killed (SIGKILL) and started,
    when the cluster can (``crash_controller``). Finally `scancel -u <me>` of all of them
    (bounded by ``cancel_timeout``: past it the metric is N/A and the rest stay queued)."""
    cluster.wait_idle(120)
    records = _wait_purged(cluster, purge_timeout)
    metrics: list[Metric] = []
    commands = (("squeue", ["squeue"]), ("scontrol show job -o", ["scontrol", "show", "job", "-o"]))
    restartable = cluster.stop_controller is not None and cluster.start_controller is not None
    try:
        probe = cluster.sbatch("-H", "-o", "/dev/null", "--wrap", "true")
        queued = 1
        for label, argv in commands:
            samples = time_argv([cluster.cmd(argv[0]), *argv[1:]], cluster.env, cluster.workdir, runs)
            metrics.append(Metric(f"scale.{argv[0]}.0", f"`{label}` with an empty queue (1 held job)", "s", samples,
                                  note=f"{records} earlier job records still kept" if records > 50 else ""))
        if restartable:
            assert cluster.stop_controller is not None
            metrics.append(Metric("scale.restart.0", "controller restart -> first answer, empty queue (1 job)", "s",
                                  _restarts(cluster, probe, restart_runs, cluster.stop_controller),
                                  note=f"stopped (SIGTERM), started, first {cluster.state_query} answered"))
        for size in sizes:
            n = size - queued
            t0 = time.monotonic()
            if cluster.submit_held is not None:
                cluster.submit_held(n)
            else:
                loops = 4
                per = math.ceil(n / loops)
                parallel_sbatch(cluster, loops, per, "-H", "-o", "/dev/null", "--wrap", "true", timeout=timeout)
                n = per * loops
            queued += n
            metrics.append(Metric(f"scale.submit.{size}", f"held jobs queued/s up to {size:,}", "jobs/s",
                                  [n / (time.monotonic() - t0)], higher_is_better=True,
                                  note=cluster.submit_held_method))
            count = len(cluster.active())
            if count < size * 0.99:
                raise WorkloadError(f"{cluster.name}: {count} jobs queued, expected {size}")
            for label, argv in commands:
                samples = time_argv([cluster.cmd(argv[0]), *argv[1:]], cluster.env, cluster.workdir, runs)
                metrics.append(Metric(f"scale.{argv[0]}.{size}", f"`{label}` with {size:,} queued jobs", "s",
                                      samples))
            if restartable:
                assert cluster.stop_controller is not None
                metrics.append(Metric(f"scale.restart.{size}", f"controller restart -> first answer ({queued:,} jobs)",
                                      "s", _restarts(cluster, probe, restart_runs, cluster.stop_controller),
                                      note=f"stopped (SIGTERM), started, first {cluster.state_query} answered"))
        if restartable and cluster.crash_controller is not None:
            metrics.append(Metric("scale.crash_restart", f"controller SIGKILLed, started -> first answer ({queued:,} jobs)",
                                  "s", _restarts(cluster, probe, restart_runs, cluster.crash_controller),
                                  note="no state saved at the kill: what the last save left, plus its log"))
        user = pwd.getpwuid(os.getuid()).pw_name
        label = f"`scancel -u {user}` of the {queued:,} queued jobs"
        t0 = time.monotonic()
        try:
            cluster.run("scancel", "-u", user, timeout=cancel_timeout)
        except subprocess.TimeoutExpired:
            # bounded: report it and leave the rest queued (held jobs use no resources)
            left = len(cluster.active())
            metrics.append(Metric("scale.scancel", label, "s", [],
                                  note=f"N/A: not done after {cancel_timeout:.0f} s ({left:,} jobs left queued)"))
            return metrics
        metrics.append(Metric("scale.scancel", label, "s", [time.monotonic() - t0]))
        cluster.wait_idle(600)
    except Exception as exc:
        with contextlib.suppress(Exception):
            cluster.cancel_all(timeout=cancel_timeout)
        raise WorkloadError(f"{cluster.name}: scale: {exc}", metrics) from exc
    return metrics


# --- 9. a job array ------------------------------------------------------------------------------


def _array_left(cluster: Cluster, array_id: int) -> int:
    """Tasks of the array not ended yet: `squeue -r` prints one line per task (pending ones too)."""
    proc = cluster.run("squeue", "-h", "-r", "-t", ACTIVE_STATES, "-j", str(array_id), "-o", "%i",
                       check=False, timeout=120)
    if proc.returncode != 0:  # the array left the queue entirely (or the query failed: count it as busy)
        return 0 if "Invalid job id" in proc.stderr else -1
    return len(proc.stdout.split())


def array_throughput(cluster: Cluster, tasks: int = 10000, budget: float = 300) -> list[Metric]:
    """``sbatch --array=0-<tasks-1> -o /dev/null --wrap true``: tasks/s from the submission to
    the last task done, counted with `squeue -r` (every 1 s, every 0.1 s once fewer than 500
    are left). If they are not all done within ``budget`` seconds, the rate is over the tasks
    done so far (to the last completion seen) and the rest are cancelled."""
    cluster.wait_idle(120)
    t0 = time.monotonic()
    array_id = cluster.sbatch(f"--array=0-{tasks - 1}", "-o", "/dev/null", "--wrap", "true")
    submit_s = time.monotonic() - t0
    done, t_last = 0, t0
    try:
        while True:
            left = _array_left(cluster, array_id)
            now = time.monotonic()
            if left >= 0 and tasks - left > done:
                done, t_last = tasks - left, now
            if left == 0 or now - t0 > budget:
                break
            time.sleep(0.1 if 0 <= left < 500 else 1.0)
    finally:
        if done < tasks:
            cluster.run("scancel", str(array_id), check=False)
    cluster.wait_idle(300)
    note = "counted with `squeue -r`"
    if done < tasks:
        note += f"; budget {budget:.0f} s reached with {done:,} of {tasks:,} done: rate over those"
    return [
        Metric("array.cli.rate", f"{tasks:,}-task array of `true` (`sbatch --array`): tasks/s, submit -> last done",
               "tasks/s", [done / (t_last - t0)] if t_last > t0 else [], higher_is_better=True, note=note),
        Metric("array.cli.done", f"array tasks done (of {tasks:,})", "tasks", [float(done)], higher_is_better=True),
        Metric("array.cli.submit", f"`sbatch --array=0-{tasks - 1}` wall time", "s", [submit_s]),
    ]


# --- 8. failover -------------------------------------------------------------------------------


def failover(cluster: Cluster, runs: int = 5) -> list[Metric]:
    """SIGKILL the leader, then time the next committed write (a held submit through a client
    that retries every 10 ms); the killed replica is restarted and allowed to catch up between
    runs. The held probe jobs are cancelled at the end."""
    if cluster.kill_leader is None or cluster.commit is None:
        return [Metric("failover.commit", "leader SIGKILLed -> next commit", "s", [],
                       note="N/A: one controller, no failover")]
    samples = []
    probes: list[int] = []
    for _ in range(runs):
        probes.append(cluster.commit())  # a leader is there and answers
        t0 = time.monotonic()
        restart = cluster.kill_leader()
        probes.append(cluster.commit())
        samples.append(time.monotonic() - t0)
        restart()
    cluster.run("scancel", *map(str, probes), check=False)
    return [Metric("failover.commit", "leader SIGKILLed -> next commit", "s", samples, percentiles=True,
                   note="a held submit through spurio.client.Client, retried every 10 ms")]


# --- a spur local cluster ----------------------------------------------------------------------


def _spur_bin() -> str:
    return os.path.dirname(sys.executable)


@contextlib.contextmanager
def spur_local(directory: str | os.PathLike[str] | None = None, *, replicas: int = 3, nodes: int = 1,
               cpus: int | None = None, kill_wait: float = 30.0, workdir: Path | None = None,
               **settings: Any) -> Iterator[Cluster]:
    """Start ``spur local up`` in ``directory`` (a temporary one by default), yield its Cluster,
    and always run ``spur local down``."""
    from spurctld.local import LocalCluster
    from spurio.client import Client
    from spurio.config import load

    bindir = _spur_bin()
    tmp = None
    if directory is None:
        tmp = tempfile.mkdtemp(prefix="spur-bench-")
        directory = tmp
    d = str(Path(directory).resolve())
    cpus = cpus or os.cpu_count() or 1
    env = dict(os.environ, SPUR_CONF=os.path.join(d, "spur.toml"))
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    up = [os.path.join(bindir, "spur"), "local", "up", "--dir", d, "--replicas", str(replicas),
          "--nodes", str(nodes), "--cpus", str(cpus), "--kill-wait", str(kill_wait),
          *(f"--set={key}={value}" for key, value in settings.items())]
    down = [os.path.join(bindir, "spur"), "local", "down", "--dir", d]
    proc = subprocess.run(up, env=env, capture_output=True, text=True, timeout=180)
    try:
        if proc.returncode != 0:
            raise WorkloadError(f"spur local up failed: {proc.stderr.strip()}")
        local = LocalCluster(d)
        config = load(os.path.join(d, "spur.toml"))
        client = Client(config, retry_for=60)
        lock = threading.Lock()

        def jobs(params: dict[str, Any]) -> list[dict[str, Any]]:
            with lock:
                return client.call("jobs", params, timeout=120)["jobs"]

        fast = Client(config, retry_for=0.0, timeout=30)  # one pass over the replicas, no back-off

        def job_state(job_id: int) -> str | None:
            try:
                with lock:
                    found = fast.call("jobs", {"job_ids": [job_id]})["jobs"]
            except Exception:  # no leader yet (restart, failover): not an answer
                fast.close()
                return None
            return str(found[0]["state"]) if found else None

        def active_jobs() -> list[int]:
            return [int(j["job_id"]) for j in jobs({"states": ["PENDING", "RUNNING", "SUSPENDED", "COMPLETING"]})]

        wd = workdir or Path(tempfile.mkdtemp(prefix="spur-bench-work-"))

        def held_spec() -> dict[str, Any]:
            return {"name": "held", "script": "#!/bin/sh\ntrue\n", "cwd": str(wd), "hold": True,
                    "stdout": "/dev/null"}

        def submit_held(n: int, threads: int = 4) -> None:
            errors: list[BaseException] = []

            def work(count: int) -> None:
                try:
                    with Client(config, retry_for=60) as c:
                        for _ in range(count):
                            c.call("submit", {"request_id": uuid.uuid4().hex, "spec": held_spec()})
                except BaseException as exc:  # re-raised below
                    errors.append(exc)

            per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
            ts = [threading.Thread(target=work, args=(c,)) for c in per]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if errors:
                raise WorkloadError(f"spur: held submit failed: {errors[0]}")

        def stop_controller(sig: int = signal.SIGTERM) -> None:
            client.close()
            fast.close()
            for r in local.config.replicas:
                local.kill(f"ctld-{r.id}", sig)

        def crash_controller() -> None:
            stop_controller(signal.SIGKILL)

        def start_controller() -> None:
            for r in local.config.replicas:
                local.start_replica(r.id)

        def leader_id() -> int | None:
            for r in local.config.replicas:
                info = local.ping(r.id, timeout=0.5)
                if info and info.get("leader"):
                    return r.id
            return None

        def kill_leader() -> Callable[[], None]:
            rid = wait_until(leader_id, 30, "a leader", 0.02)
            pid = local.pid(f"ctld-{rid}")
            if pid is None:
                raise WorkloadError(f"spur: no pid for leader ctld-{rid}")
            os.kill(pid, signal.SIGKILL)

            def restart() -> None:
                wait_until(lambda: local.pid(f"ctld-{rid}") is None, 15, f"ctld-{rid} to die", 0.01)
                local.start_replica(rid)
                wait_until(lambda: local.ping(rid, timeout=0.5), 30, f"ctld-{rid} to answer", 0.05)

                def caught_up() -> bool:
                    lead = leader_id()
                    if lead is None:
                        return False
                    a, b = local.ping(lead), local.ping(rid)
                    return bool(a and b and b.get("applied_index", -1) >= a.get("applied_index", 0))

                wait_until(caught_up, 60, f"ctld-{rid} to catch up", 0.05)

            return restart

        def commit(timeout: float = 60.0) -> int:
            """One held submit, retried every 10 ms with the same request id until committed."""
            request = {"request_id": uuid.uuid4().hex, "spec": held_spec()}
            deadline = time.monotonic() + timeout
            with Client(config, retry_for=0.0, timeout=2.0) as c:
                while True:
                    try:
                        return int(c.call("submit", request)["job_id"])
                    except Exception as exc:  # ControllerUnavailable, RpcError, OSError: retry
                        if time.monotonic() > deadline:
                            raise WorkloadError(f"spur: no commit within {timeout:.0f} s: {exc}") from exc
                        c.close()
                        time.sleep(0.01)
        def daemon_pids() -> list[int]:
            names = [f"ctld-{r.id}" for r in local.config.replicas] + local.node_names()
            return [pid for pid in map(local.pid, names) if pid is not None]

        yield Cluster(
            name="spur", env=env, bindir=bindir, workdir=wd, job_state=job_state, active_jobs=active_jobs,
            daemon_pids=daemon_pids,
            submit_held=submit_held, submit_held_method="4 threads of spurio.client.Client submit (hold)",
            stop_controller=stop_controller, start_controller=start_controller, crash_controller=crash_controller,
            kill_leader=kill_leader if replicas >= 3 else None, commit=commit, state_query="spurio.client.Client `jobs`",
            extra={"dir": d, "local": local, "replicas": replicas},
        )
        client.close()
        fast.close()
    finally:
        subprocess.run(down, env=env, capture_output=True, text=True, timeout=180)
        if tmp is not None:
            remove_later(tmp)


_LEFT: list[str] = []


def remove_later(directory: str) -> None:
    """Remove a finished workload's directory when the benchmark process exits, not now.

    This machine's root file system is ext4 without a journal: there, an inode freed less
    than ``vm.dirty_expire_centisecs`` (30 s) ago is skipped, one by one, by every file
    creation in its block group (``recently_deleted``). Removing a finished cluster's tens
    of thousands of job files right before the next workload would bill the harness's own
    cleanup to that workload's agent (~2 ms of kernel time a job, measured with perf)."""
    if not _LEFT:
        import atexit

        atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _LEFT])
    _LEFT.append(directory)


# --- printing ----------------------------------------------------------------------------------


def render_table(columns: dict[str, list[Metric]], ratio: tuple[str, str] | None = None) -> str:
    """A Markdown table: one row per metric key (in first-seen order), one column per cluster,
    and a ratio column ``ratio[0] / ratio[1]`` of the medians when given."""
    order: list[str] = []
    labels: dict[str, str] = {}
    for metrics in columns.values():
        for m in metrics:
            if m.key not in labels:
                order.append(m.key)
                labels[m.key] = m.label
    by_col = {name: {m.key: m for m in metrics} for name, metrics in columns.items()}
    head = ["metric", *columns]
    if ratio:
        head.append(f"{ratio[0]} / {ratio[1]}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in order:
        row = [labels[key]]
        for name in columns:
            m = by_col[name].get(key)
            if m is None:
                row.append("–")
            elif not m.samples and m.note.startswith("N/A"):
                row.append(m.note)
            else:
                row.append(m.summary())
        if ratio:
            a, b = by_col.get(ratio[0], {}).get(key), by_col.get(ratio[1], {}).get(key)
            if a and b and a.samples and b.samples and b.median and a.unit in ("s", "jobs/s", "tasks/s"):
                row.append(f"{a.median / b.median:.3g}x")
            else:
                row.append("")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def notes(columns: dict[str, list[Metric]]) -> str:
    out = []
    for name, metrics in columns.items():
        for m in metrics:
            if m.note and not m.note.startswith("N/A"):
                out.append(f"- {name}, {m.label}: {m.note}")
    return "\n".join(out)
