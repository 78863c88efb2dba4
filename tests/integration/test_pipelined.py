"""Small runs of writes go to PostgreSQL in one round trip (a no-op on SQLite); an error still fails
the transaction as a whole."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy.engine import Connection

from pointsmith.db import (
    COPY_FROM,
    driver_execute,
    driver_time,
    get_engine,
    in_pipeline,
    insert_rows,
    is_postgres,
    pipelined,
    unit_of_work,
)

COLUMNS = ("member_id", "amount", "effective_at", "kind", "event_id", "rule_key", "reference")


def _rows(conn: Connection, n: int, member: str, amount: int | None = 1) -> list[tuple[object, ...]]:
    at = driver_time(conn)(datetime(2026, 1, 1, tzinfo=UTC))
    return [(member, amount, at, "earn", None, None, f"r{i}") for i in range(n)]


def _amounts(url: str, member: str) -> list[int]:
    with unit_of_work(get_engine(url)) as conn:
        mark = "%s" if is_postgres(conn) else "?"
        return sorted(int(a) for a, in driver_execute(
            conn, f"SELECT amount FROM growth_entries WHERE member_id = {mark}", (member,)))


def test_writes_in_a_block_are_all_applied_in_order(fresh_database: str) -> None:
    with unit_of_work(get_engine(fresh_database)) as conn:
        mark = "%s" if is_postgres(conn) else "?"
        rows = _rows(conn, 3, "p-1")
        with pipelined(conn, rows):
            assert in_pipeline(conn) == is_postgres(conn)
            insert_rows(conn, "growth_entries", COLUMNS, rows)
            driver_execute(conn, f"DELETE FROM growth_entries WHERE member_id = {mark}", ("p-1",))
            insert_rows(conn, "growth_entries", COLUMNS, _rows(conn, 2, "p-1", amount=7))
        assert not in_pipeline(conn)
    assert _amounts(fresh_database, "p-1") == [7, 7]


def test_an_error_in_the_block_fails_the_transaction_and_nothing_is_written(fresh_database: str) -> None:
    def writes() -> None:
        with unit_of_work(get_engine(fresh_database)) as conn:
            with pipelined(conn, []):
                insert_rows(conn, "growth_entries", COLUMNS, _rows(conn, 2, "p-2"))
                insert_rows(conn, "growth_entries", COLUMNS, _rows(conn, 1, "p-2", amount=None))  # NOT NULL
                insert_rows(conn, "growth_entries", COLUMNS, _rows(conn, 2, "p-2"))
            insert_rows(conn, "growth_entries", COLUMNS, _rows(conn, 1, "p-2"))

    with pytest.raises((psycopg.IntegrityError, sqlite3.IntegrityError)):
        writes()
    assert _amounts(fresh_database, "p-2") == []


def test_enough_rows_for_copy_skip_the_pipeline(fresh_database: str) -> None:
    with unit_of_work(get_engine(fresh_database)) as conn:
        rows = _rows(conn, COPY_FROM, "p-3")
        with pipelined(conn, [], rows):
            assert not in_pipeline(conn)
            insert_rows(conn, "growth_entries", COLUMNS, rows)  # by COPY on PostgreSQL
    assert _amounts(fresh_database, "p-3") == [1] * COPY_FROM
