"""The real-Fabric lane (tests/fabric/realnet.py): the Gateway client, the chaincode as a
service and the deployment's scripts on a native Fabric 2.5 network. Skipped, with the
reason, unless FEDLEDGER_FABRIC_BIN names a folder with Fabric's binaries.

Issue 15, defect 2 on real Fabric: after ``add-org.sh org4`` Org4's own peer evaluates and
endorses the chaincode on the consortium channel (it answered ``no peers available to
evaluate chaincode fedledger`` and ``failed to find any endorsing peers for org(s):
Org4MSP`` before chaincode.sh had the new org approve the committed definition)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from fedledger.fabric.errors import EndorseError, SubmitError

from .conftest import dataset_record, org_record
from .realnet import RealNetwork, fabric_bin, realnet, realnet_org4, start_real_network

__all__ = ["realnet", "realnet_org4"]   # the lane's fixtures, used below

T = TypeVar("T")


def eventually(call: Callable[[], T], timeout: float = 60) -> T:
    """``call()`` until it stops raising an endorse or submit error: a peer learns an added
    org's peer by gossip (its anchor peer in the updated channel config) a little later."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (EndorseError, SubmitError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_submit_then_evaluate_on_the_consortium_channel(realnet: RealNetwork) -> None:
    with realnet.connect("Org1") as gateway:
        contract = gateway.network("consortium").contract("fedledger", "consortium")
        contract.submit("RegisterOrg", org_record("Org1MSP"))   # MAJORITY: 2 of 3 endorse
        assert json.loads(contract.evaluate("GetOrg", "Org1MSP"))["msp_id"] == "Org1MSP"
        # Every org's own peer has the committed write and runs the chaincode.
        for msp in realnet.peers:
            listed = json.loads(contract.evaluate("ListOrgs", target_orgs=[msp]))
            assert "Org1MSP" in [o["msp_id"] for o in listed], msp


def test_submit_then_evaluate_on_a_private_channel(realnet: RealNetwork) -> None:
    with realnet.connect("Org2") as gateway:
        contract = gateway.network("org2-private").contract("fedledger", "private")
        contract.submit("Init")
        result = json.loads(contract.submit("RegisterDataset", dataset_record("ds-real")))
        assert result["dataset_id"] == "ds-real"
        assert json.loads(contract.evaluate("GetDataset", "ds-real"))["num_samples"] == 10


def test_the_handle_names_what_the_dev_network_does(realnet: RealNetwork) -> None:
    assert realnet.channels[:4] == ["consortium", "org1-private", "org2-private", "org3-private"]
    for msp, peer in realnet.peers.items():
        assert peer.msp_id == msp and peer.tls_ca_cert.is_file()
        assert peer.address.startswith("127.0.0.1:")
        assert (realnet.msp_dir(peer.org) / "signcerts").is_dir()


def test_an_added_org_evaluates_and_endorses_through_its_own_peer_only(
        realnet_org4: RealNetwork) -> None:
    net = realnet_org4
    assert "Org4MSP" in net.peers and "org4-private" in net.channels
    with net.connect("Org4") as gateway:
        contract = gateway.network("consortium").contract("fedledger", "consortium")
        # Org4's peer alone: it has the chaincode approved for its org, so it serves it.
        assert isinstance(json.loads(contract.evaluate("ListOrgs", target_orgs=["Org4MSP"])), list)
        endorsed = contract.endorse("RegisterOrg", org_record("Org4MSP"), endorsing_orgs=["Org4MSP"])
        assert json.loads(endorsed.result)["msp_id"] == "Org4MSP"
        # A MAJORITY of the four orgs (the gateway's choice, Org4 among them) commits it.
        eventually(lambda: contract.submit("RegisterOrg", org_record("Org4MSP", name="Org4")))
        record = json.loads(contract.evaluate("GetOrg", "Org4MSP", target_orgs=["Org4MSP"]))
        assert record["name"] == "Org4"
        # Its private channel (OR('Org4MSP.peer')): created, joined and committed by add-org.
        private = gateway.network("org4-private").contract("fedledger", "private")
        private.submit("Init")
        private.submit("RegisterDataset", dataset_record("ds-org4"))
        assert json.loads(private.evaluate("GetDataset", "ds-org4", target_orgs=["Org4MSP"]))


@pytest.fixture(scope="module")
def services_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNetwork]:
    """A network of its own: the services register the orgs with their own keys."""
    fabric_bin()
    network = start_real_network(tmp_path_factory.mktemp("realfabric-services"))
    try:
        yield network
    finally:
        network.stop()


def test_the_compose_services_run_a_round_on_real_fabric(services_network: RealNetwork,
                                                         tmp_path: Path) -> None:
    """tests/deploy/test_compose_services.py's round (coordinator, org nodes, bridge with
    compose's variables, the embedded EVM) with this lane's peers for the dev peer."""
    from ..deploy.test_compose_services import ORGS, ComposeOnLoopback, run_a_round

    class OnRealFabric(ComposeOnLoopback):
        def start_fabric(self) -> tuple[Path, dict[str, str]]:
            return services_network.crypto_dir, {o: services_network.peer(o).address for o in ORGS}

    deployment = OnRealFabric(tmp_path)
    try:
        deployment.start_ledgers()
        run_a_round(deployment)
    finally:
        deployment.stop()
