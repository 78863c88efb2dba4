"""Helpers every ledger operation shares: checks, locking, the transaction view."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.errors import InvalidMemberState, ValidationFailed
from pointsmith.ledger.tables import ledger_lots, ledger_postings, ledger_transactions
from pointsmith.ledger.writer import PointState, Posting, Written, lock_states
from pointsmith.members.service import Status
from pointsmith.members.tables import members

MAX_POINTS = 10**12


def check_points(points: Any, *, allow_negative: bool = False) -> int:
    if isinstance(points, bool) or not isinstance(points, int):
        raise ValidationFailed("points must be a whole number")
    if points == 0 or abs(points) > MAX_POINTS or (points < 0 and not allow_negative):
        raise ValidationFailed(f"points must be {'non-zero' if allow_negative else 'positive'} "
                               f"and at most {MAX_POINTS:,}")
    return points


def transaction_view(written: Written) -> dict[str, Any]:
    """What a write answers: the transaction, its postings and the member's balances right after it."""
    d = written.draft
    return view(written.transaction_id, d.member_id, d.kind, d.effective_at, d.reference, d.event_id, d.rule_key,
                d.program_version, written.lot_id, written.postings(), written.balance)


def view(transaction_id: int, member_id: str, kind: str, effective_at: datetime, reference: str | None,
         event_id: str | None, rule_key: str | None, program_version: int | None, lot_id: int | None,
         postings: list[Posting], balance: dict[str, int]) -> dict[str, Any]:
    return {
        "id": transaction_id, "member_id": member_id, "kind": kind,
        "points": sum(p.amount for p in postings if p.account in ("available", "pending")),
        "effective_at": clock.iso(effective_at), "reference": reference, "event_id": event_id,
        "rule_key": rule_key, "program_version": program_version, "lot_id": lot_id,
        "postings": [{"account": p.account, "amount": p.amount, "lot_id": p.lot_id, "hold_id": p.hold_id}
                     for p in postings],
        "balance": balance,
    }


def stored_view(conn: Connection, transaction_id: int, balance: dict[str, int]) -> dict[str, Any]:
    """`transaction_view` of a stored transaction, with the balances recorded when it was written."""
    t, p = ledger_transactions, ledger_postings
    row = conn.execute(sa.select(t).where(t.c.id == transaction_id)).mappings().one()
    postings = [Posting(r.account, r.amount, r.lot_id, r.hold_id) for r in conn.execute(
        sa.select(p.c.account, p.c.amount, p.c.lot_id, p.c.hold_id).where(p.c.transaction_id == transaction_id)
        .order_by(p.c.line))]
    lot_id = conn.execute(sa.select(ledger_lots.c.id).where(ledger_lots.c.transaction_id == transaction_id)
                          ).scalar()
    return view(transaction_id, row["member_id"], row["kind"], row["effective_at"], row["reference"],
                row["event_id"], row["rule_key"], row["program_version"], lot_id, postings, balance)


def lock_member_points(conn: Connection, member_id: str, *, must_be_active: bool = True) -> PointState:
    state = lock_states(conn, [member_id])[member_id]
    if must_be_active:
        status = conn.execute(sa.select(members.c.status).where(members.c.id == member_id)).scalar_one()
        if status != Status.active.value:
            raise InvalidMemberState(f"member {member_id!r} is {status}")
    return state
