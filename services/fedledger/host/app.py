"""The host process: everything of ``fedledger up`` that is not an org or the coordinator.

:class:`Host` starts, in this order:

1. the dev Fabric network (``DevNetwork`` under ``root/fabric``: crypto in cryptogen's
   layout, the consortium + private channels, chaincode server, dev peer and its TLS
   Gateway);
2. the embedded EVM (py-evm), durable: every block it mines is journaled in
   ``root/evm/chain.jsonl`` and the journal is replayed at start
   (:mod:`fedledger.evm.journal`), so a restarted host has the same chain;
3. the AnchorRegistry (and Staking), deployed by the first eth-tester dev account with
   the orgs' anchor addresses as key set and a majority threshold (unless configured),
   the orgs funded, and the addresses written to ``root/evm/contracts.json`` -- only on
   the first start of a chain: later starts attach to the recorded contracts. Then the
   chain's JSON-RPC server (:mod:`fedledger.evm.rpc_server`) starts, so nobody else sends
   a transaction before the setup is recorded (a chain whose setup a crash interrupted is
   set aside as ``chain.jsonl.interrupted`` and set up again);
4. the bridge: it follows the consortium channel as the operator org's client, and asks
   each org node (:class:`~fedledger.bridge.remote.RemoteAnchorAgent`) for its
   private-state leaf and its signature; its outbox is SQLite under the root, kept
   across restarts (the bridge resumes it exactly once). The bridge runs in a thread;
   failures (an org node down, a refusal) are logged and retried.

Then it writes ``host.json`` for the other processes::

    {"gateway": "127.0.0.1:7051", "tls_ca_cert": ".../tlsca.org1.example.com-cert.pem",
     "server_name": "peer0.org1.example.com", "chaincode": "127.0.0.1:...",
     "rpc_url": "http://127.0.0.1:8545", "chain_id": 131277322940537,
     "registry": "0x...", "deployer": "0x...", "keys": ["0x..."], "threshold": 2,
     "status_url": "http://127.0.0.1:8090", "bridge_identity": "Org1MSP",
     "channels": {...}, "orgs": {...MSP paths...}, "pid": 1234}

and serves a small status API: ``GET /health``, ``GET /anchors`` (the bridge outbox),
``GET /anchors/{first_round}`` (with its leaves), ``POST /proofs`` (a consortium
record's proof package, verifiable with ``fedledger verify``), ``GET /info``
(host.json). A restarted host (same root) resumes: the same chain, registry and outbox,
so the proofs handed out before still verify and nothing is deployed or anchored twice.
Removing ``root/evm`` starts a new chain (remove ``bridge.db`` with it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import uvicorn
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from fedledger.audit.proofs import ProofPackage, consortium_proof
from fedledger.bridge.outbox import Outbox
from fedledger.bridge.remote import RemoteAnchorAgent
from fedledger.bridge.runner import BridgeHost, anchor_json
from fedledger.bridge.service import Bridge
from fedledger.devnet.network import EmbeddedNetwork
from fedledger.evm.backends import EmbeddedBackend
from fedledger.evm.chain import Chain
from fedledger.evm.config import EvmConfig
from fedledger.evm.contracts import (
    AnchorRegistryClient,
    StakingClient,
    deploy_anchor_registry,
    deploy_staking,
)
from fedledger.evm.errors import EvmError
from fedledger.evm.rpc_server import create_rpc_app
from fedledger.evm.typed_data import sorted_keys
from fedledger.host.settings import HostSettings
from fedledger.ledgers import ConsortiumLedger
from fedledger.protocol.host_api import (
    AnchorPublic,
    AnchorWithLeaves,
    HostHealth,
    HostInfo,
    ProofRequest,
)
from fedledger.web.errors import ServiceError, install_error_handlers
from fedledger.web.metrics import install_observability
from fedledger.web.server import ThreadedServer, check_bind, free_port, server_config, url_of

log = logging.getLogger(__name__)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically and durably (contracts.json must not be lost while the journal that
    holds the contracts survives: the chain would be taken as never set up)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DeployedContracts(BaseModel):
    """``root/evm/contracts.json``: what the host deployed on the chain whose genesis is
    ``genesis_hash`` (a file left from a chain since removed is ignored)."""

    model_config = ConfigDict(extra="forbid")

    genesis_hash: str
    registry: str
    staking: str | None
    deployer: str
    keys: list[str]
    threshold: int


def _read_contracts(path: Path, genesis_hash: str) -> DeployedContracts | None:
    if not path.exists():
        return None
    recorded = DeployedContracts.model_validate_json(path.read_text())
    if recorded.genesis_hash != genesis_hash:
        log.warning("%s belongs to another chain (genesis %s): deploying anew", path,
                    recorded.genesis_hash)
        return None
    return recorded


class Host(BridgeHost):
    """The host's components (see module docs); ``start()`` returns what host.json holds."""

    service = "host"

    def __init__(self, settings: HostSettings) -> None:
        super().__init__()
        self.settings = settings
        self.network: EmbeddedNetwork | None = None
        self.backend: EmbeddedBackend | None = None
        self.rpc: ThreadedServer | None = None

    def start(self, status_url: str | None = None) -> dict[str, Any]:
        s = self.settings
        s.root.mkdir(parents=True, exist_ok=True)
        self.network = EmbeddedNetwork(s.fabric_root, [o.name for o in s.orgs], host=s.host,
                                       gateway_port=s.gateway_port, chaincode_port=s.chaincode_port)
        endpoints = self.network.start()
        log.info("dev peer gateway on %s", endpoints.gateway)

        self.backend, self.chain = self._open_chain()
        deployer = self.chain.dev_accounts()[0]
        keys = sorted_keys(o.anchor_address for o in s.orgs)
        threshold = s.signature_threshold
        self.registry, self.staking = self._contracts(deployer, keys, threshold)
        # Served only now: no one else's transaction comes before the setup is recorded.
        self.rpc = ThreadedServer(create_rpc_app(self.backend), host=s.host, port=s.rpc_port).start()
        log.info("EVM JSON-RPC on %s, AnchorRegistry %s (%d of %d), Staking %s", self.rpc.url,
                 self.registry.address, threshold, len(keys),
                 self.staking.address if self.staking else None)

        operator = s.operator_org
        gateway = self.network.connect(operator.name)
        consortium = ConsortiumLedger(gateway.network(s.bridge.channel).contract(
            s.bridge.chaincode, "consortium"))
        identity = self.network.network.identity(operator.name)
        agents = [RemoteAnchorAgent(o.msp_id, o.anchor_address, o.node_url, identity,
                                    timeout_s=s.rpc_timeout_s, verify=o.node_tls_ca or True)
                  for o in s.orgs if o.node_url]
        self.run_bridge(Bridge(s.bridge, consortium=consortium, chain=self.chain,
                               registry=self.registry, submitter=deployer, agents=agents,
                               keys=keys, threshold=threshold, outbox=Outbox(s.outbox_url),
                               staking=self.staking), agents, gateway)

        described = self.network.network.describe()
        self.info = {
            "gateway": endpoints.gateway, "tls_ca_cert": str(endpoints.tls_ca_cert),
            "server_name": endpoints.server_name, "chaincode": endpoints.chaincode,
            "rpc_url": self.rpc.url, "chain_id": self.chain.chain_id,
            "registry": self.registry.address,
            "staking": self.staking.address if self.staking else None,
            "deployer": deployer.address, "keys": keys,
            "threshold": threshold, "status_url": status_url,
            "bridge_identity": operator.msp_id, "channels": described["channels"],
            "orgs": described["orgs"], "fabric_root": str(s.fabric_root), "pid": os.getpid(),
        }
        _write_json(s.host_json_path, self.info)
        return self.info

    def _open_chain(self) -> tuple[EmbeddedBackend, Chain]:
        """The journaled chain; one whose setup was cut short is set aside (nobody but this
        host saw it: its JSON-RPC server starts after the setup) and begun again."""
        s = self.settings
        config = EvmConfig(poll_interval_s=0.05, receipt_timeout_s=60)
        backend = EmbeddedBackend(journal=s.evm_journal_path)
        chain = Chain(backend, config)
        deployer = chain.dev_accounts()[0]
        if _read_contracts(s.evm_contracts_path, backend.genesis_hash) is None and \
                chain.w3.eth.get_transaction_count(deployer.address) > 0:
            aside = s.evm_journal_path.with_name(s.evm_journal_path.name + ".interrupted")
            log.warning("the chain in %s was not set up completely (a crash during the "
                        "setup?): moved to %s, starting a new chain", s.evm_journal_path, aside)
            backend.close()
            os.replace(s.evm_journal_path, aside)
            backend = EmbeddedBackend(journal=s.evm_journal_path)
            chain = Chain(backend, config)
        return backend, chain

    def _contracts(self, deployer: LocalAccount, keys: list[str], threshold: int
                   ) -> tuple[AnchorRegistryClient, StakingClient | None]:
        """Attach to what an earlier start deployed on this chain, or deploy and fund (and
        record it in contracts.json, atomically, once all of it is mined)."""
        s = self.settings
        assert self.chain is not None and self.backend is not None
        chain = self.chain
        recorded = _read_contracts(s.evm_contracts_path, self.backend.genesis_hash)
        if recorded is not None:
            for address in (recorded.registry, recorded.staking):
                if address is not None and not chain.w3.eth.get_code(to_checksum_address(address)):
                    raise EvmError(f"{s.evm_contracts_path} names {address}, which holds no "
                                   "contract on the chain", step="attach")
            if (recorded.keys, recorded.threshold) != (keys, threshold):
                log.warning("the registry was deployed for keys %s (%d of them); the settings "
                            "name %s (%d): keeping the deployed contracts", recorded.keys,
                            recorded.threshold, keys, threshold)
            if s.staking.enabled != (recorded.staking is not None):
                log.warning("staking is %s in the settings but was %s when this chain was set "
                            "up: keeping the chain as it is",
                            "enabled" if s.staking.enabled else "disabled",
                            "deployed" if recorded.staking else "not deployed")
            log.info("attached to the contracts of %s", s.evm_contracts_path)
            return (AnchorRegistryClient(chain, recorded.registry),
                    StakingClient(chain, recorded.staking) if recorded.staking else None)
        registry = deploy_anchor_registry(chain, keys, threshold, deployer)
        staking = None
        if s.staking.enabled:
            staking = deploy_staking(chain, keys, threshold, deployer,
                                     withdrawal_delay_s=s.staking.withdrawal_delay_s)
            if s.staking.reward_pool_wei:
                staking.fund_rewards(deployer, s.staking.reward_pool_wei)
            for org in s.orgs:  # the orgs stake from their own anchor keys, and pay gas
                if s.staking.fund_orgs_wei:
                    chain.transfer(deployer, to_checksum_address(org.anchor_address),
                                   s.staking.fund_orgs_wei)
        _write_json(s.evm_contracts_path, DeployedContracts(
            genesis_hash=self.backend.genesis_hash, registry=registry.address,
            staking=staking.address if staking else None, deployer=deployer.address,
            keys=keys, threshold=threshold).model_dump())
        return registry, staking

    def stop(self) -> None:
        super().stop()  # the bridge, its agents and gateway
        if self.rpc is not None:
            self.rpc.stop()
        if self.backend is not None:
            self.backend.close()
        if self.network is not None:
            self.network.stop()


