"""The real-Fabric lane's plumbing (tests/fabric/realnet.py), checked without Fabric: the
configtx and crypto it writes, the orderer's and peers' environments (every file they name
exists, every port is its own, everything on 127.0.0.1, the repository's CCaaS builder),
and the deployment's scripts driven by its lib.sh address variables, against the
recording stand-in for Fabric's CLIs (tests/deploy/fabric_standin.py)."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..fabric.realnet import ALL_ORGS, BUILDER, FIRST_ORGS, RealNetwork
from . import fabric_standin
from .compose import need

# Variables naming a file or folder the node reads at start.
PATH_KEYS = re.compile(r"(FILE|FILES|CERTIFICATE|PRIVATEKEY|ROOTCAS|MSPDIR|MSPCONFIGPATH|"
                       r"CLIENTROOTCAS)$")


@pytest.fixture
def lane(tmp_path: Path) -> RealNetwork:
    """A lane configured (configtx, crypto by the dev CA: no cryptogen) but not started;
    its "binaries" are the stand-in's."""
    bin_dir = fabric_standin.install(tmp_path / "bin")
    net = RealNetwork(tmp_path / "net", bin_dir, cfg_dir=tmp_path)
    net._configure()
    net._crypto()
    return net


def test_configtx_and_crypto_fit_together(lane: RealNetwork) -> None:
    configtx = yaml.safe_load((lane.fabric_dir / "configtx.yaml").read_text())
    for org in configtx["Organizations"]:
        msp = (lane.fabric_dir / org["MSPDir"]).resolve()
        assert (msp / "cacerts").is_dir() and (msp / "config.yaml").is_file(), org["ID"]
        if org["ID"] != "OrdererMSP":
            n = org["ID"][3]
            assert org["AnchorPeers"] == [{"Host": "127.0.0.1", "Port": lane.ports[f"org{n}_peer"]}]
    consenter = configtx["Orderer"]["EtcdRaft"]["Consenters"][0]
    assert consenter["Port"] == lane.ports["orderer"]
    assert (lane.fabric_dir / consenter["ServerTLSCert"]).resolve().is_file()
    crypto = yaml.safe_load((lane.fabric_dir / "crypto-config.yaml").read_text())
    assert [o["Name"] for o in crypto["PeerOrgs"]] == ["Org1", "Org2", "Org3", "Org4"]
    assert "127.0.0.1" in crypto["PeerOrgs"][3]["Template"]["SANS"]


def test_node_environments_name_existing_files_and_their_own_loopback_ports(lane: RealNetwork) -> None:
    assert len(set(lane.ports.values())) == len(lane.ports)
    envs = {"orderer": lane.orderer_env(), **{o: lane.peer_env(o) for o in ALL_ORGS}}
    for name, env in envs.items():
        for key, value in env.items():
            if PATH_KEYS.search(key):
                for path in value.strip("[]").split(","):
                    assert Path(path).exists(), (name, key, path)
            if key.endswith(("LISTENADDRESS", "_ADDRESS")) and ":" in value:
                assert value.startswith("127.0.0.1:"), (name, key, value)
    orderer = envs["orderer"]
    assert orderer["ORDERER_GENERAL_LISTENPORT"] == str(lane.ports["orderer"])
    assert orderer["ORDERER_GENERAL_BOOTSTRAPMETHOD"] == "none"
    for org in ALL_ORGS:
        env, peer = envs[org], lane.peer(org)
        assert env["CORE_PEER_LISTENADDRESS"] == env["CORE_PEER_ADDRESS"] == peer.address
        assert env["CORE_PEER_LOCALMSPID"] == peer.msp_id
        assert Path(env["FABRIC_CFG_PATH"], "core.yaml").is_file()
        assert env["CORE_CHAINCODE_EXTERNALBUILDERS"] == f"[{{name: ccaas_builder, path: {BUILDER}}}]"
        assert (BUILDER / "bin/detect").is_file()
        assert Path(env["CORE_PEER_FILESYSTEMPATH"]).is_relative_to(lane.root)


def _connection(package: Path) -> dict[str, Any]:
    with tarfile.open(package) as outer:
        code = outer.extractfile("code.tar.gz").read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(code)) as inner:
        return json.load(inner.extractfile("connection.json"))  # type: ignore[arg-type]


def test_the_deploy_scripts_run_on_the_lanes_addresses(lane: RealNetwork, tmp_path: Path) -> None:
    need("jq", shutil.which("jq") is not None, "the scripts parse JSON with it (apt-get install jq)")
    state = tmp_path / "standin"
    state.mkdir()
    standin = {"STANDIN_DIR": str(state), "RETRY_ATTEMPTS": "1", "RETRY_DELAY": "0"}
    lane.orgs = list(FIRST_ORGS)
    lane.script("channels.sh", env=standin)
    lane.script("chaincode.sh", env=standin)
    lane.orgs.append("org4")
    lane.script("add-org.sh", "org4", env=standin)

    calls = fabric_standin.read_calls(state)
    peers = {lane.peer(o).msp_id: lane.peer(o).address for o in ALL_ORGS}
    for call in (c for c in calls if c["tool"] == "peer"):
        env = call["env"]
        assert env["CORE_PEER_ADDRESS"] == peers[env["CORE_PEER_LOCALMSPID"]], call
        if "-o" in call["argv"]:
            assert call["argv"][call["argv"].index("-o") + 1] == lane.orderer_address
        argv = call["argv"]
        for i, arg in enumerate(argv):
            if arg == "--peerAddresses":
                assert argv[i + 1] in peers.values()
    admin = f"127.0.0.1:{lane.ports['orderer_admin']}"
    assert all(c["argv"][c["argv"].index("-o") + 1] == admin for c in calls if c["tool"] == "osnadmin")
    # Each org's package dials its own chaincode server on loopback; the ids are written
    # where the lane's chaincode servers read them.
    for org in ALL_ORGS:
        package = lane.root / "artifacts" / f"fedledger-{org}.tar.gz"
        assert _connection(package)["address"] == lane.peer(org).chaincode
        assert (lane.ccid_dir / f"{org}.id").read_text().startswith("fedledger_1.0:")
    approvals = [(c["env"]["CORE_PEER_LOCALMSPID"], c["argv"][c["argv"].index("--channelID") + 1])
                 for c in calls if c["argv"][:3] == ["lifecycle", "chaincode", "approveformyorg"]]
    assert ("Org4MSP", "consortium") in approvals and ("Org4MSP", "org4-private") in approvals
