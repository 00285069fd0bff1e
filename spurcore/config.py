"""``spur.toml``: where the replicas, agents and state live.

Example::

    [cluster]
    name = "spur"
    state_dir = "/var/lib/spur"      # each replica uses state_dir/ctld-<id>
    secret_file = "/etc/spur/secret" # pysyncobj's shared secret (replica traffic)
    kill_wait = 30                   # Slurm's KillWait (seconds)
    suspend_grace = 2                # SIGTSTP -> SIGSTOP on suspend
    min_job_age = 300                # Slurm's MinJobAge
    node_timeout = 30                # an agent silent this long goes DOWN
    heartbeat_interval = 2

    [tls]                            # optional: TCP clients need a certificate
    ca = "/etc/spur/ca.pem"
    cert = "/etc/spur/ctld.pem"
    key = "/etc/spur/ctld.key"

    [[replica]]
    id = 1
    raft = "10.0.0.1:6821"
    socket = "/run/spur/ctld.sock"   # local clients (peer uid is the identity)
    rpc = "10.0.0.1:6817"            # TLS clients

    [auth]
    operators = [1001]

Relative paths are taken relative to the file's directory. The module only parses; it
reads the file it is given and nothing else.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import attrs


class ConfigError(ValueError):
    pass


@attrs.frozen
class ReplicaConfig:
    id: int
    raft: str
    socket: str = ""
    rpc: str = ""

    @property
    def endpoint(self) -> str:
        return f"unix:{self.socket}" if self.socket else f"tcp:{self.rpc}"


@attrs.frozen
class Config:
    path: str
    name: str
    state_dir: str
    secret_file: str
    replicas: tuple[ReplicaConfig, ...]
    kill_wait: float = 30.0
    suspend_grace: float = 2.0
    min_job_age: float = 300.0
    node_timeout: float = 30.0
    heartbeat_interval: float = 2.0
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    operators: tuple[int, ...] = ()
    raft_min_timeout: float = 0.15
    raft_max_timeout: float = 0.45
    leader_fallback_timeout: float = 2.0
    compaction_entries: int = 20000
    agent_dir: str = ""  # default spool root for agents: state_dir/agents

    def replica(self, rid: int) -> ReplicaConfig:
        for r in self.replicas:
            if r.id == rid:
                return r
        raise ConfigError(f"{self.path}: no replica with id {rid}")

    def replica_dir(self, rid: int) -> str:
        return os.path.join(self.state_dir, f"ctld-{rid}")

    def read_secret(self) -> str:
        try:
            secret = Path(self.secret_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {self.secret_file}: {exc.strerror}") from exc
        if not secret:
            raise ConfigError(f"secret file {self.secret_file} is empty")
        return secret


def _resolve(base: Path, value: str) -> str:
    if not value:
        return ""
    p = Path(value)
    return str(p if p.is_absolute() else (base / p))


def load(path: str | os.PathLike[str]) -> Config:
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw: dict[str, Any] = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    base = path.resolve().parent
    cluster = raw.get("cluster", {})
    tls = raw.get("tls", {})
    auth = raw.get("auth", {})
    replicas = []
    for r in raw.get("replica", []):
        try:
            replicas.append(
                ReplicaConfig(int(r["id"]), str(r["raft"]), _resolve(base, r.get("socket", "")), r.get("rpc", ""))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: bad [[replica]] entry {r!r}") from exc
    if not replicas:
        raise ConfigError(f"{path}: no [[replica]] entries")
    state_dir = _resolve(base, cluster.get("state_dir", "state"))
    try:
        return Config(
            path=str(path),
            name=str(cluster.get("name", "spur")),
            state_dir=state_dir,
            secret_file=_resolve(base, cluster.get("secret_file", "secret")),
            replicas=tuple(replicas),
            kill_wait=float(cluster.get("kill_wait", 30)),
            suspend_grace=float(cluster.get("suspend_grace", 2)),
            min_job_age=float(cluster.get("min_job_age", 300)),
            node_timeout=float(cluster.get("node_timeout", 30)),
            heartbeat_interval=float(cluster.get("heartbeat_interval", 2)),
            tls_ca=_resolve(base, tls.get("ca", "")),
            tls_cert=_resolve(base, tls.get("cert", "")),
            tls_key=_resolve(base, tls.get("key", "")),
            operators=tuple(int(u) for u in auth.get("operators", [])),
            raft_min_timeout=float(cluster.get("raft_min_timeout", 0.15)),
            raft_max_timeout=float(cluster.get("raft_max_timeout", 0.45)),
            leader_fallback_timeout=float(cluster.get("leader_fallback_timeout", 2.0)),
            compaction_entries=int(cluster.get("compaction_entries", 20000)),
            agent_dir=_resolve(base, cluster.get("agent_dir", "")) or os.path.join(state_dir, "agents"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def find_config_path(env: dict[str, str] | None = None, cwd: str | None = None) -> str | None:
    """``SPUR_CONF``, else ``./spur.toml``, else ``/etc/spur/spur.toml``."""
    env = os.environ if env is None else env
    if env.get("SPUR_CONF"):
        return env["SPUR_CONF"]
    local = os.path.join(cwd or os.getcwd(), "spur.toml")
    if os.path.exists(local):
        return local
    if os.path.exists("/etc/spur/spur.toml"):
        return "/etc/spur/spur.toml"
    return None
