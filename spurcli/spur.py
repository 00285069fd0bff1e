"""``spur``: the one-machine cluster, job logs, a live view and time travel.

    spur local up --dir DIR [--replicas 1|3] [--nodes N] [--cpus C] [--gpus G]
                  [--partitions 'NAME[=NODES];...']
    spur local down --dir DIR
    spur local status --dir DIR [--json]
    spur log [-f] JOBID
    spur top
    spur history JOBID [--at TIME]
    spur health [--json] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

VERSION = "spur 0.1.0 (slurm 25.11.0 compatible)"


def _cmd_local(args: argparse.Namespace) -> int:
    from spurctld.local import LocalCluster, parse_setting, write_config

    directory = os.path.abspath(args.dir)
    conf = os.path.join(directory, "spur.toml")
    if args.action == "up":
        if not os.path.exists(conf):
            try:
                settings = dict(parse_setting(s) for s in args.set)
            except ValueError as exc:
                print(f"spur: error: --set: {exc}", file=sys.stderr)
                return 2
            try:
                write_config(directory, replicas=args.replicas, nodes=args.nodes, cpus=args.cpus,
                             kill_wait=args.kill_wait, settings=settings, gpus=args.gpus,
                             partitions=args.partitions or None, tls=args.tls)
            except ValueError as exc:
                print(f"spur: error: {exc}", file=sys.stderr)
                return 1
        cluster = LocalCluster(directory)
        try:
            cluster.up(timeout=args.timeout)
        except TimeoutError as exc:
            print(f"spur: error: {exc}; logs are in {cluster.log_dir}", file=sys.stderr)
            return 1
        cluster.write_status()
        print(f"export SPUR_CONF={conf}")
        return 0
    if not os.path.exists(conf):
        print(f"spur: error: no cluster in {directory} (no spur.toml)", file=sys.stderr)
        return 1
    cluster = LocalCluster(directory)
    if args.action == "down":
        cluster.down()
        return 0
    rows = cluster.status()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'NAME':<10} {'PID':>8} {'ROLE':<9} ADDRESS")
        for row in rows:
            pid = row["pid"] if row["pid"] else "-"
            print(f"{row['name']:<10} {pid!s:>8} {row['role']:<9} {row['address']}")
    return 0


def _client():
    from spurio.client import Client
    from spurio.config import find_config_path, load

    path = find_config_path()
    if path is None:
        print("spur: error: no spur.toml found (set SPUR_CONF)", file=sys.stderr)
        sys.exit(1)
    return Client(load(path))


def _job(client, job_id: int) -> dict | None:
    jobs = client.call("jobs", {"job_ids": [job_id]})["jobs"]
    return jobs[0] if jobs else None


def _cmd_log(args: argparse.Namespace) -> int:
    """Print the job's output so far, then (with -f) follow it until the job ends.

    The file is the single source: readers keep their own offset, so history and live
    output meet with no gap and no duplicate, and any number of readers may follow.
    """
    from spurio.rpc import RpcError

    client = _client()
    try:
        job = _job(client, args.job_id)
        if job is None:
            history = client.call("history", {"job_ids": [args.job_id]})["jobs"]
            job = history[-1] if history else None
    except RpcError as exc:
        print(f"spur: error: {exc.message}", file=sys.stderr)
        return 1
    if job is None:
        print("spur: error: Invalid job id specified", file=sys.stderr)
        return 1
    path = job.get("stdout") or ""
    if not path:
        print(f"spur: error: job {args.job_id} has no output file", file=sys.stderr)
        return 1
    offset = 0
    out = sys.stdout.buffer
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            out.write(chunk)
            out.flush()
            offset += len(chunk)
        if not args.follow:
            return 0
        try:
            job = _job(client, args.job_id)
        except RpcError:
            job = None
        ended = job is None or job["state"] not in ("PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED")
        if ended:
            # one last read after the end: output written just before the job ended
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    rest = f.read()
            except FileNotFoundError:
                rest = b""
            out.write(rest)
            out.flush()
            return 0
        time.sleep(0.1)


def _cmd_history(args: argparse.Namespace) -> int:
    from spurcli.common import group_name
    from spurcore.render.scontrol import show_job
    from spurcore.timefmt import parse_time
    from spurio.rpc import RpcError

    client = _client()
    now = time.time()
    try:
        at = parse_time(args.at, now, past=True) if args.at else now  # a time of day means the last one
    except ValueError as exc:
        print(f"spur: error: {exc}", file=sys.stderr)
        return 1
    try:
        job = client.call("job_at", {"job_id": args.job_id, "at": at})["job"]
    except RpcError as exc:
        print(f"spur: error: {exc.message}", file=sys.stderr)
        return 1
    job["group"] = group_name(int(job.get("gid", 0)))
    sys.stdout.write(show_job(job, detail=True, now=at))
    return 0


def _cmd_top(args: argparse.Namespace) -> int:
    from rich.live import Live
    from rich.table import Table

    from spurcore.timefmt import fmt_duration_squeue
    from spurio.rpc import RpcError

    client = _client()

    def view() -> Table:
        try:
            nodes = client.call("nodes")["nodes"]
            jobs = client.call("jobs", {"states": ["PENDING", "RUNNING", "SUSPENDED", "COMPLETING"]})["jobs"]
        except RpcError as exc:
            table = Table(title=f"spur top: {exc.message}")
            return table
        table = Table(title=f"spur top — {len(nodes)} nodes, {len(jobs)} active jobs", expand=True)
        for col in ("NODE/JOB", "STATE", "CPUS", "USER", "TIME", "NODELIST(REASON)"):
            table.add_column(col)
        for n in nodes:
            table.add_row(n["name"], n["state"], f"{n['alloc_cpus']}/{n['cpus']}", "", "", "")
        for j in sorted(jobs, key=lambda j: j["job_id"]):
            where = j["nodes"] if j["state"] != "PENDING" else f"({j['reason']})"
            table.add_row(f"{j['job_id']} {j['name']}", j["state"], str(j["num_cpus"]), j["user"],
                          fmt_duration_squeue(int(j["run_time"])), where)
        return table

    iterations = args.iterations
    with Live(view(), refresh_per_second=4, screen=False) as live:
        count = 0
        while iterations == 0 or count < iterations:
            time.sleep(args.interval)
            live.update(view())
            count += 1
    return 0


def _probe(config, replica, timeout: float) -> dict:
    """One replica's own answers to ``ping`` and ``digest`` (never forwarded)."""
    from spurio.client import endpoint_of, open_replica
    from spurio.rpc import RpcError

    row = {"id": replica.id, "address": endpoint_of(replica).split(":", 1)[1], "error": None}
    t = time.monotonic()
    try:
        with open_replica(config, replica, timeout=timeout) as conn:
            ping = conn.call("ping", {}, timeout=timeout)
            digest = conn.call("digest", {}, timeout=timeout)
    except (RpcError, OSError) as exc:
        row["error"] = getattr(exc, "message", "") or str(exc)
        return row
    row["rtt"] = round(time.monotonic() - t, 4)
    row.update(ping)
    row["digest"] = digest.get("digest")
    row["digest_index"] = digest.get("applied_index")
    return row


