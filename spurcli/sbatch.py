"""``sbatch``: submit a batch script (Slurm 25.11 behaviour).

Every sbatch option of Slurm 25.11 is accepted (the table is ``spurcli.opts``). Options are
applied as src/sbatch/opt.c applies them, so the last one wins:

1. the command line alone (Slurm's first pass): ``--help``, ``--usage``, ``--version``,
   ``-v``, ``-Q`` and ``--wrap`` take effect here, and a bad value is reported here first;
2. the ``#SBATCH`` lines of the script's leading comment block (read until the first line
   that is neither a comment nor blank; the "early" options above are ignored there);
3. the input environment variables (``SBATCH_PARTITION`` ...);
4. the command line again.

So the command line beats the environment, which beats ``#SBATCH``. The script path ends
the options; whatever follows it are the script's arguments.

``--wait`` exits as Slurm's ``_job_wait`` does: the job's exit code when the script exited
(``WEXITSTATUS``), 1 when it was killed by a signal (or has no status), 0 when the job has
already been purged ("no longer found and exit code not found").
"""

from __future__ import annotations

import os
import sys

from spurcli import common, opts
from spurcli.common import CliError

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "sbatch"

WRAP_HEADER = "#!/bin/sh\n# This script was created by sbatch --wrap.\n\n"

#: The default output pattern of a job array (Slurm: ``slurm-%A_%a.out``).
ARRAY_OUTPUT = "slurm-%A_%a.out"

USAGE = """\
Usage: sbatch [-N nnodes] [-n ntasks]
              [-c ncpus] [-r n] [-p partition] [--hold] [--parsable] [-t minutes]
              [-D path] [--no-kill] [--overcommit]
              [--input file] [--output file] [--error file]
              [--time-min=minutes] [--licenses=names] [--clusters=cluster_names]
              [--chdir=directory] [--oversubscribe] [-m dist] [-J jobname]
              [--verbose] [--gid=group] [--uid=user]
              [--contiguous] [--mincpus=n] [--mem=MB] [--tmp=MB] [-C list]
              [--account=name] [--dependency=type:jobid[+time]] [--comment=name]
              [--mail-type=type] [--mail-user=user] [--nice[=value]] [--wait]
              [--requeue[=expedite]] [--no-requeue] [--ntasks-per-node=n]
              [--propagate] [--nodefile=file] [--nodelist=hosts] [--exclude=hosts]
              [--network=type] [--mem-per-cpu=MB] [--qos=qos] [--gres=list]
              [--mem-bind=...] [--reservation=name] [--mcs-label=mcs]
              [--cpu-freq=min[-max[:gov]]] [--power=flags] [--gres-flags=opts]
              [--switches=max-switches{@max-time-to-wait}] [--reboot]
              [--core-spec=cores] [--thread-spec=threads]
              [--bb=burst_buffer_spec] [--bbf=burst_buffer_file]
              [--array=index_values] [--profile=...] [--ignore-pbs] [--spread-job]
              [--spread-segments]
              [--export[=names]] [--export-file=file|fd] [--delay-boot=mins]
              [--use-min-nodes]
              [--cpus-per-gpu=n] [--gpus=n] [--gpu-bind=...] [--gpu-freq=...]
              [--gpus-per-node=n] [--gpus-per-socket=n] [--gpus-per-task=n]
              [--mem-per-gpu=MB] [--tres-bind=...] [--tres-per-task=list]
              [--oom-kill-step[=0|1]]
              executable [args...]
"""

