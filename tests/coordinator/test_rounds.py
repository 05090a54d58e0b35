"""Rounds end to end on the embedded Fabric network: open, upload, ledger submissions,
close, aggregate, attest, model version; operator auth and restart."""

from __future__ import annotations

import json

import torch

from fedledger.coordinator.aggregate import aggregate_updates
from fedledger.digests import sha256_hex
from fedledger.learning.updates import load_update_bytes

from .conftest import (
    MSPS,
    OPERATOR,
    attest,
    auth,
    make_update,
    open_round,
    submit_on_ledger,
    upload,
    wait_status,
)


def test_health_and_operator_token(app_client) -> None:
    client = app_client()
    assert client.get("/health").json() == {"status": "ok", "service": "coordinator",
                                            "org": "Org1MSP"}
    missing = client.post("/rounds", json={})
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthorized"
    wrong = client.post("/rounds", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "invalid operator token"
    assert client.get("/rounds/current").status_code == 404
    assert client.get("/rounds").json() == []


def test_open_round_is_on_the_ledger(app_client, consortium) -> None:
    client = app_client()
    body = open_round(client, deadline_s=600, quorum=2, local_steps=5)
    round_id = body["round_id"]
    assert body["status"] == "open"
    assert body["committee"] == list(MSPS)
    assert body["quorum"] == 2
    assert body["config"]["train"]["local_steps"] == 5
    assert body["config"]["strategy"] == {"name": "fedavg", "params": {}}
    assert body["base"] is None and body["aggregate"] is None
    assert body["ledger"]["open_tx"]
    on_ledger = json.loads(consortium["Org2MSP"].evaluate("GetRound", str(round_id)))
    assert on_ledger["status"] == "open"
    assert on_ledger["opened_by"] == "Org1MSP"
    assert on_ledger["config_digest"] == body["config_digest"]
    assert on_ledger["deadline"] == body["deadline"]
    assert on_ledger["committee"] == list(MSPS)
    assert client.get("/rounds/current").json()["round_id"] == round_id
    again = client.post("/rounds", json={}, headers=OPERATOR)
    assert again.status_code == 409
    assert f"round {round_id} is still open" in again.json()["message"]
    too_many = client.post(f"/rounds/{round_id}/close", headers={})
    assert too_many.status_code == 401


def test_round_to_final_model_version(app_client, devnet, consortium, context) -> None:
    client = app_client()
    first = open_round(client, quorum=2)
    round_id = first["round_id"]
    updates = {msp: make_update(context.spec, seed=i) for i, msp in enumerate(MSPS)}
    samples = {"Org1MSP": 10, "Org2MSP": 30, "Org3MSP": 20}
    for msp, data in updates.items():
        response = upload(client, devnet, msp, round_id, data, num_samples=samples[msp])
        assert response.status_code == 201, response.text
        assert response.json() == {"update_hash": sha256_hex(data)}
    # Uploaded but not on the ledger: nothing counts yet, the round stays open.
    assert client.get(f"/rounds/{round_id}").json()["status"] == "open"
    for msp, data in updates.items():
        submit_on_ledger(consortium[msp], round_id, msp, sha256_hex(data), samples[msp])
    body = wait_status(client, round_id, "aggregated")
    assert body["ledger"]["close_tx"]
    assert json.loads(consortium["Org1MSP"].evaluate("GetRound", str(round_id)))["status"] == "closed"
    assert [s["on_ledger"] for s in body["submissions"]] == [True, True, True]

    aggregate = client.get(f"/rounds/{round_id}/aggregate").json()
    assert aggregate["strategy"] == {"name": "fedavg", "params": {}}
    assert aggregate["included"] == [
        {"org": msp, "update_hash": sha256_hex(updates[msp]), "num_samples": samples[msp]}
        for msp in MSPS]
    # Any org recomputes the same digest from the blobs it downloads.
    downloaded = {}
    for item in aggregate["included"]:
        blob = client.get(f"/blobs/{item['update_hash']}", auth=auth(devnet, "Org2"))
        assert blob.status_code == 200
        assert sha256_hex(blob.content) == item["update_hash"]
        downloaded[item["org"]] = (load_update_bytes(blob.content, context.spec,
                                                     max_bytes=1 << 20), item["num_samples"])
    expected = aggregate_updates("fedavg", {}, downloaded, context.initial_state)
    assert aggregate["aggregate_digest"] == expected.digest
    assert "digest" not in aggregate and "adapter_hash" not in aggregate
    manual = {k: sum(downloaded[m][0][k] * samples[m] for m in MSPS) / 60 for k in context.spec.shapes}
    got = load_update_bytes(expected.data, context.spec, max_bytes=1 << 20)
    for key in context.spec.shapes:
        torch.testing.assert_close(got[key], manual[key])
    assert client.get(f"/blobs/{aggregate['aggregate_digest']}").status_code == 401

    # One attestation is not a majority of three orgs.
    attest(consortium["Org2MSP"], round_id, "Org2MSP", aggregate["aggregate_digest"])
    attest(consortium["Org3MSP"], round_id, "Org3MSP", aggregate["aggregate_digest"])
    body = wait_status(client, round_id, "final")
    assert body["version_id"] == f"v{round_id}"
    assert body["ledger"]["model_tx"]
    assert body["attestations"] == ["Org2MSP", "Org3MSP"]
    version = json.loads(consortium["Org3MSP"].evaluate("GetModelVersion", f"v{round_id}"))
    assert version["adapter_digest"] == aggregate["aggregate_digest"]
    assert version["round_id"] == round_id and version["parents"] == []
    models = client.get("/models").json()
    assert [m["version_id"] for m in models] == [f"v{round_id}"]
    adapter = client.get(f"/models/v{round_id}/adapter", auth=auth(devnet, "Org3"))
    assert sha256_hex(adapter.content) == aggregate["aggregate_digest"]
    assert client.get(f"/models/v{round_id}/adapter", headers=OPERATOR).status_code == 200
    assert client.get(f"/models/v{round_id}/adapter").status_code == 401

    # The next round starts from this version; its committee seed is this digest.
    second = open_round(client, quorum=1)
    assert second["round_id"] == round_id + 1
    assert second["base"] == {"version_id": f"v{round_id}",
                              "adapter_hash": aggregate["aggregate_digest"],
                              "round_id": round_id, "server_state_hash": None}
    update = make_update(context.spec, seed=7)
    assert upload(client, devnet, "Org2MSP", second["round_id"], update).status_code == 201
    submit_on_ledger(consortium["Org2MSP"], second["round_id"], "Org2MSP", sha256_hex(update))
    closed = client.post(f"/rounds/{second['round_id']}/close", headers=OPERATOR)
    assert closed.status_code == 200, closed.text
    body = wait_status(client, second["round_id"], "aggregated")
    digest = body["aggregate"]["aggregate_digest"]
    for msp in ("Org1MSP", "Org3MSP"):
        attest(consortium[msp], second["round_id"], msp, digest)
    wait_status(client, second["round_id"], "final")
    model = client.get(f"/models/v{second['round_id']}").json()
    assert model["parents"] == [f"v{round_id}"] and model["lineage"] == [f"v{round_id}"]
    on_ledger = json.loads(consortium["Org1MSP"].evaluate("GetModelVersion", f"v{second['round_id']}"))
    assert on_ledger["parents"] == [f"v{round_id}"]


def test_too_few_submissions_fail_the_round(app_client, devnet, consortium, context) -> None:
    client = app_client()
    round_id = open_round(client, quorum=2)["round_id"]
    data = make_update(context.spec, seed=1)
    assert upload(client, devnet, "Org3MSP", round_id, data).status_code == 201
    submit_on_ledger(consortium["Org3MSP"], round_id, "Org3MSP", sha256_hex(data))
    response = client.post(f"/rounds/{round_id}/close", headers=OPERATOR)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed"
    assert "1 submission(s) on the ledger, quorum is 2" in body["error"]
    assert client.post(f"/rounds/{round_id}/close", headers=OPERATOR).status_code == 409
    # A failed round does not block the next one.
    assert open_round(client)["round_id"] == round_id + 1


def test_deadline_closes_the_round(app_client, devnet, consortium, context) -> None:
    client = app_client()
    round_id = open_round(client, deadline_s=2, quorum=1)["round_id"]
    data = make_update(context.spec, seed=2)
    assert upload(client, devnet, "Org1MSP", round_id, data).status_code == 201
    submit_on_ledger(consortium["Org1MSP"], round_id, "Org1MSP", sha256_hex(data))
    body = wait_status(client, round_id, "aggregated", timeout=10)
    assert body["aggregate"]["included"] == ["Org1MSP"]
    late = upload(client, devnet, "Org2MSP", round_id, make_update(context.spec, seed=3))
    assert late.status_code == 409
    assert late.json()["error"] == "round_not_open"


def test_restart_resumes_an_open_round(app_client, devnet, consortium, context, tmp_path) -> None:
    first = app_client(follow_events=False)
    round_id = open_round(first, quorum=3)["round_id"]
    updates = {msp: make_update(context.spec, seed=10 + i) for i, msp in enumerate(MSPS)}
    assert upload(first, devnet, "Org1MSP", round_id, updates["Org1MSP"]).status_code == 201
    first.stop()

    second = app_client()
    body = second.get(f"/rounds/{round_id}").json()
    assert body["status"] == "open"
    assert body["submissions"][0]["update_hash"] == sha256_hex(updates["Org1MSP"])
    assert (tmp_path / "blobs" / sha256_hex(updates["Org1MSP"])).is_file()
    # Same upload again after the restart: idempotent.
    assert upload(second, devnet, "Org1MSP", round_id, updates["Org1MSP"]).status_code == 200
    assert second.post("/rounds", json={}, headers=OPERATOR).status_code == 409
    for msp in ("Org2MSP", "Org3MSP"):
        assert upload(second, devnet, msp, round_id, updates[msp]).status_code == 201
    for msp in MSPS:
        submit_on_ledger(consortium[msp], round_id, msp, sha256_hex(updates[msp]))
    body = wait_status(second, round_id, "aggregated")
    assert body["aggregate"]["included"] == list(MSPS)
    assert body["ledger"]["open_tx"] and body["ledger"]["close_tx"]


def test_restart_resolves_a_round_left_opening(app_client, make_settings, consortium) -> None:
    """A crash between writing the row and OpenRound: the next start opens it once."""
    from sqlalchemy import select

    from fedledger.coordinator.models import RoundRow

    client = app_client()
    round_id = open_round(client)["round_id"]
    service = client.app.state.service
    with service.sessions() as session:
        row = session.get(RoundRow, round_id)
        row.status = "opening"
        session.commit()
    client.stop()
    client = app_client()
    body = wait_status(client, round_id, "open")
    assert body["ledger"]["open_tx"]
    with client.app.state.service.sessions() as session:
        assert len(session.scalars(select(RoundRow)).all()) == 1
    assert json.loads(consortium["Org1MSP"].evaluate("GetRound", str(round_id)))["status"] == "open"


def test_bad_inputs_get_a_clear_4xx_and_change_nothing(app_client, devnet, consortium) -> None:
    client = app_client()
    before = client.get("/rounds").json()
    broken = client.post("/rounds", content=b'{"deadline_s": ', headers={
        **OPERATOR, "Content-Type": "application/json"})
    assert broken.status_code == 422 and "invalid request" in broken.json()["message"]
    negative = client.post("/rounds", json={"deadline_s": -5}, headers=OPERATOR)
    assert negative.status_code == 422 and "deadline_s" in negative.json()["message"]
    assert client.get("/rounds/4242").status_code == 404
    assert client.get("/rounds/not-a-round").status_code == 422
    assert client.get("/rounds/" + "9" * 40).status_code == 422
    assert client.get("/rounds/4242/aggregate").status_code == 404
    unknown_blob = client.get("/blobs/" + "ab" * 32, auth=auth(devnet, "Org2"))
    assert unknown_blob.status_code == 404
    assert client.get("/blobs/" + "ab" * 32).status_code == 401  # unsigned
    assert client.get("/rounds").json() == before
