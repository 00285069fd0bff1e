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
    max_array_size = 1001            # Slurm's MaxArraySize (array indexes 0..1000)
    job_requeue = 1                  # Slurm's JobRequeue: may batch jobs be requeued by default
    kill_invalid_depend = false      # SchedulerParameters=kill_invalid_depend
    requeue_delay = 121              # a requeued job's BeginTime: now + this (Slurm: cred_expire + 1)
    fence_timeout = 15               # an agent out of touch with a quorum this long kills its jobs;
                                     # default node_timeout / 2, 0 = off (then no requeue on NODE_FAIL)

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

    # The nodes, partitions and scheduling settings, with Slurm's keys (admin guide):
    slurm_conf = "/etc/slurm/slurm.conf"   # in [cluster]: an existing slurm.conf (+ gres.conf beside it)
    [[node]]                               # and/or tables here
    NodeName = "node[1-4]"
    CPUs = 16
    RealMemory = 64000
    [[partition]]
    PartitionName = "batch"
    Nodes = "ALL"
    Default = "YES"
    [scheduling]
    PriorityWeightAge = 1000

Relative paths are taken relative to the file's directory. The module only parses; it
reads the file it is given and nothing else.

Start-up time matters (every CLI command loads this): plain classes, no attrs, and a small
reader for the flat TOML subset spur.toml files use; ``tomllib`` only for anything else.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from typing import Any


class ConfigError(ValueError):
    pass


class ReplicaConfig:
    __slots__ = ("id", "raft", "socket", "rpc")

    def __init__(self, id: int, raft: str, socket: str = "", rpc: str = "") -> None:
        self.id = id
        self.raft = raft
        self.socket = socket
        self.rpc = rpc

    @property
    def endpoint(self) -> str:
        return f"unix:{self.socket}" if self.socket else f"tcp:{self.rpc}"

    def __repr__(self) -> str:
        return f"ReplicaConfig(id={self.id}, raft={self.raft!r}, socket={self.socket!r}, rpc={self.rpc!r})"


_DEFAULTS: dict[str, Any] = {
    "kill_wait": 30.0,
    "suspend_grace": 2.0,
    "min_job_age": 300.0,
    "node_timeout": 30.0,
    "heartbeat_interval": 2.0,
    "tls_ca": "",
    "tls_cert": "",
    "tls_key": "",
    "operators": (),
    "raft_min_timeout": 0.25,
    "raft_max_timeout": 0.75,
    "leader_fallback_timeout": 2.0,
    "compaction_entries": 20000,
    "agent_dir": "",  # default spool root for agents: state_dir/agents
    "max_array_size": 1001,
    "job_requeue": 1,
    "kill_invalid_depend": False,
    "requeue_delay": 121.0,
    "slurm_conf": "",
    "cluster_tables": {},
    "fence_timeout": -1.0,  # -1: node_timeout / 2
}


