"""initial: rounds, blobs, submissions, aggregates, attestations, model_versions

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rounds",
        sa.Column("round_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.String(32), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("committee", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_digest", sa.String(64), nullable=False),
        sa.Column("base_version_id", sa.String(128), nullable=True),
        sa.Column("base_adapter_hash", sa.String(64), nullable=True),
        sa.Column("version_id", sa.String(128), nullable=True),
        sa.Column("open_tx", sa.String(128), nullable=True),
        sa.Column("close_tx", sa.String(128), nullable=True),
        sa.Column("model_tx", sa.String(128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("round_id"),
    )
    op.create_index("ix_rounds_status", "rounds", ["status"])
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org", sa.String(128), nullable=False),
        sa.Column("update_hash", sa.String(64), nullable=False),
        sa.Column("declared_samples", sa.Integer(), nullable=True),
        sa.Column("ledger_samples", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"]),
        sa.ForeignKeyConstraint(["update_hash"], ["blobs.sha256"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("round_id", "org", name="uq_submissions_round_org"),
    )
    op.create_index("ix_submissions_round_id", "submissions", ["round_id"])
    op.create_table(
        "aggregates",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("included", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"]),
        sa.ForeignKeyConstraint(["digest"], ["blobs.sha256"]),
        sa.PrimaryKeyConstraint("round_id"),
    )
    op.create_table(
        "attestations",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"]),
        sa.PrimaryKeyConstraint("round_id", "org"),
    )
    op.create_table(
        "model_versions",
        sa.Column("version_id", sa.String(128), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("adapter_digest", sa.String(64), nullable=False),
        sa.Column("parents", sa.JSON(), nullable=False),
        sa.Column("tx_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"]),
        sa.ForeignKeyConstraint(["adapter_digest"], ["blobs.sha256"]),
        sa.PrimaryKeyConstraint("version_id"),
        sa.UniqueConstraint("round_id"),
    )


def downgrade() -> None:
    op.drop_table("model_versions")
    op.drop_table("attestations")
    op.drop_table("aggregates")
    op.drop_index("ix_submissions_round_id", table_name="submissions")
    op.drop_table("submissions")
    op.drop_table("blobs")
    op.drop_index("ix_rounds_status", table_name="rounds")
    op.drop_table("rounds")
