"""``scancel``: cancel or signal jobs, job array tasks and steps (Slurm 25.11,
src/scancel/scancel.c and opt.c).

Ids (``_xlate_job_step_ids``): ``J``, ``J.S``, ``J_T``, ``J_T.S``, ``J_*`` (every task of
array J, as ``J``), ``J_[1-3,7]`` (those tasks; no step), comma lists. Each goes to the
controller as one reference (``job_ref``: ``"J"`` is the job, or every record of array J;
``"J_T"`` one task); a task list is expanded here into one request per task.

Requests (controller ``signal``; ActionKind 1 KILL, 4 SIGNAL; SignalTarget 0 steps,
1 batch, 2 full):

* no ``-s``: KILL (the controller cancels the job; for ``J.S`` only that step);
  with ``-b``/``-f`` but no ``-s``: SIGKILL to the batch shell / the full job;
* ``-s SIG``: SIGNAL with that number and target (``-b`` batch, ``-f`` full, else steps).

Messages (stderr, ``-v``): ``Terminating [batch |full ]job J``, ``Signal N to [batch |full ]job J``,
``Terminating step J.S``, ``Signal N to step J.S`` (J as given: ``12_[1-3]``, ``12_4``). A plain
id that is unknown or already finished is ignored with exit 0 when the signal is KILL
(reported only with ``-v`` as ``Kill job error on job id J: Invalid job id specified``); other
errors are printed (``-Q`` hides them) and give exit 1. A request for a job in a transitional
state (``Job can not be altered now, try again later``) is retried a few times first.

With filters (``-u``, ``-t``, ``-n``, ``-p``, ``-A``, ``-q``, ``-R``, ``-w``, ``--wckey``,
``--me``) or ``-i`` the active jobs are listed first and the matches are cancelled, pending
jobs first; ids given as well must be among the active jobs (``Kill job error on job id J:
Invalid job id specified``, exit 1). Environment: ``SCANCEL_ACCOUNT``, ``SCANCEL_BATCH``,
``SCANCEL_CTLD``, ``SCANCEL_CRON``, ``SCANCEL_FULL``, ``SCANCEL_HURRY``,
``SCANCEL_INTERACTIVE``, ``SCANCEL_NAME``, ``SCANCEL_PARTITION``, ``SCANCEL_QOS``,
``SCANCEL_STATE``, ``SCANCEL_USER``, ``SCANCEL_VERBOSE``, ``SCANCEL_WCKEY``,
``SLURM_CLUSTERS``.
"""

from __future__ import annotations

import os
import sys

from spurcli import common
from spurcli.common import REQUIRED, CliError, Opt

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

PROG = "scancel"

OPTIONS = (
    Opt("autocomplete", "", "autocomplete", REQUIRED),
    Opt("account", "A", "account", REQUIRED),
    Opt("admin_comment", "", "admin-comment", REQUIRED),
    Opt("batch", "b", "batch"),
    Opt("ctld", "", "ctld"),
    Opt("cron", "c", "cron"),
    Opt("full", "f", "full"),
    Opt("help", "", "help"),
    Opt("hurry", "H", "hurry"),
    Opt("interactive", "i", "interactive"),
    Opt("clusters", "M", ("cluster", "clusters"), REQUIRED),
    Opt("name", "n", ("jobname", "name"), REQUIRED),
    Opt("me", "", "me"),
    Opt("nodelist", "w", "nodelist", REQUIRED),
    Opt("partition", "p", "partition", REQUIRED),
    Opt("qos", "q", "qos", REQUIRED),
    Opt("quiet", "Q", "quiet"),
    Opt("reservation", "R", "reservation", REQUIRED),
    Opt("sibling", "", "sibling", REQUIRED),
    Opt("signal", "s", "signal", REQUIRED),
    Opt("state", "t", "state", REQUIRED),
    Opt("usage", "", "usage"),
    Opt("user", "u", "user", REQUIRED),
    Opt("verbose", "v", "verbose"),
    Opt("version", "V", "version"),
    Opt("wckey", "", "wckey", REQUIRED),
)

USAGE = """\
Usage: scancel [-A account] [--batch] [--ctld] [--full] [--interactive] [-n job_name]
               [-p partition] [-Q] [-q qos] [-R reservation] [-s signal | integer]
               [-t PENDING | RUNNING | SUSPENDED] [--usage] [-u user_name]
               [--hurry] [-V] [-v] [-w hosts...] [--wckey=wckey]
               [job_id[_array_id][.step_id]]
"""

