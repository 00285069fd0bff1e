"""``sattach J.S``: attach to a running step's standard I/O (Slurm 25.11).

sattach asks the controller for the step's nodes, then sends ``attach_step`` to each
node's agent (its Unix socket on the same host, else TLS with the user's certificate, as
srun does), which hands the connection to the step's supervisor (as for srun's launch);
the supervisor copies every task's output to it and takes stdin for the tasks. sattach
prints the output (``-l`` labels; ``--output-filter``/``--error-filter`` keep one task's)
and forwards its stdin (``--input-filter``: to one task), and exits when the step ends.
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import NO_ARG, REQUIRED, CliError, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sattach"

OPTIONS = (
    Opt("error_filter", "", "error-filter", REQUIRED),
    Opt("help", "h", "help"),
    Opt("input_filter", "", "input-filter", REQUIRED),
    Opt("label", "l", "label"),
    Opt("layout", "", "layout"),
    Opt("output_filter", "", "output-filter", REQUIRED),
    Opt("pty", "", "pty"),
    Opt("quiet", "Q", "quiet"),
    Opt("usage", "u", "usage"),
    Opt("version", "V", "version"),
    Opt("verbose", "v", "verbose", NO_ARG),
)

USAGE = """\
Usage: sattach [options] <jobid.stepid>
"""

HELP = """\
Usage: sattach [options] <jobid.stepid>
      --error-filter=<task number>   only transmit stderr from a single task
      --input-filter=<task number>   only send stdin to a single task
  -l, --label                        prepend task number to lines of stdout & stderr
      --layout                       print task layout info and exit (does not attach)
      --output-filter=<task number>  only print stdout from a single task
      --pty                          run task 0 in a pseudo terminal
  -Q, --quiet                        quiet mode (suppress informational messages)
  -v, --verbose                      verbose mode (multiple -v's increase verbosity)
  -V, --version                      print the Slurm version and exit

Help options:
  -h, --help                         print this help message
  -u, --usage                        print a brief usage message
"""


def _filter(opts: dict[str, Any], key: str) -> int:
    value = opts.get(key)
    if value is None:
        return -1
    if not str(value).isdigit():
        raise CliError(f"Invalid --{key.replace('_', '-')} value {value}")
    return int(value)


def find_step(ctl: common.Controller, job_id: int, step_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the step's record, its nodes with their agents' endpoints) from the controller."""
    info = common.get_job(ctl, job_id)
    step = None
    if info is not None:
        step = next((s for s in info.get("steps") or () if s.get("step_id") == step_id), None)
    if step is None or step.get("state") != "RUNNING":
        raise CliError(f"Job step {job_id}.{step_id} does not exist or is not running", 1)
    nodes = {n["name"]: n for n in ctl.call("nodes", {}).get("nodes", [])}
    out = []
    for i, name in enumerate(step.get("node_list") or []):
        out.append({"name": name, "address": (nodes.get(name) or {}).get("address", ""),
                    "tasks": (step.get("tasks") or [[]])[i]})
    return step, out


def _body(args: list[str]) -> int:
    import selectors

    from spurio import stepserver

    pairs, rest = common.getopt(args, OPTIONS)
    common.handle_common(PROG, pairs, HELP, USAGE)
    opts = common.last(pairs)
    if len(rest) != 1:
        raise CliError("Invalid job step specification, you must specify a jobid.stepid")
    job_text, dot, step_text = rest[0].partition(".")
    if not (job_text.isdigit() and dot and step_text.isdigit()):
        raise CliError(f"Invalid job step specification {rest[0]}, you must specify a jobid.stepid")
    job_id, step_id = int(job_text), int(step_text)
    out_filter, err_filter, in_filter = (_filter(opts, "output_filter"), _filter(opts, "error_filter"),
                                         _filter(opts, "input_filter"))
    ctl = common.connect()
    try:
        step, nodes = find_step(ctl, job_id, step_id)
    finally:
        ctl.close()
    ntasks = int(step.get("ntasks") or 1)
    if "layout" in opts:
        sys.stdout.write(f"Job step layout:\n\t{ntasks} tasks, {len(nodes)} nodes ({step.get('nodes')})\n\n")
        for i, node in enumerate(nodes):
            tasks = ",".join(str(t) for t in node["tasks"])
            sys.stdout.write(f"\tNode {i} ({node['name']}), {len(node['tasks'])} task(s): {tasks}\n")
        return 0
    width = len(str(max(ntasks - 1, 0)))
    label = "label" in opts
    sel = selectors.DefaultSelector()
    socks, readers, done = {}, {}, set()
    rc = 0
    for i, node in enumerate(nodes):
        try:
            sock = stepserver.connect(str(node["address"]))
            sock.sendall(stepserver.request(i + 1, "attach_step", {"job_id": job_id, "step_id": step_id}))
        except OSError as exc:
            common.error(PROG, f"{node['name']}: cannot reach the agent: {exc.strerror or exc}")
            rc = 1
            done.add(i)
            continue
        socks[i], readers[i] = sock, stepserver.FrameReader()
        sel.register(sock, selectors.EVENT_READ, i)
    stdin_open = True
    try:
        sel.register(0, selectors.EVENT_READ, "stdin")
    except (ValueError, OSError, PermissionError):
        stdin_open = False
    while len(done) < len(nodes):
        for key, _ in sel.select(1.0):
            if key.data == "stdin":
                data = os.read(0, 65536)
                if not data:
                    sel.unregister(0)
                    stdin_open = False
                target = in_filter
                for i, sock in socks.items():
                    if i not in done and (target < 0 or target in nodes[i]["tasks"]):
                        try:
                            sock.sendall(stepserver.notification("in", [target, data]))
                        except OSError:
                            pass
                continue
            i = key.data
            try:
                data = stepserver.recv_some(socks[i])
            except OSError as exc:  # TLS: a refused certificate is said on the first read
                common.error(PROG, f"{nodes[i]['name']}: {exc.strerror or exc}")
                rc, data = 1, b""
            if data is None:
                continue  # TLS: part of a record so far
            msgs = readers[i].feed(data) if data else []
            for msg in msgs:
                if msg[0] == 1 and msg[2] is not None:
                    common.error(PROG, f"{nodes[i]['name']}: {msg[2].get('message')}")
                    rc = 1
                elif msg[0] == 2 and msg[1] == "out":
                    task, kind, chunk = msg[2]
                    wanted = out_filter if kind == 1 else err_filter
                    if wanted >= 0 and task != wanted:
                        continue
                    chunk = bytes(chunk)
                    if label and task >= 0:
                        prefix = f"{task:>{width}}: ".encode()
                        lines = chunk.split(b"\n")
                        tail = lines.pop()
                        chunk = b"".join(prefix + line + b"\n" for line in lines) + (
                            prefix + tail + b"\n" if tail else b"")
                    os.write(1 if kind == 1 else 2, chunk)
            if not data or any(m[0] == 2 and m[1] == "done" for m in msgs) or any(
                    m[0] == 1 and m[2] is not None for m in msgs):
                sel.unregister(socks[i])
                socks[i].close()
                done.add(i)
    if stdin_open:
        sel.unregister(0)
    return rc


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