class Config:
    """A loaded spur.toml; read-only by convention."""

    path: str
    name: str
    state_dir: str
    secret_file: str
    replicas: tuple[ReplicaConfig, ...]
    kill_wait: float
    suspend_grace: float
    min_job_age: float
    node_timeout: float
    heartbeat_interval: float
    tls_ca: str
    tls_cert: str
    tls_key: str
    operators: tuple[int, ...]
    raft_min_timeout: float
    raft_max_timeout: float
    leader_fallback_timeout: float
    compaction_entries: int
    agent_dir: str
    max_array_size: int
    job_requeue: int
    kill_invalid_depend: bool
    requeue_delay: float
    slurm_conf: str  # a Slurm-syntax file with NodeName/PartitionName/scheduling lines ("": none)
    cluster_tables: dict[str, Any]  # spur.toml's [[node]], [[partition]], [[gres]], [scheduling], [local]
    fence_timeout: float

    def __init__(self, path: str, name: str, state_dir: str, secret_file: str,
                 replicas: tuple[ReplicaConfig, ...], **settings: Any) -> None:
        unknown = set(settings) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        self.path, self.name, self.state_dir, self.secret_file = path, name, state_dir, secret_file
        self.replicas = replicas
        for key, default in _DEFAULTS.items():
            setattr(self, key, settings.get(key, default))

    @property
    def fence(self) -> tuple[float, float]:
        """(fence timeout, fence grace): how long an agent may go without a quorum before its
        jobs are killed, and the SIGTERM -> SIGKILL grace then. Both fit inside node_timeout
        with room to spare, so the jobs are gone before the node can be declared failed.
        (0, 0): fencing is off."""
        timeout = self.node_timeout / 2 if self.fence_timeout < 0 else self.fence_timeout
        if timeout <= 0 or timeout >= self.node_timeout:
            return 0.0, 0.0
        margin = max(1.0, self.node_timeout * 0.1)
        grace = max(0.0, min(self.kill_wait, self.node_timeout - timeout - margin))
        return timeout, grace

    def replica(self, rid: int) -> ReplicaConfig:
        for r in self.replicas:
            if r.id == rid:
                return r
        raise ConfigError(f"{self.path}: no replica with id {rid}")

    def replica_dir(self, rid: int) -> str:
        return os.path.join(self.state_dir, f"ctld-{rid}")

    def read_secret(self) -> str:
        try:
            with open(self.secret_file) as f:
                secret = f.read().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {self.secret_file}: {exc.strerror}") from exc
        if not secret:
            raise ConfigError(f"secret file {self.secret_file} is empty")
        return secret


class _NotSimple(Exception):
    pass


def _simple_value(text: str) -> Any:
    s = text.strip()
    if not s:
        raise _NotSimple
    if s[0] == '"':
        end = s.find('"', 1)
        if end < 0 or "\\" in s[: end + 1]:
            raise _NotSimple
        tail = s[end + 1 :].strip()
        if tail and not tail.startswith("#"):
            raise _NotSimple
        return s[1:end]
    if s[0] == "'":
        end = s.find("'", 1)
        if end < 0:
            raise _NotSimple
        tail = s[end + 1 :].strip()
        if tail and not tail.startswith("#"):
            raise _NotSimple
        return s[1:end]
    if "#" in s:
        s = s[: s.index("#")].strip()
    if s[0] == "[":
        if not s.endswith("]"):
            raise _NotSimple
        inner = s[1:-1].strip()
        if not inner:
            return []
        return [_simple_value(p) for p in inner.split(",") if p.strip()]
    if s in ("true", "false"):
        return s == "true"
    try:
        return int(s.replace("_", ""), 10)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        raise _NotSimple from None


def _read_simple_toml(text: str) -> dict[str, Any]:
    """The subset of TOML ``spur.toml`` files use: ``[table]``, ``[[array]]``, and
    ``key = "string" | 'string' | number | bool | [flat list]`` with comments. Anything
    else raises ``_NotSimple`` and the caller uses ``tomllib`` (exact, but slower to import)."""
    root: dict[str, Any] = {}
    table = root
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            end = line.find("]]")
            if end < 0 or line[end + 2 :].strip()[:1] not in ("", "#"):
                raise _NotSimple
            name = line[2:end].strip()
            if not name or "." in name or '"' in name:
                raise _NotSimple
            arr = root.setdefault(name, [])
            if not isinstance(arr, list):
                raise _NotSimple
            table = {}
            arr.append(table)
            continue
        if line.startswith("["):
            end = line.find("]")
            if end < 0 or line[end + 1 :].strip()[:1] not in ("", "#"):
                raise _NotSimple
            name = line[1:end].strip()
            if not name or "." in name or '"' in name or name in root:
                raise _NotSimple
            table = {}
            root[name] = table
            continue
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not key or not all(c.isalnum() or c in "_-" for c in key) or key in table:
            raise _NotSimple
        table[key] = _simple_value(value)
    return root


