"""The ``consortium`` contract: membership, rounds, submissions, votes, attestations,
model versions and lineage, unlearning notices and anchor receipts.

Who may do what (the caller is the MSP id of the transaction's creator):

* an org registers and updates only itself; every other write needs a registered org;
* an org submits, attests and files notices only in its own name;
* only the round's committee votes, each validator once per target, never on itself;
* a round is final when a MAJORITY (> half) of the registered orgs attested one digest
  and FinalizeRound recorded it.

Idempotency: repeating a write with identical data returns the stored record and writes
nothing (no event either: nothing happened); the same key with different data is an
error. Retries after a lost reply are therefore safe.

Events (one per transaction, canonical-JSON payloads of ids and digests only):
OrgRegistered, OrgUpdated, RoundOpened, RoundClosed, UpdateSubmitted, VoteCast,
AggregateAttested, AggregateFinal (by FinalizeRound), ModelVersionRegistered,
UnlearningNotice, AnchorRecorded.

No hot keys: an org's submission, vote and attestation each go under a key of their
own, and none of those transactions writes the round record, so many orgs acting in the
same block never conflict. The round record is written by OpenRound and CloseRound
only; FinalizeRound writes a key of its own (RoundFinality) and reads the attestations
it counts by key, so neither it nor a late attestation in its block conflicts.
"""

from __future__ import annotations

from fedledger.protocol.records import (
    AnchorReceipt,
    Attestation,
    Id,
    ModelVersion,
    OrgRecord,
    Round,
    RoundFinality,
    RoundId,
    RoundOpening,
    Submission,
    UnlearningNotice,
    Vote,
    format_timestamp,
    parse_timestamp,
)

from ..contract import (
    Conflict,
    Context,
    Contract,
    Forbidden,
    Invalid,
    NotFound,
    WrongState,
    query,
    transaction,
)
from . import keys

# Walking lineage stops here: versions are registered only with existing parents, so
# there are no cycles, but one call must not be able to run unbounded.
MAX_LINEAGE = 10_000