HELP = """\
Usage: sbatch [OPTIONS(0)...] [ : [OPTIONS(N)...]] script(0) [args(0)...]

Parallel run options:
  -a, --array=indexes         job array index values
  -A, --account=name          charge job to specified account
      --bb=<spec>             burst buffer specifications
      --bbf=<file_name>       burst buffer specification file
  -b, --begin=time            defer job until HH:MM MM/DD/YY
      --comment=name          arbitrary comment
      --cpu-freq=min[-max[:gov]] requested cpu frequency (and governor)
  -c, --cpus-per-task=ncpus   number of cpus required per task
  -d, --dependency=type:jobid[:time] defer job until condition on jobid is satisfied
      --deadline=time         remove the job if no ending possible before
                              this deadline (start > (deadline - time[-min]))
      --delay-boot=mins       delay boot for desired node features
  -D, --chdir=directory       set working directory for batch script
  -e, --error=err             file for batch script's standard error
      --export[=names]        specify environment variables to export
      --export-file=file|fd   specify environment variables file or file
                              descriptor to export
      --get-user-env          load environment from local cluster
      --gid=group_id          group ID to run job as (user root only)
      --gres=list             required generic resources per node
      --gres-flags=opts       flags related to GRES management
  -H, --hold                  submit job in held state
      --ignore-pbs            Ignore #PBS and #BSUB options in the batch script
  -i, --input=in              file for batch script's standard input
  -J, --job-name=jobname      name of job
  -k, --no-kill               do not kill job on node failure
  -L, --licenses=names        required license, comma separated
  -M, --clusters=names        Comma separated list of clusters to issue
                              commands to.  Default is current cluster.
                              Name of 'all' will submit to run on all clusters.
                              NOTE: SlurmDBD must up.
      --container             Path to OCI container bundle
      --container-id          OCI container ID
  -m, --distribution=type     distribution method for processes to nodes
                              (type = block|cyclic|arbitrary)
      --mail-type=type        notify on state change: BEGIN, END, FAIL or ALL
      --mail-user=user        who to send email notification for job state
                              changes
      --mcs-label=mcs         mcs label if mcs plugin mcs/group is used
  -n, --ntasks=ntasks         number of tasks to run
      --nice[=value]          decrease scheduling priority by value
      --no-requeue            if set, do not permit the job to be requeued
      --ntasks-per-node=n     number of tasks to invoke on each node
  -N, --nodes=N               number of nodes on which to run (N = min[-max])
      --oom-kill-step[=0|1]   set the OOMKillStep behaviour
  -o, --output=out            file for batch script's standard output
  -O, --overcommit            overcommit resources
  -p, --partition=partition   partition requested
      --parsable              outputs only the jobid and cluster name (if present),
                              separated by semicolon, only on successful submission.
      --power=flags           power management options
      --priority=value        set the priority of the job to value
      --profile=value         enable acct_gather_profile for detailed data
                              value is all or none or any combination of
                              energy, lustre, network or task
      --propagate[=rlimits]   propagate all [or specific list of] rlimits
  -q, --qos=qos               quality of service
  -Q, --quiet                 quiet mode (suppress informational messages)
      --reboot                reboot compute nodes before starting job
      --requeue[=expedite]   if set, permit the job to be requeued
  -s, --oversubscribe         over subscribe resources with other jobs
  -S, --core-spec=cores       count of reserved cores
      --signal=[[R][B]:]num[@time] send signal when time limit within time seconds
      --spread-job            spread job across as many nodes as possible
      --spread-segments       spread job segments across separate base blocks
      --switches=max-switches{@max-time-to-wait}
                              Optimum switches and max time to wait for optimum
      --thread-spec=threads   count of reserved threads
  -t, --time=minutes          time limit
      --time-min=minutes      minimum time limit (if distinct)
      --tres-bind=...         task to tres binding options
      --tres-per-task=list    list of tres required per task
      --uid=user_id           user ID to run job as (user root only)
      --use-min-nodes         if a range of node counts is given, prefer the
                              smaller count
  -v, --verbose               verbose mode (multiple -v's increase verbosity)
  -W, --wait                  wait for completion of submitted job
      --wckey=wckey           wckey to run job under
      --wrap[=command string] wrap command string in a sh script and submit

Constraint options:
      --cluster-constraint=[!]list specify a list of cluster constraints
      --contiguous            demand a contiguous range of nodes
  -C, --constraint=list       specify a list of constraints
  -F, --nodefile=filename     request a specific list of hosts
      --mem=MB                minimum amount of real memory
      --mincpus=n             minimum number of logical processors (threads)
                              per node
      --reservation=name      allocate resources from named reservation
      --tmp=MB                minimum amount of temporary disk
  -w, --nodelist=hosts...     request a specific list of hosts
  -x, --exclude=hosts...      exclude a specific list of hosts

Consumable resources related options:
      --exclusive[=user]      allocate nodes in exclusive mode when
                              cpu consumable resource is enabled
      --exclusive[=mcs]       allocate nodes in exclusive mode when
                              cpu consumable resource is enabled
                              and mcs plugin is enabled
      --mem-per-cpu=MB        maximum amount of real memory per allocated
                              cpu required by the job.
                              --mem >= --mem-per-cpu if --mem is specified.
      --resv-ports            reserve communication ports

Affinity/Multi-core options: (when the task/affinity plugin is enabled)
                              For the following 4 options, you are
                              specifying the minimum resources available for
                              the node(s) allocated to the job.
      --sockets-per-node=S    number of sockets per node to allocate
      --cores-per-socket=C    number of cores per socket to allocate
      --threads-per-core=T    number of threads per core to allocate
  -B, --extra-node-info=S[:C[:T]]  combine request of sockets per node,
                              cores per socket and threads per core.
                              Specify an asterisk (*) as a placeholder,
                              a minimum value, or a min-max range.

      --ntasks-per-core=n     number of tasks to invoke on each core
      --ntasks-per-socket=n   number of tasks to invoke on each socket

GPU scheduling options:
      --cpus-per-gpu=n        number of CPUs required per allocated GPU
  -G, --gpus=n                count of GPUs required for the job
      --gpu-bind=...          task to gpu binding options
      --gpu-freq=...          frequency and voltage of GPUs
      --gpus-per-node=n       number of GPUs required per allocated node
      --gpus-per-socket=n     number of GPUs required per allocated socket
      --gpus-per-task=n       number of GPUs required per spawned task
      --mem-per-gpu=n         real memory required per allocated GPU

Help options:
  -h, --help                  show this help message
      --usage                 display brief usage message

Other options:
  -V, --version               output version information and exit

"""


