"""The ``private`` contract of an ``<org>-private`` channel: datasets, data commitments,
training records, deletion requests, unlearning records and participation decisions of
one organisation.

The channel belongs to one org. ``Init`` records the caller's MSP as the owner (the
first call wins; the owner calling again is a no-op, anyone else is refused) and every
other function -- reads included -- requires the caller to be that owner. The channel
policy already keeps other orgs out; the check makes a misconfigured channel fail
loudly instead of leaking.

Personal data (a data subject id, sample ids) may live here, in deletion requests, but
never in an event: event payloads carry ids of requests/datasets and digests only,
because events are delivered to every listener of the channel's blocks.

Idempotency as on the consortium contract: identical data again returns the stored
record and writes nothing; different data under the same id is an error.

Events: OwnerInitialised, DatasetRegistered, CommitmentRecorded, TrainingRecorded,
DeletionRequestFiled, DeletionRequestStatusChanged, UnlearningRecorded,
ParticipationDecided.
"""

from __future__ import annotations

from fedledger.protocol.records import (
    DELETION_TRANSITIONS,
    DataCommitment,
    Dataset,
    DeletionRequest,
    DeletionStatus,
    Id,
    ParticipationDecision,
    RoundId,
    TrainingRecord,
    UnlearningRecord,
    format_timestamp,
)

from ..contract import (
    Conflict,
    Context,
    Contract,
    Forbidden,
    Invalid,
    WrongState,
    query,
    transaction,
)
from . import keys


