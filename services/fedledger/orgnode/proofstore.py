"""What the org keeps to prove its records later (the
:class:`fedledger.bridge.agents.AnchorStore` of its anchor agent): every private-state
tree it published and every anchor batch it signed, with their leaves, in its own
database. With those and the anchor receipts on the consortium channel, the org builds
proof packages without asking the bridge, also after a restart."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fedledger.orgnode.models import PublishedState, SignedBatch


class SqlAnchorStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def save_private_state(self, root: str, leaves: list[dict[str, Any]]) -> None:
        with self.sessions() as session:
            if session.get(PublishedState, root) is None:
                session.add(PublishedState(root=root, leaves=leaves))
                session.commit()

    def private_state_leaves(self, root: str) -> list[dict[str, Any]] | None:
        with self.sessions() as session:
            row = session.get(PublishedState, root)
            return None if row is None else list(row.leaves)

    def save_signed_batch(self, first_round: int, last_round: int, root: str,
                          leaves: list[dict[str, Any]]) -> None:
        with self.sessions() as session:
            if session.scalar(select(SignedBatch).where(SignedBatch.root == root)) is None:
                session.add(SignedBatch(first_round=first_round, last_round=last_round,
                                        root=root, leaves=leaves))
                session.commit()

    def signed_batch(self, root: str) -> SignedBatch | None:
        with self.sessions() as session:
            return session.scalar(select(SignedBatch).where(SignedBatch.root == root))
