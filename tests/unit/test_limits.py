"""Limit periods follow the program's calendar; awards are cut, never dropped."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from pointsmith.rules.limits import Cut, Usage, apply_limits, cooling, period_bounds, refunded_shares

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_day_starts_at_local_midnight() -> None:
    assert period_bounds("day", t(2026, 3, 1, 16, 30), SHANGHAI) == (t(2026, 3, 1, 16), t(2026, 3, 2, 16))


def test_weeks_start_on_monday_and_months_and_years_on_the_first() -> None:
    assert period_bounds("week", t(2026, 11, 22, 12), ZoneInfo("UTC")) == (t(2026, 11, 16), t(2026, 11, 23))
    assert period_bounds("month", t(2026, 12, 31, 12), ZoneInfo("UTC")) == (t(2026, 12, 1), t(2027, 1, 1))
    assert period_bounds("year", t(2026, 6, 1), ZoneInfo("UTC")) == (t(2026, 1, 1), t(2027, 1, 1))


def test_a_day_across_a_daylight_saving_change_is_23_hours() -> None:
    start, end = period_bounds("day", t(2026, 3, 8, 12), NEW_YORK)
    assert (start, end) == (t(2026, 3, 8, 5), t(2026, 3, 9, 4))


def test_lifetime_has_no_end() -> None:
    assert period_bounds("lifetime", t(2026, 1, 1), SHANGHAI)[1] is None


def usage(points: int = 0, times: int = 0) -> dict[str, Usage]:
    return {p: Usage(points, times) for p in ("day", "week", "month", "year", "lifetime")}


def test_an_award_over_a_cap_is_cut_to_the_room_left_and_names_the_cap() -> None:
    assert apply_limits(380, points_limits={"day": 500}, times_limits={}, usage=usage(points=120),
                        budget_left=None) == Cut(380, None)
    assert apply_limits(450, points_limits={"day": 500, "week": 2000}, times_limits={}, usage=usage(points=120),
                        budget_left=None) == Cut(380, "points.day")


def test_the_times_limit_stops_an_award_entirely() -> None:
    assert apply_limits(5, points_limits={}, times_limits={"day": 1}, usage=usage(times=1),
                        budget_left=None) == Cut(0, "times.day")


def test_the_budget_cuts_last() -> None:
    assert apply_limits(100, points_limits={"day": 500}, times_limits={}, usage=usage(),
                        budget_left=30) == Cut(30, "budget")


@given(st.lists(st.integers(0, 50), min_size=1, max_size=5), st.integers(1, 1000),
       st.lists(st.integers(0, 1000), min_size=1, max_size=6))
def test_refunds_release_usage_by_what_they_take_back_and_never_less_than_before(
        points: list[int], amount: int, steps: list[int]) -> None:
    whole = Decimal(amount)
    before = [0] * len(points)
    for refunded in sorted({min(Decimal(s), whole) for s in steps}):
        shares = refunded_shares(list(zip(points, before, strict=True)), refunded, whole)
        assert sum(shares) == int(sum(points) * refunded // whole)  # what the refund takes back in all
        assert all(b <= s <= p for b, s, p in zip(before, shares, points, strict=True))
        before = shares


def test_a_cooldown_keeps_any_two_counted_awards_of_a_rule_apart_whichever_came_first() -> None:
    hour = timedelta(hours=1)
    awards = [(t(2026, 1, 1, 10), 1), (t(2026, 1, 1, 12), 0)]  # the second was refunded: it counts for nothing
    assert cooling(awards, t(2026, 1, 1, 10, 59), hour) and cooling(awards, t(2026, 1, 1, 9, 1), hour)
    assert not cooling(awards, t(2026, 1, 1, 11), hour)  # exactly the cooldown later
    assert not cooling(awards, t(2026, 1, 1, 12, 30), hour) and not cooling(awards, t(2026, 1, 1, 10), None)
    assert apply_limits(50, points_limits={}, times_limits={}, usage={}, budget_left=None,
                        cooling=True) == Cut(0, "cooldown")
