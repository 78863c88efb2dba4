"""Tier reports, set-based: members per tier, and the flow of members between tiers over a span."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.members.tables import members
from pointsmith.program.schema import Program
from pointsmith.tiers.tables import member_tiers, tier_changes

mt, tc = member_tiers.c, tier_changes.c


def members_per_tier(conn: Connection, program: Program, at: datetime | None = None) -> dict[str, int]:
    """How many members hold each tier: as recorded (each member's stored state, overrides included),
    or at `at` from the tier history. A member with no growth holds the base tier."""
    tiers = _tiers_at(conn, at)
    counts = {level.key: 0 for level in program.tiers.levels}
    base = program.tiers.levels[0].key
    for tier, n in conn.execute(sa.select(tiers.c.tier, sa.func.count()).group_by(tiers.c.tier)):
        counts[tier] = counts.get(tier, 0) + int(n)
    joined = sa.select(sa.func.count()).select_from(members)
    if at is not None:
        joined = joined.where(members.c.joined_at <= at)
    counts[base] += int(conn.execute(joined).scalar_one()) - sum(counts.values())
    return counts


def tier_flow(conn: Connection, program: Program, start: datetime, end: datetime) -> dict[str, Any]:
    """The matrix of members moving between tiers from `start` to `end`: flow[from][to] = members.
    Members who joined after `start` are counted from the base tier."""
    before, after = _tiers_at(conn, start), _tiers_at(conn, end)
    base = program.tiers.levels[0].key
    m = members.c
    joined = members.outerjoin(before, before.c.member_id == m.id).outerjoin(after, after.c.member_id == m.id)
    pairs = sa.select(sa.func.coalesce(before.c.tier, base).label("source"),
                      sa.func.coalesce(after.c.tier, base).label("target"), sa.func.count().label("n")) \
        .select_from(joined).where(m.joined_at <= end).group_by("source", "target")
    keys = [level.key for level in program.tiers.levels]
    flow = {a: dict.fromkeys(keys, 0) for a in keys}
    for source, target, n in conn.execute(pairs):
        flow.setdefault(source, dict.fromkeys(keys, 0))[target] = int(n)
    moved = {"up": 0, "down": 0, "same": 0}
    rank = {k: i for i, k in enumerate(keys)}
    for a, row in flow.items():
        for b, n in row.items():
            direction = "same" if a == b else "up" if rank.get(b, 0) > rank.get(a, 0) else "down"
            moved[direction] += n
    return {"from": clock.iso(start), "to": clock.iso(end), "tiers": keys, "flow": flow, "moved": moved}


def _tiers_at(conn: Connection, at: datetime | None) -> sa.Subquery:
    """(member_id, tier) for members with a tier state: stored (an override holds until the job that
    ends it has run, as the member view has it), or the last change by `at`."""
    if at is None:
        held = sa.case((mt.override_tier.is_not(None), mt.override_tier), else_=mt.tier)
        return sa.select(mt.member_id, held.label("tier")).subquery()
    ranked = sa.select(tc.member_id, tc.to_tier, sa.func.row_number().over(
        partition_by=tc.member_id, order_by=(tc.effective_at.desc(), tc.id.desc())).label("n")) \
        .where(tc.effective_at <= at).subquery()
    return sa.select(ranked.c.member_id, ranked.c.to_tier.label("tier")).where(ranked.c.n == 1).subquery()