class PrivateContract(Contract):
    """Contract of one org's private channel."""

    name = "private"

    async def before_transaction(self, ctx: Context, function: str) -> None:
        if function == "Init":
            return
        owner = await ctx.stub.get_state(ctx.key(keys.owner()))
        if not owner:
            raise WrongState("this private channel has no owner yet: call private:Init first")
        if owner.decode() != ctx.client_msp_id:
            raise Forbidden(f"caller {ctx.client_msp_id} is not the owner of this "
                            f"private channel ({owner.decode()})")

    @transaction
    async def init(self, ctx: Context) -> dict[str, str]:
        """Claim the channel for the caller's org (once)."""
        owner = await ctx.stub.get_state(ctx.key(keys.owner()))
        if owner:
            if owner.decode() != ctx.client_msp_id:
                raise Forbidden(f"this private channel already belongs to "
                                f"{owner.decode()}; {ctx.client_msp_id} cannot claim it")
            return {"owner": owner.decode()}
        ctx.put_state(ctx.key(keys.owner()), ctx.client_msp_id.encode())
        ctx.set_event("OwnerInitialised", {"owner": ctx.client_msp_id})
        return {"owner": ctx.client_msp_id}

    @query
    async def get_owner(self, ctx: Context) -> dict[str, str]:
        return {"owner": ctx.client_msp_id}  # before_transaction proved the caller owns it

    # --- datasets and commitments -----------------------------------------------------

    @transaction
    async def register_dataset(self, ctx: Context, dataset: Dataset) -> Dataset:
        """Register a dataset; ``registered_at`` is stamped from the tx timestamp."""
        if dataset.registered_at is not None:
            raise Invalid("registered_at is set by the ledger (tx timestamp); omit it")
        key = keys.dataset(dataset.dataset_id)
        if (same := await ctx.stored_once(
                key, dataset, f"dataset {dataset.dataset_id} already exists with different "
                "data", as_given=lambda stored: stored.model_copy(
                    update={"registered_at": None}))) is not None:
            return same
        stored = dataset.model_copy(update={"registered_at": format_timestamp(ctx.timestamp)})
        ctx.put_record(key, stored)
        ctx.set_event("DatasetRegistered", {"dataset_id": dataset.dataset_id})
        return stored

    @query
    async def get_dataset(self, ctx: Context, dataset_id: Id) -> Dataset:
        return await ctx.require(keys.dataset(dataset_id), Dataset, f"dataset {dataset_id}")

    @query
    async def list_datasets(self, ctx: Context) -> list[Dataset]:
        return await ctx.scan(keys.dataset(), Dataset)

    @transaction
    async def record_commitment(self, ctx: Context, commitment: DataCommitment) -> DataCommitment:
        """Record the Merkle root of one shard/slice; replacing it needs ``supersedes``."""
        await self.get_dataset(ctx, commitment.dataset_id)
        key = keys.commitment(commitment.dataset_id, commitment.shard, commitment.slice)
        current = await ctx.get_record(key, DataCommitment)
        if current is not None:
            if current == commitment:
                return current
            if commitment.supersedes != current.merkle_root:
                raise Conflict(
               f"dataset {commitment.dataset_id} shard {commitment.shard} slice "
               f"{commitment.slice} already has root {current.merkle_root}; a new root "
               "must name it in 'supersedes'")
        elif commitment.supersedes is not None:
            raise Invalid("'supersedes' names a root, but there is no commitment to "
                          "replace")
        ctx.put_record(key, commitment)
        ctx.set_event("CommitmentRecorded", {
            "dataset_id": commitment.dataset_id, "shard": commitment.shard,
            "slice": commitment.slice, "merkle_root": commitment.merkle_root})
        return commitment

    @query
    async def list_commitments(self, ctx: Context, dataset_id: Id) -> list[DataCommitment]:
        return await ctx.scan(keys.commitment(dataset_id), DataCommitment)

    # --- training ---------------------------------------------------------------------

    @transaction
    async def record_training_record(self, ctx: Context, record: TrainingRecord) -> TrainingRecord:
        """What was trained on which dataset in a round (one per round, shard, dataset)."""
        await self.get_dataset(ctx, record.dataset_id)
        key = keys.training(record.round_id, record.shard, record.dataset_id)
        if (same := await ctx.stored_once(
                key, record, f"a different training record exists for round "
                f"{record.round_id} shard {record.shard} dataset "
                f"{record.dataset_id}")) is not None:
            return same
        ctx.put_record(key, record)
        ctx.set_event("TrainingRecorded", {
            "round_id": record.round_id, "shard": record.shard,
            "dataset_id": record.dataset_id, "update_hash": record.update_hash})
        return record

    @query
    async def list_training_records(self, ctx: Context) -> list[TrainingRecord]:
        return await ctx.scan(keys.training(), TrainingRecord)

    # --- deletion requests --------------------------------------------------------------

    @transaction
    async def file_deletion_request(self, ctx: Context, request: DeletionRequest) -> DeletionRequest:
        """File a request (status ``filed``; ``filed_at`` stamped from the tx timestamp)."""
        if request.status != "filed":
            raise Invalid(f"a new request has status 'filed', not {request.status!r}")
        if request.filed_at is not None or request.updated_at is not None:
            raise Invalid("filed_at/updated_at are set by the ledger; omit them")
        await self.get_dataset(ctx, request.dataset_id)
        key = keys.deletion_request(request.request_id)
        if (same := await ctx.stored_once(
                key, request, f"deletion request {request.request_id} already exists with "
                "different data", as_given=lambda stored: stored.model_copy(
                    update={"status": "filed", "filed_at": None, "updated_at": None}))
                ) is not None:
            return same
        now = format_timestamp(ctx.timestamp)
        stored = request.model_copy(update={"filed_at": now, "updated_at": now})
        ctx.put_record(key, stored)
        ctx.set_event("DeletionRequestFiled", {"request_id": request.request_id,
                                               "dataset_id": request.dataset_id})
        return stored

    @transaction
    async def update_deletion_request_status(self, ctx: Context, request_id: Id,
                                             status: DeletionStatus) -> DeletionRequest:
        """Move a request along filed -> executing -> completed (or -> rejected).

        Setting the current status again is a no-op; ``completed`` needs the
        request's unlearning record on the ledger first.
        """
        request = await self.get_deletion_request(ctx, request_id)
        if status == request.status:
            return request
        allowed = DELETION_TRANSITIONS[request.status]
        if status not in allowed:
            raise WrongState(f"deletion request {request_id} cannot go from "
                             f"{request.status!r} to {status!r} (allowed: "
                             f"{sorted(allowed) or 'none, it is final'})")
        if status == "completed" and await ctx.get_record(
                keys.unlearning_record(request_id), UnlearningRecord) is None:
            raise WrongState(f"deletion request {request_id} has no unlearning record "
                             "yet: RecordUnlearningRecord before completing it")
        updated = request.model_copy(
            update={"status": status, "updated_at": format_timestamp(ctx.timestamp)})
        ctx.put_record(keys.deletion_request(request_id), updated)
        ctx.set_event("DeletionRequestStatusChanged", {
            "request_id": request_id, "from": request.status, "to": status})
        return updated

    @query
    async def get_deletion_request(self, ctx: Context, request_id: Id) -> DeletionRequest:
        return await ctx.require(keys.deletion_request(request_id), DeletionRequest,
                                 f"deletion request {request_id}")

    @query
    async def list_deletion_requests(self, ctx: Context,
                                     subject_id: Id | None = None) -> list[DeletionRequest]:
        """All requests, or only those of one data subject."""
        requests = await ctx.scan(keys.deletion_request(), DeletionRequest)
        if subject_id is None:
            return requests
        return [r for r in requests if r.subject_id == subject_id]

    # --- unlearning ---------------------------------------------------------------------

    @transaction
    async def record_unlearning_record(self, ctx: Context,
                                       record: UnlearningRecord) -> UnlearningRecord:
        """How a deletion request was executed (one per request; not for rejected ones)."""
        request = await self.get_deletion_request(ctx, record.request_id)
        key = keys.unlearning_record(record.request_id)
        if (same := await ctx.stored_once(
                key, record, f"deletion request {record.request_id} already has a "
                "different unlearning record")) is not None:
            return same
        if request.status == "rejected":
            raise WrongState(f"deletion request {record.request_id} was rejected")
        ctx.put_record(key, record)
        ctx.set_event("UnlearningRecorded", {
            "request_id": record.request_id, "old_model_hash": record.old_model_hash,
            "new_model_hash": record.new_model_hash})
        return record

    @query
    async def get_unlearning_record(self, ctx: Context, request_id: Id) -> UnlearningRecord:
        return await ctx.require(keys.unlearning_record(request_id), UnlearningRecord,
                                 f"unlearning record of request {request_id}")


    # --- participation ------------------------------------------------------------------

    @transaction
    async def record_participation_decision(
            self, ctx: Context, decision: ParticipationDecision) -> ParticipationDecision:
        """Whether and how hard the org takes part in a round, and why (one per round)."""
        key = keys.participation(decision.round_id)
        if (same := await ctx.stored_once(
                key, decision, f"a different participation decision exists for round "
                f"{decision.round_id}")) is not None:
            return same
        ctx.put_record(key, decision)
        ctx.set_event("ParticipationDecided", {
            "round_id": decision.round_id, "policy": decision.policy,
            "action": decision.action})
        return decision

    @query
    async def get_participation_decision(self, ctx: Context,
                                         round_id: RoundId) -> ParticipationDecision:
        return await ctx.require(keys.participation(round_id), ParticipationDecision,
                                 f"participation decision of round {round_id}")

    @query
    async def list_participation_decisions(self, ctx: Context) -> list[ParticipationDecision]:
        return await ctx.scan(keys.participation(), ParticipationDecision)