# --------------------------------------------------------------------------- directives


def _get_argument(text: str, i: int, file: str, lineno: int) -> tuple[str | None, int]:
    """Slurm's ``get_argument``: the next word of a directive line from ``text[i]`` and the
    index after it; None when the line has no more words."""
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    rest = text[i:]
    for sep in ("packjob", "hetjob"):
        if rest[: len(sep)].lower() == sep and (len(rest) == len(sep) or rest[len(sep)].isspace()):
            raise CliError("Heterogeneous jobs (hetjob) are not supported by Spur")
    if rest[:1] == ":":
        raise CliError(f"{PROG}: fatal: {file}: line {lineno}: Unexpected `:` in [{text}]", 1, raw=True)
    word: list[str] | None = None
    quote = ""
    escape = False
    while i < n and (quote or not text[i].isspace()) and text[i] != "\n":
        c = text[i]
        if escape:
            escape = False
        elif c == "\\":
            i += 1
            if i < n and text[i] == " ":
                word = (word or []) + [" "]
                i += 1
            else:
                escape = True
            continue
        elif quote:
            if c == quote:
                quote = ""
                i += 1
                continue
        elif c in "\"'":
            quote = c
            i += 1
            continue
        elif c == "#":  # an unescaped, unquoted # starts a comment
            break
        word = (word or []) + [c]
        i += 1
    if quote:
        raise CliError(f"{PROG}: fatal: {file}: line {lineno}: Unmatched `{quote}` in [{text}]", 1, raw=True)
    return (None if word is None else "".join(word)), i


def tokenize_directive(text: str, file: str = "stdin", lineno: int = 0) -> list[str]:
    """The words of one ``#SBATCH`` line (Slurm's ``get_argument``): whitespace separated;
    quotes group and are removed; a backslash makes the next character literal (``\\ `` is
    a space); an unquoted ``#`` starts a comment. An unmatched quote or a word starting
    with ``:`` is fatal, as in Slurm; a word that comes out empty (``""``) ends the line."""
    words: list[str] = []
    i = 0
    while True:
        word, i = _get_argument(text, i, file, lineno)
        if word is None:
            return words
        words.append(word)


def script_directives(script: str, file: str = "stdin") -> list[str]:
    """The option words of the ``#SBATCH`` (or ``#SLURM``) lines before the first command of
    ``script`` (Slurm's ``_opt_batch_script``: the magic word need not be followed by a
    space, and a line is a command when its first non-blank character is not ``#``)."""
    words: list[str] = []
    warned = False
    for lineno, line in enumerate(script.split("\n"), 1):
        if line.startswith("#SBATCH"):
            words.extend(tokenize_directive(line[7:], file, lineno))
        elif line.startswith("#SLURM"):
            if not warned:
                common.error(PROG, "Change from #SLURM to #SBATCH in your script and verify the options are "
                             "valid in sbatch")
                warned = True
            words.extend(tokenize_directive(line[6:], file, lineno))
        elif line.strip() and not line.lstrip().startswith("#"):
            break
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


