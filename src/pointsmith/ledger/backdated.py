"""Taking back an order's own points as of the refund's time, whatever scheduled work ran since.

A refund can arrive after `jobs run` has activated its order's pending points or
expired its lot at times later than the refund's own. Lived through in time
order, the refund would have come first: it would have cancelled pending points
(so the activation moved fewer) and taken from the lot (so the expiry found
less). So the refund takes from each lot what the lot held at the refund's time,
pending first, and every job movement it overtakes is corrected by a
transaction dated when that job ran: the ledger stays append-only, and every
balance at every time is what living through it in order gives. What the lot
lost since by other means (a spend) is not undone; the rest of the take-back
goes on to other lots or debt as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.ledger.tables import ledger_lots, ledger_postings, ledger_transactions
from pointsmith.ledger.writer import Posting

Correction = tuple[datetime, tuple[Posting, ...]]  # when the overtaken job ran, and what undoes part of it


@dataclass
class OwnLot:
    id: int
    pending: int            # now
    remaining: int          # available now
    pending_then: int       # at the take-back's time
    available_then: int
    activated: int = 0      # moved from pending to available by an activation after that time
    activated_at: datetime | None = None
    expired: int = 0        # expired after that time
    expired_at: datetime | None = None


def own_lots(conn: Connection, member_id: str, at: datetime, *, event_id: str | None,
             reference: str | None) -> list[OwnLot]:
    """The lots an event (else a reference) credited that held points at `at`: a lot had expired by
    then only if its expiry and its points' activation were both due (pending points expire as they
    become available, ledger/jobs.py)."""
    lt = ledger_lots.c
    whose = lt.event_id == event_id if event_id else lt.reference == reference
    alive = sa.or_(lt.expires_at.is_(None), lt.expires_at > at, lt.available_at > at)
    rows = conn.execute(sa.select(lt.id, lt.pending, lt.remaining)
                        .where(lt.member_id == member_id, whose, lt.earned_at <= at, alive).order_by(lt.id)).all()
    lots = {r.id: OwnLot(r.id, r.pending, r.remaining, r.pending, r.remaining) for r in rows}
    if lots:
        _subtract_later_movements(conn, member_id, at, lots)
    return list(lots.values())


def _subtract_later_movements(conn: Connection, member_id: str, at: datetime, lots: dict[int, OwnLot]) -> None:
    """Turn the lots' present balances into those at `at`, noting the job movements dated after it."""
    t, p = ledger_transactions.c, ledger_postings.c
    later = conn.execute(
        sa.select(p.lot_id, p.account, p.amount, t.kind, t.effective_at)
        .select_from(ledger_postings.join(ledger_transactions, t.id == p.transaction_id))
        .where(t.member_id == member_id, t.effective_at > at, p.lot_id.in_(list(lots)))
        .order_by(t.effective_at, t.id)).all()
    for lot_id, account, amount, kind, effective_at in later:
        lot = lots[lot_id]
        if account == "pending":
            lot.pending_then -= amount
            if kind == "activate" and amount < 0:
                lot.activated -= amount
                lot.activated_at = lot.activated_at or clock.ensure_utc(effective_at)
        elif account == "available":
            lot.available_then -= amount
            if kind == "expire" and amount < 0:
                lot.expired -= amount
                lot.expired_at = lot.expired_at or clock.ensure_utc(effective_at)


def take(lot: OwnLot, points: int, *, pending_only: bool = False) -> tuple[list[Posting], list[Correction], int]:
    """Up to `points` from `lot` as it stood then, pending first (or only): the take-back's postings,
    the corrections of the jobs it overtakes, and what it took."""
    from_pending = min(points, lot.pending_then, lot.pending + lot.activated)
    unactivated = max(0, from_pending - lot.pending)  # pending points the activation has since moved
    spent = unactivated - (lot.remaining + lot.expired)  # ...and that are gone since by other means
    if spent > 0:
        from_pending, unactivated = from_pending - spent, unactivated - spent
    from_available = 0 if pending_only else max(0, min(points - from_pending, lot.available_then,
                                                       lot.remaining + lot.expired - unactivated))
    unexpired = max(0, unactivated + from_available - lot.remaining)  # what the expiry has since taken
    postings = [Posting(account, -part, lot.id)
                for account, part in (("pending", from_pending), ("available", from_available)) if part > 0]
    corrections: list[Correction] = []
    if unactivated and lot.activated_at is not None:
        corrections.append((lot.activated_at, (Posting("pending", unactivated, lot.id),
                                               Posting("available", -unactivated, lot.id))))
    if unexpired and lot.expired_at is not None:
        corrections.append((lot.expired_at, (Posting("available", unexpired, lot.id),
                                             Posting("expired", -unexpired))))
    lot.pending += unactivated - from_pending
    lot.remaining += unexpired - unactivated - from_available
    lot.pending_then -= from_pending
    lot.available_then -= from_available
    lot.activated -= unactivated
    lot.expired -= unexpired
    return postings, corrections, from_pending + from_available
