"""An org's anchor agent reached over HTTP: the org node holds the anchor key and its
private channel; the bridge (in the host process) asks it through
:class:`fedledger.clients.orgnode.OrgNodeClient`, with requests signed by the bridge's
Fabric identity (:class:`fedledger.web.signing.SignedAuth`), over HTTPS where the node
serves it (``verify``: the org's TLS CA certificate):

- ``GET {url}/anchoring/private-state`` -> the org's ``private_state`` leaf;
- ``POST {url}/anchoring/approve`` ``{"first_round", "last_round", "leaves", "chain_id",
  "registry"}`` -> ``{"signature": "0x..."}`` after the org's own checks
  (:meth:`fedledger.bridge.agents.OrgAnchorAgent.approve`), ``409`` with its reason
  when it refuses.

:class:`RemoteAnchorAgent` has the interface the :class:`~fedledger.bridge.service.Bridge`
uses of :class:`~fedledger.bridge.agents.OrgAnchorAgent` (``msp_id``, ``address``,
``private_state()``, ``approve()``). Every failure is a :class:`BridgeError` (step
``private_state`` or ``approve``), so an org node that is down or refuses only costs its
signature; the bridge retries later. A returned signature is checked to recover to the
org's registered anchor address before the bridge counts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from eth_utils import to_checksum_address

from fedledger.bridge.errors import BridgeError
from fedledger.bridge.tree import AnchorBatch
from fedledger.clients.errors import ClientError, Conflict, UnexpectedResponse, UntrustedServer
from fedledger.clients.orgnode import OrgNodeClient
from fedledger.evm.typed_data import anchor_typed_data, outcome_typed_data, recover_typed
from fedledger.fabric.identity import SigningIdentity
from fedledger.protocol.orgnode_api import AnchorApproval

PRIVATE_STATE_PATH = "/anchoring/private-state"
APPROVE_PATH = "/anchoring/approve"
APPROVE_OUTCOME_PATH = "/anchoring/approve-outcome"


class RemoteAnchorAgent:
    """The bridge's view of one org node's anchoring endpoints."""

    def __init__(self, msp_id: str, address: str, url: str, identity: SigningIdentity, *,
                 timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None,
                 verify: str | Path | bool = True) -> None:
        self.msp_id = msp_id
        self._address = to_checksum_address(address)
        self.url = url.rstrip("/")
        self._client = OrgNodeClient(self.url, identity=identity, timeout=timeout_s,
                                     transport=transport, verify=verify)

    @property
    def address(self) -> str:
        return self._address

    def close(self) -> None:
        self._client.close()

    def _failure(self, step: str, exc: ClientError, refused: str) -> BridgeError:
        """The BridgeError of a failed call: unreachable, refused (409), or another status."""
        if isinstance(exc, UntrustedServer):
            return BridgeError(f"{self.msp_id}'s node at {self.url} is not trusted: its TLS "
                               f"certificate does not verify: {exc.reason}", step=step)
        if exc.status is None:
            return BridgeError(f"{self.msp_id}'s node at {self.url} is unreachable: "
                               f"{type(exc).__name__}: {exc.reason}", step=step)
        if isinstance(exc, Conflict):
            return BridgeError(f"{self.msp_id} refuses {refused}: {exc.reason}", step=step)
        if isinstance(exc, UnexpectedResponse):
            return BridgeError(f"{self.msp_id} answered a malformed {refused}: {exc}",
                               step=step)
        return BridgeError(f"{self.msp_id}'s node answered {exc.status} to {step}: "
                           f"{exc.reason}", step=step)

    def private_state(self) -> dict[str, Any]:
        try:
            leaf = self._client.anchoring_private_state()
        except UnexpectedResponse as exc:
            raise BridgeError(f"{self.msp_id} answered a malformed private-state leaf: {exc}",
                              step="private_state") from None
        except ClientError as exc:
            if exc.status is not None and not isinstance(exc, Conflict):
                raise BridgeError(f"{self.msp_id} did not publish its private state "
                                  f"({exc.status}): {exc.reason}", step="private_state") from None
            raise self._failure("private_state", exc, "its private state") from None
        if leaf.org != self.msp_id:
            raise BridgeError(f"{self.msp_id} answered the private-state leaf of {leaf.org}",
                              step="private_state")
        return leaf.model_dump(mode="json")

    def approve(self, batch: AnchorBatch, *, chain_id: int, registry: str) -> bytes:
        typed = anchor_typed_data(chain_id, registry, batch.first_round, batch.last_round,
                                  batch.root)
        what = f"rounds {batch.first_round}..{batch.last_round}"
        try:
            approval = self._client.approve_anchor(batch.first_round, batch.last_round,
                                                   list(batch.tree.leaves), chain_id=chain_id,
                                                   registry=registry)
        except ClientError as exc:
            raise self._failure("approve", exc, what) from None
        return self._checked("approve", approval, typed)

    def approve_outcome(self, round_id: int, orgs: Sequence[str], deltas: Sequence[int], *,
                        chain_id: int, staking: str) -> bytes:
        typed = outcome_typed_data(chain_id, staking, round_id, list(orgs), list(deltas))
        try:
            approval = self._client.approve_outcome(round_id, list(orgs), list(deltas),
                                                    chain_id=chain_id, staking=staking)
        except ClientError as exc:
            raise self._failure("approve_outcome", exc,
                                f"the outcome of round {round_id}") from None
        return self._checked("approve_outcome", approval, typed)

    def _checked(self, step: str, approval: AnchorApproval, typed: dict[str, Any]) -> bytes:
        """The signature's bytes; it must recover to the org's registered anchor key (the
        address the node claims counts for nothing)."""
        try:
            signature = bytes.fromhex(approval.signature.removeprefix("0x"))
        except ValueError:
            raise BridgeError(f"{self.msp_id} answered no signature: {approval.signature[:200]}",
                              step=step) from None
        try:
            signer = recover_typed(typed, signature)
        except Exception:  # noqa: BLE001 - malformed signature bytes
            signer = None
        if signer is None or signer.lower() != self._address.lower():
            raise BridgeError(f"{self.msp_id}'s signature is not by its anchor key "
                              f"{self._address} (recovers to {signer})", step=step)
        return signature
