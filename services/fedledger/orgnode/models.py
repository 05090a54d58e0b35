"""The org node's tables (SQLAlchemy 2). Samples are not here: each dataset's samples
are one JSONL file in ``data_dir/datasets``; the table holds what describes it."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(128), default="")
    n: Mapped[int] = mapped_column(Integer)
    salt: Mapped[str] = mapped_column(String(64))
    shards: Mapped[int] = mapped_column(Integer, default=1)
    labels: Mapped[list] = mapped_column(JSON, default=list)
    commitments: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    update_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    num_samples: Mapped[int | None] = mapped_column(Integer, nullable=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    round: Mapped[dict] = mapped_column(JSON, default=dict)
    datasets: Mapped[dict] = mapped_column(JSON, default=dict)
    #: The signed Submission record, kept so a retry sends identical bytes (ECDSA
    #: signatures are randomised; the ledger accepts only the identical record again).
    submission: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class Policy(Base):
    __tablename__ = "policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), default="always")
    rounds: Mapped[list] = mapped_column(JSON, default=list)


class ModelVersionRow(Base):
    """An aggregate this org recomputed and attested (``version_id`` once registered)."""

    __tablename__ = "model_versions"

    round_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    digest: Mapped[str] = mapped_column(String(64))
    adapter_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    strategy: Mapped[dict] = mapped_column(JSON, default=dict)
    included: Mapped[list] = mapped_column(JSON, default=list)
    path: Mapped[str] = mapped_column(String(1024))
    attested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
