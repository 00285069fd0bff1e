"""srun's option parsing (Slurm 25.11 src/srun/opt.c), without running anything.

``parse(args, environ=...)`` applies srun's input environment variables (``SLURM_NTASKS``,
``SLURM_JOB_ID``, ``SLURM_MPI_TYPE`` ...) and then the command line, both through the shared
table of ``spurcli.opts`` (so the command line wins), runs srun's ``_opt_verify`` checks
and returns a ``SrunRequest``:

* ``spec``: the JobSpec fields for a new allocation (the same keys sbatch sends);
* ``step``: what the step asks for (tasks, layout, I/O, launch flags), see ``step_params``;
* ``command``: the program and its arguments.

Invariants: nothing is sent and no process is started; every failure is a ``CliError``
(or ``Exit`` for ``--help``/``--usage``/``--version``/``--mpi=list``) carrying Slurm's
message and exit status; non-fatal lines are written to stderr as srun prints them.
"""

from __future__ import annotations

import os

from spurcli import opts
from spurcli.common import CliError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "srun"

#: Spur's MpiDefault: pmi2, so an MPI program started by srun wires up without --mpi
#: (Slurm's own default is none; SLURM_MPI_TYPE or --mpi=none override it).
MPI_DEFAULT = "pmi2"

USAGE = """\
Usage: srun [-N nnodes] [-n ntasks] [-i in] [-o out] [-e err]
            [-c ncpus] [-r n] [-p partition] [--hold] [-t minutes]
            [-D path] [--immediate[=secs]] [--overcommit] [--overlap] [--no-kill]
            [--oversubscribe] [--label] [--unbuffered] [-m dist] [-J jobname]
            [--jobid=id] [--verbose] [--slurmd_debug=#] [--gres=list]
            [-T threads] [-W sec] [--gres-flags=opts]
            [--licenses=names] [--clusters=cluster_names]
            [--qos=qos] [--time-min=minutes]
            [--contiguous] [--mincpus=n] [--mem=MB] [--tmp=MB] [-C list]
            [--mpi=type] [--account=name] [--dependency=type:jobid[+time]]
            [--kill-on-bad-exit] [--propagate[=rlimits] [--comment=name]
            [--cpu-bind=...] [--mem-bind=...] [--network=type]
            [--ntasks-per-node=n] [--ntasks-per-socket=n] [reservation=name]
            [--ntasks-per-core=n] [--mem-per-cpu=MB] [--preserve-env]
            [--profile=...] [--exact]
            [--mail-type=type] [--mail-user=user] [--nice[=value]]
            [--prolog=fname] [--epilog=fname]
            [--task-prolog=fname] [--task-epilog=fname]
            [--ctrl-comm-ifhn=addr] [--multi-prog] [--mcs-label=mcs]
            [--cpu-freq=min[-max[:gov]]] [--power=flags] [--spread-job]
            [--spread-segments]
            [--switches=max-switches{@max-time-to-wait}] [--reboot]
            [--core-spec=cores] [--thread-spec=threads]
            [--bb=burst_buffer_spec] [--bbf=burst_buffer_file]
            [--bcast=<dest_path>] [--bcast-exclude=<NONE|path1,...,pathN>]
            [--send-libs[=y|n]] [--compress[=library]]
            [--acctg-freq=<datatype>=<interval>] [--delay-boot=mins]
            [-w hosts...] [-x hosts...] [--use-min-nodes]
            [--mpi-combine=yes|no] [--het-group=value]
            [--cpus-per-gpu=n] [--gpus=n] [--gpu-bind=...] [--gpu-freq=...]
            [--gpus-per-node=n] [--gpus-per-socket=n] [--gpus-per-task=n]
            [--mem-per-gpu=MB] [--tres-bind=...] [--tres-per-task=list]
            [--oom-kill-step[=0|1]]
            executable [args...]
"""

