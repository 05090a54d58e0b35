"""The bridge as its own process, against a real Fabric peer and any JSON-RPC chain.

In ``fedledger up`` the bridge runs inside the host process, beside the dev peer and the
embedded EVM (:mod:`fedledger.host.app`). In the docker-compose deployment it is its own
container: it reaches the operator org's peer Gateway over TLS and the chain (anvil, or
a public testnet) over JSON-RPC, and asks each org node for its anchor signature. The
pieces are the same: :class:`~fedledger.bridge.service.Bridge`,
:class:`~fedledger.bridge.remote.RemoteAnchorAgent`, the outbox, and the host's status
API (``/health``, ``/anchors``, ``/anchors/{round}``, ``/proofs``, ``/info``).

``python -m fedledger.bridge [--config FILE]`` (settings from ``FEDLEDGER_*`` environment
variables when no file is given; :mod:`fedledger.web.environment`)::

    FEDLEDGER_GATEWAY__ENDPOINT=peer0.org1.example.com:7051
    FEDLEDGER_GATEWAY__TLS_CA_CERT=.../tlsca/tlsca.org1.example.com-cert.pem
    FEDLEDGER_GATEWAY__SERVER_NAME=peer0.org1.example.com
    FEDLEDGER_IDENTITY__MSP_ID=Org1MSP   FEDLEDGER_IDENTITY__MSP_DIR=.../User1@org1.example.com/msp
    FEDLEDGER_EVM__BACKEND=rpc  FEDLEDGER_EVM__RPC_URL=http://anvil:8545  FEDLEDGER_EVM__CHAIN_ID=31337
    FEDLEDGER_CONTRACTS_FILE=/var/lib/fedledger/evm/contracts.json   (from fedledger.bridge.deploy)
    FEDLEDGER_ORG_NODES=Org1MSP=https://org1-node:8000,Org2MSP=...
    FEDLEDGER_NODE_TLS_CAS=Org1MSP=.../tlsca/tlsca.org1.example.com-cert.pem,Org2MSP=...
    FEDLEDGER_TLS__CERT_FILE=.../server.crt  FEDLEDGER_TLS__KEY_FILE=.../server.key  (HTTPS)
    FEDLEDGER_SUBMITTER_KEY_FILE=/run/secrets/bridge_key             (or a keystore + password file)
    FEDLEDGER_DB_URL=postgresql+psycopg://fedledger@postgres:5432/bridge  FEDLEDGER_DB_PASSWORD_FILE=...

The registry's key set and threshold are read from the chain; the contracts file names
each org's anchor address, checked against that key set. The gas account's key comes
from a file (a hex key, mode 600, e.g. a Docker secret) or an encrypted JSON keystore
with its password in a file; never from the environment or the repository.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from pydantic import Field, model_validator

from fedledger.bridge.errors import BridgeError
from fedledger.bridge.outbox import Outbox
from fedledger.bridge.remote import RemoteAnchorAgent
from fedledger.bridge.runner import BridgeHost
from fedledger.bridge.service import Bridge, BridgeSettings
from fedledger.evm.config import EvmConfig
from fedledger.evm.connection import connect
from fedledger.evm.contracts import AnchorRegistryClient
from fedledger.fabric.connection import ClientIdentity, GatewayEndpoint
from fedledger.ledgers import ConsortiumLedger
from fedledger.settings import Section
from fedledger.web.environment import read_secret
from fedledger.web.settings import ServiceSettings, TlsServerSettings

log = logging.getLogger(__name__)


#: The operator org's Gateway peer the bridge follows and records receipts through,
#: and the client identity it does that with.
GatewaySettings = GatewayEndpoint
IdentitySettings = ClientIdentity


class SubmitterKey(Section):
    """The gas-paying account: a hex key in a file, or an encrypted keystore + password file."""

    key_file: Path | None = Field(None, description="file holding the hex private key")
    keystore_file: Path | None = Field(None, description="encrypted JSON keystore (V3)")
    keystore_password_file: Path | None = Field(None, description="file holding its password")

    @model_validator(mode="after")
    def _one(self) -> SubmitterKey:
        if (self.key_file is None) == (self.keystore_file is None):
            raise ValueError("give the gas account as key_file or as keystore_file "
                             "(+ keystore_password_file), not both or neither")
        if self.keystore_file is not None and self.keystore_password_file is None:
            raise ValueError("keystore_file needs keystore_password_file")
        return self

    def load(self) -> LocalAccount:
        if self.key_file is not None:
            text = read_secret(self.key_file)
            return Account.from_key(text if text.startswith("0x") else "0x" + text)
        assert self.keystore_file is not None and self.keystore_password_file is not None
        keystore = json.loads(Path(self.keystore_file).read_text())
        password = Path(self.keystore_password_file).read_text().rstrip("\r\n")
        try:
            return Account.from_key(Account.decrypt(keystore, password))
        except ValueError as exc:
            raise BridgeError(f"cannot decrypt {self.keystore_file}: {exc}",
                              step="config") from None


class StandaloneBridgeSettings(ServiceSettings):
    """Everything one bridge process needs (see module docs); ``from_env``:
    ``FEDLEDGER_DB_PASSWORD_FILE`` fills the password into ``FEDLEDGER_DB_URL``."""

    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535, description="status API port")
    tls: TlsServerSettings | None = Field(None, description="serve the status API over HTTPS "
                                          "with this certificate; None: plain HTTP, loopback only")
    gateway: GatewaySettings
    identity: IdentitySettings
    evm: EvmConfig = Field(description="the chain; backend must be 'rpc'")
    contracts_file: Path | None = Field(None, description="JSON written by "
                                        "fedledger.bridge.deploy (registry, orgs' addresses)")
    registry_address: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$",
                                         description="overrides the contracts file's")
    anchor_addresses: dict[str, str] = Field(
        default_factory=dict, description="MSP id -> anchor address; overrides the contracts file's")
    org_nodes: dict[str, str] = Field(
        default_factory=dict, description="MSP id -> org node URL (its anchoring endpoints)")
    node_tls_cas: dict[str, Path] = Field(
        default_factory=dict, description="MSP id -> CA bundle (PEM) its node's HTTPS "
        "certificate must verify against (the org's Fabric TLS CA); absent: the system's "
        "trust store")
    submitter: SubmitterKey
    bridge: BridgeSettings = Field(default_factory=BridgeSettings)
    db_url: str = Field("sqlite:///bridge.db", description="the outbox (SQLAlchemy URL)")
    rpc_timeout_s: float = Field(30.0, gt=0, description="bridge -> org node request timeout")

    @model_validator(mode="after")
    def _rpc(self) -> StandaloneBridgeSettings:
        if self.evm.backend != "rpc":
            raise ValueError("the standalone bridge needs evm.backend 'rpc' (an RPC URL and chain id)")
        if self.registry_address is None and self.contracts_file is None:
            raise ValueError("give contracts_file or registry_address")
        return self

    def deployed(self) -> dict[str, Any]:
        """The contracts file (empty when none is configured)."""
        if self.contracts_file is None:
            return {}
        return json.loads(Path(self.contracts_file).read_text())


class StandaloneBridge(BridgeHost):
    """Connects, builds the bridge and its agents, and runs it in a thread. It offers
    what :func:`fedledger.host.app.create_status_app` serves (``health``, ``info``,
    ``anchors``, ``anchor``, ``chain``, ``registry``: :class:`BridgeHost`)."""

    service = "bridge"

    def __init__(self, settings: StandaloneBridgeSettings) -> None:
        super().__init__()
        self.settings = settings

    def start(self, status_url: str | None = None) -> dict[str, Any]:

        s = self.settings
        deployed = s.deployed()
        self.chain = connect(s.evm)
        if deployed.get("chain_id") not in (None, self.chain.chain_id):
            raise BridgeError(f"{s.contracts_file} was written for chain {deployed['chain_id']}, "
                              f"the RPC serves chain {self.chain.chain_id}", step="config")
        registry = s.registry_address or deployed.get("registry")
        if not registry:
            raise BridgeError(f"{s.contracts_file} names no registry", step="config")
        self.registry = AnchorRegistryClient(self.chain, registry)
        keys = [to_checksum_address(k)
                for k in self.registry.current_keys(from_block=deployed.get("block", 0))]
        if not keys:
            raise BridgeError(f"no AnchorRegistry at {registry} on chain {self.chain.chain_id} "
                              "(no key set event)", step="config")
        threshold = self.registry.threshold()
        addresses = {msp: to_checksum_address(a)
                     for msp, a in {**deployed.get("orgs", {}), **s.anchor_addresses}.items()}
        for msp in s.org_nodes:
            if msp not in addresses:
                raise BridgeError(f"no anchor address for {msp}", step="config")
            if addresses[msp] not in keys:
                raise BridgeError(f"{msp}'s anchor address {addresses[msp]} is not in the "
                                  f"registry's key set", step="config")
        submitter = s.submitter.load()

        identity = s.identity.load()
        gateway = s.gateway.connect(identity)
        consortium = ConsortiumLedger(gateway.network(s.bridge.channel).contract(
            s.bridge.chaincode, "consortium"))
        agents = [RemoteAnchorAgent(msp, addresses[msp], url, identity,
                                    timeout_s=s.rpc_timeout_s,
                                    verify=s.node_tls_cas.get(msp, True))
                  for msp, url in sorted(s.org_nodes.items())]
        self.run_bridge(Bridge(s.bridge, consortium=consortium, chain=self.chain,
                               registry=self.registry, submitter=submitter, agents=agents,
                               keys=keys, threshold=threshold, outbox=Outbox(s.db_url)),
                        agents, gateway)
        self.info = {
            "gateway": s.gateway.endpoint, "rpc_url": s.evm.rpc_url,
            "chain_id": self.chain.chain_id, "registry": self.registry.address,
            "staking": deployed.get("staking"), "submitter": submitter.address, "keys": keys,
            "threshold": threshold, "status_url": status_url,
            "bridge_identity": s.identity.msp_id, "orgs": sorted(s.org_nodes),
            "pid": os.getpid(),
        }
        log.info("bridge: gateway %s, chain %d via %s, registry %s (%d of %d), gas account %s",
                 s.gateway.endpoint, self.chain.chain_id, s.evm.rpc_url, self.registry.address,
                 threshold, len(keys), submitter.address)
        return self.info


def run(settings: StandaloneBridgeSettings) -> None:
    """Connect, then serve the status API in the foreground until SIGINT/SIGTERM."""
    import uvicorn

    from fedledger.host.app import create_status_app
    from fedledger.web.server import check_bind, server_config, url_of

    # Refused before anything connects: no plain HTTP off loopback.
    check_bind(settings.host, settings.port, settings.tls)
    bridge = StandaloneBridge(settings)
    try:
        bridge.start(status_url=url_of(settings.host, settings.port, settings.tls))
        app = create_status_app(bridge)
        app.title = "fedledger bridge"
        uvicorn.Server(server_config(app, settings.host, settings.port,
                                     tls=settings.tls)).run()
    finally:
        bridge.stop()
        log.info("bridge stopped")
