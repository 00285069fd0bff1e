"""A multi-host Spur cluster on network namespaces, deployed as docs/operator-guide.md says.

Hosts: ``ctl1..ctlN`` (spurctld, one replica each), ``node1..nodeM`` (spurd), ``login``
(tools, the workload) and ``mon`` (this test process's window onto the cluster; it is
never partitioned, like a serial console). Each host has its own directory
``<root>/hosts/<host>/`` with its own ``spur.toml``, ``tls/`` and ``state/``; TLS only,
no Unix sockets, certificates made with the guide's openssl commands.

Invariants:
- Every process started here is registered (pid + start time) before the call returns,
  and ``destroy()`` kills exactly those, the job supervisors under our spools, unmounts
  what we mounted and removes the namespaces. ``netns.sweep()`` does the same for a run
  whose test process died.
- The test process reaches the hosts only through ``NsThread`` in ``mon``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.hosts import netns
from tests.hosts.netns import Network, NsThread, ns_argv

PY = sys.executable
AGENT_PORT = 6818  # the agents' TLS step endpoint (Slurm's SlurmdPort)
CLOCKSHIFT = str(Path(__file__).with_name("clockshift.py"))

DEFAULT_SETTINGS: dict[str, Any] = {
    "kill_wait": 2,
    "suspend_grace": 0.5,
    "min_job_age": 3600,
    "node_timeout": 10,
    "heartbeat_interval": 1,
    # The configuration defaults, not the guide's example (0.15/0.45): on this 2-CPU machine
    # shared by six hosts, tick stalls near 0.15 s happen and would add elections of their own.
    "raft_min_timeout": 0.25,
    "raft_max_timeout": 0.75,
    "leader_fallback_timeout": 2.0,
    "compaction_entries": 20000,
}


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def _openssl(cwd: Path, *args: str, input: str | None = None) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, input=input)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {proc.stderr.strip()}")


def make_pki(d: Path, controller_ips: list[str], clients: list[tuple[str, str]],
             nodes: dict[str, str] | None = None) -> None:
    """The operator guide's section 4, command for command (EC P-256, CA, one controller
    certificate with every controller's address, client certificates CN=name OU=role, and
    agent certificates CN=node OU=node that also serve the agent's TLS step endpoint:
    serverAuth and the node's address, ``nodes`` = {name: IP})."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
             "-subj", "/O=Example HPC/CN=Spur CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    sans = ",".join(f"IP:{ip}" for ip in controller_ips)
    (d / "ctld.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={sans}\n")
    _openssl(d, "req", *ec, "-keyout", "ctld.key", "-out", "ctld.csr", "-subj", "/O=Example HPC/OU=admin/CN=spurctld")
    _openssl(d, "x509", "-req", "-in", "ctld.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "825", "-extfile", "ctld.ext", "-out", "ctld.pem")
    (d / "client.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    for cn, ou in clients:
        _openssl(d, "req", *ec, "-keyout", f"{cn}.key", "-out", f"{cn}.csr", "-subj", f"/O=Example HPC/OU={ou}/CN={cn}")
        _openssl(d, "x509", "-req", "-in", f"{cn}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "825", "-extfile", "client.ext", "-out", f"{cn}.pem")
        os.chmod(d / f"{cn}.key", 0o600)
    for cn, ip in (nodes or {}).items():
        (d / f"{cn}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{cn},IP:{ip}\n")
        _openssl(d, "req", *ec, "-keyout", f"{cn}.key", "-out", f"{cn}.csr", "-subj", f"/O=Example HPC/OU=node/CN={cn}")
        _openssl(d, "x509", "-req", "-in", f"{cn}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "825", "-extfile", f"{cn}.ext", "-out", f"{cn}.pem")
        os.chmod(d / f"{cn}.key", 0o600)


class Host:
    def __init__(self, name: str, role: str, address: str, rid: int = 0) -> None:
        self.name, self.role, self.address, self.rid = name, role, address, rid


class HostCluster:
    def __init__(self, root: str | os.PathLike[str], *, replicas: int = 3, nodes: int = 2, cpus: int = 2,
                 settings: dict[str, Any] | None = None, clock_hosts: tuple[str, ...] = (),
                 tag: str | None = None, persistent: bool = False,
                 extra_users: tuple[tuple[str, str], ...] = ()) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.tag = tag or f"sp{secrets.token_hex(3)}"
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.cpus = cpus
        self.extra_users = extra_users  # (CN, OU) certificates in the login host's home
        self.clock_hosts = set(clock_hosts)  # daemons run under clockshift.py
        self.hosts: dict[str, Host] = {}
        for i in range(replicas):
            self.hosts[f"ctl{i + 1}"] = Host(f"ctl{i + 1}", "ctl", f"{netns.SUBNET}.{11 + i}", i + 1)
        for i in range(nodes):
            self.hosts[f"node{i + 1}"] = Host(f"node{i + 1}", "node", f"{netns.SUBNET}.{101 + i}")
        self.hosts["login"] = Host("login", "login", f"{netns.SUBNET}.200")
        self.hosts["mon"] = Host("mon", "mon", f"{netns.SUBNET}.250")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.net: Network | None = None
        self._mon: NsThread | None = None
        self._persistent = persistent
        self.task_dir = self.root / "tasks"
        self.task_dir.mkdir(exist_ok=True)
        self._mounts: list[Path] = []

    # --- layout ------------------------------------------------------------------------

    @property
    def controllers(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == "ctl"]

    @property
    def nodes(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == "node"]

    def host_dir(self, host: str) -> Path:
        return self.root / "hosts" / host

    def conf(self, host: str) -> Path:
        return self.host_dir(host) / "spur.toml"

    def state_dir(self, rid: int) -> Path:
        return self.host_dir(f"ctl{rid}") / "state" / f"ctld-{rid}"

    def spool(self, node: str) -> Path:
        return self.host_dir(node) / "state" / "agents" / node

    def log(self, host: str) -> Path:
        return self.host_dir(host) / "log"

    def cert(self, host: str) -> tuple[str, str]:
        """The user certificate on a login-like host (tools read SPUR_CERT/SPUR_KEY)."""
        d = self.host_dir(host) / "home"
        return str(d / "root.pem"), str(d / "root.key")

    # --- creation ------------------------------------------------------------------------

    def create(self) -> None:
        """Namespaces, certificates, configuration: everything but processes."""
        self.net = Network(self.tag, persistent=self._persistent)
        for h in self.hosts.values():
            self.net.add_host(h.name, h.address)
        self._mon = NsThread(self.net.ns("mon"))
        pki = self.root / "pki"
        make_pki(pki, [h.address for h in self.controllers], [("root", "admin"), *self.extra_users],
                 {n.name: n.address for n in self.nodes})
        secret = secrets.token_hex(32) + "\n"  # `openssl rand -hex 32`: identical on every controller
        for h in self.hosts.values():
            d = self.host_dir(h.name)
            (d / "tls").mkdir(parents=True, exist_ok=True)
            (d / "log").mkdir(exist_ok=True)
            (d / "tls" / "ca.pem").write_bytes((pki / "ca.pem").read_bytes())
            cert = {"ctl": "ctld", "node": h.name}.get(h.role)
            if cert:
                (d / "tls" / "host.pem").write_bytes((pki / f"{cert}.pem").read_bytes())
                key = d / "tls" / "host.key"
                key.write_bytes((pki / f"{cert}.key").read_bytes())
                key.chmod(0o600)
            else:
                home = d / "home"
                home.mkdir(exist_ok=True)
                (home / "root.pem").write_bytes((pki / "root.pem").read_bytes())
                (home / "root.key").write_bytes((pki / "root.key").read_bytes())
                (home / "root.key").chmod(0o600)
                for cn, _ in self.extra_users:
                    for ext in ("pem", "key"):
                        (home / f"{cn}.{ext}").write_bytes((pki / f"{cn}.{ext}").read_bytes())
                    (home / f"{cn}.key").chmod(0o600)
            if h.role == "ctl":
                (d / "secret").write_text(secret)
                (d / "secret").chmod(0o600)
            self.conf(h.name).write_text(self._config_text(h))
            if h.name in self.clock_hosts:
                (d / "clock-offset").write_text("0\n")
        (self.root / "cluster.json").write_text(json.dumps({
            "tag": self.tag, "hosts": {h.name: [h.role, h.address, h.rid] for h in self.hosts.values()},
        }, indent=1))

    def _config_text(self, h: Host) -> str:
        lines = ["[cluster]", 'name = "hosts"', 'state_dir = "state"']
        if h.role == "ctl":
            lines.append('secret_file = "secret"')
        for key, value in self.settings.items():
            lines.append(f"{key} = {value}")
        lines += ["", "[tls]", 'ca = "tls/ca.pem"']
        if h.role in ("ctl", "node"):
            lines += ['cert = "tls/host.pem"', 'key = "tls/host.key"']
        if h.role == "node":  # the TLS step endpoint: srun from the login host (guide, section 4)
            lines += ["", "[agent]", f'rpc = "{h.address}:{AGENT_PORT}"']
        for c in self.controllers:
            lines += ["", "[[replica]]", f"id = {c.rid}", f'raft = "{c.address}:6821"', f'rpc = "{c.address}:6817"']
        return "\n".join(lines) + "\n"

    # --- processes -----------------------------------------------------------------------

    def env(self, host: str) -> dict[str, str]:
        env = {
            "PATH": os.path.dirname(PY) + os.pathsep + "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.host_dir(host)),
            "LANG": "C.UTF-8",
            "SPUR_CONF": str(self.conf(host)),
            "SPUR_CGROUP": "none",
            "SPUR_TASK_DIR": str(self.task_dir),
        }
        if os.environ.get("PYTHONPATH"):  # e.g. measuring an older checkout with this harness
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        if self.hosts[host].role in ("login", "mon"):
            env["SPUR_CERT"], env["SPUR_KEY"] = self.cert(host)
            env["XDG_RUNTIME_DIR"] = str(self.host_dir(host) / "run")
            (self.host_dir(host) / "run").mkdir(mode=0o700, exist_ok=True)
        if host in self.clock_hosts:
            env["SPUR_CLOCK_FILE"] = str(self.host_dir(host) / "clock-offset")
        return env

    def private_view(self, host: str, argv: list[str]) -> list[str]:
        """``argv`` in its own mount namespace where the other hosts' directories are empty:
        a login host sees its own files only, as on a real machine (no agent's socket,
        no controller's state), though every namespace shares this machine's file system."""
        others = [str(self.host_dir(h)) for h in self.hosts if h != host and self.host_dir(h).exists()]
        script = 'for d in "$@"; do [ "$d" = -- ] && break; mount -t tmpfs -o size=1m,mode=0755 tmpfs "$d"; ' \
                 'done; while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *others, "--", *argv]

    def _argv(self, host: str, argv: list[str]) -> list[str]:
        assert self.net is not None
        if self.hosts[host].role == "login":
            argv = self.private_view(host, argv)
        return ns_argv(self.net.ns(host), argv)

    def spawn(self, host: str, key: str, argv: list[str]) -> subprocess.Popen[bytes]:
        assert self.net is not None
        if host in self.clock_hosts and argv[:2] == [PY, "-m"]:
            argv = [PY, CLOCKSHIFT, *argv[2:]]
        log = open(self.log(host) / f"{key}.log", "ab")
        proc = subprocess.Popen(self._argv(host, argv), cwd=self.host_dir(host), env=self.env(host),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.net.register_pid(proc.pid)
        self.procs[f"{host}/{key}"] = proc
        return proc

    def start_replica(self, rid: int) -> subprocess.Popen[bytes]:
        host = f"ctl{rid}"
        return self.spawn(host, "spurctld", [PY, "-m", "spurctld.main", "--config", str(self.conf(host)),
                                             "--id", str(rid)])

    def start_agent(self, node: str) -> subprocess.Popen[bytes]:
        assert self.net is not None
        self.net.register_spool(self.spool(node))
        return self.spawn(node, "spurd", [PY, "-m", "spurd.main", "--config", str(self.conf(node)), "--name", node,
                                          "--cpus", str(self.cpus), "--mem", "4096"])

    def daemon(self, host: str) -> subprocess.Popen[bytes] | None:
        key = "spurctld" if self.hosts[host].role == "ctl" else "spurd"
        proc = self.procs.get(f"{host}/{key}")
        return proc if proc is not None and proc.poll() is None else None

    def signal(self, host: str, sig: int) -> None:
        proc = self.daemon(host)
        if proc is not None:
            os.kill(proc.pid, sig)

    def kill(self, host: str) -> None:
        proc = self.daemon(host)
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self, host: str, timeout: float = 15.0) -> None:
        proc = self.daemon(host)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def restart(self, host: str) -> None:
        h = self.hosts[host]
        if self.daemon(host) is not None:
            self.stop(host)
        if h.role == "ctl":
            self.start_replica(h.rid)
        else:
            self.start_agent(host)

    def up(self, timeout: float = 60.0) -> None:
        if self.net is None:
            self.create()
        for c in self.controllers:
            self.start_replica(c.rid)
        for n in self.nodes:
            self.start_agent(n.name)
        self.wait_leader(timeout)
        self.wait_nodes(timeout)

    def tool(self, host: str, argv: list[str], timeout: float = 60.0,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command-line tool on ``host`` as its user would (blocking)."""
        return subprocess.run(self._argv(host, argv), cwd=self.host_dir(host),
                              env={**self.env(host), **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)

    def popen_tool(self, host: str, key: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """A long-running client process on ``host`` (a workload); registered like daemons."""
        return self.spawn(host, key, argv)

    # --- monitoring (from `mon`, never partitioned) ---------------------------------------

    def mon(self, fn: Callable[[], Any]) -> Any:
        assert self._mon is not None
        return self._mon.call(fn)

    def _ssl(self) -> Any:
        if not hasattr(self, "_ssl_ctx"):
            from spurio.rpc import client_ssl_context

            cert, key = self.cert("mon")
            self._ssl_ctx = client_ssl_context(cert, key, str(self.host_dir("mon") / "tls" / "ca.pem"))
        return self._ssl_ctx

    def rpc(self, rid: int, method: str, params: dict[str, Any] | None = None, timeout: float = 1.0) -> Any:
        """One call to replica ``rid`` itself (no retry, no redirect); None if it fails."""
        from spurio.rpc import RpcError, SyncClient

        addr = self.hosts[f"ctl{rid}"].address
        ctx = self._ssl()

        def call() -> Any:
            try:
                with SyncClient.tcp(addr, 6817, timeout=timeout, ssl_context=ctx) as c:
                    return c.call(method, params or {})
            except (RpcError, OSError):
                return None

        return self.mon(call)

    def ping(self, rid: int, timeout: float = 0.5) -> dict[str, Any] | None:
        return self.rpc(rid, "ping", timeout=timeout)

    def pings(self, timeout: float = 0.5) -> dict[int, dict[str, Any] | None]:
        return {c.rid: self.ping(c.rid, timeout) for c in self.controllers}

    def leader(self) -> int | None:
        for rid, info in self.pings().items():
            if info and info.get("ready"):
                return rid
        return None

    def wait_leader(self, timeout: float = 30.0, exclude: tuple[int, ...] = ()) -> int:
        def ready() -> int | None:
            rid = self.leader()
            return rid if rid is not None and rid not in exclude else None

        return wait_for(ready, timeout, "a ready leader")

    def client_call(self, method: str, params: dict[str, Any] | None = None, retry_for: float = 10.0) -> Any:
        """A call through the cluster client from `mon` (follows the leader, retries)."""
        from spurio.client import Client
        from spurio.config import load

        cert, key = self.cert("mon")
        config = load(str(self.conf("mon")))

        def call() -> Any:
            with Client(config, retry_for=retry_for, timeout=5.0, cert=cert, key=key) as client:
                return client.call(method, params or {})

        return self.mon(call)

    def wait_nodes(self, timeout: float = 30.0, names: list[str] | None = None) -> None:
        from spurio.client import ControllerUnavailable
        from spurio.rpc import RpcError

        want = names or [n.name for n in self.nodes]

        def ready() -> bool:
            try:
                nodes = {n["name"]: n for n in self.client_call("nodes", retry_for=1.0)["nodes"]}
            except (RpcError, ControllerUnavailable):
                return False
            return all(n in nodes and nodes[n]["state"] not in ("DOWN", "down") for n in want)

        wait_for(ready, timeout, f"nodes {want} to register", interval=0.1)

    def digests(self) -> dict[int, tuple[str, int] | None]:
        out: dict[int, tuple[str, int] | None] = {}
        for c in self.controllers:
            d = self.rpc(c.rid, "digest", timeout=5.0)
            out[c.rid] = (d["digest"], d["applied_index"]) if d else None
        return out

    def wait_converged(self, timeout: float = 30.0) -> dict[int, tuple[str, int] | None]:
        """Every replica answers with the same applied index; returns the digests then."""
        last: dict[int, tuple[str, int] | None] = {}

        def same() -> bool:
            nonlocal last
            last = self.digests()
            values = list(last.values())
            return all(v is not None for v in values) and len({v[1] for v in values if v}) == 1

        try:
            wait_for(same, timeout, "replicas to reach the same applied index", interval=0.2)
        except TimeoutError:
            pass
        return last

    # --- faults needing the filesystem ----------------------------------------------------

    def mount_tmpfs(self, path: Path, size: str) -> None:
        assert self.net is not None
        path.mkdir(parents=True, exist_ok=True)
        self.net.register_mount(path)
        netns.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)])
        self._mounts.append(path)

    def umount(self, path: Path) -> None:
        if os.path.ismount(path):
            netns.run(["umount", str(path)], check=False)
        if path in self._mounts:
            self._mounts.remove(path)

    def set_clock_offset(self, host: str, seconds: float) -> None:
        """Shift the wall clock of ``host``'s daemons by ``seconds`` (see clockshift.py)."""
        if host not in self.clock_hosts:
            raise ValueError(f"{host} was not started with clock_hosts")
        tmp = self.host_dir(host) / "clock-offset.tmp"
        tmp.write_text(f"{seconds}\n")
        os.replace(tmp, self.host_dir(host) / "clock-offset")

    # --- teardown ------------------------------------------------------------------------

    def supervisors(self) -> list[int]:
        return netns.supervisors([str(self.spool(n.name)) for n in self.nodes])

    def destroy(self) -> None:
        """Kill what we started (by pid), unmount, remove the namespaces. Never raises."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.supervisors():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for path in list(self._mounts):
            self.umount(path)
        if self._mon is not None:
            self._mon.close()
            self._mon = None
        if self.net is not None:
            netns.unmount_registered(self.net.reg)
            self.net.destroy()
            self.net = None
