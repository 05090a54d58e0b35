"""The coordinator's side of the consortium channel: thin wrappers around the
``consortium`` contract (as the operator org's client), and the events after which the
round worker has something to do (``WAKE_EVENTS``, for ``fabric.waker.EventWaker``).

Every write returns the Fabric transaction id, so rounds can show where they were
recorded. The ledger is the source of truth for submissions and finality; the
coordinator never submits or attests for an org.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fedledger.canonical import canonical_json
from fedledger.fabric.errors import RecordNotFoundError
from fedledger.fabric.gateway import Contract, Gateway

from .settings import GatewaySettings, IdentitySettings

log = logging.getLogger(__name__)

#: Events after which the worker has something to look at.
WAKE_EVENTS = frozenset({"UpdateSubmitted", "RoundClosed", "AggregateAttested", "AggregateFinal",
                         "ModelVersionRegistered", "OrgRegistered"})


@dataclass(frozen=True)
class Written:
    """A committed write: the chaincode's result and the transaction id."""

    result: Any
    tx_id: str


class Ledger:
    """The consortium contract as the operator org sees it."""

    def __init__(self, gateway: Gateway, settings: GatewaySettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.network = gateway.network(settings.channel)
        self.contract: Contract = self.network.contract(settings.chaincode, settings.contract)
        self.msp_id = gateway.identity.msp_id

    @classmethod
    def connect(cls, gateway: GatewaySettings, identity: IdentitySettings) -> Ledger:
        return cls(gateway.connect(identity.load()), gateway)

    def close(self) -> None:
        self.gateway.close()

    # -- plumbing

    def _submit(self, name: str, *args: str) -> Written:
        result, tx_id = self.contract.submit_with_id(name, *args)
        return Written(_json(result), tx_id)

    def _evaluate(self, name: str, *args: str) -> Any:
        return _json(self.contract.evaluate(name, *args))

    # -- queries

    def list_orgs(self) -> list[str]:
        return sorted(o["msp_id"] for o in self._evaluate("ListOrgs"))

    def anchor_addresses(self) -> dict[str, str]:
        """MSP id -> the org's registered anchor (and staking) address."""
        return {o["msp_id"]: o["anchor_address"] for o in self._evaluate("ListOrgs")}

    def list_votes(self, round_id: int) -> list[dict[str, Any]]:
        return self._evaluate("ListVotes", str(round_id))

    def latest_anchor_root(self) -> str | None:
        """The Merkle root of the newest anchor receipt (public randomness), if any."""
        receipts = self._evaluate("ListAnchorReceipts")
        if not receipts:
            return None
        return max(receipts, key=lambda r: r["last_round"])["merkle_root"]

    def get_round(self, round_id: int) -> dict[str, Any] | None:
        try:
            return self._evaluate("GetRound", str(round_id))
        except RecordNotFoundError:
            return None

    def last_round_id(self) -> int:
        return max((r["round_id"] for r in self._evaluate("ListRounds")), default=0)

    def list_submissions(self, round_id: int) -> list[dict[str, Any]]:
        return self._evaluate("ListSubmissions", str(round_id))

    def list_attestations(self, round_id: int) -> list[dict[str, Any]]:
        return self._evaluate("ListAttestations", str(round_id))

    def get_model_version(self, version_id: str) -> dict[str, Any] | None:
        try:
            return self._evaluate("GetModelVersion", version_id)
        except RecordNotFoundError:
            return None

    # -- writes

    def open_round(self, opening: dict[str, Any]) -> Written:
        return self._submit("OpenRound", canonical_json(opening).decode())

    def close_round(self, round_id: int) -> Written:
        return self._submit("CloseRound", str(round_id))

    def finalize_round(self, round_id: int, digest: str, attesters: list[str]) -> Written:
        """Make the round final on ``digest``, attested by ``attesters`` (a majority)."""
        return self._submit("FinalizeRound", canonical_json({
            "round_id": round_id, "aggregate_digest": digest,
            "attesters": sorted(attesters)}).decode())

    def register_model_version(self, version: dict[str, Any]) -> Written:
        return self._submit("RegisterModelVersion", canonical_json(version).decode())


def _json(payload: bytes) -> Any:
    return json.loads(payload) if payload else None
