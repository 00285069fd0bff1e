"""``sstat``: the live usage of running steps (Slurm 25.11 src/sstat).

For each step asked for (``-j J`` is every running step of J, ``-j J.S`` one step), sstat
asks the controller for the step's nodes and each node's agent for a fresh sample of its
tasks (``step_stat``; the supervisor polls /proc, as slurmstepd does on request), combines
the nodes' records (``spurcore.usage.combine``) and prints Slurm's fields: ``-o/--format``,
``-n/--noheader``, ``-p``/``-P`` (parsable), ``-a`` (all steps, with the batch step),
``--noconvert``. Memory is printed as sacct does (exact units), CPU times as
``[D-]HH:MM:SS`` / ``MM:SS.mmm``.
"""

from __future__ import annotations

import sys

from spurcli import common
from spurcli.common import NO_ARG, REQUIRED, CliError, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sstat"

OPTIONS = (
    Opt("allsteps", "a", "allsteps"),
    Opt("format", "o", ("format", "fields"), REQUIRED),
    Opt("help", "h", "help"),
    Opt("jobs", "j", "jobs", REQUIRED),
    Opt("noconvert", "", "noconvert"),
    Opt("noheader", "n", "noheader"),
    Opt("parsable", "p", "parsable"),
    Opt("parsable2", "P", "parsable2"),
    Opt("pidformat", "i", "pidformat"),
    Opt("usage", "", "usage"),
    Opt("verbose", "v", "verbose", NO_ARG),
    Opt("version", "V", "version"),
    Opt("helpformat", "e", "helpformat"),
)

USAGE = "Usage: sstat [options] -j <job(.stepid)>\n"
HELP = """\
sstat [<OPTION>] -j <job(.stepid)>
    Valid <OPTION> values are:
      -a, --allsteps:
                   Print all steps for the given job(s) when no step is
                   specified.
      -e, --helpformat:
                   Print a list of fields that can be specified with the
                   '--format' option
      -h, --help:  Print this description of use.
      -i, --pidformat:
                   Predefined format to list the pids running for each
                   job step.  (JobId,Nodes,Pids)
      -j, --jobs:
                   Format is <job(.step)>. Stat this job step
                   or comma-separated list of job steps. This option is
                   required.  The step portion will default to the lowest
                   numbered (not batch, extern, etc) step running if not
                   specified, unless the --allsteps flag is set where not
                   specifying a step will result in all running steps
                   to be displayed.
      --noconvert:
                   Don't convert units from their original type
                   (e.g. 2048M won't be converted to 2G).
      -n, --noheader:
                   No header will be added to the beginning of output.
                   The default is to print a header.
      -o, --format:
                   Comma separated list of fields. (use "--helpformat"
                   for a list of available fields).
      -p, --parsable: output will be '|' delimited with a '|' at the end
      -P, --parsable2: output will be '|' delimited without a '|' at the end
      --usage:     Display brief usage message.
      -v, --verbose:
                   Primarily for debugging purposes, report the state of
                   various variables during processing.
      -V, --version: Print version.
"""

#: Slurm's sstat field table (sstat.c ``fields[]``): name -> width (negative: left).
FIELDS: dict[str, int] = {
    "AllocTRES": 10, "AveCPU": 10, "AveCPUFreq": 10, "AveDiskRead": 12, "AveDiskWrite": 12,
    "AvePages": 10, "AveRSS": 10, "AveVMSize": 10, "ConsumedEnergy": 14, "ConsumedEnergyRaw": 17,
    "JobID": -12, "MaxDiskRead": 12, "MaxDiskReadNode": 15, "MaxDiskReadTask": 15, "MaxDiskWrite": 12,
    "MaxDiskWriteNode": 16, "MaxDiskWriteTask": 16, "MaxPages": 8, "MaxPagesNode": 12, "MaxPagesTask": 14,
    "MaxRSS": 10, "MaxRSSNode": 10, "MaxRSSTask": 10, "MaxVMSize": 10, "MaxVMSizeNode": 14,
    "MaxVMSizeTask": 14, "MinCPU": 10, "MinCPUNode": 10, "MinCPUTask": 10, "Nodelist": 20, "NTasks": 8,
    "Pids": 20, "ReqCPUFreq": 10, "ReqCPUFreqMin": 13, "ReqCPUFreqMax": 13, "ReqCPUFreqGov": 13,
}
STAT_FIELDS = ("jobid,maxvmsize,maxvmsizenode,maxvmsizetask,avevmsize,maxrss,maxrssnode,maxrsstask,averss,"
               "maxpages,maxpagesnode,maxpagestask,avepages,mincpu,mincpunode,mincputask,avecpu,ntasks")
STAT_FIELDS_PID = "jobid,nodelist,pids"


