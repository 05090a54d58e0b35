"""deploy/scripts/chaincode.sh (and network.sh, add-org.sh around it) run for real against
a recording stand-in for Fabric's CLIs (tests/deploy/fabric_standin.py, first on PATH):
every org of a channel approves the chaincode definition for its org, an org that joins
later approves the definition already committed, and each definition is committed once.

Issue 15, defect 2: after ``add-org.sh org4`` Org4 had not approved the definition
committed on the consortium channel, so its own peer could not run the chaincode there."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import fabric_standin
from .compose import DEPLOY, need

SCRIPTS = DEPLOY / "scripts"
ORGS = "org1:7051 org2:9051 org3:11051"
WITH_ORG4 = ORGS + " org4:13051"
CONSORTIUM_POLICY = ["--channel-config-policy", "/Channel/Application/Endorsement"]


def configtx_with_org4() -> dict[str, Any]:
    """deploy/fabric/configtx.yaml with Org4 added as docs/deploy.md says (step 1)."""
    configtx = yaml.safe_load((DEPLOY / "fabric/configtx.yaml").read_text())
    org4 = copy.deepcopy(next(o for o in configtx["Organizations"] if o["ID"] == "Org3MSP"))
    org4 = json.loads(json.dumps(org4).replace("Org3", "Org4").replace("org3", "org4"))
    org4["AnchorPeers"] = [{"Host": "peer0.org4.example.com", "Port": 13051}]
    configtx["Organizations"].append(org4)
    profile = copy.deepcopy(configtx["Profiles"]["Org3PrivateChannel"])
    profile["Application"]["Organizations"] = [org4]
    configtx["Profiles"]["Org4PrivateChannel"] = profile
    return configtx


class Network:
    """The stand-in's network: runs the deployment's scripts against it and reads back
    what they called and what state they left."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "standin"
        self.state_dir.mkdir()
        bin_dir = fabric_standin.install(root / "bin")
        fabric = root / "fabric"
        fabric.mkdir()
        (fabric / "configtx.yaml").write_text(yaml.safe_dump(configtx_with_org4()))
        self.ccid_dir = root / "chaincode-ids"
        self.env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(root), "TMPDIR": str(root),
            "STANDIN_DIR": str(self.state_dir), "FABRIC_CFG_DIR": str(fabric),
            "CRYPTO_DIR": str(root / "organizations"), "CHAINCODE_DIR": str(DEPLOY / "chaincode"),
            "ARTIFACTS_DIR": str(root / "artifacts"), "CCID_DIR": str(self.ccid_dir),
            "RETRY_ATTEMPTS": "2", "RETRY_DELAY": "0",
        }

    def run(self, script: str, *args: str, orgs: str = ORGS) -> list[dict[str, Any]]:
        """Run a script; return the calls it made."""
        before = len(self.calls())
        result = subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True,
                                text=True, env={**self.env, "FABRIC_ORGS": orgs}, timeout=300,
                                check=False)
        assert result.returncode == 0, result.stderr[-4000:]
        return self.calls()[before:]

    def calls(self) -> list[dict[str, Any]]:
        return fabric_standin.read_calls(self.state_dir)

    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "state.json").read_text())

    def edit_state(self, change: Any) -> None:
        state = self.state()
        change(state)
        (self.state_dir / "state.json").write_text(json.dumps(state))

    def package_id(self, org: str) -> str:
        return (self.ccid_dir / f"{org}.id").read_text().strip()


def lifecycle(calls: list[dict[str, Any]], command: str) -> list[dict[str, Any]]:
    return [c for c in calls if c["tool"] == "peer" and c["argv"][:3] == ["lifecycle", "chaincode", command]]


def arg(call: dict[str, Any], name: str) -> str:
    argv = call["argv"]
    return argv[argv.index(name) + 1]


