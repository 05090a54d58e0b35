"""Requests generated from the org node's own OpenAPI spec (schemathesis): whatever a
client sends, with or without the admin token, the answer is never a 5xx."""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient

from fedledger.orgnode.app import create_app

from ..services.fuzz import assert_no_server_errors
from .conftest import admin_headers, node_settings


def test_no_server_errors_for_generated_requests(devnet, tmp_path):
    app = create_app(node_settings(devnet, "Org3", tmp_path / "org3"))
    with TestClient(app):  # the lifespan runs: database migrated, private channel initialised
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        sent = assert_no_server_errors(schema, header_sets=[None, admin_headers()])
    assert sent > 0
