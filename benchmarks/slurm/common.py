"""Shared by bench.py and conformance.py: the Slurm cluster that setup.sh started, as a
:class:`benchmarks.spur_workloads.Cluster`, and facts about this machine."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.spur_workloads import Cluster, WorkloadError, wait_until

HERE = Path(__file__).resolve().parent
BASE = Path(os.environ.get("SPUR_SLURM_BASE", "/var/tmp/spur-bench-slurm"))
SLURM_CONF = BASE / "etc" / "slurm.conf"
SLURMCTLD_PORT = 6817


def slurm_env() -> dict[str, str]:
    """The environment for Slurm's commands: SLURM_CONF set, and Spur's tool directory (the
    venv's bin, which has commands of the same names) taken off PATH so that `srun` inside a
    Slurm job is Slurm's."""
    env = dict(os.environ, SLURM_CONF=str(SLURM_CONF))
    venv_bin = os.path.dirname(sys.executable)
    parts = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
             if p and os.path.realpath(p) != os.path.realpath(venv_bin) and not os.path.exists(os.path.join(p, "spur"))]
    env["PATH"] = os.pathsep.join(parts or ["/usr/bin", "/bin"])
    for key in ("SPUR_CONF", "VIRTUAL_ENV"):
        env.pop(key, None)
    return env


def require_slurm() -> dict[str, str]:
    if os.geteuid() != 0:
        raise SystemExit("this needs root (it reads every job's /proc entries and restarts slurmctld)")
    env = slurm_env()
    if not SLURM_CONF.exists() or shutil.which("sbatch", path=env["PATH"]) is None:
        raise SystemExit(f"no Slurm at {SLURM_CONF}: run benchmarks/slurm/setup.sh first")
    proc = subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=60)
    if "UP" not in proc.stdout:
        raise SystemExit(f"slurmctld does not answer ({proc.stdout.strip()} {proc.stderr.strip()}): "
                         "run benchmarks/slurm/setup.sh")
    return env


def _pid_file(name: str) -> Path:
    return BASE / "pids" / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def stop_slurmctld(sig: int = signal.SIGTERM) -> None:
    pid = int(_pid_file("slurmctld").read_text())
    if _alive(pid):
        os.kill(pid, sig)
        wait_until(lambda: not _alive(pid), 120, f"slurmctld (pid {pid}) to exit", 0.02)
    wait_until(lambda: not _port_open(SLURMCTLD_PORT), 30, "port 6817 to close", 0.02)


def crash_slurmctld() -> None:
    """SIGKILL: slurmctld saves nothing at the stop (it restarts from its last periodic save)."""
    stop_slurmctld(signal.SIGKILL)


def start_slurmctld() -> None:
    """Start slurmctld -D in its own session, record its pid where stop.sh finds it, and
    return once it accepts connections (the caller then times its first answer)."""
    log = open(BASE / "log" / "slurmctld.out", "ab")
    proc = subprocess.Popen(["/usr/sbin/slurmctld", "-D"], env=slurm_env(), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd="/")
    log.close()
    _pid_file("slurmctld").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 300
    while not _port_open(SLURMCTLD_PORT):
        if proc.poll() is not None:
            raise WorkloadError(f"slurmctld exited {proc.returncode}; see {BASE / 'log'}")
        if time.monotonic() > deadline:
            raise WorkloadError("slurmctld does not listen after 300 s")
        time.sleep(0.002)


def slurm_cluster(workdir: Path) -> Cluster:
    env = require_slurm()
    sbatch = shutil.which("sbatch", path=env["PATH"])
    assert sbatch is not None
    return Cluster(
        name="slurm", env=env, bindir=os.path.dirname(sbatch), workdir=workdir,
        stop_controller=stop_slurmctld, start_controller=start_slurmctld, crash_controller=crash_slurmctld,
    )


def set_scheduler(variant: str) -> None:
    """Rewrite slurm.conf with the default or tuned SchedulerParameters (setup.sh runs
    `scontrol reconfigure` when the file changed)."""
    subprocess.run([str(HERE / "setup.sh"), variant], check=True, env=slurm_env(),
                   stdout=subprocess.DEVNULL, timeout=600)
    want = "batch_sched_delay=20" if variant == "tuned" else "(null)"

    def applied() -> bool:
        out = subprocess.run(["scontrol", "show", "config"], env=slurm_env(), capture_output=True, text=True).stdout
        line = next((x for x in out.splitlines() if x.startswith("SchedulerParameters")), "")
        return want in line

    wait_until(applied, 60, f"SchedulerParameters {variant}", 0.2)


def slurm_version(env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(["sinfo", "-V"], env=env or slurm_env(), capture_output=True, text=True).stdout
        return out.strip()
    except OSError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    mem_mb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_mb = int(line.split()[1]) // 1024
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_mb": mem_mb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "slurm": slurm_version(),
        "date": time.strftime("%Y-%m-%d"),
        "hostname": socket.gethostname(),
    }
