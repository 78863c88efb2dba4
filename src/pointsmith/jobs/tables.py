from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import UtcDateTime, metadata

scheduled_jobs = sa.Table(
    "scheduled_jobs", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("caught_up_to", UtcDateTime, nullable=True),   # the latest `now` it has run for
    sa.Column("last_started_at", UtcDateTime, nullable=True),
    sa.Column("last_finished_at", UtcDateTime, nullable=True),
    sa.Column("last_processed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("runs", sa.Integer, nullable=False, server_default="0"),
)
