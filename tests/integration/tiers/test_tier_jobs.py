"""Tiers over time against a real database: a two-year history replayed and checked against a hand
calculation, set-based reviews equal to the pure policy, warnings, overrides, the tier reports."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock, outbox
from pointsmith.analytics.tiers import members_per_tier, tier_flow
from pointsmith.events import service as events
from pointsmith.events.replay import ReplayClock
from pointsmith.growth import service as growth
from pointsmith.jobs.service import run_due_within
from pointsmith.members.view import member_view
from pointsmith.program.validation import load_program
from pointsmith.tiers import service as tiers
from pointsmith.tiers.policy import tier_at, transitions
from pointsmith.tiers.tables import member_tiers
from tests.factories import YEARLY, event, publish

TWO_YEARS = [
    event("a1", member="a", at="2025-03-10T10:00:00Z", order_id="a-o1", amount=1200),   # silver at once
    event("b1", member="b", at="2025-06-01T10:00:00Z", order_id="b-o1", amount=25000),  # platinum at once
    event("b2", "order.refunded", member="b", at="2025-06-20T10:00:00Z", order_id="b-o1", amount=10000),  # 15000
    event("a2", member="a", at="2025-08-01T10:00:00Z", order_id="a-o2", amount=4000),   # 5200: gold
    event("c1", member="c", at="2025-12-31T23:00:00Z", order_id="c-o1", amount=1500),   # silver, an hour before review
    event("b3", member="b", at="2026-02-01T10:00:00Z", order_id="b-o3", amount=6000),   # gold held
    event("b4", member="b", at="2026-03-01T10:00:00Z", order_id="b-o4", amount=15000),  # 21000 in 2026: platinum
    event("a3", member="a", at="2026-05-01T10:00:00Z", order_id="a-o3", amount=900),    # too little to keep gold
]


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def replay(conn: Connection, raws: list[dict[str, Any]], until: datetime) -> None:
    clock_ = ReplayClock()
    result = events.ingest_many(conn, raws, replay=clock_)
    assert result.rejected == 0, result.errors
    clock_.finish(conn)
    with clock.frozen(until):
        run_due_within(conn, until)


def tier_of(conn: Connection, member_id: str, at: datetime) -> str:
    return str(member_view(conn, member_id, at=at)["tier"])


def test_a_two_year_yearly_history_gives_the_hand_calculated_tiers(conn: Connection) -> None:
    publish(conn, YEARLY)
    replay(conn, TWO_YEARS, t(2027, 1, 2))
    expected = {  # by hand, from the comments above
        t(2025, 7, 1): ("silver", "gold", "member"),
        t(2025, 12, 31, 12): ("gold", "gold", "member"),
        t(2026, 1, 1, 12): ("gold", "gold", "silver"),    # the 2025 review: a 5200, b 15000, c 1500
        t(2026, 6, 1): ("gold", "platinum", "silver"),
        t(2027, 1, 2): ("member", "platinum", "member"),  # the 2026 review: a 900, b 21000, c 0
    }
    for at, tiers_ in expected.items():
        assert tuple(tier_of(conn, m, at) for m in "abc") == tiers_, at
    # the stored state, moved along by the review job, agrees with the pure policy
    stored = dict(conn.execute(sa.select(member_tiers.c.member_id, member_tiers.c.tier)).all())
    assert stored == {"a": "member", "b": "platinum", "c": "member"}
    assert [(c["effective_at"], c["to"], c["reason"]) for c in tiers.history(conn, "b")] == [
        ("2025-06-01T10:00:00Z", "platinum", "upgrade"), ("2025-06-20T10:00:00Z", "gold", "refund"),
        ("2026-03-01T10:00:00Z", "platinum", "upgrade")]
    assert [(c["effective_at"], c["to"], c["reason"]) for c in tiers.history(conn, "a")] == [
        ("2025-03-10T10:00:00Z", "silver", "upgrade"), ("2025-08-01T10:00:00Z", "gold", "upgrade"),
        ("2027-01-01T00:00:00Z", "member", "review")]
    # warned 30 days before the review that would lower them; b, who keeps platinum, is not
    warnings = {e["member_id"]: e for e in outbox.since(conn) if e["type"] == "tier.downgrade_warning"}
    assert set(warnings) == {"a", "c"}
    assert warnings["a"]["occurred_at"] == "2026-12-02T00:00:00Z"
    assert (warnings["a"]["tier"], warnings["a"]["projected_tier"], warnings["a"]["growth_to_keep"]) == (
        "gold", "member", 4100)


def test_the_tier_multiplier_is_the_tier_held_just_before_the_event(conn: Connection) -> None:
    publish(conn, YEARLY)
    replay(conn, [*TWO_YEARS[:4], event("a9", member="a", at="2025-09-01T10:00:00Z", order_id="a-o9", amount=100)],
           t(2025, 9, 2))
    outcome = events.get(conn, "a9")["outcome"]
    assert (outcome["tier"], outcome["points"]) == ("gold", 100)  # the rule multiplies by nothing: growth only


def _population(seed: int, members: int, months: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(members * 4):
        member = f"p{rng.randrange(members)}"
        at = t(2026, 1, 1) + timedelta(hours=rng.randrange(months * 30 * 24))
        out.append(event(f"e{i}", member=member, at=clock.iso(at), order_id=f"o{i}", amount=rng.randint(1, 600)))
    return out


MONTHLY = YEARLY.replace("period: year", "period: month").replace("warn_days: 30", "warn_days: 5\n  max_drop: 1") \
    .replace("threshold: 1000", "threshold: 300").replace("threshold: 5000", "threshold: 800") \
    .replace("threshold: 20000", "threshold: 1500")


@pytest.mark.parametrize(("seed", "zone"), [(1, "UTC"), (2, "Asia/Shanghai"), (3, "America/New_York")])
def test_set_based_reviews_leave_every_member_where_the_pure_policy_puts_them(conn: Connection, seed: int,
                                                                              zone: str) -> None:
    source = MONTHLY.replace("timezone: UTC", f"timezone: {zone}")  # months of different lengths, DST
    publish(conn, source)
    raws = _population(seed, 60, 3)
    events.ingest_many(conn, raws)  # all at once: the reviews in between are left to the jobs
    until = t(2026, 9, 15)
    with clock.frozen(until):
        run_due_within(conn, until)
    program = load_program(source)
    tz = ZoneInfo(zone)
    levels = program.tiers.levels
    stored = dict(conn.execute(sa.select(member_tiers.c.member_id, member_tiers.c.tier)).all())
    for member_id in {r["member_id"] for r in raws}:
        history = growth.history(conn, member_id)
        assert stored[member_id] == levels[tier_at(program.tiers, tz, history, until).level].key, member_id
        assert [(c["effective_at"], c["to"], c["reason"]) for c in tiers.history(conn, member_id)] == [
            (clock.iso(c.at), levels[c.to_level].key, c.reason)
            for c in transitions(program.tiers, tz, history, until)], member_id
    counts = members_per_tier(conn, program)
    assert sum(counts.values()) == len(stored) and counts["member"] == len(stored)  # months without growth


def test_an_admin_override_holds_a_tier_until_its_end_and_is_kept_in_the_history(conn: Connection) -> None:
    publish(conn, YEARLY)
    replay(conn, TWO_YEARS[:1], t(2025, 3, 11))
    program = load_program(YEARLY)
    tiers.set_override(conn, program, "a", "platinum", until=t(2025, 4, 1), reason="VIP complaint", actor="ops",
                       at=t(2025, 3, 12))
    assert tier_of(conn, "a", t(2025, 3, 20)) == "platinum"
    events.ingest_many(conn, [event("a5", member="a", at="2025-03-20T10:00:00Z", order_id="a-o5", amount=100)])
    assert events.get(conn, "a5")["outcome"]["tier"] == "platinum"  # the override's multiplier applies
    with clock.frozen(t(2025, 4, 2)):
        run_due_within(conn, t(2025, 4, 2))
    assert tier_of(conn, "a", t(2025, 4, 2)) == "silver"
    manual = [c for c in tiers.history(conn, "a") if c["reason"] == "manual"]
    assert [(c["effective_at"], c["from"], c["to"]) for c in manual] == [
        ("2025-03-12T00:00:00Z", "silver", "platinum"), ("2025-04-01T00:00:00Z", "platinum", "silver")]
    assert manual[0]["note"] == "VIP complaint" and manual[0]["actor"] == "ops"


def test_tier_flow_counts_members_moving_between_two_times(conn: Connection) -> None:
    publish(conn, YEARLY)
    replay(conn, TWO_YEARS, t(2027, 1, 2))
    program = load_program(YEARLY)
    report = tier_flow(conn, program, t(2025, 7, 1), t(2026, 6, 1))
    assert report["flow"]["silver"]["gold"] == 1       # a
    assert report["flow"]["gold"]["platinum"] == 1     # b
    assert report["flow"]["member"]["silver"] == 1     # c, who joined in between
    assert report["moved"] == {"up": 3, "down": 0, "same": 0}
    assert members_per_tier(conn, program, t(2026, 6, 1)) == {"member": 0, "silver": 1, "gold": 1, "platinum": 1}
    assert members_per_tier(conn, program) == {"member": 2, "silver": 0, "gold": 0, "platinum": 1}


def test_a_warning_longer_than_its_period_is_dated_when_the_judged_period_begins(conn: Connection) -> None:
    publish(conn, YEARLY.replace("period: year\n  warn_days: 30", "period: month\n  warn_days: 40"))
    replay(conn, [event("w1", member="w", at="2026-01-05T10:00:00Z", order_id="w-o1", amount=1200)],
           until=t(2026, 2, 15))
    warnings = [e for e in outbox.since(conn) if e["type"] == "tier.downgrade_warning"]
    # the February review keeps silver (January's growth); the March review judges February, which
    # began on the 1st: not 40 days before March (20 January, before February and its own review)
    assert [(e["member_id"], e["review_at"], e["occurred_at"]) for e in warnings] == [
        ("w", "2026-03-01T00:00:00Z", "2026-02-01T00:00:00Z")]


def _counted(conn: Connection) -> dict[str, int]:
    with clock.frozen(t(2026, 12, 7)):  # the wall clock: as recorded, neither report looks at it
        return {k: v for k, v in members_per_tier(conn, load_program(YEARLY)).items() if v}


def test_the_member_view_and_the_summary_agree_on_every_tier_as_recorded(conn: Connection) -> None:
    """Before the jobs run, another member's later event moves no review of this one; an override
    holds until the job that ends it has run, whatever the wall clock says."""
    publish(conn, YEARLY)
    events.ingest_many(conn, [event("a1", member="a", at="2025-06-01T10:00:00Z", order_id="a-o1", amount=1500),
                              event("b1", member="b", at="2027-03-01T10:00:00Z", order_id="b-o1", amount=10)])
    assert [member_view(conn, m)["tier"] for m in ("a", "b")] == ["silver", "member"]
    assert _counted(conn) == {"member": 1, "silver": 1}
    with clock.frozen(t(2027, 3, 1)):
        run_due_within(conn, t(2027, 3, 1))  # a's 2027 review: nothing earned in 2026
    assert member_view(conn, "a")["tier"] == "member" and _counted(conn) == {"member": 2}
    tiers.set_override(conn, load_program(YEARLY), "a", "gold", until=t(2027, 1, 1), reason="goodwill",
                       actor="ops", at=t(2026, 12, 7))  # already over at the jobs' time: the next run ends it
    assert member_view(conn, "a")["tier_override"]["tier"] == "gold"
    assert member_view(conn, "a")["tier"] == "gold" and _counted(conn) == {"member": 1, "gold": 1}
    with clock.frozen(t(2027, 3, 2)):
        run_due_within(conn, t(2027, 3, 2))
    assert member_view(conn, "a")["tier"] == "member" and _counted(conn) == {"member": 2}
