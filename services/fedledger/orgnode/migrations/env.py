"""Alembic environment of the org node: runs on the connection the caller passes in
``config.attributes["connection"]`` (``fedledger.web.database.migrate``)."""

from __future__ import annotations

from alembic import context

from fedledger.orgnode.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the org node's migrations through fedledger.web.database.migrate")
context.configure(connection=connection, target_metadata=Base.metadata,
                  version_table="alembic_version_orgnode", render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
