"""The member view that `GET /v1/members/{id}` and `members show --json` print.

Each feature that holds per-member state adds its part here. Without `at`
the view is the state as recorded: everything imported and every job run so
far, so time-dependent parts (the tier) are taken at the latest time the
engine has seen (`recorded_time`), not at the wall clock.
"""
from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR
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


def recorded_time(conn: Connection) -> datetime:
    """The latest time the engine has seen: the newest event, or the furthest `jobs run --now`."""
    latest = conn.execute(sa.select(sa.func.max(events.c.occurred_at))).scalar()
    caught_up = conn.execute(sa.select(sa.func.max(scheduled_jobs.c.caught_up_to))).scalar()
    times = [clock.ensure_utc(t) for t in (latest, caught_up) if t is not None]
    return max(times) if times else clock.now()


def member_view(conn: Connection, member_id: str, *, at: datetime | None = None) -> dict[str, Any]:
    """As recorded, or with `at` as it had taken effect by then."""
    view = service.get(conn, member_id).as_dict()
    when = at or recorded_time(conn)
    version = programs.active_or_none(conn, when)
    view["tier"] = None
    view["growth"] = {"lifetime": growth.lifetime(conn, member_id, at=at), "qualifying": 0}
    if version is not None:
        state = growth.tier(conn, version.program, member_id, when)
        view["tier"] = version.program.tiers.levels[state.level].key
        view["growth"]["qualifying"] = int(state.qualifying.to_integral_value(ROUND_FLOOR))
    view["points"] = queries.points_view(conn, member_id, at=at)
    return view
