"""``scancel``: cancel or signal jobs and steps (Slurm 25.11, src/scancel/scancel.c).

Requests (controller ``signal``; ActionKind 1 KILL, 4 SIGNAL; SignalTarget 0 steps,
1 batch, 2 full):

* no ``-s``: KILL (the controller cancels the job; for ``J.S`` only that step);
  with ``-b``/``-f`` but no ``-s``: SIGKILL to the batch shell / the full job;
* ``-s SIG``: SIGNAL with that number and target (``-b`` batch, ``-f`` full, else steps).

Messages (stderr, ``-v``): ``Terminating [batch |full ]job J``, ``Signal N to [batch |full ]job J``,
``Terminating step J.S``, ``Signal N to step J.S``. A plain id that is unknown or already
finished is ignored with exit 0 when the signal is KILL (reported only with ``-v`` as
``Kill job error on job id J: Invalid job id specified``); other errors are printed
(``-Q`` hides them) and give exit 1. A request for a job in a transitional state
(``Job can not be altered now, try again later``) is retried a few times first.

With filters (``-u``, ``-t``, ``-n``, ``-p``, ``-A``, ``--me``) the active jobs are listed
first and the matches are cancelled, pending jobs first; ids given as well must be among the
active jobs (``Kill job error on job id J: Invalid job id specified``, exit 1).
"""

from __future__ import annotations

import sys

from spurcli import common
from spurcli.common import REQUIRED, CliError, Opt

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "scancel"

OPTIONS = (
    Opt("account", "A", "account", REQUIRED),
    Opt("batch", "b", "batch"),
    Opt("ctld", "", "ctld"),
    Opt("full", "f", "full"),
    Opt("help", "h", "help"),
    Opt("hurry", "H", "hurry"),
    Opt("interactive", "i", "interactive"),
    Opt("me", "", "me"),
    Opt("name", "n", ("name", "jobname"), REQUIRED),
    Opt("partition", "p", "partition", REQUIRED),
    Opt("quiet", "Q", "quiet"),
    Opt("signal", "s", "signal", REQUIRED),
    Opt("state", "t", "state", REQUIRED),
    Opt("usage", "", "usage"),
    Opt("user", "u", "user", REQUIRED),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
)

USAGE = """\
Usage: scancel [-A account] [--batch] [--full] [--interactive] [-n job_name]
               [-p partition] [-Q] [-q qos] [-R reservation] [-s signal | integer]
               [-t PENDING | RUNNING | SUSPENDED] [--usage] [-u user_name]
               [--hurry] [-V] [-v] [-w hosts...] [--wckey=wckey] [--me]
               [job_id[_array_id][.step_id]]
"""

HELP = """\
Usage: scancel [OPTIONS] [job_id[_array_id][.step_id]]
  -A, --account=account           act only on jobs charging this account
  -b, --batch                     signal batch shell for specified job
  -f, --full                      signal batch shell and all steps for specified job
  -H, --hurry                     avoid burst buffer stage out
  -i, --interactive               require response from user for each job
      --me                        equivalent to --user=<my username>
  -n, --name=job_name             act only on jobs with this name
  -p, --partition=partition       act only on jobs in this partition
  -Q, --quiet                     disable warnings
  -s, --signal=name | integer     signal to send to job, default is SIGKILL
  -t, --state=states              act only on jobs in this state.  Valid job
                                  states are PENDING, RUNNING and SUSPENDED
  -u, --user=user_name            act only on jobs of this user
  -V, --version                   output version information and exit
  -v, --verbose                   verbosity level

Help options:
  --help                          show this help message
  --usage                         display brief usage message
"""

KILL, SIGNAL = 1, 4
TARGET_STEPS, TARGET_BATCH, TARGET_FULL = 0, 1, 2
SIGKILL = 9

#: Retries for a job in a transitional state (Slurm: 10 tries, sleeping 5+i seconds).
MAX_RETRIES = 3
RETRY_SLEEP = 1.0

_RETRY_CODES = frozenset({"transition_state_no_update", "job_pending"})
_DONE_CODES = frozenset({"already_done", "invalid_job_id"})
CANCELLABLE_STATES = ("PENDING", "RUNNING", "SUSPENDED")


class Request:
    """The parsed scancel command line."""

    def __init__(self) -> None:
        self.ids: list[tuple[int, int | None]] = []
        self.signal: int | None = None
        self.batch = False
        self.full = False
        self.verbose = 0
        self.quiet = False
        self.state: str | None = None
        self.user: str | None = None  # as typed (for the "no match" message)
        self.user_name: str | None = None
        self.name: str | None = None
        self.partition: str | None = None
        self.account: str | None = None

    @property
    def has_filters(self) -> bool:
        return any(v is not None for v in (self.state, self.user, self.name, self.partition, self.account))

    @property
    def sig(self) -> int:
        return SIGKILL if self.signal is None else self.signal

    @property
    def job_type(self) -> str:
        if self.full:
            return "full "
        if self.batch:
            return "batch "
        return ""

    def filter_text(self) -> str:
        """Slurm's list of active filters for the "No active jobs match" message."""
        text = ""
        if self.account is not None:
            text += f"account={self.account} "
        if self.name is not None:
            text += f"job_name={self.name} "
        if self.partition is not None:
            text += f"partition={self.partition} "
        if self.state is not None:
            text += f"state={self.state} "
        if self.user is not None:
            text += f"user_name={self.user} "
        return text


