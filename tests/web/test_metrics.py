"""The services' /metrics, /health/live and /health/ready, on a coordinator and an org
node over a real embedded Fabric network: a scrape parses with Prometheus' text parser,
carries the service label, and its values move when a round changes phase, a ledger call
is made or refused, an update is uploaded, or a job changes state; readiness follows the
ledger gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fedledger.bridge.embedded import build_anchoring
from fedledger.bridge.outbox import AnchorStatus
from fedledger.bridge.service import BridgeSettings
from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.evm.connection import connect
from fedledger.fabric.errors import RecordNotFoundError
from fedledger.host.settings import HostSettings
from fedledger.orgnode.app import create_app as create_orgnode_app
from fedledger.orgnode.models import Job
from fedledger.web import metrics
from fedledger.web.metrics import RESTARTS_ENV
from fedledger.web.server import ThreadedServer, free_port
from tests.bridge.rounds import final_round_seen, join
from tests.coordinator.conftest import (  # noqa: F401 - fixtures
    OPERATOR,
    app_client,
    context,
    devnet,
    make_settings,
    make_update,
    upload,
)
from tests.orgnode.conftest import node_settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parsed(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value, 0 when it is not there yet (a label set never seen)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def parsed(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def families(client: httpx.Client) -> set[str]:
    return {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}


@pytest.fixture()
def orgnode(devnet, tmp_path: Path) -> Iterator[tuple[httpx.Client, object]]:  # noqa: F811
    """Org2's node (no round worker) on the network, served by uvicorn."""
    app = create_orgnode_app(node_settings(devnet, "Org2", tmp_path / "org2"))
    server = ThreadedServer(app).start()
    client = httpx.Client(base_url=server.url, timeout=30)
    yield client, app
    client.close()
    server.stop()


