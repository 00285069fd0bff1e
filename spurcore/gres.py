"""Generic resources (GRES): what a job asks for per node, and which devices it gets.

A node's GRES are configured as ``[[name, type, count, files], ...]`` (``Gres=gpu:a100:2,
gpu:v100:1``); the devices of one name are numbered from 0 in that order, so ``gpu`` 0-1
are the a100s and 2 the v100. A job asks with ``--gres`` (per node), ``--gpus-per-node``,
``--gpus`` (the whole job) or ``--gpus-per-task``; all of them become one per-node request
``((name, type, count), ...)`` where type "" takes any type.

Invariants:
- Pure functions; parsing is memoized (specs repeat: arrays, scripts submitted in loops).
- Devices are taken lowest index first, type by type in node order, by both the scheduler
  (counting) and the reducer (indexes), so they always agree on what fits.
- Per-node counts are uniform across a job's nodes: ``--gpus=N`` on ``-N k`` nodes asks
  ceil(N/k) per node (Slurm may spread them unevenly; see the admin guide).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from spurcore.timefmt import parse_mem

INVALID_GRES = "Invalid generic resource (gres) specification"
_NAME = re.compile(r"[A-Za-z][\w.-]*$")

Request = tuple[tuple[str, str, int], ...]  # per node: (name, type or "", count)


class GresError(ValueError):
    pass


def _count(text: str) -> int:
    t = text.strip()
    if not t.isdigit():
        raise GresError(INVALID_GRES)
    return int(t)


@functools.lru_cache(maxsize=4096)
def parse_request(text: str) -> Request:
    """``gpu:2,gpu:a100:1,nic`` -> ((gpu, "", 2), (gpu, a100, 1), (nic, "", 1)); a
    ``gres/`` prefix is allowed (Slurm's TRES form). Raises GresError."""
    out: list[tuple[str, str, int]] = []
    for item in [p.strip() for p in text.split(",") if p.strip()]:
        if item.startswith("gres/"):
            item = item[5:]
        parts = item.split(":")
        if len(parts) == 1:
            name, gtype, count = parts[0], "", 1
        elif len(parts) == 2:
            if parts[1].isdigit():
                name, gtype, count = parts[0], "", _count(parts[1])
            else:
                name, gtype, count = parts[0], parts[1], 1
        elif len(parts) == 3:
            name, gtype, count = parts[0], parts[1], _count(parts[2])
        else:
            raise GresError(INVALID_GRES)
        if not _NAME.match(name) or (gtype and not re.match(r"[\w.-]+$", gtype)) or count < 1:
            raise GresError(INVALID_GRES)
        out.append((name, gtype, count))
    return tuple(out)


def _typed_count(text: str) -> tuple[str, int]:
    """``--gpus`` style ``[type:]count``."""
    t = text.strip()
    gtype, _, count = t.rpartition(":")
    if not count.isdigit() or int(count) < 1 or (gtype and not re.match(r"[\w.-]+$", gtype)):
        raise GresError(INVALID_GRES)
    return gtype, int(count)


#: JobSpec GRES fields and the sbatch/srun long options that carry them as text.
OPTION_FIELDS = {
    "gres": "gres", "gpus": "gpus", "gpus-per-node": "gpus_per_node", "gpus-per-task": "gpus_per_task",
    "cpus-per-gpu": "cpus_per_gpu", "mem-per-gpu": "mem_per_gpu",
}


def fields_from_options(options: dict[str, str]) -> dict[str, Any]:
    """The typed JobSpec fields for GRES options a client sent only as text in
    ``JobSpec.options``. Raises GresError for a value Slurm refuses."""
    out: dict[str, Any] = {}
    for option, field in OPTION_FIELDS.items():
        if option not in options:
            continue
        value = options[option]
        if field == "cpus_per_gpu":
            if not value.strip().isdigit() or int(value) < 1:
                raise GresError("Invalid --cpus-per-gpu")
            out[field] = int(value)
        elif field == "mem_per_gpu":
            try:
                out[field] = parse_mem(value)
            except ValueError:
                raise GresError("Invalid --mem-per-gpu specification") from None
        else:
            out[field] = value.strip()
    return out


@functools.lru_cache(maxsize=4096)
def _job_request(gres: str, gpus: str, gpus_per_node: str, gpus_per_task: str, nodes: int, ntasks: int,
                 ntasks_per_node: int) -> Request:
    req: dict[tuple[str, str], int] = {}
    for name, gtype, count in parse_request(gres):
        req[(name, gtype)] = req.get((name, gtype), 0) + count
    gpu: tuple[str, int] | None = None
    if gpus_per_node:
        gpu = _typed_count(gpus_per_node)
    elif gpus:
        gtype, total = _typed_count(gpus)
        gpu = (gtype, -(-total // max(1, nodes)))
    elif gpus_per_task:
        gtype, per_task = _typed_count(gpus_per_task)
        tasks = ntasks_per_node if ntasks_per_node > 0 else -(-ntasks // max(1, nodes))
        gpu = (gtype, per_task * tasks)
    if gpu is not None:
        if any(name == "gpu" for name, _ in req):
            raise GresError(INVALID_GRES)  # --gres=gpu with --gpus*: Slurm refuses the mix
        req[("gpu", gpu[0])] = gpu[1]
    return tuple((name, gtype, count) for (name, gtype), count in req.items())


def job_request(spec: Any, nodes: int) -> Request:
    """The per-node request of a JobSpec on ``nodes`` nodes. Raises GresError."""
    if not (spec.gres or spec.gpus or spec.gpus_per_node or spec.gpus_per_task):
        return ()
    return _job_request(spec.gres, spec.gpus, spec.gpus_per_node, spec.gpus_per_task, nodes, spec.ntasks,
                        spec.ntasks_per_node)


def gpus_in(request: Request) -> int:
    return sum(count for name, _, count in request if name == "gpu")


# --- a node's devices ----------------------------------------------------------------------


def device_types(gres: list[list[Any]]) -> dict[str, list[str]]:
    """name -> the type of each device index."""
    out: dict[str, list[str]] = {}
    for name, gtype, count, *_ in gres:
        out.setdefault(name, []).extend([gtype] * int(count))
    return out


def free_counts(gres: list[list[Any]], used: dict[str, list[int]]) -> dict[tuple[str, str], int]:
    """(name, type) -> free devices, in node order."""
    out: dict[tuple[str, str], int] = {}
    for name, types in device_types(gres).items():
        taken = set(used.get(name, ()))
        for i, gtype in enumerate(types):
            out.setdefault((name, gtype), 0)
            if i not in taken:
                out[(name, gtype)] += 1
    return out


def total_counts(gres: list[list[Any]]) -> dict[tuple[str, str], int]:
    return free_counts(gres, {})


def take(free: dict[tuple[str, str], int], request: Request) -> dict[tuple[str, str], int] | None:
    """``free`` less ``request`` (a new map), or None when it does not fit. Typed requests
    first, then untyped ones from each type in node order."""
    if not request:
        return free
    left = dict(free)
    for name, gtype, count in sorted(request, key=lambda r: r[1] == ""):
        if gtype:
            have = left.get((name, gtype), 0)
            if have < count:
                return None
            left[(name, gtype)] = have - count
            continue
        need = count
        for key in left:
            if key[0] != name or need == 0:
                continue
            used = min(left[key], need)
            left[key] -= used
            need -= used
        if need:
            return None
    return left


def allocate(gres: list[list[Any]], used: dict[str, list[int]], request: Request) -> dict[str, list[int]] | None:
    """Device indexes for ``request`` on a node (name -> sorted indexes), lowest first, or
    None when it does not fit. Matches ``take`` exactly."""
    if not request:
        return {}
    types = device_types(gres)
    taken = {name: set(used.get(name, ())) for name in types}
    out: dict[str, list[int]] = {}
    for name, gtype, count in sorted(request, key=lambda r: r[1] == ""):
        devices = types.get(name)
        if devices is None:
            return None
        got = []
        if gtype:
            candidates = [i for i, t in enumerate(devices) if t == gtype and i not in taken[name]]
        else:
            # type by type in node order, as ``take`` counts them
            order: list[str] = []
            for t in devices:
                if t not in order:
                    order.append(t)
            candidates = [i for t in order for i, d in enumerate(devices) if d == t and i not in taken[name]]
        got = candidates[:count]
        if len(got) < count:
            return None
        taken[name].update(got)
        out.setdefault(name, []).extend(got)
    return {name: sorted(ix) for name, ix in out.items()}


def device_files(gres: list[list[Any]], name: str, indexes: list[int]) -> list[str]:
    files: list[str] = []
    for gname, _gtype, count, paths, *_ in gres:
        if gname == name:
            files.extend(list(paths) + [""] * (int(count) - len(paths)))
    return [files[i] for i in indexes if i < len(files) and files[i]]


def fmt_node_gres(gres: list[list[Any]]) -> str:
    """``gpu:a100:2,gpu:v100:1`` as sinfo and scontrol show it ("(null)" for none)."""
    if not gres:
        return "(null)"
    return ",".join(f"{n}:{t}:{c}" if t else f"{n}:{c}" for n, t, c, *_ in gres)


def fmt_used(gres: list[list[Any]], used: dict[str, list[int]]) -> str:
    """Slurm's GresUsed: ``gpu:a100:1(IDX:0),gpu:v100:0(IDX:N/A)``."""
    if not gres:
        return "(null)"
    parts = []
    types = device_types(gres)
    for name, gtype, _count, *_ in gres:
        ix = [i for i in used.get(name, ()) if types[name][i] == gtype]
        idx = _fmt_idx(ix) if ix else "N/A"
        head = f"{name}:{gtype}" if gtype else name
        parts.append(f"{head}:{len(ix)}(IDX:{idx})")
    return ",".join(parts)


def _fmt_idx(ix: list[int]) -> str:
    ix = sorted(ix)
    out, start, prev = [], ix[0], ix[0]
    for i in ix[1:] + [None]:  # type: ignore[list-item]
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(out)
