"""Requests generated from the coordinator's own OpenAPI spec (schemathesis): whatever a
client sends, with or without the operator token, the answer is never a 5xx."""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient

from fedledger.coordinator.app import create_app

from ..services.fuzz import assert_no_server_errors
from .conftest import OPERATOR


def test_no_server_errors_for_generated_requests(make_settings, consortium):
    app = create_app(make_settings())
    with TestClient(app):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        sent = assert_no_server_errors(schema, header_sets=[None, OPERATOR])
    assert sent > 0
