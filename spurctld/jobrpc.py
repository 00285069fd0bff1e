"""The controller's job methods: submit (and ``--test-only``), signal/scancel, hold,
release, requeue, update, steps (``srun`` inside a job) and ``job_complete``; job
references (``123``, ``123_4``, ``123_[1-3]``). A mixin of ``spurctld.service.Controller``.

Every request reaching these handlers was validated by its schema (``spurcore.messages``);
what is checked here is what needs the state or the caller: ownership, privileges, array
sizes against MaxArraySize, step layouts. Order of work, as for every write: check, build
the op, commit it through the log, answer with its result.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import attrs

from spurcore import arrays
from spurcore.model import JobState
from spurcore.ops import (
    ActionKind,
    ActionRequested,
    ArrayTasksSplit,
    JobHeld,
    JobNodeComplete,
    JobReleased,
    JobRequeued,
    JobSpec,
    JobSubmitted,
    JobUpdated,
    Op,
    StepCreated,
)
from spurcore.reduce import FIXED_PRIORITY, Rejected
from spurcore.scheduler import schedule
from spurctld.identity import ACCESS_DENIED, INVALID_ARRAY, INVALID_JOB, INVALID_USER, Identity, passwd
from spurctld.replica import Replica
from spurio import rpc
from spurio.config import Config
from spurio.rpc import RpcError

SPEC_FIELDS = {f.name for f in attrs.fields(JobSpec)}


def parse_ref(params: dict[str, Any]) -> tuple[int, list[int] | None]:
    """(job id, task indexes or None for the job / the whole array) from ``job_ref``
    (``"123"``, ``"123_4"``, ``"123_[1-3]"``) or ``job_id``."""
    ref = params.get("job_ref")
    if ref is None:
        job_id = params.get("job_id", 0)
        if not isinstance(job_id, int) or isinstance(job_id, bool) or not 0 < job_id < 2**32:
            raise INVALID_JOB
        return job_id, None
    if not isinstance(ref, str):
        raise RpcError("bad_request", "job_ref must be a string")
    head, sep, tasks = ref.strip().partition("_")
    if not (head.isascii() and head.isdigit()) or not 0 < int(head) < 2**32:
        raise INVALID_JOB
    if not sep:
        return int(head), None
    try:
        ranges, _ = arrays.parse_array(tasks.strip("[]"), arrays.DEFAULT_MAX_ARRAY_SIZE * 4000)
    except arrays.ArrayError:
        raise INVALID_JOB from None
    if arrays.count(ranges) > 100_000:
        raise RpcError("bad_request", "too many array tasks in one reference")
    return int(head), list(arrays.indexes(ranges))


def ref_records(state: Any, head: int, tasks: list[int] | None) -> list[int]:
    """The records a read names: a job, every record of an array, or the records holding
    the given tasks (a task not yet started is in its array's pending record)."""
    members = state.array_members.get(head)
    if not members:
        job = state.jobs.get(head)
        if job is None or (tasks is not None and job.array_task_id not in tasks):
            return []
        return [head]
    if tasks is None:
        return list(members)
    wanted = set(tasks)
    out = []
    for job_id in members:
        job = state.jobs[job_id]
        if job.array_task_id in wanted or (
            job.array_task_id < 0 and any(arrays.contains(job.array_pending, t) for t in wanted)
        ):
            out.append(job_id)
    return out


def submit_priority(spec: JobSpec) -> int | None:
    """The job's ``--priority`` (``TOP``: the highest a job can have), None when not given."""
    raw = spec.options.get("priority")
    if raw is None:
        return None
    text = str(raw).strip()
    if text.lower() == "top":
        return 0xFFFFFFFD
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 <= value < 0xFFFFFFFE else None


def with_priority(spec: JobSpec, operator: bool) -> JobSpec:
    """``--priority`` as slurmctld takes it (validate_job_create_req, _job_create): 0 holds
    the job (JobHeldUser); an operator's other value fixes the job's priority from its
    submission on (the reducer reads FIXED_PRIORITY); other users' is ignored."""
    priority = submit_priority(spec)
    if priority == 0 and not spec.hold:
        return attrs.evolve(spec, hold=True)
    if priority and operator:
        return attrs.evolve(spec, options={**spec.options, FIXED_PRIORITY: str(priority)})
    return spec


class JobMethods:
    """Mixed into Controller: its config, replica, commit and identity helpers."""

    config: Config
    replica: Replica | None

    def _spec_from(self, ident: Identity, raw: Any) -> JobSpec:
        if not isinstance(raw, dict):
            raise RpcError("bad_request", "Invalid job specification")
        fields = {k: v for k, v in raw.items() if k in SPEC_FIELDS}
        if isinstance(fields.get("options"), dict) and FIXED_PRIORITY in fields["options"]:
            # only the controller writes it, for an operator's --priority (m_submit)
            fields["options"] = {k: v for k, v in fields["options"].items() if k != FIXED_PRIORITY}
        if not ident.privileged or "uid" not in fields:
            fields["uid"] = ident.uid
            fields["user"] = ident.user
            if not ident.privileged or "gid" not in fields:
                fields["gid"] = passwd(ident.uid)[1]
        fields.setdefault("name", "sbatch")
        fields.setdefault("script", None)
        fields.setdefault("argv", ())
        fields.setdefault("env", {})
        fields.setdefault("cwd", "/")
        if fields["uid"] < 0 or fields.get("gid", 0) < 0:
            raise INVALID_USER
        try:
            spec = JobSpec(**fields)
        except TypeError as exc:
            raise RpcError("bad_request", f"Invalid job specification: {exc}") from None
        if spec.array:
            if spec.script is None:
                raise INVALID_ARRAY
            try:
                arrays.parse_array(spec.array, self.config.max_array_size)
            except arrays.ArrayError:
                raise INVALID_ARRAY from None
        return spec

    async def m_submit(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        spec = self._spec_from(ident, params.get("spec"))
        spec = with_priority(spec, ident.privileged)
        if params.get("test_only"):
            return self._will_run(spec)
        job_id = await self.commit(JobSubmitted(str(params.get("request_id", "")), spec, time.time()))
        return {"job_id": job_id}

    def _will_run(self, spec: JobSpec) -> dict[str, Any]:
        """``sbatch --test-only``: where and when the job would start, on a copy of the state
        (nothing is proposed). Slurm: ``Job N to start at T using C processors on nodes L``."""
        import copy

        from spurcore.hostlist import compress
        from spurcore.reduce import apply

        assert self.replica is not None
        now = time.time()
        with self.replica.state_lock:
            state = copy.deepcopy(self.replica.state)
        job_id = apply(state, JobSubmitted("", spec, now))
        if isinstance(job_id, Rejected):
            raise RpcError(job_id.code, job_id.message)
        # Run the queue forward on the copy: running jobs end at their time limits.
        t = now
        for _ in range(10000):
            for start in schedule(state, t):
                apply(state, start)
                started = state.jobs.get(start.job_id)
                if start.job_id == job_id and started is not None:
                    nodes = started.nodes
                    return {"job_id": job_id, "start_time": t, "nodes": compress(nodes),
                            "partition": started.partition or spec.partition,
                            "cpus": started.cpus_per_node * len(nodes)}
            ends = sorted(j.start_time + j.suspended_secs + j.spec.time_limit for j in state.jobs.values()
                          if j.state is JobState.RUNNING and j.spec.time_limit is not None
                          and j.start_time + j.suspended_secs + j.spec.time_limit > t)
            if not ends:
                break
            t = ends[0]
            for j in list(state.jobs.values()):
                if j.state is JobState.RUNNING and j.spec.time_limit is not None \
                        and j.start_time + j.suspended_secs + j.spec.time_limit <= t:
                    apply(state, JobNodeComplete(j.job_id, j.batch_host, 0, 0, False, t))
        raise RpcError("not_startable", "Requested node configuration is not available")

    async def m_signal_many(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """Many ``signal`` requests in one call (``scancel -u`` of a whole queue): they are
        proposed together, so they share replicated entries instead of one commit each.
        Each result is ``{"action_id": N}`` or ``{"error": {"code", "message"}}``."""
        async def one(request: dict[str, Any]) -> dict[str, Any]:
            try:
                return await self.m_signal(conn, request)
            except RpcError as exc:
                return {"error": exc.to_wire()}

        return {"results": await asyncio.gather(*(one(r) for r in params["requests"]))}

    async def _resolve_ref(self, ident: Identity, params: dict[str, Any], *, split: bool = True) -> list[int]:
        """The job ids a reference names, each checked for ownership. ``123`` is every
        record of array 123; ``123_4`` a task, split off its array's pending record first
        when ``split`` (Slurm splits a task that is acted on alone)."""
        head, tasks = parse_ref(params)
        assert self.replica is not None
        with self.replica.state_lock:
            state = self.replica.state
            members = state.array_members.get(head)
            if tasks is None:
                ids = sorted(members) if members and head in members else [head]
            elif not members:
                job = state.jobs.get(head)
                # Slurm accepts 123_N for a plain job only as nothing: invalid
                ids = [head] if job is not None and job.array_task_id in tasks else []
                if not ids:
                    raise INVALID_JOB
            else:
                by_task = {state.jobs[j].array_task_id: j for j in members if state.jobs[j].array_task_id >= 0}
                ids = [by_task[t] for t in tasks if t in by_task]
                missing = tuple(t for t in tasks if t not in by_task)
        if tasks is not None and members and missing:
            if not split:
                raise INVALID_JOB
            self._job_owner_check(ident, head)
            result = await self.commit(ArrayTasksSplit(head, missing, time.time()))
            ids = sorted(set(ids) | set(result.values()))
            if len(result) < len(missing):
                raise INVALID_JOB
        for job_id in ids:
            self._job_owner_check(ident, job_id)
        return ids

    async def _each(self, ids: list[int], make: Any, *, quiet: set[str] = frozenset()) -> list[Any]:
        """Commit ``make(job_id)`` for every id. One id: its error propagates. Several (a
        whole array): errors in ``quiet`` are skipped (Slurm ignores finished tasks when an
        array is cancelled), any other is raised once every op has been tried."""
        if len(ids) == 1:
            return [await self.commit(make(ids[0]))]
        results, first_error = [], None
        for fut in [self.propose(make(j)) for j in ids]:
            result = await asyncio.wait_for(fut, 10.0)
            if isinstance(result, Rejected):
                if result.code not in quiet and first_error is None:
                    first_error = RpcError(result.code, result.message)
                continue
            results.append(result)
        if first_error is not None and not results:
            raise first_error
        return results

    async def m_signal(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        # kind, target, step_id and signal were checked by messages.Signal
        ident = self._writer(conn)
        kind = params["kind"]
        ids = await self._resolve_ref(ident, params)
        if kind in (ActionKind.STOP, ActionKind.CONT) and not ident.privileged:
            raise ACCESS_DENIED
        target, step_id, signal = params["target"], params["step_id"], params["signal"]
        request_id = str(params.get("request_id", ""))
        now = time.time()

        def make(job_id: int) -> Op:
            rid = request_id if len(ids) == 1 or not request_id else f"{request_id}:{job_id}"
            return ActionRequested(rid, job_id, step_id, kind, signal, target, ident.uid, now)

        results = await self._each(ids, make, quiet={"already_done", "job_pending"})
        return {"action_id": results[-1] if results else 0}

    async def m_hold(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        ids = await self._resolve_ref(ident, params)
        admin = ident.privileged and not params.get("user_hold", False)
        now = time.time()
        await self._each(ids, lambda j: JobHeld(j, ident.uid, admin, now), quiet={"already_done"})
        return {}

    async def m_release(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        ids = await self._resolve_ref(ident, params)
        assert self.replica is not None
        with self.replica.state_lock:
            admin_held = any(
                (job := self.replica.state.jobs.get(j)) is not None and job.hold == 2 for j in ids
            )
        if admin_held and not ident.privileged:
            raise ACCESS_DENIED
        now = time.time()
        await self._each(ids, lambda j: JobReleased(j, ident.uid, now), quiet={"already_done"})
        return {}

    async def m_requeue(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        ids = await self._resolve_ref(ident, params)
        hold, now = bool(params.get("hold", False)), time.time()
        begin = now + self.config.requeue_delay
        await self._each(ids, lambda j: JobRequeued(j, ident.uid, hold, now, begin), quiet={"not_running"})
        return {}

    async def m_update_job(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """``scontrol update job``: ``changes`` in Slurm's field names, values parsed by the
        tool; the reducer applies all of them or none, for each record referenced."""
        ident = self._writer(conn)
        changes = params.get("changes")
        if not isinstance(changes, dict) or not changes or not all(isinstance(k, str) for k in changes):
            raise RpcError("bad_request", "changes must be a non-empty map of field names")
        from spurcore.reduce import UPDATABLE

        unknown = sorted(set(changes) - set(UPDATABLE))
        if unknown:
            raise RpcError("bad_request", f"Update of {unknown[0]} is not supported")
        ids = await self._resolve_ref(ident, params)
        admin, now = ident.privileged, time.time()
        await self._each(ids, lambda j: JobUpdated(j, ident.uid, admin, dict(changes), now))
        return {}

    async def m_step_create(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """A new step: the leader lays it out (``spurcore.steps.plan``) and commits a
        ``StepCreated`` carrying the layout. A step that does not fit yet only because
        other steps hold the CPUs waits here up to ``wait`` seconds (re-planned as steps
        end), then the caller gets ``nodes_busy`` and retries, as Slurm's srun does."""
        from spurcore import steps
        from spurcore.hostlist import compress

        ident = self._writer(conn)
        job_id = int(params.get("job_id", 0))
        self._job_owner_check(ident, job_id)
        argv = tuple(str(a) for a in params.get("argv", ()))
        req = self._step_request(params)
        deadline = time.monotonic() + max(0.0, min(float(params.get("wait") or 0), 600.0))
        request_id = str(params.get("request_id", ""))
        assert self.replica is not None
        while True:
            with self.replica.state_lock:
                state = self.replica.state
                job = state.jobs.get(job_id)
                known = state.requests.get(request_id) if request_id else None
                if job is None:
                    raise INVALID_JOB
                layout = None if known is not None else steps.plan(job.nodes, job.cpus_per_node, job.step_cpus, req)
            if isinstance(layout, steps.StepRefusal):
                if job.state is JobState.RUNNING and not job.completing:
                    if not layout.busy or time.monotonic() >= deadline:
                        raise RpcError(layout.code, layout.message)
                    await asyncio.sleep(0.05)
                    continue
                layout = None  # the reducer refuses it in the job's words
            op = StepCreated(
                request_id, job_id, str(params.get("name", argv[0] if argv else "")), argv, req.ntasks, "",
                ident.uid, time.time(),
                *(() if layout is None else (
                    layout.nodes, layout.task_counts, tuple(t for ts in layout.tasks for t in ts), layout.cpus,
                    layout.overlap, req.cpus_per_task, req.distribution)),
            )
            try:
                step_id = await self.commit(op)
            except RpcError as exc:
                if exc.code == "nodes_busy" and time.monotonic() < deadline:
                    continue  # another step got there first
                raise
            break
        with self.replica.state_lock:
            state = self.replica.state
            job = state.jobs[job_id]
            step = job.steps[step_id]
            nodes = [{"name": n, "address": state.nodes[n].address if n in state.nodes else "", "tasks": list(t),
                      "cpus": (step.cpus[i] if step.cpus else 0)}
                     for i, (n, t) in enumerate(zip(step.nodes, step.task_ids, strict=True))]
            spec = job.spec
            job_part = {"nodes": compress(job.nodes), "node_count": len(job.nodes), "name": spec.name,
                        "cpus_per_node_text": steps.compress_counts([job.cpus_per_node] * len(job.nodes)),
                        "cluster": self.config.name, "partition": job.partition or spec.partition,
                        "account": spec.account, "qos": spec.qos, "user": spec.user, "uid": spec.uid,
                        "gid": spec.gid}
        return {"step_id": step_id, "job_id": job_id, "nodes": nodes, "job": job_part,
                "node": nodes[0]["name"], "agent": nodes[0]["address"]}

    @staticmethod
    def _step_request(params: dict[str, Any]) -> Any:
        """The layout request of a validated ``messages.StepCreate`` (-1: unset)."""
        from spurcore import steps

        return steps.StepRequest(
            ntasks=max(1, params["ntasks"]), min_nodes=max(0, params["min_nodes"]),
            max_nodes=max(0, params["max_nodes"]), cpus_per_task=max(1, params["cpus_per_task"]),
            ntasks_per_node=max(0, params["ntasks_per_node"]),
            distribution=steps.node_distribution(params["distribution"] or "block"),
            plane_size=max(0, params["plane_size"]), nodelist=params["nodelist"], exclude=params["exclude"],
            exact=params["exact"], overlap=params["overlap"], relative=params["relative"],
            overcommit=params["overcommit"],
        )

    async def m_job_complete(self, conn: rpc.RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        ident = self._writer(conn)
        job_id = int(params.get("job_id", 0))
        job = self._job_owner_check(ident, job_id)
        op = JobNodeComplete(
            job_id, job.batch_host, int(params.get("exit_code", 0)), int(params.get("signal", 0)), False, time.time()
        )
        await self.commit(op)
        return {}
