"""Ordering for the dev peer: a single-node block cutter, like Fabric's solo/raft leader.

Envelopes are queued in arrival order and cut into a block when ``max_batch`` are
waiting or ``batch_timeout`` has passed since the first one. Blocks are handed to the
committer one at a time, so while one block is validated and written the next one
fills up: under load, blocks grow and per-transaction costs shrink.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fedledger.fabric.errors import SubmitError

CommitBatch = Callable[[list[bytes]], Awaitable[None]]


class BlockCutter:
    def __init__(self, commit: CommitBatch, *, max_batch: int = 500,
                 batch_timeout: float = 0.002, max_pending: int = 100_000) -> None:
        self._commit = commit
        self.max_batch = max_batch
        self.batch_timeout = batch_timeout
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max_pending)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="block-cutter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def order(self, envelope: bytes, tx_id: str) -> None:
        if self._task is None:
            raise SubmitError("orderer is not running", tx_id=tx_id, step="submit")
        try:
            self._queue.put_nowait(envelope)
        except asyncio.QueueFull:
            raise SubmitError("orderer queue is full; retry later", tx_id=tx_id,
                              step="submit") from None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._queue.qsize() + 1 < self.max_batch:
                # One timer per block, not one per envelope: let the batch fill up.
                await asyncio.sleep(self.batch_timeout)
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)
