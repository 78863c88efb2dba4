"""each member's growth total, so a history window's carried total is one row, not a sum over the history

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:55:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('growth_totals',
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_growth_totals'))
    )
    op.execute("INSERT INTO growth_totals (member_id, total)"
               " SELECT member_id, SUM(amount) FROM growth_entries GROUP BY member_id")
    if op.get_bind().dialect.name == "postgresql":
        # statistics now: until autovacuum's next round (never, where it is off) the planner would take
        # the table for empty and scan all of it for the few members a batch reads
        op.execute("ANALYZE growth_totals")


def downgrade() -> None:
    op.drop_table('growth_totals')
