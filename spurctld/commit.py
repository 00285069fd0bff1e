"""Group commit: every op a request or the leader proposes joins the next replicated entry.

``propose`` queues an op and returns a future; one ``_flush`` per event-loop turn packs
everything queued (at most ``MAX_BATCH`` ops an entry) into one log entry, so a burst of
submissions shares one Raft round and one fsync. The future gets the op's result once the
entry is committed and durable on a majority (``Replica.propose``'s callback); ``commit``
turns a ``Rejected`` result into the RpcError with Slurm's words.
"""

from __future__ import annotations

import asyncio
from typing import Any

from spurcore.codec import encode_batch
from spurcore.ops import Op
from spurcore.reduce import Rejected
from spurctld.replica import Replica
from spurio.rpc import RpcError

MAX_BATCH = 4000


class GroupCommit:
    """Mixed into Controller: its loop and replica."""

    loop: asyncio.AbstractEventLoop | None
    replica: Replica | None
    _queue: list[tuple[Op, asyncio.Future[Any]]]
    _flush_scheduled: bool

    def propose(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op`` for the next replicated entry; the future gets its result."""
        assert self.loop is not None
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._queue.append((op, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        assert self.replica is not None and self.loop is not None
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            futures = [f for _, f in batch]
            if self.replica.leader_address() is None:
                for f in futures:
                    if not f.done():
                        f.set_exception(RpcError("no_leader", "no leader"))
                continue

            def done(
                results: list[Any] | None, err: str | None, futures: list = futures, loop: Any = self.loop
            ) -> None:
                loop.call_soon_threadsafe(self._resolve, futures, results, err)

            self.replica.propose(encode_batch(op for op, _ in batch), done)

    @staticmethod
    def _resolve(futures: list[asyncio.Future[Any]], results: list[Any] | None, err: str | None) -> None:
        for i, fut in enumerate(futures):
            if fut.done():
                continue
            if err is not None or results is None:
                fut.set_exception(RpcError(err or "unknown_outcome", err or "unknown outcome"))
            else:
                fut.set_result(results[i])

    async def commit(self, op: Op, timeout: float = 5.0) -> Any:
        """Propose and wait; a ``Rejected`` result becomes an RpcError with Slurm's words."""
        try:
            result = await asyncio.wait_for(self.propose(op), timeout)
        except TimeoutError:
            raise RpcError("timeout", "timed out waiting for the log to commit") from None
        if isinstance(result, Rejected):
            raise RpcError(result.code, result.message)
        return result
