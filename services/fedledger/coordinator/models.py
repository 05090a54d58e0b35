"""The coordinator's tables (SQLAlchemy 2). The migrations in ``migrations/`` create
exactly these; a test compares the two on SQLite and Postgres.

Round ``status``: ``opening`` (row written, OpenRound not yet confirmed: resolved at the
next start), ``open``, ``closed``, ``aggregated``, ``final``, ``failed``.

SISA: each round trains one shard-group (``shard``) at one position of its lineage
(``step``); ``shard_steps`` is every shard's current lineage, ``unlearning_jobs`` the
deletions whose replay rounds rewrite it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fedledger.web.database import utcnow as utcnow  # the services' one clock

HASH = String(64)


class Base(DeclarativeBase):
    pass


class RoundRow(Base):
    __tablename__ = "rounds"

    round_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    shard: Mapped[int] = mapped_column(Integer, default=0)
    #: Position in the shard's lineage (1 = trained from the LoRA init); a replay round
    #: has the step of the round it replaces, and so the same training seeds.
    step: Mapped[int] = mapped_column(Integer, default=1)
    #: The round this one replays for a deletion (None: a normal round).
    replay_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    unlearning_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The voting defense of the round (None: none): {"validators", "vote_deadline",
    #: "reward_wei", "slash_wei", and how the validators were drawn: "seed",
    #: "seed_source", "weights", "stakes_block"}.
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    deadline: Mapped[str] = mapped_column(String(32))
    quorum: Mapped[int] = mapped_column(Integer)
    committee: Mapped[list[str]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_digest: Mapped[str] = mapped_column(HASH)
    base_version_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    base_adapter_hash: Mapped[str | None] = mapped_column(HASH, nullable=True)
    #: The final round that produced the base adapter (None: the LoRA init); the org
    #: nodes check the base against that round's finality on the ledger.
    base_round_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Under a server optimizer: the state the round's step starts from (None: the
    #: initial state, or no server optimizer).
    base_server_state_hash: Mapped[str | None] = mapped_column(HASH, nullable=True)
    version_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    open_tx: Mapped[str | None] = mapped_column(String(128), nullable=True)
    close_tx: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_tx: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BlobRow(Base):
    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(HASH, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))          # update | aggregate
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SubmissionRow(Base):
    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("round_id", "org", name="uq_submissions_round_org"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), index=True)
    org: Mapped[str] = mapped_column(String(128))
    update_hash: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    #: X-Num-Samples of the upload (informational; the ledger's count is the weight).
    declared_samples: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Set once the ledger holds SubmitUpdate from ``org`` with ``update_hash``.
    ledger_samples: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The submission's data commitments as the ledger holds them (roots only).
    commitment_roots: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeclineRow(Base):
    """An invited org that will not submit to a round (no data in the shard, or its
    participation policy), so the round closes without waiting for its deadline."""

    __tablename__ = "declines"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), primary_key=True)
    org: Mapped[str] = mapped_column(String(128), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AggregateRow(Base):
    __tablename__ = "aggregates"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    strategy: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: [{"org", "update_hash", "num_samples"}] sorted by org: the strategy's inputs.
    included: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: accepted / rejected / details of the strategy (plain JSON).
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Under a server optimizer: ``digest`` is the adapter after its step, and this the
    #: state after it (a blob too).
    server_state_digest: Mapped[str | None] = mapped_column(HASH, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AttestationRow(Base):
    __tablename__ = "attestations"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), primary_key=True)
    org: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[str] = mapped_column(HASH)


class ShardStepRow(Base):
    """One step of a shard-group's current lineage: the adapter after it and the round
    that produced it. A replay overwrites the steps it re-runs; ``invited`` is the
    participation record of the step's first final round and never changes, so every
    replay invites the same orgs (an org left with no data in the shard declines)."""

    __tablename__ = "shard_steps"

    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    step: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The final round of this step; None when no invited org had data left (the
    #: adapter is carried over from the step before).
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.round_id"), nullable=True)
    #: The shard's adapter after this step (None: still the LoRA init).
    digest: Mapped[str | None] = mapped_column(HASH, nullable=True)
    #: The server optimizer's state after this step (None: none, or still the initial).
    server_state_digest: Mapped[str | None] = mapped_column(HASH, nullable=True)
    invited: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelVersionRow(Base):
    """A served model: the merge of the shard adapters of ``shard_adapters``.

    ``kind``: ``round`` (registered when a round became final), ``interim`` (served at
    once when a deletion arrives: the shards holding the data are left out) or
    ``unlearned`` (registered when the deletion's replay finished)."""

    __tablename__ = "model_versions"

    version_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), index=True)
    adapter_digest: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    parents: Mapped[list[str]] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(16), default="round")
    #: [{"shard", "round_id", "adapter_digest"}] sorted by shard.
    shard_adapters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: [{"org", "dataset_id", "shard", "slice", "root"}]: the data commitments of the
    #: submissions in the served shards' lineages.
    commitment_roots: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    unlearning_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tx_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UnlearningJobRow(Base):
    """A deletion an org asked the consortium to execute (no personal data: the org
    sends an opaque notice id and, per shard, the first step that used the data).

    ``status``: ``pending`` (waits for the round in progress), ``replaying`` (the
    interim version is served; replay rounds run), ``done`` (the new version is
    registered), ``failed`` (a replay round failed too often; ``error`` says why)."""

    __tablename__ = "unlearning_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[str] = mapped_column(String(128), unique=True)
    org: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: {"<shard>": first step that used the data}
    first_steps: Mapped[dict[str, int]] = mapped_column(JSON)
    #: [{"shard", "step", "of_round", "invited", "rounds": [round ids tried], "status"}]
    plan: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    old_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    interim_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    new_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    timings: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
