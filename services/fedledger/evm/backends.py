"""Chain backends behind one interface, (:func:`fedledger.evm.connection.connect` opens a :class:`Chain`).

- :class:`EmbeddedBackend` (default): web3's ``EthereumTesterProvider`` over py-evm (Prague),
  in process, auto-mining one block per transaction, with prefunded dev accounts. Every
  request goes through one lock (py-evm's state is not thread safe), so threads may share it.
  ``mine(n)`` adds empty blocks (confirmations in tests), ``increase_time(s)`` moves the clock.
- :class:`RpcBackend`: HTTP JSON-RPC to any node (anvil in tests, geth or a testnet in a
  deployment). The node's ``eth_chainId`` must equal the configured chain id
  (:class:`ChainIdMismatchError`), an unreachable node raises :class:`RpcUnavailableError`.
  ``mine``/``increase_time`` use the dev-node methods ``evm_mine``/``evm_increaseTime``
  (anvil, hardhat; not available on geth or public chains).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

from fedledger.evm.errors import ChainIdMismatchError, EvmError, RpcUnavailableError

if TYPE_CHECKING:
    from web3 import EthereumTesterProvider


class Backend(Protocol):
    kind: str
    w3: Web3

    def mine(self, blocks: int = 1) -> None: ...

    def increase_time(self, seconds: int) -> None: ...

    def dev_accounts(self) -> list[LocalAccount]: ...

    def close(self) -> None: ...


def _locked_tester_provider(lock: threading.RLock, tester: Any) -> EthereumTesterProvider:
    from web3 import EthereumTesterProvider

    class _LockedEthereumTesterProvider(EthereumTesterProvider):
        """py-evm is not thread safe: one request at a time."""

        def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
            with lock:
                return super().make_request(method, params)

    return _LockedEthereumTesterProvider(tester)


class EmbeddedBackend:
    """In-process EVM (eth-tester + py-evm). Chain id 131277322940537 (eth-tester's)."""

    kind = "embedded"

    def __init__(self) -> None:
        try:
            from eth_tester import EthereumTester, PyEVMBackend
        except ImportError as exc:  # pragma: no cover - dependency missing
            raise EvmError("the embedded EVM needs eth-tester and py-evm: pip install 'web3[tester]'",
                           step="connect") from exc
        self._lock = threading.RLock()
        self._pyevm = PyEVMBackend()
        self.tester = EthereumTester(self._pyevm, auto_mine_transactions=True)
        self.provider = _locked_tester_provider(self._lock, self.tester)
        self.w3 = Web3(self.provider)
        self._dev_accounts = [Account.from_key(k.to_bytes()) for k in self._pyevm.account_keys]

    def dev_accounts(self) -> list[LocalAccount]:
        """The prefunded accounts (1,000,000 ETH each); their keys are public test keys."""
        return list(self._dev_accounts)

    def mine(self, blocks: int = 1) -> None:
        with self._lock:
            self.tester.mine_blocks(blocks)

    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward by ``seconds`` (mines one block at the new time)."""
        with self._lock:
            pending = self.tester.get_block_by_number("pending")["timestamp"]
            self.tester.time_travel(pending + int(seconds))

    def close(self) -> None:
        pass


class RpcBackend:
    """HTTP JSON-RPC node at ``url``; its chain id must be ``chain_id``."""

    kind = "rpc"

    def __init__(self, url: str, chain_id: int, *, timeout_s: float = 10.0,
                 dev_keys: list[str] | None = None) -> None:
        self.url = url
        self.w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout_s}))
        try:
            actual = self.w3.eth.chain_id
        except Exception as exc:  # noqa: BLE001 - connection refused, timeout, garbage
            raise RpcUnavailableError(f"cannot reach JSON-RPC node at {url}: {exc}",
                                      step="connect") from exc
        if actual != chain_id:
            raise ChainIdMismatchError(chain_id, actual)
        self._dev_accounts = [Account.from_key(k) for k in (dev_keys or [])]

    def dev_accounts(self) -> list[LocalAccount]:
        """Accounts whose keys were handed to the backend (tests: anvil's dev keys)."""
        return list(self._dev_accounts)

    def _dev_rpc(self, method: str, params: list[Any]) -> Any:
        try:
            response = self.w3.provider.make_request(RPCEndpoint(method), params)
        except Exception as exc:  # noqa: BLE001
            raise RpcUnavailableError(f"{method} failed at {self.url}: {exc}", step="dev") from exc
        if response.get("error"):
            raise EvmError(f"{method} is not supported by this node: {response['error']}", step="dev")
        return response.get("result")

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self._dev_rpc("evm_mine", [])

    def increase_time(self, seconds: int) -> None:
        self._dev_rpc("evm_increaseTime", [int(seconds)])
        self._dev_rpc("evm_mine", [])

    def close(self) -> None:
        pass

