"""Typed clients of the two chaincode contracts over the Fabric Gateway: the only place
that names a chaincode function. Callers hand them records of
:mod:`fedledger.protocol.records` and get records back."""

from .calls import Call, Pending, Written, submit_together
from .consortium import ConsortiumLedger
from .private import PrivateLedger

__all__ = ["Call", "ConsortiumLedger", "Pending", "PrivateLedger", "Written", "submit_together"]
