"""The tier policy: a pure function of growth history, policy and time."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from pointsmith.program.schema import DecayConfig, Level, Period, Qualification, TiersConfig
from pointsmith.tiers.policy import tier_at

LEVELS = [Level(key="member", name="M", threshold=0), Level(key="silver", name="S", threshold=100),
          Level(key="gold", name="G", threshold=300)]
UTC_ZONE = ZoneInfo("UTC")


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def key(config: TiersConfig, history: list[tuple[datetime, int]], at: datetime, tz: ZoneInfo = UTC_ZONE) -> str:
    return LEVELS[tier_at(config, tz, history, at).level].key


def test_lifetime_tier_follows_net_growth_and_only_a_refund_lowers_it() -> None:
    config = TiersConfig(qualification=Qualification.lifetime, levels=LEVELS)
    assert key(config, [(t(2026, 1, 1), 150)], t(2030, 1, 1)) == "silver"
    assert key(config, [(t(2026, 1, 1), 150), (t(2026, 2, 1), -100)], t(2026, 2, 2)) == "member"


def test_a_period_tier_is_held_until_the_end_of_the_next_period() -> None:
    config = TiersConfig(qualification=Qualification.period, period=Period.month, levels=LEVELS)
    history = [(t(2026, 1, 5), 150)]
    assert key(config, history, t(2026, 1, 6)) == "silver"
    assert key(config, history, t(2026, 2, 28)) == "silver"
    assert key(config, history, t(2026, 3, 1)) == "member"


def test_max_drop_lowers_one_level_per_review() -> None:
    config = TiersConfig(qualification=Qualification.period, period=Period.month, max_drop=1, levels=LEVELS)
    history = [(t(2026, 1, 5), 400)]
    assert [key(config, history, t(2026, m, 2)) for m in (2, 3, 4)] == ["gold", "silver", "member"]


def test_period_boundaries_are_in_the_program_time_zone() -> None:
    config = TiersConfig(qualification=Qualification.period, period=Period.month, levels=LEVELS)
    shanghai = ZoneInfo("Asia/Shanghai")
    # 31 Jan 20:00 UTC is already February in Shanghai: it counts for February there.
    history = [(t(2026, 1, 31, 20), 150)]
    assert key(config, history, t(2026, 3, 31, 12), shanghai) == "silver"
    assert key(config, history, t(2026, 3, 31, 12), UTC_ZONE) == "member"


def test_a_refund_in_the_period_falls_back_no_lower_than_the_last_review() -> None:
    config = TiersConfig(qualification=Qualification.period, period=Period.month, levels=LEVELS)
    history = [(t(2026, 1, 5), 150), (t(2026, 2, 3), 300), (t(2026, 2, 10), -300)]
    assert key(config, history, t(2026, 2, 4)) == "gold"
    assert key(config, history, t(2026, 2, 11)) == "silver"


def test_a_refund_that_removes_the_growth_behind_an_upgrade_takes_the_upgrade_back() -> None:
    config = TiersConfig(qualification=Qualification.period, period=Period.year, levels=LEVELS)
    history = [(t(2026, 3, 1), 320), (t(2026, 3, 5), -320)]
    assert key(config, history, t(2026, 3, 2)) == "gold"
    assert key(config, history, t(2026, 3, 6)) == "member"


def test_decay_starts_after_the_grace_period_and_compounds_daily() -> None:
    config = TiersConfig(qualification=Qualification.decay, decay=DecayConfig(grace_days=10,
                         rate_per_day=Decimal("0.1")), levels=[*LEVELS[:2], Level(key="gold", name="G", threshold=500)])
    history = [(t(2026, 1, 1, 10), 1000)]
    state = tier_at(config, UTC_ZONE, history, t(2026, 1, 12, 12))
    assert state.qualifying == Decimal(900) and state.level == 2
    assert key(config, history, t(2026, 1, 31, 12)) == "silver"
    assert key(config, history, t(2026, 2, 20, 12)) == "member"


def test_a_gain_restarts_the_grace_period_from_the_decayed_balance() -> None:
    config = TiersConfig(qualification=Qualification.decay, decay=DecayConfig(grace_days=0,
                         rate_per_day=Decimal("0.5")), levels=LEVELS)
    history = [(t(2026, 1, 1), 400), (t(2026, 1, 3), 100)]  # 400 → 100 after two days, +100
    assert tier_at(config, UTC_ZONE, history, t(2026, 1, 3, 1)).qualifying == Decimal(200)
