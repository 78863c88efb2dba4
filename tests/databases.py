"""Test databases: SQLite always, PostgreSQL when a server answers.

PostgreSQL is used when POINTSMITH_TEST_POSTGRES_URL is set or a server
answers on 127.0.0.1:5432; each test session works in databases of its own
(one per xdist worker), dropped at the end.
"""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import sqlalchemy as sa

from pointsmith.db import get_engine, migrate, normalize_url

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str | None:
    url = os.environ.get("POINTSMITH_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("POINTSMITH_TEST_NO_POSTGRES"):
        return None
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return DEFAULT_PG
    except OSError:
        return None


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if postgres_admin_url() else ["sqlite"]


def create_database(backend: str, tmp: Path, *, migrated: bool = True) -> str:
    """A new empty (or migrated) database; returns its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp / ('t_' + uuid.uuid4().hex[:8] + '.db')}"
    else:
        admin = postgres_admin_url()
        assert admin
        name = "pointsmith_t_" + uuid.uuid4().hex[:12]
        engine = sa.create_engine(normalize_url(admin), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        engine.dispose()
        url = admin.rsplit("/", 1)[0] + "/" + name
    if migrated:
        migrate(get_engine(url))
    return url


def drop_database(url: str) -> None:
    engine = get_engine(url)
    engine.dispose()
    if url.startswith("sqlite"):
        return
    admin = postgres_admin_url()
    assert admin
    name = url.rsplit("/", 1)[1]
    admin_engine = sa.create_engine(normalize_url(admin), isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin_engine.dispose()
