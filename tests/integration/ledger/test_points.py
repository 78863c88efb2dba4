"""Points operations against a real database: lots, spending order, holds, clawback, debt."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Connection

from pointsmith.errors import (
    HoldNotActive,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidMemberState,
    ValidationFailed,
)
from pointsmith.idempotency import StoredFailure
from pointsmith.jobs.service import run_due_within
from pointsmith.ledger import holds, queries
from pointsmith.ledger.service import CreditRequest, adjust, credit, credit_many, reverse, spend
from pointsmith.ledger.verify import verify
from pointsmith.members import service as members
from tests.factories import points_program, publish

T0 = datetime(2026, 1, 10, 12, tzinfo=UTC)


def days(n: float) -> timedelta:
    return timedelta(days=n)


@pytest.fixture
def member(conn: Connection) -> str:
    members.create(conn, "m-1")
    return "m-1"


def earn(conn: Connection, points: int, at: datetime, key: str, *, reference: str | None = None,
         pending: bool = False, member_id: str = "m-1") -> dict:
    return credit(conn, CreditRequest(member_id, points, key, at=at, reference=reference, pending=pending)).body


def available(conn: Connection, member_id: str = "m-1") -> int:
    return queries.balance(conn, member_id)["available"]


def assert_verified(conn: Connection) -> None:
    report = verify(conn)
    assert report.ok, report.breaches


class TestCredit:
    def test_a_credit_is_a_lot_and_a_balanced_transaction(self, conn: Connection, member: str) -> None:
        publish(conn, points_program(expiry="{policy: rolling, months: 12}"))
        body = earn(conn, 120, T0, "k1", reference="o-1")
        assert body["points"] == 120 and body["balance"]["available"] == 120
        assert sum(p["amount"] for p in body["postings"]) == 0
        (lot,) = queries.lots(conn, member)
        assert (lot["points"], lot["expires_at"], lot["reference"]) == (120, "2027-01-10T12:00:00Z", "o-1")
        assert_verified(conn)

    def test_a_retry_with_the_same_key_credits_once(self, conn: Connection, member: str) -> None:
        first = earn(conn, 50, T0, "same")
        again = credit(conn, CreditRequest(member, 50, "same", at=T0))
        assert again.replayed and again.body == first
        assert available(conn) == 50
        with pytest.raises(IdempotencyConflict):
            credit(conn, CreditRequest(member, 51, "same", at=T0))

    def test_a_batch_credits_many_members_and_repeated_keys_once(self, conn: Connection) -> None:
        for i in range(3):
            members.create(conn, f"b-{i}")
        reqs = [CreditRequest(f"b-{i % 3}", 10 + i, f"k{i}", at=T0) for i in range(6)]
        outcomes = credit_many(conn, [*reqs, reqs[0]])
        assert [o.replayed for o in outcomes] == [False] * 6 + [True]
        assert [available(conn, f"b-{i}") for i in range(3)] == [10 + 13, 11 + 14, 12 + 15]
        assert all(o.replayed for o in credit_many(conn, reqs))
        assert_verified(conn)

    @pytest.mark.parametrize("points", [0, -5, 10**13])
    def test_refuses_a_credit_that_is_not_a_positive_whole_number(self, conn: Connection, member: str,
                                                                   points: int) -> None:
        with pytest.raises(ValidationFailed):
            credit(conn, CreditRequest(member, points, "k"))

    def test_pending_points_wait_for_the_returns_window(self, conn: Connection, member: str) -> None:
        publish(conn, points_program(pending_days=7))
        earn(conn, 80, T0, "p", pending=True)
        assert queries.balance(conn, member) | {} == {"available": 0, "pending": 80, "held": 0, "debt": 0}
        with pytest.raises(InsufficientPoints):
            spend(conn, member, 1, key="s", at=T0 + days(3))
        run_due_within(conn, T0 + days(6))
        assert available(conn) == 0
        run_due_within(conn, T0 + days(7))
        assert queries.balance(conn, member)["available"] == 80
        assert queries.balance(conn, member, at=T0 + days(6))["pending"] == 80
        assert_verified(conn)


class TestSpend:
    def test_spends_soonest_expiring_lot_first(self, conn: Connection, member: str) -> None:
        publish(conn, points_program(expiry="{policy: rolling, months: 1}"))
        earn(conn, 100, T0, "a")
        earn(conn, 50, T0 + days(15), "b")
        spend(conn, member, 120, key="s", at=T0 + days(16))
        assert [(lot["points"], lot["earned_at"]) for lot in queries.lots(conn, member)] == [
            (30, "2026-01-25T12:00:00Z")]

    def test_a_lot_past_its_expiry_is_never_spendable_even_before_the_job(self, conn: Connection, member: str) -> None:
        publish(conn, points_program(expiry="{policy: rolling, months: 1}"))
        earn(conn, 100, T0, "a")
        earn(conn, 10, T0 + days(40), "b")
        assert available(conn) == 110  # as recorded: the expiry job has not run
        with pytest.raises(InsufficientPoints):
            spend(conn, member, 11, key="s1", at=T0 + days(41))
        spend(conn, member, 10, key="s2", at=T0 + days(41))
        run_due_within(conn, T0 + days(41))
        assert queries.balance(conn, member) == {"available": 0, "pending": 0, "held": 0, "debt": 0}
        assert_verified(conn)

    def test_a_refused_spend_is_refused_again_on_retry_even_after_new_points(self, conn: Connection,
                                                                              member: str) -> None:
        earn(conn, 10, T0, "a")
        with pytest.raises(InsufficientPoints):
            spend(conn, member, 30, key="late", at=T0)
        earn(conn, 100, T0, "b")
        with pytest.raises(StoredFailure) as again:
            spend(conn, member, 30, key="late", at=T0)
        assert again.value.code == "insufficient_points"
        assert spend(conn, member, 30, key="fresh", at=T0).body["points"] == -30

    def test_a_frozen_member_cannot_spend(self, conn: Connection, member: str) -> None:
        earn(conn, 10, T0, "a")
        members.change_status(conn, member, "freeze", reason="review", actor="t")
        with pytest.raises(InvalidMemberState):
            spend(conn, member, 5, key="s")


class TestReverse:
    def test_takes_the_references_lot_first_then_the_soonest_expiring_then_debt(self, conn: Connection,
                                                                               member: str) -> None:
        publish(conn, points_program(expiry="{policy: rolling, months: 12}"))
        earn(conn, 100, T0, "early")
        earn(conn, 60, T0 + days(1), "order", reference="o-9")
        spend(conn, member, 40, key="s", at=T0 + days(2))  # takes 40 from the earlier lot
        reverse(conn, member, 70, key="r1", reference="o-9", at=T0 + days(3))
        lots = {lot["reference"]: lot["points"] for lot in queries.lots(conn, member, include_empty=True)}
        assert lots == {"o-9": 0, None: 50}
        reverse(conn, member, 80, key="r2", reference="o-9", at=T0 + days(3))
        assert queries.balance(conn, member) == {"available": -30, "pending": 0, "held": 0, "debt": 30}
        assert_verified(conn)

    def test_later_earnings_pay_a_debt_first(self, conn: Connection, member: str) -> None:
        reverse(conn, member, 30, key="penalty", at=T0)
        earn(conn, 20, T0 + days(1), "a")
        assert queries.balance(conn, member)["debt"] == 10
        earn(conn, 25, T0 + days(2), "b")
        assert queries.balance(conn, member) == {"available": 15, "pending": 0, "held": 0, "debt": 0}
        assert [lot["points"] for lot in queries.lots(conn, member)] == [15]
        assert_verified(conn)

    def test_pending_points_of_the_order_are_cancelled_first(self, conn: Connection, member: str) -> None:
        publish(conn, points_program(pending_days=7))
        earn(conn, 50, T0, "free")
        earn(conn, 40, T0, "order", reference="o-1", pending=True)
        reverse(conn, member, 45, key="r", reference="o-1", at=T0 + days(1))
        assert queries.balance(conn, member) == {"available": 45, "pending": 0, "held": 0, "debt": 0}
        assert_verified(conn)


class TestAdjust:
    def test_a_negative_adjustment_does_not_make_debt_unless_asked(self, conn: Connection, member: str) -> None:
        earn(conn, 10, T0, "a")
        with pytest.raises(InsufficientPoints):
            adjust(conn, member, -20, key="k1", reason="typo", actor="ops")
        adjust(conn, member, -20, key="k2", reason="fraud", actor="ops", allow_debt=True)
        assert queries.balance(conn, member)["debt"] == 10

    def test_an_adjustment_needs_a_reason_and_records_it(self, conn: Connection, member: str) -> None:
        with pytest.raises(ValidationFailed):
            adjust(conn, member, 5, key="k", reason=" ", actor="ops")
        adjust(conn, member, 5, key="k", reason="goodwill", actor="ops")
        items, _ = queries.history(conn, member)
        assert (items[0]["kind"], items[0]["reason"], items[0]["actor"]) == ("adjust", "goodwill", "ops")


class TestHolds:
    def test_held_points_are_not_spendable_and_capture_returns_the_rest(self, conn: Connection, member: str) -> None:
        earn(conn, 100, T0, "a")
        h = holds.hold(conn, member, 60, key="h", reference="cart-1", at=T0).body["hold"]
        assert queries.balance(conn, member)["held"] == 60
        with pytest.raises(InsufficientPoints):
            spend(conn, member, 41, key="s", at=T0)
        holds.capture(conn, member, h["id"], 45, key="c", at=T0 + timedelta(minutes=1))
        assert queries.balance(conn, member) == {"available": 55, "pending": 0, "held": 0, "debt": 0}
        with pytest.raises(HoldNotActive):
            holds.void(conn, member, h["id"], key="v", at=T0 + timedelta(minutes=2))
        assert_verified(conn)

    def test_void_returns_everything_to_the_lots(self, conn: Connection, member: str) -> None:
        earn(conn, 100, T0, "a")
        h = holds.hold(conn, member, 70, key="h", at=T0).body["hold"]
        holds.void(conn, member, h["id"], key="v", at=T0)
        assert [lot["points"] for lot in queries.lots(conn, member)] == [100]

    def test_an_uncaptured_hold_lapses_after_its_timeout(self, conn: Connection, member: str) -> None:
        earn(conn, 100, T0, "a")
        h = holds.hold(conn, member, 70, key="h", at=T0, timeout=timedelta(minutes=10)).body["hold"]
        later = T0 + timedelta(minutes=11)
        with pytest.raises(HoldNotActive):
            holds.capture(conn, member, h["id"], key="c", at=later)
        spend(conn, member, 90, key="s", at=later)  # the lapsed hold is returned first
        assert holds.get(conn, member, h["id"]).status == "lapsed"
        assert_verified(conn)

    def test_the_lapse_job_returns_points_and_expires_what_came_back_too_late(self, conn: Connection,
                                                                              member: str) -> None:
        publish(conn, points_program(expiry="{policy: rolling, months: 1}"))
        earn(conn, 100, T0, "a")
        hold_at = T0 + days(30)
        holds.hold(conn, member, 100, key="h", at=hold_at, timeout=days(2))
        run_due_within(conn, T0 + days(40))
        assert queries.balance(conn, member) == {"available": 0, "pending": 0, "held": 0, "debt": 0}
        items, _ = queries.history(conn, member)
        assert [i["kind"] for i in items] == ["lapse", "hold", "earn"]
        assert_verified(conn)


class TestHistoryAndTime:
    def test_history_pages_newest_first(self, conn: Connection, member: str) -> None:
        for i in range(5):
            earn(conn, i + 1, T0 + days(i), f"k{i}")
        first, cursor = queries.history(conn, member, limit=2)
        rest, end = queries.history(conn, member, before=cursor, limit=10)
        assert [t["points"] for t in first + rest] == [5, 4, 3, 2, 1] and end is None

    def test_balances_and_lots_as_of_a_past_time(self, conn: Connection, member: str) -> None:
        publish(conn, points_program(expiry="{policy: rolling, months: 1}"))
        earn(conn, 100, T0, "a")
        spend(conn, member, 30, key="s", at=T0 + days(5))
        run_due_within(conn, T0 + days(60))
        assert queries.balance(conn, member, at=T0 + days(1))["available"] == 100
        assert queries.balance(conn, member, at=T0 + days(6))["available"] == 70
        assert [lot["points"] for lot in queries.lots(conn, member, at=T0 + days(6))] == [70]
        assert queries.balance(conn, member)["available"] == 0


def test_inactivity_expires_everything_after_months_without_earning_or_spending(conn: Connection,
                                                                                 member: str) -> None:
    publish(conn, points_program(expiry="{policy: inactivity, months: 6}"))
    earn(conn, 100, T0, "a")
    spend(conn, member, 10, key="s", at=T0 + days(100))  # activity: the clock restarts
    run_due_within(conn, T0 + days(200))
    assert available(conn) == 90
    with pytest.raises(InsufficientPoints):
        spend(conn, member, 1, key="late", at=T0 + days(290))
    run_due_within(conn, T0 + days(290))
    assert available(conn) == 0
    assert_verified(conn)
