"""The member view that `GET /v1/members/{id}` and `members show --json` print.

Each feature that holds per-member state adds its part here.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from pointsmith.ledger import queries
from pointsmith.members import service


def member_view(conn: Connection, member_id: str, *, at: datetime | None = None) -> dict[str, Any]:
    """As recorded, or with `at` as it had taken effect by then."""
    view = service.get(conn, member_id).as_dict()
    view["points"] = queries.points_view(conn, member_id, at=at)
    return view
