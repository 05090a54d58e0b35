"""The coordinator's tables (SQLAlchemy 2). The migrations in ``migrations/`` create
exactly these; a test compares the two on SQLite and Postgres.

Round ``status``: ``opening`` (row written, OpenRound not yet confirmed: resolved at the
next start), ``open``, ``closed``, ``aggregated``, ``final``, ``failed``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

HASH = String(64)


class Base(DeclarativeBase):
    pass


class RoundRow(Base):
    __tablename__ = "rounds"

    round_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    shard: Mapped[int] = mapped_column(Integer, default=0)
    deadline: Mapped[str] = mapped_column(String(32))
    quorum: Mapped[int] = mapped_column(Integer)
    committee: Mapped[list[str]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_digest: Mapped[str] = mapped_column(HASH)
    base_version_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    base_adapter_hash: Mapped[str | None] = mapped_column(HASH, nullable=True)
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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AttestationRow(Base):
    __tablename__ = "attestations"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), primary_key=True)
    org: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[str] = mapped_column(HASH)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"

    version_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.round_id"), unique=True)
    adapter_digest: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    parents: Mapped[list[str]] = mapped_column(JSON)
    tx_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
