"""The org's two views of Fabric: its private channel (only its own; its identity is
not a member of any other) and the consortium channel. Every write is idempotent on
the chaincode side, so the node retries freely."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization

from fedledger.canonical import canonical_json
from fedledger.fabric.errors import FabricError
from fedledger.fabric.gateway import Contract, SubmittedTransaction
from fedledger.fabric.identity import SigningIdentity, load_signing_identity
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.web.errors import ServiceError, ledger_failure

Channel = Literal["consortium", "private"]


class LedgerUnavailable(ServiceError):
    status, code = 502, "ledger_error"


def ledger_error(action: str, exc: FabricError) -> ServiceError:
    """A refusal keeps its code (404, 409...); any other failure is LedgerUnavailable."""
    return ledger_failure(action, exc, unavailable=LedgerUnavailable)


class OrgLedger:
    def __init__(self, settings: OrgNodeSettings, identity: SigningIdentity | None = None) -> None:
        self.settings = settings
        self.identity = identity or load_signing_identity(settings.user_msp_dir, settings.msp_id)
        if settings.private_channel is None:
            raise ValueError("settings not validated: private_channel is unset")
        self.gateway = settings.gateway.connect(self.identity)
        self.private: Contract = self.gateway.network(settings.private_channel).contract(
            settings.chaincode, "private")
        self.consortium: Contract = self.gateway.network(settings.consortium_channel).contract(
            settings.chaincode, "consortium")
        self._ready = False
        self._lock = threading.Lock()

    def close(self) -> None:
        self.gateway.close()

    # --- start-up ------------------------------------------------------------------

    def ensure_ready(self, anchor_address: str | None = None) -> None:
        """``Init`` on the private channel (idempotent) and, if configured, the org's
        consortium registration (only when it is absent: never overwrites one)."""
        with self._lock:
            if self._ready:
                return
            try:
                self.private.submit("Init")
                if self.settings.register_org and anchor_address is not None:
                    self._register(anchor_address)
            except FabricError as exc:
                raise ledger_error("joining the ledger", exc) from None
            self._ready = True

    def _register(self, anchor_address: str) -> None:
        if any(o["msp_id"] == self.settings.msp_id for o in self.query_consortium("ListOrgs")):
            return
        pem = _public_pem(self.identity)
        self.consortium.submit("RegisterOrg", json.dumps({
            "msp_id": self.settings.msp_id, "name": self.settings.org,
            "anchor_address": anchor_address.lower(), "attestation_key_pem": pem}))

    # --- calls ---------------------------------------------------------------------

    def query_private(self, function: str, *args: str) -> Any:
        return json.loads(self.private.evaluate(function, *args))

    def query_consortium(self, function: str, *args: str) -> Any:
        return json.loads(self.consortium.evaluate(function, *args))

    def submit_private(self, function: str, record: dict[str, Any]) -> Any:
        return json.loads(self.private.submit(function, canonical_json(record)))

    def submit_consortium(self, function: str, record: dict[str, Any]) -> Any:
        return json.loads(self.consortium.submit(function, canonical_json(record)))

    def submit_private_tx(self, function: str, *args: dict[str, Any] | str) -> str:
        """Submit on the private channel; the committed transaction's id."""
        return self.private.submit_with_id(function, *map(_arg, args))[1]

    def submit_consortium_tx(self, function: str, *args: dict[str, Any] | str) -> str:
        """Submit on the consortium channel; the committed transaction's id."""
        return self.consortium.submit_with_id(function, *map(_arg, args))[1]

    def submit_together(self, calls: Sequence[tuple[Channel, str, dict[str, Any]]]
                        ) -> list[str]:
        """Submit ``(channel, function, record)`` calls, all handed to the orderer before
        any commit is awaited, so they commit in the same block (one per channel) instead
        of one block after another; their transaction ids, in order. Each call writes its
        own keys (no two may conflict). Raises the first failure after waiting for all."""
        pending = [self._contract(channel).submit_async(function, canonical_json(record))
                   for channel, function, record in calls]
        return [submitted.committed().tx_id for submitted in pending]

    def submit_private_async(self, function: str, record: dict[str, Any]
                             ) -> SubmittedTransaction:
        """Endorse and hand to the orderer on the private channel; the commit is the
        caller's to confirm (``.committed()``)."""
        return self.private.submit_async(function, canonical_json(record))

    def _contract(self, channel: Channel) -> Contract:
        return self.consortium if channel == "consortium" else self.private

    def sign_hex(self, record: dict[str, Any]) -> str:
        """The org's signature (DER, hex) over a record's canonical JSON."""
        return self.identity.sign(canonical_json(record)).hex()


def _arg(value: dict[str, Any] | str) -> bytes | str:
    return canonical_json(value) if isinstance(value, dict) else value


def _public_pem(identity: SigningIdentity) -> str:
    return identity.signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
