"""``scontrol``: show jobs and nodes, and the job-control commands (Slurm 25.11 behaviour).

Supported commands (keywords may be abbreviated as Slurm allows): ``show job [ID]``,
``show jobs``, ``show node [NAME]``, ``show nodes``, ``suspend``, ``resume``, ``hold``,
``uhold``, ``release``, ``requeue``, ``requeuehold`` (each taking ``ID[,ID...]`` and/or
several ids), ``version``. Spur extension: ``show job ID --at TIME`` shows the job as it
was at TIME (any ``sacct -S`` time format), from the controller's history.

Messages follow Slurm: ``slurm_load_jobs error: Invalid job id specified`` and
``No jobs in the system`` for ``show job``; ``<error> for job <id>`` (no prefix) for the
job-control commands (src/scontrol/update_job.c); exit status 1 after any error.
Without a command, commands are read from stdin, one per line, as Slurm's interactive mode.
"""

from __future__ import annotations

import sys

from spurcli import common
from spurcli.common import CliError, Opt

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "scontrol"

OPTIONS = (
    Opt("all", "a", "all"),
    Opt("details", "d", "details"),
    Opt("help", "h", "help"),
    Opt("oneliner", "o", "oneliner"),
    Opt("quiet", "Q", "quiet"),
    Opt("usage", "", "usage"),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
)

USAGE = """\
Usage: scontrol [-a] [-d] [-h] [-o] [-Q] [-v] [-V] [<COMMAND>]
"""

HELP = """\
scontrol [<OPTION>] [<COMMAND>]
    Valid <OPTION> values are:
     -a or --all: equivalent to "all" command
     -d or --details: equivalent to "details" command
     -h or --help: equivalent to "help" command
     -o or --oneliner: equivalent to "oneliner" command
     -Q or --quiet: equivalent to "quiet" command
     -v or --verbose: equivalent to "verbose" command
     -V or --version: equivalent to "version" command

  <keyword> may be omitted from the execute line and scontrol will execute
  in interactive mode. It will process commands as entered until explicitly
  terminated.

    Valid <COMMAND> values are:
     exit                     terminate scontrol
     hold <job_list>          prevent specified job from starting. <job_list>
                              is either a space separate list of job IDs or
                              job names
     quit                     terminate this command.
     release <job_list>       permit specified job to start (see hold)
     requeue <job_id>         re-queue a batch job
     requeuehold <job_id>     re-queue and hold a batch job
     resume <job_list>        resume previously suspended job (see suspend)
     show <ENTITY> [<ID>]     display state of identified entity, default
                              is all records. Spur: "show job <ID> --at <time>"
                              shows the job as it was at <time>.
     suspend <job_list>       susend specified job (see resume)
     uhold <job_list>         place user hold on specified job (see hold)
     version                  display tool version number.

  <ENTITY> may be "job" or "node".
"""


def _kw(word: str, keyword: str, minlen: int) -> bool:
    """Slurm's keyword match: a case-insensitive prefix of at least ``minlen`` letters."""
    w = word.lower()
    return len(w) >= min(minlen, len(keyword)) and keyword.startswith(w)


