"""The audit log: every admin and risk decision, tagged `subject:action`."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsmith import clock
from pointsmith.db import Json, UtcDateTime, metadata

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("tag", sa.String(64), nullable=False),        # e.g. member:freeze, program:publish
    sa.Column("subject", sa.String(160), nullable=False),   # what it was done to (member id, version)
    sa.Column("actor", sa.String(64), nullable=False),      # api key id, or cli
    sa.Column("detail", Json, nullable=False),
    sa.Index("ix_audit_log_subject", "subject", "at"),
)


def record(conn: Connection, tag: str, subject: str, actor: str, **detail: Any) -> None:
    conn.execute(audit_log.insert().values(at=clock.now(), tag=tag, subject=subject, actor=actor,
                                           detail=detail))
