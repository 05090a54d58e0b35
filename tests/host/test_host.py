"""The host process alone, as a subprocess: host.json, the EVM JSON-RPC, the registry with
the configured anchor keys, the status API, and a clean stop by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from fedledger.evm import Chain, EvmConfig, RpcBackend
from fedledger.evm import typed_data as td
from fedledger.evm.contracts import AnchorRegistryClient
from fedledger.fabric.gateway import Gateway
from fedledger.fabric.identity import load_signing_identity
from fedledger.host.settings import HostSettings
from fedledger.web.server import free_port

ORGS = ["Org1", "Org2", "Org3"]


def wait_health(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"host exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            response = httpx.get(url + "/health", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"host not healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("host")
    accounts = [Account.create() for _ in ORGS]
    port = free_port()
    config = {
        "root": str(tmp / "root"), "port": port, "rpc_port": free_port(),
        "orgs": [{"name": org, "msp_id": f"{org}MSP", "anchor_address": a.address,
                  # nothing listens there: the bridge only logs and retries
                  "node_url": f"http://127.0.0.1:{free_port()}"}
                 for org, a in zip(ORGS, accounts, strict=True)],
        "bridge": {"poll_interval_s": 0.2},
    }
    HostSettings.model_validate(config)
    path = tmp / "host-config.json"
    path.write_text(json.dumps(config))
    log = tmp / "host.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fedledger.host", "--config", str(path)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_health(url, proc, log)
        yield {"proc": proc, "url": url, "root": tmp / "root", "accounts": accounts,
               "health": health, "log": log}
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_host_json_names_every_endpoint(host):
    info = json.loads((host["root"] / "host.json").read_text())
    for key in ("gateway", "tls_ca_cert", "server_name", "rpc_url", "chain_id", "registry",
                "deployer", "keys", "threshold", "status_url"):
        assert info[key], key
    assert info["status_url"] == host["url"]
    assert info["pid"] == host["proc"].pid
    assert Path(info["tls_ca_cert"]).exists()
    assert host["health"]["status"] == "ok" and host["health"]["service"] == "host"
    assert httpx.get(host["url"] + "/info").json() == info


def test_rpc_serves_the_chain_and_the_registry_holds_the_configured_keys(host):
    info = json.loads((host["root"] / "host.json").read_text())
    answer = httpx.post(info["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                                               "params": []}).json()
    assert int(answer["result"], 16) == info["chain_id"]
    chain = Chain(RpcBackend(info["rpc_url"], info["chain_id"]),
                  EvmConfig(backend="rpc", rpc_url=info["rpc_url"], chain_id=info["chain_id"]))
    registry = AnchorRegistryClient(chain, info["registry"])
    keys = td.sorted_keys(a.address for a in host["accounts"])
    assert info["keys"] == keys
    assert td.keys_hash(keys).startswith(registry.keys_hash())
    assert registry.threshold() == 2 == info["threshold"]
    assert registry.current_keys() == keys
    assert registry.next_round() == 1


def test_gateway_answers_an_org_client(host):
    info = json.loads((host["root"] / "host.json").read_text())
    org2 = info["orgs"]["Org2"]
    identity = load_signing_identity(Path(org2["user_msp"]), org2["msp_id"])
    gateway = Gateway.connect(info["gateway"], identity,
                              tls_root_cert=Path(info["tls_ca_cert"]).read_bytes(),
                              server_name=info["server_name"])
    try:
        consortium = gateway.network("consortium").contract("fedledger", "consortium")
        assert json.loads(consortium.evaluate("ListAnchorReceipts")) == []
    finally:
        gateway.close()


def test_status_api(host):
    assert httpx.get(host["url"] + "/anchors").json() == []
    missing = httpx.get(host["url"] + "/anchors/1")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    health = httpx.get(host["url"] + "/health").json()
    assert health["bridge"]["running"] is True
    assert health["bridge"]["agents"] == ["Org1MSP", "Org2MSP", "Org3MSP"]
    assert httpx.get(host["url"] + "/docs").status_code == 200


def test_stops_on_sigterm(host):
    proc = host["proc"]
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(30) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(host["url"] + "/health", timeout=2)
