"""The consortium channel's contract, typed: every function of
``fedledger_chaincode.contracts.consortium`` as a method that takes and returns the
records of :mod:`fedledger.protocol.records`.

Queries return records (``get_*`` raise ``RecordNotFoundError``; ``find_*`` return None
instead); writes return a :class:`~fedledger.ledgers.calls.Call` to ``submit()``,
``submit_async()`` or batch with ``submit_together``.
"""

from __future__ import annotations

from fedledger.protocol.records import (
    AnchorReceipt,
    Attestation,
    ModelVersion,
    OrgRecord,
    Round,
    RoundFinality,
    RoundOpening,
    Submission,
    UnlearningNotice,
    Vote,
)

from .base import ContractLedger
from .calls import Call


class ConsortiumLedger(ContractLedger):
    # --- organisations

    def register_org(self, org: OrgRecord) -> Call[OrgRecord]:
        return self._call("RegisterOrg", OrgRecord, org)

    def update_org(self, org: OrgRecord) -> Call[OrgRecord]:
        return self._call("UpdateOrg", OrgRecord, org)

    def get_org(self, msp_id: str) -> OrgRecord:
        return self._query("GetOrg", OrgRecord, msp_id)

    def list_orgs(self) -> list[OrgRecord]:
        return self._query("ListOrgs", list[OrgRecord])

    # --- rounds

    def open_round(self, opening: RoundOpening) -> Call[Round]:
        return self._call("OpenRound", Round, opening)

    def get_round(self, round_id: int) -> Round:
        return self._query("GetRound", Round, round_id)

    def find_round(self, round_id: int) -> Round | None:
        return self._find("GetRound", Round, round_id)

    def list_rounds(self) -> list[Round]:
        return self._query("ListRounds", list[Round])

    def close_round(self, round_id: int) -> Call[Round]:
        return self._call("CloseRound", Round, round_id)

    def finalize_round(self, finality: RoundFinality) -> Call[Round]:
        return self._call("FinalizeRound", Round, finality)

    # --- submissions, votes, attestations

    def submit_update(self, submission: Submission) -> Call[Submission]:
        return self._call("SubmitUpdate", Submission, submission)

    def list_submissions(self, round_id: int) -> list[Submission]:
        return self._query("ListSubmissions", list[Submission], round_id)

    def cast_vote(self, vote: Vote) -> Call[Vote]:
        return self._call("CastVote", Vote, vote)

    def list_votes(self, round_id: int) -> list[Vote]:
        return self._query("ListVotes", list[Vote], round_id)

    def attest_aggregate(self, attestation: Attestation) -> Call[Attestation]:
        return self._call("AttestAggregate", Attestation, attestation)

    def list_attestations(self, round_id: int) -> list[Attestation]:
        return self._query("ListAttestations", list[Attestation], round_id)

    # --- model versions and lineage

    def register_model_version(self, version: ModelVersion) -> Call[ModelVersion]:
        return self._call("RegisterModelVersion", ModelVersion, version)

    def get_model_version(self, version_id: str) -> ModelVersion:
        return self._query("GetModelVersion", ModelVersion, version_id)

    def find_model_version(self, version_id: str) -> ModelVersion | None:
        return self._find("GetModelVersion", ModelVersion, version_id)

    def list_model_versions(self, round_id: int) -> list[ModelVersion]:
        return self._query("ListModelVersions", list[ModelVersion], round_id)

    def get_lineage(self, version_id: str) -> list[ModelVersion]:
        """The version and all its ancestors, breadth first, each once."""
        return self._query("GetLineage", list[ModelVersion], version_id)

    # --- unlearning notices and anchor receipts

    def record_unlearning_notice(self, notice: UnlearningNotice) -> Call[UnlearningNotice]:
        return self._call("RecordUnlearningNotice", UnlearningNotice, notice)

    def get_unlearning_notice(self, notice_id: str) -> UnlearningNotice:
        return self._query("GetUnlearningNotice", UnlearningNotice, notice_id)

    def list_unlearning_notices(self, round_id: int | None = None) -> list[UnlearningNotice]:
        """All notices, or those anchored with ``round_id``."""
        args = () if round_id is None else (round_id,)
        return self._query("ListUnlearningNotices", list[UnlearningNotice], *args)

    def record_anchor_receipt(self, receipt: AnchorReceipt) -> Call[AnchorReceipt]:
        return self._call("RecordAnchorReceipt", AnchorReceipt, receipt)

    def list_anchor_receipts(self) -> list[AnchorReceipt]:
        return self._query("ListAnchorReceipts", list[AnchorReceipt])
