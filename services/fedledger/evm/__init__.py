"""The EVM side of fedledger: chain backends (embedded py-evm, JSON-RPC), transaction
sending with nonces/fees/confirmations (:class:`Chain`), the project's EIP-712 typed data
(:mod:`fedledger.evm.typed_data`) and thin clients of the AnchorRegistry and Staking
contracts (:mod:`fedledger.evm.contracts`). Knows nothing of ML (see docs/architecture.md).

    from fedledger.evm import EvmConfig, connect
    chain = connect(EvmConfig())                     # embedded, in process
    chain = connect(EvmConfig(backend="rpc", rpc_url="http://127.0.0.1:8545", chain_id=31337))
"""

from fedledger.evm.artifact_loader import Artifact, load_artifact
from fedledger.evm.backends import EmbeddedBackend, RpcBackend
from fedledger.evm.chain import Chain, PreparedTx
from fedledger.evm.config import EvmConfig
from fedledger.evm.connection import connect
from fedledger.evm.errors import (
    ArtifactError,
    ChainIdMismatchError,
    ConfirmationTimeoutError,
    EvmError,
    FeeCapExceededError,
    NonceError,
    RevertError,
    RpcUnavailableError,
)

__all__ = [
    "Artifact", "ArtifactError", "Chain", "ChainIdMismatchError", "ConfirmationTimeoutError",
    "EmbeddedBackend", "EvmConfig", "EvmError", "FeeCapExceededError", "NonceError", "PreparedTx",
    "RevertError", "RpcBackend", "RpcUnavailableError", "connect", "load_artifact",
]
