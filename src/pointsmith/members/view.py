"""The member view that `GET /v1/members/{id}` and `members show --json` print.

Each feature that holds per-member state adds its part here. Without `at`
the view is the state as recorded: everything imported and every job run so
far, so time-dependent parts (the tier) are taken at the time the member's
record stands at (`member_time`), not at the wall clock, and the tier is the
stored one that `report summary` counts.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.events.tables import events
from pointsmith.growth import service as growth
from pointsmith.jobs.tables import scheduled_jobs
from pointsmith.ledger import queries
from pointsmith.members import service
from pointsmith.program import service as programs
from pointsmith.tiers import service as tiers
from pointsmith.tiers.tables import member_tiers


def recorded_time(conn: Connection) -> datetime:
    """The latest time the engine has seen: the newest event, or the furthest `jobs run --now`."""
    latest = conn.execute(sa.select(sa.func.max(events.c.occurred_at))).scalar()
    caught_up = conn.execute(sa.select(sa.func.max(scheduled_jobs.c.caught_up_to))).scalar()
    times = [clock.ensure_utc(t) for t in (latest, caught_up) if t is not None]
    return max(times) if times else clock.now()


def member_time(conn: Connection, member_id: str) -> datetime:
    """The time a member's record stands at: its tier state's (brought up to its own latest event) or
    the furthest `jobs run --now`, whichever is later. Another member's newer event moves none of this
    member's reviews: only the jobs do."""
    as_of = conn.execute(sa.select(member_tiers.c.as_of).where(member_tiers.c.member_id == member_id)).scalar()
    caught_up = conn.execute(sa.select(sa.func.max(scheduled_jobs.c.caught_up_to))).scalar()
    times = [clock.ensure_utc(t) for t in (as_of, caught_up) if t is not None]
    return max(times) if times else recorded_time(conn)


def member_view(conn: Connection, member_id: str, *, at: datetime | None = None) -> dict[str, Any]:
    """As recorded, or with `at` as it had taken effect by then."""
    view = service.get(conn, member_id).as_dict()
    when = at or member_time(conn, member_id)
    version = programs.active_or_none(conn, when)
    view["tier"] = None
    view["growth"] = {"lifetime": growth.lifetime(conn, member_id, at=at), "qualifying": 0}
    view["tier_review"] = view["tier_override"] = None
    if version is not None:
        t = tiers.view(conn, version.program, member_id, when, as_recorded=at is None)
        view["tier"] = t["tier"]
        view["growth"].update(qualifying=t["qualifying"], next_tier=t["next_tier"], to_next_tier=t["growth_to_next"],
                              to_keep_tier=t["growth_to_keep"])
        if t["next_review_at"] or t["next_decay_at"]:
            view["tier_review"] = {"at": t["next_review_at"] or t["next_decay_at"],
                                   "kind": "review" if t["next_review_at"] else "decay",
                                   "projected_tier": t["projected_tier"]}
        view["tier_override"] = t["override"]
    view["points"] = queries.points_view(conn, member_id, at=at)
    return view
