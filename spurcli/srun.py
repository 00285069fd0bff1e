"""``srun``: run a parallel job step (Slurm 25.11 behaviour).

Flow (docs/architecture.md, "Steps"): srun asks the controller for a step
(``step_create``: the leader lays the tasks out over the job's nodes and commits a
``StepCreated``; a step that does not fit yet is retried as Slurm's srun does), then
connects to the agent of every node of the step and sends that node's ``launch_tasks``.
Each agent hands the connection to the step's supervisor on that node, which runs the
tasks and relays their output, their exit statuses and PMI fences to srun over it, so an
agent restart does not touch a running step. srun writes the output (``-l`` labels,
``-o/-e`` files), forwards stdin (``-i``) and signals, serves the cross-node PMI fence, and
prints Slurm's task exit lines; each node reports its part to the controller itself.

Outside an allocation srun first submits a job without a script, waits until it runs,
runs the step in it and then ends the job with the step's status (``job_complete``).

Exit status (src/srun/launch.c ``_task_finish``, srun.c): the highest exit code of the
tasks, but a task killed by a signal outranks any exit code (``128 + signal``, the highest
signal), and an out-of-memory task gives 1.

Signals (src/srun/srun_job.c): one SIGINT prints the tasks' states ("one more within 1
sec to abort"); a second within a second forwards SIGINT and forces termination; SIGTERM,
SIGHUP and SIGQUIT force termination (the step is killed through the controller: "Job step
aborted: Waiting up to N seconds"); SIGUSR1, SIGUSR2, SIGCONT, SIGALRM (without -W) ... are
forwarded to every task.
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import CliError
from spurcli.srun_opts import HELP, MPI_DEFAULT, USAGE  # noqa: F401 - srun's texts live with its options

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "srun"

#: slurmstepd's STEP_ABORT_TIME: srun waits KillWait plus this after killing a step.
STEP_ABORT_TIME = 2


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while srun was waiting for an allocation."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


def install_handlers() -> dict[int, Any]:
    import signal

    old: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, _raise_interrupted)
    except ValueError:  # not the main thread (embedded use): leave the handlers alone
        pass
    return old


def restore_handlers(old: dict[int, Any]) -> None:
    import signal

    for sig, handler in old.items():
        signal.signal(sig, handler)


# --------------------------------------------------------------------------- options


def step_params(step: dict[str, Any]) -> dict[str, Any]:
    """The step request the launcher works from, out of srun's parsed options
    (``spurcli.srun_opts.step_params``: the option surface, Slurm's checks and input
    variables): node lists expanded, ``-m`` reduced to its node-level part, ``-c`` implying
    ``--exact`` and ``--pty`` implying ``-u`` (as srun's opt.c does)."""
    from spurcore.hostlist import expand
    from spurcore.steps import node_distribution

    def hosts(text: Any) -> list[str]:
        if not text:
            return []
        try:
            return expand(str(text))
        except ValueError:
            raise CliError("Invalid node list specified") from None

    mpi = str(step.get("mpi") or MPI_DEFAULT)
    if mpi not in ("none", "pmi2", "pmi"):
        raise CliError(f"MPI plugin type {mpi} is not supported (Spur serves pmi2; see the user guide)")
    ntasks = int(step.get("ntasks") or 1)
    nodes, max_nodes = step.get("nodes"), step.get("max_nodes")
    if max_nodes and ntasks < max_nodes:
        max_nodes = ntasks
    pty = step.get("pty") not in (None, False)
    out = {
        "name": str(step.get("name") or ""),
        "ntasks": ntasks,
        "nodes": nodes,
        "max_nodes": max_nodes if nodes is not None else None,
        "cpus_per_task": step.get("cpus_per_task"),
        "ntasks_per_node": step.get("ntasks_per_node") or None,
        "distribution": node_distribution(step.get("distribution")),
        "plane_size": step.get("plane_size"),
        "nodelist": hosts(step.get("nodelist")),
        "exclude": hosts(step.get("exclude")),
        "relative": step.get("relative"),
        "label": bool(step.get("label")),
        "unbuffered": bool(step.get("unbuffered")) or pty,
        "jobid": step.get("jobid"),
        "overlap": bool(step.get("overlap")),
        # -c implies --exact; --whole keeps the nodes' whole allocation for the step
        "exact": (bool(step.get("exact")) or step.get("cpus_per_task") is not None) and not step.get("whole"),
        "preserve_env": bool(step.get("preserve_env")),
        "mpi": mpi,
        "kill_on_bad_exit": None if step.get("kill_on_bad_exit") is None else bool(step["kill_on_bad_exit"]),
        "wait": step.get("wait"),
        "input": step.get("input"),
        "output": step.get("output"),
        "error": step.get("error"),
        "open_mode": step.get("open_mode"),
        "pty": pty,
        "disable_status": bool(step.get("disable_status")),
        "quit_on_interrupt": bool(step.get("quit_on_interrupt")),
        "multi_prog": step.get("multi_prog_config") if step.get("multi_prog") else None,
        "acctg_freq": step.get("options", {}).get("acctg-freq") or step.get("acctg_freq"),
        "immediate": step.get("immediate"),
        "overcommit": bool(step.get("overcommit")),
        "prolog": step.get("options", {}).get("prolog") or None,
        "epilog": step.get("options", {}).get("epilog") or None,
        "task_prolog": _task_prolog_path(step.get("options", {}).get("task-prolog")),
        "verbose": int(step.get("verbose") or 0),
        "quiet": bool(step.get("quiet")),
    }
    if pty and (out["input"] or out["output"] or out["error"]):
        raise CliError("--error/--input/--output are incompatible with --pty")
    return out


# --------------------------------------------------------------------------- the step


def create_step(ctl: common.Controller, job_id: int, command: list[str], sp: dict[str, Any]) -> dict[str, Any]:
    """``step_create`` until the step exists; a busy allocation is retried as srun's
    launch_g_create_job_step does (src/srun/launch.c)."""
    import time

    from spurio.rpc import RpcError

    params = {
        "request_id": common.new_request_id(), "job_id": job_id, "name": sp["name"], "argv": command,
        "ntasks": sp["ntasks"], "min_nodes": sp["nodes"] or 0, "max_nodes": sp["max_nodes"] or 0,
        "cpus_per_task": sp["cpus_per_task"] or 1, "ntasks_per_node": sp["ntasks_per_node"] or 0,
        "distribution": sp["distribution"], "plane_size": sp["plane_size"] or 0, "nodelist": sp["nodelist"],
        "exclude": sp["exclude"], "exact": sp["exact"], "overlap": sp["overlap"],
        "relative": -1 if sp["relative"] is None else sp["relative"],
    }
    if sp.get("overcommit"):  # only then: a controller of an earlier release refuses the field
        params["overcommit"] = True
    # Slurm waits (slurmctld timeout, at least 60 s) for a step to fit before saying so.
    step_wait = float(os.environ.get("SPUR_STEP_WAIT") or 60 + os.getpid() % 10)
    tries = 0
    while True:
        params["wait"] = step_wait
        start = time.monotonic()
        try:
            step = ctl.call("step_create", params, timeout=step_wait + 30)
        except RpcError as exc:
            if exc.code != "nodes_busy":
                raise CliError(f"Unable to create step for job {job_id}: {exc.message or exc.code}") from None
            timed_out = time.monotonic() - start >= step_wait * 0.9
            if timed_out:
                word = "temporarily" if tries == 0 else "still"
                common.info(PROG, f"Job {job_id} step creation {word} disabled, retrying ({exc.message})")
            elif sp["verbose"]:
                common.info(PROG, f"Step completed in JobId={job_id}, retrying")
            tries += 1
            continue
        if tries:
            common.info(PROG, f"Step created for StepId={job_id}.{step['step_id']}")
        return dict(step)


def step_env(step: dict[str, Any], sp: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
    """The step's variables (Slurm's env_array_for_step plus srun's own), over srun's
    environment; the node-specific ones are added by each node's agent."""
    from spurcore.hostlist import compress
    from spurcore.steps import compress_counts

    env = dict(base)
    job = step.get("job") or {}
    nodes = [n["name"] for n in step["nodes"]]
    counts = [len(n["tasks"]) for n in step["nodes"]]
    tpn = compress_counts(counts)
    nodelist = compress(nodes)
    ntasks = sum(counts)
    job_nodes = job.get("nodes") or nodelist
    env.setdefault("SLURM_JOB_NODELIST", job_nodes)
    env.setdefault("SLURM_NODELIST", job_nodes)
    env.setdefault("SLURM_JOB_NUM_NODES", str(job.get("node_count") or len(nodes)))
    env.setdefault("SLURM_JOB_CPUS_PER_NODE", str(job.get("cpus_per_node_text") or ""))
    env.setdefault("SLURM_JOB_NAME", str(job.get("name") or sp["name"]))
    env.setdefault("SLURM_CLUSTER_NAME", str(job.get("cluster") or ""))
    env.setdefault("SLURM_SUBMIT_DIR", os.getcwd())
    counted = {"SLURM_NNODES": str(len(nodes)), "SLURM_NTASKS": str(ntasks), "SLURM_NPROCS": str(ntasks)}
    if sp.get("preserve_env"):  # -E: setup_env keeps what srun inherited (the job's counts)
        for var, value in counted.items():
            env.setdefault(var, value)
    else:
        env.update(counted)
    env.update({
        "SLURM_JOB_ID": str(step["job_id"]),
        "SLURM_JOBID": str(step["job_id"]),
        "SLURM_STEP_ID": str(step["step_id"]),
        "SLURM_STEPID": str(step["step_id"]),
        "SLURM_STEP_NODELIST": nodelist,
        "SLURM_STEP_NUM_NODES": str(len(nodes)),
        "SLURM_STEP_NUM_TASKS": str(ntasks),
        "SLURM_STEP_TASKS_PER_NODE": tpn,
        "SLURM_TASKS_PER_NODE": tpn,
        "SLURM_DISTRIBUTION": sp["distribution"],
        "SLURM_SRUN_COMM_HOST": "127.0.0.1",
        "SLURM_UMASK": f"{_umask():04o}",
        "SLURM_PRIO_PROCESS": str(os.getpriority(os.PRIO_PROCESS, 0)),
    })
    # setup_env (src/common/env.c) sets the job's identity for every step, over what srun
    # inherited: a tool that strips SLURM_* before calling srun (Snakemake's jobstep) still
    # gets them in the tasks.
    for var, key in (("SLURM_JOB_PARTITION", "partition"), ("SLURM_JOB_ACCOUNT", "account"),
                     ("SLURM_JOB_QOS", "qos"), ("SLURM_JOB_UID", "uid"), ("SLURM_JOB_USER", "user"),
                     ("SLURM_JOB_GID", "gid")):
        if job.get(key) not in (None, ""):
            env[var] = str(job[key])
    if sp["distribution"] == "plane" and sp["plane_size"]:
        env["SLURM_DIST_PLANESIZE"] = str(sp["plane_size"])
    if sp["cpus_per_task"]:
        env["SLURM_CPUS_PER_TASK"] = str(sp["cpus_per_task"])
    if sp["label"]:
        env["SLURM_LABELIO"] = "1"
    if sp.get("overcommit"):
        env["SLURM_OVERCOMMIT"] = "1"
    if sp["mpi"] != "none":
        env["SLURM_MPI_TYPE"] = sp["mpi"]
    return env


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def io_spec(sp: dict[str, Any], ntasks: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the nodes do with each stream, what srun does locally), from ``-i/-o/-e`` as
    srun's fname_create classifies them: ``all`` (default), ``none``, a task id, a
    per-task/per-node pattern (written on the nodes) or one file (written by srun)."""
    from spurcore.steps import per_task_pattern

    remote: dict[str, Any] = {"unbuffered": sp["unbuffered"], "pty": sp["pty"]}
    local: dict[str, Any] = {"stdout": None, "stderr": None, "stdin": None, "input_task": -1}
    for key in ("stdout", "stderr", "stdin"):
        text = sp[{"stdout": "output", "stderr": "error", "stdin": "input"}[key]]
        if key == "stderr" and text is None:
            text = sp["output"]  # no --error: stderr goes where stdout goes
            if text is not None and key == "stderr" and not per_task_pattern(str(text)) and text not in ("all", "-"):
                local["stderr"] = "same"
        if text is None or str(text).lower().startswith("all") or text == "-":
            remote[key] = {"mode": "all" if key == "stdin" else "relay"}
        elif str(text).lower() == "none":
            remote[key] = {"mode": "none"}
        elif str(text).isdigit() and int(text) < ntasks:
            remote[key] = {"mode": "task", "task": int(text)}
            if key == "stdin":
                local["input_task"] = int(text)
        elif per_task_pattern(str(text)):
            remote[key] = {"mode": "file", "pattern": str(text)}
        else:
            remote[key] = {"mode": "all" if key == "stdin" else "relay"}
            if local[key] != "same":
                local[key] = str(text)
    return remote, local


def _node_signals() -> tuple[int, ...]:
    import signal

    return (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
            signal.SIGCONT, signal.SIGALRM, signal.SIGWINCH)


class Launcher:
    """One step's launch and I/O: a selectors loop over the nodes' connections, srun's
    stdin and a wake-up pipe for signals."""

    def __init__(self, ctl: common.Controller, step: dict[str, Any], sp: dict[str, Any], command: list[str],
                 env: dict[str, str], cwd: str) -> None:
        self.ctl = ctl
        self.step = step
        self.sp = sp
        self.command = command
        self.env = env
        self.cwd = cwd
        self.job_id = int(step["job_id"])
        self.step_id = int(step["step_id"])
        self.nodes = step["nodes"]  # [{"name", "address", "tasks", "cpus"}]
        self.ntasks = sum(len(n["tasks"]) for n in self.nodes)
        self.width = len(str(max(self.ntasks - 1, 0)))
        self.node_of_task = {t: i for i, n in enumerate(self.nodes) for t in n["tasks"]}
        self.status: dict[int, int] = {}  # task -> raw status
        self.global_rc: int | None = None
        self.done: set[int] = set()
        self.launched: set[int] = set()
        self.failed: set[int] = set()  # nodes whose launch failed (Slurm's _fail_step_tasks)
        self.launch_error = ""  # the first launch failure's reason
        self.launch_aborted = False
        self.socks: dict[int, Any] = {}
        self.readers: dict[int, Any] = {}
        self.outq: dict[int, bytearray] = {}
        self.fences: dict[int, dict[str, str]] = {}
        self.cancelled = False  # srun's job state >= SRUN_JOB_CANCELLED (quiet task lines)
        self.aborted = False
        self.last_intr = 0.0
        self.first_exit: float | None = None
        self.signals: list[int] = []
        self.oom_printed = False
        self.remote_io, self.local_io = io_spec(sp, self.ntasks)
        self.out_fds: dict[int, int] = {}
        self.stdin_open = False
        self.tty_saved: Any = None
        self.next_poll = 0.0
        self.abort_deadline: float | None = None

    # -- life cycle

    def run(self) -> int:
        import selectors
        import signal

        self.sel = selectors.DefaultSelector()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r = wake_r
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        old = {s: signal.signal(s, self._on_signal) for s in _node_signals()}
        try:
            self._open_local_outputs()
            self.sel.register(wake_r, selectors.EVENT_READ, "wake")
            self._connect_all()
            self._loop()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)
            self._restore_tty()
            for sock in self.socks.values():
                sock.close()
            for fd in set(self.out_fds.values()):
                if fd > 2:
                    os.close(fd)
        return self.exit_status()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signals.append(signum)

    def _open_local_outputs(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        flags |= os.O_APPEND if self.sp.get("open_mode") == "append" else os.O_TRUNC
        self.out_fds = {1: 1, 2: 2}
        for kind, key in ((1, "stdout"), (2, "stderr")):
            path = self.local_io[key]
            if path == "same":
                self.out_fds[2] = self.out_fds[1]
            elif path:
                from spurcore.steps import expand_io_pattern

                path = expand_io_pattern(path, job_id=self.job_id, step_id=self.step_id,
                                         name=self.env.get("SLURM_JOB_NAME", ""), user=self.env.get("USER", ""))
                try:
                    self.out_fds[kind] = os.open(path, flags, 0o644)
                except OSError as exc:
                    raise CliError(f"Could not open {key} file: {exc.strerror}") from None

    def _connect_all(self) -> None:
        import selectors

        from spurio import stepserver

        io = dict(self.remote_io)
        if self.sp["pty"]:
            io["winsize"] = _winsize()
        pmi = None
        if self.sp["mpi"] != "none":
            from spurcore.pmi import process_mapping

            ranks = sorted(self.node_of_task)
            pmi = {"jobid": f"{self.job_id}.{self.step_id}", "size": self.ntasks,
                   "mapping": process_mapping([self.node_of_task[r] for r in ranks])}
        interval = None
        freq = str(self.sp.get("acctg_freq") or "")
        for part in freq.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "task" and value.strip().isdigit() and int(value) > 0:
                interval = int(value)
        argv = self.command
        config = self.sp.get("multi_prog")
        if config is not None:  # srun's _load_multi: the file's text after its name
            argv = [self.command[0], config, *self.command[1:]]
        for i, node in enumerate(self.nodes):
            params = {
                "job_id": self.job_id, "step_id": self.step_id, "argv": argv, "env": self.env,
                "cwd": self.cwd, "tasks": node["tasks"], "nodeid": i, "cpus_on_node": node.get("cpus") or 0,
                "io": io, "pmi": pmi, "open_mode": self.sp.get("open_mode") or "truncate",
                "usage_interval": interval,
            }
            if config is not None:  # only then: an agent of an earlier release refuses the field
                params["multi_prog"] = True
            if self.sp.get("task_prolog"):
                params["task_prolog"] = self.sp["task_prolog"]
            address = str(node.get("address") or "")
            try:
                sock = _connect_agent(address, self._tls_files())
                sock.sendall(stepserver.request(i + 1, "launch_tasks", params))
            except OSError as exc:
                common.error(PROG, f"{node['name']}: cannot connect to the agent at {address or '(no address)'}: "
                                   f"{_os_error_text(exc)}")
                self._launch_failed(i, COMM_FAILURE)
                continue
            sock.setblocking(False)
            self.socks[i] = sock
            self.readers[i] = stepserver.FrameReader()
            self.outq[i] = bytearray()
            self.sel.register(sock, selectors.EVENT_READ, i)

    def _tls_files(self) -> tuple[str, str | None, str | None]:
        """The CA and the user's certificate, for agents reached over TLS (as for the
        controllers: ``SPUR_CERT``/``SPUR_KEY``)."""
        config = getattr(self.ctl, "config", None)
        return (str(getattr(config, "tls_ca", "") or ""), os.environ.get("SPUR_CERT") or None,
                os.environ.get("SPUR_KEY") or None)

    def _loop(self) -> None:
        import time

        self._check_launch()
        while len(self.done) < len(self.nodes):
            while self.signals:
                self._handle_signal(self.signals.pop(0))
            now = time.monotonic()
            if self.first_exit is not None and self.sp["wait"] and now - self.first_exit >= self.sp["wait"]:
                common.info(PROG, f"First task exited {self.sp['wait']}s ago")
                self._print_status()
                self.first_exit = None
                self._kill_step()
            if now >= self.next_poll:
                self.next_poll = now + 2.0
                self._poll_controller()
            if self.abort_deadline is not None and now >= self.abort_deadline:
                common.error(PROG, "Timed out waiting for job step to complete")
                break
            timeout = 1.0
            if self.first_exit is not None and self.sp["wait"]:
                timeout = max(0.0, min(timeout, self.first_exit + self.sp["wait"] - now))
            for key, mask in self.sel.select(timeout):
                if key.data == "wake":
                    try:
                        while os.read(self.wake_r, 512):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                elif key.data == "stdin":
                    self._read_stdin()
                else:
                    self._on_node(key.data, mask)

    # -- nodes

    def _on_node(self, i: int, mask: int) -> None:
        import selectors

        sock = self.socks.get(i)
        if sock is None:
            return
        if mask & selectors.EVENT_WRITE:
            self._flush_node(i)
        if not mask & selectors.EVENT_READ:
            return
        from spurio import stepserver

        try:
            data = stepserver.recv_some(sock)
        except OSError as exc:  # a reset, or TLS refusing our certificate (said on the first read)
            self._node_lost(i, _os_error_text(exc))
            return
        if data is None:
            return
        if not data:
            self._node_lost(i)
            return
        try:
            messages = self.readers[i].feed(data)
        except ValueError:
            self._node_lost(i)
            return
        for msg in messages:
            if msg[0] == 1:
                self._launch_reply(i, msg)
            elif msg[0] == 2 and len(msg) == 3:
                self._notification(i, msg[1], msg[2])

    def _launch_reply(self, i: int, msg: list[Any]) -> None:
        error = msg[2]
        if error is not None:
            text = error.get("message") if isinstance(error, dict) else str(error)
            self._launch_failed(i, str(text))
            return
        self.launched.add(i)
        if len(self.launched) == 1:
            self._start_stdin()
        self._check_launch()

    def _launch_failed(self, i: int, reason: str) -> None:
        """step_launch.c: ``Task launch for StepId=... failed on node N: reason``; the node's
        tasks count as exited (code 1). Once every node has answered, the launch is aborted
        (:meth:`_check_launch`)."""
        node = self.nodes[i]
        common.error(PROG, f"Task launch for StepId={self.job_id}.{self.step_id} failed on node {node['name']}: "
                           f"{reason}")
        self.failed.add(i)
        self.launch_error = self.launch_error or reason
        self._finish_node(i)
        for t in node["tasks"]:
            if t not in self.status:
                self._record(t, 1 << 8)
        self._check_launch()

    def _check_launch(self) -> None:
        """launch.c after slurm_step_launch failed: once every node has answered the launch,
        ``Application launch failed: reason``, and the step is killed through the controller
        (slurm_step_launch_abort), which also ends the part of every node that will never
        run it (its agent reports it killed). srun then waits for the step to end."""
        if not self.failed or self.launch_aborted or len(self.launched | self.failed) < len(self.nodes):
            return
        self.launch_aborted = True
        self.cancelled = True  # the tasks that did start end because srun kills them: quiet lines
        common.error(PROG, f"Application launch failed: {self.launch_error}")
        if len(self.done) < len(self.nodes):
            self._kill_step()  # "Job step aborted: Waiting up to N seconds ..."
            return
        common.info(PROG, "Job step aborted")  # nothing runs: no need to wait (step_launch.c)
        self._kill_step(quiet=True)

    def abort_unlaunched(self) -> None:
        """slurm_step_launch_abort before any node got the launch: the step is killed through
        the controller (each node reports its part killed) and srun waits for it to end."""
        self.launch_aborted = True
        self._kill_step(quiet=True)
        self.wait_step_ended()

    def wait_step_ended(self) -> None:
        """After an aborted launch: wait (up to KillWait + STEP_ABORT_TIME) until the
        controller has the step ended, so that the step is closed before srun ends a job
        it created; nodes that never got the launch report their part killed."""
        import time

        if not self.launch_aborted:
            return
        deadline = time.monotonic() + int(self.ctl.config.kill_wait) + STEP_ABORT_TIME
        delay = 0.05
        while time.monotonic() < deadline:
            try:
                info = common.get_job(self.ctl, self.job_id)
            except Exception:  # noqa: BLE001 - the controller may be changing leader: ask again
                info = {}
            steps = [s for s in (info or {}).get("steps") or () if s.get("step_id") == self.step_id]
            if info is None or not steps or steps[0].get("state") != "RUNNING":
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _notification(self, i: int, method: str, params: Any) -> None:
        if method == "out":
            task, kind, data = params
            self._output(int(task), int(kind), bytes(data))
        elif method == "exit":
            ids, status = params
            self._task_exit(i, [int(t) for t in ids], int(status))
        elif method == "pmi_fence":
            self._fence(i, dict(params))
        elif method == "pmi_abort":
            rank, code, message = params
            common.error(PROG, f"{self.nodes[i]['name']}: task {rank}: PMI abort ({code}){': ' + message if message else ''}")
            self._kill_step()
        elif method == "done":
            if params.get("oom") and not self.oom_printed:
                self.oom_printed = True
                tasks = self.nodes[i]["tasks"]
                common.error(PROG, f"{self.nodes[i]['name']}: {_taskstr(len(tasks))} {_ranges(tasks)}: Out Of Memory")
                self.global_rc = 253
            self._finish_node(i)
        elif method == "error":
            common.error(PROG, f"{self.nodes[i]['name']}: {params.get('message')}")

    def _finish_node(self, i: int) -> None:
        self.done.add(i)
        sock = self.socks.pop(i, None)
        if sock is not None:
            try:
                self.sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()

    def _node_lost(self, i: int, why: str = "") -> None:
        node = self.nodes[i]
        if i not in self.launched:
            if why:
                common.error(PROG, f"{node['name']}: the agent's connection failed: {why}")
            self._launch_failed(i, COMM_FAILURE)
            return
        missing = [t for t in node["tasks"] if t not in self.status]
        if missing:
            common.error(PROG, f"Lost I/O connection to node {node['name']}: tasks {_ranges(missing)} are "
                               f"taken as killed")
            for t in missing:
                self._record(t, 9)
        self._finish_node(i)

    def _send(self, i: int, method: str, params: Any) -> None:
        from spurio import stepserver

        if i not in self.socks:
            return
        self.outq[i] += stepserver.notification(method, params)
        self._flush_node(i)

    def _flush_node(self, i: int) -> None:
        import selectors

        sock = self.socks.get(i)
        if sock is None:
            return
        from spurio import stepserver

        q = self.outq[i]
        while q:
            try:
                n = stepserver.send_some(sock, q[:262144])  # from the head: TLS retries want it
            except OSError:
                q.clear()
                break
            if n == 0:
                break
            del q[:n]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if q else 0)
        try:
            self.sel.modify(sock, events, i)
        except (KeyError, ValueError):
            pass

    def _broadcast(self, method: str, params: Any) -> None:
        for i in list(self.socks):
            self._send(i, method, params)

    # -- output

    def _label(self, task: int, data: bytes) -> bytes:
        """write_labelled_message: ``%*d: `` before each line; a last line without a
        newline gets one when labelled."""
        if not self.sp["label"] or task < 0:
            return data
        prefix = f"{task:>{self.width}}: ".encode()
        lines = data.split(b"\n")
        tail = lines.pop()
        out = b"".join(prefix + line + b"\n" for line in lines)
        if tail:
            out += prefix + tail + b"\n"
        return out

    def _output(self, task: int, kind: int, data: bytes) -> None:
        self._write(kind, self._label(task, data))

    def _write(self, kind: int, data: bytes) -> None:
        fd = self.out_fds.get(kind, kind)
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                import select

                select.select([], [fd], [], 1.0)
                continue
            except BrokenPipeError:
                # srun's _handle_pipe: nobody reads srun's output any more, end the step
                if not self.aborted:
                    self._kill_step()
                return
            view = view[n:]

    # -- stdin

    def _start_stdin(self) -> None:
        import selectors

        if self.remote_io.get("stdin", {}).get("mode") not in ("all", "task"):
            return
        if self.sp["pty"] and os.isatty(0):
            import termios
            import tty

            try:
                self.tty_saved = termios.tcgetattr(0)
                tty.setraw(0)
            except termios.error:
                self.tty_saved = None
        try:
            self.sel.register(0, selectors.EVENT_READ, "stdin")
            self.stdin_open = True
        except (ValueError, OSError, PermissionError):
            # not pollable (a regular file): read it all now
            data = b""
            try:
                while chunk := os.read(0, 65536):
                    data += chunk
            except OSError:
                pass
            self._send_input(data)
            self._send_input(b"")

    def _read_stdin(self) -> None:
        try:
            data = os.read(0, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            try:
                self.sel.unregister(0)
            except (KeyError, ValueError):
                pass
            self.stdin_open = False
        self._send_input(data)

    def _send_input(self, data: bytes) -> None:
        task = self.local_io["input_task"]
        if task >= 0:
            i = self.node_of_task.get(task)
            if i is not None:
                self._send(i, "in", [task, data])
        else:
            self._broadcast("in", [-1, data])

    def _restore_tty(self) -> None:
        if self.tty_saved is not None:
            import termios

            try:
                termios.tcsetattr(0, termios.TCSADRAIN, self.tty_saved)
            except termios.error:
                pass
            self.tty_saved = None

    # -- exits

    def _record(self, task: int, status: int) -> None:
        self.status[task] = status
        rc = self.global_rc
        if rc is not None and (rc & 0xFF) == 253:
            return
        if (status & 0xFF) == 253:
            self.global_rc = status
        elif os.WIFSIGNALED(status):
            if rc is None or not os.WIFSIGNALED(rc) or os.WTERMSIG(status) > os.WTERMSIG(rc):
                self.global_rc = status
        elif rc is None or (not os.WIFSIGNALED(rc) and os.WEXITSTATUS(status) > os.WEXITSTATUS(rc)):
            self.global_rc = status

    def _task_exit(self, i: int, ids: list[int], status: int) -> None:
        """launch.c ``_task_finish``: one line per exit message, Slurm's words."""
        import time

        from spurcore.signals import strsignal

        node = self.nodes[i]["name"]
        what = f"{node}: {_taskstr(len(ids))} {_ranges(ids)}"
        abnormal = True
        if (status & 0xFF) == 253:
            if not self.oom_printed:
                common.error(PROG, f"{what}: Out Of Memory")
                self.oom_printed = True
        elif os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
            if code == 0:
                abnormal = False
                if self.sp["verbose"]:
                    common.info(PROG, f"{what}: Completed")
            else:
                common.error(PROG, f"{what}: Exited with exit code {code}")
        elif os.WIFSIGNALED(status):
            text = strsignal(os.WTERMSIG(status))
            if self.cancelled:
                if self.sp["verbose"]:
                    common.info(PROG, f"{what}: {text}")
            else:
                common.error(PROG, f"{what}: {text}")
        first_abnormal = abnormal and not any(self._abnormal(s) for s in self.status.values())
        first_exit = not self.status
        for t in ids:
            self._record(t, status)
        if first_abnormal and self.sp["kill_on_bad_exit"]:
            self._kill_step()
        if first_exit and self.sp["wait"]:
            self.first_exit = time.monotonic()
            if self.sp["verbose"]:
                common.info(PROG, f"First task exited. Terminating job in {self.sp['wait']}s")

    @staticmethod
    def _abnormal(status: int) -> bool:
        return not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)

    def exit_status(self) -> int:
        if self.launch_aborted:
            return 1  # the launch failed, whatever the tasks srun then killed say
        rc = self.global_rc or 0
        if (rc & 0xFF) == 253:
            return 1
        if os.WIFSIGNALED(rc):
            return 128 + os.WTERMSIG(rc)
        return os.WEXITSTATUS(rc)

    def _print_status(self) -> None:
        """task_state_print: which tasks run, which exited, which have not started."""
        running = [t for t in range(self.ntasks) if t not in self.status and self.node_of_task[t] in self.launched]
        exited = [t for t, s in self.status.items() if not self._abnormal(s)]
        abnormal = [t for t, s in self.status.items() if self._abnormal(s)]
        unknown = [t for t in range(self.ntasks) if t not in self.status and t not in running]
        sid = f"StepId={self.job_id}.{self.step_id}"
        for ids, word in ((running, "running"), (exited, "exited"), (abnormal, "exited abnormally"),
                          (unknown, "unknown")):
            if ids:
                common.info(PROG, f"{sid} {_taskstr(len(ids))} {_ranges(ids)}: {word}")

    # -- PMI

    def _fence(self, i: int, kvs: dict[str, str]) -> None:
        self.fences[i] = kvs
        if len(self.fences) + len(self.done) < len(self.nodes) or not self.fences:
            return
        merged: dict[str, str] = {}
        for part in self.fences.values():
            merged.update(part)
        self.fences = {}
        self._broadcast("pmi_fence_done", merged)

    # -- signals and kills

    def _handle_signal(self, signum: int) -> None:
        import signal
        import time

        if signum == signal.SIGINT:
            now = time.monotonic()
            if self.sp["quit_on_interrupt"] or now - self.last_intr < 1.0:
                common.info(PROG, f"sending Ctrl-C to StepId={self.job_id}.{self.step_id}")
                self._broadcast("signal", signal.SIGINT)
                self._force_termination()
            elif self.sp["disable_status"]:
                common.info(PROG, f"sending Ctrl-C to StepId={self.job_id}.{self.step_id}")
                self._broadcast("signal", signal.SIGINT)
            elif not self.cancelled:
                common.info(PROG, "interrupt (one more within 1 sec to abort)")
                self._print_status()
            self.last_intr = now
        elif signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            if signum == signal.SIGQUIT:
                common.info(PROG, "Quit")
            common.info(PROG, "forcing job termination")
            self._kill_step()
        elif signum == signal.SIGWINCH:
            if self.sp["pty"]:
                self._broadcast("winch", list(_winsize()))
        else:
            self._broadcast("signal", signum)

    def _force_termination(self) -> None:
        """srun_job.c ``job_force_termination``: the first time SIGKILL the tasks, then
        say that the abort is in progress."""
        if not self.cancelled:
            common.info(PROG, "forcing job termination")
            self.cancelled = True
            self._kill_step()
        else:
            common.info(PROG, "job abort in progress")

    def _kill_step(self, quiet: bool = False) -> None:
        """slurm_step_launch_abort: kill the step through the controller (every node, even
        one srun lost) and wait KillWait + STEP_ABORT_TIME for it to end."""
        import time

        from spurio.client import ControllerUnavailable
        from spurio.rpc import RpcError

        if self.aborted:
            return
        self.aborted = True
        wait = int(self.ctl.config.kill_wait) + STEP_ABORT_TIME
        if not quiet:
            common.info(PROG, f"Job step aborted: Waiting up to {wait} seconds for job step to finish.")
        self.abort_deadline = time.monotonic() + wait + 5
        try:
            self.ctl.call("signal", {"request_id": common.new_request_id(), "job_id": self.job_id,
                                     "step_id": self.step_id, "kind": 1, "signal": 9, "target": 0})
        except (RpcError, ControllerUnavailable):
            self._broadcast("kill", 0)

    def _poll_controller(self) -> None:
        """Nodes srun cannot hear from (a node failure): the controller knows."""
        if not self.socks or len(self.launched) < len(self.socks):
            return
        try:
            info = common.get_job(self.ctl, self.job_id)
        except Exception:  # noqa: BLE001 - a missed poll is retried
            return
        if info is None:
            return
        for s in info.get("steps") or ():
            if s.get("step_id") == self.step_id and s.get("state") == "NODE_FAIL":
                for i in list(self.socks):
                    name = self.nodes[i]["name"]
                    if name in (info.get("failed_node"), ) or s.get("node_status", {}).get(name) is None:
                        common.error(PROG, f"Node failure on {name}")
                        missing = [t for t in self.nodes[i]["tasks"] if t not in self.status]
                        for t in missing:
                            self._record(t, 9)
                        self._finish_node(i)
                return


