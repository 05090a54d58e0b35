"""The coordinator's side of the consortium channel: the typed consortium contract
(:class:`~fedledger.ledgers.ConsortiumLedger`) as the operator org's client, a few reads
only the coordinator makes, and the events after which the round worker has something
to do (``WAKE_EVENTS``, for ``fabric.waker.EventWaker``).

Every write is a :class:`~fedledger.ledgers.Call` whose ``submit()`` gives the Fabric
transaction id, so rounds can show where they were recorded. The ledger is the source of
truth for submissions and finality; the coordinator never submits or attests for an org.
"""

from __future__ import annotations

from fedledger.fabric.gateway import Gateway, Network
from fedledger.ledgers import ConsortiumLedger

from .settings import GatewaySettings, IdentitySettings

#: Events after which the worker has something to look at.
WAKE_EVENTS = frozenset({"UpdateSubmitted", "RoundClosed", "AggregateAttested", "AggregateFinal",
                         "ModelVersionRegistered", "OrgRegistered"})


class OperatorLedger(ConsortiumLedger):
    """The consortium contract as the operator org sees it, over its own gateway."""

    def __init__(self, gateway: Gateway, settings: GatewaySettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.network: Network = gateway.network(settings.channel)
        self.msp_id = gateway.identity.msp_id
        super().__init__(self.network.contract(settings.chaincode, settings.contract))

    @classmethod
    def connect(cls, gateway: GatewaySettings, identity: IdentitySettings) -> OperatorLedger:
        return cls(gateway.connect(identity.load()), gateway)

    def close(self) -> None:
        self.gateway.close()

    # -- reads only the coordinator makes

    def org_ids(self) -> list[str]:
        """The registered orgs' MSP ids, sorted."""
        return sorted(o.msp_id for o in self.list_orgs())

    def anchor_addresses(self) -> dict[str, str]:
        """MSP id -> the org's registered anchor (and staking) address."""
        return {o.msp_id: o.anchor_address for o in self.list_orgs()}

    def latest_anchor_root(self) -> str | None:
        """The Merkle root of the newest anchor receipt (public randomness), if any."""
        receipts = self.list_anchor_receipts()
        if not receipts:
            return None
        return max(receipts, key=lambda r: r.last_round).merkle_root

    def last_round_id(self) -> int:
        return max((r.round_id for r in self.list_rounds()), default=0)
