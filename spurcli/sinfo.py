"""``sinfo``: partitions and nodes (Slurm 25.11 layouts in ``spurcore.render.sinfo``).

Plain ``sinfo`` groups nodes by partition and state; ``-N`` prints one row per node.
"""

from __future__ import annotations

import sys

from spurcli import common
from spurcli.common import REQUIRED, CliError, Opt

PROG = "sinfo"

OPTIONS = (
    Opt("help", "", "help"),
    Opt("noheader", "h", "noheader"),
    Opt("Node", "N", "Node"),
    Opt("partition", "p", "partition", REQUIRED),
    Opt("usage", "", "usage"),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
)

USAGE = """\
Usage: sinfo [-h] [-N] [-p partition] [-v] [-V] [--help] [--usage]
"""

HELP = """\
Usage: sinfo [OPTIONS]
  -h, --noheader             no headers on output
  -N, --Node                 Node-centric format
  -p, --partition=PARTITION  report on specific partition
  -v, --verbose              verbosity level
  -V, --version              output version information and exit

Help options:
  --help                     show this help message
  --usage                    display brief usage message
"""


def _body(args: list[str]) -> int:
    pairs, operands = common.getopt(args, OPTIONS)
    common.handle_common(PROG, pairs, HELP, USAGE)
    if operands:
        raise CliError(f"Unrecognized option: {operands[0]}\n{USAGE.rstrip()}")
    opts = common.last(pairs)
    from spurcore.rpc import RpcError

    with common.connect() as ctl:
        try:
            result = ctl.call("nodes", {})
        except RpcError as exc:
            raise CliError(f"slurm_load_node: {exc.message or exc.code}", raw=True) from None
    nodes = list(result.get("nodes") or [])
    partition = opts.get("partition")
    if partition:
        wanted = set(common.split_list(partition))
        nodes = [n for n in nodes if wanted & set(n.get("partitions") or [n.get("partition") or "debug"])]
    from spurcore.render import sinfo as render

    sys.stdout.write(render.render(nodes, node_oriented="Node" in opts, noheader="noheader" in opts))
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
