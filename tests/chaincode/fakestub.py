"""An in-memory stand-in for the shim's stub and the peer around it (unit tests only).

:class:`FakeStub` follows the documented async stub API (docs/fabric.md, "Chaincode
stub") with Fabric's semantics where the contracts could notice them: composite keys
are ``\\x00type\\x00attr\\x00...``, reads see committed state only (no read-your-own-
writes), writes collect in a write set, one event per transaction (last one wins),
range results are async iterators of ``queryresult.KV``.

:class:`FakeLedger` plays the peer: it runs one transaction per call and commits the
write set only when the chaincode answered 200, like a peer discarding failed
simulations -- tests still inspect ``last_stub`` to show a failure wrote nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fabric_protos.ledger.queryresult import kv_query_result_pb2
from google.protobuf import timestamp_pb2

MIN_UNICODE = "\x00"
MAX_UNICODE = "\U0010ffff"


class FakeStub:
    """One transaction's view of the world state."""

    def __init__(self, state: dict[str, bytes], *, msp_id: str, args: list[bytes],
                 tx_id: str, seconds: int, channel_id: str = "test") -> None:
        self._state = state
        self._msp_id = msp_id
        self._args = args
        self._seconds = seconds
        self.tx_id = tx_id
        self.channel_id = channel_id
        self.writes: dict[str, bytes | None] = {}
        self.event: tuple[str, bytes] | None = None

    def get_args(self) -> list[bytes]:
        return list(self._args)

    def get_creator_msp_id(self) -> str:
        return self._msp_id

    def get_tx_timestamp(self) -> timestamp_pb2.Timestamp:
        return timestamp_pb2.Timestamp(seconds=self._seconds, nanos=0)

    async def get_state(self, key: str) -> bytes:
        return self._state.get(key, b"")  # Fabric: a missing key reads as empty bytes

    async def put_state(self, key: str, value: bytes) -> None:
        if not value:
            raise ValueError("put_state with an empty value")
        self.writes[key] = bytes(value)

    async def del_state(self, key: str) -> None:
        self.writes[key] = None

    def set_event(self, name: str, payload: bytes) -> None:
        self.event = (name, payload)

    def create_composite_key(self, object_type: str, attrs: list[str]) -> str:
        for part in [object_type, *attrs]:
            if MIN_UNICODE in part or MAX_UNICODE in part:
                raise ValueError(f"invalid composite key part {part!r}")
        return MIN_UNICODE + object_type + MIN_UNICODE + "".join(a + MIN_UNICODE for a in attrs)

    def split_composite_key(self, key: str) -> tuple[str, list[str]]:
        parts = key[1:].split(MIN_UNICODE)[:-1]
        return parts[0], parts[1:]

    def get_state_by_range(self, start: str, end: str) -> AsyncIterator[kv_query_result_pb2.KV]:
        return self._iterate(start, end)

    def get_state_by_partial_composite_key(
            self, object_type: str, attrs: list[str]) -> AsyncIterator[kv_query_result_pb2.KV]:
        start = self.create_composite_key(object_type, attrs)
        return self._iterate(start, start + MAX_UNICODE)

    async def _iterate(self, start: str, end: str) -> AsyncIterator[kv_query_result_pb2.KV]:
        for key in sorted(self._state):
            if key >= start and (not end or key < end):
                yield kv_query_result_pb2.KV(namespace="fedledger", key=key,
                                             value=self._state[key])


@dataclass
class Result:
    status: int
    message: str
    payload: bytes
    event: tuple[str, Any] | None

    def json(self) -> Any:
        assert self.status == 200, self.message
        return json.loads(self.payload)


@dataclass
class FakeLedger:
    """Committed world state plus a clock; ``call`` runs one transaction."""

    chaincode: Any
    state: dict[str, bytes] = field(default_factory=dict)
    seconds: int = 1_767_225_600  # 2026-01-01T00:00:00Z
    last_stub: FakeStub | None = None
    _tx: int = 0

    def call(self, msp_id: str, function: str, *args: str | bytes, init: bool = False) -> Result:
        self._tx += 1
        raw = [a if isinstance(a, bytes) else a.encode() for a in (function, *args)]
        stub = FakeStub(self.state, msp_id=msp_id, args=raw, tx_id=f"tx{self._tx}",
                        seconds=self.seconds)
        self.last_stub = stub
        handler = self.chaincode.init if init else self.chaincode.invoke
        response = asyncio.run(handler(stub))
        if response.status == 200:
            for key, value in stub.writes.items():
                if value is None:
                    self.state.pop(key, None)
                else:
                    self.state[key] = value
        event = None if stub.event is None else (stub.event[0], json.loads(stub.event[1]))
        return Result(response.status, response.message, response.payload, event)