#: How long srun keeps trying an agent that is not listening (it may be restarting).
AGENT_RETRY = 10.0

#: Slurm's text for a node srun cannot talk to (SLURM_COMMUNICATIONS_CONNECTION_ERROR).
COMM_FAILURE = "Communication connection failure"


def _connect_agent(address: str, tls: tuple[str, str | None, str | None]) -> Any:
    """The node's agent, over its Unix socket or TLS (``stepserver.connect`` chooses);
    an agent that refuses or has no socket yet may be restarting: tried for AGENT_RETRY."""
    import errno
    import time

    from spurio import stepserver

    deadline = time.monotonic() + AGENT_RETRY
    delay = 0.05
    while True:
        try:
            return stepserver.connect(address, timeout=10.0, tls=tls)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _os_error_text(exc: OSError) -> str:
    """An OSError as one line: the strerror when there is one, else the message (TLS
    errors carry their reason there)."""
    if exc.strerror and not type(exc).__name__.startswith("SSL"):
        return str(exc.strerror)
    return str(exc) or type(exc).__name__


def _taskstr(n: int) -> str:
    return "task" if n == 1 else "tasks"


def _ranges(ids: list[int]) -> str:
    from spurcore.steps import ranges

    return ranges(ids)


def _winsize() -> tuple[int, int]:
    try:
        size = os.get_terminal_size(0)
        return size.lines, size.columns
    except OSError:
        return 24, 80


