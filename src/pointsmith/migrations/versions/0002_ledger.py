"""points ledger and scheduled jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:55:28.880750
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pointsmith.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


APPEND_ONLY = ("ledger_transactions", "ledger_postings")
SEQUENCES = ("ledger_transactions_id_seq", "ledger_lots_id_seq")


def _append_only_triggers() -> None:
    """The ledger is append-only: the database itself refuses to update or delete a posting."""
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("""CREATE FUNCTION pointsmith_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME; END $$""")
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            name = f"{table}_no_{action.lower()}"
            if postgres:
                op.execute(f"CREATE TRIGGER {name} BEFORE {action} ON {table} "
                           "FOR EACH ROW EXECUTE FUNCTION pointsmith_append_only()")
            else:
                op.execute(f"CREATE TRIGGER {name} BEFORE {action} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {action} on {table} refused'); END")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for sequence in SEQUENCES:  # ids are drawn in blocks by the writer (ledger/writer.py allocate_ids)
            op.execute(f"CREATE SEQUENCE {sequence}")
    op.create_table('ledger_holds',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('captured', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', pointsmith.db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_holds'))
    )
    with op.batch_alter_table('ledger_holds', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_holds_due', ['expires_at'], unique=False, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.create_index('ix_ledger_holds_member', ['member_id', 'status'], unique=False)

    op.create_table('ledger_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('pending', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('earned_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('available_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', pointsmith.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('event_id', sa.String(length=255), nullable=True),
    sa.Column('rule_key', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_lots'))
    )
    with op.batch_alter_table('ledger_lots', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_lots_due_expiry', ['expires_at'], unique=False, sqlite_where=sa.text('remaining > 0'), postgresql_where=sa.text('remaining > 0'))
        batch_op.create_index('ix_ledger_lots_due_pending', ['available_at'], unique=False, sqlite_where=sa.text('pending > 0'), postgresql_where=sa.text('pending > 0'))
        batch_op.create_index('ix_ledger_lots_member', ['member_id', 'expires_at'], unique=False)

    op.create_table('ledger_postings',
    sa.Column('transaction_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('line', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('account', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('lot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('hold_id', sa.String(length=40), nullable=True),
    sa.Column('effective_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('transaction_id', 'line', name=op.f('pk_ledger_postings')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_postings_member', ['member_id', 'account', 'effective_at'], unique=False)

    op.create_table('ledger_transactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('effective_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('event_id', sa.String(length=255), nullable=True),
    sa.Column('rule_key', sa.String(length=64), nullable=True),
    sa.Column('program_version', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transactions'))
    )
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_transactions_member', ['member_id', 'id'], unique=False)

    op.create_table('point_balances',
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('available', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('pending', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('held', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('debt', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_activity_at', pointsmith.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_hash', sa.String(length=64), server_default='', nullable=False),
    sa.Column('updated_at', pointsmith.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_point_balances')),
    sqlite_with_rowid=False
    )
    op.create_table('scheduled_jobs',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('caught_up_to', pointsmith.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_started_at', pointsmith.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_finished_at', pointsmith.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_processed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('runs', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduled_jobs'))
    )

    _append_only_triggers()


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in APPEND_ONLY:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}" + (f" ON {table}" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS pointsmith_append_only()")
        for sequence in SEQUENCES:
            op.execute(f"DROP SEQUENCE IF EXISTS {sequence}")
    op.drop_table('scheduled_jobs')
    op.drop_table('point_balances')
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_transactions_member')

    op.drop_table('ledger_transactions')
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_postings_member')

    op.drop_table('ledger_postings')
    with op.batch_alter_table('ledger_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_lots_member')
        batch_op.drop_index('ix_ledger_lots_due_pending', sqlite_where=sa.text('pending > 0'), postgresql_where=sa.text('pending > 0'))
        batch_op.drop_index('ix_ledger_lots_due_expiry', sqlite_where=sa.text('remaining > 0'), postgresql_where=sa.text('remaining > 0'))

    op.drop_table('ledger_lots')
    with op.batch_alter_table('ledger_holds', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_holds_member')
        batch_op.drop_index('ix_ledger_holds_due', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))

    op.drop_table('ledger_holds')