def parse_id(text: str) -> tuple[int, int | None]:
    """``job_id[.step_id]``; anything else (array tasks ``J_T``, ``batch`` steps, 0, junk)
    raises CliError ``Invalid job id <text>``."""
    try:
        job_id, step = common.parse_job_step(text)
    except ValueError:
        raise CliError(f"Invalid job id {text}") from None
    if step is not None and not isinstance(step, int):
        raise CliError(f"Invalid job id {text}")
    return job_id, step


def parse_args(args: list[str]) -> Request:
    from spurcore.signals import parse_signal

    pairs, operands = common.getopt(args, OPTIONS)
    common.handle_common(PROG, pairs, HELP, USAGE)
    r = Request()
    for key, value in pairs:
        value = value or ""
        if key == "signal":
            try:
                r.signal = parse_signal(value)
            except ValueError:
                raise CliError(f"Invalid job signal: {value}") from None
        elif key == "batch":
            r.batch = True
        elif key == "full":
            r.full = True
        elif key == "verbose":
            r.verbose += 1
        elif key == "quiet":
            r.quiet = True
        elif key == "state":
            try:
                state = common.parse_state(value)
            except ValueError:
                state = ""
            if state not in CANCELLABLE_STATES:
                raise CliError(f"Invalid job state specified: {value}\n"
                               f"{PROG}: error: Valid job states are PENDING, RUNNING, and SUSPENDED")
            r.state = state
        elif key == "user":
            r.user = value
        elif key == "me":
            r.user = common.current_user()[0]
        elif key == "name":
            r.name = value
        elif key == "partition":
            r.partition = value
        elif key == "account":
            r.account = value
    for operand in operands:
        for item in operand.split(","):
            if item.strip():
                r.ids.append(parse_id(item))
    if r.user is not None:
        r.user_name = _user_name(r.user)
    if not r.ids and not r.has_filters:
        raise CliError("No job identification provided")
    if r.quiet:
        r.verbose = -1
    return r


def _user_name(text: str) -> str:
    import pwd

    s = text.strip()
    try:
        return pwd.getpwuid(int(s)).pw_name if s.isdigit() else pwd.getpwnam(s).pw_name
    except KeyError:
        if s.isdigit():
            return s
        raise CliError(f"Invalid user name: {s}") from None


# --------------------------------------------------------------------------- requests


def verbose_message(r: Request, job_id: int, step: int | None) -> str:
    """The ``-v`` line for one request (without the ``scancel: `` prefix)."""
    if step is not None:
        if r.sig == SIGKILL:
            return f"Terminating step {job_id}.{step}"
        return f"Signal {r.sig} to step {job_id}.{step}"
    if r.signal is None:
        return f"Terminating {r.job_type}job {job_id}"
    return f"Signal {r.signal} to {r.job_type}job {job_id}"


def signal_params(r: Request, job_id: int, step: int | None) -> dict[str, Any]:
    """The ``signal`` call for one job or step (request_id added by the caller)."""
    target = TARGET_FULL if r.full else TARGET_BATCH if r.batch else TARGET_STEPS
    if step is not None:
        if r.signal is None:
            return {"job_id": job_id, "step_id": step, "kind": KILL, "signal": SIGKILL, "target": TARGET_STEPS}
        return {"job_id": job_id, "step_id": step, "kind": SIGNAL, "signal": r.signal, "target": TARGET_STEPS}
    if r.signal is None and target == TARGET_STEPS:
        return {"job_id": job_id, "step_id": -1, "kind": KILL, "signal": SIGKILL, "target": TARGET_STEPS}
    return {"job_id": job_id, "step_id": -1, "kind": SIGNAL, "signal": r.sig, "target": target}


def cancel_one(ctl: common.Controller, r: Request, job_id: int, step: int | None) -> int:
    """Send one request; print Slurm's lines; return 0 or 1."""
    import time

    from spurcore.rpc import RpcError

    if r.verbose > 0:
        common.info(PROG, verbose_message(r, job_id, step))
    params = signal_params(r, job_id, step)
    error: RpcError | None = None
    for attempt in range(MAX_RETRIES):
        try:
            ctl.call("signal", {"request_id": common.new_request_id(), **params})
            return 0
        except RpcError as exc:
            error = exc
        if error.code not in _RETRY_CODES or attempt == MAX_RETRIES - 1:
            break
        if r.verbose > 0:
            common.info(PROG, "Job is in transistional state, retrying")
        time.sleep(RETRY_SLEEP * (attempt + 1))
    assert error is not None
    code = error.code
    message = error.message or code
    if step is None:
        if r.verbose > 0 or (r.verbose >= 0 and code not in _DONE_CODES):
            common.error(PROG, f"Kill job error on job id {job_id}: {message}")
        return 0 if code in _DONE_CODES and r.sig == SIGKILL else 1
    if r.verbose > 0 or (r.verbose >= 0 and code != "already_done"):
        common.error(PROG, f"Kill job error on job step id {job_id}.{step}: {message}")
    return 0 if code == "already_done" and r.sig == SIGKILL else 1


