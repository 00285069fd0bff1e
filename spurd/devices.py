"""Device isolation of a job's GRES (Slurm's ConstrainDevices), where the node allows it.

On a cgroup v1 ``devices`` hierarchy that the agent may write (as root), a job given some of
a node's GPUs runs in a devices cgroup that denies the node's other GPU device files; its
batch script is started through ``python -m spurd.devices CGROUP -- argv``, which joins that
cgroup and then execs the script, so everything the script starts inherits the restriction.
With isolation, the GPU variables number the job's devices from 0 (as Slurm does when it
constrains devices); without it (cgroup v2 needs an eBPF program, or no device files exist,
as with ``spur local --gpus``), jobs see every device and the variables name real indexes.

Invariants:
- ``confine`` changes nothing and returns None when isolation is not possible; a job is
  never failed for the lack of it.
- Device cgroups of ended jobs (not in ``live``, with an empty ``tasks``) are removed when
  the next one is made.
"""

from __future__ import annotations

import os
import stat
import sys

from spurd import cgroups

SUFFIX = "_devices"


def _devices_base() -> str | None:
    try:
        return cgroups._v1_base(cgroups.cgroup_mounts(), cgroups.self_cgroups(), "devices")
    except OSError:
        return None


def _rule(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return f"{kind} {os.major(st.st_rdev)}:{os.minor(st.st_rdev)} rwm"


def _sweep(parent: str, live: set[int]) -> None:
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        path = os.path.join(parent, name)
        if not name.startswith("job_") or not name.endswith(SUFFIX):
            continue
        try:
            if int(name[4:-len(SUFFIX)]) in live:
                continue
        except ValueError:
            continue
        try:
            with open(os.path.join(path, "tasks")) as f:
                if f.read().strip():
                    continue
            os.rmdir(path)
        except OSError:
            pass


def confine(cgroup_root: str, job_id: int, deny: list[str], uid: int, live: set[int] | None = None) -> str | None:
    """Make the devices cgroup of ``job_id`` denying the device files ``deny`` (the node's
    GPUs not given to the job); -> its directory, or None when isolation is not possible.
    ``live``: the jobs this agent still runs (their cgroups stay)."""
    rules = [r for r in map(_rule, deny) if r]
    if not rules or os.geteuid() != 0:
        return None
    base = _devices_base()
    if base is None:
        return None
    parent = os.path.join(base, *[p for p in cgroup_root.split("/") if p and p not in (".", "..")])
    path = os.path.join(parent, f"job_{int(job_id)}{SUFFIX}")
    try:
        os.makedirs(path, exist_ok=True)
        for rule in rules:
            with open(os.path.join(path, "devices.deny"), "w") as f:
                f.write(rule)
        os.chown(os.path.join(path, "tasks"), uid, -1)  # the job's own process joins it
    except OSError:
        return None
    _sweep(parent, {int(job_id), *(live or ())})
    return path


def remove_root(cgroup_root: str) -> None:
    """rmdir this agent's (empty) device cgroups, at its shutdown."""
    base = _devices_base()
    if base is None:
        return
    root = os.path.join(base, *[p for p in cgroup_root.split("/") if p and p not in (".", "..")])
    if root == base:
        return
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def wrap(path: str, argv: list[str], python: str = sys.executable) -> list[str]:
    """The command that runs ``argv`` inside the devices cgroup ``path``."""
    return [python, "-m", "spurd.devices", path, "--", *argv]


def main(args: list[str]) -> int:
    """``python -m spurd.devices CGROUP -- argv``: join, then exec (fail closed: a job given
    a device cgroup never runs outside it)."""
    if len(args) < 3 or args[1] != "--":
        sys.stderr.write("usage: python -m spurd.devices CGROUP -- command...\n")
        return 2
    path, argv = args[0], args[2:]
    try:
        with open(os.path.join(path, "tasks"), "w") as f:
            f.write(str(os.getpid()))
    except OSError as exc:
        sys.stderr.write(f"spurd: cannot confine the job's devices ({path}): {exc.strerror}\n")
        return 1
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"spurd: cannot run {argv[0]}: {exc.strerror}\n")
        return 127
    return 0  # pragma: no cover - exec does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
