"""Models and migrations agree, on SQLite and on Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fedledger.coordinator.models import (
    AggregateRow,
    AttestationRow,
    Base,
    BlobRow,
    ModelVersionRow,
    RoundRow,
    SubmissionRow,
)
from fedledger.web.database import make_engine, migrate


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'coordinator.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrations_match_models_and_store_rows(db_url) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine, "fedledger.coordinator")
        migrate(engine, "fedledger.coordinator")     # idempotent
        assert set(inspect(engine).get_table_names()) >= {
            "rounds", "blobs", "submissions", "aggregates", "attestations", "model_versions"}
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []

        now = datetime.now(UTC)
        digest, update = "a" * 64, "b" * 64
        with Session(engine) as session:
            session.add(RoundRow(round_id=1, status="final", shard=0, deadline="2030-01-01T00:00:00Z",
                                 quorum=2, committee=["Org1MSP", "Org2MSP"], config={"lora": {"r": 4}},
                                 config_digest="c" * 64, created_at=now, updated_at=now))
            session.add_all([BlobRow(sha256=update, size=10, kind="update", created_at=now),
                             BlobRow(sha256=digest, size=10, kind="aggregate", created_at=now)])
            session.flush()
            session.add(SubmissionRow(round_id=1, org="Org1MSP", update_hash=update,
                                      declared_samples=5, ledger_samples=5, created_at=now))
            session.add(AggregateRow(round_id=1, digest=digest, strategy="fedavg", params={},
                                     included=[{"org": "Org1MSP", "update_hash": update,
                                                "num_samples": 5}],
                                     result={"accepted": ["Org1MSP"]}, created_at=now))
            session.add(AttestationRow(round_id=1, org="Org2MSP", digest=digest))
            session.add(ModelVersionRow(version_id="v1", round_id=1, adapter_digest=digest,
                                        parents=[], tx_id="tx", created_at=now))
            session.commit()
        with Session(engine) as session:
            row = session.get(RoundRow, 1)
            assert row.committee == ["Org1MSP", "Org2MSP"] and row.config == {"lora": {"r": 4}}
            assert session.get(AggregateRow, 1).included[0]["num_samples"] == 5
            assert session.get(ModelVersionRow, "v1").parents == []
            session.add(SubmissionRow(round_id=1, org="Org1MSP", update_hash=update,
                                      created_at=now))
            with pytest.raises(IntegrityError):
                session.flush()
    finally:
        engine.dispose()
