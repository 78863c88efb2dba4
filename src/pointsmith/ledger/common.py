"""Helpers every ledger operation shares: checks, locking, the transaction view."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.errors import InvalidMemberState, ValidationFailed
from pointsmith.ledger.writer import PointState, Written, lock_states
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


def transaction_view(written: Written, state: PointState) -> dict[str, Any]:
    draft = written.draft
    to_member = sum(p.amount for p in draft.postings if p.account in ("available", "pending"))
    return {
        "id": written.transaction_id, "member_id": draft.member_id, "kind": draft.kind, "points": to_member,
        "effective_at": clock.iso(draft.effective_at), "reference": draft.reference, "event_id": draft.event_id,
        "rule_key": draft.rule_key, "program_version": draft.program_version, "lot_id": written.lot_id,
        "postings": [{"account": p.account, "amount": p.amount, "lot_id": written.lot_id if p.lot_id == 0
                      else p.lot_id, "hold_id": p.hold_id} for p in draft.postings],
        "balance": state.as_dict(),
    }


def lock_member_points(conn: Connection, member_id: str, *, must_be_active: bool = True) -> PointState:
    state = lock_states(conn, [member_id])[member_id]
    if must_be_active:
        status = conn.execute(sa.select(members.c.status).where(members.c.id == member_id)).scalar_one()
        if status != Status.active.value:
            raise InvalidMemberState(f"member {member_id!r} is {status}")
    return state