# --------------------------------------------------------------------------- allocations

#: Poll interval bounds while an srun-created job is pending (seconds).
POLL_FIRST_SLEEP = 0.05
POLL_MAX_SLEEP = 0.5


def _cancel_job(ctl: common.Controller, job_id: int) -> None:
    from spurio.client import ControllerUnavailable
    from spurio.rpc import RpcError

    try:
        ctl.call("signal", {"request_id": common.new_request_id(), "job_id": job_id, "step_id": -1,
                            "kind": 1, "signal": 9, "target": 0})
    except (RpcError, ControllerUnavailable):
        pass


#: Slurm's message when ``-I/--immediate`` gives up (ESLURM_NODES_BUSY).
NODES_BUSY = "Unable to allocate resources: Requested nodes are busy"


def immediate_deadline(value: Any) -> float | None:
    """``-I[N]``: when to give up waiting for the allocation (N seconds; a bare -I is 1 s, as
    Slurm's default), on time.monotonic(); None without -I."""
    import time

    if value is None:
        return None
    seconds = int(value) if str(value).strip() else 0
    return time.monotonic() + max(seconds, 1)


def wait_until_running(ctl: common.Controller, job_id: int, prog: str = PROG,
                       deadline: float | None = None) -> dict[str, Any]:
    """Poll until the job runs. Past ``deadline`` (-I) the request is revoked: the job is
    cancelled and srun fails with Slurm's message (exit 1)."""
    import time

    delay = POLL_FIRST_SLEEP
    while True:
        try:
            info = common.get_job(ctl, job_id)
        except Interrupted:
            ctl.close()  # the interrupted call may have left the connection mid-frame
            _cancel_job(ctl, job_id)
            common.info(prog, f"Job allocation {job_id} has been revoked.")
            raise CliError() from None
        if info is None or common.is_finished(info) or info.get("state") == "COMPLETING":
            raise CliError(f"Job allocation {job_id} has been revoked.")
        if info.get("state") == "RUNNING":
            return info
        if deadline is not None and time.monotonic() >= deadline:
            _cancel_job(ctl, job_id)
            raise CliError(NODES_BUSY)
        try:
            time.sleep(delay)
        except Interrupted:
            _cancel_job(ctl, job_id)
            common.info(prog, f"Job allocation {job_id} has been revoked.")
            raise CliError() from None
        delay = min(delay * 1.5, POLL_MAX_SLEEP)


