"""Job/step cgroups: find, freeze and kill every process of a step, and see OOM kills.

Invariants:
- A step's cgroup is ``<base>/<cgroup_root>/job_<id>/step_<step>`` in each hierarchy used,
  where ``<base>`` is the cgroup the calling process (the supervisor, started by the agent)
  is in. Jobs are therefore nested inside the agent's own cgroup: limits imposed on the
  agent (a container, a systemd unit) still bind its jobs and nothing outside the agent's
  subtree is touched.
- Processes live only in leaf (step) cgroups, so the cgroup v2 "no internal processes"
  rule holds; job directories only group steps.
- Tracking (pids, freeze, kill) uses one hierarchy: the v1 freezer, or a cgroup2 mount
  (``cgroup.freeze``/``cgroup.kill`` need no controller). The memory limit and OOM count
  use the v2 memory controller when enabled there, else the v1 memory hierarchy (hybrid
  hosts), else nothing.
- ``detect()`` returns None where nothing is writable; any OSError from ``create()`` means
  "run without cgroups" to the caller. Mode switch: ``detect(mode)`` or ``$SPUR_CGROUP``
  = ``auto`` (default) | ``none`` | ``v1`` | ``v2``. ``$SPUR_CGROUP_BASE=root`` (or
  ``detect(base="root")``) puts steps under each hierarchy's root instead, as Slurm does on
  v1 hosts where systemd would otherwise own the agent's memory cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass

CGROUP_ENV = "SPUR_CGROUP"
CGROUP_BASE_ENV = "SPUR_CGROUP_BASE"
MODES = ("auto", "none", "v1", "v2")
BASES = ("self", "root")


@dataclass(frozen=True)
class Mount:
    mountpoint: str
    root: str  # the hierarchy path mounted at mountpoint
    fstype: str  # "cgroup" (v1) or "cgroup2"
    options: frozenset[str]  # v1: controllers / name=... from the super options


@dataclass(frozen=True)
class Hierarchies:
    """Where a supervisor creates step cgroups; every path is an absolute directory."""

    track: str  # base dir of the tracking hierarchy
    track_version: int  # 1 (freezer) or 2
    memory: str | None  # base dir for the memory controller (may equal track)
    memory_version: int  # 1 or 2; meaningless when memory is None
    base: str = "self"  # "self": the base dirs are the detecting process's own cgroups


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        octal = field[i + 1 : i + 4]
        if field[i] == "\\" and len(octal) == 3 and octal.isdigit():
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    mounts: list[Mount] = []
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return mounts
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3 or rf[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(Mount(_unescape(lf[4]), _unescape(lf[3]), rf[0], frozenset(rf[2].split(","))))
    return mounts


def self_cgroups(path: str = "/proc/self/cgroup") -> dict[str, str]:
    """controller (or ``name=x``) -> cgroup path; the v2 hierarchy is under key ``""``."""
    out: dict[str, str] = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, cgpath = parts
        if not controllers:
            out[""] = cgpath
        for c in controllers.split(","):
            if c:
                out[c] = cgpath
    return out


def _base_dir(mount: Mount, cgpath: str) -> str:
    """The directory of cgroup ``cgpath`` under ``mount`` (paths are hierarchy-absolute)."""
    rel = cgpath
    root = mount.root.rstrip("/")
    if root and (rel == root or rel.startswith(root + "/")):
        rel = rel[len(root) :]
    return os.path.join(mount.mountpoint, rel.lstrip("/")).rstrip("/") or "/"


def _writable(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _v1_base(mounts: list[Mount], cgs: dict[str, str], controller: str) -> str | None:
    for m in mounts:
        if m.fstype == "cgroup" and controller in m.options:
            base = _base_dir(m, cgs.get(controller, "/"))
            return base if _writable(base) else None
    return None


def _v2_base(mounts: list[Mount], cgs: dict[str, str]) -> str | None:
    candidates = [m for m in mounts if m.fstype == "cgroup2"]
    # Prefer the unified-only layout (/sys/fs/cgroup itself) over a hybrid's side mount.
    candidates.sort(key=lambda m: (m.mountpoint != "/sys/fs/cgroup", m.mountpoint))
    for m in candidates:
        base = _base_dir(m, cgs.get("", "/"))
        if _writable(base) and os.path.exists(os.path.join(base, "cgroup.procs")):
            return base
    return None


def _v2_has_memory(base: str) -> bool:
    try:
        return "memory" in _read(os.path.join(base, "cgroup.controllers")).split()
    except OSError:
        return False


#: detect()'s answers, kept only where ``remember_detection()`` was called: in the supervisor
#: zygote, so that each supervisor it forks does not parse mountinfo again (~0.4 ms a job).
_remembered: dict[tuple[str, str], Hierarchies | None] | None = None


def remember_detection() -> None:
    """From now on (and in forked children) detect() answers each (mode, base) once."""
    global _remembered
    if _remembered is None:
        _remembered = {}


def detect(mode: str | None = None, base: str | None = None) -> Hierarchies | None:
    """Which writable hierarchies to use, or None to run without cgroups."""
    mode = (mode or os.environ.get(CGROUP_ENV) or "auto").strip().lower()
    if mode not in MODES:
        raise ValueError(f"cgroup mode must be one of {MODES}, not {mode!r}")
    base = (base or os.environ.get(CGROUP_BASE_ENV) or "self").strip().lower()
    if base not in BASES:
        raise ValueError(f"cgroup base must be one of {BASES}, not {base!r}")
    if _remembered is None:
        return _detect(mode, base)
    key = (mode, base)
    if key not in _remembered:
        _remembered[key] = _detect(mode, base)
    return _remembered[key]


def _detect(mode: str, base: str) -> Hierarchies | None:
    if mode == "none":
        return None
    mounts = cgroup_mounts()
    cgs = self_cgroups() if base == "self" else {}
    v1_freezer = _v1_base(mounts, cgs, "freezer")
    v1_memory = _v1_base(mounts, cgs, "memory")
    v2 = _v2_base(mounts, cgs)
    pure_v2 = not any(m.fstype == "cgroup" and "freezer" in m.options for m in mounts)

    def with_v2() -> Hierarchies | None:
        if v2 is None:
            return None
        if _v2_has_memory(v2):
            return Hierarchies(v2, 2, v2, 2, base)
        return Hierarchies(v2, 2, v1_memory, 1, base)

    def with_v1() -> Hierarchies | None:
        if v1_freezer is None:
            return None
        return Hierarchies(v1_freezer, 1, v1_memory, 1, base)

    if mode == "v1":
        return with_v1()
    if mode == "v2":
        return with_v2()
    if pure_v2:
        return with_v2()
    return with_v1() or with_v2()


def step_relpath(cgroup_root: str, job_id: int, step: object) -> str:
    parts = [p for p in str(cgroup_root).split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"bad cgroup_root {cgroup_root!r}")
    return "/".join([*parts, f"job_{int(job_id)}", f"step_{step}"])


class JobCgroup:
    """One step's cgroup(s). Paths are fixed at construction; ``create()`` makes them."""

    def __init__(self, hier: Hierarchies, relpath: str, mem_limit_mb: int = 0) -> None:
        self.hier = hier
        self.relpath = relpath.strip("/")
        self.mem_limit_mb = int(mem_limit_mb or 0)
        self.track_dir = os.path.join(hier.track, self.relpath)
        self.version = hier.track_version
        self.memory_dir: str | None = (
            os.path.join(hier.memory, self.relpath) if hier.memory is not None else None
        )
        self._oom_base = 0

    # -- lifecycle

    def create(self) -> JobCgroup:
        """Make the directories and apply the memory limit. Raises OSError on failure."""
        self._mkdirs(self.hier.track, self.track_dir)
        if self.memory_dir is not None and self.memory_dir != self.track_dir:
            try:
                self._mkdirs(self.hier.memory or "", self.memory_dir)
            except OSError:
                self.memory_dir = None  # tracking without memory accounting
        if self.memory_dir is not None and self.hier.memory_version == 2:
            if not self._v2_enable_memory():
                self.memory_dir = None
        if self.memory_dir is not None and self.mem_limit_mb > 0:
            self._set_limit(self.mem_limit_mb << 20)
        self._oom_base = self._oom_count()
        return self

    def _mkdirs(self, base: str, leaf: str) -> None:
        # Another step's supervisor may rmdir a shared job directory between our mkdirs.
        for attempt in range(5):
            try:
                os.makedirs(leaf, exist_ok=True)
                return
            except FileNotFoundError:
                if attempt == 4:
                    raise
                time.sleep(0.01)

    def _v2_enable_memory(self) -> bool:
        # Controllers must be enabled in every ancestor's subtree_control below the base.
        base = self.hier.memory or ""
        d = base
        for part in self.relpath.split("/")[:-1] or []:
            if not self._enable_in(d):
                return False
            d = os.path.join(d, part)
        return self._enable_in(d)

    @staticmethod
    def _enable_in(d: str) -> bool:
        try:
            if "memory" in _read(os.path.join(d, "cgroup.subtree_control")).split():
                return True
            _write(os.path.join(d, "cgroup.subtree_control"), "+memory")
            return True
        except OSError:
            return False

    def _set_limit(self, nbytes: int) -> None:
        assert self.memory_dir is not None
        if self.hier.memory_version == 1:
            _write(os.path.join(self.memory_dir, "memory.limit_in_bytes"), str(nbytes))
            # Slurm's default AllowedSwapSpace=0: mem+swap gets the same limit.
            with contextlib.suppress(OSError):
                _write(os.path.join(self.memory_dir, "memory.memsw.limit_in_bytes"), str(nbytes))
        else:
            _write(os.path.join(self.memory_dir, "memory.max"), str(nbytes))
            with contextlib.suppress(OSError):
                _write(os.path.join(self.memory_dir, "memory.swap.max"), "0")

    def remove(self) -> None:
        """rmdir the step cgroup(s), then the job directory if no other step uses it."""
        dirs = [self.track_dir]
        if self.memory_dir is not None and self.memory_dir != self.track_dir:
            dirs.append(self.memory_dir)
        for d in dirs:
            deadline = time.monotonic() + 2.0
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    # EBUSY: exiting tasks can stay charged to the cgroup for a moment.
                    if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                        break
                    time.sleep(0.02)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(d))

    # -- membership

    def add_pid(self, pid: int) -> None:
        """Move ``pid`` (0 = the caller) into the step cgroup(s)."""
        for d in self._dirs():
            _write(os.path.join(d, "cgroup.procs"), str(pid))

    def join_self(self) -> None:
        """Move the calling process, single-threaded (a task between fork and exec), into
        the step cgroup(s). On a cgroup v1 hierarchy it writes ``0`` to ``tasks``: the
        kernel moves the current thread without taking the global threadgroup lock, whose
        RCU grace period makes a ``cgroup.procs`` write cost ~12 ms (measured here: 0.2 ms
        this way), which every job paid twice before it could exec."""
        for d in self._dirs():
            tasks = os.path.join(d, "tasks")
            if os.path.exists(tasks):
                _write(tasks, "0")
            else:  # cgroup2 has no per-thread file
                _write(os.path.join(d, "cgroup.procs"), "0")

    def can_carry_self(self) -> bool:
        """Whether the calling thread can step into the step's cgroups and back out
        (``join_self`` then ``leave_self``) cheaply and exactly: v1 hierarchies only (a
        thread moves through ``tasks`` without the global lock; cgroup2 has no such file),
        with the base directories being the caller's own cgroups (base "self")."""
        memory_v1 = self.memory_dir is None or self.memory_dir == self.track_dir or self.hier.memory_version == 1
        return self.version == 1 and memory_v1 and self.hier.base == "self"

    def leave_self(self) -> None:
        """Move the calling thread back from the step's cgroups to its own (the base
        directories; only where ``can_carry_self``)."""
        homes = [self.hier.track]
        if self.memory_dir is not None and self.memory_dir != self.track_dir and self.hier.memory is not None:
            homes.append(self.hier.memory)
        for d in homes:
            _write(os.path.join(d, "tasks"), "0")

    def _dirs(self) -> list[str]:
        if self.memory_dir is not None and self.memory_dir != self.track_dir:
            return [self.track_dir, self.memory_dir]
        return [self.track_dir]

    def pids(self) -> set[int]:
        try:
            return {int(x) for x in _read(os.path.join(self.track_dir, "cgroup.procs")).split()}
        except (OSError, ValueError):
            return set()

    # -- control

    def freeze(self, timeout: float = 1.0) -> bool:
        """Freeze the step; True once the kernel reports it frozen."""
        try:
            if self.version == 1:
                _write(os.path.join(self.track_dir, "freezer.state"), "FROZEN")
            else:
                _write(os.path.join(self.track_dir, "cgroup.freeze"), "1")
        except OSError:
            return False
        deadline = time.monotonic() + timeout
        while True:
            if self.frozen():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)

    def frozen(self) -> bool:
        try:
            if self.version == 1:
                return _read(os.path.join(self.track_dir, "freezer.state")).strip() == "FROZEN"
            events = _read(os.path.join(self.track_dir, "cgroup.events")).split()
            return "frozen" in events and events[events.index("frozen") + 1] == "1"
        except (OSError, IndexError):
            return False

    def thaw(self) -> None:
        with contextlib.suppress(OSError):
            if self.version == 1:
                _write(os.path.join(self.track_dir, "freezer.state"), "THAWED")
            else:
                _write(os.path.join(self.track_dir, "cgroup.freeze"), "0")

    def kill_all(self, sig: int) -> int:
        """Send ``sig`` to every process in the step; returns how many were signalled."""
        if sig == signal.SIGKILL and self.version == 2:
            with contextlib.suppress(OSError):
                _write(os.path.join(self.track_dir, "cgroup.kill"), "1")
        sent = 0
        me = os.getpid()
        for pid in self.pids():
            if pid == me:
                continue
            try:
                os.kill(pid, sig)
                sent += 1
            except (ProcessLookupError, PermissionError):
                pass
        return sent

    # -- OOM

    def _oom_count(self) -> int:
        """Cumulative OOM kills in the step (v1 memory.oom_control / v2 memory.events)."""
        if self.memory_dir is None:
            return 0
        name = "memory.oom_control" if self.hier.memory_version == 1 else "memory.events"
        try:
            fields = dict(
                line.split(None, 1)
                for line in _read(os.path.join(self.memory_dir, name)).splitlines()
                if line
            )
        except (OSError, ValueError):
            return 0
        try:
            return int(fields.get("oom_kill", "0"))
        except ValueError:
            return 0

    def oom_killed(self) -> bool:
        """True if the kernel OOM-killed a process of this step since ``create()``.

        memory.failcnt is deliberately not used: it counts every hit of the limit, which
        page-cache reclaim also causes, not OOM kills.
        """
        if self.memory_dir is None:
            return False
        if self._oom_count() > self._oom_base:
            return True
        if self.hier.memory_version == 1:
            try:
                for line in _read(os.path.join(self.memory_dir, "memory.oom_control")).splitlines():
                    key, _, value = line.partition(" ")
                    if key == "under_oom" and value.strip() == "1":
                        return True
            except OSError:
                pass
        return False

    def memory_peak(self) -> int | None:
        """The step's peak memory charge in bytes (v1 ``memory.max_usage_in_bytes``, v2
        ``memory.peak``), None where the kernel keeps none."""
        if self.memory_dir is None:
            return None
        name = "memory.max_usage_in_bytes" if self.hier.memory_version == 1 else "memory.peak"
        try:
            return int(_read(os.path.join(self.memory_dir, name)).split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def describe(self) -> dict[str, object]:
        return {
            "track": self.track_dir,
            "version": self.version,
            "memory": self.memory_dir,
            "memory_version": self.hier.memory_version if self.memory_dir else None,
            "mem_limit_mb": self.mem_limit_mb,
        }
