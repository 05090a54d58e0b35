"""A whole dev network in one process: crypto material, channels, chaincode, dev peer.

``DevNetwork`` writes (once) an N-org network's crypto material in cryptogen's layout
and a ``network.json`` naming its channels — a ``consortium`` channel of all orgs
endorsed by MAJORITY, and one ``<org>-private`` channel per org endorsed by that org
alone — and their orderer settings, then starts the chaincode server
(chaincode-as-a-service), the dev peer and its Gateway endpoint on loopback.

Blocks are cut by :class:`~fedledger.devnet.orderer.OrdererSettings`: the
deployment's ``configtx.yaml`` values (250 ms, 100 messages, 512 KB) unless
``network.json`` says otherwise or the caller passes ``orderer=`` (an ``OrdererSettings``
such as ``OrdererSettings.fast()`` for unit tests, or the path of a ``configtx.yaml``).
Each channel's block 0 is its config block, which records them.

``EmbeddedNetwork`` runs it on a background event loop so synchronous code (tests, CLI,
services) can use the gateway client against it.

The crypto material is what ``cryptogen generate`` writes for a cryptogen config
(``crypto_config``; default: :func:`~fedledger.devnet.ca.crypto_config.default_crypto_config` of the
orgs, which for Org1..Org3 is ``deploy/fabric/crypto-config.yaml``), so a dev network and
the docker-compose deployment can share one folder. ``org_gateways=True`` also serves one
Gateway per org, each with that org's peer TLS certificate and acting as that org's peer,
as a network with one peer per org offers them (``Endpoints.org_gateways``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from fedledger.devnet.ca.crypto_config import CryptoConfig, default_crypto_config
from fedledger.devnet.ca.layout import NetworkCrypto, write_crypto_config
from fedledger.devnet.chaincode import KEEPALIVE_INTERVAL_S
from fedledger.devnet.channel import ChannelDefinition
from fedledger.devnet.orderer import OrdererSettings
from fedledger.devnet.peer import DevPeer, PeerSettings
from fedledger.devnet.service import start_gateway_server
from fedledger.fabric.errors import FabricError
from fedledger.fabric.identity import SigningIdentity, load_signing_identity
from fedledger.fabric.msp import MSP, MSPManager

if TYPE_CHECKING:  # started only when no external chaincode is given (see start)
    from fedledger_chaincode.shim.server import ChaincodeServer

CHAINCODE_NAME = "fedledger"
CONSORTIUM_CHANNEL = "consortium"


def private_channel(org_name: str) -> str:
    return f"{org_name.lower()}-private"


class NetworkLayout(BaseModel):
    """What ``network.json`` holds: enough to rebuild the network after a restart."""

    model_config = ConfigDict(extra="forbid")

    orgs: list[str] = Field(min_length=1)
    domain: str = "example.com"
    chaincode: str = CHAINCODE_NAME
    channels: list[ChannelDefinition]
    # Block cutting of every channel (BatchTimeout, BatchSize); absent in files written
    # before it existed, which then get the deployment's values.
    orderer: OrdererSettings = Field(default_factory=OrdererSettings.deployment)

    @classmethod
    def default(cls, orgs: Sequence[str], domain: str = "example.com",
                orderer: OrdererSettings | None = None) -> NetworkLayout:
        msp = [f"{org}MSP" for org in orgs]
        channels = [ChannelDefinition(name=CONSORTIUM_CHANNEL, members=tuple(msp),
                                      endorsement_policy="MAJORITY Endorsement")]
        channels += [ChannelDefinition(name=private_channel(org), members=(m,),
                                       endorsement_policy=f"OR('{m}.peer')")
                     for org, m in zip(orgs, msp, strict=True)]
        return cls(orgs=list(orgs), domain=domain, channels=channels,
                   orderer=orderer or OrdererSettings.deployment())


@dataclass(frozen=True)
class Endpoints:
    """Where a running dev network listens, and what a client needs to reach it."""

    gateway: str          # host:port of the Gateway gRPC service (TLS)
    tls_ca_cert: Path     # PEM of the TLS CA that signed the gateway's certificate
    server_name: str      # host name in that certificate
    chaincode: str        # host:port of the chaincode server
    # org name -> host:port of a Gateway acting as that org's peer (org_gateways=True)
    org_gateways: dict[str, str] = field(default_factory=dict)


class DevNetwork:
    """Crypto + channels + chaincode server + dev peer, on the running event loop.

    ``orderer``: the channels' block cutting, an :class:`OrdererSettings` or a
    ``configtx.yaml`` path; None takes ``network.json``'s (the deployment's for a new
    network). ``batch_timeout`` (seconds) and ``max_batch`` replace just that field.
    ``self.orderer`` is what is in force.
    """

    def __init__(self, root: Path, orgs: Sequence[str] = ("Org1", "Org2", "Org3"), *,
                 host: str = "127.0.0.1", gateway_port: int = 0, chaincode_port: int = 0,
                 chaincode_address: str | None = None,
                 orderer: OrdererSettings | Path | str | None = None,
                 batch_timeout: float | None = None, max_batch: int | None = None,
                 tls: bool = True,
                 crypto_config: CryptoConfig | Path | str | None = None,
                 org_gateways: bool = False,
                 chaincode_keepalive: float = KEEPALIVE_INTERVAL_S) -> None:
        self.root = Path(root)
        if crypto_config is not None and not isinstance(crypto_config, CryptoConfig):
            crypto_config = CryptoConfig.from_file(crypto_config)
        if crypto_config is not None:
            named = [o.Name for o in crypto_config.PeerOrgs]
            if named != list(orgs):
                raise FabricError(f"the crypto config's peer orgs {named} are not {list(orgs)}",
                                  step="devnet")
        self.crypto_config = crypto_config
        self.org_gateways = org_gateways
        self.chaincode_keepalive = chaincode_keepalive   # s between the peer's pings
        self._org_servers: list = []
        self.host = host
        self.gateway_port = gateway_port
        self.chaincode_port = chaincode_port
        self.external_chaincode = chaincode_address
        self.tls = tls
        if orderer is not None and not isinstance(orderer, OrdererSettings):
            orderer = OrdererSettings.from_configtx(orderer)
        self.layout = self._layout(list(orgs), orderer)
        # Given settings win over network.json's for this run (the file is not rewritten);
        # batch_timeout / max_batch are shorthands replacing one field of them.
        settings = orderer or self.layout.orderer
        if batch_timeout is not None:
            settings = dataclasses.replace(settings, batch_timeout_s=batch_timeout)
        if max_batch is not None:
            settings = dataclasses.replace(settings, max_message_count=max_batch)
        self.orderer: OrdererSettings = settings
        self.crypto: NetworkCrypto = self._crypto()
        self.peer: DevPeer | None = None
        self._server = None
        self._chaincode_server: ChaincodeServer | None = None
        self.endpoints: Endpoints | None = None

    def _layout(self, orgs: list[str], orderer: OrdererSettings | None) -> NetworkLayout:
        path = self.root / "network.json"
        if path.exists():
            layout = NetworkLayout.model_validate_json(path.read_text())
            if layout.orgs != orgs:
                raise FabricError(f"{path} describes orgs {layout.orgs}, not {orgs}",
                                  step="devnet")
            return layout
        self.root.mkdir(parents=True, exist_ok=True)
        layout = NetworkLayout.default(orgs, orderer=orderer)
        path.write_text(layout.model_dump_json(indent=2) + "\n")
        return layout

    def _crypto(self) -> NetworkCrypto:
        # Written once, then found: existing orgs keep their material (cryptogen extend).
        config = self.crypto_config or default_crypto_config(self.layout.orgs, self.layout.domain)
        return write_crypto_config(config, self.root / "crypto")

    def msp_manager(self) -> MSPManager:
        return MSPManager([MSP.from_dir(org.msp_dir, org.msp_id) for org in self.crypto.all_orgs()])

    def identity(self, org: str, user: str = "User1") -> SigningIdentity:
        """A client identity of ``org`` ("Org1" or "Org1MSP"): ``User1`` or ``Admin``."""
        crypto = self.crypto.org(org)
        who = crypto.admin if user == "Admin" else next(u for u in crypto.users if u.name.startswith(user))
        return load_signing_identity(who.msp_dir, crypto.msp_id)

    async def start(self) -> Endpoints:
        chaincode_address = self.external_chaincode
        if chaincode_address is None:
            from fedledger_chaincode.app import build_chaincode
            from fedledger_chaincode.shim.server import ChaincodeServer

            server = ChaincodeServer(
                build_chaincode(), f"{self.host}:{self.chaincode_port}", self.layout.chaincode)
            self._chaincode_server = server
            await server.start()
            chaincode_address = f"{self.host}:{server.port}"
        peer_identities = {
            org.msp_id: load_signing_identity(org.peer.msp_dir, org.msp_id)
            for org in (self.crypto.org(name) for name in self.layout.orgs)
        }
        first = self.crypto.org(self.layout.orgs[0])
        orderer_org = self.crypto.orderer_org
        assert orderer_org is not None  # the dev CA always writes one
        settings = PeerSettings(
            ledger_dir=self.root / "ledgers", channels=self.layout.channels,
            peer_identities=peer_identities, chaincode_addresses={self.layout.chaincode: chaincode_address},
            chaincode_keepalive=self.chaincode_keepalive,
            address=f"{first.peer.host}:{self.gateway_port}", orderer=self.orderer,
            orderer_msp_id=orderer_org.msp_id, orderer_address=f"{orderer_org.orderer.host}:7050")
        self.peer = DevPeer(settings, self.msp_manager())
        await self.peer.start()
        self._server, port = await start_gateway_server(
            self.peer, address=f"{self.host}:{self.gateway_port}", msp_id=first.msp_id,
            tls_cert=first.peer.tls_cert.read_bytes() if self.tls else None,
            tls_key=first.peer.tls_key.read_bytes() if self.tls else None)
        org_gateways = {self.layout.orgs[0]: f"{self.host}:{port}"} if self.org_gateways else {}
        for name in self.layout.orgs[1:] if self.org_gateways else ():
            org = self.crypto.org(name)
            server, org_port = await start_gateway_server(
                self.peer, address=f"{self.host}:0", msp_id=org.msp_id,
                tls_cert=org.peer.tls_cert.read_bytes() if self.tls else None,
                tls_key=org.peer.tls_key.read_bytes() if self.tls else None)
            self._org_servers.append(server)
            org_gateways[name] = f"{self.host}:{org_port}"
        self.endpoints = Endpoints(gateway=f"{self.host}:{port}", tls_ca_cert=first.tls_ca_cert,
                                   server_name=first.peer.host, chaincode=chaincode_address,
                                   org_gateways=org_gateways)
        # For tools that attach to a running network (benchmarks, services started apart).
        (self.root / "endpoints.json").write_text(json.dumps(self.describe(), indent=2) + "\n")
        return self.endpoints

    async def stop(self) -> None:
        for server in self._org_servers:
            await server.stop(grace=0.5)
        self._org_servers = []
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None
        if self.peer is not None:
            await self.peer.stop()
            self.peer = None
        if self._chaincode_server is not None:
            await self._chaincode_server.stop()
            self._chaincode_server = None

    def describe(self) -> dict[str, object]:
        """Endpoints and MSP paths, as ``fedledger devnet up`` prints them."""
        assert self.endpoints is not None
        return {
            "gateway": self.endpoints.gateway,
            "server_name": self.endpoints.server_name,
            "tls_ca_cert": str(self.endpoints.tls_ca_cert),
            "chaincode": self.endpoints.chaincode,
            **({"org_gateways": self.endpoints.org_gateways} if self.endpoints.org_gateways else {}),
            "channels": {c.name: list(c.members) for c in self.layout.channels},
            "orderer": dataclasses.asdict(self.orderer),
            "orgs": {
                org: {"msp_id": self.crypto.org(org).msp_id,
                      "admin_msp": str(self.crypto.org(org).admin.msp_dir),
                      "user_msp": str(self.crypto.org(org).users[0].msp_dir),
                      "private_channel": private_channel(org)}
                for org in self.layout.orgs
            },
        }


class EmbeddedNetwork:
    """A :class:`DevNetwork` on its own event-loop thread, for synchronous callers.

        with EmbeddedNetwork(tmp_path, ["Org1", "Org2"]) as net:
            gateway = net.connect("Org1")
    """

    def __init__(self, root: Path, orgs: Sequence[str] = ("Org1", "Org2", "Org3"), **kwargs) -> None:  # noqa: ANN003
        self.network = DevNetwork(root, orgs, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="devnet", daemon=True)

    def start(self) -> Endpoints:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.network.start(), self._loop).result(60)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.network.stop(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> EmbeddedNetwork:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoints(self) -> Endpoints:
        assert self.network.endpoints is not None, "network not started"
        return self.network.endpoints

    def connect(self, org: str, user: str = "User1"):  # noqa: ANN201 - Gateway
        """A gateway client for ``org``'s ``user``, over TLS to the dev peer."""
        from fedledger.fabric.gateway import Gateway

        return Gateway.connect(self.endpoints.gateway, self.network.identity(org, user),
                               tls_root_cert=self.endpoints.tls_ca_cert.read_bytes(),
                               server_name=self.endpoints.server_name)
