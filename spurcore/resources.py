"""What a job asks for on each node: node count, CPUs, memory, GRES, features, placement.

Invariants:
- Pure functions of the JobSpec. ``job_need`` is memoized by the spec object (specs are
  frozen and shared by every task of an array), because the scheduler asks for the same
  jobs on every pass.
- Per-node amounts are uniform across a job's nodes (Slurm's block distribution rounded up):
  CPUs for the tasks, raised by ``--cpus-per-gpu``; memory by ``--mem``, ``--mem-per-cpu`` or
  ``--mem-per-gpu``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from spurcore import gres
from spurcore.hostlist import expand
from spurcore.ops import JobSpec


def names(text: str) -> list[str]:
    if not text:
        return []
    try:
        return expand(text)
    except ValueError:
        return []


def node_count(spec: JobSpec) -> int:
    """Nodes to allocate: ``-N``, raised to the ``-w`` list's length and to what
    ``--ntasks-per-node`` needs for ``-n`` tasks (Slurm's controller does the same)."""
    n = spec.nodes
    if spec.nodelist:
        n = max(n, len(names(spec.nodelist)))
    if spec.ntasks_per_node > 0:
        n = max(n, -(-spec.ntasks // spec.ntasks_per_node))
    return n


def task_cpus_per_node(spec: JobSpec, nodes: int) -> int:
    """CPUs a node gives the job: its share of ``-n`` x ``-c`` (at least ``--ntasks-per-node``
    x ``-c``); with ``-O/--overcommit`` (not ``--exclusive``) ``-c`` alone, as if one task
    ran per node; never fewer than ``--mincpus``."""
    options = spec.options
    if "overcommit" in options and not spec.exclusive:
        per_node = spec.cpus_per_task
    else:
        per_node = -(-(spec.ntasks * spec.cpus_per_task) // nodes)
        if spec.ntasks_per_node > 0:
            per_node = max(per_node, spec.ntasks_per_node * spec.cpus_per_task)
    mincpus = options.get("mincpus", "")
    if mincpus.isdigit():
        per_node = max(per_node, int(mincpus))
    return max(1, per_node)


def mem_per_node(spec: JobSpec, cpus: int, gpus: int = 0) -> int:
    """``--mem`` per node, or ``--mem-per-cpu`` times the CPUs allocated on a node, or
    ``--mem-per-gpu`` times its GPUs."""
    if spec.mem_per_gpu > 0 and gpus:
        return spec.mem_per_gpu * gpus
    if spec.mem_per_cpu > 0:
        return spec.mem_per_cpu * cpus
    return spec.mem_mb


class Need:
    """One job's request, per node."""

    __slots__ = ("nodes", "cpus", "mem", "gres", "gpus", "required", "excluded", "exclusive", "features",
                 "error")

    def __init__(self, spec: JobSpec) -> None:
        self.nodes = node_count(spec)
        self.required = names(spec.nodelist)
        self.excluded = frozenset(names(spec.exclude))
        self.exclusive = spec.exclusive
        self.error = ""
        try:
            self.gres = gres.job_request(spec, self.nodes)
        except gres.GresError as exc:
            self.gres, self.error = (), str(exc)
        self.gpus = gres.gpus_in(self.gres)
        cpus = task_cpus_per_node(spec, self.nodes)
        if spec.cpus_per_gpu > 0 and self.gpus:
            cpus = max(cpus, spec.cpus_per_gpu * self.gpus)
        self.cpus = cpus
        self.mem = mem_per_node(spec, cpus, self.gpus)
        self.features = parse_constraint(spec.constraint) if spec.constraint else None

    def mem_for(self, spec: JobSpec, cpus: int) -> int:
        """Memory per node when the node's CPU count is what was allocated (--exclusive)."""
        return mem_per_node(spec, cpus, self.gpus)


_NEEDS: dict[int, tuple[JobSpec, Need]] = {}
_BY_SHAPE: dict[tuple[Any, ...], Need] = {}


def job_need(spec: JobSpec) -> Need:
    """Memoized by the spec object, then by the fields that shape the request (a restored
    state has one spec object per job, but few distinct shapes)."""
    cached = _NEEDS.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    if len(_NEEDS) > 300_000:
        _NEEDS.clear()
    shape = (spec.nodes, spec.ntasks, spec.cpus_per_task, spec.ntasks_per_node, spec.mem_mb, spec.mem_per_cpu,
             spec.nodelist, spec.exclude, spec.exclusive, spec.constraint, spec.gres, spec.gpus,
             spec.gpus_per_node, spec.gpus_per_task, spec.cpus_per_gpu, spec.mem_per_gpu,
             spec.options.get("mincpus"), "overcommit" in spec.options)
    need = _BY_SHAPE.get(shape)
    if need is None:
        if len(_BY_SHAPE) > 100_000:
            _BY_SHAPE.clear()
        need = _BY_SHAPE[shape] = Need(spec)
    _NEEDS[id(spec)] = (spec, need)
    return need


# --- --constraint ---------------------------------------------------------------------------

_FEATURE = re.compile(r"[\w.-]+$")


@functools.lru_cache(maxsize=1024)
def parse_constraint(text: str) -> tuple[tuple[str, ...], ...] | None:
    """``a&b|c`` -> ((a, b), (c,)): a node matches when it has every feature of one
    alternative. ``&`` and ``,`` join with AND, ``|`` with OR; ``[...]`` and ``(...)``
    group OR alternatives. None for text Slurm would refuse (counts, invalid names)."""
    t = text.replace("[", "(").replace("]", ")")
    t = t.replace("(", "").replace(")", "")
    alternatives = []
    for alt in t.split("|"):
        feats = tuple(f.strip() for f in re.split(r"[&,]", alt))
        if not feats or not all(f and _FEATURE.match(f) for f in feats):
            return None
        alternatives.append(feats)
    return tuple(alternatives)


def features_valid(text: str) -> bool:
    return parse_constraint(text) is not None


def has_features(alternatives: Any, features: tuple[str, ...]) -> bool:
    if alternatives is None:
        return True
    return any(all(f in features for f in alt) for alt in alternatives)
