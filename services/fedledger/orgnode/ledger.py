"""The org's two views of Fabric: its private channel (only its own; its identity is
not a member of any other) and the consortium channel. Every write is idempotent on
the chaincode side, so the node retries freely."""

from __future__ import annotations

import threading
from typing import Any

from cryptography.hazmat.primitives import serialization

from fedledger.canonical import canonical_json
from fedledger.fabric.errors import FabricError
from fedledger.fabric.identity import SigningIdentity, load_signing_identity
from fedledger.ledgers import ConsortiumLedger, PrivateLedger
from fedledger.orgnode.settings import OrgNodeSettings
from fedledger.protocol.records import OrgRecord
from fedledger.web.errors import ServiceError, ledger_failure


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
        #: The org's own private channel and the consortium channel, typed.
        self.private = PrivateLedger(self.gateway.network(settings.private_channel).contract(
            settings.chaincode, "private"))
        self.consortium = ConsortiumLedger(self.gateway.network(
            settings.consortium_channel).contract(settings.chaincode, "consortium"))
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
                self.private.init().submit()
                if self.settings.register_org and anchor_address is not None:
                    self._register(anchor_address)
            except FabricError as exc:
                raise ledger_error("joining the ledger", exc) from None
            self._ready = True

    def _register(self, anchor_address: str) -> None:
        if any(o.msp_id == self.settings.msp_id for o in self.consortium.list_orgs()):
            return
        self.consortium.register_org(OrgRecord(
            msp_id=self.settings.msp_id, name=self.settings.org,
            anchor_address=anchor_address.lower(),
            attestation_key_pem=_public_pem(self.identity))).submit()

    # --- signing -------------------------------------------------------------------

    def sign_hex(self, record: dict[str, Any]) -> str:
        """The org's signature (DER, hex) over a record's canonical JSON."""
        return self.identity.sign(canonical_json(record)).hex()


def _public_pem(identity: SigningIdentity) -> str:
    return identity.signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
