"""The end-to-end exit-code and signalling cases of tests/integration/test_e2e_cli.py, run on
Debian's Slurm (setup.sh) and on a `spur local` cluster at the same time, then diffed field by
field: `scontrol -d show job -o` (JobState, Reason, ExitCode, DerivedExitCode) and
`sacct -P -o JobID,State,ExitCode,DerivedExitCode` rows, job ids and node names normalised,
plus what each case observes besides (squeue's reason, srun's messages, who got a signal).

    benchmarks/slurm/setup.sh && .venv/bin/python -m benchmarks.slurm.conformance

Debian's Slurm is 22.05. Its known differences from current Slurm (which Spur follows, 25.11)
are annotated as such, not counted: a batch script killed by a signal ends with Reason
JobLaunchFailure (25.11: RaisedSignal:N(<name>)), and sacct shows an exit code above 128 as
code-128. Every other difference is printed as DIFF. Exit status: 1 if a case could not run
to the end (ERROR), or with --strict if there is any DIFF; 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import spur_workloads as wl
from benchmarks.slurm.common import machine_info, slurm_cluster

FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
SCONTROL_FIELDS = ("JobState", "Reason", "ExitCode", "DerivedExitCode")
SACCT_FIELDS = ("JobID", "State", "ExitCode", "DerivedExitCode")
KNOWN = "known 22.05 difference, Spur follows 25.11"
WAIT = 240.0  # per-job deadline (the time-limit case on Slurm takes 1-2.5 min)


@dataclass
class Observation:
    """What one case saw on one cluster: ordered fields, normalised."""

    fields: dict[str, str] = field(default_factory=dict)
    sacct: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class Ctx:
    cluster: wl.Cluster
    node: str  # the cluster's node name, replaced by <node> in what is compared
    work: Path

    def script(self, body: str) -> Path:
        path = self.work / f"job-{uuid.uuid4().hex[:12]}.sh"
        path.write_text(body)
        return path

    def sbatch(self, body: str, *opts: str) -> int:
        return self.cluster.sbatch(*opts, str(self.script(body)))

    def show(self, job_id: int) -> dict[str, str]:
        line = self.cluster.run("scontrol", "-d", "-o", "show", "job", str(job_id)).stdout.strip()
        return dict(re.findall(r" *([^ =]+)=(.*?)(?= +[^ =]+=| *$)", line))

    def wait_state(self, job_id: int, states: tuple[str, ...] = FINISHED, timeout: float = WAIT) -> dict[str, str]:
        def check() -> dict[str, str] | None:
            f = self.show(job_id)
            return f if f.get("JobState") in states else None

        return wl.wait_until(check, timeout, f"job {job_id} to reach {'/'.join(states)}", 0.1)

    def sacct(self, job_id: int, settle: float = 1.5, timeout: float = 90) -> list[str]:
        """sacct rows once the job row is final and the rows have not changed for ``settle`` s
        (slurmdbd gets them asynchronously)."""
        deadline = time.monotonic() + timeout
        last: list[str] | None = None
        since = time.monotonic()
        while True:
            rows = self.cluster.run("sacct", "-n", "-P", "-j", str(job_id), "-o", ",".join(SACCT_FIELDS),
                                    check=False).stdout.splitlines()
            final = bool(rows) and rows[0].split("|")[1].split(" ")[0] in FINISHED
            if rows != last:
                last, since = rows, time.monotonic()
            elif final and time.monotonic() - since >= settle:
                return rows
            if time.monotonic() > deadline:
                return rows
            time.sleep(0.25)

    def norm(self, text: str, ids: dict[int, str]) -> str:
        """Job ids become J (J1, J2): only where a job id stands (line start, after `job `/`Job `,
        `JobId=`, `afterok:`), never inside `0:9` or `RaisedSignal:9`; node names become <node>."""
        for job_id, name in ids.items():
            text = re.sub(rf"(?:^|(?<=job )|(?<=Job )|(?<=JobId=)|(?<=afterok:)){job_id}(?![0-9])", name, text,
                          flags=re.MULTILINE)
        return re.sub(rf"\b{re.escape(self.node)}\b", "<node>", text)

    def record(self, obs: Observation, job_id: int, ids: dict[int, str] | None = None,
               extra_fields: tuple[str, ...] = (), sacct: bool = True) -> dict[str, str]:
        ids = ids or {job_id: "J"}
        fields = self.show(job_id)
        for key in (*SCONTROL_FIELDS, *extra_fields):
            obs.fields[f"scontrol {key}"] = self.norm(fields.get(key, "<absent>"), ids)
        if sacct:
            obs.sacct = [self.norm(r, ids) for r in self.sacct(job_id)]
        return fields

    def output(self, job_id: int) -> str:
        path = self.work / f"slurm-{job_id}.out"
        try:
            return path.read_text()
        except OSError:
            return ""


# --- the cases (tests/integration/test_e2e_cli.py) ---------------------------------------------


def batch_exit(body: str) -> Callable[[Ctx, Observation], None]:
    def case(ctx: Ctx, obs: Observation) -> None:
        job_id = ctx.sbatch(f"#!/bin/bash\n{body}\n")
        ctx.wait_state(job_id)
        ctx.record(obs, job_id)
        line = ctx.cluster.run("squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%i|%t|%r").stdout.strip()
        obs.fields["squeue %i|%t|%r"] = ctx.norm(line, {job_id: "J"})

    return case


def srun_steps(codes: tuple[int, ...]) -> Callable[[Ctx, Observation], None]:
    def case(ctx: Ctx, obs: Observation) -> None:
        body = "".join(f"srun bash -c 'exit {c}'\n" for c in codes)
        job_id = ctx.sbatch(f"#!/bin/bash\n{body}exit 0\n")
        ctx.wait_state(job_id)
        ctx.record(obs, job_id)
        # srun's error lines (what the e2e test checks); informational lines such as 22.05's
        # "step creation temporarily disabled, retrying" depend on timing and are left out
        lines = [ln for ln in ctx.output(job_id).splitlines() if ln.startswith("srun: error:")]
        obs.fields["srun error messages"] = ctx.norm(" / ".join(lines), {job_id: "J"})

    return case


def step_segv(ctx: Ctx, obs: Observation) -> None:
    job_id = ctx.sbatch("#!/bin/bash\nsrun bash -c 'kill -SEGV $$'\necho rc=$?\n")
    ctx.wait_state(job_id)
    ctx.record(obs, job_id)
    out = ctx.output(job_id).splitlines()
    obs.fields["srun error messages"] = ctx.norm(" / ".join(ln for ln in out if ln.startswith("srun: error:")),
                                                 {job_id: "J"})
    obs.fields["shell saw"] = " ".join(ln for ln in out if ln.startswith("rc="))


def scancel_running(ctx: Ctx, obs: Observation) -> None:
    marker = ctx.work / f"started-{uuid.uuid4().hex[:8]}"
    job_id = ctx.sbatch(f"#!/bin/bash\ntouch {marker}\nsleep 300\n")
    wl.wait_until(marker.exists, WAIT, "the job to start", 0.05)
    ctx.cluster.run("scancel", str(job_id))
    ctx.wait_state(job_id)
    ctx.record(obs, job_id)
    rows = ctx.cluster.run("sacct", "-j", str(job_id), "-X", "-o", "JobID,State,ExitCode").stdout.splitlines()
    obs.fields["sacct -X (fixed width) job row"] = ctx.norm(" ".join(rows[2].split()) if len(rows) > 2 else "",
                                                            {job_id: "J"})


def scancel_pending(ctx: Ctx, obs: Observation) -> None:
    job_id = ctx.sbatch("#!/bin/bash\ntrue\n", "-H")
    obs.fields["Reason before scancel"] = ctx.show(job_id).get("Reason", "<absent>")
    ctx.cluster.run("scancel", str(job_id))
    ctx.wait_state(job_id)
    ctx.record(obs, job_id)


SIGNAL_SCRIPT = """#!/bin/bash
trap 'echo batch-got-usr1 >> {log}' USR1
bash -c 'trap "echo child-got-usr1 >> {log}" USR1; touch {ready}.child; while true; do sleep 0.1; done' &
srun bash -c 'trap "echo step-got-usr1 >> {log}" USR1; touch {ready}.step; while true; do sleep 0.1; done' &
while true; do sleep 0.1; done
"""


def scancel_usr1(flags: tuple[str, ...]) -> Callable[[Ctx, Observation], None]:
    def case(ctx: Ctx, obs: Observation) -> None:
        tag = uuid.uuid4().hex[:8]
        log, ready = ctx.work / f"signals-{tag}.log", ctx.work / f"ready-{tag}"
        job_id = ctx.sbatch(SIGNAL_SCRIPT.format(log=log, ready=ready))
        wl.wait_until(lambda: Path(f"{ready}.child").exists() and Path(f"{ready}.step").exists(), WAIT,
                      "the job's processes", 0.05)
        proc = ctx.cluster.run("scancel", "-v", "-s", "USR1", *flags, str(job_id))
        said = [ln.removeprefix("scancel: ") for ln in proc.stderr.splitlines() if "Signal" in ln]
        obs.fields["scancel -v says"] = ctx.norm(" / ".join(said), {job_id: "J"})
        time.sleep(3.0)  # the traps run after the current `sleep 0.1`; let every recipient show itself
        got = sorted(set(log.read_text().split())) if log.exists() else []
        obs.fields["received USR1"] = " ".join(got) or "(nobody)"
        obs.fields["JobState after the signal"] = ctx.show(job_id).get("JobState", "<absent>")
        ctx.cluster.run("scancel", str(job_id))
        ctx.wait_state(job_id)
        ctx.record(obs, job_id)

    return case


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def suspend_resume(ctx: Ctx, obs: Observation) -> None:
    job_id = ctx.sbatch("#!/bin/bash\nsleep 300\n")
    ctx.wait_state(job_id, ("RUNNING",))
    wl.wait_until(lambda: len(ctx.cluster.find_pids(job_id)) >= 2, WAIT, "the job's processes", 0.05)
    ctx.cluster.run("scontrol", "suspend", str(job_id))
    obs.fields["JobState after suspend"] = ctx.show(job_id).get("JobState", "<absent>")
    try:
        wl.wait_until(lambda: all(_proc_state(p) == "T" for p in ctx.cluster.find_pids(job_id)), 20,
                      "processes stopped", 0.05)
    except wl.WorkloadError:
        pass
    obs.fields["process states when suspended"] = " ".join(
        sorted(_proc_state(p) for p in ctx.cluster.find_pids(job_id)))
    ctx.cluster.run("scontrol", "resume", str(job_id))
    obs.fields["JobState after resume"] = ctx.show(job_id).get("JobState", "<absent>")
    try:
        wl.wait_until(lambda: all(_proc_state(p) in "SR" for p in ctx.cluster.find_pids(job_id)), 20,
                      "processes running", 0.05)
    except wl.WorkloadError:
        pass
    obs.fields["process states when resumed"] = " ".join(
        sorted(_proc_state(p) for p in ctx.cluster.find_pids(job_id)))
    ctx.cluster.run("scancel", str(job_id))
    ctx.wait_state(job_id)
    wl.wait_until(lambda: not ctx.cluster.find_pids(job_id), 60, "no process of the job left", 0.05)
    ctx.record(obs, job_id)


def dependency_never(ctx: Ctx, obs: Observation) -> None:
    first = ctx.sbatch("#!/bin/bash\nexit 1\n")
    ctx.wait_state(first)
    second = ctx.sbatch("#!/bin/bash\ntrue\n", "-d", f"afterok:{first}")
    ids = {first: "J1", second: "J2"}
    try:
        wl.wait_until(lambda: ctx.show(second).get("Reason") == "DependencyNeverSatisfied", 60,
                      "DependencyNeverSatisfied", 0.2)
    except wl.WorkloadError:
        pass
    ctx.record(obs, second, ids, extra_fields=("Dependency",), sacct=False)
    line = ctx.cluster.run("squeue", "-h", "-j", str(second), "-o", "%i %t %R").stdout.strip()
    obs.fields["squeue %i %t %R"] = ctx.norm(line, ids)
    ctx.cluster.run("scancel", str(second))
    ctx.wait_state(second)
    obs.sacct = [ctx.norm(r, ids) for r in ctx.sacct(second)]


def time_limit(ctx: Ctx, obs: Observation) -> None:
    body = "#!/bin/bash\ntrap '' TERM\nsleep 300\n"
    if ctx.cluster.name == "spur":  # as the test does: 1 second, through the Python client
        client = ctx.cluster.extra["local"].client()
        spec = {"name": "tl", "script": body, "cwd": str(ctx.work), "time_limit": 1}
        job_id = int(client.call("submit", {"request_id": uuid.uuid4().hex, "spec": spec})["job_id"])
        client.close()
    else:  # Slurm's smallest limit: -t 1 is a minute (enforced on a ~30 s timer)
        job_id = ctx.sbatch(body, "-t", "1")
    ctx.wait_state(job_id, (*FINISHED,), timeout=300)
    ctx.record(obs, job_id)


@dataclass
class Case:
    name: str
    run: Callable[[Ctx, Observation], None]
    slow: bool = False


CASES = [
    Case("time limit (TERM ignored)", time_limit, slow=True),
    Case("exit 0", batch_exit("exit 0")),
    Case("exit 13", batch_exit("exit 13")),
    Case("exit 200", batch_exit("exit 200")),
    Case("exit 137", batch_exit("exit 137")),
    Case("kill -INT $$", batch_exit("kill -INT $$")),
    Case("kill -TERM $$", batch_exit("kill -TERM $$")),
    Case("kill -SEGV $$", batch_exit("kill -SEGV $$")),
    Case("kill -KILL $$", batch_exit("kill -KILL $$")),
    Case("srun steps exit 7,3,2", srun_steps((7, 3, 2))),
    Case("srun steps exit 2,3,7", srun_steps((2, 3, 7))),
    Case("srun step killed by SIGSEGV", step_segv),
    Case("scancel of a running job", scancel_running),
    Case("scancel of a pending (held) job", scancel_pending),
    Case("scancel -s USR1 (no flag)", scancel_usr1(())),
    Case("scancel -s USR1 -b", scancel_usr1(("-b",))),
    Case("scancel -s USR1 -f", scancel_usr1(("-f",))),
    Case("suspend / resume", suspend_resume),
    Case("dependency never satisfied", dependency_never),
]


def run_all(ctx: Ctx, cases: list[Case], workers: int) -> dict[str, Observation]:
    results: dict[str, Observation] = {c.name: Observation() for c in cases}

    def one(case: Case) -> None:
        obs = results[case.name]
        try:
            case.run(ctx, obs)
        except Exception as exc:  # a case that fails is reported, the others go on
            obs.error = f"{type(exc).__name__}: {exc}"
        print(f"[{time.strftime('%H:%M:%S')}] {ctx.cluster.name}: {case.name} done"
              f"{' (error)' if obs.error else ''}", file=sys.stderr, flush=True)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, cases))
    return results


# --- diff ---------------------------------------------------------------------------------------


def _code(ec: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+):(\d+)", ec)
    return (int(m[1]), int(m[2])) if m else None


def known_difference(case: str, what: str, slurm: str, spur: str) -> str:
    """Why a Slurm 22.05 value differs from Spur's (25.11) value, if it is a known 22.05 trait."""
    if spur.startswith("RaisedSignal:") and slurm == "JobLaunchFailure":
        return KNOWN + " (22.05: Reason JobLaunchFailure for a batch script killed by a signal)"
    if what.endswith("%r") and "RaisedSignal:" in spur and slurm.endswith("|JobLaunchFailure"):
        return KNOWN + " (22.05: Reason JobLaunchFailure for a batch script killed by a signal)"
    if what.startswith("sacct") and what.endswith("ExitCode"):
        a, b = _code(slurm), _code(spur)
        if a and b and b[0] > 128 and a == (b[0] - 128, b[1]):
            return KNOWN + " (22.05's sacct shows an exit code above 128 as code-128)"
    return ""


