"""Database set-up shared by the services: an engine from a URL (SQLite by default,
Postgres by URL), the service's Alembic migrations applied at start, and what their
SQLAlchemy models share.

Each service keeps a declarative base of its own (``class Base(DeclarativeBase)``: its
own metadata, its own migrations); its tables take their timestamps from here::

    created_at: Mapped[datetime] = utc_timestamp()
    updated_at: Mapped[datetime] = utc_timestamp(on_update=True)
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import MappedColumn, mapped_column


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: what every service stores and compares."""
    return datetime.now(UTC)


def utc_timestamp(*, on_update: bool = False) -> MappedColumn[datetime]:
    """A timezone-aware timestamp column set to :func:`utcnow` when the row is inserted
    (and, with ``on_update``, whenever the ORM updates it)."""
    if on_update:
        return mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    return mapped_column(DateTime(timezone=True), default=utcnow)


def make_engine(url: str) -> Engine:
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()
    return engine


def migrate(engine: Engine, package: str) -> None:
    """Apply ``package``'s Alembic migrations (folder ``migrations`` inside it) up to head."""
    location = resources.files(package).joinpath("migrations")
    config = Config()
    config.set_main_option("script_location", str(location))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
