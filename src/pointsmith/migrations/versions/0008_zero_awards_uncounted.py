"""awards of no points no longer count toward a rule's `times` limits

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 06:50:00
"""
from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # growth alone, or points cut to nothing by a limit, was recorded as a use of the rule
    op.execute("UPDATE rule_awards SET counted = 0 WHERE points = 0")


def downgrade() -> None:
    # the earlier code counted every recorded award that a full refund had not released
    op.execute("UPDATE rule_awards SET counted = 1 WHERE points = 0 AND id IN"
               " (SELECT a.id FROM rule_awards a JOIN orders o ON o.event_id = a.event_id"
               " AND o.member_id = a.member_id WHERE o.refunded < o.amount)")
    op.execute("UPDATE rule_awards SET counted = 1 WHERE points = 0 AND order_id IS NULL")
