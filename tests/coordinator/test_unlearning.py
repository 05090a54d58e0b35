"""Shard-group lineages, declines and a deletion's replay at the coordinator, with the
test playing the orgs (uploads, ledger submissions, attestations) on the embedded
Fabric network: rounds go round-robin over the shards, the interim version leaves the
affected shard out at once, the replay round repeats the step's participation record,
and the new version merges the replayed shard back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fedledger.coordinator.models import UnlearningJobRow
from fedledger.digests import sha256_hex

from .conftest import (
    EXPERIMENT,
    OPERATOR,
    attest,
    auth,
    make_update,
    open_round,
    upload,
    wait_status,
)

SHARDED = {**EXPERIMENT, "federation": {"shards": 2}}


def submit(client, devnet, consortium, round_id: int, org: str, shard: int, spec, seed: int
           ) -> str:
    data = make_update(spec, seed)
    assert upload(client, devnet, org, round_id, data).status_code == 201
    consortium[org].submit("SubmitUpdate", json.dumps({
        "round_id": round_id, "org": org, "shard": shard, "update_hash": sha256_hex(data),
        "num_samples": 10, "update_spec_digest": "0" * 64, "signature": "ab" * 32}))
    return sha256_hex(data)


def decline(client, devnet, round_id: int, org: str, reason: str = "no data in this shard"):
    return client.post(f"/rounds/{round_id}/decline", json={"reason": reason},
                       auth=auth(devnet, org))


def finish(client, consortium, round_id: int) -> dict:
    """Attest the published aggregate by a majority; the round becomes final."""
    aggregated = wait_status(client, round_id, "aggregated")
    for org in ("Org1MSP", "Org2MSP"):
        attest(consortium[org], round_id, org, aggregated["aggregate"]["aggregate_digest"])
    return wait_status(client, round_id, "final")


def test_shard_lineages_and_a_replayed_deletion(app_client, devnet, consortium, context) -> None:
    client = app_client(experiment=SHARDED)
    spec = context.spec

    first = open_round(client, deadline_s=600, quorum=1)
    assert (first["shard"], first["step"], first["config"]["sisa"]) == (
        0, 1, {"shards": 2, "shard": 0, "step": 1, "merge": "mean"})
    r1 = first["round_id"]
    submit(client, devnet, consortium, r1, "Org1MSP", 0, spec, 1)
    submit(client, devnet, consortium, r1, "Org2MSP", 0, spec, 2)
    refused = decline(client, devnet, r1, "Org1MSP")
    assert refused.status_code == 409 and "already uploaded" in refused.json()["message"]
    # Org3 declines: the round closes at once instead of waiting for its deadline
    assert decline(client, devnet, r1, "Org3MSP").status_code == 201
    assert decline(client, devnet, r1, "Org3MSP").status_code == 200  # the same, a no-op
    assert upload(client, devnet, "Org3MSP", r1, make_update(spec, 3)).status_code == 409
    final = finish(client, consortium, r1)
    assert final["declines"] == [{"org": "Org3MSP", "reason": "no data in this shard"}]
    v1 = client.get(f"/models/{final['version_id']}").json()
    assert [a["shard"] for a in v1["shard_adapters"]] == [0]

    second = open_round(client, deadline_s=600, quorum=1)
    assert (second["shard"], second["step"], second["base"]) == (1, 1, None)  # round-robin
    r2 = second["round_id"]
    submit(client, devnet, consortium, r2, "Org3MSP", 1, spec, 4)
    for org in ("Org1MSP", "Org2MSP"):
        assert decline(client, devnet, r2, org).status_code == 201
    served = client.get(f"/models/{finish(client, consortium, r2)['version_id']}").json()
    assert [a["shard"] for a in served["shard_adapters"]] == [0, 1]
    assert served["parents"] == [v1["version_id"]]

    # -- the deletion: shard 0 from step 1
    bad = client.post("/unlearning", json={"notice_id": "n-test", "first_steps": {"5": 1}},
                      auth=auth(devnet, "Org2MSP"))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_shard"
    unsigned = client.post("/unlearning", json={"notice_id": "n-test", "first_steps": {"0": 1}})
    assert unsigned.status_code == 401
    asked = client.post("/unlearning", json={"notice_id": "n-test", "first_steps": {"0": 1}},
                        auth=auth(devnet, "Org2MSP"))
    assert asked.status_code == 201, asked.text
    again = client.post("/unlearning", json={"notice_id": "n-test", "first_steps": {"0": 1}},
                        auth=auth(devnet, "Org2MSP"))
    assert again.status_code == 200
    other = client.post("/unlearning", json={"notice_id": "n-test", "first_steps": {"1": 1}},
                        auth=auth(devnet, "Org2MSP"))
    assert other.status_code == 409

    def replay_round() -> dict:
        import time

        for _ in range(200):
            current = client.get("/rounds/current")
            if current.status_code == 200:
                return current.json()
            time.sleep(0.05)
        raise AssertionError(client.get("/unlearning/n-test").json())

    replay = replay_round()
    assert (replay["shard"], replay["step"], replay["replay_of"]) == (0, 1, r1)
    assert replay["committee"] == ["Org1MSP", "Org2MSP"]  # the step's participation record
    assert replay["quorum"] == 1 and replay["config"]["replay"] == {"notice_id": "n-test",
                                                                    "of_round": r1}
    job = client.get("/unlearning/n-test").json()
    assert job["status"] == "replaying" and job["old_version"] == served["version_id"]
    interim = client.get(f"/models/{job['interim_version']}").json()
    assert interim["kind"] == "interim" and [a["shard"] for a in interim["shard_adapters"]] == [1]
    assert client.get("/models/served").json()["version_id"] == interim["version_id"]
    busy = client.post("/rounds", json={}, headers=OPERATOR)
    assert busy.status_code == 409

    # Org2 has no data left in shard 0; Org1 trains without the samples
    submit(client, devnet, consortium, replay["round_id"], "Org1MSP", 0, spec, 5)
    assert decline(client, devnet, replay["round_id"], "Org2MSP").status_code == 201
    finish(client, consortium, replay["round_id"])
    job = wait_job(client, "n-test", "done")
    assert job["replay_rounds"] == [replay["round_id"]]
    new = client.get("/models/served").json()
    assert new["version_id"] == job["new_version"] and new["kind"] == "unlearned"
    assert new["parents"] == [interim["version_id"]]
    adapters = {a["shard"]: a for a in new["shard_adapters"]}
    assert adapters[0]["round_id"] == replay["round_id"]
    assert adapters[1] == {a["shard"]: a for a in served["shard_adapters"]}[1]
    lineage = client.get("/lineage").json()["lineages"]
    assert [(s["step"], s["round_id"], s["invited"]) for s in lineage["0"]] == [
        (1, replay["round_id"], ["Org1MSP", "Org2MSP"])]
    on_ledger = json.loads(consortium["Org3MSP"].evaluate("GetModelVersion", new["version_id"]))
    assert on_ledger["shard_adapters"] == new["shard_adapters"]
    assert on_ledger["parents"] == [interim["version_id"]]
    # normal rounds open again, at the next step of the shortest lineage
    assert open_round(client, deadline_s=600)["step"] == 2


def wait_job(client, notice_id: str, status: str, timeout: float = 20) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/unlearning/{notice_id}").json()
        if job["status"] == status:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_rounds_wait_for_an_unfinished_deletion(app_client) -> None:
    client = app_client()
    service = client.app.state.service
    now = datetime.now(UTC)
    with service.sessions() as session:
        session.add(UnlearningJobRow(notice_id="n-busy", org="Org2MSP", status="replaying",
                                     first_steps={"0": 1}, plan=[{"shard": 0, "step": 1,
                                                                  "of_round": None,
                                                                  "invited": ["Org2MSP"],
                                                                  "rounds": [], "status": "done"}],
                                     timings={}, created_at=now, updated_at=now))
        session.commit()
    refused = client.post("/rounds", json={}, headers=OPERATOR)
    assert refused.status_code == 409 and refused.json()["error"] == "unlearning_in_progress"
    assert "n-busy" in refused.json()["message"]


def test_with_one_shard_the_interim_version_is_the_base_model(app_client, devnet, consortium,
                                                              context) -> None:
    from fedledger.learning.updates import update_bytes

    client = app_client()
    round_id = open_round(client, deadline_s=600, quorum=1)["round_id"]
    submit(client, devnet, consortium, round_id, "Org1MSP", 0, context.spec, 7)
    for org in ("Org2MSP", "Org3MSP"):
        decline(client, devnet, round_id, org)
    version = client.get(f"/models/{finish(client, consortium, round_id)['version_id']}").json()
    # S = 1: the version serves the round's aggregate itself
    assert version["adapter_digest"] == version["shard_adapters"][0]["adapter_digest"]
    asked = client.post("/unlearning", json={"notice_id": "n-s1", "first_steps": {"0": 1}},
                        auth=auth(devnet, "Org1MSP"))
    assert asked.status_code == 201, asked.text
    job = wait_job(client, "n-s1", "replaying")
    interim = client.get(f"/models/{job['interim_version']}").json()
    assert interim["shard_adapters"] == [] and interim["commitment_roots"] == []
    assert interim["adapter_digest"] == sha256_hex(update_bytes(context.initial_state))
    on_ledger = json.loads(consortium["Org2MSP"].evaluate("GetModelVersion",
                                                          interim["version_id"]))
    assert on_ledger["adapter_digest"] == interim["adapter_digest"]
