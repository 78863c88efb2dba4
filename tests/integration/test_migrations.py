"""One set of migrations for both stores; commands refuse a database that needs migrating."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from pointsmith.db import current_revision, get_engine, head_revision, migrate, unit_of_work
from pointsmith.errors import DatabaseNotReady
from pointsmith.tables import __all__ as table_names
from tests.databases import create_database, drop_database


def test_migrations_create_every_table_and_work_is_refused_before(backend: str, tmp_path: Path) -> None:
    url = create_database(backend, tmp_path, migrated=False)
    try:
        engine = get_engine(url)
        with pytest.raises(DatabaseNotReady, match="pointsmith init"), unit_of_work(engine):
            pass
        assert migrate(engine) == (None, head_revision())
        assert current_revision(engine) == head_revision()
        assert set(table_names) <= set(sa.inspect(engine).get_table_names())
        assert migrate(engine) == (head_revision(), head_revision())  # a second run is a no-op
    finally:
        drop_database(url)
