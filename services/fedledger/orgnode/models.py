"""The org node's tables (SQLAlchemy 2). Samples are not here: each dataset's samples
are one JSONL file in ``data_dir/datasets``; the table holds what describes it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fedledger.web.database import utc_timestamp
from fedledger.web.database import utcnow as utcnow  # the services' one clock


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = utc_timestamp()


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
    created_at: Mapped[datetime] = utc_timestamp()


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
    created_at: Mapped[datetime] = utc_timestamp()
    updated_at: Mapped[datetime] = utc_timestamp(on_update=True)


class Policy(Base):
    __tablename__ = "policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), default="always")
    rounds: Mapped[list] = mapped_column(JSON, default=list)


class QValueRow(Base):
    """One entry of this org's Q-table (the participation agent): the value of an
    action in a discrete state and how often it was updated."""

    __tablename__ = "q_values"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    action: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = utc_timestamp(on_update=True)


class ParticipationRow(Base):
    """The org's participation decision for a round (also on its private channel), and
    for a Q-learning decision what the agent learned from it once its reward was known.

    ``accuracy``: the org's own test accuracy of the round's starting model, measured
    when deciding (the gain of a round is the next decision's accuracy minus this)."""

    __tablename__ = "participation_decisions"

    round_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    local_steps: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    shard: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signals: Mapped[dict] = mapped_column(JSON, default=dict)
    epsilon: Mapped[float | None] = mapped_column(Float, nullable=True)
    explored: Mapped[bool] = mapped_column(Boolean, default=False)
    q_values: Mapped[dict] = mapped_column(JSON, default=dict)
    allowed: Mapped[list] = mapped_column(JSON, default=list)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: The ledger record exactly as submitted (retries send identical bytes).
    record: Mapped[dict] = mapped_column(JSON, default=dict)
    tx_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: Set once the Q-table learned from this decision: the reward and its parts.
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[dict] = mapped_column(JSON, default=dict)
    learned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = utc_timestamp()


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
    attested_at: Mapped[datetime] = utc_timestamp()


class CommitmentRow(Base):
    """One salted sorted-Merkle commitment of a (dataset, shard, slice): the ids it
    commits to stay here, with the root on the private channel. A deletion adds a row
    that supersedes the current one; old rows stay, so a proof against any model
    version's root can be made later."""

    __tablename__ = "commitments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(128), index=True)
    shard: Mapped[int] = mapped_column(Integer)
    slice: Mapped[int] = mapped_column(Integer, default=0)
    root: Mapped[str] = mapped_column(String(64), index=True)
    count: Mapped[int] = mapped_column(Integer)
    sample_ids: Mapped[list] = mapped_column(JSON)
    supersedes: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The deletion request that made this root (None: the dataset's registration).
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tx_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = utc_timestamp()


class SubjectSample(Base):
    """Which samples belong to a data subject (kept here only, never on a ledger)."""

    __tablename__ = "subject_samples"

    dataset_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sample_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(128), index=True)


class DeletedSample(Base):
    """A sample that is no longer training data (from the moment its request is
    accepted); its text is erased from the dataset file once the request completes."""

    __tablename__ = "deleted_samples"

    dataset_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sample_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    deleted_at: Mapped[datetime] = utc_timestamp()


class DeletionRow(Base):
    """A data-deletion request and how far its execution got.

    ``status``: ``executing`` (filed on the private channel, samples excluded, new
    commitments recorded, the consortium asked to replay), ``replaying`` (the
    coordinator serves the interim version and runs the replay rounds), ``recording``
    (the new version is served; metrics and records being written), ``completed``,
    ``failed`` (``error`` says why)."""

    __tablename__ = "deletion_requests"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(128))
    subject_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    sample_ids: Mapped[list] = mapped_column(JSON)
    whole_dataset: Mapped[bool] = mapped_column(Boolean, default=False)
    legal_basis: Mapped[str] = mapped_column(String(512))
    requester: Mapped[str] = mapped_column(String(512))
    #: sha256 of the request's canonical content: the same request again is this one.
    content_digest: Mapped[str] = mapped_column(String(64), index=True)
    notice_id: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: {"<shard>": first lineage step that used the data}
    first_steps: Mapped[dict] = mapped_column(JSON, default=dict)
    affected_shards: Mapped[list] = mapped_column(JSON, default=list)
    coordinator: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    timings: Mapped[dict] = mapped_column(JSON, default=dict)
    #: [{"at", "event", "tx_id"?, ...}] in order: what happened, with ledger tx ids.
    history: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = utc_timestamp()
    updated_at: Mapped[datetime] = utc_timestamp(on_update=True)


class PublishedState(Base):
    """A private-state tree this org published to the bridge (its leaves), kept so a
    private record can be proven against an anchor later, also after a restart."""

    __tablename__ = "published_states"

    root: Mapped[str] = mapped_column(String(64), primary_key=True)
    leaves: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = utc_timestamp()


class SignedBatch(Base):
    """An anchor batch this org checked and signed (its leaves), to build proof packages
    from later without asking the bridge."""

    __tablename__ = "signed_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    first_round: Mapped[int] = mapped_column(Integer, index=True)
    last_round: Mapped[int] = mapped_column(Integer)
    root: Mapped[str] = mapped_column(String(64), unique=True)
    leaves: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = utc_timestamp()
