"""The host's client (its status API, :mod:`fedledger.host.app`): health, host.json,
the bridge outbox's anchors and proof packages of consortium records.

``HostClient(status_url)``; the API needs no credentials. Answers are the models of
:mod:`fedledger.protocol.host_api` and :class:`fedledger.audit.proofs.ProofPackage`;
failures the errors of :mod:`fedledger.clients.errors`.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from fedledger.audit.proofs import ProofPackage
from fedledger.clients.base import ServiceClient
from fedledger.protocol.host_api import AnchorPublic, AnchorWithLeaves, HostHealth, HostInfo

_ANCHORS = TypeAdapter(list[AnchorPublic])


class HostClient(ServiceClient):
    service = "host"

    def health(self) -> HostHealth:
        return self._model(HostHealth, "GET", "/health")

    def info(self) -> HostInfo:
        return self._model(HostInfo, "GET", "/info")

    def anchors(self) -> list[AnchorPublic]:
        """Every anchor of the bridge outbox."""
        return self._adapted(_ANCHORS, "GET", "/anchors")

    def anchor(self, round_id: int) -> AnchorWithLeaves:
        """The anchor covering ``round_id`` with its leaves (NotFound: none yet)."""
        return self._model(AnchorWithLeaves, "GET", f"/anchors/{round_id}")

    def anchor_for(self, round_id: int) -> AnchorWithLeaves | None:
        """The anchor covering ``round_id``, None while none does."""
        return self._optional_model(AnchorWithLeaves, "GET", f"/anchors/{round_id}")

    def proof(self, leaf: dict[str, Any], *, timeout: float | None = 60.0) -> ProofPackage:
        """The proof package of one consortium record leaf of an anchor (Conflict while
        its anchor is not on the chain yet)."""
        return self._model(ProofPackage, "POST", "/proofs", json={"leaf": leaf},
                           timeout=timeout)


__all__ = ["HostClient"]