def run_step(ctl: common.Controller, job_id: int, command: list[str], sp: dict[str, Any], cwd: str,
             extra_env: dict[str, str] | None = None) -> int:
    """Create the step, launch it on its nodes and relay it to the end; srun's exit status."""
    step = create_step(ctl, job_id, command, sp)
    base = dict(os.environ)
    base.update(extra_env or {})
    env = step_env(step, sp, base)
    launcher = Launcher(ctl, step, sp, command, env, cwd)
    rc = run_srun_script(sp.get("prolog"), "prolog_srun", command, env)
    if rc:
        common.error(PROG, f"srun prolog failed rc = {rc}. Aborting step.")
        launcher.abort_unlaunched()
        return 1
    code = launcher.run()
    launcher.wait_step_ended()
    rc = run_srun_script(sp.get("epilog"), "epilog_srun", command, env)
    if rc:
        common.error(PROG, f"srun epilog failed status={rc}")
    return code


def _task_prolog_path(path: str | None) -> str | None:
    """``--task-prolog``'s program, relative to srun's directory (the agents run it)."""
    return os.path.abspath(path) if path else None


def run_srun_script(script: str | None, context: str, command: list[str], env: dict[str, str]) -> int:
    """srun's ``--prolog``/``--epilog`` (srun_job.c ``_run_srun_script``): the program, run
    by srun itself with the step's command as its arguments and the step's environment
    plus ``SLURM_SCRIPT_CONTEXT``; its exit status (-1: it did not exit normally). A program
    srun may not read and execute is skipped (0), as in Slurm; ``none`` runs nothing."""
    if not script or script.lower() == "none":
        return 0
    if not os.access(script, os.R_OK | os.X_OK):
        reason = "Permission denied" if os.path.exists(script) else "No such file or directory"
        common.info(PROG, f"Access denied for {script}: {reason}")
        return 0
    try:
        pid = os.posix_spawn(script, [script, *command], {**env, "SLURM_SCRIPT_CONTEXT": context})
    except OSError as e:
        common.error(PROG, f"Failed to execute srun prolog/epilog script: {e.strerror}")
        return 127
    status = os.waitpid(pid, 0)[1]
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    common.error(PROG, "script did not exit normally")
    return -1


