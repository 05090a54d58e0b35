"""Commit notifications inside the dev peer: commit-status waiters and block listeners.

Every block yields its :class:`BlockEvents`, the config block (block 0) too, with no
events: a listener from block 0 passes over it as a Fabric gateway does."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fabric_protos.common import common_pb2
from fabric_protos.peer import chaincode_event_pb2, transaction_pb2

from fedledger.devnet.blocks import parse_transaction, transactions_filter
from fedledger.devnet.ledger import Ledger

VALID = transaction_pb2.TxValidationCode.VALID


@dataclass(frozen=True)
class BlockEvents:
    """The chaincode events of one committed block's valid transactions, in order."""

    block_number: int
    events: list[chaincode_event_pb2.ChaincodeEvent]


def block_events(block) -> BlockEvents:  # noqa: ANN001 - common_pb2.Block
    codes = transactions_filter(block)
    events = []
    for envelope, code in zip(block.data.data, codes, strict=True):
        if code != VALID:
            continue
        parsed = parse_transaction(envelope)
        if parsed.header_type != common_pb2.HeaderType.ENDORSER_TRANSACTION:
            continue  # a config transaction: no chaincode events
        if parsed.chaincode_event:
            event = chaincode_event_pb2.ChaincodeEvent()
            event.ParseFromString(parsed.chaincode_event)
            events.append(event)
    return BlockEvents(block.header.number, events)


class CommitNotifier:
    """Wakes commit-status waiters and streams blocks to listeners, for one channel."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._waiters: dict[str, list[asyncio.Future[tuple[int, int]]]] = defaultdict(list)
        self._listeners: set[asyncio.Queue[BlockEvents | None]] = set()

    async def wait_for(self, tx_id: str) -> tuple[int, int]:
        """(validation code, block number) once ``tx_id`` is committed."""
        status = self.ledger.tx_status(tx_id)
        if status is not None:
            return status
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._waiters[tx_id].append(future)
        try:
            return await future
        finally:
            waiters = self._waiters.get(tx_id)
            if waiters is not None:
                if future in waiters:
                    waiters.remove(future)
                if not waiters:
                    del self._waiters[tx_id]

    def committed(self, block_number: int, tx_ids: list[str], codes: list[int],
                  events: BlockEvents) -> None:
        for tx_id, code in zip(tx_ids, codes, strict=True):
            # A duplicate tx id keeps the status of the transaction that committed first.
            if code == transaction_pb2.TxValidationCode.DUPLICATE_TXID:
                continue
            for future in self._waiters.pop(tx_id, ()):
                if not future.done():
                    future.set_result((code, block_number))
        for queue in self._listeners:
            queue.put_nowait(events)

    async def blocks_from(self, start: int | None) -> AsyncIterator[BlockEvents]:
        """Block events from ``start`` (None: the next block committed) onwards, forever."""
        queue: asyncio.Queue[BlockEvents | None] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            next_number = self.ledger.height if start is None else start
            while next_number < self.ledger.height:  # history first, then live blocks
                yield block_events(self.ledger.block(next_number))
                next_number += 1
            while True:
                item = await queue.get()
                if item is None:
                    return
                if item.block_number < next_number:
                    continue
                yield item
                next_number = item.block_number + 1
        finally:
            self._listeners.discard(queue)

    def close(self) -> None:
        for queue in self._listeners:
            queue.put_nowait(None)
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.cancel()
        self._waiters.clear()
