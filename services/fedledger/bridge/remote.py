"""An org's anchor agent reached over HTTP: the org node holds the anchor key and its
private channel; the bridge (in the host process) asks it, with requests signed by the
bridge's Fabric identity (:class:`fedledger.web.signing.SignedAuth`):

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
from typing import Any

import httpx
from eth_utils import to_checksum_address

from fedledger.bridge.errors import BridgeError
from fedledger.bridge.tree import AnchorBatch
from fedledger.evm.typed_data import anchor_typed_data, outcome_typed_data, recover_typed
from fedledger.fabric.identity import SigningIdentity
from fedledger.web.signing import SignedAuth

PRIVATE_STATE_PATH = "/anchoring/private-state"
APPROVE_PATH = "/anchoring/approve"
APPROVE_OUTCOME_PATH = "/anchoring/approve-outcome"


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body)[:500]


class RemoteAnchorAgent:
    """The bridge's view of one org node's anchoring endpoints."""

    def __init__(self, msp_id: str, address: str, url: str, identity: SigningIdentity, *,
                 timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.msp_id = msp_id
        self._address = to_checksum_address(address)
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, auth=SignedAuth(identity),
                                    timeout=timeout_s, transport=transport)

    @property
    def address(self) -> str:
        return self._address

    def close(self) -> None:
        self._client.close()

    def _request(self, step: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BridgeError(f"{self.msp_id}'s node at {self.url} is unreachable: "
                              f"{type(exc).__name__}: {exc}", step=step) from exc

    def private_state(self) -> dict[str, Any]:
        response = self._request("private_state", "GET", PRIVATE_STATE_PATH)
        if response.status_code != 200:
            raise BridgeError(f"{self.msp_id} did not publish its private state "
                              f"({response.status_code}): {_reason(response)}", step="private_state")
        try:
            leaf = response.json()
        except ValueError:
            leaf = None
        if not (isinstance(leaf, dict) and leaf.get("kind") == "private_state"
                and leaf.get("org") == self.msp_id and isinstance(leaf.get("root"), str)):
            raise BridgeError(f"{self.msp_id} answered a malformed private-state leaf: "
                              f"{str(leaf)[:200]}", step="private_state")
        return leaf

    def approve(self, batch: AnchorBatch, *, chain_id: int, registry: str) -> bytes:
        body = {"first_round": batch.first_round, "last_round": batch.last_round,
                "leaves": list(batch.tree.leaves), "chain_id": chain_id, "registry": registry}
        typed = anchor_typed_data(chain_id, registry, batch.first_round, batch.last_round,
                                  batch.root)
        return self._signature("approve", APPROVE_PATH, body, typed,
                               f"rounds {batch.first_round}..{batch.last_round}")

    def approve_outcome(self, round_id: int, orgs: Sequence[str], deltas: Sequence[int], *,
                        chain_id: int, staking: str) -> bytes:
        body = {"round_id": round_id, "orgs": list(orgs), "deltas": [str(d) for d in deltas],
                "chain_id": chain_id, "staking": staking}
        typed = outcome_typed_data(chain_id, staking, round_id, list(orgs), list(deltas))
        return self._signature("approve_outcome", APPROVE_OUTCOME_PATH, body, typed,
                               f"the outcome of round {round_id}")

    def _signature(self, step: str, path: str, body: dict[str, Any], typed: dict[str, Any],
                   what: str) -> bytes:
        """Ask the org node to sign ``what``; the signature must recover to its key."""
        response = self._request(step, "POST", path, json=body)
        if response.status_code == 409:
            raise BridgeError(f"{self.msp_id} refuses {what}: {_reason(response)}", step=step)
        if response.status_code != 200:
            raise BridgeError(f"{self.msp_id}'s node answered {response.status_code} to {step}: "
                              f"{_reason(response)}", step=step)
        try:
            text = response.json()["signature"]
            signature = bytes.fromhex(text.removeprefix("0x"))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BridgeError(f"{self.msp_id} answered no signature: {response.text[:200]}",
                              step=step) from None
        try:
            signer = recover_typed(typed, signature)
        except Exception:  # noqa: BLE001 - malformed signature bytes
            signer = None
        if signer is None or signer.lower() != self._address.lower():
            raise BridgeError(f"{self.msp_id}'s signature is not by its anchor key "
                              f"{self._address} (recovers to {signer})", step=step)
        return signature
