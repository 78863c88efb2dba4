"""A refund that arrives after the jobs have run past its time ends as if it had arrived on time."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.analytics.summary import summary
from pointsmith.events import service as events
from pointsmith.events.validation import parse_event
from pointsmith.jobs.service import run_due_within
from pointsmith.ledger import holds, queries
from pointsmith.ledger import service as points
from pointsmith.ledger.verify import verify
from pointsmith.members.view import member_view
from tests.factories import event, points_program, publish

CHECKIN = "  - {key: checkin, event: checkin, points: 30}\n"
PENDING = ('growth: "floor(event.amount)"}', 'growth: "floor(event.amount)", pending: true}')
START = datetime(2026, 1, 1, tzinfo=UTC)


def _at(day: int, hour: int = 0) -> str:
    return clock.iso(START + timedelta(days=day, hours=hour))


def _deliver(conn: Connection, raw: dict[str, Any], when: datetime) -> None:
    """`raw` arrives at `when`, the jobs having caught up to then (as a cron would)."""
    with clock.frozen(when):
        run_due_within(conn, when)
        result = events.ingest(conn, parse_event(raw))
    assert result.status == "accepted", result


def test_a_refund_after_its_lot_expired_takes_it_from_that_lot_not_the_members_other_points(conn: Connection) -> None:
    publish(conn, points_program(expiry="{policy: rolling, months: 1}") + CHECKIN)
    _deliver(conn, event("o1", member="m", at=_at(0), order_id="o1", amount=100), START)
    _deliver(conn, event("c1", "checkin", member="m", at=_at(24)), START + timedelta(days=24))
    late = START + timedelta(days=40)  # the order's lot expired on day 31, and the job has run
    _deliver(conn, event("r1", "order.refunded", member="m", at=_at(19), order_id="o1", amount=100), late)
    with clock.frozen(late):
        assert queries.balance(conn, "m") == {"available": 30, "pending": 0, "held": 0, "debt": 0}
        points = summary(conn)["points"]
    assert (points["expired"], points["reversed"]) == (0, 100)
    assert queries.balance(conn, "m", at=START + timedelta(days=21))["available"] == 0
    assert queries.balance(conn, "m", at=START + timedelta(days=35))["available"] == 30
    corrections = [t for t in queries.history(conn, "m")[0] if t["kind"] == "correct"]
    assert [(c["effective_at"], c["event_id"], c["program_version"]) for c in corrections] == [
        ("2026-02-01T00:00:00Z", "r1", 1)]  # dated when the expiry ran, and naming what made it
    assert verify(conn).ok


def test_a_refund_cancels_pending_points_even_past_their_lots_expiry(conn: Connection) -> None:
    """A returns window longer than the expiry: the lot's points are pending, so still the order's."""
    publish(conn, points_program(pending_days=45, expiry="{policy: rolling, months: 1}").replace(*PENDING) + CHECKIN)
    _deliver(conn, event("o1", member="m", at=_at(0), order_id="o1", amount=100), START)
    _deliver(conn, event("c1", "checkin", member="m", at=_at(33)), START + timedelta(days=33))
    _deliver(conn, event("r1", "order.refunded", member="m", at=_at(35), order_id="o1", amount=100),
             START + timedelta(days=35))
    assert queries.balance(conn, "m") == {"available": 30, "pending": 0, "held": 0, "debt": 0}
    run_due_within(conn, START + timedelta(days=59))
    assert queries.balance(conn, "m")["available"] == 30  # the check-in's lot, until day 61


def _day(day: int) -> datetime:
    return START + timedelta(days=day)


def test_two_late_parts_of_a_refund_undo_the_expiry_once_and_leave_a_spend_as_debt(conn: Connection) -> None:
    publish(conn, points_program(expiry="{policy: rolling, months: 1}"))
    _deliver(conn, event("o1", member="m", at=_at(0), order_id="o1", amount=100), START)
    with clock.frozen(_day(15)):
        points.spend(conn, "m", 30, key="s1", at=_day(15))  # from the order's lot; the job expires its other 70
    for eid, day, arrives in (("r1", 10, 40), ("r2", 12, 41)):
        _deliver(conn, event(eid, "order.refunded", member="m", at=_at(day), order_id="o1", amount=50), _day(arrives))
    with clock.frozen(_day(41)):
        assert summary(conn)["points"]["expired"] == 0  # as one late refund of 100 would leave it
    assert queries.balance(conn, "m")["debt"] == 30 and verify(conn).ok


def test_a_late_refund_gives_back_the_debt_its_orders_activation_paid(conn: Connection) -> None:
    """On time, the refund cancels the pending points, so the activation pays no debt with them."""
    publish(conn, points_program(pending_days=7).replace(*PENDING))
    for member, arrives in (("now", 12), ("late", 40)):
        _deliver(conn, event(f"{member}-o0", member=member, at=_at(0), order_id="o0", amount=100), START)
        with clock.frozen(_day(8)):
            run_due_within(conn, _day(8))
            points.spend(conn, member, 100, key=f"{member}-s", at=_day(8))
        _deliver(conn, event(f"{member}-r0", "order.refunded", member=member, at=_at(9), order_id="o0", amount=100),
                 _day(9))  # 100 of debt
        _deliver(conn, event(f"{member}-o1", member=member, at=_at(10), order_id="o1", amount=100), _day(10))
        _deliver(conn, event(f"{member}-r1", "order.refunded", member=member, at=_at(12), order_id="o1",
                             amount=100), _day(arrives))  # late: after day 17's activation paid the debt
    run_due_within(conn, _day(60))
    for day in (11, 13, 18, 60):
        assert queries.balance(conn, "late", at=_day(day)) == queries.balance(conn, "now", at=_day(day)), day
    assert queries.balance(conn, "late")["debt"] == 100 and verify(conn).ok


def test_a_late_refund_takes_points_a_hold_returned_to_its_expired_lot(conn: Connection) -> None:
    publish(conn, points_program(expiry="{policy: rolling, months: 1}"))
    _deliver(conn, event("o1", member="m", at=_at(0), order_id="o1", amount=100), START)
    with clock.frozen(_day(25)):
        holds.hold(conn, "m", 100, key="h1", timeout=timedelta(days=10), at=_day(25))  # lapses on day 35
    _deliver(conn, event("r1", "order.refunded", member="m", at=_at(20), order_id="o1", amount=100), _day(40))
    run_due_within(conn, _day(60))
    with clock.frozen(_day(60)):
        assert summary(conn)["points"]["expired"] == 0
    assert queries.balance(conn, "m") == {"available": 0, "pending": 0, "held": 0, "debt": 0} and verify(conn).ok


def _history(rng: random.Random) -> list[dict[str, Any]]:
    """Orders, check-ins and refunds of each order (in parts) within 20 days of it, for one member."""
    out: list[dict[str, Any]] = []
    for i in range(12):
        day = rng.randint(0, 120)
        amount = rng.randint(1, 300)
        out.append(event(f"o{i}", member="m", at=_at(day, rng.randint(0, 23)), order_id=f"o{i}", amount=amount))
        if rng.random() < 0.4:
            out.append(event(f"c{i}", "checkin", member="m", at=_at(day + rng.randint(0, 30), 12)))
        refunded = 0
        for j in range(rng.choice([0, 1, 1, 2, 3])):
            part = rng.randint(1, amount) if j < 2 else amount - refunded
            part = min(part, amount - refunded)
            if part <= 0:
                break
            refunded += part
            out.append(event(f"r{i}.{j}", "order.refunded", member="m",
                             at=_at(day + 1 + j * 5 + rng.randint(0, 4), rng.randint(0, 23)), order_id=f"o{i}",
                             amount=part))
    return sorted(out, key=lambda e: e["occurred_at"])


def _as(member: str, raw: dict[str, Any]) -> dict[str, Any]:
    attributes = dict(raw["attributes"])
    if "order_id" in attributes:
        attributes["order_id"] = f"{member}-{attributes['order_id']}"
    return {**raw, "id": f"{member}-{raw['id']}", "member_id": member, "attributes": attributes}


@pytest.mark.parametrize("seed", range(6))
def test_late_refunds_end_as_on_time_ones(conn: Connection, seed: int) -> None:
    """Member `now` gets each refund at its time; member `late` gets the same refunds 40 days late
    (past the returns window and the lot's expiry, the jobs run all along). Every balance at every
    time, and the points they end with, are the same."""
    publish(conn, points_program(pending_days=7, expiry="{policy: rolling, months: 1}").replace(*PENDING) + CHECKIN)
    history = _history(random.Random(seed))
    deliveries = [(clock.parse_time(e["occurred_at"]), _as("now", e)) for e in history]
    deliveries += [(clock.parse_time(e["occurred_at"]) + timedelta(days=40 if e["type"] == "order.refunded" else 0),
                    _as("late", e)) for e in history]
    for when, raw in sorted(deliveries, key=lambda d: d[0]):
        _deliver(conn, raw, when)
    end = max(when for when, _ in deliveries) + timedelta(days=60)
    run_due_within(conn, end)
    assert verify(conn).ok
    for day in range(0, (end - START).days, 2):
        at = START + timedelta(days=day)
        assert queries.balance(conn, "late", at=at) == queries.balance(conn, "now", at=at), at
    with clock.frozen(end):
        views = [member_view(conn, m) for m in ("now", "late")]
    assert [v["points"] for v in views[1:]] == [views[0]["points"]]
    assert [(v["tier"], v["growth"]) for v in views[1:]] == [(views[0]["tier"], views[0]["growth"])]
