"""Job steps in the pure core: which tasks run on which nodes, and whether a step fits.

Slurm 25.11's rules (src/stepmgr/stepmgr.c for the node pick and the CPUs a step holds,
src/common/slurm_step_layout.c for the task layout), as Spur keeps them:

- A step runs on nodes of its job. ``-w`` nodes must be used, ``-x`` nodes never,
  ``-r N`` skips the first N nodes of the job. Otherwise nodes are taken in the job's order
  until the step has ``-N`` nodes (or, without ``-N``, as few as its tasks need).
- CPUs: a step holds, on each of its nodes, all the job's CPUs there that no other running
  step holds (Slurm's default), or only ``tasks * cpus_per_task`` with ``--exact`` (which
  an explicit ``-c`` implies). An ``--overlap`` step holds nothing and ignores what others
  hold. A step that does not fit only because other steps hold CPUs is *busy* (Slurm's
  ESLURM_NODES_BUSY: srun retries); one that could never fit in its job is refused.
- Task layout: ``block`` (the default), ``cyclic``, ``plane=N`` and ``arbitrary`` (one
  ``-w`` entry per task, in task order), with each node's capacity ``free CPUs //
  cpus_per_task`` capped by ``--ntasks-per-node``, exactly as slurm_step_layout.c lays
  tasks out over its ``cpus`` array.

Everything here is pure: plain values in, a ``StepLayout`` or a ``StepRefusal`` out. The
leader calls ``plan`` to propose a ``StepCreated`` carrying the layout; the reducer calls
``check`` to re-validate that layout against the state when the op is applied.
"""

from __future__ import annotations

from spurcore.records import Record

TYPE_CHECKING = False  # annotations only: srun loads this module for its helpers (start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Slurm's node-level distributions (the part of ``-m`` before the first ``:``).
DISTRIBUTIONS = ("block", "cyclic", "plane", "arbitrary")

# The values below are immutable named tuples (spurcore.records), not attrs classes: srun and
# salloc import this module, and attrs costs them about 10 ms (typing, re, inspect, threading).


class StepRequest(Record):
    """What srun asks for (already through srun's option checks)."""

    __slots__ = ()

    def __new__(
        cls,
        ntasks: int = 1,
        min_nodes: int = 0,  # 0: not given
        max_nodes: int = 0,  # 0: same as min_nodes
        cpus_per_task: int = 1,
        ntasks_per_node: int = 0,  # 0: not given
        distribution: str = "block",
        plane_size: int = 0,
        nodelist: tuple[str, ...] = (),  # -w (arbitrary: one entry per task)
        exclude: tuple[str, ...] = (),
        exact: bool = False,
        overlap: bool = False,
        relative: int = -1,  # -r: first node of the job to use; -1 = not given
        overcommit: bool = False,  # -O: more tasks than CPUs; a node with a free CPU takes any number
    ) -> StepRequest:
        return tuple.__new__(cls, (ntasks, min_nodes, max_nodes, cpus_per_task, ntasks_per_node, distribution,
                                   plane_size, nodelist, exclude, exact, overlap, relative, overcommit))


class StepLayout(Record):
    """Where a step's tasks run: ``nodes`` in the job's order (sorted for arbitrary),
    ``tasks[i]`` the global task ids on ``nodes[i]``, ``cpus[i]`` the CPUs the step is
    given there (held unless ``overlap``)."""

    __slots__ = ()

    def __new__(cls, nodes: tuple[str, ...], tasks: tuple[tuple[int, ...], ...], cpus: tuple[int, ...],
                overlap: bool = False) -> StepLayout:
        return tuple.__new__(cls, (nodes, tasks, cpus, overlap))

    @property
    def ntasks(self) -> int:
        return sum(len(t) for t in self.tasks)

    @property
    def task_counts(self) -> tuple[int, ...]:
        return tuple(len(t) for t in self.tasks)

    def node_of_task(self, task: int) -> int:
        for i, ids in enumerate(self.tasks):
            if task in ids:
                return i
        raise KeyError(task)


class StepRefusal(Record):
    """``busy``: retry when other steps end (Slurm: "Requested nodes are busy")."""

    __slots__ = ()

    def __new__(cls, code: str, message: str, busy: bool = False) -> StepRefusal:
        return tuple.__new__(cls, (code, message, busy))


