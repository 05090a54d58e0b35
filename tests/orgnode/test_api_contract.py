"""The org node's typed REST contract (``fedledger.protocol.orgnode_api``): every 2xx
answer of every operation has a schema in ``/openapi.json``, and the schemas are the
protocol's models."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.orgnode.app import create_app
from fedledger.orgnode.settings import OrgNodeSettings


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder: Path = tmp_path_factory.mktemp("orgnode-spec")
    settings = OrgNodeSettings.model_validate({
        "org": "Org1", "msp_id": "Org1MSP", "data_dir": str(folder),
        "gateway": {"endpoint": "localhost:7051", "tls_ca_cert": str(folder / "ca.pem"),
                    "server_name": "peer0"},
        "user_msp_dir": str(folder / "msp")})
    return create_app(settings, start_worker=False).openapi()


def _success_schemas(spec: dict) -> dict[tuple[str, str, str], dict]:
    out = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.startswith("2"):
                    for media, content in response.get("content", {}).items():
                        out[(method.upper(), path, f"{code} {media}")] = content.get("schema", {})
    return out


def test_every_success_response_has_a_schema(spec):
    operations = [(m, p) for p, ops in spec["paths"].items() for m in ops]
    schemas = _success_schemas(spec)
    assert len(operations) == 33  # 31 routes + /health/live and /health/ready
    assert {(m.upper(), p) for m, p in operations} == {(m, p) for m, p, _ in schemas}
    assert [key for key, schema in schemas.items() if not schema] == []


def test_json_answers_are_protocol_models(spec):
    schemas = _success_schemas(spec)
    assert schemas[("GET", "/datasets", "200 application/json")] == {
        "type": "array", "items": {"$ref": "#/components/schemas/DatasetPublic"},
        "title": "Response List Datasets Datasets Get"}
    assert schemas[("POST", "/deletion-requests", "201 application/json")] == {
        "$ref": "#/components/schemas/DeletionPublic"}
    assert schemas[("POST", "/deletion-requests", "200 application/json")] == {
        "$ref": "#/components/schemas/DeletionPublic"}
    assert schemas[("GET", "/audit/requests/{request_id}", "200 application/json")] == {
        "$ref": "#/components/schemas/AuditRequestStatus"}
    assert schemas[("GET", "/health", "200 application/json")] == {
        "$ref": "#/components/schemas/Health"}
    names = set(spec["components"]["schemas"])
    assert {"DeletionRequest", "UnlearningRecord", "UnlearningNotice", "ModelVersion",
            "AuditBundle", "SampleInVersion", "JobPublic", "ModelPublic"} <= names


def test_downloads_and_reports_declare_their_media_types(spec):
    schemas = _success_schemas(spec)
    assert schemas[("GET", "/models/{version_id}/adapter", "200 application/zip")] == {
        "type": "string", "format": "binary"}
    report = "/audit/requests/{request_id}/report"
    assert schemas[("GET", report, "200 text/markdown; charset=utf-8")] == {"type": "string"}
    assert schemas[("GET", report, "200 text/html; charset=utf-8")] == {"type": "string"}
    assert not any(p == report and "application/json" in k or
                   p == "/models/{version_id}/adapter" and "application/json" in k
                   for _, p, k in schemas)
