"""``sbatch``: submit a batch script (Slurm 25.11 behaviour).

Option sources, weakest first: ``#SBATCH`` directives in the script's leading comment block
(read until the first line that is neither a comment nor blank), then the command line.
The script path ends the options; whatever follows it are the script's arguments.

``--wait`` exits as Slurm's ``_job_wait`` does: the job's exit code when the script exited
(``WEXITSTATUS``), 1 when it was killed by a signal (or has no status), 0 when the job has
already been purged ("no longer found and exit code not found").
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import NO_ARG, REQUIRED, CliError, Opt

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "sbatch"

WRAP_HEADER = "#!/bin/sh\n# This script was created by sbatch --wrap.\n\n"

OPTIONS = (
    Opt("account", "A", "account", REQUIRED),
    Opt("cpus_per_task", "c", "cpus-per-task", REQUIRED),
    Opt("chdir", "D", ("chdir", "workdir"), REQUIRED),
    Opt("dependency", "d", "dependency", REQUIRED),
    Opt("error", "e", "error", REQUIRED),
    Opt("export", "", "export", REQUIRED),
    Opt("hold", "H", "hold"),
    Opt("help", "h", "help"),
    Opt("input", "i", "input", REQUIRED),
    Opt("job_name", "J", "job-name", REQUIRED),
    Opt("mem", "", "mem", REQUIRED),
    Opt("nodes", "N", "nodes", REQUIRED),
    Opt("ntasks", "n", "ntasks", REQUIRED),
    Opt("output", "o", "output", REQUIRED),
    Opt("parsable", "", "parsable"),
    Opt("partition", "p", "partition", REQUIRED),
    Opt("quiet", "Q", "quiet"),
    Opt("time", "t", "time", REQUIRED),
    Opt("usage", "", "usage"),
    Opt("verbose", "v", "verbose", NO_ARG),
    Opt("version", "V", "version"),
    Opt("wait", "W", "wait"),
    Opt("wrap", "", "wrap", REQUIRED),
)

USAGE = """\
Usage: sbatch [-N nnodes] [-n ntasks] [-c ncpus] [-J jobname] [-p partition]
              [-A account] [-t minutes] [-D path] [-o out] [-e err] [-i in]
              [-d type:jobid[:time]] [-H] [--mem=MB] [--export[=names]]
              [--parsable] [--wait] [-Q] [--wrap=command] executable [args...]
"""

HELP = """\
Usage: sbatch [OPTIONS(0)...] [ : [OPTIONS(N)...]] script(0) [args(0)...]

Parallel run options:
  -A, --account=name          charge job to specified account
  -c, --cpus-per-task=ncpus   number of cpus required per task
  -d, --dependency=type:jobid[:time] defer job until condition on jobid is satisfied
  -D, --chdir=directory       set working directory for batch script
  -e, --error=err             file for batch script's standard error
      --export[=names]        specify environment variables to export
  -H, --hold                  submit job in held state
  -i, --input=in              file for batch script's standard input
  -J, --job-name=jobname      name of job
  -n, --ntasks=ntasks         number of tasks to run
  -N, --nodes=N               number of nodes on which to run (N = min[-max])
  -o, --output=out            file for batch script's standard output
  -p, --partition=partition   partition requested
      --parsable              outputs only the jobid and cluster name (if present),
                              separated by semicolon, only on successful submission.
  -Q, --quiet                 quiet mode (suppress informational messages)
  -t, --time=minutes          time limit
  -v, --verbose               verbose mode (multiple -v's increase verbosity)
  -W, --wait                  wait for completion of submitted job
      --wrap[=command string] wrap command string in a sh script and submit

Constraint options:
      --mem=MB                minimum amount of real memory

Help options:
  -h, --help                  show this help message
      --usage                 display brief usage message

Other options:
  -V, --version               output version information and exit

"""


# --------------------------------------------------------------------------- directives


def tokenize_directive(text: str) -> list[str]:
    """The words of one ``#SBATCH`` line (Slurm's ``_get_argument``): whitespace separated,
    quotes group and are removed, a word starting with ``#`` starts a comment."""
    words: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] == "#":
            break
        word: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
            elif c in "\"'":
                quote = c
            elif c.isspace():
                break
            else:
                word.append(c)
            i += 1
        words.append("".join(word))
    return words


def script_directives(script: str) -> list[str]:
    """The option words of the ``#SBATCH`` lines before the first command of ``script``."""
    words: list[str] = []
    for lineno, line in enumerate(script.splitlines()):
        stripped = line.strip()
        if lineno == 0 and line.startswith("#!"):
            continue
        if not stripped:
            continue
        if not line.startswith("#"):
            break
        if line.startswith("#SBATCH") and (len(line) == 7 or line[7].isspace()):
            words.extend(tokenize_directive(line[7:]))
    return words


