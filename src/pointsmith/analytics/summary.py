"""`report summary`: members and the points totals, as recorded or as of a time (CONTRACT §5)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith.growth.tables import growth_entries
from pointsmith.ledger.tables import ledger_postings
from pointsmith.members.tables import members
from pointsmith.members.view import recorded_time
from pointsmith.program import service as programs
from pointsmith.program.schema import Program
from pointsmith.tiers.policy import tier_at


def members_per_tier(conn: Connection, program: Program, at: datetime) -> dict[str, int]:
    """How many members hold each tier at `at`, computed from each member's growth history."""
    tz = ZoneInfo(program.program.timezone)
    counts = {level.key: 0 for level in program.tiers.levels}
    histories: dict[str, list[tuple[datetime, int]]] = {}
    g = growth_entries.c
    for member_id, t, amount in conn.execute(sa.select(g.member_id, g.effective_at, g.amount)
                                             .where(g.effective_at <= at).order_by(g.member_id, g.effective_at)):
        histories.setdefault(member_id, []).append((t, int(amount)))
    joined = sa.select(sa.func.count()).select_from(members).where(members.c.joined_at <= at)
    without_growth = int(conn.execute(joined).scalar_one()) - len(histories)
    counts[program.tiers.levels[0].key] += max(without_growth, 0)
    for history in histories.values():
        counts[program.tiers.levels[tier_at(program.tiers, tz, history, at).level].key] += 1
    return counts


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
        tiers = members_per_tier(conn, version.program, at or recorded_time(conn))
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
