"""Limit periods in the program's time zone, and cutting an award to what its limits allow (pure)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pointsmith import clock

BEGINNING = clock.EARLIEST


def period_bounds(period: str, t: datetime, tz: ZoneInfo) -> tuple[datetime, datetime | None]:
    """[start, end) of the day / week (ISO, from Monday) / month / year holding `t`; lifetime: all time."""
    if period == "lifetime":
        return BEGINNING, None
    local = t.astimezone(tz)
    day = datetime(local.year, local.month, local.day, tzinfo=tz)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    elif period == "year":
        start = day.replace(month=1, day=1)
        end = start.replace(year=start.year + 1)
    else:
        raise ValueError(f"unknown period {period!r}")
    # local midnights in UTC (a wall-clock date converted through the zone handles DST)
    return (datetime(start.year, start.month, start.day, tzinfo=tz).astimezone(UTC),
            datetime(end.year, end.month, end.day, tzinfo=tz).astimezone(UTC))


def local_day(t: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the local day holding `t` (what a daily growth cap counts), as the limits' day:
    on a day whose midnight repeats (a DST fall-back at 00:00), from its first midnight."""
    start, end = period_bounds("day", t, tz)
    assert end is not None
    return start, end


@dataclass(frozen=True)
class Usage:
    points: int
    times: int


@dataclass(frozen=True)
class Cut:
    points: int
    limit: str | None  # which limit cut it, e.g. "points.day", "times.day", "budget", "cooldown"


def apply_limits(points: int, *, points_limits: Mapping[Any, int], times_limits: Mapping[Any, int],
                 usage: Mapping[str, Usage], budget_left: int | None, cooling: bool = False) -> Cut:
    """Cut `points` (≥ 0) to what every limit allows; the first limit that bites is named. `cooling`:
    the rule's cooldown has not passed since (or until) another counted award to the member."""
    if cooling:
        return Cut(0, "cooldown")
    for period, most in times_limits.items():
        if usage[period].times >= most:
            return Cut(0, f"times.{period}")
    allowed, limit = points, None
    for period, most in points_limits.items():
        room = max(most - usage[period].points, 0)
        if room < allowed:
            allowed, limit = room, f"points.{period}"
    if budget_left is not None and budget_left < allowed:
        allowed, limit = max(budget_left, 0), "budget"
    return Cut(allowed, limit)


def share(total: int, part: Decimal, whole: Decimal) -> int:
    """floor(total * part / whole), exactly. An order of 0 is refunded whole by any refund of it: it
    takes back all the order earned, as it releases all the usage the order counted for."""
    if whole == 0:
        return total
    return int((Decimal(total) * part / whole).to_integral_value(ROUND_FLOOR))


def refunded_shares(awards: list[tuple[int, int]], refunded: Decimal, amount: Decimal) -> list[int]:
    """The points each of an order's awards (points, refunded so far) counts as refunded once
    `refunded` of `amount` is: together what the refund took back from the order, floor(P * R / A),
    so the limits are released by as much as was taken back. What is new goes first to each award up
    to its own share rounded down, then one by one in award order; none ever counts less than before."""
    earned = [max(points, 0) for points, _ in awards]
    shares = [before for _, before in awards]
    rest = share(sum(earned), refunded, amount) - sum(shares)
    for up_to in ([share(p, refunded, amount) for p in earned], earned):
        for i, most in enumerate(up_to):
            extra = min(max(rest, 0), max(most - shares[i], 0))
            shares[i] += extra
            rest -= extra
    return shares


def cooling(awards: Iterable[tuple[datetime, int]], at: datetime, cooldown: timedelta | None) -> bool:
    """Whether an award at `at` falls within `cooldown` of one of the member's counted awards of the rule
    ((time, counted) pairs): either side, so no two awards of the rule to one member are closer than
    the cooldown, whatever order their events arrive in."""
    return cooldown is not None and any(counted and abs(t - at) < cooldown for t, counted in awards)
