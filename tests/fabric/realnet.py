"""The real-Fabric test lane: a Hyperledger Fabric 2.5 network started natively on free
loopback ports with the project's own deployment (deploy/), for tests that must hold on
real Fabric and not only on the dev peer.

Opt-in: ``FEDLEDGER_FABRIC_BIN`` names a folder holding the ``peer``, ``orderer``,
``osnadmin``, ``configtxgen`` and ``configtxlator`` binaries (built or downloaded by you;
none ship with this repository, and CI has none). Without it every test that uses the
fixtures below is skipped, with the reason. ``cryptogen`` in that folder is used when
present; otherwise the dev CA writes the same layout (tests/deploy/test_crypto_layout.py).
The orderer reads Fabric's own ``orderer.yaml`` (the sample config every Fabric release
ships, overridden by ``ORDERER_*`` variables): from ``FEDLEDGER_FABRIC_CFG`` or from
``config/`` or ``sampleconfig/`` beside the binaries' folder.

What :meth:`RealNetwork.start` does, in order, under one root folder:

1. ``fabric/``: ``configtx.yaml`` rendered from deploy/fabric/configtx.loopback.yaml (hosts
   127.0.0.1, the free ports) and ``crypto-config.yaml`` (deploy's, plus Org4);
   ``organizations/``: the crypto material (deploy/scripts/crypto.sh, or the dev CA);
2. the orderer and one peer per org as subprocesses (``FABRIC_CFG_PATH``, ``ORDERER_*`` and
   ``CORE_*`` overrides: listen addresses, ledgers under the root, the repository's
   deploy/fabric/peer/core.yaml and its CCaaS builder deploy/fabric/builders/ccaas via
   ``CORE_CHAINCODE_EXTERNALBUILDERS``), waited for on their operations ``/healthz``;
3. deploy/scripts/channels.sh and chaincode.sh with lib.sh's address variables
   (``ORDERER_ADDRESS``, ``PEER_ADDRESS_<ORG>``, ``CHAINCODE_ADDRESS_<ORG>``);
4. one chaincode server per org (``python -m fedledger_chaincode`` with
   ``CHAINCODE_SERVER_ADDRESS`` and the ``CHAINCODE_ID`` chaincode.sh wrote), then an
   evaluate through each org's own peer until the chaincode answers.

Org4 has crypto material and a configtx definition from the start but no peer and no
channel: :meth:`RealNetwork.add_org` starts its peer, runs deploy/scripts/add-org.sh and
starts its chaincode server, as docs/deploy.md's "Adding an org" does. :meth:`stop` ends
every process it started, by pid. Logs: ``<root>/logs/<process>.log``.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

import pytest
import yaml

from fedledger.web.server import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCRIPTS = DEPLOY / "scripts"
BUILDER = DEPLOY / "fabric/builders/ccaas"

FABRIC_BIN = "FEDLEDGER_FABRIC_BIN"
FABRIC_CFG = "FEDLEDGER_FABRIC_CFG"
BINARIES = ("peer", "orderer", "osnadmin", "configtxgen", "configtxlator")
SKIP_REASON = f"{FABRIC_BIN} is not set: real-Fabric lane skipped"
DOMAIN = "example.com"
CONSORTIUM = "consortium"
CHAINCODE = "fedledger"
ALL_ORGS = ("org1", "org2", "org3", "org4")   # what the crypto and configtx define
FIRST_ORGS = ("org1", "org2", "org3")          # in the network at start


def fabric_bin() -> Path:
    """The binaries' folder; skips without the variable, fails where it is incomplete."""
    value = os.environ.get(FABRIC_BIN)
    if not value:
        pytest.skip(SKIP_REASON)
    folder = Path(value).expanduser().resolve()
    missing = [b for b in BINARIES if not os.access(folder / b, os.X_OK)]
    if missing:
        pytest.fail(f"{FABRIC_BIN}={folder} lacks {', '.join(missing)} (needs {', '.join(BINARIES)})")
    return folder


