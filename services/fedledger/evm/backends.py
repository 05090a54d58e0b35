"""Chain backends behind one interface, (:func:`fedledger.evm.connection.connect` opens a :class:`Chain`).

- :class:`EmbeddedBackend` (default): web3's ``EthereumTesterProvider`` over py-evm (Prague),
  in process, auto-mining one block per transaction, with prefunded dev accounts. Every
  request goes through one lock (py-evm's state is not thread safe), so threads may share it.
  ``mine(n)`` adds empty blocks (confirmations in tests), ``increase_time(s)`` moves the clock.
  Without a journal the chain lives in memory and is gone with the process; with
  ``EmbeddedBackend(journal=path)`` every block it mines is appended to a JSON-lines journal
  (fsynced before the request that mined it is answered) and the journal is replayed when
  the backend opens, so the chain survives a restart with the same block hashes
  (:mod:`fedledger.evm.journal`).
- :class:`RpcBackend`: HTTP JSON-RPC to any node (anvil in tests, geth or a testnet in a
  deployment). The node's ``eth_chainId`` must equal the configured chain id
  (:class:`ChainIdMismatchError`), an unreachable node raises :class:`RpcUnavailableError`.
  ``mine``/``increase_time`` use the dev-node methods ``evm_mine``/``evm_increaseTime``
  (anvil, hardhat; not available on geth or public chains).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint, RPCResponse

from fedledger.evm.errors import ChainIdMismatchError, EvmError, RpcUnavailableError

if TYPE_CHECKING:
    from web3 import EthereumTesterProvider

    from fedledger.evm.journal import ChainJournal

log = logging.getLogger(__name__)

T = TypeVar("T")


class Backend(Protocol):
    kind: str
    w3: Web3

    def mine(self, blocks: int = 1) -> None: ...

    def increase_time(self, seconds: int) -> None: ...

    def dev_accounts(self) -> list[LocalAccount]: ...

    def close(self) -> None: ...


def _locked_tester_provider(apply: Callable[[str, Callable[[], RPCResponse]], RPCResponse],
                            tester: Any) -> EthereumTesterProvider:
    from web3 import EthereumTesterProvider

    class _LockedEthereumTesterProvider(EthereumTesterProvider):
        """py-evm is not thread safe: one request at a time, each one journaled when it
        changed the chain (``apply``)."""

        def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
            return apply(str(method), lambda: super(_LockedEthereumTesterProvider, self)
                         .make_request(method, params))

    return _LockedEthereumTesterProvider(tester)


class EmbeddedBackend:
    """In-process EVM (eth-tester + py-evm). Chain id 131277322940537 (eth-tester's).

    ``journal``: the file that makes the chain durable (see :mod:`fedledger.evm.journal`):
    created with a new genesis when absent or empty, else replayed (raises
    :class:`~fedledger.evm.journal.JournalMismatchError` or
    :class:`~fedledger.evm.journal.JournalCorruptError`). ``None``: in memory only.
    """

    kind = "embedded"

    def __init__(self, journal: Path | str | None = None) -> None:
        try:
            from eth_tester import EthereumTester

            from fedledger.evm import journal as journaling
        except ImportError as exc:  # pragma: no cover - dependency missing
            raise EvmError("the embedded EVM needs eth-tester and py-evm: pip install 'web3[tester]'",
                           step="connect") from exc
        self._lock = threading.RLock()
        self.journal: ChainJournal | None = None
        #: Blocks mined again from the journal when the backend opened.
        self.replayed_blocks = 0
        if journal is None:
            self._pyevm = journaling.RecordingPyEVM()
        else:
            self.journal = journaling.ChainJournal(Path(journal))
            try:
                self._pyevm, self.replayed_blocks = self._open_journal(journaling, self.journal)
            except BaseException:
                self.journal.close()  # and its lock: the file may be fixed and opened again
                raise
        self.genesis_hash = "0x" + self._pyevm.chain.get_canonical_block_header_by_number(0).hash.hex()
        self.tester = EthereumTester(self._pyevm, auto_mine_transactions=True)
        self.provider = _locked_tester_provider(self._apply, self.tester)
        self.w3 = Web3(self.provider)
        self._dev_accounts = [Account.from_key(k.to_bytes()) for k in self._pyevm.account_keys]

    @staticmethod
    def _open_journal(journaling: Any, journal: ChainJournal) -> tuple[Any, int]:
        header = journal.header
        if header is None:
            # eth-tester's default genesis stamps the wall clock: fix it once, in the journal
            params = journaling.RecordingPyEVM.generate_genesis_params()
            pyevm = journaling.RecordingPyEVM(genesis_parameters=params)
            genesis = pyevm.chain.get_canonical_block_header_by_number(0)
            journal.create(journaling.new_header(pyevm.chain.chain_id, params, genesis.hash))
            log.info("new embedded chain, journal %s", journal.path)
            return pyevm, 0
        pyevm = journaling.RecordingPyEVM(
            genesis_parameters=journaling.genesis_params_from_json(header.genesis.params))
        genesis_hash = "0x" + pyevm.chain.get_canonical_block_header_by_number(0).hash.hex()
        if genesis_hash != header.genesis.hash or pyevm.chain.chain_id != header.chain_id:
            raise journaling.JournalMismatchError(
                f"the journal's genesis gives block 0 {genesis_hash} on chain "
                f"{pyevm.chain.chain_id}; it recorded {header.genesis.hash} on {header.chain_id}",
                path=journal.path, line=1)
        started = time.monotonic()
        blocks = journaling.replay(pyevm, journal)
        log.info("embedded chain replayed from %s: %d blocks in %.2fs", journal.path, blocks,
                 time.monotonic() - started)
        return pyevm, blocks

    def _apply(self, op: str, fn: Callable[[], T]) -> T:
        """Run one request under the lock; what it mined is journaled (and fsynced) before
        its answer is returned, also when it raised after changing the chain."""
        with self._lock:
            if self.journal is not None and self.journal.broken is not None:
                raise self.journal.broken  # the chain in memory is ahead of the file
            try:
                return fn()
            finally:
                effects = self._pyevm.take_effects()
                if effects and self.journal is not None:
                    from fedledger.evm.journal import JournalEntry

                    self.journal.append(JournalEntry(op=op, effects=effects))

    def dev_accounts(self) -> list[LocalAccount]:
        """The prefunded accounts (1,000,000 ETH each); their keys are public test keys."""
        return list(self._dev_accounts)

    def mine(self, blocks: int = 1) -> None:
        self._apply("evm_mine", lambda: self.tester.mine_blocks(blocks))

    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward by ``seconds`` (mines one block at the new time)."""
        def travel() -> None:
            pending = self.tester.get_block_by_number("pending")["timestamp"]
            self.tester.time_travel(pending + int(seconds))

        self._apply("evm_increaseTime", travel)

    def close(self) -> None:
        with self._lock:
            if self.journal is not None:
                self.journal.close()


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

