"""Run a whole cluster on one machine: replicas and agents as subprocesses on loopback.

Used by ``spur local``, by this project's tests and by other projects' test suites
(``spurcli.pytest_plugin``). Every daemon's pid is recorded in ``DIR/pids/``; stopping
kills exactly those pids, never anything found by name.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spurd.procs import is_supervisor_of
from spurio.client import Client
from spurio.config import Config, load
from spurio.rpc import ConnectionFailed, RpcError, SyncClient


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def parse_partitions(text: str, nodes: list[str]) -> list[tuple[str, list[str]]]:
    """``--partitions 'batch=node[1-2];gpu=node3'`` -> [(batch, [node1, node2]), (gpu, [node3])];
    a bare name holds every node; the first is the default partition."""
    from spurcore.hostlist import expand

    out: list[tuple[str, list[str]]] = []
    for item in [p.strip() for p in text.replace(" ", ";").split(";") if p.strip()]:
        name, eq, hosts = item.partition("=")
        names = expand(hosts) if eq and hosts else list(nodes)
        unknown = [n for n in names if n not in nodes]
        if unknown or not name:
            raise ValueError(f"--partitions {item!r}: unknown nodes {', '.join(unknown)}" if unknown
                             else f"--partitions {item!r}: no name")
        out.append((name, names))
    return out


def write_config(
    directory: str | os.PathLike[str], *, replicas: int = 1, nodes: int = 1, cpus: int = 2,
    kill_wait: float = 2.0, node_timeout: float = 10.0, min_job_age: float = 300.0,
    compaction_entries: int = 20000, extra: str = "", settings: dict[str, Any] | None = None,
    tls: bool = False, tls_users: list[tuple[str, str]] | None = None,
    gpus: int = 0, mem_mb: int = 4096, partitions: list[tuple[str, list[str]]] | str | None = None,
    scheduling: dict[str, Any] | None = None,
) -> Path:
    """Write ``DIR/spur.toml`` (and the shared secret) for a loopback cluster: its replicas,
    and the nodes it starts (``node1..N`` with ``cpus`` CPUs, ``mem_mb`` MB and ``gpus`` fake
    GPUs each) in ``partitions`` (default: one ``debug`` partition with every node), with
    Slurm's keys in ``[[node]]`` / ``[[partition]]`` tables and ``scheduling`` settings.
    ``settings``: more ``[cluster]`` keys (``max_array_size``, ``requeue_delay``, ...).

    ``tls``: a throw-away PKI in ``DIR/tls`` (``spurio.pki``; its server certificate,
    for 127.0.0.1, is every daemon's), the replicas also serve TLS on ``rpc``, and every
    agent has a TLS step endpoint on 127.0.0.1 (``[agent] rpc``, a free port each), so that
    srun, sattach and sstat can reach the agents as from another host. ``tls_users``: the
    client certificates to make, ``(name, role)`` (default: the current user, role
    ``user``); :meth:`LocalCluster.client_cert` finds them."""
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    secret = d / "secret"
    if not secret.exists():
        secret.write_text(secrets.token_hex(32) + "\n")
        secret.chmod(0o600)
    ports = free_ports(replicas * (2 if tls else 1))
    lines = [
        "[cluster]",
        'name = "local"',
        f'state_dir = "{d / "state"}"',
        f'secret_file = "{secret}"',
        f"kill_wait = {kill_wait}",
        "suspend_grace = 0.5",
        f"min_job_age = {min_job_age}",
        f"node_timeout = {node_timeout}",
        "heartbeat_interval = 1",
        f"compaction_entries = {compaction_entries}",
        *(f"{key} = {_toml_value(value)}" for key, value in (settings or {}).items()),
        "",
        "[local]",
        f"nodes = {nodes}",
        f"cpus = {cpus}",
        f"mem_mb = {mem_mb}",
        f"gpus = {gpus}",
        "",
    ]
    if tls:
        from spurio.pki import generate_test_pki

        users = tls_users if tls_users is not None else [(_current_user(), "user")]
        pki = generate_test_pki(d / "tls", users, server_names=("localhost",), server_ips=("127.0.0.1",))
        lines += [
            "[tls]",
            f'ca = "{pki["ca_cert"]}"',
            f'cert = "{pki["server_cert"]}"',
            f'key = "{pki["server_key"]}"',
            "",
            "[agent]",
            'rpc = "127.0.0.1:0"',  # each agent binds a free port and registers it
            "",
        ]
    names = [f"node{i + 1}" for i in range(nodes)]
    if isinstance(partitions, str):
        partitions = parse_partitions(partitions, names)
    for name in names:
        lines += ["[[node]]", f'NodeName = "{name}"', f"CPUs = {cpus}", f"RealMemory = {mem_mb}"]
        if gpus:
            # Fake devices: CUDA_VISIBLE_DEVICES & co are set, no device file exists to isolate.
            lines.append(f'Gres = "gpu:{gpus}"')
        lines.append("")
    for i, (pname, pnodes) in enumerate(partitions or [("debug", names)]):
        lines += ["[[partition]]", f'PartitionName = "{pname}"', f'Nodes = "{",".join(pnodes) or "ALL"}"',
                  f'Default = "{"YES" if i == 0 else "NO"}"', 'MaxTime = "INFINITE"', 'State = "UP"', ""]
    # A one-machine cluster is for tests and demos: backfill every second, not every 30.
    scheduling = {"SchedulerParameters": "bf_interval=1", **(scheduling or {})}
    if scheduling:
        lines.append("[scheduling]")
        for key, value in scheduling.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    # Unix socket paths are limited to 108 bytes; keep them short.
    run = d / "run"
    run.mkdir(exist_ok=True)
    for i in range(replicas):
        lines += [
            "[[replica]]",
            f"id = {i + 1}",
            f'raft = "127.0.0.1:{ports[i]}"',
            f'socket = "{run / f"ctld-{i + 1}.sock"}"',
            *([f'rpc = "127.0.0.1:{ports[replicas + i]}"'] if tls else []),
            "",
        ]
    path = d / "spur.toml"
    path.write_text("\n".join(lines) + extra)
    return path


def _current_user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def client_cert_paths(directory: str | os.PathLike[str], user: str) -> tuple[str, str]:
    """(certificate, key) of ``user``'s client certificate in a ``tls`` local cluster."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
    d = Path(directory).resolve() / "tls"
    return str(d / f"client-{safe}.pem"), str(d / f"client-{safe}.key")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_setting(text: str) -> tuple[str, Any]:
    """``key=value`` from ``spur local up --set``: numbers and true/false as such."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    value = value.strip()
    if value in ("true", "false"):
        return key.strip(), value == "true"
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            pass
    return key.strip(), value


def _wait(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class LocalCluster:
    """Handle on a loopback cluster rooted at ``directory`` (its spur.toml must exist)."""

    def __init__(self, directory: str | os.PathLike[str], *, python: str = sys.executable) -> None:
        self.dir = Path(directory).resolve()
        self.config_path = self.dir / "spur.toml"
        self.config: Config = load(self.config_path)
        self.python = python
        self.pid_dir = self.dir / "pids"
        self.log_dir = self.dir / "logs"
        self.pid_dir.mkdir(exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # --- environment -------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SPUR_CONF"] = str(self.config_path)
        bindir = os.path.dirname(self.python)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        return env

    def client(self, **kwargs: Any) -> Client:
        return Client(self.config, **kwargs)

    def client_cert(self, user: str) -> dict[str, str]:
        """``SPUR_CERT``/``SPUR_KEY`` for ``user``'s certificate (a ``tls`` cluster)."""
        cert, key = client_cert_paths(self.dir, user)
        return {"SPUR_CERT": cert, "SPUR_KEY": key}

    # --- daemons -----------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.pid_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        try:
            pid = int(self._pid_file(name).read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _spawn(self, name: str, args: list[str]) -> int:
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [self.python, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=self.env, cwd=str(self.dir),
        )
        log.close()
        self.procs[name] = proc
        self._pid_file(name).write_text(str(proc.pid))
        return proc.pid

    def start_replica(self, rid: int) -> int:
        return self._spawn(f"ctld-{rid}", ["-m", "spurctld.main", "--config", str(self.config_path), "--id", str(rid)])

    def node_names(self) -> list[str]:
        import tomllib

        raw = tomllib.loads(self.config_path.read_text())
        n = int(raw.get("local", {}).get("nodes", 1))
        return [f"node{i + 1}" for i in range(n)]

    def node_cpus(self) -> int:
        import tomllib

        raw = tomllib.loads(self.config_path.read_text())
        return int(raw.get("local", {}).get("cpus", 2))

    def node_mem(self) -> int:
        import tomllib

        raw = tomllib.loads(self.config_path.read_text())
        return int(raw.get("local", {}).get("mem_mb", 4096))

    def start_agent(self, name: str, cpus: int | None = None, mem_mb: int | None = None) -> int:
        cpus = self.node_cpus() if cpus is None else cpus
        mem_mb = self.node_mem() if mem_mb is None else mem_mb
        sock = self.dir / "run" / f"{name}.sock"
        return self._spawn(
            name,
            ["-m", "spurd.main", "--config", str(self.config_path), "--name", name, "--cpus", str(cpus),
             "--mem", str(mem_mb), "--socket", str(sock), *(["-v"] if os.environ.get("SPURD_VERBOSE") else [])],
        )

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        pid = self.pid(name)
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        proc = self.procs.get(name)
        if proc is not None:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            _wait(lambda: not _alive(pid), 15, f"{name} (pid {pid}) to exit")

    def up(self, timeout: float = 30.0) -> None:
        """Start whatever is not running yet, then wait for a leader, every replica's answer
        (two replicas elect a leader while the third may still be starting: a caller that
        talks to each replica's socket must find them all), and idle nodes."""
        for r in self.config.replicas:
            if self.pid(f"ctld-{r.id}") is None:
                self.start_replica(r.id)
        self.wait_leader(timeout)
        _wait(lambda: all(self.ping(r.id) is not None for r in self.config.replicas), timeout,
              "every replica to answer")
        for name in self.node_names():
            if self.pid(name) is None:
                self.start_agent(name)
        self.wait_nodes(self.node_names(), timeout)

    def down(self) -> None:
        """Stop everything this cluster started: its jobs, its agents, its replicas."""
        self.stop_jobs()
        for name in self.node_names():
            self.kill(name)
        for r in self.config.replicas:
            self.kill(f"ctld-{r.id}")

    def job_supervisors(self) -> list[int]:
        """Pids of the live job supervisors under this cluster's agent spools."""
        pids = []
        for pid_file in Path(self.config.agent_dir).glob("*/jobs/*/*/supervisor.pid"):
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
            if is_supervisor_of(pid, pid_file.parent):
                pids.append(pid)
        return pids

    def stop_jobs(self, grace: float = 10.0) -> None:
        """End every running job (a supervisor's SIGTERM is Slurm's kill sequence), so that
        nothing outlives the cluster; supervisors survive their agent by design."""
        pids = self.job_supervisors()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            _wait(lambda: not any(_alive(p) for p in pids), grace, "job supervisors to finish")
        except TimeoutError:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # --- status ------------------------------------------------------------------------

    def ping(self, rid: int, timeout: float = 1.0) -> dict[str, Any] | None:
        sock = self.config.replica(rid).socket
        try:
            with SyncClient.unix(sock, timeout=timeout) as c:
                return c.call("ping", {})
        except (RpcError, ConnectionFailed, OSError):
            return None

    def leader(self) -> int | None:
        for r in self.config.replicas:
            info = self.ping(r.id)
            if info and info.get("ready"):
                return r.id
        return None

    def wait_leader(self, timeout: float = 30.0) -> int:
        return _wait(self.leader, timeout, "a leader")

    def wait_nodes(self, names: list[str], timeout: float = 30.0) -> None:
        def ready() -> bool:
            try:
                with self.client(retry_for=1.0) as c:
                    nodes = {n["name"]: n for n in c.call("nodes")["nodes"]}
            except RpcError:
                return False
            # registered and responding (UNKNOWN: configured, no agent yet)
            return all(n in nodes and nodes[n]["state"] not in ("DOWN", "UNKNOWN") and not nodes[n].get("not_responding")
                       for n in names)

        _wait(ready, timeout, f"nodes {names} to register", interval=0.05)

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for r in self.config.replicas:
            name = f"ctld-{r.id}"
            info = self.ping(r.id) if self.pid(name) else None
            role = "down" if self.pid(name) is None else ("leader" if info and info.get("leader") else "follower")
            rows.append({"name": name, "pid": self.pid(name), "address": r.raft, "socket": r.socket, "role": role})
        for name in self.node_names():
            rows.append({
                "name": name, "pid": self.pid(name), "address": str(self.dir / "run" / f"{name}.sock"),
                "role": "agent" if self.pid(name) else "down",
            })
        return rows

    def digests(self) -> dict[int, tuple[str, int]]:
        out = {}
        for r in self.config.replicas:
            try:
                with SyncClient.unix(r.socket, timeout=5) as c:
                    d = c.call("digest", {})
                out[r.id] = (d["digest"], d["applied_index"])
            except (RpcError, OSError):
                pass
        return out

    def write_status(self) -> None:
        (self.dir / "status.json").write_text(json.dumps(self.status(), indent=2))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
