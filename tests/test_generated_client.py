"""A client generated from the committed org node spec (docs/openapi/orgnode.json) by a
standard generator, ``openapi-python-client``, parses a running org node's real answers
with its own models: the spec is a contract third parties can build on.

The generator is in the ``test`` extras; without it the test is skipped (CI installs them).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fedledger.clients import OrgNodeClient
from fedledger.openapi import SPEC_DIR
from tests.clients.served import DATASET, JOB_ROUND, SUBJECT, SUBJECT_SAMPLES, served_node
from tests.orgnode.conftest import ADMIN_TOKEN, devnet  # noqa: F401 - fixture

PACKAGE = "fedledger_orgnode_generated"


def _generator() -> list[str] | None:
    beside = Path(sys.executable).with_name("openapi-python-client")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("openapi-python-client")
    return [found] if found else None


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    command = _generator()
    if command is None:
        pytest.skip("openapi-python-client is not installed (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("generated")
    done = subprocess.run([*command, "generate", "--path", str(SPEC_DIR / "orgnode.json"),
                           "--meta", "none", "--output-path", str(out / PACKAGE)],
                          capture_output=True, text=True, timeout=300, cwd=out,
                          # its post-generation hook formats the code with ruff
                          env={**os.environ, "PATH": os.pathsep.join(
                              [str(Path(command[0]).parent), os.environ.get("PATH", "")])})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def node(devnet, tmp_path_factory):  # noqa: ANN001, ANN201, F811
    with served_node(devnet, "Org3", tmp_path_factory.mktemp("org3-generated")) as served:
        with OrgNodeClient(served.url, token=ADMIN_TOKEN, timeout=120) as ours:
            ours.upload_dataset(DATASET, served.upload)
            ours.set_subjects(DATASET, {SUBJECT: SUBJECT_SAMPLES})
        yield served


def _api(package: str, tag: str, operation: str):  # noqa: ANN202
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")


def test_generated_client_parses_real_answers(generated, node) -> None:  # noqa: ANN001
    models = importlib.import_module(f"{PACKAGE}.models")
    client = generated.AuthenticatedClient(base_url=node.url, token=ADMIN_TOKEN,
                                           raise_on_unexpected_status=True, timeout=120)
    with client:
        health = _api(PACKAGE, "health", "health_health_get").sync(client=client)
        assert isinstance(health, models.Health)
        assert health.org == node.msp_id and health.status == "ok"

        datasets = _api(PACKAGE, "datasets", "list_datasets_datasets_get").sync(client=client)
        assert [type(d) for d in datasets] == [models.DatasetPublic]
        assert datasets[0].dataset_id == DATASET and datasets[0].num_samples == 12
        assert [type(c) for c in datasets[0].commitments] == [models.ShardCommitmentPublic] * 2

        jobs = _api(PACKAGE, "jobs", "list_jobs_jobs_get").sync(client=client)
        assert [type(j) for j in jobs] == [models.JobPublic]
        assert (jobs[0].round_id, jobs[0].status, jobs[0].num_samples) == (JOB_ROUND, "attested", 12)
        assert jobs[0].metrics.additional_properties["mean_loss"] == 1.5

        body = models.DeletionCreate(dataset_id=DATASET, subject_id=SUBJECT,
                                     legal_basis="GDPR Art. 17(1)(a)", requester="ticket 7")
        create = _api(PACKAGE, "deletions", "create_deletion_request_deletion_requests_post")
        filed = create.sync_detailed(client=client, body=body)
        assert filed.status_code == 201
        assert isinstance(filed.parsed, models.DeletionPublic)
        assert filed.parsed.sample_ids == SUBJECT_SAMPLES
        assert filed.parsed.status == "filed"
        again = create.sync_detailed(client=client, body=body)
        assert again.status_code == 200 and again.parsed.request_id == filed.parsed.request_id

        get = _api(PACKAGE, "deletions", "get_deletion_request_deletion_requests_request_id_get")
        fetched = get.sync(client=client, request_id=filed.parsed.request_id)
        assert isinstance(fetched, models.DeletionPublic)
        assert fetched.history[0].additional_properties["event"] == "filed"

        status = _api(PACKAGE, "audit", "request_status_audit_requests_request_id_get").sync(
            client=client, request_id=filed.parsed.request_id)
        assert isinstance(status, models.AuditRequestStatus)
        assert status.ledger.request.request_id == filed.parsed.request_id