HELP = """\
Usage: srun [OPTIONS(0)... [executable(0) [args(0)...]]] [ : [OPTIONS(N)...]] executable(N) [args(N)...]

Parallel run options:
  -A, --account=name          charge job to specified account
      --acctg-freq=<datatype>=<interval> accounting and profiling sampling
                              intervals. Supported datatypes:
                              task=<interval> energy=<interval>
                              network=<interval> filesystem=<interval>
      --bb=<spec>             burst buffer specifications
      --bbf=<file_name>       burst buffer specification file
      --bcast=<dest_path>     Copy executable file to compute nodes
      --bcast-exclude=<paths> Shared object directory paths to exclude
  -b, --begin=time            defer job until HH:MM MM/DD/YY
  -c, --cpus-per-task=ncpus   number of cpus required per task
      --comment=name          arbitrary comment
      --compress[=library]    data compression library used with --bcast
      --container             Path to OCI container bundle
      --container-id          OCI container ID
      --cpu-freq=min[-max[:gov]] requested cpu frequency (and governor)
  -d, --dependency=type:jobid[:time] defer job until condition on jobid is satisfied
      --deadline=time         remove the job if no ending possible before
                              this deadline (start > (deadline - time[-min]))
      --delay-boot=mins       delay boot for desired node features
  -D, --chdir=path            change remote current working directory
      --export=env_vars|NONE  environment variables passed to launcher with
                              optional values or NONE (pass no variables)
  -e, --error=err             location of stderr redirection
      --epilog=program        run "program" after launching job step
  -E, --preserve-env          env vars for node and task counts override
                              command-line flags
      --gres=list             required generic resources per node
      --gres-flags=opts       flags related to GRES management
  -H, --hold                  submit job in held state
  -i, --input=in              location of stdin redirection
  -I, --immediate[=secs]      exit if resources not available in "secs"
      --jobid=id              run under already allocated job
  -J, --job-name=jobname      name of job
  -k, --no-kill               do not kill job on node failure
  -K, --kill-on-bad-exit      kill the job if any task terminates with a
                              non-zero exit code
  -l, --label                 prepend task number to lines of stdout/err
  -L, --licenses=names        required license, comma separated
  -M, --clusters=names        Comma separated list of clusters to issue
                              commands to.  Default is current cluster.
                              Name of 'all' will submit to run on all clusters.
                              NOTE: SlurmDBD must up.
  -m, --distribution=type     distribution method for processes to nodes
                              (type = block|cyclic|arbitrary)
      --mail-type=type        notify on state change: BEGIN, END, FAIL or ALL
      --mail-user=user        who to send email notification for job state
                              changes
      --mcs-label=mcs         mcs label if mcs plugin mcs/group is used
      --mpi=type              type of MPI being used
      --multi-prog            if set the program name specified is the
                              configuration specification for multiple programs
  -n, --ntasks=ntasks         number of tasks to run
      --nice[=value]          decrease scheduling priority by value
      --ntasks-per-node=n     number of tasks to invoke on each node
  -N, --nodes=N               number of nodes on which to run (N = min[-max])
      --oom-kill-step[=0|1]   set the OOMKillStep behaviour
  -o, --output=out            location of stdout redirection
  -O, --overcommit            overcommit resources
      --overlap               Allow other steps to overlap this step
      --het-group=value       hetjob component allocation(s) in which to launch
                              application
  -p, --partition=partition   partition requested
      --power=flags           power management options
      --priority=value        set the priority of the job to value
      --prolog=program        run "program" before launching job step
      --profile=value         enable acct_gather_profile for detailed data
                              value is all or none or any combination of
                              energy, lustre, network or task
      --propagate[=rlimits]   propagate all [or specific list of] rlimits
      --pty[=fd]              run task zero in pseudo terminal [or in requested terminal given by fd]
      --quit-on-interrupt     quit on single Ctrl-C
  -q, --qos=qos               quality of service
  -Q, --quiet                 quiet mode (suppress informational messages)
      --reboot                reboot block before starting job
  -r, --relative=n            run job step relative to node n of allocation
  -s, --oversubscribe         over-subscribe resources with other jobs
  -S, --core-spec=cores       count of reserved cores
      --send-libs[=yes|no]    autodetect and broadcast shared objects
      --signal=[R:]num[@time] send signal when time limit within time seconds
      --slurmd-debug=level    slurmd debug level
      --spread-job            spread job across as many nodes as possible
      --spread-segments       spread job segments across separate base blocks
      --switches=max-switches{@max-time-to-wait}
                              Optimum switches and max time to wait for optimum
      --task-epilog=program   run "program" after launching task
      --task-prolog=program   run "program" before launching task
      --thread-spec=threads   count of reserved threads
  -T, --threads=threads       set srun launch fanout
  -t, --time=minutes          time limit
      --time-min=minutes      minimum time limit (if distinct)
      --tres-bind=...         task to tres binding options
      --tres-per-task=list    list of tres required per task
  -u, --unbuffered            do not line-buffer stdout/err
      --use-min-nodes         if a range of node counts is given, prefer the
                              smaller count
  -v, --verbose               verbose mode (multiple -v's increase verbosity)
      --wait-for-children     wait for all children processes in a task to
                              close before considering the task ended.
  -W, --wait=sec              seconds to wait after first task exits
                              before killing job
      --wckey=wckey           wckey to run job under
  -X, --disable-status        Disable Ctrl-C status feature

Constraint options:
      --cluster-constraint=list specify a list of cluster-constraints
      --contiguous            demand a contiguous range of nodes
  -C, --constraint=list       specify a list of constraints
      --mem=MB                minimum amount of real memory
      --mincpus=n             minimum number of logical processors (threads)
                              per node
      --reservation=name      allocate resources from named reservation
      --tmp=MB                minimum amount of temporary disk
  -w, --nodelist=hosts...     request a specific list of hosts
  -x, --exclude=hosts...      exclude a specific list of hosts
  -Z, --no-allocate           don't allocate nodes (must supply -w)

Consumable resources related options:
      --exact                 use only the resources requested for the step
                              (by default, all non-gres resources on each node
                              in the allocation will be used in the step)
      --exclusive[=user]      for job allocation, this allocates nodes in
                              in exclusive mode
                              for job steps, this is equivalent to --exact
      --exclusive[=mcs]       allocate nodes in exclusive mode when
                              cpu consumable resource is enabled
                              and mcs plugin is enabled (--exact implied)
                              or don't share CPUs for job steps
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


class SrunRequest:
    """The parsed srun command line: ``spec`` for a new allocation, ``step`` for the step,
    ``command`` to run (empty only with ``--test-only``), ``state`` for anything else."""

    __slots__ = ("spec", "step", "command", "state")

    def __init__(self, spec: dict[str, Any], step: dict[str, Any], command: list[str], state: opts.State) -> None:
        self.spec = spec
        self.step = step
        self.command = command
        self.state = state


def _error_exit(environ: dict[str, str]) -> int:
    text = environ.get("SLURM_EXIT_ERROR")
    if text is None:
        return 1
    value = opts.strtol(text)[0]
    return value & 0xFF if value else 1


def _check_het_group(text: str, error_exit: int) -> None:
    """``_get_het_group``: a hostlist-style list of component numbers 0..127."""
    from spurcore.hostlist import expand

    body = text if text.startswith("[") else f"[{text}]"
    try:
        items = expand(f"x{body}")
    except ValueError:
        items = []
    if not items:
        raise CliError(f"Invalid --het-group value: {text}", error_exit)
    for item in items:
        value, end = opts.strtol(item[1:])
        if not end or item[1 + end:] or value < 0 or value >= 128:
            raise CliError(f"Invalid --het-group value: {text}", error_exit)


def _check_multi_prog(st: opts.State, command: list[str], error_exit: int) -> None:
    """srun's ``verify_multi_name``: the configuration file must open and give every task
    of the step one line (without ``-n``, the step gets as many tasks as it names). Its text
    goes with the step (``multi_prog_config``): each node takes its tasks' argv from it."""
    if not st.f.get("multi_prog") or not command:
        return
    from spurcore import multiprog

    path = command[0] if command[0].startswith("/") else os.path.join(st.f.get("chdir") or st.cwd, command[0])
    try:
        with open(path, "rb") as f:
            data = f.read(multiprog.MAX_SIZE + 1)
    except OSError:
        raise CliError(f"Unable to open configuration file {command[0]}", error_exit) from None
    if len(data) > multiprog.MAX_SIZE:
        raise CliError(f"Multi_prog config file {command[0]} is too large", error_exit)
    text = data.decode(errors="replace")
    try:
        ntasks, ntasks_set = multiprog.verify(text, command[0], st.f.get("ntasks", 1), bool(st.f.get("ntasks_set")))
    except multiprog.MultiProgError as e:
        for message in e.messages[:-1]:
            st.error(message)
        raise CliError(e.messages[-1], error_exit) from None
    st.f["ntasks"], st.f["ntasks_set"] = ntasks, ntasks_set
    st.f["multi_prog_config"] = text


