"""`fedledger devnet up` and the chaincode as a separate service process, as deployed:
spawned on free loopback ports, used through the gateway client, stopped by pid."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedledger.devnet.orderer import OrdererSettings
from fedledger.fabric.gateway import Gateway
from fedledger.fabric.identity import load_signing_identity
from tests.fabric.conftest import dataset_record


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.time() > deadline:
            raise AssertionError(f"{what}: not ready in {timeout} s")
        time.sleep(0.1)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_chaincode_service_refuses_to_start_without_its_environment():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINCODE_")}
    # Each missing setting stops it with exit status 2, naming the variable.
    result = subprocess.run([sys.executable, "-m", "fedledger_chaincode"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "CHAINCODE_SERVER_ADDRESS" in result.stderr
    result = subprocess.run([sys.executable, "-m", "fedledger_chaincode"],
                            env={**env, "CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "CHAINCODE_ID" in result.stderr


def test_devnet_up_with_an_external_chaincode_service(tmp_path: Path):
    port = free_port()
    chaincode = subprocess.Popen(
        [sys.executable, "-m", "fedledger_chaincode"], stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CHAINCODE_SERVER_ADDRESS": f"127.0.0.1:{port}",
             "CHAINCODE_ID": "fedledger"})
    devnet = None
    try:
        wait_for(lambda: listening(port), chaincode, "chaincode server")
        devnet = subprocess.Popen(
            [sys.executable, "-m", "fedledger.cli", "devnet", "up", "--orgs", "2", "--dir",
             str(tmp_path), "--port", "0", "--chaincode", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        endpoints = tmp_path / "endpoints.json"
        wait_for(endpoints.exists, devnet, "devnet")
        time.sleep(0.2)
        info = json.loads(endpoints.read_text())
        assert set(info["channels"]) == {"consortium", "org1-private", "org2-private"}
        assert info["channels"]["consortium"] == ["Org1MSP", "Org2MSP"]
        org = info["orgs"]["Org2"]
        assert Path(org["admin_msp"], "signcerts").is_dir()
        # The product's dev network cuts blocks as the deployment's configtx.yaml says,
        # and network.json records it.
        deployed = dataclasses.asdict(OrdererSettings.deployment())
        assert info["orderer"] == deployed
        assert json.loads((tmp_path / "network.json").read_text())["orderer"] == deployed

        identity = load_signing_identity(Path(org["user_msp"]), org["msp_id"])
        with Gateway.connect(info["gateway"], identity,
                             tls_root_cert=Path(info["tls_ca_cert"]).read_bytes(),
                             server_name=info["server_name"]) as gateway:
            contract = gateway.network("org2-private").contract("fedledger", "private")
            _, init_tx = contract.submit_with_id("Init")
            # Block 0 is the channel's config block: the first transaction is in block 1.
            status = gateway._commit_status(init_tx, "org2-private")
            assert status.successful and status.block_number == 1
            contract.submit("RegisterDataset", dataset_record("over-ccaas"))
            assert json.loads(contract.evaluate("GetDataset", "over-ccaas"))["num_samples"] == 10
        assert stop(devnet) == 0
        devnet = None
    finally:
        if devnet is not None:
            devnet.kill()
        chaincode.send_signal(signal.SIGINT)
        chaincode.wait(30)


@pytest.mark.skipif(not Path("/bin/tar").exists() and not Path("/usr/bin/tar").exists(),
                    reason="tar is not installed")
def test_ccaas_package_script_writes_what_the_ccaas_builder_reads(tmp_path: Path):
    import tarfile

    script = Path(__file__).resolve().parents[2] / "deploy" / "chaincode" / "package.sh"
    out = tmp_path / "fedledger.tgz"
    subprocess.run(["bash", str(script), "cc-org1:9999", "fedledger_1.0", str(out)], check=True,
                   capture_output=True, timeout=60)
    with tarfile.open(out) as package:
        assert sorted(package.getnames()) == ["code.tar.gz", "metadata.json"]
        metadata = json.load(package.extractfile("metadata.json"))
        assert metadata == {"type": "ccaas", "label": "fedledger_1.0"}
        package.extract("code.tar.gz", tmp_path, filter="data")
    with tarfile.open(tmp_path / "code.tar.gz") as code:
        connection = json.load(code.extractfile("connection.json"))
    assert connection["address"] == "cc-org1:9999" and connection["tls_required"] is False
    bad = subprocess.run(["bash", str(script), "no-port"], capture_output=True, text=True)
    assert bad.returncode == 2 and "host:port" in bad.stderr