class Session:
    """Per-invocation flags and the exit status (Slurm's global ``exit_code``)."""

    def __init__(self, details: bool, oneliner: bool, quiet: bool) -> None:
        self.details = details
        self.oneliner = oneliner
        self.quiet = quiet
        self.exit_code = 0
        self._ctl: common.Controller | None = None

    @property
    def ctl(self) -> common.Controller:
        if self._ctl is None:
            self._ctl = common.connect()
        return self._ctl

    def close(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None

    def fail(self, message: str) -> None:
        self.exit_code = 1
        if not self.quiet:
            sys.stderr.write(message + "\n")


# --------------------------------------------------------------------------- show


def _with_group(info: dict[str, Any]) -> dict[str, Any]:
    if "group" not in info:
        info = {**info, "group": common.group_name(int(info.get("gid", 0)))}
    return info


def show_job(s: Session, words: list[str]) -> None:
    from spurcore.render import scontrol as render
    from spurcore.rpc import RpcError

    at_text: str | None = None
    ids: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w == "--at" and i + 1 < len(words):
            at_text = words[i + 1]
            i += 2
            continue
        if w.startswith("--at="):
            at_text = w[5:]
        elif w in ("-d", "--details"):
            s.details = True
        elif w in ("-o", "--oneliner"):
            s.oneliner = True
        else:
            ids.append(w)
        i += 1
    job_id: int | None = None
    if ids:
        try:
            job_id, _step = common.parse_job_step(ids[0].removeprefix("jobid=").removeprefix("JobId="))
        except ValueError:
            s.fail("slurm_load_jobs error: Invalid job id specified")
            return
    if at_text is not None:
        if job_id is None:
            s.fail(f"{PROG}: error: show job --at needs a job id")
            return
        import time

        from spurcore.timefmt import parse_time

        try:
            at = parse_time(at_text, time.time(), past=True)
        except ValueError as exc:
            s.fail(f"{PROG}: error: {exc}")
            return
        try:
            result = s.ctl.call("job_at", {"job_id": job_id, "at": at})
        except RpcError as exc:
            s.fail(f"slurm_load_jobs error: {exc.message or exc.code}")
            return
        job = result.get("job")
        if not job:
            s.fail("slurm_load_jobs error: Invalid job id specified")
            return
        sys.stdout.write(render.show_job(_with_group(job), detail=s.details, oneliner=s.oneliner, now=at))
        return
    params: dict[str, Any] = {"with_steps": True}
    if job_id is not None:
        params["job_ids"] = [job_id]
    try:
        result = common.call_jobs(s.ctl, params)
    except RpcError as exc:
        s.fail(f"slurm_load_jobs error: {exc.message or exc.code}")
        return
    now = float(result.get("now") or 0.0)
    jobs = list(result.get("jobs") or [])
    if job_id is not None:
        jobs = [j for j in jobs if int(j.get("job_id", 0)) == job_id]
        if not jobs:
            s.fail("slurm_load_jobs error: Invalid job id specified")
            return
    elif not jobs:
        sys.stdout.write("No jobs in the system\n")
        return
    sys.stdout.write(
        render.show_jobs([_with_group(j) for j in jobs], detail=s.details, oneliner=s.oneliner, now=now)
    )


def show_node(s: Session, words: list[str]) -> None:
    from spurcore.render import scontrol as render
    from spurcore.rpc import RpcError

    names = [w for w in words if not w.startswith("-")]
    try:
        result = s.ctl.call("nodes", {})
    except RpcError as exc:
        s.fail(f"slurm_load_node error: {exc.message or exc.code}")
        return
    nodes = list(result.get("nodes") or [])
    if names:
        wanted = names[0].removeprefix("NodeName=").removeprefix("nodename=")
        nodes = [n for n in nodes if n.get("name") == wanted]
        if not nodes:
            s.fail(f"Node {wanted} not found")
            return
    elif not nodes:
        sys.stdout.write("No nodes in the system\n")
        return
    sys.stdout.write(render.show_nodes(nodes, oneliner=s.oneliner))


def show(s: Session, words: list[str]) -> None:
    if not words:
        s.fail("too few arguments for keyword:show")
        return
    entity, rest = words[0], words[1:]
    if _kw(entity, "jobs", 1) or entity.lower() == "jobid":
        show_job(s, rest)
    elif _kw(entity, "nodes", 1):
        show_node(s, rest)
    else:
        s.fail(f"invalid entity:{entity} for keyword:show")


# --------------------------------------------------------------------------- job control

#: command -> (method, extra params)
CONTROL: dict[str, tuple[str, dict[str, Any]]] = {
    "suspend": ("signal", {"step_id": -1, "kind": 2, "signal": 0, "target": 0}),
    "resume": ("signal", {"step_id": -1, "kind": 3, "signal": 0, "target": 0}),
    "hold": ("hold", {}),
    "uhold": ("hold", {"user_hold": True}),
    "release": ("release", {}),
    "requeue": ("requeue", {"hold": False}),
    "requeuehold": ("requeue", {"hold": True}),
}


def _control_ids(words: list[str]) -> list[str]:
    out: list[str] = []
    for w in words:
        for item in w.split(","):
            item = item.strip()
            for prefix in ("jobid=", "job="):
                if item.lower().startswith(prefix):
                    item = item[len(prefix):]
            if item:
                out.append(item)
    return out


def job_control(s: Session, command: str, words: list[str]) -> None:
    from spurcore.rpc import RpcError

    method, extra = CONTROL[command]
    # requeue/requeuehold accept Slurm's "Incomplete" / "State=SpecialExit" words: ignored.
    words = [w for w in words if w.lower() != "incomplete" and not w.lower().startswith("state=")]
    items = _control_ids(words)
    if not items:
        s.fail(f"too few arguments for keyword:{command}")
        return
    for item in items:
        try:
            job_id, step = common.parse_job_step(item)
            if step is not None:
                raise ValueError(item)
        except ValueError:
            s.fail(f"Invalid job id specified for job {item}")
            continue
        params = {"request_id": common.new_request_id(), "job_id": job_id, **extra}
        try:
            s.ctl.call(method, params)
        except RpcError as exc:
            s.fail(f"{exc.message or exc.code} for job {job_id}")


# --------------------------------------------------------------------------- dispatch


def execute(s: Session, words: list[str]) -> bool:
    """Run one command; False when it was ``exit``/``quit``."""
    if not words:
        return True
    cmd, rest = words[0], words[1:]
    low = cmd.lower()
    if low in ("exit", "quit"):
        return False
    if low in CONTROL:
        job_control(s, low, rest)
    elif _kw(cmd, "show", 3):
        show(s, rest)
    elif _kw(cmd, "suspend", 2):
        job_control(s, "suspend", rest)
    elif _kw(cmd, "resume", 3):
        job_control(s, "resume", rest)
    elif _kw(cmd, "release", 3):
        job_control(s, "release", rest)
    elif _kw(cmd, "version", 4):
        sys.stdout.write(common.VERSION_LINE + "\n")
    elif _kw(cmd, "details", 1):
        s.details = True
    elif _kw(cmd, "oneliner", 1):
        s.oneliner = True
    elif _kw(cmd, "quiet", 4):
        s.quiet = True
    elif _kw(cmd, "help", 2):
        sys.stdout.write(HELP)
    else:
        s.fail(f"invalid keyword: {cmd}")
    return True


def _body(args: list[str]) -> int:
    pairs, words = common.getopt(args, OPTIONS, permute=False)
    common.handle_common(PROG, pairs, HELP, USAGE)
    opts = common.last(pairs)
    s = Session("details" in opts, "oneliner" in opts, "quiet" in opts)
    try:
        if words:
            execute(s, words)
        else:
            interactive = sys.stdin.isatty()
            while True:
                if interactive:
                    sys.stdout.write(f"{PROG}: ")
                    sys.stdout.flush()
                line = sys.stdin.readline()
                if not line:
                    break
                if not execute(s, line.split()):
                    break
    finally:
        s.close()
    if s.exit_code:
        raise CliError(code=s.exit_code)
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
