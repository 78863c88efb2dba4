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
    activated: int = 0      # moved from pending to available by an activation after that time (net of corrections)
    activated_at: datetime | None = None
    settled: int = 0        # ...of which that activation paid the member's debt
    expired: int = 0        # expired after that time, by the expiry job or a hold returning points to it
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
    """Turn the lots' present balances into those at `at`, noting the job movements dated after it.

    Movements come in pairs of postings (ledger/jobs.py, holds.py and `take` below write them so): an
    activation is pending -p then available +p on the lot, and the debt it pays is available -s on
    the lot then +s on no lot; an expiry is available -x on the lot then `expired` +x; a correction
    is any of these the other way round."""
    t, p = ledger_transactions.c, ledger_postings.c
    later = conn.execute(
        sa.select(p.transaction_id, p.account, p.amount, p.lot_id, t.kind, t.effective_at)
        .select_from(ledger_postings.join(ledger_transactions, t.id == p.transaction_id))
        .where(t.member_id == member_id, t.effective_at > at)
        .order_by(t.effective_at, t.id, p.line)).all()
    for i, this in enumerate(later):
        after = later[i + 1] if i + 1 < len(later) else None
        lot = lots.get(this.lot_id) if this.lot_id is not None else None
        if lot is None:
            continue
        when = clock.ensure_utc(this.effective_at)
        pair = after if after is not None and after.transaction_id == this.transaction_id else None
        if this.account == "pending":
            lot.pending_then -= this.amount
            if this.kind == "activate" or (this.kind == "correct" and this.amount > 0):
                lot.activated -= this.amount
                lot.activated_at = lot.activated_at or when
        elif this.account == "available":
            lot.available_then -= this.amount
            if pair is not None and pair.account == "expired":
                lot.expired -= this.amount
                lot.expired_at = lot.expired_at or when
            elif pair is not None and pair.account == "available" and pair.lot_id is None and \
                    this.kind in ("activate", "correct"):
                lot.settled -= this.amount


def take(lot: OwnLot, points: int, *, pending_only: bool = False) -> tuple[list[Posting], list[Correction], int]:
    """Up to `points` from `lot` as it stood then, pending first (or only): the take-back's postings,
    the corrections of the jobs it overtakes, and what it took."""
    from_pending = min(points, lot.pending_then, lot.pending + lot.activated)
    unactivated = max(0, from_pending - lot.pending)  # pending points the activation has since moved
    # the activation gave the lot what it did not pay to debt: only that much comes back out of it
    net = min(unactivated, lot.activated - lot.settled)
    gone = net - (lot.remaining + lot.expired)  # ...and gone since by other means (a spend)
    if gone > 0:
        net -= gone
        from_pending, unactivated = from_pending - (unactivated - net), net
    unsettled = unactivated - net  # debt the activation paid with points it would not have had
    from_available = 0 if pending_only else max(0, min(points - from_pending, lot.available_then,
                                                       lot.remaining + lot.expired - net))
    unexpired = max(0, net + from_available - lot.remaining)  # what the expiry has since taken
    postings = [Posting(account, -part, lot.id)
                for account, part in (("pending", from_pending), ("available", from_available)) if part > 0]
    corrections: list[Correction] = []
    if unactivated and lot.activated_at is not None:
        corrections.append((lot.activated_at, (
            Posting("pending", unactivated, lot.id), Posting("available", -unactivated, lot.id),
            *((Posting("available", unsettled, lot.id), Posting("available", -unsettled)) if unsettled else ()))))
    if unexpired and lot.expired_at is not None:
        corrections.append((lot.expired_at, (Posting("available", unexpired, lot.id),
                                             Posting("expired", -unexpired))))
    lot.pending += unactivated - from_pending
    lot.remaining += unexpired - net - from_available
    lot.pending_then -= from_pending
    lot.available_then -= from_available
    lot.activated -= unactivated
    lot.settled -= unsettled
    lot.expired -= unexpired
    return postings, corrections, from_pending + from_available
