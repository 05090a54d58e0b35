"""The poisoning defense end to end over the services (tiny model, 3 orgs): Org3's node
is set to boost its update 30x; the validator committee, drawn by stake from public
randomness, rejects it on the consortium channel, the aggregate leaves it out, every org
checks that before attesting, and the bridge settles the round on the Staking contract:
Org3 is slashed, the honest proposers and validators are rewarded."""

from __future__ import annotations

import httpx
import pytest
from eth_utils import to_checksum_address
from web3 import Web3

from fedledger.coordinator.committee import select_validators
from fedledger.evm.artifact_loader import load_artifact
from fedledger.launcher import Deployment, experiment_config
from tests.test_end_to_end import run_round, wait_for

DEFENSE = {"voting": True, "validators": 2, "vote_window_s": 120, "reward_wei": 10**15,
           "slash_wei": 10**17}
STAKE = 10**18


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("defense") / "up"
    d = Deployment(root, 3, quick=True, poll_s=0.3, stake_wei=STAKE,
                   experiment=experiment_config(quick=True, local_steps=2, defense=DEFENSE),
                   attacks={"Org3": {"kind": "boost", "factor": 30.0}})
    d.start()
    try:
        d.register_demo_datasets(max_samples=40)
        yield d
    finally:
        d.stop()


def stakes(d: Deployment) -> dict:
    response = httpx.get(d.url("coordinator") + "/stakes", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_boosted_update_is_rejected_and_its_proposer_slashed(deployment):
    d = deployment
    coordinator = d.url("coordinator")
    wait_for("every org staked", lambda: all(
        int(o["stake_wei"]) == STAKE for o in stakes(d)["orgs"].values()), 120, d)

    final = run_round(d)
    round_id = final["round_id"]
    validation = final["validation"]
    assert len(validation["validators"]) == 2
    # the committee is reproducible from public values: the seed, and the stakes at a block
    weights = {org: int(w) for org, w in validation["weights"].items()}
    assert select_validators(weights, seed=validation["seed"], round_id=round_id,
                             size=2) == validation["validators"]
    assert validation["seed_source"] == "config_digest"  # nothing anchored yet
    assert validation["seed"] == final["config_digest"]
    w3 = Web3(Web3.HTTPProvider(d.host_info["rpc_url"]))
    staking = w3.eth.contract(address=to_checksum_address(d.host_info["staking"]),
                              abi=load_artifact("Staking").abi)
    view = stakes(d)["orgs"]
    for org, weight in weights.items():
        address = to_checksum_address(view[org]["address"])
        assert staking.functions.stakeOf(address).call(
            block_identifier=validation["stakes_block"]) == weight

    votes = httpx.get(f"{coordinator}/rounds/{round_id}/votes", timeout=30).json()
    assert votes["verdict"] == {"Org1MSP": True, "Org2MSP": True, "Org3MSP": False}
    against = [v for v in votes["votes"] if v["target_org"] == "Org3MSP"]
    assert against and not any(v["accept"] for v in against)
    assert {v["validator"] for v in votes["votes"]} <= set(validation["validators"])
    aggregate = httpx.get(f"{coordinator}/rounds/{round_id}/aggregate", timeout=30).json()
    assert [i["org"] for i in aggregate["included"]] == ["Org1MSP", "Org2MSP"]
    assert "Org3MSP" in aggregate["rejected"]
    assert sorted(final["attestations"]) >= ["Org1MSP", "Org2MSP"]

    # the bridge anchors the round, then settles it on Staking with the orgs' signatures
    def settled():  # noqa: ANN202
        view = stakes(d)
        return view if view["next_round_to_settle"] > round_id else None

    view = wait_for(f"round {round_id} settled on Staking", settled, 180, d)["orgs"]
    # per org, summed: a proposer's reward or slash, plus a validator's reward (every
    # validator here voted with the verdict, Org3 included: it only poisons its update)
    validator = {org: 10**15 if org in validation["validators"] else 0 for org in view}
    expected = {"Org1MSP": 10**15 + validator["Org1MSP"],
                "Org2MSP": 10**15 + validator["Org2MSP"],
                "Org3MSP": -10**17 + validator["Org3MSP"]}
    for org, delta in expected.items():
        moved = sum(int(e["amount_wei"]) * (1 if e["kind"] == "rewarded" else -1)
                    for e in view[org]["history"]
                    if e["kind"] in ("rewarded", "slashed") and e["round_id"] == round_id)
        assert moved == delta, (org, view[org])
        assert int(view[org]["stake_wei"]) == STAKE + delta
    assert [e["kind"] for e in view["Org3MSP"]["history"]] == ["staked", "slashed"]

    # the next round's committee is drawn from the newest anchor's root, and by stake
    second = run_round(d)
    assert second["validation"]["seed_source"] == "anchor_root"
    assert int(second["validation"]["weights"]["Org3MSP"]) == STAKE + expected["Org3MSP"]