def approvals_by(calls: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(MSP id acting, channel, sequence) of each approveformyorg."""
    return [(c["env"]["CORE_PEER_LOCALMSPID"], arg(c, "--channelID"), arg(c, "--sequence"))
            for c in lifecycle(calls, "approveformyorg")]


def commits_on(calls: list[dict[str, Any]]) -> list[str]:
    return [arg(c, "--channelID") for c in lifecycle(calls, "commit")]


@pytest.fixture
def network(tmp_path: Path) -> Network:
    need("jq", shutil.which("jq") is not None, "the scripts parse JSON with it (apt-get install jq)")
    need("GNU tar", shutil.which("tar") is not None, "deploy/chaincode/package.sh needs it")
    return Network(tmp_path)


@pytest.fixture
def deployed(network: Network) -> Network:
    """network.sh on three orgs: channels, then the chaincode on each."""
    network.run("network.sh")
    return network


def test_first_deployment_approves_and_commits_once_per_channel(network: Network) -> None:
    calls = network.run("network.sh")
    channels = ["consortium", "org1-private", "org2-private", "org3-private"]
    assert sorted(commits_on(calls)) == sorted(channels)
    assert sorted(approvals_by(calls)) == sorted(
        [(f"Org{i}MSP", "consortium", "1") for i in (1, 2, 3)]
        + [(f"Org{i}MSP", f"org{i}-private", "1") for i in (1, 2, 3)])
    for call in lifecycle(calls, "approveformyorg"):
        org = call["env"]["CORE_PEER_LOCALMSPID"].removesuffix("MSP").lower()
        assert arg(call, "--package-id") == network.package_id(org)   # its own package
        assert call["env"]["CORE_PEER_ADDRESS"].startswith(f"peer0.{org}.example.com:")
    state = network.state()
    assert set(state["committed"]) == set(channels)
    for org in ("org1", "org2", "org3"):
        assert state["installed"][f"{org.capitalize()}MSP"] == [network.package_id(org)]


def test_a_second_run_approves_and_commits_nothing(deployed: Network) -> None:
    calls = deployed.run("network.sh")
    assert lifecycle(calls, "approveformyorg") == []
    assert lifecycle(calls, "commit") == []
    assert lifecycle(calls, "install") == []


def test_add_org_approves_the_committed_definition_on_every_channel_it_joins(deployed: Network) -> None:
    committed = deployed.state()["committed"]["consortium"]
    calls = deployed.run("add-org.sh", "org4", orgs=WITH_ORG4)

    # Org4's peer got its own package, and Org4 approved the committed definition on the
    # consortium channel: same name, version, sequence and policy, its own package id.
    assert [c["env"]["CORE_PEER_LOCALMSPID"] for c in lifecycle(calls, "install")] == ["Org4MSP"]
    approvals = [c for c in lifecycle(calls, "approveformyorg")
                 if c["env"]["CORE_PEER_LOCALMSPID"] == "Org4MSP"]
    by_channel = {arg(c, "--channelID"): c for c in approvals}
    assert sorted(by_channel) == ["consortium", "org4-private"]
    consortium = by_channel["consortium"]
    assert arg(consortium, "--sequence") == str(committed["sequence"]) == "1"
    assert arg(consortium, "--version") == committed["version"]
    assert arg(consortium, "--name") == committed["name"] == "fedledger"
    assert arg(consortium, "--package-id") == deployed.package_id("org4")
    assert consortium["argv"][-2:] == CONSORTIUM_POLICY
    assert "--collections-config" not in consortium["argv"]
    assert consortium["env"]["CORE_PEER_ADDRESS"] == "peer0.org4.example.com:13051"
    assert consortium["env"]["CORE_PEER_MSPCONFIGPATH"].endswith(
        "peerOrganizations/org4.example.com/users/Admin@org4.example.com/msp")
    private = by_channel["org4-private"]
    assert private["argv"][-2:] == ["--signature-policy", "OR('Org4MSP.peer')"]

    # Nobody else approved again, the consortium's definition was not committed a second
    # time; Org4's private channel got its first commit.
    assert approvals_by(calls) == [("Org4MSP", "consortium", "1"), ("Org4MSP", "org4-private", "1")]
    assert commits_on(calls) == ["org4-private"]
    state = deployed.state()
    assert state["committed"]["consortium"] == committed
    assert set(state["approvals"]["consortium"]["1"]) == {"Org1MSP", "Org2MSP", "Org3MSP", "Org4MSP"}
    assert "consortium" in state["joined"]["Org4MSP"]

    # Everything is in place: running the network again does nothing more.
    again = deployed.run("network.sh", orgs=WITH_ORG4)
    assert lifecycle(again, "approveformyorg") == [] and lifecycle(again, "commit") == []


def test_an_org_missing_from_a_committed_definitions_approvals_approves_it(deployed: Network) -> None:
    """Committed with Org3's approval missing (Org1 and Org2 are a majority): a rerun has
    Org3 approve the committed sequence and commits nothing."""
    deployed.edit_state(lambda s: s["approvals"]["consortium"]["1"].pop("Org3MSP"))
    calls = deployed.run("chaincode.sh")
    assert approvals_by(calls) == [("Org3MSP", "consortium", "1")]
    assert commits_on(calls) == []


def test_an_interrupted_deployment_resumes_without_approving_twice(network: Network) -> None:
    """Only Org1 had approved on the consortium channel when the first run stopped: the
    next one has Org2 and Org3 approve (checkcommitreadiness) and commits once."""
    network.run("channels.sh")
    network.edit_state(lambda s: s["approvals"].update({"consortium": {"1": {"Org1MSP": {
        "name": "fedledger", "version": "1.0", "sequence": 1, "init_required": False,
        "policy": "channel-config-policy /Channel/Application/Endorsement",
        "package_id": "fedledger_1.0:earlier"}}}}))
    calls = network.run("chaincode.sh")
    consortium = [a for a in approvals_by(calls) if a[1] == "consortium"]
    assert consortium == [("Org2MSP", "consortium", "1"), ("Org3MSP", "consortium", "1")]
    assert commits_on(calls).count("consortium") == 1


def test_an_upgrade_approves_and_commits_the_next_sequence(deployed: Network) -> None:
    deployed.env["CHAINCODE_SEQUENCE"] = "2"
    calls = deployed.run("chaincode.sh")
    assert sorted(commits_on(calls)) == ["consortium", "org1-private", "org2-private", "org3-private"]
    assert {(a[1], a[2]) for a in approvals_by(calls)} == {
        ("consortium", "2"), ("org1-private", "2"), ("org2-private", "2"), ("org3-private", "2")}
    assert deployed.state()["committed"]["consortium"]["sequence"] == 2
