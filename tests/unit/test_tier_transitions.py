"""What the tier policy implies over time: each change with its reason, and what the next review holds."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pointsmith.program.schema import DecayConfig, Level, Period, Qualification, TiersConfig
from pointsmith.tiers.policy import (
    Segment,
    decay_balance,
    next_decay_drop,
    outlook,
    segment_at,
    tier_at,
    transitions,
)
from pointsmith.tiers.policy import moves as policy_moves

LEVELS = [Level(key="member", name="M", threshold=0), Level(key="silver", name="S", threshold=100),
          Level(key="gold", name="G", threshold=300)]
UTC_ZONE = ZoneInfo("UTC")
MONTHLY = TiersConfig(qualification=Qualification.period, period=Period.month, max_drop=1, levels=LEVELS)
DECAY = TiersConfig(qualification=Qualification.decay, levels=LEVELS,
                    decay=DecayConfig(grace_days=10, rate_per_day=Decimal("0.1")))


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def moves(config: TiersConfig, history: list[tuple[datetime, int]], until: datetime,
          tz: ZoneInfo = UTC_ZONE) -> list[tuple[datetime, str, str, str]]:
    return [(c.at, LEVELS[c.from_level].key, LEVELS[c.to_level].key, c.reason)
            for c in transitions(config, tz, history, until)]


def test_growth_that_reaches_a_threshold_is_an_immediate_upgrade() -> None:
    assert moves(MONTHLY, [(t(2026, 1, 5), 120), (t(2026, 1, 9), 200)], t(2026, 1, 31)) == [
        (t(2026, 1, 5), "member", "silver", "upgrade"), (t(2026, 1, 9), "silver", "gold", "upgrade")]


def test_reviews_lower_the_tier_at_period_boundaries_one_level_at_a_time_with_max_drop() -> None:
    assert moves(MONTHLY, [(t(2026, 1, 5), 400)], t(2026, 4, 15)) == [
        (t(2026, 1, 5), "member", "gold", "upgrade"),
        (t(2026, 3, 1), "gold", "silver", "review"),
        (t(2026, 4, 1), "silver", "member", "review")]


def test_review_boundaries_fall_at_midnight_in_the_program_time_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    changes = moves(MONTHLY, [(t(2026, 1, 5), 150)], t(2026, 3, 15), shanghai)
    assert changes[-1] == (datetime(2026, 3, 1, tzinfo=shanghai), "silver", "member", "review")
    assert changes[-1][0] == t(2026, 2, 28, 16)


def test_a_refund_that_removes_the_growth_behind_an_upgrade_is_recorded_as_a_refund() -> None:
    assert moves(MONTHLY, [(t(2026, 1, 5), 320), (t(2026, 1, 7), -320)], t(2026, 1, 20)) == [
        (t(2026, 1, 5), "member", "gold", "upgrade"), (t(2026, 1, 7), "gold", "member", "refund")]


def test_decay_lowers_the_tier_on_the_day_the_balance_falls_below_the_threshold() -> None:
    config = DECAY.model_copy(update={"levels": [*LEVELS[:2], Level(key="gold", name="G", threshold=500)]})
    changes = [(c.at, c.to_level, c.reason) for c in transitions(config, UTC_ZONE, [(t(2026, 1, 1, 10), 1000)],
                                                                t(2026, 3, 1))]
    # 1000 * 0.9^n: below 500 after 7 decay days, below 100 after 22, each after 10 days of grace
    assert changes == [(t(2026, 1, 1, 10), 2, "upgrade"), (t(2026, 1, 18, 10), 1, "decay"),
                       (t(2026, 2, 2, 10), 0, "decay")]
    assert tier_at(config, UTC_ZONE, [(t(2026, 1, 1, 10), 1000)], t(2026, 1, 18, 9)).level == 2


def test_the_next_decay_fall_is_known_in_advance() -> None:
    history = [(t(2026, 1, 1), 350)]
    assert next_decay_drop(DECAY, history, t(2026, 1, 2)) == t(2026, 1, 13)  # 350 * 0.9^2 < 300: 10 + 2 days
    assert next_decay_drop(DECAY, history, t(2026, 1, 13)) == t(2026, 1, 23)  # 350 * 0.9^12 < 100: 10 + 12
    assert next_decay_drop(DECAY, history, t(2026, 1, 24)) is None  # nothing below the base tier


def test_a_refund_during_decay_is_taken_from_the_balance_without_decaying_twice() -> None:
    history = [(t(2026, 1, 1), 1000), (t(2026, 1, 13), -100)]  # 2 decay days by then: 810 - 100
    assert decay_balance(DECAY, history, t(2026, 1, 13)) == Decimal(710)
    assert decay_balance(DECAY, history, t(2026, 1, 14)) == Decimal(710) * Decimal("0.9")


def test_the_outlook_says_how_much_growth_keeps_the_tier_at_the_next_review() -> None:
    history = [(t(2026, 1, 5), 400), (t(2026, 2, 3), 40)]
    ahead = outlook(MONTHLY, UTC_ZONE, history, t(2026, 2, 10))
    assert ahead.next_review_at == t(2026, 3, 1)
    assert (ahead.projected_level, ahead.growth_to_keep, ahead.growth_to_next) == (1, 260, None)


def test_lifetime_tiers_have_no_review_and_name_the_growth_to_the_next_tier() -> None:
    config = TiersConfig(qualification=Qualification.lifetime, levels=LEVELS)
    ahead = outlook(config, UTC_ZONE, [(t(2026, 1, 5), 130)], t(2026, 2, 1))
    assert (ahead.next_review_at, ahead.projected_level, ahead.growth_to_next) == (None, 1, 170)


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(["lifetime", "period", "decay"]),
       steps=st.lists(st.tuples(st.integers(0, 400), st.integers(-200, 450)), min_size=1, max_size=25))
@example(mode="period", steps=[(0, 100), (236, 100)])  # growth at the very instant of a review
def test_the_changes_are_exactly_where_the_tier_function_changes_value(
        mode: str, steps: list[tuple[int, int]]) -> None:
    config = {"lifetime": TiersConfig(qualification=Qualification.lifetime, levels=LEVELS),
              "period": MONTHLY, "decay": DECAY}[mode]
    history = [(t(2026, 1, 1) + timedelta(days=d // 4, hours=d % 4 * 6), g) for d, g in steps]  # some share a time
    until = t(2026, 6, 1)
    changes = transitions(config, UTC_ZONE, history, until)
    level = 0
    for c in changes:  # each change moves from the level before it to the level the function gives then
        assert c.from_level == level != c.to_level
        assert tier_at(config, UTC_ZONE, history, c.at).level == c.to_level
        level = c.to_level
    assert level == tier_at(config, UTC_ZONE, history, until).level
    probes = sorted({t for t, _ in history} | {c.at for c in changes} | {t(2026, m, 1) for m in range(1, 7)})
    for before, after in itertools.pairwise(probes):  # no change goes unrecorded between probes
        inside = [c for c in changes if before < c.at <= after]
        if not inside:
            assert tier_at(config, UTC_ZONE, history, after).level == tier_at(config, UTC_ZONE, history,
                                                                               before).level, (before, after)


SEGMENT_CONFIGS = [  # a raised threshold, a switch of mode with other tier keys, decay
    TiersConfig(qualification=Qualification.lifetime, levels=LEVELS),
    MONTHLY,
    TiersConfig(qualification=Qualification.lifetime, levels=[
        Level(key="basic", name="B", threshold=0), Level(key="silver", name="S", threshold=250)]),
    DECAY,
]


@settings(max_examples=150, deadline=None)
@given(entries=st.lists(st.tuples(st.integers(0, 400), st.integers(-150, 400)), max_size=14),
       starts=st.lists(st.integers(1, 399), min_size=1, max_size=3, unique=True),
       order=st.permutations(range(len(SEGMENT_CONFIGS))))
def test_moves_across_policies_follow_the_policy_in_force_at_every_time(
        entries: list[tuple[int, int]], starts: list[int], order: list[int]) -> None:
    """Replaying the moves gives, at any time, the tier that the policy in force then gives for the
    growth by then; and each move starts from the tier the one before left."""
    day = timedelta(days=1)
    begin = t(2026, 1, 1)
    history = [(begin + d * day + timedelta(hours=9), g) for d, g in entries]
    bounds = [begin + s * day for s in sorted(starts)]
    configs = [SEGMENT_CONFIGS[i] for i in order][:len(bounds) + 1]
    segments = [Segment(None if i == 0 else bounds[i - 1], bounds[i] if i < len(bounds) else None, c, UTC_ZONE)
                for i, c in enumerate(configs)]
    until = begin + 420 * day
    changes = policy_moves(segments, history, until)
    first = min((at for at, _ in history), default=None)
    start = segment_at(segments, first).config.levels[0].key if first else None  # the member's first tier
    for a, b in itertools.pairwise([None, *changes]):
        assert b.from_tier == (a.to_tier if a else start) and b.from_tier != b.to_tier
    assert [c.at for c in changes] == sorted(c.at for c in changes)
    for probe in [begin + d * day + timedelta(hours=h) for d in range(0, 420, 7) for h in (0, 12)]:
        segment = segment_at(segments, probe)
        expected = segment.config.levels[tier_at(segment.config, UTC_ZONE, history, probe).level].key
        held = [c.to_tier for c in changes if c.at <= probe]
        if first is not None and first <= probe:
            assert (held[-1] if held else start) == expected, probe
        else:  # no growth yet: no tier recorded, the base one
            assert not held and expected == segment.config.levels[0].key, probe
