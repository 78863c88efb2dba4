"""members, programs, events, keys, idempotency, audit

Revision ID: 0001
Revises:
Create Date: 2026-11-22 19:55:20.120230
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pointsmith.db

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), server_default='', nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', pointsmith.db.UtcDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("scope in ('admin', 'client')", name=op.f('ck_api_keys_scope')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_api_keys_secret_hash'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=160), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_subject', ['subject', 'at'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('occurred_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('received_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('body_hash', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_member', ['member_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_events_occurred', ['occurred_at'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('scope', sa.String(length=160), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_idempotency_keys')),
    sqlite_with_rowid=False
    )
    op.create_table('members',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('verified_email', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('verified_phone', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('verified_real_name', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('invite_code', sa.String(length=16), nullable=False),
    sa.Column('invited_by', sa.String(length=128), nullable=True),
    sa.Column('joined_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('created_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status in ('active', 'frozen', 'closed')", name=op.f('ck_members_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('invite_code', name=op.f('uq_members_invite_code'))
    )
    op.create_table('program_versions',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('effective_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('published_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=64), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('document', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_program_versions'))
    )
    with op.batch_alter_table('program_versions', schema=None) as batch_op:
        batch_op.create_index('ix_program_versions_effective', ['effective_at', 'version'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('program_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_program_versions_effective')

    op.drop_table('program_versions')
    op.drop_table('members')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_occurred')
        batch_op.drop_index('ix_events_member')

    op.drop_table('events')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_subject')

    op.drop_table('audit_log')
    op.drop_table('api_keys')
