"""The tier policy, pure: a member's tier is a function of their growth history, the policy and the time.

- lifetime: the highest level whose threshold ≤ growth to date (net of refunds);
- period: in each period the member moves up as soon as the period's growth
  reaches a level; at the start of the next period the tier becomes what the
  period just ended qualifies for, at most `max_drop` levels down; reviews
  run from the member's first activity on;
- decay: growth is a balance that, after `grace_days` with no gain, shrinks
  by `rate_per_day` for each further whole day (compounded); the tier follows it.

History entries are (effective time, growth), refunds as negative growth.
`transitions` lists every change of tier the same rules imply, with its
reason and effective time; `outlook` says what the next review holds.

Program versions may change the tier policy. The tier at a time is what the
policy in force then gives for the growth up to then (as if that policy had
always applied): `moves` walks a member through each version's span, and
where a new policy puts the member elsewhere it records a `program` change at
the version's effective time. What came before stands.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal
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


@dataclass
class _Decay:
    """A decaying balance walked through the history: `applied` decay days are already in `balance`."""

    config: TiersConfig
    balance: Decimal = Decimal(0)
    last_gain: datetime | None = None
    applied: int = 0

    def idle_days(self, t: datetime) -> int:
        if self.last_gain is None:
            return 0
        return max((t - self.last_gain) // timedelta(days=1) - self.config.decay.grace_days, 0)

    def at(self, t: datetime) -> Decimal:
        return self.balance * (1 - self.config.decay.rate_per_day) ** (self.idle_days(t) - self.applied)

    def add(self, t: datetime, growth: int) -> None:
        self.balance, self.applied = max(self.at(t) + growth, Decimal(0)), self.idle_days(t)
        if growth > 0:
            self.last_gain, self.applied = t, 0

    def crossings(self, end: datetime) -> list[datetime]:
        """The times in (now, end] at which the balance, left alone, falls below a threshold."""
        if self.last_gain is None or self.balance <= 0:
            return []
        keep = 1 - self.config.decay.rate_per_day
        out = []
        for level in self.config.levels[1:]:
            threshold = Decimal(level.threshold)
            if self.balance < threshold or threshold <= 0:
                continue
            n = max(math.ceil(math.log(float(threshold / self.balance)) / math.log(float(keep))) - 1, 0)
            while self.balance * keep ** n >= threshold:  # exact, whatever float rounding said
                n += 1
            t = self.last_gain + timedelta(days=self.config.decay.grace_days + self.applied + n)
            if t <= end:
                out.append(t)
        return out


def decay_balance(config: TiersConfig, entries: Sequence[Entry], at: datetime) -> Decimal:
    walk = _Decay(config)
    for t, growth in entries:
        if t <= at:
            walk.add(t, growth)
    return walk.at(at)


def _decay_tier(config: TiersConfig, entries: list[Entry], at: datetime) -> TierState:
    balance = decay_balance(config, entries, at)
    return TierState(level_for(config.levels, balance), balance)


Reason = Literal["upgrade", "review", "decay", "refund", "program"]


@dataclass(frozen=True)
class Change:
    at: datetime
    from_level: int
    to_level: int
    reason: Reason


def transitions(config: TiersConfig, tz: ZoneInfo, history: Sequence[Entry], until: datetime) -> list[Change]:
    """Every change of tier up to `until`, in order: an entry that raises the tier is an upgrade and
    one that lowers it a refund; a period boundary that lowers it is a review; decay lowers it by day.
    One pass over the history (it runs whenever a member's growth changes)."""
    entries = sorted((t, g) for t, g in history if t <= until)
    if not entries:
        return []
    levels, out = config.levels, []
    level = 0

    def move(at: datetime, new: int, reason: Reason) -> None:
        nonlocal level
        if new != level:
            out.append(Change(at, level, new, reason))
            level = new

    def last_at(i: int) -> bool:  # entries at one instant count together
        return i + 1 == len(entries) or entries[i + 1][0] != entries[i][0]

    if config.qualification is Qualification.lifetime:
        total = 0
        for i, (t, g) in enumerate(entries):
            total += g
            new = level_for(levels, total)
            if last_at(i):
                move(t, new, "upgrade" if new > level else "refund")
    elif config.qualification is Qualification.period:
        review, growth, i = 0, 0, 0
        boundary = next_period(period_start(entries[0][0], config.period, tz), config.period)
        while True:
            while i < len(entries) and entries[i][0] < boundary:
                growth += entries[i][1]
                new = max(review, level_for(levels, growth))
                if last_at(i):
                    move(entries[i][0], new, "upgrade" if new > level else "refund")
                i += 1
            if boundary > until:
                break
            floor = level - config.max_drop if config.max_drop is not None else 0
            review, growth = max(level_for(levels, growth), floor, 0), 0
            while i < len(entries) and entries[i][0] == boundary:  # growth at the review's instant: one change
                growth += entries[i][1]
                i += 1
            new = max(review, level_for(levels, growth))
            move(boundary, new, "review" if new < level else "upgrade")
            boundary = next_period(boundary, config.period)
    else:
        walk = _Decay(config)
        crossings = _decay_drops(config, entries, until)
        moments = sorted([(t, 0, g) for t, g in entries] + [(t, 1, 0) for t in crossings])
        for i, (t, is_crossing, g) in enumerate(moments):
            if is_crossing:
                move(t, level_for(levels, walk.at(t)), "decay")
                continue
            walk.add(t, g)
            if i + 1 == len(moments) or moments[i + 1][0] != t or moments[i + 1][1]:
                new = level_for(levels, walk.at(t))
                move(t, new, "upgrade" if new > level else "refund")
    return out


@dataclass(frozen=True)
class Segment:
    """A span of time under one tier policy: [start, end), None for the beginning or the end of time."""

    start: datetime | None
    end: datetime | None
    config: TiersConfig
    tz: ZoneInfo
    lineage: str = ""  # a checksum of this policy and every one before it, with their starts

    def holds(self, t: datetime) -> bool:
        return (self.start is None or self.start <= t) and (self.end is None or t < self.end)


def segment_at(segments: Sequence[Segment], t: datetime) -> Segment:
    return next((s for s in segments if s.holds(t)), segments[0])


@dataclass(frozen=True)
class Move:
    """A change of tier, by key (a later policy may have other levels)."""

    at: datetime
    from_tier: str
    to_tier: str
    reason: Reason


def moves(segments: Sequence[Segment], history: Sequence[Entry], until: datetime) -> list[Move]:
    """Every change of tier up to `until` across the spans of several policies: each span's own
    transitions, and at a span's start the change (if any) from the tier held to what the new policy
    gives (only for a member with growth by then: one who came later starts under it), with the new
    policy's own reason where it has a change there (a review on the day a version takes effect),
    else `program`."""
    out: list[Move] = []
    held = segments[0].config.levels[0].key
    for segment in segments:
        if segment.start is not None and segment.start > until:
            break
        config, tz = segment.config, segment.tz
        stop = until if segment.end is None else min(until, segment.end)
        own = [c for c in transitions(config, tz, history, stop) if segment.holds(c.at)]
        if segment.start is not None:
            key = config.levels[tier_at(config, tz, history, segment.start).level].key
            if key != held and any(t <= segment.start for t, _ in history):
                reason: Reason = next((c.reason for c in own if c.at == segment.start
                                       and (config.levels[c.from_level].key, config.levels[c.to_level].key)
                                       == (held, key)), "program")
                out.append(Move(segment.start, held, key, reason))
            held = key
        for change in own:
            if change.at != segment.start:  # (the start's own change is above)
                held = config.levels[change.to_level].key
                out.append(Move(change.at, config.levels[change.from_level].key, held, change.reason))
    return out


def _decay_drops(config: TiersConfig, entries: list[Entry], until: datetime) -> list[datetime]:
    """Candidate moments of decay: where the balance crosses a threshold between entries."""
    walk, out = _Decay(config), []
    for i, (t, growth) in enumerate(entries):
        walk.add(t, growth)
        end = entries[i + 1][0] if i + 1 < len(entries) else until
        out += [c for c in walk.crossings(end) if c > t]
    return out


def next_decay_drop(config: TiersConfig, history: Sequence[Entry], after: datetime) -> datetime | None:
    """Decay: when the tier will next fall if no growth comes (None: never, or not this mode)."""
    if config.qualification is not Qualification.decay:
        return None
    walk = _Decay(config)
    for t, growth in sorted(history):
        if t <= after:
            walk.add(t, growth)
    level = level_for(config.levels, walk.at(after))
    far = after + timedelta(days=365 * 200)
    drops = [c for c in walk.crossings(far) if c > after and level_for(config.levels, walk.at(c)) < level]
    return min(drops, default=None)


@dataclass(frozen=True)
class Outlook:
    """What the next review holds for a member (period mode; other modes have no reviews)."""

    next_review_at: datetime | None
    projected_level: int          # the tier the review would give if no more growth came
    growth_to_keep: int | None    # more growth this period to keep the current tier at the review
    growth_to_next: int | None    # more qualifying growth to reach the next tier now


def next_review(config: TiersConfig, tz: ZoneInfo, history: Sequence[Entry], at: datetime) -> datetime | None:
    """Period mode: the next review of a member with growth by `at` (None: other modes, or no growth yet)."""
    if config.qualification is not Qualification.period or not any(t <= at for t, _ in history):
        return None
    return next_period(period_start(at, config.period, tz), config.period)


def projected_level(config: TiersConfig, state: TierState) -> int:
    """The level a review would give a member in `state`: what the period's growth so far earns, at
    most `max_drop` below the level held (what the downgrade warnings and the outlook announce)."""
    floor = state.level - config.max_drop if config.max_drop is not None else 0
    return max(level_for(config.levels, state.qualifying), floor, 0)


def outlook(config: TiersConfig, tz: ZoneInfo, history: Sequence[Entry], at: datetime) -> Outlook:
    state = tier_at(config, tz, history, at)
    levels = config.levels
    to_next = (max(math.ceil(levels[state.level + 1].threshold - state.qualifying), 0)
               if state.level + 1 < len(levels) else None)
    review_at = next_review(config, tz, history, at)
    if review_at is None:
        return Outlook(None, state.level, None, to_next)
    projected = projected_level(config, state)
    keep = max(int(levels[state.level].threshold - state.qualifying), 0)
    return Outlook(review_at, projected, keep, to_next)
