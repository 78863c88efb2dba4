"""Benefit uses: one row per use, counted against the benefit's quota in its period."""
from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import BigId, UtcDateTime, metadata

benefit_uses = sa.Table(
    "benefit_uses", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("member_id", sa.String(128), nullable=False),
    sa.Column("benefit_key", sa.String(64), nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=False),
    sa.Column("times", sa.Integer, nullable=False),
    sa.Column("reference", sa.String(255), nullable=True),
    sa.Index("ix_benefit_uses_member", "member_id", "benefit_key", "used_at"),
)
