"""The model-version registry: which version is served, and registering a new one (the
exact merge of the shard adapters, its blob, its ledger record and its row)."""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fedledger.digests import sha256_hex
from fedledger.learning.unlearning.sisa import merge_shard_adapters
from fedledger.learning.updates import update_bytes
from fedledger.protocol.records import CommitmentRoot, ModelVersion, ShardAdapter

from . import lineage
from .aggregate import load_stored_update
from .blobs import BlobStore
from .experiment import context_of, round_config
from .ledger import OperatorLedger
from .models import BlobRow, ModelVersionRow, UnlearningJobRow, utcnow
from .settings import CoordinatorSettings

log = logging.getLogger(__name__)

#: Deletion jobs whose shards are still to be replayed.
UNLEARNING_ACTIVE = ("pending", "replaying")


def served_version(session: Session) -> ModelVersionRow | None:
    """The version served now: the last one registered."""
    return session.scalars(select(ModelVersionRow).order_by(
        ModelVersionRow.created_at.desc(), ModelVersionRow.version_id.desc())).first()


def pending_shards(session: Session) -> set[int]:
    """Shards that unfinished deletions will replay: left out of every served merge."""
    shards: set[int] = set()
    for job in session.scalars(select(UnlearningJobRow).where(
            UnlearningJobRow.status.in_(UNLEARNING_ACTIVE))):
        shards |= {int(s) for s in job.first_steps}
    return shards


class ModelRegistry:
    """Registers model versions (callers hold the round lock and own the session)."""

    def __init__(self, settings: CoordinatorSettings, blobs: BlobStore,
                 ledger: OperatorLedger) -> None:
        self.settings = settings
        self.blobs = blobs
        self.ledger = ledger

    def register(self, session: Session, *, round_id: int, kind: str,
                 unlearning_id: int | None = None) -> tuple[str, str | None]:
        """Register the model served now: the exact merge of every trained shard adapter
        except the shards of unfinished deletions (the LoRA init, i.e. the base model,
        when none is left), with its lineage and data commitments, as a version of
        ``round_id`` (a final round) whose parent is the version served before."""
        federation = self.settings.experiment.federation
        adapters = lineage.served_adapters(session, federation.shards, pending_shards(session))
        context = context_of(round_config(self.settings))
        if adapters:
            merged = merge_shard_adapters(
                [load_stored_update(self.blobs, a["adapter_digest"], context,
                                    max_bytes=self.settings.max_update_bytes) for a in adapters],
                federation.shard_merge)
        else:
            merged = context.initial_state
        data = update_bytes(merged)
        digest = sha256_hex(data)
        self.blobs.put(data)
        if session.get(BlobRow, digest) is None:
            session.add(BlobRow(sha256=digest, size=len(data), kind="model", created_at=utcnow()))
            session.flush()
        previous = served_version(session)
        taken = session.scalar(select(func.count()).select_from(ModelVersionRow).where(
            ModelVersionRow.round_id == round_id)) or 0
        version_id = f"v{round_id}" if not taken else f"v{round_id}.{taken}"
        roots = lineage.commitment_roots(session, [a["shard"] for a in adapters])
        record = ModelVersion(
            version_id=version_id, round_id=round_id, adapter_digest=digest,
            parents=[previous.version_id] if previous else [],
            shard_adapters=[ShardAdapter(**a) for a in adapters],
            commitment_roots=[CommitmentRoot(**r) for r in roots])
        written = self.ledger.register_model_version(record).submit()
        session.add(ModelVersionRow(
            version_id=version_id, round_id=round_id, adapter_digest=digest,
            parents=list(record.parents), kind=kind, shard_adapters=adapters,
            commitment_roots=roots, unlearning_id=unlearning_id, tx_id=written.tx_id,
            created_at=utcnow()))
        session.flush()
        log.info("model version %s (%s): shards %s, digest %s", version_id, kind,
                 [a["shard"] for a in adapters], digest)
        return version_id, written.tx_id