def check_script(script: str) -> None:
    """Slurm's checks of the script text (sbatch.c ``_check_script``)."""
    if not script:
        raise CliError("Batch script is empty!")
    if not script.strip():
        raise CliError("Batch script contains only whitespace!")
    if not script.startswith("#!"):
        raise CliError(
            "This does not look like a batch script.  The first\n"
            f"{PROG}: error: line must start with #! followed by the path to an interpreter.\n"
            f"{PROG}: error: For instance: #!/bin/sh"
        )
    if "\r\n" in script:
        raise CliError(
            "Batch script contains DOS line breaks (\\r\\n)\n"
            f"{PROG}: error: instead of expected UNIX line breaks (\\n)."
        )


# --------------------------------------------------------------------------- environment


def _split_export(text: str) -> list[str]:
    """Comma-separated, with quotes protecting commas (Slurm's ``find_quote_token``)."""
    items: list[str] = []
    cur: list[str] = []
    quote = ""
    for c in text:
        if quote:
            if c == quote:
                quote = ""
            else:
                cur.append(c)
        elif c in "\"'":
            quote = c
        elif c == ",":
            items.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    items.append("".join(cur))
    return [i for i in items if i]


def build_env(export: str | None, environ: dict[str, str]) -> dict[str, str]:
    """The job's environment for ``--export``.

    * unset or ``ALL``: the whole environment;
    * ``NONE``: only the ``SLURM_*`` variables; ``NIL``: nothing;
    * a list (``VAR1,VAR2=x``): the ``SLURM_*`` variables plus the listed ones, taken from
      the environment or set to the given value; ``ALL`` in the list adds everything.
    """
    if export is None:
        return dict(environ)
    spec = export.strip()
    upper = spec.upper()
    if upper == "ALL":
        return dict(environ)
    if upper == "NIL":
        return {}
    slurm_only = {k: v for k, v in environ.items() if k.startswith("SLURM_")}
    if upper == "NONE":
        return slurm_only
    items = _split_export(spec)
    env = dict(environ) if any(i.upper() == "ALL" for i in items) else slurm_only
    for item in items:
        if item.upper() == "ALL":
            continue
        name, eq, value = item.partition("=")
        if eq:
            env[name] = value
        elif name in environ:
            env[name] = environ[name]
    return env


# --------------------------------------------------------------------------- options → spec


def parse_node_count(text: str) -> int:
    """``-N min[-max]``: the minimum node count (Spur allocates exactly ``min``)."""
    lo, _, hi = text.strip().partition("-")
    try:
        n = int(lo)
        if hi:
            m = int(hi)
            if m < n:
                raise ValueError
    except ValueError:
        raise CliError("Invalid node count specification") from None
    if n <= 0:
        raise CliError("Invalid node count specification")
    return n


def apply_options(spec: dict[str, Any], opts: dict[str, str | None], cwd: str) -> None:
    """Fill the resource/identity fields of a ``submit`` spec from parsed options
    (shared by sbatch and srun; ``cwd`` is the caller's directory)."""
    from spurcore.timefmt import parse_mem, parse_time_limit

    if opts.get("job_name") is not None:
        spec["name"] = opts["job_name"]
    if opts.get("nodes") is not None:
        spec["nodes"] = parse_node_count(str(opts["nodes"]))
    if opts.get("ntasks") is not None:
        spec["ntasks"] = common.parse_int(str(opts["ntasks"]), "--ntasks")
    elif "nodes" in spec:
        spec["ntasks"] = spec["nodes"]  # Slurm: without -n, one task per node
    if opts.get("cpus_per_task") is not None:
        spec["cpus_per_task"] = common.parse_int(str(opts["cpus_per_task"]), "--cpus-per-task")
    if opts.get("mem") is not None:
        try:
            spec["mem_mb"] = parse_mem(str(opts["mem"]))
        except ValueError:
            raise CliError("Invalid --mem specification") from None
    if opts.get("time") is not None:
        try:
            spec["time_limit"] = parse_time_limit(str(opts["time"]), round_up_to_minutes=True)
        except ValueError:
            raise CliError("Invalid time limit specification") from None
    if opts.get("chdir") is not None:
        spec["cwd"] = os.path.normpath(os.path.join(cwd, str(opts["chdir"])))
    if opts.get("partition") is not None:
        spec["partition"] = opts["partition"]
    if opts.get("account") is not None:
        spec["account"] = opts["account"]
    if opts.get("dependency") is not None:
        spec["dependency"] = opts["dependency"]


def base_spec(name: str, cwd: str) -> dict[str, Any]:
    """The identity part of a spec: the caller's user/uid/gid, cwd and submit host."""
    user, uid, gid = common.current_user()
    try:
        sid = os.getsid(0)
    except OSError:
        sid = 0
    return {
        "name": name,
        "user": user,
        "uid": uid,
        "gid": gid,
        "cwd": cwd,
        "alloc_node": os.uname().nodename,  # gethostname() without importing socket
        "alloc_sid": sid,
    }


