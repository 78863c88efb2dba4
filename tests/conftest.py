"""Shared fixtures: a migrated database per backend, a rolled-back connection per test."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection, Engine

from pointsmith.db import get_engine
from pointsmith.program import service as programs
from tests.databases import backends, create_database, drop_database


@pytest.fixture(scope="session", params=backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database per backend for the whole session; tests roll back what they write."""
    url = create_database(backend, tmp_path_factory.mktemp(backend))
    yield url
    drop_database(url)


@pytest.fixture
def engine(database_url: str) -> Engine:
    return get_engine(database_url)


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test. The program timelines a
    process remembers are forgotten first: a rolled-back test may leave the same latest version as the
    next one publishes over other versions (in production versions are never taken back)."""
    programs.forget_timelines()
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


@pytest.fixture
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own, for work that must really commit (concurrency, CLI, servers)."""
    url = create_database(backend, tmp_path)
    yield url
    drop_database(url)
