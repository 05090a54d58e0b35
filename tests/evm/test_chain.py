"""Chain basics on both backends: transfers, nonces under threads, fee cap, chain id check,
confirmations, exactly-once sending, RPC failures, revert mapping."""

from __future__ import annotations

import threading
import time

import pytest
from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractCustomError, ContractLogicError

from fedledger.evm import (
    ChainIdMismatchError,
    ConfirmationTimeoutError,
    EvmConfig,
    FeeCapExceededError,
    RevertError,
    RpcUnavailableError,
    connect,
)
from fedledger.evm.errors import error_selectors, revert_from_exception

from ..anvil import free_port, rpc_config
from .conftest import chain_with


def test_transfer(chain, funder):
    to = Account.create().address
    receipt = chain.transfer(funder, to, 12345)
    assert receipt["status"] == 1
    assert chain.balance(to) == 12345
    tx = chain.w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["type"] == 2 and tx["chainId"] == chain.chain_id  # EIP-1559, signed locally


def test_concurrent_transacts_get_distinct_nonces(chain, funder):
    targets = [Account.create().address for _ in range(8)]
    receipts: list = [None] * 8
    errors: list = []

    def send(i: int) -> None:
        try:
            receipts[i] = chain.transfer(funder, targets[i], 1000 + i)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert all(r["status"] == 1 for r in receipts)
    nonces = [chain.w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts]
    assert len(set(nonces)) == 8 and max(nonces) - min(nonces) == 7
    assert [chain.balance(a) for a in targets] == [1000 + i for i in range(8)]


def test_stale_local_nonce_is_resynced(chain, funder):
    chain.transfer(funder, Account.create().address, 1)  # local nonce now cached
    other = chain_with(chain)  # another process/instance spends the same account
    other.transfer(funder, Account.create().address, 1)
    receipt = chain.transfer(funder, Account.create().address, 1)  # "nonce too low" -> resync
    assert receipt["status"] == 1


def test_fee_cap_refuses_before_sending(chain, funder):
    capped = chain_with(chain, max_fee_per_gas_gwei=0.000001)
    nonce = chain.w3.eth.get_transaction_count(funder.address, "pending")
    with pytest.raises(FeeCapExceededError) as info:
        capped.transfer(funder, Account.create().address, 1)
    assert info.value.required_wei > info.value.cap_wei
    assert chain.w3.eth.get_transaction_count(funder.address, "pending") == nonce


def test_prepare_then_broadcast_is_idempotent(chain, funder):
    to = Account.create().address
    prepared = chain.prepare({"to": to}, funder, value=7)
    assert not chain.is_known(prepared.tx_hash)  # persisted hash, nothing sent yet
    assert chain.broadcast(prepared) == prepared.tx_hash
    chain.broadcast(prepared)  # again: already known/mined is not an error
    receipt = chain.wait(prepared.tx_hash)
    assert receipt["transactionHash"].to_0x_hex() == prepared.tx_hash
    chain.broadcast(prepared)  # after mining too
    assert chain.balance(to) == 7


def test_chain_id_mismatch_refused_on_rpc(anvil_node):
    with pytest.raises(ChainIdMismatchError) as info:
        connect(EvmConfig(backend="rpc", rpc_url=anvil_node.url, chain_id=1))
    assert (info.value.expected, info.value.actual) == (1, 31337)


def test_rpc_config_needs_chain_id():
    with pytest.raises(ValueError):
        EvmConfig(backend="rpc", rpc_url="http://127.0.0.1:8545")


def test_rpc_down_is_rpc_unavailable(start_anvil):
    with pytest.raises(RpcUnavailableError):
        connect(rpc_config(f"http://127.0.0.1:{free_port()}"))
    node = start_anvil()
    chain = connect(rpc_config(node.url))
    assert chain.block_number() == 0
    node.stop()
    with pytest.raises(RpcUnavailableError) as info:
        chain.balance(Account.create().address)
    assert info.value.step == "balance"
    with pytest.raises(RpcUnavailableError):
        chain.transfer(Account.create(), Account.create().address, 0)


