"""Benefits: entitlements by tier, quotas per period, idempotent uses, and what the next tier adds."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Connection

from pointsmith.benefits import service
from pointsmith.errors import BenefitNotEntitled, InvalidMemberState, QuotaExhausted
from pointsmith.events import service as events
from pointsmith.idempotency import StoredFailure
from pointsmith.members import service as members
from pointsmith.program.validation import load_program
from tests.factories import event, publish

PROGRAM = """\
program: {name: Perks, currency: USD, point_value: 0.01, timezone: Asia/Shanghai}
members: {auto_create: true}
points: {pending_days: 0, expiry: {policy: none}}
growth: {daily_cap: null}
tiers:
  qualification: lifetime
  levels:
    - {key: member, name: Member, threshold: 0}
    - {key: silver, name: Silver, threshold: 100, benefits: [free_shipping]}
    - {key: gold, name: Gold, threshold: 300, benefits: [{key: free_shipping, quota: {month: 5}}, lounge]}
benefits:
  - {key: free_shipping, name: Free shipping, kind: consumption, quota: {month: 2}}
  - {key: lounge, name: Airport lounge, kind: function, quota: {year: 1}}
  - {key: member_day, name: Member day prices, kind: content, global: true}
rules:
  - {key: order, event: order.paid, points: "floor(event.amount)", growth: "floor(event.amount)"}
"""
NOW = datetime(2026, 5, 10, 4, tzinfo=UTC)


@pytest.fixture
def program(conn: Connection):  # type: ignore[no-untyped-def]
    publish(conn, PROGRAM)
    events.ingest_many(conn, [event("s", member="s", order_id="o1", amount=150),
                              event("g", member="g", order_id="o2", amount=400)])
    members.create(conn, "m")
    return load_program(PROGRAM)


def keys(listing: dict) -> dict[str, str]:
    return {b["key"]: b["source"] for b in listing["benefits"]}


def test_a_member_holds_global_benefits_and_those_of_their_tier_and_below(conn: Connection, program) -> None:  # type: ignore[no-untyped-def]
    assert keys(service.listing(conn, program, "m", NOW)) == {"member_day": "global"}
    assert keys(service.listing(conn, program, "s", NOW)) == {"member_day": "global", "free_shipping": "tier:silver"}
    gold = service.listing(conn, program, "g", NOW)
    assert keys(gold) == {"member_day": "global", "free_shipping": "tier:gold", "lounge": "tier:gold"}
    shipping = next(b for b in gold["benefits"] if b["key"] == "free_shipping")
    assert shipping["quota"]["limit"] == 5  # gold's own quota beats silver's


def test_a_lower_tier_sees_what_the_next_tier_would_add(conn: Connection, program) -> None:  # type: ignore[no-untyped-def]
    upcoming = service.listing(conn, program, "s", NOW)["next_tier"]
    assert upcoming["tier"] == "gold"
    assert {b["key"]: b["quota"]["limit"] for b in upcoming["benefits"]} == {"free_shipping": 5, "lounge": 1}
    assert service.listing(conn, program, "g", NOW)["next_tier"] is None


def test_uses_count_against_the_quota_of_the_period_in_the_program_time_zone(conn: Connection, program) -> None:  # type: ignore[no-untyped-def]
    first = service.use(conn, program, "s", "free_shipping", key="u1", at=NOW)
    assert first.body["quota"]["remaining"] == 1 and not first.replayed
    assert service.use(conn, program, "s", "free_shipping", key="u1", at=NOW).replayed  # a retry uses nothing
    service.use(conn, program, "s", "free_shipping", key="u2", at=NOW)
    with pytest.raises(QuotaExhausted):
        service.use(conn, program, "s", "free_shipping", key="u3", at=NOW)
    with pytest.raises(StoredFailure) as again:  # the refusal is remembered for its key
        service.use(conn, program, "s", "free_shipping", key="u3", at=NOW)
    assert again.value.code == "quota_exhausted"
    # 31 May 17:00 UTC is already 1 June in Shanghai: a new month, a new quota
    fresh = service.use(conn, program, "s", "free_shipping", key="u4", at=datetime(2026, 5, 31, 17, tzinfo=UTC))
    assert fresh.body["quota"]["remaining"] == 1
    assert fresh.body["quota"]["resets_at"] == "2026-06-30T16:00:00Z"


def test_a_benefit_of_another_tier_or_a_frozen_member_is_refused(conn: Connection, program) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BenefitNotEntitled):
        service.use(conn, program, "s", "lounge", key="l1", at=NOW)
    members.change_status(conn, "g", "freeze", reason="fraud review", actor="ops")
    with pytest.raises(InvalidMemberState):
        service.use(conn, program, "g", "lounge", key="l2", at=NOW)


def test_unlimited_benefits_have_no_quota(conn: Connection, program) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        assert service.use(conn, program, "m", "member_day", key=f"d{i}", at=NOW).body["quota"] is None


def test_a_tier_the_program_no_longer_has_gives_only_the_global_benefits() -> None:
    assert set(service.entitlements(load_program(PROGRAM), "diamond")) == {"member_day"}
