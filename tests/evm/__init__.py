"""Tests of fedledger.evm (embedded py-evm and anvil)."""
