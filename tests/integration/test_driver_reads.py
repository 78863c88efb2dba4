"""Reads straight through the driver give exactly what a SQLAlchemy select gives, alone or several at once."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith.db import Read, driver_in, is_postgres, read_together, rows_of, select_read
from pointsmith.events import service
from pointsmith.events.tables import events
from pointsmith.events.validation import parse_event, parse_line
from pointsmith.tiers.tables import member_tiers
from tests.factories import SIMPLE_PROGRAM, publish


def _both_ways(conn: Connection, table: sa.Table, key: str, keys: list[str]) -> None:
    columns = list(table.c.keys())
    expected = [tuple(r) for r in conn.execute(sa.select(table).where(table.c[key].in_(keys)).order_by(table.c[key]))]
    match, params = driver_in(conn, keys)
    read = select_read(conn, table, columns, f"{key} {match} ORDER BY {key}", params)
    got = read.now(conn)
    assert read_together(conn, [read, read.then(len)]) == [got, len(got)]  # together: a pipeline on PostgreSQL
    assert len(expected) >= 3  # (an order of 0 leaves its member no tier state)
    assert got == expected
    assert [[repr(v) for v in row] for row in got] == [[repr(v) for v in row] for row in expected]  # same types too


def test_rows_read_through_the_driver_equal_sqlalchemys(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM)
    for i, amount in enumerate(["12.34", "0", "250", "99.999"]):
        service.ingest(conn, parse_event(parse_line(
            f'{{"id": "dr{i}", "type": "order.paid", "member_id": "dr-m{i}",'
            f' "occurred_at": "2026-03-0{i + 1}T08:00:00+08:00", "attributes": {{"order_id": "o{i}",'
            f' "amount": {amount}, "tags": ["a", {{"x": 1.5}}], "vip": true}}}}')))
    at = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    conn.execute(member_tiers.update().where(member_tiers.c.member_id == "dr-m2").values(
        qualifying=Decimal("1234.500001"), override_tier="silver", override_from=at, override_until=at,
        warned_review_at=at, next_review_at=at))
    _both_ways(conn, events, "id", [f"dr{i}" for i in range(4)])
    _both_ways(conn, member_tiers, "member_id", [f"dr-m{i}" for i in range(4)])


def test_reads_together_run_in_order_each_seeing_what_the_one_before_did(conn: Connection) -> None:
    mark = "%s" if is_postgres(conn) else "?"
    conn.exec_driver_sql("CREATE TEMPORARY TABLE together (n integer)")
    insert = Read(f"INSERT INTO together (n) VALUES ({mark}), ({mark})", (1, 2), rows_of)
    count = Read("SELECT count(*), sum(n) FROM together", (), rows_of)
    assert read_together(conn, [count, insert, count, insert, count]) == [[(0, None)], [], [(2, 3)], [], [(4, 6)]]
    assert read_together(conn, []) == []
