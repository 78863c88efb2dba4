"""postings without a member index (member reads go through transactions)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 22:30:00
"""
from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_ledger_postings_member', table_name='ledger_postings')


def downgrade() -> None:
    op.create_index('ix_ledger_postings_member', 'ledger_postings', ['member_id', 'account', 'effective_at'])