def create_status_app(host: BridgeHost) -> FastAPI:
    app = FastAPI(title="fedledger host",
                  description="Status of the host process: dev peer, embedded EVM, bridge.")
    install_error_handlers(app)

    def ready() -> bool | str:
        """The chain answers (what /health reads) and so does the consortium channel."""
        if host.bridge is None:
            return "starting"
        host.health()
        host.bridge.consortium.list_orgs()
        return True

    # getattr: the OpenAPI spec is built with no host at all (fedledger.openapi).
    install_observability(app, service=getattr(host, "service", "host"), ready=ready)

    @app.get("/health")
    async def health() -> HostHealth:
        return HostHealth.model_validate(await run_in_threadpool(host.health))

    @app.get("/info")
    async def info() -> HostInfo:
        """What host.json holds: endpoints, chain, registry, keys, channels."""
        return HostInfo.model_validate(host.info)

    @app.get("/anchors")
    async def anchors() -> list[AnchorPublic]:
        """The bridge outbox: every anchor with its status, transaction hash and root."""
        found = await run_in_threadpool(host.anchors)
        return [AnchorPublic.model_validate(a) for a in found]

    @app.get("/anchors/{round_id}")
    async def anchor(round_id: int) -> AnchorWithLeaves:
        """The anchor covering ``round_id``, with its leaves."""
        found = await run_in_threadpool(host.anchor, round_id)
        return AnchorWithLeaves.model_validate(anchor_json(found, leaves=True))

    @app.post("/proofs")
    async def proof(request: ProofRequest) -> ProofPackage:
        """The proof package of one consortium record leaf (``{"kind", "round_id",
        "record"}``), for ``fedledger verify``."""
        round_id = request.leaf.get("round_id")
        if not isinstance(round_id, int):
            raise ServiceError("the leaf has no round_id")
        found = await run_in_threadpool(host.anchor, round_id)
        assert host.chain is not None and host.registry is not None
        try:
            return consortium_proof(found, request.leaf, chain_id=host.chain.chain_id,
                                    contract=host.registry.address)
        except (KeyError, ValueError) as exc:
            raise ServiceError(str(exc), status=409, code="not_provable") from None

    return app


def run(settings: HostSettings) -> None:
    """Start everything, serve the status API in the foreground until SIGINT/SIGTERM,
    then stop everything (and exit normally)."""
    import signal

    check_bind(settings.host, settings.port, settings.tls)  # before anything starts
    port = settings.port or free_port(settings.host)
    host = Host(settings)
    serving = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        # Before uvicorn runs: abort the start-up (the finally below cleans up). After it
        # returned: uvicorn re-raises the signal it handled; it is already being acted on.
        if not serving.is_set():
            raise SystemExit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    try:
        host.start(status_url=url_of(settings.host, port, settings.tls))
        server = uvicorn.Server(server_config(create_status_app(host), settings.host, port,
                                              tls=settings.tls))
        serving.set()
        server.run()
    finally:
        serving.set()
        host.stop()
        log.info("host stopped")
