"""``sinfo``: partitions and nodes (Slurm 25.11: src/sinfo/opts.c, sinfo.c; layouts in
``spurcore.render.sinfo``).

Every option of sinfo(1) is accepted, with ``SINFO_ALL``, ``SINFO_FEDERATION``,
``SINFO_FUTURE``, ``SINFO_LOCAL``, ``SINFO_PARTITION``, ``SINFO_SORT``, ``SINFO_FORMAT``,
``SLURM_CLUSTERS``, ``SLURM_TIME_FORMAT`` and ``SLURM_JSON``. Spur has one partition per
``partition`` name the agents report (``debug`` by default), no reservations (``-T`` says
so) and no hidden, future or cloud nodes (see docs/query-tools.md).
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import OPTIONAL, REQUIRED, CliError, Opt

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "sinfo"

OPTIONS = (
    Opt("autocomplete", "", "autocomplete", REQUIRED),
    Opt("all", "a", "all"),
    Opt("dead", "d", "dead"),
    Opt("exact", "e", "exact"),
    Opt("federation", "", "federation"),
    Opt("future", "F", "future"),
    Opt("help", "", "help"),
    Opt("helpformat", "", "helpformat"),
    Opt("helpFormat", "", "helpFormat"),
    Opt("helpstate", "", "helpstate"),
    Opt("hide", "", "hide"),
    Opt("iterate", "i", "iterate", REQUIRED),
    Opt("local", "", "local"),
    Opt("long", "l", "long"),
    Opt("clusters", "M", ("cluster", "clusters"), REQUIRED),
    Opt("nodes", "n", "nodes", REQUIRED),
    Opt("noconvert", "", "noconvert"),
    Opt("noheader", "h", "noheader"),
    Opt("Node", "N", "Node"),
    Opt("format", "o", "format", REQUIRED),
    Opt("Format", "O", "Format", REQUIRED),
    Opt("partition", "p", "partition", REQUIRED),
    Opt("responding", "r", "responding"),
    Opt("list_reasons", "R", "list-reasons"),
    Opt("summarize", "s", "summarize"),
    Opt("sort", "S", "sort", REQUIRED),
    Opt("states", "t", "states", REQUIRED),
    Opt("reservation", "T", "reservation"),
    Opt("usage", "", "usage"),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
    Opt("json", "", "json", OPTIONAL),
    Opt("yaml", "", "yaml", OPTIONAL),
)

USAGE = """\
Usage: sinfo [-abdelNRrsTv] [-i seconds] [-t states] [-p partition] [-n nodes]
             [-S fields] [-o format] [-O Format] [--federation] [--local]
