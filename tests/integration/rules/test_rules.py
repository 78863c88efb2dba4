"""The rules applied to events, checked against a hand calculation (CONTRACT §1, §2)."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from pointsmith.analytics.summary import summary
from pointsmith.errors import RefundExceedsOrder, UnknownOrder, ValidationFailed
from pointsmith.events import service as events
from pointsmith.events.validation import parse_event, parse_line
from pointsmith.growth import service as growth
from pointsmith.jobs.service import run_due_within
from pointsmith.ledger import queries
from pointsmith.ledger.service import CreditRequest, credit
from pointsmith.ledger.verify import verify
from pointsmith.members import service as members
from tests.factories import SIMPLE_PROGRAM, event, publish

CONTRACT_EXAMPLE = (Path(__file__).resolve().parents[2] / "fixtures" / "contract_example.yaml").read_text()


def ingest(conn: Connection, raw: dict[str, Any]) -> dict[str, Any]:
    return events.ingest(conn, parse_event(raw)).outcome


def rule(outcome: dict[str, Any], key: str) -> dict[str, Any]:
    return next(r for r in outcome["rules"] if r["rule"] == key)


def test_the_contract_example_gives_exactly_what_a_hand_calculation_gives(conn: Connection) -> None:
    publish(conn, CONTRACT_EXAMPLE)
    day = "2026-11-11T0{}:00:00Z"
    # 1. a member's first order on Double 11: tier member (x1): 120 points, 120 growth
    first = ingest(conn, event("e1", member="h", at=day.format(1), order_id="o1", amount=120.50))
    assert (first["points"], first["growth"], first["tier"]) == (120, 120, "member")
    # 2. now silver (x1.25): 300 * 1.25 = 375 points; growth is capped at 200 a day: 80 more
    second = ingest(conn, event("e2", member="h", at=day.format(2), order_id="o2", amount=300))
    assert (second["tier"], second["points"], second["growth"]) == ("silver", 375, 80)
    assert rule(second, "order-points")["growth_cut_by"] == "growth.daily_cap"
    # 3. 5000 * 1.25 = 6250, cut by the 5000-a-day limit to 5000 - 495 = 4505
    third = ingest(conn, event("e3", member="h", at=day.format(3), order_id="o3", amount=5000))
    assert (third["points"], rule(third, "order-points")["cut_by"]) == (4505, "points.day")
    # 4. the rule's window has closed
    late = ingest(conn, event("e4", member="h", at="2026-11-12T01:00:00Z", order_id="o4", amount=50))
    assert late["points"] == 0 and rule(late, "order-points")["reason"] == "outside the rule's active window"
    # 5. a negative incentive
    assert ingest(conn, event("e5", "complaint.judged_malicious", member="h", at="2026-11-12T02:00:00Z"))[
        "points"] == -200
    # 6-7. two half refunds of o2 take back 187 then 188 points (375 in all) and 40 + 40 growth
    half = ingest(conn, event("e6", "order.refunded", member="h", at="2026-11-13T01:00:00Z", order_id="o2",
                              amount=150))
    assert (half["refund"]["points_back"], half["refund"]["growth_back"]) == (187, 40)
    rest = ingest(conn, event("e7", "order.refunded", member="h", at="2026-11-13T02:00:00Z", order_id="o2",
                              amount=150))
    assert (rest["refund"]["points_back"], rest["refund"]["growth_back"]) == (188, 40)
    assert queries.balance(conn, "h")["available"] == 120 + 375 + 4505 - 200 - 375
    assert growth.lifetime(conn, "h") == 120
    assert verify(conn).ok


def test_every_posting_names_its_event_rule_and_program_version(conn: Connection) -> None:
    version = publish(conn)
    ingest(conn, event("x1", order_id="o1", amount=42))
    (item,), _ = queries.history(conn, "m-1")
    assert (item["event_id"], item["rule_key"], item["program_version"], item["points"]) == (
        "x1", "order", version.version, 42)


def test_refund_errors_name_the_order(conn: Connection) -> None:
    publish(conn)
    with pytest.raises(UnknownOrder):
        ingest(conn, event("r0", "order.refunded", order_id="nope", amount=1))
    ingest(conn, event("p1", order_id="o1", amount=Decimal("120.25")))
    ingest(conn, event("r1", "order.refunded", order_id="o1", amount=100, at="2026-01-02T10:00:00Z"))
    # the amounts as they were sent, on either backend (PostgreSQL keeps six decimals)
    with pytest.raises(RefundExceedsOrder, match=r"refunds of 160\.32 exceed its amount 120\.25$"):
        ingest(conn, event("r2", "order.refunded", order_id="o1", amount=Decimal("60.32"), at="2026-01-02T11:00:00Z"))


def test_a_refund_whose_id_is_as_long_as_an_id_may_be_is_taken(conn: Connection) -> None:
    publish(conn)
    ingest(conn, event("p" * 255, order_id="o1", amount=50))
    refund = ingest(conn, event("r" * 255, "order.refunded", order_id="o1", amount=10, at="2026-01-02T10:00:00Z"))
    assert refund["refund"]["points_back"] == 10
    assert queries.points_view(conn, "m-1")["available"] == 40


def test_a_refund_releases_the_limit_it_used(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM.replace('growth: "floor(event.amount)"}',
                                         'growth: "floor(event.amount)", limits: {points: {day: 100}}}'))
    ingest(conn, event("a", order_id="o1", amount=100, at="2026-01-01T09:00:00Z"))
    ingest(conn, event("b", "order.refunded", order_id="o1", amount=100, at="2026-01-01T10:00:00Z"))
    again = ingest(conn, event("c", order_id="o2", amount=80, at="2026-01-01T11:00:00Z"))
    assert again["points"] == 80


def test_pending_points_are_cancelled_first_by_a_refund(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM.replace("pending_days: 0", "pending_days: 7").replace(
        'growth: "floor(event.amount)"}', 'growth: "floor(event.amount)", pending: true}'))
    ingest(conn, event("a", order_id="o1", amount=100))
    ingest(conn, event("b", "order.refunded", order_id="o1", amount=40, at="2026-01-02T10:00:00Z"))
    assert queries.balance(conn, "m-1") == {"available": 0, "pending": 60, "held": 0, "debt": 0}


def test_a_rule_whose_expression_fails_on_an_event_is_skipped_with_the_reason(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM.replace('when: "event.amount >= 1"', "").replace(
        '{key: order, event: order.paid,', '{key: order, event: order.paid, when: "event.channel > 3",'))
    out = ingest(conn, event("a", order_id="o1", amount=10))
    assert out["points"] == 0 and rule(out, "order")["reason"].startswith("expression failed")


def test_a_refund_cancels_the_pending_points_of_every_lot_of_the_order_before_available_ones(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM.replace("pending_days: 0", "pending_days: 30") + (
        '  - {key: bonus, event: order.paid, points: "floor(event.amount)", pending: true}\n'))
    ingest(conn, event("a", order_id="o1", amount=100))  # lot 1: 100 available (order), lot 2: 100 pending
    ingest(conn, event("b", "order.refunded", order_id="o1", amount=50, at="2026-01-02T10:00:00Z"))
    assert queries.balance(conn, "m-1") == {"available": 100, "pending": 0, "held": 0, "debt": 0}
    assert verify(conn).ok


def test_a_refund_of_an_order_of_zero_takes_back_what_it_earned_as_it_frees_the_limit(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM.replace('points: "floor(event.amount)", growth: "floor(event.amount)"}',
                                         'points: 10, growth: 5, limits: {times: {lifetime: 1}}}'))
    assert ingest(conn, event("a", order_id="o1", amount=0))["points"] == 10
    refund = ingest(conn, event("b", "order.refunded", order_id="o1", amount=0, at="2026-01-02T10:00:00Z"))
    assert (refund["refund"]["points_back"], refund["refund"]["growth_back"]) == (10, 5)
    assert ingest(conn, event("c", order_id="o2", amount=0, at="2026-01-03T10:00:00Z"))["points"] == 10
    assert queries.balance(conn, "m-1")["available"] == 10 and growth.lifetime(conn, "m-1") == 5


@pytest.mark.parametrize("amount", ["12345678901.234", "99999999999.99", "100.123456", "0.000004"])
def test_a_full_refund_of_any_amount_an_order_may_have_takes_back_all_it_earned(conn: Connection,
                                                                                amount: str) -> None:
    publish(conn, SIMPLE_PROGRAM.replace('points: "floor(event.amount)", growth: "floor(event.amount)"}',
                                         'points: 100, growth: 10}'))
    ingest(conn, parse_line_event(f'{{"order_id": "o1", "amount": {amount}}}', "a"))
    refund = ingest(conn, parse_line_event(f'{{"order_id": "o1", "amount": {amount}}}', "b", "order.refunded"))
    assert (refund["refund"]["points_back"], refund["refund"]["growth_back"]) == (100, 10)
    assert refund["refund"]["order_amount"] == Decimal(amount)


def parse_line_event(attributes: str, eid: str, kind: str = "order.paid") -> dict[str, Any]:
    """An event as the wire brings it: its numbers exactly as written."""
    raw: dict[str, Any] = parse_line(f'{{"id": "{eid}", "type": "{kind}", "member_id": "m-1", '
                                     f'"occurred_at": "2026-01-01T10:00:00Z", "attributes": {attributes}}}')
    return raw


def test_refunds_that_would_total_more_digits_than_an_amount_keeps_are_refused(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM.replace('points: "floor(event.amount)", growth: "floor(event.amount)"}',
                                         'points: 100, growth: 10}'))
    ingest(conn, parse_line_event('{"order_id": "o1", "amount": 12345678901.2346}', "a"))
    ingest(conn, parse_line_event('{"order_id": "o1", "amount": 12345678901.2}', "b", "order.refunded"))
    with pytest.raises(ValidationFailed, match="more than 15 significant digits"):  # 12345678901.200001
        ingest(conn, parse_line_event('{"order_id": "o1", "amount": 0.000001}', "c", "order.refunded"))
    last = ingest(conn, parse_line_event('{"order_id": "o1", "amount": 0.0346}', "d", "order.refunded"))
    assert last["refund"]["points_back"] == 100 - 99  # the first took back floor(100 * 12345678901.2 / A) = 99


CHECKIN = SIMPLE_PROGRAM + (
    "  - {key: chk, event: checkin, points: 10, growth: 1, limits: {times: {day: 1, lifetime: 3}}}\n")
CHECKINS = [event(f"c{i}", "checkin", at=at) for i, at in enumerate(
    ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2026-01-02T01:00:00Z", "2026-01-03T01:00:00Z"])]


def test_an_award_cut_to_no_points_is_not_a_use_of_the_rules_times(conn: Connection) -> None:
    publish(conn, CHECKIN)
    points = [ingest(conn, raw)["points"] for raw in CHECKINS]
    assert points == [10, 0, 10, 10]  # a day's second check-in is cut; the fourth is the third award


def test_the_batch_path_counts_times_as_the_per_event_path_does(conn: Connection) -> None:
    publish(conn, CHECKIN)
    result = events.ingest_many(conn, CHECKINS)
    assert [r["outcome"]["points"] for r in result.results] == [10, 0, 10, 10]


def test_a_rule_that_computes_nothing_gave_nothing_and_was_not_cut(conn: Connection) -> None:
    publish(conn)
    out = ingest(conn, event("a", order_id="o1", amount=0))
    assert rule(out, "order") == {"rule": "order", "status": "awarded", "proposed_points": 0, "proposed_growth": 0,
                                  "points": 0, "growth": 0}


def test_a_refund_gives_a_budget_back_only_what_the_award_was_charged(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM)
    publish(conn, SIMPLE_PROGRAM.replace('growth: "floor(event.amount)"}',
                                         'growth: "floor(event.amount)", limits: {budget: 1000}}'),
            effective_at=datetime(2026, 2, 1, tzinfo=UTC))
    ingest(conn, event("x1", member="x", order_id="o1", amount=600, at="2026-01-05T10:00:00Z"))  # no budget then
    assert ingest(conn, event("y1", member="y", order_id="o2", amount=1000, at="2026-02-05T10:00:00Z"))[
        "points"] == 1000
    ingest(conn, event("x2", "order.refunded", member="x", order_id="o1", amount=600, at="2026-02-06T10:00:00Z"))
    late = ingest(conn, event("z1", member="z", order_id="o3", amount=1000, at="2026-02-07T10:00:00Z"))
    assert (late["points"], rule(late, "order")["cut_by"]) == (0, "budget")


def test_a_partial_refund_releases_the_limits_by_the_points_it_took_back(conn: Connection) -> None:
    one_a_day = 'points: 1, limits: {points: {day: 1}}}'
    publish(conn, SIMPLE_PROGRAM.replace('points: "floor(event.amount)", growth: "floor(event.amount)"}', one_a_day)
            + f"  - {{key: second, event: order.paid, {one_a_day}\n")
    assert ingest(conn, event("a", order_id="o1", amount=10, at="2026-01-01T09:00:00Z"))["points"] == 2
    half = ingest(conn, event("b", "order.refunded", order_id="o1", amount=5, at="2026-01-01T10:00:00Z"))
    assert half["refund"]["points_back"] == 1
    assert ingest(conn, event("c", order_id="o2", amount=10, at="2026-01-01T11:00:00Z"))["points"] == 1


@pytest.mark.parametrize("batch", [False, True])
def test_a_rule_can_pick_members_by_when_they_joined(conn: Connection, batch: bool) -> None:
    publish(conn, SIMPLE_PROGRAM + "  - {key: newcomer, event: checkin, points: 10,"
                                   " when: \"member.joined_at >= '2026-03-01'\"}\n")
    raws = [event("j1", "member.registered", member="old", at="2026-02-28T23:59:59Z"),
            event("j2", "member.registered", member="new", at="2026-03-01T00:00:00Z"),
            event("c1", "checkin", member="old", at="2026-03-05T10:00:00Z"),
            event("c2", "checkin", member="new", at="2026-03-05T10:00:00Z")]
    if batch:
        assert events.ingest_many(conn, raws).rejected == 0
    else:
        for raw in raws:
            ingest(conn, raw)
    assert [events.get(conn, eid)["outcome"]["points"] for eid in ("c1", "c2")] == [0, 10]


def test_a_rule_whose_growth_comes_out_below_zero_gives_none(conn: Connection) -> None:
    # a lifetime tier is lowered only by a refund; a rule's growth value is never taken away
    publish(conn, SIMPLE_PROGRAM + '  - {key: odd, event: checkin, points: 1, growth: "event.score - 100"}\n')
    ingest(conn, event("a", order_id="o1", amount=150))  # silver
    out = ingest(conn, event("b", "checkin", score=10, at="2026-01-02T10:00:00Z"))
    assert (out["points"], out["growth"], rule(out, "odd")["growth"]) == (1, 0, 0)
    assert growth.lifetime(conn, "m-1") == 150
    assert ingest(conn, event("c", order_id="o2", amount=10, at="2026-01-03T10:00:00Z"))["tier"] == "silver"


def test_the_outcome_says_which_awards_are_pending(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM.replace("pending_days: 0", "pending_days: 7") + (
        "  - {key: bonus, event: order.paid, points: 5, pending: true}\n"))
    out = ingest(conn, event("a", order_id="o1", amount=100))
    assert "pending" not in rule(out, "order") and rule(out, "bonus")["pending"] is True


def test_when_must_be_true_or_false(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM + '  - {key: app, event: checkin, points: 3, when: "event.channel"}\n'
                                   "  - {key: always, event: checkin, points: 1, when: true}\n"
                                   '  - {key: vip, event: checkin, points: 7, when: "event.vip and event.n > 1"}\n')
    out = ingest(conn, event("a", "checkin", channel="no"))  # a truthy "no" is not a yes
    assert rule(out, "app")["reason"] == "expression failed: a condition must be true or false, not text"
    assert (out["points"], rule(out, "always")["points"]) == (1, 1)
    assert rule(out, "vip")["reason"] == "`when` is false"  # no `vip`: nothing, which is false
    assert ingest(conn, event("b", "checkin", vip=True, n=2, at="2026-01-02T10:00:00Z"))["points"] == 8


def test_an_award_past_the_ledgers_bound_refuses_its_event_naming_the_rule(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM + '  - {key: raw, event: promo.bonus, points: "event.x"}\n')
    with pytest.raises(ValidationFailed, match="rule 'raw' gives 100,000,000,000,000,000,000 points"):
        ingest(conn, event("a", "promo.bonus", x=Decimal("1e20")))
    result = events.ingest_many(conn, [event("b", "promo.bonus", x=Decimal("1e20")), event("c", "promo.bonus", x=5)])
    assert (result.accepted, result.rejected) == (1, 1)


@pytest.mark.parametrize("batch", [False, True])
def test_an_award_past_the_ledgers_bound_that_a_limit_cuts_within_it_is_cut_not_refused(conn: Connection,
                                                                                      batch: bool) -> None:
    publish(conn, SIMPLE_PROGRAM.replace("daily_cap: null", "daily_cap: 500").replace(
        'growth: "floor(event.amount)"}', 'growth: "floor(event.amount)", limits: {points: {year: 1000000}}}'))
    raw = event("a", order_id="o1", amount=Decimal("9999999999999.99"))
    out = (events.ingest_many(conn, [raw]).results[0]["outcome"] if batch else ingest(conn, raw))
    assert (out["points"], out["growth"], rule(out, "order")["cut_by"]) == (1_000_000, 500, "points.year")
    assert ingest(conn, event("r", "order.refunded", order_id="o1", amount=Decimal("9999999999999.99"),
                              at="2026-01-02T10:00:00Z"))["refund"]["points_back"] == 1_000_000


def test_a_refund_takes_nothing_from_its_orders_lot_once_that_lot_has_expired(conn: Connection) -> None:
    # the same whether or not the expiry job ran before the refund came (CONTRACT §3, §4)
    publish(conn, SIMPLE_PROGRAM.replace("expiry: {policy: none}", "expiry: {policy: rolling, months: 1}")
            + "  - {key: checkin, event: checkin, points: 50}\n")
    ingest(conn, event("o", order_id="o1", amount=100, at="2026-01-01T00:00:00Z"))  # its lot expires 02-01
    ingest(conn, event("k", "checkin", at="2026-02-10T00:00:00Z"))
    ingest(conn, event("r", "order.refunded", order_id="o1", amount=100, at="2026-02-20T00:00:00Z"))
    # 50 from the checkin's lot, 50 of debt; the expired lot's 100 wait for the job, which takes them all
    assert queries.balance(conn, "m-1") == {"available": 50, "pending": 0, "held": 0, "debt": 50}
    run_due_within(conn, datetime(2026, 3, 1, tzinfo=UTC))
    assert queries.balance(conn, "m-1")["available"] == -50
    assert summary(conn)["points"]["expired"] == 100
    assert verify(conn).ok


def test_a_refund_takes_its_orders_own_points_not_a_credit_that_names_the_order(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM.replace("pending_days: 0", "pending_days: 7"))
    ingest(conn, event("o", order_id="o1", amount=100))
    credit(conn, CreditRequest("m-1", 500, "goodwill", pending=True, reference="o1", kind="adjust"))
    ingest(conn, event("r", "order.refunded", order_id="o1", amount=100, at="2026-01-02T10:00:00Z"))
    assert queries.balance(conn, "m-1") == {"available": 0, "pending": 500, "held": 0, "debt": 0}


def test_a_refund_dated_before_its_order_is_of_an_unknown_order(conn: Connection) -> None:
    publish(conn)
    ingest(conn, event("o", order_id="o1", amount=100, at="2026-01-01T00:00:00Z"))
    with pytest.raises(UnknownOrder, match="was paid at 2026-01-01T00:00:00Z, after this refund"):
        ingest(conn, event("r", "order.refunded", order_id="o1", amount=10, at="2025-12-01T00:00:00Z"))


def test_a_negative_incentive_takes_what_the_member_has_and_never_leaves_a_debt(conn: Connection) -> None:
    # CONTRACT §3: only an order refund may leave `available` below 0
    publish(conn, SIMPLE_PROGRAM + "  - {key: penalty, event: complaint.judged_malicious, points: -200}\n")
    ingest(conn, event("o", order_id="o1", amount=30))
    out = ingest(conn, event("c", "complaint.judged_malicious", at="2026-01-02T10:00:00Z"))
    penalty = rule(out, "penalty")
    assert (out["points"], penalty["cut_by"], penalty["status"]) == (-30, "balance", "awarded")
    assert queries.balance(conn, "m-1") == {"available": 0, "pending": 0, "held": 0, "debt": 0}
    again = ingest(conn, event("c2", "complaint.judged_malicious", at="2026-01-03T10:00:00Z"))
    assert (again["points"], rule(again, "penalty")["status"]) == (0, "cut")
    assert ingest(conn, event("o2", order_id="o2", amount=20, at="2026-01-04T10:00:00Z"))["points"] == 20
    assert queries.balance(conn, "m-1")["available"] == 20 and verify(conn).ok


def test_a_deduction_follows_the_rules_before_it_in_file_order(conn: Connection) -> None:
    publish(conn, SIMPLE_PROGRAM + "  - {key: plus, event: combo, points: 100}\n"
                                   "  - {key: minus, event: combo, points: -150}\n")
    out = ingest(conn, event("c", "combo"))  # 100 given, then 150 asked: the 100 there are taken
    assert [(r["rule"], r["points"]) for r in out["rules"]] == [("plus", 100), ("minus", -100)]
    assert rule(out, "minus")["cut_by"] == "balance"
    assert queries.balance(conn, "m-1")["available"] == 0 and verify(conn).ok


@pytest.mark.parametrize("batch", [False, True])
def test_a_frozen_member_earns_nothing_until_unfrozen_but_a_deduction_still_applies(conn: Connection,
                                                                                   batch: bool) -> None:
    publish(conn, SIMPLE_PROGRAM + "  - {key: complaint, event: complaint.judged_malicious, points: -20}\n")
    ingest(conn, event("a", order_id="o1", amount=50))
    members.change_status(conn, "m-1", "freeze", reason="farming review", actor="t")
    raws = [event("b", order_id="o2", amount=500, at="2026-01-02T10:00:00Z"),
            event("c", "complaint.judged_malicious", at="2026-01-02T11:00:00Z")]
    if batch:
        assert events.ingest_many(conn, raws).accepted == 2
    else:
        for raw in raws:
            ingest(conn, raw)
    frozen = events.get(conn, "b")["outcome"]
    assert (frozen["points"], frozen["growth"], frozen["tier"]) == (0, 0, "member")
    assert rule(frozen, "order") == {"rule": "order", "status": "skipped",
                                     "reason": "the member is frozen: it earns nothing until it is unfrozen"}
    assert events.get(conn, "c")["outcome"]["points"] == -20
    assert (queries.balance(conn, "m-1")["available"], growth.lifetime(conn, "m-1")) == (30, 50)
    members.change_status(conn, "m-1", "unfreeze", reason="cleared", actor="t")
    assert ingest(conn, event("d", order_id="o3", amount=70, at="2026-01-03T10:00:00Z"))["points"] == 70
    assert growth.lifetime(conn, "m-1") == 120


@pytest.mark.parametrize("batch", [False, True])
def test_a_cooldown_cuts_an_award_too_near_another_and_a_refunded_one_no_longer_counts(conn: Connection,
                                                                                      batch: bool) -> None:
    publish(conn, SIMPLE_PROGRAM.replace('growth: "floor(event.amount)"}', 'growth: "floor(event.amount)", '
                                         'limits: {cooldown: "1h"}}'))
    raws = [event("a", order_id="o1", amount=10, at="2026-01-01T10:00:00Z"),
            event("b", order_id="o2", amount=20, at="2026-01-01T10:30:00Z"),   # 30 min after a: cut
            event("c", order_id="o3", amount=30, at="2026-01-01T11:00:00Z"),   # an hour after a: awarded
            event("d", order_id="o4", amount=40, at="2026-01-01T09:30:00Z"),   # late, 30 min before a: cut
            event("e", "order.refunded", order_id="o3", amount=30, at="2026-01-01T11:10:00Z"),
            event("f", order_id="o5", amount=50, at="2026-01-01T11:30:00Z"),   # c was refunded: awarded
            event("g", order_id="o6", amount=5, at="2026-01-01T09:00:00Z")]    # late, an hour before a: awarded
    if batch:
        assert events.ingest_many(conn, raws).accepted == 7
    else:
        for raw in raws:
            ingest(conn, raw)
    outcomes = {e: events.get(conn, e)["outcome"] for e in "abcdfg"}
    assert {e: o["points"] for e, o in outcomes.items()} == {"a": 10, "b": 0, "c": 30, "d": 0, "f": 50, "g": 5}
    assert rule(outcomes["b"], "order")["cut_by"] == rule(outcomes["d"], "order")["cut_by"] == "cooldown"
    assert outcomes["b"]["growth"] == 20  # a limit cuts points only; growth has its own daily cap
    assert queries.balance(conn, "m-1")["available"] == 10 + 50 + 5


@pytest.mark.parametrize("batch", [False, True])
def test_a_deduction_with_a_cooldown_takes_once_within_it(conn: Connection, batch: bool) -> None:
    publish(conn, SIMPLE_PROGRAM + '  - {key: spam, event: complaint.judged_malicious, points: -30,'
                                   ' limits: {cooldown: "1d"}}\n')
    raws = [event("o", order_id="o1", amount=500),
            *(event(f"c{i}", "complaint.judged_malicious", at=at) for i, at in enumerate(
                ["2026-01-02T09:00:00Z", "2026-01-02T20:00:00Z", "2026-01-03T09:00:00Z"]))]
    if batch:
        assert events.ingest_many(conn, raws).accepted == 4
    else:
        for raw in raws:
            ingest(conn, raw)
    taken = [events.get(conn, f"c{i}")["outcome"] for i in range(3)]
    assert [o["points"] for o in taken] == [-30, 0, -30]
    assert rule(taken[1], "spam")["cut_by"] == "cooldown"
    assert queries.balance(conn, "m-1")["available"] == 500 - 60


@pytest.mark.parametrize("batch", [False, True])
def test_a_refunded_order_gives_its_growth_back_to_the_daily_cap_from_the_refund_on(conn: Connection,
                                                                                    batch: bool) -> None:
    publish(conn, SIMPLE_PROGRAM.replace("daily_cap: null", "daily_cap: 100"))
    raws = [event("a", order_id="o1", amount=80, at="2026-01-01T09:00:00Z"),
            event("b", order_id="o2", amount=50, at="2026-01-01T10:00:00Z"),             # 20 of 50: capped
            event("r", "order.refunded", order_id="o1", amount=40, at="2026-01-01T11:00:00Z"),  # half: 40 back
            event("d", order_id="o4", amount=30, at="2026-01-01T10:30:00Z"),             # late, before the refund
            event("c", order_id="o3", amount=60, at="2026-01-01T12:00:00Z")]             # room of 40
    if batch:
        assert events.ingest_many(conn, raws).accepted == 5
    else:
        for raw in raws:
            ingest(conn, raw)
    assert {e: events.get(conn, e)["outcome"]["growth"] for e in "abcd"} == {"a": 80, "b": 20, "c": 40, "d": 0}
    assert growth.lifetime(conn, "m-1") == 80 + 20 - 40 + 40
