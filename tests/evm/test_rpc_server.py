"""The embedded EVM served as JSON-RPC: RpcBackend + Chain (web3's HTTPProvider) against
it, the JSON-RPC 2.0 envelope itself, and foundry's cast where it is installed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from fedledger.evm import Chain, EmbeddedBackend, EvmConfig, RevertError, RpcBackend
from fedledger.evm import typed_data as td
from fedledger.evm.contracts import AnchorRegistryClient, deploy_anchor_registry
from fedledger.evm.rpc_server import _revert_data, create_rpc_app
from fedledger.web.server import ThreadedServer

ROOT = bytes.fromhex("22" * 32)
CAST = Path(__file__).resolve().parents[2] / "deploy/foundry/node_modules/@foundry-rs/cast-linux-amd64/bin/cast"


@pytest.fixture(scope="module")
def served():
    backend = EmbeddedBackend()
    server = ThreadedServer(create_rpc_app(backend)).start()
    yield backend, server.url
    server.stop()


@pytest.fixture(scope="module")
def rpc_chain(served):
    backend, url = served
    chain_id = int(backend.w3.eth.chain_id)
    config = EvmConfig(backend="rpc", rpc_url=url, chain_id=chain_id, poll_interval_s=0.02,
                       receipt_timeout_s=20)
    dev_keys = [a.key.to_0x_hex() for a in backend.dev_accounts()[:2]]
    return Chain(RpcBackend(url, chain_id, dev_keys=dev_keys), config)


@pytest.fixture(scope="module")
def world(rpc_chain):
    orgs = [Account.create() for _ in range(3)]
    keys = td.sorted_keys(o.address for o in orgs)
    funder = rpc_chain.dev_accounts()[0]
    registry = deploy_anchor_registry(rpc_chain, keys, 2, funder)
    return registry, orgs, keys, funder


def rpc(url: str, payload):  # noqa: ANN001
    return httpx.post(url, json=payload, timeout=10)


def signed(registry, signers, first, last, keys, root=ROOT):  # noqa: ANN001
    typed = td.anchor_typed_data(registry.chain.chain_id, registry.address, first, last, root)
    return td.pack_signatures(keys, {s.address: td.sign_typed(s, typed) for s in signers})


def test_registry_deploys_anchors_and_its_logs_read_back_over_rpc(served, rpc_chain, world):
    backend, _ = served
    registry, orgs, keys, funder = world
    assert rpc_chain.chain_id == backend.w3.eth.chain_id
    assert registry.threshold() == 2
    stored = registry.keys_hash()  # the commitment: a prefix of keccak(abi.encodePacked(keys))
    assert stored and td.keys_hash(keys).startswith(stored)
    assert registry.current_keys() == keys
    receipt = registry.anchor(1, 1, ROOT, keys, signed(registry, orgs[:2], 1, 1, keys), funder)
    assert receipt["status"] == 1
    [record] = registry.anchors()
    assert (record.first_round, record.last_round, record.root) == (1, 1, ROOT)
    assert record.tx_hash == receipt["transactionHash"].to_0x_hex()
    assert registry.next_round() == 2
    # the same anchor seen by a client of the in-process backend
    local = AnchorRegistryClient(Chain(backend, EvmConfig()), registry.address)
    assert [a.root for a in local.anchors()] == [ROOT]


def test_reverts_surface_as_revert_error(world):
    registry, orgs, keys, funder = world
    next_round = registry.next_round()
    with pytest.raises(RevertError) as info:  # eth_estimateGas reverts with a custom error
        registry.anchor(next_round, next_round, ROOT, keys,
                        signed(registry, orgs[:1], next_round, next_round, keys), funder)
    assert info.value.error_name == "NotEnoughSignatures"
    assert info.value.reason == "NotEnoughSignatures(given=1, threshold=2)"
    with pytest.raises(RevertError) as info:
        registry.anchor(1, 1, ROOT, keys, signed(registry, orgs[:2], 1, 1, keys), funder)
    assert info.value.error_name == "RoundAlreadyAnchored"


def test_mine_and_increase_time(rpc_chain):
    block, stamp = rpc_chain.block_number(), rpc_chain.timestamp()
    rpc_chain.mine(2)
    assert rpc_chain.block_number() == block + 2
    rpc_chain.increase_time(3600)
    assert rpc_chain.timestamp() >= stamp + 3600


def test_prepared_anchor_is_broadcast_idempotently(world):
    registry, orgs, keys, funder = world
    chain = registry.chain
    first = registry.next_round()
    root = bytes.fromhex("33" * 32)
    call = registry.anchor_call(first, first, root, keys,
                                signed(registry, orgs[1:], first, first, keys, root))
    prepared = chain.prepare(call, funder)
    chain.broadcast(prepared)
    chain.broadcast(prepared)  # the same bytes again: "already known" or mined, not an error
    receipt = chain.wait(prepared.tx_hash)
    assert receipt["status"] == 1
    assert registry.next_round() == first + 1
    assert registry.anchors()[-1].root == root


def test_json_rpc_envelope(served):
    backend, url = served
    chain_id = hex(backend.w3.eth.chain_id)
    single = rpc(url, {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []}).json()
    assert single == {"jsonrpc": "2.0", "id": 7, "result": chain_id}
    batch = rpc(url, [{"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
                      {"jsonrpc": "2.0", "id": "b", "method": "net_version", "params": []},
                      {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []},  # notification
                      {"jsonrpc": "2.0", "id": "c", "method": "nope_nothing", "params": []}]).json()
    assert [a["id"] for a in batch] == ["a", "b", "c"]
    assert batch[0]["result"] == chain_id
    assert batch[2]["error"]["code"] == -32601
    assert rpc(url, []).json()["error"]["code"] == -32600
    assert rpc(url, {"id": 1, "method": "eth_chainId"}).json()["error"]["code"] == -32600
    parse = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert parse.json() == {"jsonrpc": "2.0", "id": None,
                            "error": {"code": -32700, "message": parse.json()["error"]["message"]}}
    assert rpc(url, {"jsonrpc": "2.0", "method": "eth_chainId"}).status_code == 204
    block = rpc(url, {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
                      "params": ["latest", False]}).json()["result"]
    assert block["number"].startswith("0x") and len(block["logsBloom"]) == 2 + 512
    assert rpc(url, {"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction",
                     "params": [{}]}).json()["error"]["code"] == -32601
    health = httpx.get(url + "/health").json()
    assert health["status"] == "ok" and hex(health["chain_id"]) == chain_id


def test_revert_data_from_eth_tester_messages():
    from eth_tester.exceptions import TransactionFailed

    message, data = _revert_data(TransactionFailed("execution reverted: not allowed"))
    assert message == "execution reverted: not allowed"
    assert data.startswith("0x08c379a0")
    message, data = _revert_data(TransactionFailed("execution reverted: b'\\xba\\xc3\\x01\\x02'"))
    assert data == "0xbac30102"
    assert _revert_data(TransactionFailed("execution reverted")) == ("execution reverted", None)


@pytest.mark.skipif(not CAST.exists(), reason="foundry's cast is not installed (deploy/foundry)")
def test_cast_reads_the_served_chain(served, world):
    backend, url = served
    registry, _, keys, _ = world
    out = subprocess.run([str(CAST), "chain-id", "--rpc-url", url], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) == backend.w3.eth.chain_id
    out = subprocess.run([str(CAST), "call", registry.address, "threshold()(uint256)",
                          "--rpc-url", url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "2"
    out = subprocess.run([str(CAST), "block-number", "--rpc-url", url], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([str(CAST), "logs", "--rpc-url", url, "--from-block", "0",
                          "--address", registry.address, "--json"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert registry.address.lower() in out.stdout.lower()
