"""Commit benchmark: job submissions through 3 journaled spurctld replicas, beside raw
pysyncobj with the same settings, measured in the same run.

    python -m benchmarks.commit [--jobs N] [--window W] [--latency-ops N]

- pipelined: N `submit` RPCs in flight (window W) on one connection to the leader; the
  controller groups them into replicated entries (group commit). Baseline: N replicated
  calls with callbacks straight into a raw pysyncobj leader (no RPC, no WAL, no reducer).
- latency: one `submit` at a time (p50/p99), against raw pysyncobj `sync=True` calls.
Every acknowledged submission is durable (WAL fdatasync) on the replica that answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time

from spurctld.local import LocalCluster, write_config
from spurio import rpc

SPEC = {"name": "bench", "script": "#!/bin/bash\ntrue\n", "cwd": "/tmp"}


async def _pipelined(socket_path: str, n: int, window: int, tag: str) -> float:
    conn = await rpc.connect_unix(socket_path)
    sem = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with sem:
            await conn.call("submit", {"request_id": f"{tag}-{i}", "spec": SPEC}, timeout=120)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - t0
    conn.close()
    return n / elapsed


def _latency(socket_path: str, n: int, tag: str) -> list[float]:
    out = []
    with rpc.SyncClient.unix(socket_path, timeout=10) as client:
        for i in range(n):
            t0 = time.perf_counter()
            client.call("submit", {"request_id": f"{tag}-{i}", "spec": SPEC})
            out.append((time.perf_counter() - t0) * 1000)
    return sorted(out)


def spur_side(jobs: int, window: int, latency_ops: int, runs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="spur-commit-") as d:
        write_config(d, replicas=3, nodes=0)
        cluster = LocalCluster(d)
        cluster.up()
        try:
            sock = cluster.config.replica(cluster.wait_leader()).socket
            rates = [asyncio.run(_pipelined(sock, jobs, window, f"p{r}")) for r in range(runs)]
            lat = _latency(sock, latency_ops, "lat")
        finally:
            cluster.down()
    return {"pipelined": rates, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99) - 1]}


def raw_side(jobs: int, window: int, latency_ops: int, runs: int) -> dict:
    rates, p50s, p99s = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="raw-pysyncobj-") as d:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.raw_pysyncobj", "--dir", d, "--pipelined-ops", str(jobs),
                 "--window", str(window), "--latency-ops", str(latency_ops)],
                capture_output=True, text=True, timeout=600, check=True,
            ).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        rates.append(r["pipelined_per_s"])
        p50s.append(r["p50_ms"])
        p99s.append(r["p99_ms"])
    return {"pipelined": rates, "p50": statistics.median(p50s), "p99": statistics.median(p99s)}


def spread(values: list[float]) -> float:
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med else 0.0


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--latency-ops", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    spur = spur_side(args.jobs, args.window, args.latency_ops, args.runs)
    raw = raw_side(args.jobs, args.window, args.latency_ops, args.runs)
    ours, base = statistics.median(spur["pipelined"]), statistics.median(raw["pipelined"])
    rows = [
        {"figure": "commit: pipelined submissions/s (3 replicas)", "value": ours, "baseline": base,
         "baseline_name": "raw pysyncobj, same settings", "ratio": ours / base,
         "spread": spread(spur["pipelined"]), "target": ">= 5000/s"},
        {"figure": "commit: single submit latency p50 (ms)", "value": spur["p50"], "baseline": raw["p50"],
         "baseline_name": "raw pysyncobj sync call", "ratio": spur["p50"] / raw["p50"], "spread": 0.0,
         "target": "<= 3 ms"},
        {"figure": "commit: single submit latency p99 (ms)", "value": spur["p99"], "baseline": raw["p99"],
         "baseline_name": "raw pysyncobj sync call", "ratio": spur["p99"] / raw["p99"], "spread": 0.0,
         "target": "<= 10 ms"},
    ]
    for row in rows:
        print(f"{row['figure']}: {row['value']:,.2f} vs {row['baseline']:,.2f} ({row['baseline_name']}); "
              f"ratio {row['ratio']:.2f}; spread ±{row['spread'] * 50:.1f}%; target {row['target']}")
    return rows


if __name__ == "__main__":
    main()