class ConsortiumContract(Contract):
    """Contract of the channel all orgs share."""

    name = "consortium"

    # --- membership -------------------------------------------------------------

    @transaction
    async def register_org(self, ctx: Context, org: OrgRecord) -> OrgRecord:
        """Register the caller's own org; identical re-registration is a no-op."""
        _require_self(ctx, org.msp_id, "register")
        if (same := await ctx.stored_once(
                keys.org(org.msp_id), org, f"org {org.msp_id} is already registered with "
                "different data; use UpdateOrg to change it")) is not None:
            return same
        ctx.put_record(keys.org(org.msp_id), org)
        ctx.set_event("OrgRegistered", {"msp_id": org.msp_id})
        return org

    @transaction
    async def update_org(self, ctx: Context, org: OrgRecord) -> OrgRecord:
        """Replace the caller's own registration (new anchor address or attestation key)."""
        _require_self(ctx, org.msp_id, "update")
        if await ctx.get_record(keys.org(org.msp_id), OrgRecord) is None:
            raise NotFound(f"org {org.msp_id} is not registered; use RegisterOrg")
        ctx.put_record(keys.org(org.msp_id), org)
        ctx.set_event("OrgUpdated", {"msp_id": org.msp_id})
        return org

    @query
    async def get_org(self, ctx: Context, msp_id: Id) -> OrgRecord:
        return await ctx.require(keys.org(msp_id), OrgRecord, f"org {msp_id}")

    @query
    async def list_orgs(self, ctx: Context) -> list[OrgRecord]:
        return await ctx.scan(keys.org(), OrgRecord)

    # --- rounds -----------------------------------------------------------------

    @transaction
    async def open_round(self, ctx: Context, opening: RoundOpening) -> Round:
        """Open a round (any registered org); round ids strictly increase."""
        await _require_member(ctx)
        last = await ctx.stub.get_state(ctx.key(keys.last_round()))
        last_id = int(last) if last else 0
        if opening.round_id <= last_id:
            raise Conflict(f"round ids must increase: {opening.round_id} <= last "
                           f"round {last_id}")
        orgs = {o.msp_id for o in await ctx.scan(keys.org(), OrgRecord)}
        strangers = [m for m in opening.committee if m not in orgs]
        if strangers:
            raise Invalid(f"committee members are not registered orgs: {strangers}")
        round_ = Round(**opening.model_dump(), opened_by=ctx.client_msp_id, status="open")
        ctx.put_record(keys.round_(round_.round_id), round_)
        ctx.put_state(ctx.key(keys.last_round()), str(round_.round_id).encode())
        ctx.set_event("RoundOpened", {"round_id": round_.round_id, "shard": round_.shard,
                                      "config_digest": round_.config_digest})
        return round_

    @query
    async def get_round(self, ctx: Context, round_id: RoundId) -> Round:
        """The round; a closed round with attestations reads as ``aggregated``.

        That status is derived here, never stored: attestations do not write the round.
        """
        round_ = await _round_view(ctx, round_id)
        if round_.status == "closed" and await ctx.scan(keys.attestation(round_id),
                                                         Attestation):
            return round_.model_copy(update={"status": "aggregated"})
        return round_

    @query
    async def list_rounds(self, ctx: Context) -> list[Round]:
        final = {f.round_id: f for f in await ctx.scan(keys.finality(), RoundFinality)}
        return [_with_finality(r, final.get(r.round_id))
                for r in await ctx.scan(keys.round_(), Round)]

    @transaction
    async def close_round(self, ctx: Context, round_id: RoundId) -> Round:
        """Close submissions: the opener may close any time, any member after the deadline."""
        await _require_member(ctx)
        round_ = await _round_view(ctx, round_id)
        if round_.status == "closed":
            return round_
        if round_.status != "open":
            raise WrongState(f"round {round_id} is {round_.status}, not open")
        if ctx.client_msp_id != round_.opened_by and ctx.timestamp < parse_timestamp(
                round_.deadline):
            raise Forbidden(f"only {round_.opened_by} (the opener) may close round "
                            f"{round_id} before its deadline {round_.deadline}")
        closed = round_.model_copy(update={"status": "closed"})
        ctx.put_record(keys.round_(round_id), closed)
        ctx.set_event("RoundClosed", {"round_id": round_id})
        return closed

    # --- submissions and votes --------------------------------------------------------

    @transaction
    async def submit_update(self, ctx: Context, submission: Submission) -> Submission:
        """Record the caller's update for an open round (one per round, shard and org)."""
        _require_self(ctx, submission.org, "submit for")
        await _require_member(ctx)
        round_ = await _get_round(ctx, submission.round_id)
        key = keys.submission(submission.round_id, submission.shard, submission.org)
        # Checked before the round state: a retry after the round closed still succeeds.
        if (same := await ctx.stored_once(key, submission, lambda stored: (
                f"{submission.org} already submitted update {stored.update_hash} for "
                f"round {submission.round_id} shard {submission.shard}; a submission "
                "cannot be replaced"))) is not None:
            return same
        if round_.status != "open":
            raise WrongState(f"round {round_.round_id} is {round_.status}, not open")
        if ctx.timestamp > parse_timestamp(round_.deadline):
            raise WrongState(f"round {round_.round_id} deadline {round_.deadline} has "
                             f"passed (tx time {format_timestamp(ctx.timestamp)})")
        if submission.shard != round_.shard:
            raise Invalid(f"round {round_.round_id} is for shard {round_.shard}, "
                          f"not shard {submission.shard}")
        ctx.put_record(key, submission)
        ctx.set_event("UpdateSubmitted", {
            "round_id": submission.round_id, "shard": submission.shard,
            "org": submission.org, "update_hash": submission.update_hash})
        return submission

    @query
    async def list_submissions(self, ctx: Context, round_id: RoundId) -> list[Submission]:
        return await ctx.scan(keys.submission(round_id), Submission)

    @transaction
    async def cast_vote(self, ctx: Context, vote: Vote) -> Vote:
        """A committee member's vote on a submitted update.

        Allowed while the round is open or closed: validators may score updates as they
        arrive, and the vote set freezes once aggregation (attestation) starts, because
        the aggregate depends on which updates were accepted.
        """
        _require_self(ctx, vote.validator, "vote as")
        round_ = await _get_round(ctx, vote.round_id)
        voters = round_.validators or round_.committee
        if vote.validator not in voters:
            raise Forbidden(f"{vote.validator} is not a validator of round "
                            f"{vote.round_id} (validators: {voters})")
        key = keys.vote(vote.round_id, vote.validator, vote.target_org)
        if (same := await ctx.stored_once(
                key, vote, f"{vote.validator} already voted on {vote.target_org} in "
                f"round {vote.round_id}; a vote cannot be changed")) is not None:
            return same
        if round_.status not in ("open", "closed") or await ctx.scan(
                keys.attestation(vote.round_id), Attestation):
            raise WrongState(f"round {vote.round_id} is being aggregated: voting ended")
        if round_.vote_deadline is not None and ctx.timestamp > parse_timestamp(
                round_.vote_deadline):
            raise WrongState(f"round {vote.round_id} vote deadline {round_.vote_deadline} "
                             f"has passed (tx time {format_timestamp(ctx.timestamp)})")
        if vote.target_org == vote.validator:
            raise Forbidden("a validator cannot vote on its own update")
        target_key = keys.submission(vote.round_id, round_.shard, vote.target_org)
        if await ctx.get_record(target_key, Submission) is None:
            raise WrongState(f"{vote.target_org} has no submission in round "
                             f"{vote.round_id} to vote on")
        ctx.put_record(key, vote)
        ctx.set_event("VoteCast", {"round_id": vote.round_id, "validator": vote.validator,
                                   "target_org": vote.target_org, "accept": vote.accept})
        return vote

    @query
    async def list_votes(self, ctx: Context, round_id: RoundId) -> list[Vote]:
        return await ctx.scan(keys.vote(round_id), Vote)

    # --- aggregation ----------------------------------------------------------------

    @transaction
    async def attest_aggregate(self, ctx: Context, attestation: Attestation) -> Attestation:
        """Record the caller's recomputed aggregate digest under its own key.

        The round must be closed (an aggregate over a still-open submission set is not
        well defined) and hold at least ``quorum`` submissions. Only the caller's own
        attestation key is written, never the round: the orgs attest concurrently, often
        in one block, and a shared key would make all but one of them fail with
        MVCC_READ_CONFLICT. Finality is decided by :meth:`finalize_round`, which reads
        the attestations; attestations after it are still recorded, for the audit trail.
        """
        _require_self(ctx, attestation.org, "attest for")
        await _require_member(ctx)
        round_ = await _get_round(ctx, attestation.round_id)
        key = keys.attestation(attestation.round_id, attestation.org)
        if (same := await ctx.stored_once(key, attestation, lambda stored: (
                f"{attestation.org} already attested {stored.aggregate_digest} for "
                f"round {attestation.round_id}"))) is not None:
            return same
        if round_.status == "open":
            raise WrongState(f"round {round_.round_id} is still open: close it first")
        submissions = await ctx.scan(keys.submission(round_.round_id), Submission)
        if len(submissions) < round_.quorum:
            raise WrongState(f"round {round_.round_id} has {len(submissions)} "
                             f"submission(s), quorum is {round_.quorum}")
        ctx.put_record(key, attestation)
        ctx.set_event("AggregateAttested", {"round_id": round_.round_id, "org": attestation.org,
                                            "aggregate_digest": attestation.aggregate_digest})
        return attestation

    @transaction
    async def finalize_round(self, ctx: Context, finality: RoundFinality) -> Round:
        """Make the round final on ``aggregate_digest``, attested by ``attesters``, a
        MAJORITY of the registered orgs.

        Any registered org may call it: every named attestation is checked on the ledger,
        so the caller decides nothing. It reads only the named orgs' attestation keys
        (no range), so other orgs' later attestations in the same block do not conflict
        with it, and it writes its own key, so they do not conflict with it either.
        Repeating it on a final round returns the round and writes nothing.
        """
        await _require_member(ctx)
        round_ = await _get_round(ctx, finality.round_id)
        if await ctx.get_record(keys.finality(finality.round_id), RoundFinality) is not None:
            return await _round_view(ctx, finality.round_id)
        if round_.status == "open":
            raise WrongState(f"round {finality.round_id} is still open: close it first")
        orgs = {o.msp_id for o in await ctx.scan(keys.org(), OrgRecord)}
        for org in finality.attesters:
            if org not in orgs:
                raise Invalid(f"attester {org} is not a registered org")
            att = await ctx.get_record(keys.attestation(finality.round_id, org), Attestation)
            if att is None or att.aggregate_digest != finality.aggregate_digest:
                raise Invalid(f"{org} has not attested {finality.aggregate_digest} for round "
                              f"{finality.round_id}")
            # Under a server optimizer the next round starts from the state too: a majority
            # must have recomputed the same one.
            if att.server_state_digest != finality.server_state_digest:
                raise Invalid(f"{org} attested server state {att.server_state_digest} for round "
                              f"{finality.round_id}, not {finality.server_state_digest}")
        if 2 * len(finality.attesters) <= len(orgs):
            raise WrongState(f"round {finality.round_id} has no majority: "
                             f"{len(finality.attesters)} of {len(orgs)} orgs attested "
                             f"{finality.aggregate_digest}")
        ctx.put_record(keys.finality(finality.round_id), finality)
        ctx.set_event("AggregateFinal", {
            "round_id": finality.round_id, "aggregate_digest": finality.aggregate_digest,
            "attestations": len(finality.attesters), "orgs": len(orgs)})
        return _with_finality(round_, finality)

    @query
    async def list_attestations(self, ctx: Context, round_id: RoundId) -> list[Attestation]:
        return await ctx.scan(keys.attestation(round_id), Attestation)

    # --- model versions -------------------------------------------------------------

    @transaction
    async def register_model_version(self, ctx: Context, version: ModelVersion) -> ModelVersion:
        """Register a served model version (any registered org).

        Checked links: ``round_id`` is a final round; every parent exists; every
        ``shard_adapters`` entry names a final round of that shard whose aggregate digest
        equals its ``adapter_digest``; with one shard adapter the version serves it as
        is, so ``adapter_digest`` must equal it. A merge of several shard adapters has
        its own digest, and a version with none serves the base model alone (every shard
        left out while a deletion replays them): the ledger records those as given.
        """
        await _require_member(ctx)
        key = keys.model_version(version.version_id)
        if (same := await ctx.stored_once(
                key, version, f"model version {version.version_id} already exists with "
                "different data")) is not None:
            return same
        round_ = await _round_view(ctx, version.round_id)
        if round_.status != "final":
            raise WrongState(f"round {round_.round_id} is {round_.status}, not final")
        for parent in version.parents:
            if await ctx.get_record(keys.model_version(parent), ModelVersion) is None:
                raise Invalid(f"parent model version {parent} does not exist")
        for adapter in version.shard_adapters:
            source = await _round_view(ctx, adapter.round_id)
            if source.status != "final" or source.shard != adapter.shard:
                raise Invalid(f"shard adapter {adapter.shard}: round "
                              f"{adapter.round_id} is not a final round of that shard")
            if source.aggregate_digest != adapter.adapter_digest:
                raise Invalid(f"shard adapter {adapter.shard}: digest differs from "
                              f"the final aggregate of round {adapter.round_id}")
        if (len(version.shard_adapters) == 1
                and version.adapter_digest != version.shard_adapters[0].adapter_digest):
            raise Invalid("adapter_digest differs from the digest of the one shard "
                          "adapter it serves")
        ctx.put_record(key, version)
        ctx.set_event("ModelVersionRegistered", {
            "version_id": version.version_id, "round_id": version.round_id,
            "adapter_digest": version.adapter_digest, "parents": version.parents})
        return version

    @query
    async def get_model_version(self, ctx: Context, version_id: Id) -> ModelVersion:
        return await ctx.require(keys.model_version(version_id), ModelVersion,
                                 f"model version {version_id}")

    @query
    async def list_model_versions(self, ctx: Context, round_id: RoundId) -> list[ModelVersion]:
        """The model versions registered for a round (the bridge anchors them with it)."""
        return [v for v in await ctx.scan(keys.model_version(), ModelVersion)
                if v.round_id == round_id]

    @query
    async def get_lineage(self, ctx: Context, version_id: Id) -> list[ModelVersion]:
        """The version and all its ancestors, breadth first, each once."""
        start = await self.get_model_version(ctx, version_id)
        lineage, seen, queue = [start], {start.version_id}, list(start.parents)
        while queue and len(lineage) < MAX_LINEAGE:
            parent_id = queue.pop(0)
            if parent_id in seen:
                continue
            seen.add(parent_id)
            parent = await ctx.require(keys.model_version(parent_id), ModelVersion,
                                       f"model version {parent_id}")
            lineage.append(parent)
            queue.extend(parent.parents)
        return lineage

    # --- unlearning and anchoring ------------------------------------------------------

    @transaction
    async def record_unlearning_notice(self, ctx: Context,
                                       notice: UnlearningNotice) -> UnlearningNotice:
        """Public notice of an executed deletion by the caller's org (no personal data).

        Both model versions must be registered, and the new one must descend from the
        old one (the replay starts from the old lineage). ``round_id`` must be the next
        round to be opened, so the anchor of that round covers the notice.
        """
        _require_self(ctx, notice.org, "file a notice for")
        await _require_member(ctx)
        key = keys.unlearning_notice(notice.notice_id)
        if (same := await ctx.stored_once(
                key, notice, f"unlearning notice {notice.notice_id} already exists with "
                "different data")) is not None:
            return same
        last = await ctx.stub.get_state(ctx.key(keys.last_round()))
        next_round = (int(last) if last else 0) + 1
        if notice.round_id != next_round:
            raise Invalid(f"an unlearning notice names the next round, {next_round}, "
                          f"whose anchor will cover it; not {notice.round_id}")
        await self.get_model_version(ctx, notice.old_version)
        lineage = await self.get_lineage(ctx, notice.new_version)
        if notice.old_version not in {v.version_id for v in lineage}:
            raise Invalid(f"model version {notice.new_version} does not descend "
                          f"from {notice.old_version}")
        ctx.put_record(key, notice)
        ctx.set_event("UnlearningNotice", notice.model_dump(mode="json"))
        return notice

    @query
    async def get_unlearning_notice(self, ctx: Context, notice_id: Id) -> UnlearningNotice:
        return await ctx.require(keys.unlearning_notice(notice_id), UnlearningNotice,
                                 f"unlearning notice {notice_id}")

    @query
    async def list_unlearning_notices(self, ctx: Context,
                                      round_id: RoundId | None = None) -> list[UnlearningNotice]:
        """All notices, or those whose anchor round is ``round_id`` (the bridge anchors
        them with that round)."""
        notices = await ctx.scan(keys.unlearning_notice(), UnlearningNotice)
        return notices if round_id is None else [n for n in notices if n.round_id == round_id]

    @transaction
    async def record_anchor_receipt(self, ctx: Context, receipt: AnchorReceipt) -> AnchorReceipt:
        """Record where rounds first..last were anchored; ranges never overlap."""
        await _require_member(ctx)
        key = keys.anchor(receipt.first_round, receipt.last_round)
        if (same := await ctx.stored_once(
                key, receipt, f"rounds {receipt.first_round}..{receipt.last_round} are "
                "already anchored with a different receipt")) is not None:
            return same
        for other in await ctx.scan(keys.anchor(), AnchorReceipt):
            if other.first_round <= receipt.last_round and receipt.first_round <= other.last_round:
                raise Conflict(f"rounds {receipt.first_round}..{receipt.last_round} "
                               f"overlap anchored rounds {other.first_round}.."
                               f"{other.last_round}")
        ctx.put_record(key, receipt)
        ctx.set_event("AnchorRecorded", receipt.model_dump(mode="json"))
        return receipt

    @query
    async def list_anchor_receipts(self, ctx: Context) -> list[AnchorReceipt]:
        return await ctx.scan(keys.anchor(), AnchorReceipt)


