"""Configuration of the EVM connection (the ``evm`` section of the project config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fedledger.settings import FrozenSection

GWEI = 10**9


class EvmConfig(FrozenSection):
    """Which chain, and how transactions are sent to it.

    ``backend``: ``"embedded"`` (in-process py-evm through eth-tester; the default for tests,
    the demo and a single machine) or ``"rpc"`` (any JSON-RPC node: anvil, geth, a testnet).
    ``chain_id`` is required for ``rpc`` and checked against ``eth_chainId`` at connect time.
    ``confirmations``: blocks that must include-or-follow the receipt's block before a
    transaction counts as done (``head - receipt_block + 1 >= confirmations``; 0 and 1 both
    mean "the receipt is enough").
    ``max_fee_per_gas_gwei``: refuse to send when ``2 * baseFee + tip`` exceeds it.
    ``max_priority_fee_gwei``: the tip; ``None`` asks the node (``eth_maxPriorityFeePerGas``).
    """

    backend: Literal["embedded", "rpc"] = "embedded"
    rpc_url: str | None = None
    chain_id: int | None = Field(default=None, gt=0)
    confirmations: int = Field(default=1, ge=0)
    max_fee_per_gas_gwei: float = Field(default=200.0, gt=0)
    max_priority_fee_gwei: float | None = Field(default=None, ge=0)
    gas_limit_multiplier: float = Field(default=1.2, ge=1.0, le=10.0)
    receipt_timeout_s: float = Field(default=120.0, gt=0)
    poll_interval_s: float = Field(default=0.1, gt=0)
    rpc_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _rpc_needs_url_and_chain_id(self) -> EvmConfig:
        if self.backend == "rpc":
            if not self.rpc_url:
                raise ValueError("backend 'rpc' needs rpc_url")
            if self.chain_id is None:
                raise ValueError("backend 'rpc' needs chain_id (checked against eth_chainId)")
        return self

    @property
    def max_fee_per_gas_wei(self) -> int:
        return int(self.max_fee_per_gas_gwei * GWEI)

    @property
    def max_priority_fee_wei(self) -> int | None:
        return None if self.max_priority_fee_gwei is None else int(self.max_priority_fee_gwei * GWEI)