def orderer_config(bin_dir: Path) -> Path:
    """The folder with Fabric's orderer.yaml (FEDLEDGER_FABRIC_CFG, or beside the binaries)."""
    candidates = [Path(os.environ[FABRIC_CFG]).expanduser()] if os.environ.get(FABRIC_CFG) else []
    candidates += [bin_dir.parent / "config", bin_dir.parent / "sampleconfig",
                   bin_dir.parent.parent / "sampleconfig", bin_dir]
    for folder in candidates:
        if (folder / "orderer.yaml").is_file():
            return folder.resolve()
    pytest.fail(f"no orderer.yaml in {', '.join(map(str, candidates))}: set {FABRIC_CFG} to the "
                "folder of Fabric's sample config (config/ of a release, sampleconfig/ of a checkout)")


def org_name(org: str) -> str:
    return f"Org{org.removeprefix('org')}"   # org1 -> Org1


def msp_id(org: str) -> str:
    return f"{org_name(org)}MSP"


@dataclass(frozen=True)
class PeerEndpoint:
    """One org's peer, as a client reaches it (the shape of the dev peer's Endpoints)."""

    org: str              # org1
    msp_id: str           # Org1MSP
    address: str          # 127.0.0.1:port of its Gateway
    server_name: str      # peer0.org1.example.com, the host in its TLS certificate
    tls_ca_cert: Path     # PEM of the org's TLS CA
    operations: str       # 127.0.0.1:port of its operations service (/healthz, /metrics)
    chaincode: str        # 127.0.0.1:port of the org's chaincode server


