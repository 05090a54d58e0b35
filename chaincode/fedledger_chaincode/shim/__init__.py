"""Chaincode side of Fabric's shim protocol, served as chaincode-as-a-service.

Written on the official protos instead of fabric-chaincode-python, whose shim corrupts
the stream under concurrent transactions, drops chaincode events, returns a peer ERROR
as a value and stubs private data, transient data and state-based endorsement.
"""

from __future__ import annotations

from fedledger_chaincode.shim.errors import (
    InvalidArgumentError,
    PeerError,
    ShimError,
    StreamClosedError,
)
from fedledger_chaincode.shim.handler import ChaincodeHandler
from fedledger_chaincode.shim.interfaces import (
    ERROR,
    ERROR_THRESHOLD,
    OK,
    Chaincode,
    Response,
    error,
    success,
)
from fedledger_chaincode.shim.server import ChaincodeServer, TLSConfig, serve
from fedledger_chaincode.shim.stub import (
    VALIDATION_PARAMETER,
    ChaincodeStub,
    StateQueryIterator,
    create_composite_key,
    split_composite_key,
)

__all__ = [
    "ERROR", "ERROR_THRESHOLD", "OK", "VALIDATION_PARAMETER", "Chaincode", "ChaincodeHandler",
    "ChaincodeServer", "ChaincodeStub", "InvalidArgumentError", "PeerError", "Response",
    "ShimError", "StateQueryIterator", "StreamClosedError", "TLSConfig", "create_composite_key",
    "error", "serve", "split_composite_key", "success",
]
