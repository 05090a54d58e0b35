"""Alembic environment of the coordinator: runs on the connection that
``fedledger.web.database.migrate`` passes in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from fedledger.coordinator.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the coordinator migrations through fedledger.web.database.migrate")
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
