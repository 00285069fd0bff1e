"""``srun``: run a command as a job step (Slurm 25.11 behaviour, one task reported).

Inside an allocation (``SLURM_JOB_ID`` set) srun asks the controller for a step
(``step_create``), then hands the command to the node's agent over its local Unix socket
(``run_step``) together with srun's own stdin/stdout/stderr (SCM_RIGHTS), so the step
writes exactly where srun writes. The agent answers when the step has ended.

Outside an allocation srun first submits a job without a script, waits until it runs,
runs the step in it and then ends the job with the step's status (``job_complete``).

Exit status (Slurm src/srun/launch.c): the task's exit code, or ``128+signal`` when it was
killed, with ``srun: error: <node>: task 0: Exited with exit code N`` or
``srun: error: <node>: task 0: <strsignal>`` on stderr.
SIGINT/SIGTERM received while the step runs cancel the step (controller ``signal`` KILL of
the step); while the allocation is still pending they cancel the job.
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import CliError
from spurcli.srun_opts import HELP, USAGE  # noqa: F401 - srun's texts live with its options

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "srun"


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived (raised from the signal handler)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """SIGINT/SIGTERM become ``Interrupted`` in the main thread, except while ``held``
    (sending the run_step frame, asking the controller to kill): then the signal is kept and
    raised by ``release``, so a frame is never cut in half."""

    def __init__(self) -> None:
        self.held = False
        self.pending = 0

    def handler(self, signum: int, _frame: Any) -> None:
        if self.held:
            self.pending = signum
            return
        raise Interrupted(signum)

    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        self.held = False
        if self.pending:
            signum, self.pending = self.pending, 0
            raise Interrupted(signum)


SIGNALS = _Signals()


def install_handlers() -> dict[int, Any]:
    import signal

    SIGNALS.held, SIGNALS.pending = False, 0
    old: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, SIGNALS.handler)
    except ValueError:  # not the main thread (embedded use): leave the handlers alone
        pass
    return old


def restore_handlers(old: dict[int, Any]) -> None:
    import signal

    for sig, handler in old.items():
        signal.signal(sig, handler)


# --------------------------------------------------------------------------- agent protocol


def run_step_frame(params: dict[str, Any]) -> bytes:
    from spurcore.rpc import REQUEST, encode_frame

    return encode_frame([REQUEST, 1, "run_step", params])


def _connect_agent(endpoint: str, node: str) -> Any:
    import socket

    if not endpoint.startswith("unix:"):
        raise CliError(f"{node}: agent endpoint {endpoint or '(none)'} is not a local Unix socket")
    path = endpoint[5:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        if len(os.fsencode(path)) <= 107:
            sock.connect(path)
        else:  # longer than sun_path: go through the directory's descriptor
            directory, name = os.path.split(path)
            dfd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{dfd}/{name}")
            finally:
                os.close(dfd)
    except OSError as exc:
        sock.close()
        raise CliError(f"{node}: cannot connect to the agent at {endpoint}: {exc.strerror}") from None
    return sock


def send_run_step(sock: Any, frame: bytes, fds: list[int]) -> None:
    import socket

    sent = socket.send_fds(sock, [frame], fds)
    if sent < len(frame):
        sock.sendall(frame[sent:])


class StepWaiter:
    """Reads the one reply of ``run_step``; survives interrupts (the buffer is kept)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray()

    def wait(self) -> dict[str, Any]:
        from spurcore.rpc import RESPONSE, RpcError, decode_body, parse_message

        while True:
            if len(self.buf) >= 4:
                length = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) >= 4 + length:
                    body = bytes(self.buf[4 : 4 + length])
                    del self.buf[: 4 + length]
                    msg = parse_message(decode_body(body))
                    if msg[0] != RESPONSE:
                        continue  # a notification: not expected, ignored
                    _, _msgid, err, result = msg
                    if err is not None:
                        raise RpcError.from_wire(err)
                    return dict(result or {})
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk


def report_status(node: str, exit_code: int, signal: int) -> int:
    """Slurm's task status line (stderr) and srun's exit status."""
    from spurcore.signals import strsignal

    if signal:
        common.error(PROG, f"{node}: task 0: {strsignal(signal)}")
        return 128 + signal
    if exit_code:
        common.error(PROG, f"{node}: task 0: Exited with exit code {exit_code}")
    return exit_code


# --------------------------------------------------------------------------- steps


def _kill_step(ctl: common.Controller, job_id: int, step_id: int) -> None:
    from spurcore.rpc import RpcError
    from spurcore.rpc_client import ControllerUnavailable

    try:
        ctl.call("signal", {"request_id": common.new_request_id(), "job_id": job_id, "step_id": step_id,
                            "kind": 1, "signal": 9, "target": 0})
    except (RpcError, ControllerUnavailable):
        pass


