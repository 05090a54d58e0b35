"""A server optimizer over the services: the coordinator steps the aggregate with the
round config's optimizer, stores and publishes the state, finalises only on attestations
of both digests, and starts the next round from that state (FedAdam, two rounds)."""

from __future__ import annotations

import json

import pytest

from fedledger.digests import sha256_hex
from fedledger.fabric.errors import FabricError
from fedledger.learning.aggregation import ClientUpdate, build_strategy
from fedledger.learning.server_optimizers import STEP_KEY, FedAdam
from fedledger.learning.updates import load_update_bytes, update_bytes

from .conftest import EXPERIMENT, attest, auth, make_update, open_round, submit_on_ledger, upload, wait_status

PARAMS = {"lr": 0.02, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}
FEDADAM = {**EXPERIMENT, "federation": {"server_optimizer": {"name": "fedadam", "params": {"lr": 0.02}}}}


def _download(client, devnet, sha: str) -> bytes:
    blob = client.get(f"/blobs/{sha}", auth=auth(devnet, "Org2"))
    assert blob.status_code == 200, blob.text
    assert sha256_hex(blob.content) == sha
    return blob.content


def _round(client, devnet, consortium, context, seeds: dict[str, int]) -> tuple[dict, dict]:
    body = open_round(client, quorum=len(seeds))
    updates = {msp: make_update(context.spec, seed=s) for msp, s in seeds.items()}
    for msp, data in updates.items():
        assert upload(client, devnet, msp, body["round_id"], data).status_code == 201
        submit_on_ledger(consortium[msp], body["round_id"], msp, sha256_hex(data))
    client.post(f"/rounds/{body['round_id']}/close", headers={"Authorization": "Bearer operator-secret"})
    wait_status(client, body["round_id"], "aggregated")
    aggregate = client.get(f"/rounds/{body['round_id']}/aggregate").json()
    return body, {"aggregate": aggregate, "updates": updates}


def _recompute(context, updates: dict[str, bytes], start, state):
    inputs = [ClientUpdate(msp, load_update_bytes(data, context.spec, max_bytes=1 << 20), 10)
              for msp, data in sorted(updates.items())]
    mean = build_strategy("fedavg").aggregate(inputs, reference=start).tensors
    return FedAdam(**PARAMS).step(start, mean, state)


def test_fedadam_rounds_carry_their_state_on_the_ledger(app_client, devnet, consortium, context) -> None:
    client = app_client(experiment=FEDADAM)
    first, got = _round(client, devnet, consortium, context, {"Org1MSP": 1, "Org2MSP": 2})
    assert first["config"]["server_optimizer"] == {"name": "fedadam", "params": PARAMS}
    aggregate = got["aggregate"]
    # Any org recomputes both digests from the LoRA init, the initial state and the updates.
    expected = _recompute(context, got["updates"], context.initial_state, None)
    assert aggregate["aggregate_digest"] == sha256_hex(update_bytes(expected.tensors))
    assert aggregate["server_state_digest"] == sha256_hex(update_bytes(expected.state))
    stored = FedAdam(**PARAMS).load_state_bytes(
        _download(client, devnet, aggregate["server_state_digest"]), context.spec)
    assert int(stored[STEP_KEY]) == 1

    round_id = first["round_id"]
    # An attestation without the state does not count toward finality ...
    attest(consortium["Org3MSP"], round_id, "Org3MSP", aggregate["aggregate_digest"])
    attest(consortium["Org2MSP"], round_id, "Org2MSP", aggregate["aggregate_digest"],
           aggregate["server_state_digest"])
    with pytest.raises(FabricError):
        consortium["Org2MSP"].submit("FinalizeRound", json.dumps({
            "round_id": round_id, "aggregate_digest": aggregate["aggregate_digest"],
            "server_state_digest": aggregate["server_state_digest"],
            "attesters": ["Org2MSP", "Org3MSP"]}))
    assert client.get(f"/rounds/{round_id}").json()["status"] == "aggregated"
    # ... a second one with it makes the majority.
    attest(consortium["Org1MSP"], round_id, "Org1MSP", aggregate["aggregate_digest"],
           aggregate["server_state_digest"])
    wait_status(client, round_id, "final")
    on_ledger = json.loads(consortium["Org3MSP"].evaluate("GetRound", str(round_id)))
    assert (on_ledger["aggregate_digest"], on_ledger["server_state_digest"]) == (
        aggregate["aggregate_digest"], aggregate["server_state_digest"])

    # Round 2 starts from round 1's adapter and state, named with the round that made them.
    second, got2 = _round(client, devnet, consortium, context, {"Org1MSP": 3, "Org3MSP": 4})
    assert second["base"] == {"version_id": f"v{round_id}", "adapter_hash": aggregate["aggregate_digest"],
                              "round_id": round_id, "server_state_hash": aggregate["server_state_digest"]}
    start = load_update_bytes(_download(client, devnet, aggregate["aggregate_digest"]), context.spec,
                              max_bytes=1 << 20)
    expected2 = _recompute(context, got2["updates"], start, stored)
    assert got2["aggregate"]["aggregate_digest"] == sha256_hex(update_bytes(expected2.tensors))
    assert got2["aggregate"]["server_state_digest"] == sha256_hex(update_bytes(expected2.state))
    assert int(expected2.state[STEP_KEY]) == 2
    for msp in ("Org1MSP", "Org2MSP"):
        attest(consortium[msp], second["round_id"], msp, got2["aggregate"]["aggregate_digest"],
               got2["aggregate"]["server_state_digest"])
    wait_status(client, second["round_id"], "final")