BULK = 1000  # jobs per signal_many call


def cancel_many(ctl: common.Controller, r: Request, job_ids: list[int]) -> int:
    """The filter path's many jobs in few calls (``signal_many``): Slurm's scancel also sends
    one request for a whole filter. Jobs that answer "try again later" go one by one."""
    import time

    from spurcore.rpc_client import RETRYABLE

    rc = 0
    retry: list[int] = []
    for start in range(0, len(job_ids), BULK):
        chunk = job_ids[start : start + BULK]
        if r.verbose > 0:
            for job_id in chunk:
                common.info(PROG, verbose_message(r, job_id, None))
        # The same request ids are sent again for requests that met a leader change: the
        # controller deduplicates them, so nothing is cancelled twice.
        todo = {j: {"request_id": common.new_request_id(), **signal_params(r, j, None)} for j in chunk}
        deadline = time.monotonic() + 60
        while todo:
            results = ctl.call("signal_many", {"requests": list(todo.values())}, timeout=120)["results"]
            again: dict[int, dict[str, Any]] = {}
            for (job_id, request), result in zip(todo.items(), results, strict=True):
                error = result.get("error")
                if not error:
                    continue
                code, message = error.get("code", ""), error.get("message") or error.get("code", "")
                if code in RETRYABLE and time.monotonic() < deadline:
                    again[job_id] = request
                elif code in _RETRY_CODES:
                    retry.append(job_id)
                elif r.verbose > 0 or code not in _DONE_CODES:
                    common.error(PROG, f"Kill job error on job id {job_id}: {message}")
                    rc = max(rc, 0 if code in _DONE_CODES and r.sig == SIGKILL else 1)
            if again:
                time.sleep(0.1)
            todo = again
    for job_id in retry:
        rc = max(rc, cancel_one(ctl, r, job_id, None))
    return rc


def job_matches(r: Request, job: dict[str, Any]) -> bool:
    """Slurm's ``_filter_job_records`` for one active job."""
    base = str(job.get("base_state") or job.get("state") or "")
    if base not in CANCELLABLE_STATES:
        return False
    if r.account is not None and str(job.get("account") or "") != r.account:
        return False
    if r.name is not None and str(job.get("name") or "") != r.name:
        return False
    if r.partition is not None and str(job.get("partition") or "") != r.partition:
        return False
    if r.state is not None and str(job.get("state") or "") != r.state:
        return False
    return not (r.user_name is not None and str(job.get("user")) != r.user_name
                and str(job.get("uid")) != r.user_name)


def cancel_filtered(ctl: common.Controller, r: Request) -> int:
    from spurcore.rpc import RpcError

    params: dict[str, Any] = {}
    if r.ids:
        params["job_ids"] = sorted({j for j, _s in r.ids})
    if r.user_name is not None:
        params["users"] = [r.user_name]
    try:
        jobs = list(common.call_jobs(ctl, params).get("jobs") or [])
    except RpcError as exc:
        raise CliError(f"slurm_load_jobs error: {exc.message or exc.code}", raw=True) from None
    rc = 0
    active = {int(j["job_id"]): j for j in jobs if not common.is_finished(j)}
    for job_id, step in r.ids:  # _verify_job_ids
        if job_id not in active or (step is not None and active[job_id].get("base_state") != "RUNNING"):
            if r.verbose >= 0:
                what = f"job id {job_id}" if step is None else f"job step id {job_id}.{step}"
                common.error(PROG, f"Kill job error on {what}: Invalid job id specified")
            rc = 1
    matched = [j for j in active.values() if job_matches(r, j)]
    if not matched:
        if r.verbose > 0:
            common.error(PROG, f"No active jobs match ALL job filters, including: {r.filter_text()}")
        return rc
    matched.sort(key=lambda j: (str(j.get("base_state") or j.get("state")) != "PENDING", int(j["job_id"])))
    if not r.ids and len(matched) > 1:
        return max(rc, cancel_many(ctl, r, [int(j["job_id"]) for j in matched]))
    for job in matched:
        jid = int(job["job_id"])
        if r.ids:
            for job_id, step in r.ids:
                if job_id == jid:
                    rc = max(rc, cancel_one(ctl, r, jid, step))
        else:
            rc = max(rc, cancel_one(ctl, r, jid, None))
    return rc


def _body(args: list[str]) -> int:
    r = parse_args(args)
    with common.connect() as ctl:
        if r.has_filters:
            return cancel_filtered(ctl, r)
        rc = 0
        for job_id, step in r.ids:
            rc = max(rc, cancel_one(ctl, r, job_id, step))
        return rc


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
