"""The dev peer's ledger survives a restart, and tampering is detected at start."""

from __future__ import annotations

import json
import sqlite3

import pytest

from fedledger.fabric.devpeer.network import EmbeddedNetwork
from fedledger.fabric.errors import LedgerTamperedError

from ..conftest import dataset_record


def test_ledger_is_intact_after_a_restart_and_tampering_is_detected(tmp_path):
    with EmbeddedNetwork(tmp_path, ["Org1", "Org2"]) as net, net.connect("Org1") as gateway:
        contract = gateway.network("org1-private").contract("fedledger", "private")
        contract.submit("Init")
        for i in range(3):
            contract.submit("RegisterDataset", dataset_record(f"kept-{i}"))
        height = net.network.peer.channels["org1-private"].ledger.height

    with EmbeddedNetwork(tmp_path, ["Org1", "Org2"]) as net, net.connect("Org1") as gateway:
        assert net.network.peer.channels["org1-private"].ledger.height == height
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
    net = EmbeddedNetwork(tmp_path, ["Org1", "Org2"])
    with pytest.raises(LedgerTamperedError, match=f"block {row[0]}"):
        net.start()
    net.stop()