# --- helpers ---------------------------------------------------------------------------


def _require_self(ctx: Context, msp_id: str, action: str) -> None:
    if msp_id != ctx.client_msp_id:
        raise Forbidden(f"caller {ctx.client_msp_id} cannot {action} {msp_id}: an org "
                        "acts only in its own name")


async def _require_member(ctx: Context) -> OrgRecord:
    org = await ctx.get_record(keys.org(ctx.client_msp_id), OrgRecord)
    if org is None:
        raise Forbidden(f"caller {ctx.client_msp_id} is not a registered org "
                        "(RegisterOrg first)")
    return org



async def _get_round(ctx: Context, round_id: int) -> Round:
    """The round record as stored (the lifecycle up to ``closed``); reads no finality, so
    a transaction that uses it never conflicts with FinalizeRound."""
    return await ctx.require(keys.round_(round_id), Round, f"round {round_id}")


async def _round_view(ctx: Context, round_id: int) -> Round:
    """The round as its readers see it: ``final`` with its digest once finalised."""
    round_ = await _get_round(ctx, round_id)
    return _with_finality(round_, await ctx.get_record(keys.finality(round_id), RoundFinality))


def _with_finality(round_: Round, finality: RoundFinality | None) -> Round:
    if finality is None:
        return round_
    return round_.model_copy(update={"status": "final",
                                     "aggregate_digest": finality.aggregate_digest,
                                     "server_state_digest": finality.server_state_digest})