def value(field: str, step: dict[str, Any], usage: dict[str, Any], pids: list[int], noconvert: bool) -> str:
    """One cell, as sstat's print.c prints it."""
    from spurcore.usage import fmt_cpu, fmt_size, fmt_size_unit

    def size(key: str) -> str:
        return fmt_size_unit(usage.get(key), noconvert=noconvert)

    def pages(key: str) -> str:
        v = usage.get(key)
        return "" if v is None else fmt_size(v)

    cells = {
        "JobID": f"{step['job_id']}.{step['step_id']}",
        "AveCPU": fmt_cpu(usage.get("ave_cpu"), subsec=False),
        "AvePages": pages("ave_pages"),
        "AveRSS": size("ave_rss"),
        "AveVMSize": size("ave_vmsize"),
        "MaxPages": pages("max_pages"),
        "MaxPagesNode": usage.get("max_pages_node", ""),
        "MaxPagesTask": usage.get("max_pages_task", ""),
        "MaxRSS": size("max_rss"),
        "MaxRSSNode": usage.get("max_rss_node", ""),
        "MaxRSSTask": usage.get("max_rss_task", ""),
        "MaxVMSize": size("max_vmsize"),
        "MaxVMSizeNode": usage.get("max_vmsize_node", ""),
        "MaxVMSizeTask": usage.get("max_vmsize_task", ""),
        "MinCPU": fmt_cpu(usage.get("min_cpu"), subsec=False),
        "MinCPUNode": usage.get("min_cpu_node", ""),
        "MinCPUTask": usage.get("min_cpu_task", ""),
        "NTasks": usage.get("ntasks", step.get("ntasks", "")),
        "Nodelist": step.get("nodes", ""),
        "Pids": ",".join(str(p) for p in pids),
        "AllocTRES": f"cpu={step.get('cpus', 0)}",
    }
    return str(cells.get(field, ""))


def parse_format(text: str) -> list[tuple[str, int]]:
    """``name[%width]`` items, names matched case-insensitively as prefixes in table order."""
    out = []
    for item in filter(None, text.split(",")):
        name, _, width = item.partition("%")
        match = next((f for f in FIELDS if f.lower() == name.lower()), None) or next(
            (f for f in FIELDS if f.lower().startswith(name.lower())), None)
        if match is None:
            raise CliError(f"Invalid field requested: \"{name}\"")
        w = FIELDS[match]
        if width:
            try:
                w = int(width)
            except ValueError:
                raise CliError(f"Invalid field requested: \"{item}\"") from None
        out.append((match, w))
    return out


def _cell(text: str, width: int, parsable: int) -> str:
    if parsable:
        return text
    w = abs(width)
    text = text if len(text) <= w else text[:w - 1] + "+"
    return text.ljust(w) if width < 0 else text.rjust(w)


def stat_step(job_id: int, step: dict[str, Any], addresses: dict[str, str]) -> tuple[dict[str, Any], list[int]]:
    """Ask every node of the step for its sample; the combined record and every pid."""
    from spurcore.usage import combine
    from spurio import stepserver
    from spurio.rpc import RpcError

    records, pids = [], []
    for name in step.get("node_list") or []:
        try:
            reply = stepserver.call(addresses.get(name, ""), "step_stat",
                                    {"job_id": job_id, "step_id": step["step_id"]}, timeout=10)
        except (OSError, RpcError) as exc:
            common.error(PROG, f"problem getting step_layout for {job_id}.{step['step_id']}: "
                               f"{getattr(exc, 'message', None) or exc}")
            continue
        records.append((name, reply.get("usage") or {}))
        pids.extend(reply.get("pids") or [])
    return combine(records), pids


def _body(args: list[str]) -> int:
    pairs, rest = common.getopt(args, OPTIONS)
    common.handle_common(PROG, pairs, HELP, USAGE)
    opts = common.last(pairs)
    if "helpformat" in opts:
        names = list(FIELDS)
        for i in range(0, len(names), 4):
            sys.stdout.write("".join(f"{n:<20}" for n in names[i:i + 4]).rstrip() + "\n")
        return 0
    jobs_text = opts.get("jobs") or (",".join(rest) if rest else "")
    if not jobs_text:
        raise CliError("You didn't give me any jobs to stat.")
    fields = parse_format(opts.get("format") or (STAT_FIELDS_PID if "pidformat" in opts else STAT_FIELDS))
    parsable = 2 if "parsable2" in opts else 1 if "parsable" in opts else 0
    noconvert = "noconvert" in opts
    ctl = common.connect()
    try:
        addresses = {n["name"]: n.get("address", "") for n in ctl.call("nodes", {}).get("nodes", [])}
        rows: list[list[str]] = []
        for ref in filter(None, jobs_text.split(",")):
            job_text, dot, step_text = ref.partition(".")
            if not job_text.isdigit():
                raise CliError(f"Invalid job id specified: {ref}")
            job_id = int(job_text)
            info = common.get_job(ctl, job_id)
            if info is None:
                raise CliError(f"Invalid job id specified: {ref}")
            running = [s for s in info.get("steps") or () if s.get("state") == "RUNNING"
                       and (s.get("step_id") != "batch" or "allsteps" in opts or step_text == "batch")]
            if dot:
                running = [s for s in running if str(s.get("step_id")) == step_text]
            else:
                numbered = [s for s in running if isinstance(s.get("step_id"), int)]
                if "allsteps" not in opts:
                    running = sorted(numbered, key=lambda s: s["step_id"])[:1]
            if not running:
                common.error(PROG, f"couldn't get steps for job {ref}")
                continue
            for step in running:
                if step.get("step_id") == "batch":
                    continue  # the batch script's usage is not sampled by Spur (no relay)
                usage, pids = stat_step(job_id, step, addresses)
                rows.append([value(f, step, usage, pids, noconvert) for f, _ in fields])
    finally:
        ctl.close()
    out = []
    sep = "|" if parsable else " "
    end = "|" if parsable == 1 else ""
    if "noheader" not in opts:
        out.append(sep.join(_cell(f, w, parsable) for f, w in fields) + end)
        if not parsable:
            out.append(sep.join("-" * abs(w) for _, w in fields) + end)
    for row in rows:
        out.append(sep.join(_cell(v, w, parsable) for v, (_, w) in zip(row, fields, strict=True)) + end)
    sys.stdout.write("".join(line + ("\n" if parsable else " \n") for line in out) if out else "")
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
