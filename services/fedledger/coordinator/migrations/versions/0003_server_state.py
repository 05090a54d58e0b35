"""server optimizer state: each round's base state and base round, each aggregate's state
after the server step, each lineage step's state

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rounds", sa.Column("base_round_id", sa.Integer(), nullable=True))
    op.add_column("rounds", sa.Column("base_server_state_hash", sa.String(64), nullable=True))
    op.add_column("aggregates", sa.Column("server_state_digest", sa.String(64), nullable=True))
    op.add_column("shard_steps", sa.Column("server_state_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("shard_steps", "server_state_digest")
    op.drop_column("aggregates", "server_state_digest")
    op.drop_column("rounds", "base_server_state_hash")
    op.drop_column("rounds", "base_round_id")