def _body(args: list[str]) -> int:
    from spurcli import srun_opts
    from spurcli.sbatch import base_spec

    cwd = os.getcwd()
    request = srun_opts.parse(args, cwd=cwd)  # every option, Slurm's checks and input variables
    command = request.command
    spec = base_spec(os.path.basename(command[0]) or command[0] if command else PROG, cwd)
    spec.update(request.spec)
    if request.step["test_only"]:  # srun_job.c: a will-run query, nothing runs
        from spurcli.sbatch import will_run

        spec.update({"script": None, "argv": command, "env": dict(os.environ),
                     "command": command[0] if command else "", "submit_line": " ".join([PROG, *args])})
        ctl = common.connect()
        try:
            return will_run(ctl, spec, PROG, quiet=bool(request.step["quiet"]))
        finally:
            ctl.close()
    sp = step_params(request.step)
    step_cwd = str(spec["cwd"])

    ctl = common.connect()
    old = install_handlers()
    try:
        inside = str(sp["jobid"] or os.environ.get("SLURM_JOB_ID", ""))
        if inside:
            try:
                job_id = int(inside)
            except ValueError:
                raise CliError(f"Invalid SLURM_JOB_ID: {inside}") from None
            restore_handlers(old)
            old = {}
            return run_step(ctl, job_id, command, sp, step_cwd)

        from spurio.rpc import RpcError

        spec.update({
            "script": None,
            "argv": command,
            "env": dict(os.environ),
            "command": command[0],
            "submit_line": " ".join([PROG, *args]),
            "ntasks": sp["ntasks"],
            "nodes": max(1, sp["nodes"] or 1),
        })
        try:
            job_id = int(ctl.call("submit", {"request_id": common.new_request_id(), "spec": spec})["job_id"])
        except RpcError as exc:
            raise CliError(f"Unable to allocate resources: {exc.message or exc.code}") from None
        info = wait_until_running(ctl, job_id, deadline=immediate_deadline(sp.get("immediate")))
        job_env = allocation_env(info)
        restore_handlers(old)
        old = {}
        try:
            code = run_step(ctl, job_id, command, sp, step_cwd, job_env)
        except CliError:
            ctl.close()
            _cancel_job(ctl, job_id)
            raise
        try:
            ctl.call("job_complete", {"request_id": common.new_request_id(), "job_id": job_id,
                                      "exit_code": code if code < 128 else 0,
                                      "signal": code - 128 if code > 128 else 0})
        except RpcError as exc:
            common.error(PROG, f"Unable to complete job {job_id}: {exc.message or exc.code}")
        return code
    except Interrupted as exc:
        return 128 + exc.signum
    finally:
        restore_handlers(old)
        ctl.close()


