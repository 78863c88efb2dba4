"""Tier state per member and the history of tier changes.

Both derive from the growth ledger and the tier policy (`tiers.policy`, pure),
except manual overrides, which an admin sets. `member_tiers` is what lets
reviews run set-based over every member at a period boundary; `tier_changes`
is the history with reasons.
"""
from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import BigId, UtcDateTime, metadata

member_tiers = sa.Table(
    "member_tiers", metadata,
    sa.Column("member_id", sa.String(128), primary_key=True),
    sa.Column("level", sa.SmallInteger, nullable=False),          # the computed tier, an index into the levels
    sa.Column("tier", sa.String(64), nullable=False),              # its key
    sa.Column("review_level", sa.SmallInteger, nullable=False),   # period: the level the last review granted
    sa.Column("qualifying", sa.Numeric(24, 6), nullable=False),   # period growth | lifetime | decayed balance
    sa.Column("lifetime", sa.BigInteger, nullable=False),
    sa.Column("since", UtcDateTime, nullable=True),               # when the computed tier began
    sa.Column("next_review_at", UtcDateTime, nullable=True),      # period: next review; decay: next fall
    sa.Column("warned_review_at", UtcDateTime, nullable=True),    # the review a downgrade warning was sent for
    sa.Column("override_tier", sa.String(64), nullable=True),     # set by an admin, in force over
    sa.Column("override_from", UtcDateTime, nullable=True),       # [override_from, override_until)
    sa.Column("override_until", UtcDateTime, nullable=True),
    sa.Column("as_of", UtcDateTime, nullable=False),              # the state is computed up to this time
    sa.Column("policy", sa.String(16), nullable=False),           # checksum of the tier policy it follows
    sa.Index("ix_member_tiers_review", "next_review_at"),
    sa.Index("ix_member_tiers_override", "override_until"),
    sqlite_with_rowid=False,
)

tier_changes = sa.Table(
    "tier_changes", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("member_id", sa.String(128), nullable=False),
    sa.Column("effective_at", UtcDateTime, nullable=False),
    sa.Column("from_tier", sa.String(64), nullable=False),
    sa.Column("to_tier", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),           # upgrade | review | decay | refund | program | manual
    sa.Column("actor", sa.String(64), nullable=True),             # manual: who
    sa.Column("note", sa.Text, nullable=True),                    # manual: why
    sa.Column("until", UtcDateTime, nullable=True),               # manual: when the override ends
    sa.Index("ix_tier_changes_member", "member_id", "effective_at"),
    sa.Index("ix_tier_changes_time", "effective_at"),
)
