"""An org node's client: its admin API, with a user's bearer token (docs/services.md
"Org node API"): datasets and data subjects, participation policy, jobs, model
versions, deletion requests, private records and the auditor's queries.

``OrgNodeClient(url, token=admin_token)``; the bridge signs its anchoring requests
with its Fabric identity instead (``OrgNodeClient(url, identity=bridge_identity)``:
:meth:`OrgNodeClient.anchoring_private_state`, :meth:`~OrgNodeClient.approve_anchor`,
:meth:`~OrgNodeClient.approve_outcome`). Answers are the models of
:mod:`fedledger.protocol.orgnode_api` (ledger records: :mod:`fedledger.protocol.records`;
proof bundles: :class:`fedledger.audit.bundle.AuditBundle`); failures the errors of
:mod:`fedledger.clients.errors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import TypeAdapter

from fedledger.clients.base import ServiceClient
from fedledger.clients.errors import Conflict
from fedledger.protocol.orgnode_api import (
    AgentSummary,
    AnchorApproval,
    AuditRequestStatus,
    DatasetCreate,
    DatasetPublic,
    DecisionPublic,
    DeletionCreate,
    DeletionPublic,
    Health,
    JobPublic,
    LedgerOnlyRequest,
    Me,
    ModelPublic,
    PolicyBody,
    PolicyMode,
    PolicyPublic,
    PrivateRecord,
    PrivateStateLeaf,
    RecordKind,
    Role,
    SampleInVersion,
    SubjectsSet,
    UserCreated,
    UserPublic,
)
from fedledger.protocol.records import ModelVersion

if TYPE_CHECKING:
    from fedledger.audit.bundle import AuditBundle

_DATASETS = TypeAdapter(list[DatasetPublic])
_DELETIONS = TypeAdapter(list[DeletionPublic])
_JOBS = TypeAdapter(list[JobPublic])
_MODELS = TypeAdapter(list[ModelPublic])
_USERS = TypeAdapter(list[UserPublic])
_DECISIONS = TypeAdapter(list[DecisionPublic])
_RECORDS: TypeAdapter[list[PrivateRecord]] = TypeAdapter(list[PrivateRecord])
_LINEAGE = TypeAdapter(list[ModelVersion])
_SUBJECT_REQUESTS = TypeAdapter(list[AuditRequestStatus | LedgerOnlyRequest])


def _bundle_model() -> type[AuditBundle]:
    from fedledger.audit.bundle import AuditBundle  # web3: only where a bundle is read

    return AuditBundle


class OrgNodeClient(ServiceClient):
    """An org node's admin API; each call needs the role its route names (viewer,
    auditor, admin)."""

    service = "orgnode"

    # ------------------------------------------------------------------ health, users

    def health(self) -> Health:
        return self._model(Health, "GET", "/health")

    def me(self) -> Me:
        return self._model(Me, "GET", "/me")

    def create_user(self, name: str, role: Role) -> UserCreated:
        return self._model(UserCreated, "POST", "/users", json={"name": name, "role": role})

    def users(self) -> list[UserPublic]:
        return self._adapted(_USERS, "GET", "/users")

    # ------------------------------------------------------------------ datasets

    def register_dataset(self, body: DatasetCreate, *, timeout: float | None = 300.0
                         ) -> DatasetPublic:
        """Register a packaged dataset (its commitments go on the private channel)."""
        return self._model(DatasetPublic, "POST", "/datasets",
                           json=body.model_dump(mode="json", exclude_none=True),
                           timeout=timeout)

    def upload_dataset(self, dataset_id: str, path: Path, *, timeout: float | None = 300.0
                       ) -> DatasetPublic:
        """Register a .jsonl / .ndjson / .csv file of the admin's own."""
        with path.open("rb") as handle:
            return self._model(DatasetPublic, "POST", "/datasets/upload",
                               data={"dataset_id": dataset_id},
                               files={"file": (path.name, handle)}, timeout=timeout)

    def datasets(self) -> list[DatasetPublic]:
        return self._adapted(_DATASETS, "GET", "/datasets")

    def dataset(self, dataset_id: str) -> DatasetPublic:
        return self._model(DatasetPublic, "GET", f"/datasets/{dataset_id}")

    def set_subjects(self, dataset_id: str, subjects: dict[str, list[str]]) -> SubjectsSet:
        """Map data subjects to their sample ids (for deletions by subject)."""
        return self._model(SubjectsSet, "PUT", f"/datasets/{dataset_id}/subjects",
                           json={"subjects": subjects})

    # ------------------------------------------------------------------ policy

    def policy(self) -> PolicyPublic:
        return self._model(PolicyPublic, "GET", "/policy")

    def set_policy(self, mode: PolicyMode, rounds: list[int] | None = None) -> PolicyPublic:
        body = PolicyBody(mode=mode, rounds=rounds or [])
        return self._model(PolicyPublic, "PUT", "/policy", json=body.model_dump(mode="json"))

    def agent(self) -> AgentSummary:
        return self._model(AgentSummary, "GET", "/policy/agent")

    def decisions(self) -> list[DecisionPublic]:
        return self._adapted(_DECISIONS, "GET", "/policy/decisions")

    # ------------------------------------------------------------------ jobs, models

    def jobs(self) -> list[JobPublic]:
        return self._adapted(_JOBS, "GET", "/jobs")

    def job(self, job_id: int) -> JobPublic:
        return self._model(JobPublic, "GET", f"/jobs/{job_id}")

    def job_of_round(self, round_id: int) -> JobPublic | None:
        """This org's job of ``round_id``, None when it has none."""
        return next((job for job in self.jobs() if job.round_id == round_id), None)

    def models(self) -> list[ModelPublic]:
        return self._adapted(_MODELS, "GET", "/models")

    def model(self, version_id: str) -> ModelPublic:
        return self._model(ModelPublic, "GET", f"/models/{version_id}")

    def model_adapter(self, version_id: str, *, max_bytes: int = 1 << 30) -> bytes:
        """The adapter of a model version as a zip (PEFT safetensors + config)."""
        return self._download(f"/models/{version_id}/adapter", max_bytes=max_bytes,
                              what=f"model version {version_id}")

    # ------------------------------------------------------------------ deletions

    def file_deletion(self, body: DeletionCreate) -> DeletionPublic:
        """File a deletion request (201; the same request again answers 200)."""
        return self._model(DeletionPublic, "POST", "/deletion-requests",
                           json=body.model_dump(mode="json", exclude_none=True))

    def deletions(self) -> list[DeletionPublic]:
        return self._adapted(_DELETIONS, "GET", "/deletion-requests")

    def deletion(self, request_id: str) -> DeletionPublic:
        return self._model(DeletionPublic, "GET", f"/deletion-requests/{request_id}")

    # ------------------------------------------------------------------ records, audit

    def records(self, kind: RecordKind) -> list[PrivateRecord]:
        """The org's private-channel records of one kind."""
        return self._adapted(_RECORDS, "GET", f"/records/{kind}")

    def request_status(self, request_id: str) -> AuditRequestStatus:
        return self._model(AuditRequestStatus, "GET", f"/audit/requests/{request_id}")

    def request_proof(self, request_id: str, *, timeout: float | None = 120.0) -> AuditBundle:
        """The proof bundle of a completed request, for ``fedledger verify``."""
        return self._model(_bundle_model(), "GET", f"/audit/requests/{request_id}/proof",
                           timeout=timeout)

    def anchored_proof(self, request_id: str, *, timeout: float | None = 120.0
                       ) -> AuditBundle | None:
        """:meth:`request_proof`, or None while the request's records are not in an anchor
        yet (409 ``not_anchored``: they go with the next round's anchor)."""
        try:
            return self.request_proof(request_id, timeout=timeout)
        except Conflict as exc:
            if exc.code == "not_anchored":
                return None
            raise

    def request_proof_json(self, request_id: str, *, timeout: float | None = 120.0
                           ) -> dict[str, Any]:
        """The proof bundle exactly as the node sent it (to write it to a file)."""
        response = self._request("GET", f"/audit/requests/{request_id}/proof", timeout=timeout)
        data: dict[str, Any] = response.json()
        return data

    def request_report(self, request_id: str, format: Literal["markdown", "html"] = "markdown",
                       *, timeout: float | None = 60.0) -> str:
        """The request's report, Markdown (default) or HTML."""
        return self._request("GET", f"/audit/requests/{request_id}/report",
                             params={"format": format}, timeout=timeout).text

    def subject_requests(self, subject_id: str) -> list[AuditRequestStatus | LedgerOnlyRequest]:
        return self._adapted(_SUBJECT_REQUESTS, "GET", f"/audit/subjects/{subject_id}")

    def lineage(self, version_id: str) -> list[ModelVersion]:
        return self._adapted(_LINEAGE, "GET", f"/audit/models/{version_id}/lineage")

    def sample_in_version(self, version_id: str, dataset_id: str, sample_id: str
                          ) -> SampleInVersion:
        return self._model(SampleInVersion, "GET", f"/audit/models/{version_id}/samples",
                           params={"dataset_id": dataset_id, "sample_id": sample_id})

    def sample_bundle(self, version_id: str, dataset_id: str, sample_id: str) -> AuditBundle:
        """The sample's (non-)membership proof as an anchored bundle."""
        return self._model(_bundle_model(), "GET", f"/audit/models/{version_id}/samples",
                           params={"dataset_id": dataset_id, "sample_id": sample_id,
                                   "proof": "true"})

    # ------------------------------------------------------------------ anchoring (signed)

    def anchoring_private_state(self) -> PrivateStateLeaf:
        """The org's ``private_state`` leaf (a signed request: the bridge's identity)."""
        return self._model(PrivateStateLeaf, "GET", "/anchoring/private-state")

    def approve_anchor(self, first_round: int, last_round: int, leaves: list[dict[str, Any]],
                       *, chain_id: int, registry: str) -> AnchorApproval:
        """The org's anchor-key signature of a batch, after its own checks (Conflict when
        it refuses, with its reason)."""
        body = {"first_round": first_round, "last_round": last_round, "leaves": leaves,
                "chain_id": chain_id, "registry": registry}
        return self._model(AnchorApproval, "POST", "/anchoring/approve", json=body)

    def approve_outcome(self, round_id: int, orgs: list[str], deltas: list[int], *,
                        chain_id: int, staking: str) -> AnchorApproval:
        """The org's signature of a round's Staking outcome (deltas sent as strings:
        wei amounts beyond JSON's safe integers)."""
        body = {"round_id": round_id, "orgs": orgs, "deltas": [str(d) for d in deltas],
                "chain_id": chain_id, "staking": staking}
        return self._model(AnchorApproval, "POST", "/anchoring/approve-outcome", json=body)


__all__ = ["OrgNodeClient"]
