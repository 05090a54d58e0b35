"""Chaincode events of committed VALID transactions, as a Gateway streams them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from fabric_protos.peer import chaincode_event_pb2

from fedledger.fabric.errors import FabricError
from fedledger.fabric.rpc import wrap_rpc_error


@dataclass(frozen=True)
class ChaincodeEvent:
    block_number: int
    tx_id: str
    chaincode: str
    event_name: str
    payload: bytes


class ChaincodeEvents:
    """Iterator over chaincode events; ``close()`` (or a ``with`` block) ends the stream."""

    def __init__(self, call: Any, chaincode: str) -> None:
        self._call = call
        self._chaincode = chaincode

    def __iter__(self) -> Iterator[ChaincodeEvent]:
        try:
            for response in self._call:
                for event in response.events:
                    yield _event(event, response.block_number)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED:
                return
            raise wrap_rpc_error(error, FabricError, "events", None) from None

    def close(self) -> None:
        self._call.cancel()

    def __enter__(self) -> ChaincodeEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _event(event: chaincode_event_pb2.ChaincodeEvent, block_number: int) -> ChaincodeEvent:
    return ChaincodeEvent(block_number, event.tx_id, event.chaincode_id, event.event_name,
                          event.payload)


__all__ = ["ChaincodeEvent", "ChaincodeEvents"]
