"""The journaled embedded chain: a reopened backend replays the journal into the same
chain (head hash, contract address, logs, block timestamps), through web3 in process and
through the JSON-RPC server; torn, corrupt and tampered journals."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from fedledger.evm import Chain, EmbeddedBackend, EvmConfig, RpcBackend
from fedledger.evm import journal as journaling
from fedledger.evm import typed_data as td
from fedledger.evm.contracts import AnchorRegistryClient, deploy_anchor_registry
from fedledger.evm.journal import (
    JournalCorruptError,
    JournalError,
    JournalMismatchError,
    JournalWriteError,
)
from fedledger.evm.rpc_server import create_rpc_app
from fedledger.web.server import ThreadedServer

from .conftest import EMBEDDED_TEST_CONFIG

ROOT = bytes.fromhex("33" * 32)


def open_chain(path: Path) -> Chain:
    return Chain(EmbeddedBackend(journal=path), EvmConfig(**EMBEDDED_TEST_CONFIG))


def head(chain: Chain) -> tuple[int, str]:
    block = chain.w3.eth.get_block("latest")
    return block["number"], block["hash"].to_0x_hex()


def timestamps(chain: Chain) -> list[int]:
    return [chain.w3.eth.get_block(n)["timestamp"] for n in range(chain.w3.eth.block_number + 1)]


def anchored_chain(path: Path) -> tuple[Chain, AnchorRegistryClient, list]:
    """A journaled chain with a registry, one anchor, a clock jump and empty blocks."""
    chain = open_chain(path)
    funder = chain.dev_accounts()[0]
    orgs = [Account.create() for _ in range(3)]
    keys = td.sorted_keys(o.address for o in orgs)
    registry = deploy_anchor_registry(chain, keys, 2, funder)
    typed = td.anchor_typed_data(chain.chain_id, registry.address, 1, 1, ROOT)
    signatures = td.pack_signatures(keys, {o.address: td.sign_typed(o, typed) for o in orgs[:2]})
    assert registry.anchor(1, 1, ROOT, keys, signatures, funder)["status"] == 1
    chain.backend.increase_time(3600)
    chain.backend.mine(3)
    chain.transfer(funder, orgs[0].address, 12345)
    return chain, registry, orgs


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rewrite(path: Path, entries: list[dict]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def test_replay_gives_the_same_chain(tmp_path):
    path = tmp_path / "chain.jsonl"
    chain, registry, orgs = anchored_chain(path)
    before_head, before_times = head(chain), timestamps(chain)
    [anchor] = registry.anchors()
    genesis = chain.backend.genesis_hash
    chain.backend.close()

    again = open_chain(path)
    assert again.backend.genesis_hash == genesis
    assert again.backend.replayed_blocks == before_head[0]
    assert head(again) == before_head
    assert timestamps(again) == before_times  # no block re-timestamped, the jump kept
    replayed = AnchorRegistryClient(again, registry.address)
    assert replayed.anchors() == [anchor]  # same log: block, tx hash, root
    assert replayed.next_round() == 2
    assert again.w3.eth.get_balance(orgs[0].address) == 12345
    # the chain goes on from where it was, at a later time
    again.transfer(again.dev_accounts()[0], orgs[1].address, 1)
    assert again.w3.eth.get_block("latest")["timestamp"] > before_times[-1]
    again.backend.increase_time(60)
    after_jump = again.w3.eth.get_block("latest")["timestamp"]
    again.backend.close()
    third = open_chain(path)
    assert timestamps(third)[-1] == after_jump
    assert head(third)[0] == before_head[0] + 2


def test_journal_lines_name_the_operations_and_their_blocks(tmp_path):
    path = tmp_path / "chain.jsonl"
    chain, _, _ = anchored_chain(path)
    header, *entries = lines(path)
    assert header["format"] == "fedledger-evm-journal" and header["chain_id"] == chain.chain_id
    assert header["genesis"]["hash"] == chain.backend.genesis_hash
    assert [e["op"] for e in entries] == ["eth_sendRawTransaction"] * 2 + \
        ["evm_increaseTime", "evm_mine", "eth_sendRawTransaction"]
    blocks = [b for e in entries for b in e["effects"]]
    assert [b["number"] for b in blocks] == list(range(1, chain.w3.eth.block_number + 1))
    for b in blocks:
        mined = chain.w3.eth.get_block(b["number"])
        assert (b["hash"], b["timestamp"]) == (mined["hash"].to_0x_hex(), mined["timestamp"])
    assert len(entries[-1]["effects"][0]["txs"]) == 1 and entries[3]["effects"][0]["txs"] == []


def test_a_new_journal_fixes_the_genesis(tmp_path):
    first = open_chain(tmp_path / "a.jsonl")
    first.backend.close()
    assert open_chain(tmp_path / "a.jsonl").backend.genesis_hash == first.backend.genesis_hash
    assert lines(tmp_path / "a.jsonl")[0]["genesis"]["params"]["timestamp"] == \
        first.w3.eth.get_block(0)["timestamp"]


def test_torn_last_line_is_dropped_and_the_next_append_starts_clean(tmp_path, caplog):
    path = tmp_path / "chain.jsonl"
    chain, _, _ = anchored_chain(path)
    complete = path.read_bytes()
    before = head(chain)
    chain.backend.close()
    with open(path, "ab") as f:
        f.write(b'{"op": "eth_sendRawTransaction", "effects": [{"kind": "blo')
    with caplog.at_level(logging.WARNING, logger="fedledger.evm.journal"):
        again = open_chain(path)
    assert "torn" in caplog.text
    assert head(again) == before
    assert path.read_bytes() == complete  # cut off the file
    again.backend.mine(1)
    again.backend.close()
    assert head(open_chain(path))[0] == before[0] + 1


def test_a_corrupt_middle_line_is_an_error_naming_it(tmp_path):
    path = tmp_path / "chain.jsonl"
    anchored_chain(path)[0].backend.close()
    text = path.read_text().splitlines(keepends=True)
    text[2] = "not json\n"
    path.write_text("".join(text))
    with pytest.raises(JournalCorruptError) as caught:
        open_chain(path)
    assert caught.value.line == 3 and caught.value.step == "journal"


@pytest.mark.parametrize("tamper", ["hash", "timestamp", "mix_hash", "drop_tx", "number"])
def test_a_tampered_block_fails_the_replay_at_its_line(tmp_path, tamper):
    path = tmp_path / "chain.jsonl"
    anchored_chain(path)[0].backend.close()
    entries = lines(path)
    block = entries[2]["effects"][0]  # the anchor transaction (line 3)
    if tamper == "hash":
        block["hash"] = "0x" + "ab" * 32
    elif tamper == "timestamp":
        block["timestamp"] += 1
    elif tamper == "mix_hash":
        block["mix_hash"] = "0x" + "00" * 32
    elif tamper == "drop_tx":
        block["txs"] = []
    else:
        block["number"] += 1
    rewrite(path, entries)
    with pytest.raises(JournalMismatchError) as caught:
        open_chain(path)
    assert caught.value.line == 3 and caught.value.step == "journal"


def test_a_changed_genesis_fails_at_line_one(tmp_path):
    path = tmp_path / "chain.jsonl"
    open_chain(path).backend.close()
    entries = lines(path)
    entries[0]["genesis"]["params"]["timestamp"] -= 1
    rewrite(path, entries)
    with pytest.raises(JournalMismatchError) as caught:
        open_chain(path)
    assert caught.value.line == 1


def test_transactions_through_the_rpc_server_are_journaled(tmp_path):
    path = tmp_path / "chain.jsonl"
    backend = EmbeddedBackend(journal=path)
    server = ThreadedServer(create_rpc_app(backend)).start()
    try:
        chain_id = int(backend.w3.eth.chain_id)
        keys = [a.key.to_0x_hex() for a in backend.dev_accounts()[:1]]
        remote = Chain(RpcBackend(server.url, chain_id, dev_keys=keys),
                       EvmConfig(backend="rpc", rpc_url=server.url, chain_id=chain_id,
                                 **EMBEDDED_TEST_CONFIG))
        orgs = [Account.create() for _ in range(3)]
        registry = deploy_anchor_registry(remote, td.sorted_keys(o.address for o in orgs), 2,
                                          remote.dev_accounts()[0])
        remote.backend.mine(2)  # evm_mine
        remote.backend.increase_time(100)  # evm_increaseTime + evm_mine
        snapshot = httpx.post(server.url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_snapshot",
                                                "params": []}).json()["result"]
        remote.transfer(remote.dev_accounts()[0], orgs[0].address, 5)
        reverted = httpx.post(server.url, json={"jsonrpc": "2.0", "id": 2, "method": "evm_revert",
                                                "params": [snapshot]}).json()
        assert reverted.get("error") is None
        remote.backend.mine(1)  # a block on top of the reverted head
        before, times = head(remote), timestamps(remote)
        code = remote.w3.eth.get_code(registry.address)
    finally:
        server.stop()
        backend.close()
    ops = [e["op"] for e in lines(path)[1:]]
    assert ops[0] == "eth_sendRawTransaction"
    assert ops[1:] == ["evm_mine", "evm_mine", "evm_increaseTime", "evm_mine",
                       "eth_sendRawTransaction", "evm_revert", "evm_mine"]
    again = open_chain(path)
    assert head(again) == before and timestamps(again) == times
    assert again.w3.eth.get_code(registry.address) == code != b""
    assert again.w3.eth.get_balance(orgs[0].address) == 0  # the transfer was reverted


def test_a_failed_append_refuses_every_later_request(tmp_path, monkeypatch):
    path = tmp_path / "chain.jsonl"
    chain = open_chain(path)

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journaling.os, "fsync", no_space)
    with pytest.raises(JournalWriteError) as caught:
        chain.backend.mine(1)
    assert caught.value.line == 2
    monkeypatch.undo()
    with pytest.raises(JournalWriteError):
        chain.w3.eth.block_number  # noqa: B018 - a read, refused too


def test_one_journal_one_backend(tmp_path):
    path = tmp_path / "chain.jsonl"
    first = open_chain(path)
    with pytest.raises(JournalError):
        open_chain(path)  # a second process on the same root would interleave blocks
    first.backend.mine(1)
    first.backend.close()
    assert head(open_chain(path))[0] == 1
