"""The participation agent: its Q-table and the org's participation decisions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "q_values",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column("action", sa.String(16), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("visits", sa.Integer, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "participation_decisions",
        sa.Column("round_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("local_steps", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("shard", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("state", sa.String(64), nullable=True),
        sa.Column("signals", sa.JSON, nullable=False),
        sa.Column("epsilon", sa.Float, nullable=True),
        sa.Column("explored", sa.Boolean, nullable=False),
        sa.Column("q_values", sa.JSON, nullable=False),
        sa.Column("allowed", sa.JSON, nullable=False),
        sa.Column("accuracy", sa.Float, nullable=True),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("tx_id", sa.String(128), nullable=True),
        sa.Column("reward", sa.Float, nullable=True),
        sa.Column("outcome", sa.JSON, nullable=False),
        sa.Column("learned_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("participation_decisions")
    op.drop_table("q_values")
