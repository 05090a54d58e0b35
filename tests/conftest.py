"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep the converted-model cache inside the test session unless the caller chose one
    (CI sets none, so the GGUF -> checkpoint conversion is exercised there)."""
    if "FEDLEDGER_CACHE" not in os.environ:
        os.environ["FEDLEDGER_CACHE"] = str(tmp_path_factory.mktemp("fedledger-cache"))
    return Path(os.environ["FEDLEDGER_CACHE"])


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server on 127.0.0.1:5432 (trust auth; .ci/run starts or installs
    it). Tests that need it skip with the reason where it does not answer."""
    import psycopg

    url = os.environ.get("FEDLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with psycopg.connect(url, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {url}: {exc}")
    return url


@pytest.fixture()
def postgres_url(postgres_server_url: str):
    """A fresh, empty database for one test, dropped afterwards (SQLAlchemy URL)."""
    import uuid

    import psycopg

    name = f"fedledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres_server_url.rsplit("/", 1)[0]
    yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
