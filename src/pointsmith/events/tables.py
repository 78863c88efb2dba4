from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import Json, UtcDateTime, metadata

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.String(255), primary_key=True),  # the sender's id: the idempotency key
    sa.Column("member_id", sa.String(128), nullable=False),  # not indexed: events are read by id and by time
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("body_hash", sa.String(64), nullable=False),
    sa.Column("outcome", Json, nullable=False),
    sa.Index("ix_events_occurred", "occurred_at"),
)
