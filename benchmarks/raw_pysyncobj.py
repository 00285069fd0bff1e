"""Baseline: raw pysyncobj with the same settings as spurctld's replica (journal + dump,
password, no append batching, same timeouts), 3 replicas in 3 processes on loopback.

    python -m benchmarks.raw_pysyncobj --dir DIR     # prints one JSON line

Replica 1 runs the load after a leader exists: single-op commit latency (sync calls from
the leader) and pipelined throughput (N calls in flight, callbacks counted).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from pysyncobj import SyncObj, SyncObjConf, replicated


class Counter(SyncObj):
    def __init__(self, me: str, others: list[str], directory: str) -> None:
        self.jobs: dict[int, bytes] = {}
        conf = SyncObjConf(
            password="benchmark-secret",
            journalFile=os.path.join(directory, "raft.journal"),
            fullDumpFile=os.path.join(directory, "raft.dump"),
            appendEntriesUseBatch=False,
            autoTickPeriod=0.01,
            appendEntriesPeriod=0.0375,
            raftMinTimeout=0.15,
            raftMaxTimeout=0.45,
            connectionRetryTime=0.3,
            leaderFallbackTimeout=2.0,
            logCompactionMinEntries=20000,
            logCompactionMinTime=3600 * 24 * 365,
        )
        super().__init__(me, others, conf)

    @replicated
    def submit(self, payload: bytes) -> int:
        job_id = len(self.jobs) + 1
        self.jobs[job_id] = payload
        return job_id


PAYLOAD = b"x" * 120  # about the size of an encoded trivial JobSubmitted


def load(node: Counter, n_latency: int, n_pipelined: int, window: int) -> dict:
    lat = []
    for _ in range(n_latency):
        t0 = time.perf_counter()
        node.submit(PAYLOAD, sync=True, timeout=10)
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    done = threading.Semaphore(0)
    slots = threading.Semaphore(window)

    def cb(res, err) -> None:
        slots.release()
        done.release()

    t0 = time.perf_counter()
    for _ in range(n_pipelined):
        slots.acquire()
        node.submit(PAYLOAD, callback=cb)
    for _ in range(n_pipelined):
        done.acquire()
    elapsed = time.perf_counter() - t0
    return {
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[int(len(lat) * 0.99) - 1],
        "pipelined_per_s": n_pipelined / elapsed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--node", type=int, default=0)
    parser.add_argument("--ports", default="")
    parser.add_argument("--latency-ops", type=int, default=300)
    parser.add_argument("--pipelined-ops", type=int, default=10000)
    parser.add_argument("--window", type=int, default=500)
    args = parser.parse_args(argv)
    if args.node == 0:  # orchestrator: start 3 replicas; the one that leads runs the load
        import selectors

        from spurctld.local import free_ports

        ports = ",".join(str(p) for p in free_ports(3))
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.raw_pysyncobj", "--dir", args.dir, "--node", str(i),
                 "--ports", ports, "--latency-ops", str(args.latency_ops),
                 "--pipelined-ops", str(args.pipelined_ops), "--window", str(args.window)],
                stdout=subprocess.PIPE, text=True,
            )
            for i in (1, 2, 3)
        ]
        sel = selectors.DefaultSelector()
        for p in procs:
            sel.register(p.stdout, selectors.EVENT_READ)
        line = ""
        deadline = time.monotonic() + 300
        while not line and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                line = key.fileobj.readline().strip()
                if line:
                    break
        for p in procs:
            p.kill()
            p.wait()
        print(line)
        return
    ports = [int(p) for p in args.ports.split(",")]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    me = addrs[args.node - 1]
    d = os.path.join(args.dir, f"raw-{args.node}")
    os.makedirs(d, exist_ok=True)
    node = Counter(me, [a for a in addrs if a != me], d)
    while not (node._isLeader() and node.isReady()):
        time.sleep(0.01)
    result = load(node, args.latency_ops, args.pipelined_ops, args.window)
    print(json.dumps(result), flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main()