def _attest_both(client, consortium, round_id: int) -> dict:
    aggregate = wait_status(client, round_id, "aggregated")["aggregate"]
    for msp in ("Org1MSP", "Org2MSP"):
        attest(consortium[msp], round_id, msp, aggregate["aggregate_digest"],
               aggregate["server_state_digest"])
    return wait_status(client, round_id, "final")


def test_a_replay_starts_from_the_state_before_the_deleted_step(app_client, devnet, consortium,
                                                                context) -> None:
    """Deleting from step 2 replays it from step 1's adapter and state: the replayed
    aggregate is the one a federation trained on the remaining data would have made."""
    import time

    client = app_client(experiment=FEDADAM)
    first, _ = _round(client, devnet, consortium, context, {"Org1MSP": 11, "Org2MSP": 12})
    _attest_both(client, consortium, first["round_id"])
    second, _ = _round(client, devnet, consortium, context, {"Org1MSP": 13, "Org2MSP": 14})
    _attest_both(client, consortium, second["round_id"])
    step1 = client.get(f"/rounds/{first['round_id']}/aggregate").json()

    asked = client.post("/unlearning", json={"notice_id": "n-fedadam", "first_steps": {"0": 2}},
                        auth=auth(devnet, "Org2MSP"))
    assert asked.status_code == 201, asked.text
    for _ in range(200):
        current = client.get("/rounds/current")
        if current.status_code == 200:
            break
        time.sleep(0.05)
    replay = current.json()
    assert (replay["step"], replay["replay_of"]) == (2, second["round_id"])
    assert replay["base"]["server_state_hash"] == step1["server_state_digest"]
    assert replay["base"]["round_id"] == first["round_id"]
    retrained = {msp: make_update(context.spec, seed=s) for msp, s in (("Org1MSP", 15), ("Org2MSP", 16))}
    for msp, data in retrained.items():
        assert upload(client, devnet, msp, replay["round_id"], data).status_code == 201
        submit_on_ledger(consortium[msp], replay["round_id"], msp, sha256_hex(data))
    final = _attest_both(client, consortium, replay["round_id"])
    start = load_update_bytes(_download(client, devnet, step1["aggregate_digest"]), context.spec,
                              max_bytes=1 << 20)
    state = FedAdam(**PARAMS).load_state_bytes(
        _download(client, devnet, step1["server_state_digest"]), context.spec)
    expected = _recompute(context, retrained, start, state)
    assert final["aggregate"]["aggregate_digest"] == sha256_hex(update_bytes(expected.tensors))
    assert final["aggregate"]["server_state_digest"] == sha256_hex(update_bytes(expected.state))
    lineage = client.get("/lineage").json()["lineages"]["0"]
    assert [s["round_id"] for s in lineage] == [first["round_id"], replay["round_id"]]
