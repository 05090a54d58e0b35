"""deploy/fabric/configtx.loopback.yaml (the real-Fabric lane's channels on 127.0.0.1)
says what deploy/fabric/configtx.yaml says: the same block cutting (BatchTimeout 250ms,
MaxMessageCount, PreferredMaxBytes, AbsoluteMaxBytes), orderer type, policies,
capabilities, orgs and profiles; only hosts and ports differ, and it adds Org4."""

from __future__ import annotations

import copy
from string import Template
from typing import Any

import yaml

from .compose import DEPLOY

COMPOSE_PORTS = {"ORDERER_PORT": "7050", "ORG1_PEER_PORT": "7051", "ORG2_PEER_PORT": "9051",
                 "ORG3_PEER_PORT": "11051", "ORG4_PEER_PORT": "13051"}


def configtx() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "fabric/configtx.yaml").read_text())


def loopback(ports: dict[str, str]) -> dict[str, Any]:
    text = Template((DEPLOY / "fabric/configtx.loopback.yaml").read_text()).substitute(ports)
    return yaml.safe_load(text)


def as_compose(doc: dict[str, Any]) -> dict[str, Any]:
    """The loopback document with configtx.yaml's host names and without Org4."""
    doc = copy.deepcopy(doc)
    names = {7050: "orderer.example.com", 7051: "peer0.org1.example.com",
             9051: "peer0.org2.example.com", 11051: "peer0.org3.example.com"}

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("Host") == "127.0.0.1":
                node = {**node, "Host": names[node["Port"]]}
            return {k: rename(v) for k, v in node.items()
                    if k != "Org4PrivateChannel"}
        if isinstance(node, list):
            return [rename(n) for n in node if not (isinstance(n, dict) and n.get("ID") == "Org4MSP")]
        if isinstance(node, str) and node.startswith("127.0.0.1:"):
            return f"{names[int(node.split(':')[1])]}:{node.split(':')[1]}"
        return node
    return rename(doc)


def test_block_cutting_and_orderer_settings_are_the_deployments() -> None:
    ours, theirs = loopback(COMPOSE_PORTS)["Orderer"], configtx()["Orderer"]
    assert ours["BatchTimeout"] == theirs["BatchTimeout"] == "250ms"
    assert ours["BatchSize"] == theirs["BatchSize"]
    assert ours["BatchSize"]["MaxMessageCount"] == 100
    assert ours["BatchSize"]["PreferredMaxBytes"] == "512 KB"
    assert ours["OrdererType"] == theirs["OrdererType"] == "etcdraft"
    assert ours["Policies"] == theirs["Policies"]


def test_policies_capabilities_and_profiles_agree() -> None:
    ours, theirs = loopback(COMPOSE_PORTS), configtx()
    for section in ("Application", "Channel", "Capabilities"):
        assert ours[section] == theirs[section], section
    orgs = {o["ID"]: o for o in ours["Organizations"]}
    for org in theirs["Organizations"]:
        assert orgs[org["ID"]]["Policies"] == org["Policies"], org["ID"]
        assert orgs[org["ID"]]["MSPDir"] == org["MSPDir"]
    # Org4 is defined as docs/deploy.md says an added org is, but in no channel at first.
    org4 = orgs["Org4MSP"]
    assert org4["MSPDir"] == "../organizations/peerOrganizations/org4.example.com/msp"
    assert {k: v["Rule"] for k, v in org4["Policies"].items()} == {
        "Readers": "OR('Org4MSP.admin', 'Org4MSP.peer', 'Org4MSP.client')",
        "Writers": "OR('Org4MSP.admin', 'Org4MSP.client')",
        "Admins": "OR('Org4MSP.admin')", "Endorsement": "OR('Org4MSP.peer')"}
    consortium = [o["ID"] for o in ours["Profiles"]["ConsortiumChannel"]["Application"]["Organizations"]]
    assert consortium == ["Org1MSP", "Org2MSP", "Org3MSP"]
    assert [o["ID"] for o in ours["Profiles"]["Org4PrivateChannel"]["Application"]["Organizations"]] \
        == ["Org4MSP"]


def test_with_the_compose_ports_it_is_configtx_yaml_on_other_hosts() -> None:
    assert as_compose(loopback(COMPOSE_PORTS)) == configtx()


def test_every_address_is_loopback_and_a_variable() -> None:
    ports = {k: str(20000 + i) for i, k in enumerate(COMPOSE_PORTS)}
    doc = loopback(ports)
    orderer = f"127.0.0.1:{ports['ORDERER_PORT']}"
    assert doc["Orderer"]["Addresses"] == [orderer]
    assert doc["Orderer"]["EtcdRaft"]["Consenters"][0]["Host"] == "127.0.0.1"
    assert doc["Orderer"]["EtcdRaft"]["Consenters"][0]["Port"] == int(ports["ORDERER_PORT"])
    for org in doc["Organizations"]:
        if org["ID"] == "OrdererMSP":
            assert org["OrdererEndpoints"] == [orderer]
        else:
            n = org["ID"][3]
            assert org["AnchorPeers"] == [{"Host": "127.0.0.1", "Port": int(ports[f"ORG{n}_PEER_PORT"])}]
    assert "example.com:" not in yaml.safe_dump(doc)
