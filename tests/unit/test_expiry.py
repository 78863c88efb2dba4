"""Expiry dates follow the policy in the program's time zone."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pointsmith.ledger.allocation import LotBalance, spend_order, spendable, take
from pointsmith.ledger.expiry import add_months, inactivity_deadline, lot_expires_at
from pointsmith.program.schema import ExpiryConfig, ExpiryPolicy

SHANGHAI = ZoneInfo("Asia/Shanghai")


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_rolling_expiry_is_calendar_months_later_with_the_day_clamped() -> None:
    rolling = ExpiryConfig(policy=ExpiryPolicy.rolling, months=1)
    assert lot_expires_at(rolling, ZoneInfo("UTC"), t(2026, 1, 31, 9)) == t(2026, 2, 28, 9)
    assert lot_expires_at(rolling, ZoneInfo("UTC"), t(2028, 1, 31, 9)) == t(2028, 2, 29, 9)
    assert add_months(t(2026, 11, 15), 14, ZoneInfo("UTC")) == t(2028, 1, 15)


def test_rolling_months_are_counted_on_the_local_calendar() -> None:
    # 20:00 UTC on 31 January is 04:00 on 1 February in Shanghai: one month later is 1 March there.
    rolling = ExpiryConfig(policy=ExpiryPolicy.rolling, months=1)
    assert lot_expires_at(rolling, SHANGHAI, t(2026, 1, 31, 20)) == t(2026, 2, 28, 20)


def test_calendar_expiry_is_the_start_of_a_later_local_year() -> None:
    calendar = ExpiryConfig(policy=ExpiryPolicy.calendar, years=1)
    assert lot_expires_at(calendar, ZoneInfo("UTC"), t(2026, 6, 1)) == t(2028, 1, 1)
    # 31 Dec 2026 17:00 UTC is already 2027 in Shanghai, and the year starts at local midnight.
    assert lot_expires_at(calendar, SHANGHAI, t(2026, 12, 31, 17)) == t(2028, 12, 31, 16)
    assert lot_expires_at(ExpiryConfig(policy=ExpiryPolicy.calendar, years=0), ZoneInfo("UTC"),
                          t(2026, 6, 1)) == t(2027, 1, 1)


def test_inactivity_and_none_put_no_date_on_a_lot() -> None:
    idle = ExpiryConfig(policy=ExpiryPolicy.inactivity, months=6)
    assert lot_expires_at(idle, ZoneInfo("UTC"), t(2026, 1, 1)) is None
    assert lot_expires_at(ExpiryConfig(), ZoneInfo("UTC"), t(2026, 1, 1)) is None
    assert inactivity_deadline(idle, ZoneInfo("UTC"), t(2026, 1, 10)) == t(2026, 7, 10)
    assert inactivity_deadline(ExpiryConfig(), ZoneInfo("UTC"), t(2026, 1, 10)) is None


def test_spends_soonest_expiring_lot_first_then_oldest_and_never_expiring_last() -> None:
    lots = [LotBalance(1, 10, t(2026, 1, 1), None), LotBalance(2, 10, t(2026, 3, 1), t(2026, 9, 1)),
            LotBalance(3, 10, t(2026, 2, 1), t(2026, 9, 1)), LotBalance(4, 10, t(2026, 5, 1), t(2026, 7, 1))]
    assert [lot.id for lot in spend_order(lots)] == [4, 3, 2, 1]
    assert take(lots, 25) == ([(4, 10), (3, 10), (2, 5)], 0)
    assert take(lots, 50) == ([(4, 10), (3, 10), (2, 10), (1, 10)], 10)


def test_a_lot_past_its_expiry_is_not_spendable() -> None:
    lots = [LotBalance(1, 10, t(2026, 1, 1), t(2026, 2, 1)), LotBalance(2, 0, t(2026, 1, 1), None)]
    assert spendable(lots, t(2026, 1, 31)) == lots[:1]
    assert spendable(lots, t(2026, 2, 1)) == []
