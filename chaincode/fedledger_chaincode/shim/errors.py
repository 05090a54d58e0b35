"""Errors of the chaincode side of the shim protocol.

The chaincode package deploys on its own, so these are not ``fedledger.fabric`` errors:
``ShimError`` is the root a contract catches for anything the shim or the peer refused.
"""

from __future__ import annotations

from fedledger.protocol.errors import FedLedgerError


class ShimError(FedLedgerError):
    """Root of every error raised by ``fedledger_chaincode.shim``."""


class PeerError(ShimError):
    """The peer answered a state request with ERROR (the message is the peer's text).

    Raised, never returned: a contract must not mistake a refusal for a stored value.
    """


class StreamClosedError(ShimError):
    """The stream to the peer ended while a transaction was waiting on it."""


class InvalidArgumentError(ShimError, ValueError):
    """A key, collection or event name the shim refuses before asking the peer."""


__all__ = ["InvalidArgumentError", "PeerError", "ShimError", "StreamClosedError"]