def verify(st: opts.State, command: list[str], error_exit: int) -> None:
    """srun/opt.c ``_opt_verify`` (the parts that do not need a controller)."""
    f = st.f
    is_step = "SLURM_JOB_ID" in st.environ
    if f.get("interactive") and f.get("distribution") == "arbitrary":
        f.pop("distribution", None)
    if f.get("distribution") == "arbitrary":
        if st.by_env("ntasks"):
            f["ntasks_set"] = False
        if st.by_env("nodes"):
            f["nodes_set"] = False
    if st.by_env("gpus-per-node") and st.by_cli("gpus") and is_step:
        opts.reset_option(st, "gpus-per-node")
    opts.validate_common(st)
    ok = True
    if f.get("quiet") and f.get("verbose"):
        st.error("don't specify both --verbose (-v) and --quiet (-Q)")
        ok = False
    if f.get("burst_buffer") and f.get("burst_buffer_file"):
        raise CliError("Cannot specify both --burst-buffer and --bbf", error_exit)
    if f.get("exact") and f.get("whole"):
        st.error("--exact and --whole are mutually exclusive.")
        ok = False
    if f.get("no_alloc") and not f.get("nodelist"):
        st.error("must specify a node list with -Z, --no-allocate.")
        ok = False
    if f.get("no_alloc") and f.get("exclude"):
        st.error("can not specify --exclude list with -Z, --no-allocate.")
        ok = False
    if f.get("no_alloc") and "relative" in f:
        st.error("do not specify -r,--relative with -Z,--no-allocate.")
        ok = False
    if "relative" in f and (f.get("exclude") or f.get("nodelist")):
        st.error("-r,--relative not allowed with -w,--nodelist or -x,--exclude.")
        ok = False
    if f.get("cpu_bind") and not opts.verify_cpu_bind(st, f["cpu_bind"]):
        ok = False
    opts.verify_hint(st)
    if f.get("exclude") and not opts.valid_node_list(st, "exclude"):
        raise CliError("", error_exit)
    if st.by_cli("exclusive") and st.by_cli("overlap"):
        st.error("--exclusive and --overlap are mutually exclusive")
        ok = False
    nodelist = f.get("nodelist") or ""
    if f.get("distribution") == "arbitrary" and not (f.get("nodes_set") and f.get("ntasks_set")) and "{" not in nodelist:
        from spurcore.hostlist import expand

        try:
            hosts = expand(nodelist)
        except ValueError:
            st.fatal("Invalid node list specified")
        if not f.get("ntasks_set"):
            f["ntasks"], f["ntasks_set"] = len(hosts), True
        if not f.get("nodes_set"):
            f["min_nodes"] = f["max_nodes"] = len(set(hosts))
            f["nodes_set"] = True
    if "ntasks_per_core" in f and "threads_per_core" in f and f["threads_per_core"] < f["ntasks_per_core"]:
        st.error(f"--ntasks-per-core ({f['ntasks_per_core']}) can not be bigger than --threads-per-core "
                 f"({f['threads_per_core']})")
        ok = False
    if nodelist and not f.get("nodes_set") and "{" not in nodelist:
        f["min_nodes"] = opts.unique_hosts(st, nodelist)
        f["max_nodes"] = 0
        f["nodes_set"] = True
    min_nodes, max_nodes = f.get("min_nodes", 1), f.get("max_nodes", 0)
    if ((f.get("nodes_set") or f.get("extra_set")) and (min_nodes == max_nodes or max_nodes == 0)
            and "ntasks_per_node" not in f and not f.get("ntasks_set")):
        ntasks = min_nodes  # one task per node, not marked as requested
        shape = [f.get(k) for k in ("sockets_per_node", "cores_per_socket", "threads_per_core")]
        if all(v is not None for v in shape):
            ntasks = ntasks * shape[0] * shape[1] * shape[2]  # type: ignore[operator]
            f["ntasks_set"] = True
            if f.get("verbose"):
                st.info(f"Number of tasks implicitly set to {ntasks}")
        f["ntasks"] = ntasks
    elif f.get("nodes_set") and f.get("ntasks_set"):
        ntasks = f["ntasks"]
        if ntasks < max_nodes:
            f["max_nodes"] = ntasks
        if 0 < ntasks < min_nodes:
            st.warning(f"can't run {ntasks} processes on {min_nodes} nodes, setting nnodes to {ntasks}")
            f["min_nodes"] = ntasks
            if f.get("max_nodes") and f["min_nodes"] > f["max_nodes"]:
                f["max_nodes"] = f["min_nodes"]
            st.set_by["nodes"] = "cli"
        if "ntasks_per_node" in f and st.by_env("ntasks") and not st.by_env("nodes"):
            opts.reset_option(st, "ntasks")
        elif "ntasks_per_node" in f and is_step and f.get("max_nodes") and \
                ntasks > f["max_nodes"] * f["ntasks_per_node"]:
            st.warning(f"can't honor --ntasks-per-node set to {f['ntasks_per_node']} which doesn't match the "
                       f"requested tasks {ntasks} with the maximum number of requested nodes {f['max_nodes']}. "
                       "Ignoring --ntasks-per-node.")
            opts.reset_option(st, "ntasks-per-node")
    if "ntasks_per_node" in f and not f.get("ntasks_set"):
        f["ntasks"] = f.get("min_nodes", 1) * f["ntasks_per_node"]
        f["ntasks_set"] = True
    if f.get("deadline") and f.get("begin") and f["deadline"] < f["begin"]:
        raise CliError("Incompatible begin and deadline time specification", error_exit)
    if not ok:
        raise CliError("", error_exit)
    if "pty" in f:
        f["unbuffered"] = True  # implicit with a pty
        if "efname" in f or "ifname" in f or "ofname" in f:
            raise CliError("--error/--input/--output are incompatible with --pty", error_exit)
    if f.get("nodelist"):
        from spurcore.hostlist import expand

        try:
            expand(f["nodelist"])
        except ValueError:
            raise CliError("Invalid node list specified", error_exit) from None
    elif f.get("distribution") == "arbitrary":
        raise CliError("With Arbitrary distribution you need to specify a nodelist or hostfile with the -w "
                       "option", error_exit)


