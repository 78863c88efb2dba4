"""`ledger verify` and the append-only guard: a changed ledger is caught."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith.analytics.summary import summary
from pointsmith.db import is_postgres
from pointsmith.growth import service as growth
from pointsmith.ledger.service import CreditRequest, credit, reverse, spend
from pointsmith.ledger.verify import verify
from pointsmith.members import service as members
from tests.factories import publish

T0 = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.fixture
def ledger(conn: Connection) -> Connection:
    publish(conn)
    for m in ("a", "b"):
        members.create(conn, m)
        credit(conn, CreditRequest(m, 100, "seed", at=T0))
    spend(conn, "a", 30, key="s", at=T0)
    reverse(conn, "b", 120, key="r", at=T0)
    return conn


def _drop_guard(conn: Connection, table: str) -> None:
    if is_postgres(conn):
        conn.exec_driver_sql(f"DROP TRIGGER {table}_no_update ON {table}")
    else:
        conn.exec_driver_sql(f"DROP TRIGGER {table}_no_update")


def test_a_healthy_ledger_verifies(ledger: Connection) -> None:
    report = verify(ledger)
    assert report.ok, report.breaches
    assert (report.transactions, report.members, report.lots) == (4, 2, 2)


def test_the_database_refuses_to_change_a_posting(ledger: Connection) -> None:
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ledger.begin_nested():
        ledger.exec_driver_sql("UPDATE ledger_postings SET amount = amount + 1")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ledger.begin_nested():
        ledger.exec_driver_sql("DELETE FROM ledger_transactions")


def test_an_unbalanced_or_altered_posting_is_a_breach(ledger: Connection) -> None:
    _drop_guard(ledger, "ledger_postings")
    ledger.exec_driver_sql("UPDATE ledger_postings SET amount = amount + 5 WHERE account = 'redeemed'")
    report = verify(ledger)
    assert not report.ok
    assert any("sum to 5" in b for b in report.breaches), report.breaches


def test_a_rewritten_transaction_breaks_the_hash_chain(ledger: Connection) -> None:
    _drop_guard(ledger, "ledger_transactions")
    ledger.exec_driver_sql("UPDATE ledger_transactions SET kind = 'adjust' WHERE kind = 'spend'")
    report = verify(ledger)
    assert any("changed since it was written" in b for b in report.breaches), report.breaches


def test_a_cached_balance_edited_by_hand_is_a_breach(ledger: Connection) -> None:
    ledger.exec_driver_sql("UPDATE point_balances SET available = available + 1 WHERE member_id = 'a'")
    ledger.exec_driver_sql("UPDATE ledger_lots SET remaining = remaining - 1 WHERE member_id = 'b'")
    breaches = verify(ledger).breaches
    assert any(b.startswith("member a: cached available") for b in breaches), breaches
    assert any(b.startswith("lot ") for b in breaches), breaches


def test_the_summary_adds_up(ledger: Connection) -> None:
    s = summary(ledger)
    assert s["members"] == 2
    p = s["points"]
    assert (p["issued"], p["redeemed"], p["reversed"], p["expired"]) == (200, 30, 120, 0)
    assert p["outstanding"] == 50 == p["available"] + p["pending"] + p["held"]
    assert s["liability"] == pytest.approx(0.5)
    assert summary(ledger, at=datetime(2025, 1, 1, tzinfo=UTC))["points"]["issued"] == 0


def test_a_growth_total_out_of_step_with_the_entries_is_a_breach(ledger: Connection) -> None:
    growth.record(ledger, [{"member_id": "a", "amount": 40, "effective_at": T0, "kind": "earn"},
                           {"member_id": "a", "amount": -15, "effective_at": T0, "kind": "refund"},
                           {"member_id": "b", "amount": 7, "effective_at": T0, "kind": "earn"}])
    assert verify(ledger).ok
    ledger.exec_driver_sql("UPDATE growth_totals SET total = total + 1 WHERE member_id = 'a'")
    ledger.exec_driver_sql("DELETE FROM growth_totals WHERE member_id = 'b'")
    assert sorted(verify(ledger).breaches) == [
        "member a: growth total 26, but the growth entries sum to 25",
        "member b: growth total 0, but the growth entries sum to 7"]
