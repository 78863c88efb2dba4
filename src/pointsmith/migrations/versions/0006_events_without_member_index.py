"""events without a member index (nothing reads events by member; every event paid for it)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 09:10:00
"""
from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_events_member', table_name='events')


def downgrade() -> None:
    op.create_index('ix_events_member', 'events', ['member_id', 'occurred_at'])
