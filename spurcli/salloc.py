"""``salloc``: obtain an allocation, run a command in it, release it (Slurm 25.11).

salloc submits a job without a script (sbatch's allocation options), waits until it runs
(``Pending job allocation N`` / ``job N queued and waiting for resources`` / ``job N has
been allocated resources`` when it has to wait; ``Granted job allocation N``), then runs
the command (default: the user's shell) *here*, with the job's environment, so that srun
inside uses the allocation. When the command ends: ``Relinquishing job allocation N``, the
job ends with the command's status, and salloc exits with the command's exit code (0 for a
command killed by SIGHUP/SIGINT/SIGQUIT/SIGKILL, 1 for another signal), as salloc.c does.
If the allocation ends first (scancel, time limit): ``Job allocation N has been revoked.``
and the command gets SIGHUP (interactive) or SIGTERM.
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import CliError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "salloc"

USAGE = """\
Usage: salloc [-N numnodes|[min nodes]-[max nodes]] [-n num-processors]
              [-c ncpus] [-p partition] [--hold] [-t minutes] [-D path]
              [-J jobname] [--mem=MB] [-A account] [-d type:jobid] [-Q] [-v]
              [command [args...]]
"""

HELP = """\
Usage: salloc [OPTIONS(0)...] [ : [OPTIONS(N)]] [command(0) [args(0)...]]