class RealNetwork:
    """A running native Fabric network (module docs); the handle the tests use."""

    def __init__(self, root: Path, bin_dir: Path, cfg_dir: Path) -> None:
        self.root = Path(root)
        self.bin_dir = bin_dir
        self.orderer_cfg = cfg_dir
        self.fabric_dir = self.root / "fabric"
        self.crypto_dir = self.root / "organizations"
        self.logs = self.root / "logs"
        self.ccid_dir = self.root / "chaincode-ids"
        self.orgs: list[str] = []            # orgs in the network (FABRIC_ORGS)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports = {"orderer": free_port(), "orderer_admin": free_port(),
                      "orderer_operations": free_port()}
        for org in ALL_ORGS:
            for kind in ("peer", "peer_chaincode", "operations", "chaincode"):
                self.ports[f"{org}_{kind}"] = free_port()
        self.consortium_channel = CONSORTIUM
        self.chaincode = CHAINCODE

    # ------------------------------------------------------------------ the handle
    @property
    def orderer_address(self) -> str:
        return f"127.0.0.1:{self.ports['orderer']}"

    @property
    def orderer_tls_ca(self) -> Path:
        return self.crypto_dir / f"ordererOrganizations/{DOMAIN}/tlsca/tlsca.{DOMAIN}-cert.pem"

    def peer(self, org: str) -> PeerEndpoint:
        org = org.lower()
        domain = f"{org}.{DOMAIN}"
        return PeerEndpoint(
            org=org, msp_id=msp_id(org), address=f"127.0.0.1:{self.ports[f'{org}_peer']}",
            server_name=f"peer0.{domain}",
            tls_ca_cert=self.crypto_dir / f"peerOrganizations/{domain}/tlsca/tlsca.{domain}-cert.pem",
            operations=f"127.0.0.1:{self.ports[f'{org}_operations']}",
            chaincode=f"127.0.0.1:{self.ports[f'{org}_chaincode']}")

    @property
    def peers(self) -> dict[str, PeerEndpoint]:
        """MSP id -> its org's peer, for the orgs in the network."""
        return {msp_id(o): self.peer(o) for o in self.orgs}

    @property
    def channels(self) -> list[str]:
        return [CONSORTIUM, *(f"{o}-private" for o in self.orgs)]

    def msp_dir(self, org: str, user: str = "User1") -> Path:
        domain = f"{org.lower()}.{DOMAIN}"
        return self.crypto_dir / f"peerOrganizations/{domain}/users/{user}@{domain}/msp"

    def identity(self, org: str, user: str = "User1"):
        from fedledger.fabric.identity import load_signing_identity

        return load_signing_identity(self.msp_dir(org, user), msp_id(org.lower()))

    def connect(self, org: str, user: str = "User1"):
        """A gateway client for ``org``'s ``user`` (``"Org1"`` or ``"org1"``), over TLS to
        that org's own peer, as the dev network's ``connect`` is."""
        from fedledger.fabric.gateway import Gateway

        peer = self.peer(org)
        return Gateway.connect(peer.address, self.identity(org, user),
                               tls_root_cert=peer.tls_ca_cert.read_bytes(),
                               server_name=peer.server_name)

    # ------------------------------------------------------------------ start, stop
    def start(self, orgs: Sequence[str] = FIRST_ORGS) -> RealNetwork:
        try:
            self._configure()
            self._crypto()
            self._start_orderer()
            for org in orgs:
                self._start_peer(org)
            self.orgs = list(orgs)
            self.script("channels.sh")
            self.script("chaincode.sh")
            for org in orgs:
                self._start_chaincode(org)
            for org in orgs:
                self.wait_for_chaincode(org)
        except BaseException:
            self.stop()
            raise
        return self

    def add_org(self, org: str) -> None:
        """docs/deploy.md's "Adding an org" for ``org`` (crypto and configtx define it)."""
        if org in self.orgs:
            return
        self._start_peer(org)
        self.orgs.append(org)
        self.script("add-org.sh", org)
        self._start_chaincode(org)
        self.wait_for_chaincode(org)

    def stop(self) -> None:
        """End every process started here, by pid: SIGTERM, then SIGKILL after 15 s."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                _signal(proc, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                _signal(proc, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()

    # ------------------------------------------------------------------ steps
    def _configure(self) -> None:
        self.fabric_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        ports = {"ORDERER_PORT": self.ports["orderer"],
                 **{f"{o.upper()}_PEER_PORT": self.ports[f"{o}_peer"] for o in ALL_ORGS}}
        template = Template((DEPLOY / "fabric/configtx.loopback.yaml").read_text())
        (self.fabric_dir / "configtx.yaml").write_text(template.substitute(ports))
        crypto = yaml.safe_load((DEPLOY / "fabric/crypto-config.yaml").read_text())
        names = [o["Name"] for o in crypto["PeerOrgs"]]
        for org in ALL_ORGS:
            if org_name(org) not in names:
                entry = copy.deepcopy(crypto["PeerOrgs"][-1])
                entry.update(Name=org_name(org), Domain=f"{org}.{DOMAIN}")
                crypto["PeerOrgs"].append(entry)
        (self.fabric_dir / "crypto-config.yaml").write_text(yaml.safe_dump(crypto, sort_keys=False))

    def _crypto(self) -> None:
        if os.access(self.bin_dir / "cryptogen", os.X_OK):
            self.script("crypto.sh", env={"SERVICES_UID": str(os.getuid()),
                                          "SERVICES_GID": str(os.getgid())})
        else:
            self._run([sys.executable, "-m", "fedledger.devnet.ca", "--config",
                       str(self.fabric_dir / "crypto-config.yaml"), "--output", str(self.crypto_dir)],
                      "devca")

    def _start_orderer(self) -> None:
        self._spawn("orderer", [str(self.bin_dir / "orderer")], self.orderer_env())
        self._wait_healthy("orderer", f"127.0.0.1:{self.ports['orderer_operations']}")

    def orderer_env(self) -> dict[str, str]:
        """The orderer's configuration: docker-compose.yml's ORDERER_* with this network's
        paths and loopback ports."""
        node = self.crypto_dir / f"ordererOrganizations/{DOMAIN}/orderers/orderer.{DOMAIN}"
        tls, data = node / "tls", self.root / "orderer"
        ca = f"[{tls / 'ca.crt'}]"
        env = {
            "FABRIC_CFG_PATH": str(self.orderer_cfg), "FABRIC_LOGGING_SPEC": "INFO",
            "ORDERER_GENERAL_LISTENADDRESS": "127.0.0.1",
            "ORDERER_GENERAL_LISTENPORT": str(self.ports["orderer"]),
            "ORDERER_GENERAL_LOCALMSPID": "OrdererMSP",
            "ORDERER_GENERAL_LOCALMSPDIR": str(node / "msp"),
            "ORDERER_GENERAL_TLS_ENABLED": "true",
            "ORDERER_GENERAL_TLS_PRIVATEKEY": str(tls / "server.key"),
            "ORDERER_GENERAL_TLS_CERTIFICATE": str(tls / "server.crt"),
            "ORDERER_GENERAL_TLS_ROOTCAS": ca,
            "ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE": str(tls / "server.crt"),
            "ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY": str(tls / "server.key"),
            "ORDERER_GENERAL_CLUSTER_ROOTCAS": ca,
            "ORDERER_GENERAL_BOOTSTRAPMETHOD": "none",
            "ORDERER_CHANNELPARTICIPATION_ENABLED": "true",
            "ORDERER_ADMIN_LISTENADDRESS": f"127.0.0.1:{self.ports['orderer_admin']}",
            "ORDERER_ADMIN_TLS_ENABLED": "true",
            "ORDERER_ADMIN_TLS_CERTIFICATE": str(tls / "server.crt"),
            "ORDERER_ADMIN_TLS_PRIVATEKEY": str(tls / "server.key"),
            "ORDERER_ADMIN_TLS_ROOTCAS": ca,
            "ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED": "true",
            "ORDERER_ADMIN_TLS_CLIENTROOTCAS": ca,
            "ORDERER_FILELEDGER_LOCATION": str(data / "ledger"),
            "ORDERER_CONSENSUS_WALDIR": str(data / "etcdraft/wal"),
            "ORDERER_CONSENSUS_SNAPDIR": str(data / "etcdraft/snapshot"),
            "ORDERER_OPERATIONS_LISTENADDRESS": f"127.0.0.1:{self.ports['orderer_operations']}",
            "ORDERER_METRICS_PROVIDER": "disabled",
        }
        return env

    def _start_peer(self, org: str) -> None:
        peer = self.peer(org)
        self._spawn(f"peer0.{org}", [str(self.bin_dir / "peer"), "node", "start"], self.peer_env(org))
        self._wait_healthy(f"peer0.{org}", peer.operations)

    def peer_env(self, org: str) -> dict[str, str]:
        """An org's peer: deploy/fabric/peer/core.yaml with docker-compose.yml's CORE_*
        overrides, this network's paths and ports, and the repository's CCaaS builder."""
        peer = self.peer(org)
        node = self.crypto_dir / f"peerOrganizations/{org}.{DOMAIN}/peers/{peer.server_name}"
        data = self.root / "peers" / org
        builders = f"[{{name: ccaas_builder, path: {BUILDER}}}]"
        env = {
            "FABRIC_CFG_PATH": str(DEPLOY / "fabric/peer"), "FABRIC_LOGGING_SPEC": "INFO",
            "CORE_PEER_ID": peer.server_name,
            "CORE_PEER_ADDRESS": peer.address,
            "CORE_PEER_LISTENADDRESS": peer.address,
            "CORE_PEER_CHAINCODEADDRESS": f"127.0.0.1:{self.ports[f'{org}_peer_chaincode']}",
            "CORE_PEER_CHAINCODELISTENADDRESS": f"127.0.0.1:{self.ports[f'{org}_peer_chaincode']}",
            "CORE_PEER_GOSSIP_BOOTSTRAP": peer.address,
            "CORE_PEER_GOSSIP_EXTERNALENDPOINT": peer.address,
            "CORE_PEER_LOCALMSPID": peer.msp_id,
            "CORE_PEER_MSPCONFIGPATH": str(node / "msp"),
            "CORE_PEER_TLS_ENABLED": "true",
            "CORE_PEER_TLS_CERT_FILE": str(node / "tls/server.crt"),
            "CORE_PEER_TLS_KEY_FILE": str(node / "tls/server.key"),
            "CORE_PEER_TLS_ROOTCERT_FILE": str(node / "tls/ca.crt"),
            "CORE_PEER_TLS_CLIENTROOTCAS_FILES": str(node / "tls/ca.crt"),
            "CORE_PEER_FILESYSTEMPATH": str(data),
            "CORE_LEDGER_SNAPSHOTS_ROOTDIR": str(data / "snapshots"),
            "CORE_OPERATIONS_LISTENADDRESS": peer.operations,
            "CORE_METRICS_PROVIDER": "disabled",
            "CORE_CHAINCODE_EXTERNALBUILDERS": builders,
        }
        return env

    def _start_chaincode(self, org: str) -> None:
        peer = self.peer(org)
        package_id = (self.ccid_dir / f"{org}.id").read_text().strip()
        env = {"CHAINCODE_SERVER_ADDRESS": peer.chaincode, "CHAINCODE_ID": package_id,
               "PYTHONUNBUFFERED": "1"}
        self._spawn(f"chaincode.{org}", [sys.executable, "-m", "fedledger_chaincode"], env)
        host, port = peer.chaincode.rsplit(":", 1)
        self._wait(f"chaincode.{org}", lambda: _accepts(host, int(port)), 60)

    def wait_for_chaincode(self, org: str, timeout: float = 120) -> None:
        """Until the org's own peer runs the chaincode on the consortium channel (the peer
        dials its chaincode server on the first call)."""
        from fedledger.fabric.errors import FabricError

        with self.connect(org) as gateway:
            contract = gateway.network(CONSORTIUM).contract(CHAINCODE, "consortium")

            def answers() -> bool:
                try:
                    contract.evaluate("ListOrgs", target_orgs=[msp_id(org)])
                except FabricError:
                    return False
                return True
            self._wait(f"peer0.{org}", answers, timeout)

    # ------------------------------------------------------------------ helpers
    def script_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """What deploy/scripts need here: lib.sh's paths and addresses, the binaries first
        on PATH, the peer CLI's core.yaml."""
        env = {
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", str(self.root)), "TMPDIR": str(self.root),
            "FABRIC_CFG_PATH": str(DEPLOY / "fabric/peer"), "FABRIC_LOGGING_SPEC": "WARNING",
            "FABRIC_CFG_DIR": str(self.fabric_dir), "CRYPTO_DIR": str(self.crypto_dir),
            "CHAINCODE_DIR": str(DEPLOY / "chaincode"), "ARTIFACTS_DIR": str(self.root / "artifacts"),
            "CCID_DIR": str(self.ccid_dir),
            "FABRIC_ORGS": " ".join(f"{o}:{self.ports[f'{o}_peer']}" for o in self.orgs),
            "ORDERER_ADDRESS": self.orderer_address,
            "ORDERER_ADMIN_ADDRESS": f"127.0.0.1:{self.ports['orderer_admin']}",
        }
        for org in ALL_ORGS:
            env[f"PEER_ADDRESS_{org.upper()}"] = self.peer(org).address
            env[f"CHAINCODE_ADDRESS_{org.upper()}"] = self.peer(org).chaincode
        return {**env, **(extra or {})}

    def script(self, name: str, *args: str, env: dict[str, str] | None = None) -> str:
        return self._run(["bash", str(SCRIPTS / name), *args], name, env=self.script_env(env))

    def _run(self, command: list[str], name: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                                env=env, cwd=self.root)
        (self.logs / f"{name}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise AssertionError(f"{name} failed ({result.returncode}):\n{result.stderr[-4000:]}"
                                 f"\n{self.tails()}")
        return result.stdout

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it
        try:
            self.procs[name] = subprocess.Popen(command, env={**base, **env}, cwd=self.root,
                                                stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def _wait(self, name: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
            if ready():
                return
            time.sleep(0.5)
        raise AssertionError(f"{name} not ready in {timeout} s:\n{self.tail(name)}")

    def _wait_healthy(self, name: str, operations: str, timeout: float = 60) -> None:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://{operations}/healthz", timeout=3) as response:
                    return json.loads(response.read()).get("status") == "OK"
            except (OSError, urllib.error.URLError, ValueError):
                return False
        self._wait(name, healthy, timeout)

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def tails(self) -> str:
        return "\n".join(f"--- {name}\n{self.tail(name, 1500)}" for name in self.procs)


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group of a child started here (its own session: its pid)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 1).close()
    except OSError:
        return False
    return True


def start_real_network(root: Path) -> RealNetwork:
    """Skips without FEDLEDGER_FABRIC_BIN; otherwise a started 3-org network."""
    bin_dir = fabric_bin()
    return RealNetwork(root, bin_dir, orderer_config(bin_dir)).start()


@pytest.fixture(scope="session")
def realnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNetwork]:
    """The session's real network (Org1..Org3; ``realnet_org4`` adds Org4 to it)."""
    fabric_bin()   # skip before making any folder
    network = start_real_network(tmp_path_factory.mktemp("realfabric"))
    try:
        yield network
    finally:
        network.stop()


@pytest.fixture(scope="session")
def realnet_org4(realnet: RealNetwork) -> RealNetwork:
    """The session's network after ``add-org.sh org4``."""
    realnet.add_org("org4")
    return realnet
