"""The chaincode object the shim serves: both contracts, ``consortium`` by default.

One package for both channel kinds (DESIGN.md, "Ledgers"): a consortium channel
calls ``consortium:*``, an org's private channel calls ``private:*``.
"""

from __future__ import annotations

from .contract import ContractChaincode
from .contracts import ConsortiumContract, PrivateContract


def build_chaincode() -> ContractChaincode:
    """A fresh chaincode object with both contracts."""
    return ContractChaincode([ConsortiumContract(), PrivateContract()], default="consortium")
