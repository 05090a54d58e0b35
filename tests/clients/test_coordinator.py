"""CoordinatorClient against a real coordinator (uvicorn thread, embedded Fabric
network): the operator's calls with its token, an org's signed calls, a whole round to
a model version with typed answers, and the mapping of failures to errors."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from fedledger.clients import (
    ClientError,
    Conflict,
    CoordinatorClient,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UnexpectedResponse,
)
from fedledger.digests import sha256_hex
from fedledger.protocol.coordinator_api import RoundPublic
from fedledger.web.server import free_port
from tests.coordinator.conftest import (  # noqa: F401 - fixtures
    MSPS,
    TOKEN,
    app_client,
    attest,
    consortium,
    context,
    devnet,
    make_settings,
    make_update,
    submit_on_ledger,
)


def wait_round(client: CoordinatorClient, round_id: int, *statuses: str,
               timeout: float = 30) -> RoundPublic:
    deadline = time.monotonic() + timeout
    while True:
        round_ = client.get_round(round_id)
        if round_.status in statuses:
            return round_
        assert time.monotonic() < deadline, f"round {round_id} stayed {round_.status}"
        time.sleep(0.05)


@pytest.fixture()
def coordinator(app_client):  # noqa: ANN001, ANN201, F811
    return app_client().server.url


def test_a_round_through_the_clients(coordinator, devnet, consortium, context,  # noqa: F811
                                     tmp_path: Path) -> None:
    operator = CoordinatorClient(coordinator, token=TOKEN)
    orgs = {msp: CoordinatorClient(coordinator, devnet.network.identity(msp.removesuffix("MSP")))
            for msp in MSPS}
    try:
        health = operator.health()
        assert (health.status, health.service, health.org) == ("ok", "coordinator", "Org1MSP")
        assert operator.current_round() is None and operator.rounds() == []
        assert operator.served_model() is None

        opened = operator.open_round(quorum=2, deadline_s=600)
        assert isinstance(opened, RoundPublic) and opened.status == "open"
        assert opened.quorum == 2 and opened.base is None and opened.ledger.open_tx
        current = orgs["Org2MSP"].current_round()
        assert current is not None and current.round_id == opened.round_id
        assert [r.round_id for r in operator.rounds()] == [opened.round_id]
        assert orgs["Org2MSP"].aggregate(opened.round_id) is None

        samples = {"Org1MSP": 10, "Org2MSP": 30, "Org3MSP": 20}
        hashes = {}
        for i, msp in enumerate(MSPS):
            data = make_update(context.spec, seed=i)
            path = tmp_path / f"{msp}.safetensors"
            path.write_bytes(data)
            hashes[msp] = orgs[msp].put_update(opened.round_id, path, sha256_hex(data),
                                               samples[msp])
            assert hashes[msp] == sha256_hex(data)
            submit_on_ledger(consortium[msp], opened.round_id, msp, hashes[msp], samples[msp])
        aggregated = wait_round(operator, opened.round_id, "aggregated")
        assert aggregated.aggregate is not None and aggregated.ledger.close_tx
        assert [s.org for s in aggregated.submissions] == list(MSPS)
        assert all(s.on_ledger for s in aggregated.submissions)

        aggregate = orgs["Org3MSP"].aggregate(opened.round_id)
        assert aggregate is not None
        assert aggregate.strategy.name == "fedavg"
        assert aggregate.aggregate_digest == aggregated.aggregate.aggregate_digest
        assert [i["org"] for i in aggregate.included] == list(MSPS)
        blob = orgs["Org2MSP"].blob(hashes["Org1MSP"], max_bytes=1 << 24)
        assert sha256_hex(blob) == hashes["Org1MSP"]
        with pytest.raises(PayloadTooLarge) as too_big:
            orgs["Org2MSP"].blob(hashes["Org1MSP"], max_bytes=16)
        assert too_big.value.status == 413
        with pytest.raises(Unauthorized) as unsigned:  # a blob needs an org's signature
            operator.blob(hashes["Org1MSP"], max_bytes=1 << 24)
        assert unsigned.value.code == "unauthorized"

        for msp in ("Org2MSP", "Org3MSP"):
            attest(consortium[msp], opened.round_id, msp, aggregate.aggregate_digest)
        final = wait_round(operator, opened.round_id, "final")
        assert final.version_id == f"v{opened.round_id}" and final.ledger.model_tx
        served = orgs["Org1MSP"].served_model()
        assert served is not None and served.version_id == final.version_id
        assert operator.model(final.version_id).adapter_digest == aggregate.aggregate_digest
        assert [m.version_id for m in operator.models()] == [final.version_id]
        adapter = operator.model_adapter(final.version_id, max_bytes=1 << 24)
        assert sha256_hex(adapter) == aggregate.aggregate_digest
        votes = operator.votes(opened.round_id)
        assert votes.round_id == opened.round_id
        lineage = operator.lineage()
        assert lineage.shards >= 1 and lineage.lineages["0"][0].round_id == opened.round_id

        second = operator.open_round(quorum=1)
        assert second.base is not None and second.base.version_id == final.version_id
        declined = orgs["Org3MSP"].decline(second.round_id, "no data this round")
        assert (declined.org, declined.reason) == ("Org3MSP", "no data this round")
        closed = operator.close_round(second.round_id)
        assert closed.round_id == second.round_id

        unlearning = orgs["Org1MSP"].request_unlearning("notice-client-1", {0: 1})
        assert unlearning.notice_id == "notice-client-1" and unlearning.org == "Org1MSP"
        assert orgs["Org1MSP"].unlearning("notice-client-1").notice_id == "notice-client-1"
        assert [u.notice_id for u in operator.unlearning_jobs()] == ["notice-client-1"]
    finally:
        operator.close()
        for client in orgs.values():
            client.close()


def test_failures_map_to_errors(coordinator, devnet) -> None:  # noqa: F811
    with CoordinatorClient(coordinator, token=TOKEN) as operator, \
            CoordinatorClient(coordinator) as anonymous, \
            CoordinatorClient(coordinator, devnet.network.identity("Org2")) as org2:
        with pytest.raises(NotFound) as missing:
            operator.get_round(999)
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        assert missing.value.service == "coordinator"
        assert missing.value.method == "GET" and missing.value.path == "/rounds/999"
        assert isinstance(missing.value, LookupError)

        with pytest.raises(Unauthorized) as refused:
            anonymous.open_round()
        assert refused.value.status == 401 and "operator token" in refused.value.reason
        with pytest.raises(Unauthorized):
            CoordinatorClient(coordinator, token="wrong").open_round()

        with pytest.raises(InvalidRequest) as invalid:
            org2.request_unlearning("not a valid id!", {0: 1})
        assert invalid.value.status == 422 and invalid.value.code == "invalid_request"
        assert invalid.value.details["problems"]
        assert isinstance(invalid.value, ValueError)

        operator.open_round(deadline_s=600)
        with pytest.raises(Conflict) as busy:  # one round at a time
            operator.open_round(deadline_s=600)
        assert busy.value.status == 409 and busy.value.code == "conflict"


def test_unreachable_5xx_and_malformed_answers() -> None:
    with CoordinatorClient(f"http://127.0.0.1:{free_port()}", timeout=2) as nobody:
        with pytest.raises(ServiceUnavailable) as down:
            nobody.health()
    assert down.value.status is None and isinstance(down.value, ConnectionError)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/rounds/current":
            return httpx.Response(503, json={"error": "unavailable", "message": "ledger down",
                                             "details": {"step": "evaluate"}})
        if request.url.path == "/rounds/1":
            return httpx.Response(500, text="Internal Server Error")
        return httpx.Response(200, json={"status": "ok"})  # not a HealthPublic

    with CoordinatorClient("http://coordinator", transport=httpx.MockTransport(answer)) as fake:
        with pytest.raises(ServiceUnavailable) as unavailable:
            fake.current_round()
        assert (unavailable.value.status, unavailable.value.code) == (503, "unavailable")
        assert unavailable.value.reason == "ledger down"
        assert unavailable.value.details == {"step": "evaluate"}
        with pytest.raises(ServiceUnavailable) as crashed:
            fake.get_round(1)
        assert crashed.value.status == 500 and crashed.value.code is None
        with pytest.raises(UnexpectedResponse) as malformed:
            fake.health()
        assert malformed.value.status == 200
    for error in (down.value, unavailable.value, crashed.value, malformed.value):
        assert isinstance(error, ClientError)
