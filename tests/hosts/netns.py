"""Hosts as network namespaces on this machine: a switch namespace with a bridge, one
namespace per host joined to it by a veth pair, and an nftables table per host for faults.

Invariants:
- Nothing is added to the root namespace: every interface, address and route lives inside
  namespaces this module created, named ``<tag>-<host>``; the bridge sits in ``<tag>-sw``.
  The addresses (``SUBNET``) are reachable only from inside those namespaces.
- Every namespace this module creates is listed in ``<registry>/<tag>/netns`` *before* it
  is created, with the owner's pid, so ``sweep()`` can remove what a killed test left
  behind (only tags whose owner is dead).
- Faults are nftables rules in the receiving host's own namespace: ``block(a, b)`` drops
  every packet from ``a`` arriving at ``b`` (one way); a partition is both directions.
  Dropping (not rejecting) makes a cut host look like a pulled cable: connects time out.
"""

from __future__ import annotations

import ctypes
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SUBNET = "10.213.0"  # /24, private, inside our namespaces only
REGISTRY = Path(os.environ.get("SPUR_HOSTS_REGISTRY", "/tmp/spur-hosts"))
CLONE_NEWNET = 0x40000000

NFT_TABLE = """
table inet nemesis {
    set drop_from { type ipv4_addr; }
    chain input {
        type filter hook input priority -10; policy accept;
        ip saddr @drop_from drop
    }
}
"""


