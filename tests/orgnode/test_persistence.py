"""Models and migrations on SQLite and Postgres; a restarted node keeps its state."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from fedledger.orgnode.app import create_app
from fedledger.orgnode.models import DatasetRow, Job, ModelVersionRow, Policy, User
from fedledger.web.database import make_engine, migrate

from .conftest import admin_headers, node_settings


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):  # noqa: ANN001, ANN201
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'node.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrations_and_models(db_url):  # noqa: ANN001
    engine = make_engine(db_url)
    migrate(engine, "fedledger.orgnode")
    migrate(engine, "fedledger.orgnode")  # at head: nothing to do
    tables = set(inspect(engine).get_table_names())
    assert {"users", "datasets", "jobs", "policy", "model_versions"} <= tables
    with Session(engine) as session:
        session.add_all([
            User(name="a", role="admin", token_sha256="0" * 64),
            DatasetRow(id="d1", name="n", source="upload", domain="", n=3, salt="ab" * 32,
                       shards=2, labels=["neg", "pos"],
                       commitments=[{"shard": 0, "merkle_root": "cd" * 32, "count": 3}]),
            Job(round_id=4, status="submitted", progress=0.9, metrics={"mean_loss": 1.5},
                round={"round_id": 4, "config": {"train": {"local_steps": 2}}},
                datasets={"d1": 3}, submission={"round_id": 4, "signature": "ab"}),
            Policy(id=1, mode="schedule", rounds=[1, 4]),
            ModelVersionRow(round_id=4, digest="ef" * 32, strategy={"name": "fedavg"},
                            included=[{"org": "Org1MSP"}], path="/x"),
        ])
        session.commit()
    with Session(engine) as session:
        job = session.scalar(select(Job).where(Job.round_id == 4))
        assert (job.status, job.metrics, job.datasets, job.submission["signature"]) == (
            "submitted", {"mean_loss": 1.5}, {"d1": 3}, "ab")
        assert job.round["config"]["train"]["local_steps"] == 2 and job.created_at is not None
        assert session.get(DatasetRow, "d1").commitments[0]["count"] == 3
        assert session.get(Policy, 1).rounds == [1, 4]
        assert session.get(ModelVersionRow, 4).version_id is None
    engine.dispose()


def test_restarted_node_keeps_users_and_policy(devnet, tmp_path, db_url):  # noqa: ANN001
    settings = node_settings(devnet, "Org2", tmp_path / "org2", db_url=db_url)
    with TestClient(create_app(settings)) as client:
        token = client.post("/users", json={"name": "val", "role": "viewer"},
                            headers=admin_headers()).json()["token"]
        client.put("/policy", json={"mode": "schedule", "rounds": [2]}, headers=admin_headers())
    with TestClient(create_app(settings)) as client:
        viewer = {"Authorization": f"Bearer {token}"}
        assert client.get("/me", headers=viewer).json()["user"] == "val"
        assert client.get("/policy", headers=viewer).json() == {"mode": "schedule", "rounds": [2]}
        assert len(client.get("/users", headers=admin_headers()).json()) == 2


def test_participation_tables(db_url):  # noqa: ANN001
    """The agent's Q-table and decisions (migration 0003) on SQLite and Postgres; the
    migrated schema matches the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from fedledger.orgnode.models import Base, ParticipationRow, QValueRow

    engine = make_engine(db_url)
    migrate(engine, "fedledger.orgnode")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if any(name in repr(d) for name in
                                   ("q_values", "participation_decisions"))]
    assert ours == []
    with Session(engine) as session:
        session.add_all([
            QValueRow(state="s0.g-1.t1.k1.b2", action="low", value=-0.25, visits=3),
            ParticipationRow(round_id=7, policy="qlearning", action="low", local_steps=3,
                             reason="q-learning: low", shard=1, step=4, state="s0.g-1.t1.k1.b2",
                             signals={"step": 4, "gain": None}, epsilon=0.1, explored=True,
                             q_values={"low": -0.25}, allowed=["skip", "low"], accuracy=0.5,
                             record={"round_id": 7}, outcome={}),
        ])
        session.commit()
    with Session(engine) as session:
        assert session.get(QValueRow, ("s0.g-1.t1.k1.b2", "low")).visits == 3
        row = session.get(ParticipationRow, 7)
        assert (row.explored, row.signals["gain"], row.allowed, row.reward, row.learned_at) == (
            True, None, ["skip", "low"], None, None)
    engine.dispose()
