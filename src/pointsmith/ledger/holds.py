"""Two-phase spending for checkout: hold points against an order, then capture or void.

A hold moves points from the member's lots to `held` (so nobody else can
spend them). Capturing takes all or part of it as redeemed and returns the
rest; voiding, or the hold lapsing after its timeout, returns it all. Points
go back to the lots they came from; a lot that expired meanwhile expires them
in the same transaction.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock, idempotency
from pointsmith.errors import HoldNotActive, InsufficientPoints, NotFound, ValidationFailed
from pointsmith.idempotency import Outcome
from pointsmith.ledger.common import check_points, lock_member_points, transaction_view
from pointsmith.ledger.lots import spendable_lots, take_from_lots
from pointsmith.ledger.policy import PointsPolicy, policy_at
from pointsmith.ledger.queries import of_member
from pointsmith.ledger.tables import ledger_holds, ledger_lots, ledger_postings
from pointsmith.ledger.writer import Draft, PointState, Posting, write

MAX_TIMEOUT = timedelta(days=30)


@dataclass(frozen=True)
class Hold:
    id: str
    member_id: str
    reference: str | None
    points: int
    captured: int
    status: str
    created_at: datetime
    expires_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "member_id": self.member_id, "reference": self.reference, "points": self.points,
                "captured": self.captured, "status": self.status, "created_at": clock.iso(self.created_at),
                "expires_at": clock.iso(self.expires_at)}


def hold(conn: Connection, member_id: str, points: int, *, key: str, reference: str | None = None,
         timeout: timedelta = timedelta(minutes=15), at: datetime | None = None) -> Outcome:
    check_points(points)
    if not timedelta(seconds=1) <= timeout <= MAX_TIMEOUT:
        raise ValidationFailed("timeout must be between 1 second and 30 days")
    when = clock.ensure_utc(at) if at else clock.now()
    state = lock_member_points(conn, member_id)
    request = {"points": points, "reference": reference, "timeout": timeout.total_seconds()}

    def run() -> dict[str, Any]:
        policy = policy_at(conn, when)
        release_lapsed(conn, state, policy, when)
        hold_id = "h_" + uuid.uuid4().hex[:24]
        postings, short = take_from_lots(spendable_lots(conn, state, policy, when), points, hold_id=hold_id)
        if short:
            raise InsufficientPoints(f"member {member_id!r} has {points - short} spendable points, "
                                     f"{points} needed")
        draft = Draft(member_id, "hold", when, (*postings, Posting("held", points, hold_id=hold_id)),
                      reference=reference, program_version=policy.program_version)
        written = write(conn, [draft], {member_id: state})[0]
        conn.execute(ledger_holds.insert().values(id=hold_id, member_id=member_id, reference=reference,
                                                  points=points, captured=0, status="active", created_at=when,
                                                  expires_at=when + timeout))
        return {"hold": get(conn, member_id, hold_id).as_dict(), "transaction": transaction_view(written)}

    return idempotency.run_once(conn, scope=member_id, key=key, operation="points.hold", request=request,
                                write=run)


def capture(conn: Connection, member_id: str, hold_id: str, points: int | None = None, *, key: str,
            at: datetime | None = None) -> Outcome:
    """Redeem all of a hold, or part of it and return the rest."""
    when = clock.ensure_utc(at) if at else clock.now()
    state = lock_member_points(conn, member_id, must_be_active=False)
    request = {"hold_id": hold_id, "points": points}

    def run() -> dict[str, Any]:
        h = _active(conn, member_id, hold_id, when)
        amount = h.points if points is None else check_points(points)
        if amount > h.points:
            raise ValidationFailed(f"cannot capture {amount} points from a hold of {h.points}")
        policy = policy_at(conn, when)
        drafts = [Draft(member_id, "capture", when, (Posting("held", -amount, hold_id=hold_id),
                                                    Posting("redeemed", amount, hold_id=hold_id)),
                        reference=h.reference, program_version=policy.program_version, activity=True)]
        if amount < h.points:
            drafts.append(release_draft(conn, state, h, keep=amount, at=when, policy=policy, kind="release"))
        written = write(conn, drafts, {member_id: state})
        _close(conn, hold_id, "captured", when, captured=amount)
        return {"hold": get(conn, member_id, hold_id).as_dict(),
                "transaction": {**transaction_view(written[0]), "balance": state.as_dict()}}

    return idempotency.run_once(conn, scope=member_id, key=key, operation="points.capture", request=request,
                                write=run)


def void(conn: Connection, member_id: str, hold_id: str, *, key: str, at: datetime | None = None) -> Outcome:
    """Return all of a hold's points."""
    when = clock.ensure_utc(at) if at else clock.now()
    state = lock_member_points(conn, member_id, must_be_active=False)

    def run() -> dict[str, Any]:
        h = _active(conn, member_id, hold_id, when)
        draft = release_draft(conn, state, h, keep=0, at=when, policy=policy_at(conn, when), kind="release")
        written = write(conn, [draft], {member_id: state})[0]
        _close(conn, hold_id, "voided", when)
        return {"hold": get(conn, member_id, hold_id).as_dict(), "transaction": transaction_view(written)}

    return idempotency.run_once(conn, scope=member_id, key=key, operation="points.void",
                                request={"hold_id": hold_id}, write=run)


