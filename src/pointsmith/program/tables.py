from __future__ import annotations

import sqlalchemy as sa

from pointsmith.db import Json, UtcDateTime, metadata

program_versions = sa.Table(
    "program_versions", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("effective_at", UtcDateTime, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=False),
    sa.Column("published_by", sa.String(64), nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("document", Json, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Index("ix_program_versions_effective", "effective_at", "version"),
)
