"""``make hosts-up`` / ``make hosts-down``: a multi-host cluster to try things by hand.

    python -m tests.hosts.up up   [--dir DIR] [--replicas 3] [--nodes 2]
    python -m tests.hosts.up down [--dir DIR]

``up`` leaves the cluster running (root; namespaces ``<tag>-ctl1`` ... ``<tag>-login``) and
writes ``DIR/on``: ``DIR/on login sbatch --wrap hostname`` runs a command on a host with
that host's environment (the login host has root's certificate in SPUR_CERT/SPUR_KEY).
``down`` kills exactly the processes ``up`` started (by pid), the job supervisors under
the cluster's spools, and removes the namespaces.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

from tests.hosts import netns
from tests.hosts.cluster import HostCluster

DEFAULT_DIR = "/tmp/spur-hosts-cluster"


def _on_script(cluster: HostCluster) -> str:
    lines = ["#!/bin/sh", "# usage: on HOST COMMAND...  (run COMMAND on that host)", 'host=$1; shift', 'case "$host" in']
    for name in cluster.hosts:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in cluster.env(name).items())
        argv = " ".join(shlex.quote(a) for a in cluster._argv(name, ["env", "-i"]))
        lines.append(f'  {name}) cd {shlex.quote(str(cluster.host_dir(name)))} && exec {argv} {env} "$@" ;;')
    lines += ['  *) echo "hosts: ' + " ".join(cluster.hosts) + '" >&2; exit 2 ;;', "esac", ""]
    return "\n".join(lines)


def up(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if (root / "cluster.json").exists():
        print(f"hosts: a cluster already runs in {root} (make hosts-down first)", file=sys.stderr)
        return 1
    missing = netns.missing_tools()
    if missing:
        print("hosts: need " + ", ".join(missing), file=sys.stderr)
        return 1
    cluster = HostCluster(root, replicas=args.replicas, nodes=args.nodes, persistent=True)
    try:
        cluster.up()
    except BaseException:
        cluster.destroy()
        raise
    on = root / "on"
    on.write_text(_on_script(cluster))
    on.chmod(0o755)
    leader = cluster.leader()
    print(f"hosts: {len(cluster.controllers)} controllers (ctl{leader} leads), {len(cluster.nodes)} nodes, "
          f"login, in namespaces {cluster.tag}-*")
    print(f"  {on} login sbatch --wrap hostname")
    print(f"  {on} login spur health")
    print(f"  logs: {root}/hosts/<host>/log/    stop: make hosts-down")
    return 0


def down(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    try:
        tag = json.loads((root / "cluster.json").read_text())["tag"]
    except (OSError, ValueError, KeyError):
        print(f"hosts: no cluster in {root}", file=sys.stderr)
        return 1
    removed = netns.sweep(only_tag=tag)
    shutil.rmtree(root, ignore_errors=True)
    print(f"hosts: removed {len(removed)} namespaces")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hosts")
    p.add_argument("action", choices=["up", "down"])
    p.add_argument("--dir", default=DEFAULT_DIR)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--nodes", type=int, default=2)
    args = p.parse_args(argv)
    return up(args) if args.action == "up" else down(args)


if __name__ == "__main__":
    sys.exit(main())
