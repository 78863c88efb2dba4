"""idempotency keys up to 512 characters: the key a refund event writes is its id (up to 255) and more

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 03:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite does not enforce a VARCHAR's length; PostgreSQL refused a refund whose event id passed 242
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("idempotency_keys", "key", type_=sa.String(512), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("idempotency_keys", "key", type_=sa.String(255), existing_nullable=False)