def allocation_env(info: dict[str, Any]) -> dict[str, str]:
    """What salloc and a standalone srun export for a new allocation (Slurm's
    env_array_for_job): the job's id, nodes, tasks and CPUs."""
    from spurcore.steps import compress_counts

    nnodes = int(info.get("node_count") or 1)
    cpus = int(info.get("num_cpus") or 0) // max(nnodes, 1)
    env = {
        "SLURM_JOB_ID": str(info["job_id"]),
        "SLURM_JOBID": str(info["job_id"]),
        "SLURM_JOB_NAME": str(info.get("name") or ""),
        "SLURM_JOB_NODELIST": str(info.get("nodes") or ""),
        "SLURM_NODELIST": str(info.get("nodes") or ""),
        "SLURM_JOB_NUM_NODES": str(nnodes),
        "SLURM_NNODES": str(nnodes),
        "SLURM_JOB_CPUS_PER_NODE": compress_counts([cpus] * nnodes) if cpus else "",
        "SLURM_NTASKS": str(info.get("num_tasks") or 1),
        "SLURM_NPROCS": str(info.get("num_tasks") or 1),
        "SLURM_JOB_PARTITION": str(info.get("partition") or ""),
        "SLURM_SUBMIT_DIR": os.getcwd(),
    }
    if int(info.get("cpus_per_task") or 1) > 1:
        env["SLURM_CPUS_PER_TASK"] = str(info["cpus_per_task"])
    return env


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv, usage_code=255)  # slurm_opt.c: a bad option exits -1


if __name__ == "__main__":
    sys.exit(main())