NODES_BUSY = StepRefusal("nodes_busy", "Requested nodes are busy", busy=True)
NODE_CONFIG = StepRefusal("node_config", "Requested node configuration is not available")
TOO_MANY_CPUS = StepRefusal("too_many_cpus", "More processors requested than permitted")
BAD_TASK_COUNT = StepRefusal("bad_task_count", "Task count specification invalid")
BAD_DIST = StepRefusal("bad_dist", "Invalid distribution specification")


def node_distribution(text: str | None) -> str:
    """The node-level part of a ``-m`` value: ``cyclic:block,Pack`` -> ``cyclic``; ``*``
    or nothing -> ``block``; ``plane=4`` -> ``plane``."""
    head = (text or "").split(",")[0].split(":")[0].strip().lower()
    if head in ("", "*"):
        return "block"
    return "plane" if head.startswith("plane") else head


def plan(job_nodes: Sequence[str], cpus_per_node: int, used: Mapping[str, int],
         req: StepRequest) -> StepLayout | StepRefusal:
    """The layout of a new step of a job on ``job_nodes`` (``cpus_per_node`` each, of which
    ``used[node]`` are held by running steps), or why it cannot be created now."""
    refusal = _check_request(job_nodes, req)
    if refusal is not None:
        return refusal
    picked = _pick(job_nodes, cpus_per_node, used, req)
    if isinstance(picked, StepRefusal):
        if picked.busy:
            # Busy only if it would fit once every other step has ended.
            idle = _pick(job_nodes, cpus_per_node, {}, req)
            if isinstance(idle, StepRefusal):
                return NODE_CONFIG if idle.busy else idle
            return NODES_BUSY
        return picked
    nodes, free = picked
    if req.distribution == "arbitrary":
        tasks = _layout_arbitrary(nodes, req.nodelist)
    else:
        tasks = layout_tasks(req.distribution, [_cap(f, req) for f in free], req.ntasks, req.plane_size)
    cpus = tuple(_held(len(t), f, req) for t, f in zip(tasks, free, strict=True))
    return StepLayout(tuple(nodes), tuple(tuple(t) for t in tasks), cpus, req.overlap)


def check(job_nodes: Sequence[str], cpus_per_node: int, used: Mapping[str, int],
          layout: StepLayout) -> StepRefusal | None:
    """Re-validation at apply time: the layout's nodes belong to the job, every task id
    appears once, and (unless it overlaps) it fits next to the steps that hold CPUs now."""
    if not layout.nodes or len(layout.nodes) != len(layout.tasks) or len(layout.nodes) != len(layout.cpus):
        return BAD_TASK_COUNT
    if len(set(layout.nodes)) != len(layout.nodes) or any(n not in job_nodes for n in layout.nodes):
        return NODE_CONFIG
    ids = sorted(t for ts in layout.tasks for t in ts)
    if ids != list(range(len(ids))) or any(not ts for ts in layout.tasks):
        return BAD_TASK_COUNT
    if layout.overlap:
        return None
    for node, cpus in zip(layout.nodes, layout.cpus, strict=True):
        if cpus > cpus_per_node:
            return TOO_MANY_CPUS
        if cpus > cpus_per_node - used.get(node, 0):
            return NODES_BUSY
    return None


# --- node pick ------------------------------------------------------------------------------


def _check_request(job_nodes: Sequence[str], req: StepRequest) -> StepRefusal | None:
    if req.ntasks < 1 or req.cpus_per_task < 1 or req.min_nodes < 0 or req.ntasks_per_node < 0:
        return BAD_TASK_COUNT
    if req.distribution not in DISTRIBUTIONS:
        return BAD_DIST
    if req.distribution == "plane" and req.plane_size < 1:
        return BAD_DIST
    if req.distribution == "arbitrary" and len(req.nodelist) != req.ntasks:
        return BAD_TASK_COUNT
    if any(n not in job_nodes for n in req.nodelist):
        return NODE_CONFIG
    if req.min_nodes > len(job_nodes):
        return NODE_CONFIG
    if req.min_nodes > req.ntasks:
        return BAD_TASK_COUNT
    return None


def _held(ntasks: int, free: int, req: StepRequest) -> int:
    """CPUs the step holds on a node where it runs ``ntasks`` tasks: what they ask with
    ``--exact``/``--overlap``, else every free CPU; never more than are free with -O."""
    if not (req.exact or req.overlap):
        return free
    want = ntasks * req.cpus_per_task
    return min(want, max(free, 1)) if req.overcommit else want


def _usable(free: int, req: StepRequest) -> bool:
    """A node can take at least one of the step's tasks (with -O: it has a free CPU)."""
    return _cap(free, req) >= 1 or (req.overcommit and free >= 1)