def test_coordinator_metrics_follow_rounds_ledger_calls_and_uploads(
        app_client, devnet, context, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv(RESTARTS_ENV, "3")
    client = app_client()
    assert client.get("/health/live").json() == {"status": "ok", "service": "coordinator"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    before = scrape(client)
    svc = {"service": "coordinator"}
    assert value(before, "fedledger_service_restarts", **svc) == 3

    opened = client.post("/rounds", json={"deadline_s": 600, "quorum": 1}, headers=OPERATOR)
    assert opened.status_code == 201, opened.text
    round_id = opened.json()["round_id"]
    data = make_update(context.spec, seed=1)
    assert upload(client, devnet, "Org2", round_id, data).status_code == 201
    with pytest.raises(RecordNotFoundError):
        client.app.state.service.ledger.get_round(round_id + 1000)

    after = scrape(client)
    # opening -> open, with the seconds spent opening; the newest round is open.
    assert (value(after, "fedledger_round_phase_seconds_count", phase="opening", **svc)
            == value(before, "fedledger_round_phase_seconds_count", phase="opening", **svc) + 1)
    assert value(after, "fedledger_round_phase", phase="open", **svc) == 1
    assert value(after, "fedledger_round_phase", phase="opening", **svc) == 0
    assert value(after, "fedledger_round_current_id", **svc) == round_id
    # The OpenRound submit and the ListOrgs queries were timed; the refusal was counted.
    for function, kind in (("OpenRound", "submit"), ("ListOrgs", "evaluate")):
        name = "fedledger_ledger_call_seconds_count"
        assert (value(after, name, function=function, kind=kind, **svc)
                > value(before, name, function=function, kind=kind, **svc))
    failed = {"function": "GetRound", "kind": "evaluate", "code": "not_found", **svc}
    assert (value(after, "fedledger_ledger_failures_total", **failed)
            == value(before, "fedledger_ledger_failures_total", **failed) + 1)
    assert (value(after, "fedledger_upload_bytes_count", **svc)
            == value(before, "fedledger_upload_bytes_count", **svc) + 1)
    assert (value(after, "fedledger_upload_bytes_sum", **svc)
            == value(before, "fedledger_upload_bytes_sum", **svc) + len(data))

    # Closed by the operator with no SubmitUpdate on the ledger (quorum 1 not met): the
    # round leaves "open" for "failed".
    closed = client.post(f"/rounds/{round_id}/close", headers=OPERATOR)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "failed"
    final = scrape(client)
    assert (value(final, "fedledger_round_phase_seconds_count", phase="open", **svc)
            == value(after, "fedledger_round_phase_seconds_count", phase="open", **svc) + 1)
    assert value(final, "fedledger_round_phase", phase="failed", **svc) == 1
    assert (value(final, "fedledger_round_transitions_total", phase="failed", **svc)
            == value(after, "fedledger_round_transitions_total", phase="failed", **svc) + 1)


def test_coordinator_is_not_ready_without_its_gateway(app_client, devnet) -> None:  # noqa: F811
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there
    client = app_client(gateway={"endpoint": endpoint,
                                 "tls_ca_cert": str(devnet.endpoints.tls_ca_cert),
                                 "server_name": devnet.endpoints.server_name})
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable" and ready.json()["service"] == "coordinator"
    assert client.get("/health").status_code == 200  # unchanged: the launcher polls it


def test_orgnode_metrics_count_job_states_and_ledger_calls(orgnode) -> None:
    client, app = orgnode
    svc = {"service": "orgnode"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "service": "orgnode",
                                                        "reason": None}
    before = scrape(client)
    assert value(before, "fedledger_ledger_call_seconds_count", function="Init", kind="submit",
                 **svc) >= 1  # the node joined its private channel at start
    assert {"fedledger_orgnode_jobs", "fedledger_orgnode_job_transitions",
            "fedledger_service_restarts"} <= families(client)

    node = app.state.node
    with node.sessions() as session:
        job = Job(round_id=7, status="queued", progress=0.0, round={"round_id": 7},
                  metrics={}, datasets={})
        session.add(job)
        session.commit()
        job_id = job.id
    node.jobs.update(job_id, status="training")
    node.jobs.update(job_id, progress=0.5)  # no state change: nothing counted
    node.jobs.update(job_id, status="failed", error="test")

    after = scrape(client)
    assert value(after, "fedledger_orgnode_jobs", state="failed", **svc) == 1
    assert value(after, "fedledger_orgnode_jobs", state="training", **svc) == 0
    for state in ("training", "failed"):
        name = "fedledger_orgnode_job_transitions_total"
        assert value(after, name, state=state, **svc) == value(before, name, state=state,
                                                                **svc) + 1


def test_orgnode_is_not_ready_without_its_gateway(devnet, tmp_path: Path) -> None:  # noqa: F811
    endpoints = devnet.endpoints
    settings = node_settings(devnet, "Org3", tmp_path / "org3", gateway={
        "endpoint": f"127.0.0.1:{free_port()}", "tls_ca_cert": str(endpoints.tls_ca_cert),
        "server_name": endpoints.server_name})
    app = create_orgnode_app(settings)
    server = ThreadedServer(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/health/live").status_code == 200
            ready = client.get("/health/ready")
            assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    finally:
        server.stop()


def test_bridge_records_anchoring_latency_and_gas(tmp_path: Path) -> None:
    orgs = ["Org1", "Org2", "Org3"]
    network = EmbeddedNetwork(tmp_path / "fabric", orgs, orderer=OrdererSettings.fast())
    network.start()
    anchoring = build_anchoring(network, connect(), db_url=f"sqlite:///{tmp_path / 'bridge.db'}",
                                settings=BridgeSettings(batch_rounds=1, confirmations=1))
    try:
        consortium = join(anchoring, orgs)
        bridge = anchoring.bridge
        bridge.start()
        final_round_seen(bridge, consortium, 1)
        svc = {"service": "host"}
        before = parsed(metrics.scrape("host").decode())
        bridge.step()
        [anchor] = bridge.outbox.anchors()
        assert anchor.status == AnchorStatus.RECORDED
        after = parsed(metrics.scrape("host").decode())
    finally:
        anchoring.close()
        network.stop()
    for name in ("fedledger_anchor_seconds_count", "fedledger_anchor_gas_used_count"):
        assert value(after, name, **svc) == value(before, name, **svc) + 1
    gas = (value(after, "fedledger_anchor_gas_used_sum", **svc)
           - value(before, "fedledger_anchor_gas_used_sum", **svc))
    assert gas > 21_000  # a contract call's gas, from the receipt
    assert (value(after, "fedledger_anchors_total", status="recorded", **svc)
            == value(before, "fedledger_anchors_total", status="recorded", **svc) + 1)
    receipt = {"function": "RecordAnchorReceipt", "kind": "submit", **svc}
    assert (value(after, "fedledger_ledger_call_seconds_count", **receipt)
            == value(before, "fedledger_ledger_call_seconds_count", **receipt) + 1)


def test_host_serves_metrics_and_readiness_and_logs_at_its_level(tmp_path: Path) -> None:
    port = free_port()
    config = {
        "root": str(tmp_path / "root"), "port": port, "rpc_port": free_port(),
        "orgs": [{"name": org, "msp_id": f"{org}MSP", "anchor_address": "0x" + f"{i:02x}" * 20,
                  "node_url": f"http://127.0.0.1:{free_port()}"}  # nothing listens there
                 for i, org in enumerate(("Org1", "Org2", "Org3"), start=1)],
        "bridge": {"poll_interval_s": 0.2},
    }
    HostSettings.model_validate(config)
    path = tmp_path / "host-config.json"
    path.write_text(json.dumps(config))
    log = tmp_path / "host.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedledger.host", "--config", str(path), "--log-level", "info"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", RESTARTS_ENV: "2"})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 120
            status = None
            while status != 200:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"host never ready:\n{log.read_text()[-3000:]}"
                try:
                    status = client.get("/health/ready").status_code
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            assert client.get("/health/live").json() == {"status": "ok", "service": "host"}
            samples = scrape(client)
            assert value(samples, "fedledger_service_restarts", service="host") == 2
            # The bridge's queries of the consortium channel were timed.
            assert value(samples, "fedledger_ledger_call_seconds_count", function="ListOrgs",
                         kind="evaluate", service="host") >= 1
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    lines = log.read_text().splitlines()
    assert any(" INFO fedledger.host.app: " in line for line in lines), lines[:20]
    assert not [line for line in lines if " INFO httpx: " in line or " DEBUG " in line]
