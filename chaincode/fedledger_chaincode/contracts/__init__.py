"""The contracts of the fedledger chaincode: ``consortium`` and ``private``."""

from .consortium import ConsortiumContract
from .private import PrivateContract

__all__ = ["ConsortiumContract", "PrivateContract"]