class Submission:
    """The parsed request: the ``submit`` spec plus how sbatch should behave."""

    def __init__(self, spec: dict[str, Any], parsable: bool, quiet: bool, wait: bool) -> None:
        self.spec = spec
        self.parsable = parsable
        self.quiet = quiet
        self.wait = wait


def _read_script(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise CliError(f"Unable to open file {path}") from None
    return data.decode("utf-8", "surrogateescape")


def build_submission(args: list[str], *, environ: dict[str, str] | None = None, cwd: str | None = None,
                     stdin_text: str | None = None) -> Submission:
    """Parse sbatch's command line (and the script's directives) into a Submission."""
    environ = dict(os.environ) if environ is None else environ
    cwd = os.getcwd() if cwd is None else cwd
    pairs, operands = common.getopt(args, OPTIONS, permute=False)
    common.handle_common(PROG, pairs, HELP, USAGE)
    cmdline = common.last(pairs)

    wrap = cmdline.get("wrap")
    if wrap is not None:
        if operands:
            raise CliError("Script arguments not permitted with --wrap option")
        script = WRAP_HEADER + wrap + "\n"
        script_path = ""
        default_name = "wrap"
        script_args: list[str] = []
    elif operands:
        script_path = os.path.normpath(os.path.join(cwd, operands[0]))
        script = _read_script(script_path)
        default_name = os.path.basename(operands[0]) or "sbatch"
        script_args = operands[1:]
    else:
        script = sys.stdin.read() if stdin_text is None else stdin_text
        script_path = ""
        default_name = "sbatch"
        script_args = []

    check_script(script)
    directive_pairs, _extra = common.getopt(script_directives(script), OPTIONS, permute=False)
    opts = common.last(directive_pairs)
    opts.update(cmdline)  # the command line wins over #SBATCH

    spec = base_spec(default_name, cwd)
    spec.update({
        "script": script,
        "argv": script_args,
        "env": build_env(opts.get("export"), environ),
        "command": script_path,
        "submit_line": " ".join([PROG, *args]),
    })
    apply_options(spec, opts, cwd)
    if opts.get("output") is not None:
        out = str(opts["output"])
        spec["stdout"] = "/dev/null" if out.lower() == "none" else out
    if opts.get("error") is not None:
        err = str(opts["error"])
        spec["stderr"] = "/dev/null" if err.lower() == "none" else err
    if opts.get("input") is not None:
        inp = str(opts["input"])
        spec["stdin"] = "/dev/null" if inp.lower() == "none" else inp
    if "hold" in opts:
        spec["hold"] = True
    return Submission(spec, "parsable" in opts, "quiet" in opts, "wait" in opts)


# --------------------------------------------------------------------------- --wait


def wait_exit_code(info: dict[str, Any]) -> int:
    """sbatch --wait's exit status for a finished job (Slurm ``_job_wait``)."""
    raw = info.get("exit_code")
    if raw is None:
        return 1
    raw = int(raw)
    if raw & 0x7F == 0:  # WIFEXITED
        return (raw >> 8) & 0xFF
    return 1


#: Poll interval bounds for --wait (seconds).
WAIT_FIRST_SLEEP = 0.1
WAIT_MAX_SLEEP = 1.0


def wait_for_job(ctl: common.Controller, job_id: int) -> int:
    import time

    from spurcore.rpc import RpcError
    from spurcore.rpc_client import ControllerUnavailable

    delay = WAIT_FIRST_SLEEP
    while True:
        time.sleep(delay)
        delay = min(delay * 1.5, WAIT_MAX_SLEEP)
        try:
            info = common.get_job(ctl, job_id)
        except (RpcError, ControllerUnavailable) as exc:
            common.error(PROG, f"Currently unable to load job state information, retrying: {exc}")
            continue
        if info is None:
            common.error(PROG, f"Job {job_id} no longer found and exit code not found")
            return 0
        if common.is_finished(info):
            return wait_exit_code(info)


# --------------------------------------------------------------------------- main


def _body(args: list[str]) -> int:
    sub = build_submission(args)
    ctl = common.connect()
    from spurcore.rpc import RpcError

    try:
        result = ctl.call("submit", {"request_id": common.new_request_id(), "spec": sub.spec})
    except RpcError as exc:
        raise CliError(f"Batch job submission failed: {exc.message or exc.code}") from None
    job_id = int(result["job_id"])
    if sub.parsable:
        sys.stdout.write(f"{job_id}\n")
    elif not sub.quiet:
        sys.stdout.write(f"Submitted batch job {job_id}\n")
    sys.stdout.flush()
    if sub.wait:
        try:
            return wait_for_job(ctl, job_id)
        finally:
            ctl.close()
    ctl.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
