"""What the shim expects of a chaincode, and helpers to build its answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from fabric_protos.peer.proposal_response_pb2 import Response

if TYPE_CHECKING:
    from fedledger_chaincode.shim.stub import ChaincodeStub

# Fabric's thresholds (shim.OK / shim.ERRORTHRESHOLD / shim.ERROR).
OK = 200
ERROR_THRESHOLD = 400
ERROR = 500


class Chaincode(Protocol):
    """A chaincode: one call per transaction, many calls in flight at once."""

    async def init(self, stub: ChaincodeStub) -> Response:
        """Run for an INIT message (``ChaincodeInput.is_init``)."""
        ...

    async def invoke(self, stub: ChaincodeStub) -> Response:
        """Run for a TRANSACTION message."""
        ...


def success(payload: bytes = b"") -> Response:
    """A 200 response carrying ``payload``."""
    return Response(status=OK, payload=payload)


def error(message: str, status: int = ERROR) -> Response:
    """An error response; the endorser refuses to endorse any status >= 400."""
    return Response(status=status, message=message)


__all__ = ["ERROR", "ERROR_THRESHOLD", "OK", "Chaincode", "Response", "error", "success"]
