"""A blocking client for the controller (an I/O edge module of spurcore, beside rpc.py),
for command-line tools and embedding.

It tries the configured replicas in order; any replica accepts any request (followers
forward to the leader). ``no_leader`` answers and unreachable replicas are retried for a
bounded time, after which ``ControllerUnavailable`` says how many replicas answered:
``controller unavailable: no leader (N of M replicas reachable)``.

Writes carry a ``request_id`` that stays the same across retries, so a retried submit
after a leader crash returns the first job's id instead of creating a second job.
"""

from __future__ import annotations

import os
import time

from spurcore.config import Config, ReplicaConfig
from spurcore.rpc import ConnectionFailed, RpcError, RpcTimeout, SyncClient

TYPE_CHECKING = False  # annotations only: typing costs start-up time on the CLI path
if TYPE_CHECKING:
    from typing import Any

RETRYABLE = {"no_leader", "not_ready", "leader_changed", "timeout", "unknown_outcome"}


class ControllerUnavailable(Exception):
    """Not an RpcError on purpose: commands that prefix controller errors with their own
    words (``slurm_load_jobs error: ...``) let this one through unchanged."""

    code = "controller_unavailable"

    def __init__(self, reachable: int, total: int) -> None:
        self.message = f"controller unavailable: no leader ({reachable} of {total} replicas reachable)"
        super().__init__(self.message)


def new_request_id() -> str:
    """A unique id for one write; its retries reuse it (128 random bits, like a uuid4)."""
    return os.urandom(16).hex()


class Client:
    def __init__(self, config: Config, *, timeout: float = 10.0, retry_for: float = 10.0) -> None:
        self.config = config
        self.timeout = timeout
        self.retry_for = retry_for
        self._conn: SyncClient | None = None
        self._conn_replica: ReplicaConfig | None = None

    def _connect(self, replica: ReplicaConfig) -> SyncClient:
        if replica.socket and os.path.exists(replica.socket):
            return SyncClient.unix(replica.socket, timeout=self.timeout)
        if replica.rpc:
            from spurcore.rpc import client_ssl_context

            host, _, port = replica.rpc.rpartition(":")
            cert = os.environ.get("SPUR_CERT") or None
            key = os.environ.get("SPUR_KEY") or None
            ctx = client_ssl_context(cert, key, self.config.tls_ca) if self.config.tls_ca else None
            return SyncClient.tcp(host, int(port), timeout=self.timeout, ssl_context=ctx)
        raise ConnectionFailed(f"replica {replica.id}: socket {replica.socket} does not exist")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Call ``method`` on the cluster, retrying other replicas and leaderless moments."""
        params = params or {}
        deadline = time.monotonic() + self.retry_for
        delay = 0.02
        while True:
            reachable = 0
            replicas = list(self.config.replicas)
            if self._conn_replica is not None:  # the last replica that answered goes first
                replicas.remove(self._conn_replica)
                replicas.insert(0, self._conn_replica)
            for replica in replicas:
                try:
                    if self._conn is None or self._conn_replica is not replica:
                        self.close()
                        self._conn = self._connect(replica)
                        self._conn_replica = replica
                    reachable += 1
                    return self._conn.call(method, params, timeout=timeout or self.timeout)
                except RpcTimeout:
                    self.close()
                    reachable -= 1
                    continue
                except ConnectionFailed:
                    self.close()
                    continue
                except RpcError as exc:
                    if exc.code in RETRYABLE:
                        continue
                    raise
            if time.monotonic() >= deadline:
                raise ControllerUnavailable(max(0, reachable), len(self.config.replicas))
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
