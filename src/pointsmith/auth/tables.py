from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import UtcDateTime, metadata

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # the public prefix shown in listings
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.CheckConstraint("scope in ('admin', 'client')", name="scope"),
)
