"""Filing deletion requests on one org node's admin API (no coordinator: the requests
stay ``filed``): every bad request gets a clear error and changes nothing, by-subject
and whole-dataset requests resolve to the right samples, a repeat is the same request,
and a filed sample is out of the training data at once."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from fedledger.orgnode.app import create_app
from fedledger.orgnode.datasets import deleted_pairs

from .conftest import admin_headers, node_settings

ROWS = [{"id": f"u-{i:02d}", "text": f"the flight was {'great' if i % 2 else 'late'} #{i}",
         "label": "positive" if i % 2 else "negative"} for i in range(12)]
BASE = {"legal_basis": "GDPR Art. 17(1)(a)", "requester": "ticket 12"}


@pytest.fixture(scope="module")
def node(devnet, tmp_path_factory):  # noqa: ANN001, ANN201
    settings = node_settings(devnet, "Org2", tmp_path_factory.mktemp("org2-deletions"), shards=2)
    with TestClient(create_app(settings)) as client:
        upload = "\n".join(json.dumps(r) for r in ROWS).encode()
        made = client.post("/datasets/upload", headers=admin_headers(),
                           files={"file": ("people.jsonl", upload)}, data={"dataset_id": "people"})
        assert made.status_code == 201, made.text
        yield client


def ledger_requests(node) -> list[dict]:  # noqa: ANN001
    return node.get("/records/deletion_requests", headers=admin_headers()).json()


def file(node, **body):  # noqa: ANN001, ANN201
    return node.post("/deletion-requests", headers=admin_headers(), json={**BASE, **body})


def test_bad_requests_change_nothing(node) -> None:  # noqa: ANN001
    cases = [
        ({"dataset_id": "people", "sample_ids": ["u-01"], "whole_dataset": True}, 422,
         "exactly one of"),
        ({"dataset_id": "people"}, 422, "exactly one of"),
        ({"dataset_id": "nobody", "sample_ids": ["u-01"]}, 404, "dataset nobody not found"),
        ({"dataset_id": "people", "sample_ids": ["u-01", "u-99", "x"]}, 422,
         "2 sample id(s) are not samples of dataset people: 'u-99', 'x'"),
        ({"dataset_id": "people", "subject_id": "alice"}, 422,
         "data subject 'alice' has no samples"),
        ({"dataset_id": "people", "sample_ids": ["u-01", "u-01"]}, 422, "must not repeat"),
        ({"dataset_id": "people", "sample_ids": ["bad\nid"]}, 422, "sample_ids"),
        ({"dataset_id": "people", "sample_ids": ["u-01"], "legal_basis": ""}, 422, "legal_basis"),
    ]
    for body, status, fragment in cases:
        answer = node.post("/deletion-requests", headers=admin_headers(),
                           json={**BASE, **body})
        assert answer.status_code == status, (body, answer.text)
        assert fragment in answer.json()["message"], (body, answer.json()["message"])
    assert node.get("/deletion-requests", headers=admin_headers()).json() == []
    assert ledger_requests(node) == []
    with node.app.state.node.sessions() as session:
        assert deleted_pairs(session) == set()


def test_requests_by_samples_subject_and_dataset(node) -> None:  # noqa: ANN001
    unknown = node.put("/datasets/people/subjects", headers=admin_headers(),
                       json={"subjects": {"alice": ["u-03", "u-77"]}})
    assert unknown.status_code == 422 and "'u-77'" in unknown.json()["message"]
    mapped = node.put("/datasets/people/subjects", headers=admin_headers(),
                      json={"subjects": {"alice": ["u-03", "u-05"], "bob": ["u-07"]}})
    assert mapped.status_code == 200 and mapped.json()["samples"] == 3

    by_subject = file(node, dataset_id="people", subject_id="alice")
    assert by_subject.status_code == 201, by_subject.text
    body = by_subject.json()
    assert body["status"] == "filed" and body["sample_ids"] == ["u-03", "u-05"]
    assert body["history"][0]["event"] == "filed" and body["history"][0]["tx_id"]
    on_ledger = {r["request_id"]: r for r in ledger_requests(node)}[body["request_id"]]
    assert (on_ledger["subject_id"], on_ledger["sample_ids"]) == ("alice", ["u-03", "u-05"])
    with node.app.state.node.sessions() as session:  # out of the training data at once
        assert deleted_pairs(session) == {("people", "u-03"), ("people", "u-05")}

    # the same request again, under its id or not, is the one filed: executed once
    again = file(node, dataset_id="people", subject_id="alice")
    assert again.status_code == 200 and again.json()["request_id"] == body["request_id"]
    named = file(node, dataset_id="people", subject_id="alice", request_id="my-own-id")
    assert named.status_code == 200 and named.json()["request_id"] == body["request_id"]
    clash = file(node, dataset_id="people", sample_ids=["u-08"], request_id=body["request_id"])
    assert clash.status_code == 409 and "other content" in clash.json()["message"]
    repeat = file(node, dataset_id="people", sample_ids=["u-03"], requester="someone else")
    assert repeat.status_code == 409 and repeat.json()["error"] == "already_deleted"

    whole = file(node, dataset_id="people", whole_dataset=True, request_id="all-of-it")
    assert whole.status_code == 201
    assert whole.json()["sample_ids"] == sorted(r["id"] for r in ROWS)
    assert any(e["event"] == "already_deleted" for e in whole.json()["history"])
    on_ledger = {r["request_id"]: r for r in ledger_requests(node)}["all-of-it"]
    assert on_ledger["whole_dataset"] is True and on_ledger["sample_ids"] == []
    with node.app.state.node.sessions() as session:
        assert len(deleted_pairs(session)) == len(ROWS)
    assert len(ledger_requests(node)) == 2
    # subjects and samples are on the private channel only: what auditors of this org see
    subject = node.get("/audit/subjects/alice", headers=admin_headers()).json()
    assert [r["request_id"] for r in subject] == [body["request_id"]]
    assert subject[0]["ledger"]["request"]["subject_id"] == "alice"