def health_report(rows: list[dict]) -> tuple[list[str], int]:
    """The problems (empty: healthy) and the exit status: 0 healthy, 1 degraded (a replica
    unreachable or failed, no ready leader, or more than one leader), 2 digests differ."""
    problems = []
    status = 0
    up = [r for r in rows if not r["error"]]
    for r in rows:
        if r["error"]:
            problems.append(f"replica {r['id']} unreachable: {r['error']}")
        elif r.get("failed"):
            problems.append(f"replica {r['id']} failed: {r['failed']}")
    leaders = [r for r in up if r.get("leader")]
    ready = [r for r in leaders if r.get("ready")]
    if not ready:
        problems.append("no ready leader")
    if len(leaders) > 1:
        problems.append("more than one replica claims to lead: " + ", ".join(str(r["id"]) for r in leaders))
    if problems:
        status = 1
    by_index: dict = {}
    for r in up:
        if r.get("digest"):
            by_index.setdefault(r["digest_index"], set()).add(r["digest"])
    for index, digests in sorted(by_index.items()):
        if len(digests) > 1:
            problems.append(f"digests differ at applied index {index}: " + ", ".join(d[:12] for d in sorted(digests)))
            status = 2
    return problems, status


def _cmd_health(args: argparse.Namespace) -> int:
    """Each replica's role, term, applied index, digest and lag, and the agents' last contact."""
    from concurrent.futures import ThreadPoolExecutor

    from spurio.config import find_config_path, load

    path = find_config_path()
    if path is None:
        print("spur: error: no spur.toml found (set SPUR_CONF)", file=sys.stderr)
        return 1
    config = load(path)
    with ThreadPoolExecutor(max_workers=len(config.replicas)) as pool:  # a dead replica costs one timeout
        rows = list(pool.map(lambda r: _probe(config, r, args.timeout), config.replicas))
    up = [r for r in rows if not r["error"]]
    leader = next((r for r in up if r.get("ready")), None) or next((r for r in up if r.get("leader")), None)
    top = leader["applied_index"] if leader else max((r["applied_index"] for r in up), default=0)
    for r in up:
        r["lag"] = top - r["applied_index"]
        r["role"] = "failed" if r.get("failed") else (
            "leader" if r.get("ready") else "leader*" if r.get("leader") else "follower")
    agents = leader.get("agents", {}) if leader else {}
    problems, status = health_report(rows)
    if args.json:
        print(json.dumps({"replicas": rows, "agents": agents, "problems": problems}, indent=2))
        return status
    print(f"{'REPLICA':<8} {'ADDRESS':<22} {'ROLE':<9} {'TERM':>5} {'APPLIED':>8} {'LAG':>5} {'DIGEST':<12} PROBE")
    for r in rows:
        if r["error"]:
            print(f"{r['id']:<8} {r['address']:<22} {'down':<9} {'-':>5} {'-':>8} {'-':>5} {'-':<12} -")
            continue
        print(f"{r['id']:<8} {r['address']:<22} {r['role']:<9} {r['term']:>5} {r['applied_index']:>8} "
              f"{r['lag']:>5} {(r.get('digest') or '-')[:12]:<12} {r['rtt'] * 1000:.1f}ms")
    if agents:
        print()
        print(f"{'AGENT':<16} {'LAST CONTACT':>12} CONNECTED")
        for name, a in agents.items():
            seen = "-" if a["last_contact"] is None else f"{a['last_contact']:.1f}s"
            print(f"{name:<16} {seen:>12} {'yes' if a['connected'] else 'no'}")
    for p in problems:
        print(f"spur health: {p}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spur", description="Spur: local clusters, job logs, live view, history")
    parser.add_argument("-V", "--version", action="version", version=VERSION)
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="run a cluster on this machine")
    local.add_argument("action", choices=["up", "down", "status"])
    local.add_argument("--dir", required=True)
    local.add_argument("--replicas", type=int, choices=[1, 3, 5], default=1)
    local.add_argument("--nodes", type=int, default=1)
    local.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    local.add_argument("--kill-wait", type=float, default=2.0)
    local.add_argument("--tls", action="store_true",
                       help="TLS for the controllers' and agents' endpoints, with a test PKI in DIR/tls")
    local.add_argument("--gpus", type=int, default=0, help="fake GPUs per node (Gres=gpu:N) for tests and demos")
    local.add_argument("--partitions", default="",
                       help="partitions as 'NAME=NODES;NAME2=NODES2' (a bare NAME holds every node; the first is the default)")
    local.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a [cluster] setting of the new spur.toml (max_array_size=10001, ...)")
    local.add_argument("--timeout", type=float, default=60.0)
    local.add_argument("--json", action="store_true")
    local.set_defaults(func=_cmd_local)

    log = sub.add_parser("log", help="a job's output")
    log.add_argument("-f", "--follow", action="store_true")
    log.add_argument("job_id", type=int)
    log.set_defaults(func=_cmd_log)

    top = sub.add_parser("top", help="live view of nodes and jobs")
    top.add_argument("--interval", type=float, default=1.0)
    top.add_argument("--iterations", type=int, default=0, help="stop after N refreshes (0: run until ^C)")
    top.set_defaults(func=_cmd_top)

    history = sub.add_parser("history", help="a job as it was at a past moment (replays the log)")
    history.add_argument("job_id", type=int)
    history.add_argument("--at", default="", help="a time as sacct -S takes it (default: now)")
    history.set_defaults(func=_cmd_history)

    health = sub.add_parser("health", help="replicas' roles, terms, applied indexes, digests; agents' last contact")
    health.add_argument("--json", action="store_true")
    health.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each replica")
    health.set_defaults(func=_cmd_health)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
