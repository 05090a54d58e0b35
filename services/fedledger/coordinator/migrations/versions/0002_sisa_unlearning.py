"""SISA lineages and unlearning: round steps and replays, declines, shard steps, model
versions with shard adapters and commitment roots (several per round), unlearning jobs;
the voting defense of a round

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rounds", sa.Column("step", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("rounds", sa.Column("replay_of", sa.Integer(), nullable=True))
    op.add_column("rounds", sa.Column("unlearning_id", sa.Integer(), nullable=True))
    op.add_column("rounds", sa.Column("validation", sa.JSON(), nullable=True))
    op.add_column("submissions", sa.Column("commitment_roots", sa.JSON(), nullable=True))
    op.create_table(
        "declines",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"]),
        sa.PrimaryKeyConstraint("round_id", "org"),
    )
    op.create_table(
        "shard_steps",
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("step", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("invited", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"]),
        sa.PrimaryKeyConstraint("shard", "step"),
    )
    op.create_table(
        "unlearning_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notice_id", sa.String(128), nullable=False),
        sa.Column("org", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_steps", sa.JSON(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("old_version", sa.String(128), nullable=True),
        sa.Column("interim_version", sa.String(128), nullable=True),
        sa.Column("new_version", sa.String(128), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notice_id"),
    )
    op.create_index("ix_unlearning_jobs_status", "unlearning_jobs", ["status"])

    # model_versions loses its one-version-per-round constraint (an interim and an
    # unlearned version can follow a round's own): rebuilt, rows copied, on both
    # dialects alike (the 0001 constraint has no portable name).
    op.create_table(
        "model_versions_new",
        sa.Column("version_id", sa.String(128), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("adapter_digest", sa.String(64), nullable=False),
        sa.Column("parents", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, server_default="round"),
        sa.Column("shard_adapters", sa.JSON(), nullable=False),
        sa.Column("commitment_roots", sa.JSON(), nullable=False),
        sa.Column("unlearning_id", sa.Integer(), nullable=True),
        sa.Column("tx_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.round_id"]),
        sa.ForeignKeyConstraint(["adapter_digest"], ["blobs.sha256"]),
        sa.PrimaryKeyConstraint("version_id"),
    )
    empty = "CAST('[]' AS JSON)" if op.get_bind().dialect.name == "postgresql" else "'[]'"
    op.execute("INSERT INTO model_versions_new (version_id, round_id, adapter_digest, parents, "
               "kind, shard_adapters, commitment_roots, tx_id, created_at) SELECT version_id, "
               f"round_id, adapter_digest, parents, 'round', {empty}, {empty}, tx_id, created_at "
               "FROM model_versions")
    op.drop_table("model_versions")
    op.rename_table("model_versions_new", "model_versions")
    op.create_index("ix_model_versions_round_id", "model_versions", ["round_id"])


def downgrade() -> None:
    raise NotImplementedError("0002 has no downgrade: model versions of several per round "
                              "cannot be folded back into one per round")
