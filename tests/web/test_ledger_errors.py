"""Typed errors end to end: the chaincode's refusal code -> the Gateway client's exception
-> the service's HTTP status and error code. Nothing here reads a message's text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.fabric.errors import (
    ChaincodeForbiddenError,
    ChaincodeRefusal,
    FabricError,
    InvalidArgumentError,
    RecordConflictError,
    RecordNotFoundError,
)
from fedledger.fabric.gateway import Contract
from fedledger.protocol.errors import ErrorCode
from fedledger.web.errors import ServiceError, install_error_handlers, ledger_failure

from ..fabric.conftest import org_record


class Unavailable(ServiceError):
    status, code = 502, "ledger_error"


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Contract]]:
    with EmbeddedNetwork(Path(tmp_path_factory.mktemp("errors")), ["Org1", "Org2"],
                         orderer=OrdererSettings.fast()) as net:
        gateways = {org: net.connect(org) for org in ("Org1", "Org2")}
        contracts = {org: g.network("consortium").contract("fedledger", "consortium")
                     for org, g in gateways.items()}
        contracts["Org1"].submit("RegisterOrg", org_record("Org1MSP", name="one"))
        contracts["Org1-private-of-Org2"] = gateways["Org1"].network("org2-private").contract(
            "fedledger", "private")
        yield contracts
        for gateway in gateways.values():
            gateway.close()


def refused(call) -> FabricError:  # noqa: ANN001
    with pytest.raises(FabricError) as caught:
        call()
    return caught.value


def test_each_refusal_is_its_own_exception_at_its_step(contracts: dict[str, Contract]) -> None:
    org1 = contracts["Org1"]
    missing = refused(lambda: org1.evaluate("GetRound", "99"))
    assert isinstance(missing, RecordNotFoundError) and isinstance(missing, LookupError)
    assert (missing.step, missing.code, missing.function) == (
        "evaluate", ErrorCode.NOT_FOUND, "consortium:GetRound")
    assert missing.tx_id and missing.grpc_code == "UNKNOWN"  # as a Fabric 2.5 gateway

    other = refused(lambda: org1.submit("RegisterOrg", org_record("Org2MSP")))
    assert isinstance(other, ChaincodeForbiddenError) and other.step == "endorse"
    assert other.grpc_code == "ABORTED" and other.details  # the endorsing peers' parts

    changed = refused(lambda: org1.submit("RegisterOrg", org_record("Org1MSP", name="new")))
    assert isinstance(changed, RecordConflictError) and changed.code is ErrorCode.CONFLICT

    garbled = refused(lambda: org1.submit("RegisterOrg", "{not json"))
    assert isinstance(garbled, InvalidArgumentError) and isinstance(garbled, ValueError)


def test_a_peer_refusal_is_not_a_chaincode_refusal(contracts: dict[str, Contract]) -> None:
    # Org1 is no member of Org2's private channel: the peer refuses, the chaincode never runs.
    error = refused(lambda: contracts["Org1-private-of-Org2"].evaluate("ListDatasets"))
    assert not isinstance(error, ChaincodeRefusal) and error.grpc_code is not None


@pytest.fixture(scope="module")
def api(contracts: dict[str, Contract]) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/call/{what}")
    def call(what: str) -> dict:
        org1 = contracts["Org1"]
        actions = {
            "missing": lambda: org1.evaluate("GetRound", "99"),
            "other": lambda: org1.submit("RegisterOrg", org_record("Org2MSP")),
            "changed": lambda: org1.submit("RegisterOrg", org_record("Org1MSP", name="new")),
            "garbled": lambda: org1.submit("RegisterOrg", "{not json"),
            "foreign": lambda: contracts["Org1-private-of-Org2"].evaluate("ListDatasets"),
        }
        try:
            return json.loads(actions[what]())
        except FabricError as exc:
            raise ledger_failure(f"calling {what}", exc, unavailable=Unavailable) from None

    return TestClient(app)


@pytest.mark.parametrize(("what", "status", "code"), [
    ("missing", 404, "not_found"), ("other", 403, "forbidden"), ("changed", 409, "conflict"),
    ("garbled", 422, "invalid"), ("foreign", 502, "ledger_error")])
def test_the_http_answer_keeps_the_refusal_code(api: TestClient, what: str, status: int,
                                                code: str) -> None:
    response = api.get(f"/call/{what}")
    assert response.status_code == status
    body = response.json()
    assert body["error"] == code and body["details"]["tx_id"]
    assert body["details"]["step"] in ("evaluate", "endorse")
