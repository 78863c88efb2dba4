from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import BigId, UtcDateTime, metadata

growth_entries = sa.Table(
    "growth_entries", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("member_id", sa.String(128), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),          # negative for a refund
    sa.Column("effective_at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),             # earn | refund | adjust
    sa.Column("event_id", sa.String(255), nullable=True),
    sa.Column("rule_key", sa.String(64), nullable=True),
    sa.Column("reference", sa.String(255), nullable=True),
    sa.Index("ix_growth_entries_member", "member_id", "effective_at"),
)

# each member's total of every growth entry, whatever its time, kept in step with the entries (growth.record):
# what a window of a member's history carries from before it is this total less the window's own entries,
# one row to read however long the history grows
growth_totals = sa.Table(
    "growth_totals", metadata,
    sa.Column("member_id", sa.String(128), primary_key=True),
    sa.Column("total", sa.BigInteger, nullable=False),
)