def _cap(free: int, req: StepRequest) -> int:
    """Tasks that fit on a node with ``free`` CPUs (Slurm's ``cpus[i]`` of the layout)."""
    cap = max(free // req.cpus_per_task, 0)
    if req.ntasks_per_node:
        cap = min(cap, req.ntasks_per_node)
    return cap


def _pick(job_nodes: Sequence[str], cpus_per_node: int, used: Mapping[str, int],
          req: StepRequest) -> tuple[list[str], list[int]] | StepRefusal:
    """(nodes, free CPUs on each) for the step, in the job's order; a refusal with
    ``busy`` set when the job's nodes are too full *now*."""
    def free_on(node: str) -> int:
        return cpus_per_node if req.overlap else cpus_per_node - used.get(node, 0)

    if req.distribution == "arbitrary":
        nodes = sorted(set(req.nodelist))  # hostlist_uniq sorts
        free = [free_on(n) for n in nodes]
        for n, f in zip(nodes, free, strict=True):
            if req.nodelist.count(n) * req.cpus_per_task > f:
                return TOO_MANY_CPUS if req.nodelist.count(n) * req.cpus_per_task > cpus_per_node else NODES_BUSY
        return nodes, free
    candidates = [n for n in job_nodes if n not in req.exclude]
    if req.relative >= 0:
        if req.relative >= len(job_nodes):
            return NODE_CONFIG
        candidates = [n for n in job_nodes[req.relative:] if n not in req.exclude]
    required = [n for n in dict.fromkeys(req.nodelist)]
    want_min = max(req.min_nodes, len(required), 1)
    want_max = max(req.max_nodes or req.min_nodes or len(candidates), want_min)
    if want_min > len(candidates) or any(n not in candidates for n in required):
        return NODE_CONFIG
    if req.ntasks * req.cpus_per_task > cpus_per_node * len(candidates) and not (req.overlap or req.overcommit):
        return TOO_MANY_CPUS
    order = required + [n for n in candidates if n not in required]
    nodes: list[str] = []
    free: list[int] = []
    capacity = 0
    for node in order:
        if len(nodes) >= want_max:
            break
        if len(nodes) >= want_min and capacity >= req.ntasks:
            break
        f = free_on(node)
        if not _usable(f, req):
            if node in required:
                return NODES_BUSY
            continue  # busy node: the next one may do
        nodes.append(node)
        free.append(f)
        capacity += req.ntasks if req.overcommit else _cap(f, req)
    if len(nodes) < want_min or capacity < req.ntasks:
        return NODES_BUSY
    if len(nodes) > req.ntasks:
        return BAD_TASK_COUNT
    # Back in the job's order (required nodes were tried first).
    index = {n: i for i, n in enumerate(job_nodes)}
    pairs = sorted(zip(nodes, free, strict=True), key=lambda p: index[p[0]])
    return [p[0] for p in pairs], [p[1] for p in pairs]


# --- task layout (slurm_step_layout.c) ------------------------------------------------------


def layout_tasks(distribution: str, caps: Sequence[int], ntasks: int, plane_size: int = 0) -> list[list[int]]:
    """Global task ids per node for ``ntasks`` tasks over nodes that take ``caps[i]`` tasks
    each before being over-subscribed (a node's cap of 0 counts as 1, as in Slurm)."""
    caps = [max(c, 1) for c in caps]
    if distribution == "cyclic":
        return _cyclic(caps, ntasks)
    if distribution == "plane":
        return _plane(caps, ntasks, max(plane_size, 1))
    return _block(caps, ntasks)


def _block(caps: list[int], ntasks: int) -> list[list[int]]:
    """Count per node as a cyclic pass would (heterogeneous nodes), then assign blocks."""
    counts = [0] * len(caps)
    placed, j, over = 0, 0, False
    while placed < ntasks:
        room = False
        for i, cap in enumerate(caps):
            if placed >= ntasks:
                break
            if j < cap or over:
                counts[i] += 1
                placed += 1
                if j + 1 < cap:
                    room = True
        if not room:
            over = True
        j += 1
    out, task = [], 0
    for c in counts:
        out.append(list(range(task, task + c)))
        task += c
    return out


def _cyclic(caps: list[int], ntasks: int) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in caps]
    total = sum(caps)
    over = total < ntasks
    extra = -(-(ntasks - total) // len(caps)) if over else 0
    task, j = 0, 0
    while task < ntasks:
        room = False
        for i, cap in enumerate(caps):
            if task >= ntasks:
                break
            if j < cap or (over and j < cap + extra):
                out[i].append(task)
                task += 1
                if j + 1 < cap:
                    room = True
        if not room:
            over = True
            extra = ntasks  # no bound left: keep cycling
        j += 1
    return out


def _plane(caps: list[int], ntasks: int, size: int) -> list[list[int]]:
    """How many per node as slurm's plane pass counts them, then ids in planes of ``size``."""
    counts = [0] * len(caps)
    placed, j, over = 0, 0, False
    while placed < ntasks:
        room = False
        if j == 0:
            for i in range(len(caps)):
                if placed >= ntasks:
                    break
                counts[i] += 1
                placed += 1
        for i, cap in enumerate(caps):
            if placed >= ntasks:
                break
            for _ in range(1 if j == 0 else 0, size):
                if placed >= ntasks:
                    break
                if cap - counts[i] > 0 or over:
                    counts[i] += 1
                    placed += 1
                    if cap - (counts[i] + 1) >= 0:
                        room = True
        if not room:
            over = True
        j += 1
    out: list[list[int]] = [[] for _ in caps]
    task = 0
    while task < ntasks:
        for i in range(len(caps)):
            k = 0
            while k < size and len(out[i]) < counts[i] and task < ntasks:
                out[i].append(task)
                task += 1
                k += 1
    return out


def _layout_arbitrary(nodes: Sequence[str], hosts: Sequence[str]) -> list[list[int]]:
    """Task ``t`` runs on ``hosts[t]`` (slurm_step_layout.c ``_task_layout_hostfile``)."""
    return [[t for t, h in enumerate(hosts) if h == node] for node in nodes]


# --- environment helpers ----------------------------------------------------------------------


def compress_counts(values: Sequence[int]) -> str:
    """Slurm's ``uint16_array_to_str``: ``[2, 2, 1]`` -> ``2(x2),1``."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        n = j - i
        parts.append(f"{values[i]}(x{n})" if n > 1 else str(values[i]))
        i = j
    return ",".join(parts)


def ranges(ids: Sequence[int]) -> str:
    """Task ids as Slurm prints them in messages: ``0-3``, ``0,2,5-6``."""
    out: list[str] = []
    values = sorted(set(ids))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        out.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(out)


def expand_io_pattern(pattern: str, *, job_id: int, step_id: int | str, task: int = 0, nodeid: int = 0,
                      node: str = "", user: str = "", name: str = "", array_job_id: int = 0,
                      array_task_id: int = -1) -> str:
    """srun's ``-o/-e/-i`` filename patterns (srun(1) "filename pattern"): ``%t`` task,
    ``%n`` node index, ``%N`` node name, ``%j`` job, ``%s`` step, ``%J`` job.step, ``%u``,
    ``%x``, ``%A``/``%a`` and ``%%``; a number after ``%`` zero-pads; a pattern containing
    ``\\\\`` is taken literally (the backslashes removed)."""
    if "\\" in pattern:
        return pattern.replace("\\", "")
    values = {
        "t": str(task), "n": str(nodeid), "N": node, "j": str(job_id), "s": str(step_id),
        "J": f"{job_id}.{step_id}", "u": user, "x": name, "A": str(array_job_id or job_id),
        "a": str(array_task_id if array_task_id >= 0 else 4294967294),
    }
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "%" and i + 1 < n:
            if pattern[i + 1] == "%":
                out.append("%")
                i += 2
                continue
            k = i + 1
            while k < n and pattern[k].isdigit():
                k += 1
            if k < n and pattern[k] in values:
                value = values[pattern[k]]
                width = int(pattern[i + 1:k]) if k > i + 1 else 0
                if width and value.isdigit():
                    value = value.zfill(min(width, 10))
                out.append(value)
                i = k + 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def per_task_pattern(pattern: str) -> bool:
    """Whether srun leaves a pattern to the nodes (``%t``, ``%n`` or ``%N`` in it, with an
    optional width), as srun(1) says such files are written on the node running the task."""
    if "\\" in pattern:
        return False
    i = pattern.find("%")
    while 0 <= i < len(pattern) - 1:
        k = i + 1
        while k < len(pattern) and pattern[k].isdigit():
            k += 1
        if k < len(pattern) and pattern[k] in "tnN":
            return True
        i = pattern.find("%", k + (1 if k < len(pattern) and pattern[k] == "%" else 0))
    return False
