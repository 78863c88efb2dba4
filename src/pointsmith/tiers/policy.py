"""The tier policy, pure: a member's tier is a function of their growth history, the policy and the time.

- lifetime: the highest level whose threshold ≤ growth to date (net of refunds);
- period: in each period the member moves up as soon as the period's growth
  reaches a level; at the start of the next period the tier becomes what the
  period just ended qualifies for, at most `max_drop` levels down; reviews
  run from the member's first activity on;
- decay: growth is a balance that, after `grace_days` with no gain, shrinks
  by `rate_per_day` for each further whole day (compounded); the tier follows it.

History entries are (effective time, growth), refunds as negative growth.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pointsmith.program.schema import Level, Period, Qualification, TiersConfig

Entry = tuple[datetime, int]


@dataclass(frozen=True)
class TierState:
    level: int                 # index into the levels
    qualifying: Decimal        # the growth that counts now (lifetime total, this period's, or the decayed balance)
    review_level: int = 0      # period: the level granted at the last review


def level_for(levels: Sequence[Level], growth: Decimal | int) -> int:
    index = 0
    for i, level in enumerate(levels):
        if growth >= level.threshold:
            index = i
    return index


def period_start(t: datetime, period: Period, tz: ZoneInfo) -> datetime:
    local = t.astimezone(tz)
    month = {Period.month: local.month, Period.quarter: (local.month - 1) // 3 * 3 + 1, Period.year: 1}[period]
    return datetime(local.year, month, 1, tzinfo=tz)


def next_period(start: datetime, period: Period) -> datetime:
    months = {Period.month: 1, Period.quarter: 3, Period.year: 12}[period]
    index = start.month - 1 + months
    return start.replace(year=start.year + index // 12, month=index % 12 + 1)


def tier_at(config: TiersConfig, tz: ZoneInfo, history: Sequence[Entry], at: datetime) -> TierState:
    """The tier in force at `at` given every growth entry effective by then."""
    entries = sorted((t, g) for t, g in history if t <= at)
    if config.qualification is Qualification.lifetime:
        total = Decimal(sum(g for _, g in entries))
        return TierState(level_for(config.levels, total), total)
    if config.qualification is Qualification.period:
        return _period_tier(config, tz, entries, at)
    return _decay_tier(config, entries, at)


def _period_tier(config: TiersConfig, tz: ZoneInfo, entries: list[Entry], at: datetime) -> TierState:
    if not entries:
        return TierState(0, Decimal(0))
    start = period_start(entries[0][0], config.period, tz)
    review = held = 0
    i = 0
    while True:
        end = next_period(start, config.period)
        growth = 0
        while i < len(entries) and entries[i][0] < end:
            growth += entries[i][1]
            # upgrades are immediate; a refund falls back no lower than the review's level
            held = max(review, level_for(config.levels, growth))
            i += 1
        if at < end:
            return TierState(max(review, level_for(config.levels, growth)), Decimal(growth), review)
        earned = level_for(config.levels, growth)
        floor = held - config.max_drop if config.max_drop is not None else 0
        review = max(earned, floor, 0)
        held = review
        start = end


def decay_balance(config: TiersConfig, entries: list[Entry], at: datetime) -> Decimal:
    rate, grace = config.decay.rate_per_day, config.decay.grace_days
    balance, last_gain = Decimal(0), None

    def decayed(until: datetime) -> Decimal:
        if last_gain is None:
            return balance
        idle_days = (until - last_gain) // timedelta(days=1) - grace
        return balance * (1 - rate) ** idle_days if idle_days > 0 else balance

    for t, growth in entries:
        balance = max(decayed(t) + growth, Decimal(0))
        if growth > 0:
            last_gain = t
    return decayed(at)


def _decay_tier(config: TiersConfig, entries: list[Entry], at: datetime) -> TierState:
    balance = decay_balance(config, entries, at)
    return TierState(level_for(config.levels, balance), balance)
