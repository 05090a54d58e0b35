"""Open the chain a config names: :func:`connect` (config -> :class:`Chain`)."""

from __future__ import annotations

from fedledger.evm.backends import EmbeddedBackend, RpcBackend
from fedledger.evm.chain import Chain
from fedledger.evm.config import EvmConfig


def connect(config: EvmConfig | None = None, *, dev_keys: list[str] | None = None) -> Chain:
    """Open the chain the config names (embedded by default)."""
    config = config or EvmConfig()
    if config.backend == "embedded":
        return Chain(EmbeddedBackend(), config)
    assert config.rpc_url is not None and config.chain_id is not None  # validated by EvmConfig
    return Chain(RpcBackend(config.rpc_url, config.chain_id, timeout_s=config.rpc_timeout_s,
                            dev_keys=dev_keys), config)
