"""The coordinator's side of the consortium channel: thin wrappers around the
``consortium`` contract (as the operator org's client) and a chaincode-event follower
that wakes the round worker when something relevant committed.

Every write returns the Fabric transaction id, so rounds can show where they were
recorded. The ledger is the source of truth for submissions and finality; the
coordinator never submits or attests for an org.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from fedledger.canonical import canonical_json
from fedledger.fabric.errors import EvaluateError, FabricError
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
        self.msp_id = gateway.identity.identity.msp_id

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
        except EvaluateError as exc:
            if "not found" in exc.message:
                return None
            raise

    def last_round_id(self) -> int:
        return max((r["round_id"] for r in self._evaluate("ListRounds")), default=0)

    def list_submissions(self, round_id: int) -> list[dict[str, Any]]:
        return self._evaluate("ListSubmissions", str(round_id))

    def list_attestations(self, round_id: int) -> list[dict[str, Any]]:
        return self._evaluate("ListAttestations", str(round_id))

    def get_model_version(self, version_id: str) -> dict[str, Any] | None:
        try:
            return self._evaluate("GetModelVersion", version_id)
        except EvaluateError as exc:
            if "not found" in exc.message:
                return None
            raise

    # -- writes

    def open_round(self, opening: dict[str, Any]) -> Written:
        return self._submit("OpenRound", canonical_json(opening).decode())

    def close_round(self, round_id: int) -> Written:
        return self._submit("CloseRound", str(round_id))

    def register_model_version(self, version: dict[str, Any]) -> Written:
        return self._submit("RegisterModelVersion", canonical_json(version).decode())


def _json(payload: bytes) -> Any:
    return json.loads(payload) if payload else None


class EventWaker:
    """Follows the chaincode's events on a thread and sets ``wake`` on relevant ones.

    Only a hint: the worker re-reads the ledger itself on every tick, so a missed event
    (reconnect, restart) costs at most one poll interval.
    """

    def __init__(self, ledger: Ledger, wake: threading.Event, *, retry_s: float = 1.0) -> None:
        self.ledger = ledger
        self.wake = wake
        self.retry_s = retry_s
        self._stop = threading.Event()
        self._stream = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="coordinator-events", daemon=True)

    def start(self) -> EventWaker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                stream = self.ledger.network.chaincode_events(self.ledger.settings.chaincode)
                with self._lock:
                    if self._stop.is_set():
                        stream.close()
                        return
                    self._stream = stream
                for event in stream:
                    if event.event_name in WAKE_EVENTS:
                        self.wake.set()
                    if self._stop.is_set():
                        return
            except FabricError as exc:
                log.info("chaincode event stream ended: %s", exc)
            except Exception:  # noqa: BLE001 - a hint thread must not die silently
                log.exception("chaincode event follower failed")
            self._stop.wait(self.retry_s)
