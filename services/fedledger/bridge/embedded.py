"""Anchoring wired up on one machine: the embedded Fabric network, an EVM chain (embedded
or JSON-RPC), an AnchorRegistry whose key set is the orgs' anchor keys, one agent per
org and the bridge. Tests, benchmarks and ``fedledger up`` build it the same way."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedledger.bridge.agents import OrgAnchorAgent
from fedledger.bridge.outbox import Outbox
from fedledger.bridge.service import Bridge, BridgeSettings
from fedledger.devnet.network import CHAINCODE_NAME, CONSORTIUM_CHANNEL, EmbeddedNetwork, private_channel
from fedledger.evm.chain import Chain
from fedledger.evm.contracts import AnchorRegistryClient, deploy_anchor_registry
from fedledger.evm.typed_data import sorted_keys
from fedledger.fabric.gateway import Gateway
from fedledger.ledgers import ConsortiumLedger, PrivateLedger


@dataclass
class Anchoring:
    bridge: Bridge
    registry: AnchorRegistryClient
    agents: dict[str, OrgAnchorAgent]           # by MSP id
    org_accounts: dict[str, LocalAccount]       # by MSP id
    gateways: dict[str, Gateway] = field(default_factory=dict)

    def close(self) -> None:
        self.bridge.stop()
        for gateway in self.gateways.values():
            gateway.close()


def majority(n: int) -> int:
    return n // 2 + 1


def build_anchoring(network: EmbeddedNetwork, chain: Chain, *, db_url: str,
                    settings: BridgeSettings | None = None, operator: str | None = None,
                    org_accounts: dict[str, LocalAccount] | None = None,
                    registry_address: str | None = None,
                    deployer: LocalAccount | None = None) -> Anchoring:
    """Connect every org of ``network``; deploy a registry (unless ``registry_address``)
    with the orgs' anchor keys and a majority threshold; build agents and the bridge,
    which acts on Fabric as ``operator``'s client (default: the first org)."""
    orgs = network.network.layout.orgs
    msp_ids = [network.network.crypto.org(org).msp_id for org in orgs]
    org_accounts = org_accounts or {msp: Account.create() for msp in msp_ids}
    keys = sorted_keys([org_accounts[msp].address for msp in msp_ids])
    threshold = majority(len(keys))
    deployer = deployer or chain.dev_accounts()[0]
    if registry_address is None:
        registry = deploy_anchor_registry(chain, keys, threshold, deployer)
    else:
        registry = AnchorRegistryClient(chain, registry_address)
    gateways = {msp: network.connect(org) for org, msp in zip(orgs, msp_ids, strict=True)}

    def consortium_of(msp: str) -> ConsortiumLedger:
        return ConsortiumLedger(gateways[msp].network(CONSORTIUM_CHANNEL).contract(
            CHAINCODE_NAME, "consortium"))

    agents = {
        msp: OrgAnchorAgent(
            msp, private_channel=private_channel(org),
            private=PrivateLedger(gateways[msp].network(private_channel(org)).contract(
                CHAINCODE_NAME, "private")),
            consortium=consortium_of(msp), account=org_accounts[msp])
        for org, msp in zip(orgs, msp_ids, strict=True)
    }
    consortium = consortium_of(operator or msp_ids[0])
    bridge = Bridge(settings or BridgeSettings(), consortium=consortium, chain=chain,
                    registry=registry, submitter=deployer, agents=list(agents.values()),
                    keys=keys, threshold=threshold, outbox=Outbox(db_url))
    return Anchoring(bridge, registry, agents, org_accounts, gateways)