"""

HELP = """\
Usage: sinfo [OPTIONS]
  -a, --all                  show all partitions (including hidden and those
                             not accessible)
  -d, --dead                 show only nodes that are unexpectedly unresponsive
  -e, --exact                group nodes only on exact match of configuration
      --federation           Report federated information if a member of one
  -F, --future               Report information about nodes in \\"FUTURE\\" state.
  -h, --noheader             no headers on output
  --hide                     do not show hidden or non-accessible partitions
  -i, --iterate=seconds      specify an iteration period
  --json[=data_parser]       Produce JSON output
      --local                show only local cluster in a federation.
                             Overrides --federation.
  -l, --long                 long output - displays more information
  -M, --clusters=names       clusters to issue commands to. Implies --local.
                             NOTE: SlurmDBD must be up.
  -n, --nodes=NODES          report on specific node(s)
  --noconvert                don't convert units from their original type
                             (e.g. 2048M won't be converted to 2G).
  -N, --Node                 Node-centric format
  -o, --format=format        format specification
  -O, --Format=format        long format specification
  -p, --partition=PARTITION  report on specific partition
  -r, --responding           report only responding nodes (opposite of --dead)
  -R, --list-reasons         list reason nodes are down or drained
  -s, --summarize            report state summary only
  -S, --sort=fields          comma separated list of fields to sort on
  -t, --states=node_state    specify the what states of nodes to view
  -T, --reservation          show only reservation information
  -v, --verbose              verbosity level
  -V, --version              output version information and exit
  --yaml[=data_parser]       Produce YAML output

Help options:
  --help                     show this help message
  --helpformat               print a list of fields that can be specified
                             with '--format=' option
  --helpFormat               print a list of fields that can be specified
                             with '--Format=' option
  --helpstate                print a list of states that can use specified
                             with '--states=' option
  --usage                    display brief usage message
"""


class Query:
    def __init__(self) -> None:
        self.all = False
        self.dead = False
        self.exact = False
        self.future = False
        self.iterate = 0
        self.long = False
        self.nodes: list[str] | None = None
        self.noheader = False
        self.node_oriented = False
        self.fmt: str | None = None
        self.Fmt: str | None = None
        self.partitions: list[str] | None = None
        self.responding = False
        self.reasons = False
        self.summarize = False
        self.sort: str | None = None
        self.states: list[Any] | None = None
        self.states_and = False
        self.reservation = False
        self.verbose = 0
        self.mime: str | None = None
        self.clusters: list[str] | None = None
        self.default_format = False


def parse_args(args: list[str], environ: Any = None) -> Query:
    """sinfo's command line (spurcli.jobrefs is imported by the options that need it)."""
    from spurcore.render import sinfo as render

    env = os.environ if environ is None else environ
    q = Query()
    env_all = env.get("SINFO_ALL") is not None
    if env_all:
        q.all = True
    if env.get("SINFO_FUTURE") is not None:
        q.future = True
    env_part = env.get("SINFO_PARTITION")
    if env_part is not None:
        q.partitions = [p for p in env_part.split(",") if p]
        q.all = True
    if env_all and env_part is not None:
        raise CliError("Conflicting options, SINFO_ALL and SINFO_PARTITION, specified. "
                       "Please choose one or the other.")
    if env.get("SINFO_SORT"):
        q.sort = env["SINFO_SORT"]
    clusters = env.get("SLURM_CLUSTERS")
    clusters_env = clusters is not None
    opt_a = opt_p = False
    pairs, operands = common.getopt(args, OPTIONS)
    info_texts = {"help": HELP, "usage": USAGE, "helpformat": render.help_format,
                  "helpFormat": render.help_long_format,
                  "helpstate": lambda: render.node_state_list().replace(",", "\n") + "\n"}
    for key, value in pairs:
        text = value or ""
        common.info_option(key, text, OPTIONS, info_texts)
        if key == "all":
            opt_a = True
            q.partitions = None
            q.all = True
        elif key == "dead":
            q.dead = True
        elif key == "exact":
            q.exact = True
        elif key == "future":
            q.future = True
        elif key == "noheader":
            q.noheader = True
        elif key == "iterate":
            from spurcli import jobrefs

            secs = jobrefs.strtol(text)[0]
            if secs <= 0:
                raise CliError(f"Error: invalid entry for --iterate={text}")
            q.iterate = secs
        elif key == "long":
            q.long = True
        elif key == "clusters":
            clusters, clusters_env = text, False
        elif key == "nodes":
            from spurcore.hostlist import expand

            try:
                q.nodes = expand(text)
            except ValueError:
                raise CliError(f"'{text}' invalid entry for --nodes") from None
        elif key == "Node":
            q.node_oriented = True
        elif key == "format":
            q.fmt, q.Fmt = text, None
        elif key == "Format":
            q.Fmt, q.fmt = text, None
        elif key == "partition":
            opt_p = True
            q.partitions = [p for p in text.split(",") if p]
            q.all = True
        elif key == "responding":
            q.responding = True
        elif key == "list_reasons":
            q.reasons = True
        elif key == "summarize":
            q.summarize = True
        elif key == "sort":
            q.sort = text
        elif key == "states":
            try:
                q.states, q.states_and = render.parse_states(text)
            except render.StateError as exc:
                common.error(PROG, str(exc))
                raise CliError(f"valid states: {render.node_state_list()}") from None
        elif key == "reservation":
            q.reservation = True
        elif key == "verbose":
            q.verbose += 1
        elif key == "hide":
            q.all = False
        elif key in ("json", "yaml"):
            q.mime = key
        # federation, local, noconvert: accepted (one cluster, no unit conversion in play)
    if q.long and q.fmt is not None:
        from spurcli import jobrefs

        raise jobrefs.fatal(PROG, "Options -o(--format) and -l(--long) are mutually exclusive. "
                                  "Please remove one and retry.")
    if opt_a and opt_p:
        raise CliError("Conflicting options, -a and -p, specified. Please choose one or the other.")
    if clusters:
        from spurcli import jobrefs

        try:
            q.clusters = jobrefs.check_clusters(clusters, common.load_config().name, PROG, isenv=clusters_env)
        except jobrefs.RefError as exc:
            common.error(PROG, str(exc))
            raise jobrefs.fatal(PROG, "Could not get cluster information") from None
    if q.fmt is None and q.Fmt is None:
        q.default_format = True
        if q.summarize:
            q.Fmt = render.SUMMARIZE_FORMAT
        elif q.node_oriented:
            q.Fmt = render.NODE_LONG_FORMAT if q.long else render.NODE_FORMAT
        elif q.reasons:
            q.Fmt = render.REASONS_LONG_FORMAT if q.long else render.REASONS_FORMAT
            q.default_format = False
        elif env.get("SINFO_FORMAT") is not None:
            q.fmt = env["SINFO_FORMAT"]
            q.default_format = False
        else:
            q.Fmt = render.LONG_FORMAT if q.long else render.DEFAULT_FORMAT
    if q.reasons and q.states is None:
        q.states, q.states_and = render.parse_states("down,fail,drain")
    if operands:
        common.error(PROG, f"Unrecognized option: {operands[0]}")
        sys.stdout.write(USAGE)
        raise CliError(code=1)
    return q


def select_nodes(q: Query, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """sinfo's node filters: -n, -p, -t, -r, -d, future nodes (only with -F)."""
    from spurcore.render import sinfo as render

    out = []
    for node in nodes:
        if q.nodes is not None and str(node.get("name")) not in q.nodes:
            continue
        if q.partitions is not None:
            parts = set(node.get("partitions") or [node.get("partition") or "debug"])
            if not parts & set(q.partitions):
                continue
        if q.states is not None and not render.node_matches_states(node, q.states, q.states_and):
            continue
        if q.responding and node.get("not_responding"):
            continue
        if q.dead and not (node.get("not_responding") or str(node.get("state")).upper() == "DOWN"):
            continue
        if not q.future and str(node.get("state")).upper() == "FUTURE":
            continue
        out.append(node)
    return out


def _once(q: Query, args: list[str], ctl: Any, env: Any) -> None:
    from spurcore.render import sinfo as render
    from spurcore.render._common import time_format_error
    from spurio.rpc import RpcError

    if q.reservation:
        sys.stdout.write("No reservations in the system\n")
        return
    try:
        result = ctl.call("nodes", {})
    except RpcError as exc:
        raise CliError(f"slurm_load_node: {exc.message or exc.code}", raw=True) from None
    parts = load_partitions(ctl, result.get("nodes") or [])
    if parts is None:
        raise CliError("slurm_load_partitions: Unable to contact slurm controller (connect failure)", raw=True)
    now = float(result.get("now") or 0.0)
    nodes = select_nodes(q, list(result.get("nodes") or []))
    resolve_reason_users(nodes)
    parts = render.visible_partitions(parts, show_all=q.all, uid=caller_uid(), groups=caller_groups())
    if q.partitions is not None:
        parts = [p for p in parts if p["name"] in q.partitions]
    cluster = common.load_config().name
    if q.mime:
        from spurcli.jobrefs import dump_document
        from spurcore.render.data_parser import json_meta

        meta = json_meta([PROG, *args], cluster=cluster, user=common.current_user()[0],
                         group=common.group_name(os.getgid()))
        sys.stdout.write(dump_document(render.to_json(nodes, meta=meta, part_records=parts), q.mime, env))
        return
    problem = time_format_error(env.get("SLURM_TIME_FORMAT"))
    if problem:
        common.error(PROG, problem)
    parsed = render.parse_format(q.fmt) if q.fmt is not None else render.parse_long_format(q.Fmt or "")
    for message in parsed.errors:
        if q.fmt is not None:
            sys.stderr.write(message + "\n")
        else:
            common.error(PROG, message)
    sys.stdout.write(render.render_format(
        nodes, q.fmt, long_fmt=q.Fmt, noheader=q.noheader, node_oriented=q.node_oriented, exact=q.exact,
        reasons=q.reasons, default_fields=q.default_format, sort=q.sort, now=now, part_records=parts,
        time_format=env.get("SLURM_TIME_FORMAT"), cluster=cluster,
    ))


def load_partitions(ctl: Any, nodes: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The ``partitions`` answer's records (configuration order), or, from a controller
    that has no such method, one record per partition name the nodes carry (the default:
    ``debug``). None when the controller refused the request."""
    from spurio.rpc import RpcError

    try:
        answer = ctl.call("partitions", {})
    except RpcError as exc:
        if exc.code != "unknown_method":
            return None
        from spurcore.render.scontrol import partitions_from_nodes

        return partitions_from_nodes(nodes)
    default = answer.get("default")
    parts = [dict(p) for p in answer.get("partitions") or ()]
    for part in parts:
        if default is not None:
            part["default"] = part.get("name") == default
    return parts


def caller_uid() -> int:
    """The caller's uid (root sees every partition, as SlurmUser does)."""
    return os.getuid()


def caller_groups() -> list[str]:
    """The names of the caller's groups (AllowGroups decides which partitions it sees)."""
    import grp

    names = []
    for gid in {os.getgid(), *os.getgroups()}:
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def resolve_reason_users(nodes: list[dict[str, Any]]) -> None:
    """Fill each reason-holding node's ``reason_user`` from its ``reason_uid`` (the reader
    maps uids, the renderers do not): -1, the controller, is SlurmUser: ``slurm`` (and the
    uid of a ``slurm`` account where one exists); an unknown uid keeps no name."""
    import pwd

    for node in nodes:
        if not node.get("reason") or node.get("reason_user"):
            continue
        uid = node.get("reason_uid", -1)
        uid = -1 if uid is None else int(uid)
        if uid < 0:
            node["reason_user"] = "slurm"
            try:
                node["reason_uid"] = pwd.getpwnam("slurm").pw_uid
            except KeyError:
                pass
            continue
        try:
            node["reason_user"] = pwd.getpwuid(uid).pw_name
        except KeyError:
            continue


def _body(args: list[str]) -> int:
    import time

    env = os.environ
    q = parse_args(args, env)
    with common.connect() as ctl:
        while True:
            if not q.noheader and not q.mime and (q.iterate or q.verbose or q.long):
                from spurcore.timefmt import ctime_line

                sys.stdout.write(ctime_line(time.time()) + "\n")
            if q.clusters and not q.noheader:
                sys.stdout.write(f"CLUSTER: {q.clusters[0]}\n")
            _once(q, args, ctl, env)
            sys.stdout.flush()
            if not q.iterate:
                return 0
            sys.stdout.write("\n")
            time.sleep(q.iterate)


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