def _resolve(base: str, value: str) -> str:
    if not value:
        return ""
    return value if os.path.isabs(value) else os.path.join(base, value)


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return _read_simple_toml(data.decode("utf-8"))
    except (_NotSimple, UnicodeDecodeError):
        import tomllib

        try:
            return tomllib.loads(data.decode("utf-8", "replace"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc


def load(path: str | os.PathLike[str]) -> Config:
    path = os.fspath(path)
    raw = read_toml(path)
    base = os.path.dirname(os.path.abspath(path))
    cluster = raw.get("cluster", {})
    tls = raw.get("tls", {})
    auth = raw.get("auth", {})
    replicas = []
    for r in raw.get("replica", []) or []:
        try:
            replicas.append(
                ReplicaConfig(int(r["id"]), str(r["raft"]), _resolve(base, r.get("socket", "")), r.get("rpc", ""))
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{path}: bad [[replica]] entry {r!r}") from exc
    if not replicas:
        raise ConfigError(f"{path}: no [[replica]] entries")
    state_dir = _resolve(base, cluster.get("state_dir", "state"))
    try:
        return Config(
            path=path,
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
            raft_min_timeout=float(cluster.get("raft_min_timeout", 0.25)),
            raft_max_timeout=float(cluster.get("raft_max_timeout", 0.75)),
            leader_fallback_timeout=float(cluster.get("leader_fallback_timeout", 2.0)),
            compaction_entries=int(cluster.get("compaction_entries", 20000)),
            agent_dir=_resolve(base, cluster.get("agent_dir", "")) or os.path.join(state_dir, "agents"),
            max_array_size=int(cluster.get("max_array_size", 1001)),
            job_requeue=int(cluster.get("job_requeue", 1)),
            kill_invalid_depend=bool(cluster.get("kill_invalid_depend", False)),
            requeue_delay=float(cluster.get("requeue_delay", 121)),
            slurm_conf=_resolve(base, cluster.get("slurm_conf", "")),
            cluster_tables={k: raw[k] for k in ("node", "partition", "gres", "scheduling", "local") if k in raw},
            fence_timeout=float(cluster.get("fence_timeout", -1)),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_cluster_conf(config: Config) -> Any:
    """The nodes, partitions and scheduling settings (a ``spurcore.slurmconf.ClusterConf``):
    ``slurm_conf`` (with its ``Include`` files and a ``gres.conf`` beside it), then the
    spur.toml tables. Without any node, the ``[local]`` section of a one-machine cluster
    names them (``node1..N``). Raises ConfigError naming the file and line."""
    import glob

    from spurcore import slurmconf

    def read_file(path: str) -> tuple[str, str]:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return path, f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc

    def include(including: str, pattern: str) -> list[tuple[str, str]]:
        if not pattern:
            raise ConfigError(f"{including}: Include without a file")
        full = pattern if os.path.isabs(pattern) else os.path.join(os.path.dirname(including), pattern)
        paths = sorted(glob.glob(full)) if any(c in full for c in "*?[") else [full]
        return [read_file(p) for p in paths]

    sources = []
    if config.slurm_conf:
        sources.append(read_file(config.slurm_conf))
        gres = os.path.join(os.path.dirname(config.slurm_conf), "gres.conf")
        if os.path.exists(gres):
            sources.append(read_file(gres))
    tables = dict(config.cluster_tables)
    local = tables.get("local") or {}
    if not tables.get("node") and not config.slurm_conf and local.get("nodes"):
        implied = slurmconf.local_tables(int(local["nodes"]), int(local.get("cpus", 2)),
                                         int(local.get("mem_mb", 4096)), int(local.get("gpus", 0)))
        tables["node"] = implied["node"]
        tables.setdefault("partition", implied["partition"])
    try:
        return slurmconf.parse(sources, include, tables)
    except slurmconf.ConfError as exc:
        raise ConfigError(f"{config.path}: {exc}") from exc


def find_config_path(env: Any = None, cwd: str | None = None) -> str | None:
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
