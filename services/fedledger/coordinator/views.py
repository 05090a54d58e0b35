"""The JSON the coordinator's routes return: database rows to the response models of
:mod:`fedledger.protocol.coordinator_api` (reads only, no transition)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fedledger.protocol.coordinator_api import (
    AggregatePublic,
    BasePublic,
    DeclinePublic,
    LineagePublic,
    LineageStepPublic,
    ModelVersionPublic,
    RoundAggregatePublic,
    RoundLedgerPublic,
    RoundPublic,
    StrategyPublic,
    SubmissionPublic,
    UnlearningPublic,
)
from fedledger.web.errors import NotFound

from .lineage import steps_of
from .models import (
    AggregateRow,
    AttestationRow,
    DeclineRow,
    ModelVersionRow,
    RoundRow,
    SubmissionRow,
    UnlearningJobRow,
)


def get_round(session: Session, round_id: int) -> RoundRow:
    row = session.get(RoundRow, round_id)
    if row is None:
        raise NotFound(f"round {round_id} does not exist", details={"round_id": round_id})
    return row


def round_public(session: Session, row: RoundRow) -> RoundPublic:
    subs = session.scalars(select(SubmissionRow).where(SubmissionRow.round_id == row.round_id)
                           .order_by(SubmissionRow.org)).all()
    agg = session.get(AggregateRow, row.round_id)
    atts = session.scalars(select(AttestationRow).where(AttestationRow.round_id == row.round_id)
                           .order_by(AttestationRow.org)).all()
    declines = session.scalars(select(DeclineRow).where(DeclineRow.round_id == row.round_id)
                               .order_by(DeclineRow.org)).all()
    return RoundPublic(
        round_id=row.round_id, status=row.status, deadline=row.deadline, quorum=row.quorum,
        committee=list(row.committee), config=row.config, config_digest=row.config_digest,
        shard=row.shard, step=row.step, replay_of=row.replay_of,
        base=(BasePublic(version_id=row.base_version_id, adapter_hash=row.base_adapter_hash,
                         round_id=row.base_round_id,
                         server_state_hash=row.base_server_state_hash)
              if row.base_adapter_hash else None),
        declines=[DeclinePublic(org=d.org, reason=d.reason) for d in declines],
        validation=row.validation,
        submissions=[SubmissionPublic(org=s.org, update_hash=s.update_hash,
                                      num_samples=s.ledger_samples if s.ledger_samples is not None
                                      else s.declared_samples,
                                      on_ledger=s.ledger_samples is not None) for s in subs],
        aggregate=(RoundAggregatePublic(aggregate_digest=agg.digest,
                                        included=[i["org"] for i in agg.included],
                                        strategy=agg.strategy,
                                        server_state_digest=agg.server_state_digest)
                   if agg else None),
        attestations=[a.org for a in atts],
        version_id=row.version_id,
        ledger=RoundLedgerPublic(open_tx=row.open_tx, close_tx=row.close_tx, model_tx=row.model_tx),
        error=row.error)


def aggregate_public(session: Session, round_id: int) -> AggregatePublic:
    get_round(session, round_id)
    agg = session.get(AggregateRow, round_id)
    if agg is None:
        raise NotFound(f"round {round_id} has no aggregate yet", details={"round_id": round_id})
    return AggregatePublic(round_id=round_id, aggregate_digest=agg.digest,
                           server_state_digest=agg.server_state_digest, included=agg.included,
                           strategy=StrategyPublic(name=agg.strategy, params=agg.params),
                           accepted=agg.result.get("accepted", []),
                           rejected=agg.result.get("rejected", {}))


def model_public(session: Session, version: ModelVersionRow) -> ModelVersionPublic:
    """A model version with its lineage: the first parents back to the first version."""
    lineage: list[str] = []
    current, seen = version, {version.version_id}
    while current.parents:
        parent = session.get(ModelVersionRow, current.parents[0])
        if parent is None or parent.version_id in seen:
            break
        seen.add(parent.version_id)
        lineage.append(parent.version_id)
        current = parent
    return ModelVersionPublic(
        version_id=version.version_id, round_id=version.round_id, kind=version.kind,
        adapter_digest=version.adapter_digest, parents=list(version.parents), lineage=lineage,
        shard_adapters=list(version.shard_adapters),
        commitment_roots=list(version.commitment_roots), unlearning_id=version.unlearning_id,
        tx_id=version.tx_id, created_at=version.created_at.isoformat())


def lineage_public(session: Session, shards: int) -> LineagePublic:
    return LineagePublic(shards=shards, lineages={
        str(s): [LineageStepPublic(step=r.step, round_id=r.round_id, digest=r.digest,
                                   invited=r.invited) for r in steps_of(session, s)]
        for s in range(shards)})


def unlearning_public(job: UnlearningJobRow) -> UnlearningPublic:
    return UnlearningPublic(
        notice_id=job.notice_id, org=job.org, status=job.status, first_steps=job.first_steps,
        plan=job.plan, affected_shards=sorted(int(s) for s in job.first_steps),
        replay_rounds=[r for item in job.plan for r in item.get("rounds", [])],
        old_version=job.old_version, interim_version=job.interim_version,
        new_version=job.new_version, timings=job.timings, error=job.error,
        created_at=job.created_at.isoformat(), updated_at=job.updated_at.isoformat())
