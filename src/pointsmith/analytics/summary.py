"""`report summary`: members and the points totals, as recorded or as of a time (CONTRACT §5)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith.analytics.tiers import members_per_tier
from pointsmith.ledger.tables import ledger_postings
from pointsmith.members.tables import members
from pointsmith.members.view import recorded_time
from pointsmith.program import service as programs


def summary(conn: Connection, *, at: datetime | None = None) -> dict[str, Any]:
    count = sa.select(sa.func.count()).select_from(members)
    if at is not None:
        count = count.where(members.c.joined_at <= at)
    p = ledger_postings
    totals = sa.select(p.c.account, sa.func.sum(p.c.amount)).group_by(p.c.account)
    if at is not None:
        totals = totals.where(p.c.effective_at <= at)
    sums = {account: int(total) for account, total in conn.execute(totals)}
    issued, redeemed = -sums.get("issued", 0), sums.get("redeemed", 0)
    expired, reversed_ = sums.get("expired", 0), sums.get("reversed", 0)
    outstanding = issued - redeemed - expired - reversed_
    version = programs.active_or_none(conn, at or recorded_time(conn))
    tiers: dict[str, int] = {}
    if version is not None:
        tiers = members_per_tier(conn, version.program, at)
    point_value = version.program.program.point_value if version else Decimal("0.01")
    return {
        "members": int(conn.execute(count).scalar_one()),
        "tiers": tiers,
        "points": {"issued": issued, "redeemed": redeemed, "expired": expired, "reversed": reversed_,
                   "outstanding": outstanding, "available": sums.get("available", 0),
                   "pending": sums.get("pending", 0), "held": sums.get("held", 0)},
        "point_value": point_value,
        "liability": outstanding * point_value,
        "currency": version.program.program.currency if version else None,
        "as_of": at.isoformat() if at else None,
    }
