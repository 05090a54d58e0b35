"""The bridge's durable outbox: what it has seen, built, signed, sent and recorded.

Every step of an anchor is written here before the next one starts, so a bridge that
crashes at any point resumes where it was: a batch is built once, its transaction is
signed once (the signed raw bytes and hash are stored *before* broadcasting), and a
restarted bridge re-broadcasts those same bytes or finds them mined, never a new
transaction. SQLite by default; any SQLAlchemy URL (Postgres in deployment).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from fedledger.web.database import utc_timestamp


class Base(DeclarativeBase):
    pass


class AnchorStatus(enum.StrEnum):
    BUILT = "built"          # tree and leaves stored
    SIGNED = "signed"        # m-of-n org signatures collected
    PREPARED = "prepared"    # raw transaction signed and stored, maybe broadcast
    CONFIRMED = "confirmed"  # mined with N confirmations
    RECORDED = "recorded"    # receipt written back on the consortium channel


class Checkpoint(Base):
    """Where the event follower resumes: after ``tx_id`` in block ``block_number``."""

    __tablename__ = "bridge_checkpoint"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_id: Mapped[str] = mapped_column(String(64), default="")


class FinalRound(Base):
    """A consortium round whose aggregate is final, waiting to be anchored."""

    __tablename__ = "bridge_final_rounds"
    round_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    aggregate_digest: Mapped[str] = mapped_column(String(64))
    anchor_id: Mapped[int | None] = mapped_column(ForeignKey("bridge_anchors.id"), nullable=True)
    seen_at: Mapped[datetime] = utc_timestamp()


class Anchor(Base):
    """One anchor transaction covering rounds first_round..last_round."""

    __tablename__ = "bridge_anchors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    first_round: Mapped[int] = mapped_column(BigInteger, unique=True)
    last_round: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(64))
    leaves_json: Mapped[str] = mapped_column(Text)  # the leaves, to build proofs later
    status: Mapped[AnchorStatus] = mapped_column(Enum(AnchorStatus, native_enum=False, length=16))
    signatures_json: Mapped[str] = mapped_column(Text, default="{}")
    raw_tx: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    receipt_tx_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = utc_timestamp()
    updated_at: Mapped[datetime] = utc_timestamp(on_update=True)

    @property
    def leaves(self) -> list[dict[str, Any]]:
        return json.loads(self.leaves_json)

    @property
    def signatures(self) -> dict[str, str]:
        return json.loads(self.signatures_json)


class Outbox:
    """Session handling for the bridge tables."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def checkpoint(self, name: str) -> tuple[int, str] | None:
        with self.session() as s:
            row = s.get(Checkpoint, name)
            return (row.block_number, row.tx_id) if row else None

    def save_checkpoint(self, session: Session, name: str, block_number: int, tx_id: str) -> None:
        row = session.get(Checkpoint, name)
        if row is None:
            session.add(Checkpoint(name=name, block_number=block_number, tx_id=tx_id))
        else:
            row.block_number, row.tx_id = block_number, tx_id

    def unfinished(self) -> list[Anchor]:
        with self.session() as s:
            return list(s.scalars(select(Anchor).where(Anchor.status != AnchorStatus.RECORDED)
                                  .order_by(Anchor.first_round)))

    def anchors(self) -> list[Anchor]:
        with self.session() as s:
            return list(s.scalars(select(Anchor).order_by(Anchor.first_round)))

    def anchor_for_round(self, round_id: int) -> Anchor | None:
        with self.session() as s:
            return s.scalars(select(Anchor).where(Anchor.first_round <= round_id,
                                                  Anchor.last_round >= round_id)).first()

    def pending_rounds(self) -> list[FinalRound]:
        with self.session() as s:
            return list(s.scalars(select(FinalRound).where(FinalRound.anchor_id.is_(None))
                                  .order_by(FinalRound.round_id)))

    def update(self, anchor_id: int, **fields: Any) -> Anchor:
        with self.session() as s:
            anchor = s.get(Anchor, anchor_id)
            assert anchor is not None
            for key, value in fields.items():
                setattr(anchor, key, value)
            return anchor
