"""The host process: everything of ``fedledger up`` that is not an org or the coordinator.

:class:`Host` starts, in this order:

1. the dev Fabric network (``DevNetwork`` under ``root/fabric``: crypto in cryptogen's
   layout, the consortium + private channels, chaincode server, dev peer and its TLS
   Gateway);
2. the embedded EVM (py-evm) and its JSON-RPC server (:mod:`fedledger.evm.rpc_server`);
3. the AnchorRegistry, deployed by the first eth-tester dev account with the orgs'
   anchor addresses as key set and a majority threshold (unless configured);
4. the bridge: it follows the consortium channel as the operator org's client, and asks
   each org node (:class:`~fedledger.bridge.remote.RemoteAnchorAgent`) for its
   private-state leaf and its signature; its outbox is SQLite under the root. The bridge
   runs in a thread; failures (an org node down, a refusal) are logged and retried.

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
(host.json). The embedded chain lives in memory: a restarted host starts a new chain
(same chain id; the same deployer and nonce give the registry the same address) and a
new bridge outbox, and anchors every final round again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import uvicorn
from eth_utils import to_checksum_address
from fastapi import FastAPI
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
from fedledger.evm.contracts import deploy_anchor_registry, deploy_staking
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
from fedledger.web.server import ThreadedServer, free_port

log = logging.getLogger(__name__)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _reset_sqlite(url: str) -> None:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)


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

        self.backend = EmbeddedBackend()
        self.rpc = ThreadedServer(create_rpc_app(self.backend), host=s.host, port=s.rpc_port).start()
        self.chain = Chain(self.backend, EvmConfig(poll_interval_s=0.05, receipt_timeout_s=60))
        deployer = self.chain.dev_accounts()[0]
        keys = sorted_keys(o.anchor_address for o in s.orgs)
        threshold = s.signature_threshold
        self.registry = deploy_anchor_registry(self.chain, keys, threshold, deployer)
        log.info("EVM JSON-RPC on %s, AnchorRegistry %s (%d of %d)", self.rpc.url,
                 self.registry.address, threshold, len(keys))
        self.staking = None
        if s.staking.enabled:
            self.staking = deploy_staking(self.chain, keys, threshold, deployer,
                                          withdrawal_delay_s=s.staking.withdrawal_delay_s)
            if s.staking.reward_pool_wei:
                self.staking.fund_rewards(deployer, s.staking.reward_pool_wei)
            for org in s.orgs:  # the orgs stake from their own anchor keys, and pay gas
                if s.staking.fund_orgs_wei:
                    self.chain.transfer(deployer, to_checksum_address(org.anchor_address),
                                        s.staking.fund_orgs_wei)
            log.info("Staking %s, reward pool %d wei", self.staking.address,
                     s.staking.reward_pool_wei)

        operator = s.operator_org
        _reset_sqlite(s.outbox_url)  # a new embedded chain: nothing of an old outbox holds
        gateway = self.network.connect(operator.name)
        consortium = ConsortiumLedger(gateway.network(s.bridge.channel).contract(
            s.bridge.chaincode, "consortium"))
        identity = self.network.network.identity(operator.name)
        agents = [RemoteAnchorAgent(o.msp_id, o.anchor_address, o.node_url, identity,
                                    timeout_s=s.rpc_timeout_s)
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

    def stop(self) -> None:
        super().stop()  # the bridge, its agents and gateway
        if self.rpc is not None:
            self.rpc.stop()
        if self.network is not None:
            self.network.stop()


def create_status_app(host: BridgeHost) -> FastAPI:
    app = FastAPI(title="fedledger host",
                  description="Status of the host process: dev peer, embedded EVM, bridge.")
    install_error_handlers(app)

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
        host.start(status_url=f"http://{settings.host}:{port}")
        server = uvicorn.Server(uvicorn.Config(create_status_app(host), host=settings.host,
                                               port=port, log_level="warning", access_log=False))
        serving.set()
        server.run()
    finally:
        serving.set()
        host.stop()
        log.info("host stopped")
