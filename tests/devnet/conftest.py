"""The dev network's tests share the running 3-org network of the client's tests."""

from tests.fabric.conftest import devnet, devnet_orderer, devnet_root

__all__ = ["devnet", "devnet_orderer", "devnet_root"]
