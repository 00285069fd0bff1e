"""A client workload run on a host: submits, cancels and reads, recording a history.

Run as ``python tests/hosts/workload.py --out FILE ...`` inside a host's namespace (the
harness does that). Each client thread has its own ``spurio.client.Client``, as a
command-line tool would, and appends JSON lines to ``--out``:

    {"client", "op": submit|cancel|read, "phase": invoke|ok|fail|unknown, "t": monotonic,
     "req": request id, "name": job name, "job": job id, "error": text, "seen": {id: state}}

Outcomes: ``ok`` (acknowledged), ``fail`` (a definite refusal: the op had no effect) and
``unknown`` (timeout or unreachable cluster: it may or may not have taken effect).
The job's name carries its request id, so the checker finds every job a submit created.
CLOCK_MONOTONIC is one clock for every namespace on the machine: histories of clients on
different hosts, the nemesis log and the task records can be ordered against each other.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from spurcli.sbatch import build_submission  # noqa: E402
from spurio.client import Client, ControllerUnavailable, new_request_id  # noqa: E402
from spurio.config import load  # noqa: E402
from spurio.rpc import RpcError  # noqa: E402

# Task records: one line per start and per normal end, in the node's own file.
SCRIPT = (
    'echo "start $SLURM_JOB_ID ${{SLURM_RESTART_COUNT:-0}} $SLURMD_NODENAME $$ $(cat /proc/uptime)"'
    ' >> "$SPUR_TASK_DIR/$SLURMD_NODENAME.log"\n'
    "sleep {seconds}\n"
    'echo "end $SLURM_JOB_ID ${{SLURM_RESTART_COUNT:-0}} $SLURMD_NODENAME $$ $(cat /proc/uptime)"'
    ' >> "$SPUR_TASK_DIR/$SLURMD_NODENAME.log"\n'
)
KILL = 1
DEFINITE = {"invalid_job_id", "access_denied", "bad_request", "already_done", "job_finished"}


class Recorder:
    def __init__(self, path: str) -> None:
        self._f = open(path, "a", buffering=1)
        self._lock = threading.Lock()

    def __call__(self, **event: object) -> None:
        event["t"] = time.monotonic()
        line = json.dumps(event, separators=(",", ":"))
        with self._lock:
            self._f.write(line + "\n")


def classify(exc: BaseException) -> str:
    if isinstance(exc, ControllerUnavailable):
        return "unknown"
    if isinstance(exc, RpcError):
        if exc.code in ("timeout", "connection_failed", "unknown_outcome", "no_leader", "not_ready",
                        "leader_changed", "queue_full"):
            return "unknown"
        return "fail"
    return "unknown"


def client_loop(idx: int, args: argparse.Namespace, record: Recorder, deadline: float) -> None:
    rng = random.Random(args.seed * 1000 + idx)
    name = f"{args.name}-{idx}"
    config = load(os.environ["SPUR_CONF"])
    mine: list[int] = []
    cancelled: set[int] = set()
    weights = [float(w) for w in args.mix.split(",")]
    with Client(config, retry_for=args.retry_for, timeout=args.timeout) as client:
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            next_at += rng.expovariate(args.rate)
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            kind = rng.choices(["submit", "cancel", "read"], weights)[0]
            if kind == "cancel" and not [j for j in mine if j not in cancelled]:
                kind = "submit"
            req = new_request_id()
            if kind == "submit":
                job_name = f"w{req[:12]}"
                script = SCRIPT.format(seconds=round(rng.uniform(args.sleep_min, args.sleep_max), 1))
                limit = ["-t", args.time_limit] if args.time_limit else []
                sub = build_submission(["-J", job_name, "-o", "/dev/null", *limit, "--wrap", script],
                                       environ=dict(os.environ), cwd=os.getcwd())
                record(client=name, op="submit", phase="invoke", req=req, name=job_name)
                try:
                    job = int(client.call("submit", {"request_id": req, "spec": sub.spec})["job_id"])
                except (RpcError, ControllerUnavailable, OSError) as exc:
                    record(client=name, op="submit", phase=classify(exc), req=req, name=job_name, error=str(exc))
                    continue
                mine.append(job)
                record(client=name, op="submit", phase="ok", req=req, name=job_name, job=job)
            elif kind == "cancel":
                job = rng.choice([j for j in mine if j not in cancelled])
                cancelled.add(job)
                record(client=name, op="cancel", phase="invoke", req=req, job=job)
                try:
                    client.call("signal", {"job_id": job, "kind": KILL, "signal": 9, "request_id": req})
                except (RpcError, ControllerUnavailable, OSError) as exc:
                    record(client=name, op="cancel", phase=classify(exc), req=req, job=job, error=str(exc))
                    continue
                record(client=name, op="cancel", phase="ok", req=req, job=job)
            else:
                record(client=name, op="read", phase="invoke", req=req)
                try:
                    reply = client.call("jobs", {"columns": True, "fields": ["job_id", "state"]})
                except (RpcError, ControllerUnavailable, OSError) as exc:
                    record(client=name, op="read", phase=classify(exc), req=req, error=str(exc))
                    continue
                import msgpack

                seen = {}
                for chunk in reply.get("row_chunks", []):
                    for job_id, state in msgpack.unpackb(chunk, raw=False):
                        seen[str(job_id)] = state
                record(client=name, op="read", phase="ok", req=req, seen=seen)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="c")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--rate", type=float, default=3.0, help="operations per second per client")
    p.add_argument("--mix", default="6,1,3", help="weights of submit, cancel, read")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sleep-min", type=float, default=1.0)
    p.add_argument("--sleep-max", type=float, default=4.0)
    p.add_argument("--retry-for", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one reply")
    p.add_argument("--time-limit", default="", help="sbatch -t for every job")
    args = p.parse_args()
    record = Recorder(args.out)
    deadline = time.monotonic() + args.duration
    threads = [threading.Thread(target=client_loop, args=(i, args, record, deadline)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record(client=args.name, op="done", phase="ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
