"""``spurd``: the node agent's command line.

``spurd --config FILE --name NODE [--cpus N] [--mem MB] [--spool DIR] [--socket PATH]
[--rpc HOST:PORT]``

Runs in the foreground and logs to stderr. SIGTERM/SIGINT stop the agent cleanly; jobs
keep running under their supervisors and a later ``spurd`` re-adopts them.

The TLS step endpoint (srun, sattach and sstat from other hosts) is ``--rpc``, else
``[agent] rpc`` in spur.toml (read here from the raw file: one line shared by every node,
so a wildcard host such as ``0.0.0.0:6818`` is the usual value there); none by default.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from spurd.agent import Agent, total_memory_mb
from spurio import config as spurconfig
from spurio import stepserver


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="spurd", description="Spur node agent")
    p.add_argument("--config", "-c", default=None, help="spur.toml (default: $SPUR_CONF, ./spur.toml, /etc/spur)")
    p.add_argument("--name", "-n", default=None, help="node name (default: the short host name)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs to offer (default: all)")
    p.add_argument("--mem", type=int, default=None, help="memory to offer in MB (default: MemTotal)")
    p.add_argument("--spool", default=None, help="spool directory (default: <agent_dir>/<name>)")
    p.add_argument("--socket", default=None, help="local socket for srun (default: <spool>/spurd.sock)")
    p.add_argument("--rpc", default=None,
                   help="TLS step endpoint HOST:PORT for srun from other hosts (default: [agent] rpc in spur.toml; "
                        "none). A wildcard host advertises this host's name; port 0 picks a free port")
    p.add_argument("--cgroup-root", default=None,
                   help="cgroup subtree for jobs, below the agent's own cgroup (default: spurd_<name>_<hash of the spool path>)")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s spurd[%(process)d] %(levelname)s %(message)s",
    )
    path = args.config or spurconfig.find_config_path()
    if path is None:
        print("spurd: no configuration: use --config or set SPUR_CONF", file=sys.stderr)
        return 2
    try:
        # Absolute: jobs get the config path in SPUR_CONF, whatever their cwd.
        cfg = spurconfig.load(os.path.abspath(path))
    except spurconfig.ConfigError as e:
        print(f"spurd: {e}", file=sys.stderr)
        return 2
    rpc = args.rpc if args.rpc is not None else agent_rpc(cfg.path)
    if rpc:
        try:
            stepserver.split_host_port(rpc)
        except ValueError as e:
            print(f"spurd: --rpc / [agent] rpc: {e}", file=sys.stderr)
            return 2
    name = args.name or socket.gethostname().split(".")[0]
    spool = os.path.abspath(args.spool or os.path.join(cfg.agent_dir, name))
    sock = os.path.abspath(args.socket or os.path.join(spool, "spurd.sock"))
    agent = Agent(
        cfg,
        name,
        cpus=args.cpus if args.cpus is not None else (os.cpu_count() or 1),
        mem_mb=args.mem if args.mem is not None else total_memory_mb(),
        spool_dir=spool,
        socket_path=sock,
        cgroup_root=args.cgroup_root,
        rpc=rpc,
    )
    try:
        asyncio.run(_run(agent))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        logging.getLogger("spurd").error("%s", e)
        return 1
    return 0


def agent_rpc(config_path: str) -> str:
    """``[agent] rpc`` of the configuration file ("" when absent)."""
    raw = spurconfig.read_toml(config_path)
    section = raw.get("agent") or {}
    return str(section.get("rpc") or "") if isinstance(section, dict) else ""


async def _run(agent: Agent) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop)
    await agent.run()


if __name__ == "__main__":
    sys.exit(main())
