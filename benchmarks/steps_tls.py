"""What reaching the agents over TLS costs (issue 13): srun from "another host" against srun
beside the agents, on one loopback cluster configured with TLS (``write_config(tls=True)``).

    sudo python -m benchmarks.steps_tls [--runs N]

"Another host" is a mount namespace where the cluster's Unix sockets are hidden, so the
tools use the replicas' TLS ``rpc`` and the agents' TLS step endpoints (needs root, as the
multi-host tests do). Figures: ``srun -n1 true`` wall time (controller and agent both over
TLS, against both over Unix sockets), one ``step_stat`` round trip to an agent over each
transport (the agent's part alone: connect, handshake, relay fork, answer), step output
throughput through a relay and directly, and a relay's resident memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def _elsewhere(run_dir: Path, argv: list[str]) -> list[str]:
    script = 'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, str(run_dir), *argv]


def _timed(argv: list[str], env: dict[str, str], **kw: Any) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, **kw)
    return time.perf_counter() - t0


def _memory_kb(pid: int) -> dict[str, int]:
    """Rss, and what is the relay's own (Private_*: not shared with its zygote)."""
    out = {"rss": 0, "private": 0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            out["rss"] = int(line.split()[1])
        elif line.startswith(("Private_Clean:", "Private_Dirty:")):
            out["private"] += int(line.split()[1])
    return out


def measure(runs: int = 10) -> dict[str, Any]:
    import pwd

    from spurctld.local import LocalCluster, write_config
    from spurio import stepserver

    me = pwd.getpwuid(os.getuid()).pw_name
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="spur-tls-bench") as d:
        write_config(d, replicas=1, nodes=1, cpus=2, kill_wait=2.0, tls=True, tls_users=[(me, "user")])
        cluster = LocalCluster(d)
        cluster.up()
        env = {**cluster.env, **cluster.client_cert(me)}
        run_dir = cluster.dir / "run"
        srun = [str(BIN / "srun"), "-n1", "true"]
        try:
            for key, argv in (("srun_unix", srun), ("srun_tls", _elsewhere(run_dir, srun))):
                _timed(argv, env)  # warm up (page cache, the relay zygote)
                out[key] = [_timed(argv, env) for _ in range(runs)]
            # one step whose tasks wait, to time step_stat against it over each transport
            gate = cluster.dir / "gate"
            hold = subprocess.Popen([str(BIN / "srun"), "-n1", "bash", "-c", f"while [ ! -e {gate} ]; do sleep 0.1; done"],
                                    env=env)
            with cluster.client() as c:
                deadline = time.monotonic() + 30
                while True:
                    jobs = [j for j in c.call("jobs", {"with_steps": True})["jobs"] if j["state"] == "RUNNING"]
                    if jobs and any(s.get("step_id") == 0 for s in jobs[0].get("steps") or ()):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError("the step did not start")
                    time.sleep(0.05)
                address = {n["name"]: n["address"] for n in c.call("nodes", {})["nodes"]}["node1"]
            job_id = jobs[0]["job_id"]
            tcp = next(e for e in stepserver.endpoints(address) if e.startswith("tcp:"))
            unix = next(e for e in stepserver.endpoints(address) if e.startswith("unix:"))
            tls = (cluster.config.tls_ca, env["SPUR_CERT"], env["SPUR_KEY"])
            for key, endpoint in (("stat_unix", unix), ("stat_tls", tcp)):
                samples = []
                for _ in range(runs * 3):
                    t0 = time.perf_counter()
                    with stepserver.connect(endpoint, timeout=10, tls=tls) as sock:
                        sock.sendall(stepserver.request(1, "step_stat", {"job_id": job_id, "step_id": 0}))
                        reader = stepserver.FrameReader()
                        while not reader.feed(sock.recv(65536)):
                            pass
                    samples.append(time.perf_counter() - t0)
                out[key] = samples
            gate.touch()
            hold.wait(30)
            # throughput: 512 MiB of a task's stdout to srun, through a relay and directly
            big = [str(BIN / "srun"), "-n1", "head", "-c", str(512 << 20), "/dev/zero"]
            for key, argv in (("out_unix", big), ("out_tls", _elsewhere(run_dir, big))):
                out[key] = [(512 / _timed(argv, env, stdout=subprocess.DEVNULL)) for _ in range(3)]
            # a relay's memory, while it relays a step
            gate2 = cluster.dir / "gate2"
            hold = subprocess.Popen(_elsewhere(run_dir, [str(BIN / "srun"), "-n1", "bash", "-c",
                                                         f"while [ ! -e {gate2} ]; do sleep 0.1; done"]), env=env)
            deadline = time.monotonic() + 30
            relays: list[int] = []
            while not relays and time.monotonic() < deadline:
                time.sleep(0.1)
                for p in Path("/proc").iterdir():
                    if p.name.isdigit():
                        try:
                            cmd = (p / "cmdline").read_bytes()
                        except OSError:
                            continue
                        if b"spurd.steprelay" in cmd and str(cluster.dir).encode() in cmd and os.getsid(int(p.name)) \
                                == int(p.name):
                            relays.append(int(p.name))
            out["relay_kb"] = [_memory_kb(pid) for pid in relays]
            gate2.touch()
            hold.wait(30)
        finally:
            cluster.down()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (a mount namespace hides the sockets)", file=sys.stderr)
        return 2
    r = measure(args.runs)
    med = statistics.median
    print(f"srun -n1 true, Unix sockets:         p50 {med(r['srun_unix']) * 1000:.0f} ms")
    print(f"srun -n1 true, TLS (ctl + agent):    p50 {med(r['srun_tls']) * 1000:.0f} ms")
    print(f"step_stat round trip, Unix:          p50 {med(r['stat_unix']) * 1000:.1f} ms")
    print(f"step_stat round trip, TLS + relay:   p50 {med(r['stat_tls']) * 1000:.1f} ms")
    print(f"step stdout to srun, Unix:           {med(r['out_unix']):.0f} MiB/s")
    print(f"step stdout to srun, TLS + relay:    {med(r['out_tls']):.0f} MiB/s")
    for mem in r["relay_kb"]:
        print(f"relay memory:                        {mem['rss']} KiB resident, {mem['private']} KiB its own")
    return 0


if __name__ == "__main__":
    sys.exit(main())
