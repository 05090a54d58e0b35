"""An org's private channel's contract, typed: every function of
``fedledger_chaincode.contracts.private`` as a method over the records of
:mod:`fedledger.protocol.records` (conventions as in :mod:`.consortium`)."""

from __future__ import annotations

from fedledger.protocol.records import (
    DataCommitment,
    Dataset,
    DeletionRequest,
    DeletionStatus,
    ParticipationDecision,
    TrainingRecord,
    UnlearningRecord,
)

from .base import ContractLedger
from .calls import Call


class PrivateLedger(ContractLedger):
    # --- the channel's owner

    def init(self) -> Call[dict[str, str]]:
        """Claim the channel for the caller's org (idempotent for the owner)."""
        return self._call("Init", dict[str, str])

    def get_owner(self) -> dict[str, str]:
        return self._query("GetOwner", dict[str, str])

    # --- datasets and commitments

    def register_dataset(self, dataset: Dataset) -> Call[Dataset]:
        return self._call("RegisterDataset", Dataset, dataset)

    def get_dataset(self, dataset_id: str) -> Dataset:
        return self._query("GetDataset", Dataset, dataset_id)

    def list_datasets(self) -> list[Dataset]:
        return self._query("ListDatasets", list[Dataset])

    def record_commitment(self, commitment: DataCommitment) -> Call[DataCommitment]:
        return self._call("RecordCommitment", DataCommitment, commitment)

    def list_commitments(self, dataset_id: str) -> list[DataCommitment]:
        return self._query("ListCommitments", list[DataCommitment], dataset_id)

    # --- training

    def record_training_record(self, record: TrainingRecord) -> Call[TrainingRecord]:
        return self._call("RecordTrainingRecord", TrainingRecord, record)

    def list_training_records(self) -> list[TrainingRecord]:
        return self._query("ListTrainingRecords", list[TrainingRecord])

    # --- deletion requests and unlearning

    def file_deletion_request(self, request: DeletionRequest) -> Call[DeletionRequest]:
        return self._call("FileDeletionRequest", DeletionRequest, request)

    def update_deletion_request_status(self, request_id: str,
                                       status: DeletionStatus) -> Call[DeletionRequest]:
        return self._call("UpdateDeletionRequestStatus", DeletionRequest, request_id, status)

    def get_deletion_request(self, request_id: str) -> DeletionRequest:
        return self._query("GetDeletionRequest", DeletionRequest, request_id)

    def find_deletion_request(self, request_id: str) -> DeletionRequest | None:
        return self._find("GetDeletionRequest", DeletionRequest, request_id)

    def list_deletion_requests(self, subject_id: str | None = None) -> list[DeletionRequest]:
        """All requests, or those of one data subject."""
        args = () if subject_id is None else (subject_id,)
        return self._query("ListDeletionRequests", list[DeletionRequest], *args)

    def record_unlearning_record(self, record: UnlearningRecord) -> Call[UnlearningRecord]:
        return self._call("RecordUnlearningRecord", UnlearningRecord, record)

    def get_unlearning_record(self, request_id: str) -> UnlearningRecord:
        return self._query("GetUnlearningRecord", UnlearningRecord, request_id)

    def find_unlearning_record(self, request_id: str) -> UnlearningRecord | None:
        return self._find("GetUnlearningRecord", UnlearningRecord, request_id)

    # --- participation

    def record_participation_decision(
            self, decision: ParticipationDecision) -> Call[ParticipationDecision]:
        return self._call("RecordParticipationDecision", ParticipationDecision, decision)

    def get_participation_decision(self, round_id: int) -> ParticipationDecision:
        return self._query("GetParticipationDecision", ParticipationDecision, round_id)

    def list_participation_decisions(self) -> list[ParticipationDecision]:
        return self._query("ListParticipationDecisions", list[ParticipationDecision])
