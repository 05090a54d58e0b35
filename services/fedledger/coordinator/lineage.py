"""The shard-groups' lineages (SISA over federated LoRA, docs/unlearning.md).

With ``federation.shards = S`` every round trains one shard-group ``s`` at the next
position (``step``) of its lineage, starting from the adapter the step before left
(the LoRA init at step 1). ``shard_steps`` holds each shard's current lineage: the
final round of every step and the adapter after it. A deletion's replay rounds rewrite
the steps from the first one that used the data; every other step stays.

What a served model version merges: every shard whose lineage has trained an adapter,
except the shards a pending deletion is about to replay (they are left out at once,
which is exact: the merge of the others never saw the data).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import AggregateRow, ShardStepRow, SubmissionRow


def steps_of(session: Session, shard: int) -> list[ShardStepRow]:
    return list(session.scalars(select(ShardStepRow).where(ShardStepRow.shard == shard)
                                .order_by(ShardStepRow.step)))


def last_step(session: Session, shard: int) -> int:
    return session.scalar(select(func.max(ShardStepRow.step))
                          .where(ShardStepRow.shard == shard)) or 0


def choose_shard(session: Session, shards: int) -> int:
    """The shard with the shortest lineage (the lowest index among equals): rounds go
    round-robin over the shard-groups, and a failed round is retried first."""
    return min(range(shards), key=lambda s: (last_step(session, s), s))


def _step(session: Session, shard: int, step: int) -> ShardStepRow | None:
    """The lineage row of ``step`` (None at step 0: before any training)."""
    if step <= 0:
        return None
    row = session.get(ShardStepRow, (shard, step))
    if row is None:
        raise LookupError(f"shard {shard} has no step {step}")
    return row


def adapter_at(session: Session, shard: int, step: int) -> str | None:
    """The shard's adapter digest after ``step`` (None: the LoRA init)."""
    row = _step(session, shard, step)
    return row.digest if row is not None else None


def server_state_at(session: Session, shard: int, step: int) -> str | None:
    """The shard's server optimizer state digest after ``step`` (None: the initial state)."""
    row = _step(session, shard, step)
    return row.server_state_digest if row is not None else None


def source_round_at(session: Session, shard: int, step: int) -> int | None:
    """The final round that produced the shard's adapter after ``step``: a step carried
    over for lack of data keeps the adapter (and state) of the step before, so the round
    is the last one at or before ``step`` (None: the LoRA init)."""
    for row in reversed(steps_of(session, shard)):
        if row.step <= step and row.round_id is not None:
            return row.round_id
    return None


def record_step(session: Session, *, shard: int, step: int, round_id: int | None,
                digest: str | None, included: Iterable[str],
                server_state_digest: str | None = None) -> ShardStepRow:
    """Set ``shard``'s lineage at ``step``; the participation record (``invited``) is kept
    from the first time the step was recorded."""
    row = session.get(ShardStepRow, (shard, step))
    now = datetime.now(UTC)
    if row is None:
        row = ShardStepRow(shard=shard, step=step, invited=sorted(set(included)))
        session.add(row)
    row.round_id, row.digest, row.updated_at = round_id, digest, now
    row.server_state_digest = server_state_digest
    session.flush()
    return row


def shard_adapter(session: Session, shard: int) -> dict[str, Any] | None:
    """The shard's current adapter as a model version lists it, ``{"shard", "round_id",
    "adapter_digest"}`` (the round is the last one that trained it: a step carried over
    for lack of data keeps the adapter of the step before); None when untrained."""
    for row in reversed(steps_of(session, shard)):
        if row.round_id is not None:
            return {"shard": shard, "round_id": row.round_id, "adapter_digest": row.digest}
    return None


def served_adapters(session: Session, shards: int, exclude: Iterable[int] = ()
                    ) -> list[dict[str, Any]]:
    """The shard adapters a served version merges, sorted by shard."""
    skip = set(exclude)
    adapters = [shard_adapter(session, s) for s in range(shards) if s not in skip]
    return [a for a in adapters if a is not None]


def lineage_rounds(session: Session, shard: int) -> list[int]:
    return [row.round_id for row in steps_of(session, shard) if row.round_id is not None]


def commitment_roots(session: Session, shards: Iterable[int]) -> list[dict[str, Any]]:
    """The data commitments behind the given shards' lineages: the roots the included
    submissions of every lineage round declared, each once, sorted."""
    seen: dict[tuple, dict[str, Any]] = {}
    for shard in shards:
        for round_id in lineage_rounds(session, shard):
            aggregate = session.get(AggregateRow, round_id)
            included = {i["org"] for i in aggregate.included} if aggregate else set()
            for sub in session.scalars(select(SubmissionRow).where(
                    SubmissionRow.round_id == round_id)):
                if sub.org not in included:
                    continue
                for root in sub.commitment_roots or []:
                    key = (root["org"], root["dataset_id"], root["shard"], root["slice"],
                           root["root"])
                    seen[key] = dict(root)
    return [seen[k] for k in sorted(seen)]
