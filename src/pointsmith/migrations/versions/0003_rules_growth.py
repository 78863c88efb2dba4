"""rules, orders and growth

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 20:07:16.855241
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pointsmith.db

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('growth_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('effective_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=True),
    sa.Column('rule_key', sa.String(length=64), nullable=True),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_growth_entries'))
    )
    with op.batch_alter_table('growth_entries', schema=None) as batch_op:
        batch_op.create_index('ix_growth_entries_member', ['member_id', 'effective_at'], unique=False)

    op.create_table('orders',
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('order_id', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('occurred_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('refunded', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('growth', sa.BigInteger(), nullable=False),
    sa.Column('points_back', sa.BigInteger(), nullable=False),
    sa.Column('growth_back', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('member_id', 'order_id', name=op.f('pk_orders'))
    )
    op.create_table('rule_awards',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('rule_key', sa.String(length=64), nullable=False),
    sa.Column('program_version', sa.Integer(), nullable=False),
    sa.Column('occurred_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('order_id', sa.String(length=255), nullable=True),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('growth', sa.BigInteger(), nullable=False),
    sa.Column('points_refunded', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('counted', sa.Integer(), server_default='1', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_awards'))
    )
    with op.batch_alter_table('rule_awards', schema=None) as batch_op:
        batch_op.create_index('ix_rule_awards_usage', ['member_id', 'rule_key', 'occurred_at'], unique=False)

    op.create_table('rule_budgets',
    sa.Column('rule_key', sa.String(length=64), nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('rule_key', name=op.f('pk_rule_budgets'))
    )


def downgrade() -> None:
    op.drop_table('rule_budgets')
    with op.batch_alter_table('rule_awards', schema=None) as batch_op:
        batch_op.drop_index('ix_rule_awards_usage')

    op.drop_table('rule_awards')
    op.drop_table('orders')
    with op.batch_alter_table('growth_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_growth_entries_member')

    op.drop_table('growth_entries')