def step_params(st: opts.State, command: list[str]) -> dict[str, Any]:
    """What the step asks for. Keys are always present; None means "not given"."""
    f = st.f
    options = {name: ("" if st.raw.get(name) is None else str(st.raw[name]))
               for name in st.set_by if name in _STEP_RECORDED}
    return {
        "name": f.get("job_name") or (os.path.basename(command[0]) if command else ""),
        "ntasks": f.get("ntasks", 1),
        "ntasks_set": bool(f.get("ntasks_set")),
        "nodes": f.get("min_nodes") if f.get("nodes_set") else None,
        "max_nodes": f.get("max_nodes") or None if f.get("nodes_set") else None,
        "cpus_per_task": f.get("cpus_per_task") if f.get("cpus_set") else None,
        "ntasks_per_node": f.get("ntasks_per_node"),
        "distribution": f.get("distribution"),
        "plane_size": f.get("plane_size") or None,
        "nodelist": f.get("nodelist"),
        "exclude": f.get("exclude"),
        "relative": f.get("relative"),
        "label": bool(f.get("label")),
        "unbuffered": bool(f.get("unbuffered")),
        "jobid": f.get("jobid"),
        "array_task_id": f.get("array_task_id"),
        "overlap": bool(f.get("overlap")),
        "exact": bool(f.get("exact")),
        "whole": bool(f.get("whole")),
        "exclusive": bool(f.get("step_exclusive", True)),
        "mpi": f.get("mpi_type") or MPI_DEFAULT,
        "kill_on_bad_exit": f.get("kill_bad_exit"),
        "wait": f.get("max_wait"),
        "input": f.get("ifname"),
        "output": f.get("ofname"),
        "error": f.get("efname"),
        "open_mode": f.get("open_mode"),
        "pty": f.get("pty"),
        "multi_prog": bool(f.get("multi_prog")),
        "multi_prog_config": f.get("multi_prog_config"),
        "overcommit": bool(f.get("overcommit")),
        "export": f.get("export"),
        "chdir": f.get("chdir"),
        "test_only": bool(f.get("test_only")),
        "immediate": f.get("immediate"),
        "disable_status": bool(f.get("disable_status")),
        "quit_on_interrupt": bool(f.get("quit_on_interrupt")),
        "preserve_env": bool(f.get("preserve_env")),
        "het_group": f.get("het_group"),
        "time_limit": f.get("time_limit"),
        "mem": f.get("mem"),
        "mem_per_cpu": f.get("mem_per_cpu"),
        "quiet": f.get("quiet", 0),
        "verbose": f.get("verbose", 0),
        "options": options,
    }


