"""Reading lots, and the postings that take points out of them."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith.ledger.allocation import LotBalance, spendable, take
from pointsmith.ledger.policy import PointsPolicy
from pointsmith.ledger.tables import ledger_lots
from pointsmith.ledger.writer import PointState, Posting


def open_lots(conn: Connection, member_id: str) -> list[LotBalance]:
    """Lots of a member that still hold available points."""
    rows = conn.execute(sa.select(ledger_lots.c.id, ledger_lots.c.remaining, ledger_lots.c.earned_at,
                                  ledger_lots.c.expires_at)
                        .where(ledger_lots.c.member_id == member_id, ledger_lots.c.remaining > 0))
    return [LotBalance(r.id, r.remaining, r.earned_at, r.expires_at) for r in rows]


def spendable_lots(conn: Connection, state: PointState, policy: PointsPolicy, at: datetime) -> list[LotBalance]:
    """What can be spent at `at`: unexpired lots, nothing at all once inactivity has expired the points."""
    deadline = policy.inactivity_deadline(state.last_activity_at)
    if deadline is not None and at >= deadline:
        return []
    return spendable(open_lots(conn, state.member_id), at)


def take_from_lots(lots: list[LotBalance], points: int, *, hold_id: str | None = None
                   ) -> tuple[list[Posting], int]:
    """Debit postings on `available` that take up to `points` soonest-expiring first; returns (postings, left)."""
    taken, left = take(lots, points)
    return [Posting("available", -part, lot_id, hold_id) for lot_id, part in taken], left