def run_step(ctl: common.Controller, job_id: int, command: list[str], ntasks: int, cwd: str,
             extra_env: dict[str, str] | None = None) -> tuple[int, int, str]:
    """Create a step in ``job_id``, run it on its node, return (exit_code, signal, node)."""
    from spurcore.rpc import RpcError

    name = os.path.basename(command[0]) or command[0]
    try:
        step = ctl.call("step_create", {"request_id": common.new_request_id(), "job_id": job_id,
                                        "name": name, "argv": command, "ntasks": ntasks})
    except RpcError as exc:
        raise CliError(f"Unable to create step for job {job_id}: {exc.message or exc.code}") from None
    step_id = int(step["step_id"])
    node = str(step.get("node") or "")
    env = dict(os.environ)
    env.update(extra_env or {})
    env["SLURM_STEP_ID"] = env["SLURM_STEPID"] = str(step_id)
    params = {"job_id": job_id, "step_id": step_id, "argv": command, "env": env, "cwd": cwd,
              "uid": os.getuid(), "gid": os.getgid()}
    sock = _connect_agent(str(step.get("agent") or ""), node)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        SIGNALS.hold()
        try:
            send_run_step(sock, run_step_frame(params), [0, 1, 2])
        except OSError as exc:
            raise CliError(f"{node}: cannot send step {job_id}.{step_id} to the agent: {exc.strerror}") from None
        waiter = StepWaiter(sock)
        aborted = False
        while True:
            try:
                SIGNALS.release()  # a signal that came while held is raised here
                reply = waiter.wait()
                break
            except Interrupted:
                SIGNALS.hold()
                if not aborted:
                    aborted = True
                    wait = int(ctl.config.kill_wait) + 2
                    common.info(PROG, f"Job step aborted: Waiting up to {wait} seconds for job step to finish.")
                _kill_step(ctl, job_id, step_id)
            except (EOFError, OSError):
                raise CliError(f"{node}: lost the connection to the agent of step {job_id}.{step_id}") from None
            except RpcError as exc:
                raise CliError(f"{node}: step {job_id}.{step_id} failed: {exc.message or exc.code}") from None
    finally:
        SIGNALS.held = False
        sock.close()
    return int(reply.get("exit_code") or 0), int(reply.get("signal") or 0), str(reply.get("node") or node)


# --------------------------------------------------------------------------- allocations

#: Poll interval bounds while an srun-created job is pending (seconds).
POLL_FIRST_SLEEP = 0.05
POLL_MAX_SLEEP = 0.5


def _cancel_job(ctl: common.Controller, job_id: int) -> None:
    _kill_step(ctl, job_id, -1)


def wait_until_running(ctl: common.Controller, job_id: int) -> None:
    import time

    delay = POLL_FIRST_SLEEP
    while True:
        try:
            info = common.get_job(ctl, job_id)
        except Interrupted:
            ctl.close()  # the interrupted call may have left the connection mid-frame
            _cancel_job(ctl, job_id)
            common.info(PROG, f"Job allocation {job_id} has been revoked.")
            raise CliError() from None
        if info is None or common.is_finished(info) or info.get("state") == "COMPLETING":
            raise CliError(f"Job allocation {job_id} has been revoked.")
        if info.get("state") == "RUNNING":
            return
        try:
            time.sleep(delay)
        except Interrupted:
            _cancel_job(ctl, job_id)
            common.info(PROG, f"Job allocation {job_id} has been revoked.")
            raise CliError() from None
        delay = min(delay * 1.5, POLL_MAX_SLEEP)


def _body(args: list[str]) -> int:
    from spurcli import srun_opts
    from spurcli.sbatch import base_spec

    cwd = os.getcwd()
    # Every srun option is accepted and validated here. The environment is not read yet:
    # until steps honour SLURM_NTASKS & co. srun behaves as before (command line only).
    request = srun_opts.parse(args, environ={}, cwd=cwd)
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
    ntasks = int(spec.get("ntasks", 1))
    step_cwd = str(spec["cwd"])

    ctl = common.connect()
    old = install_handlers()
    try:
        inside = os.environ.get("SLURM_JOB_ID", "")
        if inside:
            try:
                job_id = int(inside)
            except ValueError:
                raise CliError(f"Invalid SLURM_JOB_ID: {inside}") from None
            code, sig, node = run_step(ctl, job_id, command, ntasks, step_cwd)
            return report_status(node, code, sig)

        from spurcore.rpc import RpcError

        spec.update({
            "script": None,
            "argv": command,
            "env": dict(os.environ),
            "command": command[0],
            "submit_line": " ".join([PROG, *args]),
        })
        try:
            job_id = int(ctl.call("submit", {"request_id": common.new_request_id(), "spec": spec})["job_id"])
        except RpcError as exc:
            raise CliError(f"Unable to allocate resources: {exc.message or exc.code}") from None
        wait_until_running(ctl, job_id)
        job_env = {"SLURM_JOB_ID": str(job_id), "SLURM_JOBID": str(job_id)}
        try:
            code, sig, node = run_step(ctl, job_id, command, ntasks, step_cwd, job_env)
        except (CliError, Interrupted):
            ctl.close()
            _cancel_job(ctl, job_id)
            raise
        try:
            ctl.call("job_complete", {"request_id": common.new_request_id(), "job_id": job_id,
                                      "exit_code": code, "signal": sig})
        except RpcError as exc:
            common.error(PROG, f"Unable to complete job {job_id}: {exc.message or exc.code}")
        return report_status(node, code, sig)
    except Interrupted as exc:
        return 128 + exc.signum
    finally:
        restore_handlers(old)
        ctl.close()


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv, usage_code=255)  # slurm_opt.c: a bad option exits -1


if __name__ == "__main__":
    sys.exit(main())