class NetnsError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    """What this machine lacks to run hosts (empty when everything is there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces need CAP_SYS_ADMIN)")
    for tool in ("ip", "nft", "nsenter", "openssl"):
        if shutil.which(tool) is None:
            hint = " (apt-get install nftables)" if tool == "nft" else ""
            missing.append(f"the `{tool}` command{hint}")
    return missing


def run(argv: list[str], *, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def ns_argv(ns: str, argv: list[str]) -> list[str]:
    """``argv`` run in network namespace ``ns`` (mount namespace and everything else shared)."""
    return ["nsenter", f"--net=/run/netns/{ns}", "--", *argv]


class NsThread:
    """A thread living in another network namespace: sockets it creates belong there.

    ``setns`` moves only the calling thread, so the test process itself can talk to the
    hosts (monitoring, digests) without a route or an address in the root namespace.
    """

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._main, name=f"ns-{ns}", daemon=True)
        self._started: queue.Queue[BaseException | None] = queue.Queue()
        self._thread.start()
        err = self._started.get()
        if err is not None:
            raise err

    def _main(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns({self.ns})")
            finally:
                os.close(fd)
        except BaseException as exc:  # report to the constructor
            self._started.put(exc)
            return
        self._started.put(None)
        while True:
            item = self._jobs.get()
            if item is None:
                return
            fn, reply = item
            try:
                reply.put((True, fn()))
            except BaseException as exc:
                reply.put((False, exc))

    def call(self, fn: Callable[[], Any]) -> Any:
        reply: queue.Queue[Any] = queue.Queue()
        self._jobs.put((fn, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(5)


class Network:
    """A switch and hosts. ``tag`` names everything (<= 6 chars keeps interface names short)."""

    def __init__(self, tag: str, *, persistent: bool = False) -> None:
        if not tag.isalnum() or len(tag) > 8:
            raise ValueError(f"bad tag {tag!r}")
        self.tag = tag
        self.hosts: dict[str, str] = {}  # host name -> address
        self.namespaces: list[str] = []
        self.reg = REGISTRY / tag
        self.reg.mkdir(parents=True, exist_ok=True)
        # A test's namespaces die with the test process (sweep); `make hosts-up`'s stay
        # until `make hosts-down`.
        (self.reg / "owner").write_text("persistent\n" if persistent else f"{os.getpid()}\n")
        self.switch = self._add_ns("sw")
        run(["ip", "-n", self.switch, "link", "set", "lo", "up"])
        run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.switch, "link", "set", "br0", "up"])

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def _add_ns(self, short: str) -> str:
        name = f"{self.tag}-{short}"
        with open(self.reg / "netns", "a") as f:
            f.write(name + "\n")
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        return name

    def add_host(self, host: str, address: str) -> str:
        """A namespace for ``host`` with ``address`` on eth0, plugged into the switch."""
        ns = self._add_ns(host)
        port = f"p{len(self.hosts)}"
        run(["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
             "netns", self.switch])
        run(["ip", "-n", self.switch, "link", "set", port, "master", "br0", "up"])
        run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(ns_argv(ns, ["nft", "-f", "-"]), input=NFT_TABLE)
        self.hosts[host] = address
        return ns

    # --- faults ------------------------------------------------------------------------

    def _nft(self, host: str, command: str) -> None:
        run(ns_argv(self.ns(host), ["nft", command]))

    def block(self, src: str, dst: str) -> None:
        """Drop every packet from ``src`` arriving at ``dst`` (one way)."""
        self._nft(dst, f"add element inet nemesis drop_from {{ {self.hosts[src]} }}")

    def unblock(self, src: str, dst: str) -> None:
        self._nft(dst, f"delete element inet nemesis drop_from {{ {self.hosts[src]} }}")

    def partition(self, *groups: Iterable[str]) -> None:
        """Hosts in different groups cannot reach each other; hosts in no group keep every link."""
        sets = [set(g) for g in groups]
        for i, a in enumerate(sets):
            for b in sets[i + 1:]:
                for x in a:
                    for y in b:
                        self.block(x, y)
                        self.block(y, x)

    def isolate(self, host: str, *, spare: tuple[str, ...] = ("mon",)) -> None:
        """Cut ``host`` off from every other host except ``spare`` (the observer)."""
        self.partition([host], [h for h in self.hosts if h != host and h not in spare])

    def heal(self) -> None:
        for host in self.hosts:
            self._nft(host, "flush set inet nemesis drop_from")

    def blocked(self, dst: str) -> list[str]:
        out = run(ns_argv(self.ns(dst), ["nft", "list", "set", "inet", "nemesis", "drop_from"])).stdout
        return [h for h, a in self.hosts.items() if a in out.replace(",", " ").split()]

    # --- processes -----------------------------------------------------------------------

    def register_pid(self, pid: int) -> None:
        """Remember a daemon we started (with its start time, so a reused pid is never hit)."""
        with open(self.reg / "pids", "a") as f:
            f.write(f"{pid} {start_time(pid)}\n")

    def register_spool(self, path: str | os.PathLike[str]) -> None:
        """An agent spool whose job supervisors must not outlive the run."""
        with open(self.reg / "spools", "a") as f:
            f.write(f"{os.fspath(path)}\n")

    def register_mount(self, path: str | os.PathLike[str]) -> None:
        with open(self.reg / "mounts", "a") as f:
            f.write(f"{os.fspath(path)}\n")

    # --- teardown ----------------------------------------------------------------------

    def destroy(self) -> None:
        for name in reversed(self.namespaces):
            run(["ip", "netns", "del", name], check=False)
        self.namespaces.clear()
        shutil.rmtree(self.reg, ignore_errors=True)


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def kill_registered(reg: Path, sig: int = 9) -> int:
    """SIGKILL the registered daemons still alive (same start time), then the job
    supervisors under the registered spools. Returns how many were signalled."""
    count = 0
    try:
        lines = (reg / "pids").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        pid_s, _, started = line.partition(" ")
        pid = int(pid_s)
        if started and start_time(pid) == int(started):
            try:
                os.kill(pid, sig)
                count += 1
            except ProcessLookupError:
                pass
    try:
        spools = (reg / "spools").read_text().split()
    except OSError:
        spools = []
    for pid in supervisors(spools):
        try:
            os.kill(pid, sig)
            count += 1
        except ProcessLookupError:
            pass
    return count


def unmount_registered(reg: Path) -> None:
    try:
        mounts = (reg / "mounts").read_text().split()
    except OSError:
        return
    for path in reversed(mounts):
        if os.path.ismount(path):
            run(["umount", "-l", path], check=False)


def supervisors(spools: Iterable[str]) -> list[int]:
    """Live job supervisors under agent spools (checked by cmdline and cwd: pid reuse safe)."""
    from spurd.procs import is_supervisor_of

    pids = []
    for spool in spools:
        for pid_file in Path(spool).glob("jobs/*/*/supervisor.pid"):
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
            if is_supervisor_of(pid, pid_file.parent):
                pids.append(pid)
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(only_tag: str | None = None) -> list[str]:
    """Kill the daemons and job supervisors of runs whose owner process is gone (or of
    ``only_tag``), then remove their namespaces. Returns the namespaces removed."""
    removed = []
    if not REGISTRY.is_dir():
        return removed
    for reg in REGISTRY.iterdir():
        if only_tag is not None and reg.name != only_tag:
            continue
        try:
            owner_text = (reg / "owner").read_text().strip()
        except OSError:
            owner_text = ""
        if only_tag is None and (owner_text == "persistent" or (owner_text.isdigit() and _alive(int(owner_text)))):
            continue
        kill_registered(reg)
        unmount_registered(reg)
        try:
            names = (reg / "netns").read_text().split()
        except OSError:
            names = []
        for name in reversed(names):
            if run(["ip", "netns", "del", name], check=False).returncode == 0:
                removed.append(name)
        shutil.rmtree(reg, ignore_errors=True)
    return removed
