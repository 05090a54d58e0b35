"""The typed ledgers against a running 3-org dev network (real gRPC, TLS, chaincode)."""

import pytest

from fedledger.devnet.orderer import OrdererSettings
from tests.fabric.conftest import devnet, devnet_root

__all__ = ["devnet", "devnet_orderer", "devnet_root"]


@pytest.fixture(scope="package")
def devnet_orderer() -> OrdererSettings:
    return OrdererSettings.fast()
