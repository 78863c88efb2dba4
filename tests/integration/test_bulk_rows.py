"""Bulk writes come back exactly as written, whichever way they go to the database: one row, a few
(one statement from a JSON text on PostgreSQL), many (COPY on PostgreSQL); updates by key apply as
one statement per row would."""
from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from pointsmith.db import COPY_FROM, bulk_insert, bulk_update, get_engine, pipelined, unit_of_work, values_table
from pointsmith.ledger.tables import point_balances
from pointsmith.members.tables import members
from pointsmith.rules.tables import orders

AT = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
ODD_TEXT = ['plain', 'quote " and \' and \\ backslash', "naïve — 会员 🎉", "{not json}", "", "line\nbreak"]


ODD_JSON: list[Any] = [{"name": "x", "n": 1, "nested": {"list": [1, None, "x"]}}, "a JSON string", 7, [], "null"]


def _member(i: int) -> dict[str, Any]:
    return {"id": f"bulk-{i}", "status": "active", "invite_code": f"CODE{i}", "invited_by": None,
            "attributes": ODD_JSON[i % len(ODD_JSON)] if i % 3 else {"name": ODD_TEXT[i % len(ODD_TEXT)], "n": i},
            "verified_email": i % 2 == 0, "verified_phone": False, "verified_real_name": i % 3 == 0,
            "joined_at": (AT + timedelta(microseconds=i)).astimezone(timezone(timedelta(hours=i % 9 - 4))),
            "status_reason": ODD_TEXT[i % len(ODD_TEXT)] if i % 4 else None,
            "created_at": AT, "updated_at": AT}


def _order(i: int) -> dict[str, Any]:
    return {"member_id": f"bulk-{i % 3}", "order_id": f"o{i}", "event_id": f"e{i}", "occurred_at": AT,
            "amount": Decimal("123456789.123456") if i == 0 else Decimal(i) / 8 if i % 2 else Decimal("0.01"),
            "refunded": Decimal(0), "points": 2**40 + i, "growth": -i, "points_back": 0, "growth_back": 0}


@pytest.mark.parametrize(("count", "in_pipeline"), [(1, False), (5, False), (COPY_FROM + 3, False),
                                                     (COPY_FROM + 3, True)])
def test_rows_come_back_as_written(fresh_database: str, count: int, in_pipeline: bool) -> None:
    written = [_member(i) for i in range(count)]
    paid = [_order(i) for i in range(count)]
    engine = get_engine(fresh_database)
    with unit_of_work(engine) as conn, pipelined(conn) if in_pipeline else nullcontext():
        bulk_insert(conn, members, written)
        bulk_insert(conn, orders, paid)
    with unit_of_work(engine) as conn:
        read = [dict(r._mapping) for r in conn.execute(sa.select(members).where(members.c.id.like("bulk-%")))]
        read_orders = [dict(r._mapping) for r in conn.execute(sa.select(orders))]
    assert sorted(read, key=lambda r: r["id"]) == sorted(written, key=lambda r: r["id"])
    assert sorted(read_orders, key=lambda r: r["order_id"]) == sorted(paid, key=lambda r: r["order_id"])


def _balances(engine: Any) -> dict[str, tuple[int, int]]:
    with unit_of_work(engine) as conn:
        return {r.member_id: (r.available, r.pending) for r in conn.execute(sa.select(point_balances))}


def test_updates_by_key_set_or_add_as_one_statement_a_row_would(fresh_database: str) -> None:
    engine = get_engine(fresh_database)
    with unit_of_work(engine) as conn:
        bulk_insert(conn, point_balances, [{"member_id": m, "available": 10, "pending": 0, "held": 0, "debt": 0,
                                            "last_activity_at": None, "last_hash": "", "updated_at": AT}
                                           for m in ("a", "b", "c")])
    with unit_of_work(engine) as conn:
        bulk_update(conn, point_balances, "member_id", [{"member_id": "a", "available": 1, "pending": 2},
                                                        {"member_id": "b", "available": 3, "pending": 4}])
    assert _balances(engine) == {"a": (1, 2), "b": (3, 4), "c": (10, 0)}
    with unit_of_work(engine) as conn:  # distinct keys
        bulk_update(conn, point_balances, "member_id", [{"member_id": "a", "available": 5, "pending": 1},
                                                        {"member_id": "c", "available": -5, "pending": 1}],
                    increment=True)
    assert _balances(engine) == {"a": (6, 3), "b": (3, 4), "c": (5, 1)}
    with unit_of_work(engine) as conn:  # the same key twice adds twice
        bulk_update(conn, point_balances, "member_id", [{"member_id": "b", "available": 5, "pending": 0},
                                                        {"member_id": "b", "available": 7, "pending": 1}],
                    increment=True)
    assert _balances(engine) == {"a": (6, 3), "b": (15, 5), "c": (5, 1)}


def test_a_values_table_joins_with_the_rows_it_lists(fresh_database: str) -> None:
    engine = get_engine(fresh_database)
    with unit_of_work(engine) as conn:
        bulk_insert(conn, orders, [_order(i) for i in range(9)])
        pairs = [("bulk-0", "o0"), ("bulk-1", "o4"), ("bulk-2", "o5"), ("bulk-9", "o9"), ('x "y', "o1")]
        table, params = values_table(conn, {"member_id": "text", "order_id": "text"}, pairs)
        found = conn.exec_driver_sql(f"SELECT o.member_id, o.order_id, o.amount FROM {table} p JOIN orders o"
                                     " ON o.member_id = p.member_id AND o.order_id = p.order_id", params).all()
    assert sorted((m, o) for m, o, _ in found) == [("bulk-0", "o0"), ("bulk-1", "o4"), ("bulk-2", "o5")]
