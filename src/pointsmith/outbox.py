"""Domain events: facts the engine records for others to act on (notifications deliver them).

Recorded in the same transaction as the change that causes them; `dedupe` makes
recording one twice (a job run twice, a replay) a no-op.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.db import BigId, Json, UtcDateTime, metadata

domain_events = sa.Table(
    "domain_events", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(64), nullable=False),             # e.g. tier.downgrade_warning
    sa.Column("member_id", sa.String(128), nullable=True),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("payload", Json, nullable=False),
    sa.Column("dedupe", sa.String(255), nullable=False, unique=True),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.Index("ix_domain_events_type", "type", "occurred_at"),
    sa.Index("ix_domain_events_member", "member_id", "occurred_at"),
)


def record(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Domain events; one whose `dedupe` is recorded already is left as it is."""
    if rows:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(domain_events).on_conflict_do_nothing(index_elements=["dedupe"]), rows)


def of_member(conn: Connection, member_id: str, *, type_: str | None = None) -> list[dict[str, Any]]:
    d = domain_events.c
    query = sa.select(d.type, d.occurred_at, d.payload).where(d.member_id == member_id)
    if type_ is not None:
        query = query.where(d.type == type_)
    return [{"type": t, "occurred_at": clock.iso(at), **payload}
            for t, at, payload in conn.execute(query.order_by(d.occurred_at, d.id))]


def since(conn: Connection, after: datetime | None = None) -> list[dict[str, Any]]:
    d = domain_events.c
    query = sa.select(d.type, d.member_id, d.occurred_at, d.payload).order_by(d.occurred_at, d.id)
    if after is not None:
        query = query.where(d.occurred_at > after)
    return [{"type": t, "member_id": m, "occurred_at": clock.iso(at), **payload}
            for t, m, at, payload in conn.execute(query)]