def test_confirmations_wait_for_more_blocks(embedded_chain):
    chain = chain_with(embedded_chain, confirmations=3)
    funder = chain.dev_accounts()[0]
    prepared = chain.prepare({"to": Account.create().address}, funder, value=1)
    chain.broadcast(prepared)
    mined: list[int] = []

    def miner() -> None:
        for _ in range(2):
            time.sleep(0.3)
            mined.append(1)  # before mining: the wait may return as soon as the block exists
            chain.mine(1)

    thread = threading.Thread(target=miner)
    thread.start()
    receipt = chain.wait(prepared.tx_hash)
    assert len(mined) == 2  # returned only after both extra blocks
    assert chain.block_number() - receipt["blockNumber"] + 1 >= 3
    thread.join()


def test_confirmations_time_out_cleanly(embedded_chain):
    chain = chain_with(embedded_chain, confirmations=3)
    funder = chain.dev_accounts()[0]
    prepared = chain.prepare({"to": Account.create().address}, funder, value=1)
    chain.broadcast(prepared)
    t0 = time.monotonic()
    with pytest.raises(ConfirmationTimeoutError) as info:
        chain.wait(prepared.tx_hash, timeout_s=0.3)
    assert 0.3 <= time.monotonic() - t0 < 2
    assert (info.value.confirmations, info.value.required) == (1, 3)
    assert info.value.tx_hash == prepared.tx_hash
    chain.mine(2)
    assert chain.wait(prepared.tx_hash, timeout_s=1)["status"] == 1  # resumable by hash


def test_no_receipt_times_out(embedded_chain):
    with pytest.raises(ConfirmationTimeoutError) as info:
        embedded_chain.wait("0x" + "ab" * 32, timeout_s=0.1)
    assert info.value.step == "receipt"


def test_anvil_confirmations_with_mined_blocks(anvil_chain):
    chain = chain_with(anvil_chain, confirmations=2)
    funder = chain.dev_accounts()[0]
    prepared = chain.prepare({"to": Account.create().address}, funder, value=1)
    chain.broadcast(prepared)
    threading.Timer(0.2, chain.mine).start()
    receipt = chain.wait(prepared.tx_hash)
    assert chain.block_number() - receipt["blockNumber"] + 1 >= 2


# ------------------------------------------------------------------ revert mapping (units)

ABI = [{"type": "error", "name": "RoundAlreadyAnchored",
        "inputs": [{"name": "firstRound", "type": "uint64"}, {"name": "nextRound", "type": "uint64"}]}]


def _custom_error_data() -> bytes:
    from eth_abi import encode
    selector = next(iter(error_selectors([ABI])))
    return selector + encode(["uint64", "uint64"], [1, 2])


def test_revert_mapping_is_the_same_for_both_backends():
    data = _custom_error_data()
    selectors = error_selectors([ABI])
    from_tester = revert_from_exception(TransactionFailed(f"execution reverted: {data!r}"), selectors)
    from_rpc = revert_from_exception(ContractCustomError("0x" + data.hex(), data="0x" + data.hex()),
                                     selectors)
    for err in (from_tester, from_rpc):
        assert isinstance(err, RevertError)
        assert err.error_name == "RoundAlreadyAnchored"
        assert err.args == (1, 2)
        assert err.reason == "RoundAlreadyAnchored(firstRound=1, nextRound=2)"
    plain = revert_from_exception(TransactionFailed("execution reverted: not allowed"), selectors)
    assert (plain.error_name, plain.args, plain.reason) == ("Error", ("not allowed",), "not allowed")
    logic = revert_from_exception(ContractLogicError("execution reverted: not allowed",
                                                     data="0x08c379a0" + "00" * 31 + "20" + "00" * 31
                                                     + "0b" + b"not allowed".hex() + "00" * 21),
                                  selectors)
    assert (logic.error_name, logic.reason) == ("Error", "not allowed")
    unknown = revert_from_exception(ContractCustomError("0xdeadbeef", data="0xdeadbeef"), selectors)
    assert unknown.error_name == "Unknown"


def test_revert_error_pickles():
    import pickle
    err = RevertError("RoundAlreadyAnchored", (1, 2), arg_names=("firstRound", "nextRound"),
                      tx_hash="0x01", step="receipt")
    again = pickle.loads(pickle.dumps(err))
    assert (again.error_name, again.args, again.reason, again.tx_hash) == (
        "RoundAlreadyAnchored", (1, 2), err.reason, "0x01")
