"""One chain connection: locally signed EIP-1559 transactions, nonces, fees, receipts,
confirmations, calls, deployments and logs, with every failure mapped to
:mod:`fedledger.evm.errors`.

Transactions are always signed here with a ``LocalAccount`` and sent with
``eth_sendRawTransaction`` (never ``eth_sendTransaction`` with node-held keys).

Exactly-once sending (the bridge) uses the split API::

    prepared = chain.prepare(fn, account)      # signed; nothing sent yet
    store(prepared.tx_hash, prepared.raw)      # persist BEFORE broadcasting
    chain.broadcast(prepared)                  # idempotent: re-broadcasting is fine
    receipt = chain.wait(prepared.tx_hash)     # receipt + confirmations

``transact`` does the three in one go, retrying once on a stale nonce.

Nonces: one lock and one local counter per sender address, seeded from the node's
``pending`` transaction count and resynced from it whenever the node answers
"nonce too low" (or sending fails otherwise), so threads may share an account.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexStr
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound, Web3Exception
from web3.types import TxParams, TxReceipt

from fedledger.evm.artifact_loader import Artifact, load_artifact
from fedledger.evm.backends import Backend
from fedledger.evm.config import EvmConfig
from fedledger.evm.errors import (
    ChainIdMismatchError,
    ConfirmationTimeoutError,
    EvmError,
    FeeCapExceededError,
    NonceError,
    RevertError,
    RpcUnavailableError,
    decode_revert_data,
    error_selectors,
    is_revert_exception,
    revert_from_exception,
)


@dataclass(frozen=True)
class PreparedTx:
    """A signed transaction not (necessarily) broadcast yet. ``raw`` and ``tx_hash`` are what
    a caller persists; ``broadcast`` may be called with it again after a restart."""

    raw: bytes
    tx_hash: str
    nonce: int
    sender: str
    to: str | None
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    chain_id: int

    @classmethod
    def from_raw(cls, raw: bytes) -> PreparedTx:
        """Rebuild from the persisted signed bytes (the sender is recovered from them)."""
        from eth_account import Account
        from eth_account.typed_transactions import TypedTransaction

        fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        to = fields.get("to")
        return cls(raw=bytes(raw), tx_hash=_hex(keccak(raw)), nonce=int(fields["nonce"]),
                   sender=Account.recover_transaction(raw),
                   to=Web3.to_checksum_address(to) if to else None, gas=int(fields["gas"]),
                   max_fee_per_gas=int(fields["maxFeePerGas"]),
                   max_priority_fee_per_gas=int(fields["maxPriorityFeePerGas"]),
                   chain_id=int(fields["chainId"]))


class _NonceSlot:
    __slots__ = ("lock", "next")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.next: int | None = None


_ALREADY_KNOWN = ("already known", "already imported", "known transaction", "already in pool",
                  "alreadyknown", "already exists")
_NONCE_TOO_LOW = ("nonce too low", "nonce is too low", "invalid transaction nonce", "oldnonce",
                  "nonce has already been used")


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import requests
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
    except ImportError:  # pragma: no cover
        pass
    from web3.exceptions import ProviderConnectionError
    return isinstance(exc, (ProviderConnectionError, ConnectionError, TimeoutError))


def _hex(value: bytes | str) -> str:
    return HexBytes(value).to_0x_hex()


class Chain:
    """A connection to one EVM chain (see module docs). Build it with
    :func:`fedledger.evm.connection.connect`."""

    def __init__(self, backend: Backend, config: EvmConfig | None = None) -> None:
        self.backend = backend
        self.config = config or EvmConfig()
        self.w3: Web3 = backend.w3
        with self._guard("connect"):
            self.chain_id: int = int(self.w3.eth.chain_id)
        if self.config.chain_id is not None and self.config.chain_id != self.chain_id:
            raise ChainIdMismatchError(self.config.chain_id, self.chain_id)
        self._nonces: dict[str, _NonceSlot] = {}
        self._nonces_lock = threading.Lock()
        self._selectors: dict[bytes, Mapping[str, Any]] = {}

    # ------------------------------------------------------------------ basics

    @property
    def kind(self) -> str:
        return self.backend.kind

    def dev_accounts(self) -> list[LocalAccount]:
        return self.backend.dev_accounts()

    def mine(self, blocks: int = 1) -> None:
        """Add blocks (dev chains only: embedded, anvil)."""
        with self._guard("mine"):
            self.backend.mine(blocks)

    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward and mine a block (dev chains only)."""
        with self._guard("time"):
            self.backend.increase_time(seconds)

    def block_number(self) -> int:
        with self._guard("block"):
            return int(self.w3.eth.block_number)

    def timestamp(self) -> int:
        """Timestamp of the latest block."""
        with self._guard("block"):
            return int(self.w3.eth.get_block("latest")["timestamp"])

    def balance(self, address: str) -> int:
        with self._guard("balance"):
            return int(self.w3.eth.get_balance(to_checksum_address(address)))

    def close(self) -> None:
        self.backend.close()

    def register_abi(self, abi: Sequence[Mapping[str, Any]]) -> None:
        """Make the custom errors of ``abi`` decodable in every :class:`RevertError`."""
        self._selectors.update(error_selectors([abi]))

    # ------------------------------------------------------------------ errors

    @contextmanager
    def _guard(self, step: str, tx_hash: str | None = None) -> Iterator[None]:
        try:
            yield
        except EvmError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped below or re-raised
            if is_revert_exception(exc):
                raise revert_from_exception(exc, self._selectors, tx_hash=tx_hash, step=step) from exc
            if _is_connection_error(exc):
                raise RpcUnavailableError(f"JSON-RPC node unreachable: {exc}", tx_hash=tx_hash,
                                          step=step) from exc
            if isinstance(exc, Web3Exception):
                raise EvmError(f"{type(exc).__name__}: {exc}", tx_hash=tx_hash, step=step) from exc
            raise

    # ------------------------------------------------------------------ fees, nonces

    def fees(self) -> tuple[int, int]:
        """``(max_fee_per_gas, max_priority_fee_per_gas)`` in wei: tip from the config or the
        node, max fee = 2 * latest baseFee + tip. Raises :class:`FeeCapExceededError`."""
        with self._guard("fees"):
            base = int(self.w3.eth.get_block("latest").get("baseFeePerGas") or 0)
            tip = self.config.max_priority_fee_wei
            if tip is None:
                try:
                    tip = int(self.w3.eth.max_priority_fee)
                except Exception as exc:  # noqa: BLE001 - node without the method
                    if _is_connection_error(exc):
                        raise
                    tip = 10**9
        max_fee = 2 * base + tip
        cap = self.config.max_fee_per_gas_wei
        if max_fee > cap:
            raise FeeCapExceededError(max_fee, cap)
        return max_fee, tip

    def _slot(self, address: str) -> _NonceSlot:
        with self._nonces_lock:
            slot = self._nonces.get(address)
            if slot is None:
                slot = self._nonces[address] = _NonceSlot()
            return slot

    def _take_nonce(self, slot: _NonceSlot, address: ChecksumAddress) -> int:
        if slot.next is None:
            with self._guard("nonce"):
                slot.next = int(self.w3.eth.get_transaction_count(address, "pending"))
        nonce = slot.next
        slot.next += 1
        return nonce

    def resync_nonce(self, address: str) -> None:
        """Forget the local nonce of ``address``; the next transaction asks the node."""
        slot = self._slot(to_checksum_address(address))
        with slot.lock:
            slot.next = None

    # ------------------------------------------------------------------ sending

    def _request(self, fn: Any, sender: str, value: int) -> dict[str, Any]:
        """``{"to", "data", "value"}`` of a contract function/constructor call or a plain
        transfer (``fn`` a dict with ``to`` and optional ``data``)."""
        if isinstance(fn, Mapping):
            to = fn.get("to")
            return {"to": to_checksum_address(to) if to else None, "data": fn.get("data", "0x"),
                    "value": int(fn.get("value", value))}
        abi = getattr(fn, "contract_abi", None) or getattr(fn, "abi", None)
        if isinstance(abi, list):
            self.register_abi(abi)
        stub = {"from": sender, "value": value, "gas": 1, "maxFeePerGas": 1,
                "maxPriorityFeePerGas": 1, "chainId": self.chain_id, "nonce": 0}
        with self._guard("encode"):
            built = fn.build_transaction(stub)
        to = built.get("to")
        return {"to": to_checksum_address(to) if to else None, "data": built["data"], "value": value}

    def _estimate(self, request: Mapping[str, Any], sender: str, gas: int | None) -> int:
        if gas is not None:
            return int(gas)
        params: TxParams = {"from": sender, "value": request["value"], "data": request["data"]}
        if request["to"]:
            params["to"] = request["to"]
        with self._guard("estimate"):
            estimate = int(self.w3.eth.estimate_gas(params))
        return int(estimate * self.config.gas_limit_multiplier)

    def _sign(self, request: Mapping[str, Any], account: LocalAccount, nonce: int, gas: int,
              max_fee: int, tip: int) -> PreparedTx:
        tx: dict[str, Any] = {
            "type": 2, "chainId": self.chain_id, "nonce": nonce, "gas": gas,
            "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip,
            "value": request["value"], "data": request["data"],
        }
        if request["to"]:
            tx["to"] = request["to"]
        signed = account.sign_transaction(tx)
        return PreparedTx(raw=bytes(signed.raw_transaction), tx_hash=_hex(signed.hash), nonce=nonce,
                          sender=account.address, to=request["to"], gas=gas, max_fee_per_gas=max_fee,
                          max_priority_fee_per_gas=tip, chain_id=self.chain_id)

    def prepare(self, fn: Any, account: LocalAccount, *, value: int = 0, gas: int | None = None,
                nonce: int | None = None) -> PreparedTx:
        """Estimate (a revert raises :class:`RevertError`, nothing is sent), check the fee cap,
        take the next nonce and sign. Nothing is broadcast. ``fn``: a contract function call,
        a constructor call, or ``{"to": .., "data": ..}``."""
        request = self._request(fn, account.address, value)
        gas_limit = self._estimate(request, account.address, gas)
        max_fee, tip = self.fees()
        if nonce is not None:
            return self._sign(request, account, nonce, gas_limit, max_fee, tip)
        slot = self._slot(account.address)
        with slot.lock:
            return self._sign(request, account, self._take_nonce(slot, account.address),
                              gas_limit, max_fee, tip)

    def is_known(self, tx_hash: str) -> bool:
        """Whether the node knows the transaction (pending or mined)."""
        with self._guard("lookup", tx_hash):
            try:
                self.w3.eth.get_transaction(HexStr(tx_hash))
                return True
            except TransactionNotFound:
                return False

    def broadcast(self, prepared: PreparedTx) -> str:
        """Send the signed transaction. Idempotent: a transaction the node already has
        (pending or mined) is not an error. Raises :class:`NonceError` when its nonce was
        used by another transaction."""
        try:
            self.w3.eth.send_raw_transaction(prepared.raw)
            return prepared.tx_hash
        except Exception as exc:  # noqa: BLE001 - classified below
            if _is_connection_error(exc):
                raise RpcUnavailableError(f"JSON-RPC node unreachable: {exc}",
                                          tx_hash=prepared.tx_hash, step="broadcast") from exc
            text = str(exc).lower()
            if any(k in text for k in _ALREADY_KNOWN):
                return prepared.tx_hash
            if self.is_known(prepared.tx_hash):
                return prepared.tx_hash
            if any(k in text for k in _NONCE_TOO_LOW) or "nonce" in text:
                self.resync_nonce(prepared.sender)
                raise NonceError(f"nonce {prepared.nonce} of {prepared.sender} refused: {exc}",
                                 tx_hash=prepared.tx_hash, step="broadcast") from exc
            self.resync_nonce(prepared.sender)
            if is_revert_exception(exc):
                raise revert_from_exception(exc, self._selectors, tx_hash=prepared.tx_hash,
                                            step="broadcast") from exc
            raise EvmError(f"broadcast failed: {exc}", tx_hash=prepared.tx_hash,
                           step="broadcast") from exc

    def transact(self, fn: Any, account: LocalAccount, *, value: int = 0, gas: int | None = None,
                 confirmations: int | None = None, timeout_s: float | None = None) -> TxReceipt:
        """Estimate, sign, send, wait for the receipt and the confirmations. Reverts raise
        :class:`RevertError` (during estimation nothing is sent; on chain it carries the
        tx hash and the reason, replayed with ``eth_call``)."""
        request = self._request(fn, account.address, value)
        gas_limit = self._estimate(request, account.address, gas)
        max_fee, tip = self.fees()
        slot = self._slot(account.address)
        for attempt in range(3):
            with slot.lock:
                prepared = self._sign(request, account, self._take_nonce(slot, account.address),
                                      gas_limit, max_fee, tip)
                try:
                    self.broadcast(prepared)
                except NonceError:
                    if attempt == 2:
                        raise
                    continue
                except Exception:
                    slot.next = None
                    raise
            return self.wait(prepared.tx_hash, confirmations=confirmations, timeout_s=timeout_s)
        raise AssertionError("unreachable")  # pragma: no cover

    def transfer(self, account: LocalAccount, to: str, value: int, **kwargs: Any) -> TxReceipt:
        return self.transact({"to": to}, account, value=value, **kwargs)

    # ------------------------------------------------------------------ receipts

    def _receipt(self, tx_hash: str) -> TxReceipt | None:
        with self._guard("receipt", tx_hash):
            try:
                return self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
            except TransactionNotFound:
                return None

    def wait(self, tx_hash: str, confirmations: int | None = None,
             timeout_s: float | None = None) -> TxReceipt:
        """Wait for the receipt, then until ``head - receipt_block + 1 >= confirmations``.
        Raises :class:`ConfirmationTimeoutError` after ``timeout_s`` (config default),
        :class:`RevertError` for status 0 (reason replayed at the block before)."""
        tx_hash = _hex(tx_hash)
        required = self.config.confirmations if confirmations is None else int(confirmations)
        timeout = self.config.receipt_timeout_s if timeout_s is None else float(timeout_s)
        poll = self.config.poll_interval_s
        deadline = time.monotonic() + timeout
        receipt: TxReceipt | None = None
        have = 0
        while True:
            if receipt is None:
                receipt = self._receipt(tx_hash)
                if receipt is not None and receipt["status"] == 0:
                    raise self._replay_revert(tx_hash, receipt)
            if receipt is not None:
                have = self.block_number() - int(receipt["blockNumber"]) + 1
                if have >= required:
                    if required > 1:  # a reorg may have moved it: recheck the block hash
                        again = self._receipt(tx_hash)
                        if again is None or again["blockHash"] != receipt["blockHash"]:
                            receipt = again
                            continue
                    return receipt
            if time.monotonic() >= deadline:
                if receipt is None:
                    raise ConfirmationTimeoutError(f"no receipt for {tx_hash} after {timeout:g} s",
                                                   tx_hash=tx_hash, step="receipt", required=required)
                raise ConfirmationTimeoutError(
                    f"{tx_hash} has {have} of {required} confirmations after {timeout:g} s",
                    tx_hash=tx_hash, confirmations=have, required=required)
            time.sleep(poll)

    def _replay_revert(self, tx_hash: str, receipt: TxReceipt) -> RevertError:
        """Status 0: re-run the call on the state before its block to get the reason."""
        with self._guard("receipt", tx_hash):
            tx = self.w3.eth.get_transaction(HexStr(tx_hash))
        params: TxParams = {"from": tx["from"], "data": tx["input"], "value": tx["value"],
                            "gas": tx["gas"]}
        if tx.get("to"):
            params["to"] = tx["to"]
        block = max(int(receipt["blockNumber"]) - 1, 0)
        try:
            self.w3.eth.call(params, block_identifier=block)
        except Exception as exc:  # noqa: BLE001
            if is_revert_exception(exc):
                return revert_from_exception(exc, self._selectors, tx_hash=tx_hash, step="receipt")
            if _is_connection_error(exc):
                raise RpcUnavailableError(f"JSON-RPC node unreachable: {exc}", tx_hash=tx_hash,
                                          step="receipt") from exc
            err = decode_revert_data(None, self._selectors, tx_hash=tx_hash, step="receipt")
            err.message = f"transaction reverted on chain; replay failed: {exc}"
            return err
        err = decode_revert_data(None, self._selectors, tx_hash=tx_hash, step="receipt")
        err.message = ("transaction reverted on chain (status 0; the replay did not revert: "
                       "out of gas or state-dependent)")
        return err

    # ------------------------------------------------------------------ calls, contracts, logs

    def call(self, fn: Any, *, block: int | str = "latest", sender: str | None = None) -> Any:
        """``eth_call`` of a contract function; reverts raise :class:`RevertError`."""
        abi = getattr(fn, "contract_abi", None)
        if isinstance(abi, list):
            self.register_abi(abi)
        tx = {"from": sender} if sender else None
        with self._guard("call"):
            return fn.call(tx, block_identifier=block)

    def _artifact(self, artifact: str | Artifact) -> Artifact:
        return load_artifact(artifact) if isinstance(artifact, str) else artifact

    def contract(self, artifact: str | Artifact, address: str) -> Contract:
        art = self._artifact(artifact)
        self.register_abi(art.abi_list)
        return self.w3.eth.contract(address=to_checksum_address(address), abi=art.abi_list)

    def deploy(self, artifact: str | Artifact, *args: Any, account: LocalAccount, value: int = 0,
               confirmations: int | None = None) -> Contract:
        """Deploy the artifact's bytecode with constructor ``args``; returns the contract."""
        art = self._artifact(artifact)
        self.register_abi(art.abi_list)
        factory = self.w3.eth.contract(abi=art.abi_list, bytecode=art.bytecode)
        receipt = self.transact(factory.constructor(*args), account, value=value,
                                confirmations=confirmations)
        address = receipt.get("contractAddress")
        if not address:
            raise EvmError(f"deploying {art.name}: receipt has no contract address",
                           tx_hash=_hex(receipt["transactionHash"]), step="deploy")
        return self.w3.eth.contract(address=address, abi=art.abi_list)

    def get_logs(self, event: Any, *, from_block: int | str = 0, to_block: int | str = "latest",
                 argument_filters: dict[str, Any] | None = None) -> list[Any]:
        """Decoded logs of ``event`` (``contract.events.Name``), oldest first."""
        with self._guard("logs"):
            logs = event.get_logs(argument_filters=argument_filters, from_block=from_block,
                                  to_block=to_block)
        return sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))

    def events_in(self, receipt: TxReceipt, event: Any) -> list[Any]:
        """Decoded ``event`` logs of one receipt."""
        from web3.logs import DISCARD

        with self._guard("logs"):
            return list(event.process_receipt(receipt, errors=DISCARD))