def build_env(export: str | None, environ: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    """The job's environment for ``--export`` (sbatch.c ``_fill_job_desc_from_opts``).

    ``base`` is what ``--export-file`` read. Unset or ``ALL``: ``base`` plus the whole
    environment; ``NIL`` and ``NONE``: only the ``SLURM_*``/``SPANK_*`` variables (``base``
    dropped, as Slurm does); a list (``VAR1,VAR2=x``, ``ALL`` allowed in it): ``base``, then
    the items in order (named variables from the environment, ``ALL`` = everything), then
    the ``SLURM_*`` variables of the environment over them.
    """
    env = dict(base or {})
    if export is None or export.strip().upper() == "ALL":
        env.update(environ)
        return env
    spec = export.strip()
    slurm = {k: v for k, v in environ.items() if k.startswith(("SLURM", "_SLURM_SPANK_OPTION_"))}
    if spec.upper() in ("NIL", "NONE"):
        return slurm
    for item in _split_export(spec):
        if item.upper() == "ALL":
            env.update(environ)
            continue
        name, eq, value = item.partition("=")
        if eq:
            env[name] = value
        elif name in environ:
            env[name] = environ[name]
    env.update(slurm)
    return env


#: Variables env_array_from_file never takes from the file.
_DISCARDED = ("DISPLAY", "ENVIRONMENT", "HOSTNAME")


def read_export_file(text: str, cwd: str = ".") -> dict[str, str]:
    """``--export-file=<file|fd>`` (Slurm's ``env_array_from_file``): a number from 3 up
    that is an open descriptor is read, anything else is a file name. Entries are
    ``NAME=value`` separated by NUL characters, up to the first empty one; entries without
    ``=`` and DISPLAY, ENVIRONMENT, HOSTNAME are skipped. A file with no NUL at all is read
    one entry per line (Slurm would take it as one variable with embedded newlines)."""
    import fcntl

    fd = -1
    if text.isdigit() and int(text) >= 3:
        try:
            fcntl.fcntl(int(text), fcntl.F_GETFL)
            fd = int(text)
        except OSError:
            fd = -1
    try:
        if fd >= 0:
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
        else:
            with open(os.path.join(cwd, text), "rb") as f:
                data = f.read()
    except OSError:
        raise CliError(f"Could not open user environment file {text}") from None
    body = data.decode("utf-8", "surrogateescape")
    entries = body.split("\0") if "\0" in body else body.split("\n")
    env: dict[str, str] = {}
    for entry in entries:
        if not entry:
            if "\0" in body:
                break
            continue
        name, eq, value = entry.partition("=")
        if not eq or len(name) >= 256 or name in _DISCARDED:
            continue
        env[name] = value
    return env


def _job_env_from_options(st: opts.State) -> dict[str, str]:
    """What sbatch itself puts in the job's environment (sbatch/opt.c ``set_envs``)."""
    f = st.f
    out: dict[str, str] = {}
    if f.get("cpus_set"):
        out["SLURM_CPUS_PER_TASK"] = str(f["cpus_per_task"])
    if f.get("distribution"):
        out["SLURM_DISTRIBUTION"] = f["distribution"]
        if f["distribution"] == "plane":
            out["SLURM_DIST_PLANESIZE"] = str(f["plane_size"])
    if f.get("ntasks_set") and f.get("ntasks", 0) > 0:
        out["SLURM_NPROCS"] = out["SLURM_NTASKS"] = str(f["ntasks"])
    if f.get("overcommit"):
        out["SLURM_OVERCOMMIT"] = "1"  # srun in the job reads it as -O
    for field, var in (("ntasks_per_core", "SLURM_NTASKS_PER_CORE"), ("ntasks_per_node", "SLURM_NTASKS_PER_NODE"),
                       ("ntasks_per_socket", "SLURM_NTASKS_PER_SOCKET"),
                       ("threads_per_core", "SLURM_THREADS_PER_CORE")):
        if field in f:
            out[var] = str(f[field])
    if "ntasks_per_tres" in f:
        out["SLURM_NTASKS_PER_TRES"] = str(f["ntasks_per_tres"])
    elif "ntasks_per_gpu" in f:
        out["SLURM_NTASKS_PER_GPU"] = str(f["ntasks_per_gpu"])
    return out


# --------------------------------------------------------------------------- verification


def _expand_hosts(text: str) -> list[str]:
    """``spurcore.hostlist.expand``, imported only when a node list is given (it loads collections)."""
    from spurcore.hostlist import expand

    return expand(text)


def verify(st: opts.State, error_exit: int) -> None:
    """sbatch/opt.c ``_opt_verify`` after ``validate_options_salloc_sbatch_srun``."""
    opts.validate_common(st)
    f = st.f
    ok = True
    if f.get("quiet") and f.get("verbose"):
        st.error("don't specify both --verbose (-v) and --quiet (-Q)")
        ok = False
    if "resv_port_cnt" in f and not f.get("stepmgr"):
        st.error("Slurmstepd step management must be enabled to use --resv-ports for job allocations")
        ok = False
    if f.get("burst_buffer") and f.get("burst_buffer_file"):
        raise CliError("Cannot specify both --burst-buffer and --bbf", error_exit)
    opts.verify_hint(st)
    if f.get("exclude") and not opts.valid_node_list(st, "exclude"):
        raise CliError("", error_exit)
    nodelist = f.get("nodelist")
    if nodelist and not f.get("nodes_set") and "{" not in nodelist:
        f["min_nodes"] = opts.unique_hosts(st, nodelist)
        f["max_nodes"] = 0
        f["nodes_set"] = True
    min_nodes, max_nodes = f.get("min_nodes", 1), f.get("max_nodes", 0)
    ntasks_set = f.get("ntasks_set", False)
    ntasks = f.get("ntasks", 1)
    if f.get("distribution") == "plane" and f.get("plane_size"):
        plane = f["plane_size"]
        if (min_nodes <= 0 or ntasks // plane < min_nodes) and (min_nodes - 1) * plane >= ntasks:
            raise CliError("Too few processes for the requested {plane,node} distribution", error_exit)
    # "massage the numbers": one task per node (times the -B shape) when -n is not given
    if ((f.get("nodes_set") or f.get("extra_set")) and (min_nodes == max_nodes or max_nodes == 0)
            and "ntasks_per_node" not in f and not ntasks_set):
        ntasks = max(min_nodes, 1)
        for field in ("sockets_per_node", "cores_per_socket", "threads_per_core"):
            if field in f:
                ntasks *= f[field]
                ntasks_set = True
        f["ntasks"] = ntasks
        f["ntasks_set"] = ntasks_set
        if ntasks_set and f.get("verbose"):
            st.info(f"Number of tasks implicitly set to {ntasks}.")
    elif f.get("nodes_set") and ntasks_set:
        if ntasks < max_nodes:
            f["max_nodes"] = ntasks
        if ntasks < min_nodes:
            st.warning(f"can't run {ntasks} processes on {min_nodes} nodes, setting nnodes to {ntasks}")
            f["min_nodes"] = f["max_nodes"] = ntasks
    if f.get("distribution") == "arbitrary" and not (f.get("nodes_set") and ntasks_set) and "{" not in (
            nodelist := f.get("nodelist") or ""):
        try:
            hosts = _expand_hosts(nodelist)
        except ValueError:
            st.fatal("Invalid node list specified")
        if not ntasks_set:
            f["ntasks"], f["ntasks_set"] = len(hosts), True
        if not f.get("nodes_set"):
            f["min_nodes"] = f["max_nodes"] = len(set(hosts))
            f["nodes_set"] = True
    if "ntasks_per_core" in f and "threads_per_core" in f and f["threads_per_core"] < f["ntasks_per_core"]:
        st.error(f"--ntasks-per-core ({f['ntasks_per_core']}) can not be bigger than --threads-per-core "
                 f"({f['threads_per_core']})")
        ok = False
    if f.get("deadline") and f.get("begin") and f["deadline"] < f["begin"]:
        raise CliError("Incompatible begin and deadline time specification", error_exit)
    if not ok:
        raise CliError("", error_exit)
    # slurm_opt_create_job_desc
    if f.get("nodelist"):
        try:
            _expand_hosts(f["nodelist"])
        except ValueError:
            raise CliError("Invalid node list specified", error_exit) from None
    elif f.get("distribution") == "arbitrary":
        raise CliError("With Arbitrary distribution you need to specify a nodelist or hostfile with the -w "
                       "option", error_exit)


# --------------------------------------------------------------------------- options → spec


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

    def __init__(self, spec: dict[str, Any], parsable: bool, quiet: bool, wait: bool, *,
                 test_only: bool = False, error_exit: int = 1) -> None:
        self.spec = spec
        self.parsable = parsable
        self.quiet = quiet
        self.wait = wait
        self.test_only = test_only
        self.error_exit = error_exit


def _read_script(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise CliError(f"Unable to open file {path}") from None
    return data.decode("utf-8", "surrogateescape")


def find_script(name: str, cwd: str, chdir: str | None, environ: dict[str, str]) -> str:
    """Slurm's ``search_path`` for the script (not tested for execution): a name starting
    with ``.`` or ``/`` is taken as given; a bare name is looked for in the ``--chdir``
    directory, then along PATH; not found, it is taken relative to the current directory."""
    if name.startswith((".", "/")):
        return os.path.normpath(os.path.join(cwd, name))
    first = chdir or cwd
    for d in [first, *environ.get("PATH", "").split(":")]:
        if not d:
            continue
        base = os.path.join(first, d) if d.startswith(".") else d
        candidate = os.path.join(base, name)
        if os.path.exists(os.path.join(cwd, candidate)):
            return os.path.normpath(os.path.join(cwd, candidate))
    return os.path.normpath(os.path.join(cwd, name))


def _error_exit(environ: dict[str, str]) -> int:
    """SLURM_EXIT_ERROR replaces sbatch's exit status for errors (not for bad options)."""
    text = environ.get("SLURM_EXIT_ERROR")
    if text is None:
        return 1
    value = opts.strtol(text)[0]
    if value == 0:
        common.error(PROG, "SLURM_EXIT_ERROR has zero value")
        return 1
    return value & 0xFF


def build_submission(args: list[str], *, environ: dict[str, str] | None = None, cwd: str | None = None,
                     stdin_text: str | None = None, now: float | None = None, uid: int = -1) -> Submission:
    """Parse sbatch's command line, the script's directives and the environment into a
    Submission (see the module docstring for the order)."""
    import time

    environ = dict(os.environ) if environ is None else dict(environ)
    cwd = os.getcwd() if cwd is None else cwd
    now = time.time() if now is None else now
    error_exit = _error_exit(environ)

    def state(buffered: bool = False) -> opts.State:
        return opts.State(PROG, environ=environ, cwd=cwd, now=now, uid=uid, buffered=buffered,
                          help_text=HELP, usage_text=USAGE)

    pairs, operands = opts.parse_argv(PROG, args)
    if operands[:1] == [":"]:
        raise CliError("Heterogeneous jobs (hetjob) are not supported by Spur")
    # First pass: the command line alone, every option as Slurm's process_options_first_pass
    # runs it; lines that did not end in an error are printed by the second pass instead.
    first = state(buffered=True)
    try:
        opts.apply_pairs(first, pairs, env=True)
    except CliError:
        first.flush()
        raise
    if first.f.get("external"):
        if operands:
            raise CliError("Script arguments not permitted with --external option")
        raise CliError("--external jobs are not supported by Spur (no external job tracking)")

    wrap = first.f.get("wrap")
    if wrap is not None:
        if operands:
            raise CliError("Script arguments not permitted with --wrap option")
        script = WRAP_HEADER + wrap + "\n"
        script_path = ""
        default_name = "wrap"
        script_args: list[str] = []
        file = "stdin"
    elif operands:
        script_path = find_script(operands[0], cwd, first.f.get("chdir"), environ)
        script = _read_script(script_path)
        default_name = os.path.basename(operands[0]) or "sbatch"
        script_args = operands[1:]
        file = os.path.basename(script_path)
    else:
        script = sys.stdin.read() if stdin_text is None else stdin_text
        script_path = ""
        default_name = "sbatch"
        script_args = []
        file = "stdin"
    check_script(script)

    st = state()
    for key in ("quiet", "verbose", "verbose_by_cli", "wrap"):  # the first pass's early options stay
        if key in first.f:
            st.f[key] = first.f[key]
    st.quiet_log = bool(first.f.get("quiet"))  # sbatch.c: log_alter() after the first pass
    words = script_directives(script, file)
    dir_pairs, extra = opts.parse_argv(PROG, words)
    if extra:
        raise CliError(f"Invalid directive found in batch script: {extra[0]}", opts.EXIT_SET)
    opts.apply_pairs(st, dir_pairs, skip_early=True)
    opts.apply_env(st, environ)
    opts.apply_pairs(st, pairs, skip_early=True)
    verify(st, error_exit)

    f = st.f
    job_environ = dict(environ)
    if f.get("export") is not None and f["export"].strip().upper() != "ALL":
        job_environ.setdefault("SLURM_EXPORT_ENV", f["export"])
    if f.get("dependency"):
        job_environ["SLURM_JOB_DEPENDENCY"] = f["dependency"]
    base_env = None
    if f.get("export_file") is not None:
        base_env = read_export_file(f["export_file"], cwd)
        # Slurm unsets its own environment when the job's comes from a file; only the
        # variables sbatch sets itself remain.
        job_environ = {k: v for k, v in job_environ.items()
                       if k in ("SLURM_EXPORT_ENV", "SLURM_JOB_DEPENDENCY")}
    env = build_env(f.get("export"), job_environ, base_env)
    env.update(_job_env_from_options(st))

    spec = base_spec(default_name, cwd)
    spec.update({
        "script": script,
        "argv": script_args,
        "env": env,
        "command": script_path,
        "submit_line": " ".join([PROG, *args]),
    })
    spec.update(opts.job_spec(st))
    if f.get("array") is not None and "ofname" not in f:
        spec["stdout"] = ARRAY_OUTPUT
    return Submission(spec, bool(f.get("parsable")), bool(f.get("quiet")),
                      bool(f.get("wait")), test_only=bool(f.get("test_only")), error_exit=error_exit)


# --------------------------------------------------------------------------- --wait


def wait_exit_code(info: dict[str, Any]) -> int:
    """sbatch --wait's exit status for a finished job (Slurm ``_job_wait``)."""
    raw = info.get("exit_code")
    if raw is None:
        return 1
    from spurcore.exitcodes import decode_wait_status

    code, sig = decode_wait_status(int(raw))
    return 1 if sig else code


#: Poll interval bounds for --wait (seconds).
WAIT_FIRST_SLEEP = 0.1
WAIT_MAX_SLEEP = 1.0


def wait_for_job(ctl: common.Controller, job_id: int) -> int:
    import time

    from spurio.client import ControllerUnavailable
    from spurio.rpc import RpcError

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


# --------------------------------------------------------------------------- --test-only


def test_only_line(result: dict[str, Any]) -> str:
    """slurm_job_will_run's report (src/api/allocate.c, 25.11 wording, including its " a"
    before "using"), printed with sbatch's ``info()`` prefix."""
    from spurcore.timefmt import fmt_timestamp

    return (f"Job {int(result['job_id'])} to start at {fmt_timestamp(result.get('start_time') or 0)} a using "
            f"{int(result.get('cpus') or 0)} processors on nodes {result.get('nodes') or ''} in partition "
            f"{result.get('partition') or ''}")


def will_run(ctl: Any, spec: dict[str, Any], prog: str = PROG, *, quiet: bool = False) -> int:
    """``--test-only`` (sbatch and srun): ask the controller when and where the job would
    start; submit nothing. Exit 0 with Slurm's line on stderr (an ``info()`` line, which
    -Q hides), or 1 with ``allocation failure: ...`` (``slurm_perror``)."""
    from spurio.rpc import RpcError

    try:
        result = ctl.call("submit", {"request_id": common.new_request_id(), "spec": spec, "test_only": True})
    except RpcError as exc:
        raise CliError(f"allocation failure: {exc.message or exc.code}", 1, raw=True) from None
    if not quiet:
        common.info(prog, test_only_line(result))
    return 0


def run_test_only(ctl: Any, sub: Submission) -> int:
    return will_run(ctl, sub.spec, PROG, quiet=sub.quiet)


# --------------------------------------------------------------------------- main


def _body(args: list[str]) -> int:
    sub = build_submission(args)
    ctl = common.connect()
    from spurio.rpc import RpcError

    if sub.test_only:
        try:
            return run_test_only(ctl, sub)
        finally:
            ctl.close()
    try:
        result = ctl.call("submit", {"request_id": common.new_request_id(), "spec": sub.spec})
    except RpcError as exc:
        raise CliError(f"Batch job submission failed: {exc.message or exc.code}", sub.error_exit) from None
    job_id = int(result["job_id"])
    if sub.quiet:  # Slurm: -Q silences --parsable too
        pass
    elif sub.parsable:
        sys.stdout.write(f"{job_id}\n")
    else:
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
    return common.run(PROG, _body, argv, usage_code=opts.EXIT_SET)


if __name__ == "__main__":
    sys.exit(main())
