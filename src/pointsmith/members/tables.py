from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import Json, UtcDateTime, metadata

members = sa.Table(
    "members", metadata,
    sa.Column("id", sa.String(128), primary_key=True),  # the integrating app's own id, a string
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("verified_email", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("verified_phone", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("verified_real_name", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("invite_code", sa.String(16), nullable=False, unique=True),
    sa.Column("invited_by", sa.String(128), nullable=True),
    sa.Column("joined_at", UtcDateTime, nullable=False),
    sa.Column("status_reason", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("status in ('active', 'frozen', 'closed')", name="status"),
)