#: Step options carried in ``step["options"]`` (no dedicated key): srun acts on prolog, epilog
#: and task-prolog; the rest are recorded only.
_STEP_RECORDED = frozenset({
    "accel-bind", "bcast", "bcast-exclude", "compress", "cpu-bind", "debugger-test", "epilog",
    "external-launcher", "interactive", "mem-bind", "msg-timeout", "no-allocate", "prolog", "send-libs",
    "slurmd-debug", "task-epilog", "task-prolog", "threads", "treewidth", "wait-for-children", "gres",
    "gpus", "tres-per-task", "x11",
})


def parse(args: list[str], *, environ: dict[str, str] | None = None, cwd: str | None = None,
          now: float | None = None, uid: int = -1) -> SrunRequest:
    """srun's ``initialize_and_process_args`` for one component: environment, then the
    command line, then the checks. ``environ`` defaults to the process environment."""
    import time

    environ = dict(os.environ) if environ is None else dict(environ)
    cwd = os.getcwd() if cwd is None else cwd
    now = time.time() if now is None else now
    error_exit = _error_exit(environ)
    pairs, command = opts.parse_argv(PROG, args)
    if command[:1] == [":"]:
        raise CliError("Heterogeneous steps (:) are not supported by Spur")
    st = opts.State(PROG, environ=environ, cwd=cwd, now=now, uid=uid, help_text=HELP, usage_text=USAGE)
    for name, arg in pairs:  # srun's early pass: --het-group only
        if name == "het-group" and arg is not None:
            _check_het_group(arg, error_exit)
    opts.apply_env(st, environ)
    opts.apply_pairs(st, pairs)
    if st.f.get("mpi_type") == "list":
        opts.check_mpi(st)
    if not command and not st.f.get("test_only"):
        raise CliError(f"{PROG}: fatal: No command given to execute.", 1, raw=True)
    _check_multi_prog(st, command, error_exit)
    verify(st, command, error_exit)
    opts.check_mpi(st)
    spec = opts.job_spec(st)
    if "name" not in spec and command:
        spec["name"] = os.path.basename(command[0]) or command[0]
    return SrunRequest(spec, step_params(st, command), command, st)
