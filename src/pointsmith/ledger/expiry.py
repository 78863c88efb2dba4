"""When points expire: pure functions of the policy, the program's time zone and the earn time.

- rolling: `months` calendar months after the lot was earned (the day is
  clamped to the end of a shorter month: 31 Jan + 1 month = 28/29 Feb);
- calendar: lots earned in year Y expire at the start of year Y + years + 1;
- inactivity: lots carry no date; all of a member's points expire `months`
  after their last earn or spend;
- none: never.
Calendar arithmetic happens in the program's time zone.
"""
from __future__ import annotations

import calendar
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pointsmith.program.schema import ExpiryConfig, ExpiryPolicy


def add_months(t: datetime, months: int, tz: ZoneInfo) -> datetime:
    local = t.astimezone(tz)
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    wall = local.replace(tzinfo=None).replace(year=year, month=month, day=day)
    return wall.replace(tzinfo=tz).astimezone(UTC)


def start_of_year(year: int, tz: ZoneInfo) -> datetime:
    return datetime(year, 1, 1, tzinfo=tz).astimezone(UTC)


def lot_expires_at(config: ExpiryConfig, tz: ZoneInfo, earned_at: datetime) -> datetime | None:
    if config.policy is ExpiryPolicy.rolling and config.months:
        return add_months(earned_at, config.months, tz)
    if config.policy is ExpiryPolicy.calendar and config.years is not None:
        return start_of_year(earned_at.astimezone(tz).year + config.years + 1, tz)
    return None


def inactivity_deadline(config: ExpiryConfig, tz: ZoneInfo, last_activity_at: datetime | None) -> datetime | None:
    """When all of a member's points expire under the inactivity policy (None: not this policy)."""
    if config.policy is not ExpiryPolicy.inactivity or not config.months or last_activity_at is None:
        return None
    return add_months(last_activity_at, config.months, tz)