def note_for(case: str, what: str, slurm: str, spur: str) -> str:
    """A hint printed under an unexplained difference (it is still counted as a DIFF)."""
    if what == "process states when suspended" and set(slurm.split()) == {"D"}:
        return ("Slurm's proctrack/cgroup suspends with the cgroup freezer (frozen tasks show D); "
                "Spur sends SIGSTOP (T). With proctrack/linuxproc Slurm shows T too")
    if what == "sacct J DerivedExitCode" and slurm == "0:0":
        return ("22.05 writes the job row's DerivedExitCode when the job completes, which for scancel is "
                "before the steps end; newer Slurm also raises it as each step completes (probably a 22.05 "
                "difference; check against 25.11)")
    return ""


def sacct_table(rows: list[str]) -> dict[str, list[str]]:
    out = {}
    for row in rows:
        parts = row.split("|")
        out[parts[0]] = parts
    return out


def compare(slurm: Observation, spur: Observation, case: str) -> list[tuple[str, str, str, str]]:
    """(what, slurm value, spur value, verdict) for every compared item; verdict '' = same."""
    rows: list[tuple[str, str, str, str]] = []
    if slurm.error or spur.error:
        rows.append(("error", slurm.error or "-", spur.error or "-", "ERROR"))
    for key in dict.fromkeys([*slurm.fields, *spur.fields]):
        a, b = slurm.fields.get(key, "<absent>"), spur.fields.get(key, "<absent>")
        rows.append((key, a, b, "" if a == b else (known_difference(case, key, a, b) or "DIFF")))
    ta, tb = sacct_table(slurm.sacct), sacct_table(spur.sacct)
    for jobid in dict.fromkeys([*ta, *tb]):
        ra, rb = ta.get(jobid), tb.get(jobid)
        if ra is None or rb is None:
            rows.append((f"sacct row {jobid}", "|".join(ra) if ra else "<no row>", "|".join(rb) if rb else "<no row>",
                         "DIFF"))
            continue
        for i, name in enumerate(SACCT_FIELDS[1:], start=1):
            a = ra[i] if i < len(ra) else "<absent>"
            b = rb[i] if i < len(rb) else "<absent>"
            what = f"sacct {jobid} {name}"
            rows.append((what, a, b, "" if a == b else (known_difference(case, what, a, b) or "DIFF")))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="", help="run only cases whose name contains one of these "
                                                    "comma-separated words")
    parser.add_argument("--workers", type=int, default=3, help="cases run at once on each cluster")
    parser.add_argument("--all-fields", action="store_true", help="print equal fields too")
    parser.add_argument("--strict", action="store_true", help="exit 1 when there is any unexplained difference")
    args = parser.parse_args(argv)
    cases = CASES
    if args.cases:
        words = [w for w in args.cases.split(",") if w]
        cases = [c for c in CASES if any(w in c.name for w in words)]
    work = Path(tempfile.mkdtemp(prefix="spur-conformance-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    (work / "slurm").mkdir()
    (work / "spur").mkdir()
    info = machine_info()
    slurm = slurm_cluster(work / "slurm")
    node = slurm.run("sinfo", "-h", "-o", "%n").stdout.split()[0]
    results: dict[str, dict[str, Observation]] = {}
    with wl.spur_local(work / "spur-cluster", replicas=1, nodes=1, cpus=os.cpu_count(), kill_wait=30.0,
                       workdir=work / "spur") as spur:
        threads = [
            threading.Thread(target=lambda: results.__setitem__(
                "slurm", run_all(Ctx(slurm, node, work / "slurm"), cases, args.workers))),
            threading.Thread(target=lambda: results.__setitem__(
                "spur", run_all(Ctx(spur, "node1", work / "spur"), cases, args.workers))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    print(f"# Conformance: {info['slurm']} (Debian) vs Spur, {info['date']} on {info['hostname']}")
    print("Job ids are J (J1, J2 for two jobs) and node names <node>. 'known' = "
          f"{KNOWN}; DIFF = any other difference.\n")
    diffs = known = errors = 0
    summary: list[str] = []
    for case in cases:
        rows = compare(results["slurm"][case.name], results["spur"][case.name], case.name)
        errors += sum(1 for r in rows if r[3] == "ERROR")
        bad = [r for r in rows if r[3]]
        print(f"## {case.name}: {'same' if not bad else f'{len(bad)} difference(s)'}")
        for what, a, b, verdict in rows:
            if not verdict and not args.all_fields:
                continue
            tag = "known" if verdict.startswith(KNOWN) else (verdict or "same")
            print(f"  {tag:<5} {what:<34} slurm={a!r:<38} spur={b!r}")
            if verdict.startswith(KNOWN):
                print(f"        ({verdict})")
                known += 1
            elif verdict:
                diffs += 1
                summary.append(f"{case.name}: {what}: slurm={a!r} spur={b!r}")
                hint = note_for(case.name, what, a, b)
                if hint:
                    print(f"        (note: {hint})")
        if not args.all_fields:
            same = sum(1 for r in rows if not r[3])
            print(f"  ({same} field(s) equal)")
        print()
    print(f"Summary: {len(cases)} cases, {diffs} difference(s), {known} known 22.05 difference(s).")
    for line in summary:
        print(f"  DIFF {line}")
    shutil.rmtree(work, ignore_errors=True)
    if errors:
        print(f"{errors} case(s) could not run to the end on one of the clusters (see ERROR above).")
        return 1
    return 1 if diffs and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
