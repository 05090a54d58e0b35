"""No hot keys in the round protocol: N orgs that submit, vote and attest in the same
block never MVCC-conflict (Fabric's guidance; defect 3 of the real-Fabric run).

On the dev peer with the deployment's block cutting (configtx.yaml's BatchTimeout), every
org's transaction of one step is endorsed first and then handed to the orderer at once,
so the step's N transactions are cut into one block, as on a Fabric network whose orgs
act within one batch timeout. Each must commit VALID.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.fabric.errors import WrongStateError
from fedledger.fabric.gateway import Contract

from ..fabric.conftest import org_record

ORGS = tuple(f"Org{i}" for i in range(1, 6))
MSPS = [f"{o}MSP" for o in ORGS]


def h(text: str) -> str:
    return f"{abs(hash(text)) % 16**64:064x}"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNetwork]:
    net = EmbeddedNetwork(Path(tmp_path_factory.mktemp("hotkeys")), ORGS,
                          orderer=OrdererSettings.deployment())
    net.start()
    yield net
    net.stop()


@pytest.fixture(scope="module")
def contracts(network: EmbeddedNetwork) -> Iterator[dict[str, Contract]]:
    gateways = {f"{o}MSP": network.connect(o) for o in ORGS}
    contracts = {msp: g.network("consortium").contract("fedledger", "consortium")
                 for msp, g in gateways.items()}
    in_one_block(contracts, "RegisterOrg", {msp: (org_record(msp),) for msp in MSPS})
    yield contracts
    for gateway in gateways.values():
        gateway.close()


def finality(round_id: int, digest: str, attesters: list[str]) -> str:
    return json.dumps({"round_id": round_id, "aggregate_digest": digest,
                       "attesters": list(attesters)})


def in_one_block(contracts: dict[str, Contract], function: str,
                 calls: dict[str, tuple[str, ...]]) -> set[int]:
    """Endorse every org's call, hand them all to the orderer together, and return the
    block numbers they committed in; fails unless every one is VALID."""
    endorsed = {msp: contracts[msp].endorse(function, *args) for msp, args in calls.items()}
    with ThreadPoolExecutor(len(endorsed)) as pool:
        submitted = list(pool.map(lambda tx: tx.submit(), endorsed.values()))
        statuses = list(pool.map(lambda s: s.status(), submitted))
    codes = {s.tx_id: s.code_name for s in statuses}
    assert set(codes.values()) == {"VALID"}, f"{function}: {codes}"
    return {s.block_number for s in statuses}


def test_submissions_votes_and_attestations_of_five_orgs_share_a_block(
        contracts: dict[str, Contract]) -> None:
    opener = contracts["Org1MSP"]
    deadline = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    opener.submit("OpenRound", json.dumps({
        "round_id": 1, "config_digest": h("config"), "deadline": deadline, "quorum": 1,
        "shard": 0, "committee": MSPS, "validators": MSPS,
        "vote_deadline": (datetime.now(UTC) + timedelta(hours=2)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")}))

    blocks = in_one_block(contracts, "SubmitUpdate", {msp: (json.dumps({
        "round_id": 1, "org": msp, "shard": 0, "update_hash": h(f"update {msp}"),
        "num_samples": 10, "update_spec_digest": h("spec"), "signature": "ab" * 32}),)
        for msp in MSPS})
    assert len(blocks) == 1

    # every validator votes on the next org's update, all at once
    targets = {msp: MSPS[(i + 1) % len(MSPS)] for i, msp in enumerate(MSPS)}
    blocks = in_one_block(contracts, "CastVote", {msp: (json.dumps({
        "round_id": 1, "validator": msp, "target_org": targets[msp], "accept": True,
        "score": 0.1}),) for msp in MSPS})
    assert len(blocks) == 1

    opener.submit("CloseRound", "1")
    aggregate = h("aggregate")
    blocks = in_one_block(contracts, "AttestAggregate", {msp: (json.dumps({
        "round_id": 1, "org": msp, "aggregate_digest": aggregate}),) for msp in MSPS})
    assert len(blocks) == 1

    final = json.loads(opener.submit("FinalizeRound", finality(1, aggregate, MSPS)))
    assert final["status"] == "final" and final["aggregate_digest"] == aggregate
    assert len(json.loads(opener.evaluate("ListAttestations", "1"))) == len(MSPS)
    assert len(json.loads(opener.evaluate("ListVotes", "1"))) == len(MSPS)


def test_finalize_without_a_majority_is_a_typed_refusal(contracts: dict[str, Contract]) -> None:
    opener = contracts["Org1MSP"]
    deadline = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    opener.submit("OpenRound", json.dumps({
        "round_id": 2, "config_digest": h("config"), "deadline": deadline, "quorum": 1,
        "shard": 0, "committee": MSPS}))
    opener.submit("SubmitUpdate", json.dumps({
        "round_id": 2, "org": "Org1MSP", "shard": 0, "update_hash": h("u2"),
        "num_samples": 10, "update_spec_digest": h("spec"), "signature": "ab" * 32}))
    opener.submit("CloseRound", "2")
    in_one_block(contracts, "AttestAggregate", {msp: (json.dumps({
        "round_id": 2, "org": msp, "aggregate_digest": h("a2")}),) for msp in MSPS[:2]})
    with pytest.raises(WrongStateError) as refused:
        opener.submit("FinalizeRound", finality(2, h("a2"), MSPS[:2]))
    assert refused.value.step == "endorse" and refused.value.grpc_code == "ABORTED"
    assert json.loads(opener.evaluate("GetRound", "2"))["status"] == "aggregated"



@pytest.mark.parametrize("round_id", [3, 4])
def test_late_attestations_and_the_finalisation_share_a_block(
        contracts: dict[str, Contract], round_id: int) -> None:
    """The coordinator finalises on the first majority while the other orgs are still
    attesting: both kinds commit in one block, whichever the orderer puts first."""
    opener = contracts["Org1MSP"]
    deadline = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    opener.submit("OpenRound", json.dumps({
        "round_id": round_id, "config_digest": h("config"), "deadline": deadline,
        "quorum": 1, "shard": 0, "committee": MSPS}))
    opener.submit("SubmitUpdate", json.dumps({
        "round_id": round_id, "org": "Org1MSP", "shard": 0, "update_hash": h(f"u{round_id}"),
        "num_samples": 10, "update_spec_digest": h("spec"), "signature": "ab" * 32}))
    opener.submit("CloseRound", str(round_id))
    digest = h(f"aggregate {round_id}")
    majority, late = MSPS[:3], MSPS[3:]
    in_one_block(contracts, "AttestAggregate", {msp: (json.dumps({
        "round_id": round_id, "org": msp, "aggregate_digest": digest}),) for msp in majority})
    attesting = {msp: (json.dumps({"round_id": round_id, "org": msp,
                                   "aggregate_digest": digest}),) for msp in late}
    # the finalising call first in one run, last in the other
    calls = [("FinalizeRound", "Org1MSP", (finality(round_id, digest, majority),))] + [
        ("AttestAggregate", msp, args) for msp, args in attesting.items()]
    if round_id % 2 == 0:
        calls.reverse()
    endorsed = [contracts[msp].endorse(function, *args) for function, msp, args in calls]
    submitted = [tx.submit() for tx in endorsed]
    statuses = [s.status() for s in submitted]
    assert [s.code_name for s in statuses] == ["VALID"] * len(calls)
    assert len({s.block_number for s in statuses}) == 1
    assert json.loads(opener.evaluate("GetRound", str(round_id)))["status"] == "final"
