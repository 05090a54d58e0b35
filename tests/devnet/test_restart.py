"""The dev peer's ledger survives a restart, every channel starts with its config block,
tampering is detected at start, and a ledger without a config block is refused."""

from __future__ import annotations

import json
import sqlite3

import pytest

from fedledger.devnet.blocks import block_header_hash, new_block
from fedledger.devnet.ledger import Ledger, LedgerFormatError
from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.fabric.errors import LedgerTamperedError
from tests.fabric.conftest import dataset_record

from .envelopes import joined_ledger, make_envelope

FAST = OrdererSettings.fast()


def test_ledger_is_intact_after_a_restart_and_tampering_is_detected(tmp_path):
    with EmbeddedNetwork(tmp_path, ["Org1", "Org2"], orderer=FAST) as net, \
            net.connect("Org1") as gateway:
        channels = net.network.peer.channels
        # A fresh channel holds its config block only: height 1, as on Fabric.
        assert {name: rt.ledger.height for name, rt in channels.items()} == {
            "consortium": 1, "org1-private": 1, "org2-private": 1}
        genesis = channels["org1-private"].ledger.block(0)
        contract = gateway.network("org1-private").contract("fedledger", "private")
        _, first_tx = contract.submit_with_id("Init")
        assert channels["org1-private"].ledger.tx_status(first_tx)[1] == 1  # block 1
        for i in range(3):
            contract.submit("RegisterDataset", dataset_record(f"kept-{i}"))
        height = channels["org1-private"].ledger.height

    with EmbeddedNetwork(tmp_path, ["Org1", "Org2"], orderer=FAST) as net, \
            net.connect("Org1") as gateway:
        ledger = net.network.peer.channels["org1-private"].ledger
        assert ledger.height == height
        assert ledger.block(0) == genesis   # the config block is not written again
        contract = gateway.network("org1-private").contract("fedledger", "private")
        ids = [d["dataset_id"] for d in json.loads(contract.evaluate("ListDatasets"))]
        assert ids == ["kept-0", "kept-1", "kept-2"]
        contract.submit("RegisterDataset", dataset_record("after-restart"))  # chain continues

    db = sqlite3.connect(tmp_path / "ledgers" / "org1-private.sqlite")
    with db:
        row = db.execute("SELECT number, block FROM blocks ORDER BY number LIMIT 1 OFFSET 1").fetchone()
        tampered = bytearray(row[1])
        tampered[len(tampered) // 2] ^= 0xFF
        db.execute("UPDATE blocks SET block = ? WHERE number = ?", (bytes(tampered), row[0]))
    db.close()
    net = EmbeddedNetwork(tmp_path, ["Org1", "Org2"], orderer=FAST)
    with pytest.raises(LedgerTamperedError, match=f"block {row[0]}"):
        net.start()
    net.stop()


def test_a_ledger_written_before_config_blocks_is_refused_naming_its_file(tmp_path):
    # What an older dev peer left on disk: transactions from block 0, no config block.
    path = tmp_path / "ledgers" / "org1-private.sqlite"
    Ledger(path, "org1-private").close()
    scratch = joined_ledger(tmp_path / "scratch.sqlite", "org1-private")
    tx = make_envelope("a" * 64, scratch.new_simulator().results().public_rwset,
                       channel_id="org1-private")
    scratch.close()
    old = new_block(0, b"", [tx])
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO blocks VALUES (?,?,?,?,?)",
                   (0, block_header_hash(old.header), b"", old.header.data_hash,
                    old.SerializeToString()))
    db.close()
    net = EmbeddedNetwork(tmp_path, ["Org1", "Org2"], orderer=FAST)
    with pytest.raises(LedgerFormatError) as info:
        net.start()
    net.stop()
    assert info.value.path == path
