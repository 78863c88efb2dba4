from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import Amount, BigId, UtcDateTime, metadata

# What each rule gave each member for each event: the usage that per-member limits count,
# net of refunds, and what a refund takes back from.
rule_awards = sa.Table(
    "rule_awards", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("member_id", sa.String(128), nullable=False),
    sa.Column("event_id", sa.String(255), nullable=False),
    sa.Column("rule_key", sa.String(64), nullable=False),
    sa.Column("program_version", sa.Integer, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("order_id", sa.String(255), nullable=True),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("growth", sa.BigInteger, nullable=False),
    sa.Column("points_refunded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("counted", sa.Integer, nullable=False, server_default="1"),  # 0 once a full refund releases it
    sa.Index("ix_rule_awards_usage", "member_id", "rule_key", "occurred_at"),
)

# Points given by a rule with a budget, all members together: one row per rule, locked to stay exact.
rule_budgets = sa.Table(
    "rule_budgets", metadata,
    sa.Column("rule_key", sa.String(64), primary_key=True),
    sa.Column("used", sa.BigInteger, nullable=False),
)

orders = sa.Table(
    "orders", metadata,
    sa.Column("member_id", sa.String(128), primary_key=True),
    sa.Column("order_id", sa.String(255), primary_key=True),
    sa.Column("event_id", sa.String(255), nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("amount", Amount(), nullable=False),
    sa.Column("refunded", Amount(), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),        # what the order earned, all rules
    sa.Column("growth", sa.BigInteger, nullable=False),
    sa.Column("points_back", sa.BigInteger, nullable=False),   # taken back by refunds so far
    sa.Column("growth_back", sa.BigInteger, nullable=False),
)
