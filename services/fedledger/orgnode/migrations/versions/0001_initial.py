"""The org node's initial tables.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(128), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("shards", sa.Integer, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("commitments", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("round_id", sa.Integer, nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("update_hash", sa.String(64), nullable=True),
        sa.Column("num_samples", sa.Integer, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("round", sa.JSON, nullable=False),
        sa.Column("datasets", sa.JSON, nullable=False),
        sa.Column("submission", sa.JSON, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "policy",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("rounds", sa.JSON, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("round_id", sa.Integer, primary_key=True),
        sa.Column("version_id", sa.String(128), nullable=True, unique=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("adapter_hash", sa.String(64), nullable=True),
        sa.Column("strategy", sa.JSON, nullable=False),
        sa.Column("included", sa.JSON, nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("attested_at", _TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("model_versions", "policy", "jobs", "datasets", "users"):
        op.drop_table(table)