Parallel run options:
  -A, --account=name          charge job to specified account
  -c, --cpus-per-task=ncpus   number of cpus required per task
  -d, --dependency=type:jobid[:time] defer job until condition on jobid is satisfied
  -D, --chdir=path            change working directory
  -H, --hold                  submit job in held state
  -J, --job-name=jobname      name of job
  -n, --ntasks=N              number of processors required
  -N, --nodes=N               number of nodes on which to run (N = min[-max])
  -p, --partition=partition   partition requested
  -Q, --quiet                 quiet mode (suppress informational messages)
  -t, --time=minutes          time limit
  -v, --verbose               verbose mode (multiple -v's increase verbosity)

Constraint options:
      --mem=MB                minimum amount of real memory

Help options:
  -h, --help                  show this help message
      --usage                 display brief usage message

Other options:
  -V, --version               output version information and exit

"""

POLL = 1.0  # how often the allocation is checked while the command runs
BELL_DELAY = 10.0  # salloc.c DEFAULT_BELL_DELAY: a longer wait rings the bell


def parse(args: list[str], *, environ: dict[str, str] | None = None, cwd: str | None = None
          ) -> tuple[dict[str, Any], list[str], bool]:
    """salloc's options (the shared table in spurcli.opts: every salloc option of Slurm
    25.11, its input variables SALLOC_*, Slurm's checks): (job spec fields, command, quiet)."""
    import time

    from spurcli import opts

    environ = dict(os.environ) if environ is None else dict(environ)
    cwd = os.getcwd() if cwd is None else cwd
    pairs, command = opts.parse_argv(PROG, args)
    if command[:1] == [":"]:
        raise CliError("Heterogeneous jobs are not supported by Spur")
    st = opts.State(PROG, environ=environ, cwd=cwd, now=time.time(), uid=os.getuid(), help_text=HELP,
                    usage_text=USAGE)
    opts.apply_env(st, environ)
    opts.apply_pairs(st, pairs)
    opts.validate_common(st)
    return opts.job_spec(st), command, bool(st.f.get("quiet"))


def _default_command() -> list[str]:
    """The user's shell (Slurm's default when SallocDefaultCommand is not set)."""
    import pwd

    shell = os.environ.get("SHELL")
    if not shell:
        try:
            shell = pwd.getpwuid(os.getuid()).pw_shell
        except KeyError:
            shell = "/bin/sh"
    return [shell or "/bin/sh"]


def _wait_for_grant(ctl: common.Controller, job_id: int, quiet: bool, deadline: float | None = None
                    ) -> dict[str, Any]:
    """Poll until the job runs; past ``deadline`` (-I) the request is revoked (salloc.c:
    "Unable to allocate resources: Requested nodes are busy", exit 1)."""
    import time

    from spurcli.srun import NODES_BUSY, Interrupted, _cancel_job

    delay, waited = 0.02, False
    while True:
        try:
            info = common.get_job(ctl, job_id)
            if info is None or common.is_finished(info) or info.get("state") == "COMPLETING":
                raise CliError(f"Job allocation {job_id} has been revoked.")
            if info.get("state") == "RUNNING":
                if waited and not quiet:
                    common.info(PROG, f"job {job_id} has been allocated resources")
                if not quiet:
                    common.info(PROG, f"Granted job allocation {job_id}")
                return info
            if not waited:
                waited = True
                if not quiet:
                    common.info(PROG, f"Pending job allocation {job_id}")
                    common.info(PROG, f"job {job_id} queued and waiting for resources")
            if deadline is not None and time.monotonic() >= deadline:
                _cancel_job(ctl, job_id)
                raise CliError(NODES_BUSY)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        except Interrupted:
            ctl.close()
            _cancel_job(ctl, job_id)
            common.error(PROG, "Interrupted by signal. Allocation request rescinded.")
            raise CliError() from None


def _body(args: list[str]) -> int:
    import signal
    import subprocess
    import time

    from spurcli.sbatch import base_spec
    from spurcli.srun import allocation_env, immediate_deadline, install_handlers, restore_handlers
    from spurio.rpc import RpcError

    cwd = os.getcwd()
    spec, command, quiet = parse(args, cwd=cwd)
    options = spec.get("options") or {}
    no_shell = "no-shell" in options
    command = command or _default_command()
    if "name" not in spec:
        spec["name"] = "interactive" if command == _default_command() else (os.path.basename(command[0]) or command[0])
    spec = {**base_spec(str(spec["name"]), cwd), **spec}
    spec.update({"script": None, "argv": command, "env": dict(os.environ), "command": command[0],
                 "submit_line": " ".join([PROG, *args])})
    ctl = common.connect()
    old = install_handlers()
    try:
        try:
            job_id = int(ctl.call("submit", {"request_id": common.new_request_id(), "spec": spec})["job_id"])
        except RpcError as exc:
            raise CliError(f"Job submit/allocate failed: {exc.message or exc.code}") from None
        asked = time.monotonic()
        info = _wait_for_grant(ctl, job_id, quiet, immediate_deadline(options.get("immediate")))
    finally:
        restore_handlers(old)
    # salloc.c: the bell rings (stdout a terminal) with --bell, or after a wait of over 10 s
    # unless --no-bell.
    if os.isatty(1) and ("bell" in options or ("no-bell" not in options and time.monotonic() - asked > BELL_DELAY)):
        sys.stdout.write("\a")
        sys.stdout.flush()
    if no_shell:  # --no-shell: the allocation stays, owned by the job, until scancel or its time limit
        ctl.close()
        return 0
    env = dict(os.environ)
    env.update(allocation_env(info))
    if "overcommit" in options:
        env["SLURM_OVERCOMMIT"] = "1"  # srun in the allocation reads it as -O
    interactive = os.isatty(0)
    # -K/--kill-command[=SIG]: the signal the command gets when the allocation is revoked
    # (scancel, time limit); without it SIGHUP for an interactive session, else SIGTERM.
    kill_sig = signal.SIGHUP if interactive else signal.SIGTERM
    raw_kill = (spec.get("options") or {}).get("kill-command")
    if raw_kill is not None:
        from spurcore.signals import sig_name2num

        kill_sig = sig_name2num(raw_kill) if raw_kill else signal.SIGTERM
    ignored = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)}
    try:
        try:
            proc = subprocess.Popen(command, env=env, cwd=str(spec.get("cwd") or cwd),
                                    restore_signals=True, process_group=0 if not interactive else None)
        except OSError as exc:
            common.error(PROG, f"{command[0]}: Unable to exec command \"{command[0]}\": {exc.strerror}")
            _complete(ctl, job_id, 1 << 8, quiet)
            return 1
        revoked = False
        while True:
            try:
                status = proc.wait(POLL)
                break
            except subprocess.TimeoutExpired:
                pass
            info = common.get_job(ctl, job_id)
            if info is None or common.is_finished(info) or info.get("state") == "COMPLETING":
                if not quiet:
                    common.info(PROG, f"Job allocation {job_id} has been revoked.")
                revoked = True
                proc.send_signal(kill_sig)
                deadline = time.monotonic() + 5
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                if proc.poll() is None:
                    proc.kill()
                status = proc.wait()
                break
        raw = (status & 0xFF) << 8 if status >= 0 else -status
        if not revoked:
            _complete(ctl, job_id, raw, quiet)
    finally:
        for s, h in ignored.items():
            signal.signal(s, h)
        ctl.close()
    if status >= 0:
        return status
    return 0 if -status in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGKILL) else 1


def _complete(ctl: common.Controller, job_id: int, raw: int, quiet: bool) -> None:
    from spurcore.exitcodes import decode_wait_status
    from spurio.rpc import RpcError

    if not quiet:
        common.info(PROG, f"Relinquishing job allocation {job_id}")
    code, sig = decode_wait_status(raw)
    try:
        ctl.call("job_complete", {"request_id": common.new_request_id(), "job_id": job_id,
                                  "exit_code": code, "signal": sig})
    except RpcError as exc:
        if exc.code != "already_done":
            common.error(PROG, f"Unable to clean up job allocation {job_id}: {exc.message or exc.code}")


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
