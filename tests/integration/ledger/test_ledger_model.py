"""A stateful property test: random earn / spend / refund / adjust / clock / job sequences
against a plain model of lots, checking every invariant after every step."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy.engine import Connection, Engine

from pointsmith import clock
from pointsmith.analytics.summary import summary
from pointsmith.errors import InsufficientPoints
from pointsmith.idempotency import StoredFailure
from pointsmith.jobs.service import run_due_within
from pointsmith.ledger import queries
from pointsmith.ledger.expiry import add_months
from pointsmith.ledger.service import CreditRequest, adjust, credit, reverse, spend
from pointsmith.ledger.verify import verify
from pointsmith.members import service as members
from tests.factories import points_program, publish

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
MEMBERS = ["a", "b"]
PENDING_DAYS = 3


@dataclass
class Lot:
    id: int
    member: str
    earned_at: datetime
    available_at: datetime
    expires_at: datetime
    pending: int
    remaining: int
    reference: str | None


class Model:
    """What the ledger should hold, computed the simplest way."""

    def __init__(self) -> None:
        self.lots: list[Lot] = []
        self.debt = dict.fromkeys(MEMBERS, 0)
        self.issued = self.redeemed = self.expired = self.reversed = 0

    def member_lots(self, m: str) -> list[Lot]:
        return sorted((lot for lot in self.lots if lot.member == m),
                      key=lambda lot: (lot.expires_at, lot.earned_at, lot.id))

    def spendable(self, m: str, at: datetime) -> list[Lot]:
        return [lot for lot in self.member_lots(m) if lot.remaining > 0 and lot.expires_at > at]

    def settle(self, lot: Lot) -> None:
        paid = min(lot.remaining, self.debt[lot.member])
        lot.remaining -= paid
        self.debt[lot.member] -= paid

    def take(self, lots: list[Lot], points: int) -> int:
        for lot in lots:
            part = min(points, lot.remaining)
            lot.remaining -= part
            points -= part
        return points

    def available(self, m: str) -> int:
        return sum(lot.remaining for lot in self.lots if lot.member == m) - self.debt[m]

    def pending(self, m: str) -> int:
        return sum(lot.pending for lot in self.lots if lot.member == m)


def make_machine(engine: Engine) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.raw = engine.connect()
            self.transaction = self.raw.begin()
            self.conn: Connection = self.raw
            self.model = Model()
            self.now = T0
            self.keys = 0
            self.orders: list[tuple[str, str]] = []

        @initialize()
        def setup(self) -> None:
            publish(self.conn, points_program(pending_days=PENDING_DAYS, expiry="{policy: rolling, months: 1}"))
            for m in MEMBERS:
                members.create(self.conn, m)

        def key(self) -> str:
            self.keys += 1
            return f"k{self.keys}"

        @rule(m=st.sampled_from(MEMBERS), points=st.integers(1, 500), pending=st.booleans(), order=st.booleans())
        def earn(self, m: str, points: int, pending: bool, order: bool) -> None:
            reference = f"o{self.keys}" if order else None
            body = credit(self.conn, CreditRequest(m, points, self.key(), at=self.now, pending=pending,
                                                   reference=reference)).body
            available_at = self.now + timedelta(days=PENDING_DAYS if pending else 0)
            lot = Lot(body["lot_id"], m, self.now, available_at, add_months(self.now, 1, ZoneInfo("UTC")),
                      points if pending else 0, 0 if pending else points, reference)
            self.model.lots.append(lot)
            if not pending:
                self.model.settle(lot)
            self.model.issued += points
            if reference:
                self.orders.append((m, reference))

        @rule(m=st.sampled_from(MEMBERS), points=st.integers(1, 600))
        def spend(self, m: str, points: int) -> None:
            lots = self.model.spendable(m, self.now)
            if sum(lot.remaining for lot in lots) >= points:
                spend(self.conn, m, points, key=self.key(), at=self.now)
                assert self.model.take(lots, points) == 0
                self.model.redeemed += points
            else:
                key = self.key()
                for _ in range(2):  # the retry fails the same way
                    try:
                        spend(self.conn, m, points, key=key, at=self.now)
                    except (InsufficientPoints, StoredFailure):
                        pass
                    else:
                        raise AssertionError("an overspend went through")

        @rule(data=st.data(), points=st.integers(1, 400))
        def refund(self, data: st.DataObject, points: int) -> None:
            if not self.orders:
                return
            m, reference = data.draw(st.sampled_from(self.orders))
            reverse(self.conn, m, points, key=self.key(), reference=reference, at=self.now)
            left = points
            # the order's own lots first, unless past their expiry (whether or not the job has run)
            for lot in (lot for lot in self.model.member_lots(m) if lot.reference == reference
                        and lot.expires_at > self.now):
                part = min(left, lot.pending)
                lot.pending -= part
                left -= part
                part = min(left, lot.remaining)
                lot.remaining -= part
                left -= part
            left = self.model.take([lot for lot in self.model.spendable(m, self.now) if lot.reference != reference],
                                   left)
            self.model.debt[m] += left
            self.model.reversed += points

        @rule(m=st.sampled_from(MEMBERS), points=st.integers(-300, 300).filter(bool))
        def adjust(self, m: str, points: int) -> None:
            if points > 0:
                self.earn_adjust(m, points)
                return
            lots = self.model.spendable(m, self.now)
            if sum(lot.remaining for lot in lots) < -points:
                return
            adjust(self.conn, m, points, key=self.key(), reason="test", actor="t", at=self.now)
            self.model.take(lots, -points)
            self.model.reversed += -points

        def earn_adjust(self, m: str, points: int) -> None:
            body = adjust(self.conn, m, points, key=self.key(), reason="test", actor="t", at=self.now).body
            lot = Lot(body["lot_id"], m, self.now, self.now, add_months(self.now, 1, ZoneInfo("UTC")), 0, points,
                      None)
            self.model.lots.append(lot)
            self.model.settle(lot)
            self.model.issued += points

        @rule(hours=st.integers(1, 24 * 40))
        def advance(self, hours: int) -> None:
            self.now += timedelta(hours=hours)

        @rule(twice=st.booleans())
        def jobs(self, twice: bool) -> None:
            for _ in range(2 if twice else 1):
                with clock.frozen(self.now):
                    run_due_within(self.conn, self.now)
            for lot in sorted(self.model.lots, key=lambda lot: (lot.available_at, lot.id)):
                if lot.pending and lot.available_at <= self.now:
                    lot.remaining, lot.pending = lot.pending, 0
                    self.model.settle(lot)
            for lot in self.model.lots:
                if lot.remaining and lot.expires_at <= self.now:
                    self.model.expired += lot.remaining
                    lot.remaining = 0

        @invariant()
        def balances_match_the_model(self) -> None:
            if not hasattr(self, "conn"):
                return
            for m in MEMBERS:
                got = queries.balance(self.conn, m)
                want = {"available": self.model.available(m), "pending": self.model.pending(m), "held": 0,
                        "debt": self.model.debt[m]}
                assert got == want, (m, got, want)
                lots = {lot["id"]: (lot["available"], lot["pending"]) for lot in queries.lots(self.conn, m)}
                assert lots == {lot.id: (lot.remaining, lot.pending) for lot in self.model.lots
                                if lot.member == m and (lot.remaining or lot.pending)}

        @invariant()
        def the_ledger_verifies_and_totals_add_up(self) -> None:
            if not hasattr(self, "conn"):
                return
            report = verify(self.conn)
            assert report.ok, report.breaches
            p = summary(self.conn)["points"]
            m = self.model
            assert (p["issued"], p["redeemed"], p["expired"], p["reversed"]) == (
                m.issued, m.redeemed, m.expired, m.reversed)
            assert p["outstanding"] == sum(m.available(x) + m.pending(x) for x in MEMBERS)

        def teardown(self) -> None:
            self.transaction.rollback()
            self.raw.close()

    return LedgerMachine


def test_the_ledger_matches_a_simple_model_after_every_step(engine: Engine) -> None:
    run_state_machine_as_test(make_machine(engine), settings=settings(
        max_examples=25, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
