"""One set of migrations for both stores; commands refuse a database that needs migrating."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from pointsmith.db import alembic_config, current_revision, get_engine, head_revision, migrate, unit_of_work
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


def migrated_over(backend: str, tmp_path: Path, revision: str, rows_sql: str, query: str) -> list[Any]:
    """The rows `query` reads once a database at `revision` holding `rows_sql`'s rows is migrated to the head."""
    url = create_database(backend, tmp_path, migrated=False)
    try:
        engine = get_engine(url)
        command.upgrade(alembic_config(engine), revision)
        with engine.begin() as conn:
            conn.execute(sa.text(rows_sql))
        migrate(engine)
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query)).all())
    finally:
        drop_database(url)


def test_the_growth_totals_migration_sums_the_growth_already_recorded(backend: str, tmp_path: Path) -> None:
    totals = migrated_over(backend, tmp_path, "0006",
                           "INSERT INTO growth_entries (member_id, amount, effective_at, kind) VALUES"
                           " ('a', 30, '2026-01-01', 'earn'), ('a', -10, '2026-02-01', 'refund'),"
                           " ('b', 5, '2026-01-01', 'earn')", "SELECT member_id, total FROM growth_totals")
    assert {m: int(t) for m, t in totals} == {"a": 20, "b": 5}


def test_awards_of_no_points_stop_counting_toward_times_limits(backend: str, tmp_path: Path) -> None:
    counted = migrated_over(
        backend, tmp_path, "0007",
        "INSERT INTO rule_awards (member_id, event_id, rule_key, program_version, occurred_at, points, growth,"
        " points_refunded, counted) VALUES ('a', 'e1', 'r', 1, '2026-01-01', 10, 1, 0, 1),"
        " ('a', 'e2', 'r', 1, '2026-01-01', 0, 1, 0, 1), ('a', 'e3', 'r', 1, '2026-01-01', -5, 0, 0, 1)",
        "SELECT event_id, counted FROM rule_awards")
    assert dict(counted) == {"e1": 1, "e2": 0, "e3": 1}