def release_draft(conn: Connection, state: PointState, h: Hold, *, keep: int, at: datetime,
                  policy: PointsPolicy, kind: str) -> Draft:
    """Return a hold's points beyond the first `keep` to the lots they came from (latest-taken first)."""
    taken = conn.execute(sa.select(ledger_postings.c.lot_id, -ledger_postings.c.amount)
                         .select_from(of_member(h.member_id))
                         .where(ledger_postings.c.hold_id == h.id, ledger_postings.c.account == "available")
                         .order_by(ledger_postings.c.transaction_id, ledger_postings.c.line)).all()
    expiry = dict(conn.execute(sa.select(ledger_lots.c.id, ledger_lots.c.expires_at)
                               .where(ledger_lots.c.id.in_([lot for lot, _ in taken]))).all())
    postings: list[Posting] = []
    skip, debt = keep, state.debt
    for lot_id, amount in taken:
        back = amount - min(skip, amount)
        skip -= amount - back
        if back <= 0:
            continue
        postings.append(Posting("available", back, lot_id, h.id))
        if expiry[lot_id] is not None and expiry[lot_id] <= at:
            postings += [Posting("available", -back, lot_id), Posting("expired", back)]
        elif debt > 0:
            paid = min(back, debt)
            postings += [Posting("available", -paid, lot_id), Posting("available", paid)]
            debt -= paid
    returned = h.points - keep
    return Draft(h.member_id, kind, at, (Posting("held", -returned, hold_id=h.id), *postings),
                 reference=h.reference, program_version=policy.program_version)


def release_lapsed(conn: Connection, state: PointState, policy: PointsPolicy, at: datetime) -> int:
    """Return the member's holds that lapsed by `at` (each effective when it lapsed); how many."""
    rows = conn.execute(sa.select(ledger_holds).where(ledger_holds.c.member_id == state.member_id,
                                                      ledger_holds.c.status == "active",
                                                      ledger_holds.c.expires_at <= at)
                        .order_by(ledger_holds.c.expires_at)).mappings().all()
    for row in rows:
        h = _hold(row)
        write(conn, [release_draft(conn, state, h, keep=0, at=h.expires_at, policy=policy, kind="lapse")],
              {state.member_id: state})
        _close(conn, h.id, "lapsed", h.expires_at)
    return len(rows)


def get(conn: Connection, member_id: str, hold_id: str) -> Hold:
    row = conn.execute(sa.select(ledger_holds).where(ledger_holds.c.id == hold_id,
                                                     ledger_holds.c.member_id == member_id)).mappings().first()
    if row is None:
        raise NotFound(f"no hold {hold_id!r} for member {member_id!r}")
    return _hold(row)


def list_holds(conn: Connection, member_id: str) -> list[Hold]:
    rows = conn.execute(sa.select(ledger_holds).where(ledger_holds.c.member_id == member_id)
                        .order_by(ledger_holds.c.created_at.desc())).mappings()
    return [_hold(r) for r in rows]


def _active(conn: Connection, member_id: str, hold_id: str, at: datetime) -> Hold:
    h = get(conn, member_id, hold_id)
    if h.status != "active":
        raise HoldNotActive(f"hold {hold_id!r} is {h.status}")
    if h.expires_at <= at:
        raise HoldNotActive(f"hold {hold_id!r} lapsed at {clock.iso(h.expires_at)}")
    return h


def _close(conn: Connection, hold_id: str, status: str, at: datetime, captured: int = 0) -> None:
    conn.execute(ledger_holds.update().where(ledger_holds.c.id == hold_id)
                 .values(status=status, captured=captured, closed_at=at))


def _hold(row: sa.RowMapping) -> Hold:
    return Hold(row["id"], row["member_id"], row["reference"], row["points"], row["captured"], row["status"],
                row["created_at"], row["expires_at"])
