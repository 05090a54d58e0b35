"""A restarted host resumes its chain: after a crash (SIGKILL) and a new process on the same
root, the registry is the one deployed before, its Anchored event is still there, a proof
package built before the crash still verifies, and nothing was deployed or funded twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from eth_account import Account

from fedledger.audit.proofs import AnchorRef, consortium_package
from fedledger.audit.verify import verify_with_rpc
from fedledger.evm import Chain, EvmConfig, RpcBackend
from fedledger.evm import typed_data as td
from fedledger.evm.contracts import AnchorRegistryClient
from fedledger.host.settings import HostSettings
from fedledger.protocol.leaves import LeafTree
from fedledger.web.server import free_port

from .test_host import ORGS, wait_health

LEAVES = [{"kind": "round", "round_id": 1, "record": {"round_id": 1, "note": n}} for n in "abc"]


def start_host(config_path: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "fedledger.host", "--config", str(config_path)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def connect(info: dict) -> Chain:
    return Chain(RpcBackend(info["rpc_url"], info["chain_id"]),
                 EvmConfig(backend="rpc", rpc_url=info["rpc_url"], chain_id=info["chain_id"],
                           poll_interval_s=0.05, receipt_timeout_s=30))


def anchor(registry: AnchorRegistryClient, orgs: list, round_id: int, root: bytes) -> dict:
    keys = td.sorted_keys(o.address for o in orgs)
    typed = td.anchor_typed_data(registry.chain.chain_id, registry.address, round_id, round_id, root)
    signatures = td.pack_signatures(keys, {o.address: td.sign_typed(o, typed) for o in orgs[:2]})
    return registry.anchor(round_id, round_id, root, keys, signatures, orgs[0])


def test_a_crashed_host_restarts_on_the_same_chain(tmp_path):
    accounts = [Account.create() for _ in ORGS]
    port = free_port()
    root = tmp_path / "root"
    config = {
        "root": str(root), "port": port, "rpc_port": free_port(),
        "orgs": [{"name": org, "msp_id": f"{org}MSP", "anchor_address": a.address,
                  "node_url": f"http://127.0.0.1:{free_port()}"}  # nobody: the bridge retries
                 for org, a in zip(ORGS, accounts, strict=True)],
        "bridge": {"poll_interval_s": 0.2},
    }
    settings = HostSettings.model_validate(config)
    config_path = tmp_path / "host-config.json"
    config_path.write_text(json.dumps(config))
    log = tmp_path / "host.log"
    url = f"http://127.0.0.1:{port}"

    proc = start_host(config_path, log)
    try:
        wait_health(url, proc, log)
        first = json.loads(settings.host_json_path.read_text())
        chain = connect(first)
        registry = AnchorRegistryClient(chain, first["registry"])
        tree = LeafTree.of(LEAVES)
        receipt = anchor(registry, accounts, 1, bytes.fromhex(tree.root_hex))  # the orgs were funded
        ref = AnchorRef(first_round=1, last_round=1, root=tree.root_hex, chain_id=first["chain_id"],
                        contract=first["registry"], tx_hash=receipt["transactionHash"].to_0x_hex(),
                        block_number=receipt["blockNumber"])
        package = consortium_package(LEAVES, ref, LEAVES[1])
        assert verify_with_rpc(package, first["rpc_url"], first["registry"]).ok
        deployer_nonce = chain.w3.eth.get_transaction_count(first["deployer"])
        org_balance = chain.w3.eth.get_balance(accounts[1].address)
        head = chain.w3.eth.get_block("latest")["hash"]
    finally:
        kill(proc)  # a crash: no clean shutdown

    assert settings.evm_journal_path.exists() and settings.evm_contracts_path.exists()
    proc = start_host(config_path, log)
    try:
        wait_health(url, proc, log)
        second = json.loads(settings.host_json_path.read_text())
        assert second["pid"] == proc.pid
        for key in ("registry", "staking", "deployer", "chain_id", "keys", "threshold"):
            assert second[key] == first[key], key
        chain = connect(second)
        assert chain.w3.eth.get_block(head)["hash"] == head  # the old chain, its blocks unchanged
        assert chain.w3.eth.get_transaction_count(first["deployer"]) == deployer_nonce  # no redeploy
        assert chain.w3.eth.get_balance(accounts[1].address) == org_balance  # no second funding
        registry = AnchorRegistryClient(chain, second["registry"])
        [old] = registry.anchors()
        assert (old.first_round, old.root.hex(), old.tx_hash) == (1, tree.root_hex, ref.tx_hash)
        assert verify_with_rpc(package, second["rpc_url"], second["registry"]).ok
        assert registry.next_round() == 2
        assert anchor(registry, accounts, 2, bytes.fromhex("44" * 32))["status"] == 1  # and it goes on
    finally:
        kill(proc)


def test_a_chain_whose_setup_was_not_recorded_is_set_aside(tmp_path):
    """contracts.json missing beside a journal with the deployer's transactions: the setup
    never finished (the JSON-RPC server had not started), so the host begins a new chain
    and keeps the old journal as chain.jsonl.interrupted."""
    accounts = [Account.create() for _ in ORGS]
    port = free_port()
    config = {"root": str(tmp_path / "root"), "port": port,
              "orgs": [{"name": org, "msp_id": f"{org}MSP", "anchor_address": a.address}
                       for org, a in zip(ORGS, accounts, strict=True)]}
    settings = HostSettings.model_validate(config)
    config_path = tmp_path / "host-config.json"
    config_path.write_text(json.dumps(config))
    log = tmp_path / "host.log"
    url = f"http://127.0.0.1:{port}"
    proc = start_host(config_path, log)
    try:
        wait_health(url, proc, log)
        first = json.loads(settings.host_json_path.read_text())
        old_genesis = connect(first).w3.eth.get_block(0)["hash"]
    finally:
        kill(proc)
    journal = settings.evm_journal_path.read_bytes()
    settings.evm_contracts_path.unlink()

    proc = start_host(config_path, log)
    try:
        wait_health(url, proc, log)
        second = json.loads(settings.host_json_path.read_text())
        chain = connect(second)
        assert chain.w3.eth.get_block(0)["hash"] != old_genesis
        assert second["registry"] == first["registry"]  # same deployer, same nonce
        assert AnchorRegistryClient(chain, second["registry"]).next_round() == 1
        aside = settings.evm_journal_path.with_name("chain.jsonl.interrupted")
        assert aside.read_bytes() == journal
        assert settings.evm_contracts_path.exists()
    finally:
        kill(proc)