HELP = """\
Usage: scancel [OPTIONS] [job_id[_array_id][.step_id]]
  -A, --account=account           act only on jobs charging this account
      --admin-comment=comment     set AdminComment on canceled jobs
  -b, --batch                     signal batch shell for specified job
      --ctld                      send request directly to slurmctld
  -c, --cron                      cancel an scrontab job
  -f, --full                      signal batch shell and all steps for specified job
  -H, --hurry                     avoid burst buffer stage out
  -i, --interactive               require response from user for each job
  -M, --clusters                  clusters to issue commands to.
                                  NOTE: SlurmDBD must be up.
  -n, --name=job_name             act only on jobs with this name
  -p, --partition=partition       act only on jobs in this partition
  -Q, --quiet                     disable warnings
  -q, --qos=qos                   act only on jobs with this quality of service
  -R, --reservation=reservation   act only on jobs with this reservation
      --sibling=cluster_name      remove an active sibling job from a federated job
  -s, --signal=name | integer     signal to send to job, default is SIGKILL
  -t, --state=states              act only on jobs in this state.  Valid job
                                  states are PENDING, RUNNING and SUSPENDED
  -u, --user=user_name            act only on jobs of this user
  -V, --version                   output version information and exit
  -v, --verbose                   verbosity level
  -w, --nodelist                  act only on jobs on these nodes
      --wckey=wckey               act only on jobs with this workload
                                  charactization key

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
    """The parsed scancel command line (opt.c's ``opt``)."""

    def __init__(self) -> None:
        self.ids: list[Any] = []  # jobrefs.CancelId
        self.signal: int | None = None
        self.batch = False
        self.full = False
        self.verbose = 0
        self.quiet = False
        self.state: str | None = None
        self.user: str | None = None  # as typed (for the "no match" message)
        self.user_name: str | None = None
        self.uid: int | None = None
        self.name: str | None = None
        self.partition: str | None = None
        self.account: str | None = None
        self.qos: str | None = None
        self.reservation: str | None = None
        self.nodelist: str | None = None
        self.wckey: str | None = None
        self.interactive = False
        self.ctld = False
        self.cron = False
        self.hurry = False
        self.sibling: str | None = None
        self.admin_comment: str | None = None

    @property
    def has_filters(self) -> bool:
        return any(v is not None for v in (self.state, self.user, self.name, self.partition, self.account,
                                           self.qos, self.reservation, self.nodelist, self.wckey))

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
        for label, value in (("account", self.account), ("job_name", self.name), ("nodelist", self.nodelist),
                             ("partition", self.partition), ("qos", self.qos),
                             ("reservation", self.reservation), ("state", self.state),
                             ("user_name", self.user), ("wckey", self.wckey)):
            if value is not None:
                text += f"{label}={value} "
        return text


def parse_id(text: str) -> tuple[int, int | None]:
    """``job_id[.step_id]`` of a plain job (no array syntax): (job, step). Raises CliError
    ``Invalid job id <text>``."""
    from spurcli.jobrefs import RefError, scancel_ids

    try:
        (one,) = scancel_ids([text])
    except (RefError, ValueError):
        raise CliError(f"Invalid job id {text}") from None
    return one.job_id, one.step


def _bool_env(env: Any, name: str, current: bool) -> bool:
    value = env.get(name)
    if value is None:
        return current
    low = value.lower()
    if low in ("true", "t"):
        return True
    if low in ("false", "f"):
        return False
    common.error(PROG, f"Unrecognized {name} value: {value}")
    return current


def _state(text: str, *, env: bool) -> str:
    """``_xlate_state_name``: any job state Slurm knows (only PENDING, RUNNING and SUSPENDED
    jobs can match); an unknown one ends scancel."""
    from spurcli.jobrefs import job_state_num

    state = job_state_num(text)
    if state is not None:
        return state
    first = f"Unrecognized SCANCEL_STATE value: {text}" if env else f"Invalid job state specified: {text}"
    raise CliError(f"{first}\nValid job states are PENDING, RUNNING, and SUSPENDED", raw=True)


def parse_args(args: list[str], environ: Any = None) -> Request:
    from spurcli.jobrefs import RefError, check_clusters, fatal, scancel_ids

    env = os.environ if environ is None else environ
    r = Request()
    # _opt_env
    if env.get("SCANCEL_ACCOUNT") is not None:
        r.account = env["SCANCEL_ACCOUNT"].lower()
    r.batch = _bool_env(env, "SCANCEL_BATCH", r.batch)
    r.ctld = env.get("SCANCEL_CTLD") is not None
    r.cron = env.get("SCANCEL_CRON") is not None
    r.full = _bool_env(env, "SCANCEL_FULL", r.full)
    r.hurry = env.get("SCANCEL_HURRY") is not None
    r.interactive = _bool_env(env, "SCANCEL_INTERACTIVE", r.interactive)
    if env.get("SCANCEL_NAME") is not None:
        r.name = env["SCANCEL_NAME"]
    if env.get("SCANCEL_PARTITION") is not None:
        r.partition = env["SCANCEL_PARTITION"]
    if env.get("SCANCEL_QOS") is not None:
        r.qos = env["SCANCEL_QOS"].lower()
    if env.get("SCANCEL_STATE") is not None:
        r.state = _state(env["SCANCEL_STATE"], env=True)
    if env.get("SCANCEL_USER") is not None:
        r.user = env["SCANCEL_USER"]
    r.verbose = 1 if _bool_env(env, "SCANCEL_VERBOSE", False) else 0
    if env.get("SCANCEL_WCKEY") is not None:
        r.wckey = env["SCANCEL_WCKEY"]
    clusters = env.get("SLURM_CLUSTERS")
    clusters_env = clusters is not None

    pairs, operands = common.getopt(args, OPTIONS)
    for key, value in pairs:
        text = value or ""
        common.info_option(key, text, OPTIONS, {"help": HELP, "usage": USAGE})
        if key == "signal":
            from spurcore.signals import parse_signal  # only with -s: 0.2-0.4 ms of start-up

            try:
                r.signal = parse_signal(text)
            except ValueError:
                raise CliError(f"Unknown job signal: {text}", raw=True) from None
        elif key == "account":
            r.account = text.lower()
        elif key == "admin_comment":
            r.ctld = True
            r.admin_comment = text
        elif key == "batch":
            r.batch = True
        elif key == "ctld":
            r.ctld = True
        elif key == "cron":
            r.cron = True
        elif key == "full":
            r.full = True
        elif key == "hurry":
            r.hurry = True
        elif key == "interactive":
            r.interactive = True
        elif key == "clusters":
            clusters, clusters_env = text, False
        elif key == "verbose":
            r.verbose += 1
        elif key == "quiet":
            r.verbose = -1
            r.quiet = True
        elif key == "state":
            r.state = _state(text, env=False)
        elif key == "user":
            r.user = text
        elif key == "me":
            r.user = str(os.getuid())
        elif key == "name":
            r.name = text
        elif key == "partition":
            r.partition = text
        elif key == "qos":
            r.qos = text.lower()
        elif key == "reservation":
            r.reservation = text
        elif key == "nodelist":
            r.nodelist = text
        elif key == "sibling":
            r.sibling = text
        elif key == "wckey":
            r.wckey = text
    if clusters:
        try:
            check_clusters(clusters, common.load_config().name, PROG, isenv=clusters_env)
        except RefError as exc:
            common.error(PROG, str(exc))
            raise fatal(PROG, "Could not get cluster information") from None
        r.ctld = True
    if operands:
        try:
            r.ids = scancel_ids(operands)
        except RefError as exc:
            raise CliError(str(exc)) from None
    if r.nodelist is not None and "/" in r.nodelist:
        r.nodelist = _read_hostfile(r.nodelist)
    if r.user is not None:
        r.user_name, r.uid = _user(r.user)
    if not r.ids and not r.has_filters:
        raise CliError("No job identification provided")
    return r


def _read_hostfile(path: str) -> str:
    """``-w /path``: a file of host names (one a line or comma-separated)."""
    try:
        with open(path) as f:
            names = [n.strip() for line in f for n in line.split(",") if n.strip()]
    except OSError:
        return path
    return ",".join(names)


def _user(text: str) -> tuple[str, int | None]:
    """(name, uid) of a ``-u`` value; a numeric uid without a passwd entry is kept."""
    import pwd

    s = text.strip()
    try:
        pw = pwd.getpwuid(int(s)) if s.isdigit() else pwd.getpwnam(s)
    except KeyError:
        if s.isdigit():
            return s, int(s)
        raise CliError(f"Invalid user name: {s}") from None
    return pw.pw_name, pw.pw_uid


# --------------------------------------------------------------------------- requests


def verbose_message(r: Request, job: Any, step: int | None = None) -> str:
    """The ``-v`` line for one request (without the ``scancel: `` prefix). ``job`` is the job
    id text as scancel prints it (``12``, ``12_3``, ``12_[1-3]``) or an int."""
    if step is not None:
        if r.sig == SIGKILL:
            return f"Terminating step {job}.{step}"
        return f"Signal {r.sig} to step {job}.{step}"
    if r.signal is None:
        return f"Terminating {r.job_type}job {job}"
    return f"Signal {r.signal} to {r.job_type}job {job}"


def signal_params(r: Request, job: Any, step: int | None) -> dict[str, Any]:
    """The ``signal`` call for one job (``job``: an int or a reference ``"12_3"``) or step
    (request_id added by the caller)."""
    ref = str(job)
    target = TARGET_FULL if r.full else TARGET_BATCH if r.batch else TARGET_STEPS
    # Every request names the job by job_ref; a plain job also keeps job_id for
    # controllers that predate job_ref.
    base: dict[str, Any] = {"job_ref": ref}
    if ref.isdigit():
        base["job_id"] = int(ref)
    if step is not None:
        if r.signal is None:
            return {**base, "step_id": step, "kind": KILL, "signal": SIGKILL, "target": TARGET_STEPS}
        return {**base, "step_id": step, "kind": SIGNAL, "signal": r.signal, "target": TARGET_STEPS}
    if r.signal is None and target == TARGET_STEPS:
        return {**base, "step_id": -1, "kind": KILL, "signal": SIGKILL, "target": TARGET_STEPS}
    return {**base, "step_id": -1, "kind": SIGNAL, "signal": r.sig, "target": target}


def cancel_one(ctl: common.Controller, r: Request, job: Any, step: int | None, *, shown: Any = None,
               quiet_verbose: bool = False) -> int:
    """Send one request; print Slurm's lines; return 0 or 1. ``shown`` is the id text of the
    verbose line (default: ``job``)."""
    import time

    from spurio.rpc import RpcError

    if r.verbose > 0 and not quiet_verbose:
        common.info(PROG, verbose_message(r, job if shown is None else shown, step))
    params = signal_params(r, job, step)
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
            common.info(PROG, "Job is in transitional state, retrying")
        time.sleep(RETRY_SLEEP * (attempt + 1))
    assert error is not None
    code = error.code
    message = error.message or code
    if step is None:
        if r.verbose > 0 or (r.verbose >= 0 and code not in _DONE_CODES):
            common.error(PROG, f"Kill job error on job id {job}: {message}")
        return 0 if code in _DONE_CODES and r.sig == SIGKILL else 1
    if r.verbose > 0 or (r.verbose >= 0 and code != "already_done"):
        common.error(PROG, f"Kill job error on job step id {job}.{step}: {message}")
    return 0 if code == "already_done" and r.sig == SIGKILL else 1


BULK = 1000  # jobs per signal_many call


def cancel_many(ctl: common.Controller, r: Request, jobs: list[Any]) -> int:
    """The filter path's many jobs in few calls (``signal_many``): Slurm's scancel also sends
    one request for a whole filter. Jobs that answer "try again later" go one by one.
    ``jobs`` are references, or (shown text, reference) pairs: the verbose line is printed
    once per shown text."""
    import time

    from spurio.client import RETRYABLE

    pairs = [j if isinstance(j, tuple) else (j, j) for j in jobs]
    rc = 0
    retry: list[Any] = []
    said: set[Any] = set()
    for start in range(0, len(pairs), BULK):
        chunk = pairs[start : start + BULK]
        if r.verbose > 0:
            for shown, _ref in chunk:
                if shown not in said:
                    said.add(shown)
                    common.info(PROG, verbose_message(r, shown, None))
        # The same request ids are sent again for requests that met a leader change: the
        # controller deduplicates them, so nothing is cancelled twice.
        todo = {ref: {"request_id": common.new_request_id(), **signal_params(r, ref, None)} for _s, ref in chunk}
        deadline = time.monotonic() + 60
        while todo:
            results = ctl.call("signal_many", {"requests": list(todo.values())}, timeout=120)["results"]
            again: dict[Any, dict[str, Any]] = {}
            for (job, request), result in zip(todo.items(), results, strict=True):
                error = result.get("error")
                if not error:
                    continue
                code, message = error.get("code", ""), error.get("message") or error.get("code", "")
                if code in RETRYABLE and time.monotonic() < deadline:
                    again[job] = request
                elif code in _RETRY_CODES:
                    retry.append(job)
                elif r.verbose > 0 or code not in _DONE_CODES:
                    common.error(PROG, f"Kill job error on job id {job}: {message}")
                    rc = max(rc, 0 if code in _DONE_CODES and r.sig == SIGKILL else 1)
            if again:
                time.sleep(0.1)
            todo = again
    for job in retry:
        rc = max(rc, cancel_one(ctl, r, job, None, quiet_verbose=True))
    return rc


def _job_text(job: dict[str, Any]) -> str:
    """``_build_jobid_str``: ``12``, ``12_3`` (a task), ``12_[4-9]`` (pending tasks)."""
    array_id = int(job.get("array_job_id") or 0)
    if array_id and job.get("array_task_id") is not None:
        return f"{array_id}_{job['array_task_id']}"
    if array_id and job.get("array_pending"):
        from spurcore.arrays import fmt_bitmap

        return f"{array_id}_[{fmt_bitmap([list(x) for x in job['array_pending']], 0)}]"
    return str(job["job_id"])


def _refs_of(job: dict[str, Any]) -> list[str]:
    """The controller references that signal exactly this record: a task record by its task,
    an array's pending record by each of its pending tasks (``"A"`` alone would reach every
    record of the array), any other job by its id."""
    array_id = int(job.get("array_job_id") or 0)
    if array_id and job.get("array_task_id") is not None:
        return [f"{array_id}_{job['array_task_id']}"]
    if array_id and job.get("array_pending"):
        from spurcore.arrays import indexes

        return [f"{array_id}_{t}" for t in indexes([list(x) for x in job["array_pending"]])]
    return [str(job["job_id"])]


def job_matches(r: Request, job: dict[str, Any]) -> bool:
    """Slurm's ``_filter_job_records`` for one job (base states: a STOPPED job is RUNNING)."""
    from spurcore.hostlist import expand

    base = str(job.get("base_state") or job.get("state") or "")
    if base not in CANCELLABLE_STATES:
        return False
    if r.account is not None and str(job.get("account") or "") != r.account:
        return False
    if r.name is not None and str(job.get("name") or "") != r.name:
        return False
    if r.partition is not None and str(job.get("partition") or "") != r.partition:
        return False
    if r.qos is not None and str(job.get("qos") or "normal") != r.qos:
        return False
    if r.reservation is not None:
        return False  # no Spur job runs in a reservation
    if r.state is not None and base != r.state:
        return False
    if r.uid is not None and int(job.get("uid", -1)) != r.uid:
        return False
    if r.nodelist is not None:
        nodes = str(job.get("nodes") or "")
        if not nodes or not set(expand(nodes)).intersection(expand(r.nodelist)):
            return False
    if r.wckey is not None:
        key = str(job.get("wckey") or "")
        if not r.wckey.startswith("*") and key.startswith("*"):
            key = key[1:]
        if key != r.wckey:
            return False
    return True


def _id_matches(cid: Any, job: dict[str, Any]) -> bool:
    """scancel's id test against one active record (``_verify_job_ids``)."""
    from spurcore.arrays import contains

    array_id = int(job.get("array_job_id") or 0)
    if cid.task is None:
        return cid.job_id == int(job["job_id"]) or (cid.job_id == array_id and cid.step is None)
    if cid.task == "*":
        return cid.job_id == array_id
    if cid.job_id != array_id:
        return False
    if job.get("array_task_id") is not None:
        return int(job["array_task_id"]) == cid.task
    return contains([list(x) for x in job.get("array_pending") or ()], int(cid.task))


def _confirm(job: dict[str, Any], job_text: str, step: int | None) -> bool:
    """``_confirmation``: ask until the answer starts with y or n."""
    while True:
        if step is None:
            sys.stdout.write(f"Cancel job_id={job_text} name={job.get('name')} partition={job.get('partition')} "
                             "[y/n]? ")
        else:
            sys.stdout.write(f"Cancel step_id={job_text}.{step} name={job.get('name')} "
                             f"partition={job.get('partition')} [y/n]? ")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            return False
        if line[:1] in "yY":
            return True
        if line[:1] in "nN":
            return False


def cancel_filtered(ctl: common.Controller, r: Request) -> int:
    """The path with filters or ``-i``: load, verify ids, filter, cancel pending first."""
    from spurio.rpc import RpcError

    params: dict[str, Any] = {}
    if r.ids:
        params["job_refs"] = sorted({str(c.job_id) for c in r.ids})
    try:
        jobs = list(common.call_jobs(ctl, params).get("jobs") or [])
    except RpcError as exc:
        if exc.code != "invalid_job_id":
            raise CliError(f"slurm_load_jobs error: {exc.message or exc.code}", raw=True) from None
        jobs = []
    rc = 0
    active = [j for j in jobs if not common.is_finished(j)]
    wanted_ids: list[Any] = []
    for cid in r.ids:  # _verify_job_ids
        found = [j for j in active if _id_matches(cid, j)]
        if not found or (cid.step is not None and all(j.get("base_state") != "RUNNING" for j in found)):
            if r.verbose >= 0:
                what = f"job id {cid.text}" if cid.step is None else f"job step id {cid.text}.{cid.step}"
                common.error(PROG, f"Kill job error on {what}: Invalid job id specified")
            rc = 1
        else:
            wanted_ids.append(cid)
    if r.ids and not wanted_ids:
        return rc
    matched = [j for j in active if job_matches(r, j)] if r.has_filters else list(active)
    if r.has_filters and not matched:
        if r.verbose > 0:
            common.error(PROG, f"No active jobs match ALL job filters, including: {r.filter_text()}")
        return rc
    matched.sort(key=lambda j: (str(j.get("base_state") or j.get("state")) != "PENDING", int(j["job_id"])))
    if not r.ids:
        pairs: list[tuple[str, str]] = []
        for job in matched:
            text = _job_text(job)
            if r.interactive and not _confirm(job, text, None):
                continue
            pairs.extend((text, ref) for ref in _refs_of(job))
        if len(pairs) > 1 and not r.interactive:
            return max(rc, cancel_many(ctl, r, pairs))
        for text, ref in pairs:
            rc = max(rc, cancel_one(ctl, r, ref, None, shown=text))
        return rc
    done: set[str] = set()
    for job in matched:
        for cid in wanted_ids:
            if not _id_matches(cid, job):
                continue
            refs = [cid.text] if cid.task not in (None, "*") else _refs_of(job)
            key = f"{refs[0]}.{cid.step}"
            if key in done:
                continue
            if cid.step is not None and job.get("base_state") == "PENDING":
                continue
            text = cid.text if cid.task not in (None, "*") else _job_text(job)
            if r.interactive and not _confirm(job, text, cid.step):
                continue
            done.add(key)
            for i, ref in enumerate(refs):
                rc = max(rc, cancel_one(ctl, r, ref, cid.step, shown=text, quiet_verbose=i > 0))
    return rc


def _body(args: list[str]) -> int:
    r = parse_args(args)
    with common.connect() as ctl:
        if r.has_filters or r.interactive:
            return cancel_filtered(ctl, r)
        # _signal_job_by_str: one verbose line per id as given (12_[1-3]), one request per
        # task; a task list's errors name the task.
        rc = 0
        said: set[str] = set()
        for cid in r.ids:
            ref = str(cid.job_id) if cid.task in (None, "*") else cid.text
            quiet = cid.given in said
            said.add(cid.given)
            if r.verbose > 0 and not quiet and cid.step is None and cid.given != cid.text:
                common.info(PROG, verbose_message(r, cid.given, cid.step))
                quiet = True
            rc = max(rc, cancel_one(ctl, r, ref, cid.step, shown=cid.text, quiet_verbose=quiet))
        return rc


def main(argv: list[str] | None = None) -> int:
    return common.run(PROG, _body, argv)


if __name__ == "__main__":
    sys.exit(main())
