"""The coordinator's client (docs/services.md "Coordinator API").

Two kinds of caller, one client:

- an org (its node): every request signed with the org's Fabric identity
  (``identity=``, :class:`~fedledger.web.signing.SignedAuth`): the current round, its
  aggregate, update uploads, declines, unlearning notices, blobs and adapters;
- the consortium operator (``token=``, the operator's bearer token): opening and
  closing rounds; the reads anyone may make (rounds, votes, versions, lineage, stakes).

Answers are the models of :mod:`fedledger.protocol.coordinator_api`; failures the
errors of :mod:`fedledger.clients.errors` (``CoordinatorError`` and friends are their
names as the org node has always known them).
"""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import TypeAdapter

from fedledger.clients.base import ServiceClient, Verify, file_chunks
from fedledger.clients.errors import ClientError, RequestRefused, ServiceUnavailable
from fedledger.fabric.identity import SigningIdentity
from fedledger.protocol.coordinator_api import (
    AggregatePublic,
    DeclineResult,
    HealthPublic,
    LineagePublic,
    ModelVersionPublic,
    RoundCreate,
    RoundPublic,
    StakesPublic,
    UnlearningPublic,
    UpdateAccepted,
    VotesPublic,
)
from fedledger.web.signing import CONTENT_SHA256

#: The coordinator client's errors under the names the org node uses.
CoordinatorError = ClientError
CoordinatorUnavailable = ServiceUnavailable
CoordinatorRefused = RequestRefused

_ROUNDS = TypeAdapter(list[RoundPublic])
_VERSIONS = TypeAdapter(list[ModelVersionPublic])
_UNLEARNING = TypeAdapter(list[UnlearningPublic])


class CoordinatorClient(ServiceClient):
    """``CoordinatorClient(url, identity=org_identity)`` for an org,
    ``CoordinatorClient(url, token=operator_token)`` for the operator."""

    service = "coordinator"

    def __init__(self, base_url: str, identity: SigningIdentity | None = None, *,
                 token: str | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, verify: Verify = True) -> None:
        super().__init__(base_url, token=token, identity=identity, timeout=timeout,
                         transport=transport, verify=verify)

    # ------------------------------------------------------------------ anyone

    def health(self) -> HealthPublic:
        return self._model(HealthPublic, "GET", "/health")

    def rounds(self) -> list[RoundPublic]:
        return self._adapted(_ROUNDS, "GET", "/rounds")

    def current_round(self) -> RoundPublic | None:
        """The open round, None when no round is open."""
        return self._optional_model(RoundPublic, "GET", "/rounds/current")

    def get_round(self, round_id: int) -> RoundPublic:
        return self._model(RoundPublic, "GET", f"/rounds/{round_id}")

    def aggregate(self, round_id: int) -> AggregatePublic | None:
        """The round's aggregate, None while it has none."""
        return self._optional_model(AggregatePublic, "GET", f"/rounds/{round_id}/aggregate")

    def votes(self, round_id: int) -> VotesPublic:
        return self._model(VotesPublic, "GET", f"/rounds/{round_id}/votes")

    def stakes(self) -> StakesPublic:
        return self._model(StakesPublic, "GET", "/stakes")

    def models(self) -> list[ModelVersionPublic]:
        return self._adapted(_VERSIONS, "GET", "/models")

    def model(self, version_id: str) -> ModelVersionPublic:
        return self._model(ModelVersionPublic, "GET", f"/models/{version_id}")

    def served_model(self) -> ModelVersionPublic | None:
        """The version served now, None before the first one."""
        return self._optional_model(ModelVersionPublic, "GET", "/models/served")

    def lineage(self) -> LineagePublic:
        return self._model(LineagePublic, "GET", "/lineage")

    def unlearning_jobs(self) -> list[UnlearningPublic]:
        return self._adapted(_UNLEARNING, "GET", "/unlearning")

    def unlearning(self, notice_id: str) -> UnlearningPublic:
        return self._model(UnlearningPublic, "GET", f"/unlearning/{notice_id}")

    # ------------------------------------------------------------------ the operator

    def open_round(self, *, deadline_s: int | None = None, quorum: int | None = None,
                   local_steps: int | None = None, shard: int | None = None,
                   timeout: float | None = 120.0) -> RoundPublic:
        """Open a round (operator token); unset fields take the coordinator's defaults."""
        body = RoundCreate.model_validate({"deadline_s": deadline_s, "quorum": quorum,
                                           "local_steps": local_steps, "shard": shard})
        return self._model(RoundPublic, "POST", "/rounds",
                           json=body.model_dump(mode="json", exclude_none=True), timeout=timeout)

    def close_round(self, round_id: int) -> RoundPublic:
        """Ask the coordinator to close a round now (operator token)."""
        return self._model(RoundPublic, "POST", f"/rounds/{round_id}/close")

    # ------------------------------------------------------------------ an org (signed)

    def put_update(self, round_id: int, path: Path, sha256: str, num_samples: int) -> str:
        """Stream the update file; the body hash is declared and signed up front. Returns
        the update hash the coordinator stored."""
        accepted = self._model(
            UpdateAccepted, "PUT", f"/rounds/{round_id}/updates", content=file_chunks(path),
            headers={CONTENT_SHA256: sha256, "X-Num-Samples": str(num_samples),
                     "Content-Type": "application/octet-stream"})
        return accepted.update_hash

    def decline(self, round_id: int, reason: str) -> DeclineResult:
        """This org will not submit to ``round_id`` (no data, or its policy)."""
        return self._model(DeclineResult, "POST", f"/rounds/{round_id}/decline",
                           json={"reason": reason[:1000]})

    def request_unlearning(self, notice_id: str, first_steps: dict[int, int]
                           ) -> UnlearningPublic:
        """Ask the consortium to replay the shards of a deletion (no personal data)."""
        payload = {"notice_id": notice_id,
                   "first_steps": {str(k): v for k, v in sorted(first_steps.items())}}
        return self._model(UnlearningPublic, "POST", "/unlearning", json=payload)

    def blob(self, sha256: str, *, max_bytes: int) -> bytes:
        """A content-addressed blob, read up to ``max_bytes`` (PayloadTooLarge above)."""
        return self._download(f"/blobs/{sha256}", max_bytes=max_bytes, what=f"blob {sha256}")

    def model_adapter(self, version_id: str, *, max_bytes: int) -> bytes:
        """The served adapter of a model version (safetensors bytes); an org's signature
        or the operator's token."""
        return self._download(f"/models/{version_id}/adapter", max_bytes=max_bytes,
                              what=f"model version {version_id}")


__all__ = ["CoordinatorClient", "CoordinatorError", "CoordinatorRefused",
           "CoordinatorUnavailable"]
