"""Deletion requests and what proofs need: commitment history (with the committed ids),
data subjects, deleted samples, published private-state trees, signed anchor batches

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

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "commitments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", sa.String(128), nullable=False),
        sa.Column("shard", sa.Integer, nullable=False),
        sa.Column("slice", sa.Integer, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sample_ids", sa.JSON, nullable=False),
        sa.Column("supersedes", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("tx_id", sa.String(128), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_commitments_dataset_id", "commitments", ["dataset_id"])
    op.create_index("ix_commitments_root", "commitments", ["root"])
    op.create_table(
        "subject_samples",
        sa.Column("dataset_id", sa.String(128), primary_key=True),
        sa.Column("sample_id", sa.String(256), primary_key=True),
        sa.Column("subject_id", sa.String(128), nullable=False),
    )
    op.create_index("ix_subject_samples_subject_id", "subject_samples", ["subject_id"])
    op.create_table(
        "deleted_samples",
        sa.Column("dataset_id", sa.String(128), primary_key=True),
        sa.Column("sample_id", sa.String(256), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("deleted_at", _TS, nullable=False),
    )
    op.create_index("ix_deleted_samples_request_id", "deleted_samples", ["request_id"])
    op.create_table(
        "deletion_requests",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("dataset_id", sa.String(128), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=True),
        sa.Column("sample_ids", sa.JSON, nullable=False),
        sa.Column("whole_dataset", sa.Boolean, nullable=False),
        sa.Column("legal_basis", sa.String(512), nullable=False),
        sa.Column("requester", sa.String(512), nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("notice_id", sa.String(128), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_steps", sa.JSON, nullable=False),
        sa.Column("affected_shards", sa.JSON, nullable=False),
        sa.Column("coordinator", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("timings", sa.JSON, nullable=False),
        sa.Column("history", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_deletion_requests_subject_id", "deletion_requests", ["subject_id"])
    op.create_index("ix_deletion_requests_content_digest", "deletion_requests",
                    ["content_digest"])
    op.create_index("ix_deletion_requests_status", "deletion_requests", ["status"])
    op.create_table(
        "published_states",
        sa.Column("root", sa.String(64), primary_key=True),
        sa.Column("leaves", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "signed_batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("first_round", sa.Integer, nullable=False),
        sa.Column("last_round", sa.Integer, nullable=False),
        sa.Column("root", sa.String(64), nullable=False, unique=True),
        sa.Column("leaves", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_signed_batches_first_round", "signed_batches", ["first_round"])


def downgrade() -> None:
    for table in ("signed_batches", "published_states", "deletion_requests", "deleted_samples",
                  "subject_samples", "commitments"):
        op.drop_table(table)
