"""Ledger tables.

`ledger_transactions` and `ledger_postings` are append-only (triggers refuse
UPDATE and DELETE; a per-member hash chain lets `ledger verify` detect any
change made around them). `point_balances`, `ledger_lots` (remaining) and
`ledger_holds` (status) are caches derived from the postings, kept in the
same database transaction and rebuilt-checked by `ledger verify`.
"""
from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import BigId, UtcDateTime, metadata

ledger_transactions = sa.Table(
    "ledger_transactions", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("member_id", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("effective_at", UtcDateTime, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("reference", sa.String(255), nullable=True),
    sa.Column("event_id", sa.String(255), nullable=True),
    sa.Column("rule_key", sa.String(64), nullable=True),
    sa.Column("program_version", sa.Integer, nullable=True),
    sa.Column("actor", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("hash", sa.String(64), nullable=False),  # sha256(previous hash of this member + content)
    sa.Index("ix_ledger_transactions_member", "member_id", "id"),
)

# No secondary index on purpose: every index is paid for on every posting written. Postings cluster by
# (transaction, line) (WITHOUT ROWID on SQLite); reads by member go through the transactions' member
# index (`queries.of_member`).
ledger_postings = sa.Table(
    "ledger_postings", metadata,
    sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("line", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("member_id", sa.String(128), nullable=False),
    # member accounts: available, pending, held; program accounts: issued, redeemed, expired, reversed
    sa.Column("account", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("lot_id", BigId, nullable=True),
    sa.Column("hold_id", sa.String(40), nullable=True),
    sa.Column("effective_at", UtcDateTime, nullable=False),
    sqlite_with_rowid=False,
)

point_balances = sa.Table(
    "point_balances", metadata,
    sa.Column("member_id", sa.String(128), primary_key=True),
    sa.Column("available", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("pending", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("debt", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_activity_at", UtcDateTime, nullable=True),  # last earn or spend (inactivity expiry)
    sa.Column("last_hash", sa.String(64), nullable=False, server_default=""),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sqlite_with_rowid=False,
)

ledger_lots = sa.Table(
    "ledger_lots", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("member_id", sa.String(128), nullable=False),
    sa.Column("transaction_id", BigId, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),       # as credited
    sa.Column("pending", sa.BigInteger, nullable=False),      # not yet available
    sa.Column("remaining", sa.BigInteger, nullable=False),    # available and not yet spent, expired or taken back
    sa.Column("earned_at", UtcDateTime, nullable=False),
    sa.Column("available_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),      # null: never
    sa.Column("reference", sa.String(255), nullable=True),    # e.g. the order id, so a refund finds its lot
    sa.Column("event_id", sa.String(255), nullable=True),
    sa.Column("rule_key", sa.String(64), nullable=True),
    sa.Index("ix_ledger_lots_member", "member_id", "expires_at"),
    sa.Index("ix_ledger_lots_due_pending", "available_at", sqlite_where=sa.text("pending > 0"),
             postgresql_where=sa.text("pending > 0")),
    sa.Index("ix_ledger_lots_due_expiry", "expires_at", sqlite_where=sa.text("remaining > 0"),
             postgresql_where=sa.text("remaining > 0")),
)

ledger_holds = sa.Table(
    "ledger_holds", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("member_id", sa.String(128), nullable=False),
    sa.Column("reference", sa.String(255), nullable=True),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("captured", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False),  # active | captured | voided | lapsed
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Index("ix_ledger_holds_member", "member_id", "status"),
    sa.Index("ix_ledger_holds_due", "expires_at", sqlite_where=sa.text("status = 'active'"),
             postgresql_where=sa.text("status = 'active'")),
)

MEMBER_ACCOUNTS = ("available", "pending", "held")
PROGRAM_ACCOUNTS = ("issued", "redeemed", "expired", "reversed")
